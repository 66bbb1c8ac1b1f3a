/* tls.c — TLS on a connection; the only file that includes OpenSSL.
 *
 * Owns: the process-wide SSL_CTX (cached while the options stay the same),
 * CA loading (tls_ca_file, or the system's hashed certificate directory,
 * looked up lazily), the client certificate, SNI and the host-name check,
 * the fingerprint pin, the non-blocking handshake bounded by the conn's
 * deadline, verification errors that name their cause, and the TLS ops
 * installed on the conn.
 *
 * Verification: the verify callback records every problem and lets the
 * handshake finish, so that the error can name the certificate's dates and
 * names; tls_start then refuses the connection before anything is sent if
 * any problem was recorded or OpenSSL's verify result is not OK.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define FP_LEN 32 /* SHA-256 */

/* Verification problems, in the order they are reported. */
enum {
	VE_UNTRUSTED = 1u << 0,
	VE_EXPIRED = 1u << 1,
	VE_NOTYET = 1u << 2,
	VE_HOST = 1u << 3,
	VE_OTHER = 1u << 4,
};

struct tls_layer {
	SSL *ssl;
	int broken;           /* fatal error seen: no SSL_shutdown */
	unsigned verr;        /* VE_* seen by the verify callback */
	int other_err;        /* first X509_V_ERR_* not in the classes above */
	int date_depth;       /* chain depth of the expired/not-yet-valid cert */
	char date[16];        /* its notAfter or notBefore, YYYY-MM-DD */
	char desc[96];        /* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
};

static SSL_CTX *g_ctx;
static char *g_ctx_key; /* the options g_ctx was made for */
static BIO_METHOD *g_bio_method; /* the socket BIO, writing without SIGPIPE */

/* ---- small helpers ------------------------------------------------------ */

static const char *ssl_reason(void)
{
	unsigned long err = ERR_peek_last_error();
	const char *r = err ? ERR_reason_error_string(err) : NULL;

	return r ? r : "unknown error";
}

static int tls_fail(struct perr *e, enum perr_kind kind)
{
	if (e) {
		e->kind = kind;
		e->cause = PERR_CAUSE_TLS;
	}
	ERR_clear_error();
	return -1;
}

static void asn1_date(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;

	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, cap, "%Y-%m-%d", &tm);
	else
		str_copy(buf, "an unknown date", cap);
}

static int is_ip_literal(const char *host)
{
	unsigned char tmp[16];

	return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

/* The leaf certificate's SHA-256 as 64 lower-case hex digits. */
static int leaf_fingerprint(SSL *ssl, char out[2 * FP_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	X509 *cert = SSL_get0_peer_certificate(ssl);

	if (!cert || !X509_digest(cert, EVP_sha256(), md, &len) || len != FP_LEN)
		return -1;
	hex_encode(md, len, out);
	return 0;
}

/* "sha256:AB:CD..." (prefix optional, colons and case ignored) -> 64
 * lower-case hex digits. */
static int parse_fingerprint(const char *s, char out[2 * FP_LEN + 1], struct perr *e)
{
	size_t n = 0;
	const char *p = s;

	if (strncasecmp(p, "sha256:", 7) == 0)
		p += 7;
	for (; *p; p++) {
		if (*p == ':' || *p == ' ')
			continue;
		if (!strchr("0123456789abcdefABCDEF", *p) || n >= 2 * FP_LEN)
			break;
		out[n++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	}
	out[n] = '\0';
	if (*p || n != 2 * FP_LEN) {
		perr_set(e, PERR_CONFIG,
			 "tls_fingerprint must be sha256: followed by 64 hex digits "
			 "(colons allowed), e.g. the output of "
			 "openssl x509 -noout -fingerprint -sha256");
		return perr_because(e, PERR_CAUSE_TLS);
	}
	return 0;
}

/* ---- a socket BIO that never raises SIGPIPE ----------------------------- */

/* OpenSSL's socket BIO writes with write(2): a server that has closed the
 * connection would kill postern with SIGPIPE.  This BIO is the same but
 * writes with send(MSG_NOSIGNAL), so the failure comes back as EPIPE. */
static int nosig_write(BIO *b, const char *buf, int n)
{
	int fd = -1, r;

	BIO_get_fd(b, &fd);
	errno = 0;
	r = (int)send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	BIO_clear_retry_flags(b);
	if (r <= 0 && BIO_sock_should_retry(r))
		BIO_set_retry_write(b);
	return r;
}

static BIO *socket_bio(int fd)
{
	const BIO_METHOD *sock = BIO_s_socket();
	BIO *b;

	if (!g_bio_method) {
		g_bio_method = BIO_meth_new(BIO_TYPE_SOCKET, "postern socket");
		if (!g_bio_method)
			return NULL;
		BIO_meth_set_write(g_bio_method, nosig_write);
		BIO_meth_set_read(g_bio_method, BIO_meth_get_read(sock));
		BIO_meth_set_puts(g_bio_method, BIO_meth_get_puts(sock));
		BIO_meth_set_ctrl(g_bio_method, BIO_meth_get_ctrl(sock));
		BIO_meth_set_create(g_bio_method, BIO_meth_get_create(sock));
		BIO_meth_set_destroy(g_bio_method, BIO_meth_get_destroy(sock));
	}
	b = BIO_new(g_bio_method);
	if (b)
		BIO_set_fd(b, fd, BIO_NOCLOSE);
	return b;
}

/* ---- the context -------------------------------------------------------- */

/* A PEM file the configuration names, read through the descriptor
 * open_regular gives: a FIFO or a device is refused at once and never
 * reaches OpenSSL.  NULL with e filled (PERR_CONFIG naming key and path). */
static BIO *pem_open(const char *path, const char *key, struct perr *e)
{
	int fd = open_regular(path, O_RDONLY, 0, key, e);
	BIO *b;

	if (fd < 0)
		return NULL;
	b = BIO_new_fd(fd, BIO_CLOSE);
	if (!b) {
		close(fd);
		perr_set(e, PERR_OS, "cannot read %s %s: %s", key, path, ssl_reason());
	}
	return b;
}

/* The end of a PEM file shows as "no start line": not an error. */
static int pem_clean_end(void)
{
	unsigned long err = ERR_peek_last_error();

	if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		return 1;
	}
	return err == 0;
}

/* Every certificate (and CRL) of tls_ca_file into the context's store, as
 * SSL_CTX_load_verify_file would, but from an opened regular file. */
static int load_ca_file(SSL_CTX *ctx, const char *ca_file, struct perr *e)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) *infos;
	BIO *b = pem_open(ca_file, "tls_ca_file", e);
	int n = 0;

	if (!b)
		return tls_fail(e, e ? e->kind : PERR_CONFIG);
	infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);

		n += xi->x509 && X509_STORE_add_cert(store, xi->x509) == 1;
		n += xi->crl && X509_STORE_add_crl(store, xi->crl) == 1;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (n == 0) {
		perr_set(e, PERR_CONFIG, "tls_ca_file %s holds no usable PEM certificate (%s)",
			 ca_file, ssl_reason());
		return tls_fail(e, PERR_CONFIG);
	}
	ERR_clear_error();
	return 0;
}

static int load_cas(SSL_CTX *ctx, const char *ca_file, struct perr *e)
{
	const char *dir, *file;

	if (ca_file)
		return load_ca_file(ctx, ca_file, e);
	/* The system store as a hashed directory: issuers are read lazily
	 * when a chain needs them, instead of parsing the whole bundle at
	 * start-up (SSL_CTX_set_default_verify_paths costs ~20 ms). */
	dir = getenv(X509_get_default_cert_dir_env());
	SSL_CTX_load_verify_dir(ctx, dir && *dir ? dir : X509_get_default_cert_dir());
	file = getenv(X509_get_default_cert_file_env());
	if (file && *file)
		SSL_CTX_load_verify_file(ctx, file);
	ERR_clear_error();
	return 0;
}

/* The client certificate and the chain after it, as
 * SSL_CTX_use_certificate_chain_file would, from an opened regular file. */
static int load_cert_chain(SSL_CTX *ctx, const char *path, struct perr *e)
{
	BIO *b = pem_open(path, "tls_cert_file", e);
	X509 *x, *ca;
	int ok;

	if (!b)
		return -1;
	x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
	ok = x && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
	X509_free(x);
	while (ok && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			ok = 0;
		}
	}
	BIO_free(b);
	if (!ok || !pem_clean_end())
		return perr_set(e, PERR_CONFIG, "cannot load tls_cert_file %s: %s", path,
				ssl_reason());
	return 0;
}

/* The private key (tls_key_file, or in tls_cert_file), from an opened
 * regular file; an encrypted key asks through the context's password
 * callback, as SSL_CTX_use_PrivateKey_file would. */
static int load_key(SSL_CTX *ctx, const char *path, const char *key, struct perr *e)
{
	BIO *b = pem_open(path, key, e);
	EVP_PKEY *pk;
	int ok;

	if (!b)
		return -1;
	pk = PEM_read_bio_PrivateKey(b, NULL, SSL_CTX_get_default_passwd_cb(ctx),
				     SSL_CTX_get_default_passwd_cb_userdata(ctx));
	BIO_free(b);
	ok = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1;
	EVP_PKEY_free(pk);
	if (!ok)
		return perr_set(e, PERR_CONFIG, "cannot load the private key from %s %s: %s", key,
				path, ssl_reason());
	return 0;
}

static int load_client_cert(SSL_CTX *ctx, const struct tls_opts *o, struct perr *e)
{
	const char *key = o->key_file ? o->key_file : o->cert_file;

	if (!o->cert_file)
		return 0;
	if (load_cert_chain(ctx, o->cert_file, e) < 0 ||
	    load_key(ctx, key, o->key_file ? "tls_key_file" : "tls_cert_file", e) < 0)
		return tls_fail(e, e ? e->kind : PERR_CONFIG);
	if (SSL_CTX_check_private_key(ctx) != 1) {
		perr_set(e, PERR_CONFIG, "the key in %s does not belong to the certificate in %s",
			 key, o->cert_file);
		return tls_fail(e, PERR_CONFIG);
	}
	return 0;
}

static void ctx_reset(void);

static char *ctx_key(const struct tls_opts *o)
{
	const char *ca = o->ca_file ? o->ca_file : "", *cert = o->cert_file ? o->cert_file : "";
	const char *key = o->key_file ? o->key_file : "";
	size_t n = strlen(ca) + strlen(cert) + strlen(key) + 16;
	char *k = xmalloc(n);

	snprintf(k, n, "%d\n%s\n%s\n%s", o->min_version, ca, cert, key);
	return k;
}

static SSL_CTX *get_ctx(const struct tls_opts *o, struct perr *e)
{
	char *key = ctx_key(o);
	SSL_CTX *ctx;

	if (g_ctx && strcmp(key, g_ctx_key) == 0) {
		free(key);
		return g_ctx;
	}
	ctx_reset();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		free(key);
		perr_set(e, PERR_OS, "cannot create a TLS context: %s", ssl_reason());
		tls_fail(e, PERR_OS);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, o->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (load_cas(ctx, o->ca_file, e) < 0 || load_client_cert(ctx, o, e) < 0) {
		SSL_CTX_free(ctx);
		free(key);
		return NULL;
	}
	g_ctx = ctx;
	g_ctx_key = key;
	return ctx;
}

/* Forget the cached context (SSL_CTX is reference counted: connections
 * still using it keep it alive). */
static void ctx_reset(void)
{
	SSL_CTX_free(g_ctx);
	g_ctx = NULL;
	free(g_ctx_key);
	g_ctx_key = NULL;
}

void tls_cleanup(void)
{
	ctx_reset();
	BIO_meth_free(g_bio_method);
	g_bio_method = NULL;
}

/* ---- verification ------------------------------------------------------- */

static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_layer *l = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(x);
	int err = X509_STORE_CTX_get_error(x);

	if (ok || !l)
		return ok;
	switch (err) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		l->verr |= VE_UNTRUSTED;
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		if (!(l->verr & (VE_EXPIRED | VE_NOTYET))) {
			int exp = err == X509_V_ERR_CERT_HAS_EXPIRED;

			l->verr |= exp ? VE_EXPIRED : VE_NOTYET;
			l->date_depth = X509_STORE_CTX_get_error_depth(x);
			asn1_date(cert ? (exp ? X509_get0_notAfter(cert) : X509_get0_notBefore(cert))
				       : NULL,
				  l->date, sizeof l->date);
		}
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		l->verr |= VE_HOST;
		break;
	default:
		if (!(l->verr & VE_OTHER))
			l->other_err = err;
		l->verr |= VE_OTHER;
		break;
	}
	return 1; /* finish the handshake; tls_start refuses afterwards */
}

/* Append a sanitised name to a ", "-separated list. */
static void add_name(char *buf, size_t cap, const unsigned char *s, size_t n)
{
	size_t len = strlen(buf);

	if (len + 4 >= cap)
		return;
	if (len) {
		memcpy(buf + len, ", ", 3);
		len += 2;
	}
	log_sanitize(buf + len, cap - len, (const char *)s, n);
}

/* The names a certificate is for: DNS and IP subjectAltNames, else CN. */
static void cert_names(X509 *cert, char *buf, size_t cap)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int i, n = sans ? sk_GENERAL_NAME_num(sans) : 0;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		char ip[64];

		if (g->type == GEN_DNS) {
			add_name(buf, cap, ASN1_STRING_get0_data(g->d.dNSName),
				 (size_t)ASN1_STRING_length(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			int len = ASN1_STRING_length(g->d.iPAddress);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

			if (af && inet_ntop(af, ASN1_STRING_get0_data(g->d.iPAddress), ip, sizeof ip))
				add_name(buf, cap, (const unsigned char *)ip, strlen(ip));
		}
	}
	GENERAL_NAMES_free(sans);
	if (!buf[0]) {
		char cn[256];
		int len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
						    sizeof cn);

		if (len > 0)
			add_name(buf, cap, (unsigned char *)cn, (size_t)len);
		else
			str_copy(buf, "no name at all", cap);
	}
}

static void issuer_name(X509 *cert, char *buf, size_t cap)
{
	char raw[256];
	X509_NAME *n = X509_get_issuer_name(cert);
	int len = X509_NAME_get_text_by_NID(n, NID_commonName, raw, sizeof raw);

	if (len <= 0)
		len = X509_NAME_get_text_by_NID(n, NID_organizationName, raw, sizeof raw);
	if (len <= 0)
		str_copy(buf, "unnamed", cap);
	else
		log_sanitize(buf, cap, raw, (size_t)len);
}

/* Fill e with the most useful verification problem: the facts in its
 * text, the kind of problem in its cause (hint.c says what to change). */
static int verify_error(struct conn *c, struct tls_layer *l, const struct tls_opts *o,
			struct perr *e)
{
	X509 *cert = SSL_get0_peer_certificate(l->ssl);
	char names[512], iss[128], fp[2 * FP_LEN + 1];
	const char *whose = l->date_depth > 0 ? "an issuing certificate in the chain" : "certificate";
	enum perr_cause cause = PERR_CAUSE_TLS;

	if (!cert) {
		perr_set(e, PERR_TEMP, "%s: the server sent no certificate", c->peer);
	} else if (l->verr & VE_UNTRUSTED) {
		issuer_name(cert, iss, sizeof iss);
		if (leaf_fingerprint(l->ssl, fp) < 0)
			str_copy(fp, "?", sizeof fp);
		perr_set(e, PERR_TEMP,
			 "%s: certificate is not signed by a trusted CA (issuer: %s%s); its "
			 "fingerprint is sha256:%s", c->peer, iss,
			 X509_check_issued(cert, cert) == X509_V_OK ? ", self-signed" : "", fp);
		cause = PERR_CAUSE_CERT_UNTRUSTED;
	} else if (l->verr & VE_EXPIRED) {
		perr_set(e, PERR_TEMP, "%s: %s has expired on %s", c->peer, whose, l->date);
		cause = PERR_CAUSE_CERT_EXPIRED;
	} else if (l->verr & VE_NOTYET) {
		perr_set(e, PERR_TEMP, "%s: %s is not valid until %s", c->peer, whose, l->date);
		cause = PERR_CAUSE_CERT_NOTYET;
	} else if (l->verr & VE_HOST) {
		cert_names(cert, names, sizeof names);
		perr_set(e, PERR_TEMP, "%s: certificate is for %s, not %s", c->peer, names, o->host);
		cause = PERR_CAUSE_CERT_NAME;
	} else {
		long r = l->verr ? l->other_err : SSL_get_verify_result(l->ssl);

		perr_set(e, PERR_TEMP, "%s: certificate verification failed: %s", c->peer,
			 X509_verify_cert_error_string(r));
	}
	tls_fail(e, PERR_TEMP);
	return perr_because(e, cause);
}

static int check_peer(struct conn *c, struct tls_layer *l, const struct tls_opts *o,
		      struct perr *e)
{
	char want[2 * FP_LEN + 1], got[2 * FP_LEN + 1], iss[128], until[16];
	X509 *cert = SSL_get0_peer_certificate(l->ssl);

	if (o->fingerprint) {
		if (parse_fingerprint(o->fingerprint, want, e) < 0)
			return -1;
		if (leaf_fingerprint(l->ssl, got) < 0) {
			perr_set(e, PERR_TEMP, "%s: the server sent no certificate", c->peer);
			return tls_fail(e, PERR_TEMP);
		}
		if (strcmp(want, got) != 0) {
			perr_set(e, PERR_TEMP, "%s: certificate fingerprint mismatch: the server's is "
				 "sha256:%s, tls_fingerprint is sha256:%s", c->peer, got, want);
			tls_fail(e, PERR_TEMP);
			return perr_because(e, PERR_CAUSE_CERT_PIN);
		}
		log_event("%s, certificate matches tls_fingerprint sha256:%s", l->desc, got);
		return 0;
	}
	if (!cert || l->verr || SSL_get_verify_result(l->ssl) != X509_V_OK)
		return verify_error(c, l, o, e);
	issuer_name(cert, iss, sizeof iss);
	asn1_date(X509_get0_notAfter(cert), until, sizeof until);
	log_event("%s, certificate verified for %s (issuer %s, expires %s)", l->desc, o->host,
		  iss, until);
	return 0;
}

/* ---- the ops ------------------------------------------------------------ */

static ssize_t io_result(struct conn *c, struct tls_layer *l, int r, const char *what,
			 struct perr *e)
{
	unsigned long err;

	(void)c;
	switch (SSL_get_error(l->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return CONN_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return CONN_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		l->broken = 1;
		if (errno == 0 || errno == EPIPE || errno == ECONNRESET) {
			ERR_clear_error();
			if (*what == 'r')
				return 0; /* end of stream without close_notify */
			perr_set(e, PERR_TEMP, "connection closed by server");
			return CONN_ERROR;
		}
		perr_set(e, PERR_TEMP, "TLS %s failed: %s", what, strerror(errno));
		ERR_clear_error();
		return CONN_ERROR;
	default:
		l->broken = 1;
		err = ERR_peek_last_error();
		if (ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING && *what == 'r') {
			ERR_clear_error();
			return 0;
		}
		if (ERR_GET_REASON(err) == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED) {
			perr_set(e, PERR_TEMP, "the server requires a client certificate");
			perr_because(e, PERR_CAUSE_CLIENT_CERT); /* kept by smtp_io_error */
		} else
			perr_set(e, PERR_TEMP, "TLS %s failed: %s", what, ssl_reason());
		ERR_clear_error();
		return CONN_ERROR;
	}
}

static ssize_t tls_read(struct conn *c, void *buf, size_t n, struct perr *e)
{
	struct tls_layer *l = c->layer;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(l->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	return r > 0 ? r : io_result(c, l, r, "read", e);
}

static ssize_t tls_write(struct conn *c, const void *buf, size_t n, struct perr *e)
{
	struct tls_layer *l = c->layer;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(l->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
	return r > 0 ? r : io_result(c, l, r, "write", e);
}

static void tls_close(struct conn *c)
{
	struct tls_layer *l = c->layer;

	if (!l)
		return;
	if (!l->broken && c->fd >= 0)
		SSL_shutdown(l->ssl); /* sends close_notify if it can; never waits */
	SSL_free(l->ssl);
	free(l);
	c->layer = NULL;
	ERR_clear_error();
}

static const struct conn_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.close = tls_close,
};

/* ---- the handshake ------------------------------------------------------ */

static int handshake_error(struct conn *c, struct tls_layer *l, int r, const struct tls_opts *o,
			   struct perr *e)
{
	int kind = SSL_get_error(l->ssl, r);
	unsigned long err = ERR_peek_last_error();
	int reason = ERR_GET_REASON(err);

	l->broken = 1;
	if (kind == SSL_ERROR_ZERO_RETURN || (kind == SSL_ERROR_SYSCALL && !err) ||
	    reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: the server closed the "
			 "connection", c->peer);
	else if (kind == SSL_ERROR_SYSCALL)
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: %s", c->peer,
			 strerror(errno));
	else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG) {
		/* Whether this followed STARTTLS decides the fix (hint.c). */
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: the server does not speak "
			 "TLS here (plain SMTP?)", c->peer);
		tls_fail(e, PERR_TEMP);
		return perr_because(e, PERR_CAUSE_TLS_PLAIN);
	}
	else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
		 reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: the server does not support "
			 "TLS %s or newer", c->peer, o->min_version == 13 ? "1.3" : "1.2");
	else if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED) {
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: the server requires a client "
			 "certificate", c->peer);
		tls_fail(e, PERR_TEMP);
		return perr_because(e, PERR_CAUSE_CLIENT_CERT);
	} else
		perr_set(e, PERR_TEMP, "TLS handshake with %s failed: %s", c->peer, ssl_reason());
	return tls_fail(e, PERR_TEMP);
}

static int handshake(struct conn *c, struct tls_layer *l, const struct tls_opts *o,
		     struct perr *e)
{
	for (;;) {
		int r, kind;

		ERR_clear_error();
		errno = 0;
		r = SSL_connect(l->ssl);
		if (r == 1)
			return 0;
		kind = SSL_get_error(l->ssl, r);
		if (kind != SSL_ERROR_WANT_READ && kind != SSL_ERROR_WANT_WRITE)
			return handshake_error(c, l, r, o, e);
		if (conn_wait(c, kind == SSL_ERROR_WANT_READ ? CONN_WANT_READ : CONN_WANT_WRITE,
			      e) < 0) {
			if (e && e->kind == PERR_TEMP && strncmp(e->text, "timed out", 9) == 0)
				perr_set(e, PERR_TEMP, "TLS handshake with %s timed out after %d s",
					 c->peer, (c->timeout_ms + 999) / 1000);
			l->broken = 1;
			return tls_fail(e, PERR_TEMP);
		}
	}
}

static int setup_ssl(struct conn *c, struct tls_layer *l, SSL_CTX *ctx, const struct tls_opts *o,
		     struct perr *e)
{
	BIO *bio;

	l->ssl = SSL_new(ctx);
	bio = l->ssl ? socket_bio(c->fd) : NULL;
	if (!bio) {
		perr_set(e, PERR_OS, "cannot set up TLS: %s", ssl_reason());
		return tls_fail(e, PERR_OS);
	}
	SSL_set_bio(l->ssl, bio, bio);
	SSL_set_app_data(l->ssl, l);
	if (o->fingerprint) {
		SSL_set_verify(l->ssl, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_set_verify(l->ssl, SSL_VERIFY_PEER, verify_cb);
		if (is_ip_literal(o->host)) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), o->host))
				goto fail;
		} else if (!SSL_set1_host(l->ssl, o->host)) {
			goto fail;
		}
	}
	if (!is_ip_literal(o->host) && !SSL_set_tlsext_host_name(l->ssl, o->host))
		goto fail;
	return 0;
fail:
	perr_set(e, PERR_CONFIG, "cannot use host name \"%s\" for TLS: %s", o->host, ssl_reason());
	return tls_fail(e, PERR_CONFIG);
}

/* The part tls_start and tls_start_probe share: a layer with a finished
 * handshake (not yet checked), or NULL with e filled. */
static struct tls_layer *begin(struct conn *c, const struct tls_opts *o, struct perr *e)
{
	struct tls_layer *l;
	SSL_CTX *ctx;

	if (c->fd < 0) {
		perr_set(e, PERR_TEMP, "not connected");
		tls_fail(e, PERR_TEMP);
		return NULL;
	}
	ctx = get_ctx(o, e);
	if (!ctx)
		return NULL;
	l = xcalloc(1, sizeof *l);
	if (setup_ssl(c, l, ctx, o, e) < 0 || handshake(c, l, o, e) < 0) {
		SSL_free(l->ssl);
		free(l);
		return NULL;
	}
	snprintf(l->desc, sizeof l->desc, "%s %s", SSL_get_version(l->ssl),
		 SSL_get_cipher_name(l->ssl));
	return l;
}

int tls_start(struct conn *c, const struct tls_opts *o, struct perr *e)
{
	struct tls_layer *l = begin(c, o, e);

	if (!l)
		return -1;
	if (check_peer(c, l, o, e) < 0) {
		SSL_free(l->ssl);
		free(l);
		return -1;
	}
	c->ops = &tls_ops;
	c->layer = l;
	return 0;
}

const char *tls_describe(const struct conn *c)
{
	const struct tls_layer *l = c->layer;

	return c->ops == &tls_ops && l ? l->desc : "";
}

/* ---- probe mode (--probe) ----------------------------------------------- */

/* A certificate name (subject or issuer) as one sanitised RFC 2253 line. */
static void name_line(X509_NAME *n, char *buf, size_t cap)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long len;

	buf[0] = '\0';
	if (!b)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
		len = BIO_get_mem_data(b, &p);
		if (p && len > 0)
			log_sanitize(buf, cap, p, (size_t)len);
	}
	BIO_free(b);
}

static void probe_cert(struct tls_layer *l, const struct tls_opts *o, struct tls_peer_info *in)
{
	X509 *cert = SSL_get0_peer_certificate(l->ssl);
	int days = 0, secs = 0, m;
	char fp[2 * FP_LEN + 1];

	if (!cert)
		return;
	name_line(X509_get_subject_name(cert), in->subject, sizeof in->subject);
	name_line(X509_get_issuer_name(cert), in->issuer, sizeof in->issuer);
	cert_names(cert, in->names, sizeof in->names);
	asn1_date(X509_get0_notAfter(cert), in->not_after, sizeof in->not_after);
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)))
		in->days_left = days - (days <= 0 && secs < 0 ? 1 : 0);
	if (is_ip_literal(o->host))
		m = X509_check_ip_asc(cert, o->host, 0);
	else
		m = X509_check_host(cert, o->host, 0, 0, NULL);
	in->host_match = m == 1;
	if (leaf_fingerprint(l->ssl, fp) == 0)
		snprintf(in->fingerprint, sizeof in->fingerprint, "sha256:%s", fp);
}

int tls_start_probe(struct conn *c, const struct tls_opts *o, struct tls_peer_info *info,
		    struct perr *e)
{
	struct tls_layer *l;
	struct perr verr;

	memset(info, 0, sizeof *info);
	l = begin(c, o, e);
	if (!l)
		return -1;
	str_copy(info->version, SSL_get_version(l->ssl), sizeof info->version);
	str_copy(info->cipher, SSL_get_cipher_name(l->ssl), sizeof info->cipher);
	probe_cert(l, o, info);
	perr_clear(&verr);
	info->verified = check_peer(c, l, o, &verr) == 0;
	if (!info->verified) {
		str_copy(info->verify_error, verr.text, sizeof info->verify_error);
		info->verify_cause = verr.cause;
	}
	ERR_clear_error();
	c->ops = &tls_ops;
	c->layer = l;
	return 0;
}
