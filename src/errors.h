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

/* Where a network failure happened: submit.c tries the next port only for
 * PERR_STAGE_CONNECT (refused, timed out, unreachable). */
enum perr_stage {
	PERR_STAGE_NONE = 0,
	PERR_STAGE_CONNECT,  /* TCP connection could not be made */
	PERR_STAGE_SESSION,  /* anything after the TCP connection was made */
};

#define PERR_TEXT_MAX 1024

struct perr {
	enum perr_kind kind;
	enum perr_stage stage;
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

/* True for failures that a later attempt may cure (queue, or exit 75). */
bool perr_is_temporary(const struct perr *e);

#endif
