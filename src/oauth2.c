/* oauth2.c — an account's OAuth2 tokens: where they are kept (the
 * owner-only state file, the keyring), the access token at send time
 * (cached, refreshed under a lock with a rotated refresh token saved
 * before use, or fetched again for the unattended flows), its renewal
 * after a refusal, and --check's view of the state.  The requests
 * themselves are oauth2_grant.c's; `postern --authorize` is
 * oauth2_authorize.c's.  See oauth2.h and oauth2_int.h. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "oauth2.h"
#include "oauth2_int.h"
#include "util.h"

#define TOKFILE_MAX (64 * 1024)   /* a token file holds a few KB */

/* ---- the token file ------------------------------------------------------ */
/* The keyring entries' type attribute (SPEC 10). */
#define TYPE_REFRESH "oauth2-refresh"
#define TYPE_ACCESS "oauth2-access"

void tokens_free(struct tokens *t)
{
	wipe_free(t->refresh);
	wipe_free(t->access);
	free(t->refused);
	memset(t, 0, sizeof *t);
}

static int name_ok(const char *n)
{
	return n[0] && n[0] != '.' && !strchr(n, '/') && strlen(n) < 128;
}

static int token_dir(char *buf, size_t cap)
{
	const char *d = getenv("POSTERN_OAUTH2_DIR"), *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;

	if (d && d[0] == '/')
		n = snprintf(buf, cap, "%s", d);
	else if (geteuid() == 0)
		n = snprintf(buf, cap, "/var/lib/postern/oauth2");
	else if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/postern/oauth2", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, cap, "%s/.local/state/postern/oauth2", home);
	else
		return -1;
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

int oauth2_token_path(const struct account *a, char *buf, size_t cap, struct perr *e)
{
	char dir[OAUTH2_PATH_MAX];
	int n;

	if (!name_ok(a->name))
		return perr_set(e, PERR_CONFIG, "account name '%s' cannot name a token file; "
				"rename the section (no '/', no leading '.')", a->name);
	if (token_dir(dir, sizeof dir) < 0)
		return perr_set(e, PERR_CONFIG, "no place for OAuth2 tokens: set HOME or "
				"XDG_STATE_HOME");
	n = snprintf(buf, cap, "%s/%s", dir, a->name);
	if (n < 0 || (size_t)n >= cap)
		return perr_set(e, PERR_CONFIG, "the OAuth2 token path is too long");
	return 0;
}

static void need_authorize(const struct account *a, const char *what, struct perr *e)
{
	perr_set(e, PERR_CONFIG, "account %s: %s; run postern --authorize=%s once (it opens "
		 "the provider's sign-in page and stores the token)", a->name, what, a->name);
}

/* Parse "key=value" lines; unknown keys are ignored (later versions). */
static void tokens_parse(char *buf, struct tokens *t)
{
	char *line = buf, *nl;

	for (; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (strncmp(line, "refresh_token=", 14) == 0 && line[14] && !t->refresh)
			t->refresh = xstrdup(line + 14);
		else if (strncmp(line, "access_token=", 13) == 0 && line[13] && !t->access)
			t->access = xstrdup(line + 13);
		else if (strncmp(line, "expires_at=", 11) == 0)
			t->expires = strtoll(line + 11, NULL, 10);
		else if (strncmp(line, "refused=", 8) == 0 && !t->refused)
			t->refused = xstrdup(line + 8);
		else if (strcmp(line, "store=keyring") == 0)
			t->keyring = 1;
	}
}

/* 0 read; 1 no file; -1 error (unsafe file, I/O). */
int tokens_read(const char *path, struct tokens *t, struct perr *e)
{
	struct stat st;
	char *buf;
	size_t n;
	int fd;

	memset(t, 0, sizeof *t);
	fd = open_regular(path, O_RDONLY | O_NOFOLLOW, 0, "the OAuth2 token file", e);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077) ||
	    st.st_size > TOKFILE_MAX) {
		int mine = st.st_uid == geteuid();

		close(fd);
		return perr_set(e, PERR_CONFIG, "the OAuth2 token file %s is %s; it holds "
				"secrets: %s", path,
				!mine ? "not owned by you" : st.st_size > TOKFILE_MAX ? "too large"
				: "accessible by group or others",
				mine && st.st_size <= TOKFILE_MAX ? "run chmod 600 on it"
				: "remove it and run postern --authorize again");
	}
	buf = xmalloc((size_t)st.st_size + 1);
	n = read_full(fd, buf, (size_t)st.st_size);
	close(fd);
	buf[n] = '\0';
	tokens_parse(buf, t);
	wipe(buf, n);
	free(buf);
	return 0;
}

static int mkdirs(const char *path)
{
	char buf[OAUTH2_PATH_MAX];
	size_t i;

	if (str_copy(buf, path, sizeof buf) >= sizeof buf)
		return -1;
	for (i = 1; buf[i]; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		buf[i] = '/';
	}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Write the file atomically: temporary file (0600), fsync, rename,
 * directory fsync. */
static int file_write(const char *path, const struct tokens *t, struct perr *e);

/* Store the tokens: with t->keyring in the keyring (the file then holds
 * the expiry, store=keyring and any refusal, no token), falling back to
 * the file alone when the keyring cannot take them — a rotated refresh
 * token is never lost. */
int tokens_write(const struct account *a, const char *path, struct tokens *t,
		 struct perr *e)
{
	char label[512];
	struct perr ke;

	if (t->keyring) {
		snprintf(label, sizeof label, "postern: OAuth2 refresh token for %s (%s)", a->user,
			 a->host);
		if (t->refresh && *t->refresh &&
		    secret_keyring_put(a, TYPE_REFRESH, label, t->refresh, &ke) < 0)
			t->keyring = 0;
		snprintf(label, sizeof label, "postern: OAuth2 access token for %s (%s)", a->user,
			 a->host);
		if (t->keyring && t->access && *t->access &&
		    secret_keyring_put(a, TYPE_ACCESS, label, t->access, &ke) < 0)
			t->keyring = 0;
		if (!t->keyring)
			log_event("OAuth2: %s; the tokens of account %s go to %s", ke.text, a->name,
				  path);
	}
	return file_write(path, t, e);
}

/* Bring the tokens kept in the keyring into t: the access token, and the
 * refresh token too with want_refresh.  0 (an entry may be missing), or
 * -1 when the keyring cannot be asked now (temporary: queued). */
static int tokens_from_keyring(const struct account *a, struct tokens *t, int want_refresh,
			       struct perr *e)
{
	struct secret v;
	int r;

	if (!t->keyring)
		return 0;
	for (int i = 0; i < 1 + !!want_refresh; i++) {
		r = secret_keyring_get(a, i ? TYPE_REFRESH : TYPE_ACCESS, &v, e);
		if (r < 0) {
			perr_prefix(e, "account %s: the OAuth2 tokens are in the keyring, and", a->name);
			perr_append(e, "; the message can be sent from the login session (postern -q)");
			return -1;
		}
		if (r == 0) {
			char **slot = i ? &t->refresh : &t->access;

			wipe_free(*slot);
			*slot = v.value;
			v.value = NULL;
		}
	}
	return 0;
}

static int file_write(const char *path, const struct tokens *t, struct perr *e)
{
	char dir[OAUTH2_PATH_MAX], tmp[OAUTH2_PATH_MAX + 32], *slash, *text;
	size_t cap = 256 + (t->refresh ? strlen(t->refresh) : 0) +
		     (t->access ? strlen(t->access) : 0) + (t->refused ? strlen(t->refused) : 0);
	int fd, n, bad;

	str_copy(dir, path, sizeof dir);
	slash = strrchr(dir, '/');
	if (!slash)
		return perr_set(e, PERR_IO, "bad token path %s", path);
	*slash = '\0';
	if (mkdirs(dir) < 0)
		return perr_set(e, PERR_IO, "cannot create %s: %s", dir, strerror(errno));
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return perr_set(e, PERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	text = xmalloc(cap);
	n = snprintf(text, cap, "# postern OAuth2 tokens; written by postern, keep private\n"
		     "%srefresh_token=%s\naccess_token=%s\nexpires_at=%lld\n%s%s%s",
		     t->keyring ? "store=keyring\n" : "",
		     t->refresh && !t->keyring ? t->refresh : "",
		     t->access && !t->keyring ? t->access : "", t->expires,
		     t->refused ? "refused=" : "", t->refused ? t->refused : "",
		     t->refused ? "\n" : "");
	bad = n < 0 || (size_t)n >= cap || fchmod(fd, 0600) < 0 ||
	      write_full(fd, text, (size_t)n) < 0 || fsync(fd) < 0;
	wipe(text, cap);
	free(text);
	if (close(fd) < 0 || bad || rename(tmp, path) < 0) {
		int err = errno;

		unlink(tmp);
		return perr_set(e, PERR_IO, "cannot write the OAuth2 token file %s: %s", path,
				strerror(err));
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

/* ---- at send time ---------------------------------------------------------- */

static int take_access(const struct tokens *t, struct secret *s)
{
	size_t n = strlen(t->access);

	s->value = xmalloc(n + 1);
	memcpy(s->value, t->access, n + 1);
	s->len = n;
	s->source = SECRET_FILE;
	return 0;
}

/* The access token's time is not up (by the clock, with the margin). */
static int fresh(const struct tokens *t)
{
	return t->expires - (long long)time(NULL) > OAUTH2_MARGIN_S;
}

static int valid(const struct tokens *t)
{
	return t->access && *t->access && fresh(t);
}

static int refused_line(const struct account *a, const char *why, struct perr *e)
{
	perr_set(e, PERR_AUTH, "account %s: the OAuth2 refresh token was refused (%s); run "
		 "postern --authorize=%s", a->name, why, a->name);
	return perr_because(e, PERR_CAUSE_AUTH); /* refused credentials: held */
}

/* Refresh under an exclusive lock on PATH.lock, so two postern runs never
 * spend one rotating refresh token twice. */
static int refresh(const struct account *a, const char *path, struct tokens *t,
		   struct secret *s, struct perr *e)
{
	char lockpath[OAUTH2_PATH_MAX + 8], why[GRANT_WHY_MAX];
	struct grant_form f = { 0 };
	int lock, rc;

	snprintf(lockpath, sizeof lockpath, "%s.lock", path);
	lock = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock >= 0 && flock(lock, LOCK_EX) == 0) {
		/* another run may have refreshed while we waited */
		tokens_free(t);
		rc = tokens_read(path, t, e);
		if (rc == 0 && tokens_from_keyring(a, t, 1, e) < 0) {
			close(lock);
			return -1;
		}
		if (rc == 0 && (t->refused || !t->refresh || valid(t))) {
			close(lock);
			if (t->refused)
				return refused_line(a, t->refused, e);
			if (!t->refresh) {
				need_authorize(a, "no OAuth2 token is stored", e);
				return -1;
			}
			return take_access(t, s);
		}
		if (rc != 0) {
			close(lock);
			if (rc == 1)
				need_authorize(a, "no OAuth2 token is stored", e);
			return -1;
		}
	}
	grant_form_add(&f, "grant_type", "refresh_token");
	grant_form_add(&f, "refresh_token", t->refresh);
	if (grant_client(&f, a, e) < 0) {
		grant_form_free(&f);
		if (lock >= 0)
			close(lock);
		return -1;
	}
	log_event("OAuth2: refreshing the access token of account %s", a->name);
	rc = grant_post(a, &f, t, why, sizeof why, e);
	grant_form_free(&f);
	if (rc == GRANT_OK) {
		/* saved before it is used: a rotated refresh token is never lost */
		rc = tokens_write(a, path, t, e) < 0 ? -1 : take_access(t, s);
		if (rc < 0) {
			perr_prefix(e, "account %s", a->name);
			perr_because(e, PERR_CAUSE_SECRET);
		}
	} else if (rc == GRANT_REFUSED) {
		struct perr ignored;

		if (strncmp(why, "invalid_grant", 13) == 0) {
			free(t->refused);
			t->refused = xstrdup(why);
			tokens_write(a, path, t, &ignored);
		}
		rc = refused_line(a, why, e);
	} else {
		perr_prefix(e, "account %s", a->name);
		perr_append(e, "; the access token cannot be refreshed now");
	}
	if (lock >= 0)
		close(lock);
	return rc;
}

int oauth2_unattended(const struct account *a)
{
	return a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS ||
	       a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT;
}

/* An exclusive lock on PATH.lock (its directory made first); -1 when none
 * can be had (the caller goes on without). */
static int lock_tokens(const char *path)
{
	char lockpath[OAUTH2_PATH_MAX + 8], dir[OAUTH2_PATH_MAX], *slash;
	int lock;

	str_copy(dir, path, sizeof dir);
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		mkdirs(dir);
	}
	snprintf(lockpath, sizeof lockpath, "%s.lock", path);
	lock = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lock >= 0 && flock(lock, LOCK_EX) < 0) {
		close(lock);
		lock = -1;
	}
	return lock;
}

/* Unattended flows: the cached access token, else a new one from the
 * app's own credentials (no refresh token, no person).  A refusal is
 * refused credentials (the account held); nothing is remembered of it,
 * so a fixed registration works on the next run. */
int oauth2_app_token(const struct account *a, const char *path, struct secret *s,
		     struct perr *e)
{
	char why[GRANT_WHY_MAX];
	struct tokens t;
	int lock = -1, r, rc;

	for (int pass = 0; pass < 2; pass++) {
		r = tokens_read(path, &t, e);
		if (r < 0) {
			if (lock >= 0)
				close(lock);
			return -1;
		}
		if (r == 0 && valid(&t)) {
			rc = take_access(&t, s);
			tokens_free(&t);
			if (lock >= 0)
				close(lock);
			return rc;
		}
		if (pass == 0) {
			tokens_free(&t);
			lock = lock_tokens(path); /* then look again: another run may have */
		}
	}
	rc = grant_app(a, &t, why, sizeof why, e);
	if (rc == GRANT_OK) {
		rc = tokens_write(a, path, &t, e) < 0 ? -1 : take_access(&t, s);
	} else if (rc == GRANT_REFUSED) {
		perr_set(e, PERR_AUTH, "account %s: the token endpoint refused the app's "
			 "credentials (%s); check oauth2_client_id, the secret or key and the app's "
			 "permissions (smtprc(5)), then run postern -q", a->name, why);
		rc = perr_because(e, PERR_CAUSE_AUTH);
	} else if (e->cause == PERR_CAUSE_SECRET) {
		perr_prefix(e, "account %s", a->name);
		perr_append(e, "; no access token can be had now");
	}
	if (rc < 0 && e->kind == PERR_CONFIG)
		perr_because(e, PERR_CAUSE_NONE);
	tokens_free(&t);
	if (lock >= 0)
		close(lock);
	return rc;
}

int oauth2_access_token(const struct account *a, struct secret *s, struct perr *e)
{
	char path[OAUTH2_PATH_MAX];
	struct tokens t;
	int r, rc;

	memset(s, 0, sizeof *s);
	if (oauth2_token_path(a, path, sizeof path, e) < 0)
		return -1;
	if (oauth2_unattended(a))
		return oauth2_app_token(a, path, s, e);
	r = tokens_read(path, &t, e);
	if (r < 0)
		return -1;
	if (r == 1 || (!t.keyring && (!t.refresh || !*t.refresh))) {
		tokens_free(&t);
		need_authorize(a, "no OAuth2 token is stored", e);
		return -1;
	}
	/* from the keyring: the access token alone while it is fresh (one
	 * lookup, as for a password), the refresh token too when needed */
	if (t.refused)
		rc = refused_line(a, t.refused, e);
	else if (tokens_from_keyring(a, &t, !fresh(&t), e) < 0 ||
		 (t.keyring && !valid(&t) && !t.refresh && tokens_from_keyring(a, &t, 1, e) < 0))
		rc = -1;
	else if (valid(&t))
		rc = take_access(&t, s);
	else if (!t.refresh || !*t.refresh)
		rc = (need_authorize(a, "no OAuth2 refresh token is in the keyring", e), -1);
	else
		rc = refresh(a, path, &t, s, e);
	tokens_free(&t);
	return rc;
}

int oauth2_renew(const struct account *a, struct secret *s, struct perr *e)
{
	char path[OAUTH2_PATH_MAX];
	struct tokens t;
	int lock;

	if (oauth2_token_path(a, path, sizeof path, e) < 0)
		return -1;
	lock = lock_tokens(path);
	if (tokens_read(path, &t, e) == 0 &&
	    (t.keyring || (t.access && s->value && strcmp(t.access, s->value) == 0))) {
		/* the one the server refused: never offered again */
		wipe_free(t.access);
		t.access = NULL;
		t.expires = 0;
		tokens_write(a, path, &t, e);
	}
	tokens_free(&t);
	if (lock >= 0)
		close(lock);
	secret_free(s);
	log_event("OAuth2: the server refused the access token of account %s; getting a new "
		  "one", a->name);
	return oauth2_access_token(a, s, e);
}

/* ---- --check and --authorize's report ------------------------------------- */

/* Where the refresh token is: "the keyring (...)" or "PATH (owner-only
 * file)". */
void tokens_where(const struct account *a, const char *path, const struct tokens *t, char *buf,
		  size_t cap)
{
	if (t->keyring)
		snprintf(buf, cap, "the keyring (host=%s service=smtp user=%s type=" TYPE_REFRESH
			 "; state in %s)", a->host, a->user, path);
	else
		snprintf(buf, cap, "%s (owner-only file)", path);
}

static const char *const flow_names[] = {
	"auto", "authcode", "device", "client_credentials", "service_account",
};

void oauth2_print_state(const struct account *a, FILE *out)
{
	char path[OAUTH2_PATH_MAX], where[OAUTH2_PATH_MAX + 256], when[64];
	long long left;
	struct tokens t;
	struct perr e;
	time_t x;
	int r;

	if (!a->oauth2)
		return;
	fprintf(out, "\nOAuth2 state (tokens are never shown)\n");
	fprintf(out, "%-17s = %s (oauth2 = %s)\n", "flow",
		flow_names[a->oauth2_flow < 5 ? a->oauth2_flow : 0], config_oauth2_name(a->oauth2));
	if (oauth2_token_path(a, path, sizeof path, &e) < 0) {
		fprintf(out, "%-17s = %s\n", "tokens", e.text);
		return;
	}
	r = tokens_read(path, &t, &e);
	if (r < 0) {
		fprintf(out, "%-17s = %s\n", "tokens", e.text);
		return;
	}
	tokens_where(a, path, &t, where, sizeof where);
	if (oauth2_unattended(a))
		fprintf(out, "%-17s = none needed (new access tokens come from the app's "
			"credentials); cache in %s\n", "refresh token", where);
	else if (r == 1 || (!t.keyring && (!t.refresh || !*t.refresh)))
		fprintf(out, "%-17s = none stored: run postern --authorize=%s\n", "refresh token",
			a->name);
	else
		fprintf(out, "%-17s = in %s\n", "refresh token", where);
	x = (time_t)t.expires;
	left = t.expires - (long long)time(NULL);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", localtime(&x));
	if (r == 1 || t.expires <= 0 || (!t.keyring && (!t.access || !*t.access)))
		fprintf(out, "%-17s = none cached\n", "access token");
	else if (left > OAUTH2_MARGIN_S)
		fprintf(out, "%-17s = cached until %s (%lld min left; renewed %d min before)\n",
			"access token", when, left / 60, OAUTH2_MARGIN_S / 60);
	else
		fprintf(out, "%-17s = %s %s; a new one is fetched at the next send\n",
			"access token", left > 0 ? "expiring at" : "expired at", when);
	if (t.refused)
		fprintf(out, "%-17s = %s; run postern --authorize=%s\n", "refused", t.refused,
			a->name);
	tokens_free(&t);
}
