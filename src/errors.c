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
	e->cause = PERR_CAUSE_NONE;
	e->timed_out = false;
	e->token_refused = false;
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

int perr_because(struct perr *e, enum perr_cause cause)
{
	if (e)
		e->cause = cause;
	return -1;
}

enum perr_verdict perr_verdict(const struct perr *e)
{
	if (!e || e->kind == PERR_TEMP || e->cause == PERR_CAUSE_SECRET)
		return PERR_TEMPORARY;
	if (e->kind == PERR_AUTH)
		return PERR_CREDENTIALS;
	return PERR_PERMANENT;
}

bool perr_ends_message(const struct perr *e)
{
	if (perr_verdict(e) != PERR_PERMANENT)
		return false;
	switch (e->cause) {
	case PERR_CAUSE_SENDER:
	case PERR_CAUSE_RCPT:
	case PERR_CAUSE_DATA:
	case PERR_CAUSE_CONTENT:
	case PERR_CAUSE_MESSAGE:
		return true;
	default:
		return false;
	}
}

bool perr_is_connect(const struct perr *e)
{
	return e && (e->cause == PERR_CAUSE_CONNECT_REFUSED ||
		     e->cause == PERR_CAUSE_CONNECT_TIMEOUT ||
		     e->cause == PERR_CAUSE_CONNECT_UNREACHABLE);
}

const char *perr_cause_name(enum perr_cause cause)
{
	static const char *const names[PERR_CAUSE_COUNT] = {
		[PERR_CAUSE_NONE] = "local",
		[PERR_CAUSE_SECRET] = "secret",
		[PERR_CAUSE_NO_USER] = "no-user",
		[PERR_CAUSE_RESOLVE] = "resolve",
		[PERR_CAUSE_CONNECT_REFUSED] = "connect-refused",
		[PERR_CAUSE_CONNECT_TIMEOUT] = "connect-timeout",
		[PERR_CAUSE_CONNECT_UNREACHABLE] = "connect-unreachable",
		[PERR_CAUSE_TLS] = "tls",
		[PERR_CAUSE_TLS_PLAIN] = "tls-plain",
		[PERR_CAUSE_CERT_UNTRUSTED] = "cert-untrusted",
		[PERR_CAUSE_CERT_NAME] = "cert-name",
		[PERR_CAUSE_CERT_EXPIRED] = "cert-expired",
		[PERR_CAUSE_CERT_NOTYET] = "cert-notyet",
		[PERR_CAUSE_CERT_PIN] = "cert-pin",
		[PERR_CAUSE_CLIENT_CERT] = "client-cert",
		[PERR_CAUSE_GREETING] = "greeting",
		[PERR_CAUSE_EHLO] = "ehlo",
		[PERR_CAUSE_STARTTLS] = "starttls",
		[PERR_CAUSE_NO_STARTTLS] = "no-starttls",
		[PERR_CAUSE_AUTH] = "auth",
		[PERR_CAUSE_CLEARTEXT] = "cleartext",
		[PERR_CAUSE_NO_AUTH] = "no-auth",
		[PERR_CAUSE_MECH] = "mech",
		[PERR_CAUSE_LOST] = "lost",
		[PERR_CAUSE_PROTOCOL] = "protocol",
		[PERR_CAUSE_SENDER] = "sender",
		[PERR_CAUSE_RCPT] = "rcpt",
		[PERR_CAUSE_DATA] = "data",
		[PERR_CAUSE_CONTENT] = "content",
		[PERR_CAUSE_MESSAGE] = "message",
	};

	return cause < PERR_CAUSE_COUNT && names[cause] ? names[cause] : "?";
}
