/* addr.c — addresses: checking RFC 5321 mailboxes for the envelope, and
 * parsing RFC 5322 address lists (groups, comments, quoted strings,
 * folding) out of headers and command-line arguments.
 *
 * Pure code: no I/O, no allocation.  Every buffer has a fixed size: an
 * addr-spec is at most ADDR_MAX bytes, quoted input in error messages at
 * most QUOTE_MAX. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

/* RFC 5321 4.5.3.1.1 and 4.5.3.1.2. */
#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define LABEL_MAX 63
/* How much of a bad address or list an error message shows. */
#define QUOTE_MAX 100

/* ---- helpers ------------------------------------------------------------ */

/* Copy s into dst for an error message: control characters escaped (\r,
 * \n, \t, \xNN), cut at QUOTE_MAX bytes with "...". */
static void quote(char *dst, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	for (; *p && o + 5 < cap && o < QUOTE_MAX; p++) {
		if (*p == '\r' || *p == '\n' || *p == '\t') {
			dst[o++] = '\\';
			dst[o++] = *p == '\r' ? 'r' : *p == '\n' ? 'n' : 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		} else {
			dst[o++] = (char)*p;
		}
	}
	if (*p && o + 4 <= cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* A character named in an error message: 'x', '\r', '\x01'. */
static void char_name(char *dst, size_t cap, unsigned char c)
{
	char one[2] = { (char)c, '\0' };
	char q[8];

	quote(q, sizeof q, one);
	snprintf(dst, cap, "'%s'", q);
}

/* Length of the valid UTF-8 sequence at p (NUL-terminated), 0 if none. */
static size_t utf8_seq(const unsigned char *p)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	cp = p[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return len;
}

/* RFC 5322 atext, without the 8-bit bytes. */
static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* ---- addr_check: one envelope mailbox ----------------------------------- */

/* Fail with "invalid address "...": <why>; give a plain address ...". */
static int bad(struct perr *e, const char *mailbox, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct perr *e, const char *mailbox, const char *fmt, ...)
{
	char q[QUOTE_MAX * 4 + 8], why[256];
	va_list ap;

	quote(q, sizeof q, mailbox);
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return perr_set(e, PERR_USAGE,
			"invalid address \"%s\": %s; give a plain address like user@example.com", q,
			why);
}

/* Characters refused anywhere, even inside quotes: controls, '<', '>'. */
static int check_chars(const char *mailbox, struct perr *e)
{
	char name[16];

	for (const unsigned char *p = (const unsigned char *)mailbox; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
			char_name(name, sizeof name, *p);
			return bad(e, mailbox, "character %s not allowed", name);
		}
	}
	return 0;
}

/* A dot-string local part s[0..n): atoms of atext (or UTF-8) and dots. */
static int check_dot_string(const char *mailbox, const char *s, size_t n, struct perr *e)
{
	const unsigned char *p = (const unsigned char *)s;
	char name[16];
	size_t i = 0, seq;

	if (n == 0)
		return bad(e, mailbox, "the part before '@' is empty");
	if (p[0] == '.' || p[n - 1] == '.')
		return bad(e, mailbox, "the part before '@' starts or ends with a dot");
	while (i < n) {
		if (p[i] == '.' && p[i + 1] == '.')
			return bad(e, mailbox, "two dots in a row before '@'");
		if (p[i] == '.' || is_atext(p[i])) {
			i++;
		} else if (p[i] >= 0x80 && (seq = utf8_seq(p + i)) > 0 && i + seq <= n) {
			i += seq;
		} else if (p[i] >= 0x80) {
			return bad(e, mailbox, "invalid UTF-8 before '@'");
		} else {
			char_name(name, sizeof name, p[i]);
			return bad(e, mailbox, "character %s not allowed outside quotes", name);
		}
	}
	return 0;
}

/* A quoted-string local part at s (starting with '"'); returns its length
 * including both quotes, or -1. */
static long check_quoted(const char *mailbox, const char *s, struct perr *e)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 1, seq;

	while (p[i] && p[i] != '"') {
		if (p[i] == '\\') {
			if (p[i + 1] < 0x20 || p[i + 1] > 0x7e)
				return bad(e, mailbox, "'\\' at the end of the quoted part");
			i += 2;
		} else if (p[i] >= 0x80) {
			if (!(seq = utf8_seq(p + i)))
				return bad(e, mailbox, "invalid UTF-8 in the quoted part");
			i += seq;
		} else {
			i++;
		}
	}
	if (!p[i])
		return bad(e, mailbox, "the quote is not closed");
	return (long)i + 1;
}

/* An address literal "[1.2.3.4]" or "[IPv6:...]" at d. */
static int check_literal(const char *mailbox, const char *d, struct perr *e)
{
	unsigned char buf[16];
	char ip[64];
	size_t n = strlen(d);

	if (n < 3 || d[n - 1] != ']' || n - 2 >= sizeof ip)
		return bad(e, mailbox, "bad address literal after '@'");
	memcpy(ip, d + 1, n - 2);
	ip[n - 2] = '\0';
	if (strncmp(ip, "IPv6:", 5) == 0 || strncmp(ip, "ipv6:", 5) == 0) {
		if (inet_pton(AF_INET6, ip + 5, buf) == 1)
			return 0;
	} else if (inet_pton(AF_INET, ip, buf) == 1) {
		return 0;
	}
	return bad(e, mailbox, "\"%s\" is not an IPv4 or IPv6:... address literal", d);
}

/* A domain name: labels of letters, digits, '-' (not first or last) or
 * UTF-8, 1..63 bytes each, separated by single dots. */
static int check_domain(const char *mailbox, const char *d, struct perr *e)
{
	const unsigned char *p = (const unsigned char *)d;
	size_t i = 0, label = 0, seq;
	char name[16];

	if (!*d)
		return bad(e, mailbox, "nothing after '@'");
	if (*d == '[')
		return check_literal(mailbox, d, e);
	if (strlen(d) > DOMAIN_MAX)
		return bad(e, mailbox, "the domain is longer than %d bytes", DOMAIN_MAX);
	for (;;) {
		if (p[i] == '.' || !p[i]) {
			if (label == 0)
				return bad(e, mailbox, "empty label in the domain (a dot at "
					   "the start, at the end or twice in a row)");
			if (p[i - 1] == '-' || p[i - label] == '-')
				return bad(e, mailbox, "a domain label starts or ends with '-'");
			if (label > LABEL_MAX)
				return bad(e, mailbox, "a domain label is longer than %d bytes",
					   LABEL_MAX);
			if (!p[i])
				return 0;
			label = 0;
			i++;
		} else if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
			   (p[i] >= '0' && p[i] <= '9') || p[i] == '-') {
			i++;
			label++;
		} else if (p[i] >= 0x80 && (seq = utf8_seq(p + i)) > 0) {
			i += seq;
			label += seq;
		} else if (p[i] >= 0x80) {
			return bad(e, mailbox, "invalid UTF-8 in the domain");
		} else {
			char_name(name, sizeof name, p[i]);
			return bad(e, mailbox, "character %s not allowed in the domain", name);
		}
	}
}

int addr_check(const char *mailbox, int allow_local, struct perr *e)
{
	const char *at;
	size_t llen;
	long q;

	if (!mailbox || !*mailbox)
		return bad(e, "", "the address is empty");
	if (check_chars(mailbox, e) < 0)
		return -1;
	if (strlen(mailbox) > ADDR_MAX)
		return bad(e, mailbox, "longer than %d bytes", ADDR_MAX);
	if (mailbox[0] == '"') {
		if ((q = check_quoted(mailbox, mailbox, e)) < 0)
			return -1;
		at = mailbox + q;
		if (*at && *at != '@')
			return bad(e, mailbox, "'@' must follow the closing quote");
	} else {
		at = strchr(mailbox, '@');
		if (!at)
			at = mailbox + strlen(mailbox);
		if (check_dot_string(mailbox, mailbox, (size_t)(at - mailbox), e) < 0)
			return -1;
	}
	llen = (size_t)(at - mailbox);
	if (llen > LOCAL_MAX)
		return bad(e, mailbox, "the part before '@' is longer than %d bytes", LOCAL_MAX);
	if (!*at) {
		if (allow_local)
			return 0;
		return bad(e, mailbox, "no '@domain'");
	}
	return check_domain(mailbox, at + 1, e);
}

int addr_is_utf8(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

const char *addr_domain(const char *mailbox)
{
	const char *at = strrchr(mailbox, '@');

	return at ? at + 1 : NULL;
}

/* ---- RFC 5322 address lists --------------------------------------------- */

enum tok_type { T_END, T_ATOM, T_QSTR, T_DLIT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char ch;            /* T_SPECIAL: one of < > @ , : ; . */
	const char *p;      /* raw bytes (quotes and brackets included) */
	size_t len;
	int ws_before;      /* whitespace or a comment came before it */
};

struct lexer {
	const char *s;          /* the whole list, for error messages */
	const char *pos;
	const char *comment;    /* the first comment seen since it was reset */
	size_t comment_len;
	struct perr *e;
};

static int lex_fail(struct lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int lex_fail(struct lexer *lx, const char *fmt, ...)
{
	char q[QUOTE_MAX * 4 + 8], why[256];
	va_list ap;

	quote(q, sizeof q, lx->s);
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return perr_set(lx->e, PERR_DATA, "invalid address list \"%s\": %s", q, why);
}

static int wsp_or_end(char c)
{
	return c == ' ' || c == '\t' || c == '\0';
}

/* Length of folding white space at p: WSP, or CR/LF followed by WSP (or by
 * the end of the value).  0 when there is none. */
static size_t fws_len(const char *p)
{
	size_t i = 0;

	for (;;) {
		if (p[i] == ' ' || p[i] == '\t')
			i++;
		else if (p[i] == '\r' && p[i + 1] == '\n' && wsp_or_end(p[i + 2]))
			i += 2;
		else if (p[i] == '\n' && wsp_or_end(p[i + 1]))
			i++;
		else
			return i;
	}
}

/* A delimited run starting at the opening character: a quoted string,
 * domain literal or (nested) comment.  Returns its length including the
 * delimiters, or -1 when unterminated or holding a control character. */
static long delimited(struct lexer *lx, const char *p, char open, char close, const char *what)
{
	size_t i = 1, f;
	int depth = 1;
	char name[16];

	for (;;) {
		unsigned char c = (unsigned char)p[i];

		if (!c)
			return lex_fail(lx, "%s not closed with '%c'", what, close);
		if ((f = fws_len(p + i)) > 0) {
			i += f;
		} else if (c == '\\' && (unsigned char)p[i + 1] >= 0x20 && p[i + 1] != 0x7f) {
			/* quoted-pair: a backslash and a visible character or a
			 * space (never DEL or a control character) */
			i += 2;
		} else if (c < 0x20 || c == 0x7f || c == '\\') {
			char_name(name, sizeof name, c);
			return lex_fail(lx, "character %s not allowed in a %s", name, what);
		} else if (c == (unsigned char)close && --depth == 0) {
			return (long)i + 1;
		} else if (open == '(' && c == '(') {
			depth++;
			i++;
		} else if (open == '[' && c == '[') {
			return lex_fail(lx, "'[' inside a %s", what);
		} else {
			i++;
		}
	}
}

/* Skip white space and comments (remembering the first comment). */
static int skip_cfws(struct lexer *lx, int *skipped)
{
	size_t f;
	long n;

	for (;;) {
		if ((f = fws_len(lx->pos)) > 0) {
			lx->pos += f;
		} else if (*lx->pos == '(') {
			if ((n = delimited(lx, lx->pos, '(', ')', "comment")) < 0)
				return -1;
			if (!lx->comment) {
				lx->comment = lx->pos + 1;
				lx->comment_len = (size_t)n - 2;
			}
			lx->pos += n;
		} else {
			return 0;
		}
		*skipped = 1;
	}
}

static int lex_next(struct lexer *lx, struct tok *t)
{
	const char *p;
	char name[16];
	long n;

	t->ws_before = 0;
	if (skip_cfws(lx, &t->ws_before) < 0)
		return -1;
	p = lx->pos;
	t->p = p;
	t->ch = *p;
	if (!*p) {
		t->type = T_END;
		t->len = 0;
		return 0;
	}
	if (*p == '"' || *p == '[') {
		n = delimited(lx, p, *p, *p == '"' ? '"' : ']',
			      *p == '"' ? "quoted string" : "domain literal");
		if (n < 0)
			return -1;
		t->type = *p == '"' ? T_QSTR : T_DLIT;
		t->len = (size_t)n;
	} else if (strchr("<>@,:;.", *p)) {
		t->type = T_SPECIAL;
		t->len = 1;
	} else if (is_atext((unsigned char)*p) || (unsigned char)*p >= 0x80) {
		t->type = T_ATOM;
		t->len = 0;
		while (is_atext((unsigned char)p[t->len]) || (unsigned char)p[t->len] >= 0x80)
			t->len++;
	} else {
		char_name(name, sizeof name, (unsigned char)*p);
		return lex_fail(lx, "unexpected character %s", name);
	}
	lx->pos += t->len;
	return 0;
}

/* The next token without consuming it. */
static int lex_peek(struct lexer *lx, struct tok *t)
{
	const char *save = lx->pos;
	int r = lex_next(lx, t);

	lx->pos = save;
	return r;
}

static int is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR;
}

static int is_sp(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->ch == c;
}

/* Fail naming what was expected and the token found instead. */
static int unexpected(struct lexer *lx, const struct tok *t, const char *wanted)
{
	char raw[32], q[32 * 4 + 8];
	size_t n = t->len < sizeof raw - 1 ? t->len : sizeof raw - 1;

	if (t->type == T_END)
		return lex_fail(lx, "expected %s but the list ends", wanted);
	memcpy(raw, t->p, n);
	raw[n] = '\0';
	quote(q, sizeof q, raw);
	return lex_fail(lx, "expected %s but found '%s'%s", wanted, q,
			t->ch == ';' ? " (separate addresses with commas)" : "");
}

/* Where parsed addresses go: the caller's callback, or (for
 * addr_parse_mailbox) one address and its display name. */
struct parser {
	struct lexer lx;
	int (*cb)(void *ctx, const char *addr, struct perr *e);
	void *ctx;
	int single;         /* addr_parse_mailbox: store instead of calling cb */
	int count;
	char *addr, *name;
	size_t addrcap, namecap;
};

/* Append raw token bytes to an addr-spec being built (line breaks of
 * folding inside quoted strings dropped); at most ADDR_MAX bytes. */
static int spec_add(struct lexer *lx, char *out, size_t *n, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' || p[i] == '\n')
			continue;
		if (*n >= ADDR_MAX)
			return lex_fail(lx, "an address is longer than %d bytes", ADDR_MAX);
		out[(*n)++] = p[i];
	}
	out[*n] = '\0';
	return 0;
}

/* Read local-part ["@" domain] into out (ADDR_MAX + 1 bytes), dropping
 * comments and white space.  Without '@' it is a bare local name. */
static int read_spec(struct lexer *lx, char *out)
{
	struct tok t;
	size_t n = 0;

	out[0] = '\0';
	for (;;) {
		if (lex_next(lx, &t) < 0)
			return -1;
		if (!is_word(&t))
			return unexpected(lx, &t, n ? "a word after '.'" : "an address");
		if (spec_add(lx, out, &n, t.p, t.len) < 0 || lex_peek(lx, &t) < 0)
			return -1;
		if (!is_sp(&t, '.'))
			break;
		if (lex_next(lx, &t) < 0 || spec_add(lx, out, &n, ".", 1) < 0)
			return -1;
	}
	if (!is_sp(&t, '@'))
		return 0;
	if (lex_next(lx, &t) < 0 || spec_add(lx, out, &n, "@", 1) < 0 || lex_next(lx, &t) < 0)
		return -1;
	if (t.type == T_DLIT)
		return spec_add(lx, out, &n, t.p, t.len);
	for (;;) {
		if (t.type != T_ATOM)
			return unexpected(lx, &t, "a domain after '@'");
		if (spec_add(lx, out, &n, t.p, t.len) < 0 || lex_peek(lx, &t) < 0)
			return -1;
		if (!is_sp(&t, '.'))
			return 0;
		if (lex_next(lx, &t) < 0 || spec_add(lx, out, &n, ".", 1) < 0 ||
		    lex_next(lx, &t) < 0)
			return -1;
	}
}

/* Copy p[0..len) into dst at *o (cap bytes): quoted-pairs unescaped, line
 * breaks dropped; cut silently when full. */
static void name_add(char *dst, size_t cap, size_t *o, const char *p, size_t len)
{
	for (size_t i = 0; i < len && *o + 1 < cap; i++) {
		if (p[i] == '\\' && i + 1 < len)
			i++;
		else if (p[i] == '\r' || p[i] == '\n')
			continue;
		dst[(*o)++] = p[i];
	}
	dst[*o] = '\0';
}

/* The display name: the words of the phrase [from, to) with quotes
 * removed and white space between words reduced to one space. */
static void phrase_name(struct parser *ps, const char *from, const char *to)
{
	struct lexer lx = ps->lx;
	struct tok t;
	size_t o = 0;

	lx.pos = from;
	ps->name[0] = '\0';
	while (lx.pos < to && lex_next(&lx, &t) == 0 && t.type != T_END && t.p < to) {
		if (t.ws_before && o > 0)
			name_add(ps->name, ps->namecap, &o, " ", 1);
		if (t.type == T_QSTR)
			name_add(ps->name, ps->namecap, &o, t.p + 1, t.len - 2);
		else
			name_add(ps->name, ps->namecap, &o, t.p, t.len);
	}
}

/* Hand one addr-spec over; from/to delimit its display name, if any. */
static int deliver(struct parser *ps, const char *addr, const char *from, const char *to)
{
	size_t o = 0, n = strlen(addr);

	if (!ps->single)
		return ps->cb(ps->ctx, addr, ps->lx.e) < 0 ? -1 : 0;
	if (++ps->count > 1 || n >= ps->addrcap)
		return -1;
	memcpy(ps->addr, addr, n + 1);
	if (!ps->name || !ps->namecap)
		return 0;
	ps->name[0] = '\0';
	if (from && from < to)
		phrase_name(ps, from, to);
	else if (ps->lx.comment)
		name_add(ps->name, ps->namecap, &o, ps->lx.comment, ps->lx.comment_len);
	return 0;
}

/* After "phrase <": the addr-spec and '>'. */
static int parse_angle(struct parser *ps, const char *from, const char *to)
{
	char addr[ADDR_MAX + 1];
	struct tok t;

	if (lex_peek(&ps->lx, &t) < 0)
		return -1;
	if (is_sp(&t, '@'))
		return lex_fail(&ps->lx,
				"source routes like <@host:user@domain> are not supported");
	if (is_sp(&t, '>'))
		return lex_fail(&ps->lx, "empty address <>");
	if (read_spec(&ps->lx, addr) < 0 || lex_next(&ps->lx, &t) < 0)
		return -1;
	if (!is_sp(&t, '>'))
		return unexpected(&ps->lx, &t, "'>'");
	return deliver(ps, addr, from, to);
}

/* An addr-spec or a bare local name ("root"), with leniency for the
 * common "user@x <user@x>" (the first taken as a display name). */
static int parse_spec(struct parser *ps)
{
	char addr[ADDR_MAX + 1];
	const char *from = ps->lx.pos;
	struct tok t;

	ps->lx.comment = NULL;
	if (read_spec(&ps->lx, addr) < 0 || lex_peek(&ps->lx, &t) < 0)
		return -1;
	if (is_sp(&t, '<')) {
		lex_next(&ps->lx, &t);
		return parse_angle(ps, from, t.p);
	}
	if (is_word(&t))
		return lex_fail(&ps->lx, "a name without an address; write it as "
					 "Name <user@example.com>");
	return deliver(ps, addr, NULL, NULL);
}

static int parse_address(struct parser *ps, int in_group);

/* After "name:": mailboxes up to ';'. */
static int parse_group(struct parser *ps, int in_group, int words)
{
	struct tok t;

	if (in_group)
		return lex_fail(&ps->lx, "a group inside a group");
	if (words == 0)
		return lex_fail(&ps->lx, "a group needs a name before ':'");
	if (ps->single)
		return lex_fail(&ps->lx, "a group where one mailbox is expected");
	for (;;) {
		if (lex_peek(&ps->lx, &t) < 0)
			return -1;
		if (is_sp(&t, ';') || is_sp(&t, ',')) {
			lex_next(&ps->lx, &t);
			if (t.ch == ';')
				return 0;
			continue;
		}
		if (t.type == T_END)
			return lex_fail(&ps->lx, "a group not closed with ';'");
		if (parse_address(ps, 1) < 0 || lex_peek(&ps->lx, &t) < 0)
			return -1;
		if (t.type == T_END)
			return lex_fail(&ps->lx, "a group not closed with ';'");
		if (!is_sp(&t, ',') && !is_sp(&t, ';'))
			return unexpected(&ps->lx, &t, "',' or ';'");
	}
}

/* One address: a group, "phrase <addr>", an addr-spec or a local name.
 * The phrase is read first; the token after it decides which. */
static int parse_address(struct parser *ps, int in_group)
{
	const char *start = ps->lx.pos;
	struct tok t;
	int words = 0;

	for (;;) {
		if (lex_next(&ps->lx, &t) < 0)
			return -1;
		if (is_word(&t))
			words++;
		else if (!is_sp(&t, '.'))
			break;
	}
	if (is_sp(&t, ':'))
		return parse_group(ps, in_group, words);
	if (is_sp(&t, '<'))
		return parse_angle(ps, start, t.p);
	ps->lx.pos = start;
	return parse_spec(ps);
}

static int parse_list(struct parser *ps)
{
	struct tok t;

	for (;;) {
		if (lex_peek(&ps->lx, &t) < 0)
			return -1;
		if (t.type == T_END)
			return 0;
		if (is_sp(&t, ',')) {
			lex_next(&ps->lx, &t);
			continue;
		}
		if (parse_address(ps, 0) < 0 || lex_next(&ps->lx, &t) < 0)
			return -1;
		if (t.type == T_END)
			return 0;
		if (!is_sp(&t, ','))
			return unexpected(&ps->lx, &t, "',' between addresses");
	}
}

int addr_parse_list(const char *list, int (*cb)(void *ctx, const char *addr, struct perr *e),
		    void *ctx, struct perr *e)
{
	struct parser ps;

	memset(&ps, 0, sizeof ps);
	ps.lx.s = ps.lx.pos = list ? list : "";
	ps.lx.e = e;
	ps.cb = cb;
	ps.ctx = ctx;
	return parse_list(&ps);
}

int addr_parse_mailbox(const char *value, char *name, size_t namecap, char *addr,
		       size_t addrcap)
{
	struct parser ps;
	struct perr e;
	struct tok t;

	if (!addr || addrcap == 0)
		return -1;
	addr[0] = '\0';
	if (name && namecap)
		name[0] = '\0';
	memset(&ps, 0, sizeof ps);
	ps.lx.s = ps.lx.pos = value ? value : "";
	ps.lx.e = &e;
	ps.single = 1;
	ps.addr = addr;
	ps.addrcap = addrcap;
	ps.name = name;
	ps.namecap = namecap;
	if (parse_address(&ps, 0) < 0 || lex_next(&ps.lx, &t) < 0 || t.type != T_END ||
	    ps.count != 1) {
		addr[0] = '\0';
		if (name && namecap)
			name[0] = '\0';
		return -1;
	}
	return 0;
}
