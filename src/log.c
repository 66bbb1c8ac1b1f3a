/* log.c — what postern tells people.
 *
 * Three parts, in this order:
 *   1. sanitising untrusted text (log_sanitize), used by everything below
 *      and by any module that prints server or header text;
 *   2. the -v transcript on stderr ("* event", "C: line", "S: line");
 *   3. the one-line-per-message syslog/file log (to be added at the end).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* ---- 1. sanitising ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence starting at p (n bytes available), or
 * 0 when it is not one.  Refuses overlong forms, surrogates, code points
 * above U+10FFFF and the C1 controls U+0080..U+009F (terminals obey some). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff)
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

size_t log_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, seq;

	if (cap == 0)
		return 0;
	while (i < len && o + 1 < cap) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f) {
			dst[o++] = (char)c;
			i++;
		} else if (c == '\t') {
			dst[o++] = ' ';
			i++;
		} else if (c >= 0x80 && (seq = utf8_seq(s + i, len - i)) > 0) {
			if (o + seq + 1 > cap)
				break; /* never cut a character in half */
			memcpy(dst + o, s + i, seq);
			o += seq;
			i += seq;
		} else {
			dst[o++] = '?';
			i++;
		}
	}
	dst[o] = '\0';
	return o;
}

/* ---- 2. the -v transcript ----------------------------------------------- */

/* Longest transcript line printed; longer ones end in "...".  Reply lines
 * are at most REPLY_LINE_MAX (2048) bytes, so this loses nothing real. */
#define LOG_LINE_MAX 4096

static int verbose;

void log_set_verbose(int level)
{
	verbose = level;
}

int log_verbose_level(void)
{
	return verbose;
}

/* One line "PREFIXtext\n" on stderr, sanitised, written with one call so
 * that lines from concurrent writers do not interleave mid-line. */
static void emit(const char *prefix, const char *text, size_t len)
{
	char line[LOG_LINE_MAX + 8];
	size_t plen = strlen(prefix), n;

	memcpy(line, prefix, plen);
	n = log_sanitize(line + plen, LOG_LINE_MAX, text, len);
	if (n < len && n + 3 < LOG_LINE_MAX) {
		memcpy(line + plen + n, "...", 3);
		n += 3;
	}
	line[plen + n] = '\n';
	fwrite(line, 1, plen + n + 1, stderr);
}

void log_event(const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;
	int n;

	if (verbose < 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit("* ", text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

void log_wire(char dir, const char *line, size_t len)
{
	if (verbose < 1)
		return;
	emit(dir == 'C' ? "C: " : "S: ", line, len);
}

/* ---- 3. the per-message log line (syslog or file) ----------------------- */
