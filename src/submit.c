/* submit.c — submission policy: ports in order, TLS mode per port, the
 * AUTH mechanism; each failure gets the fix hint.c chooses. */
#include "autoconf.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hint.h"
#include "log.h"
#include "oauth2.h"
#include "submit.h"
#include "util.h"

const char *submit_helo_name(const struct account *a)
{
	static char name[256];
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;

	if (a && a->domain)
		return a->domain;
	if (name[0])
		return name;
	if (gethostname(name, sizeof name - 1) != 0 || !name[0])
		str_copy(name, "localhost", sizeof name);
	name[sizeof name - 1] = '\0';
	if (!strchr(name, '.') && getaddrinfo(name, NULL, &hints, &res) == 0) {
		if (res && res->ai_canonname && strchr(res->ai_canonname, '.'))
			str_copy(name, res->ai_canonname, sizeof name);
		freeaddrinfo(res);
	}
	return name;
}

struct tls_opts submit_tls_opts(const struct account *a)
{
	struct tls_opts o = {
		.host = a->host, .ca_file = a->tls_ca_file, .fingerprint = a->tls_fingerprint,
		.cert_file = a->tls_cert_file, .key_file = a->tls_key_file,
		.min_version = a->tls_min_version,
	};

	return o;
}

/* Append the fix a person needs for this failure, when hint.c knows one:
 * chosen by its cause, the server's reply and the provider behind the
 * server (its greeting when the session got that far). */
static void advise(struct perr *e, const struct account *a, unsigned port, const struct smtp *s)
{
	hint_advise_greeted(e, a, port, s->greeting[0] ? s->greeting : NULL);
}

static void fill_params(struct smtp_params *p, const struct account *a, const struct secret *s,
			unsigned port)
{
	memset(p, 0, sizeof *p);
	p->host = a->host;
	p->port = port;
	p->tls = config_port_tls(a, port);
	p->tls_opts = submit_tls_opts(a);
	p->helo = submit_helo_name(a);
	p->timeout_s = a->timeout;
	/* EXTERNAL needs no secret: the client certificate is the credential. */
	p->auth = secret_needed(a) || a->auth == AUTH_EXTERNAL ? a->auth : AUTH_OFF;
	p->user = a->user;
	p->secret = s ? s->value : NULL;
	p->secret_len = s ? s->len : 0;
	p->pipeline_auth = 1;
	/* A token from postern's own OAuth2 can be replaced if refused. */
	p->pipeline_token = a->oauth2 != OAUTH2_NONE;
}

/* Open a session on the first port that accepts a connection.  A one-line
 * AUTH is left in the write buffer for the first transaction (RFC 4954
 * section 4, RFC 2920): the secret is resolved before connecting, so
 * nothing has to wait for 235. */
static int open_session(struct smtp *session, struct smtp_params *p, const struct account *a,
			const struct secret *s, int pipeline, struct perr *e)
{
	for (int i = 0; i < a->nports; i++) {
		fill_params(p, a, s, a->ports[i]);
		p->pipeline_auth = pipeline;
		perr_clear(e);
		if (smtp_open(session, p, e) == 0)
			return 0;
		if (!perr_is_connect(e) || i + 1 == a->nports)
			break;
		log_event("%s; trying port %u", e->text, a->ports[i + 1]);
	}
	if (a->nports == 0)
		return perr_set(e, PERR_CONFIG, "account %s has no port to try", a->name);
	advise(e, a, p->port, session);
	return -1;
}

static void finish(struct submit_job *j)
{
	if (j->finished)
		j->finished(j);
}

struct msg_ctx {
	struct submit_session *ss;
	struct submit_job *job;
	int retry;  /* its token was refused: kept for token_again */
};

/* Can a refused OAuth2 token still be replaced in this session? */
static int renewable(const struct submit_session *ss, const struct perr *e)
{
	return e->token_refused && ss->a->oauth2 && ss->s && !ss->renewed;
}

/* A message's outcome is known: into its job, and tell the caller. */
static void settled(struct smtp_msg *m)
{
	struct msg_ctx *mc = m->ctx;
	struct submit_job *j = mc->job;

	if (!m->done && renewable(mc->ss, &m->err)) {
		mc->retry = 1; /* not final yet: sent again with a new token */
		return;
	}
	j->port = mc->ss->p.port;
	str_copy(j->tls, mc->ss->tls, sizeof j->tls);
	j->done = m->done;
	if (j->done) {
		str_copy(j->reply, m->reply, sizeof j->reply);
		perr_clear(&j->err);
	} else {
		j->err = m->err;
		advise(&j->err, mc->ss->a, mc->ss->p.port, &mc->ss->smtp);
	}
	finish(j);
}

/* Every job the session did not settle gets its error. */
static void rest_fail(struct submit_job *jobs, const struct smtp_msg *msgs, size_t njobs,
		      const struct perr *e, unsigned port)
{
	for (size_t i = 0; i < njobs; i++) {
		if (msgs && msgs[i].settled)
			continue;
		jobs[i].done = 0;
		jobs[i].err = *e;
		jobs[i].port = port;
		finish(&jobs[i]);
	}
}

/* Send once more, over the session just opened, the messages not settled
 * and those marked to retry (mcs may be NULL); each starts afresh. */
static int send_again(struct submit_session *ss, struct smtp_msg *msgs, struct msg_ctx *mcs,
		      size_t njobs, int last, struct perr *e)
{
	struct smtp_msg *again = xcalloc(njobs ? njobs : 1, sizeof *again);
	size_t *idx = xcalloc(njobs ? njobs : 1, sizeof *idx), n = 0;
	int rc;

	for (size_t i = 0; i < njobs; i++) {
		if (msgs[i].settled && !(mcs && mcs[i].retry))
			continue;
		if (mcs)
			mcs[i].retry = 0;
		idx[n] = i;
		again[n] = msgs[i];
		again[n].settled = 0;
		again[n].done = 0;
		perr_clear(&again[n].err);
		n++;
	}
	rc = smtp_send_batch(&ss->smtp, again, n, last, e);
	for (size_t k = 0; k < n; k++)
		msgs[idx[k]] = again[k];
	free(again);
	free(idx);
	return rc;
}

/* The session ended before the reply to the pipelined AUTH (RFC 4954
 * allows it, but a server may drop a client that sends commands behind
 * AUTH; no reply to it was read, so no login was refused): once more on
 * the same port, AUTH on its own, for the messages not settled.  Costs
 * one round trip more. */
static int auth_alone(struct submit_session *ss, struct smtp_msg *msgs, size_t njobs, int last,
		      struct perr *e)
{
	log_event("%s; trying again with AUTH on its own", e->text);
	ss->p.pipeline_auth = 0;
	perr_clear(e);
	if (smtp_open(&ss->smtp, &ss->p, e) < 0)
		return -1;
	return send_again(ss, msgs, NULL, njobs, last, e);
}

/* An OAuth2 token the server refused before its time (revoked, or
 * Gmail's 334 {"status":"401"}): one new token (oauth2_renew), then a
 * new session with AUTH on its own; a second refusal stands. */
static int renew_and_open(struct submit_session *ss, struct perr *e)
{
	ss->renewed = 1;
	smtp_close(&ss->smtp);
	log_event("%s; getting a new access token and trying once more", e->text);
	perr_clear(e);
	if (oauth2_renew(ss->a, ss->s, e) < 0)
		return -1;
	if (open_session(&ss->smtp, &ss->p, ss->a, ss->s, 0, e) == 0)
		return 0;
	if (e->token_refused)
		perr_append(e, " (a new token too): check that the app registration has the mail "
			    "permission (SMTP.Send, https://mail.google.com/) and that the mailbox "
			    "allows SMTP AUTH; see contrib/providers/oauth2.txt");
	return -1;
}

/* The messages whose pipelined AUTH met a refused token (and those the
 * session did not reach): once more over a new session with a new token.
 * Their jobs are told only now. */
static int token_again(struct submit_session *ss, struct smtp_msg *msgs, struct msg_ctx *mcs,
		       size_t njobs, int last, struct perr *e)
{
	if (renew_and_open(ss, e) < 0) {
		for (size_t i = 0; i < njobs; i++)
			if (mcs[i].retry) {
				mcs[i].retry = 0;
				msgs[i].settled = 0; /* rest_fail gives it e */
			}
		return -1;
	}
	return send_again(ss, msgs, mcs, njobs, last, e);
}

int submit_open(struct submit_session *ss, const struct account *a, struct secret *s,
		struct perr *e)
{
	memset(ss, 0, sizeof *ss);
	ss->a = a;
	ss->s = s;
	if (open_session(&ss->smtp, &ss->p, a, s, 1, e) < 0) {
		if (!renewable(ss, e) || renew_and_open(ss, e) < 0)
			return -1;
	}
	ss->open = 1;
	/* tls_describe needs the live connection. */
	str_copy(ss->tls, tls_describe(&ss->smtp.conn), sizeof ss->tls);
	return 0;
}

/* smtp_send_batch pipelines the transactions (and QUIT when last) behind
 * the AUTH that smtp_open left in the write buffer. */
int submit_send(struct submit_session *ss, struct submit_job *jobs, size_t njobs, int last,
		struct perr *e)
{
	struct smtp_msg *msgs = xcalloc(njobs ? njobs : 1, sizeof *msgs);
	struct msg_ctx *mcs = xcalloc(njobs ? njobs : 1, sizeof *mcs);
	int rc;

	for (size_t i = 0; i < njobs; i++) {
		mcs[i] = (struct msg_ctx){ .ss = ss, .job = &jobs[i] };
		msgs[i].env = jobs[i].env;
		msgs[i].src = jobs[i].src;
		msgs[i].src_ctx = jobs[i].src_ctx;
		msgs[i].rewind = jobs[i].rewind;
		msgs[i].on_settled = settled;
		msgs[i].ctx = &mcs[i];
	}
	perr_clear(e);
	rc = smtp_send_batch(&ss->smtp, msgs, njobs, last, e);
	if (rc < 0 && ss->smtp.auth_pending)
		rc = auth_alone(ss, msgs, njobs, last, e);
	for (size_t i = 0; i < njobs; i++)
		if (mcs[i].retry) {
			rc = token_again(ss, msgs, mcs, njobs, last, e);
			break;
		}
	if (rc < 0) {
		advise(e, ss->a, ss->p.port, &ss->smtp);
		rest_fail(jobs, msgs, njobs, e, ss->p.port);
	}
	if (rc < 0 || last || ss->smtp.conn.fd < 0) {
		smtp_close(&ss->smtp);
		ss->open = 0;
	}
	free(mcs);
	free(msgs);
	return rc;
}

void submit_close(struct submit_session *ss)
{
	if (ss->open)
		smtp_quit(&ss->smtp);
	ss->open = 0;
}

void submit_fail(struct submit_job *jobs, size_t njobs, const struct perr *e)
{
	rest_fail(jobs, NULL, njobs, e, 0);
}

int submit_batch(const struct account *a, struct secret *s, struct submit_job *jobs,
		 size_t njobs, struct perr *e)
{
	struct submit_session ss;

	if (submit_open(&ss, a, s, e) < 0) {
		rest_fail(jobs, NULL, njobs, e, ss.p.port);
		return -1;
	}
	return submit_send(&ss, jobs, njobs, 1, e);
}
