/* test_smtp.c — the SMTP engine (smtp_open, smtp_send_batch) against a
 * scripted server, checking the exact bytes postern writes, flight by
 * flight (SPEC section 5): the pipelined batch, and the session and AUTH
 * on their own (greeting and EHLO replies read in pieces, STARTTLS not
 * offered or refused, a 421 greeting, AUTH PLAIN, LOGIN, XOAUTH2's 334
 * challenge, 535, SCRAM chosen by auth = auto, the observer --probe uses).
 *
 * The fake server is a process of its own (this program run with --serve)
 * listening on 127.0.0.1, port 0.  Its script is a list of flights: the
 * exact bytes the client must send, and the reply bytes to send back once
 * they are all in.  After a whole flight it
 * listens QUIET_MS more, so a client that sends something too early (a
 * message byte before the replies that allow it) is caught with the bytes
 * it sent.  At the first difference the server stops replying and closes,
 * so the client is never left waiting.  What it received per flight goes
 * back to the test through a pipe; the test compares it with the script
 * and prints both, CR and LF escaped, at the first differing byte.
 *
 * Every wait is bounded by a poll deadline; no sleep decides an outcome
 * (QUIET_MS only gives a wrong client the chance to show itself).  The
 * server process is killed by its PID if it outlives the test.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "smtp.h"
#include "util.h"

/* The server's waits, ms.  FLIGHT_MS bounds the wait for the rest of a
 * flight (reached only when the client sends less than the script says);
 * QUIET_MS is how long it listens for bytes sent too early. */
#define ACCEPT_MS 5000
#define FLIGHT_MS 2000
#define QUIET_MS 50
#define EOF_MS 3000
/* The test's wait for the server's report and exit. */
#define REPORT_MS 10000
/* Bytes recorded per flight beyond what the script expects. */
#define EXTRA_MAX 65536
#define MAX_STEPS 16
/* In a reply, '\v' marks a cut: the bytes before it are sent, then after
 * SPLIT_MS the rest, so the client reads the reply in pieces. */
#define SPLIT_MS 30
#define GREETING "220 fake.test ESMTP\r\n"

/* AUTH PLAIN of user "joe", password "secret": base64 of "\0joe\0secret". */
#define USER "joe"
#define PASSWORD "secret"
#define PLAIN_B64 "AGpvZQBzZWNyZXQ="
#define AUTH_LINE "AUTH PLAIN " PLAIN_B64 "\r\n"

/* A message with a line that DATA must dot-stuff and BDAT must not. */
#define BODY "Subject: t\r\n\r\nhello\r\n.dot\r\n"
#define BODY_STUFFED "Subject: t\r\n\r\nhello\r\n..dot\r\n.\r\n"

#define CAP_PIPE 1u
#define CAP_CHUNK 2u

/* The fake server's replies. */
#define AUTH_OK "235 2.7.0 ok\r\n"
#define AUTH_FAILED "535 5.7.8 authentication failed\r\n"
#define MAIL_OK "250 2.1.0 ok\r\n"
#define RCPT_OK "250 2.1.5 ok\r\n"
#define GO_AHEAD "354 go ahead\r\n"
#define RSET_OK "250 2.0.0 ok\r\n"
#define BYE "221 2.0.0 bye\r\n"

/* ---- strings built for one test ----------------------------------------- */

static char arena[1 << 16];
static size_t arena_used;

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static const char *fmt(const char *f, ...)
{
	char *p = arena + arena_used;
	size_t cap = sizeof arena - arena_used;
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(p, cap, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < cap);
	arena_used += (size_t)n + 1;
	return p;
}

static const char *ehlo_reply(unsigned caps)
{
	return fmt("250-fake.test\r\n%s%s250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n"
		   "250 ENHANCEDSTATUSCODES\r\n",
		   caps & CAP_PIPE ? "250-PIPELINING\r\n" : "",
		   caps & CAP_CHUNK ? "250-CHUNKING\r\n" : "");
}

static const char *mail_line(const char *body)
{
	return fmt("MAIL FROM:<a@x> SIZE=%zu\r\n", strlen(body));
}

static const char *bdat_last(const char *body)
{
	return fmt("BDAT %zu LAST\r\n%s", strlen(body), body);
}

/* ---- the scripted server ------------------------------------------------ */

/* A step's flags. */
#define S_PREFIX 1u /* reply as soon as `expect` is in; what follows stays unread */
#define S_CLOSE 2u  /* close right after the reply */

struct step {
	const char *expect; /* the bytes of the client's flight */
	const char *reply;  /* the server's answer to it */
	unsigned flags;
};

/* After the last step. */
enum tail {
	TAIL_EOF,    /* the client closes and sends nothing more */
	TAIL_ANSWER, /* answer RSET and QUIT lines until the client closes;
		      * what it sent must be one of `allowed` */
	TAIL_NONE,   /* the last step closed the connection */
};

struct script {
	struct step steps[MAX_STEPS];
	size_t n;
	enum tail tail;
	const char *allowed[4];
	int small_rcvbuf; /* a tiny receive buffer: a large body blocks the client */
	const char *greeting; /* NULL: GREETING */
};

/* What the server saw: one record per flight it got to, then the tail. */
enum seen { SEEN_OK, SEEN_EOF, SEEN_TIMEOUT, SEEN_ERROR, SEEN_NOCONN };

static const char *const seen_names[] = {
	[SEEN_OK] = "complete",
	[SEEN_EOF] = "client closed the connection",
	[SEEN_TIMEOUT] = "timed out waiting for more bytes",
	[SEEN_ERROR] = "socket error",
	[SEEN_NOCONN] = "no connection",
};

struct record {
	enum seen how;
	size_t len;
	char *bytes;
};

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - mono_ms();

	return left > 0 ? (int)left : 0;
}

/* One read, waiting until deadline: bytes read, 0 at EOF, -1 at the
 * deadline (errno ETIMEDOUT) or on an error. */
static ssize_t read_until(int fd, char *buf, size_t cap, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, ms_left(deadline));
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static enum seen seen_of(ssize_t r)
{
	if (r == 0)
		return SEEN_EOF;
	return errno == ETIMEDOUT ? SEEN_TIMEOUT : SEEN_ERROR;
}

/* An empty record with room for cap bytes. */
static void record_start(struct record *rec, size_t cap)
{
	rec->bytes = malloc(cap);
	rec->len = 0;
	rec->how = SEEN_OK;
	if (!rec->bytes)
		_exit(3);
}

/* Send a reply, cut where it says '\v' (SPLIT_MS apart). */
static void send_reply(int fd, const char *reply)
{
	for (;;) {
		size_t n = strcspn(reply, "\v");

		send_all(fd, reply, n);
		if (!reply[n])
			return;
		poll(NULL, 0, SPLIT_MS);
		reply += n + 1;
	}
}

/* Read one flight into rec.  Returns 1 when it is exactly the script's. */
static int child_flight(int fd, const struct step *st, struct record *rec)
{
	size_t want = strlen(st->expect), cap = want + EXTRA_MAX;
	int64_t deadline = mono_ms() + FLIGHT_MS;
	ssize_t r;

	record_start(rec, cap);
	while (rec->len < want && memcmp(rec->bytes, st->expect, rec->len) == 0) {
		r = read_until(fd, rec->bytes + rec->len, cap - rec->len, deadline);
		if (r <= 0) {
			rec->how = seen_of(r);
			return 0;
		}
		rec->len += (size_t)r;
	}
	if (st->flags & S_PREFIX) {
		if (rec->len > want)
			rec->len = want;
		return memcmp(rec->bytes, st->expect, want) == 0;
	}
	/* Whole, or already different: anything more that comes at once is
	 * part of the evidence. */
	while (rec->len < cap) {
		r = read_until(fd, rec->bytes + rec->len, cap - rec->len, mono_ms() + QUIET_MS);
		if (r <= 0) {
			if (r == 0)
				rec->how = SEEN_EOF;
			break;
		}
		rec->len += (size_t)r;
	}
	return rec->len == want && memcmp(rec->bytes, st->expect, want) == 0;
}

/* Answer each RSET and QUIT line of the tail. */
static void answer_lines(int fd, const char *buf, size_t from, size_t to)
{
	size_t start = from;

	while (start > 0 && buf[start - 1] != '\n')
		start--;
	for (size_t i = from; i < to; i++) {
		if (buf[i] != '\n')
			continue;
		if (i - start == 5 && memcmp(buf + start, "RSET\r", 5) == 0)
			send_all(fd, "250 2.0.0 ok\r\n", 14);
		else if (i - start == 5 && memcmp(buf + start, "QUIT\r", 5) == 0)
			send_all(fd, "221 2.0.0 bye\r\n", 15);
		start = i + 1;
	}
}

static void child_tail(int fd, enum tail tail, struct record *rec)
{
	int64_t deadline = mono_ms() + EOF_MS;
	ssize_t r;

	record_start(rec, EXTRA_MAX);
	if (tail == TAIL_NONE)
		return;
	while (rec->len < EXTRA_MAX) {
		r = read_until(fd, rec->bytes + rec->len, EXTRA_MAX - rec->len, deadline);
		if (r <= 0) {
			rec->how = r == 0 ? SEEN_OK : seen_of(r);
			return;
		}
		if (tail == TAIL_ANSWER)
			answer_lines(fd, rec->bytes, rec->len, rec->len + (size_t)r);
		rec->len += (size_t)r;
	}
}

static int put(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static void put_record(int out, const struct record *rec)
{
	uint32_t how = (uint32_t)rec->how, len = (uint32_t)rec->len;

	if (put(out, &how, sizeof how) < 0 || put(out, &len, sizeof len) < 0 ||
	    put(out, rec->bytes, rec->len) < 0)
		_exit(4);
}

/* The server: accept one connection, greet, run the script, close, then
 * report every record on `out`.  Never returns. */
static void child_main(int lfd, int out, const struct script *sc)
{
	struct record recs[MAX_STEPS + 1];
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	size_t done = 0;
	uint32_t count;
	int fd = -1, ok = 1;

	if (poll(&pfd, 1, ACCEPT_MS) == 1)
		fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0) {
		recs[0] = (struct record){ SEEN_NOCONN, 0, NULL };
		count = 1;
		if (put(out, &count, sizeof count) < 0)
			_exit(4);
		put_record(out, &recs[0]);
		_exit(0);
	}
	send_reply(fd, sc->greeting);
	for (; done < sc->n && ok; done++) {
		const struct step *st = &sc->steps[done];

		ok = child_flight(fd, st, &recs[done]);
		if (ok)
			send_reply(fd, st->reply);
		if (ok && (st->flags & S_CLOSE)) {
			close(fd);
			fd = -1;
		}
	}
	if (ok)
		child_tail(fd, fd < 0 ? TAIL_NONE : sc->tail, &recs[done++]);
	if (fd >= 0)
		close(fd);
	count = (uint32_t)done;
	if (put(out, &count, sizeof count) < 0)
		_exit(4);
	for (size_t i = 0; i < done; i++) {
		put_record(out, &recs[i]);
		free(recs[i].bytes);
	}
	_exit(0);
}

/* The script crosses to the server process through a pipe: counts as
 * 32-bit words, every string with its length and a NUL. */
static char script_wire[1 << 18];
static size_t script_len;

static void wire_u32(uint32_t v)
{
	assert_true(script_len + sizeof v <= sizeof script_wire);
	memcpy(script_wire + script_len, &v, sizeof v);
	script_len += sizeof v;
}

static void wire_str(const char *str)
{
	size_t n = strlen(str);

	wire_u32((uint32_t)n);
	assert_true(script_len + n + 1 <= sizeof script_wire);
	memcpy(script_wire + script_len, str, n + 1);
	script_len += n + 1;
}

static void script_encode(const struct script *sc)
{
	uint32_t nallowed = 0;

	while (nallowed < 4 && sc->allowed[nallowed])
		nallowed++;
	script_len = 0;
	wire_u32((uint32_t)sc->n);
	wire_u32((uint32_t)sc->tail);
	wire_u32(nallowed);
	wire_str(sc->greeting ? sc->greeting : GREETING);
	for (size_t i = 0; i < sc->n; i++) {
		wire_u32(sc->steps[i].flags);
		wire_str(sc->steps[i].expect);
		wire_str(sc->steps[i].reply);
	}
	for (uint32_t i = 0; i < nallowed; i++)
		wire_str(sc->allowed[i]);
}

static uint32_t take_u32(size_t *o)
{
	uint32_t v = 0;

	if (*o + sizeof v > script_len)
		_exit(6);
	memcpy(&v, script_wire + *o, sizeof v);
	*o += sizeof v;
	return v;
}

static const char *take_str(size_t *o)
{
	uint32_t n = take_u32(o);
	const char *str = script_wire + *o;

	if (*o + n + 1 > script_len || str[n] != '\0')
		_exit(6);
	*o += n + 1;
	return str;
}

/* The server process: `test_smtp --serve LISTEN_FD SCRIPT_FD REPORT_FD`.
 * A fresh program rather than a forked copy of the test: after the first
 * connection the test has resolver threads (conn.c uses getaddrinfo_a),
 * and a forked copy of a threaded process may use only async-signal-safe
 * calls (its libc state also makes valgrind complain at its exit). */
static int serve(char **argv)
{
	static struct script sc;
	int lfd = (int)strtol(argv[2], NULL, 10), in = (int)strtol(argv[3], NULL, 10);
	int out = (int)strtol(argv[4], NULL, 10);
	uint32_t nallowed;
	size_t o = 0;
	ssize_t r;

	while (script_len < sizeof script_wire &&
	       (r = read(in, script_wire + script_len, sizeof script_wire - script_len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			_exit(6);
		script_len += (size_t)r;
	}
	close(in);
	sc.n = take_u32(&o);
	sc.tail = (enum tail)take_u32(&o);
	nallowed = take_u32(&o);
	if (sc.n > MAX_STEPS || nallowed > 4)
		_exit(6);
	sc.greeting = take_str(&o);
	for (size_t i = 0; i < sc.n; i++) {
		sc.steps[i].flags = take_u32(&o);
		sc.steps[i].expect = take_str(&o);
		sc.steps[i].reply = take_str(&o);
	}
	for (uint32_t i = 0; i < nallowed; i++)
		sc.allowed[i] = take_str(&o);
	child_main(lfd, out, &sc);
	return 0;
}

/* ---- the test's side of the server -------------------------------------- */

static pid_t child = -1;
static int report_fd = -1;
static const char *self; /* this program, for the server process */

static unsigned server_start(const struct script *sc)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	int lfd, one = 1, p[2], q[2];

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sc->small_rcvbuf) {
		int sz = 4096; /* the accepted socket inherits it */

		setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	}
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	script_encode(sc);
	fflush(NULL);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char a[3][16];

		close(p[0]);
		close(q[1]);
		snprintf(a[0], sizeof a[0], "%d", lfd);
		snprintf(a[1], sizeof a[1], "%d", q[0]);
		snprintf(a[2], sizeof a[2], "%d", p[1]);
		execl(self, self, "--serve", a[0], a[1], a[2], (char *)NULL);
		_exit(5);
	}
	close(p[1]);
	close(q[0]);
	close(lfd);
	report_fd = p[0];
	/* A server that could not start shows as a missing report. */
	put(q[1], script_wire, script_len);
	close(q[1]);
	return ntohs(sa.sin_port);
}

static void reap(void)
{
	int64_t deadline = mono_ms() + REPORT_MS;
	int status;

	if (child <= 0)
		return;
	while (waitpid(child, &status, WNOHANG) == 0) {
		if (mono_ms() > deadline) {
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			break;
		}
		poll(NULL, 0, 10);
	}
	child = -1;
}

/* Read the whole report (the child writes it after closing the SMTP
 * connection).  Returns its length, buf holding it. */
static size_t read_report(char **buf)
{
	size_t len = 0, cap = 1 << 16;
	int64_t deadline = mono_ms() + REPORT_MS;
	ssize_t r;

	*buf = malloc(cap);
	assert_non_null(*buf);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			*buf = realloc(*buf, cap);
			assert_non_null(*buf);
		}
		r = read_until(report_fd, *buf + len, cap - len, deadline);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(report_fd);
	report_fd = -1;
	return len;
}

/* Bytes made readable: CR and LF shown as \r \n (a new line after each
 * \n), other controls as \xHH; long texts cut in the middle. */
static void show(const char *label, const char *p, size_t n)
{
	char line[200];
	size_t o = 0;

	print_message("#   %s (%zu bytes):\n", label, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (n > 2000 && i == 1000) {
			print_message("#     |%.*s ... (%zu bytes) ...\n", (int)o, line, n - 2000);
			o = 0;
			i = n - 1000;
			c = (unsigned char)p[i];
		}
		if (c == '\r')
			o += (size_t)snprintf(line + o, sizeof line - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(line + o, sizeof line - o, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", c);
		else
			line[o++] = (char)c;
		if (c == '\n' || o > 150 || i + 1 == n) {
			print_message("#     |%.*s\n", (int)o, line);
			o = 0;
		}
	}
}

static size_t first_diff(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0;

	while (i < an && i < bn && a[i] == b[i])
		i++;
	return i;
}

static int same(const char *want, const char *got, size_t n)
{
	return strlen(want) == n && memcmp(want, got, n) == 0;
}

/* Compare the server's report with the script; print every difference.
 * Returns the number of differences (0: the client sent exactly the
 * script's bytes, flight by flight). */
static int server_finish(const struct script *sc)
{
	char *buf, *p;
	size_t len = read_report(&buf), i;
	uint32_t count = 0;
	int bad = 0;

	reap();
	p = buf;
	if (len >= sizeof count)
		memcpy(&count, p, sizeof count);
	p += sizeof count;
	for (i = 0; i < count && p + 8 <= buf + len; i++) {
		uint32_t how, n;
		int last = i == sc->n;

		memcpy(&how, p, 4);
		memcpy(&n, p + 4, 4);
		p += 8;
		if (how == SEEN_NOCONN) {
			print_message("# the client never connected\n");
			bad++;
			break;
		}
		if (!last) {
			const struct step *st = &sc->steps[i];

			if (same(st->expect, p, n))
				goto next;
			print_message("# flight %zu differs at byte %zu (%s):\n", i,
				      first_diff(st->expect, strlen(st->expect), p, n),
				      seen_names[how]);
			show("expected", st->expect, strlen(st->expect));
			show("received", p, n);
			bad++;
		} else if (sc->tail == TAIL_ANSWER) {
			int ok = 0;

			for (size_t k = 0; k < 4 && sc->allowed[k]; k++)
				ok |= same(sc->allowed[k], p, n);
			if (!ok || how != SEEN_OK) {
				print_message("# after the last flight (%s), not one of the "
					      "allowed endings:\n",
					      how == SEEN_OK ? "closed" : seen_names[how]);
				show("received", p, n);
				bad++;
			}
		} else if (n || how != SEEN_OK) {
			print_message("# after the last flight the client should only close "
				      "(%s):\n",
				      how == SEEN_OK ? "closed" : seen_names[how]);
			show("received", p, n);
			bad++;
		}
	next:
		p += n;
	}
	if (!bad && i < sc->n + 1) {
		print_message("# the server's report ends after flight %zu of %zu\n", i, sc->n);
		bad++;
	}
	free(buf);
	return bad;
}

/* ---- the client: postern's engine --------------------------------------- */

struct memsrc {
	const char *p;
	size_t len, off;
	size_t gen; /* > 0: generate this many bytes of text lines instead */
};

static long mem_read(void *ctx, unsigned char *buf, size_t cap, struct perr *e)
{
	struct memsrc *m = ctx;
	size_t total = m->gen ? m->gen : m->len, n = total - m->off;

	(void)e;
	if (n > cap)
		n = cap;
	for (size_t i = 0; m->gen && i < n; i++) {
		size_t col = (m->off + i) % 80;

		buf[i] = col == 78 ? '\r' : col == 79 ? '\n' : (unsigned char)('a' + col % 26);
	}
	if (!m->gen)
		memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (long)n;
}

static void mem_rewind(void *ctx)
{
	((struct memsrc *)ctx)->off = 0;
}

/* One message of a run. */
struct msgdef {
	const char *body;
	size_t gen;
	const char *rcpts[3];
};

struct run {
	struct script sc;
	unsigned caps;
	struct msgdef defs[4];
	size_t nmsgs;
	int quit;       /* smtp_send_batch's quit */
	int quit_after; /* then smtp_quit */
	/* smtp_open alone, with these parameters changed: */
	int open_only;
	int starttls;                 /* tls = starttls (else off) */
	enum auth_mech auth;          /* AUTH_PLAIN when AUTH_AUTO */
	int auth_auto;                /* auth = auto */
	int wait_auth;                /* pipeline_auth = 0 */
	const struct smtp_observer *observer;
	/* out */
	int open_rc, batch_rc, wire_bad;
	struct perr open_e, batch_e;
	struct smtp_msg msgs[4];
	struct smtp_envelope envs[4];
	struct memsrc srcs[4];
	char *rcptv[4][3];
};

static struct smtp session;

static void print_outcome(const struct run *r)
{
	print_message("# smtp_open %d (kind %d: %s); smtp_send_batch %d (kind %d: %s)\n",
		      r->open_rc, r->open_e.kind, r->open_e.text, r->batch_rc, r->batch_e.kind,
		      r->batch_e.text);
	for (size_t i = 0; i < r->nmsgs; i++)
		print_message("#   message %zu: done %d settled %d reply \"%s\" kind %d: %s\n", i,
			      r->msgs[i].done, r->msgs[i].settled, r->msgs[i].reply,
			      r->msgs[i].err.kind, r->msgs[i].err.text);
}

/* Run smtp_open and smtp_send_batch against the script; wire_bad counts
 * the differences from the script (already printed). */
static void run(struct run *r)
{
	static struct smtp_params p;

	p = (struct smtp_params){
		.host = "127.0.0.1",
		.tls = TLS_OFF,
		.helo = "client.test",
		.timeout_s = 5,
		.auth = AUTH_PLAIN,
		.user = USER,
		.secret = PASSWORD,
		.secret_len = strlen(PASSWORD),
		.pipeline_auth = 1,
	};
	for (size_t i = 0; i < r->nmsgs; i++) {
		const struct msgdef *d = &r->defs[i];
		size_t n = 0;

		while (n < 3 && d->rcpts[n]) {
			r->rcptv[i][n] = (char *)d->rcpts[n];
			n++;
		}
		r->srcs[i] = (struct memsrc){ .p = d->body, .len = d->body ? strlen(d->body) : 0,
					      .gen = d->gen };
		r->envs[i] = (struct smtp_envelope){
			.sender = "a@x", .rcpts = r->rcptv[i], .nrcpts = n,
			.size = d->gen ? d->gen : strlen(d->body),
		};
		r->msgs[i] = (struct smtp_msg){ .env = &r->envs[i], .src = mem_read,
						.src_ctx = &r->srcs[i], .rewind = mem_rewind };
	}
	p.tls = r->starttls ? TLS_STARTTLS : TLS_OFF;
	p.tls_opts.host = "127.0.0.1";
	p.auth = r->auth_auto ? AUTH_AUTO : r->auth == AUTH_AUTO ? AUTH_PLAIN : r->auth;
	p.pipeline_auth = !r->wait_auth;
	p.observer = r->observer;
	p.port = server_start(&r->sc);
	perr_clear(&r->open_e);
	perr_clear(&r->batch_e);
	r->batch_rc = -2;
	r->open_rc = smtp_open(&session, &p, &r->open_e);
	if (r->open_rc == 0 && !r->open_only)
		r->batch_rc = smtp_send_batch(&session, r->msgs, r->nmsgs, r->quit, &r->batch_e);
	if (r->quit_after)
		smtp_quit(&session);
	smtp_close(&session);
	r->wire_bad = server_finish(&r->sc);
	print_outcome(r);
}

static int teardown(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	if (report_fd >= 0) {
		close(report_fd);
		report_fd = -1;
	}
	smtp_close(&session);
	free(session.conn.wbuf);
	session.conn.wbuf = NULL;
	arena_used = 0;
	return 0;
}

static void step(struct run *r, const char *expect, const char *reply, unsigned flags)
{
	assert_true(r->sc.n < MAX_STEPS);
	r->sc.steps[r->sc.n++] = (struct step){ expect, reply, flags };
}

static struct run *new_run(unsigned caps)
{
	static struct run r;

	memset(&r, 0, sizeof r);
	r.caps = caps;
	step(&r, "EHLO client.test\r\n", ehlo_reply(caps), 0);
	return &r;
}

static void one_msg(struct run *r, const char *rcpt1, const char *rcpt2)
{
	r->defs[0] = (struct msgdef){ .body = BODY, .rcpts = { rcpt1, rcpt2 } };
	r->nmsgs = 1;
}

static void assert_contains(const char *text, const char *part)
{
	if (!strstr(text, part))
		fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_lacks(const char *text, const char *part)
{
	if (strstr(text, part))
		fail_msg("\"%s\" contains \"%s\"", text, part);
}

/* The pieces the cases are made of: a run of one message (BODY to b@y)
 * whose smtp_send_batch ends with QUIT; its envelope as one pipelined
 * flight or as flights of their own; how the session may end; what the
 * run must have come to. */
static struct run *run_to_b(unsigned caps)
{
	struct run *r = new_run(caps);

	one_msg(r, "b@y", NULL);
	r->quit = 1;
	return r;
}

/* AUTH, MAIL and RCPT TO:<b@y> in one flight, then `more` (another RCPT,
 * DATA or nothing). */
static void envelope_flight(struct run *r, const char *more, const char *reply, unsigned flags)
{
	step(r, fmt("%s%sRCPT TO:<b@y>\r\n%s", AUTH_LINE, mail_line(BODY), more), reply, flags);
}

/* Without PIPELINING: AUTH, MAIL and RCPT TO:<b@y>, each accepted. */
static void envelope_steps(struct run *r)
{
	step(r, AUTH_LINE, AUTH_OK, 0);
	step(r, mail_line(BODY), MAIL_OK, 0);
	step(r, "RCPT TO:<b@y>\r\n", RCPT_OK, 0);
}

/* After the last flight the server answers RSET and QUIT: the client may
 * send QUIT, RSET and QUIT, or (may_close) nothing before it closes. */
static void tail_quit(struct run *r, int may_close)
{
	size_t k = 0;

	r->sc.tail = TAIL_ANSWER;
	if (may_close)
		r->sc.allowed[k++] = "";
	r->sc.allowed[k++] = "QUIT\r\n";
	r->sc.allowed[k] = "RSET\r\nQUIT\r\n";
}

/* The client sent exactly the script's bytes; smtp_send_batch returned
 * batch_rc. */
static void assert_batch(const struct run *r, int batch_rc)
{
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->batch_rc, batch_rc);
}

/* Message i was delivered, the server's reply `reply`. */
static void assert_sent(const struct run *r, size_t i, const char *reply)
{
	assert_int_equal(r->msgs[i].done, 1);
	assert_string_equal(r->msgs[i].reply, reply);
}

/* Message i was not delivered: an error of that kind. */
static void assert_unsent(const struct run *r, size_t i, enum perr_kind kind)
{
	assert_int_equal(r->msgs[i].done, 0);
	assert_int_equal(r->msgs[i].err.kind, kind);
}

/* The server's "554 5.7.1 go away" decided: EX_UNAVAILABLE, quoting it. */
static void assert_went_away(const struct run *r)
{
	assert_batch(r, -1);
	assert_unsent(r, 0, PERR_UNAVAILABLE);
	assert_int_equal(r->msgs[0].err.code, 554);
	assert_contains(r->msgs[0].err.text, "554 5.7.1 go away");
}

/* ---- the cases ---------------------------------------------------------- */

/* 1. PIPELINING + CHUNKING: AUTH, MAIL and RCPT in one flight; the chunk
 * (not dot-stuffed) only after their replies, with QUIT. */
static void test_pipelined_bdat(void **state)
{
	struct run *r = run_to_b(CAP_PIPE | CAP_CHUNK);

	(void)state;
	envelope_flight(r, "", AUTH_OK MAIL_OK RCPT_OK, 0);
	step(r, fmt("%sQUIT\r\n", bdat_last(BODY)), "250 2.0.0 queued as 1A\r\n" BYE, 0);
	run(r);
	assert_int_equal(r->open_rc, 0);
	assert_batch(r, 0);
	assert_sent(r, 0, "250 2.0.0 queued as 1A");
}

/* 2. PIPELINING without CHUNKING: AUTH, MAIL, RCPT and DATA in one flight;
 * the dot-stuffed body after 354, with QUIT. */
static void test_pipelined_data(void **state)
{
	struct run *r = run_to_b(CAP_PIPE);

	(void)state;
	envelope_flight(r, "DATA\r\n", AUTH_OK MAIL_OK RCPT_OK GO_AHEAD, 0);
	step(r, BODY_STUFFED "QUIT\r\n", "250 2.0.0 queued as 2B\r\n" BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_sent(r, 0, "250 2.0.0 queued as 2B");
}

/* 3. Without PIPELINING every command is a flight of its own. */
static void test_unpipelined_bdat(void **state)
{
	struct run *r = run_to_b(CAP_CHUNK);

	(void)state;
	envelope_steps(r);
	step(r, bdat_last(BODY), "250 2.0.0 queued as 3C\r\n", 0);
	step(r, "QUIT\r\n", BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_sent(r, 0, "250 2.0.0 queued as 3C");
}

static void test_unpipelined_data(void **state)
{
	struct run *r = run_to_b(0);

	(void)state;
	envelope_steps(r);
	step(r, "DATA\r\n", GO_AHEAD, 0);
	step(r, BODY_STUFFED, "250 2.0.0 queued as 3D\r\n", 0);
	step(r, "QUIT\r\n", BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_sent(r, 0, "250 2.0.0 queued as 3D");
}

/* 4. AUTH refused by a server that takes mail without AUTH too: no byte
 * of the message; at most QUIT (RSET first allowed) before closing. */
static void test_auth_refused_bdat(void **state)
{
	struct run *r = run_to_b(CAP_PIPE | CAP_CHUNK);

	(void)state;
	envelope_flight(r, "", AUTH_FAILED MAIL_OK RCPT_OK, 0);
	tail_quit(r, 1);
	run(r);
	assert_batch(r, -1);
	assert_unsent(r, 0, PERR_AUTH);
	assert_int_equal(r->batch_e.kind, PERR_AUTH);
}

/* 5. AUTH refused, then 354 to the pipelined DATA: postern closes without
 * a byte of the message (not even QUIT, which would be message text).
 * refusal: the server's 535 line. */
static struct run *run_auth_refused_data(const char *refusal)
{
	struct run *r = run_to_b(CAP_PIPE);

	envelope_flight(r, "DATA\r\n", fmt("%s" MAIL_OK RCPT_OK GO_AHEAD, refusal), 0);
	r->sc.tail = TAIL_EOF;
	run(r);
	return r;
}

static void test_auth_refused_data(void **state)
{
	struct run *r = run_auth_refused_data(AUTH_FAILED);

	(void)state;
	assert_batch(r, -1);
	assert_unsent(r, 0, PERR_AUTH);
	assert_int_equal(r->batch_e.kind, PERR_AUTH);
}

/* 6. The only recipient refused: no BDAT; EX_NOUSER naming it with the
 * server's reply; the session ends with QUIT (RSET first allowed). */
static void test_rcpt_refused(void **state)
{
	struct run *r = run_to_b(CAP_PIPE | CAP_CHUNK);

	(void)state;
	envelope_flight(r, "", AUTH_OK MAIL_OK "550 5.1.1 no such user here\r\n", 0);
	tail_quit(r, 0);
	run(r);
	assert_batch(r, 0);
	assert_unsent(r, 0, PERR_NOUSER);
	assert_int_equal(r->msgs[0].settled, 1);
	assert_int_equal(r->msgs[0].err.code, 550);
	assert_contains(r->msgs[0].err.text, "<b@y>: 550 5.1.1 no such user here");
}

/* 7. One recipient of two refused: no BDAT; RSET ends the transaction
 * (quit = 0), then smtp_quit. */
static void test_one_of_two_refused(void **state)
{
	struct run *r = new_run(CAP_PIPE | CAP_CHUNK);

	(void)state;
	one_msg(r, "b@y", "c@y");
	r->quit_after = 1;
	envelope_flight(r, "RCPT TO:<c@y>\r\n",
			AUTH_OK MAIL_OK RCPT_OK "550 5.1.1 unknown user\r\n", 0);
	step(r, "RSET\r\n", RSET_OK, 0);
	step(r, "QUIT\r\n", BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_unsent(r, 0, PERR_NOUSER);
	assert_contains(r->msgs[0].err.text, "<c@y>: 550 5.1.1 unknown user");
	assert_lacks(r->msgs[0].err.text, "<b@y>");
}

/* 8a. The server answers AUTH and MAIL, then closes before the RCPT
 * reply: temporary, naming the peer and the stage. */
static void test_lost_mid_batch(void **state)
{
	struct run *r = run_to_b(CAP_PIPE);

	(void)state;
	envelope_flight(r, "DATA\r\n", AUTH_OK MAIL_OK, S_CLOSE);
	r->sc.tail = TAIL_NONE;
	run(r);
	assert_batch(r, -1);
	assert_unsent(r, 0, PERR_TEMP);
	assert_int_equal(r->batch_e.kind, PERR_TEMP);
	assert_contains(r->msgs[0].err.text, "127.0.0.1:");
	assert_contains(r->msgs[0].err.text, "RCPT TO");
	assert_contains(r->batch_e.text, "127.0.0.1:");
	assert_contains(r->batch_e.text, "RCPT TO");
}

/* 8b. 554 to MAIL and the connection closed at once, the rest of the
 * client's flight unread: the 5xx decides, not the lost connection. */
static void test_refused_then_closed(void **state)
{
	struct run *r = run_to_b(CAP_PIPE | CAP_CHUNK);

	(void)state;
	step(r, fmt("%s%s", AUTH_LINE, mail_line(BODY)), AUTH_OK "554 5.7.1 go away\r\n",
	     S_PREFIX | S_CLOSE);
	r->sc.tail = TAIL_NONE;
	run(r);
	assert_went_away(r);
}

/* 8c. 554 while postern is still writing a large body, and the
 * connection closed: the write fails, and the 554 already received
 * decides.  The body (8 MB) is larger than the socket buffers can hold
 * (the server's receive buffer is 4 KB), so the write does fail. */
#define BIG (8u << 20)

static void test_refused_while_writing(void **state)
{
	struct run *r = new_run(CAP_PIPE);
	static char head[4096 + 1];
	struct memsrc g = { .gen = BIG };

	(void)state;
	mem_read(&g, (unsigned char *)head, sizeof head - 1, NULL);
	r->defs[0] = (struct msgdef){ .gen = BIG, .rcpts = { "b@y" } };
	r->nmsgs = 1;
	r->quit = 1;
	r->sc.small_rcvbuf = 1;
	step(r, fmt("%sMAIL FROM:<a@x> SIZE=%u\r\nRCPT TO:<b@y>\r\nDATA\r\n", AUTH_LINE, BIG),
	     AUTH_OK MAIL_OK RCPT_OK GO_AHEAD, 0);
	step(r, head, "554 5.7.1 go away\r\n", S_PREFIX | S_CLOSE);
	r->sc.tail = TAIL_NONE;
	run(r);
	assert_went_away(r);
}

/* 9a. A flush of three small messages on one authenticated session: the
 * first waits for its RCPT reply; the others follow their MAIL and RCPT
 * in the same write, each after the end of the one before (smtp.h: the
 * next message's commands go out with the end of the previous one; an
 * RSET follows a BDAT LAST whose outcome is not known yet). */
#define B1 "Subject: 1\r\n\r\none\r\n"
#define B2 "Subject: 2\r\n\r\ntwo\r\n"
#define B3 "Subject: 3\r\n\r\nthree\r\n"

static void three_msgs(struct run *r)
{
	r->defs[0] = (struct msgdef){ .body = B1, .rcpts = { "b@y" } };
	r->defs[1] = (struct msgdef){ .body = B2, .rcpts = { "c@y" } };
	r->defs[2] = (struct msgdef){ .body = B3, .rcpts = { "d@y" } };
	r->nmsgs = 3;
	r->quit = 1;
}

static void test_flush_pipelined(void **state)
{
	struct run *r = new_run(CAP_PIPE | CAP_CHUNK);

	(void)state;
	three_msgs(r);
	step(r, fmt("%s%sRCPT TO:<b@y>\r\n", AUTH_LINE, mail_line(B1)), AUTH_OK MAIL_OK RCPT_OK,
	     0);
	step(r, fmt("%sRSET\r\n%sRCPT TO:<c@y>\r\n%sRSET\r\n%sRCPT TO:<d@y>\r\n%sQUIT\r\n",
		    bdat_last(B1), mail_line(B2), bdat_last(B2), mail_line(B3), bdat_last(B3)),
	     "250 2.0.0 queued as M1\r\n" RSET_OK MAIL_OK RCPT_OK
	     "250 2.0.0 queued as M2\r\n" RSET_OK MAIL_OK RCPT_OK
	     "250 2.0.0 queued as M3\r\n" BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_sent(r, 0, "250 2.0.0 queued as M1");
	assert_sent(r, 1, "250 2.0.0 queued as M2");
	assert_sent(r, 2, "250 2.0.0 queued as M3");
}

/* 9b. After a RCPT refused in the session, later messages wait for their
 * RCPT replies again. */
static void test_flush_after_refusal(void **state)
{
	struct run *r = new_run(CAP_PIPE | CAP_CHUNK);

	(void)state;
	three_msgs(r);
	step(r, fmt("%s%sRCPT TO:<b@y>\r\n", AUTH_LINE, mail_line(B1)),
	     AUTH_OK MAIL_OK "550 5.1.1 no such user\r\n", 0);
	step(r, fmt("RSET\r\n%sRCPT TO:<c@y>\r\n", mail_line(B2)), RSET_OK MAIL_OK RCPT_OK, 0);
	step(r, fmt("%sRSET\r\n%sRCPT TO:<d@y>\r\n", bdat_last(B2), mail_line(B3)),
	     "250 2.0.0 queued as M2\r\n" RSET_OK MAIL_OK RCPT_OK, 0);
	step(r, fmt("%sQUIT\r\n", bdat_last(B3)), "250 2.0.0 queued as M3\r\n" BYE, 0);
	run(r);
	assert_batch(r, 0);
	assert_unsent(r, 0, PERR_NOUSER);
	assert_int_equal(r->msgs[1].done, 1);
	assert_sent(r, 2, "250 2.0.0 queued as M3");
}

/* 10. A refusal that quotes the credentials back: the error text shows
 * neither the base64 payload nor the password.  a: pipelined AUTH read by
 * smtp_send_batch; b: AUTH answered within smtp_open. */
#define ECHO_535 "535 5.7.8 AUTH PLAIN " PLAIN_B64 " failed\r\n"

static void assert_masked(const char *text)
{
	assert_contains(text, "535 5.7.8");
	assert_lacks(text, PLAIN_B64);
	assert_lacks(text, PASSWORD);
	assert_contains(text, "****");
}

static void test_auth_echo_pipelined(void **state)
{
	struct run *r = run_auth_refused_data(ECHO_535);

	(void)state;
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->msgs[0].err.kind, PERR_AUTH);
	assert_masked(r->msgs[0].err.text);
	assert_masked(r->batch_e.text);
}

static void test_auth_echo_open(void **state)
{
	struct run *r = new_run(0);

	(void)state;
	one_msg(r, "b@y", NULL);
	step(r, AUTH_LINE, ECHO_535, 0);
	step(r, "QUIT\r\n", BYE, 0);
	run(r);
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->open_rc, -1);
	assert_int_equal(r->open_e.kind, PERR_AUTH);
	assert_masked(r->open_e.text);
}

/* ---- the session and AUTH, smtp_open alone ------------------------------ *
 *
 * Each case: the exact bytes postern writes from EHLO to QUIT, and the
 * error smtp_open returns. */

/* A run of smtp_open then smtp_quit; the EHLO reply `ehlo`. */
static struct run *open_run(const char *ehlo)
{
	static struct run r;

	memset(&r, 0, sizeof r);
	r.open_only = 1;
	r.quit_after = 1;
	r.wait_auth = 1;
	step(&r, "EHLO client.test\r\n", ehlo, 0);
	return &r;
}

/* The session ends with QUIT (answered), and the client closes. */
static void ends_with_quit(struct run *r)
{
	step(r, "QUIT\r\n", BYE, 0);
	r->sc.tail = TAIL_EOF;
}

static void assert_open_failed(const struct run *r, enum perr_kind kind, enum perr_cause cause,
			       int code)
{
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->open_rc, -1);
	assert_int_equal(r->open_e.kind, kind);
	assert_int_equal(r->open_e.cause, cause);
	assert_int_equal(r->open_e.code, code);
}

/* A greeting and an EHLO reply of several lines, each arriving in pieces
 * (cut between lines and inside one): read whole, capabilities parsed. */
static void test_replies_in_pieces(void **state)
{
	struct run *r = open_run("250-fake.test\r\n\v250-PIPE\vLINING\r\n250-SIZE 1000\r\n"
				 "250 AUTH PLAIN \vLOGIN\r\n");

	(void)state;
	r->sc.greeting = "220-fake.test\r\n\v220 ESM\vTP ready\r\n";
	step(r, AUTH_LINE, AUTH_OK, 0);
	ends_with_quit(r);
	run(r);
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->open_rc, 0);
	assert_int_equal(session.caps.flags & (SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_AUTH),
			 SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_AUTH);
	assert_int_equal(session.caps.size_max, 1000);
	assert_int_equal(session.caps.mechs, SMTP_MECH_PLAIN | SMTP_MECH_LOGIN);
}

/* tls = starttls and no STARTTLS offered: nothing after EHLO but QUIT. */
static void test_starttls_not_offered(void **state)
{
	struct run *r = open_run(ehlo_reply(CAP_PIPE));

	(void)state;
	r->starttls = 1;
	ends_with_quit(r);
	run(r);
	assert_open_failed(r, PERR_TEMP, PERR_CAUSE_NO_STARTTLS, 0);
	assert_contains(r->open_e.text, "does not offer STARTTLS");
}

/* STARTTLS refused (454): a temporary failure quoting the reply; QUIT. */
static void test_starttls_refused(void **state)
{
	struct run *r = open_run("250-fake.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n");

	(void)state;
	r->starttls = 1;
	step(r, "STARTTLS\r\n", "454 4.7.0 TLS not available\r\n", 0);
	ends_with_quit(r);
	run(r);
	assert_open_failed(r, PERR_TEMP, PERR_CAUSE_STARTTLS, 454);
	assert_contains(r->open_e.text, "454 4.7.0 TLS not available");
}

/* A 421 greeting: the server closes, so postern sends nothing at all. */
static void test_greeting_421(void **state)
{
	static struct run r;

	(void)state;
	memset(&r, 0, sizeof r);
	r.open_only = 1;
	r.sc.greeting = "421 4.3.2 too busy\r\n";
	r.sc.tail = TAIL_EOF;
	run(&r);
	assert_open_failed(&r, PERR_TEMP, PERR_CAUSE_GREETING, 421);
	assert_contains(r.open_e.text, "421 4.3.2 too busy");
}

/* AUTH PLAIN waited for (no pipelining): one line, 235, QUIT. */
static void test_auth_plain(void **state)
{
	struct run *r = open_run(ehlo_reply(0));

	(void)state;
	step(r, AUTH_LINE, AUTH_OK, 0);
	ends_with_quit(r);
	run(r);
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->open_rc, 0);
}

/* AUTH LOGIN: user and password each after a 334. */
static void test_auth_login(void **state)
{
	struct run *r = open_run(ehlo_reply(CAP_PIPE));

	(void)state;
	r->auth = AUTH_LOGIN;
	step(r, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", 0);
	step(r, "am9l\r\n", "334 UGFzc3dvcmQ6\r\n", 0);
	step(r, "c2VjcmV0\r\n", AUTH_OK, 0);
	ends_with_quit(r);
	run(r);
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(r->open_rc, 0);
}

/* AUTH LOGIN refused after the password: 535 is refused credentials. */
static void test_auth_login_535(void **state)
{
	struct run *r = open_run(ehlo_reply(0));

	(void)state;
	r->auth = AUTH_LOGIN;
	step(r, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", 0);
	step(r, "am9l\r\n", "334 UGFzc3dvcmQ6\r\n", 0);
	step(r, "c2VjcmV0\r\n", AUTH_FAILED, 0);
	ends_with_quit(r);
	run(r);
	assert_open_failed(r, PERR_AUTH, PERR_CAUSE_AUTH, 535);
	assert_contains(r->open_e.text, "535 5.7.8 authentication failed");
}

/* XOAUTH2 with a refused token: the 334 error challenge is answered with
 * an empty line, the final 535 decides, and the decoded reason is in the
 * error line. */
static void test_xoauth2_334(void **state)
{
	struct run *r = open_run("250-fake.test\r\n250 AUTH XOAUTH2\r\n");

	(void)state;
	r->auth = AUTH_XOAUTH2;
	step(r, "AUTH XOAUTH2 dXNlcj1qb2UBYXV0aD1CZWFyZXIgc2VjcmV0AQE=\r\n",
	     "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n", 0);
	step(r, "\r\n", "535 5.7.8 Username and Password not accepted\r\n", 0);
	ends_with_quit(r);
	run(r);
	assert_open_failed(r, PERR_AUTH, PERR_CAUSE_AUTH, 535);
	assert_contains(r->open_e.text, "{\"status\":\"401\",\"schemes\":\"bearer\"}");
}

/* auth = auto with only SCRAM-SHA-256 offered starts SCRAM (its client-
 * first message, base64 of "n,,n=joe,r=NONCE", carries a random nonce:
 * the server refuses as soon as the part before it is in, and closes).
 * The whole exchange against a real SCRAM server is auth.test's. */
static void test_auto_picks_scram(void **state)
{
	struct run *r = open_run("250-fake.test\r\n250 AUTH SCRAM-SHA-256\r\n");

	(void)state;
	r->auth_auto = 1;
	step(r, "AUTH SCRAM-SHA-256 biwsbj1qb2Us", "535 5.7.8 no\r\n", S_PREFIX | S_CLOSE);
	run(r);
	assert_int_equal(r->wire_bad, 0);
	assert_int_equal(smtp_pick_mech(SMTP_MECH_SCRAM_SHA_256, AUTH_AUTO), AUTH_SCRAM_SHA_256);
	assert_int_equal(r->open_rc, -1);
	assert_int_equal(r->open_e.kind, PERR_AUTH);
	assert_int_equal(r->open_e.code, 535);
}

/* The observer sees each step: the connection, the greeting, EHLO (with
 * its capabilities) and AUTH's outcome. */
struct seen_steps {
	int connected, greeting_code, ehlo_code, auth_rc;
	char mech[24];
};

static void saw_connect(void *ctx, const char *addr)
{
	((struct seen_steps *)ctx)->connected = strcmp(addr, "127.0.0.1") == 0;
}

static void saw_greeting(void *ctx, const struct reply *rp)
{
	((struct seen_steps *)ctx)->greeting_code = rp->code;
}

static void saw_ehlo(void *ctx, const struct reply *rp, int tls_active)
{
	((struct seen_steps *)ctx)->ehlo_code = tls_active ? -1 : rp->code;
}

static void saw_auth(void *ctx, const char *mech, int rc)
{
	struct seen_steps *s = ctx;

	s->auth_rc = rc;
	snprintf(s->mech, sizeof s->mech, "%s", mech);
}

static void test_observer(void **state)
{
	static struct seen_steps seen;
	static const struct smtp_observer ob = { .ctx = &seen, .connected = saw_connect,
						 .greeting = saw_greeting, .ehlo = saw_ehlo,
						 .auth = saw_auth };
	struct run *r = open_run(ehlo_reply(0));

	(void)state;
	memset(&seen, 0, sizeof seen);
	seen.auth_rc = 99;
	r->observer = &ob;
	step(r, AUTH_LINE, AUTH_FAILED, 0);
	ends_with_quit(r);
	run(r);
	assert_open_failed(r, PERR_AUTH, PERR_CAUSE_AUTH, 535);
	assert_int_equal(seen.connected, 1);
	assert_int_equal(seen.greeting_code, 220);
	assert_int_equal(seen.ehlo_code, 250);
	assert_int_equal(seen.auth_rc, -1);
	assert_string_equal(seen.mech, "PLAIN");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pipelined_bdat, teardown),
		cmocka_unit_test_teardown(test_pipelined_data, teardown),
		cmocka_unit_test_teardown(test_unpipelined_bdat, teardown),
		cmocka_unit_test_teardown(test_unpipelined_data, teardown),
		cmocka_unit_test_teardown(test_auth_refused_bdat, teardown),
		cmocka_unit_test_teardown(test_auth_refused_data, teardown),
		cmocka_unit_test_teardown(test_rcpt_refused, teardown),
		cmocka_unit_test_teardown(test_one_of_two_refused, teardown),
		cmocka_unit_test_teardown(test_lost_mid_batch, teardown),
		cmocka_unit_test_teardown(test_refused_then_closed, teardown),
		cmocka_unit_test_teardown(test_refused_while_writing, teardown),
		cmocka_unit_test_teardown(test_flush_pipelined, teardown),
		cmocka_unit_test_teardown(test_flush_after_refusal, teardown),
		cmocka_unit_test_teardown(test_auth_echo_pipelined, teardown),
		cmocka_unit_test_teardown(test_auth_echo_open, teardown),
		cmocka_unit_test_teardown(test_replies_in_pieces, teardown),
		cmocka_unit_test_teardown(test_starttls_not_offered, teardown),
		cmocka_unit_test_teardown(test_starttls_refused, teardown),
		cmocka_unit_test_teardown(test_greeting_421, teardown),
		cmocka_unit_test_teardown(test_auth_plain, teardown),
		cmocka_unit_test_teardown(test_auth_login, teardown),
		cmocka_unit_test_teardown(test_auth_login_535, teardown),
		cmocka_unit_test_teardown(test_xoauth2_334, teardown),
		cmocka_unit_test_teardown(test_auto_picks_scram, teardown),
		cmocka_unit_test_teardown(test_observer, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "--serve") == 0)
		return serve(argv);
	self = argv[0];
	session.conn.fd = -1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
