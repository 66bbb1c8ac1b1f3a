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

#endif
