/* test_addr.c — envelope mailbox checks (valid and invalid tables,
 * injection attempts, lengths, UTF-8, literals) and RFC 5322 address
 * lists (groups, comments, quoted commas, folding, bare local names). */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "addr.h"

/* ---- addr_check ---------------------------------------------------------- */

static const char *const valid[] = {
	"user@example.com",
	"a@b",
	"first.last@sub.example.co.uk",
	"user+tag@example.com",
	"!#$%&'*+-/=?^_`{|}~@example.com",
	"\"john doe\"@example.com",
	"\"a\\\"b\"@example.com",
	"\"a@b\"@example.com",
	"\"\"@example.com",
	"user@[192.0.2.1]",
	"user@[IPv6:2001:db8::1]",
	"user@[IPv6:::1]",
	"user@localhost",
	"a-b@a-b.c",
	"user@123.example",
	"user@xn--bcher-kva.example",
	"jos\xc3\xa9@ex\xc3\xa4mple.com",
	"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	"\"caf\xc3\xa9 x\"@example.com",
};

struct invalid_case {
	const char *addr;
	const char *why; /* substring of the error */
};

static const struct invalid_case invalid[] = {
	{ "", "empty" },
	{ "a@b>x", "invalid address \"a@b>x\": character '>' not allowed; give a plain address "
		   "like user@example.com" },
	{ "<a@b>", "character '<' not allowed" },
	{ "a@b>\r\nRCPT TO:<x@y>", "\"a@b>\\r\\nRCPT TO:<x@y>\": character '>'" },
	{ "a@b\r\nRCPT TO:<x@y>", "character '\\r' not allowed" },
	{ "a@b\nDATA", "character '\\n' not allowed" },
	{ "a\x01@b", "character '\\x01' not allowed" },
	{ "a\x7f@b", "character '\\x7f' not allowed" },
	{ "a\t@b", "character '\\t' not allowed" },
	{ "\"a\rb\"@c", "character '\\r' not allowed" },
	{ "\"a>b\"@c", "character '>' not allowed" },
	{ "a b@c", "character ' ' not allowed outside quotes" },
	{ "a(x)@b", "character '(' not allowed" },
	{ "a,b@c", "character ',' not allowed" },
	{ "a..b@c", "two dots" },
	{ ".a@c", "starts or ends with a dot" },
	{ "a.@c", "starts or ends with a dot" },
	{ "@c", "before '@' is empty" },
	{ "a@", "nothing after '@'" },
	{ "a@.c", "empty label" },
	{ "a@c.", "empty label" },
	{ "a@c..d", "empty label" },
	{ "a@-c.d", "starts or ends with '-'" },
	{ "a@c-.d", "starts or ends with '-'" },
	{ "a@c_d.com", "character '_' not allowed in the domain" },
	{ "a@b@c", "character '@' not allowed in the domain" },
	{ "a@b c", "character ' ' not allowed in the domain" },
	{ "\"unterminated@b", "quote is not closed" },
	{ "\"a\"b@c", "'@' must follow the closing quote" },
	{ "\"a\\", "'\\' at the end" },
	{ "a@[1.2.3]", "address literal" },
	{ "a@[300.1.1.1]", "address literal" },
	{ "a@[IPv6:zz::1]", "address literal" },
	{ "a@[1.2.3.4", "address literal" },
	{ "a@[tag:content]", "address literal" },
	{ "root", "no '@domain'" },
	{ "a@\xff.com", "invalid UTF-8 in the domain" },
	{ "\xc3@b", "invalid UTF-8 before '@'" },
	{ "\xc0\xaf@b", "invalid UTF-8" },
	{ "\xc2\x85@b", "invalid UTF-8" }, /* C1 control */
	{ "\"\xff\"@b", "invalid UTF-8 in the quoted part" },
};

static void test_check_valid(void **state)
{
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		perr_clear(&e);
		if (addr_check(valid[i], 0, &e) != 0)
			fail_msg("refused \"%s\": %s", valid[i], e.text);
		/* a full address is fine with allow_local too */
		assert_int_equal(addr_check(valid[i], 1, &e), 0);
	}
}

static void test_check_invalid(void **state)
{
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		perr_clear(&e);
		if (addr_check(invalid[i].addr, 0, &e) != -1)
			fail_msg("accepted \"%s\"", invalid[i].addr);
		assert_int_equal(e.kind, PERR_USAGE);
		if (!strstr(e.text, invalid[i].why))
			fail_msg("error for case %zu is \"%s\", wanted \"%s\"", i, e.text,
				 invalid[i].why);
		/* the message never carries a raw control character */
		for (const char *p = e.text; *p; p++)
			assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
	}
}

static void test_check_local(void **state)
{
	static const char *const ok[] = { "root", "cron-user", "first.last", "\"x y\"" };
	static const char *const bad[] = { "ro ot", "root>", "root\n", ".root", "" };
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(addr_check(ok[i], 1, &e), 0);
		assert_int_equal(addr_check(ok[i], 0, &e), -1);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(addr_check(bad[i], 1, &e), -1);
}

static void test_check_lengths(void **state)
{
	char a[400];
	struct perr e;

	(void)state;
	/* local part: 64 fine, 65 not */
	memset(a, 'l', 64);
	memcpy(a + 64, "@example.com", 13);
	assert_int_equal(addr_check(a, 0, &e), 0);
	memset(a, 'l', 65);
	memcpy(a + 65, "@example.com", 13);
	assert_int_equal(addr_check(a, 0, &e), -1);
	assert_non_null(strstr(e.text, "longer than 64"));
	/* label: 63 fine, 64 not */
	memcpy(a, "u@", 2);
	memset(a + 2, 'd', 63);
	memcpy(a + 65, ".com", 5);
	assert_int_equal(addr_check(a, 0, &e), 0);
	memset(a + 2, 'd', 64);
	memcpy(a + 66, ".com", 5);
	assert_int_equal(addr_check(a, 0, &e), -1);
	assert_non_null(strstr(e.text, "longer than 63"));
	/* total: ADDR_MAX fine, one more not (labels of 50) */
	memcpy(a, "u@", 2);
	for (size_t i = 2; i < ADDR_MAX + 1; i++)
		a[i] = (i - 2) % 51 == 50 ? '.' : 'x';
	a[ADDR_MAX] = '\0';
	assert_int_equal(addr_check(a, 0, &e), 0);
	a[ADDR_MAX] = 'x';
	a[ADDR_MAX + 1] = '\0';
	assert_int_equal(addr_check(a, 0, &e), -1);
	assert_non_null(strstr(e.text, "longer than 254"));
	/* the error quotes a long address cut short */
	assert_true(strlen(e.text) < 250);
	assert_non_null(strstr(e.text, "...\""));
}

static void test_is_utf8_and_domain(void **state)
{
	(void)state;
	assert_false(addr_is_utf8("user@example.com"));
	assert_true(addr_is_utf8("jos\xc3\xa9@example.com"));
	assert_true(addr_is_utf8("user@\xe4\xbe\x8b.com"));
	assert_string_equal(addr_domain("a@b.c"), "b.c");
	assert_string_equal(addr_domain("\"x@y\"@z"), "z");
	assert_string_equal(addr_domain("a@"), "");
	assert_null(addr_domain("root"));
}

/* ---- addr_parse_list ----------------------------------------------------- */

struct collect {
	char out[1024];
	int n;
	int fail_at; /* callback returns -1 on this call (1-based); 0 never */
};

static int collect_cb(void *ctx, const char *addr, struct perr *e)
{
	struct collect *c = ctx;
	size_t len = strlen(c->out);

	c->n++;
	if (c->fail_at && c->n == c->fail_at)
		return perr_set(e, PERR_NOUSER, "stop at %s", addr);
	snprintf(c->out + len, sizeof c->out - len, "%s%s", len ? "|" : "", addr);
	return 0;
}

struct list_case {
	const char *in;
	const char *out; /* addresses joined with '|'; NULL: an error */
	const char *why; /* substring of the error */
};

static const struct list_case lists[] = {
	{ "a@b", "a@b", NULL },
	{ "a@b, c@d", "a@b|c@d", NULL },
	{ "a@b,c@d", "a@b|c@d", NULL },
	{ "Joe <j@x>", "j@x", NULL },
	{ "Joe Q. Public <j@x>", "j@x", NULL },
	{ "J. Doe <j@x>", "j@x", NULL },
	{ "\"Doe, John\" <j@x>, k@y", "j@x|k@y", NULL },
	{ "\"Doe, \\\"J\\\"\" <j@x>", "j@x", NULL },
	{ "j@x (Joe, Doe), k@y", "j@x|k@y", NULL },
	{ "(c1 (nested, (deep)) c2) j@x (trail)", "j@x", NULL },
	{ "j(c)@(c)x(c).(c)com", "j@x.com", NULL },
	{ "Joe (the boss) <j@x> (work)", "j@x", NULL },
	{ "undisclosed-recipients:;", "", NULL },
	{ "undisclosed-recipients: ;", "", NULL },
	{ "grp: a@b, c@d;, e@f", "a@b|c@d|e@f", NULL },
	{ "grp: a@b, c@d; , e@f", "a@b|c@d|e@f", NULL },
	{ "x@y, grp: Joe <a@b>, , c@d ;", "x@y|a@b|c@d", NULL },
	{ "\"my group\": a@b;", "a@b", NULL },
	{ "a@b,\r\n c@d", "a@b|c@d", NULL },
	{ "a@b,\n\tc@d", "a@b|c@d", NULL },
	{ "Joe\r\n Doe <j@x>\r\n", "j@x", NULL },
	{ "\"Doe,\r\n John\" <j@x>", "j@x", NULL },
	{ ", ,a@b,, ,c@d,", "a@b|c@d", NULL },
	{ ",", "", NULL },
	{ "", "", NULL },
	{ "   ", "", NULL },
	{ "root", "root", NULL },
	{ "root, admin", "root|admin", NULL },
	{ "root (Cron Daemon)", "root", NULL },
	{ "Root <root>", "root", NULL },
	{ "\"john doe\"@example.com", "\"john doe\"@example.com", NULL },
	{ "\"a\\\"b\"@example.com", "\"a\\\"b\"@example.com", NULL },
	{ "john . doe @ example . com", "john.doe@example.com", NULL },
	{ "a@[1.2.3.4]", "a@[1.2.3.4]", NULL },
	{ "=?UTF-8?B?SsO2cmc=?= <j@x>", "j@x", NULL },
	{ "J\xc3\xb6rg <j\xc3\xb6rg@ex\xc3\xa4mple.de>", "j\xc3\xb6rg@ex\xc3\xa4mple.de", NULL },
	{ "joe@x <joe@x>", "joe@x", NULL },
	{ "<j@x>", "j@x", NULL },
	{ "<j@x>,<k@y>", "j@x|k@y", NULL },
	/* errors */
	{ "a@b (unterminated", NULL, "comment not closed with ')'" },
	{ "\"abc <j@x>", NULL, "quoted string not closed" },
	{ "Joe Doe", NULL, "a name without an address" },
	{ "Joe Doe, a@b", NULL, "a name without an address" },
	{ "a@b>\r\nRCPT TO:<x@y>", NULL, "found '>'" },
	{ "a@b\r\nRCPT TO:<x@y>", NULL, "unexpected character '\\r'" },
	{ "a@b\nRCPT TO:<x@y>", NULL, "unexpected character '\\n'" },
	{ "<@route:j@x>", NULL, "source routes" },
	{ "<>", NULL, "empty address <>" },
	{ "a@b; c@d", NULL, "separate addresses with commas" },
	{ "g1: g2: a@b;;", NULL, "a group inside a group" },
	{ "grp: a@b", NULL, "not closed with ';'" },
	{ ": a@b;", NULL, "needs a name" },
	{ "a@", NULL, "a domain after '@'" },
	{ "a@b.", NULL, "a domain after '@'" },
	{ "a..b@c", NULL, "a word after '.'" },
	{ ".a@c", NULL, "an address" },
	{ "Joe <j@x", NULL, "expected '>'" },
	{ "Joe <j@x>>", NULL, "found '>'" },
	{ "a@b)", NULL, "unexpected character ')'" },
	{ "[1.2.3.4]", NULL, "an address" },
	{ "a\x01@b", NULL, "unexpected character '\\x01'" },
	{ "\"a\x01\"@b", NULL, "character '\\x01' not allowed in a quoted string" },
	{ "a@[1.2[3]", NULL, "'[' inside a domain literal" },
	{ "a@[1.2.3.4", NULL, "domain literal not closed" },
	{ "a\\b@c", NULL, "unexpected character '\\'" },
};

static void test_list(void **state)
{
	struct collect c;
	struct perr e;

	(void)state;
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		const struct list_case *t = &lists[i];
		int r;

		memset(&c, 0, sizeof c);
		perr_clear(&e);
		r = addr_parse_list(t->in, collect_cb, &c, &e);
		if (t->out) {
			if (r != 0)
				fail_msg("case %zu refused: %s", i, e.text);
			assert_string_equal(c.out, t->out);
			continue;
		}
		if (r != -1)
			fail_msg("case %zu accepted, gave \"%s\"", i, c.out);
		assert_int_equal(e.kind, PERR_DATA);
		if (!strstr(e.text, t->why))
			fail_msg("case %zu: error \"%s\", wanted \"%s\"", i, e.text, t->why);
		for (const char *p = e.text; *p; p++)
			assert_false((unsigned char)*p < 0x20 || *p == 0x7f);
	}
}

static void test_list_every_addr_passes_check(void **state)
{
	/* what the list parser hands over is a clean mailbox */
	struct collect c;
	struct perr e;
	char *tok, *bar;

	(void)state;
	memset(&c, 0, sizeof c);
	assert_int_equal(addr_parse_list("\"Doe, J\" <j@x.org> (c), grp: \"q x\"@y.org, "
					 "k . l @ m . org;, <n@[10.0.0.1]>",
					 collect_cb, &c, &e),
			 0);
	assert_int_equal(c.n, 4);
	for (tok = c.out; tok; tok = bar ? bar + 1 : NULL) {
		bar = strchr(tok, '|');
		if (bar)
			*bar = '\0';
		if (addr_check(tok, 0, &e) != 0)
			fail_msg("\"%s\": %s", tok, e.text);
	}
}

static void test_list_callback_stops(void **state)
{
	struct collect c;
	struct perr e;

	(void)state;
	memset(&c, 0, sizeof c);
	c.fail_at = 2;
	assert_int_equal(addr_parse_list("a@b, c@d, e@f", collect_cb, &c, &e), -1);
	assert_int_equal(c.n, 2);
	assert_int_equal(e.kind, PERR_NOUSER);
	assert_string_equal(e.text, "stop at c@d");
	assert_string_equal(c.out, "a@b");
}

static void test_list_long(void **state)
{
	char in[600];
	struct collect c;
	struct perr e;

	(void)state;
	/* an addr-spec over ADDR_MAX is refused, not cut */
	memset(in, 'x', 300);
	memcpy(in + 300, "@example.com", 13);
	memset(&c, 0, sizeof c);
	assert_int_equal(addr_parse_list(in, collect_cb, &c, &e), -1);
	assert_non_null(strstr(e.text, "longer than 254"));
	assert_int_equal(c.n, 0);
	/* a long list of short addresses is fine */
	for (size_t i = 0; i + 5 < sizeof in; i += 5)
		memcpy(in + i, "a@b, ", 5);
	in[595] = '\0';
	memset(&c, 0, sizeof c);
	assert_int_equal(addr_parse_list(in, collect_cb, &c, &e), 0);
	assert_int_equal(c.n, 119);
}

/* ---- addr_parse_mailbox -------------------------------------------------- */

struct mbox_case {
	const char *in;
	int rc;
	const char *name;
	const char *addr;
};

static const struct mbox_case mboxes[] = {
	{ "Joe Doe <joe@x>", 0, "Joe Doe", "joe@x" },
	{ "  Joe   Q.  Public <j@x>", 0, "Joe Q. Public", "j@x" },
	{ "\"Doe, Joe\" <joe@x>", 0, "Doe, Joe", "joe@x" },
	{ "\"a\\\"b\" <j@x>", 0, "a\"b", "j@x" },
	{ "root (Cron Daemon)", 0, "Cron Daemon", "root" },
	{ "joe@x (Joe \\(x\\) Doe)", 0, "Joe (x) Doe", "joe@x" },
	{ "joe@x (Joe (nested) Doe)", 0, "Joe (nested) Doe", "joe@x" },
	{ "joe@x", 0, "", "joe@x" },
	{ "<joe@x>", 0, "", "joe@x" },
	{ "Logwatch", 0, "", "Logwatch" },
	{ "Joe\r\n Doe <joe@x>", 0, "Joe Doe", "joe@x" },
	{ "=?UTF-8?Q?J=C3=B6rg?= <j@x>", 0, "=?UTF-8?Q?J=C3=B6rg?=", "j@x" },
	{ "a@b, c@d", -1, "", "" },
	{ "grp: a@b;", -1, "", "" },
	{ "undisclosed-recipients:;", -1, "", "" },
	{ "", -1, "", "" },
	{ "Joe", 0, "", "Joe" },
	{ "Joe Doe", -1, "", "" },
	{ "Joe <j@x", -1, "", "" },
	{ "a@b\r\nBcc: x@y", -1, "", "" },
};

static void test_mailbox(void **state)
{
	char name[64], addr[ADDR_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof mboxes / sizeof mboxes[0]; i++) {
		const struct mbox_case *c = &mboxes[i];

		memset(name, 'Z', sizeof name);
		memset(addr, 'Z', sizeof addr);
		if (addr_parse_mailbox(c->in, name, sizeof name, addr, sizeof addr) != c->rc)
			fail_msg("case %zu (\"%s\"): wrong result", i, c->in);
		assert_string_equal(name, c->name);
		assert_string_equal(addr, c->addr);
	}
}

static void test_mailbox_caps(void **state)
{
	char name[5], addr[6];

	(void)state;
	/* a name that does not fit is cut; an address that does not fit fails */
	assert_int_equal(addr_parse_mailbox("Joe Doe <j@x>", name, sizeof name, addr, sizeof addr),
			 0);
	assert_string_equal(name, "Joe ");
	assert_string_equal(addr, "j@x");
	assert_int_equal(
		addr_parse_mailbox("Joe <joe@x.com>", name, sizeof name, addr, sizeof addr), -1);
	assert_int_equal(addr_parse_mailbox("joe@x", NULL, 0, addr, sizeof addr), 0);
	assert_string_equal(addr, "joe@x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_valid),
		cmocka_unit_test(test_check_invalid),
		cmocka_unit_test(test_check_local),
		cmocka_unit_test(test_check_lengths),
		cmocka_unit_test(test_is_utf8_and_domain),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_list_every_addr_passes_check),
		cmocka_unit_test(test_list_callback_stops),
		cmocka_unit_test(test_list_long),
		cmocka_unit_test(test_mailbox),
		cmocka_unit_test(test_mailbox_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
