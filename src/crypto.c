/* crypto.c — OpenSSL's process-wide set-up, and SHA-256 digests through
 * its EVP interface. */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "crypto.h"

/* Two of OpenSSL 3's default start-up steps cost a one-message run 15 % of
 * its instructions (callgrind: 24.4 M before, 20.6 M after) and buy it
 * nothing:
 * - registering every legacy cipher by name (EVP_get_cipherbyname): TLS
 *   and everything else here fetch ciphers from the provider;
 * - OPENSSL_cleanup at exit, which frees every table just built, on the
 *   way out of a process that is about to end.
 * Digests stay registered: certificate checks look them up by name
 * (without them every chain fails as "CA signature digest algorithm too
 * weak").  openssl.cnf is still read, so system-wide TLS policy applies. */
void crypto_init(void)
{
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ATEXIT, NULL);
}

void crypto_sha256_hex(const struct crypto_part *parts, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	out[0] = '\0';
	if (!ctx)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		for (size_t i = 0; i < n; i++)
			EVP_DigestUpdate(ctx, parts[i].p, parts[i].len);
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}
