/* main.c — the postern command: dispatch by mode and by argv[0], the one
 * table from error kinds to exit codes, and the one stderr line. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "crypto.h"
#include "config.h"
#include "deliver.h"
#include "hint.h"
#include "log.h"
#include "mailq.h"
#include "message.h"
#include "oauth2.h"
#include "probe.h"
#include "secret.h"
#include "smtpstdio.h"
#include "system.h"
#include "tls.h"
#include "util.h"

/* The one error -> exit code table (sysexits.h). */
static int exit_code(enum perr_kind kind)
{
	switch (kind) {
	case PERR_NONE: return EX_OK;
	case PERR_USAGE: return EX_USAGE;
	case PERR_DATA: return EX_DATAERR;
	case PERR_NOUSER: return EX_NOUSER;
	case PERR_UNAVAILABLE: return EX_UNAVAILABLE;
	case PERR_SOFTWARE: return EX_SOFTWARE;
	case PERR_OS: return EX_OSERR;
	case PERR_IO: return EX_IOERR;
	case PERR_TEMP: return EX_TEMPFAIL;
	case PERR_PROTOCOL: return EX_PROTOCOL;
	case PERR_AUTH: return EX_NOPERM;
	case PERR_CONFIG: return EX_CONFIG;
	}
	return EX_SOFTWARE;
}

/* The one stderr line of a failure; returns its exit code. */
static int fail(const struct perr *e)
{
	char line[PERR_TEXT_MAX];

	log_sanitize(line, sizeof line, e->text, strlen(e->text));
	fprintf(stderr, "postern: %s\n", line[0] ? line : "unknown error");
	return exit_code(e->kind == PERR_NONE ? PERR_SOFTWARE : e->kind);
}

static void notice(const char *line);

/* "postern: queued ID: reason" — the contract of a real sendmail: the
 * message is safe, the caller may forget it. */
static void notice_queued(const struct deliver_result *res)
{
	char line[PERR_TEXT_MAX + 64];

	snprintf(line, sizeof line, "queued %s: %s", res->queue_id, res->reason);
	notice(line);
}

/* Notices from delivery and the queue: one line each on stderr. */
static void notice(const char *line)
{
	char clean[PERR_TEXT_MAX + 128];

	log_sanitize(clean, sizeof clean, line, strlen(line));
	fprintf(stderr, "postern: %s\n", clean);
}

static int do_send(const struct cli *c)
{
	struct config cfg = { 0 };
	struct message m = { .body_fd = -1 };
	struct deliver_result res;
	struct perr e = { 0 };
	int rc = -1;
	struct deliver_req req = {
		.account = c->account,
		.from = c->from,
		.fullname = c->fullname,
		.extract = c->extract,
		.rcpts = c->rcpts,
		.nrcpts = (size_t)c->nrcpts,
		.dsn_notify = c->dsn_notify,
		.dsn_return = c->dsn_return,
		.dsn_envid = c->dsn_envid,
		.body_type = c->body_type,
		.queue_only = c->queue_only,
		.notice = notice,
	};

	if (config_load(&cfg, c->config_file, &e) < 0)
		return fail(&e);
	if (message_read(&m, STDIN_FILENO, c->extract, &e) == 0)
		rc = deliver_message(&cfg, &req, &m, &res, &e);
	message_free(&m);
	config_free(&cfg);
	if (rc < 0)
		return fail(&e);
	if (res.outcome == DELIVER_QUEUED)
		notice_queued(&res);
	return EX_OK;
}

static int do_flush(const struct cli *c)
{
	struct config cfg = { 0 };
	struct perr e = { 0 };
	int rc;

	if (config_load(&cfg, c->config_file, &e) < 0)
		return fail(&e);
	/* A person who runs -q reads what became of the queue; timers
	 * (--due) stay quiet unless something fails. */
	rc = deliver_flush_report(&cfg, c->due_only, notice, c->due_only ? NULL : stdout, &e);
	config_free(&cfg);
	return rc < 0 ? fail(&e) : EX_OK;
}

/* mailq: the queue of one's own configuration; without one, the
 * caller's messages in the system queue (all of them for root), asked of
 * the service; root with a configuration of its own sees both. */
static int do_list(const struct cli *c)
{
	struct perr e = { 0 };
	char dir[4096], line[4200];
	int kept, r;

	if (config_have_own(c->config_file)) {
		if (mailq_list(stdout, &e) < 0)
			return fail(&e);
		if (getuid() != 0)
			return EX_OK;
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		if (f && system_request(SYSTEM_MAILQ, f, notice, &e) == 0) {
			fclose(f);
			printf("\nThe system queue (postern --system):\n%s", buf);
		} else if (f) {
			fclose(f);   /* no service here: root's own queue is all there is */
		}
		free(buf);
		fflush(stdout);
		return EX_OK;
	}
	kept = system_outbox_count(dir, sizeof dir);
	if (kept) {
		snprintf(line, sizeof line, "%d message(s) kept in %s wait to be handed over to "
			 "the service (postern -q)", kept, dir);
		notice(line);
	}
	r = system_request(SYSTEM_MAILQ, stdout, notice, &e);
	return r != 0 ? fail(&e) : EX_OK;
}

/* postern -q without a configuration of its own: hand over the outbox;
 * root also has the service run the system queue. */
static int do_flush_system(const struct cli *c)
{
	struct perr e = { 0 }, se = { 0 };
	int own = config_have_own(c->config_file), rc = EX_OK, r;

	if (!own && system_flush_outbox(notice, &e) < 0)
		rc = fail(&e);
	if (getuid() != 0)
		return rc;
	r = system_request(SYSTEM_FLUSH, NULL, notice, &se);
	if (r < 0 || (r == 1 && !own))   /* with its own queue, root may have no service */
		rc = rc == EX_OK ? fail(&se) : rc;
	return rc;
}

static int do_manage(const struct cli *c)
{
	struct perr e = { 0 };
	enum mailq_op op = c->mode == CLI_QUEUE_DELETE ? MAILQ_DELETE : MAILQ_RETRY;

	if (mailq_manage(op, c->rcpts, (size_t)c->nrcpts, stdout, notice, &e) < 0)
		return fail(&e);
	return EX_OK;
}

/* SPEC 6: a person at a terminal hears once that messages failed since
 * they last looked (mailq shows them and counts as looking). */
static void failed_notice(enum cli_mode mode)
{
	switch (mode) {
	case CLI_SEND:
	case CLI_QUEUE_RUN:
	case CLI_QUEUE_DELETE:
	case CLI_QUEUE_RETRY:
	case CLI_CHECK:
	case CLI_PROBE:
	case CLI_SET_PASSWORD:
	case CLI_AUTHORIZE:
		if (isatty(STDERR_FILENO))
			mailq_failed_notice(notice);
		return;
	default:
		return;
	}
}

/* The configuration and the account -a/-f pick, or NULL (cfg freed, e
 * filled). */
static const struct account *load_account(const struct cli *c, struct config *cfg,
					  struct perr *e)
{
	const struct account *a;

	if (config_load(cfg, c->config_file, e) < 0)
		return NULL;
	a = config_choose(cfg, c->account, c->from, e);
	if (!a)
		config_free(cfg);
	return a;
}

/* What --probe, --check and --authorize do with the account -a/-f picks. */
typedef int (*account_action)(const struct config *cfg, const struct account *a,
			      const struct cli *c, struct perr *e);

static int probe_action(const struct config *cfg, const struct account *a, const struct cli *c,
			struct perr *e)
{
	int rc = probe_run(cfg, a, c->json, stdout, e);

	tls_cleanup();
	return rc;
}

static int check_action(const struct config *cfg, const struct account *a, const struct cli *c,
			struct perr *e)
{
	(void)c;
	config_print(cfg, a, stdout);
	oauth2_print_state(a, stdout);
	return check_account(a, stdout, notice, e);
}

/* --authorize: the OAuth2 sign-in, once (SPEC 10). */
static int authorize_action(const struct config *cfg, const struct account *a,
			    const struct cli *c, struct perr *e)
{
	(void)cfg;
	(void)c;
	return oauth2_authorize(a, stderr, e);
}

/* Load the configuration, pick the account, run act on it. */
static int with_account(const struct cli *c, account_action act)
{
	struct config cfg = { 0 };
	struct perr e = { 0 };
	const struct account *a = load_account(c, &cfg, &e);
	int rc;

	if (!a)
		return fail(&e);
	rc = act(&cfg, a, c, &e);
	config_free(&cfg);
	return rc < 0 ? fail(&e) : EX_OK;
}

/* Read one line of secret from the terminal without echo, or from stdin
 * when it is not a terminal. */
static int read_secret_line(char *buf, size_t cap, struct perr *e)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	size_t n;

	if (tty) {
		fputs("Password: ", stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	/* read(2), not stdio: no copy of the secret stays in a FILE buffer. */
	ssize_t got = 0;
	for (n = 0; n + 1 < cap; n++) {
		got = read(STDIN_FILENO, buf + n, 1);
		if (got <= 0 || buf[n] == '\n')
			break;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n + 1 >= cap)
		return perr_set(e, PERR_USAGE, "the password is longer than %zu bytes; nothing stored",
				cap - 2);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0)
		return perr_set(e, PERR_USAGE, got < 0 ? "cannot read the password from standard input"
						    : "no password given on standard input; nothing stored");
	return 0;
}

static int do_set_password(const struct cli *c)
{
	struct config cfg = { 0 };
	struct perr e = { 0 };
	const struct account *a;
	char buf[SECRET_MAX + 2];
	int rc = -1;

	if (config_load(&cfg, c->config_file, &e) < 0)
		return fail(&e);
	a = config_choose(&cfg, c->account, NULL, &e);
	if (a && !a->user) {
		perr_set(&e, PERR_CONFIG, "account %s has no user to store a password for", a->name);
		perr_because(&e, PERR_CAUSE_NO_USER);
		hint_advise(&e, a, 0);
	} else if (a && read_secret_line(buf, sizeof buf, &e) == 0)
		rc = secret_store(a, buf, &e);
	wipe(buf, sizeof buf);
	if (rc == 0)
		fprintf(stderr, "postern: password for %s@%s stored in the keyring\n", a->user, a->host);
	config_free(&cfg);
	return rc < 0 ? fail(&e) : EX_OK;
}


/* Open /dev/null on each of fds 0, 1, 2 that is closed, so that nothing
 * postern writes to stdout or stderr (the -v transcript, an error line)
 * can land on a socket or file that later takes that number. */
static void std_fds_open(void)
{
	int null = -1;

	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* dup2, not "the lowest free number": a tool postern runs under
		 * (valgrind) may hold low descriptors of its own */
		if (null < 0 && (null = open("/dev/null", O_RDWR)) < 0)
			_exit(EX_OSERR);
		if (null != fd && dup2(null, fd) != fd)
			_exit(EX_OSERR);
	}
	if (null > 2)
		close(null);
}

int main(int argc, char **argv)
{
	struct cli c;
	struct perr e = { 0 };
	int rc;

	std_fds_open();
	/* Secrets pass through this process: no core file may keep them, and
	 * no other process of the user may read its memory. */
	struct rlimit nocore = { 0, 0 };
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* A file-size limit makes writes fail with EFBIG (reported, message
	 * kept by the caller) instead of killing postern mid-spool. */
	signal(SIGXFSZ, SIG_IGN);
	crypto_init();

	if (cli_parse(&c, argc, argv, &e) < 0)
		return fail(&e);
	log_set_verbose(c.verbose);
	failed_notice(c.mode);
	switch (c.mode) {
	case CLI_HELP:
		fputs(cli_usage(), stdout);
		return EX_OK;
	case CLI_VERSION:
		printf("postern %s\n", PACKAGE_VERSION);
		return EX_OK;
	case CLI_NEWALIASES:
		return EX_OK;
	case CLI_QUEUE_LIST:
		return do_list(&c);
	case CLI_QUEUE_DELETE:
	case CLI_QUEUE_RETRY:
		return do_manage(&c);
	case CLI_SYSTEM:
		rc = system_serve(&c, notice, &e);
		tls_cleanup();
		return rc < 0 ? fail(&e) : EX_OK;
	case CLI_QUEUE_RUN:
		if (!config_have_own(c.config_file))   /* the outbox; root: the system queue */
			return do_flush_system(&c);
		rc = do_flush(&c);
		tls_cleanup();
		if (getuid() == 0 && do_flush_system(&c) != EX_OK && rc == EX_OK)
			rc = EX_TEMPFAIL;
		return rc;
	case CLI_CHECK:
		return with_account(&c, check_action);
	case CLI_SET_PASSWORD:
		return do_set_password(&c);
	case CLI_AUTHORIZE:
		return with_account(&c, authorize_action);
	case CLI_PROBE:
		return with_account(&c, probe_action);
	case CLI_SMTP_STDIO:
		rc = smtpstdio_main(&c, notice, &e);
		tls_cleanup();
		return rc < 0 ? fail(&e) : EX_OK;
	case CLI_SEND:
		break;
	}
	/* No configuration of one's own: the system service sends (SPEC 11). */
	if (!config_have_own(c.config_file))
		return system_handoff(argc, argv, notice, &e) < 0 ? fail(&e) : EX_OK;
	rc = do_send(&c);
	tls_cleanup();
	return rc;
}
