/* smtp.h — the SMTP client protocol engine.
 *
 * smtp_open runs the session up to a ready-to-send state: TCP connect,
 * greeting, EHLO, STARTTLS and EHLO again (or implicit TLS), AUTH.
 * smtp_send runs one mail transaction (MAIL, RCPT..., DATA or BDAT),
 * pipelining commands when the server offers PIPELINING.  The engine knows
 * nothing of argv, configuration files or exit codes: errors come back as
 * struct perr with the kind of SPEC section 2:
 *   connection / TLS / timeout / 4xx          PERR_TEMP
 *   recipient refused (5xx to RCPT)           PERR_NOUSER
 *   535 and other AUTH refusals               PERR_AUTH
 *   other 5xx                                 PERR_UNAVAILABLE
 *   malformed or over-long reply              PERR_PROTOCOL
 *   STARTTLS not offered with tls = starttls  PERR_TEMP (nothing sent after EHLO)
 *   AUTH over plaintext to a non-loopback     PERR_CONFIG
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stddef.h>

#include "config.h"
#include "conn.h"
#include "errors.h"
#include "reply.h"
#include "tls.h"

/* EHLO capabilities. */
enum {
	SMTP_CAP_PIPELINING = 1u << 0,
	SMTP_CAP_CHUNKING = 1u << 1,
	SMTP_CAP_8BITMIME = 1u << 2,
	SMTP_CAP_SMTPUTF8 = 1u << 3,
	SMTP_CAP_DSN = 1u << 4,
	SMTP_CAP_SIZE = 1u << 5,
	SMTP_CAP_STARTTLS = 1u << 6,
	SMTP_CAP_AUTH = 1u << 7,
	SMTP_CAP_ENHANCEDSTATUSCODES = 1u << 8,
};

/* AUTH mechanisms offered. */
enum {
	SMTP_MECH_PLAIN = 1u << 0,
	SMTP_MECH_LOGIN = 1u << 1,
	SMTP_MECH_SCRAM_SHA_256 = 1u << 2,
	SMTP_MECH_XOAUTH2 = 1u << 3,
	SMTP_MECH_OAUTHBEARER = 1u << 4,
	SMTP_MECH_EXTERNAL = 1u << 5,
	SMTP_MECH_CRAM_MD5 = 1u << 6,
};

struct smtp_caps {
	unsigned flags;
	unsigned mechs;
	unsigned long long size_max;  /* SIZE n; 0 = no limit given */
};

struct smtp_params {
	const char *host;
	unsigned port;
	enum tls_mode tls;
	struct tls_opts tls_opts;
	const char *helo;            /* EHLO argument */
	int timeout_s;
	enum auth_mech auth;         /* AUTH_OFF: no AUTH */
	const char *user;
	const char *secret;          /* not copied; owned by struct secret */
	size_t secret_len;
	/* 1: with PIPELINING offered, a one-line AUTH (PLAIN, EXTERNAL: one
	 * round trip, no security layer; RFC 4954 section 4) stays in the
	 * write buffer and goes out with the first transaction; smtp_open
	 * then returns before its reply, which the next smtp_send_batch (or
	 * smtp_send) reads first.  0: smtp_open waits for 235 (--probe). */
	int pipeline_auth;
	/* 1: XOAUTH2 and OAUTHBEARER go pipelined too (an access token that
	 * is valid by the clock succeeds in one round trip, as PLAIN does).
	 * If the server refuses it with a 334 error challenge it reads the
	 * next command as the answer and fails the AUTH: no message byte
	 * goes out before AUTH is accepted, and the messages' error carries
	 * token_refused, so the caller can try again with a new token. */
	int pipeline_token;
};

struct smtp {
	const struct smtp_params *p;
	struct conn conn;
	struct smtp_caps caps;
	int tls_active;
	int auth_pending;            /* AUTH written ahead, its reply not read */
	int rcpt_refused;            /* a RCPT was refused in this session: every
					later message waits for its RCPT replies */
	char *sent_b64;              /* the last credential payload sent, to mask
					its echo in replies; wiped at close */
	struct reply reply;          /* the last reply read */
};

/* Parse the capabilities of a 250 reply to EHLO (lines after the first)
 * into caps (cleared first).  Also used by --probe. */
void smtp_parse_ehlo(const struct reply *r, struct smtp_caps *caps);

/* The name of one SMTP_MECH_* bit ("PLAIN"), or NULL. */
const char *smtp_mech_name(unsigned bit);

/* Connect and prepare; see the header comment for the error kinds.
 * Connection failures carry stage PERR_STAGE_CONNECT. */
int smtp_open(struct smtp *s, const struct smtp_params *p, struct perr *e);

struct smtp_envelope {
	const char *sender;          /* "" for the null sender */
	char *const *rcpts;
	size_t nrcpts;
	int body_8bit;               /* BODY=8BITMIME when offered */
	int smtputf8;                /* an address is UTF-8 */
	unsigned long long size;     /* SIZE= when offered; 0 unknown */
	const char *dsn_notify, *dsn_return, *dsn_envid;
};

/* Message bytes source: fill buf (cap bytes) and return the count, 0 at
 * the end, -1 with e filled. */
typedef long (*smtp_source_fn)(void *ctx, unsigned char *buf, size_t cap, struct perr *e);

/* One transaction.  Any recipient refused permanently: nothing is sent
 * (RSET), PERR_NOUSER naming every refused address with the server's
 * reply.  The message bytes are normalised and dot-stuffed (DATA) by
 * body.c on the way out. */
int smtp_send(struct smtp *s, const struct smtp_envelope *env, smtp_source_fn src,
	      void *src_ctx, struct perr *e);

/* One message of smtp_send_batch: what to send, and its outcome. */
struct smtp_msg {
	const struct smtp_envelope *env;
	smtp_source_fn src;
	void *src_ctx;
	void (*rewind)(void *src_ctx);  /* called before the bytes are read; may be NULL */
	int done;                       /* out: 1 delivered */
	int settled;                    /* out: 1 done or err is this message's own outcome */
	struct perr err;                /* out: when settled and not done */
	char reply[512];                /* out: the server's final reply when done */
	/* Called once, as soon as the message settles (while the session
	 * goes on with later messages); may be NULL. */
	void (*on_settled)(struct smtp_msg *m);
	void *ctx;                      /* the caller's, for on_settled */
};

/* Send the messages in order over the session, pipelined when the server
 * offers PIPELINING: the commands of the next message go out with the end
 * of the previous one (and with the pending AUTH), a bounded number of
 * messages and replies ahead, so a flush of many messages costs about one
 * round trip per flight rather than several per message.  With quit, QUIT
 * goes out with the last commands and the connection is closed after a
 * short grace for its 221.  Each message's outcome is exact: a refusal in
 * the middle touches no other message.  Returns 0 when every message
 * settled; -1 when the session ended early (connection lost, a reply that
 * makes no sense, AUTH refused): e says why, and the messages not settled
 * were not delivered as far as postern knows.  When it ended before the
 * reply to a pipelined AUTH, s->auth_pending is still 1 and no message is
 * settled: a server that does not take AUTH pipelined may be tried again
 * with pipeline_auth = 0. */
int smtp_send_batch(struct smtp *s, struct smtp_msg *msgs, size_t n, int quit, struct perr *e);

/* QUIT (not waiting long for 221) and close. */
void smtp_quit(struct smtp *s);

/* Close without QUIT. */
void smtp_close(struct smtp *s);

#endif
