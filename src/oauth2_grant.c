/* oauth2_grant.c — the OAuth2 endpoints' requests and answers: form
 * encoding, the token endpoint's grants (a code, a refresh token, a device
 * code, the app's own credentials: client secret, certificate assertion,
 * service-account JWT), the client authentication they carry, and the
 * device authorization request.  Token responses are read with json-c,
 * loaded with dlopen (the only file that includes its headers); HTTPS
 * goes through http.c.  Nothing here stores a token: see oauth2.c.  See
 * oauth2_int.h. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "http.h"
#include "jwt.h"
#include "log.h"
#include "oauth2_int.h"
#include "util.h"

#define LIBJSONC_SONAME "libjson-c.so.5"
#define TOKEN_MAX SECRET_MAX      /* longest token kept */

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

/* ---- encoding helpers ---------------------------------------------------- */

void grant_form_add(struct grant_form *f, const char *name, const char *value)
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

void grant_form_free(struct grant_form *f)
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

/* The error of a refused grant: "invalid_grant: DESCRIPTION" (sanitised,
 * bounded). */
static void grant_error(json_object *o, char *buf, size_t cap)
{
	char *err = o ? json_str(o, "error") : NULL, *desc = o ? json_str(o, "error_description") : NULL;
	char clean[GRANT_DESC_MAX * 4 + 1], cerr[64 * 4 + 1];

	log_sanitize(cerr, sizeof cerr, err ? err : "refused", err ? strnlen(err, 64) : 7);
	if (desc) {
		log_sanitize(clean, sizeof clean, desc, strnlen(desc, GRANT_DESC_MAX));
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
int grant_post(const struct account *a, const struct grant_form *form, struct tokens *t,
	       char *why, size_t whycap, struct perr *e)
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

int grant_client(struct grant_form *f, const struct account *a, struct perr *e)
{
	struct secret cs;

	grant_form_add(f, "client_id", a->oauth2_client_id);
	if (client_secret(a, a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS, &cs, e) < 0)
		return -1;
	if (cs.value)
		grant_form_add(f, "client_secret", cs.value);
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
 * service account's JWT bearer grant.  As grant_post(). */
int grant_app(const struct account *a, struct tokens *t, char *why, size_t whycap,
	      struct perr *e)
{
	struct grant_form f = { 0 };
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
		grant_form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
		grant_form_add(&f, "assertion", jwt);
	} else {
		grant_form_add(&f, "grant_type", "client_credentials");
		if (a->oauth2_scope)
			grant_form_add(&f, "scope", a->oauth2_scope);
		if (a->oauth2_key_file && !a->oauth2_client_secret &&
		    !a->oauth2_client_secret_command) {
			if (!(jwt = jwt_client_assertion(a, e))) {
				grant_form_free(&f);
				return -1;
			}
			grant_form_add(&f, "client_id", a->oauth2_client_id);
			grant_form_add(&f, "client_assertion_type",
				 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
			grant_form_add(&f, "client_assertion", jwt);
		} else if (grant_client(&f, a, e) < 0) {
			grant_form_free(&f);
			return -1;
		}
	}
	log_event("OAuth2: account %s needs an access token; asking the token endpoint (%s)",
		  a->name, a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT ? "service account"
		  : "client credentials");
	rc = grant_post(a, &f, t, why, whycap, e);
	grant_form_free(&f);
	wipe_free(jwt);
	return rc;
}

/* ---- the device authorization request (RFC 8628) --------------------------- */

#define DEVICE_INTERVAL_S 5    /* when the endpoint names none */

void grant_device_free(struct grant_device *d)
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
int grant_device_start(const struct account *a, struct grant_device *d, struct perr *e)
{
	struct http_response r;
	struct grant_form f = { 0 };
	json_object *o = NULL;
	int rc = -1;

	memset(d, 0, sizeof *d);
	if (!json_load())
		return perr_set(e, PERR_TEMP, "cannot load " LIBJSONC_SONAME " to read OAuth2 "
				"answers; install it (apt-get install libjson-c5)");
	grant_form_add(&f, "client_id", a->oauth2_client_id);
	if (a->oauth2_scope)
		grant_form_add(&f, "scope", a->oauth2_scope);
	rc = http_post_form(a->oauth2_device_url, a->oauth2_ca_file, f.buf,
			    a->timeout > 0 ? a->timeout : 30, &r, e);
	grant_form_free(&f);
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
		char why[GRANT_WHY_MAX];

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
		grant_device_free(d);
	return rc;
}
