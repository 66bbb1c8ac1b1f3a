/* main.c — the postern command: dispatch by mode and by argv[0], the one
 * table from error kinds to exit codes, and the one stderr line. */
#include "autoconf.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "secret.h"
#include "submit.h"
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

/* A growing list of unique envelope recipients; local names go through
 * the aliases file first. */
struct rcpts {
	char **v;
	size_t n, cap;
	int utf8;
	const struct aliases *al;     /* NULL: no aliases file */
	const char *local_domains;
};

static int rcpt_push(void *ctx, const char *addr, struct perr *e)
{
	struct rcpts *r = ctx;

	if (addr_check(addr, 0, e) < 0)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i], addr) == 0)
			return 0;
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->v = xrealloc(r->v, r->cap * sizeof *r->v);
	}
	r->v[r->n++] = xstrdup(addr);
	if (addr_is_utf8(addr))
		r->utf8 = 1;
	return 0;
}

static int rcpt_add(void *ctx, const char *addr, struct perr *e)
{
	struct rcpts *r = ctx;

	if (addr_check(addr, 1, e) < 0)
		return -1;
	if (aliases_is_local(addr, r->local_domains))
		return aliases_expand(r->al, addr, rcpt_push, r, e);
	return rcpt_push(r, addr, e);
}

static void rcpts_free(struct rcpts *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
}

/* Recipients from the command line (each may be a comma list) and, with
 * -t, from To/Cc/Bcc. */
static int collect_rcpts(struct rcpts *r, const struct cli *c, const struct message *m,
			 struct perr *e)
{
	for (int i = 0; i < c->nrcpts; i++) {
		if (addr_parse_list(c->rcpts[i], rcpt_add, r, e) < 0) {
			if (e->kind == PERR_DATA)
				e->kind = PERR_USAGE;
			return -1;
		}
	}
	for (size_t i = 0; c->extract && i < m->nhdr_rcpts; i++)
		if (rcpt_add(r, m->hdr_rcpts[i], e) < 0) {
			if (e->kind == PERR_USAGE)
				e->kind = PERR_DATA;
			return -1;
		}
	if (r->n == 0)
		return perr_set(e, PERR_USAGE,
				c->extract ? "no recipients: the message has no To, Cc or Bcc and none were given"
					   : "no recipients given; name them after the options, or use -t");
	return 0;
}

/* The envelope sender: -f; else the account's from (unless a glob); else
 * the user when it is an address; else LOGIN@HOST. */
static const char *envelope_sender(const struct cli *c, const struct account *a, char *buf,
				   size_t cap)
{
	struct passwd *pw;

	if (c->from)
		return c->from;
	if (a->from && !strpbrk(a->from, "*?["))
		return a->from;
	if (a->user && strchr(a->user, '@'))
		return a->user;
	pw = getpwuid(getuid());
	snprintf(buf, cap, "%s@%s", pw ? pw->pw_name : "nobody", submit_helo_name(a));
	return buf;
}

static long message_source(void *ctx, unsigned char *buf, size_t cap, struct perr *e)
{
	return message_next(ctx, buf, cap, e);
}

static void message_source_rewind(void *ctx)
{
	struct msg_reader *r = ctx;

	message_rewind(r->m, r);
}

/* Deliver the message now, over one session. */
static int send_now(const struct account *a, const struct secret *s,
		    const struct smtp_envelope *env, const struct message *m, struct perr *e)
{
	struct msg_reader reader;
	struct submit_job job = {
		.env = env,
		.src = message_source,
		.src_ctx = &reader,
		.rewind = message_source_rewind,
	};

	message_rewind(m, &reader);
	if (submit_batch(a, s, &job, 1, e) < 0 || !job.done) {
		*e = job.err;
		return -1;
	}
	return 0;
}

static int do_send(const struct cli *c)
{
	struct config cfg = { 0 };
	struct message m = { .body_fd = -1 };
	struct rcpts r = { 0 };
	struct aliases al = { 0 };
	struct secret s = { 0 };
	struct perr e = { 0 };
	const struct account *a;
	const char *sender;
	char sender_buf[512];
	int rc = -1;

	if (config_load(&cfg, c->config_file, &e) < 0)
		return fail(&e);
	if (message_read(&m, STDIN_FILENO, c->extract, &e) < 0)
		goto out;
	a = config_choose(&cfg, c->account, c->from ? c->from : (c->extract ? m.from_addr : NULL), &e);
	if (!a)
		goto out;
	sender = envelope_sender(c, a, sender_buf, sizeof sender_buf);
	if (sender[0] && addr_check(sender, 0, &e) < 0) {
		perr_prefix(&e, "envelope sender");
		goto out;
	}
	if (a->aliases && aliases_load(&al, a->aliases, &e) < 0)
		goto out;
	r.al = a->aliases ? &al : NULL;
	r.local_domains = a->local_domains;
	if (collect_rcpts(&r, c, &m, &e) < 0)
		goto out;
	if (c->queue_only) {
		perr_set(&e, PERR_TEMP, "-odq asks to queue only, and the queue is not available yet");
		goto out;
	}
	struct msg_opts mo = {
		.add_headers = a->add_headers,
		.sender = sender,
		.fullname = c->fullname,
		.domain = addr_domain(sender) ? addr_domain(sender) : submit_helo_name(a),
		.force_from = a->from_header_force ? sender : NULL,
	};
	if (message_prepare(&m, &mo, &e) < 0)
		goto out;
	if (secret_resolve(a, &s, &e) < 0)
		goto out;
	struct smtp_envelope env = {
		.sender = sender,
		.rcpts = r.v,
		.nrcpts = r.n,
		.body_8bit = m.has_8bit || (c->body_type && str_ieq(c->body_type, "8BITMIME")),
		.smtputf8 = r.utf8 || addr_is_utf8(sender),
		.size = (unsigned long long)message_size(&m),
		.dsn_notify = c->dsn_notify ? c->dsn_notify : a->dsn_notify,
		.dsn_return = c->dsn_return ? c->dsn_return : a->dsn_return,
		.dsn_envid = c->dsn_envid,
	};
	rc = send_now(a, &s, &env, &m, &e);
out:
	secret_free(&s);
	rcpts_free(&r);
	aliases_free(&al);
	message_free(&m);
	config_free(&cfg);
	return rc < 0 ? fail(&e) : EX_OK;
}

static int do_check(const struct cli *c)
{
	struct config cfg = { 0 };
	struct perr e = { 0 };
	const struct account *a;

	if (config_load(&cfg, c->config_file, &e) < 0)
		return fail(&e);
	a = config_choose(&cfg, c->account, c->from, &e);
	if (!a) {
		config_free(&cfg);
		return fail(&e);
	}
	config_print(&cfg, a, stdout);
	config_free(&cfg);
	return EX_OK;
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
	char *got = fgets(buf, (int)cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!got)
		return perr_set(e, PERR_USAGE, "no password given on standard input");
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0)
		return perr_set(e, PERR_USAGE, "the password is empty; nothing stored");
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
	if (a && !a->user)
		perr_set(&e, PERR_CONFIG, "account %s has no user; set user = first", a->name);
	else if (a && read_secret_line(buf, sizeof buf, &e) == 0)
		rc = secret_store(a, buf, &e);
	wipe(buf, sizeof buf);
	if (rc == 0)
		fprintf(stderr, "postern: password for %s@%s stored in the keyring\n", a->user, a->host);
	config_free(&cfg);
	return rc < 0 ? fail(&e) : EX_OK;
}

int main(int argc, char **argv)
{
	struct cli c;
	struct perr e = { 0 };
	int rc;

	if (cli_parse(&c, argc, argv, &e) < 0)
		return fail(&e);
	log_set_verbose(c.verbose);
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
		puts("Mail queue is empty");
		return EX_OK;
	case CLI_QUEUE_RUN:
		return EX_OK;
	case CLI_CHECK:
		return do_check(&c);
	case CLI_SET_PASSWORD:
		return do_set_password(&c);
	case CLI_PROBE:
		perr_set(&e, PERR_SOFTWARE, "--probe is not available in this version yet");
		return fail(&e);
	case CLI_SMTP_STDIO:
		perr_set(&e, PERR_USAGE, "-bs is not available in this version yet; give recipients or use -t");
		return fail(&e);
	case CLI_SEND:
		break;
	}
	rc = do_send(&c);
	tls_cleanup();
	return rc;
}
