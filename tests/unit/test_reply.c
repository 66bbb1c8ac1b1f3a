/* test_reply.c — the SMTP reply parser: valid replies (one line, many
 * lines, enhanced codes) and everything it must refuse. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "reply.h"

/* Feed lines (a NULL-terminated list) until the reply completes or fails;
 * returns the result of the last feed. */
static int feed_all(struct reply *r, const char *const *lines, struct perr *e)
{
	int rc = -1;

	reply_init(r);
	perr_clear(e);
	for (; *lines; lines++) {
		rc = reply_feed(r, *lines, strlen(*lines), e);
		if (rc != 0)
			break;
	}
	return rc;
}

struct good_case {
	const char *lines[6];
	int code;
	const char *enhanced;
	unsigned nlines;
	const char *text;
};

static const struct good_case good[] = {
	{ { "250 OK" }, 250, "", 1, "OK" },
	{ { "220 mail.example.com ESMTP ready" }, 220, "", 1, "mail.example.com ESMTP ready" },
	{ { "250" }, 250, "", 1, "" },
	{ { "250 " }, 250, "", 1, "" },
	{ { "250 2.1.0 Sender OK" }, 250, "2.1.0", 1, "Sender OK" },
	{ { "550 5.7.1 Relaying denied" }, 550, "5.7.1", 1, "Relaying denied" },
	{ { "554 5.123.456 x" }, 554, "5.123.456", 1, "x" },
	{ { "250 2.0.0" }, 250, "2.0.0", 1, "" },
	/* not an enhanced code: class differs, too many digits, no space */
	{ { "250 5.1.1 odd" }, 250, "", 1, "5.1.1 odd" },
	{ { "250 2.1234.0 x" }, 250, "", 1, "2.1234.0 x" },
	{ { "250 2.1.0x" }, 250, "", 1, "2.1.0x" },
	{ { "250 2.1. x" }, 250, "", 1, "2.1. x" },
	{ { "250-mail.example.com", "250-PIPELINING", "250-SIZE 10240000", "250 AUTH PLAIN LOGIN" },
	  250, "", 4, "mail.example.com\nPIPELINING\nSIZE 10240000\nAUTH PLAIN LOGIN" },
	{ { "550-5.7.1 first", "550-5.7.1 second", "550 5.7.1 third" }, 550, "5.7.1", 3,
	  "first\nsecond\nthird" },
	/* a different enhanced code on a later line stays in its text */
	{ { "550-5.7.1 first", "550 5.1.1 second" }, 550, "5.7.1", 2, "first\n5.1.1 second" },
	{ { "250-", "250 done" }, 250, "", 2, "\ndone" },
	{ { "250-a", "250" }, 250, "", 2, "a\n" },
	/* untrusted text is sanitised */
	{ { "250 a\tb\x1b[31mred\x7f" }, 250, "", 1, "a b?[31mred?" },
	{ { "250 caf\xc3\xa9 \xff\xfe \xc2\x9b" }, 250, "", 1, "caf\xc3\xa9 ?? ??" },
	{ { "559 top" }, 559, "", 1, "top" },
	{ { "200 low" }, 200, "", 1, "low" },
};

static void test_good(void **state)
{
	struct reply r;
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const struct good_case *c = &good[i];

		assert_int_equal(feed_all(&r, c->lines, &e), 1);
		assert_int_equal(r.code, c->code);
		assert_string_equal(r.enhanced, c->enhanced);
		assert_int_equal(r.nlines, c->nlines);
		assert_string_equal(r.text, c->text);
		assert_int_equal(r.len, strlen(c->text));
	}
}

struct bad_case {
	const char *lines[4];
	const char *quoted; /* must appear in the error text */
};

static const struct bad_case bad[] = {
	{ { "garbage" }, "\"garbage\"" },
	{ { "" }, "\"\"" },
	{ { "25" }, "\"25\"" },
	{ { "250OK" }, "\"250OK\"" },
	{ { "250_OK" }, "\"250_OK\"" },
	{ { "150 nope" }, "\"150 nope\"" },
	{ { "650 nope" }, "\"650 nope\"" },
	{ { "260 nope" }, "\"260 nope\"" },
	{ { "599 nope" }, "\"599 nope\"" },
	{ { "2a0 nope" }, "\"2a0 nope\"" },
	{ { "25x nope" }, "\"25x nope\"" },
	{ { " 250 x" }, "\" 250 x\"" },
	{ { "HTTP/1.1 400 Bad Request" }, "\"HTTP/1.1 400 Bad Request\"" },
	{ { "250-first", "251 second" }, "\"251 second\"" },
	{ { "250-first", "250x" }, "\"250x\"" },
	{ { "250-first", "hello" }, "\"hello\"" },
	/* control characters in the quoted line are replaced */
	{ { "\x1b]0;pwned\x07" }, "\"?]0;pwned?\"" },
	{ { "25\r\n" }, "\"25??\"" },
};

static void test_bad(void **state)
{
	struct reply r;
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(feed_all(&r, bad[i].lines, &e), -1);
		assert_int_equal(e.kind, PERR_PROTOCOL);
		assert_non_null(strstr(e.text, bad[i].quoted));
		assert_non_null(strstr(e.text, "from server: "));
	}
}

static void test_malformed_message_format(void **state)
{
	struct reply r;
	struct perr e;
	const char *lines[] = { "garbage", NULL };

	(void)state;
	assert_int_equal(feed_all(&r, lines, &e), -1);
	assert_true(strncmp(e.text, "malformed reply from server: \"garbage\"", 38) == 0);
}

static void test_long_line_quoted_truncated(void **state)
{
	char line[REPLY_LINE_MAX];
	struct reply r;
	struct perr e;

	(void)state;
	memset(line, 'x', sizeof line);
	reply_init(&r);
	assert_int_equal(reply_feed(&r, line, sizeof line, &e), -1);
	assert_non_null(strstr(e.text, "x...\""));
	assert_true(strlen(e.text) < 250);
}

static void test_nul_in_line(void **state)
{
	struct reply r;
	struct perr e;

	(void)state;
	reply_init(&r);
	assert_int_equal(reply_feed(&r, "250 a\0b", 7, &e), 1);
	assert_string_equal(r.text, "a?b");
	reply_init(&r);
	assert_int_equal(reply_feed(&r, "2\0000 x", 5, &e), -1);
	assert_non_null(strstr(e.text, "\"2?0 x\""));
}

static void test_too_many_lines(void **state)
{
	struct reply r;
	struct perr e;

	(void)state;
	reply_init(&r);
	for (int i = 0; i < REPLY_LINES_MAX; i++)
		assert_int_equal(reply_feed(&r, "250-x", 5, &e), 0);
	assert_int_equal(reply_feed(&r, "250 x", 5, &e), -1);
	assert_int_equal(e.kind, PERR_PROTOCOL);
	assert_non_null(strstr(e.text, "more than 100 lines"));

	/* exactly REPLY_LINES_MAX lines is fine */
	reply_init(&r);
	for (int i = 0; i < REPLY_LINES_MAX - 1; i++)
		assert_int_equal(reply_feed(&r, "250-x", 5, &e), 0);
	assert_int_equal(reply_feed(&r, "250 x", 5, &e), 1);
	assert_int_equal(r.nlines, REPLY_LINES_MAX);
}

static void test_text_cap(void **state)
{
	char line[REPLY_LINE_MAX];
	char buf[64];
	struct reply r;
	struct perr e;

	(void)state;
	memcpy(line, "250-", 4);
	memset(line + 4, 'a', sizeof line - 4);
	reply_init(&r);
	/* three lines of ~2 KB: the text keeps what fits, quietly */
	assert_int_equal(reply_feed(&r, line, sizeof line, &e), 0);
	assert_int_equal(reply_feed(&r, line, sizeof line, &e), 0);
	line[3] = ' ';
	assert_int_equal(reply_feed(&r, line, sizeof line, &e), 1);
	assert_int_equal(r.nlines, 3);
	assert_true(r.len < REPLY_TEXT_MAX);
	assert_int_equal(strlen(r.text), r.len);
	assert_int_equal(r.len, REPLY_TEXT_MAX - 1);
	assert_int_equal(reply_line(&r, 0, buf, sizeof buf), (int)sizeof buf - 1);
	assert_int_equal(reply_line(&r, 2, buf, sizeof buf), -1);
}

static void test_text_cap_utf8(void **state)
{
	/* a cut never leaves half a UTF-8 character */
	char line[REPLY_LINE_MAX];
	struct reply r;
	struct perr e;
	size_t n = 4;

	(void)state;
	memcpy(line, "250-", 4);
	memset(line + 4, 'a', 1001);
	reply_init(&r);
	assert_int_equal(reply_feed(&r, line, 4 + 1001, &e), 0);
	memcpy(line, "250 ", 4);
	while (n + 2 <= sizeof line) {
		line[n++] = (char)0xc3;
		line[n++] = (char)0xa9;
	}
	assert_int_equal(reply_feed(&r, line, n, &e), 1);
	/* 1001 + '\n' + as many whole characters as fit before the cap */
	assert_int_equal(r.len, 1002 + 1044);
	assert_int_equal((unsigned char)r.text[r.len - 1], 0xa9);
	assert_int_equal((unsigned char)r.text[r.len - 2], 0xc3);
}

static void test_reply_line(void **state)
{
	const char *lines[] = { "250-mx.example.org greets you", "250-8BITMIME",
				"250-AUTH=LOGIN", "250 CHUNKING", NULL };
	struct reply r;
	struct perr e;
	char buf[8];
	char big[64];

	(void)state;
	assert_int_equal(feed_all(&r, lines, &e), 1);
	assert_int_equal(reply_line(&r, 1, big, sizeof big), 8);
	assert_string_equal(big, "8BITMIME");
	assert_int_equal(reply_line(&r, 3, big, sizeof big), 8);
	assert_string_equal(big, "CHUNKING");
	assert_int_equal(reply_line(&r, 4, big, sizeof big), -1);
	/* truncation into a small buffer */
	assert_int_equal(reply_line(&r, 0, buf, sizeof buf), 7);
	assert_string_equal(buf, "mx.exam");

	reply_init(&r);
	assert_int_equal(reply_line(&r, 0, big, sizeof big), -1);
}

static void test_oneline(void **state)
{
	const char *lines[] = { "550-5.7.1 one", "550-5.7.1 two", "550 5.7.1 three", NULL };
	struct reply r;
	struct perr e;
	char buf[64], small[10];

	(void)state;
	assert_int_equal(feed_all(&r, lines, &e), 1);
	reply_oneline(&r, buf, sizeof buf);
	assert_string_equal(buf, "one / two / three");
	reply_oneline(&r, small, sizeof small);
	assert_string_equal(small, "one / two");
	reply_oneline(&r, small, 5);
	assert_string_equal(small, "one");
}

static void test_oneline_utf8_cut(void **state)
{
	const char *lines[] = { "250 ab\xc3\xa9", NULL };
	struct reply r;
	struct perr e;
	char buf[4];

	(void)state;
	assert_int_equal(feed_all(&r, lines, &e), 1);
	reply_oneline(&r, buf, sizeof buf);
	assert_string_equal(buf, "ab");
}

/* log_sanitize is what makes reply text safe to print; tested here. */
struct san_case {
	const char *in;
	size_t len;
	size_t cap;
	const char *out;
};

#define S(x) x, sizeof x - 1

static const struct san_case san[] = {
	{ S("plain text"), 64, "plain text" },
	{ S("tab\there"), 64, "tab here" },
	{ S("nl\ncr\rnul\0end"), 64, "nl?cr?nul?end" },
	{ S("esc\x1b[2J del\x7f"), 64, "esc?[2J del?" },
	{ S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), 64, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
	{ S("C1 \xc2\x85\xc2\x9f ok \xc2\xa0"), 64, "C1 ???? ok \xc2\xa0" },
	{ S("overlong \xc0\xaf \xe0\x80\xaf"), 64, "overlong ?? ???" },
	{ S("surrogate \xed\xa0\x80"), 64, "surrogate ???" },
	{ S("too big \xf4\x90\x80\x80"), 64, "too big ????" },
	{ S("cut \xe2\x82"), 64, "cut ??" },
	{ S("abcdef"), 4, "abc" },
	{ S("ab\xc3\xa9"), 4, "ab" },  /* no half character at the cap */
	{ S("ab\xc3\xa9"), 5, "ab\xc3\xa9" },
	{ S("x"), 1, "" },
};

static void test_sanitize(void **state)
{
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof san / sizeof san[0]; i++) {
		size_t n = log_sanitize(buf, san[i].cap, san[i].in, san[i].len);

		assert_string_equal(buf, san[i].out);
		assert_int_equal(n, strlen(san[i].out));
	}
	assert_int_equal(log_sanitize(buf, 0, "x", 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_malformed_message_format),
		cmocka_unit_test(test_long_line_quoted_truncated),
		cmocka_unit_test(test_nul_in_line),
		cmocka_unit_test(test_too_many_lines),
		cmocka_unit_test(test_text_cap),
		cmocka_unit_test(test_text_cap_utf8),
		cmocka_unit_test(test_reply_line),
		cmocka_unit_test(test_oneline),
		cmocka_unit_test(test_oneline_utf8_cut),
		cmocka_unit_test(test_sanitize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
