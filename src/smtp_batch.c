/* smtp_batch.c — the SMTP engine's pipelined batch: the transactions of
 * one session written back to back and their replies read as they come,
 * each applied to the message it answers (smtp_send_batch).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "smtp_int.h"
#include "util.h"

/* One encoded chunk plus body_finish's CRLF and the final ".\r\n". */
#define SLOT_SIZE (BODY_OUT_MAX(SMTP_BODY_CHUNK) + 8)

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
	struct expect ring[SMTP_RING];
	size_t head, count;          /* outstanding: ring[head .. head + count) */
	size_t next;                 /* messages [0, next) were started */
	size_t inflight;             /* messages started and not settled */
	struct txn tx[SMTP_WINDOW + 1];   /* per message, slot msg % (SMTP_WINDOW + 1) */
	struct body_io io;
};

static struct txn *tx_of(struct batch *b, size_t i)
{
	return &b->tx[i % (SMTP_WINDOW + 1)];
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
		smtp_local_fail(b->s, &m->err, PERR_SOFTWARE, PERR_CAUSE_NONE,
				"transaction ended without an outcome");
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
		smtp_server_fail(s, t->e, smtp_kind_of(code, PERR_UNAVAILABLE), PERR_CAUSE_CONTENT,
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
	if (smtp_auth_result(s, &b->auth) == 0)
		return;
	b->auth_failed = 1;
	if (s->reply.code == 334) { /* the server reads our next line as the answer */
		char why[256];

		smtp_oauth_reason(s, why, sizeof why);
		b->auth.token_refused = smtp_is_token_refusal(why);
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
			smtp_server_fail(s, b->e, smtp_kind_of(s->reply.code, PERR_PROTOCOL),
					 PERR_CAUSE_PROTOCOL, "server refused RSET");
			conn_close(&s->conn);
			b->broken = 1;
		}
		break;
	case X_MAIL:
		smtp_mail_reply(s, env, t);
		break;
	case X_RCPT:
		if (s->reply.code / 100 != 2)
			s->rcpt_refused = 1;
		if (!t->failed)
			smtp_rcpt_reply(s, env->rcpts[x->rcpt], t);
		if (x->rcpt + 1 == env->nrcpts)
			smtp_rcpt_verdict(s, t);
		break;
	case X_DATA:
		smtp_data_reply(s, t);
		break;
	case X_BDAT:
		if (s->reply.code / 100 != 2 && !t->failed) {
			smtp_server_fail(s, t->e, smtp_kind_of(s->reply.code, PERR_UNAVAILABLE),
					 PERR_CAUSE_CONTENT, "server refused the message");
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
	int ms = s->conn.timeout_ms < SMTP_QUIT_GRACE_MS ? s->conn.timeout_ms : SMTP_QUIT_GRACE_MS;

	perr_clear(&tmp);
	s->conn.deadline = mono_ms() + ms;
	if (smtp_read_reply_armed(s, ST_QUIT, &tmp) < 0)
		log_event("no reply to QUIT within %d ms; closing", ms);
}

static int writer_fail(struct batch *b, struct perr *e);

/* Read the reply x expects: the end of the data gets at least
 * SMTP_FINAL_REPLY_MIN_S, every other reply the timeout. */
static int read_expected(struct batch *b, const struct expect *x, int bdat)
{
	struct smtp *s = b->s;
	int64_t min_ms = (int64_t)SMTP_FINAL_REPLY_MIN_S * 1000;

	conn_arm(&s->conn);
	if (x->kind == X_LAST && s->conn.timeout_ms < min_ms)
		s->conn.deadline = mono_ms() + min_ms;
	return smtp_read_reply_armed(s, state_of(x, bdat), b->e);
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
	if (s->conn.wlen && smtp_flush(s, ST_COUNT, b->e) < 0)
		return writer_fail(b, b->e);
	while (b->count > keep) {
		struct expect x = b->ring[b->head];

		b->head = (b->head + 1) % SMTP_RING;
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
	while (b->inflight > SMTP_WINDOW / 2 && b->count > 0) {
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
	if (b->count == SMTP_RING && pump(b, SMTP_RING / 2) < 0)
		return -1;
	b->ring[(b->head + b->count) % SMTP_RING] = (struct expect){ kind, msg, rcpt };
	b->count++;
	if (kind == X_AUTH)
		b->auth_unconfirmed = 1;
	if (kind != X_AUTH && kind != X_RSET && kind != X_QUIT)
		tx_of(b, msg)->nexp++;
	return b->pipelining ? 0 : pump(b, 0);
}

/* After a failed write: read the replies that had already arrived (the
 * server may have refused something and closed), applying each to what
 * it answers, for at most SMTP_DRAIN_MS.  A reply that does not come ends it. */
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
		s->conn.deadline = mono_ms() + SMTP_DRAIN_MS;
		if (smtp_read_reply_armed(s, state_of(&x, bdat), &tmp) < 0)
			break;
		b->head = (b->head + 1) % SMTP_RING;
		b->count--;
		on_reply(b, &x);
	}
}

/* A command could not be queued: smtp_cmd() said why (an I/O error named with
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

	smtp_io_error(b->s, &why, IO_SEND, ST_BODY);
	if (b->next > 0 && b->count < SMTP_RING) {
		b->ring[(b->head + b->count) % SMTP_RING] = (struct expect){X_LAST, b->next - 1, 0};
		b->count++;
		tx_of(b, b->next - 1)->nexp++;
	}
	return writer_fail(b, &why);
}

/* Close the connection on purpose, so that a message cannot go out. */
static int close_on_purpose(struct batch *b, size_t i, const char *why)
{
	smtp_local_fail(b->s, b->e, PERR_TEMP, PERR_CAUSE_LOST,
			"connection closed after message %zu "
			"of this session %s; not attempted",
			i + 1, why);
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
		if (smtp_cmd(s, b->e, "RSET") < 0)
			return writer_fail(b, b->e);
		if (expect(b, X_RSET, i, 0) < 0)
			return -1;
	}
	if (smtp_mail_cmd(s, env, e) < 0)
		return writer_fail(b, e);
	if (expect(b, X_MAIL, i, 0) < 0)
		return -1;
	if (t->failed || b->auth_failed) /* without PIPELINING: known already */
		return 0;
	for (size_t r = 0; r < env->nrcpts; r++) {
		if (smtp_rcpt_cmd(s, env, r, e) < 0)
			return writer_fail(b, e);
		if (expect(b, X_RCPT, i, r) < 0)
			return -1;
	}
	if (!data || t->failed || b->auth_failed)
		return 0;
	if (smtp_cmd(s, e, "DATA") < 0)
		return writer_fail(b, e);
	return expect(b, X_DATA, i, 0);
}

/* Fill io->in from the source and encode it into out; see next_chunk. */
static int body_chunk(struct batch *b, size_t i, unsigned char *out, size_t *len)
{
	struct smtp_msg *m = &b->msgs[i];

	b->io.out = out;
	return smtp_next_chunk(b->s, m->src, m->src_ctx, &b->io, len, &m->err);
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
		if (smtp_cmd(s, b->e, more ? "BDAT %zu" : "BDAT %zu LAST", ba->plen) < 0)
			return writer_fail(b, b->e);
		if (conn_write(&s->conn, ba->pending, ba->plen, b->e) < 0)
			return send_fail(b, b->e);
		b->io.sent += ba->plen;
		if (!more) {
			t->final_sent = 1;
			log_event("message sent: %llu bytes", (unsigned long long)b->io.sent);
			return expect(b, X_LAST, i, 0);
		}
		if (expect(b, X_BDAT, i, 0) < 0 || pump(b, SMTP_BDAT_WINDOW) < 0)
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
	if (smtp_precheck(b->s, m->env, &m->err) < 0) {
		tell(m);
		return 0;
	}
	if (b->inflight >= SMTP_WINDOW && make_room(b) < 0)
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
	if (smtp_cmd(s, &tmp, "RSET") < 0 || smtp_transact(s, ST_RSET, &tmp) < 0 ||
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
		if (smtp_cmd(s, b->e, "QUIT") < 0)
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
		return smtp_local_fail(s, e, PERR_TEMP, PERR_CAUSE_LOST, "not connected");
	}
	b->io.in = xmalloc(SMTP_BODY_CHUNK);
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
