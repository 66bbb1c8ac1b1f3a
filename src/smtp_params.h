/* smtp_params.h — what a caller tells the SMTP engine (struct
 * smtp_params: server, TLS, credentials, timeout) and the limits the
 * engine keeps, each with its reason.  Owned by the smtp_* files. */
#ifndef POSTERN_SMTP_PARAMS_H
#define POSTERN_SMTP_PARAMS_H

#include <stddef.h>

#include "modes.h"
#include "tls.h"

/* Message bytes read from the source per step; the encoded output (at
 * most twice as much) fills the 64 KB write buffer in one go. */
#define SMTP_BODY_CHUNK 32768
/* BDAT chunks of a large body sent ahead of their replies. */
#define SMTP_BDAT_WINDOW 8
/* Longest command line built here (MAIL FROM with every parameter is
 * under 700 bytes; AUTH payloads go through smtp_send_secret instead). */
#define SMTP_CMD_MAX 1024
/* Longest DSN envelope id (RFC 3461 4.4). */
#define SMTP_ENVID_MAX 100
/* Server text quoted per refused recipient. */
#define SMTP_RCPT_TEXT_MAX 200
/* Shortest run of a credential payload masked in a server's reply:
 * shorter ones match by chance. */
#define SMTP_ECHO_MIN 8
/* Replies outstanding at most.  A flight that would need more waits for
 * the oldest replies first: a pause, not an error.  Also keeps the
 * server's replies well inside the socket buffers, so neither side can
 * block writing while the other does. */
#define SMTP_RING 512
/* Messages with replies outstanding at most: 64 small messages make one
 * flight of ~70 KB, their replies ~8 KB. */
#define SMTP_WINDOW 64
/* Longest wait for the 221 to a QUIT at the end of a batch, ms. */
#define SMTP_QUIT_GRACE_MS 500
/* Shortest wait for the reply to the end of the message data, s (RFC
 * 5321 4.5.3.2: 10 minutes), so that a slow server is never given up on
 * after it took the message, which would send it twice. */
#define SMTP_FINAL_REPLY_MIN_S 600
/* Longest wait for replies already on their way after a failed write. */
#define SMTP_DRAIN_MS 2000

struct reply;
struct tls_peer_info;

/* What each step of smtp_open saw, for a caller that reports it rather
 * than sends mail (--probe).  The engine runs exactly as for a delivery;
 * with `tls` set it also describes the server's certificate (even one it
 * then refuses: the verdict stays the one a delivery meets).  Every
 * member may be NULL; the pointers passed are valid during the call. */
struct smtp_observer {
	void *ctx;
	/* TCP connected to `addr` (numeric, the one that answered). */
	void (*connected)(void *ctx, const char *addr);
	void (*greeting)(void *ctx, const struct reply *r);
	/* The reply to EHLO (or HELO), before STARTTLS or after TLS. */
	void (*ehlo)(void *ctx, const struct reply *r, int tls_active);
	/* The TLS handshake finished; info->verified says whether the
	 * session goes on. */
	void (*tls)(void *ctx, const struct tls_peer_info *info);
	/* AUTH with `mech` ended: 0 accepted, -1 refused or failed. */
	void (*auth)(void *ctx, const char *mech, int rc);
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
	const struct smtp_observer *observer;   /* NULL: none */
};

#endif
