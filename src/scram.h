/* scram.h — the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677),
 * without channel binding ("n,," gs2 header).
 *
 * The SMTP engine carries the messages (base64 in AUTH / 334 lines); this
 * module builds and checks them:
 *
 *   scram_start   -> client-first   "n,,n=USER,r=CNONCE"
 *   scram_final   <- server-first   "r=CNONCE+SNONCE,s=SALT,i=ITER"
 *                 -> client-final   "c=biws,r=CNONCE+SNONCE,p=PROOF"
 *   scram_verify  <- server-final   "v=SIGNATURE" (or "e=ERROR")
 *
 * The server proves it knows the password too: a server-final whose
 * signature does not match is PERR_AUTH.  Messages are plain bytes (not
 * base64).  Every buffer has a fixed size; nothing here allocates, and
 * scram_clear wipes every derived key. */
#ifndef POSTERN_SCRAM_H
#define POSTERN_SCRAM_H

#include <stddef.h>

#include "errors.h"

/* SHA-256 output. */
#define SCRAM_HASH_LEN 32
/* Longest user name accepted (before escaping , and =). */
#define SCRAM_USER_MAX 255
/* Longest nonce accepted from the caller (tests) or the server's part. */
#define SCRAM_NONCE_MAX 128
/* Longest server-first or server-final message: a 334 reply carries at
 * most REPLY_TEXT_MAX (2048) base64 characters, i.e. 1536 bytes. */
#define SCRAM_MSG_MAX 2048
/* Longest decoded salt. */
#define SCRAM_SALT_MAX 256
/* Iteration counts accepted from the server: RFC 7677 asks for at least
 * 4096; the ceiling bounds the time a hostile server can make us spend
 * (PBKDF2 with a million rounds takes about half a second here). */
#define SCRAM_ITER_MIN 4096
#define SCRAM_ITER_MAX 1000000
/* Room the caller gives scram_start / scram_final for their output. */
#define SCRAM_OUT_MAX 1024

struct scram {
	char first_bare[3 * SCRAM_USER_MAX + SCRAM_NONCE_MAX + 16]; /* n=...,r=... */
	size_t first_bare_len;
	char cnonce[SCRAM_NONCE_MAX + 1];
	unsigned char server_sig[SCRAM_HASH_LEN]; /* expected v= */
	int state;                                /* 0 new, 1 started, 2 final sent */
};

/* Begin: write the client-first message into out (cap bytes, at least
 * SCRAM_OUT_MAX), its length in *outlen.  nonce: NULL for a fresh random
 * one (RAND_bytes), or a printable nonce without ',' (tests).  A user
 * with control characters or longer than SCRAM_USER_MAX: PERR_CONFIG. */
int scram_start(struct scram *sc, const char *user, const char *nonce, char *out, size_t cap,
		size_t *outlen, struct perr *e);

/* Take the server-first message (n bytes), derive the keys from the
 * password and write the client-final message into out.  A malformed
 * message, a nonce that does not extend ours, an iteration count outside
 * SCRAM_ITER_MIN..SCRAM_ITER_MAX or a mandatory extension (m=):
 * PERR_PROTOCOL. */
int scram_final(struct scram *sc, const char *password, size_t pwlen, const char *server_first,
		size_t n, char *out, size_t cap, size_t *outlen, struct perr *e);

/* Check the server-final message: v= must match the signature computed
 * from the password (else PERR_AUTH "server signature does not match");
 * e= is PERR_AUTH quoting the server's (sanitised) reason; anything else
 * PERR_PROTOCOL. */
int scram_verify(struct scram *sc, const char *server_final, size_t n, struct perr *e);

/* Wipe every key, nonce and message kept in sc. */
void scram_clear(struct scram *sc);

#endif
