/* system_proto.h — the wire format between a postern caller and the
 * postern service (system mode, system.h): the first lines that name a
 * request, the %XX escaping of arguments, and the line reader with a
 * deadline that both sides read each other with.  Include only from
 * system*.c.
 *
 * The handoff (caller -> service, on the UNIX socket):
 *   "POSTERN-HANDOFF 1\n"
 *   "A <arg>\n"   one per command-line argument after argv[0], each byte
 *                 below 0x21, '%' and DEL written as %XX
 *   "\n"
 *   the message bytes, up to the end of the caller's writing
 *   (shutdown(SHUT_WR)); at most SYSTEM_MESSAGE_MAX bytes.
 * The queue requests: the one line "POSTERN-MAILQ 1\n" or
 * "POSTERN-FLUSH 1\n", then the end of the caller's writing.
 *
 * Service -> caller: "N <text>\n" for each notice, "L <line>\n" for each
 * line of a queue listing, then one "R <kind> <text>\n": kind is the enum
 * perr_kind (0: done — delivered, queued, listed or run).  Every text is
 * sanitised (log_sanitize) by the side that writes it and again by the
 * side that reads it. */
#ifndef POSTERN_SYSTEM_PROTO_H
#define POSTERN_SYSTEM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SYSTEM_MAGIC_HANDOFF "POSTERN-HANDOFF 1"
#define SYSTEM_MAGIC_MAILQ "POSTERN-MAILQ 1"
#define SYSTEM_MAGIC_FLUSH "POSTERN-FLUSH 1"

/* Buffered reading of the peer's lines.  The caller fills fd, deadline
 * and idle_ms and zeroes the rest. */
struct system_rbuf {
	int fd;
	int64_t deadline;   /* mono_ms() time for everything */
	int64_t idle_ms;    /* for each read; 0: only the deadline */
	char buf[8192];     /* a longer line is refused (EMSGSIZE) */
	size_t pos, len;    /* unread bytes: buf[pos, len) */
	int eof;
};

/* Read more into r (after moving the unread bytes to the front).  1: more
 * bytes; 0: end of input; -1: error or deadline (errno set, ETIMEDOUT for
 * the deadline). */
int system_rb_fill(struct system_rbuf *r);

/* One line without its LF into out (cap bytes).  1: a line; 0: end of
 * input; -1: error, deadline, a last line without LF (EPROTO), or a line
 * longer than out or the buffer (EMSGSIZE). */
int system_rb_line(struct system_rbuf *r, char *out, size_t cap);

/* The line "A <arg>\n" for one argument, its bytes below 0x21, '%' and
 * DEL written as %XX, into out (not NUL-terminated).  Its length, or 0
 * when it does not fit in cap bytes. */
size_t system_arg_line(char *out, size_t cap, const char *arg);

/* Undo the %XX escapes of an argument in place; -1 when malformed (a raw
 * byte that should have been escaped, a bad or %00 escape). */
int system_arg_unescape(char *s);

#endif
