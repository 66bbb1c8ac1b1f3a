/* test_smtpstdio.c — the -bs dialogue with a fake delivery: reply codes
 * for scripted sessions, the bytes handed to delivery (dot-unstuffing,
 * the end of DATA only at <CRLF>.<CRLF>), outcome -> reply mapping, and
 * the timeout on a silent client. */
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
#include <ctype.h>

#include "config.h"
#include "deliver.h"
#include "message.h"
#include "smtpstdio.h"
#include "util.h"

/* What the fake delivery saw and what it answers. */
static struct {
	char data[8192];
	size_t len;
	char from[256];
	char rcpts[1024];
	const char *body_type;
	int calls;
	struct perr fail;        /* kind != NONE: refuse with this */
	int queue;               /* answer "queued" */
} fake;

static int fake_deliver(const struct config *cfg, const struct deliver_req *req,
			struct message *m, struct deliver_result *res, struct perr *e)
{
	struct msg_reader r;
	unsigned char buf[512];
	long n;

	(void)cfg;
	fake.calls++;
	fake.len = 0;
	message_rewind(m, &r);
	while ((n = message_next(&r, buf, sizeof buf, e)) > 0 &&
	       fake.len + (size_t)n < sizeof fake.data) {
		memcpy(fake.data + fake.len, buf, (size_t)n);
		fake.len += (size_t)n;
	}
	str_copy(fake.from, req->from ? req->from : "(null)", sizeof fake.from);
	fake.rcpts[0] = '\0';
	for (size_t i = 0; i < req->nrcpts; i++) {
		size_t l = strlen(fake.rcpts);
		snprintf(fake.rcpts + l, sizeof fake.rcpts - l, "%s%s", i ? "," : "", req->rcpts[i]);
	}
	fake.body_type = req->body_type;
	if (fake.fail.kind != PERR_NONE) {
		*e = fake.fail;
		return -1;
	}
	res->outcome = fake.queue ? DELIVER_QUEUED : DELIVER_SENT;
	if (fake.queue) {
		str_copy(res->queue_id, "Q123", sizeof res->queue_id);
		str_copy(res->reason, "server said 421", sizeof res->reason);
	}
	return 0;
}

static struct config cfg;

static int setup(void **state)
{
	static const char text[] = "[a]\nhost = localhost\ntls = off\nauth = off\n"
				   "from = a@example.com\nlocal_domains = box.lan\n";
	struct perr e = { 0 };

	(void)state;
	memset(&fake, 0, sizeof fake);
	if (!cfg.path && config_load_buffer(&cfg, "test.rc", text, sizeof text - 1, &e) < 0) {
		fprintf(stderr, "config: %s\n", e.text);
		return -1;
	}
	return 0;
}

static int teardown_all(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

/* A file descriptor that reads back these bytes. */
static int input_fd(const char *in, size_t len)
{
	char path[] = "/tmp/test-smtpstdio-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, in, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Run a session on in; return the replies (caller frees) and rc. */
static char *session(const char *in, size_t len, int timeout_s, int infd, int *rc, struct perr *e)
{
	char path[] = "/tmp/test-smtpstdio-out-XXXXXX";
	int out = mkstemp(path);
	struct smtpstdio_opts o = { .timeout_s = timeout_s, .deliver = fake_deliver };
	char *buf = xcalloc(1, 65536);

	assert_true(out >= 0);
	unlink(path);
	o.in_fd = infd >= 0 ? infd : input_fd(in, len);
	o.out_fd = out;
	*rc = smtpstdio_run(&cfg, &o, e);
	lseek(out, 0, SEEK_SET);
	assert_true(read(out, buf, 65535) >= 0);
	close(out);
	close(o.in_fd);
	return buf;
}

/* The reply codes of a transcript, as "220 250 ..." (last line of each). */
static void codes(const char *replies, char *out, size_t cap)
{
	const char *p = replies;

	out[0] = '\0';
	while (*p) {
		const char *eol = strstr(p, "\r\n");
		assert_non_null(eol);
		if (p[3] == ' ') {
			size_t l = strlen(out);
			snprintf(out + l, cap - l, "%s%.3s", l ? " " : "", p);
		}
		p = eol + 2;
	}
}

struct case_ {
	const char *name;
	const char *in;
	const char *want_codes;
	const char *want_data;   /* what delivery got; NULL: not called */
};

static const struct case_ cases[] = {
	{ "plain message",
	  "EHLO x\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n"
	  "From: s@example.com\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n.\r\nQUIT\r\n",
	  "220 250 250 250 354 250 221",
	  "From: s@example.com\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n" },
	{ "dots unstuffed; a bare-LF dot line and '.x' are content, line ends made CRLF",
	  "HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n"
	  "From: s@example.com\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\n"
	  "..\r\n...x\r\nline\n.\nmore\r\n.\r\r\n.\r\n",
	  "220 250 250 250 354 250",
	  "From: s@example.com\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\n"
	  ".\r\n..x\r\nline\r\n.\r\nmore\r\n\r\n\r\n" },
	{ "commands end with bare LF too; lower case verbs",
	  "ehlo x\nmail from:<s@example.com>\nrcpt to:<r@example.com>\nquit\n",
	  "220 250 250 250 221", NULL },
	{ "sequence errors",
	  "RCPT TO:<r@example.com>\r\nDATA\r\nMAIL FROM:<s@example.com>\r\n"
	  "MAIL FROM:<s@example.com>\r\nDATA\r\nRSET\r\nRCPT TO:<r@example.com>\r\n",
	  "220 503 503 250 503 554 250 503", NULL },
	{ "syntax errors and unsupported things",
	  "MAIL FROM:s@example.com\r\nRSET\r\nMAIL FROM:<s@example.com> X=1\r\n"
	  "MAIL FROM:<s@example.com> SIZE=abc\r\nMAIL FROM:<a b@c>\r\nBDAT 10 LAST\r\n"
	  "EXPN x\r\nFOO\r\nMAIL\r\n",
	  "220 250 250 555 501 553 502 502 500 501", NULL },
	{ "local names: resolvable by no aliases file -> 550",
	  "MAIL FROM:<s@example.com>\r\nRCPT TO:<root>\r\nRCPT TO:<root@box.lan>\r\n"
	  "RCPT TO:<Postmaster>\r\nRCPT TO:<r@example.com>\r\n",
	  "220 250 550 550 550 250", NULL },
	{ "source route dropped, quoted local part kept",
	  "MAIL FROM:<@relay.example:s@example.com>\r\nRCPT TO:<\"a b\"@example.com>\r\n"
	  "DATA\r\nX: y\r\n\r\nb\r\n.\r\n",
	  "220 250 250 354 250", "X: y\r\n\r\nb\r\n" },
	{ "NUL and bare CR in a command",
	  "NOOP\0x\r\nNO\rOP\r\nNOOP\r\n",
	  "220 500 500 250", NULL },
	{ "EOF without QUIT after a message",
	  "MAIL FROM:<s@example.com> BODY=8BITMIME SIZE=10\r\nRCPT TO:<r@example.com>\r\n"
	  "DATA\r\nA: b\r\n\r\nc\r\n.\r\n",
	  "220 250 250 354 250", "A: b\r\n\r\nc\r\n" },
};

static void test_cases(void **state)
{
	char got[512];
	struct perr e;
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct case_ *c = &cases[i];
		size_t len = strlen(c->in);

		if (strstr(c->name, "NUL"))
			len = sizeof "NOOP\0x\r\nNO\rOP\r\nNOOP\r\n" - 1;
		memset(&fake, 0, sizeof fake);
		char *out = session(c->in, len, 5, -1, &rc, &e);
		codes(out, got, sizeof got);
		if (strcmp(got, c->want_codes) != 0)
			fail_msg("%s: replies %s, want %s\n%s", c->name, got, c->want_codes, out);
		assert_int_equal(rc, 0);
		if (c->want_data) {
			assert_int_equal(fake.calls, 1);
			fake.data[fake.len] = '\0';
			if (strcmp(fake.data, c->want_data) != 0)
				{ for (size_t k = 0; k < fake.len; k++) fprintf(stderr, isprint((unsigned char)fake.data[k]) ? "%c" : "\\x%02x", fake.data[k]); fail_msg("%s: delivered the above", c->name); }
		} else {
			assert_int_equal(fake.calls, 0);
		}
		free(out);
	}
}

static void test_envelope(void **state)
{
	const char *in = "MAIL FROM:<s@example.com> BODY=8BITMIME\r\nRCPT TO:<a@example.com>\r\n"
			 "RCPT TO:<b@example.com>\r\nDATA\r\nX: y\r\n\r\nz\r\n.\r\n"
			 "MAIL FROM:<>\r\nRCPT TO:<c@example.com>\r\nDATA\r\nX: y\r\n\r\nz\r\n.\r\n";
	struct perr e;
	int rc;
	char *out;

	(void)state;
	out = session(in, strlen(in), 5, -1, &rc, &e);
	assert_int_equal(fake.calls, 2);
	assert_string_equal(fake.from, "");
	assert_string_equal(fake.rcpts, "c@example.com");
	assert_null(fake.body_type);   /* BODY= of the first message does not leak */
	free(out);
	memset(&fake, 0, sizeof fake);
	out = session(in, strlen(in) / 2 + 30, 5, -1, &rc, &e);  /* first message only */
	assert_int_equal(fake.calls, 1);
	assert_string_equal(fake.from, "s@example.com");
	assert_string_equal(fake.rcpts, "a@example.com,b@example.com");
	assert_string_equal(fake.body_type, "8BITMIME");
	free(out);
}

/* The outcome of delivery -> the reply to the final dot. */
static void test_outcomes(void **state)
{
	static const struct {
		enum perr_kind kind;
		int code;
		const char *enh;
		int queue;
		const char *want;
	} t[] = {
		{ PERR_NONE, 0, "", 0, "250 2.0.0 delivered" },
		{ PERR_NONE, 0, "", 1, "250 2.0.0 queued as Q123: server said 421" },
		{ PERR_TEMP, 0, "", 0, "451 4.3.0 why" },
		{ PERR_TEMP, 452, "4.2.2", 0, "452 4.2.2 why" },
		{ PERR_NOUSER, 550, "5.1.1", 0, "550 5.1.1 why" },
		{ PERR_NOUSER, 0, "", 0, "550 5.1.1 why" },
		{ PERR_UNAVAILABLE, 552, "5.3.4", 0, "552 5.3.4 why" },
		{ PERR_DATA, 0, "", 0, "554 5.6.0 why" },
		{ PERR_AUTH, 535, "5.7.8", 0, "451 4.7.0 why" },
		{ PERR_CONFIG, 0, "", 0, "451 4.3.5 why" },
		{ PERR_TEMP, 550, "5.0.0", 0, "451 4.3.0 why" },   /* class must match */
	};
	const char *in = "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n"
			 "X: y\r\n\r\nz\r\n.\r\n";
	struct perr e;
	int rc;

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		memset(&fake, 0, sizeof fake);
		fake.queue = t[i].queue;
		if (t[i].kind != PERR_NONE) {
			fake.fail.kind = t[i].kind;
			fake.fail.code = t[i].code;
			str_copy(fake.fail.enhanced, t[i].enh, sizeof fake.fail.enhanced);
			str_copy(fake.fail.text, "why", sizeof fake.fail.text);
		}
		char *out = session(in, strlen(in), 5, -1, &rc, &e);
		const char *last = strstr(out, "354 ");
		assert_non_null(last);
		last = strstr(last, "\r\n") + 2;
		if (strncmp(last, t[i].want, strlen(t[i].want)) != 0 ||
		    strcmp(last + strlen(t[i].want), "\r\n") != 0)
			fail_msg("case %zu: got %s want %s", i, last, t[i].want);
		free(out);
	}
}

static void test_long_line(void **state)
{
	size_t n = 3000;
	char *in = xmalloc(n + 64);
	char got[128];
	struct perr e;
	int rc;

	(void)state;
	memcpy(in, "NOOP ", 5);
	memset(in + 5, 'x', n);
	memcpy(in + 5 + n, "\r\nNOOP\r\n", 9);
	char *out = session(in, strlen(in), 5, -1, &rc, &e);
	codes(out, got, sizeof got);
	assert_string_equal(got, "220 500 250");
	free(out);
	free(in);
}

static void test_timeout(void **state)
{
	int p[2];
	struct perr e;
	int rc;
	int64_t t0 = mono_ms();

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "NOOP\r\n", 6), 6);
	char *out = session(NULL, 0, 1, p[0], &rc, &e);
	close(p[1]);
	assert_int_equal(rc, -1);
	assert_int_equal(e.kind, PERR_TEMP);
	assert_true(mono_ms() - t0 < 5000);
	assert_non_null(strstr(out, "250 2.0.0 ok\r\n421 4.4.2 "));
	free(out);
}

static void test_eof_in_data(void **state)
{
	const char *in = "MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nX: y\r\n\r\nz\r\n";
	struct perr e;
	int rc;

	(void)state;
	char *out = session(in, strlen(in), 5, -1, &rc, &e);
	assert_int_equal(rc, -1);
	assert_int_equal(e.kind, PERR_IO);
	assert_int_equal(fake.calls, 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_cases, setup),
		cmocka_unit_test_setup(test_envelope, setup),
		cmocka_unit_test_setup(test_outcomes, setup),
		cmocka_unit_test_setup(test_long_line, setup),
		cmocka_unit_test_setup(test_timeout, setup),
		cmocka_unit_test_setup(test_eof_in_data, setup),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
