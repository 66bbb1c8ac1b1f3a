/* tls.h — TLS on a connection.  The only module that includes OpenSSL.
 *
 * tls_start performs the client handshake on an already connected conn
 * (after STARTTLS's 220, or at once for implicit TLS), bounded by the
 * conn's deadline, verifies the server and installs the TLS ops on the
 * conn, so smtp.c never asks whether TLS is on. */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include "conn.h"
#include "errors.h"

struct tls_opts {
	const char *host;         /* name to verify and send as SNI */
	const char *ca_file;      /* PEM CAs; NULL: system store */
	const char *fingerprint;  /* "sha256:HEX" (colons allowed); replaces CA checks */
	const char *cert_file;    /* client certificate, PEM; may be NULL */
	const char *key_file;     /* its key; NULL: in cert_file */
	int min_version;          /* 12 or 13 */
};

/* Handshake and verify.  Failures are PERR_TEMP with a line stating the
 * facts ("certificate has expired on 2024-01-01", "certificate is for
 * mail.other.org, www.other.org, not smtp.example.com", "certificate is not
 * signed by a trusted CA (...); its fingerprint is sha256:...",
 * "fingerprint mismatch: ...") and the kind of problem in the cause
 * (PERR_CAUSE_CERT_*, PERR_CAUSE_CLIENT_CERT, PERR_CAUSE_TLS_PLAIN, else
 * PERR_CAUSE_TLS), from which hint.c chooses the fix; a bad local file
 * (ca, cert, key) is PERR_CONFIG. */
int tls_start(struct conn *c, const struct tls_opts *o, struct perr *e);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the -v transcript and the log;
 * "" when the conn is not TLS. */
const char *tls_describe(const struct conn *c);

/* What tls_start_probe saw (for --probe).  Every text is sanitised. */
struct tls_peer_info {
	char version[16];        /* "TLSv1.3" */
	char cipher[64];         /* "TLS_AES_256_GCM_SHA384" */
	char subject[256];       /* "CN=smtp.example.com" (RFC 2253 order) */
	char issuer[256];
	char names[512];         /* DNS and IP subjectAltNames, else the CN */
	char not_after[16];      /* YYYY-MM-DD */
	long days_left;          /* negative once expired */
	int host_match;          /* 1: the certificate is for o->host */
	int verified;            /* 1: tls_start would accept this server */
	char verify_error[PERR_TEXT_MAX]; /* why not (tls_start's line), else "" */
	enum perr_cause verify_cause; /* and its cause (tls_start's) */
	char fingerprint[72];    /* "sha256:" and 64 hex digits */
};

/* Probe mode: the same handshake as tls_start, but verification problems
 * are recorded in info (verified = 0, verify_error) instead of refusing,
 * and the TLS ops are installed either way, so the caller can look at the
 * server's capabilities.  Callers must not send secrets when !verified.
 * Returns -1 (e filled as by tls_start) only when no TLS session exists. */
int tls_start_probe(struct conn *c, const struct tls_opts *o, struct tls_peer_info *info,
		    struct perr *e);

/* Free process-wide TLS state (for leak checkers). */
void tls_cleanup(void);

#endif
