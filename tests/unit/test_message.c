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
	const char *out; /* the stream after reading (NULL: same as in) */
};

static const struct split_case split_cases[] = {
    {"To: a@b\nSubject: x\n\nbody\n", "To: a@b\nSubject: x\n", 1, "body\n", NULL},
    {"To: a@b\r\nSubject: x\r\n\r\nbody\r\n", "To: a@b\r\nSubject: x\r\n", 1, "body\r\n", NULL},
    /* folded field */
    {"Subject: a\n\tb\n  c\nX-Y: z\n\nB", "Subject: a\n\tb\n  c\nX-Y: z\n", 1, "B", NULL},
    /* no headers at all */
    {"hello world\nmore\n", "", 0, "hello world\nmore\n", NULL},
    {"\nbody\n", "", 1, "body\n", NULL},
    /* without headers the blank line is written as LF (the wire
     * normaliser makes every line ending CRLF anyway) */
    {"\r\nbody\r\n", "", 1, "body\r\n", "\nbody\r\n"},
    {" indented first line\n", "", 0, " indented first line\n", NULL},
    {":no name\n", "", 0, ":no name\n", NULL},
    /* no separator: the first non-field line starts the body, and the
     * stream puts the blank line in */
    {"To: a@b\nhello there\n", "To: a@b\n", 0, "hello there\n", "To: a@b\n\nhello there\n"},
    {"To: a@b\r\nnot a: header\r\n", "To: a@b\r\n", 0, "not a: header\r\n",
     "To: a@b\r\n\r\nnot a: header\r\n"},
    /* a bare CR line is not a separator */
    {"To: a@b\n\rx\n", "To: a@b\n", 0, "\rx\n", "To: a@b\n\n\rx\n"},
    /* end of input inside a field, inside a name, after a CR */
    {"Subject: x", "Subject: x", 0, "", NULL},
    {"To: a@b\nSubject", "To: a@b\n", 0, "Subject", "To: a@b\n\nSubject"},
    {"To: a@b\n\r", "To: a@b\n", 0, "\r", "To: a@b\n\n\r"},
    {"", "", 0, "", NULL},
    /* mbox "From " line at the very start is dropped */
    {"From joe@x Mon Nov 23 13:40:00 2026\nTo: a@b\n\nbody\n", "To: a@b\n", 1, "body\n",
     "To: a@b\n\nbody\n"},
    {"From: joe@x\n\nbody\n", "From: joe@x\n", 1, "body\n", NULL},
    {"To: a@b\n\nFrom joe\n", "To: a@b\n", 1, "From joe\n", NULL},
    /* lone "." lines are content, wherever they are */
    {"To: a@b\n\nline\n.\nafter\n.\n", "To: a@b\n", 1, "line\n.\nafter\n.\n", NULL},
    {".\n", "", 0, ".\n", NULL},
    /* continuation after the blank line is body */
    {"A: 1\n\n B: 2\n", "A: 1\n", 1, " B: 2\n", NULL},
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
		assert_stream(&m, c->out ? c->out : c->in);
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

static void test_long_name_is_body(void **state)
{
	char in[400], name[120];
	struct message m;

	(void)state;
	memset(name, 'X', 101);
	name[101] = '\0';
	snprintf(in, sizeof in, "%s: v\n\nb\n", name);
	read_ok(&m, in, 0);
	assert_int_equal(m.headers_len, 0);
	assert_body(&m, in);
	message_free(&m);

	name[100] = '\0';
	snprintf(in, sizeof in, "%s: v\n\nb\n", name);
	read_ok(&m, in, 0);
	assert_int_equal(m.headers_len, strlen(name) + 4);
	assert_body(&m, "b\n");
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
	assert_int_equal(m.headers_len, n * line);
	assert_int_equal(m.body_len, 299999);
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
	    {"To: a@b\nBcc: x@y,\n z@w\nSubject: s\n\nbody\n", "To: a@b\nSubject: s\n\nbody\n"},
	    {"bcc: x@y\r\n\tz@w\r\nTo: a@b\r\n\r\nB\r\n", "To: a@b\r\n\r\nB\r\n"},
	    {"To: a@b\nBCC: x@y\n\n", "To: a@b\n\n"},
	    {"To: a@b\nBcc: x@y", "To: a@b\n"},
	    {"Resent-Bcc: x@y\nTo: a@b\n\nb", "To: a@b\n\nb"},
	    {"X-Bcc-Note: kept\n\nBcc: in the body\n", "X-Bcc-Note: kept\n\nBcc: in the body\n"},
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
	assert_true(strncmp(out, "To: a@b\nSubject: s\nFrom: joe@example.com\nDate: ", 47) == 0);
	assert_true(matches(out, DATE_RE));
	assert_true(matches(out, MSGID_RE));
	assert_non_null(strstr(out, ">\n\nbody\n"));
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
	struct msg_opts o = {.add_headers = 1,
			     .sender = "joe@example.com",
			     .fullname = "Joe",
			     .domain = "example.org"};
	struct message m;

	(void)state;
	read_ok(&m, in, 0);
	prepare_ok(&m, &o);
	assert_stream(&m, in);
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
	assert_stream(&m, "To: a@b\n\nbody\n");
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
	assert_true(strncmp(out, "Subject: x\nFrom: j@x\nDate: ", 27) == 0);
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
	assert_true(strncmp(out, "From: j@x\nDate: ", 16) == 0);
	blank = strstr(out, "\n\n");
	assert_non_null(blank);
	assert_string_equal(blank, "\n\njust a body line\n");
	assert_true(matches(out, MSGID_RE));
	free(out);
	message_free(&m);
}

struct name_case {
	const char *name, *from;
};

static const struct name_case name_cases[] = {
    {"Joe Doe", "From: Joe Doe <joe@x.org>\n"},
    {"CronDaemon", "From: CronDaemon <joe@x.org>\n"},
    {"Doe, Joe", "From: \"Doe, Joe\" <joe@x.org>\n"},
    {"Joe \"JD\" Doe", "From: \"Joe \\\"JD\\\" Doe\" <joe@x.org>\n"},
    {"back\\slash", "From: \"back\\\\slash\" <joe@x.org>\n"},
    {"J. Doe", "From: \"J. Doe\" <joe@x.org>\n"},
    {"a <b>", "From: \"a <b>\" <joe@x.org>\n"},
    {"Jos\xc3\xa9", "From: Jos\xc3\xa9 <joe@x.org>\n"},
    {"", "From: joe@x.org\n"},
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
		assert_true(strncmp(out + 11, name_cases[i].from, strlen(name_cases[i].from)) == 0);
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
	     "From: Cron Daemon <joe@example.com>\nTo: root\n\nb\n"},
	    {"To: a@b\nFrom: \"Doe, J\"\n <x@y>\nSubject: s\n\nb\n",
	     "To: a@b\nFrom: \"Doe, J\" <joe@example.com>\nSubject: s\n\nb\n"},
	    {"From: x@y\r\n\r\nb\r\n", "From: joe@example.com\r\n\r\nb\r\n"},
	    {"From: Joe <x@y>\n\n", "From: Joe <joe@example.com>\n\n"},
	    {"To: a@b\n\nb\n", "To: a@b\nFrom: joe@example.com\n\nb\n"},
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
	assert_stream(&m, "Subject: s\nFrom: Cron Daemon <joe@example.com>\n\nb\n");
	message_free(&m);
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

static void test_stream_big(void **state)
{
	static unsigned char buf[65543];
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
	assert_int_equal(m.body_len, BIG);
	assert_int_equal(message_size(&m), BIG + 9);

	message_rewind(&m, &r);
	while ((n = message_next(&r, buf, sizeof buf, &e)) > 0) {
		for (long k = 0; k < n; k++, total++) {
			unsigned char want =
			    total < 9 ? (unsigned char)"To: a@b\n\n"[total] : pattern(total - 9);
			bad += buf[k] != want;
		}
	}
	assert_int_equal(n, 0);
	assert_int_equal(total, BIG + 9);
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
	    cmocka_unit_test(test_stream_big),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
