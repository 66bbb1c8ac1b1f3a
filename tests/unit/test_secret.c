/* test_secret.c — secret.c: when a secret is needed, password_command
 * (output, exit codes, deadline, stdin, stderr), the order of sources and
 * the errors when none answers.  The keyring cases run in a private D-Bus
 * session with a throwaway gnome-keyring when those programs exist. */
#include "autoconf.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "secret.h"
#include "util.h"

static struct account make_account(const char *user, const char *cmd, const char *password)
{
	struct account a;

	memset(&a, 0, sizeof a);
	a.name = "work";
	a.host = "smtp.example.com";
	a.user = (char *)user;
	a.password_command = (char *)cmd;
	a.password = (char *)password;
	a.timeout = 5;
	a.auth = AUTH_AUTO;
	return a;
}

/* No session bus for the cases that are not about the keyring. */
static int no_bus(void **state)
{
	(void)state;
	unsetenv("DBUS_SESSION_BUS_ADDRESS");
	return 0;
}

static void test_needed(void **state)
{
	static const struct {
		enum auth_mech auth;
		const char *user;
		int want;
	} cases[] = {
	    {AUTH_AUTO, "joe", 1},     {AUTH_AUTO, NULL, 0},	       {AUTH_AUTO, "", 0},
	    {AUTH_OFF, "joe", 0},      {AUTH_PLAIN, NULL, 1},	       {AUTH_XOAUTH2, "joe", 1},
	    {AUTH_EXTERNAL, "joe", 0}, {AUTH_SCRAM_SHA_256, "joe", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct account a = make_account(cases[i].user, NULL, NULL);

		a.auth = cases[i].auth;
		assert_int_equal(secret_needed(&a), cases[i].want);
	}
}

static void test_not_needed(void **state)
{
	struct account a = make_account(NULL, "exit 1", NULL);
	struct secret s;
	struct perr e;

	(void)state;
	assert_int_equal(secret_resolve(&a, &s, &e), 0);
	assert_null(s.value);
	assert_int_equal(s.source, SECRET_NONE);
	secret_free(&s);
}

struct cmd_case {
	const char *cmd;
	const char *value; /* NULL: an error */
	enum perr_kind kind;
	const char *text; /* part of the error text */
};

/* A command that fails, prints nothing or is killed: the secret is only
 * unavailable for now (PERR_TEMP, cause secret), with the exit status and
 * the first stderr line in the text.  A malformed output line is a
 * configuration error. */
static const struct cmd_case cmd_cases[] = {
    {"echo hunter2", "hunter2", 0, NULL},
    {"printf 'pw\\r\\nsecond line\\n'", "pw", 0, NULL},
    {"printf 'no newline'", "no newline", 0, NULL},
    {"printf '  spaced pw \\n'", "  spaced pw ", 0, NULL},
    /* stdin is not a terminal here: the command reads /dev/null */
    {"read x; echo \"got:$x\"", "got:", 0, NULL},
    /* lots of output after the first line is drained, not a hang */
    {"echo tok; head -c 200000 /dev/zero | tr '\\0' a", "tok", 0, NULL},
    {"echo tok; head -c 200000 /dev/zero | tr '\\0' a >&2", "tok", 0, NULL},
    {"exit 3", NULL, PERR_TEMP,
     "password_command for account work failed (exit status 3); the secret is unavailable "
     "for now: run the command by hand to see why"},
    {"echo 'gpg: decryption failed' >&2; exit 1", NULL, PERR_TEMP,
     "password_command for account work failed (exit status 1: gpg: decryption failed)"},
    {"echo 'gpg: decryption failed' >&2; echo 'second' >&2; exit 2", NULL, PERR_TEMP,
     "failed (exit status 2: gpg: decryption failed);"},
    {"echo pw; exit 1", NULL, PERR_TEMP, "failed (exit status 1)"},
    {"true", NULL, PERR_TEMP, "password_command for account work printed nothing (exit status 0)"},
    {"echo 'no entry' >&2", NULL, PERR_TEMP, "printed nothing (exit status 0: no entry)"},
    {"printf '\\r\\n'", NULL, PERR_TEMP, "printed nothing"},
    {"kill -9 $$", NULL, PERR_TEMP, "failed (killed by signal 9)"},
    /* the stderr line is sanitised */
    {"printf 'bad \\033[31mred\\r\\n' >&2; exit 4", NULL, PERR_TEMP,
     "(exit status 4: bad ?[31mred)"},
    {"/nonexistent/postern-helper", NULL, PERR_TEMP, "failed (exit status 127: "},
    {"head -c 9000 /dev/zero | tr '\\0' a", NULL, PERR_CONFIG, "longer than 8192"},
};

static void test_command(void **state)
{
	int saved = dup(0), null = open("/dev/null", O_RDONLY);

	(void)state;
	assert_true(saved >= 0 && null >= 0);
	dup2(null, 0); /* whatever ran the test, stdin is not a terminal */
	close(null);
	for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct account a = make_account("joe", c->cmd, "file-pw");
		struct secret s;
		struct perr e;
		int rc;

		print_message("# case %zu: %s\n", i, c->cmd);
		perr_clear(&e);
		rc = secret_resolve(&a, &s, &e);
		if (c->value) {
			assert_int_equal(rc, 0);
			assert_string_equal(s.value, c->value);
			assert_int_equal(s.len, strlen(c->value));
			assert_int_equal(s.source, SECRET_COMMAND);
		} else {
			assert_int_equal(rc, -1);
			assert_int_equal(e.kind, c->kind);
			assert_int_equal(e.cause, c->kind == PERR_TEMP ? PERR_CAUSE_SECRET
								       : PERR_CAUSE_NONE);
			if (!strstr(e.text, c->text))
				fail_msg("\"%s\" does not contain \"%s\"", e.text, c->text);
			assert_null(s.value);
		}
		secret_free(&s);
		assert_null(s.value);
	}
	dup2(saved, 0);
	close(saved);
}

/* The secret never reaches the error text, even when the command prints
 * it on stderr too. */
static void test_command_error_no_secret(void **state)
{
	struct account a = make_account("joe", "echo s3cret-42; echo \"x s3cret-42 y\" >&2; exit 1",
					NULL);
	struct secret s;
	struct perr e;

	(void)state;
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_TEMP);
	assert_int_equal(e.cause, PERR_CAUSE_SECRET);
	assert_non_null(strstr(e.text, "failed (exit status 1: "));
	assert_null(strstr(e.text, "s3cret"));
}

static void test_command_timeout(void **state)
{
	static const char *const cmds[] = {
	    "sleep 10", "echo pw; sleep 10", /* stdout still open, not exited */
	    "exec >&-; sleep 10",	     /* stdout closed, process alive */
	};

	(void)state;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		struct account a = make_account("joe", cmds[i], NULL);
		struct secret s;
		struct perr e;
		int64_t t0 = mono_ms(), dt;

		print_message("# case %zu: %s\n", i, cmds[i]);
		a.timeout = 1;
		assert_int_equal(secret_resolve(&a, &s, &e), -1);
		dt = mono_ms() - t0;
		assert_int_equal(e.kind, PERR_TEMP);
		assert_int_equal(e.cause, PERR_CAUSE_SECRET);
		assert_non_null(strstr(e.text, "password_command for account work did not "
					       "finish within 1 s"));
		assert_true(dt >= 900 && dt < 2500);
		assert_null(s.value);
	}
}

/* The command exits, but a background child it started keeps its stdout
 * (and stderr) open: postern waits for the exit, not for the end of the
 * output, so it returns at once. */
static void test_command_background_child(void **state)
{
	static const char *const cmds[] = {
	    "echo s3cret; sleep 30 &",
	    "sleep 30 & echo s3cret",
	    "printf s3cret; (sleep 30; echo late) &",
	};

	(void)state;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		struct account a = make_account("joe", cmds[i], NULL);
		struct secret s;
		struct perr e;
		int64_t t0 = mono_ms(), dt;

		print_message("# case %zu: %s\n", i, cmds[i]);
		a.timeout = 10;
		if (secret_resolve(&a, &s, &e) != 0)
			fail_msg("secret_resolve: %s", e.text);
		dt = mono_ms() - t0;
		assert_string_equal(s.value, "s3cret");
		assert_true(dt < 5000);
		secret_free(&s);
	}
}

/* The command's stderr reaches ours; nothing of the secret does. */
static void test_command_stderr(void **state)
{
	char path[] = "/tmp/postern-test-XXXXXX", buf[256] = "";
	struct account a = make_account("joe", "echo 'helper says hi' >&2; echo s3cret", NULL);
	struct secret s;
	struct perr e;
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	(void)state;
	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	dup2(fd, 2);
	assert_int_equal(secret_resolve(&a, &s, &e), 0);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "helper says hi\n");
	assert_string_equal(s.value, "s3cret");
	secret_free(&s);
}

/* Run cmd with fd `in` as stdin; returns the secret (static) or fails. */
static const char *resolve_with_stdin(const char *cmd, int in)
{
	static char out[64];
	struct account a = make_account("joe", cmd, NULL);
	struct secret s;
	struct perr e;
	int saved = dup(0);

	assert_true(saved >= 0);
	dup2(in, 0);
	if (secret_resolve(&a, &s, &e) != 0)
		fail_msg("secret_resolve: %s", e.text);
	dup2(saved, 0);
	close(saved);
	snprintf(out, sizeof out, "%s", s.value);
	secret_free(&s);
	return out;
}

/* stdin: a terminal is inherited (the command may prompt); anything else
 * (the message, a -bs session) is not the command's to read. */
static void test_command_stdin(void **state)
{
	int p[2], m, t;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "typed\n", 6), 6);
	assert_string_equal(resolve_with_stdin("read x; echo \"got:$x\"", p[0]), "got:");
	close(p[0]);
	close(p[1]);

	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		skip();
	t = open(ptsname(m), O_RDWR | O_NOCTTY);
	assert_true(t >= 0);
	assert_int_equal(write(m, "typed\n", 6), 6);
	assert_string_equal(resolve_with_stdin("read x; echo \"got:$x\"", t), "got:typed");
	close(t);
	close(m);
}

/* The command runs with default signal dispositions and an empty signal
 * mask, whatever postern ignores or blocks. */
static void test_command_signals(void **state)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_xfsz, old_pipe;
	sigset_t block, old_mask;
	int null = open("/dev/null", O_RDONLY);
	const char *got;

	(void)state;
	sigaction(SIGXFSZ, &ign, &old_xfsz);
	sigaction(SIGPIPE, &ign, &old_pipe);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	got = resolve_with_stdin("sed -n 's/^SigIgn:[[:space:]]*/ign=/p; "
				 "s/^SigBlk:[[:space:]]*/blk=/p' /proc/self/status | tr '\\n' ' '",
				 null);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGXFSZ, &old_xfsz, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	close(null);
	/* signals 32 and 33 are glibc's own (its sigaction refuses them):
	 * whatever ran the test may have left them ignored */
	{
		unsigned long long blk = 1, ignored = 1;
		const unsigned long long glibc = 3ULL << 31;

		assert_int_equal(sscanf(got, "blk=%llx ign=%llx", &blk, &ignored), 2);
		assert_int_equal(blk & ~glibc, 0);
		assert_int_equal(ignored & ~glibc, 0);
	}
}

static void test_file_password(void **state)
{
	struct account a = make_account("joe", NULL, "from-file");
	struct secret s;
	struct perr e;

	(void)state;
	assert_int_equal(secret_resolve(&a, &s, &e), 0);
	assert_string_equal(s.value, "from-file");
	assert_int_equal(s.source, SECRET_FILE);
	secret_free(&s);
}

/* password_credential: $CREDENTIALS_DIRECTORY/NAME, as systemd's
 * LoadCredential= provides it; before the keyring and password. */
static void test_credential(void **state)
{
	char dir[] = "/tmp/postern-cred-XXXXXX", path[128];
	struct account a = make_account("joe", NULL, "from-file");
	struct secret s;
	struct perr e;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/smtp-password", dir);
	a.password_credential = "smtp-password";
	/* no $CREDENTIALS_DIRECTORY: a configuration error naming the fix */
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "LoadCredential=smtp-password:"));
	assert_null(s.value);
	/* the directory set, the file missing */
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "No such file"));
	/* the first line, without its line end, wins over password */
	assert_non_null(f = fopen(path, "w"));
	fputs("s3cret\r\nsecond line\n", f);
	fclose(f);
	assert_int_equal(secret_resolve(&a, &s, &e), 0);
	assert_string_equal(s.value, "s3cret");
	assert_int_equal(s.len, 6);
	assert_int_equal(s.source, SECRET_CREDENTIAL);
	secret_free(&s);
	/* an empty credential is refused */
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "is empty"));
	/* a directory in its place: refused at once */
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	rmdir(path);
	rmdir(dir);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_no_source(void **state)
{
	struct account a = make_account("joe", NULL, NULL);
	struct secret s;
	struct perr e;

	(void)state;
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_null(s.value);
#ifdef HAVE_LIBSECRET
	/* no session bus here: the keyring was the last source */
	if (access("/run/user", F_OK) == 0) {
		char bus[64];

		snprintf(bus, sizeof bus, "/run/user/%u/bus", (unsigned)getuid());
		if (access(bus, F_OK) == 0)
			skip();
	}
	assert_int_equal(e.kind, PERR_TEMP);
	assert_int_equal(e.cause, PERR_CAUSE_SECRET);
	assert_non_null(strstr(e.text, "the keyring is not reachable (no D-Bus session) and no "
				       "other source is configured for account work"));
#else
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "set password_command"));
#endif
}

/* ---- the keyring, in a private session -------------------------------------- */

#ifdef HAVE_LIBSECRET
static void expect(const struct account *a, const char *value, enum secret_source src)
{
	struct secret s;
	struct perr e;

	if (secret_resolve(a, &s, &e) != 0)
		fail_msg("secret_resolve: %s", e.text);
	assert_string_equal(s.value, value);
	assert_int_equal(s.source, src);
	secret_free(&s);
}

static void test_keyring_inner(void **state)
{
	struct account a = make_account("joe", NULL, NULL), b = make_account("u2", NULL, NULL);
	struct secret s;
	struct perr e;

	(void)state;
	/* reachable, no entry: a configuration error that says how to fix it */
	assert_int_equal(secret_resolve(&a, &s, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_non_null(strstr(e.text, "run postern --set-password=work"));

	assert_int_equal(secret_store(&a, "k-pw", &e), 0);
	expect(&a, "k-pw", SECRET_KEYRING);
	/* the keyring comes before the file, after the command */
	a.password = "file-pw";
	expect(&a, "k-pw", SECRET_KEYRING);
	a.password_command = "echo cmd-pw";
	expect(&a, "cmd-pw", SECRET_COMMAND);
	/* stored again: replaced, not duplicated */
	a.password_command = NULL;
	assert_int_equal(secret_store(&a, "k-pw2", &e), 0);
	expect(&a, "k-pw2", SECRET_KEYRING);

	/* an entry stored by secret-tool under another schema name */
	b.host = "h2";
	assert_int_equal(system("printf tok | secret-tool store --label=x host h2 service smtp "
				"user u2"),
			 0);
	expect(&b, "tok", SECRET_KEYRING);
	/* another user on the same host is not found */
	b.user = "u3";
	b.password = "u3-file";
	expect(&b, "u3-file", SECRET_FILE);
}

static const char keyring_script[] =
    "printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 && "
    "exec \"$0\" --keyring-inner >&2";

static void test_keyring(void **state)
{
	char dir[] = "/tmp/postern-keyring-XXXXXX", self[4096], cmd[8192];
	ssize_t n;
	int rc;

	(void)state;
	if (access("/usr/bin/dbus-run-session", X_OK) != 0 ||
	    access("/usr/bin/gnome-keyring-daemon", X_OK) != 0 ||
	    access("/usr/bin/secret-tool", X_OK) != 0)
		skip();
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	assert_true(n > 0);
	self[n] = '\0';
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd,
		 "cd %s && HOME=%s XDG_DATA_HOME=%s/data XDG_RUNTIME_DIR=%s "
		 "timeout 60 dbus-run-session -- sh -c '%s' '%s'",
		 dir, dir, dir, dir, keyring_script, self);
	rc = system(cmd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);
}
#endif

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_needed),	   cmocka_unit_test(test_not_needed),
	    cmocka_unit_test(test_command),
	    cmocka_unit_test(test_command_error_no_secret),
	    cmocka_unit_test(test_command_timeout),
	    cmocka_unit_test(test_command_background_child),
	    cmocka_unit_test(test_command_stderr),
	    cmocka_unit_test(test_command_stdin),
	    cmocka_unit_test(test_command_signals),
	    cmocka_unit_test(test_file_password),
	    cmocka_unit_test(test_credential),
	    cmocka_unit_test(test_no_source),
#ifdef HAVE_LIBSECRET
	    cmocka_unit_test(test_keyring),
#endif
	};

#ifdef HAVE_LIBSECRET
	if (argc > 1 && strcmp(argv[1], "--keyring-inner") == 0) {
		const struct CMUnitTest inner[] = {cmocka_unit_test(test_keyring_inner)};

		/* the outer run prints the TAP; this one reports by exit code */
		setenv("CMOCKA_MESSAGE_OUTPUT", "stdout", 1);
		return cmocka_run_group_tests_name("keyring", inner, NULL, NULL) ? 1 : 0;
	}
#endif
	(void)argc;
	(void)argv;
	return cmocka_run_group_tests(tests, no_bus, NULL);
}
