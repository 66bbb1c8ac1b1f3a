/* oauth2.h — OAuth2 for SMTP AUTH (SPEC 10): `postern --authorize`
 * (authorization code + PKCE S256 with a loopback redirect), the token
 * file, and the access token at send time.
 *
 * Three files: oauth2.c the tokens (state file, keyring, cache, refresh,
 * --check), oauth2_grant.c the endpoints' requests (JSON read with json-c,
 * the only file that includes its headers; HTTPS through http.c),
 * oauth2_authorize.c `postern --authorize`; oauth2_int.h is what they
 * share.  json-c and libcurl are loaded with dlopen only when a token
 * must be fetched: a send with a cached access token reads one small file
 * and loads nothing.
 *
 * The tokens live in an owner-only file, OAUTH2_DIR/ACCOUNT, where the
 * directory is $POSTERN_OAUTH2_DIR when set, else
 * $XDG_STATE_HOME/postern/oauth2 (~/.local/state/postern/oauth2), and
 * /var/lib/postern/oauth2 for root.  It is written atomically (temporary
 * file, fsync, rename, directory fsync; mode 0600) and refused on read
 * unless it is a regular file owned by the caller and not accessible to
 * group or others.  After --authorize with a reachable keyring the tokens
 * themselves are in the keyring (entries with the password's attributes
 * plus type = oauth2-refresh / oauth2-access) and the file holds only
 * store=keyring, the expiry and any refusal; without one, the file holds
 * them.  The unattended flows (client_credentials, service_account) keep
 * only the access token, in the file.
 *
 * Tokens never reach argv, a child's environment, -v output, a log or an
 * error text, and are wiped after use. */
#ifndef POSTERN_OAUTH2_H
#define POSTERN_OAUTH2_H

#include "config.h"
#include "errors.h"
#include "secret.h"

/* An access token is used from the file while it is valid for more than
 * this many seconds; else it is refreshed. */
#define OAUTH2_MARGIN_S 300

/* The longest wait for the browser's redirect in --authorize (seconds);
 * $POSTERN_AUTHORIZE_TIMEOUT may shorten it. */
#define OAUTH2_AUTHORIZE_WAIT_S 300

/* The access token for a (a->oauth2 set) into s (source SECRET_FILE):
 * from the token file while valid for more than OAUTH2_MARGIN_S, with no
 * network; else refreshed (grant_type=refresh_token) and the file
 * rewritten — a rotated refresh token included — before it is used.
 * Errors:
 *   no token file, or no refresh token in it: PERR_CONFIG, "run postern
 *     --authorize=ACCOUNT";
 *   the token endpoint unreachable, 5xx, a timeout, libcurl or json-c
 *     missing: PERR_TEMP, cause PERR_CAUSE_SECRET (queued);
 *   the refresh token refused (invalid_grant) or the client refused:
 *     PERR_AUTH, cause PERR_CAUSE_SECRET (queued; exit 77 with queue = off),
 *     "run postern --authorize=ACCOUNT".  invalid_grant is recorded in the
 *     file, so later runs do not ask the endpoint again until
 *     --authorize has run (no lock-out is provoked);
 *   the file unsafe (mode, owner, type): PERR_CONFIG naming the fix. */
int oauth2_access_token(const struct account *a, struct secret *s, struct perr *e);

/* The server refused the access token in s although it had not expired
 * by the clock (XOAUTH2's 334 {"status":"401"}: revoked, or expired
 * early): forget it in the cache, free s, and get a new one into s as
 * oauth2_access_token does (a refresh, or the unattended grant).  Called
 * once per submission: a second refusal is refused credentials. */
int oauth2_renew(const struct account *a, struct secret *s, struct perr *e);

/* postern --authorize: run the authorization code flow for a and store
 * the tokens.  Progress and the URL go to err.  Exit-code kinds:
 * 0 stored; PERR_AUTH (77) state mismatch, an error in the redirect, or
 * the code refused by the token endpoint; PERR_TEMP (75) no redirect
 * within the wait, or the token endpoint unreachable; PERR_CONFIG (78)
 * the account has no oauth2; PERR_IO (74) the file cannot be written. */
int oauth2_authorize(const struct account *a, FILE *err, struct perr *e);

/* --check: the account's OAuth2 state — its flow, where the refresh
 * token is (the keyring or the file's path), until when the cached access
 * token is valid, a refusal — from the file alone (no keyring, no
 * network); never a token. */
void oauth2_print_state(const struct account *a, FILE *out);

/* The token file's path for an account, into buf; -1 with e filled when
 * no directory can be found or the account name is not a file name. */
int oauth2_token_path(const struct account *a, char *buf, size_t cap, struct perr *e);

#endif
