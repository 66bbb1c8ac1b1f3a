/* crypto.h — small digests postern needs outside TLS (OpenSSL stays in
 * the .c file). */
#ifndef POSTERN_CRYPTO_H
#define POSTERN_CRYPTO_H

#include <stddef.h>

/* Set up OpenSSL for a short-lived client: call before any other OpenSSL
 * use (the first initialisation fixes these choices). */
void crypto_init(void);

/* Lower-case hex SHA-256 of the concatenation of n buffers; out must hold
 * 65 bytes. */
struct crypto_part {
	const void *p;
	size_t len;
};
void crypto_sha256_hex(const struct crypto_part *parts, size_t n, char out[65]);

/* The raw SHA-256 of n bytes (OAuth2 PKCE, RFC 7636): 0, or -1 when no
 * digest could be had. */
int crypto_sha256(const void *p, size_t n, unsigned char out[32]);

/* An RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 3.3) of
 * data with the RSA private key in pem (an unencrypted PEM block, PKCS#1
 * or PKCS#8): 0 with *siglen set, or -1 when the key cannot be read, is
 * not RSA, or its signature would not fit *siglen bytes.  For the JWTs
 * of OAuth2's unattended flows. */
#define CRYPTO_SIG_MAX 1024 /* an 8192-bit key */
int crypto_sign_rs256(const char *pem, size_t pemlen, const void *data, size_t n,
		      unsigned char *sig, size_t *siglen);

/* The SHA-1 of the DER form of the first certificate in pem (the x5t a
 * client assertion carries): 0, or -1 when there is none. */
int crypto_cert_sha1(const char *pem, size_t pemlen, unsigned char out[20]);

/* n bytes from OpenSSL's CSPRNG: 0, or -1 when it cannot give them. */
int crypto_random(void *buf, size_t n);

/* Stamps: what postern stores to notice later that a secret changed
 * (SPEC section 3: salted and slow, so a stolen file does not let anyone
 * test password guesses faster than the server does).  A stamp is
 *   "pbkdf2-sha256$ITERATIONS$SALT$HASH"
 * SALT: 16 random bytes, HASH: PBKDF2-HMAC-SHA256 (32 bytes) of the
 * SHA-256 of the concatenated parts, both lower-case hex.  Making or
 * checking one costs CRYPTO_STAMP_ITER iterations (tens of milliseconds):
 * call only when a stamp is needed. */
#define CRYPTO_STAMP_ITER 100000
#define CRYPTO_STAMP_ITER_MAX 10000000
#define CRYPTO_STAMP_MAX 128

/* A new stamp of the parts with a fresh random salt: 0, or -1 when no
 * random bytes or no digest could be had (out is then ""). */
int crypto_stamp(const struct crypto_part *parts, size_t n, char out[CRYPTO_STAMP_MAX]);

/* 1 when stamp was made from the same parts, 0 when not, -1 when stamp
 * is not of the format above (or its iteration count is below
 * CRYPTO_STAMP_ITER or above CRYPTO_STAMP_ITER_MAX). */
int crypto_stamp_matches(const struct crypto_part *parts, size_t n, const char *stamp);

#endif
