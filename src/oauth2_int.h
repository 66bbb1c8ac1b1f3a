/* oauth2_int.h — what the OAuth2 files share and nobody else uses: an
 * account's tokens and their store (oauth2.c), the requests to the token
 * and device authorization endpoints (oauth2_grant.c), both used by
 * `postern --authorize` (oauth2_authorize.c).  Include only from
 * oauth2*.c; the rest of postern sees oauth2.h alone.
 *
 * Calls go one way: oauth2_authorize.c uses oauth2.c and oauth2_grant.c,
 * oauth2.c uses oauth2_grant.c, and oauth2_grant.c uses neither. */
#ifndef POSTERN_OAUTH2_INT_H
#define POSTERN_OAUTH2_INT_H

#include <stddef.h>

#include "config.h"
#include "errors.h"
#include "secret.h"

#define OAUTH2_PATH_MAX 4096 /* a token file's path */

/* Bytes of a server's error_description quoted in an error, and the
 * buffer that holds a refused grant's "error: description" (sanitised,
 * so up to four bytes a byte). */
#define GRANT_DESC_MAX 160
#define GRANT_WHY_MAX (GRANT_DESC_MAX * 4 + 300)

/* ---- an account's tokens (oauth2.c) ---- */

struct tokens {
	char *refresh;      /* wiped on free */
	char *access;       /* wiped on free */
	long long expires;  /* unix time the access token ends; 0 unknown */
	char *refused;      /* "invalid_grant: ..." once the refresh token was refused */
	int keyring;        /* the tokens are in the keyring; the file holds the rest */
};

/* Wipe and free the members; t is left zeroed. */
void tokens_free(struct tokens *t);

/* Read the token file at path into t (zeroed first; the tokens kept in
 * the keyring are not fetched).  0 read; 1 no file; -1 with e filled when
 * the file is unsafe (owner, mode, size) or cannot be read. */
int tokens_read(const char *path, struct tokens *t, struct perr *e);

/* Store t: with t->keyring set the tokens go to the keyring and the file
 * keeps the rest; when the keyring cannot take them t->keyring is cleared
 * and the file keeps them all.  The file is written atomically (0600).
 * -1 with e filled (PERR_IO) when it cannot be written. */
int tokens_write(const struct account *a, const char *path, struct tokens *t,
		 struct perr *e);

/* Where the refresh token is, for a person: "the keyring (...)" or
 * "PATH (owner-only file)", into buf. */
void tokens_where(const struct account *a, const char *path, const struct tokens *t, char *buf,
		  size_t cap);

/* The account's flow needs no person (client credentials, service
 * account). */
int oauth2_unattended(const struct account *a);

/* The access token of an unattended flow into s: the cached one while
 * valid, else a new one from the app's credentials, cached in path.
 * Errors as oauth2_access_token. */
int oauth2_app_token(const struct account *a, const char *path, struct secret *s,
		     struct perr *e);

/* ---- the endpoints (oauth2_grant.c) ---- */

/* An application/x-www-form-urlencoded body (or query string) being
 * built; wiped on free, since it carries secrets. */
struct grant_form {
	char *buf;
	size_t len, cap;
};

/* Append "&name=value" ("name=value" first), percent-encoded. */
void grant_form_add(struct grant_form *f, const char *name, const char *value);
void grant_form_free(struct grant_form *f);

/* Add client_id and, when the app has one, its client secret (the
 * sources of SPEC 10, in order).  -1 with e filled when the secret cannot
 * be had, or client credentials have none. */
int grant_client(struct grant_form *f, const struct account *a, struct perr *e);

enum grant_result { GRANT_OK, GRANT_REFUSED };

/* POST the grant in form to the token endpoint; GRANT_OK fills t
 * (access, expires, refresh when given); GRANT_REFUSED (a 4xx) fills why
 * with "error: description", sanitised.  -1 with e filled when no answer
 * could be had (PERR_TEMP, cause PERR_CAUSE_SECRET). */
int grant_post(const struct account *a, const struct grant_form *form, struct tokens *t,
	       char *why, size_t whycap, struct perr *e);

/* The grant of an unattended flow (client credentials with a secret or a
 * certificate assertion, or a service account's JWT bearer grant).  As
 * grant_post. */
int grant_app(const struct account *a, struct tokens *t, char *why, size_t whycap,
	      struct perr *e);

/* A device authorization (RFC 8628): the codes and where to enter them. */
struct grant_device {
	char *device_code;   /* wiped */
	char *user_code;
	char *uri;           /* verification_uri (Google: verification_url) */
	long long expires_in;
	long long interval;
};

/* POST the device authorization request into d.  -1 with e filled:
 * PERR_AUTH when refused (the error names the fix), PERR_TEMP when no
 * usable answer came. */
int grant_device_start(const struct account *a, struct grant_device *d, struct perr *e);
void grant_device_free(struct grant_device *d);

#endif
