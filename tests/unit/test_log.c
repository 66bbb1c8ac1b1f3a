/* test_log.c — log_sanitize and the per-message log line (format, file
 * target, log = off). */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char *rcpts2[] = { "a@example.org", "b@example.org" };

static struct log_record base_record(void)
{
	struct log_record r = {
		.account = "work",
		.host = "smtp.example.com",
		.port = 587,
		.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384",
		.sender = "joe@example.com",
		.rcpts = rcpts2,
		.nrcpts = 2,
		.size = 1234,
		.status = "sent",
		.result = "250 2.0.0 Ok: queued as 4711",
		.msgid = "<abc@example.com>",
		.queue_id = NULL,
		.duration_ms = 412,
	};
	return r;
}

static void test_format_full(void **state)
{
	struct log_record r = base_record();
	char buf[LOG_RECORD_MAX];
	size_t n;

	(void)state;
	n = log_record_format(buf, sizeof buf, &r);
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf,
			    "account=work relay=smtp.example.com:587 "
			    "tls=TLSv1.3/TLS_AES_256_GCM_SHA384 from=<joe@example.com> "
			    "to=<a@example.org>,<b@example.org> size=1234 msgid=<abc@example.com> "
			    "queue_id=- duration=0.412s status=sent (250 2.0.0 Ok: queued as 4711)");
}

enum field { F_SENDER, F_NOCONN, F_TLS, F_SIZE, F_QID, F_DUR, F_QUEUED, F_RESULT, F_RCPT,
	      F_ACCOUNT, F_NORCPT };

static char *evil_rcpt[] = { "x@y\r\nFAKE status=sent" };

static void change(struct log_record *r, enum field f, const char *s, long long n)
{
	switch (f) {
	case F_SENDER: r->sender = s; break;
	case F_NOCONN: r->host = NULL; r->port = 0; r->tls = NULL; break;
	case F_TLS: r->tls = s; break;
	case F_SIZE: r->size = n; break;
	case F_QID: r->queue_id = s; break;
	case F_DUR: r->duration_ms = (long)n; break;
	case F_QUEUED: r->status = "queued"; r->result = s; break;
	case F_RESULT: r->result = s; break;
	case F_RCPT: r->rcpts = evil_rcpt; r->nrcpts = 1; break;
	case F_ACCOUNT: r->account = s; break;
	case F_NORCPT: r->rcpts = NULL; r->nrcpts = 0; break;
	}
}

/* Table: one field changed, a substring the line must contain, one it
 * must not. */
static void test_format_table(void **state)
{
	static const struct {
		const char *what;
		enum field f;
		const char *s;
		long long n;
		const char *want, *unwanted;
	} rows[] = {
		{ "null sender", F_SENDER, "", 0, "from=<> ", NULL },
		{ "no connection", F_NOCONN, NULL, 0, "relay=- tls=none ", NULL },
		{ "plain connection", F_TLS, "", 0, "tls=none ", NULL },
		{ "unknown size", F_SIZE, NULL, -1, "size=- ", NULL },
		{ "queue id", F_QID, "20240101-abc", 0, "queue_id=20240101-abc ", NULL },
		{ "no duration", F_DUR, NULL, -1, "duration=- ", NULL },
		{ "long duration", F_DUR, NULL, 75003, "duration=75.003s ", NULL },
		{ "queued", F_QUEUED, "451 4.3.0 later", 0, "status=queued (451 4.3.0 later)", NULL },
		{ "no result", F_RESULT, NULL, 0, "status=sent", "(" },
		{ "multi-line reply", F_RESULT, "550 no\nsecond line", 0, "(550 no second line)", "\n" },
		{ "escape in reply", F_RESULT, "550 \033[31mred", 0, "(550 ?[31mred)", "\033" },
		{ "CRLF in recipient", F_RCPT, NULL, 0, "to=<x@y__FAKE_status=sent>", "\r" },
		{ "space in account", F_ACCOUNT, "my work", 0, "account=my_work ", NULL },
		{ "UTF-8 kept", F_SENDER, "j\xc3\xb6@ex\xc3\xa4mple.org", 0,
		  "from=<j\xc3\xb6@ex\xc3\xa4mple.org>", NULL },
		{ "no recipients", F_NORCPT, NULL, 0, " to=- ", NULL },
	};
	char buf[LOG_RECORD_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct log_record r = base_record();

		change(&r, rows[i].f, rows[i].s, rows[i].n);
		log_record_format(buf, sizeof buf, &r);
		if (!strstr(buf, rows[i].want))
			fail_msg("%s: %s lacks %s", rows[i].what, buf, rows[i].want);
		if (rows[i].unwanted && strstr(buf, rows[i].unwanted))
			fail_msg("%s: %s contains %s", rows[i].what, buf, rows[i].unwanted);
		assert_null(strchr(buf, '\n'));
	}
}

/* Many recipients: the line stays bounded and says how many were cut. */
static void test_format_many_rcpts(void **state)
{
	enum { N = 500 };
	char *list[N], names[N][40], buf[LOG_RECORD_MAX];
	struct log_record r = base_record();
	size_t n;

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "recipient%03d@example.org", i);
		list[i] = names[i];
	}
	r.rcpts = list;
	r.nrcpts = N;
	n = log_record_format(buf, sizeof buf, &r);
	assert_true(n < sizeof buf);
	assert_non_null(strstr(buf, " more)"));
	assert_non_null(strstr(buf, "status=sent (250"));
	/* A tiny buffer is never overrun. */
	n = log_record_format(buf, 16, &r);
	assert_int_equal(n, 15);
	assert_int_equal(strlen(buf), 15);
}

static char *slurp(const char *path)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_file_target(void **state)
{
	char dir[] = "/tmp/test_log.XXXXXX", path[256], *text, *second;
	struct log_record r = base_record();
	struct perr e = { 0 };
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/postern.log", dir);
	assert_int_equal(log_record_write(path, &r, &e), 0);
	r.status = "queued";
	r.queue_id = "q1";
	assert_int_equal(log_record_write(path, &r, &e), 0);
	assert_int_equal(log_event_line(path, LOGL_WARNING, &e, "account=%s queue_id=%s status=%s (%s)",
					"work", "q1", "expired", "gave up\nafter 5 days"),
			 0);
	text = slurp(path);
	assert_non_null(text);
	/* Three lines, each "TIME postern[PID]: record". */
	second = strchr(text, '\n');
	assert_non_null(second);
	assert_non_null(strstr(text, " postern["));
	assert_non_null(strstr(text, "]: account=work relay=smtp.example.com:587 "));
	assert_non_null(strstr(second + 1, "queue_id=q1 duration=0.412s status=queued"));
	assert_non_null(strstr(text, "status=expired (gave up after 5 days)\n"));
	{
		int lines = 0;

		for (char *p = text; *p; p++)
			lines += *p == '\n';
		assert_int_equal(lines, 3);
	}
	assert_true(text[0] >= '2' && text[0] <= '9' && text[4] == '-' && text[10] == 'T');
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(path);
	rmdir(dir);
}

static void test_file_home_and_errors(void **state)
{
	char dir[] = "/tmp/test_log.XXXXXX", path[256];
	struct log_record r = base_record();
	struct perr e = { 0 };

	(void)state;
	assert_non_null(mkdtemp(dir));
	setenv("HOME", dir, 1);
	assert_int_equal(log_record_write("~/mail.log", &r, &e), 0);
	snprintf(path, sizeof path, "%s/mail.log", dir);
	assert_non_null(slurp(path));
	unlink(path);
	/* log = off writes nothing, anywhere. */
	assert_int_equal(log_record_write("off", &r, &e), 0);
	assert_int_equal(log_event_line("off", LOGL_ERR, &e, "x"), 0);
	assert_int_equal(access(path, F_OK), -1);
	/* A directory that does not exist: PERR_IO naming the path and a fix. */
	snprintf(path, sizeof path, "%s/missing/x.log", dir);
	assert_int_equal(log_record_write(path, &r, &e), -1);
	assert_int_equal(e.kind, PERR_IO);
	assert_non_null(strstr(e.text, path));
	assert_non_null(strstr(e.text, "log = syslog"));
	rmdir(dir);
}

/* A FIFO (or a directory) as the log file is refused at once, with or
 * without a reader: never a hang after the message was sent. */
static void test_file_not_regular(void **state)
{
	char dir[] = "/tmp/test_log.XXXXXX", path[256];
	struct log_record r = base_record();
	struct perr e = { 0 };
	char buf[64];
	int reader;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10); /* a hang ends the test, not the whole run */
	assert_int_equal(log_record_write(path, &r, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "log file "));
	assert_non_null(strstr(e.text, path));
	assert_non_null(strstr(e.text, "not a regular file"));
	reader = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(reader >= 0);
	perr_clear(&e);
	assert_int_equal(log_event_line(path, LOGL_ERR, &e, "x"), -1);
	alarm(0);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "is a FIFO, not a regular file"));
	assert_true(read(reader, buf, sizeof buf) <= 0); /* nothing written */
	close(reader);
	unlink(path);
	rmdir(dir);
}

/* syslog itself cannot be read back here; writing to it must not fail. */
static void test_syslog_target(void **state)
{
	struct log_record r = base_record();
	struct perr e = { 0 };

	(void)state;
	assert_int_equal(log_record_write("syslog", &r, &e), 0);
	assert_int_equal(log_record_write(NULL, &r, &e), 0);
	assert_int_equal(e.kind, PERR_NONE);
}

static void test_sanitize(void **state)
{
	static const struct {
		const char *in, *out;
	} rows[] = {
		{ "plain", "plain" },
		{ "tab\there", "tab here" },
		{ "esc\033[2J", "esc?[2J" },
		{ "nul", "nul" },
		{ "bad \xff utf8", "bad ? utf8" },
		{ "ok \xc3\xa9", "ok \xc3\xa9" },
		{ "c1 \xc2\x9b", "c1 ??" },
		{ "del\x7f", "del?" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		log_sanitize(buf, sizeof buf, rows[i].in, strlen(rows[i].in));
		assert_string_equal(buf, rows[i].out);
	}
	/* Never cuts a UTF-8 character in half. */
	assert_int_equal(log_sanitize(buf, 3, "a\xc3\xa9", 3), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_full),
		cmocka_unit_test(test_format_table),
		cmocka_unit_test(test_format_many_rcpts),
		cmocka_unit_test(test_file_target),
		cmocka_unit_test(test_file_home_and_errors),
		cmocka_unit_test(test_file_not_regular),
		cmocka_unit_test(test_syslog_target),
		cmocka_unit_test(test_sanitize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
