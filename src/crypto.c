/* crypto.c — OpenSSL's process-wide set-up, SHA-256 digests through its
 * EVP interface, and the salted, slow stamps of crypto.h (PBKDF2). */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/rand.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "util.h"

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

int crypto_sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -1;
	return 0;
}

int crypto_sign_rs256(const char *pem, size_t pemlen, const void *data, size_t n,
		      unsigned char *sig, size_t *siglen)
{
	BIO *bio = BIO_new_mem_buf(pem, pemlen <= INT_MAX ? (int)pemlen : -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *ctx = key ? EVP_MD_CTX_new() : NULL;
	int ok = ctx && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
		 (size_t)EVP_PKEY_get_size(key) <= *siglen &&
		 EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
		 EVP_DigestSign(ctx, sig, siglen, data, n) == 1;

	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return ok ? 0 : -1;
}

int crypto_cert_sha1(const char *pem, size_t pemlen, unsigned char out[20])
{
	BIO *bio = BIO_new_mem_buf(pem, pemlen <= INT_MAX ? (int)pemlen : -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	unsigned int len = 0;
	int ok = x && X509_digest(x, EVP_sha1(), out, &len) == 1 && len == 20;

	X509_free(x);
	BIO_free(bio);
	return ok ? 0 : -1;
}

int crypto_random(void *buf, size_t n)
{
	return n <= INT_MAX && RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
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
	if (mdlen)
		hex_encode(md, mdlen < 32 ? mdlen : 32, out);
}

#define SALT_LEN 16
#define HASH_LEN 32
#define STAMP_PREFIX "pbkdf2-sha256$"

/* Exactly 2 * n lower-case hex digits into out (n bytes); *end points
 * after them. */
static int unhex(const char *s, size_t n, unsigned char *out, const char **end)
{
	for (size_t i = 0; i < 2 * n; i++) {
		int c = (unsigned char)s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	*end = s + 2 * n;
	return 0;
}

/* PBKDF2-HMAC-SHA256 (iter, salt) of SHA-256(parts) into hash. */
static int derive(const struct crypto_part *parts, size_t n, const unsigned char *salt,
		  unsigned long iter, unsigned char hash[HASH_LEN])
{
	unsigned char pre[EVP_MAX_MD_SIZE];
	unsigned int prelen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = 0;

	if (!ctx)
		return -1;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		ok = 1;
		for (size_t i = 0; i < n && ok; i++)
			ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) == 1;
		ok = ok && EVP_DigestFinal_ex(ctx, pre, &prelen) == 1;
	}
	EVP_MD_CTX_free(ctx);
	ok = ok && PKCS5_PBKDF2_HMAC((const char *)pre, (int)prelen, salt, SALT_LEN, (int)iter,
				     EVP_sha256(), HASH_LEN, hash) == 1;
	OPENSSL_cleanse(pre, sizeof pre);
	return ok ? 0 : -1;
}

int crypto_stamp(const struct crypto_part *parts, size_t n, char out[CRYPTO_STAMP_MAX])
{
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	char shex[2 * SALT_LEN + 1], hhex[2 * HASH_LEN + 1];

	out[0] = '\0';
	if (RAND_bytes(salt, sizeof salt) != 1 ||
	    derive(parts, n, salt, CRYPTO_STAMP_ITER, hash) < 0)
		return -1;
	hex_encode(salt, sizeof salt, shex);
	hex_encode(hash, sizeof hash, hhex);
	snprintf(out, CRYPTO_STAMP_MAX, STAMP_PREFIX "%d$%s$%s", CRYPTO_STAMP_ITER, shex, hhex);
	return 0;
}

int crypto_stamp_matches(const struct crypto_part *parts, size_t n, const char *stamp)
{
	unsigned char salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
	unsigned long iter;
	const char *p;
	char *end;
	int same;

	if (strncmp(stamp, STAMP_PREFIX, sizeof STAMP_PREFIX - 1) != 0)
		return -1;
	p = stamp + sizeof STAMP_PREFIX - 1;
	if (*p < '1' || *p > '9')
		return -1;
	iter = strtoul(p, &end, 10);
	if (*end != '$' || iter < CRYPTO_STAMP_ITER || iter > CRYPTO_STAMP_ITER_MAX)
		return -1;
	if (unhex(end + 1, SALT_LEN, salt, &p) < 0 || *p != '$' ||
	    unhex(p + 1, HASH_LEN, want, &p) < 0 || *p != '\0')
		return -1;
	if (derive(parts, n, salt, iter, got) < 0)
		return -1;
	same = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof got);
	return same;
}
