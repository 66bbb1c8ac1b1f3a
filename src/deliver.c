/* deliver.c — one message from the caller to the server or the queue, and
 * the queue back to the server.  See deliver.h. */
#include "autoconf.h"

#include <fnmatch.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "crypto.h"
#include "deliver.h"
#include "log.h"
#include "secret.h"
#include "submit.h"
#include "util.h"

static void notify(void (*notice)(const char *), const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notify(void (*notice)(const char *), const char *fmt, ...)
{
	char line[PERR_TEXT_MAX + 128];
	va_list ap;

	if (!notice)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	notice(line);
}

/* ---- the log ---------------------------------------------------------------- */

/* One log line for a message's outcome (SPEC section 7); a log that cannot
 * be written is a warning, never a change of outcome. */
static void log_outcome(const struct account *a, const struct smtp_envelope *env,
			const struct submit_job *j, const char *status, const char *result,
			const char *msgid, const char *queue_id, int64_t t0,
			void (*notice)(const char *))
{
	struct perr le = { 0 };
	struct log_record lr = {
		.account = a->name,
		.host = a->host,
		.port = j ? j->port : 0,
		.tls = j ? j->tls : NULL,
		.sender = env->sender,
		.rcpts = env->rcpts,
		.nrcpts = env->nrcpts,
		.size = env->size ? (long long)env->size : -1,
		.status = status,
		.result = result,
		.msgid = msgid,
		.queue_id = queue_id,
		.duration_ms = t0 ? (long)(mono_ms() - t0) : -1,
	};

	if (log_record_write(a->log, &lr, &le) < 0)
		notify(notice, "warning: %s", le.text);
}

/* ---- recipients ------------------------------------------------------------ */

/* A growing list of unique envelope recipients; local names go through
 * the aliases file first. */
struct rcpts {
	char **v;
	size_t n, cap;
	int utf8;
	const struct aliases *al;     /* NULL: no aliases file */
	const char *local_domains;
};

static int rcpt_push(void *ctx, const char *addr, struct perr *e)
{
	struct rcpts *r = ctx;

	if (addr_check(addr, 0, e) < 0)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i], addr) == 0)
			return 0;
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->v = xrealloc(r->v, r->cap * sizeof *r->v);
	}
	r->v[r->n++] = xstrdup(addr);
	if (addr_is_utf8(addr))
		r->utf8 = 1;
	return 0;
}

static int rcpt_add(void *ctx, const char *addr, struct perr *e)
{
	struct rcpts *r = ctx;

	if (addr_check(addr, 1, e) < 0)
		return -1;
	if (aliases_is_local(addr, r->local_domains))
		return aliases_expand(r->al, addr, rcpt_push, r, e);
	return rcpt_push(r, addr, e);
}

static void rcpts_free(struct rcpts *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
}

/* Recipients from the arguments (each may be a comma list) and, with -t,
 * from To/Cc/Bcc. */
static int collect_rcpts(struct rcpts *r, const struct deliver_req *req, const struct message *m,
			 struct perr *e)
{
	for (size_t i = 0; i < req->nrcpts; i++) {
		if (addr_parse_list(req->rcpts[i], rcpt_add, r, e) < 0) {
			if (e->kind == PERR_DATA)
				e->kind = PERR_USAGE;
			return -1;
		}
	}
	for (size_t i = 0; req->extract && i < m->nhdr_rcpts; i++)
		if (rcpt_add(r, m->hdr_rcpts[i], e) < 0) {
			if (e->kind == PERR_USAGE)
				e->kind = PERR_DATA;
			return -1;
		}
	if (r->n == 0)
		return perr_set(e, PERR_USAGE,
				req->extract ? "no recipients: the message has no To, Cc or Bcc and none were given"
					     : "no recipients given; name them after the options, or use -t");
	return 0;
}

/* The envelope sender: -f; else the account's from (unless a glob); else
 * the user when it is an address; else LOGIN@HOST.  A -f without a
 * domain (cronie's `-f USER`) is a local name, as Postfix reads it: the
 * account's address stands in for it (or NAME@HOST). */
static const char *envelope_sender(const struct deliver_req *req, const struct account *a,
				   char *buf, size_t cap)
{
	struct passwd *pw;

	if (req->from && (!req->from[0] || strchr(req->from, '@')))
		return req->from;
	if (a->from && !strpbrk(a->from, "*?["))
		return a->from;
	if (a->user && strchr(a->user, '@'))
		return a->user;
	pw = req->from ? NULL : getpwuid(getuid());
	snprintf(buf, cap, "%s@%s", req->from ? req->from : pw ? pw->pw_name : "nobody",
		 submit_helo_name(a));
	return buf;
}

const char *deliver_default_sender(const struct account *a, char *buf, size_t cap)
{
	static const struct deliver_req none;

	return envelope_sender(&none, a, buf, cap);
}

/* ---- the queue ------------------------------------------------------------- */

static int open_queue(struct queue *q, struct perr *e)
{
	const char *dir = getenv("POSTERN_QUEUE_DIR");

	return queue_open(q, dir && dir[0] ? dir : NULL, e);
}

/* What identifies the account's credentials now: a hold placed under one
 * set of them ends when the configuration or the secret changes.  The
 * parts go to queue_hold / queue_held, which keep only a salted, slow
 * stamp of them (never compute one without a hold: it costs tens of ms). */
struct cred {
	char ports[64];
	struct crypto_part parts[7];
};

static void cred_of(const struct account *a, const struct secret *s, struct cred *c)
{
	const char *none = "", *auth = config_auth_name(a->auth);

	c->ports[0] = '\0';
	for (int i = 0; i < a->nports; i++) {
		size_t n = strlen(c->ports);
		snprintf(c->ports + n, sizeof c->ports - n, "%u ", a->ports[i]);
	}
	c->parts[0] = (struct crypto_part){ "postern-hold-1", 15 };
	c->parts[1] = (struct crypto_part){ a->host, strlen(a->host) + 1 };
	c->parts[2] = (struct crypto_part){ c->ports, strlen(c->ports) + 1 };
	c->parts[3] = (struct crypto_part){ a->user ? a->user : none,
					    (a->user ? strlen(a->user) : 0) + 1 };
	c->parts[4] = (struct crypto_part){ auth, strlen(auth) + 1 };
	c->parts[5] = (struct crypto_part){ a->password_command ? a->password_command : none,
					    (a->password_command ? strlen(a->password_command) : 0) + 1 };
	c->parts[6] = (struct crypto_part){ s->value ? s->value : none, s->value ? s->len : 0 };
}

/* queue_held for the account, paying for the stamp only when a hold
 * exists (one stat otherwise). */
static int held_now(struct queue *q, const struct account *a, const struct secret *s,
		    char **reason)
{
	struct cred c;

	*reason = NULL;
	if (!queue_hold_exists(q, a->name))
		return 0;
	cred_of(a, s, &c);
	return queue_held(q, a->name, c.parts, sizeof c.parts / sizeof c.parts[0], reason);
}

/* ---- what a failure does to a message ---------------------------------------- */

enum fate {
	FATE_RETRY, /* stays queued (or is queued), backed off, with the reason */
	FATE_HOLD,  /* the same, and the account is held: credentials refused */
	FATE_END,   /* a queued message moves to failed/; a new one is refused */
};

/* The one policy (SPEC 6), for a queued message and for the caller's new
 * one alike.  Only a message's own permanent refusal ends a queued
 * message (queue_lifetime is queue_retry's); whatever fails the session or
 * the account leaves it queued.  A new message is queued only for a
 * temporary failure or refused credentials: any permanent failure stays
 * the caller's, with a non-zero exit. */
static enum fate fate_of(const struct perr *e, int queued)
{
	switch (perr_verdict(e)) {
	case PERR_TEMPORARY:
		return FATE_RETRY;
	case PERR_CREDENTIALS:
		return FATE_HOLD;
	case PERR_PERMANENT:
		break;
	}
	return !queued || perr_ends_message(e) ? FATE_END : FATE_RETRY;
}

static void env_from_queue(const struct queue_env *qe, struct smtp_envelope *env)
{
	memset(env, 0, sizeof *env);
	env->sender = qe->sender;
	env->rcpts = qe->rcpts;
	env->nrcpts = qe->nrcpts;
	env->body_8bit = qe->body_8bit;
	env->smtputf8 = qe->smtputf8;
	/* SIZE= never below the real size (RFC 1870): the wire size when
	 * recorded, else none. */
	env->size = qe->wire_size > 0 ? (unsigned long long)qe->wire_size : 0;
	env->dsn_notify = qe->dsn_notify;
	env->dsn_return = qe->dsn_return;
	env->dsn_envid = qe->dsn_envid;
}

static void queue_item_source_rewind(void *ctx)
{
	queue_item_rewind(ctx);
}

/* What became of one account's queued messages in a flush (-q's report). */
struct tally {
	size_t sent, queued, held, failed;
	char why[PERR_TEXT_MAX];   /* the last reason a message stayed queued */
};

/* Count one settled message by its log status. */
static void tally_add(struct tally *t, const char *status, const char *why)
{
	if (!t)
		return;
	if (strcmp(status, "sent") == 0) {
		t->sent++;
		return;
	}
	if (strcmp(status, "failed") == 0 || strcmp(status, "expired") == 0) {
		t->failed++;
		return;
	}
	if (strcmp(status, "held") == 0)
		t->held++;
	else
		t->queued++;
	if (why)   /* the reason it stays: the last one wins */
		str_copy(t->why, why, sizeof t->why);
}

/* What a queued job's finished callback needs. */
struct settle_ctx {
	struct queue *q;
	const struct account *a;
	struct queue_item *it;
	int64_t t0;
	void (*notice)(const char *);
	struct tally *tally;       /* NULL: not counted */
};

static const char *settle_item(struct queue *q, const struct account *a, struct queue_item *it,
			       const struct submit_job *j, int64_t t0,
			       void (*notice)(const char *));

static void settle_finished(struct submit_job *j)
{
	struct settle_ctx *c = j->finished_ctx;
	const char *status = settle_item(c->q, c->a, c->it, j, c->t0, c->notice);

	tally_add(c->tally, status, j->err.text);
}

/* A job for a queued message, settled in the spool as soon as its outcome
 * is known (ctx filled by the caller but for it). */
static void job_for_item(struct submit_job *j, struct smtp_envelope *env, struct queue_item *it,
			 struct settle_ctx *ctx)
{
	env_from_queue(&it->env, env);
	memset(j, 0, sizeof *j);
	j->env = env;
	j->src = queue_item_read;
	j->src_ctx = it;
	j->rewind = queue_item_source_rewind;
	ctx->it = it;
	j->finished = settle_finished;
	j->finished_ctx = ctx;
}

/* Not delivered, not ended: back off (or give up after queue_lifetime).
 * Returns the log status. */
static const char *requeue(struct queue *q, const struct account *a, struct queue_item *it,
			   const char *why, int held, void (*notice)(const char *))
{
	struct perr e = { 0 };
	int rc = queue_retry(q, it, why, time(NULL), a ? a->queue_lifetime : 0, &e);

	if (rc == 1)
		notify(notice, "%s: gave up after queue_lifetime; moved to failed: %s", it->env.id,
		       why);
	else if (rc < 0)
		notify(notice, "%s: %s", it->env.id, e.text);
	return rc == 1 ? "expired" : held ? "held" : "deferred";
}

/* Record the outcome of a queued message's attempt; returns its log
 * status. */
static const char *settle_item(struct queue *q, const struct account *a, struct queue_item *it,
			       const struct submit_job *j, int64_t t0,
			       void (*notice)(const char *))
{
	struct perr e = { 0 };
	const char *id = it->env.id, *status;
	enum fate f = FATE_RETRY;

	if (j->done) {
		status = "sent";
		if (queue_done(q, it, &e) < 0)
			notify(notice, "%s: delivered, but removing it from the queue failed: %s", id,
			       e.text);
	} else if ((f = fate_of(&j->err, 1)) == FATE_END) {
		status = "failed";
		if (queue_fail(q, it, j->err.text, &e) < 0)
			notify(notice, "%s: %s", id, e.text);
		notify(notice, "%s: refused permanently, moved to failed: %s", id, j->err.text);
	} else {
		status = requeue(q, a, it, j->err.text, f == FATE_HOLD, notice);
	}
	log_outcome(a, j->env, j, status, j->done ? j->reply : j->err.text, NULL, id, t0, notice);
	return status;
}

/* Hold the account after refused credentials.  With announce, a line
 * says so; without, the caller's own line does (a send's one line).
 * Returns 0, or -1 when the hold could not be written (said). */
static int hold_account(struct queue *q, const struct account *a, const struct secret *s,
			const struct perr *why, void (*notice)(const char *), int announce)
{
	struct perr e = { 0 };
	struct cred c;
	int rc = 0;

	cred_of(a, s, &c);
	if (queue_hold(q, a->name, why->text, c.parts, sizeof c.parts / sizeof c.parts[0], &e) < 0) {
		notify(notice, "%s", e.text);
		rc = -1;
	}
	if (log_event_line(a->log, LOGL_ERR, &e, "account=%s status=held (%s)", a->name,
			   why->text) < 0)
		notify(notice, "warning: %s", e.text);
	if (announce && rc == 0)
		notify(notice, "account %s is held: %s; queued mail waits until its password or "
		       "configuration changes, or you run postern -q", a->name, why->text);
	return rc;
}

/* The message could be neither delivered nor queued: the spool's error
 * (74 or 75) decides the exit, the line says both, the message stays the
 * caller's. */
static void unqueued(struct perr *e, const struct perr *qerr, const struct perr *why)
{
	*e = *qerr;
	perr_prefix(e, "the message was not queued");
	if (why)
		perr_append(e, "; it was not delivered either: %s", why->text);
}

/* Spool the caller's message after why (NULL for -odq). */
static int queue_new(struct queue *q, const struct account *a, const struct message *m,
		     const struct smtp_envelope *env, const struct perr *why,
		     const struct deliver_req *req, struct deliver_result *res, struct perr *e)
{
	struct queue_env qe = {
		.account = a->name,
		.sender = (char *)env->sender,
		.rcpts = (char **)env->rcpts,
		.nrcpts = env->nrcpts,
		.body_8bit = env->body_8bit,
		.smtputf8 = env->smtputf8,
		.dsn_notify = (char *)env->dsn_notify,
		.dsn_return = (char *)env->dsn_return,
		.dsn_envid = (char *)env->dsn_envid,
		.wire_size = (long long)env->size,
		.attempts = why ? 1 : 0,
		.last_error = why ? (char *)why->text : NULL,
		.owned = req->owned,
		.owner = req->owner,
	};
	struct perr qerr = { 0 };

	if (queue_add(q, &qe, m, &qerr) < 0) {
		unqueued(e, &qerr, why);
		return -1;
	}
	res->outcome = DELIVER_QUEUED;
	str_copy(res->queue_id, qe.id, sizeof res->queue_id);
	str_copy(res->reason, why ? why->text : "queued with -odq", sizeof res->reason);
	return 0;
}

/* ---- one message ------------------------------------------------------------ */

/* Everything deliver_message holds, so one cleanup frees it. */
struct send_state {
	const struct deliver_req *req;
	struct rcpts r;
	struct aliases al;
	struct secret s;
	struct queue q;
	int q_open;
	struct queue_item *items;
	size_t nitems;
	struct submit_job *jobs;
	struct smtp_envelope *envs;
	struct settle_ctx *ctxs;
	int64_t t0;                   /* when the attempt began; 0: none */
	int hold_lifted;              /* the credentials changed since a hold */
};

static void send_state_free(struct send_state *st)
{
	queue_items_free(st->items, st->nitems);
	free(st->jobs);
	free(st->envs);
	free(st->ctxs);
	if (st->q_open)
		queue_close(&st->q);
	secret_free(&st->s);
	rcpts_free(&st->r);
	aliases_free(&st->al);
}

static long message_source(void *ctx, unsigned char *buf, size_t cap, struct perr *e)
{
	return message_next(ctx, buf, cap, e);
}

static void message_source_rewind(void *ctx)
{
	struct msg_reader *r = ctx;

	message_rewind(r->m, r);
}

/* Queue the caller's message after a temporary failure (or -odq). */
static int keep(struct send_state *st, const struct account *a, const struct message *m,
		const struct smtp_envelope *env, const struct perr *why,
		struct deliver_result *res, struct perr *e)
{
	if (!st->q_open) {
		struct perr qerr = { 0 };

		if (open_queue(&st->q, &qerr) < 0) {
			unqueued(e, &qerr, why);
			return -1;
		}
		st->q_open = 1;
	}
	if (queue_new(&st->q, a, m, env, why, st->req, res, e) < 0)
		return -1;
	log_event("queued as %s", res->queue_id);
	return 0;
}

/* The caller's message met e (temporary, or refused credentials): queue
 * it, and after refused credentials hold the account. */
static int keep_or_hold(struct send_state *st, const struct account *a, const struct message *m,
			const struct smtp_envelope *env, const struct deliver_req *req,
			struct deliver_result *res, struct perr *e)
{
	struct perr why = *e;
	int held = 0;

	if (fate_of(&why, 0) == FATE_HOLD && (st->q_open || open_queue(&st->q, e) == 0)) {
		st->q_open = 1;
		held = hold_account(&st->q, a, &st->s, &why, req->notice, 0) == 0;
	}
	if (keep(st, a, m, env, &why, res, e) < 0)
		return -1;
	if (held) {
		/* One line says it all: queued, why, and the hold. */
		size_t n = strlen(res->reason);

		snprintf(res->reason + n, sizeof res->reason - n, "; account %s is held: its queued "
			 "mail waits until its secret or configuration changes, or you run postern -q",
			 a->name);
	}
	return 0;
}

/* Try now: the caller's message first, then the account's due queued
 * ones (all of them when a hold just ended) over the same connection.
 * Returns the caller's job's outcome. */
static int attempt(struct send_state *st, const struct account *a, const struct message *m,
		   const struct smtp_envelope *env, const struct deliver_req *req, struct perr *e)
{
	struct msg_reader reader;
	struct queue_scan scan;
	struct perr qe = { 0 };
	size_t n = 1;

	queue_scan_init(&scan, a->name, !st->hold_lifted, time(NULL));
	if (st->q_open && queue_claim_next(&st->q, &scan, QUEUE_CLAIM_MAX - 1, &st->items,
					   &st->nitems, &qe) == 0)
		n += st->nitems;
	st->jobs = xcalloc(n, sizeof *st->jobs);
	st->envs = xcalloc(n, sizeof *st->envs);
	st->ctxs = xcalloc(n, sizeof *st->ctxs);
	st->t0 = mono_ms();
	message_rewind(m, &reader);
	st->jobs[0] = (struct submit_job){ .env = env, .src = message_source, .src_ctx = &reader,
					   .rewind = message_source_rewind };
	for (size_t i = 1; i < n; i++) {
		st->ctxs[i] = (struct settle_ctx){ .q = &st->q, .a = a, .t0 = st->t0,
						   .notice = req->notice };
		job_for_item(&st->jobs[i], &st->envs[i], &st->items[i - 1], &st->ctxs[i]);
	}
	submit_batch(a, &st->s, st->jobs, n, e);
	if (st->jobs[0].done)
		return 0;
	*e = st->jobs[0].err;
	return -1;
}

int deliver_message(const struct config *cfg, const struct deliver_req *req, struct message *m,
		    struct deliver_result *res, struct perr *e)
{
	struct send_state st = { .req = req };
	const struct account *a;
	const char *sender;
	char sender_buf[512];
	char *held = NULL, msgid[256];
	struct smtp_envelope env = { 0 };
	int rc = -1;

	memset(res, 0, sizeof *res);
	a = config_choose(cfg, req->account, req->from ? req->from : (req->extract ? m->from_addr : NULL), e);
	if (!a)
		return -1;
	sender = envelope_sender(req, a, sender_buf, sizeof sender_buf);
	/* -t, no -f, and the From matches the account's from glob: that From
	 * is the sender the provider expects. */
	if (!req->from && req->extract && m->from_addr && a->from && strpbrk(a->from, "*?[") &&
	    fnmatch(a->from, m->from_addr, FNM_CASEFOLD) == 0) {
		str_copy(sender_buf, m->from_addr, sizeof sender_buf);  /* prepare frees it */
		sender = sender_buf;
	}
	if (sender[0] && addr_check(sender, 0, e) < 0) {
		perr_prefix(e, "envelope sender");
		return -1;
	}
	if (a->aliases && aliases_load(&st.al, a->aliases, e) < 0)
		goto out;
	st.r.al = a->aliases ? &st.al : NULL;
	st.r.local_domains = a->local_domains;
	if (collect_rcpts(&st.r, req, m, e) < 0)
		goto out;
	struct msg_opts mo = {
		.add_headers = a->add_headers,
		.sender = sender,
		.fullname = req->fullname,
		.domain = addr_domain(sender) ? addr_domain(sender) : submit_helo_name(a),
		.force_from = a->from_header_force ? sender : NULL,
	};
	if (message_prepare(m, &mo, e) < 0)
		goto out;
	env = (struct smtp_envelope){
		.sender = sender,
		.rcpts = st.r.v,
		.nrcpts = st.r.n,
		.body_8bit = m->has_8bit || (req->body_type && str_ieq(req->body_type, "8BITMIME")),
		.smtputf8 = st.r.utf8 || addr_is_utf8(sender),
		.size = (unsigned long long)message_wire_size(m),
		.dsn_notify = req->dsn_notify ? req->dsn_notify : a->dsn_notify,
		.dsn_return = req->dsn_return ? req->dsn_return : a->dsn_return,
		.dsn_envid = req->dsn_envid,
	};
	if (req->queue_only) {
		if (!a->queue) {
			perr_set(e, PERR_USAGE, "-odq asks to queue the message, but account %s has "
				 "queue = off", a->name);
			goto out;
		}
		rc = keep(&st, a, m, &env, NULL, res, e);
		goto out;
	}
	if (secret_resolve(a, &st.s, e) < 0) {
		/* The keyring unreachable or a command that timed out: try
		 * later; an OAuth2 grant refused: queue and hold. */
		if (a->queue && fate_of(e, 0) != FATE_END)
			rc = keep_or_hold(&st, a, m, &env, req, res, e);
		goto out;
	}
	if (a->queue && open_queue(&st.q, e) == 0) {
		int hold = held_now(&st.q, a, &st.s, &held);

		st.q_open = 1;
		if (hold == 1) {
			struct perr why;
			perr_set(&why, PERR_AUTH, "account %s is held after refused credentials (%s); "
				 "fix them and run postern -q", a->name, held);
			free(held);
			rc = keep(&st, a, m, &env, &why, res, e);
			goto out;
		}
		st.hold_lifted = hold == 2;
	}
	perr_clear(e);
	rc = attempt(&st, a, m, &env, req, e);
	if (rc < 0 && a->queue && fate_of(e, 0) != FATE_END)
		rc = keep_or_hold(&st, a, m, &env, req, res, e);
out:
	if (env.sender) {
		const struct submit_job *j = st.jobs ? &st.jobs[0] : NULL;
		int queued = rc == 0 && res->outcome == DELIVER_QUEUED;

		if (message_header(m, "Message-ID", msgid, sizeof msgid) < 0)
			msgid[0] = '\0';
		log_outcome(a, &env, j, rc < 0 ? "failed" : queued ? "queued" : "sent",
			    rc < 0 ? e->text : queued ? res->reason : j ? j->reply : NULL,
			    msgid[0] ? msgid : NULL, queued ? res->queue_id : NULL, st.t0,
			    req->notice);
	}
	send_state_free(&st);
	return rc;
}

/* ---- the queue, flushed ------------------------------------------------------ */

/* What one flush knows of an account whose messages it met. */
struct acct_run {
	char *name;                 /* as in the envelopes */
	const struct account *a;    /* NULL: not in the configuration */
	struct secret s;
	int ready;                  /* a and s are usable */
	int hold;                   /* queue_held: 1 held, 2 lifted now; 0 none */
	struct perr why;            /* not ready, or the session failed in this
				       run (down): the reason its messages keep */
	int down;
	struct submit_session *sess; /* open across batches; NULL: none yet */
	struct tally tally;
};

struct flush_run {
	const struct config *cfg;
	struct queue *q;
	int due_only;
	void (*notice)(const char *);
	struct acct_run *accts;
	size_t n, cap;
	int final_batch;            /* this batch is the scan's last: QUIT */
	int reporting;              /* the run's report says each hold (-q) */
	struct perr last;           /* the last failure, for the exit status */
	int failed;
};

static struct acct_run *acct_find(struct flush_run *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->accts[i].name, name) == 0)
			return &r->accts[i];
	return NULL;
}

/* The account's state for this run, set up the first time: the
 * configuration, the secret (once per run), the hold. */
static struct acct_run *acct_get(struct flush_run *r, const char *name)
{
	struct acct_run *ar = acct_find(r, name);
	char *held = NULL;

	if (ar)
		return ar;
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 4;
		r->accts = xrealloc(r->accts, r->cap * sizeof *r->accts);
	}
	ar = &r->accts[r->n++];
	memset(ar, 0, sizeof *ar);
	ar->name = xstrdup(name);
	ar->a = config_choose(r->cfg, name, NULL, &ar->why);
	if (!ar->a) {
		notify(r->notice, "queued messages of account %s stay queued: %s", name, ar->why.text);
		return ar;
	}
	if (secret_resolve(ar->a, &ar->s, &ar->why) < 0) {
		if (fate_of(&ar->why, 1) == FATE_HOLD) {
			/* Credentials refused before any server was asked (an
			 * OAuth2 grant revoked): held, like a 535; said once,
			 * by the hold's line or the run's report. */
			hold_account(r->q, ar->a, &ar->s, &ar->why, r->notice, !r->reporting);
			ar->hold = 1;
			ar->down = 1;
			return ar;
		}
		notify(r->notice, "account %s: %s; its queued messages stay queued", name,
		       ar->why.text);
		/* Unknown credentials: a hold stays as it is. */
		ar->hold = queue_hold_exists(r->q, name);
		return ar;
	}
	ar->ready = 1;
	if (!r->due_only) {
		queue_unhold(r->q, name);  /* a person asked */
		return ar;
	}
	ar->hold = held_now(r->q, ar->a, &ar->s, &held);
	if (ar->hold == 1)
		log_event("account %s is held (%s); skipped", name, held);
	free(held);
	return ar;
}

static void acct_runs_free(struct flush_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->accts[i].sess) {
			submit_close(r->accts[i].sess);
			free(r->accts[i].sess);
		}
		secret_free(&r->accts[i].s);
		free(r->accts[i].name);
	}
	free(r->accts);
}

/* The scan's pick: with --due a held account's messages stay untouched,
 * and all of them go (due or not) when its hold just ended because the
 * credentials changed. */
static enum queue_pick flush_pick(void *ctx, const struct queue_env *env)
{
	struct flush_run *r = ctx;
	struct acct_run *ar;

	if (!r->due_only || !queue_hold_exists(r->q, env->account)) {
		ar = acct_find(r, env->account);
		return ar && ar->hold == 2 && r->due_only ? QUEUE_PICK_ANY : QUEUE_PICK_RULE;
	}
	ar = acct_get(r, env->account);
	return ar->hold == 2 ? QUEUE_PICK_ANY : QUEUE_PICK_SKIP;
}

static void flush_failed(struct flush_run *r, const struct perr *e)
{
	r->last = *e;
	r->failed = 1;
}

/* Send one batch of an account's jobs over its session, opened by the
 * first batch and kept open for the next (one connection per account and
 * run, whatever the number of batches); the scan's last batch ends it. */
static int flush_send(struct flush_run *r, struct acct_run *ar, struct submit_job *jobs,
		      size_t n, struct perr *e)
{
	int rc;

	if (!ar->sess || !ar->sess->open) {
		if (!ar->sess)
			ar->sess = xcalloc(1, sizeof *ar->sess);
		if (submit_open(ar->sess, ar->a, &ar->s, e) < 0) {
			submit_fail(jobs, n, e);
			return -1;
		}
	}
	rc = submit_send(ar->sess, jobs, n, r->final_batch, e);
	return rc;
}

/* Deliver the claimed items of one account (items[0..n) share it) over
 * one session; or, when the account cannot be used now (unknown, no
 * secret, its session failed earlier in this run), keep them queued with
 * the reason, backed off. */
static void flush_account(struct flush_run *r, struct queue_item *items, size_t n)
{
	struct acct_run *ar = acct_get(r, items[0].env.account);
	struct submit_job *jobs;
	struct smtp_envelope *envs;
	struct settle_ctx *ctxs;
	const struct perr *refused = NULL;
	struct perr se = { 0 };

	if (ar->hold == 1 && (r->due_only || ar->down)) {
		ar->tally.held += n;  /* released untouched: mailq shows them held */
		str_copy(ar->tally.why, ar->why.text, sizeof ar->tally.why);
		return;
	}
	if (!ar->ready || ar->down) {
		for (size_t i = 0; i < n; i++) {
			struct smtp_envelope env;
			const char *status = requeue(r->q, ar->a, &items[i], ar->why.text, 0, r->notice);

			env_from_queue(&items[i].env, &env);
			tally_add(&ar->tally, status, ar->why.text);
			if (ar->a)
				log_outcome(ar->a, &env, NULL, status, ar->why.text, NULL,
					    items[i].env.id, 0, r->notice);
		}
		flush_failed(r, &ar->why);
		return;
	}
	jobs = xcalloc(n, sizeof *jobs);
	envs = xcalloc(n, sizeof *envs);
	ctxs = xcalloc(n, sizeof *ctxs);
	int64_t t0 = mono_ms();
	for (size_t i = 0; i < n; i++) {
		ctxs[i] = (struct settle_ctx){ .q = r->q, .a = ar->a, .t0 = t0, .notice = r->notice,
					       .tally = &ar->tally };
		job_for_item(&jobs[i], &envs[i], &items[i], &ctxs[i]);
	}
	if (flush_send(r, ar, jobs, n, &se) < 0) {
		/* The next batches of this account do not try again in this run. */
		ar->down = 1;
		ar->why = se;
	}
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].done)
			continue;
		flush_failed(r, &jobs[i].err);
		if (!refused && fate_of(&jobs[i].err, 1) == FATE_HOLD)
			refused = &jobs[i].err;
	}
	if (refused) {
		/* The report's line for the account says held and why. */
		hold_account(r->q, ar->a, &ar->s, refused, r->notice, !r->reporting);
		ar->hold = 1;
		ar->down = 1;
		ar->why = *refused;
	}
	free(ctxs);
	free(jobs);
	free(envs);
}

/* Group one batch by account (each account's messages keep their order)
 * and flush each group. */
static void flush_batch(struct flush_run *r, struct queue_item *items, size_t n)
{
	size_t start = 0;

	while (start < n) {
		size_t end = start + 1;

		for (size_t i = start + 1; i < n; i++) {
			if (strcmp(items[i].env.account, items[start].env.account) != 0)
				continue;
			if (i != end) {
				struct queue_item t = items[i];
				memmove(&items[end + 1], &items[end], (i - end) * sizeof *items);
				items[end] = t;
			}
			end++;
		}
		flush_account(r, items + start, end - start);
		start = end;
	}
}

/* One line per account the flush met, then the total. */
static void report(FILE *out, const struct flush_run *r)
{
	struct tally total = { 0 };
	char why[PERR_TEXT_MAX];

	for (size_t i = 0; i < r->n; i++) {
		const struct tally *t = &r->accts[i].tally;

		log_sanitize(why, sizeof why, t->why, strlen(t->why));
		fprintf(out, "account %s: delivered %zu, queued %zu%s%s%s, held %zu%s%s%s, "
			"failed %zu\n", r->accts[i].name, t->sent, t->queued,
			t->queued ? " (" : "", t->queued ? why : "", t->queued ? ")" : "", t->held,
			t->held && !t->queued ? " (" : "", t->held && !t->queued ? why : "",
			t->held && !t->queued ? ")" : "", t->failed);
		total.sent += t->sent;
		total.queued += t->queued;
		total.held += t->held;
		total.failed += t->failed;
	}
	fprintf(out, "total: delivered %zu, queued %zu, held %zu, failed %zu\n", total.sent,
		total.queued, total.held, total.failed);
}

int deliver_flush(const struct config *cfg, int due_only, void (*notice)(const char *line),
		  struct perr *e)
{
	return deliver_flush_report(cfg, due_only, notice, NULL, e);
}

int deliver_flush_report(const struct config *cfg, int due_only,
			 void (*notice)(const char *line), FILE *out, struct perr *e)
{
	struct queue q;
	struct queue_scan scan;
	struct flush_run r = { .cfg = cfg, .q = &q, .due_only = due_only, .notice = notice,
			       .reporting = out != NULL };
	int rc = 0;

	if (open_queue(&q, e) < 0)
		return -1;
	q.lazy_sync = 1;
	queue_scan_init(&scan, NULL, due_only, time(NULL));
	scan.pick = flush_pick;
	scan.pick_ctx = &r;
	/* Bounded batches: claim, deliver, release, until every queued
	 * message has been looked at once. */
	while (!scan.done) {
		struct queue_item *items = NULL;
		size_t n = 0;

		if (queue_claim_next(&q, &scan, QUEUE_CLAIM_MAX, &items, &n, e) < 0) {
			rc = -1;
			break;
		}
		if (e->text[0])
			notify(notice, "%s", e->text);
		r.final_batch = scan.done;
		flush_batch(&r, items, n);
		queue_items_free(items, n);
		queue_sync(&q);
	}
	if (rc == 0 && r.failed) {
		*e = r.last;
		rc = -1;
	}
	if (out)
		report(out, &r);
	acct_runs_free(&r);
	queue_close(&q);
	return rc;
}
