/* submit.c — submission policy: ports in order, TLS mode per port, the
 * AUTH mechanism, and the fix appended to each kind of failure. */
#include "autoconf.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
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

/* A 5xx to MAIL FROM, or after DATA naming the sender: the provider does
 * not let this account send as this address. */
static int sender_refused(const struct perr *e)
{
	if (e->code < 550 || e->code > 554 || e->kind == PERR_NOUSER)
		return 0;
	return strstr(e->text, "MAIL FROM") || strcasestr(e->text, "sender") ||
	       strcasestr(e->text, "from address") || strcasestr(e->text, "not owned") ||
	       strcasestr(e->text, "send as") || strcasestr(e->text, "send mail as");
}

/* Append the fix a person needs for this failure, when we know one.
 * Each text names the setting to change in ~/.smtprc. */
static void advise(struct perr *e, const struct account *a, unsigned port)
{
	if (e->stage == PERR_STAGE_CONNECT && strstr(e->text, "timed out")) {
		perr_append(e, "; the network may block port %u; try %s, or run postern --probe",
			    port, port == 465 ? "587 or 2525" : port == 2525 ? "587 or 465" : "465 or 2525");
	} else if (e->stage == PERR_STAGE_CONNECT && strstr(e->text, "refused")) {
		perr_append(e, "; nothing listens on port %u of %s: check host and port in %s, or run postern --probe",
			    port, a->host, "~/.smtprc");
	} else if (e->kind == PERR_TEMP && e->code == 0 && strstr(e->text, "timed out") &&
		   strstr(e->text, "greeting") && config_port_tls(a, port) != TLS_IMPLICIT) {
		perr_append(e, "; a server that waits silently may expect TLS from the first byte: "
			       "set tls = implicit (usual on port 465), or run postern --probe");
	} else if (e->code == 530 && strcasestr(e->text, "STARTTLS")) {
		perr_append(e, "; set tls = starttls");
	} else if (e->kind == PERR_AUTH && !strstr(e->text, "server signature") &&
		   !strstr(e->text, "OAuth2 token")) {
		perr_append(e, "; check the password for account %s; Gmail and Outlook need an "
			       "app password or OAuth2 (auth = xoauth2)", a->name);
	} else if (sender_refused(e)) {
		perr_append(e, "; the provider refuses this From address; set from = or "
			       "from_header = force");
	}
}

static void fill_params(struct smtp_params *p, const struct account *a, const struct secret *s,
			unsigned port)
{
	memset(p, 0, sizeof *p);
	p->host = a->host;
	p->port = port;
	p->tls = config_port_tls(a, port);
	p->tls_opts.host = a->host;
	p->tls_opts.ca_file = a->tls_ca_file;
	p->tls_opts.fingerprint = a->tls_fingerprint;
	p->tls_opts.cert_file = a->tls_cert_file;
	p->tls_opts.key_file = a->tls_key_file;
	p->tls_opts.min_version = a->tls_min_version;
	p->helo = submit_helo_name(a);
	p->timeout_s = a->timeout;
	/* EXTERNAL needs no secret: the client certificate is the credential. */
	p->auth = secret_needed(a) || a->auth == AUTH_EXTERNAL ? a->auth : AUTH_OFF;
	p->user = a->user;
	p->secret = s ? s->value : NULL;
	p->secret_len = s ? s->len : 0;
}

/* Open a session on the first port that accepts a connection. */
static int open_session(struct smtp *session, struct smtp_params *p, const struct account *a,
			const struct secret *s, struct perr *e)
{
	for (int i = 0; i < a->nports; i++) {
		fill_params(p, a, s, a->ports[i]);
		perr_clear(e);
		if (smtp_open(session, p, e) == 0)
			return 0;
		if (e->stage != PERR_STAGE_CONNECT || i + 1 == a->nports)
			break;
		log_event("%s; trying port %u", e->text, a->ports[i + 1]);
	}
	if (a->nports == 0)
		return perr_set(e, PERR_CONFIG, "account %s has no port to try", a->name);
	advise(e, a, p->port);
	return -1;
}

/* A failure that leaves the session unusable for further transactions:
 * the connection is gone, or no reply came (timeout, drop), or the
 * server's bytes made no sense. */
static int session_broken(const struct smtp *session, const struct perr *e)
{
	return session->conn.fd < 0 || e->kind == PERR_PROTOCOL ||
	       (e->kind == PERR_TEMP && e->code == 0);
}

static void finish(struct submit_job *j)
{
	if (j->finished)
		j->finished(j);
}

int submit_batch(const struct account *a, const struct secret *s, struct submit_job *jobs,
		 size_t njobs, struct perr *e)
{
	struct smtp_params p;
	struct smtp session;
	size_t i;

	if (open_session(&session, &p, a, s, e) < 0) {
		for (i = 0; i < njobs; i++) {
			jobs[i].err = *e;
			jobs[i].port = p.port;
			finish(&jobs[i]);
		}
		return -1;
	}
	for (i = 0; i < njobs; i++) {
		struct submit_job *j = &jobs[i];

		perr_clear(&j->err);
		if (j->rewind)
			j->rewind(j->src_ctx);
		j->done = smtp_send(&session, j->env, j->src, j->src_ctx, &j->err) == 0;
		j->port = p.port;
		str_copy(j->tls, tls_describe(&session.conn), sizeof j->tls);
		if (j->done) {
			char text[400];

			reply_oneline(&session.reply, text, sizeof text);
			snprintf(j->reply, sizeof j->reply, "%d%s%s %s", session.reply.code,
				 session.reply.enhanced[0] ? " " : "", session.reply.enhanced, text);
			finish(j);
			continue;
		}
		advise(&j->err, a, p.port);
		finish(j);
		if (session_broken(&session, &j->err)) {
			*e = j->err;
			for (i++; i < njobs; i++) {
				jobs[i].err = *e;
				jobs[i].port = p.port;
				finish(&jobs[i]);
			}
			/* After a timeout or a broken stream, QUIT would only wait. */
			smtp_close(&session);
			return -1;
		}
	}
	smtp_quit(&session);
	return 0;
}
