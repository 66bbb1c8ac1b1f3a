/* http.h — one HTTPS POST, for the OAuth2 token endpoint.
 *
 * libcurl does the work (the only file that includes its headers); the
 * library is loaded with dlopen the first time a request is made, so a
 * run that needs no token fetch never loads it or its dependencies.
 * Certificates are checked as for SMTP: against the system store, or
 * ca_file when given; the host name is checked; TLS >= 1.2; HTTPS only;
 * redirects are not followed.  https_proxy / HTTPS_PROXY and no_proxy are
 * honoured (libcurl reads them itself).  Nothing of the request body or
 * the response reaches -v output, a log or an error text. */
#ifndef POSTERN_HTTP_H
#define POSTERN_HTTP_H

#include <stddef.h>

#include "errors.h"

/* Longest response body kept; a token response is a few KB. */
#define HTTP_BODY_MAX (64 * 1024)

struct http_response {
	long status;  /* HTTP status code */
	char *body;   /* NUL-terminated; wiped and freed by http_response_free */
	size_t len;
};

/* POST body (application/x-www-form-urlencoded, not copied) to url,
 * asking for JSON.  0 when a response came (any status: the caller
 * judges it); -1 when none did — libcurl cannot be loaded, the name does
 * not resolve, the connection or TLS fails, the response is over
 * HTTP_BODY_MAX, or timeout_s passes: PERR_TEMP with cause
 * PERR_CAUSE_SECRET, the text naming the host and the cause (never the
 * body). */
int http_post_form(const char *url, const char *ca_file, const char *body, int timeout_s,
		   struct http_response *r, struct perr *e);

void http_response_free(struct http_response *r);

#endif
