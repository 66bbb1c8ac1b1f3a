/* log.h — what postern tells people: the -v transcript on stderr and,
 * the one-line-per-message syslog/file log (SPEC section 7).
 *
 * Every piece of untrusted text (server replies, header values) passes
 * through log_sanitize before it reaches a terminal or a log. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>

#include "errors.h"

/* 0: quiet; 1: -v transcript. */
void log_set_verbose(int level);
int log_verbose_level(void);

/* "* text" on stderr when verbose (events: connecting, TLS, cert). */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "C: line" / "S: line" on stderr when verbose.  dir is 'C' or 'S'; line
 * has no CRLF; it is sanitised before printing. */
void log_wire(char dir, const char *line, size_t len);

/* Copy src (len bytes) into dst (cap bytes, NUL-terminated) replacing every
 * byte outside printable ASCII (C0 controls, DEL, ESC, bytes >= 0x80 that
 * are not part of valid UTF-8) with '?', and TAB with a space.  Returns the
 * length written. */
size_t log_sanitize(char *dst, size_t cap, const char *src, size_t len);

/* ---- the per-message log (syslog, a file, or off) ---- */

/* One message's outcome.  Every text is untrusted and is sanitised when
 * the line is made; NULL (or -1 for numbers) means "not known" and is
 * written as "-". */
struct log_record {
	const char *account;     /* section name */
	const char *host;        /* server */
	unsigned port;           /* 0: none (nothing connected) */
	const char *tls;         /* tls_describe(): "TLSv1.3 TLS_AES_..."; "" or NULL: none */
	const char *sender;      /* envelope sender; "" is the null sender */
	char *const *rcpts;      /* envelope recipients */
	size_t nrcpts;
	long long size;          /* message bytes; -1 unknown */
	const char *status;      /* "sent", "queued", "deferred", "held", "failed", "expired" */
	const char *result;      /* the server's reply, or the error line */
	const char *msgid;       /* Message-ID header value */
	const char *queue_id;    /* spool id, when the message is or was queued */
	long duration_ms;        /* -1 unknown */
};

/* Longest line made (the recipient list is cut to fit, ending in
 * "(+N more)"); syslog lines beyond ~8 KB are cut by daemons anyway. */
#define LOG_RECORD_MAX 4096

/* The line, without time or newline, e.g.
 *   account=work relay=smtp.example.com:587 tls=TLSv1.3/TLS_AES_256_GCM_SHA384
 *   from=<joe@example.com> to=<a@example.org>,<b@example.org> size=1234
 *   msgid=<x@y> queue_id=- duration=0.412s status=sent (250 2.0.0 Ok)
 * (one line).  Returns its length. */
size_t log_record_format(char *buf, size_t cap, const struct log_record *r);

/* Write one record where `setting` (the account's log key) says:
 * NULL or "syslog": syslog(3), facility mail, ident "postern", with the
 * priority info for sent, warning for queued/deferred, err otherwise;
 * "off": nothing; anything else: a file path ("~/" allowed), appended
 * (created 0600) as "2024-05-01T12:00:00+0200 postern[PID]: LINE\n" in one
 * write(2), so concurrent postern processes never interleave.  A file that
 * cannot be written: -1, PERR_IO naming it and the fix; a path that is not
 * a regular file (a FIFO, a device): -1 at once, PERR_CONFIG (the message's
 * own outcome does not change; print it as a warning). */
int log_record_write(const char *setting, const struct log_record *r, struct perr *e);

enum log_level { LOGL_INFO, LOGL_WARNING, LOGL_ERR };

/* A queue event in the same place and form, e.g. log_event_line(setting,
 * LOGL_WARNING, &e, "account=%s queue_id=%s status=expired (%s)", ...).
 * The formatted text is sanitised as a whole. */
int log_event_line(const char *setting, enum log_level level, struct perr *e, const char *fmt,
		   ...) __attribute__((format(printf, 4, 5)));

#endif
