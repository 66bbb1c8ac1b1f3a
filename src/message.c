/* message.c — the message a caller hands postern: reading standard input
 * to its end (line endings normalised to CRLF by body.c as each read
 * arrives, then the header block in memory and the body in an unlinked
 * temporary file), the header scan for -t, the header policy of SPEC
 * section 4 (Bcc removal, From/Date/Message-ID fill-in, from_header =
 * force) and the stream of the final message.  Every later step sees the
 * same CRLF lines, and memory does not grow with the body. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "body.h"
#include "message.h"
#include "util.h"

/* Read size: large enough for few system calls, small enough for the stack
 * of no one (it is heap allocated once per read). */
#define READ_CHUNK (64 * 1024)

/* Longest field name recognised while telling header lines from the
 * body: RFC 5322's line limit (998 octets), as a name is bounded by
 * nothing else; real names are under 80 bytes. */
#define FIELD_NAME_MAX 998

/* Most blanks taken between a name and its colon (RFC 5322 obsolete
 * syntax, "Bcc :"); the same bound as a name. */
#define FIELD_BLANKS_MAX 998

/* Room beyond MESSAGE_HEADERS_MAX for a line still being classified
 * (its name and blanks are held until the colon decides). */
#define HEADERS_SLACK (FIELD_NAME_MAX + FIELD_BLANKS_MAX + 2)

/* ---- a growable byte buffer with a hard maximum ------------------------ */

struct hbuf {
	char *p;
	size_t len, cap;
};

static void hbuf_add(struct hbuf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void hbuf_str(struct hbuf *b, const char *s)
{
	hbuf_add(b, s, strlen(s));
}

/* ---- header fields ------------------------------------------------------ */

/* One field of a header block: its name (without the blanks obsolete
 * syntax allows before the colon) and its raw value (continuation lines
 * included, final line ending excluded). */
struct hfield {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	size_t start, end; /* [start, end) in the block, line ending included */
};

/* Next field at *pos; 0 at the end.  The block holds only field lines and
 * continuation lines, each ending in CRLF (message_read made sure of
 * that). */
static int hdr_next(const char *h, size_t len, size_t *pos, struct hfield *f)
{
	size_t i = *pos, colon;
	const char *nl;

	if (i >= len)
		return 0;
	f->start = i;
	f->name = h + i;
	for (colon = i; colon < len && h[colon] != ':' && h[colon] != '\n'; colon++)
		;
	f->name_len = colon - i;
	while (f->name_len && (f->name[f->name_len - 1] == ' ' || f->name[f->name_len - 1] == '\t'))
		f->name_len--;
	f->value = h + (colon < len ? colon + 1 : colon);
	for (;;) {
		nl = memchr(h + i, '\n', len - i);
		i = nl ? (size_t)(nl - h) + 1 : len;
		if (i >= len || (h[i] != ' ' && h[i] != '\t'))
			break;
	}
	f->end = i;
	f->value_len = (size_t)(h + i - f->value);
	while (f->value_len &&
	       (f->value[f->value_len - 1] == '\n' || f->value[f->value_len - 1] == '\r'))
		f->value_len--;
	*pos = i;
	return 1;
}

static int hdr_is(const struct hfield *f, const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* First field called name, or 0. */
static int hdr_find(const char *h, size_t len, const char *name, struct hfield *f)
{
	size_t pos = 0;

	while (hdr_next(h, len, &pos, f))
		if (hdr_is(f, name))
			return 1;
	return 0;
}

/* The value unfolded (line breaks removed, leading blanks skipped), in a
 * new string. */
static char *hdr_unfold(const struct hfield *f)
{
	char *s = xmalloc(f->value_len + 1);
	size_t i = 0, n = 0;

	while (i < f->value_len && (f->value[i] == ' ' || f->value[i] == '\t'))
		i++;
	for (; i < f->value_len; i++)
		if (f->value[i] != '\r' && f->value[i] != '\n')
			s[n++] = f->value[i];
	s[n] = '\0';
	return s;
}

int message_header(const struct message *m, const char *name, char *out, size_t cap)
{
	struct hfield f;
	char *v;
	size_t n;

	if (!m->headers || !hdr_find(m->headers, m->headers_len, name, &f))
		return -1;
	v = hdr_unfold(&f);
	n = str_copy(out, v, cap);
	free(v);
	return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}

/* ---- reading ------------------------------------------------------------ */

/* The input reaches the classifier below already normalised by body.c
 * (every line ends in CRLF, the last one included), so a line is what
 * ends at LF and a CR is always the first half of a line end. */
enum rstate {
	RS_LINE_START, /* at the start of a line of the header block */
	RS_CR,	       /* a line that so far is "\r": the blank line */
	RS_NAME,       /* inside what may be a field name */
	RS_BLANKS,     /* blanks after a name, before its colon (obsolete syntax) */
	RS_FIELD,      /* inside a field line (or a continuation line) */
	RS_MBOX,       /* skipping a "From " line at the start */
	RS_BODY,       /* everything else goes to the temporary file */
};

struct rd {
	struct message *m;
	struct hbuf h;
	enum rstate st;
	size_t line_start; /* offset in h of the line being classified */
	size_t name_len;
	size_t blanks;	   /* blanks between the name and its colon so far */
	int mbox;	   /* the first line so far is "From " */
	int nfields;
	int first_line;
	char dir[512];	   /* temporary directory, for error texts */
};

static int tmp_error(struct rd *r, int err, struct perr *e)
{
	return perr_set(e, PERR_IO,
			"cannot write a temporary copy of the message in %s: %s; "
			"set TMPDIR to a writable directory",
			r->dir, strerror(err));
}

/* An unlinked temporary file in $TMPDIR or /tmp. */
static int tmp_open(struct rd *r, struct perr *e)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	str_copy(r->dir, dir, sizeof r->dir);
	fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (snprintf(path, sizeof path, "%s/postern-XXXXXX", dir) >= (int)sizeof path)
		return tmp_error(r, ENAMETOOLONG, e);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return tmp_error(r, errno, e);
	unlink(path);
	return fd;
}

static int body_write(struct rd *r, const char *p, size_t n, struct perr *e)
{
	while (n) {
		ssize_t w = write(r->m->body_fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return tmp_error(r, errno, e);
		}
		p += w;
		n -= (size_t)w;
		r->m->body_len += w;
	}
	return 0;
}

static int hdr_add(struct rd *r, const char *p, size_t n, struct perr *e)
{
	if (r->h.len + n > MESSAGE_HEADERS_MAX + HEADERS_SLACK ||
	    (r->st == RS_FIELD && r->h.len + n > MESSAGE_HEADERS_MAX))
		return perr_set(e, PERR_DATA,
				"the header block is larger than 1 MiB; check that the input "
				"is a mail message with a blank line after its headers");
	hbuf_add(&r->h, p, n);
	return 0;
}

/* The line being classified is not a header field: it and everything
 * after it is the body. */
static int to_body(struct rd *r, struct perr *e)
{
	size_t n = r->h.len - r->line_start;

	r->st = RS_BODY;
	r->h.len = r->line_start;
	if (n == 0)
		return 0; /* r->h.p may still be NULL */
	return body_write(r, r->h.p + r->line_start, n, e);
}

static int is_name_char(unsigned char c)
{
	return c > 32 && c < 127 && c != ':';
}

/* The colon after a name (and its blanks): the line is a field. */
static int got_colon(struct rd *r, unsigned char c, struct perr *e)
{
	r->nfields++;
	r->st = RS_FIELD;
	return hdr_add(r, (char *)&c, 1, e) ? -1 : 1;
}

/* Start of a line: the blank line, a name, a continuation or the body. */
static int line_start_byte(struct rd *r, unsigned char c, struct perr *e)
{
	r->line_start = r->h.len;
	r->name_len = 0;
	r->blanks = 0;
	if (c == '\r') {
		r->st = RS_CR;
		return 1;
	}
	if (is_name_char(c)) {
		r->st = RS_NAME;
		return 0;
	}
	if ((c == ' ' || c == '\t') && r->nfields) {
		r->st = RS_FIELD; /* a continuation line */
		return hdr_add(r, (char *)&c, 1, e) ? -1 : 1;
	}
	return to_body(r, e) ? -1 : 0;
}

/* A byte of a field name, or what ends it. */
static int name_byte(struct rd *r, unsigned char c, struct perr *e)
{
	if (c == ':' && r->name_len)
		return got_colon(r, c, e);
	if ((c == ' ' || c == '\t') && r->name_len) {
		r->mbox = c == ' ' && r->first_line && r->name_len == 4 &&
			  memcmp(r->h.p + r->line_start, "From", 4) == 0;
		r->st = RS_BLANKS;
		return 0;
	}
	if (!is_name_char(c) || r->name_len >= FIELD_NAME_MAX)
		return to_body(r, e) ? -1 : 0;
	r->name_len++;
	return hdr_add(r, (char *)&c, 1, e) ? -1 : 1;
}

/* Blanks between a name and its colon ("Bcc :"); a first line "From "
 * not followed by a colon is an mbox separator line and is dropped. */
static int blanks_byte(struct rd *r, unsigned char c, struct perr *e)
{
	if (c == ':')
		return got_colon(r, c, e);
	if ((c == ' ' || c == '\t') && r->blanks < FIELD_BLANKS_MAX) {
		r->blanks++;
		return hdr_add(r, (char *)&c, 1, e) ? -1 : 1;
	}
	if (r->mbox) {
		r->h.len = r->line_start;
		r->st = RS_MBOX;
		return 0;
	}
	return to_body(r, e) ? -1 : 0;
}

/* Classify one byte of a header-block line.  Returns 1 when the byte was
 * consumed, 0 when the state changed and it must be looked at again, -1
 * on error. */
static int hdr_byte(struct rd *r, unsigned char c, struct perr *e)
{
	switch (r->st) {
	case RS_LINE_START:
		return line_start_byte(r, c, e);
	case RS_CR:
		if (c != '\n') { /* cannot happen after normalisation */
			r->st = RS_BODY;
			return body_write(r, "\r", 1, e) ? -1 : 0;
		}
		r->m->has_separator = 1;
		r->st = RS_BODY;
		return 1;
	case RS_NAME:
		return name_byte(r, c, e);
	case RS_BLANKS:
		return blanks_byte(r, c, e);
	default:
		return 1;
	}
}

/* Feed one chunk of normalised input through the state machine. */
static int feed(struct rd *r, const char *p, size_t n, struct perr *e)
{
	size_t i = 0;

	while (i < n) {
		const char *nl;
		size_t k;
		int rc;

		switch (r->st) {
		case RS_BODY:
			return body_write(r, p + i, n - i, e);
		case RS_FIELD:
		case RS_MBOX:
			nl = memchr(p + i, '\n', n - i);
			k = nl ? (size_t)(nl - p) + 1 - i : n - i;
			if (r->st == RS_FIELD && hdr_add(r, p + i, k, e))
				return -1;
			i += k;
			if (nl) {
				r->st = RS_LINE_START;
				r->first_line = 0;
			}
			break;
		default:
			rc = hdr_byte(r, (unsigned char)p[i], e);
			if (rc < 0)
				return -1;
			i += (size_t)rc;
		}
	}
	return 0;
}

/* End of input in the middle of a line being classified: it is body.
 * (Normalisation ends every non-empty input with CRLF, so this only
 * guards the invariant.) */
static int feed_end(struct rd *r, struct perr *e)
{
	if (r->st == RS_CR || r->st == RS_NAME || r->st == RS_BLANKS)
		return to_body(r, e);
	return 0;
}

/* One read's bytes: normalised by body.c (line endings, NUL refusal with
 * the input offset, the 8-bit flag), then classified.  At the end (n ==
 * 0) the normaliser's final CRLF is classified too. */
static int feed_raw(struct rd *r, struct body *norm, const unsigned char *in, size_t n,
		    unsigned char *out, struct perr *e)
{
	long k;

	if (n == 0)
		k = (long)body_finish(norm, out);
	else
		k = body_encode(norm, in, n, out, e);
	if (k < 0 || feed(r, (const char *)out, (size_t)k, e) < 0)
		return -1;
	r->m->has_8bit = norm->has_8bit;
	return n == 0 ? feed_end(r, e) : 0;
}

static int read_all(struct rd *r, int fd, struct perr *e)
{
	unsigned char *in = xmalloc(READ_CHUNK), *out = xmalloc(BODY_OUT_MAX(READ_CHUNK));
	struct body norm;
	int rc = -1;

	body_init(&norm, 0);
	for (;;) {
		ssize_t n = read(fd, in, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perr_set(e, PERR_IO, "cannot read the message: %s", strerror(errno));
			break;
		}
		if (feed_raw(r, &norm, in, (size_t)n, out, e) < 0)
			break;
		if (n == 0) {
			rc = 0;
			break;
		}
	}
	free(out);
	free(in);
	return rc;
}

/* ---- the header scan ---------------------------------------------------- */

static int rcpt_add(void *ctx, const char *addr, struct perr *e)
{
	struct message *m = ctx;

	if (addr_check(addr, 1, e) < 0) {
		e->kind = PERR_DATA;
		return -1;
	}
	if (m->nhdr_rcpts % 16 == 0)
		m->hdr_rcpts = xrealloc(m->hdr_rcpts, (m->nhdr_rcpts + 16) * sizeof *m->hdr_rcpts);
	m->hdr_rcpts[m->nhdr_rcpts++] = xstrdup(addr);
	return 0;
}

static int blank(const char *s)
{
	return s[strspn(s, " \t")] == '\0';
}

/* -t: every address of To, Cc and Bcc (not Resent-*). */
static int extract_rcpts(struct message *m, struct perr *e)
{
	static const char *const names[] = {"To", "Cc", "Bcc"};
	struct hfield f;
	size_t pos = 0;

	while (hdr_next(m->headers, m->headers_len, &pos, &f)) {
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			char *v;
			int rc = 0;

			if (!hdr_is(&f, names[k]))
				continue;
			v = hdr_unfold(&f);
			if (!blank(v))
				rc = addr_parse_list(v, rcpt_add, m, e);
			free(v);
			if (rc < 0) {
				e->kind = PERR_DATA;
				perr_prefix(e, "%s header", names[k]);
				return -1;
			}
		}
	}
	return 0;
}

/* From:'s address (one mailbox), or NULL. */
static char *from_address(const char *h, size_t len)
{
	struct hfield f;
	char *v, *name, *addr = NULL;
	size_t cap;

	if (!hdr_find(h, len, "From", &f))
		return NULL;
	v = hdr_unfold(&f);
	cap = strlen(v) + 1;
	name = xmalloc(cap);
	addr = xmalloc(cap);
	if (addr_parse_mailbox(v, name, cap, addr, cap) < 0 || !*addr) {
		free(addr);
		addr = NULL;
	}
	free(name);
	free(v);
	return addr;
}

int message_read(struct message *m, int fd, int extract, struct perr *e)
{
	struct rd r;

	memset(m, 0, sizeof *m);
	memset(&r, 0, sizeof r);
	r.m = m;
	r.st = RS_LINE_START;
	r.first_line = 1;
	m->body_fd = tmp_open(&r, e);
	if (m->body_fd < 0)
		return -1;
	if (read_all(&r, fd, e) < 0) {
		free(r.h.p);
		message_free(m);
		return -1;
	}
	m->headers = r.h.p ? r.h.p : xstrdup("");
	m->headers_len = r.h.len;
	m->from_addr = from_address(m->headers, m->headers_len);
	if (extract && extract_rcpts(m, e) < 0) {
		message_free(m);
		return -1;
	}
	return 0;
}

/* ---- the header policy -------------------------------------------------- */

static int is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* A display name as RFC 5322 wants it: atoms and spaces as they are,
 * anything else as a quoted-string with '"' and '\' escaped. */
static void add_phrase(struct hbuf *b, const char *name)
{
	int plain = name[0] != ' ';

	for (const char *p = name; *p && plain; p++)
		plain = is_atext((unsigned char)*p) || (*p == ' ' && p[1] != ' ' && p[1]);
	if (plain) {
		hbuf_str(b, name);
		return;
	}
	hbuf_add(b, "\"", 1);
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			hbuf_add(b, "\\", 1);
		hbuf_add(b, p, 1);
	}
	hbuf_add(b, "\"", 1);
}

static void add_from(struct hbuf *b, const char *name, const char *addr)
{
	hbuf_str(b, "From: ");
	if (name && *name) {
		add_phrase(b, name);
		hbuf_str(b, " <");
		hbuf_str(b, addr);
		hbuf_str(b, ">");
	} else {
		hbuf_str(b, addr);
	}
	hbuf_str(b, "\r\n");
}

static void add_date(struct hbuf *b)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	char zone[16] = "+0000", line[96];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	if (strftime(zone, sizeof zone, "%z", &tm) == 0)
		str_copy(zone, "+0000", sizeof zone);
	snprintf(line, sizeof line, "Date: %s, %d %s %04d %02d:%02d:%02d %s\r\n",
		 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
	hbuf_str(b, line);
}

/* A usable right side for a Message-ID: printable, no blanks or brackets. */
static int good_domain(const char *d)
{
	return d && *d && strlen(d) < 256 && str_is_printable(d, 0) && !strpbrk(d, " <>()\"\\");
}

static int add_message_id(struct hbuf *b, const struct msg_opts *o, struct perr *e)
{
	unsigned char rnd[16];
	char host[256] = "", line[400];
	const char *dom = o->domain;
	size_t n;

	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return perr_set(e, PERR_OS, "cannot get random bytes for a Message-ID: %s",
				strerror(errno));
	if (!good_domain(dom))
		dom = o->sender ? addr_domain(o->sender) : NULL;
	if (!good_domain(dom) && gethostname(host, sizeof host - 1) == 0)
		dom = host;
	if (!good_domain(dom))
		dom = "localhost";
	n = (size_t)snprintf(line, sizeof line, "Message-ID: <");
	for (size_t i = 0; i < sizeof rnd; i++)
		n += (size_t)snprintf(line + n, sizeof line - n, "%02x", rnd[i]);
	snprintf(line + n, sizeof line - n, ".%lld@%s>\r\n", (long long)time(NULL), dom);
	hbuf_str(b, line);
	return 0;
}

/* from_header = force: the From field again, with force's address and the
 * old display name (or comment). */
static void force_from_field(struct hbuf *b, const struct hfield *f, const char *force)
{
	char *v = hdr_unfold(f);
	size_t cap = strlen(v) + 1;
	char *name = xmalloc(cap), *addr = xmalloc(cap);

	if (addr_parse_mailbox(v, name, cap, addr, cap) < 0)
		name[0] = '\0';
	add_from(b, name, force);
	free(addr);
	free(name);
	free(v);
}

static int check_opts(const struct msg_opts *o, struct perr *e)
{
	if (o->fullname && !str_is_printable(o->fullname, 1))
		return perr_set(e, PERR_USAGE,
				"the full name given with -F contains a control "
				"character; give a name on one line");
	if (o->sender && !str_is_printable(o->sender, 1))
		return perr_set(e, PERR_USAGE, "the sender address contains a control character");
	if (o->force_from && !str_is_printable(o->force_from, 1))
		return perr_set(e, PERR_CONFIG, "from contains a control character");
	return 0;
}

/* The fields to add at the end of the block. */
static int add_missing(struct message *m, struct hbuf *b, const struct msg_opts *o, int have_from,
		       struct perr *e)
{
	struct hfield f;

	if (!have_from && o->force_from)
		add_from(b, o->fullname, o->force_from);
	else if (!have_from && o->add_headers && o->sender && *o->sender)
		add_from(b, o->fullname, o->sender);
	if (!o->add_headers)
		return 0;
	if (!hdr_find(m->headers, m->headers_len, "Date", &f))
		add_date(b);
	if (!hdr_find(m->headers, m->headers_len, "Message-ID", &f))
		return add_message_id(b, o, e);
	return 0;
}

int message_prepare(struct message *m, const struct msg_opts *o, struct perr *e)
{
	struct hbuf b = {0}, add = {0};
	struct hfield f;
	size_t pos = 0;
	int have_from = 0;

	if (check_opts(o, e) < 0)
		return -1;
	while (hdr_next(m->headers, m->headers_len, &pos, &f)) {
		if (hdr_is(&f, "Bcc") || hdr_is(&f, "Resent-Bcc"))
			continue;
		if (hdr_is(&f, "From") && o->force_from && !have_from)
			force_from_field(&b, &f, o->force_from);
		else
			hbuf_add(&b, m->headers + f.start, f.end - f.start);
		have_from |= hdr_is(&f, "From");
	}
	if (add_missing(m, &add, o, have_from, e) < 0) {
		free(add.p);
		free(b.p);
		return -1;
	}
	if (add.len)
		hbuf_add(&b, add.p, add.len);
	for (size_t i = 0; i < add.len && !m->has_8bit; i++)
		m->has_8bit = (unsigned char)add.p[i] >= 0x80;
	free(add.p);
	free(m->headers);
	m->headers = b.p ? b.p : xstrdup("");
	m->headers_len = b.len;
	free(m->from_addr);
	m->from_addr = from_address(m->headers, m->headers_len);
	return 0;
}

/* ---- the stream ---------------------------------------------------------- */

/* The blank line between headers and body: emitted when the input had
 * one, or when both headers and a body are there.  The header block ends
 * in CRLF whenever it is not empty. */
static size_t separator(const struct message *m)
{
	return m->has_separator || (m->headers_len && m->body_len) ? 2 : 0;
}

off_t message_size(const struct message *m)
{
	return (off_t)m->headers_len + (off_t)separator(m) + m->body_len;
}

off_t message_wire_size(const struct message *m)
{
	return message_size(m);
}

void message_rewind(const struct message *m, struct msg_reader *r)
{
	r->m = m;
	r->hpos = 0;
	r->bpos = 0;
	r->sep_done = 0;
}

long message_next(struct msg_reader *r, unsigned char *buf, size_t cap, struct perr *e)
{
	const struct message *m = r->m;
	size_t seplen = separator(m), n = 0, k;

	if (r->hpos < m->headers_len) {
		k = m->headers_len - r->hpos < cap ? m->headers_len - r->hpos : cap;
		memcpy(buf, m->headers + r->hpos, k);
		r->hpos += k;
		n += k;
	}
	while (n < cap && (size_t)r->sep_done < seplen)
		buf[n++] = (unsigned char)"\r\n"[r->sep_done++];
	while (n < cap && r->bpos < m->body_len) {
		off_t left = m->body_len - r->bpos;
		size_t want = (off_t)(cap - n) < left ? cap - n : (size_t)left;
		ssize_t got = pread(m->body_fd, buf + n, want, r->bpos);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return perr_set(e, PERR_IO,
					"cannot read back the temporary copy of the "
					"message: %s",
					got < 0 ? strerror(errno) : "file shrank");
		r->bpos += got;
		n += (size_t)got;
	}
	return (long)n;
}

void message_free(struct message *m)
{
	if (m->body_fd >= 0)
		close(m->body_fd);
	m->body_fd = -1;
	free(m->headers);
	m->headers = NULL;
	m->headers_len = 0;
	free(m->from_addr);
	m->from_addr = NULL;
	for (size_t i = 0; i < m->nhdr_rcpts; i++)
		free(m->hdr_rcpts[i]);
	free(m->hdr_rcpts);
	m->hdr_rcpts = NULL;
	m->nhdr_rcpts = 0;
}
