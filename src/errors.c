/* errors.c — filling struct perr (no allocation). */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

void perr_clear(struct perr *e)
{
	if (!e)
		return;
	e->kind = PERR_NONE;
	e->stage = PERR_STAGE_NONE;
	e->code = 0;
	e->enhanced[0] = '\0';
	e->text[0] = '\0';
}

static void vset(struct perr *e, enum perr_kind kind, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void vset(struct perr *e, enum perr_kind kind, const char *fmt, va_list ap)
{
	e->kind = kind;
	vsnprintf(e->text, sizeof e->text, fmt, ap);
}

int perr_set(struct perr *e, enum perr_kind kind, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return -1;
	e->code = 0;
	e->enhanced[0] = '\0';
	va_start(ap, fmt);
	vset(e, kind, fmt, ap);
	va_end(ap);
	return -1;
}

int perr_smtp(struct perr *e, enum perr_kind kind, int code, const char *enhanced,
	      const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return -1;
	e->code = code;
	snprintf(e->enhanced, sizeof e->enhanced, "%s", enhanced ? enhanced : "");
	va_start(ap, fmt);
	vset(e, kind, fmt, ap);
	va_end(ap);
	return -1;
}

void perr_prefix(struct perr *e, const char *fmt, ...)
{
	char prefix[256];
	size_t plen, tlen;
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	memcpy(prefix + plen, ": ", 3);
	plen += 2;
	tlen = strlen(e->text);
	if (plen + tlen + 1 > sizeof e->text)
		tlen = sizeof e->text - plen - 1;
	memmove(e->text + plen, e->text, tlen);
	memcpy(e->text, prefix, plen);
	e->text[plen + tlen] = '\0';
}

void perr_append(struct perr *e, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	if (!e)
		return;
	n = strlen(e->text);
	if (n + 1 >= sizeof e->text)
		return;
	va_start(ap, fmt);
	vsnprintf(e->text + n, sizeof e->text - n, fmt, ap);
	va_end(ap);
}

bool perr_is_temporary(const struct perr *e)
{
	return e && e->kind == PERR_TEMP;
}
