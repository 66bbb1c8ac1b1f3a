/* conn.h — one network connection: a socket, an ops table (plain or TLS),
 * a bounded read buffer, a write buffer that gathers a whole flight of
 * commands into one write, and a deadline.
 *
 * Every blocking operation runs the one poll loop in conn.c against the
 * connection's absolute deadline (set with conn_arm); nothing uses alarm(),
 * signals or socket timeouts, so the same deadline ends a stall on a plain
 * socket and inside TLS alike.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

/* Read buffer: a reply line is at most REPLY_LINE_MAX; this holds several
 * pipelined replies at once. */
#define CONN_RBUF_SIZE 16384
/* Write buffer: a flight of commands plus a large body chunk go out in one
 * write (one TLS record per 16 KB). */
#define CONN_WBUF_SIZE 65536

/* Results of an ops read/write besides a byte count. */
#define CONN_WANT_READ  (-2) /* would block until the socket is readable */
#define CONN_WANT_WRITE (-3) /* would block until the socket is writable */
#define CONN_ERROR      (-1) /* failed; the op filled the error */

struct conn;

struct conn_ops {
	/* Return bytes read (>0), 0 at orderly end of stream, CONN_WANT_*,
	 * or CONN_ERROR with e filled. */
	ssize_t (*read)(struct conn *c, void *buf, size_t n, struct perr *e);
	/* Return bytes written (>0), CONN_WANT_*, or CONN_ERROR. */
	ssize_t (*write)(struct conn *c, const void *buf, size_t n, struct perr *e);
	/* Release the layer's state (not the fd). */
	void (*close)(struct conn *c);
};

struct conn {
	int fd;                       /* -1 when closed */
	const struct conn_ops *ops;   /* plain until tls_start replaces it */
	void *layer;                  /* state of the ops (SSL *) */
	char peer[128];               /* "host:port" for messages */
	char addr[64];                /* numeric address connected to */
	int timeout_ms;               /* per-step budget */
	int64_t deadline;             /* absolute, mono_ms(); set by conn_arm */
	unsigned char rbuf[CONN_RBUF_SIZE];
	size_t rpos, rlen;            /* unread bytes are rbuf[rpos..rlen) */
	unsigned char *wbuf;          /* CONN_WBUF_SIZE bytes */
	size_t wlen;
	int wipe_wbuf;                /* a secret is buffered: wipe after the next flush or close */
};

/* Initialise a closed connection with a per-step timeout in seconds. */
void conn_init(struct conn *c, int timeout_s);

/* Resolve host with getaddrinfo and connect to port, trying every address
 * (IPv6 and IPv4) Happy-Eyeballs style: families interleaved, a new
 * attempt every 250 ms (at once after a failure) while the earlier ones
 * stay open, the first to connect wins; one timeout bounds them all
 * (conn_connect arms it).  TCP_NODELAY is set.
 * Resolving is bounded by the same timeout.
 * On failure: kind PERR_TEMP, cause PERR_CAUSE_CONNECT_REFUSED, _TIMEOUT or
 * _UNREACHABLE, text like "smtp.example.com:587: connection timed out after
 * 30 s" (the caller adds the advice).  A name that does not resolve (or
 * not in time) is PERR_TEMP with cause PERR_CAUSE_RESOLVE. */
int conn_connect(struct conn *c, const char *host, unsigned port, struct perr *e);

/* Start a new step: deadline = now + timeout. */
void conn_arm(struct conn *c);

/* Wait until the fd is ready for (want == CONN_WANT_READ ? reading :
 * writing) or the deadline passes (PERR_TEMP "timed out ... after N s").
 * Used by the ops' callers and by tls.c during the handshake. */
int conn_wait(struct conn *c, int want, struct perr *e);

/* Read one line ending in LF (CRLF or LF accepted) into line (cap bytes),
 * without the line ending, NUL-terminated; *len gets its length.
 * A line longer than cap-1 bytes: PERR_PROTOCOL.  End of stream before a
 * full line: PERR_TEMP "connection closed by server".  Deadline: the one
 * armed by conn_arm. */
int conn_read_line(struct conn *c, char *line, size_t cap, size_t *len, struct perr *e);

/* True when buffered, unread input exists (a server that speaks before
 * it is asked, e.g. after STARTTLS). */
int conn_has_buffered_input(const struct conn *c);

/* True when a reply line can be read without waiting for the peer: a
 * whole line is buffered, or the socket has bytes now. */
int conn_readable_now(struct conn *c);

/* Append bytes to the write buffer; when full it is flushed first. */
int conn_write(struct conn *c, const void *buf, size_t n, struct perr *e);

/* printf into the write buffer (a command line; caller adds "\r\n"). */
int conn_printf(struct conn *c, struct perr *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Send everything buffered, in as few writes as the buffer allows. */
int conn_flush(struct conn *c, struct perr *e);

/* Close the layer and the socket; safe to call twice. */
void conn_close(struct conn *c);

/* The plain TCP ops (exported for tls.c, which wraps the same fd). */
extern const struct conn_ops conn_plain_ops;

#endif
