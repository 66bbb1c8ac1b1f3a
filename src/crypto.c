/* crypto.c — SHA-256 digests through OpenSSL's EVP interface. */
#include "autoconf.h"

#include <openssl/evp.h>
#include <stdio.h>

#include "crypto.h"

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
