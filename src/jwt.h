/* jwt.h — RS256-signed JSON Web Tokens (RFC 7519) for OAuth2's unattended
 * flows: Microsoft's client assertion (a certificate credential of an app
 * registration) and Google's service-account assertion (the JWT bearer
 * grant, RFC 7523); and the key files they are signed with, which are
 * secrets and checked like the configuration.  No network, no JSON
 * parsing: the caller (oauth2_grant.c) reads what it needs.  Every string
 * returned is the caller's to wipe and free. */
#ifndef POSTERN_JWT_H
#define POSTERN_JWT_H

#include <stddef.h>

#include "config.h"
#include "errors.h"

/* The whole of a private key file (key names the configuration key, for
 * messages): it must be a regular file owned by the caller, not
 * accessible to group or others, not empty and at most 64 KB; otherwise
 * PERR_CONFIG naming the fix (chmod 600).  *out is NUL-terminated. */
int jwt_read_private(const char *path, const char *key, char **out, size_t *len,
		     struct perr *e);

/* Microsoft's client assertion for a->oauth2_client_id: header alg RS256
 * and x5t = base64url(SHA-1 of a->oauth2_cert_file's certificate), claims
 * aud = a->oauth2_token_url, iss = sub = the client id, a random jti, iat,
 * nbf and exp 10 minutes later; signed with a->oauth2_key_file.  NULL
 * with e filled (PERR_CONFIG: an unreadable or unusable key or
 * certificate). */
char *jwt_client_assertion(const struct account *a, struct perr *e);

/* Google's service-account assertion: header alg RS256 and kid, claims
 * iss (the service account), sub (the mailbox: domain-wide delegation),
 * scope, aud (the token endpoint), iat, nbf and exp an hour later; signed
 * with key_pem (key_file names it in errors).  NULL with e filled. */
char *jwt_service_assertion(const char *iss, const char *sub, const char *scope,
			    const char *aud, const char *kid, const char *key_pem,
			    const char *key_file, struct perr *e);

#endif
