/* smtp_int.h — what the SMTP engine's files share and nobody else uses:
 * the session states, the error and I/O helpers of smtp.c, the AUTH entry
 * of smtp_auth.c, and the transaction pieces of smtp_txn.c that
 * smtp_batch.c drives.  Include only from smtp*.c. */
#ifndef POSTERN_SMTP_INT_H
#define POSTERN_SMTP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "body.h"
#include "smtp.h"

/* What the engine is sending or waiting for; names in smtp.c. */
enum smtp_state {
	ST_GREETING, ST_EHLO, ST_HELO, ST_STARTTLS, ST_AUTH, ST_MAIL, ST_RCPT,
	ST_DATA, ST_BODY, ST_BDAT, ST_RSET, ST_QUIT, ST_COUNT
};

enum io_dir { IO_SEND, IO_WAIT, IO_READ };

/* Tell the session's observer (smtp_params.h), if it asked, what a step
 * saw. */
#define OBSERVE(s, what, ...)                                                    \
	do {                                                                     \
		const struct smtp_observer *o_ = (s)->p->observer;               \
		if (o_ && o_->what)                                              \
			o_->what(o_->ctx, __VA_ARGS__);                          \
	} while (0)

/* ---- errors (smtp.c) ---- */

/* An I/O or protocol failure (conn's text has no peer): "host:port: TEXT
 * while waiting for the reply to RCPT TO".  The connection stays open (a
 * failed write may still have replies to read, see drain() in
 * smtp_batch.c); the caller closes it.  Returns -1. */
int smtp_io_error(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st);
/* smtp_io_error, and the connection is closed: nothing sane can follow. */
int smtp_io_fail(struct smtp *s, struct perr *e, enum io_dir dir, enum smtp_state st);
/* "host:port: WHAT: 550 5.1.1 text" from the last reply.  Returns -1. */
int smtp_server_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
		     const char *what);
/* Kind for an unwanted reply: 4xx temporary, 5xx perm, anything else a
 * protocol error. */
enum perr_kind smtp_kind_of(int code, enum perr_kind perm);
/* "host:port: TEXT" for a failure found here, not in a reply.  -1. */
int smtp_local_fail(struct smtp *s, struct perr *e, enum perr_kind kind, enum perr_cause cause,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- the credentials a server may echo (smtp.c) ---- */

/* Mask the secret and any run of the last credential payload sent in a
 * reply line (code and separator kept) before anything reads it. */
void smtp_mask_echo(const struct smtp *s, char *line, size_t len);
void smtp_forget_payload(struct smtp *s);

/* ---- sending and receiving (smtp.c) ---- */

/* Queue one command line (CRLF added); control characters refused. */
int smtp_cmd(struct smtp *s, struct perr *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Queue "PREFIX PAYLOAD\r\n", showing SHOWN in the transcript. */
int smtp_send_secret(struct smtp *s, const char *prefix, const char *payload, const char *shown,
		     struct perr *e);
/* Send what is queued within a fresh deadline. */
int smtp_flush(struct smtp *s, enum smtp_state st, struct perr *e);
/* Read one reply into s->reply within the deadline already armed. */
int smtp_read_reply_armed(struct smtp *s, enum smtp_state st, struct perr *e);
/* The same within a fresh deadline. */
int smtp_read_reply(struct smtp *s, enum smtp_state st, struct perr *e);
/* Flush and read the reply. */
int smtp_transact(struct smtp *s, enum smtp_state st, struct perr *e);

/* ---- AUTH (smtp_auth.c) ---- */

/* Add the mechanisms named in an "AUTH a b c" keyword's value. */
void smtp_parse_mechs(struct smtp_caps *caps, const char *p);
/* AUTH as the parameters ask (nothing when there is no user); with
 * pipeline_auth a one-line AUTH may stay queued (s->auth_pending). */
int smtp_authenticate(struct smtp *s, struct perr *e);
/* The verdict on s->reply as the final reply to AUTH: 0 for 235. */
int smtp_auth_result(struct smtp *s, struct perr *e);
/* The error details of an OAuth2 334 challenge, decoded and sanitised. */
void smtp_oauth_reason(const struct smtp *s, char *out, size_t cap);
/* Those details say the token itself was refused: a new one may do. */
bool smtp_is_token_refusal(const char *why);

/* ---- one transaction (smtp_txn.c) ---- */

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

struct body_io {
	unsigned char *in, *out;   /* out: where smtp_next_chunk encodes */
	unsigned char *slot[2];    /* pending and read-ahead chunks (BDAT) */
	struct body b;
	uint64_t sent;
};

/* What must hold before any command of a message is queued. */
int smtp_precheck(struct smtp *s, const struct smtp_envelope *env, struct perr *e);
int smtp_mail_cmd(struct smtp *s, const struct smtp_envelope *env, struct perr *e);
int smtp_rcpt_cmd(struct smtp *s, const struct smtp_envelope *env, size_t i, struct perr *e);
/* The verdicts on s->reply as the reply to MAIL, one RCPT, (after the
 * last RCPT) the recipients as a whole, and DATA. */
int smtp_mail_reply(struct smtp *s, const struct smtp_envelope *env, struct txn *t);
void smtp_rcpt_reply(struct smtp *s, const char *rcpt, struct txn *t);
void smtp_rcpt_verdict(struct smtp *s, struct txn *t);
void smtp_data_reply(struct smtp *s, struct txn *t);
/* Read the next piece of the message and encode it into io->out. */
int smtp_next_chunk(struct smtp *s, smtp_source_fn src, void *ctx, struct body_io *io,
		    size_t *len, struct perr *e);

#endif
