/* oauth2_authorize.c — `postern --authorize`: a person's grant by the
 * authorization code flow (PKCE S256, the browser's redirect to a
 * one-shot loopback listener) or the device code flow (RFC 8628: a code
 * to enter, the token endpoint polled), stored with the refresh token in
 * the keyring when one is reachable; for the unattended flows (client
 * credentials, service account) a first token fetched to show that the
 * app's credentials work.  Requests go through oauth2_grant.c, tokens are
 * stored by oauth2.c.  See oauth2.h. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "crypto.h"
#include "log.h"
#include "oauth2.h"
#include "oauth2_int.h"
#include "util.h"

#define REQUEST_MAX 8192          /* the redirect request's head */
#define REQUEST_WAIT_S 30         /* for its bytes, once connected */

/* ---- what every flow shares ------------------------------------------------ */

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

static void authorized(const struct account *a, const char *path, FILE *err)
{
	char where[OAUTH2_PATH_MAX + 256];
	struct tokens t;
	struct perr e;

	if (tokens_read(path, &t, &e) != 0)
		return;
	tokens_where(a, path, &t, where, sizeof where);
	fprintf(err, "postern: account %s authorized; refresh token stored in %s\n", a->name,
		where);
	tokens_free(&t);
}

/* ---- authorization code + PKCE, loopback redirect (RFC 7636, RFC 8252) ---- */

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
	struct grant_form f = { 0 };
	char *url;
	size_t n;

	grant_form_add(&f, "client_id", a->oauth2_client_id);
	grant_form_add(&f, "redirect_uri", redirect);
	grant_form_add(&f, "response_type", "code");
	if (a->oauth2_scope)
		grant_form_add(&f, "scope", a->oauth2_scope);
	grant_form_add(&f, "state", k->state);
	grant_form_add(&f, "code_challenge", k->challenge);
	grant_form_add(&f, "code_challenge_method", "S256");
	if (a->oauth2 == OAUTH2_GOOGLE) {
		grant_form_add(&f, "access_type", "offline");
		grant_form_add(&f, "prompt", "consent");
	}
	if (a->user && a->oauth2 != OAUTH2_CUSTOM)
		grant_form_add(&f, "login_hint", a->user);
	n = strlen(a->oauth2_auth_url) + f.len + 2;
	url = xmalloc(n);
	snprintf(url, n, "%s%c%s", a->oauth2_auth_url, strchr(a->oauth2_auth_url, '?') ? '&' : '?',
		 f.buf);
	grant_form_free(&f);
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
	struct grant_form f = { 0 };
	char why[GRANT_WHY_MAX];
	int rc;

	grant_form_add(&f, "grant_type", "authorization_code");
	grant_form_add(&f, "code", code);
	grant_form_add(&f, "redirect_uri", redirect);
	grant_form_add(&f, "code_verifier", k->verifier);
	rc = grant_client(&f, a, e) < 0 ? -1 : grant_post(a, &f, &t, why, sizeof why, e);
	grant_form_free(&f);
	if (rc == GRANT_REFUSED) {
		tokens_free(&t);
		return perr_set(e, PERR_AUTH, "the token endpoint refused the authorization code "
				"(%s); nothing stored", why);
	}
	return store_grant(a, path, &t, rc, e);
}

/* ---- the device flow (RFC 8628) ------------------------------------------- */

#define DEVICE_SLOW_DOWN_S 5   /* RFC 8628 3.5: slow_down adds 5 s */

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
static int device_poll(const struct account *a, struct grant_device *d, struct tokens *t,
		       int64_t deadline, struct perr *e)
{
	char why[GRANT_WHY_MAX];
	struct grant_form f = { 0 };
	int rc;

	grant_form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
	grant_form_add(&f, "device_code", d->device_code);
	if (grant_client(&f, a, e) < 0) {
		grant_form_free(&f);
		return -1;
	}
	for (;;) {
		nap(d->interval, deadline);
		if (mono_ms() >= deadline) {
			rc = perr_set(e, PERR_TEMP, "the code was not entered in time; nothing "
				      "stored: run postern --authorize=%s again", a->name);
			break;
		}
		rc = grant_post(a, &f, t, why, sizeof why, e);
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
	grant_form_free(&f);
	return rc;
}

static int device_authorize(const struct account *a, const char *path, FILE *err,
			    struct perr *e)
{
	struct tokens t = { 0 };
	struct grant_device d;
	long long wait_s;
	int rc;

	if (grant_device_start(a, &d, e) < 0)
		return -1;
	wait_s = d.expires_in < wait_seconds() ? d.expires_in : wait_seconds();
	fprintf(err, "postern: to authorize account %s, open\n\n    %s\n\nin a browser on any "
		"device, enter the code\n\n    %s\n\nand sign in as %s.\npostern: waiting up to "
		"%lld s (polling every %lld s)\n", a->name, d.uri, d.user_code, a->user, wait_s,
		d.interval);
	fflush(err);
	rc = device_poll(a, &d, &t, mono_ms() + wait_s * 1000, e);
	grant_device_free(&d);
	return store_grant(a, path, &t, rc, e);
}

/* ---- the unattended flows ------------------------------------------------ */

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
	if (oauth2_app_token(a, path, &s, e) < 0)
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

/* ---- postern --authorize ---------------------------------------------------- */

int oauth2_authorize(const struct account *a, FILE *err, struct perr *e)
{
	char path[OAUTH2_PATH_MAX], redirect[64], code[2048];
	struct pkce k;
	char *url;
	int lfd, port = 0, rc;

	if (!a->oauth2)
		return perr_set(e, PERR_CONFIG, "account %s has no oauth2 = google | microsoft | "
				"custom; --authorize is for OAuth2 accounts (see smtprc(5))", a->name);
	if (oauth2_token_path(a, path, sizeof path, e) < 0)
		return -1;
	if (oauth2_unattended(a))
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
