/* smtp_txn.c — one mail transaction of the SMTP engine, as commands and
 * verdicts: the checks before anything of a message is queued, MAIL FROM
 * (SIZE, BODY, SMTPUTF8, DSN) and RCPT TO, what each reply means for the
 * message, and the message bytes read and encoded chunk by chunk.  When
 * they are written and read is smtp_batch.c's business; smtp_send (one
 * message) and smtp_try_sender (MAIL FROM and RSET, for --probe).
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "smtp_int.h"
#include "util.h"

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

int smtp_precheck(struct smtp *s, const struct smtp_envelope *env, struct perr *e)
{
	if (s->conn.fd < 0)
		return smtp_local_fail(s, e, PERR_TEMP, PERR_CAUSE_LOST, "not connected");
	if (env->nrcpts == 0)
		return smtp_local_fail(s, e, PERR_USAGE, PERR_CAUSE_NONE,
				       "a message without recipients");
	if (!addr_sendable(env->sender))
		return smtp_local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE,
				       "the sender address has a control character "
				       "or is too long");
	for (size_t i = 0; i < env->nrcpts; i++)
		if (!addr_sendable(env->rcpts[i]))
			return smtp_local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE,
					       "a recipient address has a control "
					       "character or is too long");
	if (env->smtputf8 && !(s->caps.flags & SMTP_CAP_SMTPUTF8))
		return smtp_local_fail(s, e, PERR_DATA, PERR_CAUSE_MESSAGE,
				       "the address %s needs SMTPUTF8, which %s does "
				       "not offer; use an ASCII address",
				       utf8_addr(env), s->p->host);
	if ((s->caps.flags & SMTP_CAP_SIZE) && s->caps.size_max && env->size > s->caps.size_max)
		return smtp_local_fail(s, e, PERR_UNAVAILABLE, PERR_CAUSE_MESSAGE,
				       "the message (%llu bytes) is larger "
				       "than the server's limit of %llu bytes",
				       env->size, s->caps.size_max);
	if ((env->dsn_notify && !dsn_word_ok(env->dsn_notify)) ||
	    (env->dsn_return && !dsn_word_ok(env->dsn_return)))
		return smtp_local_fail(s, e, PERR_USAGE, PERR_CAUSE_MESSAGE,
				       "invalid DSN option (-N or -R)");
	if (env->dsn_envid && strlen(env->dsn_envid) > SMTP_ENVID_MAX)
		return smtp_local_fail(s, e, PERR_USAGE, PERR_CAUSE_MESSAGE,
				       "the DSN envelope id (-V) is longer than %d "
				       "characters",
				       SMTP_ENVID_MAX);
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

int smtp_mail_cmd(struct smtp *s, const struct smtp_envelope *env, struct perr *e)
{
	unsigned f = s->caps.flags;
	char size[32] = "", ret[32] = "", envid[3 * SMTP_ENVID_MAX + 16] = "",
	     x[3 * SMTP_ENVID_MAX + 1];

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
	return smtp_cmd(s, e, "MAIL FROM:<%s>%s%s%s%s%s", env->sender,
		   env->body_8bit && (f & SMTP_CAP_8BITMIME) ? " BODY=8BITMIME" : "",
		   env->smtputf8 ? " SMTPUTF8" : "", size, ret, envid);
}

int smtp_rcpt_cmd(struct smtp *s, const struct smtp_envelope *env, size_t i, struct perr *e)
{
	if ((s->caps.flags & SMTP_CAP_DSN) && env->dsn_notify)
		return smtp_cmd(s, e, "RCPT TO:<%s> NOTIFY=%.40s", env->rcpts[i], env->dsn_notify);
	return smtp_cmd(s, e, "RCPT TO:<%s>", env->rcpts[i]);
}

int smtp_mail_reply(struct smtp *s, const struct smtp_envelope *env, struct txn *t)
{
	char what[ADDR_MAX + 64], who[ADDR_MAX + 4];

	if (s->reply.code / 100 == 2)
		return 0;
	log_sanitize(who, sizeof who, env->sender, strlen(env->sender));
	snprintf(what, sizeof what, "server %srefused the sender <%s>",
		 s->reply.code / 100 == 4 ? "temporarily " : "", who);
	/* 530 (authentication or STARTTLS required) and 503 (bad sequence)
	 * are about the session, not this message's sender. */
	smtp_server_fail(s, t->e, smtp_kind_of(s->reply.code, PERR_UNAVAILABLE),
		    s->reply.code == 530 ? PERR_CAUSE_AUTH :
		    s->reply.code == 503 ? PERR_CAUSE_PROTOCOL : PERR_CAUSE_SENDER, what);
	t->failed = 1;
	return -1;
}

void smtp_rcpt_reply(struct smtp *s, const char *rcpt, struct txn *t)
{
	char text[SMTP_RCPT_TEXT_MAX], who[ADDR_MAX + 4];
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

void smtp_rcpt_verdict(struct smtp *s, struct txn *t)
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

void smtp_data_reply(struct smtp *s, struct txn *t)
{
	if (s->reply.code == 354) {
		t->data_open = 1;
		return;
	}
	if (!t->failed)
		smtp_server_fail(s, t->e, smtp_kind_of(s->reply.code, PERR_UNAVAILABLE),
				 PERR_CAUSE_DATA, "server refused DATA");
	t->failed = 1;
}

/* ---- the message -------------------------------------------------------- */

/* Fill io->in from the source (several reads if it gives little at a
 * time, so that chunks stay large) and encode it into io->out, its length
 * in *len (which may be 0: a lone CR waits for its LF).  Returns 1, 0 at
 * the end of the source, -1 on error. */
int smtp_next_chunk(struct smtp *s, smtp_source_fn src, void *ctx, struct body_io *io,
		    size_t *len, struct perr *e)
{
	size_t got = 0;
	long n = 1, m;

	conn_arm(&s->conn); /* each chunk is a step: slow but moving is fine */
	while (got < SMTP_BODY_CHUNK &&
	       (n = src(ctx, io->in + got, SMTP_BODY_CHUNK - got, e)) > 0) {
		if ((size_t)n > SMTP_BODY_CHUNK - got)
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

/* ---- one message (smtp_send_batch of one) ------------------------------ */

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

/* ---- the sender alone (--probe) ----------------------------------------- */

int smtp_try_sender(struct smtp *s, const char *sender, struct perr *e)
{
	struct smtp_envelope env = { .sender = sender };
	struct txn t = { .e = e };

	if (s->conn.fd < 0)
		return smtp_local_fail(s, e, PERR_TEMP, PERR_CAUSE_LOST, "not connected");
	if (smtp_mail_cmd(s, &env, e) < 0 || smtp_transact(s, ST_MAIL, e) < 0)
		return -1;
	if (smtp_mail_reply(s, &env, &t) < 0)
		return -1;
	if (smtp_cmd(s, e, "RSET") < 0 || smtp_transact(s, ST_RSET, e) < 0)
		return -1;
	return 0;
}
