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

/* ---- the queue ------------------------------------------------------------- */

static int open_queue(struct queue *q, struct perr *e)
{
	const char *dir = getenv("POSTERN_QUEUE_DIR");

	return queue_open(q, dir && dir[0] ? dir : NULL, e);
}

/* What identifies the account's credentials now: a hold placed under one
 * stamp ends when the configuration or the secret changes. */
static void hold_stamp(const struct account *a, const struct secret *s, char out[65])
{
	char ports[64] = "";
	const char *none = "";
	struct crypto_part parts[] = {
		{ "postern-hold-1", 15 },
		{ a->host, strlen(a->host) + 1 },
		{ ports, 0 },
		{ a->user ? a->user : none, (a->user ? strlen(a->user) : 0) + 1 },
		{ config_auth_name(a->auth), strlen(config_auth_name(a->auth)) + 1 },
		{ a->password_command ? a->password_command : none,
		  (a->password_command ? strlen(a->password_command) : 0) + 1 },
		{ s->value ? s->value : none, s->value ? s->len : 0 },
	};

	for (int i = 0; i < a->nports; i++) {
		size_t n = strlen(ports);
		snprintf(ports + n, sizeof ports - n, "%u ", a->ports[i]);
	}
	parts[2].len = strlen(ports) + 1;
	crypto_sha256_hex(parts, sizeof parts / sizeof parts[0], out);
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

/* What a queued job's finished callback needs. */
struct settle_ctx {
	struct queue *q;
	const struct account *a;
	struct queue_item *it;
	int64_t t0;
	void (*notice)(const char *);
};

static void settle_item(struct queue *q, const struct account *a, struct queue_item *it,
			const struct submit_job *j, int64_t t0, void (*notice)(const char *));

static void settle_finished(struct submit_job *j)
{
	struct settle_ctx *c = j->finished_ctx;

	settle_item(c->q, c->a, c->it, j, c->t0, c->notice);
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

/* Record the outcome of a queued message's attempt. */
static void settle_item(struct queue *q, const struct account *a, struct queue_item *it,
			const struct submit_job *j, int64_t t0, void (*notice)(const char *))
{
	struct perr e = { 0 };
	const char *id = it->env.id, *status;

	if (j->done) {
		status = "sent";
		if (queue_done(q, it, &e) < 0)
			notify(notice, "%s: delivered, but removing it from the queue failed: %s", id,
			       e.text);
	} else if (j->err.kind == PERR_TEMP || j->err.kind == PERR_AUTH) {
		int rc = queue_retry(q, it, j->err.text, time(NULL), a->queue_lifetime, &e);

		status = rc == 1 ? "expired" : j->err.kind == PERR_AUTH ? "held" : "deferred";
		if (rc == 1)
			notify(notice, "%s: gave up after queue_lifetime; moved to failed: %s", id,
			       j->err.text);
		else if (rc < 0)
			notify(notice, "%s: %s", id, e.text);
	} else {
		status = "failed";
		if (queue_fail(q, it, j->err.text, &e) < 0)
			notify(notice, "%s: %s", id, e.text);
		notify(notice, "%s: refused permanently, moved to failed: %s", id, j->err.text);
	}
	log_outcome(a, j->env, j, status, j->done ? j->reply : j->err.text, NULL, id, t0, notice);
}

/* Hold the account after refused credentials. */
static void hold_account(struct queue *q, const struct account *a, const struct secret *s,
			 const struct perr *why, void (*notice)(const char *))
{
	char stamp[65];
	struct perr e = { 0 };

	hold_stamp(a, s, stamp);
	if (queue_hold(q, a->name, why->text, stamp, &e) < 0)
		notify(notice, "%s", e.text);
	if (log_event_line(a->log, LOGL_ERR, &e, "account=%s status=held (%s)", a->name,
			   why->text) < 0)
		notify(notice, "warning: %s", e.text);
	notify(notice, "account %s is held: %s; queued mail waits until its password or "
	       "configuration changes, or you run postern -q", a->name, why->text);
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
		     struct deliver_result *res, struct perr *e)
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
	if (queue_new(&st->q, a, m, env, why, res, e) < 0)
		return -1;
	log_event("queued as %s", res->queue_id);
	return 0;
}

/* Try now: the caller's message first, then the account's queued ones
 * over the same connection.  Returns the caller's job's outcome. */
static int attempt(struct send_state *st, const struct account *a, const struct message *m,
		   const struct smtp_envelope *env, const struct deliver_req *req, struct perr *e)
{
	struct msg_reader reader;
	struct perr qe = { 0 };
	size_t n = 1;

	if (st->q_open && queue_claim(&st->q, a->name, 0, time(NULL), &st->items, &st->nitems,
				      &qe) == 0)
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
	struct send_state st = { 0 };
	const struct account *a;
	const char *sender;
	char sender_buf[512], stamp[65];
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
		/* The keyring unreachable or a command that timed out: try later. */
		if (e->kind == PERR_TEMP && a->queue) {
			struct perr why = *e;
			rc = keep(&st, a, m, &env, &why, res, e);
		}
		goto out;
	}
	if (a->queue && open_queue(&st.q, e) == 0) {
		st.q_open = 1;
		hold_stamp(a, &st.s, stamp);
		if (queue_held(&st.q, a->name, stamp, &held) == 1) {
			struct perr why;
			perr_set(&why, PERR_AUTH, "account %s is held after refused credentials (%s); "
				 "fix them and run postern -q", a->name, held);
			free(held);
			rc = keep(&st, a, m, &env, &why, res, e);
			goto out;
		}
	}
	perr_clear(e);
	rc = attempt(&st, a, m, &env, req, e);
	if (rc < 0 && a->queue && (e->kind == PERR_TEMP || e->kind == PERR_AUTH)) {
		struct perr why = *e;
		if (why.kind == PERR_AUTH && (st.q_open || open_queue(&st.q, e) == 0)) {
			st.q_open = 1;
			hold_account(&st.q, a, &st.s, &why, req->notice);
		}
		rc = keep(&st, a, m, &env, &why, res, e);
	}
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

/* Deliver the claimed items of one account (items[0..n) share it). */
static int flush_account(const struct config *cfg, struct queue *q, struct queue_item *items,
			 size_t n, int due_only, void (*notice)(const char *), struct perr *e)
{
	const char *name = items[0].env.account;
	const struct account *a = config_choose(cfg, name, NULL, e);
	struct secret s = { 0 };
	struct submit_job *jobs;
	struct smtp_envelope *envs;
	struct queue_item **sel;
	struct settle_ctx *ctxs;
	char stamp[65], *held = NULL;
	size_t failed = 0, nsel = 0;
	time_t now = time(NULL);

	if (!a) {
		notify(notice, "%zu queued message(s) of account %s stay queued: %s", n, name, e->text);
		return -1;
	}
	/* A timer with nothing due and no hold to re-check asks for no secret. */
	if (due_only && !queue_hold_exists(q, name)) {
		size_t due = 0;

		for (size_t i = 0; i < n; i++)
			due += items[i].env.next_try <= now;
		if (due == 0)
			return 0;
	}
	if (secret_resolve(a, &s, e) < 0) {
		notify(notice, "account %s: %s; its queued messages stay queued", name, e->text);
		return -1;
	}
	hold_stamp(a, &s, stamp);
	int hold = queue_held(q, name, stamp, &held);
	if (hold == 1) {
		if (due_only) {
			log_event("account %s is held (%s); skipped", name, held);
			free(held);
			secret_free(&s);
			return 0;
		}
		free(held);
		queue_unhold(q, name);
	}
	/* With --due only messages whose time has come go, unless a hold just
	 * ended because the credentials changed: then all of them. */
	sel = xcalloc(n, sizeof *sel);
	for (size_t i = 0; i < n; i++)
		if (!due_only || hold == 2 || items[i].env.next_try <= now)
			sel[nsel++] = &items[i];
	jobs = xcalloc(nsel, sizeof *jobs);
	envs = xcalloc(nsel, sizeof *envs);
	ctxs = xcalloc(nsel, sizeof *ctxs);
	int64_t t0 = mono_ms();
	for (size_t i = 0; i < nsel; i++) {
		ctxs[i] = (struct settle_ctx){ .q = q, .a = a, .t0 = t0, .notice = notice };
		job_for_item(&jobs[i], &envs[i], sel[i], &ctxs[i]);
	}
	if (nsel)
		submit_batch(a, &s, jobs, nsel, e);
	for (size_t i = 0; i < nsel; i++) {
		if (!jobs[i].done) {
			*e = jobs[i].err;
			failed++;
		}
	}
	if (failed && e->kind == PERR_AUTH)
		hold_account(q, a, &s, e, notice);
	free(sel);
	free(ctxs);
	free(jobs);
	free(envs);
	secret_free(&s);
	return failed ? -1 : 0;
}

int deliver_flush(const struct config *cfg, int due_only, void (*notice)(const char *line),
		  struct perr *e)
{
	struct queue q;
	struct queue_item *items = NULL;
	size_t n = 0, start = 0;
	int rc = 0;

	if (open_queue(&q, e) < 0)
		return -1;
	q.lazy_sync = 1;
	/* Claim everything: an account whose hold just ended sends all its
	 * messages even under --due (flush_account picks). */
	if (queue_claim(&q, NULL, 0, time(NULL), &items, &n, e) < 0) {
		queue_close(&q);
		return -1;
	}
	if (e->text[0])
		notify(notice, "%s", e->text);
	perr_clear(e);
	/* Group by account, keeping each account's messages oldest first. */
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
		struct perr ae = { 0 };
		if (flush_account(cfg, &q, items + start, end - start, due_only, notice, &ae) < 0) {
			*e = ae;
			rc = -1;
		}
		start = end;
	}
	queue_items_free(items, n);
	queue_close(&q);
	return rc;
}

/* ---- mailq ------------------------------------------------------------------ */

static void format_age(char *buf, size_t cap, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 3600)
		snprintf(buf, cap, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, cap, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
	else
		snprintf(buf, cap, "%lldd%02lldh", secs / 86400, secs % 86400 / 3600);
}

struct listing {
	FILE *out;
	size_t queued, failed;
};

static int list_one(void *ctx, const struct queue_env *qe, int failed, const char *held)
{
	struct listing *l = ctx;
	char age[32], next[32], line[PERR_TEXT_MAX];
	time_t now = time(NULL);

	if (failed && l->failed++ == 0)
		fprintf(l->out, "%s-- failed (given up; kept in the spool's failed/ directory) --\n",
			l->queued ? "\n" : "");
	if (!failed && l->queued++ == 0)
		fprintf(l->out, "%-22s %7s %9s  %-8s %-9s %s\n", "ID", "AGE", "SIZE", "ATTEMPTS",
			"NEXT TRY", "SENDER");
	format_age(age, sizeof age, (long long)(now - qe->created));
	if (failed)
		str_copy(next, "-", sizeof next);
	else if (held)
		str_copy(next, "held", sizeof next);
	else if (qe->next_try <= now)
		str_copy(next, "now", sizeof next);
	else {
		char in[24];
		format_age(in, sizeof in, (long long)(qe->next_try - now));
		snprintf(next, sizeof next, "in %s", in);
	}
	log_sanitize(line, sizeof line, qe->sender, strlen(qe->sender));
	fprintf(l->out, "%-22s %7s %9lld  %-8u %-9s %s\n", qe->id, age, qe->size, qe->attempts,
		next, qe->sender[0] ? line : "<>");
	for (size_t i = 0; i < qe->nrcpts; i++) {
		log_sanitize(line, sizeof line, qe->rcpts[i], strlen(qe->rcpts[i]));
		fprintf(l->out, "    to: %s\n", line);
	}
	fprintf(l->out, "    account: %s\n", qe->account);
	if (held) {
		log_sanitize(line, sizeof line, held, strlen(held));
		fprintf(l->out, "    held: %s (run postern -q after fixing the credentials)\n", line);
	}
	if (qe->last_error) {
		log_sanitize(line, sizeof line, qe->last_error, strlen(qe->last_error));
		fprintf(l->out, "    last error: %s\n", line);
	}
	return 0;
}

int deliver_list_queue(FILE *out, struct perr *e)
{
	struct queue q;
	struct listing l = { .out = out };
	int rc;

	if (open_queue(&q, e) < 0)
		return -1;
	rc = queue_list(&q, list_one, &l, e);
	queue_close(&q);
	if (rc < 0)
		return -1;
	if (!l.queued && !l.failed)
		fprintf(out, "Mail queue is empty\n");
	return 0;
}
