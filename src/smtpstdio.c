/* smtpstdio.c — `postern -bs`: the SMTP server side of a dialogue on
 * standard input and output.  Owns the command loop, the MAIL/RCPT
 * parsers, DATA's dot-unstuffing into a temporary file, and the mapping of
 * each message's delivery outcome to the reply to its final ".".
 * See smtpstdio.h. */
#include "autoconf.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "log.h"
#include "smtpstdio.h"
#include "util.h"

/* Input is read in chunks of this size; a command line must fit in it. */
#define IBUF_MAX 8192
/* Replies are collected here and written before every wait for input
 * (so pipelined commands get their replies in one write). */
#define OBUF_MAX 8192
/* DATA goes to the temporary file through this buffer. */
#define DBUF_MAX 65536
/* Room for the reason in a reply line (RFC 5321 4.5.3.1.5: 512 octets
 * per reply line, with code and CRLF). */
#define REASON_MAX 440
/* A reply line is at most this long, CRLF included. */
#define REPLY_MAX 512

struct session {
	const struct config *cfg;
	const struct smtpstdio_opts *o;
	struct perr *e;
	int timeout_ms;
	unsigned char ibuf[IBUF_MAX];
	size_t ipos, ilen;
	int eof;
	char obuf[OBUF_MAX];
	size_t olen;
	int write_failed;
	char host[256];
	char helo[64];   /* the client's EHLO/HELO name, sanitised */
	/* The transaction. */
	int in_mail;
	char from[ADDR_MAX + 1];
	const char *body_type;
	int smtputf8;
	char **rcpts;
	size_t nrcpts;
	/* The aliases of the account the sender chose (for RCPT checks). */
	const struct account *acct;
	struct aliases al;
	const struct account *al_acct;
	int al_loaded;
};

/* ---- output --------------------------------------------------------------- */

static int write_all(struct session *s, const char *p, size_t n)
{
	struct pollfd pf = { .fd = s->o->out_fd, .events = POLLOUT };

	while (n > 0) {
		ssize_t w = write(s->o->out_fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (poll(&pf, 1, s->timeout_ms) <= 0)
				return perr_set(s->e, PERR_IO, "standard output: the SMTP client "
						"reads no replies (timed out)");
		} else {
			return perr_set(s->e, PERR_IO, "standard output: %s; the SMTP client "
					"went away", strerror(w < 0 ? errno : EIO));
		}
	}
	return 0;
}

static int flush_out(struct session *s)
{
	int rc = 0;

	if (s->olen && !s->write_failed) {
		rc = write_all(s, s->obuf, s->olen);
		if (rc < 0)
			s->write_failed = 1;
	}
	s->olen = 0;
	return s->write_failed ? -1 : rc;
}

/* Queue one reply line (CRLF added). */
static void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct session *s, const char *fmt, ...)
{
	char line[REPLY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 3)
		n = (int)(sizeof line - 3);
	memcpy(line + n, "\r\n", 2);
	n += 2;
	if (s->olen + (size_t)n > sizeof s->obuf)
		flush_out(s);
	memcpy(s->obuf + s->olen, line, (size_t)n);
	s->olen += (size_t)n;
}

/* ---- input ---------------------------------------------------------------- */

/* Read more input after what is buffered.  Writes pending replies first.
 * Returns 1 with more bytes, 0 at the end of input, -1 on error/timeout. */
static int fill(struct session *s)
{
	struct pollfd pf = { .fd = s->o->in_fd, .events = POLLIN };
	int64_t deadline = mono_ms() + s->timeout_ms;
	ssize_t r;

	if (flush_out(s) < 0)
		return -1;
	if (s->eof)
		return 0;
	if (s->ipos > 0) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
		s->ilen -= s->ipos;
		s->ipos = 0;
	}
	for (;;) {
		int64_t left = deadline - mono_ms();
		int p = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return perr_set(s->e, PERR_IO, "standard input: %s", strerror(errno));
		if (p == 0)
			return perr_set(s->e, PERR_TEMP, "-bs: the SMTP client sent nothing for %d s; "
					"session closed", s->timeout_ms / 1000);
		r = read(s->o->in_fd, s->ibuf + s->ilen, sizeof s->ibuf - s->ilen);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0)
			return perr_set(s->e, PERR_IO, "standard input: %s", strerror(errno));
		if (r == 0) {
			s->eof = 1;
			return 0;
		}
		s->ilen += (size_t)r;
		return 1;
	}
}

enum line_rc { LINE_ERR = -1, LINE_EOF = 0, LINE_OK = 1, LINE_LONG = 2, LINE_BAD = 3 };

/* One command line into line (NUL-terminated, CR LF or LF removed).
 * A line over SMTPSTDIO_LINE_MAX bytes is consumed to its end and
 * reported as LINE_LONG; one with a NUL or a bare CR as LINE_BAD.  Input
 * that ends without a line end: LINE_EOF. */
static enum line_rc read_line(struct session *s, char *line, size_t cap)
{
	int too_long = 0;

	for (;;) {
		unsigned char *start = s->ibuf + s->ipos;
		size_t avail = s->ilen - s->ipos;
		unsigned char *lf = memchr(start, '\n', avail);

		if (lf) {
			size_t n = (size_t)(lf - start);
			s->ipos += n + 1;
			if (too_long || n > SMTPSTDIO_LINE_MAX + 1 || n >= cap)
				return LINE_LONG;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			if (memchr(start, '\0', n) || memchr(start, '\r', n))
				return LINE_BAD;
			memcpy(line, start, n);
			line[n] = '\0';
			return LINE_OK;
		}
		if (avail > SMTPSTDIO_LINE_MAX + 1) {
			too_long = 1;    /* drop what we have, keep looking for LF */
			s->ipos = s->ilen;
		}
		int r = fill(s);
		if (r < 0)
			return LINE_ERR;
		if (r == 0)
			return LINE_EOF;
	}
}

/* ---- the transaction ---------------------------------------------------- */

static void txn_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->in_mail = 0;
	s->from[0] = '\0';
	s->body_type = NULL;
	s->smtputf8 = 0;
	s->acct = NULL;
}

/* The address inside <...> (source route dropped) or the first word;
 * *rest points after it.  -1 when malformed or longer than ADDR_MAX. */
static int parse_path(const char *p, char *out, size_t cap, const char **rest)
{
	const char *q, *a;
	int quoted = 0;

	while (*p == ' ')
		p++;
	if (*p != '<') {
		size_t n = strcspn(p, " ");
		if (n == 0 || n >= cap)
			return -1;
		memcpy(out, p, n);
		out[n] = '\0';
		*rest = p + n;
		return 0;
	}
	for (q = p + 1; *q && (quoted || *q != '>'); q++) {
		if (*q == '\\' && quoted && q[1])
			q++;
		else if (*q == '"')
			quoted = !quoted;
	}
	if (*q != '>')
		return -1;
	a = p + 1;
	if (*a == '@') {               /* source route "@a,@b:user@d" */
		const char *colon = memchr(a, ':', (size_t)(q - a));
		if (!colon)
			return -1;
		a = colon + 1;
	}
	if ((size_t)(q - a) >= cap)
		return -1;
	memcpy(out, a, (size_t)(q - a));
	out[q - a] = '\0';
	*rest = q + 1;
	return 0;
}

/* MAIL parameters: BODY=, SIZE=, SMTPUTF8.  Replies itself on error. */
static int mail_params(struct session *s, const char *p)
{
	char word[128];

	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p)
			return 0;
		size_t n = strcspn(p, " ");
		if (n >= sizeof word) {
			reply(s, "501 5.5.4 parameter too long");
			return -1;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		if (strncasecmp(word, "BODY=", 5) == 0) {
			if (str_ieq(word + 5, "8BITMIME"))
				s->body_type = "8BITMIME";
			else if (str_ieq(word + 5, "7BIT"))
				s->body_type = "7BIT";
			else {
				reply(s, "501 5.5.4 BODY must be 7BIT or 8BITMIME");
				return -1;
			}
		} else if (strncasecmp(word, "SIZE=", 5) == 0) {
			if (!word[5] || strspn(word + 5, "0123456789") != strlen(word + 5) ||
			    strlen(word + 5) > 20) {
				reply(s, "501 5.5.4 SIZE needs a number");
				return -1;
			}
		} else if (str_ieq(word, "SMTPUTF8")) {
			s->smtputf8 = 1;
		} else {
			char clean[64];
			log_sanitize(clean, sizeof clean, word, strcspn(word, "="));
			reply(s, "555 5.5.4 parameter %s is not supported", clean);
			return -1;
		}
	}
}

/* The reason of an error as reply text: sanitised, one line, bounded. */
static void reason(const struct perr *e, char *out, size_t cap)
{
	char clean[PERR_TEXT_MAX];

	log_sanitize(clean, sizeof clean, e->text, strlen(e->text));
	str_copy(out, clean[0] ? clean : "unknown error", cap < REASON_MAX ? cap : REASON_MAX);
}

/* An error as an SMTP reply: the server's own code when it has the right
 * class, else the kind's. */
static void reply_error(struct session *s, const struct perr *e)
{
	static const struct {
		enum perr_kind kind;
		int code;
		const char *enh;
	} map[] = {
		{ PERR_TEMP, 451, "4.3.0" },       { PERR_NOUSER, 550, "5.1.1" },
		{ PERR_DATA, 554, "5.6.0" },       { PERR_UNAVAILABLE, 554, "5.3.0" },
		{ PERR_AUTH, 451, "4.7.0" },       { PERR_CONFIG, 451, "4.3.5" },
		{ PERR_PROTOCOL, 451, "4.5.0" },   { PERR_USAGE, 554, "5.5.4" },
		{ PERR_OS, 451, "4.3.0" },         { PERR_IO, 451, "4.3.0" },
		{ PERR_SOFTWARE, 451, "4.3.0" },
	};
	char why[REASON_MAX];
	int code = 451;
	const char *enh = "4.3.0";

	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (map[i].kind == e->kind) {
			code = map[i].code;
			enh = map[i].enh;
		}
	if (e->code >= 400 && e->code < 600 && e->code / 100 == code / 100) {
		code = e->code;
		enh = e->enhanced[0] == enh[0] ? e->enhanced : enh;
	}
	reason(e, why, sizeof why);
	reply(s, "%d %s %s", code, enh, why);
}

/* The account the sender chooses; its aliases loaded once.  -1 replied. */
static int choose_account(struct session *s)
{
	struct perr e = { 0 };

	s->acct = config_choose(s->cfg, s->o->base.account, s->from, &e);
	if (!s->acct) {
		reply_error(s, &e);
		return -1;
	}
	return 0;
}

static int count_one(void *ctx, const char *addr, struct perr *e)
{
	(void)addr;
	(void)e;
	++*(size_t *)ctx;
	return 0;
}

/* A local recipient must resolve through the account's aliases. */
static int check_local(struct session *s, const char *addr)
{
	const struct account *a = s->acct;
	struct perr e = { 0 };
	size_t n = 0;

	if (!aliases_is_local(addr, a->local_domains))
		return 0;
	if (s->al_acct != a) {
		if (s->al_loaded)
			aliases_free(&s->al);
		s->al_loaded = 0;
		s->al_acct = a;
		if (a->aliases) {
			if (aliases_load(&s->al, a->aliases, &e) < 0) {
				s->al_acct = NULL;
				reply_error(s, &e);
				return -1;
			}
			s->al_loaded = 1;
		}
	}
	if (aliases_expand(s->al_loaded ? &s->al : NULL, addr, count_one, &n, &e) < 0) {
		reply_error(s, &e);
		return -1;
	}
	return 0;
}

static void cmd_mail(struct session *s, const char *arg)
{
	const char *rest;
	struct perr e = { 0 };

	if (s->in_mail) {
		reply(s, "503 5.5.1 nested MAIL command; send RSET first");
		return;
	}
	if (strncasecmp(arg, "FROM:", 5) != 0 || parse_path(arg + 5, s->from, sizeof s->from,
							    &rest) < 0) {
		reply(s, "501 5.5.4 syntax: MAIL FROM:<address>");
		s->from[0] = '\0';
		return;
	}
	if (mail_params(s, rest) < 0)
		goto refused;
	/* A local name (a cron user) is allowed: delivery puts the account's
	 * address in its place, as for -f. */
	if (s->from[0] && addr_check(s->from, 1, &e) < 0) {
		char why[REASON_MAX];
		reason(&e, why, sizeof why);
		reply(s, "553 5.1.7 %s", why);
		goto refused;
	}
	if (addr_is_utf8(s->from) && !s->smtputf8) {
		reply(s, "553 5.6.7 a UTF-8 address needs the SMTPUTF8 parameter");
		goto refused;
	}
	if (choose_account(s) < 0)
		goto refused;
	s->in_mail = 1;
	reply(s, "250 2.1.0 sender ok");
	return;
refused:
	txn_reset(s);
}

static void cmd_rcpt(struct session *s, const char *arg)
{
	char addr[ADDR_MAX + 1], why[REASON_MAX];
	const char *rest;
	struct perr e = { 0 };

	if (!s->in_mail) {
		reply(s, "503 5.5.1 send MAIL first");
		return;
	}
	if (strncasecmp(arg, "TO:", 3) != 0 || parse_path(arg + 3, addr, sizeof addr, &rest) < 0 ||
	    !addr[0]) {
		reply(s, "501 5.5.4 syntax: RCPT TO:<address>");
		return;
	}
	while (*rest == ' ')
		rest++;
	if (*rest) {
		reply(s, "555 5.5.4 RCPT parameters are not supported");
		return;
	}
	if (addr_check(addr, 1, &e) < 0) {
		reason(&e, why, sizeof why);
		reply(s, "553 5.1.3 %s", why);
		return;
	}
	if (addr_is_utf8(addr) && !s->smtputf8) {
		reply(s, "553 5.6.7 a UTF-8 address needs SMTPUTF8 on MAIL");
		return;
	}
	if (s->nrcpts >= SMTPSTDIO_RCPTS_MAX) {
		reply(s, "452 4.5.3 too many recipients; send the rest in another message");
		return;
	}
	if (check_local(s, addr) < 0)
		return;
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof *s->rcpts);
	s->rcpts[s->nrcpts++] = xstrdup(addr);
	reply(s, "250 2.1.5 recipient ok");
}

/* ---- DATA --------------------------------------------------------------- */

enum dstate { D_BOL, D_TEXT, D_CR, D_DOT, D_DOTCR };

struct dsink {
	int fd;
	unsigned char buf[DBUF_MAX];
	size_t len;
	int failed;
	int err;
};

static int sink_flush(struct dsink *k)
{
	size_t off = 0;

	while (!k->failed && off < k->len) {
		ssize_t w = write(k->fd, k->buf + off, k->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			k->failed = 1;
			k->err = w < 0 ? errno : EIO;
		} else {
			off += (size_t)w;
		}
	}
	k->len = 0;
	return k->failed ? -1 : 0;
}

static void sink_put(struct dsink *k, unsigned char c)
{
	if (k->len == sizeof k->buf)
		sink_flush(k);
	k->buf[k->len++] = c;
}

/* One byte of DATA; returns 1 at the end (<CRLF>.<CRLF>).  Only CRLF
 * starts a line: a "." after a bare LF is content, so no byte sequence
 * but the real end can end the message. */
static int data_byte(enum dstate *st, unsigned char c, struct dsink *k)
{
	switch (*st) {
	case D_BOL:
		if (c == '.') {
			*st = D_DOT;
			return 0;
		}
		break;
	case D_DOT:
		if (c == '\r') {
			*st = D_DOTCR;
			return 0;
		}
		break;                  /* the stuffed dot is dropped */
	case D_DOTCR:
		if (c == '\n')
			return 1;
		sink_put(k, '\r');      /* "." CR x: the dot was stuffing */
		break;
	case D_CR:
		if (c == '\n') {
			sink_put(k, c);
			*st = D_BOL;
			return 0;
		}
		break;
	case D_TEXT:
		break;
	}
	sink_put(k, c);
	*st = c == '\r' ? D_CR : D_TEXT;
	return 0;
}

/* The Received header of a message from the loopback listener. */
static void put_received(struct session *s, struct dsink *k)
{
	char date[64], hdr[512];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(hdr, sizeof hdr, "Received: from %s (%s)\r\n\tby %s with postern; %s\r\n",
		     s->helo[0] ? s->helo : "unknown", s->o->received_from, s->host, date);
	for (int i = 0; i < n && (size_t)i < sizeof hdr - 1; i++)
		sink_put(k, (unsigned char)hdr[i]);
}

/* Read DATA (after the 354) into an unlinked temporary file.  Returns
 * its descriptor at offset 0; -2 when the message was read to its end
 * but could not be kept (s->e filled: reply 451 and go on); -1 when the
 * session broke (end of input, timeout). */
static int read_data(struct session *s)
{
	static struct dsink k;    /* 64 KB: not on the stack */
	enum dstate st = D_BOL;
	char path[4096];
	const char *dir = getenv("TMPDIR");

	if (!dir || !dir[0])
		dir = "/tmp";
	snprintf(path, sizeof path, "%s/postern-bs-XXXXXX", dir);
	memset(&k, 0, sizeof k);
	k.fd = mkstemp(path);
	if (k.fd < 0) {
		k.failed = 1;
		k.err = errno;
	} else {
		unlink(path);
	}
	if (s->o->received_from)
		put_received(s, &k);
	for (;;) {
		while (s->ipos < s->ilen)
			if (data_byte(&st, s->ibuf[s->ipos++], &k))
				goto end;
		int r = fill(s);
		if (r <= 0) {
			if (r == 0)
				perr_set(s->e, PERR_IO, "-bs: input ended inside DATA; that message "
					 "was not taken");
			if (k.fd >= 0)
				close(k.fd);
			return -1;
		}
	}
end:
	if (sink_flush(&k) < 0 || lseek(k.fd, 0, SEEK_SET) < 0) {
		perr_set(s->e, PERR_IO, "cannot keep the message in a temporary file in %s: %s; "
			 "set TMPDIR to a writable directory with free space", dir,
			 strerror(k.failed ? k.err : errno));
		if (k.fd >= 0)
			close(k.fd);
		return -2;
	}
	return k.fd;
}

/* Hand the message to delivery; reply with the outcome. */
static void deliver_one(struct session *s, int fd)
{
	const struct smtpstdio_opts *o = s->o;
	struct deliver_req req = o->base;
	struct deliver_result res;
	struct message m;
	struct perr e = { 0 };
	char why[REASON_MAX], line[REASON_MAX + 64];
	int rc;

	req.from = s->from;
	req.extract = 0;
	req.rcpts = s->rcpts;
	req.nrcpts = s->nrcpts;
	if (s->body_type)
		req.body_type = s->body_type;
	memset(&res, 0, sizeof res);
	rc = message_read(&m, fd, 0, &e);
	close(fd);
	if (rc == 0) {
		rc = (o->deliver ? o->deliver : deliver_message)(s->cfg, &req, &m, &res, &e);
		message_free(&m);
	}
	if (rc < 0) {
		reply_error(s, &e);
		return;
	}
	if (res.outcome == DELIVER_QUEUED) {
		log_sanitize(why, sizeof why, res.reason, strlen(res.reason));
		reply(s, "250 2.0.0 queued as %s: %s", res.queue_id, why);
		if (o->base.notice) {
			snprintf(line, sizeof line, "queued %s: %s", res.queue_id, why);
			o->base.notice(line);
		}
		return;
	}
	reply(s, "250 2.0.0 delivered");
}

/* DATA: 0 to go on, -1 when the session broke. */
static int cmd_data(struct session *s, const char *arg)
{
	int fd;

	if (*arg) {
		reply(s, "501 5.5.4 DATA takes no argument");
		return 0;
	}
	if (!s->in_mail) {
		reply(s, "503 5.5.1 send MAIL first");
		return 0;
	}
	if (!s->nrcpts) {
		reply(s, "554 5.5.1 no valid recipients");
		return 0;
	}
	reply(s, "354 2.0.0 end data with <CR><LF>.<CR><LF>");
	fd = read_data(s);
	if (fd == -1)
		return -1;
	if (fd == -2) {
		reply_error(s, s->e);
		perr_clear(s->e);
	} else {
		deliver_one(s, fd);
	}
	txn_reset(s);
	return 0;
}

/* ---- the dialogue ----------------------------------------------------------- */

static void cmd_ehlo(struct session *s, int extended, const char *arg)
{
	if (!*arg) {
		reply(s, "501 5.5.4 syntax: %s domain", extended ? "EHLO" : "HELO");
		return;
	}
	txn_reset(s);
	size_t i;
	for (i = 0; arg[i] && arg[i] != ' ' && i + 1 < sizeof s->helo; i++)
		s->helo[i] = (arg[i] > 0x20 && arg[i] < 0x7f && !strchr("()\\;", arg[i])) ? arg[i]
											 : '?';
	s->helo[i] = '\0';
	if (!extended) {
		reply(s, "250 %s", s->host);
		return;
	}
	reply(s, "250-%s", s->host);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE");
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

/* One command.  Returns 1 after QUIT, 0 to go on, -1 when broken. */
static int dispatch(struct session *s, char *line)
{
	char *arg = line + strcspn(line, " ");

	if (*arg)
		*arg++ = '\0';
	while (*arg == ' ')
		arg++;
	if (str_ieq(line, "EHLO") || str_ieq(line, "HELO"))
		cmd_ehlo(s, str_ieq(line, "EHLO"), arg);
	else if (str_ieq(line, "MAIL"))
		cmd_mail(s, arg);
	else if (str_ieq(line, "RCPT"))
		cmd_rcpt(s, arg);
	else if (str_ieq(line, "DATA"))
		return cmd_data(s, arg);
	else if (str_ieq(line, "RSET")) {
		txn_reset(s);
		reply(s, "250 2.0.0 reset");
	} else if (str_ieq(line, "NOOP"))
		reply(s, "250 2.0.0 ok");
	else if (str_ieq(line, "QUIT")) {
		reply(s, "221 2.0.0 %s closing", s->host);
		return 1;
	} else if (str_ieq(line, "VRFY"))
		reply(s, "252 2.5.0 cannot verify; send the message and it will be tried");
	else if (str_ieq(line, "HELP"))
		reply(s, "214 2.0.0 postern -bs knows EHLO HELO MAIL RCPT DATA RSET NOOP QUIT "
		      "VRFY HELP");
	else if (str_ieq(line, "STARTTLS") || str_ieq(line, "AUTH") || str_ieq(line, "BDAT") ||
		 str_ieq(line, "EXPN") || str_ieq(line, "ETRN") || str_ieq(line, "TURN"))
		reply(s, "502 5.5.1 command not implemented");
	else
		reply(s, "500 5.5.2 command not recognised");
	return 0;
}

static void session_init(struct session *s, const struct config *cfg,
			 const struct smtpstdio_opts *o, struct perr *e)
{
	s->cfg = cfg;
	s->o = o;
	s->e = e;
	s->timeout_ms = (o->timeout_s > 0 ? o->timeout_s : SMTPSTDIO_TIMEOUT_DEFAULT) * 1000;
	if (gethostname(s->host, sizeof s->host - 1) < 0 || !s->host[0] ||
	    !str_is_printable(s->host, 0) || strchr(s->host, ' '))
		str_copy(s->host, "localhost", sizeof s->host);
}

int smtpstdio_run(const struct config *cfg, const struct smtpstdio_opts *o, struct perr *e)
{
	struct session *s = xcalloc(1, sizeof *s);
	char line[SMTPSTDIO_LINE_MAX + 2];
	int rc = 0, done = 0, d;

	signal(SIGPIPE, SIG_IGN);   /* a client gone is a write error, not a kill */
	perr_clear(e);
	session_init(s, cfg, o, e);
	reply(s, "220 %s ESMTP postern", s->host);
	while (!done) {
		switch (read_line(s, line, sizeof line)) {
		case LINE_ERR:
			rc = -1;
			break;
		case LINE_EOF:
			done = 1;
			break;
		case LINE_LONG:
			reply(s, "500 5.5.2 line too long (at most %d bytes)", SMTPSTDIO_LINE_MAX);
			continue;
		case LINE_BAD:
			reply(s, "500 5.5.2 NUL or bare CR in a command line");
			continue;
		case LINE_OK:
			d = dispatch(s, line);
			if (d < 0)
				rc = -1;
			done = d == 1;
			break;
		}
		if (rc < 0)
			break;
	}
	if (rc < 0 && e->kind == PERR_TEMP)
		reply(s, "421 4.4.2 %s timeout; closing", s->host);
	flush_out(s);   /* after QUIT or EOF a client that is gone is no failure */
	txn_reset(s);
	if (s->al_loaded)
		aliases_free(&s->al);
	free(s);
	return rc;
}

int smtpstdio_main(const struct cli *c, void (*notice)(const char *line), struct perr *e)
{
	struct config cfg = { 0 };
	struct smtpstdio_opts o = {
		.in_fd = STDIN_FILENO,
		.out_fd = STDOUT_FILENO,
		.timeout_s = SMTPSTDIO_TIMEOUT_DEFAULT,
		.base = {
			.account = c->account,
			.fullname = c->fullname,
			.dsn_notify = c->dsn_notify,
			.dsn_return = c->dsn_return,
			.dsn_envid = c->dsn_envid,
			.body_type = c->body_type,
			.queue_only = c->queue_only,
			.notice = notice,
		},
	};
	int rc;

	if (config_load(&cfg, c->config_file, e) < 0) {
		char why[REASON_MAX], line[REPLY_MAX];
		int n;

		reason(e, why, sizeof why);
		n = snprintf(line, sizeof line, "421 4.3.5 %s\r\n", why);
		if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
			n = 0;  /* the client is gone; the stderr line still tells */
		return -1;
	}
	rc = smtpstdio_run(&cfg, &o, e);
	config_free(&cfg);
	return rc;
}
