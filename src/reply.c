/* reply.c — parsing SMTP replies, one line at a time, strictly: the code,
 * the enhanced status code (RFC 3463) and the sanitised text, within the
 * caps stated in reply.h.  No I/O: the caller reads lines (at most
 * REPLY_LINE_MAX bytes each) and feeds them here. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "reply.h"

/* How much of an offending line an error message quotes. */
#define QUOTE_MAX 80

void reply_init(struct reply *r)
{
	memset(r, 0, sizeof *r);
}

/* Fail with the offending line quoted (sanitised, cut at QUOTE_MAX). */
static int malformed(const char *what, const char *line, size_t len, struct perr *e)
{
	char q[QUOTE_MAX + 1];
	size_t n = log_sanitize(q, sizeof q, line, len);

	return perr_set(e, PERR_PROTOCOL,
			"%s from server: \"%s%s\"; check that host and port lead to an SMTP server",
			what, q, n < len ? "..." : "");
}

/* The code of a reply line, or -1 when the line does not start with three
 * valid digits followed by ' ', '-' or the end of the line. */
static int line_code(const char *s, size_t len)
{
	if (len < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || s[2] < '0' ||
	    s[2] > '9')
		return -1;
	if (len > 3 && s[3] != ' ' && s[3] != '-')
		return -1;
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* Length of a run of 1..3 digits at s (n bytes available), 0 if none. */
static size_t digits13(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && i < 4 && s[i] >= '0' && s[i] <= '9')
		i++;
	return i >= 1 && i <= 3 ? i : 0;
}

/* Length of an enhanced status code "X.Y.Z" at the start of text (X being
 * the class digit cls) followed by a space or the end; 0 when absent. */
static size_t enhanced_len(const char *t, size_t n, char cls)
{
	size_t i, d;

	if (n < 5 || t[0] != cls || t[1] != '.')
		return 0;
	i = 2;
	if (!(d = digits13(t + i, n - i)) || i + d >= n || t[i + d] != '.')
		return 0;
	i += d + 1;
	if (!(d = digits13(t + i, n - i)))
		return 0;
	i += d;
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

/* Append one line's text to r->text, '\n'-separated; what does not fit in
 * REPLY_TEXT_MAX is dropped (a line with no room left is dropped whole). */
static void keep_text(struct reply *r, const char *t, size_t n)
{
	size_t room = sizeof r->text - r->len;

	if (r->nlines > 0) {
		if (room < 3)
			return;
		r->text[r->len++] = '\n';
		room--;
	}
	r->len += log_sanitize(r->text + r->len, room, t, n);
}

int reply_feed(struct reply *r, const char *line, size_t len, struct perr *e)
{
	int code = line_code(line, len);
	const char *t = len > 4 ? line + 4 : line + len;
	size_t n = len > 4 ? len - 4 : 0, el;

	if (code < 0)
		return malformed("malformed reply", line, len, e);
	if (r->nlines > 0 && code != r->code)
		return malformed("reply with mixed codes", line, len, e);
	if (r->nlines >= REPLY_LINES_MAX)
		return perr_set(e, PERR_PROTOCOL,
				"server reply has more than %d lines; check that host and port "
				"lead to an SMTP server",
				REPLY_LINES_MAX);
	el = enhanced_len(t, n, line[0]);
	if (r->nlines == 0 && el > 0 && el < sizeof r->enhanced) {
		memcpy(r->enhanced, t, el);
		r->enhanced[el] = '\0';
	} else if (el > 0 && (el != strlen(r->enhanced) || memcmp(t, r->enhanced, el) != 0)) {
		el = 0; /* only the first line's code is stripped from later ones */
	}
	if (el > 0) {
		t += el;
		n -= el;
		if (n > 0) {
			t++; /* the space after the code */
			n--;
		}
	}
	r->code = code;
	keep_text(r, t, n);
	r->nlines++;
	return len > 3 && line[3] == '-' ? 0 : 1;
}

int reply_line(const struct reply *r, unsigned i, char *buf, size_t cap)
{
	const char *p = r->text, *end = r->text + r->len, *nl;
	size_t n;

	if (r->nlines == 0)
		return -1;
	for (; i > 0; i--) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return -1;
		p = nl + 1;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	n = (size_t)((nl ? nl : end) - p);
	if (cap == 0)
		return (int)n;
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return (int)n;
}

void reply_oneline(const struct reply *r, char *buf, size_t cap)
{
	size_t i, o = 0;

	if (cap == 0)
		return;
	for (i = 0; i < r->len && o + 1 < cap; i++) {
		if (r->text[i] != '\n') {
			buf[o++] = r->text[i];
		} else if (o + 4 < cap) {
			memcpy(buf + o, " / ", 3);
			o += 3;
		} else {
			break;
		}
	}
	if (i < r->len && ((unsigned char)r->text[i] & 0xc0) == 0x80) {
		/* cut inside a UTF-8 character: drop its first bytes too */
		while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
			o--;
		if (o > 0)
			o--;
	}
	buf[o] = '\0';
}
