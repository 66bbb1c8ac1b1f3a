/* test_aliases.c — the aliases file and local-address detection. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "util.h"

static char path[64];

static void write_file(const char *text)
{
	int fd;

	str_copy(path, "/tmp/postern-aliases-XXXXXX", sizeof path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Collect expansions into one comma-joined string. */
static int collect(void *ctx, const char *addr, struct perr *e)
{
	char *out = ctx;
	size_t n = strlen(out);

	(void)e;
	snprintf(out + n, 512 - n, "%s%s", n ? "," : "", addr);
	return 0;
}

static const char aliases_text[] =
	"# system aliases\n"
	"postmaster: root\n"
	"root: admin@example.com,\n"
	"  backup@example.com\n"
	"\n"
	"Cron: ops@example.com, root\n"
	"loop1: loop2\n"
	"loop2: loop1\n"
	"pipe: |/usr/bin/procmail\n";

struct expand_case {
	const char *addr;
	const char *want;  /* NULL: must fail */
	enum perr_kind kind;
};

static const struct expand_case cases[] = {
	{ "root", "admin@example.com,backup@example.com", PERR_NONE },
	{ "root@localhost", "admin@example.com,backup@example.com", PERR_NONE },
	{ "postmaster", "admin@example.com,backup@example.com", PERR_NONE },
	{ "cron", "ops@example.com,admin@example.com,backup@example.com", PERR_NONE },
	{ "nobody", NULL, PERR_NOUSER },
	{ "loop1", NULL, PERR_CONFIG },
	{ "pipe", NULL, PERR_NOUSER },
};

static void test_expand_table(void **state)
{
	struct aliases al;
	struct perr e = { 0 };

	(void)state;
	write_file(aliases_text);
	assert_int_equal(aliases_load(&al, path, &e), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[512] = "";
		int rc = aliases_expand(&al, cases[i].addr, collect, out, &e);

		if (cases[i].want) {
			assert_int_equal(rc, 0);
			assert_string_equal(out, cases[i].want);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(e.kind, cases[i].kind);
		}
	}
	aliases_free(&al);
	unlink(path);
}

static void test_default_catches_rest(void **state)
{
	struct aliases al;
	struct perr e = { 0 };
	char out[512] = "";

	(void)state;
	write_file("root: a@example.com\ndefault: catch@example.com\n");
	assert_int_equal(aliases_load(&al, path, &e), 0);
	assert_int_equal(aliases_expand(&al, "www-data", collect, out, &e), 0);
	assert_string_equal(out, "catch@example.com");
	aliases_free(&al);
	unlink(path);
}

static void test_no_file_names_fix(void **state)
{
	struct perr e = { 0 };
	char out[512] = "";

	(void)state;
	assert_int_equal(aliases_expand(NULL, "root", collect, out, &e), -1);
	assert_int_equal(e.kind, PERR_NOUSER);
	assert_non_null(strstr(e.text, "aliases"));
	assert_non_null(strstr(e.text, "root"));
}

static void test_unknown_names_file(void **state)
{
	struct aliases al;
	struct perr e = { 0 };
	char out[512] = "";

	(void)state;
	write_file("root: a@example.com\n");
	assert_int_equal(aliases_load(&al, path, &e), 0);
	assert_int_equal(aliases_expand(&al, "backup", collect, out, &e), -1);
	assert_non_null(strstr(e.text, path));
	assert_non_null(strstr(e.text, "backup: you@example.com"));
	aliases_free(&al);
	unlink(path);
}

static void test_bad_lines(void **state)
{
	static const char *bad[] = {
		"  continuation first\n",
		"no colon here\n",
		": empty name\n",
		"a@b: x@y\n",
	};
	struct aliases al;
	struct perr e = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(bad[i]);
		assert_int_equal(aliases_load(&al, path, &e), -1);
		assert_int_equal(e.kind, PERR_CONFIG);
		assert_non_null(strstr(e.text, ":1:"));
		aliases_free(&al);
		unlink(path);
	}
	assert_int_equal(aliases_load(&al, "/nonexistent/aliases", &e), -1);
	assert_non_null(strstr(e.text, "/nonexistent/aliases"));
	aliases_free(&al);
}

static void test_is_local(void **state)
{
	char host[256];

	(void)state;
	assert_true(aliases_is_local("root", NULL));
	assert_true(aliases_is_local("root@localhost", NULL));
	assert_true(aliases_is_local("root@LOCALHOST", NULL));
	assert_true(aliases_is_local("root@localhost.localdomain", NULL));
	assert_false(aliases_is_local("root@example.com", NULL));
	assert_true(aliases_is_local("root@box.lan", "example.org, box.lan"));
	assert_false(aliases_is_local("root@box.lan2", "example.org box.lan"));
	assert_int_equal(gethostname(host, sizeof host), 0);
	char addr[300];
	snprintf(addr, sizeof addr, "root@%s", host);
	assert_true(aliases_is_local(addr, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand_table),
		cmocka_unit_test(test_default_catches_rest),
		cmocka_unit_test(test_no_file_names_fix),
		cmocka_unit_test(test_unknown_names_file),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_is_local),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
