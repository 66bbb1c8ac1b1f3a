/* http.c — HTTPS POST through libcurl, loaded with dlopen (the only file
 * that includes curl's headers).  See http.h. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

/* plain prototypes: the functions are called through pointers */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "http.h"
#include "log.h"
#include "util.h"

/* Debian's libcurl4 (the OpenSSL flavour, as postern's TLS). */
#define LIBCURL_SONAME "libcurl.so.4"

#define CURL_FUNCS(X)                                                                              \
	X(curl_easy_init)                                                                          \
	X(curl_easy_setopt)                                                                        \
	X(curl_easy_perform)                                                                       \
	X(curl_easy_getinfo)                                                                       \
	X(curl_easy_cleanup)                                                                       \
	X(curl_easy_strerror)                                                                      \
	X(curl_slist_append)                                                                       \
	X(curl_slist_free_all)

#define CURL_FIELD(name) __typeof__(name) *name;
static struct {
	CURL_FUNCS(CURL_FIELD)
} lib;
#undef CURL_FIELD

static const char *const curl_names[] = {
#define FUNC_NAME(name) #name,
	CURL_FUNCS(FUNC_NAME)
#undef FUNC_NAME
};

_Static_assert(sizeof lib == sizeof curl_names / sizeof curl_names[0] * sizeof(void *),
	       "one function pointer per name");

/* 1 when every function is resolved (see dynlib_load). */
static int lib_load(void)
{
	static int state;

	return dynlib_load(&state, LIBCURL_SONAME, curl_names, &lib,
			   sizeof curl_names / sizeof curl_names[0]);
}

struct sink {
	char *buf;
	size_t len, cap;
	int over; /* more than HTTP_BODY_MAX came */
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *user)
{
	struct sink *s = user;
	size_t n = size * nmemb;

	if (s->len + n > HTTP_BODY_MAX) {
		s->over = 1;
		return 0; /* ends the transfer with CURLE_WRITE_ERROR */
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		while (cap < s->len + n + 1)
			cap *= 2;
		nb = xmalloc(cap);
		if (s->buf) {
			memcpy(nb, s->buf, s->len);
			wipe(s->buf, s->cap);
			free(s->buf);
		}
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/* The host part of url, for messages ("login.example.com"). */
static void url_host(const char *url, char *out, size_t cap)
{
	const char *h = strstr(url, "://"), *end;

	h = h ? h + 3 : url;
	end = h + strcspn(h, "/?#");
	snprintf(out, cap, "%.*s", (int)(end - h), h);
}

static void setup(CURL *c, const char *url, const char *ca_file, const char *body, int timeout_s,
		  struct curl_slist *hdrs, struct sink *s, char *errbuf)
{
	lib.curl_easy_setopt(c, CURLOPT_URL, url);
	lib.curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	lib.curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	lib.curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_s * 1000L);
	lib.curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	lib.curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	lib.curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca_file)
		lib.curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	lib.curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	lib.curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	lib.curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	lib.curl_easy_setopt(c, CURLOPT_USERAGENT, "postern/" PACKAGE_VERSION);
	lib.curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	lib.curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	lib.curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

int http_post_form(const char *url, const char *ca_file, const char *body, int timeout_s,
		   struct http_response *r, struct perr *e)
{
	char host[256], errbuf[CURL_ERROR_SIZE], clean[CURL_ERROR_SIZE * 4];
	struct curl_slist *hdrs = NULL;
	struct sink s = { 0 };
	CURLcode rc;
	CURL *c;

	memset(r, 0, sizeof *r);
	url_host(url, host, sizeof host);
	if (!lib_load()) {
		perr_set(e, PERR_TEMP, "cannot load " LIBCURL_SONAME " to reach the OAuth2 token "
			 "endpoint %s; install it (apt-get install libcurl4)", host);
		return perr_because(e, PERR_CAUSE_SECRET);
	}
	c = lib.curl_easy_init();
	if (!c)
		return perr_set(e, PERR_OS, "cannot start an HTTPS request (libcurl)");
	hdrs = lib.curl_slist_append(hdrs, "Accept: application/json");
	errbuf[0] = '\0';
	setup(c, url, ca_file, body, timeout_s, hdrs, &s, errbuf);
	log_event("OAuth2: POST to the token endpoint %s", host);
	rc = lib.curl_easy_perform(c);
	if (rc == CURLE_OK) {
		lib.curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		r->body = s.buf ? s.buf : xstrdup("");
		r->len = s.len;
		s.buf = NULL;
		log_event("OAuth2: HTTP status %ld from %s", r->status, host);
	} else {
		const char *why = s.over ? "the response is too long" : errbuf[0] ? errbuf
				  : lib.curl_easy_strerror(rc);
		log_sanitize(clean, sizeof clean, why, strlen(why));
		perr_set(e, PERR_TEMP, "the OAuth2 token endpoint %s cannot be reached (%s)",
			 host, clean);
		if (rc == CURLE_OPERATION_TIMEDOUT)
			e->timed_out = true;
		perr_because(e, PERR_CAUSE_SECRET);
	}
	if (s.buf) {
		wipe(s.buf, s.cap);
		free(s.buf);
	}
	lib.curl_slist_free_all(hdrs);
	lib.curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

void http_response_free(struct http_response *r)
{
	if (!r)
		return;
	if (r->body) {
		wipe(r->body, r->len);
		free(r->body);
	}
	memset(r, 0, sizeof *r);
}
