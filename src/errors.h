/* errors.h — the one error type every module fills.
 *
 * Functions that can fail return 0 on success or -1 after filling a
 * caller-owned struct perr.  The kind maps one-to-one to a sysexits code
 * (the table lives in main.c); the text is one line that names the cause
 * and, where there is one, the fix.  Filling an error never allocates.
 */
#ifndef POSTERN_ERRORS_H
#define POSTERN_ERRORS_H

#include <stdbool.h>

enum perr_kind {
	PERR_NONE = 0,
	PERR_USAGE,       /* 64 EX_USAGE: bad command line */
	PERR_DATA,        /* 65 EX_DATAERR: bad message bytes or headers */
	PERR_NOUSER,      /* 67 EX_NOUSER: recipient refused / unknown local name */
	PERR_UNAVAILABLE, /* 69 EX_UNAVAILABLE: server refused permanently (5xx) */
	PERR_SOFTWARE,    /* 70 EX_SOFTWARE: internal error */
	PERR_OS,          /* 71 EX_OSERR: fork, pipe, memory */
	PERR_IO,          /* 74 EX_IOERR: reading or writing a local file */
	PERR_TEMP,        /* 75 EX_TEMPFAIL: network, TLS set-up, 4xx, timeout */
	PERR_PROTOCOL,    /* 76 EX_PROTOCOL: malformed or over-long reply */
	PERR_AUTH,        /* 77 EX_NOPERM: authentication refused */
	PERR_CONFIG,      /* 78 EX_CONFIG: configuration error */
};

/* What failed, set where the failure happens.  Together with the kind it
 * is the one input of perr_verdict() and perr_ends_message(): no module
 * decides by matching error text.  NONE is a local failure (options,
 * configuration, files, memory) and never ends a queued message. */
enum perr_cause {
	PERR_CAUSE_NONE = 0,
	/* the account: nothing was said to a server */
	PERR_CAUSE_SECRET,           /* the secret cannot be had now (keyring, command) */
	PERR_CAUSE_NO_USER,          /* a login is needed and the account has no user */
	PERR_CAUSE_RESOLVE,          /* the host name did not resolve */
	/* the connection could not be made: the next port is tried */
	PERR_CAUSE_CONNECT_REFUSED,
	PERR_CAUSE_CONNECT_TIMEOUT,
	PERR_CAUSE_CONNECT_UNREACHABLE,
	/* the session */
	PERR_CAUSE_TLS,              /* handshake, certificate, TLS version */
	PERR_CAUSE_TLS_PLAIN,        /* the handshake met plain text: the server
					does not speak TLS there */
	PERR_CAUSE_CERT_UNTRUSTED,   /* the certificate's issuer is not trusted */
	PERR_CAUSE_CERT_NAME,        /* the certificate is for other names */
	PERR_CAUSE_CERT_EXPIRED,     /* it (or one in its chain) has expired */
	PERR_CAUSE_CERT_NOTYET,      /* it is not valid yet (this clock?) */
	PERR_CAUSE_CERT_PIN,         /* it is not the one tls_fingerprint names */
	PERR_CAUSE_CLIENT_CERT,      /* the server wants a client certificate */
	PERR_CAUSE_GREETING,         /* the greeting: 4xx/5xx, silence, not SMTP */
	PERR_CAUSE_EHLO,             /* EHLO/HELO refused */
	PERR_CAUSE_STARTTLS,         /* STARTTLS refused */
	PERR_CAUSE_NO_STARTTLS,      /* STARTTLS not offered */
	PERR_CAUSE_AUTH,             /* AUTH refused (PERR_AUTH) or failed */
	PERR_CAUSE_CLEARTEXT,        /* postern will not log in unencrypted */
	PERR_CAUSE_NO_AUTH,          /* the server offers no AUTH */
	PERR_CAUSE_MECH,             /* no offered mechanism can be used */
	PERR_CAUSE_LOST,             /* connection lost or timed out mid-session */
	PERR_CAUSE_PROTOCOL,         /* a reply that makes no sense */
	/* the message itself: a permanent one ends it (perr_ends_message) */
	PERR_CAUSE_SENDER,           /* the reply to its MAIL FROM */
	PERR_CAUSE_RCPT,             /* the replies to its RCPT TOs */
	PERR_CAUSE_DATA,             /* the reply to its DATA */
	PERR_CAUSE_CONTENT,          /* the reply to its end of data (or a BDAT) */
	PERR_CAUSE_MESSAGE,          /* it cannot be sent to this server as it is
					(over the announced SIZE, needs SMTPUTF8) */
	PERR_CAUSE_COUNT
};

#define PERR_TEXT_MAX 1024

struct perr {
	enum perr_kind kind;
	enum perr_cause cause;
	bool timed_out;     /* a deadline passed (connect, a reply) */
	bool token_refused; /* the server refused an OAuth2 access token with a
			       334 error challenge ({"status":"401"}): a new
			       token may be accepted (submit.c retries once) */
	int code;           /* SMTP reply code, 0 if none */
	char enhanced[16];  /* enhanced status code "5.7.8", "" if none */
	char text[PERR_TEXT_MAX];
};

/* Reset to "no error". */
void perr_clear(struct perr *e);

/* Fill e (kind, printf-style text; code/enhanced cleared).  Returns -1 so
 * callers can write `return perr_set(e, PERR_CONFIG, "...")`.  A NULL e is
 * allowed and ignored. */
int perr_set(struct perr *e, enum perr_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Same, with the SMTP reply code and enhanced code recorded. */
int perr_smtp(struct perr *e, enum perr_kind kind, int code, const char *enhanced,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Prepend "prefix: " to the existing text (e.g. "smtp.example.com:587"). */
void perr_prefix(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append text (e.g. "; try port = 465"). */
void perr_append(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record what failed; returns -1 like perr_set.  NULL e is ignored.
 * perr_set and perr_smtp leave the cause alone; perr_clear resets it. */
int perr_because(struct perr *e, enum perr_cause cause);

/* The one classification of a failure (SPEC 6):
 *   TEMPORARY    a later attempt may cure it: queue (or exit 75)
 *   CREDENTIALS  the secret was refused: queue and hold the account
 *                (or exit 77); never retried automatically
 *   PERMANENT    trying again the same way cannot help */
enum perr_verdict { PERR_TEMPORARY, PERR_CREDENTIALS, PERR_PERMANENT };
enum perr_verdict perr_verdict(const struct perr *e);

/* True only for the message's own permanent refusal (5xx to its MAIL,
 * to all its RCPTs, to its DATA or its end of data, or a server limit
 * it breaks): the one thing besides queue_lifetime that ends a queued
 * message.  A permanent failure of the session or the account (greeting,
 * EHLO, TLS, no usable AUTH, protocol error, configuration) is not. */
bool perr_ends_message(const struct perr *e);

/* The cause is a TCP connection that could not be made (the next port of
 * the account's list is tried). */
bool perr_is_connect(const struct perr *e);

/* A short name of the cause ("rcpt", "tls"), for logs and tests. */
const char *perr_cause_name(enum perr_cause cause);

#endif
