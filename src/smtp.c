/* smtp.c — the SMTP engine's session: connect, greeting, EHLO
 * capabilities, STARTTLS (or implicit TLS), then AUTH (smtp_auth.c); QUIT
 * and close.  Also the helpers every engine file uses: one command line
 * out, one reply in, and the error texts that name the peer and the step.
 *
 * Each wait for a reply is one step with its own deadline (conn_arm).
 * Every line sent or received goes to the -v transcript (log_wire), with
 * AUTH payloads masked.  Errors name the peer, the server's (sanitised)
 * reply and what the engine was waiting for; the kinds follow smtp.h.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_int.h"
#include "util.h"

/* The command each state sends (or waits on), for error texts. */
static const char *const state_names[ST_COUNT] = {
	[ST_GREETING] = "the greeting",
	[ST_EHLO] = "EHLO",
	[ST_HELO] = "HELO",
	[ST_STARTTLS] = "STARTTLS",
	[ST_AUTH] = "AUTH",
	[ST_MAIL] = "MAIL FROM",
	[ST_RCPT] = "RCPT TO",
	[ST_DATA] = "DATA",
	[ST_BODY] = "the end of the message",
	[ST_BDAT] = "BDAT",
	[ST_RSET] = "RSET",
	[ST_QUIT] = "QUIT",
};

/* ---- errors ------------------------------------------------------------- */

/* An I/O or protocol failure (conn's text has no peer): "host:port: TEXT
 * while waiting for the reply to RCPT TO".  The connection stays open (a
 * failed write may still have replies to read, see drain()); the caller
 * closes it. */
int smtp_io_error(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st)
{
	if (!e)
		return -1;
	perr_prefix(e, "%s", s->conn.peer);
	if (st == ST_COUNT)
		perr_append(e, " while sending commands");
	else if (st == ST_BODY && dir == IO_SEND)
		perr_append(e, " while sending the message");
	else if (st == ST_GREETING)
		perr_append(e, " while %s the greeting",
			    dir == IO_WAIT ? "waiting for" : "reading");
	else if (dir == IO_SEND)
		perr_append(e, " while sending %s", state_names[st]);
	else
		perr_append(e, " while %s the reply to %s",
			    dir == IO_WAIT ? "waiting for" : "reading", state_names[st]);
	if (e->cause == PERR_CAUSE_CLIENT_CERT)
		; /* the TLS layer knows why: no client certificate */
	else if (st == ST_GREETING)
		e->cause = PERR_CAUSE_GREETING;
	else if (dir == IO_READ || e->kind == PERR_PROTOCOL)
		e->cause = PERR_CAUSE_PROTOCOL;
	else
		e->cause = PERR_CAUSE_LOST;
	return -1;
}

/* io_error, and the connection is closed: nothing sane can follow. */
int smtp_io_fail(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st)
{
	smtp_io_error(s, e, dir, st);
	conn_close(&s->conn);
	return -1;
}

/* "host:port: WHAT: 550 5.1.1 text" from the last reply. */
int smtp_server_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
		     const char *what)
{
	char text[768];
	const struct reply *r = &s->reply;

	reply_oneline(r, text, sizeof text);
	perr_smtp(e, kind, r->code, r->enhanced, "%s: %d%s%s%s%s", what, r->code,
		  r->enhanced[0] ? " " : "", r->enhanced, text[0] ? " " : "", text);
	if (e) {
		perr_prefix(e, "%s", s->conn.peer);
		e->cause = cause;
	}
	return -1;
}

/* Kind for an unwanted reply: 4xx temporary, 5xx perm, anything else a
 * protocol error. */
enum perr_kind smtp_kind_of(int code, enum perr_kind perm)
{
	if (code >= 400 && code < 500)
		return PERR_TEMP;
	if (code >= 500 && code < 600)
		return perm;
	return PERR_PROTOCOL;
}

int smtp_local_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
		    const char *fmt, ...)
{
	char buf[PERR_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	perr_set(e, kind, "%s: %s", s->conn.peer, buf);
	return perr_because(e, cause);
}

/* ---- what a server echoes of the credentials ---------------------------- *
 *
 * A server may quote the AUTH line in its refusal ("535 AUTH PLAIN AGpv...
 * failed").  Every line read is masked before it reaches the transcript,
 * an error text, the log or the spool: the secret itself, and any run of
 * base64 characters taken from a credential payload sent in this session
 * (kept, wiped, until the session ends). */

static int is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

void smtp_forget_payload(struct smtp *s)
{
	if (s->sent_b64) {
		wipe(s->sent_b64, strlen(s->sent_b64));
		free(s->sent_b64);
		s->sent_b64 = NULL;
	}
}

static void remember_payload(struct smtp *s, const char *b64)
{
	smtp_forget_payload(s);
	if (strlen(b64) >= SMTP_ECHO_MIN)
		s->sent_b64 = xstrdup(b64);
}

/* Overwrite [p, p + n) of line with '*' (the length is kept, so nothing
 * moves and the reply parser sees the same shape). */
static void stars(char *p, size_t n)
{
	memset(p, '*', n);
}

void smtp_mask_echo(const struct smtp *s, char *line, size_t len)
{
	const struct smtp_params *p = s->p;
	size_t i = 0;

	if (len <= 4)
		return;
	line += 4; /* the code and its separator stay */
	len -= 4;
	if (p && p->secret && p->secret_len >= 4) {
		char *hit;

		while ((hit = memmem(line, len, p->secret, p->secret_len)))
			stars(hit, p->secret_len);
	}
	if (!s->sent_b64)
		return;
	while (i < len) {
		size_t j = i;

		while (j < len && is_b64((unsigned char)line[j]))
			j++;
		if (j - i >= SMTP_ECHO_MIN &&
		    memmem(s->sent_b64, strlen(s->sent_b64), line + i, j - i))
			stars(line + i, j - i);
		i = j + 1;
	}
}

/* ---- sending and receiving ---------------------------------------------- */

/* Queue one command line (CRLF added).  Control characters are refused
 * here as the last guard against command injection. */
int smtp_cmd(struct smtp *s, struct perr *e, const char *fmt, ...)
{
	char buf[SMTP_CMD_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, SMTP_CMD_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= SMTP_CMD_MAX)
		return smtp_local_fail(s, e, PERR_USAGE, PERR_CAUSE_NONE,
				       "SMTP command longer than %d bytes", SMTP_CMD_MAX);
	for (int i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch < 0x20 || ch == 0x7f)
			return smtp_local_fail(s, e, PERR_DATA, PERR_CAUSE_NONE,
					       "refusing to send a command that "
					       "contains a control character (byte %d)",
					       ch);
	}
	log_wire('C', buf, (size_t)n);
	memcpy(buf + n, "\r\n", 2);
	return conn_write(&s->conn, buf, (size_t)n + 2, e) < 0
		   ? smtp_io_error(s, e, IO_SEND, ST_COUNT)
		   : 0;
}

/* Queue "PREFIX PAYLOAD\r\n", showing SHOWN in the transcript. */
int smtp_send_secret(struct smtp *s, const char *prefix, const char *payload, const char *shown,
		     struct perr *e)
{
	remember_payload(s, payload);
	log_wire('C', shown, strlen(shown));
	if (conn_write(&s->conn, prefix, strlen(prefix), e) < 0 ||
	    conn_write(&s->conn, payload, strlen(payload), e) < 0 ||
	    conn_write(&s->conn, "\r\n", 2, e) < 0)
		return smtp_io_error(s, e, IO_SEND, ST_AUTH);
	return 0;
}

int smtp_flush(struct smtp *s, enum smtp_state st, struct perr *e)
{
	conn_arm(&s->conn);
	if (conn_flush(&s->conn, e) < 0)
		return smtp_io_error(s, e, IO_SEND, st); /* the caller closes, after drain() */
	return 0;
}

/* Read one reply into s->reply within the deadline already armed. */
int smtp_read_reply_armed(struct smtp *s, enum smtp_state st, struct perr *e)
{
	char line[REPLY_LINE_MAX];
	size_t len;
	int rc;

	reply_init(&s->reply);
	do {
		if (conn_read_line(&s->conn, line, sizeof line, &len, e) < 0)
			return smtp_io_fail(s, e, IO_WAIT, st);
		smtp_mask_echo(s, line, len);
		log_wire('S', line, len);
		rc = reply_feed(&s->reply, line, len, e);
		if (rc < 0)
			return smtp_io_fail(s, e, IO_READ, st);
	} while (rc == 0);
	return 0;
}

int smtp_read_reply(struct smtp *s, enum smtp_state st, struct perr *e)
{
	conn_arm(&s->conn);
	return smtp_read_reply_armed(s, st, e);
}

/* Flush and read the reply. */
int smtp_transact(struct smtp *s, enum smtp_state st, struct perr *e)
{
	if (smtp_flush(s, st, e) < 0)
		return -1;
	return smtp_read_reply(s, st, e);
}

/* ---- greeting, EHLO, STARTTLS ------------------------------------------- */

static int kw_is(const char *p, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(p, kw, n) == 0;
}

void smtp_parse_ehlo(const struct reply *r, struct smtp_caps *caps)
{
	static const struct {
		const char *kw;
		unsigned bit;
	} simple[] = {
		{ "PIPELINING", SMTP_CAP_PIPELINING }, { "CHUNKING", SMTP_CAP_CHUNKING },
		{ "8BITMIME", SMTP_CAP_8BITMIME },     { "SMTPUTF8", SMTP_CAP_SMTPUTF8 },
		{ "DSN", SMTP_CAP_DSN },               { "STARTTLS", SMTP_CAP_STARTTLS },
		{ "ENHANCEDSTATUSCODES", SMTP_CAP_ENHANCEDSTATUSCODES },
	};
	char line[REPLY_LINE_MAX];

	memset(caps, 0, sizeof *caps);
	for (unsigned i = 1; reply_line(r, i, line, sizeof line) >= 0; i++) {
		char *p = line;
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " =");
		for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
			if (kw_is(p, n, simple[k].kw))
				caps->flags |= simple[k].bit;
		if (kw_is(p, n, "SIZE")) {
			caps->flags |= SMTP_CAP_SIZE;
			caps->size_max = strtoull(p + n, NULL, 10);
		} else if (kw_is(p, n, "AUTH")) {
			caps->flags |= SMTP_CAP_AUTH;
			smtp_parse_mechs(caps, p + n + (p[n] ? 1 : 0));
		}
	}
}

static void parse_caps(struct smtp *s)
{
	smtp_parse_ehlo(&s->reply, &s->caps);
}

static int ehlo(struct smtp *s, struct perr *e)
{
	const char *helo = s->p->helo && *s->p->helo ? s->p->helo : "localhost";

	memset(&s->caps, 0, sizeof s->caps);
	if (smtp_cmd(s, e, "EHLO %s", helo) < 0 || smtp_transact(s, ST_EHLO, e) < 0)
		return -1;
	if (s->reply.code == 250) {
		parse_caps(s);
		OBSERVE(s, ehlo, &s->reply, s->tls_active);
		return 0;
	}
	if (s->reply.code / 100 != 5 || s->p->tls != TLS_OFF)
		return smtp_server_fail(s, e, smtp_kind_of(s->reply.code, PERR_UNAVAILABLE),
					PERR_CAUSE_EHLO, "server refused EHLO");
	if (smtp_cmd(s, e, "HELO %s", helo) < 0 || smtp_transact(s, ST_HELO, e) < 0)
		return -1;
	if (s->reply.code != 250)
		return smtp_server_fail(s, e, smtp_kind_of(s->reply.code, PERR_UNAVAILABLE),
					PERR_CAUSE_EHLO, "server refused HELO");
	OBSERVE(s, ehlo, &s->reply, s->tls_active);
	return 0;
}

static int greeting(struct smtp *s, struct perr *e)
{
	if (smtp_read_reply(s, ST_GREETING, e) < 0)
		return -1;
	OBSERVE(s, greeting, &s->reply);
	reply_oneline(&s->reply, s->greeting, sizeof s->greeting);
	if (s->reply.code == 220)
		return 0;
	if (s->reply.code / 100 == 4)
		return smtp_server_fail(s, e, PERR_TEMP, PERR_CAUSE_GREETING,
					"server refused the connection for now");
	if (s->reply.code / 100 == 5)
		return smtp_server_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_GREETING,
					"server refused the connection");
	return smtp_server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_GREETING, "unexpected greeting");
}

/* tls_start, or for an observer that wants the certificate described,
 * tls_start_probe and the same verdict: an unverified server is refused
 * with tls_start's line. */
static int handshake(struct smtp *s, struct perr *e)
{
	const struct smtp_observer *o = s->p->observer;
	struct tls_peer_info info;

	if (!o || !o->tls)
		return tls_start(&s->conn, &s->p->tls_opts, e);
	if (tls_start_probe(&s->conn, &s->p->tls_opts, &info, e) < 0)
		return -1;
	o->tls(o->ctx, &info);
	if (info.verified)
		return 0;
	perr_set(e, PERR_TEMP, "%s", info.verify_error);
	return perr_because(e, info.verify_cause);
}

static int start_tls(struct smtp *s, struct perr *e)
{
	conn_arm(&s->conn);
	if (handshake(s, e) < 0) {
		conn_close(&s->conn); /* half-done TLS: not even QUIT */
		return -1;
	}
	s->tls_active = 1;
	return 0;
}

static int starttls(struct smtp *s, struct perr *e)
{
	if (!(s->caps.flags & SMTP_CAP_STARTTLS))
		return smtp_local_fail(s, e, PERR_TEMP, PERR_CAUSE_NO_STARTTLS,
				  "server does not offer STARTTLS; refusing to send the password "
				  "or the message in the clear");
	if (smtp_cmd(s, e, "STARTTLS") < 0 || smtp_transact(s, ST_STARTTLS, e) < 0)
		return -1;
	if (s->reply.code != 220)
		return smtp_server_fail(s, e, PERR_TEMP, PERR_CAUSE_STARTTLS,
					"server refused STARTTLS");
	if (conn_has_buffered_input(&s->conn)) {
		conn_close(&s->conn);
		return smtp_local_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_PROTOCOL,
				  "server sent data after its 220 reply to STARTTLS, before the "
				  "TLS handshake (command injection?); refusing to continue");
	}
	if (start_tls(s, e) < 0)
		return -1;
	return ehlo(s, e); /* capabilities before TLS are forgotten */
}

/* ---- open --------------------------------------------------------------- */

static int open_session(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;

	if (p->tls == TLS_IMPLICIT && start_tls(s, e) < 0)
		return -1;
	if (greeting(s, e) < 0 || ehlo(s, e) < 0)
		return -1;
	if (p->tls == TLS_STARTTLS && starttls(s, e) < 0)
		return -1;
	return smtp_authenticate(s, e);
}

int smtp_open(struct smtp *s, const struct smtp_params *p, struct perr *e)
{
	memset(&s->caps, 0, sizeof s->caps);
	s->p = p;
	s->tls_active = 0;
	s->auth_pending = 0;
	s->rcpt_refused = 0;
	s->sent_b64 = NULL;
	s->greeting[0] = '\0';
	reply_init(&s->reply);
	conn_init(&s->conn, p->timeout_s);
	if (conn_connect(&s->conn, p->host, p->port, e) < 0)
		return -1;
	OBSERVE(s, connected, s->conn.addr);
	if (open_session(s, e) == 0)
		return 0;
	/* After a refusal the server waits for QUIT (except after 421, when
	 * it closes); I/O, TLS and protocol failures closed it already. */
	if (s->reply.code == 421)
		smtp_close(s);
	else
		smtp_quit(s);
	return -1;
}

/* ---- closing ------------------------------------------------------------ */

void smtp_quit(struct smtp *s)
{
	struct perr tmp;
	int ms = s->conn.timeout_ms < 1000 ? s->conn.timeout_ms : 1000;

	if (s->conn.fd < 0) {
		smtp_close(s);
		return;
	}
	perr_clear(&tmp);
	s->conn.wlen = 0;
	if (smtp_cmd(s, &tmp, "QUIT") == 0) {
		s->conn.deadline = mono_ms() + ms;
		if (conn_flush(&s->conn, &tmp) == 0)
			smtp_read_reply_armed(s, ST_QUIT, &tmp);
	}
	smtp_close(s);
}

void smtp_close(struct smtp *s)
{
	conn_close(&s->conn);
	smtp_forget_payload(s);
}
