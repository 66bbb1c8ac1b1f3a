/* smtp_auth.c — AUTH for the SMTP engine: which mechanism (the one
 * configured, or for auth = auto the strongest password mechanism
 * offered), and each exchange: PLAIN, XOAUTH2, OAUTHBEARER and EXTERNAL
 * with an initial response (PLAIN and EXTERNAL pipelined when allowed),
 * LOGIN, SCRAM-SHA-256 (its messages are scram.c's).  Payloads are wiped
 * after use and masked in the transcript.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "log.h"
#include "scram.h"
#include "smtp_int.h"
#include "util.h"


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

static int kw_is(const char *p, size_t n, const char *kw)
{
	return strlen(kw) == n && strncasecmp(p, kw, n) == 0;
}

void smtp_parse_mechs(struct smtp_caps *caps, const char *p)
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

enum auth_mech smtp_pick_mech(unsigned offered, enum auth_mech want)
{
	if (want == AUTH_AUTO) {
		/* Password mechanisms, strongest first; never OAuth2 or
		 * EXTERNAL, which need a token or a certificate. */
		if (offered & SMTP_MECH_SCRAM_SHA_256)
			return AUTH_SCRAM_SHA_256;
		if (offered & SMTP_MECH_PLAIN)
			return AUTH_PLAIN;
		if (offered & SMTP_MECH_LOGIN)
			return AUTH_LOGIN;
		return AUTH_OFF;
	}
	for (size_t i = 0; i < NMECHS; i++)
		if (mech_table[i].mech == want && (offered & mech_table[i].bit))
			return want;
	return AUTH_OFF;
}

/* The mechanism to use, or AUTH_OFF with e filled. */
static enum auth_mech choose_mech(struct smtp *s, struct perr *e)
{
	unsigned offered = s->caps.mechs;
	enum auth_mech want = s->p->auth;
	char names[128];

	mech_names(offered, names, sizeof names);
	if (want == AUTH_AUTO) {
		if (smtp_pick_mech(offered, want) != AUTH_OFF)
			return smtp_pick_mech(offered, want);
		smtp_local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_MECH,
				"server offers AUTH %s, none of which postern "
				"can use with a password (it knows SCRAM-SHA-256, PLAIN and "
				"LOGIN)", names);
		return AUTH_OFF;
	}
	if (smtp_pick_mech(offered, want) != AUTH_OFF)
		return want;
	smtp_local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_MECH,
			"server does not offer AUTH %s; it offers %s", mech_name(want), names);
	return AUTH_OFF;
}

int smtp_auth_result(struct smtp *s, struct perr *e)
{
	int code = s->reply.code;

	if (code == 235) {
		log_event("authenticated as %s", s->p->user ? s->p->user : "(certificate)");
		return 0;
	}
	if (code / 100 == 4)
		return smtp_server_fail(s, e, PERR_TEMP, PERR_CAUSE_AUTH,
					"authentication failed temporarily");
	if (code / 100 == 5) {
		/* hint.c chooses the fix (submit.c and probe.c ask it). */
		return smtp_server_fail(s, e, PERR_AUTH, PERR_CAUSE_AUTH, "authentication refused");
	}
	return smtp_server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_AUTH, "unexpected reply to AUTH");
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

	rc = smtp_send_secret(s, prefix, n ? b64 : "=", shown, e);
	wipe(b64, blen);
	free(b64);
	if (rc == 0)
		rc = smtp_flush(s, ST_AUTH, e);
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
	return smtp_read_reply(s, ST_AUTH, e);
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
void smtp_oauth_reason(const struct smtp *s, char *out, size_t cap)
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
bool smtp_is_token_refusal(const char *why)
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
		return smtp_auth_result(s, e);
	smtp_oauth_reason(s, why, sizeof why);
	if (smtp_cmd(s, e, "%s", on334) < 0 || smtp_transact(s, ST_AUTH, e) < 0)
		return -1;
	if (smtp_auth_result(s, e) == 0)
		return 0;
	e->token_refused = smtp_is_token_refusal(why);
	perr_append(e, " (the server's details: %s)", why); /* hint.c appends the fix */
	return -1;
}

static int expect_334(struct smtp *s, struct perr *e)
{
	if (s->reply.code == 334)
		return 0;
	if (s->reply.code == 235)
		return smtp_server_fail(s, e, PERR_PROTOCOL, PERR_CAUSE_AUTH,
					"server accepted AUTH before the "
					"exchange was complete");
	smtp_auth_result(s, e); /* fills e: 4xx, 5xx or an unexpected code */
	return -1;
}

static int auth_login(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;

	if (smtp_cmd(s, e, "AUTH LOGIN") < 0 || smtp_transact(s, ST_AUTH, e) < 0 ||
	    expect_334(s, e) < 0)
		return -1;
	if (send_payload(s, "", (const unsigned char *)p->user, strlen(p->user), "****", e) < 0 ||
	    expect_334(s, e) < 0)
		return -1;
	if (send_payload(s, "", (const unsigned char *)p->secret, p->secret_len, "****", e) < 0)
		return -1;
	return smtp_auth_result(s, e);
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
			return smtp_io_fail(s, e, IO_WAIT, ST_AUTH);
		smtp_mask_echo(s, line, len);
		if (len > 4 && strncmp(line, "334", 3) == 0)
			log_wire('S', "334 ****", 8);
		else
			log_wire('S', line, len);
		rc = reply_feed(&s->reply, line, len, e);
		if (rc < 0)
			return smtp_io_fail(s, e, IO_READ, ST_AUTH);
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
	if (cancel && s->conn.fd >= 0 && smtp_cmd(s, &tmp, "*") == 0)
		smtp_transact(s, ST_AUTH, &tmp);
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
		return smtp_auth_result(s, e);
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
	if (code == 334 && (smtp_cmd(s, e, "%s", "") < 0 || smtp_transact(s, ST_AUTH, e) < 0))
		return -1;
	return smtp_auth_result(s, e);
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
 * OAUTHBEARER answer a bad token with a 334 challenge, so they wait
 * unless the caller asks for pipeline_token (see smtp_params.h). */
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
	rc = smtp_send_secret(s, prefix, n ? b64 : "=", shown, e);
	wipe(b64, blen);
	free(b64);
	if (rc == 0)
		s->auth_pending = 1;
	return rc;
}

static int exchange(struct smtp *s, enum auth_mech m, struct perr *e);

int smtp_authenticate(struct smtp *s, struct perr *e)
{
	const struct smtp_params *p = s->p;
	enum auth_mech m;
	int rc;

	if (p->auth == AUTH_OFF || ((!p->user || !*p->user) && p->auth != AUTH_EXTERNAL))
		return 0;
	if (!s->tls_active && !is_loopback(s->conn.addr))
		return smtp_local_fail(s, e, PERR_CONFIG, PERR_CAUSE_CLEARTEXT,
				       "refusing to send the password over an "
				       "unencrypted connection");
	if (!(s->caps.flags & SMTP_CAP_AUTH))
		return smtp_local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_NO_AUTH,
				       "server offers no AUTH");
	m = choose_mech(s, e);
	if (m == AUTH_OFF)
		return -1;
	if (m != AUTH_EXTERNAL && !p->secret)
		return smtp_local_fail(s, e, PERR_CONFIG, PERR_CAUSE_AUTH, "no password for %s",
				       p->user);
	rc = exchange(s, m, e);
	if (!s->auth_pending)
		OBSERVE(s, auth, mech_name(m), rc);
	return rc;
}

/* The exchange of mechanism m. */
static int exchange(struct smtp *s, enum auth_mech m, struct perr *e)
{
	const struct smtp_params *p = s->p;
	unsigned char *raw;
	size_t cap, n;
	int rc;

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
