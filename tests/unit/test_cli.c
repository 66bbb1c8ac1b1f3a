/* test_cli.c — unit tests for cli.c: the real command lines of postern's
 * callers, every mode, the accepted-and-ignored options, injection
 * attempts, unknown options and missing values. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "errors.h"

#define ARGS_MAX 20

static int count_args(const char *const *argv)
{
	int n = 0;

	while (n < ARGS_MAX && argv[n])
		n++;
	return n;
}

static int parse(struct cli *c, const char *const *argv, struct perr *e)
{
	perr_clear(e);
	return cli_parse(c, count_args(argv), (char **)argv, e);
}

static void assert_str_or_null(const char *got, const char *want, const char *field, int row)
{
	if (!want && !got)
		return;
	if (!want || !got || strcmp(want, got) != 0)
		fail_msg("row %d: %s is \"%s\", want \"%s\"", row, field, got ? got : "(null)",
			 want ? want : "(null)");
}

/* ---- command lines that must parse -------------------------------------- */

struct ok_row {
	const char *argv[ARGS_MAX];
	enum cli_mode mode;
	int extract, verbose, queue_only, due_only, json;
	const char *from, *fullname, *config_file, *account;
	const char *notify, *ret, *envid, *body;
	int nrcpts;
	const char *rcpt0, *rcpt_last;
	const char *progname;
};

static const struct ok_row ok_rows[] = {
	/* Debian cron */
	{ .argv = { "/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root" },
	  .mode = CLI_SEND, .fullname = "CronDaemon", .body = "8BITMIME", .nrcpts = 1,
	  .rcpt0 = "root", .rcpt_last = "root", .progname = "sendmail" },
	/* cronie */
	{ .argv = { "sendmail", "-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "joe" },
	  .mode = CLI_SEND, .extract = 1, .from = "joe", .fullname = "CronDaemon" },
	/* anacron */
	{ .argv = { "/usr/sbin/sendmail", "-FAnacron", "-odi", "joe" },
	  .mode = CLI_SEND, .fullname = "Anacron", .nrcpts = 1, .rcpt0 = "joe", .rcpt_last = "joe" },
	/* systemd-cron: -B and its value as two arguments */
	{ .argv = { "sendmail", "-i", "-B", "8BITMIME", "root@example.com" },
	  .mode = CLI_SEND, .body = "8BITMIME", .nrcpts = 1, .rcpt0 = "root@example.com",
	  .rcpt_last = "root@example.com" },
	/* PHP mail() */
	{ .argv = { "/usr/sbin/sendmail", "-t", "-i", "-fwww@example.com" },
	  .mode = CLI_SEND, .extract = 1, .from = "www@example.com" },
	/* PHPMailer */
	{ .argv = { "/usr/sbin/sendmail", "-oi", "-fme@example.com", "-t" },
	  .mode = CLI_SEND, .extract = 1, .from = "me@example.com" },
	/* Symfony Mailer */
	{ .argv = { "/usr/sbin/sendmail", "-bs" }, .mode = CLI_SMTP_STDIO },
	{ .argv = { "/usr/sbin/sendmail", "-t" }, .mode = CLI_SEND, .extract = 1 },
	/* git send-email */
	{ .argv = { "/usr/sbin/sendmail", "-i", "-f", "me@example.com", "a@example.com",
	    "b@example.org", "Joe <c@example.net>" },
	  .mode = CLI_SEND, .from = "me@example.com", .nrcpts = 3, .rcpt0 = "a@example.com",
	  .rcpt_last = "Joe <c@example.net>" },
	/* mutt */
	{ .argv = { "/usr/sbin/sendmail", "-oem", "-oi", "-B8BITMIME", "-f", "me@example.com",
	    "-N", "failure,delay", "-R", "hdrs", "--", "a@example.com", "b@example.com" },
	  .mode = CLI_SEND, .from = "me@example.com", .notify = "failure,delay", .ret = "hdrs",
	  .body = "8BITMIME", .nrcpts = 2, .rcpt0 = "a@example.com", .rcpt_last = "b@example.com" },
	/* bsd-mailx, s-nail */
	{ .argv = { "sendmail", "-i", "-v", "-f", "me@example.com", "--", "a@example.com, b@example.com" },
	  .mode = CLI_SEND, .verbose = 1, .from = "me@example.com", .nrcpts = 1,
	  .rcpt0 = "a@example.com, b@example.com", .rcpt_last = "a@example.com, b@example.com" },
	/* mdadm, logwatch */
	{ .argv = { "sendmail", "-oi", "-t" }, .mode = CLI_SEND, .extract = 1 },
	/* after --, a recipient may start with '-' */
	{ .argv = { "sendmail", "--", "-odd@example.com" },
	  .mode = CLI_SEND, .nrcpts = 1, .rcpt0 = "-odd@example.com", .rcpt_last = "-odd@example.com" },
	/* null sender, both spellings; -r */
	{ .argv = { "sendmail", "-f", "<>", "-t" }, .mode = CLI_SEND, .extract = 1, .from = "" },
	{ .argv = { "sendmail", "-f", "", "-t" }, .mode = CLI_SEND, .extract = 1, .from = "" },
	{ .argv = { "sendmail", "-f<>", "-t" }, .mode = CLI_SEND, .extract = 1, .from = "" },
	{ .argv = { "sendmail", "-r", "bounce@example.com", "-t" },
	  .mode = CLI_SEND, .extract = 1, .from = "bounce@example.com" },
	/* grouping */
	{ .argv = { "sendmail", "-ti" }, .mode = CLI_SEND, .extract = 1 },
	{ .argv = { "sendmail", "-tfme@example.com" },
	  .mode = CLI_SEND, .extract = 1, .from = "me@example.com" },
	{ .argv = { "sendmail", "-vv", "-v", "-t" }, .mode = CLI_SEND, .extract = 1, .verbose = 3 },
	/* accepted and ignored */
	{ .argv = { "sendmail", "-L", "tag", "-h", "5", "-U", "-G", "-X", "/tmp/log", "-oQ/x",
	    "-odb", "-oee", "-om", "-m", "-n", "-bm", "-t" },
	  .mode = CLI_SEND, .extract = 1 },
	{ .argv = { "sendmail", "-odq", "-t" }, .mode = CLI_SEND, .extract = 1, .queue_only = 1 },
	{ .argv = { "sendmail", "-o", "dq", "-t" },
	  .mode = CLI_SEND, .extract = 1, .queue_only = 1 },
	{ .argv = { "sendmail", "-odq", "-odi", "-t" }, .mode = CLI_SEND, .extract = 1 },
	/* values */
	{ .argv = { "postern", "-C", "/etc/other.rc", "-a", "work", "-V", "QQ314159", "-B", "7bit",
	    "-N", "never", "-R", "FULL", "x@example.com" },
	  .mode = CLI_SEND, .config_file = "/etc/other.rc", .account = "work", .envid = "QQ314159",
	  .body = "7BIT", .notify = "never", .ret = "FULL", .nrcpts = 1, .rcpt0 = "x@example.com",
	  .rcpt_last = "x@example.com", .progname = "postern" },
	{ .argv = { "postern", "--account=work", "-t" },
	  .mode = CLI_SEND, .extract = 1, .account = "work" },
	{ .argv = { "postern", "--account", "work", "-t" },
	  .mode = CLI_SEND, .extract = 1, .account = "work" },
	{ .argv = { "postern", "-awork", "--account=work", "-t" },
	  .mode = CLI_SEND, .extract = 1, .account = "work" },
	/* modes */
	{ .argv = { "sendmail", "-bp" }, .mode = CLI_QUEUE_LIST },
	{ .argv = { "/usr/bin/mailq" }, .mode = CLI_QUEUE_LIST, .progname = "mailq" },
	{ .argv = { "mailq", "-bp" }, .mode = CLI_QUEUE_LIST },
	{ .argv = { "/usr/bin/newaliases" }, .mode = CLI_NEWALIASES, .progname = "newaliases" },
	{ .argv = { "sendmail", "-bi" }, .mode = CLI_NEWALIASES },
	{ .argv = { "sendmail", "-q" }, .mode = CLI_QUEUE_RUN },
	{ .argv = { "sendmail", "-q30m" }, .mode = CLI_QUEUE_RUN },
	{ .argv = { "postern", "-q", "--due" }, .mode = CLI_QUEUE_RUN, .due_only = 1 },
	{ .argv = { "postern", "--due", "-q" }, .mode = CLI_QUEUE_RUN, .due_only = 1 },
	{ .argv = { "postern", "--check" }, .mode = CLI_CHECK },
	{ .argv = { "postern", "--check", "-C", "/x.rc", "-a", "w" },
	  .mode = CLI_CHECK, .config_file = "/x.rc", .account = "w" },
	{ .argv = { "postern", "--probe" }, .mode = CLI_PROBE },
	{ .argv = { "postern", "--probe=work", "--json" },
	  .mode = CLI_PROBE, .account = "work", .json = 1 },
	{ .argv = { "postern", "--set-password" }, .mode = CLI_SET_PASSWORD },
	{ .argv = { "postern", "--set-password=work" },
	  .mode = CLI_SET_PASSWORD, .account = "work" },
	{ .argv = { "postern", "--help" }, .mode = CLI_HELP },
	{ .argv = { "postern", "--version" }, .mode = CLI_VERSION },
	{ .argv = { "postern", "-t", "--help", "-x" }, .mode = CLI_HELP, .extract = 1 },
};

static void check_ok_row(int i)
{
	const struct ok_row *r = &ok_rows[i];
	struct cli c;
	struct perr e;

	if (parse(&c, r->argv, &e) != 0)
		fail_msg("row %d (%s %s) refused: %s", i, r->argv[0], r->argv[1] ? r->argv[1] : "",
			 e.text);
	assert_int_equal(c.mode, r->mode);
	assert_int_equal(c.extract, r->extract);
	assert_int_equal(c.verbose, r->verbose);
	assert_int_equal(c.queue_only, r->queue_only);
	assert_int_equal(c.due_only, r->due_only);
	assert_int_equal(c.json, r->json);
	assert_str_or_null(c.from, r->from, "from", i);
	assert_str_or_null(c.fullname, r->fullname, "fullname", i);
	assert_str_or_null(c.config_file, r->config_file, "config_file", i);
	assert_str_or_null(c.account, r->account, "account", i);
	assert_str_or_null(c.dsn_notify, r->notify, "dsn_notify", i);
	assert_str_or_null(c.dsn_return, r->ret, "dsn_return", i);
	assert_str_or_null(c.dsn_envid, r->envid, "dsn_envid", i);
	assert_str_or_null(c.body_type, r->body, "body_type", i);
	if (r->mode == CLI_HELP || r->mode == CLI_VERSION)
		return;
	assert_int_equal(c.nrcpts, r->nrcpts);
	if (r->nrcpts) {
		assert_string_equal(c.rcpts[0], r->rcpt0);
		assert_string_equal(c.rcpts[c.nrcpts - 1], r->rcpt_last);
	}
	if (r->progname)
		assert_string_equal(c.progname, r->progname);
}

static void test_accepted(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok_rows) / sizeof(ok_rows[0]); i++)
		check_ok_row((int)i);
}

/* ---- command lines that must be refused --------------------------------- */

struct err_row {
	const char *argv[ARGS_MAX];
	const char *want;   /* substring of the error */
	const char *want2;  /* another, or NULL */
};

static char long_envid[128];

static const struct err_row err_rows[] = {
	/* injection through the envelope sender, a header value, a recipient */
	{ { "sendmail", "-f", "a@b>\r\nRCPT TO:<x@y>", "-t" }, "option -f", "(\\r)" },
	{ { "sendmail", "-fa@b\nDATA", "-t" }, "option -f", "(\\n)" },
	{ { "sendmail", "-F", "Cron\nBcc: victim@example.com", "-t" }, "option -F", "(\\n)" },
	{ { "sendmail", "-FCron\rX", "-t" }, "option -F", "(\\r)" },
	{ { "sendmail", "a@example.com\r\nRCPT TO:<x@y>" }, "recipient", "(\\r)" },
	{ { "sendmail", "--", "ok@example.com", "b@x\x7f" }, "recipient", "(\\x7f)" },
	{ { "sendmail", "a@x\tb" }, "recipient", "(\\t)" },
	{ { "sendmail", "-N", "never\r\nX", "-t" }, "option -N", "(\\r)" },
	{ { "sendmail", "-R", "full\n", "-t" }, "option -R", "(\\n)" },
	{ { "sendmail", "-V", "id\x01", "-t" }, "option -V", "(\\x01)" },
	{ { "sendmail", "-B", "8BITMIME\r", "-t" }, "option -B", "(\\r)" },
	{ { "sendmail", "-a", "wo\nrk", "-t" }, "option -a", "(\\n)" },
	{ { "sendmail", "-C", "/x\n", "-t" }, "option -C", "(\\n)" },
	/* bad values */
	{ { "sendmail", "-f", "a b@example.com", "-t" }, "option -f: ", NULL },
	{ { "sendmail", "-f", "-t" }, "option -f: \"-t\" looks like an option",
	  NULL },
	{ { "sendmail", "-f", "<a@example.com", "-t" }, "option -f: ", NULL },
	{ { "sendmail", "-N", "sometimes", "-t" }, "option -N: \"sometimes\"", NULL },
	{ { "sendmail", "-N", "never,success", "-t" }, "option -N", NULL },
	{ { "sendmail", "-N", "success,", "-t" }, "option -N", NULL },
	{ { "sendmail", "-R", "body", "-t" }, "option -R: \"body\" is not full or hdrs", NULL },
	{ { "sendmail", "-B", "9BIT", "-t" }, "option -B: \"9BIT\"", NULL },
	{ { "sendmail", "-V", "a b", "-t" }, "option -V", NULL },
	{ { "sendmail", "-V", "a+2B", "-t" }, "option -V", NULL },
	{ { "sendmail", "-V", long_envid, "-t" }, "option -V", "1 to 100" },
	{ { "sendmail", "-C", "", "-t" }, "option -C needs a file name", NULL },
	{ { "sendmail", "-a", "", "-t" }, "option -a needs an account name", NULL },
	{ { "sendmail", "-a", "x", "--account=y", "-t" }, "two accounts given", NULL },
	{ { "sendmail", "--probe=a", "-ab" }, "two accounts given", NULL },
	/* unknown options and missing values */
	{ { "sendmail", "-x", "root" }, "unknown option -x; see postern --help", NULL },
	{ { "sendmail", "-tz", "root" }, "unknown option -z", NULL },
	{ { "sendmail", "-\x01", "root" }, "unknown option -\\x01", NULL },
	{ { "sendmail", "--bogus" }, "unknown option --bogus; see postern --help", NULL },
	{ { "sendmail", "-", "root" }, "unknown option -", NULL },
	{ { "sendmail", "-t", "-f" }, "option -f needs a value", NULL },
	{ { "sendmail", "-F" }, "option -F needs a value", NULL },
	{ { "sendmail", "-B" }, "option -B needs a value", NULL },
	{ { "sendmail", "-o" }, "option -o needs a value", NULL },
	{ { "postern", "--account" }, "option --account needs a value", NULL },
	{ { "postern", "--check=yes" }, "option --check takes no value", NULL },
	/* modes */
	{ { "sendmail", "-bd" }, "unsupported mode -bd", NULL },
	{ { "sendmail", "-bt" }, "unsupported mode -bt", NULL },
	{ { "sendmail", "-bp", "-q" }, "options -bp and -q cannot be used together", NULL },
	{ { "postern", "--check", "--probe" }, "--check and --probe", NULL },
	{ { "postern", "--due" }, "--due works only with -q", NULL },
	{ { "postern", "--json", "-t" }, "--json works only with --probe", NULL },
	/* recipients */
	{ { "sendmail" }, "no recipients", "-t" },
	{ { "sendmail", "-i", "-f", "me@example.com" }, "no recipients", NULL },
	{ { "sendmail", "root", "-v" }, "option -v comes after the recipient root", NULL },
	{ { "sendmail", "" }, "empty recipient", NULL },
};

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void test_refused(void **state)
{
	struct cli c;
	struct perr e;
	size_t i;

	(void)state;
	memset(long_envid, 'A', 101);
	long_envid[101] = '\0';
	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		const struct err_row *r = &err_rows[i];

		if (parse(&c, r->argv, &e) == 0)
			fail_msg("row %zu (%s) accepted", i, r->argv[1] ? r->argv[1] : "");
		assert_int_equal(e.kind, PERR_USAGE);
		if (!strstr(e.text, r->want))
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, e.text, r->want);
		if (r->want2 && !strstr(e.text, r->want2))
			fail_msg("row %zu: \"%s\" lacks \"%s\"", i, e.text, r->want2);
		if (has_control(e.text))
			fail_msg("row %zu: raw control character in \"%s\"", i, e.text);
	}
}

/* An escaped injection never shows its payload raw, and a long value is
 * shown cut. */
static void test_injection_text(void **state)
{
	const char *argv[] = { "sendmail", "-f", "a@b>\r\nRCPT TO:<x@y>", "-t", NULL };
	struct cli c;
	struct perr e;

	(void)state;
	assert_int_equal(parse(&c, argv, &e), -1);
	assert_non_null(strstr(e.text, "\"a@b>\\r\\nRCPT TO:<x@y>\""));
}

static void test_rcpts_point_into_argv(void **state)
{
	const char *argv[] = { "sendmail", "-i", "a@x", "b@y", NULL };
	struct cli c;
	struct perr e;

	(void)state;
	assert_int_equal(parse(&c, argv, &e), 0);
	assert_int_equal(c.nrcpts, 2);
	assert_ptr_equal(c.rcpts[0], argv[2]);
	assert_ptr_equal(c.rcpts[1], argv[3]);
}

static void test_usage_lists_options(void **state)
{
	static const char *const opts[] = {
		"-t", "-f ADDR", "-r ADDR", "-F NAME", "-v", "-N never|success,failure,delay",
		"-R full|hdrs", "-V ENVID", "-B 7BIT|8BITMIME", "-bm", "-bs", "-bp", "-q",
		"--due", "-bi", "-C FILE", "-a NAME", "--account=NAME", "-odq", "-oi",
		"-L TAG", "-h N", "-U", "-G", "-X FILE", "--check", "--probe[=ACCOUNT]",
		"--set-password[=ACCOUNT]", "--help", "--version", "--json", "mailq",
		"newaliases",
	};
	const char *u = cli_usage();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (!strstr(u, opts[i]))
			fail_msg("usage lacks %s", opts[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_injection_text),
		cmocka_unit_test(test_rcpts_point_into_argv),
		cmocka_unit_test(test_usage_lists_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
