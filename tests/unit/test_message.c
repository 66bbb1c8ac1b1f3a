/* test_message.c — message.c: header/body split, the -t scan, the header
 * policy (Bcc, From/Date/Message-ID, -F quoting, from_header = force),
 * limits, and the stream of the final message. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "body.h"
#include "message.h"

/* ---- helpers -------------------------------------------------------------- */

/* A file descriptor reading exactly these bytes. */
static int input_fd(const void *data, size_t n)
{
	int fd = memfd_create("input", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static int read_msg_n(struct message *m, const void *data, size_t n, int extract, struct perr *e)
{
	int fd = input_fd(data, n), rc;

	perr_clear(e);
	rc = message_read(m, fd, extract, e);
	close(fd);
	return rc;
}

static void read_ok(struct message *m, const char *s, int extract)
{
	struct perr e;

	if (read_msg_n(m, s, strlen(s), extract, &e) != 0)
		fail_msg("message_read failed: %s", e.text);
}

/* The whole final message, read in chunks of chunk bytes; checks that
 * message_size agrees. */
static char *stream(const struct message *m, size_t chunk, size_t *len)
{
	struct msg_reader r;
	struct perr e;
	size_t cap = (size_t)message_size(m) + 1, n = 0;
	char *out = malloc(cap);
	long k;

	message_rewind(m, &r);
	while ((k = message_next(&r, (unsigned char *)out + n, chunk, &e)) > 0) {
		n += (size_t)k;
		assert_true(n < cap);
	}
	assert_int_equal(k, 0);
	assert_int_equal(n, (size_t)message_size(m));
	assert_int_equal(n, (size_t)message_wire_size(m));
	out[n] = '\0';
	*len = n;
	return out;
}

static void assert_stream(const struct message *m, const char *want)
{
	static const size_t chunks[] = {1, 3, 7, 4096};

	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		size_t n;
		char *got = stream(m, chunks[i], &n);

		assert_string_equal(got, want);
		assert_int_equal(n, strlen(want));
		free(got);
	}
}

static char *body_of(const struct message *m)
{
	char *b = malloc((size_t)m->body_len + 1);

	assert_int_equal(pread(m->body_fd, b, (size_t)m->body_len, 0), m->body_len);
	b[m->body_len] = '\0';
	return b;
}

static void assert_body(const struct message *m, const char *want)
{
	char *b = body_of(m);

	assert_string_equal(b, want);
	free(b);
}

static void assert_headers(const struct message *m, const char *want)
{
	assert_int_equal(m->headers_len, strlen(want));
	assert_memory_equal(m->headers, want, m->headers_len);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static int matches(const char *s, const char *re)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE), 0);
	rc = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return rc;
}

static const struct msg_opts no_add = {0};

/* ---- header/body split ---------------------------------------------------- */

struct split_case {
	const char *in;
	const char *headers;
	int sep;
	const char *body;
	const char *out; /* the stream after reading */
};

/* Every line ending in the input is CRLF by the time anything looks at
 * it: headers, body and stream hold CRLF lines only. */
static const struct split_case split_cases[] = {
    {"To: a@b\nSubject: x\n\nbody\n", "To: a@b\r\nSubject: x\r\n", 1, "body\r\n",
     "To: a@b\r\nSubject: x\r\n\r\nbody\r\n"},
    {"To: a@b\r\nSubject: x\r\n\r\nbody\r\n", "To: a@b\r\nSubject: x\r\n", 1, "body\r\n",
     "To: a@b\r\nSubject: x\r\n\r\nbody\r\n"},
    /* folded field */
    {"Subject: a\n\tb\n  c\nX-Y: z\n\nB", "Subject: a\r\n\tb\r\n  c\r\nX-Y: z\r\n", 1, "B\r\n",
     "Subject: a\r\n\tb\r\n  c\r\nX-Y: z\r\n\r\nB\r\n"},
    /* no headers at all */
    {"hello world\nmore\n", "", 0, "hello world\r\nmore\r\n", "hello world\r\nmore\r\n"},
    {"\nbody\n", "", 1, "body\r\n", "\r\nbody\r\n"},
    {"\r\nbody\r\n", "", 1, "body\r\n", "\r\nbody\r\n"},
    {" indented first line\n", "", 0, " indented first line\r\n", " indented first line\r\n"},
    {":no name\n", "", 0, ":no name\r\n", ":no name\r\n"},
    /* no separator: the first non-field line starts the body, and the
     * stream puts the blank line in */
    {"To: a@b\nhello there\n", "To: a@b\r\n", 0, "hello there\r\n",
     "To: a@b\r\n\r\nhello there\r\n"},
    {"To: a@b\r\nnot a: header\r\n", "To: a@b\r\n", 0, "not a: header\r\n",
     "To: a@b\r\n\r\nnot a: header\r\n"},
    /* a bare CR ends a line like LF does: here the empty line */
    {"To: a@b\n\rx\n", "To: a@b\r\n", 1, "x\r\n", "To: a@b\r\n\r\nx\r\n"},
    {"A: 1\r\rb\r", "A: 1\r\n", 1, "b\r\n", "A: 1\r\n\r\nb\r\n"},
    {"A: 1\r\r\nb", "A: 1\r\n", 1, "b\r\n", "A: 1\r\n\r\nb\r\n"},
    /* end of input inside a field, inside a name, after a CR */
    {"Subject: x", "Subject: x\r\n", 0, "", "Subject: x\r\n"},
    {"To: a@b\nSubject", "To: a@b\r\n", 0, "Subject\r\n", "To: a@b\r\n\r\nSubject\r\n"},
    {"To: a@b\nSubject :", "To: a@b\r\nSubject :\r\n", 0, "", "To: a@b\r\nSubject :\r\n"},
    {"To: a@b\n\r", "To: a@b\r\n", 1, "", "To: a@b\r\n\r\n"},
    {"", "", 0, "", ""},
    /* mbox "From " line at the very start is dropped */
    {"From joe@x Mon Nov 23 13:40:00 2026\nTo: a@b\n\nbody\n", "To: a@b\r\n", 1, "body\r\n",
     "To: a@b\r\n\r\nbody\r\n"},
    {"From: joe@x\n\nbody\n", "From: joe@x\r\n", 1, "body\r\n", "From: joe@x\r\n\r\nbody\r\n"},
    /* ... but "From :" (obsolete syntax) is the From field */
    {"From : joe@x\n\nbody\n", "From : joe@x\r\n", 1, "body\r\n",
     "From : joe@x\r\n\r\nbody\r\n"},
    {"To: a@b\n\nFrom joe\n", "To: a@b\r\n", 1, "From joe\r\n", "To: a@b\r\n\r\nFrom joe\r\n"},
    /* blanks before the colon; blanks inside a name end it */
    {"Subject :x\r\nX-Y\t \t: y\r\n\r\nb", "Subject :x\r\nX-Y\t \t: y\r\n", 1, "b\r\n",
     "Subject :x\r\nX-Y\t \t: y\r\n\r\nb\r\n"},
    {"Subject x: y\n", "", 0, "Subject x: y\r\n", "Subject x: y\r\n"},
    {"To: a@b\nNot a : field\n", "To: a@b\r\n", 0, "Not a : field\r\n",
     "To: a@b\r\n\r\nNot a : field\r\n"},
    /* lone "." lines are content, wherever they are */
    {"To: a@b\n\nline\n.\nafter\n.\n", "To: a@b\r\n", 1, "line\r\n.\r\nafter\r\n.\r\n",
     "To: a@b\r\n\r\nline\r\n.\r\nafter\r\n.\r\n"},
    {".\n", "", 0, ".\r\n", ".\r\n"},
    /* continuation after the blank line is body */
    {"A: 1\n\n B: 2\n", "A: 1\r\n", 1, " B: 2\r\n", "A: 1\r\n\r\n B: 2\r\n"},
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
		const struct split_case *c = &split_cases[i];
		struct message m;

		print_message("# case %zu\n", i);
		read_ok(&m, c->in, 0);
		assert_headers(&m, c->headers);
		assert_int_equal(m.has_separator, c->sep);
		assert_body(&m, c->body);
		assert_stream(&m, c->out);
		message_free(&m);
	}
}

/* The same cases with every byte arriving in its own read(): a
 * SOCK_SEQPACKET socket returns one packet per read, so each state of the
 * reader meets a chunk boundary. */
static void test_split_bytewise(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
		const struct split_case *c = &split_cases[i];
		struct message m;
		struct perr e;
		int sv[2];

		print_message("# case %zu\n", i);
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
		for (const char *p = c->in; *p; p++)
			assert_int_equal(write(sv[1], p, 1), 1);
		close(sv[1]);
		if (message_read(&m, sv[0], 0, &e) != 0)
			fail_msg("message_read: %s", e.text);
		close(sv[0]);
		assert_headers(&m, c->headers);
		assert_int_equal(m.has_separator, c->sep);
		assert_body(&m, c->body);
		message_free(&m);
	}
}

/* A name of up to 998 octets (RFC 5322's line limit) is a name; one
 * octet more and the line is body text. */
static void test_long_name_is_body(void **state)
{
	char in[1100], name[1000], want[1100];
	struct message m;

	(void)state;
	memset(name, 'X', 999);
	name[999] = '\0';
	snprintf(in, sizeof in, "%s: v\n\nb\n", name);
	read_ok(&m, in, 0);
	assert_int_equal(m.headers_len, 0);
	snprintf(want, sizeof want, "%s: v\r\n\r\nb\r\n", name);
	assert_body(&m, want);
	message_free(&m);

	name[998] = '\0';
	snprintf(in, sizeof in, "%s: v\n\nb\n", name);
	read_ok(&m, in, 0);
	snprintf(want, sizeof want, "%s: v\r\n", name);
	assert_headers(&m, want);
	assert_body(&m, "b\r\n");
	message_free(&m);
}

/* ---- NUL, 8-bit, limits --------------------------------------------------- */

static void test_nul_offset(void **state)
{
	static const struct {
		size_t at, len;
	} cases[] = {{0, 10}, {3, 20}, {11, 20}, {70000, 200000}, {65536, 70000}};
	char want[64];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *in = malloc(cases[i].len);
		struct message m;
		struct perr e;

		memset(in, 'a', cases[i].len);
		memcpy(in, "To: a@b\n\n", 9);
		in[cases[i].at] = '\0';
		assert_int_equal(read_msg_n(&m, in, cases[i].len, 0, &e), -1);
		assert_int_equal(e.kind, PERR_DATA);
		snprintf(want, sizeof want, "NUL byte at offset %zu", cases[i].at);
		assert_non_null(strstr(e.text, want));
		assert_int_equal(m.body_fd, -1);
		message_free(&m); /* harmless after a failure */
		free(in);
	}
}

static void test_8bit(void **state)
{
	static const struct {
		const char *in;
		int bit;
	} cases[] = {
	    {"Subject: plain\n\nplain\n", 0},
	    {"Subject: caf\xc3\xa9\n\nplain\n", 1},
	    {"Subject: plain\n\nbody \x80\n", 1},
	    {"\xff\n", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct message m;

		read_ok(&m, cases[i].in, 0);
		assert_int_equal(m.has_8bit, cases[i].bit);
		message_free(&m);
	}
}

static void test_header_cap(void **state)
{
	size_t line = 1000, n = MESSAGE_HEADERS_MAX / line + 2, len = n * line + 8;
	char *in = malloc(len);
	struct message m;
	struct perr e;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		memset(in + i * line, 'v', line);
		memcpy(in + i * line, "X-Long: ", 8);
		in[i * line + line - 1] = '\n';
	}
	memcpy(in + n * line, "\nbody\n", 6);
	assert_int_equal(read_msg_n(&m, in, n * line + 6, 0, &e), -1);
	assert_int_equal(e.kind, PERR_DATA);
	assert_non_null(strstr(e.text, "larger than 1 MiB"));

	/* just under the cap is fine, with a big body after it */
	n = MESSAGE_HEADERS_MAX / line - 1;
	in = realloc(in, n * line + 300000);
	memcpy(in + n * line, "\n", 1);
	memset(in + n * line + 1, 'b', 299999);
	assert_int_equal(read_msg_n(&m, in, n * line + 300000, 0, &e), 0);
	assert_int_equal(m.headers_len, n * (line + 1)); /* each LF became CRLF */
	assert_int_equal(m.body_len, 299999 + 2);	 /* and a final CRLF */
	message_free(&m);
	free(in);
}

static void test_tmpdir_error(void **state)
{
	char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	struct message m;
	struct perr e;

	(void)state;
	setenv("TMPDIR", "/nonexistent/postern-test", 1);
	assert_int_equal(read_msg_n(&m, "To: a\n\nb\n", 9, 0, &e), -1);
	assert_int_equal(e.kind, PERR_IO);
	assert_non_null(strstr(e.text, "/nonexistent/postern-test"));
	assert_non_null(strstr(e.text, "set TMPDIR"));
	if (old)
		setenv("TMPDIR", old, 1);
	else
		unsetenv("TMPDIR");
	free(old);
}

/* ---- -t ----------------------------------------------------------------- */

struct rcpt_case {
	const char *in;
	const char *want[6];
};

static const struct rcpt_case rcpt_cases[] = {
    {"To: a@b\n\n", {"a@b"}},
    {"To: a@b,\n  Joe <c@d>\nSubject: s\nCc: \"Doe, J\" <e@f>\r\nBcc: g@h\n\n",
     {"a@b", "c@d", "e@f", "g@h"}},
    {"TO: x@y\ncc: z@w\nbcc: q@r\n\n", {"x@y", "z@w", "q@r"}},
    {"Resent-To: r@s\nResent-Cc: t@u\nResent-Bcc: v@w\nTo: a@b\n\n", {"a@b"}},
    {"To: undisclosed-recipients:;\nCc: grp: x@y, z@w;\n\n", {"x@y", "z@w"}},
    {"To: root\nCc: \n\n", {"root"}},
    {"To: a@b (comment, with comma)\n\n", {"a@b"}},
    {"Subject: no recipients\n\n", {NULL}},
    /* header-looking body lines are not headers */
    {"Subject: s\n\nTo: body@x\n", {NULL}},
};

static void test_extract(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rcpt_cases / sizeof rcpt_cases[0]; i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct message m;
		size_t n = 0;

		print_message("# case %zu\n", i);
		read_ok(&m, c->in, 1);
		while (n < 6 && c->want[n])
			n++;
		assert_int_equal(m.nhdr_rcpts, n);
		for (size_t k = 0; k < n; k++)
			assert_string_equal(m.hdr_rcpts[k], c->want[k]);
		message_free(&m);

		read_ok(&m, c->in, 0);
		assert_int_equal(m.nhdr_rcpts, 0);
		message_free(&m);
	}
}

static void test_extract_malformed(void **state)
{
	struct message m;
	struct perr e;
	const char *in = "To: x@y\nCc: Joe <a@b\n\nbody\n";

	(void)state;
	assert_int_equal(read_msg_n(&m, in, strlen(in), 1, &e), -1);
	assert_int_equal(e.kind, PERR_DATA);
	assert_non_null(strstr(e.text, "Cc header"));
	/* without -t nobody looks */
	assert_int_equal(read_msg_n(&m, in, strlen(in), 0, &e), 0);
	message_free(&m);
}

static void test_from_addr(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"From: Joe <joe@x>\n\n", "joe@x"},	     {"from: root (Cron Daemon)\n\n", "root"},
	    {"From: \"Doe, J\"\n <j@d>\n\n", "j@d"}, {"Subject: none\n\n", NULL},
	    {"To: a@b\n\nFrom: body@x\n", NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct message m;

		read_ok(&m, cases[i].in, 0);
		if (cases[i].want)
			assert_string_equal(m.from_addr, cases[i].want);
		else
			assert_null(m.from_addr);
		message_free(&m);
	}
}

static void test_header_lookup(void **state)
{
	struct message m;
	char v[16];

	(void)state;
	read_ok(&m, "Subject: one\n two\nmessage-id: <x@y>\n\n", 0);
	assert_int_equal(message_header(&m, "Subject", v, sizeof v), 7);
	assert_string_equal(v, "one two");
	assert_int_equal(message_header(&m, "Message-ID", v, sizeof v), 5);
	assert_string_equal(v, "<x@y>");
	assert_int_equal(message_header(&m, "Date", v, sizeof v), -1);
	assert_int_equal(message_header(&m, "Subject", v, 4), 7);
	assert_string_equal(v, "one");
	message_free(&m);
}

/* ---- the header policy --------------------------------------------------- */

static void prepare_ok(struct message *m, const struct msg_opts *o)
{
	struct perr e;

	perr_clear(&e);
	if (message_prepare(m, o, &e) != 0)
		fail_msg("message_prepare failed: %s", e.text);
}

static void test_bcc_removed(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"To: a@b\nBcc: x@y,\n z@w\nSubject: s\n\nbody\n",
	     "To: a@b\r\nSubject: s\r\n\r\nbody\r\n"},
	    {"bcc: x@y\r\n\tz@w\r\nTo: a@b\r\n\r\nB\r\n", "To: a@b\r\n\r\nB\r\n"},
	    {"To: a@b\nBCC: x@y\n\n", "To: a@b\r\n\r\n"},
	    {"To: a@b\nBcc: x@y", "To: a@b\r\n"},
	    {"Resent-Bcc: x@y\nTo: a@b\n\nb", "To: a@b\r\n\r\nb\r\n"},
	    {"X-Bcc-Note: kept\n\nBcc: in the body\n",
	     "X-Bcc-Note: kept\r\n\r\nBcc: in the body\r\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct message m;

		print_message("# case %zu\n", i);
		read_ok(&m, cases[i].in, 0);
		prepare_ok(&m, &no_add);
		assert_stream(&m, cases[i].out);
		message_free(&m);
	}
}

#define DATE_RE                                                                                    \
	"^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} "                                        \
	"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "                              \
	"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}\r?$"
#define MSGID_RE "^Message-ID: <[0-9a-f]{32}\\.[0-9]+@example\\.org>\r?$"

static void test_add_missing(void **state)
{
	struct msg_opts o = {
	    .add_headers = 1, .sender = "joe@example.com", .domain = "example.org"};
	struct message m;
	char *out;
	size_t n;

	(void)state;
	read_ok(&m, "To: a@b\nSubject: s\n\nbody\n", 0);
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_true(strncmp(out, "To: a@b\r\nSubject: s\r\nFrom: joe@example.com\r\nDate: ", 50) ==
		    0);
	assert_true(matches(out, DATE_RE));
	assert_true(matches(out, MSGID_RE));
	assert_non_null(strstr(out, ">\r\n\r\nbody\r\n"));
	assert_string_equal(m.from_addr, "joe@example.com");
	free(out);

	/* a second prepare adds nothing */
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_int_equal(count(out, "From:"), 1);
	assert_int_equal(count(out, "Date:"), 1);
	assert_int_equal(count(out, "Message-ID:"), 1);
	free(out);
	message_free(&m);
}

static void test_present_not_added(void **state)
{
	const char *in = "from: x@y\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\n"
			 "Message-Id: <1@x>\n\nbody\n";
	const char *out = "from: x@y\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
			  "Message-Id: <1@x>\r\n\r\nbody\r\n";
	struct msg_opts o = {.add_headers = 1,
			     .sender = "joe@example.com",
			     .fullname = "Joe",
			     .domain = "example.org"};
	struct message m;

	(void)state;
	read_ok(&m, in, 0);
	prepare_ok(&m, &o);
	assert_stream(&m, out);
	message_free(&m);
}

static void test_add_off_or_null_sender(void **state)
{
	struct msg_opts o = {.add_headers = 0, .sender = "joe@example.com"};
	struct message m;
	char *out;
	size_t n;

	(void)state;
	read_ok(&m, "To: a@b\n\nbody\n", 0);
	prepare_ok(&m, &o);
	assert_stream(&m, "To: a@b\r\n\r\nbody\r\n");
	message_free(&m);

	/* null sender: no From, but Date and Message-ID */
	o.add_headers = 1;
	o.sender = "";
	o.domain = "example.org";
	read_ok(&m, "To: a@b\n\nbody\n", 0);
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_int_equal(count(out, "From:"), 0);
	assert_true(matches(out, DATE_RE));
	assert_true(matches(out, MSGID_RE));
	assert_null(m.from_addr);
	free(out);
	message_free(&m);
}

static void test_add_crlf_and_unterminated(void **state)
{
	struct msg_opts o = {.add_headers = 1, .sender = "j@x", .domain = "example.org"};
	struct message m;
	char *out;
	size_t n;

	(void)state;
	read_ok(&m, "To: a@b\r\n\r\nbody\r\n", 0);
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_true(strncmp(out, "To: a@b\r\nFrom: j@x\r\nDate: ", 26) == 0);
	assert_int_equal(count(out, "\r\n"), count(out, "\n"));
	assert_non_null(strstr(out, ">\r\n\r\nbody\r\n"));
	free(out);
	message_free(&m);

	/* the last field had no line ending */
	read_ok(&m, "Subject: x", 0);
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_true(strncmp(out, "Subject: x\r\nFrom: j@x\r\nDate: ", 29) == 0);
	assert_true(matches(out, MSGID_RE));
	free(out);
	message_free(&m);
}

static void test_add_no_headers(void **state)
{
	struct msg_opts o = {.add_headers = 1, .sender = "j@x", .domain = "example.org"};
	struct message m;
	char *out, *blank;
	size_t n;

	(void)state;
	read_ok(&m, "just a body line\n", 0);
	prepare_ok(&m, &o);
	out = stream(&m, 4096, &n);
	assert_true(strncmp(out, "From: j@x\r\nDate: ", 17) == 0);
	blank = strstr(out, "\r\n\r\n");
	assert_non_null(blank);
	assert_string_equal(blank, "\r\n\r\njust a body line\r\n");
	assert_true(matches(out, MSGID_RE));
	free(out);
	message_free(&m);
}

struct name_case {
	const char *name, *from;
};

static const struct name_case name_cases[] = {
    {"Joe Doe", "From: Joe Doe <joe@x.org>\r\n"},
    {"CronDaemon", "From: CronDaemon <joe@x.org>\r\n"},
    {"Doe, Joe", "From: \"Doe, Joe\" <joe@x.org>\r\n"},
    {"Joe \"JD\" Doe", "From: \"Joe \\\"JD\\\" Doe\" <joe@x.org>\r\n"},
    {"back\\slash", "From: \"back\\\\slash\" <joe@x.org>\r\n"},
    {"J. Doe", "From: \"J. Doe\" <joe@x.org>\r\n"},
    {"a <b>", "From: \"a <b>\" <joe@x.org>\r\n"},
    {"Jos\xc3\xa9", "From: Jos\xc3\xa9 <joe@x.org>\r\n"},
    {"", "From: joe@x.org\r\n"},
};

static void test_fullname_quoting(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
		struct msg_opts o = {
		    .add_headers = 1, .sender = "joe@x.org", .fullname = name_cases[i].name};
		struct message m;
		char *out;
		size_t n;

		print_message("# case %zu\n", i);
		read_ok(&m, "Subject: s\n\nb\n", 0);
		prepare_ok(&m, &o);
		out = stream(&m, 4096, &n);
		assert_true(strncmp(out + 12, name_cases[i].from, strlen(name_cases[i].from)) == 0);
		assert_string_equal(m.from_addr, "joe@x.org");
		free(out);
		message_free(&m);
	}
}

static void test_fullname_control_refused(void **state)
{
	struct msg_opts o = {
	    .add_headers = 1, .sender = "joe@x.org", .fullname = "Joe\nBcc: evil@x"};
	struct message m;
	struct perr e;

	(void)state;
	read_ok(&m, "Subject: s\n\nb\n", 0);
	assert_int_equal(message_prepare(&m, &o, &e), -1);
	assert_int_equal(e.kind, PERR_USAGE);
	assert_non_null(strstr(e.text, "-F"));
	message_free(&m);
}

static void test_force_from(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"From: root (Cron Daemon)\nTo: root\n\nb\n",
	     "From: Cron Daemon <joe@example.com>\r\nTo: root\r\n\r\nb\r\n"},
	    {"To: a@b\nFrom: \"Doe, J\"\n <x@y>\nSubject: s\n\nb\n",
	     "To: a@b\r\nFrom: \"Doe, J\" <joe@example.com>\r\nSubject: s\r\n\r\nb\r\n"},
	    {"From: x@y\r\n\r\nb\r\n", "From: joe@example.com\r\n\r\nb\r\n"},
	    {"From: Joe <x@y>\n\n", "From: Joe <joe@example.com>\r\n\r\n"},
	    {"From\t: x@y\n\n", "From: joe@example.com\r\n\r\n"},
	    {"To: a@b\n\nb\n", "To: a@b\r\nFrom: joe@example.com\r\n\r\nb\r\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct msg_opts o = {.force_from = "joe@example.com", .sender = "other@x"};
		struct message m;

		print_message("# case %zu\n", i);
		read_ok(&m, cases[i].in, 0);
		prepare_ok(&m, &o);
		assert_stream(&m, cases[i].out);
		assert_string_equal(m.from_addr, "joe@example.com");
		message_free(&m);
	}
}

static void test_force_from_missing_uses_fullname(void **state)
{
	struct msg_opts o = {.force_from = "joe@example.com", .fullname = "Cron Daemon"};
	struct message m;

	(void)state;
	read_ok(&m, "Subject: s\n\nb\n", 0);
	prepare_ok(&m, &o);
	assert_stream(&m, "Subject: s\r\nFrom: Cron Daemon <joe@example.com>\r\n\r\nb\r\n");
	message_free(&m);
}

/* ---- line endings once, fields as RFC 5322 reads them -------------------- */

/* The message as it goes out: the stream run through the SMTP client's
 * encoder (body.c) in 4096-byte pieces, with dot-stuffing (DATA) or
 * without (BDAT). */
static char *wire(const struct message *m, int dotstuff, size_t *len)
{
	static unsigned char in[4096], enc[BODY_OUT_MAX(4096)];
	size_t cap = 2 * (size_t)message_size(m) + 3, n = 0;
	char *out = malloc(cap);
	struct msg_reader r;
	struct body b;
	struct perr e;
	long k, got;

	body_init(&b, dotstuff);
	message_rewind(m, &r);
	while ((got = message_next(&r, in, sizeof in, &e)) > 0) {
		k = body_encode(&b, in, (size_t)got, enc, &e);
		assert_true(k >= 0 && n + (size_t)k < cap);
		memcpy(out + n, enc, (size_t)k);
		n += (size_t)k;
	}
	assert_int_equal(got, 0);
	n += body_finish(&b, (unsigned char *)out + n);
	out[n] = '\0';
	*len = n;
	return out;
}

/* The stream is exactly want (every read size), SIZE is exactly its
 * length, the wire without dot-stuffing is the same bytes and with it is
 * want_data. */
static void assert_wire(const struct message *m, const char *want, const char *want_data)
{
	size_t n;
	char *got;

	assert_stream(m, want);
	assert_int_equal(message_wire_size(m), (off_t)strlen(want));
	got = wire(m, 0, &n);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(got, want, n);
	free(got);
	got = wire(m, 1, &n);
	assert_int_equal(n, strlen(want_data));
	assert_memory_equal(got, want_data, n);
	free(got);
}

static void assert_rcpts(const struct message *m, const char *const *want)
{
	size_t n = 0;

	while (want[n])
		n++;
	assert_int_equal(m->nhdr_rcpts, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(m->hdr_rcpts[i], want[i]);
}

/* prefix, then the Date and Message-ID fields message_prepare added (their
 * values read back), then suffix: what the stream must be, byte for byte. */
static char *with_added(const struct message *m, const char *prefix, const char *suffix)
{
	char date[128], id[128], *out;
	size_t cap;

	assert_true(message_header(m, "Date", date, sizeof date) > 0);
	assert_true(message_header(m, "Message-ID", id, sizeof id) > 0);
	assert_true(matches(date, "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), "));
	assert_true(matches(id, "^<[0-9a-f]{32}\\.[0-9]+@example\\.org>$"));
	cap = strlen(prefix) + strlen(suffix) + 300;
	out = malloc(cap);
	snprintf(out, cap, "%sDate: %s\r\nMessage-ID: %s\r\n%s", prefix, date, id, suffix);
	return out;
}

static const struct msg_opts add_opts = {
    .add_headers = 1, .sender = "j@example.com", .domain = "example.org"};

struct obs_case {
	const char *in;
	const char *rcpts[5];
	const char *out;
};

/* "Bcc :" and "Bcc<TAB>:" (RFC 5322 obsolete syntax) are Bcc fields: -t
 * takes their addresses, and they are not transmitted. */
static const struct obs_case obs_cases[] = {
    {"To: a@b\nBcc : x@y\nSubject: s\n\nbody\n", {"a@b", "x@y"},
     "To: a@b\r\nSubject: s\r\n\r\nbody\r\n"},
    {"To: a@b\nBcc\t: x@y\nSubject: s\n\nbody\n", {"a@b", "x@y"},
     "To: a@b\r\nSubject: s\r\n\r\nbody\r\n"},
    {"To : a@b\nCc \t : c@d\nbcc  :x@y,\n  z@w\n\nbody\n", {"a@b", "c@d", "x@y", "z@w"},
     "To : a@b\r\nCc \t : c@d\r\n\r\nbody\r\n"},
    {"Resent-Bcc : r@s\nTo: a@b\nBCC\t\t:\n\nb\n", {"a@b"}, "To: a@b\r\n\r\nb\r\n"},
    /* the same text after the blank line is body text, and stays */
    {"To: a@b\n\nBcc : body@x\n", {"a@b"}, "To: a@b\r\n\r\nBcc : body@x\r\n"},
};

static void test_bcc_obsolete_colon(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof obs_cases / sizeof obs_cases[0]; i++) {
		struct message m;
		char v[16];

		print_message("# case %zu\n", i);
		read_ok(&m, obs_cases[i].in, 1);
		assert_rcpts(&m, obs_cases[i].rcpts);
		prepare_ok(&m, &no_add);
		assert_int_equal(message_header(&m, "Bcc", v, sizeof v), -1);
		assert_wire(&m, obs_cases[i].out, obs_cases[i].out);
		message_free(&m);
	}
}

/* A Bcc after a field with a long name (150 and 998 octets): still a
 * field; Date and Message-ID go into the header block. */
static void test_long_names_before_bcc(void **state)
{
	static const size_t lens[] = {150, 998};
	static const char *const rcpts[] = {"hidden@example.com", "a@b", NULL};

	(void)state;
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		char name[1000], in[1200], prefix[1100], *want;
		struct message m;

		memset(name, 'N', lens[i]);
		memcpy(name, "X-", 2);
		name[lens[i]] = '\0';
		snprintf(in, sizeof in, "%s: v\nBcc: hidden@example.com\nTo: a@b\n\nbody\n", name);
		read_ok(&m, in, 1);
		assert_rcpts(&m, rcpts);
		assert_int_equal(m.has_separator, 1);
		prepare_ok(&m, &add_opts);
		snprintf(prefix, sizeof prefix, "%s: v\r\nTo: a@b\r\nFrom: j@example.com\r\n",
			 name);
		want = with_added(&m, prefix, "\r\nbody\r\n");
		assert_wire(&m, want, want);
		free(want);
		message_free(&m);
	}
}

/* A header block whose lines end in bare CR. */
static void test_bare_cr_headers(void **state)
{
	static const char *const rcpts[] = {"a@b", "h@x", "g@y", NULL};
	const char *in = "From: s@example.com\rTo: a@b\rBcc: h@x,\r g@y\rSubject: s\r\r"
			 "body one\r.\rbody two\r";
	const char *prefix = "From: s@example.com\r\nTo: a@b\r\nSubject: s\r\n";
	char *want, *want_data, *dot;
	struct message m;

	(void)state;
	read_ok(&m, in, 1);
	assert_rcpts(&m, rcpts);
	assert_headers(&m, "From: s@example.com\r\nTo: a@b\r\nBcc: h@x,\r\n g@y\r\nSubject: s\r\n");
	assert_int_equal(m.has_separator, 1);
	assert_body(&m, "body one\r\n.\r\nbody two\r\n");
	prepare_ok(&m, &add_opts);
	want = with_added(&m, prefix, "\r\nbody one\r\n.\r\nbody two\r\n");
	want_data = with_added(&m, prefix, "\r\nbody one\r\n..\r\nbody two\r\n");
	dot = strstr(want, "\r\n\r\n");
	assert_non_null(dot); /* Date and Message-ID before the blank line */
	assert_non_null(strstr(want, "Message-ID: "));
	assert_true(strstr(want, "Message-ID: ") < dot);
	assert_wire(&m, want, want_data);
	free(want);
	free(want_data);
	message_free(&m);
}

/* CR, LF and CRLF mixed, in the header block and the body. */
static void test_mixed_line_ends(void **state)
{
	static const char *const rcpts[] = {"a@b", "h@x", "c@d", NULL};
	const char *in = "To: a@b\r\nBcc: h@x\rCc: c@d\nX-A: 1\r\n\tcont\r\r"
			 "body\nline2\r\r\n.end\n\r\n";
	const char *out = "To: a@b\r\nCc: c@d\r\nX-A: 1\r\n\tcont\r\n\r\n"
			  "body\r\nline2\r\n\r\n.end\r\n\r\n";
	const char *data = "To: a@b\r\nCc: c@d\r\nX-A: 1\r\n\tcont\r\n\r\n"
			   "body\r\nline2\r\n\r\n..end\r\n\r\n";
	struct message m;

	(void)state;
	read_ok(&m, in, 1);
	assert_rcpts(&m, rcpts);
	prepare_ok(&m, &no_add);
	assert_wire(&m, out, data);
	message_free(&m);
}

/* A folded Bcc goes with all its continuation lines, whatever ends them. */
static void test_folded_bcc_removed(void **state)
{
	static const char *const rcpts[] = {"a@b", "x@y", "y@z", "w@v", NULL};
	const char *in = "To: a@b\nBcc: x@y,\n\ty@z,\r  w@v\r\nSubject: s\n\nb\n";
	const char *out = "To: a@b\r\nSubject: s\r\n\r\nb\r\n";
	struct message m;

	(void)state;
	read_ok(&m, in, 1);
	assert_rcpts(&m, rcpts);
	prepare_ok(&m, &no_add);
	assert_wire(&m, out, out);
	message_free(&m);
}

/* message_read on a SOCK_SEQPACKET socket: one read() per piece, so a
 * piece boundary is a read boundary.  A child writes (no socket buffer
 * limits the total). */
static void read_in_pieces(struct message *m, const char *in, size_t n, size_t cut, int extract)
{
	struct perr e;
	int sv[2], status;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		if (write(sv[1], in, cut) != (ssize_t)cut ||
		    write(sv[1], in + cut, n - cut) != (ssize_t)(n - cut))
			_exit(1);
		_exit(0);
	}
	close(sv[1]);
	perr_clear(&e);
	if (message_read(m, sv[0], extract, &e) != 0)
		fail_msg("message_read: %s", e.text);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

struct cut_case {
	const char *left;  /* ends at the read boundary */
	const char *right; /* starts after it */
	const char *rcpts[4];
	const char *tail;  /* the stream after "To: a@b\r\nX-Pad: ppp" */
};

static const struct cut_case cut_cases[] = {
    /* a CRLF split by the boundary is one line end */
    {"\r", "\nSubject: s\r\n\r\nbody\r\n", {"a@b", "h@x"}, "\r\nSubject: s\r\n\r\nbody\r\n"},
    /* a bare CR at the end of a read is a line end of its own */
    {"\r", "Bcc: g@y\rSubject: s\r\rbody\r", {"a@b", "h@x", "g@y"},
     "\r\nSubject: s\r\n\r\nbody\r\n"},
    /* the blank line's CRLF split, and the blank line as a bare CR */
    {"\r\n\r", "\nbody\r\n", {"a@b", "h@x"}, "\r\n\r\nbody\r\n"},
    {"\r\n\r", "body\r", {"a@b", "h@x"}, "\r\n\r\nbody\r\n"},
    {"\r\n\r", "\n", {"a@b", "h@x"}, "\r\n\r\n"},
};

/* A CR as the last byte of a 4096- and a 65536-byte read, the LF (or not)
 * at the start of the next. */
static void test_cr_at_read_boundary(void **state)
{
	static const size_t bounds[] = {4096, 65536};
	static const char head[] = "To: a@b\r\nBcc: h@x\r\nX-Pad: ";
	size_t cap = 65536 + 256;
	char *in = malloc(cap), *want = malloc(cap);

	(void)state;
	for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
		for (size_t i = 0; i < sizeof cut_cases / sizeof cut_cases[0]; i++) {
			const struct cut_case *c = &cut_cases[i];
			size_t pad = bounds[b] - strlen(head) - strlen(c->left), n, w;
			struct message m;

			print_message("# boundary %zu case %zu\n", bounds[b], i);
			n = (size_t)snprintf(in, cap, "%s", head);
			memset(in + n, 'p', pad);
			n += pad;
			n += (size_t)snprintf(in + n, cap - n, "%s%s", c->left, c->right);
			w = (size_t)snprintf(want, cap, "To: a@b\r\nX-Pad: ");
			memset(want + w, 'p', pad);
			w += pad;
			snprintf(want + w, cap - w, "%s", c->tail);
			for (int how = 0; how < 2; how++) {
				if (how == 0) {
					read_in_pieces(&m, in, n, bounds[b], 1);
				} else {
					struct perr e; /* a file: reads of READ_CHUNK */
					assert_int_equal(read_msg_n(&m, in, n, 1, &e), 0);
				}
				assert_rcpts(&m, c->rcpts);
				prepare_ok(&m, &no_add);
				assert_wire(&m, want, want);
				message_free(&m);
			}
		}
	}
	free(in);
	free(want);
}

/* ---- streaming a large body ---------------------------------------------- */

#define BIG (20u * 1024 * 1024)

static unsigned char pattern(size_t i)
{
	/* lines of varying length, "." lines included, no NUL */
	size_t k = i % 1031;

	if (k == 1030)
		return '\n';
	if (k == 0 && (i / 1031) % 7 == 0)
		return '.';
	return (unsigned char)('A' + (i * 7 + i / 1031) % 57);
}

/* A child writes the message into a pipe in odd-sized pieces. */
static pid_t writer(int fd)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		static unsigned char buf[9973];
		size_t i = 0;

		if (write(fd, "To: a@b\n\n", 9) != 9)
			_exit(1);
		while (i < BIG) {
			size_t n = BIG - i < sizeof buf ? BIG - i : sizeof buf;

			for (size_t k = 0; k < n; k++)
				buf[k] = pattern(i + k);
			if (write(fd, buf, n) != (ssize_t)n)
				_exit(1);
			i += n;
		}
		_exit(0);
	}
	return pid;
}

/* The bytes the stream must give for writer()'s input: "To: a@b\r\n\r\n",
 * then pattern() with each LF as CRLF and a final CRLF when it does not
 * end in LF.  next_want() walks it byte by byte. */
struct big_want {
	size_t src;  /* next byte of pattern() */
	int half;    /* 1: the LF of a CRLF is due */
	size_t head; /* bytes of the header part given */
};

static int next_want(struct big_want *w)
{
	static const char head[] = "To: a@b\r\n\r\n";

	if (w->head < sizeof head - 1)
		return (unsigned char)head[w->head++];
	if (w->half) {
		w->half = 0;
		return '\n';
	}
	if (w->src < BIG) {
		unsigned char c = pattern(w->src++);

		w->half = c == '\n';
		return w->half ? '\r' : c;
	}
	if (w->src == BIG && pattern(BIG - 1) != '\n') {
		w->src++;
		w->half = 1;
		return '\r';
	}
	return -1;
}

static void test_stream_big(void **state)
{
	static unsigned char buf[65543];
	struct big_want w = {0};
	size_t lines = BIG / 1031, want_len = 11 + BIG + lines + 2;
	struct message m;
	struct msg_reader r;
	struct perr e;
	int p[2], status;
	size_t total = 0, bad = 0;
	long n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = writer(p[1]);
	close(p[1]);
	assert_int_equal(message_read(&m, p[0], 0, &e), 0);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_not_equal(pattern(BIG - 1), '\n'); /* so the final CRLF is added */
	assert_int_equal(m.body_len, want_len - 11);
	assert_int_equal(message_size(&m), want_len);
	assert_int_equal(message_wire_size(&m), want_len);

	message_rewind(&m, &r);
	while ((n = message_next(&r, buf, sizeof buf, &e)) > 0) {
		for (long k = 0; k < n; k++, total++)
			bad += buf[k] != next_want(&w);
	}
	assert_int_equal(n, 0);
	assert_int_equal(next_want(&w), -1);
	assert_int_equal(total, want_len);
	assert_int_equal(bad, 0);
	message_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_split_bytewise),
	    cmocka_unit_test(test_long_name_is_body),
	    cmocka_unit_test(test_nul_offset),
	    cmocka_unit_test(test_8bit),
	    cmocka_unit_test(test_header_cap),
	    cmocka_unit_test(test_tmpdir_error),
	    cmocka_unit_test(test_extract),
	    cmocka_unit_test(test_extract_malformed),
	    cmocka_unit_test(test_from_addr),
	    cmocka_unit_test(test_header_lookup),
	    cmocka_unit_test(test_bcc_removed),
	    cmocka_unit_test(test_add_missing),
	    cmocka_unit_test(test_present_not_added),
	    cmocka_unit_test(test_add_off_or_null_sender),
	    cmocka_unit_test(test_add_crlf_and_unterminated),
	    cmocka_unit_test(test_add_no_headers),
	    cmocka_unit_test(test_fullname_quoting),
	    cmocka_unit_test(test_fullname_control_refused),
	    cmocka_unit_test(test_force_from),
	    cmocka_unit_test(test_force_from_missing_uses_fullname),
	    cmocka_unit_test(test_bcc_obsolete_colon),
    cmocka_unit_test(test_long_names_before_bcc),
    cmocka_unit_test(test_bare_cr_headers),
    cmocka_unit_test(test_mixed_line_ends),
    cmocka_unit_test(test_folded_bcc_removed),
    cmocka_unit_test(test_cr_at_read_boundary),
    cmocka_unit_test(test_stream_big),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
