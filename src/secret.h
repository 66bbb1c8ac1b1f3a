/* secret.h — the account's secret (password or OAuth2 token): one owner,
 * resolved before any connection is opened, wiped on free.
 *
 * Sources, in order: password_command, the keyring (libsecret; attributes
 * host, service = "smtp", user), password.  The secret never goes into
 * argv, the environment of a child, a log line or an error text. */
#ifndef POSTERN_SECRET_H
#define POSTERN_SECRET_H

#include <stddef.h>

#include "config.h"
#include "errors.h"

enum secret_source { SECRET_NONE = 0, SECRET_COMMAND, SECRET_KEYRING, SECRET_FILE };

struct secret {
	char *value;               /* NUL-terminated; NULL when none needed */
	size_t len;
	enum secret_source source;
};

/* Longest secret accepted (OAuth2 access tokens reach ~2 KB). */
#define SECRET_MAX 8192

/* True when this account authenticates (auth != off and a user is set,
 * or auth names a mechanism). */
int secret_needed(const struct account *a);

/* Resolve the secret.  No secret needed: 0 with s->value NULL.
 * password_command: run through /bin/sh -c with stdin /dev/null, its
 * stderr passed through; first line of stdout (trailing CR/LF removed);
 * non-zero exit or empty output: PERR_CONFIG naming the account; no
 * answer within the account's timeout: PERR_TEMP (the child is killed).
 * No source at all: PERR_CONFIG saying which sources exist and how to set
 * one.  Keyring unreachable and no later source: PERR_TEMP. */
int secret_resolve(const struct account *a, struct secret *s, struct perr *e);

/* Store value in the keyring for this account (--set-password). */
int secret_store(const struct account *a, const char *value, struct perr *e);

/* Wipe and free. */
void secret_free(struct secret *s);

#endif
