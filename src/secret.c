/* secret.c — the account's secret: password_command (run through /bin/sh
 * until it exits, with a deadline), the keyring through libsecret (the only file that
 * includes its headers; the library itself is loaded with dlopen only when
 * the keyring is asked), and the `password` key.  The value is wiped when
 * freed, and never reaches argv, a child's environment or an error text. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBSECRET
#include <libsecret/secret.h>
#endif

#include "log.h"
#include "oauth2.h"
#include "secret.h"
#include "util.h"

#define DEFAULT_TIMEOUT_S 30
/* The longest a keyring lookup may take before it is given up as
 * unreachable (a stopped or wedged daemon would otherwise hold us for
 * D-Bus's 25 s default per call); the account's timeout when shorter. */
#define KEYRING_TIMEOUT_S 5
/* The library loaded when the keyring is asked (Debian: libsecret-1-0). */
#define LIBSECRET_SONAME "libsecret-1.so.0"

int secret_needed(const struct account *a)
{
	switch (a->auth) {
	case AUTH_OFF:
	case AUTH_EXTERNAL: /* the client certificate is the credential */
		return 0;
	case AUTH_AUTO:
		return a->user && *a->user;
	default:
		return 1;
	}
}

static void take(struct secret *s, const char *v, size_t n, enum secret_source src)
{
	s->value = xmalloc(n + 1);
	memcpy(s->value, v, n);
	s->value[n] = '\0';
	s->len = n;
	s->source = src;
}

/* ---- password_command ----------------------------------------------------- */

/* Bytes of the command's first stderr line kept for the error text. */
#define ERRLINE_MAX 200
/* Bytes read (and dropped) from a pipe that is still ready once the
 * command has exited: a grandchild that keeps writing cannot hold us. */
#define DRAIN_MAX (1024 * 1024)

struct cmd_run {
	pid_t pid;
	int own_group;		    /* the child leads its own process group */
	int out, err;		    /* read ends; -1 once at end of file */
	char *buf;		    /* SECRET_MAX + 2 bytes: the start of stdout */
	size_t len;
	char errline[ERRLINE_MAX];  /* the first stderr line (raw) */
	size_t errlen;
	int errline_done;	    /* its newline was seen */
};

/* True when postern runs in the foreground of a terminal: the command
 * then stays in postern's process group, so it may prompt there (gpg,
 * pass) without being stopped by SIGTTIN. */
static int tty_foreground(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	int fg;

	if (fd < 0)
		return 0;
	fg = tcgetpgrp(fd) == getpgrp();
	close(fd);
	return fg;
}

/* In the child: default signal dispositions and an empty signal mask
 * (postern ignores SIGXFSZ, and ignored signals survive exec); stdout and
 * stderr to the pipes; stdin inherited when it is a terminal (to prompt),
 * else /dev/null (postern's stdin is the message or, with -bs, the SMTP
 * session: not the command's to read). */
static void child_exec(const char *cmd, int out, int err, int own_group)
{
	sigset_t none;
	int null;

	if (own_group)
		setpgid(0, 0);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* above 2 first, in case a pipe got fd 0, 1 or 2 */
	out = fcntl(out, F_DUPFD_CLOEXEC, 3);
	err = fcntl(err, F_DUPFD_CLOEXEC, 3);
	if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(126);
	if (!isatty(0)) {
		null = open("/dev/null", O_RDONLY);
		if (null < 0 || (null != 0 && dup2(null, 0) < 0))
			_exit(126);
	}
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/* Keep the first stderr line and pass every byte on to postern's stderr,
 * as if the command wrote there itself (a prompt must be seen). */
static void take_stderr(struct cmd_run *r, const char *b, size_t n)
{
	size_t i, off = 0;

	for (i = 0; i < n && !r->errline_done; i++) {
		if (b[i] == '\n')
			r->errline_done = 1;
		else if (r->errlen + 1 < sizeof r->errline)
			r->errline[r->errlen++] = b[i];
	}
	while (off < n) {
		ssize_t w = write(2, b + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

/* Read what *fd has ready.  1: data; 0: nothing ready; -1: end of file
 * (the descriptor is closed and set to -1). */
static int pump(struct cmd_run *r, int *fd)
{
	char scratch[4096];
	size_t room = SECRET_MAX + 2 - r->len;
	int is_out = fd == &r->out;
	ssize_t n;

	if (is_out && room)
		n = read(*fd, r->buf + r->len, room);
	else
		n = read(*fd, scratch, sizeof scratch);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	if (is_out && room)
		r->len += (size_t)n;
	else if (!is_out)
		take_stderr(r, scratch, (size_t)n);
	wipe(scratch, sizeof scratch);
	return 1;
}

/* Wait for the command to exit — not for the end of its output, which a
 * background child it left behind may hold open — reading both pipes
 * meanwhile so it never blocks on a full one.  Then read what is still
 * ready, without waiting.  Returns the wait status, or -1 when the
 * deadline passed (the command, or its whole group, is killed). */
static int wait_exit(struct cmd_run *r, int64_t deadline)
{
	int status, nap = 1;
	size_t drained = 0;

	for (;;) {
		struct pollfd p[2];
		int64_t left;
		nfds_t n = 0;
		pid_t w = waitpid(r->pid, &status, WNOHANG);

		if (w == r->pid)
			break;
		if (w < 0 && errno != EINTR)
			return -1;
		left = deadline - mono_ms();
		if (left <= 0) {
			kill(r->own_group ? -r->pid : r->pid, SIGKILL);
			while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		if (r->out >= 0)
			p[n++] = (struct pollfd){.fd = r->out, .events = POLLIN};
		if (r->err >= 0)
			p[n++] = (struct pollfd){.fd = r->err, .events = POLLIN};
		/* a short nap: the exit is noticed by waitpid, not by poll */
		if (poll(p, n, left < nap ? (int)left : nap) > 0) {
			for (nfds_t i = 0; i < n; i++)
				if (p[i].revents)
					pump(r, p[i].fd == r->out ? &r->out : &r->err);
			nap = 1;
		} else if (nap < 16) {
			nap *= 2;
		}
	}
	while (r->out >= 0 && drained < DRAIN_MAX && pump(r, &r->out) > 0)
		drained += 4096;
	while (r->err >= 0 && drained < 2 * DRAIN_MAX && pump(r, &r->err) > 0)
		drained += 4096;
	return status;
}

/* "exit status 1: gpg: decryption failed" (the stderr line sanitised,
 * and withheld if it holds the first output line, which may be the
 * secret). */
static void describe_exit(const struct cmd_run *r, int status, size_t outlen, char *buf,
			  size_t cap)
{
	char line[ERRLINE_MAX + 1], clean[ERRLINE_MAX * 4];
	size_t n = r->errlen;
	int used;

	if (WIFSIGNALED(status))
		used = snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
	else
		used = snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
	memcpy(line, r->errline, n);
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	line[n] = '\0';
	if (n == 0 || used < 0 || (size_t)used >= cap)
		return;
	if (outlen >= 4 && memmem(line, n, r->buf, outlen))
		snprintf(buf + used, cap - (size_t)used, ": (its stderr, withheld: it holds "
			 "the output line)");
	else if (log_sanitize(clean, sizeof clean, line, n) > 0)
		snprintf(buf + used, cap - (size_t)used, ": %s", clean);
	wipe(line, sizeof line);
}

/* The command failed, or printed nothing: the secret cannot be had now
 * (gpg or pass cannot unlock under cron), which is temporary: the message
 * is queued and a later run, with the agent unlocked, sends it. */
static int unavailable(const struct account *a, const char *key, const char *what,
		       const char *how, struct perr *e)
{
	perr_set(e, PERR_TEMP, "%s for account %s %s (%s); the secret is "
		 "unavailable for now: run the command by hand to see why", key, a->name, what,
		 how);
	return perr_because(e, PERR_CAUSE_SECRET);
}

static int cmd_result(const struct account *a, const char *key, int status,
		      const struct cmd_run *r, struct secret *s, struct perr *e)
{
	char how[ERRLINE_MAX * 4 + 64];
	size_t n = 0, first;

	while (n < r->len && r->buf[n] != '\n')
		n++;
	first = n;
	while (n && (r->buf[n - 1] == '\r' || r->buf[n - 1] == '\n'))
		n--;
	describe_exit(r, status, n, how, sizeof how);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return unavailable(a, key, "failed", how, e);
	if (n == 0)
		return unavailable(a, key, "printed nothing", how, e);
	if (first > SECRET_MAX)
		return perr_set(e, PERR_CONFIG, "%s for account %s printed a line longer than "
				"%d bytes", key, a->name, SECRET_MAX);
	if (memchr(r->buf, '\0', n))
		return perr_set(e, PERR_CONFIG, "%s for account %s printed a NUL byte", key,
				a->name);
	take(s, r->buf, n, SECRET_COMMAND);
	return 0;
}

static int start_command(const char *cmd, const char *key, struct cmd_run *r, struct perr *e)
{
	int po[2], pe[2];

	if (pipe2(po, O_CLOEXEC) < 0)
		return perr_set(e, PERR_OS, "cannot create a pipe: %s", strerror(errno));
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return perr_set(e, PERR_OS, "cannot create a pipe: %s", strerror(errno));
	}
	r->own_group = !tty_foreground();
	r->pid = fork();
	if (r->pid == 0)
		child_exec(cmd, po[1], pe[1], r->own_group);
	close(po[1]);
	close(pe[1]);
	if (r->pid < 0) {
		close(po[0]);
		close(pe[0]);
		return perr_set(e, PERR_OS, "cannot start %s: %s", key, strerror(errno));
	}
	if (r->own_group)
		setpgid(r->pid, r->pid);
	r->out = po[0];
	r->err = pe[0];
	fcntl(r->out, F_SETFL, O_NONBLOCK);
	fcntl(r->err, F_SETFL, O_NONBLOCK);
	return 0;
}

int secret_command(const struct account *a, const char *cmd, const char *key, struct secret *s,
		   struct perr *e)
{
	int timeout = a->timeout > 0 ? a->timeout : DEFAULT_TIMEOUT_S;
	int64_t deadline = mono_ms() + (int64_t)timeout * 1000;
	struct cmd_run r = {.out = -1, .err = -1};
	int status, rc;

	memset(s, 0, sizeof *s);
	if (start_command(cmd, key, &r, e) < 0)
		return -1;
	r.buf = xmalloc(SECRET_MAX + 2);
	status = wait_exit(&r, deadline);
	if (r.out >= 0)
		close(r.out);
	if (r.err >= 0)
		close(r.err);
	if (status == -1) {
		rc = perr_set(e, PERR_TEMP,
			      "%s for account %s did not finish within %d s; the secret is "
			      "unavailable for now: check the command, or raise timeout", key,
			      a->name, timeout);
		perr_because(e, PERR_CAUSE_SECRET);
	} else {
		rc = cmd_result(a, key, status, &r, s, e);
	}
	wipe(r.buf, SECRET_MAX + 2);
	wipe(r.errline, sizeof r.errline);
	free(r.buf);
	return rc;
}

/* ---- the keyring ---------------------------------------------------------- */

enum keyring_state {
	KEYRING_FOUND,
	KEYRING_MISSING,    /* reachable, no entry */
	KEYRING_NO_SESSION, /* no D-Bus session bus */
	KEYRING_LOCKED,
	KEYRING_ERROR,	    /* the Secret Service did not answer properly */
	KEYRING_NO_LIBRARY, /* libsecret cannot be loaded */
};

#ifdef HAVE_LIBSECRET
/* The attributes msmtp and `secret-tool store host H service smtp user U`
 * use; entries stored under any schema name match. */
static const SecretSchema postern_schema = {
    "org.postern.Password",
    SECRET_SCHEMA_DONT_MATCH_NAME,
    {
	{"host", SECRET_SCHEMA_ATTRIBUTE_STRING},
	{"service", SECRET_SCHEMA_ATTRIBUTE_STRING},
	{"user", SECRET_SCHEMA_ATTRIBUTE_STRING},
	{"type", SECRET_SCHEMA_ATTRIBUTE_STRING}, /* postern's OAuth2 entries */
	{NULL, 0},
    },
    0,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* Is there a session bus to ask?  Without one, GLib could try to
 * autolaunch a bus; never do that from cron. */
static int session_bus(void)
{
	const char *addr = getenv("DBUS_SESSION_BUS_ADDRESS");
	char path[64], env[96];
	struct stat st;

	if (addr && *addr)
		return 1;
	snprintf(path, sizeof path, "/run/user/%u/bus", (unsigned)getuid());
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	snprintf(env, sizeof env, "unix:path=%s", path);
	setenv("DBUS_SESSION_BUS_ADDRESS", env, 1);
	return 1;
}

/* libsecret (and the GLib it pulls in) is loaded only when the keyring is
 * really asked: linked in, it would cost every run ~3 MB of memory and
 * its start-up time even when the secret comes from elsewhere.  The
 * headers still give the types and prototypes; each function is resolved
 * by name from the library (GLib's through libsecret's dependencies). */
#define LIB_FUNCS(X)                                                                               \
	X(secret_service_get_sync)                                                                 \
	X(secret_service_search_sync)                                                              \
	X(secret_attributes_build)                                                                 \
	X(secret_item_get_secret)                                                                  \
	X(secret_value_get)                                                                        \
	X(secret_value_unref)                                                                      \
	X(secret_password_store_sync)                                                              \
	X(secret_item_get_attributes)                                                              \
	X(g_hash_table_lookup)                                                                     \
	X(g_clear_error)                                                                           \
	X(g_list_free_full)                                                                        \
	X(g_hash_table_unref)                                                                      \
	X(g_object_unref)                                                                          \
	X(g_mutex_init)                                                                            \
	X(g_mutex_lock)                                                                            \
	X(g_mutex_unlock)                                                                          \
	X(g_mutex_clear)                                                                           \
	X(g_cond_init)                                                                             \
	X(g_cond_wait_until)                                                                       \
	X(g_cond_signal)                                                                           \
	X(g_cond_clear)                                                                            \
	X(g_get_monotonic_time)                                                                    \
	X(g_cancellable_new)                                                                       \
	X(g_cancellable_cancel)                                                                    \
	X(g_thread_new)                                                                            \
	X(g_thread_join)

#define LIB_FIELD(name) __typeof__(name) *name;
static struct {
	LIB_FUNCS(LIB_FIELD)
} lib;
#undef LIB_FIELD

static const char *const libsecret_names[] = {
#define FUNC_NAME(name) #name,
	LIB_FUNCS(FUNC_NAME)
#undef FUNC_NAME
};

_Static_assert(sizeof lib == sizeof libsecret_names / sizeof libsecret_names[0] * sizeof(void *),
	       "one function pointer per name");

/* 1 when every function is resolved (see dynlib_load). */
static int lib_load(void)
{
	static int state;

	return dynlib_load(&state, LIBSECRET_SONAME, libsecret_names, &lib,
			   sizeof libsecret_names / sizeof libsecret_names[0]);
}

static enum keyring_state item_secret(SecretItem *item, struct secret *s)
{
	SecretValue *v = lib.secret_item_get_secret(item);
	const gchar *bytes;
	gsize n;

	if (!v)
		return KEYRING_LOCKED;
	bytes = lib.secret_value_get(v, &n);
	if (n == 0 || n > SECRET_MAX || memchr(bytes, '\0', n)) {
		lib.secret_value_unref(v);
		return KEYRING_MISSING;
	}
	take(s, bytes, n, SECRET_KEYRING);
	lib.secret_value_unref(v);
	return KEYRING_FOUND;
}

/* A thread that cancels the lookup when its deadline passes. */
struct watchdog {
	GMutex lock;
	GCond cond;
	int done;
	gint64 until; /* g_get_monotonic_time() units */
	GCancellable *cancel;
	GThread *thread;
};

static gpointer watchdog_run(gpointer data)
{
	struct watchdog *w = data;

	lib.g_mutex_lock(&w->lock);
	while (!w->done)
		if (!lib.g_cond_wait_until(&w->cond, &w->lock, w->until)) {
			lib.g_cancellable_cancel(w->cancel);
			break;
		}
	lib.g_mutex_unlock(&w->lock);
	return NULL;
}

static void watchdog_start(struct watchdog *w, int seconds)
{
	lib.g_mutex_init(&w->lock);
	lib.g_cond_init(&w->cond);
	w->done = 0;
	w->until = lib.g_get_monotonic_time() + (gint64)seconds * G_TIME_SPAN_SECOND;
	w->cancel = lib.g_cancellable_new();
	w->thread = lib.g_thread_new("postern-keyring", watchdog_run, w);
}

static void watchdog_stop(struct watchdog *w)
{
	lib.g_mutex_lock(&w->lock);
	w->done = 1;
	lib.g_cond_signal(&w->cond);
	lib.g_mutex_unlock(&w->lock);
	lib.g_thread_join(w->thread);
	lib.g_object_unref(w->cancel);
	lib.g_cond_clear(&w->cond);
	lib.g_mutex_clear(&w->lock);
}

/* The first entry found whose type attribute is type, or, with type NULL,
 * that has none (a password: postern's typed OAuth2 entries share its
 * host, service and user). */
static enum keyring_state first_of(GList *items, const char *type, struct secret *s)
{
	for (GList *i = items; i; i = i->next) {
		GHashTable *attrs = lib.secret_item_get_attributes(i->data);
		const char *t = attrs ? lib.g_hash_table_lookup(attrs, "type") : NULL;
		int match = type ? t && strcmp(t, type) == 0 : !t;

		if (attrs)
			lib.g_hash_table_unref(attrs);
		if (match)
			return item_secret(i->data, s);
	}
	return KEYRING_MISSING;
}

/* Search without unlocking: a locked keyring would prompt, and a prompt
 * nobody sees would hang a cron job.  Bounded by KEYRING_TIMEOUT_S. */
static enum keyring_state keyring_search(const struct account *a, const char *type,
					 struct secret *s, GCancellable *cancel)
{
	enum keyring_state st = KEYRING_MISSING;
	SecretService *svc;
	GHashTable *attrs;
	GError *err = NULL;
	GList *items;

	svc = lib.secret_service_get_sync(SECRET_SERVICE_OPEN_SESSION, cancel, &err);
	if (!svc) {
		lib.g_clear_error(&err);
		return KEYRING_ERROR;
	}
	attrs = type ? lib.secret_attributes_build(&postern_schema, "host", a->host, "service",
						   "smtp", "user", a->user, "type", type, NULL)
		     : lib.secret_attributes_build(&postern_schema, "host", a->host, "service",
						   "smtp", "user", a->user, NULL);
	items = lib.secret_service_search_sync(svc, &postern_schema, attrs,
					       SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS,
					       cancel, &err);
	if (err)
		st = KEYRING_ERROR;
	else if (items)
		st = first_of(items, type, s);
	lib.g_clear_error(&err);
	lib.g_list_free_full(items, lib.g_object_unref);
	lib.g_hash_table_unref(attrs);
	lib.g_object_unref(svc);
	return st;
}

static int keyring_seconds(const struct account *a)
{
	return a->timeout > 0 && a->timeout < KEYRING_TIMEOUT_S ? a->timeout : KEYRING_TIMEOUT_S;
}

static enum keyring_state keyring_lookup(const struct account *a, const char *type,
					 struct secret *s)
{
	struct watchdog w;
	enum keyring_state st;

	if (!session_bus())
		return KEYRING_NO_SESSION;
	if (!lib_load())
		return KEYRING_NO_LIBRARY;
	watchdog_start(&w, keyring_seconds(a));
	st = keyring_search(a, type, s, w.cancel);
	watchdog_stop(&w);
	return st;
}

/* Store (replace) the entry of this type, bounded like a lookup. */
static enum keyring_state keyring_put(const struct account *a, const char *type,
				      const char *label, const char *value)
{
	struct watchdog w;
	GError *err = NULL;
	gboolean ok;

	if (!session_bus())
		return KEYRING_NO_SESSION;
	if (!lib_load())
		return KEYRING_NO_LIBRARY;
	watchdog_start(&w, keyring_seconds(a));
	ok = lib.secret_password_store_sync(&postern_schema, SECRET_COLLECTION_DEFAULT, label,
					    value, w.cancel, &err, "host", a->host, "service",
					    "smtp", "user", a->user, "type", type, NULL);
	watchdog_stop(&w);
	lib.g_clear_error(&err);
	return ok ? KEYRING_FOUND : KEYRING_ERROR;
}
#endif

/* ---- systemd credentials ----------------------------------------------------- */

/* password_credential: systemd hands the service a copy of the secret
 * (LoadCredential=NAME:PATH) in a directory only the service can read,
 * named by $CREDENTIALS_DIRECTORY.  The secret is the file's first line. */
static int read_credential(const struct account *a, struct secret *s, struct perr *e)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[4096], buf[SECRET_MAX + 2];
	int fd;
	size_t n;

	if (!dir || dir[0] != '/')
		return perr_set(e, PERR_CONFIG, "account %s: password_credential = %s, but "
				"$CREDENTIALS_DIRECTORY is not set: give the service "
				"LoadCredential=%s:/etc/postern/%s in its unit (systemd 247 or "
				"later), or use password_command",
				a->name, a->password_credential, a->password_credential,
				a->password_credential);
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, a->password_credential) >=
	    sizeof path)
		return perr_set(e, PERR_CONFIG, "$CREDENTIALS_DIRECTORY is too long");
	fd = open_regular(path, O_RDONLY, 0, "the credential", e);
	if (fd < 0) {
		int err = errno;
		if (err == EINVAL)   /* not a regular file: open_regular said so */
			return -1;
		perr_set(e, PERR_CONFIG, "account %s: credential %s: %s; give the service "
			 "LoadCredential=%s:PATH in its unit", a->name, path, strerror(err),
			 a->password_credential);
		return -1;
	}
	n = read_full(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n] = '\0';
	size_t len = strcspn(buf, "\r\n");
	int nul = len < n && buf[len] == '\0';
	if (len > SECRET_MAX || nul || len == 0) {
		wipe(buf, sizeof buf);
		return perr_set(e, PERR_CONFIG, "account %s: credential %s %s", a->name, path,
				len == 0 ? "is empty; put the secret on its first line"
				: len > SECRET_MAX ? "has a first line over 8192 bytes"
				: "holds a NUL byte");
	}
	take(s, buf, len, SECRET_CREDENTIAL);
	wipe(buf, sizeof buf);
	return 0;
}

/* ---- resolving -------------------------------------------------------------- */

static int none_found(const struct account *a, enum keyring_state ks, struct perr *e)
{
	/* The keyring was the last source and could not be asked: the secret
	 * cannot be had now (temporary), not a configuration error. */
	if (ks == KEYRING_NO_LIBRARY || ks == KEYRING_NO_SESSION || ks == KEYRING_ERROR ||
	    ks == KEYRING_LOCKED)
		perr_because(e, PERR_CAUSE_SECRET);
	if (ks == KEYRING_NO_LIBRARY)
		return perr_set(e, PERR_TEMP,
				"the keyring is not reachable (" LIBSECRET_SONAME " cannot be "
				"loaded) and no other source is configured for account %s; "
				"install libsecret-1-0 (apt-get install libsecret-1-0), or set "
				"password_command",
				a->name);
	if (ks == KEYRING_NO_SESSION || ks == KEYRING_ERROR || ks == KEYRING_LOCKED)
		return perr_set(e, PERR_TEMP,
				"the keyring is %s and no other source is configured for account "
				"%s; the message can be sent from the login session (postern -q), "
				"or set password_command",
				ks == KEYRING_LOCKED ? "locked"
				: ks == KEYRING_NO_SESSION
				    ? "not reachable (no D-Bus session)"
				    : "not reachable (no Secret Service answered)",
				a->name);
#ifdef HAVE_LIBSECRET
	return perr_set(e, PERR_CONFIG,
			"account %s has user = %s but no secret in password_command, the keyring "
			"or password: run postern --set-password=%s to store it in the keyring, "
			"or set password_command (or password, in a file only you can read)",
			a->name, a->user ? a->user : "", a->name);
#else
	return perr_set(e, PERR_CONFIG,
			"account %s has user = %s but no secret, and postern was built without "
			"keyring support: set password_command, or password in a file only you "
			"can read",
			a->name, a->user ? a->user : "");
#endif
}

int secret_resolve(const struct account *a, struct secret *s, struct perr *e)
{
	enum keyring_state ks = KEYRING_MISSING;

	memset(s, 0, sizeof *s);
	perr_because(e, PERR_CAUSE_NONE); /* the cause is set below where it is one */
	if (!secret_needed(a))
		return 0;
	if (a->oauth2) /* the secret is the access token (SPEC 10) */
		return oauth2_access_token(a, s, e);
	if (a->password_command && *a->password_command)
		return secret_command(a, a->password_command, "password_command", s, e);
	if (a->password_credential)
		return read_credential(a, s, e);
#ifdef HAVE_LIBSECRET
	if (a->host && a->user) {
		ks = keyring_lookup(a, NULL, s);
		if (ks == KEYRING_FOUND)
			return 0;
	}
#endif
	if (a->password) {
		take(s, a->password, strlen(a->password), SECRET_FILE);
		return 0;
	}
	return none_found(a, ks, e);
}

int secret_store(const struct account *a, const char *value, struct perr *e)
{
#ifdef HAVE_LIBSECRET
	char label[512];
	GError *err = NULL;
	gboolean ok;

	if (!a->host || !a->user || !*a->user)
		return perr_set(e, PERR_CONFIG,
				"account %s has no user; set user = ... before "
				"storing a password",
				a->name);
	if (!session_bus())
		return perr_set(e, PERR_TEMP,
				"the keyring is not reachable (no D-Bus session); "
				"run --set-password from the desktop session");
	if (!lib_load())
		return perr_set(e, PERR_CONFIG,
				"cannot load " LIBSECRET_SONAME " to reach the keyring; "
				"install it (apt-get install libsecret-1-0), or set "
				"password_command for account %s instead",
				a->name);
	snprintf(label, sizeof label, "postern: %s@%s", a->user, a->host);
	ok = lib.secret_password_store_sync(&postern_schema, SECRET_COLLECTION_DEFAULT, label,
					    value, NULL, &err, "host", a->host, "service", "smtp",
					    "user", a->user, NULL);
	if (!ok) {
		perr_set(e, PERR_TEMP, "cannot store the password in the keyring: %s",
			 err ? err->message : "unknown error");
		lib.g_clear_error(&err);
		return -1;
	}
	return 0;
#else
	(void)value;
	return perr_set(e, PERR_CONFIG,
			"postern was built without keyring support; set "
			"password_command for account %s instead",
			a->name);
#endif
}

#ifdef HAVE_LIBSECRET
static const char *keyring_why(enum keyring_state ks)
{
	switch (ks) {
	case KEYRING_NO_SESSION: return "not reachable (no D-Bus session)";
	case KEYRING_NO_LIBRARY: return "not reachable (" LIBSECRET_SONAME " cannot be loaded)";
	case KEYRING_LOCKED: return "locked";
	default: return "not reachable (no Secret Service answered)";
	}
}
#endif

int secret_keyring_get(const struct account *a, const char *type, struct secret *s,
		       struct perr *e)
{
	memset(s, 0, sizeof *s);
#ifdef HAVE_LIBSECRET
	enum keyring_state ks = keyring_lookup(a, type, s);

	if (ks == KEYRING_FOUND)
		return 0;
	if (ks == KEYRING_MISSING)
		return 1;
	perr_set(e, PERR_TEMP, "the keyring is %s", keyring_why(ks));
#else
	(void)a;
	(void)type;
	(void)e;
	return 1; /* no keyring: no entry */
#endif
	return perr_because(e, PERR_CAUSE_SECRET);
}

int secret_keyring_put(const struct account *a, const char *type, const char *label,
		       const char *value, struct perr *e)
{
#ifdef HAVE_LIBSECRET
	enum keyring_state ks = keyring_put(a, type, label, value);

	if (ks == KEYRING_FOUND)
		return 0;
	perr_set(e, PERR_TEMP, "the keyring is %s", keyring_why(ks));
#else
	(void)a;
	(void)type;
	(void)label;
	(void)value;
	perr_set(e, PERR_TEMP, "postern was built without keyring support");
#endif
	return perr_because(e, PERR_CAUSE_SECRET);
}

void secret_free(struct secret *s)
{
	if (!s)
		return;
	wipe_free(s->value);
	s->value = NULL;
	s->len = 0;
	s->source = SECRET_NONE;
}
