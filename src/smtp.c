/* smtp.c — the SMTP client protocol engine: greeting, EHLO capabilities,
 * STARTTLS, AUTH, and mail transactions (MAIL, RCPT..., DATA or BDAT),
 * pipelined when the server offers PIPELINING: a one-line AUTH goes out
 * with the first transaction, and the transactions of a batch go back to
 * back, each message's end with the next one's commands (see "the
 * pipelined batch" below for what waits for what, and why).
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

#include "addr.h"
#include "base64.h"
#include "body.h"
#include "log.h"
#include "scram.h"
#include "smtp.h"
#include "util.h"

/* Message bytes read from the source per step; the encoded output (at
 * most twice as much) fills the 64 KB write buffer in one go. */
#define BODY_CHUNK 32768
/* One encoded chunk plus body_finish's CRLF and the final ".\r\n". */
#define SLOT_SIZE (BODY_OUT_MAX(BODY_CHUNK) + 8)
/* BDAT chunks sent ahead of their replies when pipelining. */
#define BDAT_WINDOW 8
/* Longest command line built here (MAIL FROM with every parameter is
 * under 700 bytes; AUTH payloads go through send_secret instead). */
#define CMD_MAX 1024
/* Longest DSN envelope id (RFC 3461 4.4). */
#define ENVID_MAX 100
/* Server text quoted per refused recipient. */
#define RCPT_TEXT_MAX 200

enum smtp_state {
	ST_GREETING, ST_EHLO, ST_HELO, ST_STARTTLS, ST_AUTH, ST_MAIL, ST_RCPT,
	ST_DATA, ST_BODY, ST_BDAT, ST_RSET, ST_QUIT, ST_COUNT
};

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

static const struct {
	const char *name;
	unsigned bit;
	enum auth_mech mech;
} mech_table[] = {
	{ "SCRAM-SHA-256", SMTP_MECH_SCRAM_SHA_256, AUTH_SCRAM_SHA_256 },
	{ "PLAIN", SMTP_MECH_PLAIN, AUTH_PLAIN },
	{ "LOGIN", SMTP_MECH_LOGIN, AUTH_LOGIN },
	{ "XOAUTH2", SMTP_MECH_XOAUTH2, AUTH_XOAUTH2 },
	{ "OAUTHBEARER", SMTP_MECH_OAUTHBEARER, AUTH_OAUTHBEARER },
	{ "EXTERNAL", SMTP_MECH_EXTERNAL, AUTH_EXTERNAL },
	{ "CRAM-MD5", SMTP_MECH_CRAM_MD5, AUTH_OFF /* not implemented */ },
};
#define NMECHS (sizeof mech_table / sizeof mech_table[0])

/* ---- errors ------------------------------------------------------------- */

enum io_dir { IO_SEND, IO_WAIT, IO_READ };

/* An I/O or protocol failure (conn's text has no peer): "host:port: TEXT
 * while waiting for the reply to RCPT TO".  The connection stays open (a
 * failed write may still have replies to read, see drain()); the caller
 * closes it. */
static int io_error(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st)
{
	if (!e)
		return -1;
	perr_prefix(e, "%s", s->conn.peer);
	if (st == ST_COUNT)
		perr_append(e, " while sending commands");
	else if (st == ST_BODY && dir == IO_SEND)
		perr_append(e, " while sending the message");
	else if (st == ST_GREETING)
		perr_append(e, " while %s the greeting", dir == IO_WAIT ? "waiting for" : "reading");
	else if (dir == IO_SEND)
		perr_append(e, " while sending %s", state_names[st]);
	else
		perr_append(e, " while %s the reply to %s", dir == IO_WAIT ? "waiting for" : "reading",
			    state_names[st]);
	if (st == ST_GREETING)
		e->cause = PERR_CAUSE_GREETING;
	else if (dir == IO_READ || e->kind == PERR_PROTOCOL)
		e->cause = PERR_CAUSE_PROTOCOL;
	else
		e->cause = PERR_CAUSE_LOST;
	return -1;
}

/* io_error, and the connection is closed: nothing sane can follow. */
static int io_fail(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st)
{
	io_error(s, e, dir, st);
	conn_close(&s->conn);
	return -1;
}

/* "host:port: WHAT: 550 5.1.1 text" from the last reply. */
static int server_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
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
static enum perr_kind kind_of(int code, enum perr_kind perm)
{
	if (code >= 400 && code < 500)
		return PERR_TEMP;
	if (code >= 500 && code < 600)
		return perm;
	return PERR_PROTOCOL;
}

static int local_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int local_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
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

#define ECHO_MIN 8   /* shortest run masked: shorter ones match by chance */

static int is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

static void forget_payload(struct smtp *s)
{
	if (s->sent_b64) {
		wipe(s->sent_b64, strlen(s->sent_b64));
		free(s->sent_b64);
		s->sent_b64 = NULL;
	}
}

static void remember_payload(struct smtp *s, const char *b64)
{
	forget_payload(s);
	if (strlen(b64) >= ECHO_MIN)
		s->sent_b64 = xstrdup(b64);
}

/* Overwrite [p, p + n) of line with '*' (the length is kept, so nothing
 * moves and the reply parser sees the same shape). */
static void stars(char *p, size_t n)
{
	memset(p, '*', n);
}

static void mask_echo(const struct smtp *s, char *line, size_t len)
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
		if (j - i >= ECHO_MIN && memmem(s->sent_b64, strlen(s->sent_b64), line + i, j - i))
			stars(line + i, j - i);
		i = j + 1;
	}
}

/* ---- sending and receiving ---------------------------------------------- */

static int cmd(struct smtp *s, struct perr *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queue one command line (CRLF added).  Control characters are refused
 * here as the last guard against command injection. */
static int cmd(struct smtp *s, struct perr *e, const char *fmt, ...)
{
	char buf[CMD_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, CMD_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= CMD_MAX)
		return local_fail(s, e, PERR_USAGE, PERR_CAUSE_NONE, "SMTP command longer than %d bytes", CMD_MAX);
	for (int i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch < 0x20 || ch == 0x7f)
			return local_fail(s, e, PERR_DATA, PERR_CAUSE_NONE, "refusing to send a command that "
					  "contains a control character (byte %d)", ch);
	}
	log_wire('C', buf, (size_t)n);
	memcpy(buf + n, "\r\n", 2);
	return conn_write(&s->conn, buf, (size_t)n + 2, e) < 0 ? io_error(s, e, IO_SEND, ST_COUNT)
								    : 0;
}

/* Queue "PREFIX PAYLOAD\r\n", showing SHOWN in the transcript. */
static int send_secret(struct smtp *s, const char *prefix, const char *payload, const char *shown,
		       struct perr *e)
{
	remember_payload(s, payload);
	log_wire('C', shown, strlen(shown));
	if (conn_write(&s->conn, prefix, strlen(prefix), e) < 0 ||
	    conn_write(&s->conn, payload, strlen(payload), e) < 0 ||
	    conn_write(&s->conn, "\r\n", 2, e) < 0)
		return io_error(s, e, IO_SEND, ST_AUTH);
	return 0;
}

static int flush(struct smtp *s, enum smtp_state st, struct perr *e)
{
	conn_arm(&s->conn);
	if (conn_flush(&s->conn, e) < 0)
		return io_error(s, e, IO_SEND, st); /* the caller closes, after drain() */
	return 0;
}

/* Read one reply into s->reply within the deadline already armed. */
static int read_reply_armed(struct smtp *s, enum smtp_state st, struct perr *e)
{
	char line[REPLY_LINE_MAX];
	size_t len;
	int rc;

	reply_init(&s->reply);
	do {
		if (conn_read_line(&s->conn, line, sizeof line, &len, e) < 0)
			return io_fail(s, e, IO_WAIT, st);
		mask_echo(s, line, len);
		log_wire('S', line, len);
		rc = reply_feed(&s->reply, line, len, e);
		if (rc < 0)
			return io_fail(s, e, IO_READ, st);
	} while (rc == 0);
	return 0;
}

static int read_reply(struct smtp *s, enum smtp_state st, struct perr *e)
{
	conn_arm(&s->conn);
	return read_reply_armed(s, st, e);
}

/* Flush and read the reply. */
static int transact(struct smtp *s, enum smtp_state st, struct perr *e)
{
	if (flush(s, st, e) < 0)
		return -1;
	return read_reply(s, st, e);
}

/* ---- greeting, EHLO, STARTTLS ------------------------------------------- */

static int kw_is(const char *p, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(p, kw, n) == 0;
}

static void parse_mechs(struct smtp_caps *caps, const char *p)
{
	while (*p) {
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		for (size_t i = 0; i < NMECHS && n; i++)
			if (kw_is(p, n, mech_table[i].name))
				caps->mechs |= mech_table[i].bit;
		p += n;
	}
}

const char *smtp_mech_name(unsigned bit)
{
	for (size_t i = 0; i < NMECHS; i++)
		if (mech_table[i].bit == bit)
			return mech_table[i].name;
	return NULL;
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
			parse_mechs(caps, p + n + (p[n] ? 1 : 0));
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
	if (cmd(s, e, "EHLO %s", helo) < 0 || transact(s, ST_EHLO, e) < 0)
		return -1;
	if (s->reply.code == 250) {
		parse_caps(s);
		return 0;
	}
	if (s->reply.code / 100 != 5 || s->p->tls != TLS_OFF)
		return server_fail(s, e, kind_of(s->reply.code, PERR_UNAVAILABLE), PERR_CAUSE_EHLO,
				   "server refused EHLO");
	if (cmd(s, e, "HELO %s", helo) < 0 || transact(s, ST_HELO, e) < 0)
		return -1;
	if (s->reply.code != 250)
		return server_fail(s, e, kind_of(s->reply.code, PERR_UNAVAILABLE), PERR_CAUSE_EHLO,
				   "server refused HELO");
	return 0;
}

static int greeting(struct smtp *s, struct perr *e)
{
	if (read_reply(s, ST_GREETING, e) < 0)
		return -1;
	if (s->reply.code == 220)
		return 0;
	if (s->reply.code / 100 == 4)
		return server_fail(s, e, PERR_TEMP, PERR_CAUSE_GREETING, "server refused the connection for now");
	if (s->reply.code / 100 == 5)
		return server_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_GREETING, "server refused the connection");
	return server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_GREETING, "unexpected greeting");
}

static int start_tls(struct smtp *s, struct perr *e)
{
	conn_arm(&s->conn);
	if (tls_start(&s->conn, &s->p->tls_opts, e) < 0) {
		conn_close(&s->conn); /* half-done TLS: not even QUIT */
		if (e && strstr(e->text, "does not speak TLS here")) {
			if (s->p->tls == TLS_IMPLICIT)
				perr_append(e, "; for STARTTLS ports (587, 25) set tls = starttls");
			else
				perr_append(e, "; it answered 220 to STARTTLS but then did not "
					    "start TLS: a broken server, or something on the network "
					    "path tampering with STARTTLS; try tls = implicit with "
					    "port = 465, or run postern --probe");
		}
		return -1;
	}
	s->tls_active = 1;
	return 0;
}

static int starttls(struct smtp *s, struct perr *e)
{
	if (!(s->caps.flags & SMTP_CAP_STARTTLS))
		return local_fail(s, e, PERR_TEMP, PERR_CAUSE_STARTTLS,
				  "server does not offer STARTTLS; refusing to send the password "
				  "or the message in the clear; if the server uses TLS from the "
				  "first byte set tls = implicit and port = 465");
	if (cmd(s, e, "STARTTLS") < 0 || transact(s, ST_STARTTLS, e) < 0)
		return -1;
	if (s->reply.code != 220)
		return server_fail(s, e, PERR_TEMP, PERR_CAUSE_STARTTLS, "server refused STARTTLS");
	if (conn_has_buffered_input(&s->conn)) {
		conn_close(&s->conn);
		return local_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_PROTOCOL,
				  "server sent data after its 220 reply to STARTTLS, before the "
				  "TLS handshake (command injection?); refusing to continue");
	}
	if (start_tls(s, e) < 0)
		return -1;
	return ehlo(s, e); /* capabilities before TLS are forgotten */
}

/* ---- AUTH --------------------------------------------------------------- */

static int is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	       strncmp(addr, "::ffff:127.", 11) == 0;
}

static void mech_names(unsigned mechs, char *buf, size_t cap)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < NMECHS; i++)
		if ((mechs & mech_table[i].bit) && o + 1 < cap)
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? " " : "",
					      mech_table[i].name);
	if (!buf[0])
		str_copy(buf, "only mechanisms postern does not know", cap);
}

static const char *mech_name(enum auth_mech m)
{
	for (size_t i = 0; i < NMECHS; i++)
		if (mech_table[i].mech == m)
			return mech_table[i].name;
	return "?";
}

/* The mechanism to use, or AUTH_OFF with e filled. */
static enum auth_mech choose_mech(struct smtp *s, struct perr *e)
{
	unsigned offered = s->caps.mechs;
	enum auth_mech want = s->p->auth;
	char names[128];

	mech_names(offered, names, sizeof names);
	if (want == AUTH_AUTO) {
		/* Password mechanisms, strongest first; never OAuth2 or
		 * EXTERNAL, which need a token or a certificate. */
		if (offered & SMTP_MECH_SCRAM_SHA_256)
			return AUTH_SCRAM_SHA_256;
		if (offered & SMTP_MECH_PLAIN)
			return AUTH_PLAIN;
		if (offered & SMTP_MECH_LOGIN)
			return AUTH_LOGIN;
		local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_AUTH, "server offers AUTH %s, none of which postern "
			   "can use with a password (it knows SCRAM-SHA-256, PLAIN and LOGIN); "
			   "for a token or a certificate set auth = xoauth2, oauthbearer or "
			   "external", names);
		return AUTH_OFF;
	}
	for (size_t i = 0; i < NMECHS; i++)
		if (mech_table[i].mech == want && (offered & mech_table[i].bit))
			return want;
	local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_AUTH, "server does not offer AUTH %s; it offers %s; "
		   "set auth to one of those or auto", mech_name(want), names);
	return AUTH_OFF;
}

static int auth_result(struct smtp *s, struct perr *e)
{
	int code = s->reply.code;

	if (code == 235) {
		log_event("authenticated as %s", s->p->user ? s->p->user : "(certificate)");
		return 0;
	}
	if (code / 100 == 4)
		return server_fail(s, e, PERR_TEMP, PERR_CAUSE_AUTH, "authentication failed temporarily");
	if (code / 100 == 5) {
		/* submit.c (advise) and probe.c append the fix. */
		return server_fail(s, e, PERR_AUTH, PERR_CAUSE_AUTH, "authentication refused");
	}
	return server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_AUTH, "unexpected reply to AUTH");
}

/* Base64 of raw (wiped by the caller) into a fresh buffer. */
static char *b64_of(const unsigned char *raw, size_t n, size_t *outlen)
{
	char *b = xmalloc(BASE64_LEN(n) + 1);

	*outlen = base64_encode(raw, n, b);
	return b;
}

/* Send base64(raw) as "PREFIX b64" (or "=" when empty), flush, wipe every
 * copy. */
static int put_payload(struct smtp *s, const char *prefix, const unsigned char *raw, size_t n,
		       const char *shown, struct perr *e)
{
	size_t blen;
	char *b64 = b64_of(raw, n, &blen);
	int rc;

	rc = send_secret(s, prefix, n ? b64 : "=", shown, e);
	wipe(b64, blen);
	free(b64);
	if (rc == 0)
		rc = flush(s, ST_AUTH, e);
	if (s->conn.wbuf)
		wipe(s->conn.wbuf, CONN_WBUF_SIZE);
	return rc;
}

/* put_payload, then read the reply. */
static int send_payload(struct smtp *s, const char *prefix, const unsigned char *raw, size_t n,
			const char *shown, struct perr *e)
{
	if (put_payload(s, prefix, raw, n, shown, e) < 0)
		return -1;
	return read_reply(s, ST_AUTH, e);
}

/* Decode the base64 text of a 334 challenge into out (cap bytes);
 * returns its length, or -1 when it is not base64. */
static long challenge(const struct smtp *s, unsigned char *out, size_t cap)
{
	return base64_decode(s->reply.text, strcspn(s->reply.text, " \n"), out, cap);
}

/* The error details of an OAuth2 334 challenge (base64 JSON such as
 * {"status":"401","schemes":"bearer"}), decoded and sanitised for the
 * error line; the raw text when it is not base64. */
static void oauth_reason(const struct smtp *s, char *out, size_t cap)
{
	unsigned char raw[REPLY_TEXT_MAX];
	long n = challenge(s, raw, sizeof raw);

	if (n > 0)
		log_sanitize(out, cap, (const char *)raw, (size_t)n);
	else
		log_sanitize(out, cap, s->reply.text, strlen(s->reply.text));
}

/* The OAuth2 error details say the token itself was refused (Gmail:
 * {"status":"401",...}; RFC 7628: "invalid_token"): a new one may do. */
static bool is_token_refusal(const char *why)
{
	return strstr(why, "\"status\"") && (strstr(why, "401") || strstr(why, "invalid_token"));
}

/* PLAIN, XOAUTH2, OAUTHBEARER, EXTERNAL: one line with an initial
 * response.  A 334 (the server's error details for the OAuth mechanisms,
 * RFC 7628 3.2.2) is answered with `on334` so that the final reply
 * follows; the details go into the error line. */
static int auth_initial(struct smtp *s, enum auth_mech m, const unsigned char *raw, size_t n,
			const char *on334, struct perr *e)
{
	char prefix[32], shown[40], why[256];

	snprintf(prefix, sizeof prefix, "AUTH %s ", mech_name(m));
	snprintf(shown, sizeof shown, "AUTH %s ****", mech_name(m));
	if (send_payload(s, prefix, raw, n, shown, e) < 0)
		return -1;
	if (s->reply.code != 334 || !on334)
		return auth_result(s, e);
	oauth_reason(s, why, sizeof why);
	if (cmd(s, e, "%s", on334) < 0 || transact(s, ST_AUTH, e) < 0)
		return -1;
	if (auth_result(s, e) == 0)
		return 0;
	e->token_refused = is_token_refusal(why);
	perr_append(e, "; the server says the OAuth2 token was refused: %s; the token must be "
		    "valid and unexpired", why);
	return -1;
}

static int expect_334(struct smtp *s, struct perr *e)
{
	if (s->reply.code == 334)
		return 0;
	if (s->reply.code == 235)
		return server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_AUTH, "server accepted AUTH before the "
				   "exchange was complete");
	auth_result(s, e); /* fills e: 4xx, 5xx or an unexpected code */
	return -1;
}

static int auth_login(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;

	if (cmd(s, e, "AUTH LOGIN") < 0 || transact(s, ST_AUTH, e) < 0 || expect_334(s, e) < 0)
		return -1;
	if (send_payload(s, "", (const unsigned char *)p->user, strlen(p->user), "****", e) < 0 ||
	    expect_334(s, e) < 0)
		return -1;
	if (send_payload(s, "", (const unsigned char *)p->secret, p->secret_len, "****", e) < 0)
		return -1;
	return auth_result(s, e);
}

/* ---- SCRAM-SHA-256 (the messages themselves are scram.c's) ---- */

/* Read an AUTH reply, showing a 334 payload as "334 ****": the server's
 * signature, like the client proof, would let a reader of the transcript
 * test password guesses offline. */
static int read_masked(struct smtp *s, struct perr *e)
{
	char line[REPLY_LINE_MAX];
	size_t len;
	int rc;

	conn_arm(&s->conn);
	reply_init(&s->reply);
	do {
		if (conn_read_line(&s->conn, line, sizeof line, &len, e) < 0)
			return io_fail(s, e, IO_WAIT, ST_AUTH);
		mask_echo(s, line, len);
		if (len > 4 && strncmp(line, "334", 3) == 0)
			log_wire('S', "334 ****", 8);
		else
			log_wire('S', line, len);
		rc = reply_feed(&s->reply, line, len, e);
		if (rc < 0)
			return io_fail(s, e, IO_READ, ST_AUTH);
	} while (rc == 0);
	wipe(line, sizeof line);
	return 0;
}

/* e holds a local SCRAM failure: name the peer and, when the server
 * waits for our next message, cancel the exchange with "*" (RFC 4954). */
static int scram_fail(struct smtp *s, int cancel, struct perr *e)
{
	struct perr tmp;

	perr_prefix(e, "%s", s->conn.peer);
	if (e)
		e->cause = PERR_CAUSE_AUTH;
	perr_clear(&tmp);
	if (cancel && s->conn.fd >= 0 && cmd(s, &tmp, "*") == 0)
		transact(s, ST_AUTH, &tmp);
	return -1;
}

/* After the client-final message: 334 with v= (checked, then answered
 * with an empty line for the final 235), or 235 carrying v=, or a
 * refusal.  A 235 without a signature is refused: SCRAM's point is that
 * the server proves it knows the password too. */
static int scram_outcome(struct smtp *s, struct scram *sc, struct perr *e)
{
	unsigned char in[SCRAM_MSG_MAX];
	int code = s->reply.code, rc;
	long len;

	if (code != 334 && code != 235)
		return auth_result(s, e);
	len = challenge(s, in, sizeof in);
	if (len <= 0 && code == 235) {
		perr_set(e, PERR_AUTH, "server accepted SCRAM-SHA-256 without its signature; "
			 "the server may not be the one you think");
		return scram_fail(s, 0, e);
	}
	if (len <= 0) {
		perr_set(e, PERR_PROTOCOL, "SCRAM server-final message is not base64");
		return scram_fail(s, 1, e);
	}
	rc = scram_verify(sc, (const char *)in, (size_t)len, e);
	wipe(in, sizeof in);
	if (rc < 0)
		return scram_fail(s, code == 334, e);
	if (code == 334 && (cmd(s, e, "%s", "") < 0 || transact(s, ST_AUTH, e) < 0))
		return -1;
	return auth_result(s, e);
}

static int auth_scram(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;
	unsigned char in[SCRAM_MSG_MAX];
	char out[SCRAM_OUT_MAX];
	struct scram sc;
	size_t n;
	long len;
	int rc = -1;

	if (scram_start(&sc, p->user, NULL, out, sizeof out, &n, e) < 0)
		return scram_fail(s, 0, e);
	if (send_payload(s, "AUTH SCRAM-SHA-256 ", (const unsigned char *)out, n,
			 "AUTH SCRAM-SHA-256 ****", e) < 0 || expect_334(s, e) < 0)
		goto out;
	len = challenge(s, in, sizeof in);
	if (len <= 0) {
		perr_set(e, PERR_PROTOCOL, "SCRAM server-first message is not base64");
		scram_fail(s, 1, e);
		goto out;
	}
	if (scram_final(&sc, p->secret, p->secret_len, (const char *)in, (size_t)len, out,
			sizeof out, &n, e) < 0) {
		scram_fail(s, 1, e);
		goto out;
	}
	if (put_payload(s, "", (const unsigned char *)out, n, "****", e) < 0 ||
	    read_masked(s, e) < 0)
		goto out;
	rc = scram_outcome(s, &sc, e);
out:
	scram_clear(&sc);
	wipe(out, sizeof out);
	wipe(in, sizeof in);
	return rc;
}

/* Build the initial response of a one-line mechanism into raw (cap). */
static size_t auth_payload(struct smtp *s, enum auth_mech m, unsigned char *raw, size_t cap)
{
	const struct smtp_params *p = s->p;
	const char *u = p->user ? p->user : "";
	size_t ul = strlen(u), sl = p->secret_len, o = 0;
	int n;

#define PUT(src, len)                                      \
	do {                                               \
		if (o + (len) <= cap)                      \
			memcpy(raw + o, (src), (len));     \
		o += (len);                                \
	} while (0)
	switch (m) {
	case AUTH_PLAIN: /* authzid NUL authcid NUL password */
		PUT("", 1);
		PUT(u, ul);
		PUT("", 1);
		PUT(p->secret, sl);
		break;
	case AUTH_XOAUTH2:
		PUT("user=", 5);
		PUT(u, ul);
		PUT("\001auth=Bearer ", 13);
		PUT(p->secret, sl);
		PUT("\001\001", 2);
		break;
	case AUTH_OAUTHBEARER:
		PUT("n,a=", 4);
		PUT(u, ul);
		n = snprintf((char *)raw + (o < cap ? o : cap), o < cap ? cap - o : 0,
			     ",\001host=%s\001port=%u\001auth=Bearer ", p->host, p->port);
		o += (size_t)n;
		PUT(p->secret, sl);
		PUT("\001\001", 2);
		break;
	default: /* EXTERNAL: the identity comes from the certificate */
		break;
	}
#undef PUT
	return o;
}

/* RFC 4954 section 4: AUTH may be followed by other commands in one
 * flight only with an initial response, a mechanism that completes in one
 * round trip, and no security layer: PLAIN and EXTERNAL.  XOAUTH2 and
 * OAUTHBEARER answer a bad token with a 334 challenge, so they wait. */
static int can_pipeline_auth(const struct smtp *s, enum auth_mech m)
{
	return s->p->pipeline_auth && (s->caps.flags & SMTP_CAP_PIPELINING) &&
	       (m == AUTH_PLAIN || m == AUTH_EXTERNAL ||
		(s->p->pipeline_token && (m == AUTH_XOAUTH2 || m == AUTH_OAUTHBEARER)));
}

/* Queue "AUTH MECH payload" without sending it: it goes out with the
 * first transaction, whose batch reads the reply (smtp_send_batch).  The
 * write buffer is wiped once it has been sent. */
static int auth_ahead(struct smtp *s, enum auth_mech m, const unsigned char *raw, size_t n,
		      struct perr *e)
{
	char prefix[32], shown[40];
	size_t blen;
	char *b64 = b64_of(raw, n, &blen);
	int rc;

	snprintf(prefix, sizeof prefix, "AUTH %s ", mech_name(m));
	snprintf(shown, sizeof shown, "AUTH %s ****", mech_name(m));
	s->conn.wipe_wbuf = 1;
	rc = send_secret(s, prefix, n ? b64 : "=", shown, e);
	wipe(b64, blen);
	free(b64);
	if (rc == 0)
		s->auth_pending = 1;
	return rc;
}

static int authenticate(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;
	enum auth_mech m;
	unsigned char *raw;
	size_t cap, n;
	int rc;

	if (p->auth == AUTH_OFF || ((!p->user || !*p->user) && p->auth != AUTH_EXTERNAL))
		return 0;
	if (!s->tls_active && !is_loopback(s->conn.addr))
		return local_fail(s, e, PERR_CONFIG, PERR_CAUSE_AUTH, "refusing to send the password over an "
				  "unencrypted connection; set tls = starttls or implicit");
	if (!(s->caps.flags & SMTP_CAP_AUTH))
		return local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_AUTH, "server offers no AUTH; if it needs "
				  "no login, remove user or set auth = off");
	m = choose_mech(s, e);
	if (m == AUTH_OFF)
		return -1;
	if (m != AUTH_EXTERNAL && !p->secret)
		return local_fail(s, e, PERR_CONFIG, PERR_CAUSE_AUTH, "no password for %s", p->user);
	if (m == AUTH_LOGIN)
		return auth_login(s, e);
	if (m == AUTH_SCRAM_SHA_256)
		return auth_scram(s, e);
	cap = strlen(p->user ? p->user : "") + p->secret_len + strlen(p->host) + 64;
	raw = xmalloc(cap);
	n = auth_payload(s, m, raw, cap);
	if (can_pipeline_auth(s, m))
		rc = auth_ahead(s, m, raw, n < cap ? n : cap, e);
	else
		rc = auth_initial(s, m, raw, n < cap ? n : cap,
				  m == AUTH_OAUTHBEARER ? "AQ==" : m == AUTH_XOAUTH2 ? "" : NULL, e);
	wipe(raw, cap);
	free(raw);
	return rc;
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
	return authenticate(s, e);
}

int smtp_open(struct smtp *s, const struct smtp_params *p, struct perr *e)
{
	memset(&s->caps, 0, sizeof s->caps);
	s->p = p;
	s->tls_active = 0;
	s->auth_pending = 0;
	s->rcpt_refused = 0;
	s->sent_b64 = NULL;
	reply_init(&s->reply);
	conn_init(&s->conn, p->timeout_s);
	if (conn_connect(&s->conn, p->host, p->port, e) < 0)
		return -1;
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

/* ---- one transaction ---------------------------------------------------- */

static const char *utf8_addr(const struct smtp_envelope *env)
{
	if (addr_is_utf8(env->sender))
		return env->sender;
	for (size_t i = 0; i < env->nrcpts; i++)
		if (addr_is_utf8(env->rcpts[i]))
			return env->rcpts[i];
	return env->sender;
}

static int dsn_word_ok(const char *v)
{
	return strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz,") == strlen(v);
}

/* The last guard of cmd, checked before any command of a message is
 * queued: in a pipeline nothing of a message may go out if its commands
 * cannot all be written. */
static int addr_sendable(const char *a)
{
	if (strlen(a) > ADDR_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int precheck(struct smtp *s, const struct smtp_envelope *env, struct perr *e)
{
	if (s->conn.fd < 0)
		return local_fail(s, e, PERR_TEMP, PERR_CAUSE_LOST, "not connected");
	if (env->nrcpts == 0)
		return local_fail(s, e, PERR_USAGE, PERR_CAUSE_NONE, "a message without recipients");
	if (!addr_sendable(env->sender))
		return local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE, "the sender address has a control character "
				  "or is too long");
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!addr_sendable(env->rcpts[i]))
			return local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE, "a recipient address has a control "
					  "character or is too long");
	if (env->smtputf8 && !(s->caps.flags & SMTP_CAP_SMTPUTF8))
		return local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE, "the address %s needs SMTPUTF8, which %s does "
				  "not offer; use an ASCII address", utf8_addr(env), s->p->host);
	if ((s->caps.flags & SMTP_CAP_SIZE) && s->caps.size_max && env->size > s->caps.size_max)
		return local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_MESSAGE, "the message (%llu bytes) is larger "
				  "than the server's limit of %llu bytes", env->size,
				  s->caps.size_max);
	if ((env->dsn_notify && !dsn_word_ok(env->dsn_notify)) ||
	    (env->dsn_return && !dsn_word_ok(env->dsn_return)))
		return local_fail(s, e, PERR_USAGE, PERR_CAUSE_MESSAGE, "invalid DSN option (-N or -R)");
	if (env->dsn_envid && strlen(env->dsn_envid) > ENVID_MAX)
		return local_fail(s, e, PERR_USAGE, PERR_CAUSE_MESSAGE, "the DSN envelope id (-V) is longer than %d "
				  "characters", ENVID_MAX);
	return 0;
}

/* RFC 3461 xtext. */
static void xtext(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
		if (*p > 32 && *p < 127 && *p != '+' && *p != '=')
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, cap - o, "+%02X", *p);
	}
	out[o] = '\0';
}

static int mail_cmd(struct smtp *s, const struct smtp_envelope *env, struct perr *e)
{
	unsigned f = s->caps.flags;
	char size[32] = "", ret[32] = "", envid[3 * ENVID_MAX + 16] = "", x[3 * ENVID_MAX + 1];

	if ((f & SMTP_CAP_SIZE) && env->size)
		snprintf(size, sizeof size, " SIZE=%llu", env->size);
	if ((f & SMTP_CAP_DSN) && env->dsn_return)
		snprintf(ret, sizeof ret, " RET=%.10s", env->dsn_return);
	if ((f & SMTP_CAP_DSN) && env->dsn_envid) {
		xtext(env->dsn_envid, x, sizeof x);
		snprintf(envid, sizeof envid, " ENVID=%s", x);
	}
	if (!(f & SMTP_CAP_DSN) && (env->dsn_notify || env->dsn_return || env->dsn_envid))
		log_event("%s does not offer DSN: -N, -R and -V are ignored", s->p->host);
	return cmd(s, e, "MAIL FROM:<%s>%s%s%s%s%s", env->sender,
		   env->body_8bit && (f & SMTP_CAP_8BITMIME) ? " BODY=8BITMIME" : "",
		   env->smtputf8 ? " SMTPUTF8" : "", size, ret, envid);
}

static int rcpt_cmd(struct smtp *s, const struct smtp_envelope *env, size_t i, struct perr *e)
{
	if ((s->caps.flags & SMTP_CAP_DSN) && env->dsn_notify)
		return cmd(s, e, "RCPT TO:<%s> NOTIFY=%.40s", env->rcpts[i], env->dsn_notify);
	return cmd(s, e, "RCPT TO:<%s>", env->rcpts[i]);
}

/* Outcome of the envelope part of a transaction. */
struct txn {
	struct perr *e;
	int failed;            /* e holds the first failure */
	int data_open;         /* DATA got 354: only closing can abort now */
	int done;              /* the final reply was 2xx: delivered */
	int writing;           /* its commands are still being written */
	int final_sent;        /* BDAT LAST or the final dot went out */
	size_t nexp;           /* its replies outstanding */
	int nperm, ntemp, nother;
	int rcode;             /* first refused recipient's reply */
	char renh[16];
	char refused[PERR_TEXT_MAX];
};

static int mail_reply(struct smtp *s, const struct smtp_envelope *env, struct txn *t)
{
	char what[ADDR_MAX + 64], who[ADDR_MAX + 4];

	if (s->reply.code / 100 == 2)
		return 0;
	log_sanitize(who, sizeof who, env->sender, strlen(env->sender));
	snprintf(what, sizeof what, "server %srefused the sender <%s>",
		 s->reply.code / 100 == 4 ? "temporarily " : "", who);
	/* 530 (authentication or STARTTLS required) and 503 (bad sequence)
	 * are about the session, not this message's sender. */
	server_fail(s, t->e, kind_of(s->reply.code, PERR_UNAVAILABLE),
		    s->reply.code == 530 ? PERR_CAUSE_AUTH :
		    s->reply.code == 503 ? PERR_CAUSE_PROTOCOL : PERR_CAUSE_SENDER, what);
	t->failed = 1;
	return -1;
}

static void rcpt_reply(struct smtp *s, const char *rcpt, struct txn *t)
{
	char text[RCPT_TEXT_MAX], who[ADDR_MAX + 4];
	size_t o = strlen(t->refused);
	int code = s->reply.code;

	if (code / 100 == 2)
		return;
	if (code / 100 == 5)
		t->nperm++;
	else if (code / 100 == 4)
		t->ntemp++;
	else
		t->nother++;
	if (!t->rcode) {
		t->rcode = code;
		str_copy(t->renh, s->reply.enhanced, sizeof t->renh);
	}
	reply_oneline(&s->reply, text, sizeof text);
	log_sanitize(who, sizeof who, rcpt, strlen(rcpt));
	snprintf(t->refused + o, sizeof t->refused - o, "%s<%s>: %d%s%s %s", o ? "; " : "", who,
		 code, s->reply.enhanced[0] ? " " : "", s->reply.enhanced, text);
}

static void rcpt_verdict(struct smtp *s, struct txn *t)
{
	enum perr_kind kind;
	const char *what;

	if (t->failed || !(t->nperm + t->ntemp + t->nother))
		return;
	kind = t->nperm ? PERR_NOUSER : t->nother ? PERR_PROTOCOL : PERR_TEMP;
	what = t->nperm ? "recipient refused" : t->nother ? "unexpected reply to RCPT TO"
							 : "recipient temporarily refused";
	perr_smtp(t->e, kind, t->rcode, t->renh, "%s: %s: %s; nothing was sent", s->conn.peer,
		  what, t->refused);
	if (t->e)
		t->e->cause = t->nother ? PERR_CAUSE_PROTOCOL : PERR_CAUSE_RCPT;
	t->failed = 1;
}

static void data_reply(struct smtp *s, struct txn *t)
{
	if (s->reply.code == 354) {
		t->data_open = 1;
		return;
	}
	if (!t->failed)
		server_fail(s, t->e, kind_of(s->reply.code, PERR_UNAVAILABLE), PERR_CAUSE_DATA,
			    "server refused DATA");
	t->failed = 1;
}

/* ---- the message -------------------------------------------------------- */

struct body_io {
	unsigned char *in, *out;   /* out: where next_chunk encodes */
	unsigned char *slot[2];    /* pending and read-ahead chunks (BDAT) */
	struct body b;
	uint64_t sent;
};

/* Fill io->in from the source (several reads if it gives little at a
 * time, so that chunks stay large) and encode it into io->out, its length
 * in *len (which may be 0: a lone CR waits for its LF).  Returns 1, 0 at
 * the end of the source, -1 on error. */
static int next_chunk(struct smtp *s, smtp_source_fn src, void *ctx, struct body_io *io,
		      size_t *len, struct perr *e)
{
	size_t got = 0;
	long n = 1, m;

	conn_arm(&s->conn); /* each chunk is a step: slow but moving is fine */
	while (got < BODY_CHUNK && (n = src(ctx, io->in + got, BODY_CHUNK - got, e)) > 0) {
		if ((size_t)n > BODY_CHUNK - got)
			return perr_set(e, PERR_SOFTWARE, "message source returned too much");
		got += (size_t)n;
	}
	if (n < 0)
		return -1;
	if (got == 0)
		return 0;
	m = body_encode(&io->b, io->in, got, io->out, e);
	if (m < 0)
		return -1;
	*len = (size_t)m;
	return 1;
}

/* ---- the pipelined batch ------------------------------------------------ *
 *
 * One writer and one reader share the connection.  The writer appends each
 * message's commands (and body) to the write buffer and records, in a ring,
 * what every reply it will get answers; the reader (pump) flushes the
 * buffer in one write and reads replies, oldest first, until at most
 * `keep` are outstanding.  The writer calls pump only where it must know a
 * reply before it goes on (a barrier) or where the pipeline is as full as
 * it may get; with PIPELINING every command is pipelined as far as RFC
 * 2920 and 3030 allow, without it every command is its own round trip.
 *
 * What waits for what (SPEC 5): no byte of a message (DATA content or a
 * BDAT chunk) goes out before the server has accepted AUTH and at least
 * one RCPT of that message, and any recipient refused permanently means
 * nothing is sent.
 *   DATA: MAIL, RCPT... and DATA go in one flight (with the pending AUTH
 *     before them); the body needs 354 anyway, and a server gives 354
 *     only after a RCPT it accepted.  A 354 after a refused AUTH or a
 *     refused recipient: closing the connection is the only way to send
 *     nothing, so postern closes it.
 *   BDAT: MAIL and every RCPT in one flight (with the pending AUTH), then
 *     a barrier: the body waits for the AUTH and RCPT replies (one round
 *     trip), and a refusal costs only RSET.  The one exception is a
 *     session already authenticated (no AUTH reply outstanding) that has
 *     seen no RCPT refused: a message with one recipient whose whole body
 *     fits one chunk goes as MAIL, RCPT and BDAT LAST in one flight, since
 *     a refused RCPT then leaves no valid recipient and the server refuses
 *     the BDAT (a queue flush keeps its speed).  After the first RCPT
 *     refusal of the session every message waits again.
 * The end of a body goes out with the next message's commands, or QUIT.
 * After a transaction whose outcome is not known yet (BDAT) or that was
 * abandoned, the next message starts with RSET; at the end QUIT does.
 * A pipelined AUTH that is refused: the batch stops, no message byte has
 * gone out, every message not delivered carries the AUTH error.
 * A write that fails (the server closed) first reads the replies that
 * had arrived: a refusal there decides, not the broken pipe.
 */

/* What a reply in the pipeline answers. */
enum xkind { X_AUTH, X_RSET, X_MAIL, X_RCPT, X_DATA, X_BDAT, X_LAST, X_QUIT };

struct expect {
	enum xkind kind;
	size_t msg;              /* index in the batch */
	size_t rcpt;             /* X_RCPT: which recipient */
};

/* Replies outstanding at most.  A flight that would need more waits for
 * the oldest replies first: a pause, not an error.  Also keeps the
 * server's replies well inside the socket buffers, so neither side can
 * block writing while the other does. */
#define RING 512
/* Messages with replies outstanding at most: 64 small messages make one
 * flight of ~70 KB, their replies ~8 KB. */
#define WINDOW 64
/* BDAT chunks of a large body sent ahead of their replies. */
#define BDAT_WINDOW 8
/* Longest wait for the 221 to a QUIT, ms. */
#define QUIT_GRACE_MS 500
/* Shortest wait for the reply to the end of the message data, s (RFC
 * 5321 4.5.3.2: 10 minutes), so that a slow server is never given up on
 * after it took the message, which would send it twice. */
#define FINAL_REPLY_MIN_S 600
/* Longest wait for replies already on their way after a failed write. */
#define DRAIN_MS 2000

struct batch {
	struct smtp *s;
	struct smtp_msg *msgs;
	struct perr *e;              /* the session's error */
	int pipelining;
	int broken;                  /* connection gone; e says why */
	int auth_failed;             /* the pipelined AUTH was refused */
	int auth_unconfirmed;        /* an AUTH reply is still outstanding */
	int need_rset;               /* the last transaction may still be open */
	struct perr auth;            /* the AUTH refusal */
	struct expect ring[RING];
	size_t head, count;          /* outstanding: ring[head .. head + count) */
	size_t next;                 /* messages [0, next) were started */
	size_t inflight;             /* messages started and not settled */
	struct txn tx[WINDOW + 1];   /* per message, slot msg % (WINDOW + 1) */
	struct body_io io;
};

static struct txn *tx_of(struct batch *b, size_t i)
{
	return &b->tx[i % (WINDOW + 1)];
}

static enum smtp_state state_of(const struct expect *x, int bdat)
{
	static const enum smtp_state st[] = {
		[X_AUTH] = ST_AUTH, [X_RSET] = ST_RSET, [X_MAIL] = ST_MAIL, [X_RCPT] = ST_RCPT,
		[X_DATA] = ST_DATA, [X_BDAT] = ST_BDAT, [X_LAST] = ST_BODY, [X_QUIT] = ST_QUIT,
	};

	return x->kind == X_LAST && bdat ? ST_BDAT : st[x->kind];
}

static void tell(struct smtp_msg *m)
{
	m->settled = 1;
	if (m->on_settled)
		m->on_settled(m);
}

/* The message's outcome is final: copy it out. */
static void settle(struct batch *b, size_t i)
{
	struct smtp_msg *m = &b->msgs[i];
	struct txn *t = tx_of(b, i);

	m->done = t->done;
	if (!t->done && b->auth_failed)
		m->err = b->auth;
	else if (!t->done && !t->failed)
		local_fail(b->s, &m->err, PERR_SOFTWARE, PERR_CAUSE_NONE, "transaction ended without an outcome");
	b->inflight--;
	tell(m);
}

static void maybe_settle(struct batch *b, size_t i)
{
	struct txn *t = tx_of(b, i);

	if (!t->writing && t->nexp == 0 && !b->msgs[i].settled)
		settle(b, i);
}

static void final_reply(struct batch *b, struct txn *t, size_t i)
{
	struct smtp *s = b->s;
	struct smtp_msg *m = &b->msgs[i];
	int code = s->reply.code;
	char text[400];

	if (code / 100 == 2) {
		reply_oneline(&s->reply, text, sizeof text);
		snprintf(m->reply, sizeof m->reply, "%d%s%s %s", code,
			 s->reply.enhanced[0] ? " " : "", s->reply.enhanced, text);
		if (t->failed || b->auth_failed)
			log_event("the server accepted the message although it refused a command "
				  "before: it counts as delivered");
		t->done = 1;
	} else if (!t->failed) {
		server_fail(s, t->e, kind_of(code, PERR_UNAVAILABLE), PERR_CAUSE_CONTENT,
			    code / 100 == 4 ? "server temporarily refused the message"
					    : "server refused the message");
		t->failed = 1;
	}
}

static void auth_reply(struct batch *b)
{
	struct smtp *s = b->s;

	s->auth_pending = 0;
	b->auth_unconfirmed = 0;
	if (auth_result(s, &b->auth) == 0)
		return;
	b->auth_failed = 1;
	if (s->reply.code == 334) { /* the server reads our next line as the answer */
		char why[256];

		oauth_reason(s, why, sizeof why);
		b->auth.token_refused = is_token_refusal(why);
		if (b->auth.token_refused)
			perr_set(&b->auth, PERR_AUTH, "the server refused the OAuth2 token: %s", why);
		else
			log_event("the server wants an AUTH exchange after an initial response");
	}
}

/* Apply one reply to what it answers. */
static void on_reply(struct batch *b, const struct expect *x)
{
	struct smtp *s = b->s;
	struct txn *t;
	const struct smtp_envelope *env;

	if (x->kind == X_AUTH) {
		auth_reply(b);
		return;
	}
	if (x->kind == X_QUIT)
		return;
	t = tx_of(b, x->msg);
	env = b->msgs[x->msg].env;
	switch (x->kind) {
	case X_RSET:
		if (s->reply.code / 100 != 2) {
			server_fail(s, b->e, kind_of(s->reply.code, PERR_PROTOCOL), PERR_CAUSE_PROTOCOL,
				    "server refused RSET");
			conn_close(&s->conn);
			b->broken = 1;
		}
		break;
	case X_MAIL:
		mail_reply(s, env, t);
		break;
	case X_RCPT:
		if (s->reply.code / 100 != 2)
			s->rcpt_refused = 1;
		if (!t->failed)
			rcpt_reply(s, env->rcpts[x->rcpt], t);
		if (x->rcpt + 1 == env->nrcpts)
			rcpt_verdict(s, t);
		break;
	case X_DATA:
		data_reply(s, t);
		break;
	case X_BDAT:
		if (s->reply.code / 100 != 2 && !t->failed) {
			server_fail(s, t->e, kind_of(s->reply.code, PERR_UNAVAILABLE), PERR_CAUSE_CONTENT,
				    "server refused the message");
			t->failed = 1;
		}
		break;
	default: /* X_LAST */
		final_reply(b, t, x->msg);
		break;
	}
	if (x->kind != X_RSET) {
		t->nexp--;
		maybe_settle(b, x->msg);
	}
}

/* Read the 221 within a short grace; its absence changes nothing. */
static void quit_reply(struct smtp *s)
{
	struct perr tmp;
	int ms = s->conn.timeout_ms < QUIT_GRACE_MS ? s->conn.timeout_ms : QUIT_GRACE_MS;

	perr_clear(&tmp);
	s->conn.deadline = mono_ms() + ms;
	if (read_reply_armed(s, ST_QUIT, &tmp) < 0)
		log_event("no reply to QUIT within %d ms; closing", ms);
}

static int writer_fail(struct batch *b, struct perr *e);

/* Read the reply x expects: the end of the data gets at least
 * FINAL_REPLY_MIN_S, every other reply the timeout. */
static int read_expected(struct batch *b, const struct expect *x, int bdat)
{
	struct smtp *s = b->s;
	int64_t min_ms = (int64_t)FINAL_REPLY_MIN_S * 1000;

	conn_arm(&s->conn);
	if (x->kind == X_LAST && s->conn.timeout_ms < min_ms)
		s->conn.deadline = mono_ms() + min_ms;
	return read_reply_armed(s, state_of(x, bdat), b->e);
}

/* Send what is buffered (one write) and read replies until at most keep
 * are outstanding. */
static int pump(struct batch *b, size_t keep)
{
	struct smtp *s = b->s;
	int bdat = (s->caps.flags & SMTP_CAP_CHUNKING) != 0;

	if (b->broken)
		return -1;
	if (b->count <= keep)
		return 0;
	if (s->conn.wlen && flush(s, ST_COUNT, b->e) < 0)
		return writer_fail(b, b->e);
	while (b->count > keep) {
		struct expect x = b->ring[b->head];

		b->head = (b->head + 1) % RING;
		b->count--;
		if (x.kind == X_QUIT) {
			quit_reply(s);
			continue;
		}
		if (read_expected(b, &x, bdat) < 0) {
			b->broken = 1;
			return -1;
		}
		on_reply(b, &x);
		if (b->broken)
			return -1;
	}
	return 0;
}

/* The window is full: wait until half of it is free (taking every reply
 * that has arrived on the way), so that the next flight carries half a
 * window of messages rather than one message per reply. */
static int make_room(struct batch *b)
{
	while (b->inflight > WINDOW / 2 && b->count > 0) {
		if (pump(b, b->count - 1) < 0)
			return -1;
		while (b->count > 0 && conn_readable_now(&b->s->conn))
			if (pump(b, b->count - 1) < 0)
				return -1;
	}
	return 0;
}

/* Record that one more reply will come; without PIPELINING wait for it
 * at once. */
static int expect(struct batch *b, enum xkind kind, size_t msg, size_t rcpt)
{
	if (b->count == RING && pump(b, RING / 2) < 0)
		return -1;
	b->ring[(b->head + b->count) % RING] = (struct expect){ kind, msg, rcpt };
	b->count++;
	if (kind == X_AUTH)
		b->auth_unconfirmed = 1;
	if (kind != X_AUTH && kind != X_RSET && kind != X_QUIT)
		tx_of(b, msg)->nexp++;
	return b->pipelining ? 0 : pump(b, 0);
}

/* After a failed write: read the replies that had already arrived (the
 * server may have refused something and closed), applying each to what
 * it answers, for at most DRAIN_MS.  A reply that does not come ends it. */
static void drain(struct batch *b)
{
	struct smtp *s = b->s;
	int bdat = (s->caps.flags & SMTP_CAP_CHUNKING) != 0;
	struct perr tmp;

	s->conn.wlen = 0;
	while (b->count > 0 && s->conn.fd >= 0) {
		struct expect x = b->ring[b->head];

		if (x.kind == X_QUIT)
			break;
		perr_clear(&tmp);
		s->conn.deadline = mono_ms() + DRAIN_MS;
		if (read_reply_armed(s, state_of(&x, bdat), &tmp) < 0)
			break;
		b->head = (b->head + 1) % RING;
		b->count--;
		on_reply(b, &x);
	}
}

/* A command could not be queued: cmd() said why (an I/O error named with
 * the peer, or the last-guard check).  After an I/O error the replies
 * already received are read first (drain), then the connection is closed
 * and the session is over. */
static int writer_fail(struct batch *b, struct perr *e)
{
	if (b->s->conn.fd >= 0 && e->cause == PERR_CAUSE_LOST)
		drain(b);
	if (e != b->e)
		*b->e = *e;
	conn_close(&b->s->conn);
	b->broken = 1;
	return -1;
}

/* Message bytes could not be written: e (from conn) gets the peer and the
 * stage.  A reply to a body cut short is the server's verdict on the
 * message (552 too big, 554 content refused): it is expected, so that
 * drain() applies it. */
static int send_fail(struct batch *b, struct perr *e)
{
	struct perr why = *e;

	io_error(b->s, &why, IO_SEND, ST_BODY);
	if (b->next > 0 && b->count < RING) {
		b->ring[(b->head + b->count) % RING] = (struct expect){ X_LAST, b->next - 1, 0 };
		b->count++;
		tx_of(b, b->next - 1)->nexp++;
	}
	return writer_fail(b, &why);
}

/* Close the connection on purpose, so that a message cannot go out. */
static int close_on_purpose(struct batch *b, size_t i, const char *why)
{
	local_fail(b->s, b->e, PERR_TEMP, PERR_CAUSE_LOST, "connection closed after message %zu "
		   "of this session %s; not attempted", i + 1, why);
	conn_close(&b->s->conn);
	b->broken = 1;
	return -1;
}

static int write_envelope(struct batch *b, size_t i, int data)
{
	struct smtp *s = b->s;
	const struct smtp_envelope *env = b->msgs[i].env;
	struct txn *t = tx_of(b, i);
	struct perr *e = t->e;

	if (b->need_rset) {
		b->need_rset = 0;
		if (cmd(s, b->e, "RSET") < 0)
			return writer_fail(b, b->e);
		if (expect(b, X_RSET, i, 0) < 0)
			return -1;
	}
	if (mail_cmd(s, env, e) < 0)
		return writer_fail(b, e);
	if (expect(b, X_MAIL, i, 0) < 0)
		return -1;
	if (t->failed || b->auth_failed) /* without PIPELINING: known already */
		return 0;
	for (size_t r = 0; r < env->nrcpts; r++) {
		if (rcpt_cmd(s, env, r, e) < 0)
			return writer_fail(b, e);
		if (expect(b, X_RCPT, i, r) < 0)
			return -1;
	}
	if (!data || t->failed || b->auth_failed)
		return 0;
	if (cmd(s, e, "DATA") < 0)
		return writer_fail(b, e);
	return expect(b, X_DATA, i, 0);
}

/* Fill io->in from the source and encode it into out; see next_chunk. */
static int body_chunk(struct batch *b, size_t i, unsigned char *out, size_t *len)
{
	struct smtp_msg *m = &b->msgs[i];

	b->io.out = out;
	return next_chunk(b->s, m->src, m->src_ctx, &b->io, len, &m->err);
}

/* The message's bytes could not be read: nothing more of it may go out,
 * and after a partial body only closing makes sure of that. */
static int source_failed(struct batch *b, size_t i)
{
	struct txn *t = tx_of(b, i);

	t->failed = 1;
	return close_on_purpose(b, i, "could not be read to its end");
}

static int write_data_body(struct batch *b, size_t i)
{
	struct smtp *s = b->s;
	struct txn *t = tx_of(b, i);
	unsigned char *out = b->io.slot[0];
	size_t n, k;
	int rc;

	body_init(&b->io.b, 1);
	while ((rc = body_chunk(b, i, out, &n)) > 0) {
		if (conn_write(&s->conn, out, n, b->e) < 0)
			return send_fail(b, b->e);
		b->io.sent += n;
	}
	if (rc < 0)
		return source_failed(b, i);
	k = body_finish(&b->io.b, out);
	b->io.sent += k;
	memcpy(out + k, ".\r\n", 3);
	log_event("message sent: %llu bytes", (unsigned long long)b->io.sent);
	log_wire('C', ".", 1);
	if (conn_write(&s->conn, out, k + 3, b->e) < 0)
		return send_fail(b, b->e);
	t->final_sent = 1;
	return expect(b, X_LAST, i, 0);
}

/* The first chunks of a BDAT body, read before anything of the message
 * is written (whether it fits one chunk decides how it is pipelined). */
struct bdat_ahead {
	unsigned char *pending, *ahead;
	size_t plen, alen;
	int more;              /* 1: ahead holds the next chunk; 0: pending is all */
};

/* Read the first chunk into pending and the next into ahead.  -1: the
 * source failed (m->err says why), nothing of the message written yet. */
static int bdat_prefetch(struct batch *b, size_t i, struct bdat_ahead *ba)
{
	ba->pending = b->io.slot[0];
	ba->ahead = b->io.slot[1];
	ba->plen = ba->alen = 0;
	body_init(&b->io.b, 0);
	ba->more = body_chunk(b, i, ba->pending, &ba->plen);
	if (ba->more > 0)
		ba->more = body_chunk(b, i, ba->ahead, &ba->alen);
	return ba->more < 0 ? -1 : 0;
}

/* BDAT: each chunk is encoded one step ahead, so that the last one goes
 * out as "BDAT n LAST" together with the final CRLF. */
static int write_bdat_body(struct batch *b, size_t i, struct bdat_ahead *ba)
{
	struct smtp *s = b->s;
	struct txn *t = tx_of(b, i);
	unsigned char *tmp;

	for (;;) {
		int more = ba->more;

		if (!more)
			ba->plen += body_finish(&b->io.b, ba->pending + ba->plen);
		if (cmd(s, b->e, more ? "BDAT %zu" : "BDAT %zu LAST", ba->plen) < 0)
			return writer_fail(b, b->e);
		if (conn_write(&s->conn, ba->pending, ba->plen, b->e) < 0)
			return send_fail(b, b->e);
		b->io.sent += ba->plen;
		if (!more) {
			t->final_sent = 1;
			log_event("message sent: %llu bytes", (unsigned long long)b->io.sent);
			return expect(b, X_LAST, i, 0);
		}
		if (expect(b, X_BDAT, i, 0) < 0 || pump(b, BDAT_WINDOW) < 0)
			return -1;
		if (t->failed || b->auth_failed)
			return 0; /* RFC 3030: no further chunk after a refused one */
		tmp = ba->pending;
		ba->pending = ba->ahead;
		ba->ahead = tmp;
		ba->plen = ba->alen;
		ba->alen = 0;
		ba->more = body_chunk(b, i, ba->ahead, &ba->alen);
		if (ba->more < 0)
			return source_failed(b, i);
	}
}

/* Wait for every reply of message i so far. */
static int barrier(struct batch *b, size_t i)
{
	struct txn *t = tx_of(b, i);

	while (t->nexp > 0)
		if (pump(b, b->count - 1) < 0)
			return -1;
	return 0;
}

/* May message i's single BDAT LAST follow its RCPT without waiting for the
 * reply?  See "What waits for what" above. */
static int bdat_without_wait(const struct batch *b, size_t i, const struct bdat_ahead *ba)
{
	return b->pipelining && !b->auth_unconfirmed && !b->auth_failed && !b->s->rcpt_refused &&
	       b->msgs[i].env->nrcpts == 1 && ba->more == 0;
}

static int write_body(struct batch *b, size_t i, struct bdat_ahead *ba)
{
	struct txn *t = tx_of(b, i);

	if (!ba && barrier(b, i) < 0)
		return -1;
	if (ba && !bdat_without_wait(b, i, ba) && barrier(b, i) < 0)
		return -1;
	if (!ba && t->data_open && (t->failed || b->auth_failed))
		return close_on_purpose(b, i, b->auth_failed ?
					"had AUTH refused but DATA accepted (closing is the "
					"only way to send nothing)" :
					"had recipients refused after DATA was accepted "
					"(closing is the only way to send nothing)");
	if (t->failed || b->auth_failed) {
		b->need_rset = 1;
		return 0;
	}
	if (!ba)
		return write_data_body(b, i);
	b->need_rset = 1; /* the outcome of BDAT LAST comes later */
	return write_bdat_body(b, i, ba);
}

static int write_msg(struct batch *b, size_t i)
{
	struct smtp_msg *m = &b->msgs[i];
	struct txn *t;
	struct bdat_ahead ba;
	int bdat = (b->s->caps.flags & SMTP_CAP_CHUNKING) != 0;
	int rc;

	m->done = m->settled = 0;
	perr_clear(&m->err);
	m->reply[0] = '\0';
	if (precheck(b->s, m->env, &m->err) < 0) {
		tell(m);
		return 0;
	}
	if (b->inflight >= WINDOW && make_room(b) < 0)
		return -1;
	if (m->rewind)
		m->rewind(m->src_ctx);
	b->io.sent = 0;
	if (bdat && bdat_prefetch(b, i, &ba) < 0) {
		tell(m); /* nothing of it was written: the session goes on */
		return 0;
	}
	b->next = i + 1;
	t = tx_of(b, i);
	memset(t, 0, sizeof *t);
	t->e = &m->err;
	t->writing = 1;
	b->inflight++;
	rc = write_envelope(b, i, !bdat);
	if (rc == 0)
		rc = write_body(b, i, bdat ? &ba : NULL);
	t->writing = 0;
	if (rc == 0)
		maybe_settle(b, i);
	return rc;
}

/* After the session ended early: the messages in flight keep a refusal
 * the server gave them, or get the session's error.  Messages not
 * started stay unsettled, and so does every message when the session
 * ended before the reply to a pipelined AUTH (no reply of a later
 * command was read either): the caller may try again with AUTH alone. */
static void unsettled(struct batch *b)
{
	if (b->s->auth_pending)
		return;
	for (size_t i = 0; i < b->next; i++) {
		struct smtp_msg *m = &b->msgs[i];
		struct txn *t = tx_of(b, i);

		if (m->settled)
			continue;
		if (b->auth_failed) {
			m->err = b->auth;
		} else if (!t->failed) {
			m->err = *b->e;
			if (t->final_sent)
				perr_append(&m->err, " (the message may or may not have been "
					    "accepted)");
		}
		t->writing = 0;
		t->nexp = 0;
		tell(m);
	}
}

/* Without QUIT to end it, an abandoned transaction gets its RSET now. */
static void reset_open(struct batch *b)
{
	struct smtp *s = b->s;
	struct perr tmp;

	if (b->broken || !b->need_rset || s->conn.fd < 0 || b->next == 0 ||
	    b->msgs[b->next - 1].done)
		return;
	perr_clear(&tmp);
	if (cmd(s, &tmp, "RSET") < 0 || transact(s, ST_RSET, &tmp) < 0 ||
	    s->reply.code / 100 != 2)
		smtp_close(s);
}

static int run_batch(struct batch *b, size_t n, int quit)
{
	struct smtp *s = b->s;

	if (s->auth_pending && expect(b, X_AUTH, 0, 0) < 0)
		return -1;
	for (size_t i = 0; i < n && !b->broken && !b->auth_failed; i++)
		if (write_msg(b, i) < 0)
			return -1;
	if (quit && !b->broken && s->conn.fd >= 0) {
		/* An open transaction needs no RSET: QUIT ends it. */
		if (cmd(s, b->e, "QUIT") < 0)
			return writer_fail(b, b->e);
		if (expect(b, X_QUIT, 0, 0) < 0)
			return -1;
		b->need_rset = 0;
	}
	return pump(b, 0);
}

int smtp_send_batch(struct smtp *s, struct smtp_msg *msgs, size_t n, int quit, struct perr *e)
{
	struct batch *b = xcalloc(1, sizeof *b);
	int rc;

	b->s = s;
	b->msgs = msgs;
	b->e = e;
	b->pipelining = (s->caps.flags & SMTP_CAP_PIPELINING) != 0;
	for (size_t i = 0; i < n; i++) {
		msgs[i].settled = msgs[i].done = 0;
		perr_clear(&msgs[i].err);
	}
	if (s->conn.fd < 0) {
		free(b);
		return local_fail(s, e, PERR_TEMP, PERR_CAUSE_LOST, "not connected");
	}
	b->io.in = xmalloc(BODY_CHUNK);
	b->io.slot[0] = xmalloc(SLOT_SIZE);
	b->io.slot[1] = xmalloc(SLOT_SIZE);
	rc = run_batch(b, n, quit);
	if (rc < 0 || b->auth_failed) {
		if (b->auth_failed)
			*e = b->auth;
		unsettled(b);
		rc = -1;
	}
	if (quit || b->broken)
		smtp_close(s);
	else
		reset_open(b);
	free(b->io.in);
	free(b->io.slot[0]);
	free(b->io.slot[1]);
	free(b);
	return rc;
}

int smtp_send(struct smtp *s, const struct smtp_envelope *env, smtp_source_fn src,
	      void *src_ctx, struct perr *e)
{
	struct smtp_msg m = { .env = env, .src = src, .src_ctx = src_ctx };
	struct perr se;

	perr_clear(&se);
	if (smtp_send_batch(s, &m, 1, 0, &se) < 0 && !m.settled) {
		if (e)
			*e = se;
		return -1;
	}
	if (!m.done && e)
		*e = m.err;
	return m.done ? 0 : -1;
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
	if (cmd(s, &tmp, "QUIT") == 0) {
		s->conn.deadline = mono_ms() + ms;
		if (conn_flush(&s->conn, &tmp) == 0)
			read_reply_armed(s, ST_QUIT, &tmp);
	}
	smtp_close(s);
}

void smtp_close(struct smtp *s)
{
	conn_close(&s->conn);
	forget_payload(s);
}
