/* log.h — what postern tells people: the -v transcript on stderr and,
 * later, the one-line-per-message syslog/file log.
 *
 * Every piece of untrusted text (server replies, header values) passes
 * through log_sanitize before it reaches a terminal or a log. */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stddef.h>

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

#endif
