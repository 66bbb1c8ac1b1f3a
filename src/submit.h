/* submit.h — submission policy: which ports in which order, which TLS
 * mode, which AUTH mechanism; the fix appended to each kind of failure;
 * several messages over one connection.  Calls smtp.c; knows the
 * account, never argv or exit codes. */
#ifndef POSTERN_SUBMIT_H
#define POSTERN_SUBMIT_H

#include <stddef.h>

#include "config.h"
#include "errors.h"
#include "secret.h"
#include "smtp.h"

/* One message to send: its envelope, where its bytes come from, and,
 * after submit_batch, its outcome. */
struct submit_job {
	const struct smtp_envelope *env;
	smtp_source_fn src;
	void *src_ctx;
	void (*rewind)(void *src_ctx);   /* called before the bytes are read */
	int done;                        /* 1 delivered */
	struct perr err;                 /* when not done */
	/* For the log line: */
	unsigned port;                   /* port of the session; 0: none */
	char tls[96];                    /* tls_describe(), "" for plaintext */
	char reply[512];                 /* the server's final reply when done */
	/* Called as soon as this job's outcome is known (done or err final),
	 * before the next transaction, so a queued message leaves the spool
	 * right after the server took it; may be NULL. */
	void (*finished)(struct submit_job *j);
	void *finished_ctx;
};

/* Open one session to the account's server (ports tried in order on
 * connection failure only) and send every job in turn (RSET between
 * transactions after a refusal).  Returns 0 when the session was
 * established (each job then has its own outcome), or -1 when no session
 * could be made or it broke: e holds the reason (with a fix appended) and
 * every job not yet done carries the same error.  Each job's finished
 * callback runs exactly once. */
int submit_batch(const struct account *a, struct secret *s, struct submit_job *jobs,
		 size_t njobs, struct perr *e);

/* A session kept open across several batches of one account's jobs (a
 * queue flush claims its messages in bounded batches, and still uses one
 * connection per account). */
struct submit_session {
	const struct account *a;
	struct secret *s;                /* the caller's; replaced by oauth2_renew */
	int renewed;                     /* its OAuth2 token was replaced once */
	struct smtp_params p;
	struct smtp smtp;
	int open;                        /* ready for the next batch */
	char tls[96];                    /* tls_describe() of the session */
};

/* Connect (ports in order, on connection failure only) and get ready:
 * 0, or -1 with e filled (a fix appended).  s must outlive the session.
 * An OAuth2 access token the server refuses with an error challenge is
 * replaced once (oauth2_renew: s gets the new token) and the session
 * opened again. */
int submit_open(struct submit_session *ss, const struct account *a, struct secret *s,
		struct perr *e);

/* Send the jobs over the open session; with last, QUIT goes out with them
 * and the session ends.  Returns as submit_batch; after -1 the session is
 * closed and every job not settled carries e. */
int submit_send(struct submit_session *ss, struct submit_job *jobs, size_t njobs, int last,
		struct perr *e);

/* End the session (QUIT) if it is still open. */
void submit_close(struct submit_session *ss);

/* Give every job e as its outcome (a session that could not be opened). */
void submit_fail(struct submit_job *jobs, size_t njobs, const struct perr *e);

/* The EHLO name: account domain, else this host's fully qualified name. */
const char *submit_helo_name(const struct account *a);

/* The account's TLS settings (host checked and sent as SNI, CA or
 * fingerprint, client certificate, minimum version). */
struct tls_opts submit_tls_opts(const struct account *a);

#endif
