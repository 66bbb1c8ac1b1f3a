/* check.c — postern --check without the network.  See check.h. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "check.h"
#include "secret.h"
#include "util.h"

struct checks {
	const struct account *a;
	FILE *out;
	void (*notice)(const char *);
	struct perr *e;
	int failed;
};

/* A failed check: "ORIGIN: key 'KEY': CAUSE" as one line; the earlier
 * failure goes to notice, the last stays in e. */
static void failed(struct checks *c, enum cfg_key k, const struct perr *why)
{
	const char *origin = c->a->origin[k] ? c->a->origin[k] : "the configuration";

	if (c->failed && c->notice)
		c->notice(c->e->text);
	perr_set(c->e, PERR_CONFIG, "%s: key '%s': %s", origin, config_key_name(k), why->text);
	c->failed = 1;
}

static void readable(struct checks *c, enum cfg_key k, const char *path)
{
	struct perr why = { 0 };
	int fd;

	if (!path)
		return;
	fd = open_regular(path, O_RDONLY, 0, config_key_name(k), &why);
	if (fd < 0) {
		failed(c, k, &why);
		return;
	}
	close(fd);
	fprintf(c->out, "ok: %s %s is a readable file\n", config_key_name(k), path);
}

static void aliases_ok(struct checks *c)
{
	struct aliases al = { 0 };
	struct perr why = { 0 };

	if (!c->a->aliases)
		return;
	if (aliases_load(&al, c->a->aliases, &why) < 0) {
		aliases_free(&al);  /* it may hold the path */
		failed(c, CFG_ALIASES, &why);
		return;
	}
	fprintf(c->out, "ok: aliases %s reads (%zu entr%s)\n", c->a->aliases, al.n,
		al.n == 1 ? "y" : "ies");
	aliases_free(&al);
}

/* log = PATH: the file, or its directory when it does not exist yet,
 * can be written. */
static void log_ok(struct checks *c)
{
	const char *log = c->a->log;
	struct perr why = { 0 };
	char dir[4096];

	if (!log || strcmp(log, "syslog") == 0 || strcmp(log, "off") == 0)
		return;
	if (access(log, F_OK) == 0) {
		int fd = open_regular(log, O_WRONLY | O_APPEND, 0, "log file", &why);

		if (fd < 0) {
			failed(c, CFG_LOG, &why);
			return;
		}
		close(fd);
	} else {
		str_copy(dir, log, sizeof dir);
		if (access(dirname(dir), W_OK) < 0) {
			str_copy(dir, log, sizeof dir);
			perr_set(&why, PERR_CONFIG, "cannot create the log file %s: its directory %s: "
				 "%s; create the directory or choose another path (or log = syslog)",
				 log, dirname(dir), strerror(errno));
			failed(c, CFG_LOG, &why);
			return;
		}
	}
	fprintf(c->out, "ok: log %s can be written\n", log);
}

/* The secret can be had now; it is wiped unread. */
static void secret_ok(struct checks *c)
{
	const struct account *a = c->a;
	struct secret s = { 0 };
	struct perr why = { 0 };
	static const char *const from[] = {
		[SECRET_NONE] = "nowhere", [SECRET_COMMAND] = "password_command (it exited 0)",
		[SECRET_KEYRING] = "the keyring", [SECRET_FILE] = "password in the file",
	};

	if (!secret_needed(a) || a->oauth2 != OAUTH2_NONE)
		return;
	if (secret_resolve(a, &s, &why) < 0) {
		enum cfg_key k = a->password_command ? CFG_PASSWORD_COMMAND :
				 a->password ? CFG_PASSWORD : CFG_USER;

		if (why.kind != PERR_CONFIG && !a->password_command)
			perr_append(&why, "; store it with postern --set-password (or unlock the "
				    "keyring)");
		failed(c, k, &why);
		return;
	}
	fprintf(c->out, "ok: the secret comes from %s (not shown)\n",
		s.value ? from[s.source] : "nowhere: none needed");
	secret_free(&s);
}

int check_account(const struct account *a, FILE *out, void (*notice)(const char *line),
		  struct perr *e)
{
	struct checks c = { .a = a, .out = out, .notice = notice, .e = e };

	readable(&c, CFG_TLS_CA_FILE, a->tls_ca_file);
	readable(&c, CFG_TLS_CERT_FILE, a->tls_cert_file);
	readable(&c, CFG_TLS_KEY_FILE, a->tls_key_file);
	readable(&c, CFG_OAUTH2_CA_FILE, a->oauth2_ca_file);
	aliases_ok(&c);
	log_ok(&c);
	secret_ok(&c);
	return c.failed ? -1 : 0;
}
