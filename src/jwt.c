/* jwt.c — the RS256-signed JSON Web Tokens (RFC 7519) of OAuth2's
 * unattended flows, and the key files they are signed with.  Signing and
 * the certificate's thumbprint are crypto.c's (OpenSSL).  See jwt.h. */
#include "autoconf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "crypto.h"
#include "jwt.h"
#include "util.h"

#define KEYFILE_MAX (64 * 1024) /* a PEM key or a service-account JSON: a few KB */

/* A growing text buffer for the JSON of a header or claims. */
struct jbuf {
	char *buf;
	size_t len, cap;
};

/* ---- key files ------------------------------------------------------------- */

/* The whole of a key file, which must be a regular file owned by the
 * caller and not accessible to group or others (like the configuration:
 * it is a secret).  *out is wiped and freed by the caller. */
int jwt_read_private(const char *path, const char *key, char **out, size_t *len,
		     struct perr *e)
{
	struct stat st;
	int fd = open_regular(path, O_RDONLY, 0, key, e);

	*out = NULL;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size > KEYFILE_MAX || st.st_size == 0) {
		close(fd);
		return perr_set(e, PERR_CONFIG, "%s %s is empty or too large", key, path);
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return perr_set(e, PERR_CONFIG, "%s %s holds a private key but is %s; %s", key, path,
				st.st_uid != geteuid() ? "not owned by you" : "accessible by group "
				"or others", st.st_uid != geteuid() ? "copy it to a file of your own "
				"with mode 600" : "run chmod 600 on it");
	}
	*out = xmalloc((size_t)st.st_size + 1);
	*len = read_full(fd, *out, (size_t)st.st_size);
	(*out)[*len] = '\0';
	close(fd);
	return 0;
}

/* A small public file (a certificate), whole. */
static int read_file_small(const char *path, char **out, size_t *len, struct perr *e)
{
	struct stat st;
	int fd = open_regular(path, O_RDONLY, 0, "oauth2_cert_file", e);

	*out = NULL;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || st.st_size > KEYFILE_MAX) {
		close(fd);
		return perr_set(e, PERR_CONFIG, "oauth2_cert_file %s is too large", path);
	}
	*out = xmalloc((size_t)st.st_size + 1);
	*len = read_full(fd, *out, (size_t)st.st_size);
	(*out)[*len] = '\0';
	close(fd);
	return 0;
}

/* ---- JWT (RFC 7519) signed RS256, for the unattended flows --------------- */

/* A JSON string literal of v (quotes included) appended to b. */
static void json_quote(struct jbuf *b, const char *v)
{
	static const char hex[] = "0123456789abcdef";
	size_t need = b->len + 6 * strlen(v) + 3;

	if (need > b->cap) {
		char *nb = xmalloc(need * 2);

		memcpy(nb, b->buf ? b->buf : "", b->len + 1);
		free(b->buf);
		b->buf = nb;
		b->cap = need * 2;
	}
	b->buf[b->len++] = '"';
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\') {
			b->buf[b->len++] = '\\';
			b->buf[b->len++] = (char)*p;
		} else if (*p < 0x20) {
			b->len += (size_t)snprintf(b->buf + b->len, b->cap - b->len, "\\u00%c%c",
						   hex[*p >> 4], hex[*p & 15]);
		} else {
			b->buf[b->len++] = (char)*p;
		}
	}
	b->buf[b->len++] = '"';
	b->buf[b->len] = '\0';
}

/* Append raw text to b. */
static void json_raw(struct jbuf *b, const char *text)
{
	size_t n = strlen(text);

	if (b->len + n + 1 > b->cap) {
		char *nb = xmalloc((b->len + n + 1) * 2);

		memcpy(nb, b->buf ? b->buf : "", b->len + 1);
		free(b->buf);
		b->buf = nb;
		b->cap = (b->len + n + 1) * 2;
	}
	memcpy(b->buf + b->len, text, n + 1);
	b->len += n;
}

/* "name":"value" pairs (NULL value: skipped) and "iat","exp" numbers:
 * one JSON object.  pairs ends with NULL. */
static char *json_object_text(const char *const *pairs, long long iat, long long exp)
{
	struct jbuf b = { 0 };
	char num[64];

	json_raw(&b, "{");
	for (size_t i = 0; pairs[i]; i += 2) {
		if (!pairs[i + 1])
			continue;
		if (b.len > 1)
			json_raw(&b, ",");
		json_quote(&b, pairs[i]);
		json_raw(&b, ":");
		json_quote(&b, pairs[i + 1]);
	}
	if (iat) {
		snprintf(num, sizeof num, "%s\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld",
			 b.len > 1 ? "," : "", iat, iat, exp);
		json_raw(&b, num);
	}
	json_raw(&b, "}");
	return b.buf;
}

static char *b64url_dup(const void *in, size_t n)
{
	char *out = xmalloc(BASE64_LEN(n) + 1);

	base64url_encode(in, n, out);
	return out;
}

/* header.claims.signature, signed RS256 with the PEM key; NULL when the
 * key cannot sign (e filled, naming key_path). */
static char *jwt_sign(const char *header, const char *claims, const char *pem, size_t pemlen,
		      const char *key_path, struct perr *e)
{
	char *h = b64url_dup(header, strlen(header)), *c = b64url_dup(claims, strlen(claims));
	size_t n = strlen(h) + strlen(c) + 2, siglen = CRYPTO_SIG_MAX;
	unsigned char sig[CRYPTO_SIG_MAX];
	char *in = xmalloc(n), *s64, *jwt = NULL;

	snprintf(in, n, "%s.%s", h, c);
	if (crypto_sign_rs256(pem, pemlen, in, strlen(in), sig, &siglen) < 0) {
		perr_set(e, PERR_CONFIG, "cannot sign with the key in %s: it must be an "
			 "unencrypted RSA private key in PEM form (BEGIN PRIVATE KEY)", key_path);
	} else {
		s64 = b64url_dup(sig, siglen);
		n = strlen(in) + strlen(s64) + 2;
		jwt = xmalloc(n);
		snprintf(jwt, n, "%s.%s", in, s64);
		free(s64);
	}
	free(h);
	free(c);
	free(in);
	return jwt;
}

char *jwt_client_assertion(const struct account *a, struct perr *e)
{
	char *pem = NULL, *cert = NULL, *header, *claims, *jwt = NULL, x5t[32], jti[32];
	unsigned char sha1[20], rnd[16];
	size_t pemlen = 0, certlen = 0;
	long long now = (long long)time(NULL);

	if (jwt_read_private(a->oauth2_key_file, "oauth2_key_file", &pem, &pemlen, e) < 0)
		return NULL;
	if (read_file_small(a->oauth2_cert_file, &cert, &certlen, e) < 0 ||
	    crypto_cert_sha1(cert, certlen, sha1) < 0) {
		if (cert)
			perr_set(e, PERR_CONFIG, "oauth2_cert_file %s holds no PEM certificate",
				 a->oauth2_cert_file);
		goto out;
	}
	if (crypto_random(rnd, sizeof rnd) < 0) {
		perr_set(e, PERR_OS, "no random bytes for the assertion's jti");
		goto out;
	}
	base64url_encode(sha1, sizeof sha1, x5t);
	base64url_encode(rnd, sizeof rnd, jti);
	header = json_object_text((const char *[]){ "alg", "RS256", "typ", "JWT", "x5t", x5t,
						    NULL }, 0, 0);
	claims = json_object_text((const char *[]){ "aud", a->oauth2_token_url, "iss",
						    a->oauth2_client_id, "sub", a->oauth2_client_id,
						    "jti", jti, NULL }, now, now + 600);
	jwt = jwt_sign(header, claims, pem, pemlen, a->oauth2_key_file, e);
	free(header);
	free(claims);
out:
	if (pem) {
		wipe(pem, pemlen);
		free(pem);
	}
	free(cert);
	return jwt;
}


char *jwt_service_assertion(const char *iss, const char *sub, const char *scope,
			    const char *aud, const char *kid, const char *key_pem,
			    const char *key_file, struct perr *e)
{
	long long now = (long long)time(NULL);
	char *header, *claims, *jwt;

	header = json_object_text((const char *[]){ "alg", "RS256", "typ", "JWT", "kid", kid,
						    NULL }, 0, 0);
	claims = json_object_text((const char *[]){ "iss", iss, "sub", sub, "scope", scope,
						    "aud", aud, NULL }, now, now + 3600);
	jwt = jwt_sign(header, claims, key_pem, strlen(key_pem), key_file, e);
	free(header);
	free(claims);
	return jwt;
}
