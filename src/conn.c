/* conn.c — one network connection: non-blocking connect over every address
 * getaddrinfo returns, the plain TCP ops, the bounded read buffer, the
 * write buffer, and the one poll loop that every wait goes through.
 *
 * Every wait is bounded by c->deadline (absolute, mono_ms()), which the
 * caller moves forward with conn_arm at the start of each protocol step.
 * Errors before the TCP connection exists carry a PERR_CAUSE_CONNECT_* or
 * PERR_CAUSE_RESOLVE cause; every later one PERR_CAUSE_LOST (a deadline
 * passed: timed_out set) or PERR_CAUSE_PROTOCOL.  Texts after connect do not name the peer:
 * the protocol layer prefixes "host:port" and says what it was doing.
 */
#include "autoconf.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include "conn.h"
#include "log.h"
#include "util.h"

/* Longest command line conn_printf formats (MAIL FROM with every
 * parameter is under 700 bytes). */
#define CONN_PRINTF_MAX 4096

static int at_cause(struct perr *e, enum perr_cause cause, int rc)
{
	perr_because(e, cause);
	return rc;
}

static int timeout_s(const struct conn *c)
{
	return (c->timeout_ms + 999) / 1000;
}

void conn_init(struct conn *c, int timeout_s_)
{
	memset(c, 0, offsetof(struct conn, rbuf));
	c->fd = -1;
	c->ops = &conn_plain_ops;
	c->layer = NULL;
	c->timeout_ms = (timeout_s_ > 0 ? timeout_s_ : 30) * 1000;
	c->rpos = c->rlen = 0;
	c->wbuf = NULL;
	c->wlen = 0;
	c->wipe_wbuf = 0;
	conn_arm(c);
}

void conn_arm(struct conn *c)
{
	c->deadline = mono_ms() + c->timeout_ms;
}

/* Poll one fd for events until the deadline.  Returns 1 when ready, 0 on
 * timeout, -1 on a poll failure (errno set). */
static int poll_until(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - mono_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0) {
			if (pfd.revents & POLLNVAL) {
				errno = EBADF;
				return -1;
			}
			return 1; /* readable, writable, HUP or ERR: the op will tell */
		}
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* Bytes sent but not yet acknowledged by the peer, or -1 if unknown. */
static int unsent_bytes(int fd)
{
#ifdef SIOCOUTQ
	int n;

	if (ioctl(fd, SIOCOUTQ, &n) == 0)
		return n;
#endif
	(void)fd;
	return -1;
}

/* Acknowledge what arrives at once.  A server that writes a reply right
 * behind other data (Postfix: its 250 to EHLO behind the TLS 1.3 session
 * tickets) and has Nagle on holds that reply until the data before it is
 * acknowledged; our delayed ACK would make that ~40 ms.  Linux drops
 * quick-ACK mode by itself, so it is set again before each wait. */
static void quick_ack(int fd)
{
#ifdef TCP_QUICKACK
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
	(void)fd;
#endif
}

int conn_wait(struct conn *c, int want, struct perr *e)
{
	short ev = want == CONN_WANT_WRITE ? POLLOUT : POLLIN;
	int64_t slice = c->timeout_ms / 8 < 50 ? 50 : c->timeout_ms / 8 > 1000 ? 1000 : c->timeout_ms / 8;
	/* Progress restarts the wait the caller asked for, never a longer
	 * one: a short grace (QUIT's 221) stays short. */
	int64_t budget = c->deadline - mono_ms();
	int last = unsent_bytes(c->fd), rc, q;

	if (want != CONN_WANT_WRITE)
		quick_ack(c->fd);
	for (;;) {
		int64_t now = mono_ms();

		if (now >= c->deadline) {
			rc = 0;
			break;
		}
		/* While our own bytes are still leaving (a large send buffer
		 * drains long after the last write on a slow link), each bit
		 * of progress starts the step again: slow is not stalled. */
		rc = poll_until(c->fd, ev, last > 0 && now + slice < c->deadline ? now + slice
										  : c->deadline);
		if (rc != 0)
			break;
		if (last > 0) {
			q = unsent_bytes(c->fd);
			if (q >= 0 && q < last && mono_ms() + budget > c->deadline)
				c->deadline = mono_ms() + budget;
			last = q;
		}
	}
	if (rc > 0)
		return 0;
	if (rc == 0) {
		perr_set(e, PERR_TEMP, "timed out after %d s", timeout_s(c));
		if (e)
			e->timed_out = true;
		return at_cause(e, PERR_CAUSE_LOST, -1);
	}
	return at_cause(e, PERR_CAUSE_LOST,
			perr_set(e, PERR_TEMP, "poll failed: %s", strerror(errno)));
}

/* ---- connect ------------------------------------------------------------ */

/* Happy Eyeballs (RFC 8305, simplified): the addresses are tried with the
 * two families interleaved; an attempt that has not finished after
 * EYEBALLS_DELAY_MS gets company from the next one (a failed attempt starts
 * the next at once); the first to connect wins and the rest are closed.
 * One deadline bounds the whole. */
#define EYEBALLS_DELAY_MS 250
/* Addresses tried per name at most (and attempts in flight at once). */
#define CONN_MAX_ADDRS 32

struct eyeballs {
	struct conn *c;
	const char *host;
	unsigned port;
	const struct addrinfo *order[CONN_MAX_ADDRS];
	size_t n, next;                   /* addresses; the next one to start */
	struct pollfd pfd[CONN_MAX_ADDRS]; /* attempts in flight */
	size_t idx[CONN_MAX_ADDRS];       /* order index of each pfd */
	size_t nlive;
	int64_t next_start;               /* when the next attempt may start */
	int worst;                        /* the most telling errno so far */
};

/* How bad a connect failure is as the one to report: a time-out tells the
 * user most (a blocked port), an unreachable IPv6 route the least. */
static int err_rank(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return 4;
	case ECONNREFUSED:
		return 3;
	case ENETUNREACH:
	case EHOSTUNREACH:
	case EADDRNOTAVAIL:
	case EAFNOSUPPORT:
		return 1;
	default:
		return 2;
	}
}

static void numeric_addr(const struct addrinfo *ai, char *buf, size_t cap)
{
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, cap, NULL, 0, NI_NUMERICHOST) != 0)
		str_copy(buf, "?", cap);
}

/* Put the addresses in trying order: the family of the first one (the
 * resolver's preference, IPv6 where it is usable), then the other family,
 * alternating; each family keeps the resolver's order. */
static void order_addrs(struct eyeballs *eb, const struct addrinfo *res)
{
	const struct addrinfo *first[CONN_MAX_ADDRS], *other[CONN_MAX_ADDRS], *ai;
	size_t nf = 0, no = 0, i = 0, j = 0;

	for (ai = res; ai && nf + no < CONN_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_family == res->ai_family)
			first[nf++] = ai;
		else
			other[no++] = ai;
	}
	eb->n = 0;
	while (i < nf || j < no) {
		if (i < nf)
			eb->order[eb->n++] = first[i++];
		if (j < no)
			eb->order[eb->n++] = other[j++];
	}
}

/* An attempt failed with err: log it and keep the most telling error. */
static void attempt_failed(struct eyeballs *eb, size_t k, int err)
{
	char num[sizeof eb->c->addr];

	numeric_addr(eb->order[k], num, sizeof num);
	log_event("%s port %u: %s", num, eb->port, strerror(err));
	if (!eb->worst || err_rank(err) > err_rank(eb->worst))
		eb->worst = err;
	eb->next_start = mono_ms(); /* a failure starts the next at once */
}

/* The connection is up on fd (address k): close every other attempt. */
static int attempt_won(struct eyeballs *eb, size_t k, int fd)
{
	size_t i;

	for (i = 0; i < eb->nlive; i++)
		if (eb->pfd[i].fd != fd)
			close(eb->pfd[i].fd);
	eb->nlive = 0;
	eb->c->fd = fd;
	numeric_addr(eb->order[k], eb->c->addr, sizeof eb->c->addr);
	log_event("connected to %s port %u", eb->c->addr, eb->port);
	return 1;
}

/* Start a non-blocking connect to the next address.  Returns 1 when it
 * connected at once, 0 otherwise (in flight, or failed and recorded). */
static int start_attempt(struct eyeballs *eb)
{
	size_t k = eb->next++;
	const struct addrinfo *ai = eb->order[k];
	char num[sizeof eb->c->addr];
	int fd, one = 1;

	numeric_addr(ai, num, sizeof num);
	log_event("connecting to %s (%s) port %u", eb->host, num, eb->port);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		attempt_failed(eb, k, errno);
		return 0;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return attempt_won(eb, k, fd);
	if (errno != EINPROGRESS && errno != EINTR) {
		attempt_failed(eb, k, errno);
		close(fd);
		return 0;
	}
	eb->pfd[eb->nlive] = (struct pollfd){ .fd = fd, .events = POLLOUT };
	eb->idx[eb->nlive++] = k;
	eb->next_start = mono_ms() + EYEBALLS_DELAY_MS;
	return 0;
}

/* Drop in-flight attempt i (closing its socket). */
static void drop_attempt(struct eyeballs *eb, size_t i)
{
	close(eb->pfd[i].fd);
	eb->nlive--;
	eb->pfd[i] = eb->pfd[eb->nlive];
	eb->idx[i] = eb->idx[eb->nlive];
}

/* Look at the attempts poll reported.  Returns 1 when one connected. */
static int reap_attempts(struct eyeballs *eb)
{
	size_t i = 0;

	while (i < eb->nlive) {
		int soerr = 0;
		socklen_t len = sizeof soerr;

		if (!eb->pfd[i].revents) {
			i++;
			continue;
		}
		if (getsockopt(eb->pfd[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (!soerr && (eb->pfd[i].revents & POLLOUT))
			return attempt_won(eb, eb->idx[i], eb->pfd[i].fd);
		attempt_failed(eb, eb->idx[i], soerr ? soerr : ECONNREFUSED);
		drop_attempt(eb, i);
	}
	return 0;
}

/* Run the attempts until one connects (1), every address failed or the
 * deadline passed (0; eb->worst says why), or poll failed (-1). */
static int race(struct eyeballs *eb)
{
	for (;;) {
		int64_t now = mono_ms(), until = eb->c->deadline;
		int rc;

		if (now >= eb->c->deadline) {
			for (size_t i = 0; i < eb->nlive; i++)
				attempt_failed(eb, eb->idx[i], ETIMEDOUT);
			while (eb->nlive > 0)
				drop_attempt(eb, eb->nlive - 1);
			return 0;
		}
		if (eb->next < eb->n && (eb->nlive == 0 || now >= eb->next_start)) {
			if (start_attempt(eb))
				return 1;
			continue;
		}
		if (eb->nlive == 0)
			return 0;
		if (eb->next < eb->n && eb->next_start < until)
			until = eb->next_start;
		rc = poll(eb->pfd, eb->nlive, (int)(until - now > 60000 ? 60000 : until - now));
		if (rc < 0 && errno != EINTR) {
			int err = errno;

			while (eb->nlive > 0)
				drop_attempt(eb, eb->nlive - 1);
			errno = err;
			return -1;
		}
		if (rc > 0 && reap_attempts(eb))
			return 1;
	}
}

static int connect_error(struct conn *c, int err, struct perr *e)
{
	switch (err) {
	case ETIMEDOUT:
		perr_set(e, PERR_TEMP, "%s: connection timed out after %d s", c->peer, timeout_s(c));
		if (e)
			e->timed_out = true;
		return at_cause(e, PERR_CAUSE_CONNECT_TIMEOUT, -1);
	case ECONNREFUSED:
		perr_set(e, PERR_TEMP, "%s: connection refused", c->peer);
		return at_cause(e, PERR_CAUSE_CONNECT_REFUSED, -1);
	case ENETUNREACH:
	case EHOSTUNREACH:
		perr_set(e, PERR_TEMP, "%s: network unreachable", c->peer);
		break;
	default:
		perr_set(e, PERR_TEMP, "%s: cannot connect: %s", c->peer, strerror(err));
		break;
	}
	return at_cause(e, PERR_CAUSE_CONNECT_UNREACHABLE, -1);
}

/* Bound glibc's resolver so that one lookup fits in secs (RFC 5321
 * 4.5.3.2: every wait is bounded): each query waits at most `t` seconds
 * and is sent once per name server and per name tried (the name itself,
 * then each search domain), so t = secs / (servers x names), at least 1.
 * The lookup itself stays synchronous: no thread, no extra cost when the
 * answer is local (/etc/hosts) or quick. */
static int bound_resolver(int secs)
{
	int servers, names = 1, t;

	if (!(_res.options & RES_INIT) && res_init() != 0)
		return secs;
	servers = _res.nscount > 0 ? _res.nscount : 1;
	for (int i = 0; (_res.options & RES_DNSRCH) && i < MAXDNSRCH && _res.dnsrch[i]; i++)
		names++;
	t = secs / (servers * names);
	if (t < 1)
		t = 1;
	if (_res.retrans > t)
		_res.retrans = t;
	_res.retry = 1;
	return t;
}

/* getaddrinfo within the deadline already armed.  A name server that does
 * not answer shows as EAI_AGAIN after the bounded wait: "timed out". */
static int resolve(struct conn *c, const char *host, const char *port, struct addrinfo **res,
		   struct perr *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	int64_t t0 = mono_ms(), left = c->deadline - t0;
	int per_try = bound_resolver(left > 1000 ? (int)(left / 1000) : 1);
	int rc = getaddrinfo(host, port, &hints, res);

	if (rc == 0)
		return 0;
	if (rc == EAI_AGAIN && mono_ms() - t0 >= (int64_t)per_try * 1000 - 50) {
		perr_set(e, PERR_TEMP, "resolving %s timed out after %d s", host, timeout_s(c));
		if (e)
			e->timed_out = true;
	} else {
		perr_set(e, PERR_TEMP, "cannot resolve %s: %s", host,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	}
	return at_cause(e, PERR_CAUSE_RESOLVE, -1);
}

int conn_connect(struct conn *c, const char *host, unsigned port, struct perr *e)
{
	struct addrinfo *res;
	struct eyeballs eb = { .c = c, .host = host, .port = port };
	char portstr[16];
	int rc;

	snprintf(portstr, sizeof portstr, "%u", port);
	snprintf(c->peer, sizeof c->peer, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	conn_arm(c); /* one timeout for resolving and all the attempts together */
	if (resolve(c, host, portstr, &res, e) < 0)
		return -1;
	order_addrs(&eb, res);
	rc = race(&eb);
	freeaddrinfo(res);
	if (rc > 0)
		return 0;
	if (rc < 0)
		return at_cause(e, PERR_CAUSE_CONNECT_UNREACHABLE,
				perr_set(e, PERR_TEMP, "%s: poll failed: %s", c->peer, strerror(errno)));
	return connect_error(c, eb.worst ? eb.worst : EHOSTUNREACH, e);
}

/* ---- plain ops ---------------------------------------------------------- */

static ssize_t plain_read(struct conn *c, void *buf, size_t n, struct perr *e)
{
	for (;;) {
		ssize_t r = recv(c->fd, buf, n, 0);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return CONN_WANT_READ;
		if (errno == ECONNRESET)
			perr_set(e, PERR_TEMP, "connection reset by server");
		else
			perr_set(e, PERR_TEMP, "read failed: %s", strerror(errno));
		return CONN_ERROR;
	}
}

static ssize_t plain_write(struct conn *c, const void *buf, size_t n, struct perr *e)
{
	for (;;) {
		ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return CONN_WANT_WRITE;
		if (errno == EPIPE || errno == ECONNRESET)
			perr_set(e, PERR_TEMP, "connection closed by server");
		else
			perr_set(e, PERR_TEMP, "write failed: %s", strerror(errno));
		return CONN_ERROR;
	}
}

static void plain_close(struct conn *c)
{
	(void)c;
}

const struct conn_ops conn_plain_ops = {
	.read = plain_read,
	.write = plain_write,
	.close = plain_close,
};

/* ---- reading ------------------------------------------------------------ */

/* Read more bytes into rbuf (compacting it first).  0 on progress, -1 on
 * error, end of stream or timeout. */
static int fill(struct conn *c, struct perr *e)
{
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	for (;;) {
		ssize_t r = c->ops->read(c, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, e);

		if (r > 0) {
			c->rlen += (size_t)r;
			return 0;
		}
		if (r == 0)
			return at_cause(e, PERR_CAUSE_LOST,
					perr_set(e, PERR_TEMP, "connection closed by server"));
		if (r == CONN_WANT_READ || r == CONN_WANT_WRITE) {
			if (conn_wait(c, (int)r, e) < 0)
				return -1;
			continue;
		}
		/* The TLS layer's own cause (a client certificate wanted) stays. */
		return at_cause(e, e && e->cause == PERR_CAUSE_CLIENT_CERT ? PERR_CAUSE_CLIENT_CERT
				   : PERR_CAUSE_LOST, -1);
	}
}

int conn_read_line(struct conn *c, char *line, size_t cap, size_t *len, struct perr *e)
{
	/* The longest line that fits: cap-1 bytes, a CR and the LF must all
	 * sit in rbuf at once. */
	size_t max = cap - 1 < sizeof c->rbuf - 2 ? cap - 1 : sizeof c->rbuf - 2;

	if (c->fd < 0)
		return at_cause(e, PERR_CAUSE_LOST, perr_set(e, PERR_TEMP, "not connected"));
	for (;;) {
		unsigned char *start = c->rbuf + c->rpos;
		size_t avail = c->rlen - c->rpos;
		unsigned char *nl = memchr(start, '\n', avail);

		if (nl) {
			size_t n = (size_t)(nl - start);

			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (n > max)
				break;
			memcpy(line, start, n);
			line[n] = '\0';
			*len = n;
			c->rpos += (size_t)(nl - start) + 1;
			return 0;
		}
		if (avail > max + 1) /* max bytes plus a CR, and still no LF */
			break;
		if (fill(c, e) < 0)
			return -1;
	}
	return at_cause(e, PERR_CAUSE_PROTOCOL,
			perr_set(e, PERR_PROTOCOL, "reply line longer than %zu bytes", max));
}

int conn_has_buffered_input(const struct conn *c)
{
	return c->rlen > c->rpos;
}

int conn_readable_now(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (c->fd < 0)
		return 0;
	if (memchr(c->rbuf + c->rpos, '\n', c->rlen - c->rpos))
		return 1;
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

/* ---- writing ------------------------------------------------------------ */

int conn_flush(struct conn *c, struct perr *e)
{
	size_t off = 0;

	if (c->fd < 0)
		return at_cause(e, PERR_CAUSE_LOST, perr_set(e, PERR_TEMP, "not connected"));
	while (off < c->wlen) {
		/* A TLS write that would block is retried with the same
		 * pointer and length, as OpenSSL requires. */
		ssize_t r = c->ops->write(c, c->wbuf + off, c->wlen - off, e);

		if (r > 0) {
			off += (size_t)r;
		} else if (r == CONN_WANT_READ || r == CONN_WANT_WRITE) {
			if (conn_wait(c, (int)r, e) < 0)
				return -1;
		} else {
			if (r == 0)
				perr_set(e, PERR_TEMP, "connection closed by server");
			return at_cause(e, PERR_CAUSE_LOST, -1);
		}
	}
	if (c->wipe_wbuf) { /* the whole buffer: the secret may sit past wlen */
		wipe(c->wbuf, CONN_WBUF_SIZE);
		c->wipe_wbuf = 0;
	}
	c->wlen = 0;
	return 0;
}

int conn_write(struct conn *c, const void *buf, size_t n, struct perr *e)
{
	const unsigned char *p = buf;

	if (!c->wbuf)
		c->wbuf = xmalloc(CONN_WBUF_SIZE);
	while (n > 0) {
		size_t room = CONN_WBUF_SIZE - c->wlen;
		size_t k = n < room ? n : room;

		if (room == 0) {
			if (conn_flush(c, e) < 0)
				return -1;
			continue;
		}
		memcpy(c->wbuf + c->wlen, p, k);
		c->wlen += k;
		p += k;
		n -= k;
	}
	return 0;
}

int conn_printf(struct conn *c, struct perr *e, const char *fmt, ...)
{
	char buf[CONN_PRINTF_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return perr_set(e, PERR_SOFTWARE, "command longer than %d bytes",
				CONN_PRINTF_MAX - 1);
	return conn_write(c, buf, (size_t)n, e);
}

void conn_close(struct conn *c)
{
	if (c->ops && c->ops->close)
		c->ops->close(c);
	c->ops = &conn_plain_ops;
	c->layer = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->wbuf && c->wipe_wbuf)
		wipe(c->wbuf, CONN_WBUF_SIZE);
	c->wipe_wbuf = 0;
	free(c->wbuf);
	c->wbuf = NULL;
	c->wlen = 0;
	c->rpos = c->rlen = 0;
}
