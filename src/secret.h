/* secret.h — the account's secret (password or OAuth2 token): one owner,
 * resolved before any connection is opened, wiped on free.
 *
 * Sources, in order: password_command, password_credential (a systemd
 * credential: $CREDENTIALS_DIRECTORY/NAME), the keyring (libsecret;
 * attributes host, service = "smtp", user), password.  The secret never goes into
 * argv, the environment of a child, a log line or an error text. */
#ifndef POSTERN_SECRET_H
#define POSTERN_SECRET_H

#include <stddef.h>

#include "config.h"
#include "errors.h"

enum secret_source {
	SECRET_NONE = 0, SECRET_COMMAND, SECRET_KEYRING, SECRET_FILE, SECRET_CREDENTIAL
};

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
 * password_command: run through /bin/sh -c with default signal
 * dispositions, stdin inherited when it is a terminal (so the command can
 * prompt) and /dev/null otherwise, its stderr passed on to ours; the
 * secret is the first line of its stdout (trailing CR/LF removed).
 * postern waits for the command to exit, not for the end of its output (a
 * background child may keep that open), and then reads only what is
 * ready; all of it bounded by the account's timeout.
 * The secret cannot be had now — the command exits non-zero, is killed,
 * prints nothing or does not exit in time (the child or its process group
 * is killed), or the keyring was the last source and cannot be reached or
 * is locked: PERR_TEMP with cause PERR_CAUSE_SECRET; the text names the
 * exit status and the command's first stderr line (sanitised, never the
 * secret).  A first line over SECRET_MAX or holding a NUL: PERR_CONFIG.
 * password_credential: the first line of $CREDENTIALS_DIRECTORY/NAME (a
 * regular file, at most SECRET_MAX bytes on that line); the variable
 * unset or the file missing or unreadable: PERR_CONFIG naming the
 * LoadCredential= line that provides it.
 * No source at all: PERR_CONFIG saying which sources exist and how to set
 * one. */
int secret_resolve(const struct account *a, struct secret *s, struct perr *e);

/* Run cmd (the value of the key named key, for messages) as
 * password_command is run, and take its first output line: the same
 * rules, bounds and errors (PERR_TEMP with PERR_CAUSE_SECRET when the
 * secret cannot be had now).  For OAuth2 app secrets. */
int secret_command(const struct account *a, const char *cmd, const char *key, struct secret *s,
		   struct perr *e);

/* postern's own keyring entries beside the password (SPEC 10): the
 * password's attributes (host, service = smtp, user) plus type =
 * "oauth2-refresh", "oauth2-access" or "oauth2-client-secret".  A lookup
 * for a password skips entries that have a type.
 * get: 0 found (s filled, source SECRET_KEYRING); 1 no such entry; -1
 * the keyring cannot be asked now (no D-Bus session, no libsecret,
 * locked, no answer within the timeout): PERR_TEMP, PERR_CAUSE_SECRET,
 * the text saying which ("the keyring is locked").  Built without
 * libsecret: get finds nothing (1), put fails (-1).
 * put: store or replace the entry; 0, or -1 as get. */
int secret_keyring_get(const struct account *a, const char *type, struct secret *s,
		       struct perr *e);
int secret_keyring_put(const struct account *a, const char *type, const char *label,
		       const char *value, struct perr *e);

/* Store value in the keyring for this account (--set-password). */
int secret_store(const struct account *a, const char *value, struct perr *e);

/* Wipe and free. */
void secret_free(struct secret *s);

#endif
