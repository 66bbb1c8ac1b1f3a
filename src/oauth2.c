/* oauth2.c — OAuth2 tokens for SMTP AUTH: the token file, refresh at send
 * time, and `postern --authorize` (authorization code + PKCE with a
 * loopback redirect).  JSON through json-c, loaded with dlopen (the only
 * file that includes its headers).  See oauth2.h. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "base64.h"
#include "crypto.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "oauth2.h"
#include "util.h"

#define LIBJSONC_SONAME "libjson-c.so.5"
#define TOKFILE_MAX (64 * 1024)   /* a token file holds a few KB */
#define TOKEN_MAX SECRET_MAX      /* longest token kept */
#define DESC_MAX 160              /* bytes of a server's error_description quoted */
#define REQUEST_MAX 8192          /* the redirect request's head */
#define REQUEST_WAIT_S 30         /* for its bytes, once connected */
#define PATH_MAX_ 4096

/* ---- json-c, loaded when a token response must be read ------------------ */

#define JSON_FUNCS(X)                                                                              \
	X(json_tokener_parse)                                                                      \
	X(json_object_object_get_ex)                                                               \
	X(json_object_get_string)                                                                  \
	X(json_object_get_string_len)                                                              \
	X(json_object_get_int64)                                                                   \
	X(json_object_is_type)                                                                     \
	X(json_object_put)

#define JSON_FIELD(name) __typeof__(name) *name;
static struct {
	JSON_FUNCS(JSON_FIELD)
} js;
#undef JSON_FIELD

static const char *const jsonc_names[] = {
#define FUNC_NAME(name) #name,
	JSON_FUNCS(FUNC_NAME)
#undef FUNC_NAME
};

_Static_assert(sizeof js == sizeof jsonc_names / sizeof jsonc_names[0] * sizeof(void *),
	       "one function pointer per name");

/* 1 when every function is resolved (see dynlib_load). */
static int json_load(void)
{
	static int state;

	return dynlib_load(&state, LIBJSONC_SONAME, jsonc_names, &js,
			   sizeof jsonc_names / sizeof jsonc_names[0]);
}

/* ---- the token file ------------------------------------------------------ */

struct tokens {
	char *refresh;      /* wiped on free */
	char *access;       /* wiped on free */
	long long expires;  /* unix time the access token ends; 0 unknown */
	char *refused;      /* "invalid_grant: ..." once the refresh token was refused */
	int keyring;        /* the tokens are in the keyring; the file holds the rest */
};

/* The keyring entries' type attribute (SPEC 10). */
#define TYPE_REFRESH "oauth2-refresh"
#define TYPE_ACCESS "oauth2-access"

static void tokens_free(struct tokens *t)
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
	char dir[PATH_MAX_];
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
static int tokens_read(const char *path, struct tokens *t, struct perr *e)
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
	char buf[PATH_MAX_];
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
static int tokens_write(const struct account *a, const char *path, struct tokens *t,
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
	char dir[PATH_MAX_], tmp[PATH_MAX_ + 32], *slash, *text;
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

/* ---- encoding helpers ---------------------------------------------------- */

/* Append "&name=value" (or "name=value" first) percent-encoded to a
 * growing buffer. */
struct form {
	char *buf;
	size_t len, cap;
};

static void form_add(struct form *f, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = f->len + strlen(name) + 3 * strlen(value) + 3;

	if (need > f->cap) {
		char *nb = xmalloc(need * 2);

		if (f->buf) {
			memcpy(nb, f->buf, f->len + 1);
			wipe(f->buf, f->cap);
			free(f->buf);
		}
		f->buf = nb;
		f->cap = need * 2;
	}
	f->len += (size_t)snprintf(f->buf + f->len, f->cap - f->len, "%s%s=", f->len ? "&" : "",
				   name);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			f->buf[f->len++] = (char)*p;
		} else {
			f->buf[f->len++] = '%';
			f->buf[f->len++] = hex[*p >> 4];
			f->buf[f->len++] = hex[*p & 15];
		}
	}
	f->buf[f->len] = '\0';
}

static void form_free(struct form *f)
{
	if (f->buf) {
		wipe(f->buf, f->cap);
		free(f->buf);
	}
	memset(f, 0, sizeof *f);
}

/* ---- the token endpoint -------------------------------------------------- */

/* A string member of a JSON object, copied; NULL when absent. */
static char *json_str(json_object *o, const char *key)
{
	json_object *v;
	const char *s;

	if (!js.json_object_object_get_ex(o, key, &v) || !js.json_object_is_type(v, json_type_string))
		return NULL;
	s = js.json_object_get_string(v);
	return s && *s && strlen(s) <= TOKEN_MAX ? xstrdup(s) : NULL;
}

/* Wipe a string member in json-c's own memory before it is freed. */
static void json_wipe(json_object *o, const char *key)
{
	json_object *v;

	if (js.json_object_object_get_ex(o, key, &v) && js.json_object_is_type(v, json_type_string))
		wipe((void *)js.json_object_get_string(v), (size_t)js.json_object_get_string_len(v));
}

enum grant_result { GRANT_OK, GRANT_REFUSED };

/* The error of a refused grant: "invalid_grant: DESCRIPTION" (sanitised,
 * bounded). */
static void grant_error(json_object *o, char *buf, size_t cap)
{
	char *err = o ? json_str(o, "error") : NULL, *desc = o ? json_str(o, "error_description") : NULL;
	char clean[DESC_MAX * 4 + 1], cerr[64 * 4 + 1];

	log_sanitize(cerr, sizeof cerr, err ? err : "refused", err ? strnlen(err, 64) : 7);
	if (desc) {
		log_sanitize(clean, sizeof clean, desc, strnlen(desc, DESC_MAX));
		snprintf(buf, cap, "%s: %s", cerr, clean);
	} else {
		snprintf(buf, cap, "%s", cerr);
	}
	free(err);
	free(desc);
}

/* POST the grant in form; on 200 fill t (access, expires, refresh when
 * given).  -1 with e filled when no answer could be had (temporary);
 * GRANT_REFUSED with why filled on a 4xx. */
static int grant(const struct account *a, const struct form *form, struct tokens *t, char *why,
		 size_t whycap, struct perr *e)
{
	struct http_response r;
	json_object *o = NULL;
	int timeout = a->timeout > 0 ? a->timeout : 30, rc;
	char *s;

	if (!json_load()) {
		perr_set(e, PERR_TEMP, "cannot load " LIBJSONC_SONAME " to read OAuth2 tokens; "
			 "install it (apt-get install libjson-c5)");
		return perr_because(e, PERR_CAUSE_SECRET);
	}
	if (http_post_form(a->oauth2_token_url, a->oauth2_ca_file, form->buf, timeout, &r, e) < 0)
		return -1;
	if (r.status >= 200 && r.status < 300 && r.len)
		o = js.json_tokener_parse(r.body);
	else if (r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429 && r.len)
		o = js.json_tokener_parse(r.body);
	rc = -1;
	if (r.status >= 200 && r.status < 300 && o && (s = json_str(o, "access_token"))) {
		json_object *v;

		wipe_free(t->access);
		t->access = s;
		t->expires = (long long)time(NULL) + 3600;
		if (js.json_object_object_get_ex(o, "expires_in", &v) &&
		    js.json_object_get_int64(v) > 0)
			t->expires = (long long)time(NULL) + js.json_object_get_int64(v);
		if ((s = json_str(o, "refresh_token"))) {
			wipe_free(t->refresh);
			t->refresh = s;
		}
		rc = GRANT_OK;
	} else if (r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429 &&
		   o) {
		grant_error(o, why, whycap);
		rc = GRANT_REFUSED;
	} else {
		perr_set(e, PERR_TEMP, "the OAuth2 token endpoint answered HTTP %ld%s", r.status,
			 r.status >= 200 && r.status < 300 ? " without an access token" : "");
		perr_because(e, PERR_CAUSE_SECRET);
	}
	if (o) {
		json_wipe(o, "access_token");
		json_wipe(o, "refresh_token");
		json_wipe(o, "id_token");
		js.json_object_put(o);
	}
	http_response_free(&r);
	return rc;
}

/* The app's client secret (SPEC 10: the same sources as a password, in
 * the same order): oauth2_client_secret_command; the keyring entry with
 * the password's attributes and type = oauth2-client-secret (skipped
 * quietly when no keyring is reachable); oauth2_client_secret from the
 * owner-only configuration file.  s->value NULL: none (a public client);
 * need: the flow cannot do without one (client credentials with no
 * certificate), and none found is an error. */
#define TYPE_CLIENT_SECRET "oauth2-client-secret"
static int client_secret(const struct account *a, int need, struct secret *s, struct perr *e)
{
	struct perr ke;
	int r;

	memset(s, 0, sizeof *s);
	if (a->oauth2_client_secret_command && *a->oauth2_client_secret_command)
		return secret_command(a, a->oauth2_client_secret_command,
				      "oauth2_client_secret_command", s, e);
	r = a->host && a->user ? secret_keyring_get(a, TYPE_CLIENT_SECRET, s, &ke) : 1;
	if (r == 0)
		return 0;
	if (a->oauth2_client_secret) {
		s->value = xstrdup(a->oauth2_client_secret);
		s->len = strlen(s->value);
		s->source = SECRET_FILE;
		return 0;
	}
	if (!need)
		return 0;
	if (r < 0) {
		perr_set(e, PERR_TEMP, "the client secret is not available: %s (it is looked up "
			 "there; the message can go from the login session, or set "
			 "oauth2_client_secret_command)", ke.text);
		return perr_because(e, PERR_CAUSE_SECRET);
	}
	return perr_set(e, PERR_CONFIG, "account %s has oauth2_flow = client_credentials but no "
			"client secret: set oauth2_client_secret_command, or store it with "
			"secret-tool store --label=postern host %s service smtp user %s type "
			TYPE_CLIENT_SECRET, a->name, a->host, a->user);
}

static int form_client(struct form *f, const struct account *a, struct perr *e)
{
	struct secret cs;

	form_add(f, "client_id", a->oauth2_client_id);
	if (client_secret(a, a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS, &cs, e) < 0)
		return -1;
	if (cs.value)
		form_add(f, "client_secret", cs.value);
	secret_free(&cs);
	return 0;
}

/* Google's service-account assertion from the JSON key file: its
 * client_email (iss), private_key and private_key_id (kid); the mailbox
 * (user) as sub. */
static char *service_assertion(const struct account *a, struct perr *e)
{
	char *text = NULL, *email = NULL, *key = NULL, *kid = NULL, *jwt = NULL;
	size_t len = 0;
	json_object *o;

	if (jwt_read_private(a->oauth2_key_file, "oauth2_key_file", &text, &len, e) < 0)
		return NULL;
	o = js.json_tokener_parse(text);
	if (o) {
		email = json_str(o, "client_email");
		key = json_str(o, "private_key");
		kid = json_str(o, "private_key_id");
		json_wipe(o, "private_key");
		js.json_object_put(o);
	}
	wipe(text, len);
	free(text);
	if (!email || !key)
		perr_set(e, PERR_CONFIG, "oauth2_key_file %s is not a service account's JSON key "
			 "(no client_email or private_key); download a JSON key for the service "
			 "account in the Google Cloud console", a->oauth2_key_file);
	else
		jwt = jwt_service_assertion(email, a->user, a->oauth2_scope, a->oauth2_token_url,
					    kid, key, a->oauth2_key_file, e);
	free(email);
	free(kid);
	wipe_free(key);
	return jwt;
}

/* The grant of an unattended flow (no person, no refresh token):
 * client credentials with a secret or a certificate assertion, or a
 * service account's JWT bearer grant.  As grant(). */
static int app_grant(const struct account *a, struct tokens *t, char *why, size_t whycap,
		     struct perr *e)
{
	struct form f = { 0 };
	char *jwt = NULL;
	int rc;

	if (!json_load()) {
		perr_set(e, PERR_TEMP, "cannot load " LIBJSONC_SONAME " to read OAuth2 tokens; "
			 "install it (apt-get install libjson-c5)");
		return perr_because(e, PERR_CAUSE_SECRET);
	}
	if (a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT) {
		if (!(jwt = service_assertion(a, e)))
			return -1;
		form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
		form_add(&f, "assertion", jwt);
	} else {
		form_add(&f, "grant_type", "client_credentials");
		if (a->oauth2_scope)
			form_add(&f, "scope", a->oauth2_scope);
		if (a->oauth2_key_file && !a->oauth2_client_secret &&
		    !a->oauth2_client_secret_command) {
			if (!(jwt = jwt_client_assertion(a, e))) {
				form_free(&f);
				return -1;
			}
			form_add(&f, "client_id", a->oauth2_client_id);
			form_add(&f, "client_assertion_type",
				 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
			form_add(&f, "client_assertion", jwt);
		} else if (form_client(&f, a, e) < 0) {
			form_free(&f);
			return -1;
		}
	}
	log_event("OAuth2: account %s needs an access token; asking the token endpoint (%s)",
		  a->name, a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT ? "service account"
		  : "client credentials");
	rc = grant(a, &f, t, why, whycap, e);
	form_free(&f);
	wipe_free(jwt);
	return rc;
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
	char lockpath[PATH_MAX_ + 8], why[DESC_MAX * 4 + 300];
	struct form f = { 0 };
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
	form_add(&f, "grant_type", "refresh_token");
	form_add(&f, "refresh_token", t->refresh);
	if (form_client(&f, a, e) < 0) {
		form_free(&f);
		if (lock >= 0)
			close(lock);
		return -1;
	}
	log_event("OAuth2: refreshing the access token of account %s", a->name);
	rc = grant(a, &f, t, why, sizeof why, e);
	form_free(&f);
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

static int unattended(const struct account *a)
{
	return a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS ||
	       a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT;
}

/* An exclusive lock on PATH.lock (its directory made first); -1 when none
 * can be had (the caller goes on without). */
static int lock_tokens(const char *path)
{
	char lockpath[PATH_MAX_ + 8], dir[PATH_MAX_], *slash;
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
static int app_token(const struct account *a, const char *path, struct secret *s,
		     struct perr *e)
{
	char why[DESC_MAX * 4 + 300];
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
	rc = app_grant(a, &t, why, sizeof why, e);
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
	char path[PATH_MAX_];
	struct tokens t;
	int r, rc;

	memset(s, 0, sizeof *s);
	if (oauth2_token_path(a, path, sizeof path, e) < 0)
		return -1;
	if (unattended(a))
		return app_token(a, path, s, e);
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
	char path[PATH_MAX_];
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

/* ---- postern --authorize ---------------------------------------------------- */

struct pkce {
	char verifier[64];   /* 43 chars: base64url of 32 random bytes */
	char challenge[64];  /* base64url(SHA-256(verifier)) */
	char state[32];      /* base64url of 16 random bytes */
};

static int pkce_make(struct pkce *k, struct perr *e)
{
	unsigned char raw[32], md[32];

	if (crypto_random(raw, sizeof raw) < 0)
		return perr_set(e, PERR_OS, "no random bytes for PKCE");
	base64url_encode(raw, sizeof raw, k->verifier);
	if (crypto_sha256(k->verifier, strlen(k->verifier), md) < 0)
		return perr_set(e, PERR_OS, "cannot compute SHA-256 for PKCE");
	base64url_encode(md, sizeof md, k->challenge);
	if (crypto_random(raw, 16) < 0)
		return perr_set(e, PERR_OS, "no random bytes for the state");
	base64url_encode(raw, 16, k->state);
	wipe(raw, sizeof raw);
	return 0;
}

/* 127.0.0.1, port 0: the listening socket and its port. */
static int loopback_listen(int *port, struct perr *e)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		return perr_set(e, PERR_OS, "cannot listen on 127.0.0.1 for the redirect: %s",
				strerror(err));
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static char *auth_url(const struct account *a, const struct pkce *k, const char *redirect)
{
	struct form f = { 0 };
	char *url;
	size_t n;

	form_add(&f, "client_id", a->oauth2_client_id);
	form_add(&f, "redirect_uri", redirect);
	form_add(&f, "response_type", "code");
	if (a->oauth2_scope)
		form_add(&f, "scope", a->oauth2_scope);
	form_add(&f, "state", k->state);
	form_add(&f, "code_challenge", k->challenge);
	form_add(&f, "code_challenge_method", "S256");
	if (a->oauth2 == OAUTH2_GOOGLE) {
		form_add(&f, "access_type", "offline");
		form_add(&f, "prompt", "consent");
	}
	if (a->user && a->oauth2 != OAUTH2_CUSTOM)
		form_add(&f, "login_hint", a->user);
	n = strlen(a->oauth2_auth_url) + f.len + 2;
	url = xmalloc(n);
	snprintf(url, n, "%s%c%s", a->oauth2_auth_url, strchr(a->oauth2_auth_url, '?') ? '&' : '?',
		 f.buf);
	form_free(&f);
	return url;
}

/* $BROWSER URL, in the background; its output is not ours to show.  The
 * URL holds no secret (the PKCE verifier stays here). */
static void open_browser(const char *url)
{
	const char *b = getenv("BROWSER");
	pid_t pid;

	if (!b || !*b)
		return;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		setsid();
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		execl("/bin/sh", "sh", "-c", "exec $BROWSER \"$1\"", "sh", url, (char *)NULL);
		_exit(127);
	}
}

/* The value of name in a query string, decoded, into out; 0 absent. */
static int query_get(const char *q, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);

	while (q && *q) {
		const char *end = q + strcspn(q, "&");

		if ((size_t)(end - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
			size_t o = 0;

			for (const char *p = q + nl + 1; p < end && o + 1 < cap; p++) {
				unsigned v;

				if (*p == '%' && end - p >= 3 && sscanf(p + 1, "%2x", &v) == 1) {
					out[o++] = (char)v;
					p += 2;
				} else {
					out[o++] = *p == '+' ? ' ' : *p;
				}
			}
			out[o] = '\0';
			return 1;
		}
		q = *end ? end + 1 : end;
	}
	return 0;
}

static void respond(int fd, int ok, const char *text)
{
	char page[1024];
	int n = snprintf(page, sizeof page,
			 "HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
			 "<!DOCTYPE html><html><head><title>postern</title></head><body>"
			 "<h1>postern</h1><p>%s</p></body></html>\n",
			 ok ? "200 OK" : "400 Bad Request", text);

	if (n > 0)
		write_full(fd, page, (size_t)n < sizeof page ? (size_t)n : sizeof page - 1);
}

/* Read the request head (up to REQUEST_MAX bytes) within the deadline. */
static int read_request(int fd, char *buf, size_t cap, int64_t deadline)
{
	size_t len = 0;

	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return 0;
	}
	return -1;
}

static int wait_seconds(void)
{
	const char *v = getenv("POSTERN_AUTHORIZE_TIMEOUT");
	long n = v ? strtol(v, NULL, 10) : 0;

	return n > 0 && n < OAUTH2_AUTHORIZE_WAIT_S ? (int)n : OAUTH2_AUTHORIZE_WAIT_S;
}

/* After a person's grant: keep the tokens (the refresh token in the
 * keyring when one is reachable) or say why nothing was stored; t is
 * freed. */
static int store_grant(const struct account *a, const char *path, struct tokens *t, int rc,
		       struct perr *e)
{
	if (rc == GRANT_OK && !t->refresh)
		rc = perr_set(e, PERR_AUTH, "the token endpoint gave no refresh token; nothing "
			      "stored (microsoft: the scope needs offline_access)");
	else if (rc == GRANT_OK)
		rc = (t->keyring = 1, tokens_write(a, path, t, e));
	tokens_free(t);
	return rc;
}

/* Wait for exactly one connection on the listener (then closed: a second
 * request is refused by the kernel), read its request, check the state,
 * answer a page.  The code goes to code. */
static int receive_redirect(int lfd, const struct pkce *k, char *code, size_t cap, struct perr *e)
{
	int wait_s = wait_seconds(), fd, rc;
	int64_t deadline = mono_ms() + (int64_t)wait_s * 1000;
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	char req[REQUEST_MAX], state[128], err[128], *q, *sp;

	do {
		int64_t left = deadline - mono_ms();

		rc = left > 0 ? poll(&p, 1, (int)left) : 0;
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		close(lfd);
		return perr_set(e, PERR_TEMP, "no redirect from the browser within %d s; nothing "
				"stored: run postern --authorize again and finish the sign-in in time",
				wait_s);
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	if (fd < 0)
		return perr_set(e, PERR_OS, "cannot accept the redirect: %s", strerror(errno));
	if (read_request(fd, req, sizeof req, mono_ms() + REQUEST_WAIT_S * 1000) < 0 ||
	    strncmp(req, "GET ", 4) != 0) {
		respond(fd, 0, "Not an authorization redirect.");
		close(fd);
		return perr_set(e, PERR_AUTH, "the request on the redirect address was not an "
				"authorization redirect; nothing stored: run postern --authorize again");
	}
	sp = strchr(req + 4, ' ');
	if (sp)
		*sp = '\0';
	q = strchr(req + 4, '?');
	q = q ? q + 1 : NULL;
	if (!query_get(q, "state", state, sizeof state) || strcmp(state, k->state) != 0) {
		respond(fd, 0, "The state does not match: this redirect was not asked for by this "
			"run of postern. Nothing was stored.");
		close(fd);
		wipe(req, sizeof req);
		return perr_set(e, PERR_AUTH, "the redirect's state does not match the one sent "
				"(a forged or stale redirect); nothing stored: run postern "
				"--authorize again");
	}
	err[0] = '\0';
	if (query_get(q, "error", err, sizeof err) || !query_get(q, "code", code, cap) || !*code) {
		char clean[sizeof err * 4];

		log_sanitize(clean, sizeof clean, err, strlen(err));
		respond(fd, 0, "The provider did not grant access. Nothing was stored.");
		close(fd);
		wipe(req, sizeof req);
		return perr_set(e, PERR_AUTH, "the provider did not grant access (%s); nothing "
				"stored", err[0] ? clean : "no code");
	}
	respond(fd, 1, "Authorized. You can close this window and go back to the terminal.");
	close(fd);
	wipe(req, sizeof req);
	return 0;
}

static int exchange(const struct account *a, const char *code, const char *redirect,
		    const struct pkce *k, const char *path, struct perr *e)
{
	struct tokens t = { 0 };
	struct form f = { 0 };
	char why[DESC_MAX * 4 + 300];
	int rc;

	form_add(&f, "grant_type", "authorization_code");
	form_add(&f, "code", code);
	form_add(&f, "redirect_uri", redirect);
	form_add(&f, "code_verifier", k->verifier);
	rc = form_client(&f, a, e) < 0 ? -1 : grant(a, &f, &t, why, sizeof why, e);
	form_free(&f);
	if (rc == GRANT_REFUSED) {
		tokens_free(&t);
		return perr_set(e, PERR_AUTH, "the token endpoint refused the authorization code "
				"(%s); nothing stored", why);
	}
	return store_grant(a, path, &t, rc, e);
}

/* ---- the device flow (RFC 8628) ------------------------------------------- */

#define DEVICE_SLOW_DOWN_S 5   /* RFC 8628 3.5: slow_down adds 5 s */
#define DEVICE_INTERVAL_S 5    /* when the endpoint names none */

struct device {
	char *device_code;   /* wiped */
	char *user_code;
	char *uri;           /* verification_uri (Google: verification_url) */
	long long expires_in;
	long long interval;
};

static void device_free(struct device *d)
{
	wipe_free(d->device_code);
	free(d->user_code);
	free(d->uri);
	memset(d, 0, sizeof *d);
}

static long long json_int(json_object *o, const char *key, long long dflt)
{
	json_object *v;
	long long n;

	if (!js.json_object_object_get_ex(o, key, &v))
		return dflt;
	n = js.json_object_get_int64(v);
	return n > 0 ? n : dflt;
}

/* POST the device authorization request: the codes and where to enter
 * them. */
static int device_start(const struct account *a, struct device *d, struct perr *e)
{
	struct http_response r;
	struct form f = { 0 };
	json_object *o = NULL;
	int rc = -1;

	memset(d, 0, sizeof *d);
	if (!json_load())
		return perr_set(e, PERR_TEMP, "cannot load " LIBJSONC_SONAME " to read OAuth2 "
				"answers; install it (apt-get install libjson-c5)");
	form_add(&f, "client_id", a->oauth2_client_id);
	if (a->oauth2_scope)
		form_add(&f, "scope", a->oauth2_scope);
	rc = http_post_form(a->oauth2_device_url, a->oauth2_ca_file, f.buf,
			    a->timeout > 0 ? a->timeout : 30, &r, e);
	form_free(&f);
	if (rc < 0)
		return -1;
	rc = -1;
	if (r.len)
		o = js.json_tokener_parse(r.body);
	if (r.status == 200 && o) {
		d->device_code = json_str(o, "device_code");
		d->user_code = json_str(o, "user_code");
		d->uri = json_str(o, "verification_uri");
		if (!d->uri)
			d->uri = json_str(o, "verification_url");
		d->expires_in = json_int(o, "expires_in", 900);
		d->interval = json_int(o, "interval", DEVICE_INTERVAL_S);
	}
	if (d->device_code && d->user_code && d->uri) {
		rc = 0;
	} else if (r.status >= 400 && r.status < 500 && o) {
		char why[DESC_MAX * 4 + 300];

		grant_error(o, why, sizeof why);
		perr_set(e, PERR_AUTH, "the device authorization endpoint refused the request "
			 "(%s); check oauth2_client_id and, for Microsoft, that the app registration "
			 "has \"Allow public client flows\" on", why);
	} else {
		perr_set(e, PERR_TEMP, "the device authorization endpoint answered HTTP %ld "
			 "without a device code", r.status);
	}
	if (o) {
		json_wipe(o, "device_code");
		js.json_object_put(o);
	}
	http_response_free(&r);
	if (rc < 0)
		device_free(d);
	return rc;
}

/* Sleep s seconds, or until deadline (mono_ms) when sooner. */
static void nap(long long s, int64_t deadline)
{
	int64_t until = mono_ms() + s * 1000;

	if (until > deadline)
		until = deadline;
	for (int64_t left; (left = until - mono_ms()) > 0;)
		poll(NULL, 0, (int)left);
}

/* Poll the token endpoint every interval until the person has approved
 * (tokens into t), refused, or the code expired. */
static int device_poll(const struct account *a, struct device *d, struct tokens *t,
		       int64_t deadline, struct perr *e)
{
	char why[DESC_MAX * 4 + 300];
	struct form f = { 0 };
	int rc;

	form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
	form_add(&f, "device_code", d->device_code);
	if (form_client(&f, a, e) < 0) {
		form_free(&f);
		return -1;
	}
	for (;;) {
		nap(d->interval, deadline);
		if (mono_ms() >= deadline) {
			rc = perr_set(e, PERR_TEMP, "the code was not entered in time; nothing "
				      "stored: run postern --authorize=%s again", a->name);
			break;
		}
		rc = grant(a, &f, t, why, sizeof why, e);
		if (rc == GRANT_OK || rc < 0)
			break;
		if (strncmp(why, "authorization_pending", 21) == 0)
			continue;
		if (strncmp(why, "slow_down", 9) == 0) {
			d->interval += DEVICE_SLOW_DOWN_S;
			continue;
		}
		if (strncmp(why, "expired_token", 13) == 0)
			rc = perr_set(e, PERR_TEMP, "the code expired before it was entered (%s); "
				      "nothing stored: run postern --authorize=%s again", why, a->name);
		else if (strncmp(why, "access_denied", 13) == 0)
			rc = perr_set(e, PERR_AUTH, "the sign-in was declined (%s); nothing stored",
				      why);
		else
			rc = perr_set(e, PERR_AUTH, "the token endpoint refused the device code "
				      "(%s); nothing stored", why);
		break;
	}
	form_free(&f);
	return rc;
}

static int device_authorize(const struct account *a, const char *path, FILE *err,
			    struct perr *e)
{
	struct tokens t = { 0 };
	struct device d;
	long long wait_s;
	int rc;

	if (device_start(a, &d, e) < 0)
		return -1;
	wait_s = d.expires_in < wait_seconds() ? d.expires_in : wait_seconds();
	fprintf(err, "postern: to authorize account %s, open\n\n    %s\n\nin a browser on any "
		"device, enter the code\n\n    %s\n\nand sign in as %s.\npostern: waiting up to "
		"%lld s (polling every %lld s)\n", a->name, d.uri, d.user_code, a->user, wait_s,
		d.interval);
	fflush(err);
	rc = device_poll(a, &d, &t, mono_ms() + wait_s * 1000, e);
	device_free(&d);
	return store_grant(a, path, &t, rc, e);
}

/* postern --authorize for an unattended flow: nobody signs in; a token is
 * fetched now, to show that the app's credentials work. */
static int app_authorize(const struct account *a, const char *path, FILE *err, struct perr *e)
{
	struct secret s;
	struct tokens t;
	char when[64];
	time_t x;

	if (tokens_read(path, &t, e) == 0) { /* a fresh one, not the cache */
		t.expires = 0;
		tokens_write(a, path, &t, e);
	}
	tokens_free(&t);
	if (app_token(a, path, &s, e) < 0)
		return -1;
	secret_free(&s);
	if (tokens_read(path, &t, e) != 0)
		return -1;
	x = (time_t)t.expires;
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", localtime(&x));
	tokens_free(&t);
	fprintf(err, "postern: account %s: the token endpoint accepted the app's credentials "
		"(%s); access token cached in %s until %s.\npostern: no sign-in is needed: "
		"postern gets new tokens by itself, from cron too\n", a->name,
		a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT ? "service account" :
		a->oauth2_key_file && !a->oauth2_client_secret && !a->oauth2_client_secret_command
		? "client credentials, certificate" : "client credentials, secret", path, when);
	return 0;
}

/* Where the refresh token is: "the keyring (...)" or "PATH (owner-only
 * file)"; "" when nothing is stored. */
static void store_text(const struct account *a, const char *path, const struct tokens *t,
		       char *buf, size_t cap)
{
	if (t->keyring)
		snprintf(buf, cap, "the keyring (host=%s service=smtp user=%s type=" TYPE_REFRESH
			 "; state in %s)", a->host, a->user, path);
	else
		snprintf(buf, cap, "%s (owner-only file)", path);
}

static void authorized(const struct account *a, const char *path, FILE *err)
{
	char where[PATH_MAX_ + 256];
	struct tokens t;
	struct perr e;

	if (tokens_read(path, &t, &e) != 0)
		return;
	store_text(a, path, &t, where, sizeof where);
	fprintf(err, "postern: account %s authorized; refresh token stored in %s\n", a->name,
		where);
	tokens_free(&t);
}

static const char *const flow_names[] = {
	"auto", "authcode", "device", "client_credentials", "service_account",
};

void oauth2_print_state(const struct account *a, FILE *out)
{
	char path[PATH_MAX_], where[PATH_MAX_ + 256], when[64];
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
	store_text(a, path, &t, where, sizeof where);
	if (unattended(a))
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

int oauth2_authorize(const struct account *a, FILE *err, struct perr *e)
{
	char path[PATH_MAX_], redirect[64], code[2048];
	struct pkce k;
	char *url;
	int lfd, port = 0, rc;

	if (!a->oauth2)
		return perr_set(e, PERR_CONFIG, "account %s has no oauth2 = google | microsoft | "
				"custom; --authorize is for OAuth2 accounts (see smtprc(5))", a->name);
	if (oauth2_token_path(a, path, sizeof path, e) < 0)
		return -1;
	if (unattended(a))
		return app_authorize(a, path, err, e);
	if (a->oauth2_flow == OAUTH2_FLOW_DEVICE) {
		rc = device_authorize(a, path, err, e);
		if (rc == 0)
			authorized(a, path, err);
		return rc;
	}
	if (pkce_make(&k, e) < 0)
		return -1;
	lfd = loopback_listen(&port, e);
	if (lfd < 0)
		return -1;
	snprintf(redirect, sizeof redirect, "http://127.0.0.1:%d/", port);
	url = auth_url(a, &k, redirect);
	fprintf(err, "postern: to authorize account %s, open this address in a browser and "
		"sign in as %s:\n\n%s\n\npostern: waiting up to %d s for the redirect to %s\n",
		a->name, a->user, url, wait_seconds(), redirect);
	fflush(err);
	open_browser(url);
	free(url);
	rc = receive_redirect(lfd, &k, code, sizeof code, e);
	if (rc == 0)
		rc = exchange(a, code, redirect, &k, path, e);
	wipe(code, sizeof code);
	wipe(&k, sizeof k);
	if (rc == 0)
		authorized(a, path, err);
	return rc;
}
