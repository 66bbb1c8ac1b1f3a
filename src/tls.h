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

/* Handshake and verify.  Failures are PERR_TEMP with stage SESSION and a
 * line naming the cause: "certificate has expired on 2024-01-01",
 * "certificate is for mail.other.org, www.other.org, not smtp.example.com",
 * "certificate is not signed by a trusted CA (self-signed?); set tls_ca_file
 * or tls_fingerprint", "fingerprint mismatch: server sha256:..."; a bad
 * local file (ca, cert, key) is PERR_CONFIG. */
int tls_start(struct conn *c, const struct tls_opts *o, struct perr *e);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for the -v transcript and the log;
 * "" when the conn is not TLS. */
const char *tls_describe(const struct conn *c);

/* Free process-wide TLS state (for leak checkers). */
void tls_cleanup(void);

#endif
