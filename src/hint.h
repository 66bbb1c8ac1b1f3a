/* hint.h — the fix a person needs for a failure: chosen from the failure's
 * typed cause, the server's reply code and enhanced status code (parsed
 * as class.subject.detail), the provider behind the server (one table:
 * host-name suffixes, greeting and reply marks, provider-only status
 * codes) and the account; never from matching the words of the error.
 * Every fix names the configuration file the account was read from.
 * Knows the account; never argv, exit codes or the network. */
#ifndef POSTERN_HINT_H
#define POSTERN_HINT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "errors.h"

/* An enhanced status code (RFC 3463): "5.7.139" -> {5, 7, 139}. */
struct hint_status {
	int cls;      /* 2, 4 or 5; 0: none */
	int subject;  /* 0..999 */
	int detail;   /* 0..999 */
};

/* Parse class.subject.detail (class 2, 4 or 5; subject and detail one to
 * three digits; nothing else).  Returns 0, or -1 with *st zeroed. */
int hint_parse_status(const char *s, struct hint_status *st);

enum hint_provider { HINT_PROVIDER_OTHER = 0, HINT_PROVIDER_MICROSOFT, HINT_PROVIDER_GOOGLE };

/* The provider behind a server: by its host name's suffix, by a mark in
 * its greeting or in the reply's text, or by a status code only that
 * provider sends.  Any argument may be NULL. */
enum hint_provider hint_provider_of(const char *host, const char *greeting, const char *text,
				    const struct hint_status *st);

/* What the fix is chosen from besides the failure itself. */
struct hint_in {
	const struct account *a;   /* the account tried (required) */
	unsigned port;             /* the port of the attempt; 0: unknown */
	const char *config_file;   /* the file read, as messages show it;
				      NULL: a->config_file */
	const char *greeting;      /* the server's greeting, one line; NULL: none */
	bool probing;              /* the line is --probe's own: no fix says
				      "run postern --probe" */
};

/* The fix for e, as "; FIX" written into buf (NUL-terminated, cut at
 * cap), or NULL (buf untouched) when postern knows none. */
const char *hint_for(const struct perr *e, const struct hint_in *in, char *buf, size_t cap);

/* Append the fix to e->text.  The fix always fits: the server's text
 * before it is shortened (ending "...") when both do not. */
void hint_append(struct perr *e, const struct hint_in *in);

/* hint_append for the account's own configuration file. */
void hint_advise(struct perr *e, const struct account *a, unsigned port);

/* The same, knowing the server's greeting (or NULL). */
void hint_advise_greeted(struct perr *e, const struct account *a, unsigned port,
			 const char *greeting);

/* hint_advise_greeted for a line --probe prints (probing set). */
void hint_advise_probed(struct perr *e, const struct account *a, unsigned port,
			const char *greeting);

#endif
