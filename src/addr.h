/* addr.h — addresses: RFC 5321 paths (the envelope) and RFC 5322 address
 * lists (headers, command-line recipients).
 *
 * Everything here is pure: no I/O, no allocation beyond the callback's. */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stddef.h>

#include "errors.h"

/* Longest path RFC 5321 4.5.3.1.3 allows (256 with the brackets). */
#define ADDR_MAX 254

/* Check a mailbox "local@domain" (no angle brackets) for use in MAIL FROM
 * or RCPT TO: dot-string or quoted-string local part, domain name or
 * address literal; no control characters, no spaces outside quotes, no
 * '<' '>' or CR/LF anywhere; at most ADDR_MAX bytes.  A local name
 * without '@' is accepted when allow_local is set (aliases resolve it).
 * UTF-8 (bytes >= 0x80) is accepted; addr_is_utf8 tells (SMTPUTF8).
 * Failure: PERR_USAGE (kind chosen by the caller may be changed) with a
 * text like "invalid address \"a@b>x\": '>' is not allowed". */
int addr_check(const char *mailbox, int allow_local, struct perr *e);

/* True when s has a byte >= 0x80. */
int addr_is_utf8(const char *s);

/* Parse an RFC 5322 address list: "a@b, Joe <c@d>, \"Doe, J\" <e@f>
 * (comment), undisclosed-recipients:;, grp: x@y, z@w;" — calling cb with
 * each addr-spec (NUL-terminated, comments and display names removed,
 * quoted local parts kept quoted).  Folded input (CRLF/LF + WSP) is
 * accepted.  A callback returning -1 stops the parse (its error kept).
 * Malformed input: PERR_DATA naming the problem. */
int addr_parse_list(const char *list, int (*cb)(void *ctx, const char *addr, struct perr *e),
		    void *ctx, struct perr *e);

/* Extract the display name and the address of a single mailbox header
 * value such as "Joe Doe <joe@x>" or "root (Cron Daemon)" or "joe@x".
 * name/addr get NUL-terminated copies (name may be empty; for
 * "root (Cron Daemon)" the comment is the name).  -1 if not one mailbox. */
int addr_parse_mailbox(const char *value, char *name, size_t namecap, char *addr,
		       size_t addrcap);

/* The domain part of a mailbox (after the last '@'), or NULL. */
const char *addr_domain(const char *mailbox);

#endif
