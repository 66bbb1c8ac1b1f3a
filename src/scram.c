/* scram.c — SCRAM-SHA-256 client messages and proofs (RFC 5802, RFC 7677).
 *
 * Owns the key derivation (OpenSSL's PBKDF2 and HMAC), the client nonce,
 * the parsing of the server's two messages and the check of the server's
 * signature.  The SMTP framing (AUTH, 334, base64) stays in smtp.c. */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base64.h"
#include "log.h"
#include "scram.h"
#include "util.h"

/* Random bytes in a fresh client nonce (base64: 32 characters). */
#define NONCE_RAW 24
/* "c=biws" is the base64 of the gs2 header "n,,". */
#define GS2_HEADER "n,,"
#define CHANNEL_BINDING "c=biws"
/* AuthMessage = client-first-bare "," server-first "," client-final-w/o-proof */
#define AUTHMSG_MAX (sizeof(((struct scram *)0)->first_bare) + SCRAM_MSG_MAX + \
		     SCRAM_MSG_MAX + 16)

static int nonce_ok(const char *p, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return 0;
	return 1;
}

/* n=USER with ',' and '=' escaped (RFC 5802 5.1). */
static int escape_user(const char *user, char *out, size_t cap, size_t *len, struct perr *e)
{
	size_t o = 0, ulen = strlen(user);

	if (ulen == 0 || ulen > SCRAM_USER_MAX)
		return perr_set(e, PERR_CONFIG, "user must be 1 to %d bytes for SCRAM-SHA-256",
				SCRAM_USER_MAX);
	for (size_t i = 0; i < ulen; i++) {
		unsigned char c = (unsigned char)user[i];
		const char *rep = c == ',' ? "=2C" : c == '=' ? "=3D" : NULL;

		if (c < 0x20 || c == 0x7f)
			return perr_set(e, PERR_CONFIG, "user contains a control character; "
					"SCRAM-SHA-256 cannot send it");
		if (o + 4 > cap)
			return perr_set(e, PERR_CONFIG, "user is too long for SCRAM-SHA-256");
		if (rep) {
			memcpy(out + o, rep, 3);
			o += 3;
		} else {
			out[o++] = (char)c;
		}
	}
	*len = o;
	return 0;
}

int scram_start(struct scram *sc, const char *user, const char *nonce, char *out, size_t cap,
		size_t *outlen, struct perr *e)
{
	char name[3 * SCRAM_USER_MAX + 1];
	unsigned char raw[NONCE_RAW];
	size_t nlen = 0;
	int n;

	memset(sc, 0, sizeof *sc);
	if (escape_user(user ? user : "", name, sizeof name, &nlen, e) < 0)
		return -1;
	if (nonce) {
		if (!nonce_ok(nonce, strlen(nonce)) || strlen(nonce) > SCRAM_NONCE_MAX)
			return perr_set(e, PERR_SOFTWARE, "invalid SCRAM client nonce");
		str_copy(sc->cnonce, nonce, sizeof sc->cnonce);
	} else {
		if (RAND_bytes(raw, sizeof raw) != 1)
			return perr_set(e, PERR_OS, "cannot get random bytes for the SCRAM nonce");
		base64_encode(raw, sizeof raw, sc->cnonce); /* 32 chars, no ',' */
	}
	n = snprintf(sc->first_bare, sizeof sc->first_bare, "n=%.*s,r=%s", (int)nlen, name,
		     sc->cnonce);
	if (n < 0 || (size_t)n >= sizeof sc->first_bare)
		return perr_set(e, PERR_SOFTWARE, "SCRAM client-first message too long");
	sc->first_bare_len = (size_t)n;
	n = snprintf(out, cap, GS2_HEADER "%s", sc->first_bare);
	if (n < 0 || (size_t)n >= cap)
		return perr_set(e, PERR_SOFTWARE, "SCRAM output buffer too small");
	*outlen = (size_t)n;
	sc->state = 1;
	return 0;
}

/* The parsed server-first message; pointers into a NUL-terminated copy. */
struct server_first {
	const char *nonce;
	unsigned char salt[SCRAM_SALT_MAX];
	size_t salt_len;
	long iter;
};

/* Next "k=value" attribute of a comma-separated message: checks the key,
 * NUL-terminates the value in place and advances *p. */
static char *attr(char **p, char key)
{
	char *s = *p, *v;

	if (!s || s[0] != key || s[1] != '=')
		return NULL;
	v = s + 2;
	s = strchr(v, ',');
	if (s)
		*s++ = '\0';
	*p = s;
	return v;
}

static int parse_iter(const char *v, long *out)
{
	char *end;
	long i;

	if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 9)
		return -1;
	errno = 0;
	i = strtol(v, &end, 10);
	if (errno || *end)
		return -1;
	*out = i;
	return 0;
}

static int parse_server_first(struct scram *sc, char *msg, struct server_first *sf,
			      struct perr *e)
{
	char *p = msg, *salt, *iter;
	size_t cl = strlen(sc->cnonce);
	long n;

	if (msg[0] == 'm' && msg[1] == '=')
		return perr_set(e, PERR_PROTOCOL, "SCRAM server asks for an extension (m=) "
				"postern does not know");
	sf->nonce = attr(&p, 'r');
	salt = attr(&p, 's');
	iter = attr(&p, 'i');
	if (!sf->nonce || !salt || !iter)
		return perr_set(e, PERR_PROTOCOL, "malformed SCRAM server-first message "
				"(want r=,s=,i=)");
	if (!nonce_ok(sf->nonce, strlen(sf->nonce)) || strlen(sf->nonce) <= cl ||
	    strlen(sf->nonce) > cl + SCRAM_NONCE_MAX || strncmp(sf->nonce, sc->cnonce, cl) != 0)
		return perr_set(e, PERR_PROTOCOL, "SCRAM server nonce does not extend ours "
				"(replayed or tampered exchange?)");
	n = base64_decode(salt, strlen(salt), sf->salt, sizeof sf->salt);
	if (n <= 0)
		return perr_set(e, PERR_PROTOCOL, "SCRAM salt from the server is empty, not "
				"base64, or longer than %d bytes", SCRAM_SALT_MAX);
	sf->salt_len = (size_t)n;
	if (parse_iter(iter, &sf->iter) < 0)
		return perr_set(e, PERR_PROTOCOL, "SCRAM iteration count from the server is not "
				"a number");
	if (sf->iter < SCRAM_ITER_MIN || sf->iter > SCRAM_ITER_MAX)
		return perr_set(e, PERR_PROTOCOL, "SCRAM server asks for %ld iterations; postern "
				"accepts %d to %d (fewer would weaken the password's protection)",
				sf->iter, SCRAM_ITER_MIN, SCRAM_ITER_MAX);
	return 0;
}

static int hmac(const unsigned char *key, size_t klen, const void *data, size_t n,
		unsigned char out[SCRAM_HASH_LEN])
{
	unsigned int olen = SCRAM_HASH_LEN;

	return HMAC(EVP_sha256(), key, (int)klen, data, n, out, &olen) && olen == SCRAM_HASH_LEN
		       ? 0
		       : -1;
}

/* Keys derived from the password; all wiped by the caller. */
struct keys {
	unsigned char salted[SCRAM_HASH_LEN], client[SCRAM_HASH_LEN], stored[SCRAM_HASH_LEN];
	unsigned char server[SCRAM_HASH_LEN], client_sig[SCRAM_HASH_LEN];
	unsigned char proof[SCRAM_HASH_LEN];
};

static int derive(struct scram *sc, const char *pw, size_t pwlen, const struct server_first *sf,
		  const char *authmsg, size_t alen, struct keys *k)
{
	if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, sf->salt, (int)sf->salt_len, (int)sf->iter,
			      EVP_sha256(), SCRAM_HASH_LEN, k->salted) != 1 ||
	    hmac(k->salted, SCRAM_HASH_LEN, "Client Key", 10, k->client) < 0 ||
	    !SHA256(k->client, SCRAM_HASH_LEN, k->stored) ||
	    hmac(k->stored, SCRAM_HASH_LEN, authmsg, alen, k->client_sig) < 0 ||
	    hmac(k->salted, SCRAM_HASH_LEN, "Server Key", 10, k->server) < 0 ||
	    hmac(k->server, SCRAM_HASH_LEN, authmsg, alen, sc->server_sig) < 0)
		return -1;
	for (int i = 0; i < SCRAM_HASH_LEN; i++)
		k->proof[i] = k->client[i] ^ k->client_sig[i];
	return 0;
}

/* A server message (n bytes, not NUL-terminated) into msg as a string:
 * refused when empty, over SCRAM_MSG_MAX or holding a NUL. */
static int copy_server_msg(char msg[SCRAM_MSG_MAX + 1], const char *m, size_t n,
			   const char *which, struct perr *e)
{
	if (n == 0 || n > SCRAM_MSG_MAX || memchr(m, '\0', n))
		return perr_set(e, PERR_PROTOCOL, "SCRAM %s message is empty, too long "
				"or has a NUL byte", which);
	memcpy(msg, m, n);
	msg[n] = '\0';
	return 0;
}

int scram_final(struct scram *sc, const char *password, size_t pwlen, const char *server_first,
		size_t n, char *out, size_t cap, size_t *outlen, struct perr *e)
{
	char msg[SCRAM_MSG_MAX + 1], authmsg[AUTHMSG_MAX], proof[BASE64_LEN(SCRAM_HASH_LEN) + 1];
	struct server_first sf;
	struct keys k;
	int w, a, rc = -1;

	if (sc->state != 1)
		return perr_set(e, PERR_SOFTWARE, "SCRAM exchange out of order");
	if (copy_server_msg(msg, server_first, n, "server-first", e) < 0)
		return -1;
	if (parse_server_first(sc, msg, &sf, e) < 0)
		return -1;
	/* client-final-message-without-proof, in out; then AuthMessage */
	w = snprintf(out, cap, CHANNEL_BINDING ",r=%s", sf.nonce);
	a = snprintf(authmsg, sizeof authmsg, "%s,%.*s,%s", sc->first_bare, (int)n, server_first,
		     out);
	if (w < 0 || (size_t)w >= cap || a < 0 || (size_t)a >= sizeof authmsg) {
		perr_set(e, PERR_SOFTWARE, "SCRAM message too long");
		goto out;
	}
	if (derive(sc, password, pwlen, &sf, authmsg, (size_t)a, &k) < 0) {
		perr_set(e, PERR_SOFTWARE, "SCRAM key derivation failed in OpenSSL");
		goto out;
	}
	base64_encode(k.proof, SCRAM_HASH_LEN, proof);
	a = snprintf(out + w, cap - (size_t)w, ",p=%s", proof);
	if (a < 0 || (size_t)a >= cap - (size_t)w) {
		perr_set(e, PERR_SOFTWARE, "SCRAM output buffer too small");
		goto out;
	}
	*outlen = (size_t)w + (size_t)a;
	sc->state = 2;
	rc = 0;
out:
	OPENSSL_cleanse(&k, sizeof k);
	OPENSSL_cleanse(proof, sizeof proof);
	OPENSSL_cleanse(authmsg, sizeof authmsg);
	return rc;
}

int scram_verify(struct scram *sc, const char *server_final, size_t n, struct perr *e)
{
	char msg[SCRAM_MSG_MAX + 1], why[128];
	unsigned char got[SCRAM_HASH_LEN + 4];
	char *p = msg, *v;
	long len;

	if (sc->state != 2)
		return perr_set(e, PERR_SOFTWARE, "SCRAM exchange out of order");
	if (copy_server_msg(msg, server_final, n, "server-final", e) < 0)
		return -1;
	if (msg[0] == 'e' && msg[1] == '=') {
		v = attr(&p, 'e');
		log_sanitize(why, sizeof why, v, strlen(v));
		return perr_set(e, PERR_AUTH, "SCRAM-SHA-256 refused by the server: %s", why);
	}
	v = attr(&p, 'v');
	if (!v)
		return perr_set(e, PERR_PROTOCOL, "malformed SCRAM server-final message (want v=)");
	len = base64_decode(v, strlen(v), got, sizeof got);
	if (len != SCRAM_HASH_LEN || CRYPTO_memcmp(got, sc->server_sig, SCRAM_HASH_LEN) != 0)
		return perr_set(e, PERR_AUTH, "server signature does not match: the server may "
				"not be the one you think");
	sc->state = 3;
	return 0;
}

void scram_clear(struct scram *sc)
{
	OPENSSL_cleanse(sc, sizeof *sc);
}
