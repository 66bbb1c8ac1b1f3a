/* reply.h — SMTP replies: lines of bytes -> {code, enhanced code, text}.
 *
 * The parser is fed one line at a time (without CRLF) and says when the
 * reply is complete.  Validation is strict: three digits (first 2-5,
 * second 0-5), then ' ' (last line), '-' (more follow) or the end of the
 * line; every line of one reply has the same code.  Caps bound memory:
 * REPLY_LINE_MAX per line (enforced by the reader), REPLY_LINES_MAX lines,
 * REPLY_TEXT_MAX bytes of kept text (the rest is dropped, not an error). */
#ifndef POSTERN_REPLY_H
#define POSTERN_REPLY_H

#include <stddef.h>

#include "errors.h"

/* RFC 5321 4.5.3.1.5 allows 512 octets; real servers overshoot a little. */
#define REPLY_LINE_MAX 2048
/* EHLO replies of real servers have ~15 lines; 100 is generous. */
#define REPLY_LINES_MAX 100
#define REPLY_TEXT_MAX 2048

struct reply {
	int code;              /* 0 until the first line is parsed */
	char enhanced[16];     /* "2.1.0" when the first line carries one */
	unsigned nlines;
	size_t len;            /* strlen(text) */
	/* The lines' texts after the code (and after the enhanced code, when
	 * present), joined with '\n'; sanitised: control characters and
	 * invalid bytes replaced with '?'. */
	char text[REPLY_TEXT_MAX];
};

void reply_init(struct reply *r);

/* Feed one line (no CRLF).  Returns 1 when the reply is complete, 0 when
 * more lines follow, -1 when the line is malformed or the reply has too
 * many lines (PERR_PROTOCOL, text quoting the sanitised line). */
int reply_feed(struct reply *r, const char *line, size_t len, struct perr *e);

/* Convenience: the i-th line of text (0-based) copied into buf; returns
 * its length or -1 when there is no such line.  For EHLO keywords. */
int reply_line(const struct reply *r, unsigned i, char *buf, size_t cap);

/* The text as one line (newlines -> " / "), for error messages. */
void reply_oneline(const struct reply *r, char *buf, size_t cap);

#endif
