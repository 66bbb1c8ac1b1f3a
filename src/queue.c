/* queue.c — the durable spool (SPEC section 6): writing a message so that a
 * crash leaves all of it or none, claiming queued messages under file locks,
 * backoff, failed/, held accounts, and the listing for mailq.
 *
 * Commit protocol of queue_add:
 *   1. tmp/ID.msg.R is created (O_EXCL, 0600), the message streamed into it
 *      and fsync'ed;
 *   2. it is hard-linked to msg/ID (link fails when the name exists, so an
 *      ID is never reused) and the tmp name removed; msg/ is fsync'ed;
 *   3. tmp/ID.env.R is written and fsync'ed, renamed to env/ID, and env/ is
 *      fsync'ed.  From this rename on the message is queued.
 * A crash before 3 leaves at most an orphan msg/ID or tmp file, never a
 * queued message; queue_claim removes orphans and tmp files whose ctime is
 * over an hour old.
 *
 * Locking: the lock of a message is flock(LOCK_EX|LOCK_NB) on msg/ID, whose
 * inode never changes while the message is queued.  env/ID is replaced by
 * rename on every retry, so a lock on it would be lost; msg/ID is only
 * unlinked, after env/ID, by the lock holder.  A claimer, after locking,
 * checks that msg/ID still names the locked inode and that env/ID still
 * exists, then reads env/ID again: a message delivered or retried by another
 * process between the directory scan and the lock is skipped or seen in its
 * new state.  A process killed by SIGKILL loses its locks with its
 * descriptors.  Only the lock holder changes or removes env/ID and msg/ID.
 *
 * Delivered (queue_done): unlink env/ID (the commit), fsync env/, unlink
 * msg/ID.  Failed (queue_fail): failed/ID.env written by rename, msg/ID
 * hard-linked to failed/ID.msg, then env/ID and msg/ID unlinked; a crash in
 * between leaves the message queued (and retried), never lost. */
#include "autoconf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "queue.h"
#include "util.h"

/* An env file: ~16,000 recipients of the longest RFC 5321 path (256). */
#define ENV_MAX (4 * 1024 * 1024)
/* One value: an address (<= 256), a DSN ENVID (<= 100), an error text
 * (<= PERR_TEXT_MAX); longer values are refused (or cut, for errors). */
#define VALUE_MAX 2048
/* A held/ACCOUNT file: stamp and reason lines. */
#define HOLD_MAX (2 * VALUE_MAX + 64)
/* tmp files and orphan msg files older than this are leftovers of a crash. */
#define STALE_AGE 3600
#define BACKOFF_FIRST 300
#define BACKOFF_MAX (4 * 3600)
#define PATH_CAP (QUEUE_ID_MAX + 64)
#define ACCOUNT_FILE_MAX 255
#define COPY_BUF 65536

static const char *const subdirs[] = { "tmp", "msg", "env", "failed", "held" };

#ifdef POSTERN_QUEUE_TEST_HOOKS
/* Test builds: POSTERN_QUEUE_CRASH_AT=N ends the process at the Nth step of
 * a commit protocol, as a crash would; hook_progress (when set, e.g. to
 * shared memory) records the last step reached, for a test that kills
 * the process at a random moment. */
static unsigned hook_count;
static volatile unsigned *hook_progress;
static void hook(void)
{
	const char *s = getenv("POSTERN_QUEUE_CRASH_AT");

	hook_count++;
	if (hook_progress)
		*hook_progress = hook_count;
	if (s && strtoul(s, NULL, 10) == hook_count)
		_exit(99);
}
#else
#define hook() ((void)0)
#endif

/* ---- small helpers ------------------------------------------------------ */

static uint32_t rand32(void)
{
	static uint32_t fallback;
	uint32_t r;

	if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
		return r;
	fallback = fallback * 1103515245u + 12345u + (uint32_t)getpid() + (uint32_t)mono_ms();
	return fallback;
}

static void make_id(char id[QUEUE_ID_MAX])
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(id, QUEUE_ID_MAX, "%010llx%05lx%06x", (unsigned long long)tv.tv_sec,
		 (unsigned long)tv.tv_usec, (unsigned)(rand32() & 0xffffff));
}

/* IDs are lower-case hex; anything else in env/ or msg/ is not ours. */
static int valid_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 8 || n >= QUEUE_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && !(*s >= 'a' && *s <= 'f'))
			return 0;
	return 1;
}

static void tmp_name(char *out, size_t cap, const char *id, const char *kind)
{
	snprintf(out, cap, "tmp/%s.%s.%08x", id, kind, (unsigned)rand32());
}

static const char *io_fix(int err)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
		return "free some space on that file system";
	case EROFS:
		return "the file system is read-only: remount it read-write or set "
		       "XDG_STATE_HOME to a writable place";
	case EACCES:
	case EPERM:
		return "make it owned and writable by this user (chown, chmod 0700)";
	case ENOTDIR:
	case ENOENT:
	case ELOOP:
		return "make that path a directory (or remove what is in the way)";
	default:
		return "check the directory and the file system";
	}
}

/* Fill e for a failed system call on the spool.  Full disks may clear up
 * (PERR_TEMP); the rest need a person (PERR_IO). */
static int io_err(struct perr *e, const struct queue *q, const char *what, int err)
{
	enum perr_kind kind = (err == ENOSPC || err == EDQUOT) ? PERR_TEMP : PERR_IO;

	return perr_set(e, kind, "cannot %s in the queue directory %s: %s; %s", what,
			q->dir ? q->dir : "(none)", strerror(err), io_fix(err));
}

/* Append a note to e without making it an error (used for skipped entries). */
static void note(struct perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct perr *e, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	perr_append(e, "%s%s", e->text[0] ? "; " : "", line);
}

static int sync_sub(const struct queue *q, const char *sub)
{
	int fd = openat(q->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, err;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* fsync and close; 0 or -1 with errno (close can report NFS write errors). */
static int sync_close(int fd)
{
	int err;

	if (fsync(fd) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return close(fd);
}

/* A copy of s with control characters made spaces, cut at VALUE_MAX - 1. */
static char *one_line(const char *s)
{
	size_t n = strnlen(s, VALUE_MAX - 1);
	char *out = xstrndup(s, n);

	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return out;
}

/* ---- growing text buffer for env and hold files ------------------------- */

struct tbuf {
	char *p;
	size_t len, cap;
};

static void tb_add(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_add(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* "key value", or "key" alone for an empty value. */
static void tb_kv(struct tbuf *b, const char *key, const char *val)
{
	if (val[0])
		tb_add(b, "%s %s\n", key, val);
	else
		tb_add(b, "%s\n", key);
}

/* ---- env files ------------------------------------------------------------ */

static void format_env(const struct queue_env *env, struct tbuf *b)
{
	tb_add(b, "postern-queue 1\n");
	tb_kv(b, "id", env->id);
	tb_kv(b, "account", env->account);
	tb_kv(b, "sender", env->sender);
	for (size_t i = 0; i < env->nrcpts; i++)
		tb_kv(b, "rcpt", env->rcpts[i]);
	tb_add(b, "body_8bit %d\nsmtputf8 %d\n", env->body_8bit ? 1 : 0, env->smtputf8 ? 1 : 0);
	if (env->dsn_notify)
		tb_kv(b, "dsn_notify", env->dsn_notify);
	if (env->dsn_return)
		tb_kv(b, "dsn_return", env->dsn_return);
	if (env->dsn_envid)
		tb_kv(b, "dsn_envid", env->dsn_envid);
	tb_add(b, "size %lld\ncreated %lld\nnext_try %lld\nattempts %u\n", env->size,
	       (long long)env->created, (long long)env->next_try, env->attempts);
	if (env->last_error)
		tb_kv(b, "last_error", env->last_error);
	if (env->wire_size > 0)
		tb_add(b, "wire_size %lld\n", env->wire_size);
	if (env->owned)
		tb_add(b, "owner %lu\n", (unsigned long)env->owner);
	tb_add(b, "end\n");
}

static int parse_num(const char *s, long long *out)
{
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return (errno || *end) ? -1 : 0;
}

enum {
	K_ID = 1 << 0, K_ACCOUNT = 1 << 1, K_SENDER = 1 << 2, K_8BIT = 1 << 3,
	K_UTF8 = 1 << 4, K_NOTIFY = 1 << 5, K_RET = 1 << 6, K_ENVID = 1 << 7,
	K_SIZE = 1 << 8, K_CREATED = 1 << 9, K_NEXT = 1 << 10, K_ATTEMPTS = 1 << 11,
	K_ERROR = 1 << 12, K_WIRE = 1 << 13, K_OWNER = 1 << 14,
	K_REQUIRED = K_ID | K_ACCOUNT | K_SENDER | K_8BIT | K_UTF8 | K_SIZE | K_CREATED |
		     K_NEXT | K_ATTEMPTS,
};

static const struct env_key {
	const char *name;
	unsigned flag;
	int numeric;
} env_keys[] = {
	{ "id", K_ID, 0 },           { "account", K_ACCOUNT, 0 },   { "sender", K_SENDER, 0 },
	{ "body_8bit", K_8BIT, 1 },  { "smtputf8", K_UTF8, 1 },     { "dsn_notify", K_NOTIFY, 0 },
	{ "dsn_return", K_RET, 0 },  { "dsn_envid", K_ENVID, 0 },   { "size", K_SIZE, 1 },
	{ "created", K_CREATED, 1 }, { "next_try", K_NEXT, 1 },     { "attempts", K_ATTEMPTS, 1 },
	{ "last_error", K_ERROR, 0 }, { "wire_size", K_WIRE, 1 },   { "owner", K_OWNER, 1 },
};

static void set_field(struct queue_env *env, unsigned flag, const char *val, long long num)
{
	switch (flag) {
	case K_ID: str_copy(env->id, val, sizeof env->id); break;
	case K_ACCOUNT: env->account = xstrdup(val); break;
	case K_SENDER: env->sender = xstrdup(val); break;
	case K_8BIT: env->body_8bit = (int)num; break;
	case K_UTF8: env->smtputf8 = (int)num; break;
	case K_NOTIFY: env->dsn_notify = xstrdup(val); break;
	case K_RET: env->dsn_return = xstrdup(val); break;
	case K_ENVID: env->dsn_envid = xstrdup(val); break;
	case K_SIZE: env->size = num; break;
	case K_CREATED: env->created = (time_t)num; break;
	case K_NEXT: env->next_try = (time_t)num; break;
	case K_ATTEMPTS: env->attempts = (unsigned)num; break;
	case K_ERROR: env->last_error = xstrdup(val); break;
	case K_WIRE: env->wire_size = num; break;
	case K_OWNER: env->owned = 1; env->owner = (uid_t)num; break;
	}
}

/* One "key value" line into env; why gets the reason on failure. */
static int parse_line(char *line, struct queue_env *env, unsigned *seen, size_t *rcap,
		      const char **why)
{
	char *val = strchr(line, ' ');
	long long num = 0;
	size_t i;

	if (val)
		*val++ = '\0';
	else
		val = line + strlen(line);
	if (strlen(val) >= VALUE_MAX)
		return *why = "a value is too long", -1;
	if (strcmp(line, "rcpt") == 0) {
		if (!val[0])
			return *why = "an empty recipient", -1;
		if (env->nrcpts == *rcap) {
			*rcap = *rcap ? *rcap * 2 : 8;
			env->rcpts = xrealloc(env->rcpts, *rcap * sizeof *env->rcpts);
		}
		env->rcpts[env->nrcpts++] = xstrdup(val);
		return 0;
	}
	for (i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++)
		if (strcmp(line, env_keys[i].name) == 0)
			break;
	if (i == sizeof env_keys / sizeof env_keys[0])
		return *why = "an unknown key", -1;
	if (*seen & env_keys[i].flag)
		return *why = "a repeated key", -1;
	if (env_keys[i].numeric && parse_num(val, &num) < 0)
		return *why = "a malformed number", -1;
	if ((env_keys[i].flag == K_8BIT || env_keys[i].flag == K_UTF8) && num > 1)
		return *why = "a malformed flag", -1;
	if (env_keys[i].flag == K_ATTEMPTS && num > 1000000)
		return *why = "a malformed attempt count", -1;
	if (env_keys[i].flag == K_ID && strlen(val) >= QUEUE_ID_MAX)
		return *why = "a malformed id", -1;
	*seen |= env_keys[i].flag;
	set_field(env, env_keys[i].flag, val, num);
	return 0;
}

/* Strict parse of an env file's bytes (modified in place). */
static int parse_env(char *data, size_t len, const char *id, struct queue_env *env,
		     const char **why)
{
	unsigned seen = 0;
	size_t rcap = 0, lineno = 0;
	char *p = data, *end = data + len;
	int ended = 0;

	memset(env, 0, sizeof *env);
	if (len == 0 || data[len - 1] != '\n')
		return *why = "it is empty or cut short", -1;
	if (memchr(data, '\0', len))
		return *why = "it contains a NUL byte", -1;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		*nl = '\0';
		if (ended)
			return *why = "text after the end line", -1;
		if (!str_is_printable(p, 1))
			return *why = "a control character", -1;
		if (lineno++ == 0) {
			if (strcmp(p, "postern-queue 1") != 0)
				return *why = "the first line is not \"postern-queue 1\"", -1;
		} else if (strcmp(p, "end") == 0) {
			ended = 1;
		} else if (parse_line(p, env, &seen, &rcap, why) < 0) {
			return -1;
		}
		p = nl + 1;
	}
	if (!ended)
		return *why = "the end line is missing", -1;
	if ((seen & K_REQUIRED) != K_REQUIRED || env->nrcpts == 0 || !env->account[0])
		return *why = "a required field is missing", -1;
	if (strcmp(env->id, id) != 0)
		return *why = "its id does not match its file name", -1;
	return 0;
}

/* Read a small file below dirfd (at most max bytes).  -1 with errno;
 * EFBIG when it is larger. */
static int read_small(int dirfd, const char *path, size_t max, char **data, size_t *len)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	int err;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		err = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		close(fd);
		errno = err;
		return -1;
	}
	*data = xmalloc((size_t)st.st_size + 1);
	*len = read_full(fd, *data, (size_t)st.st_size);
	close(fd);
	(*data)[*len] = '\0';
	return 0;
}

/* Load env file path for id: 0, -1 with errno (e.g. ENOENT), or -2 when
 * corrupt (why says how). */
static int load_env(const struct queue *q, const char *path, const char *id,
		    struct queue_env *env, const char **why)
{
	char *data;
	size_t len;
	int rc;

	memset(env, 0, sizeof *env);
	if (read_small(q->dirfd, path, ENV_MAX, &data, &len) < 0) {
		if (errno != EFBIG && errno != EINVAL)
			return -1;
		*why = errno == EFBIG ? "it is too large" : "it is not a regular file";
		return -2;
	}
	rc = parse_env(data, len, id, env, why);
	free(data);
	if (rc < 0) {
		queue_env_free(env);
		return -2;
	}
	return 0;
}

/* Write env to a temporary file, fsync, rename to dst (e.g. "env/ID");
 * -1 with errno.  The temporary file is gone afterwards either way. */
static int write_env_file(const struct queue *q, const struct tbuf *b, const char *id,
			  const char *dst)
{
	char tmp[PATH_CAP];
	int fd, err;

	tmp_name(tmp, sizeof tmp, id, "env");
	fd = openat(q->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	hook();
	if (write_full(fd, b->p, b->len) < 0) {
		err = errno;
		close(fd);
		unlinkat(q->dirfd, tmp, 0);
		errno = err;
		return -1;
	}
	hook();
	if (sync_close(fd) < 0) {
		err = errno;
		unlinkat(q->dirfd, tmp, 0);
		errno = err;
		return -1;
	}
	hook();
	if (renameat(q->dirfd, tmp, q->dirfd, dst) < 0) {
		err = errno;
		unlinkat(q->dirfd, tmp, 0);
		errno = err;
		return -1;
	}
	hook();
	return 0;
}

static time_t backoff(unsigned attempts)
{
	time_t d = BACKOFF_FIRST;

	for (unsigned i = 1; i < attempts && d < BACKOFF_MAX; i++)
		d *= 2;
	return d < BACKOFF_MAX ? d : BACKOFF_MAX;
}

time_t queue_backoff(unsigned attempts)
{
	return attempts ? backoff(attempts) : 0;
}

/* ---- opening the spool ---------------------------------------------------- */

static char *default_dir(uid_t euid, struct perr *e)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	const char *env = getenv("POSTERN_QUEUE_DIR");
	char buf[PATH_MAX];
	struct passwd *pw;

	if (env && env[0])
		return xstrdup(env);
	if (euid == 0)
		return xstrdup("/var/spool/postern");
	if (xdg && xdg[0] == '/') {
		snprintf(buf, sizeof buf, "%s/postern/queue", xdg);
		return xstrdup(buf);
	}
	if (!home || home[0] != '/') {
		pw = getpwuid(euid);
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || home[0] != '/') {
		perr_set(e, PERR_IO, "cannot find the queue directory: HOME is not set; "
			 "set HOME or XDG_STATE_HOME");
		return NULL;
	}
	snprintf(buf, sizeof buf, "%s/.local/state/postern/queue", home);
	return xstrdup(buf);
}

/* mkdir -p with mode 0700 for what is created. */
static int make_path(const char *path)
{
	char buf[PATH_MAX];
	size_t n = str_copy(buf, path, sizeof buf);

	if (n >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int check_top(struct queue *q, struct perr *e)
{
	struct stat st;

	if (fstat(q->dirfd, &st) < 0)
		return io_err(e, q, "check the directory", errno);
	if (st.st_uid != geteuid())
		return perr_set(e, PERR_IO, "the queue directory %s belongs to uid %u, not to "
				"this user (uid %u); chown it or remove it", q->dir,
				(unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 07777) != 0700 && fchmod(q->dirfd, 0700) < 0)
		return io_err(e, q, "set mode 0700", errno);
	return 0;
}

int queue_open(struct queue *q, const char *dir, struct perr *e)
{
	struct stat st;

	q->dirfd = -1;
	q->lazy_sync = 0;
	q->dirty = 0;
	q->dir = dir ? xstrdup(dir) : default_dir(geteuid(), e);
	if (!q->dir)
		return -1;
	if (make_path(q->dir) < 0) {
		io_err(e, q, "create the directory", errno);
		goto fail;
	}
	q->dirfd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dirfd < 0) {
		io_err(e, q, "open the directory", errno);
		goto fail;
	}
	if (check_top(q, e) < 0)
		goto fail;
	for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
		if (mkdirat(q->dirfd, subdirs[i], 0700) < 0 && errno != EEXIST) {
			io_err(e, q, "create a subdirectory", errno);
			goto fail;
		}
		if (fstatat(q->dirfd, subdirs[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			io_err(e, q, "use a subdirectory", ENOTDIR);
			goto fail;
		}
	}
	return 0;
fail:
	queue_close(q);
	return -1;
}

int queue_open_existing(struct queue *q, const char *dir)
{
	struct perr e = { 0 };
	struct stat st;

	q->lazy_sync = 0;
	q->dirty = 0;
	q->dir = dir ? xstrdup(dir) : default_dir(geteuid(), &e);
	q->dirfd = q->dir ? open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (q->dirfd < 0 || fstat(q->dirfd, &st) < 0 || st.st_uid != geteuid()) {
		queue_close(q);
		return -1;
	}
	return 0;
}

int queue_sync(struct queue *q)
{
	int rc = 0;

	if (q->dirty && q->dirfd >= 0) {
		rc = sync_sub(q, "env");
		if (sync_sub(q, "msg") < 0)
			rc = -1;
		q->dirty = 0;
	}
	return rc;
}

void queue_close(struct queue *q)
{
	queue_sync(q);
	if (q->dirfd >= 0)
		close(q->dirfd);
	q->dirfd = -1;
	free(q->dir);
	q->dir = NULL;
}

/* ---- adding --------------------------------------------------------------- */

static int check_value(const char *what, const char *s, int may_be_empty, struct perr *e)
{
	if (!s || (!may_be_empty && !s[0]))
		return perr_set(e, PERR_SOFTWARE, "cannot queue: the %s is missing", what);
	if (!str_is_printable(s, 1) || strlen(s) >= VALUE_MAX)
		return perr_set(e, PERR_SOFTWARE, "cannot queue: the %s contains a control "
				"character or is too long", what);
	return 0;
}

static int check_env(const struct queue_env *env, struct perr *e)
{
	if (check_value("account", env->account, 0, e) < 0 ||
	    check_value("sender", env->sender, 1, e) < 0)
		return -1;
	if (env->nrcpts == 0)
		return perr_set(e, PERR_SOFTWARE, "cannot queue: no recipients");
	for (size_t i = 0; i < env->nrcpts; i++)
		if (check_value("recipient", env->rcpts[i], 0, e) < 0)
			return -1;
	if ((env->dsn_notify && check_value("DSN NOTIFY", env->dsn_notify, 1, e) < 0) ||
	    (env->dsn_return && check_value("DSN RET", env->dsn_return, 1, e) < 0) ||
	    (env->dsn_envid && check_value("DSN ENVID", env->dsn_envid, 1, e) < 0))
		return -1;
	return 0;
}

/* Stream the message into tmp (already open); returns bytes or -1.  On a
 * read error e is filled and *rerr set. */
static long long copy_message(int fd, const struct message *m, int *rerr, struct perr *e)
{
	unsigned char buf[COPY_BUF];
	struct msg_reader r;
	long long total = 0;
	long got;

	message_rewind(m, &r);
	while ((got = message_next(&r, buf, sizeof buf, e)) > 0) {
		if (write_full(fd, buf, (size_t)got) < 0)
			return -1;
		total += got;
		hook();
	}
	if (got < 0) {
		*rerr = 1;
		return -1;
	}
	return total;
}

/* Step 1-2: the message into msg/ID under a fresh ID (env->id). */
static int add_msg(struct queue *q, struct queue_env *env, const struct message *m,
		   struct perr *e)
{
	char tmp[PATH_CAP], dst[PATH_CAP];
	int fd, rerr = 0, tries;
	long long size;

	make_id(env->id);
	tmp_name(tmp, sizeof tmp, env->id, "msg");
	fd = openat(q->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_err(e, q, "create a file", errno);
	hook();
	size = copy_message(fd, m, &rerr, e);
	if (size < 0 || sync_close(fd) < 0) {
		if (!rerr)
			io_err(e, q, "write the message", errno);
		if (size < 0)
			close(fd);
		unlinkat(q->dirfd, tmp, 0);
		return -1;
	}
	env->size = size;
	hook();
	for (tries = 0; tries < 10; tries++) {
		snprintf(dst, sizeof dst, "msg/%s", env->id);
		if (linkat(q->dirfd, tmp, q->dirfd, dst, 0) == 0)
			break;
		if (errno == EEXIST) {
			make_id(env->id);
			continue;
		}
		if ((errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) &&
		    faccessat(q->dirfd, dst, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
		    renameat(q->dirfd, tmp, q->dirfd, dst) == 0)
			break; /* no hard links here: the ID is random enough */
		io_err(e, q, "link the message into msg/", errno);
		unlinkat(q->dirfd, tmp, 0);
		return -1;
	}
	unlinkat(q->dirfd, tmp, 0);
	if (tries == 10)
		return perr_set(e, PERR_SOFTWARE, "cannot find a free queue id in %s", q->dir);
	hook();
	if (sync_sub(q, "msg") < 0) {
		io_err(e, q, "sync msg/", errno);
		unlinkat(q->dirfd, dst, 0);
		return -1;
	}
	hook();
	return 0;
}

int queue_add(struct queue *q, struct queue_env *env, const struct message *m, struct perr *e)
{
	struct tbuf b = { 0 };
	char dst[PATH_CAP];
	char *last = env->last_error;
	int rc = 0;

	if (check_env(env, e) < 0)
		return -1;
	env->created = time(NULL);
	env->next_try = env->created + queue_backoff(env->attempts);
	if (add_msg(q, env, m, e) < 0) {
		env->id[0] = '\0';
		return -1;
	}
	if (last)
		env->last_error = one_line(last);
	format_env(env, &b);
	if (last) {
		free(env->last_error);
		env->last_error = last;
	}
	snprintf(dst, sizeof dst, "env/%s", env->id);
	if (write_env_file(q, &b, env->id, dst) < 0 || sync_sub(q, "env") < 0) {
		rc = io_err(e, q, "write the envelope", errno);
		unlinkat(q->dirfd, dst, 0);
		snprintf(dst, sizeof dst, "msg/%s", env->id);
		unlinkat(q->dirfd, dst, 0);
		env->id[0] = '\0';
	}
	free(b.p);
	return rc;
}

/* ---- claiming ------------------------------------------------------------- */

struct idlist {
	char (*ids)[QUEUE_ID_MAX];
	size_t n, cap;
};

/* IDs in sub/ (names that are IDs, optionally ending in suffix). */
static int list_ids(const struct queue *q, const char *sub, const char *suffix,
		    struct idlist *l)
{
	int fd = openat(q->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t slen = suffix ? strlen(suffix) : 0;
	struct dirent *d;
	DIR *dir;

	memset(l, 0, sizeof *l);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir))) {
		char id[QUEUE_ID_MAX];
		size_t n = strlen(d->d_name);

		if (n <= slen || n - slen >= QUEUE_ID_MAX ||
		    (slen && strcmp(d->d_name + n - slen, suffix) != 0))
			continue;
		memcpy(id, d->d_name, n - slen);
		id[n - slen] = '\0';
		if (!valid_id(id))
			continue;
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 64;
			l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
		}
		memcpy(l->ids[l->n++], id, QUEUE_ID_MAX);
	}
	closedir(dir);
	return 0;
}

/* Remove stale files of one subdirectory: those ok() accepts (NULL: all),
 * older than STALE_AGE.  Streams the directory (nothing kept per file). */
static void sweep_sub(const struct queue *q, const char *sub, time_t now,
		      int (*ok)(const struct queue *q, const char *name))
{
	int fd = openat(q->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	struct stat st;
	DIR *dir;

	if (fd < 0)
		return;
	if (!(dir = fdopendir(fd))) {
		close(fd);
		return;
	}
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.' && (!ok || ok(q, d->d_name)) &&
		    fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_ctime > STALE_AGE)
			unlinkat(fd, d->d_name, 0);
	closedir(dir);
}

/* msg/NAME is an orphan: an id without env/ID. */
static int orphan(const struct queue *q, const char *name)
{
	char path[PATH_CAP];

	if (!valid_id(name))
		return 0;
	snprintf(path, sizeof path, "env/%s", name);
	return faccessat(q->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

/* Remove tmp files and orphan msg files (no env) left by a crash. */
static void sweep(const struct queue *q, time_t now)
{
	sweep_sub(q, "tmp", now, NULL);
	sweep_sub(q, "msg", now, orphan);
}

/* Does the scan take this message (its envelope read with or without
 * the lock)? */
static int wanted(const struct queue_scan *s, const struct queue_env *env)
{
	enum queue_pick p = s->pick ? s->pick(s->pick_ctx, env) : QUEUE_PICK_RULE;

	if (p == QUEUE_PICK_SKIP || (s->account && strcmp(env->account, s->account) != 0))
		return 0;
	return p == QUEUE_PICK_ANY || !s->due_only || env->next_try <= s->now;
}

static int filtering(const struct queue_scan *s)
{
	return s->account || s->due_only || s->pick;
}

static void note_corrupt(const struct queue *q, struct perr *e, const char *path,
			 const char *why)
{
	note(e, "skipped %s/%s: %s; move it out of the queue or delete it", q->dir, path, why);
}

/* Lock msg/ID and re-read env/ID under the lock.  1: claimed into it;
 * 0: skipped (locked, gone, not taken by the scan, corrupt: noted in e).
 * When the scan filters, the envelope is first read without the lock, so
 * a message the scan does not take is never locked (a concurrent flusher
 * taking everything does not find it busy). */
static int try_claim(const struct queue *q, const char *id, const struct queue_scan *s,
		     struct queue_item *it, struct perr *e)
{
	char mpath[PATH_CAP], epath[PATH_CAP];
	struct stat fst, pst;
	const char *why = NULL;
	int fd, rc;

	snprintf(mpath, sizeof mpath, "msg/%s", id);
	snprintf(epath, sizeof epath, "env/%s", id);
	if (filtering(s)) {
		rc = load_env(q, epath, id, &it->env, &why);
		if (rc == -2)
			note_corrupt(q, e, epath, why);
		if (rc < 0)
			return 0;
		rc = wanted(s, &it->env);
		queue_env_free(&it->env);
		if (!rc)
			return 0;
	}
	fd = openat(q->dirfd, mpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		/* msg goes after env: if env is still there, msg is missing. */
		if (faccessat(q->dirfd, epath, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			note_corrupt(q, e, epath, "its message file is missing");
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &fst) < 0 || fst.st_nlink == 0 ||
	    fstatat(q->dirfd, mpath, &pst, AT_SYMLINK_NOFOLLOW) < 0 ||
	    pst.st_ino != fst.st_ino || pst.st_dev != fst.st_dev)
		goto skip;
	rc = load_env(q, epath, id, &it->env, &why);
	if (rc == -2)
		note_corrupt(q, e, epath, why);
	if (rc < 0)
		goto skip;
	if (!wanted(s, &it->env))
		goto skip_env;
	if (it->env.size != (long long)fst.st_size) {
		note_corrupt(q, e, mpath, "its size differs from the envelope's");
		goto skip_env;
	}
	it->lockfd = it->msgfd = fd;
	it->pos = 0;
	return 1;
skip_env:
	queue_env_free(&it->env);
skip:
	close(fd);
	return 0;
}

/* The up to max smallest ids in env/ above after, ascending: one pass
 * over the directory keeping a bounded sorted array (memory: max ids,
 * whatever the size of the queue).  Returns how many, or -1. */
static long next_ids(const struct queue *q, const char *after, char (*ids)[QUEUE_ID_MAX],
		     size_t max)
{
	int fd = openat(q->dirfd, "env", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((d = readdir(dir))) {
		size_t lo = 0, hi = n;

		if (!valid_id(d->d_name) || strcmp(d->d_name, after) <= 0 ||
		    (n == max && strcmp(d->d_name, ids[n - 1]) >= 0))
			continue;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (strcmp(ids[mid], d->d_name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (n == max)
			n--;
		memmove(ids[lo + 1], ids[lo], (n - lo) * sizeof ids[0]);
		str_copy(ids[lo], d->d_name, QUEUE_ID_MAX);
		n++;
	}
	closedir(dir);
	return (long)n;
}

void queue_scan_init(struct queue_scan *s, const char *account, int due_only, time_t now)
{
	memset(s, 0, sizeof *s);
	s->account = account;
	s->due_only = due_only;
	s->now = now;
}

int queue_claim_next(struct queue *q, struct queue_scan *s, size_t max,
		     struct queue_item **items, size_t *n, struct perr *e)
{
	char (*ids)[QUEUE_ID_MAX];
	struct queue_item *its;
	size_t k = 0;

	perr_clear(e);
	*items = NULL;
	*n = 0;
	if (max > QUEUE_CLAIM_MAX)
		max = QUEUE_CLAIM_MAX;
	if (!s->swept) {
		sweep(q, s->now);
		s->swept = 1;
	}
	if (s->done || max == 0)
		return 0;
	ids = xcalloc(max, sizeof *ids);
	its = xcalloc(max, sizeof *its);
	while (k < max && !s->done) {
		size_t want = max - k, i;
		long got = next_ids(q, s->after, ids, want);

		if (got < 0) {
			free(ids);
			queue_items_free(its, k);
			return io_err(e, q, "read env/", errno);
		}
		for (i = 0; i < (size_t)got; i++) {
			its[k].lockfd = its[k].msgfd = -1;
			k += (size_t)try_claim(q, ids[i], s, &its[k], e);
			str_copy(s->after, ids[i], sizeof s->after);
		}
		if ((size_t)got < want)
			s->done = 1;
	}
	free(ids);
	if (k == 0) {
		free(its);
		its = NULL;
	}
	*items = its;
	*n = k;
	return 0;
}

int queue_claim(struct queue *q, const char *account, int due_only, time_t now,
		struct queue_item **items, size_t *n, struct perr *e)
{
	struct queue_scan s;

	queue_scan_init(&s, account, due_only, now);
	return queue_claim_next(q, &s, QUEUE_CLAIM_MAX, items, n, e);
}

void queue_item_rewind(struct queue_item *it)
{
	it->pos = 0;
}

long queue_item_read(void *item, unsigned char *buf, size_t cap, struct perr *e)
{
	struct queue_item *it = item;
	ssize_t r;

	do
		r = pread(it->msgfd, buf, cap, it->pos);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return perr_set(e, PERR_IO, "cannot read queued message %s: %s", it->env.id,
				strerror(errno));
	it->pos += r;
	return (long)r;
}

/* ---- delivered, retried, failed ------------------------------------------ */

void queue_release(struct queue_item *it)
{
	if (it->lockfd >= 0)
		close(it->lockfd);
	if (it->msgfd >= 0 && it->msgfd != it->lockfd)
		close(it->msgfd);
	it->lockfd = it->msgfd = -1;
}

void queue_items_free(struct queue_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		queue_release(&items[i]);
		queue_env_free(&items[i].env);
	}
	free(items);
}

int queue_done(struct queue *q, struct queue_item *it, struct perr *e)
{
	char path[PATH_CAP];
	int rc = 0;

	snprintf(path, sizeof path, "env/%s", it->env.id);
	hook();
	if (unlinkat(q->dirfd, path, 0) < 0 && errno != ENOENT)
		rc = io_err(e, q, "remove a delivered message (it may be sent again)", errno);
	else if (q->lazy_sync)
		q->dirty = 1;
	else if (sync_sub(q, "env") < 0)
		rc = io_err(e, q, "sync env/ (a delivered message may be sent again)", errno);
	hook();
	if (rc == 0) {
		snprintf(path, sizeof path, "msg/%s", it->env.id);
		unlinkat(q->dirfd, path, 0);
		if (!q->lazy_sync)
			sync_sub(q, "msg");
	}
	queue_release(it);
	return rc;
}

/* Move the claimed message to failed/ with why as its last error. */
static int move_to_failed(struct queue *q, struct queue_item *it, struct perr *e)
{
	char src[PATH_CAP], tmp[PATH_CAP], dst[PATH_CAP];
	struct tbuf b = { 0 };
	int rc;

	format_env(&it->env, &b);
	snprintf(dst, sizeof dst, "failed/%s.env", it->env.id);
	rc = write_env_file(q, &b, it->env.id, dst);
	free(b.p);
	if (rc < 0)
		return io_err(e, q, "write into failed/", errno);
	snprintf(src, sizeof src, "msg/%s", it->env.id);
	tmp_name(tmp, sizeof tmp, it->env.id, "failed");
	snprintf(dst, sizeof dst, "failed/%s.msg", it->env.id);
	if (linkat(q->dirfd, src, q->dirfd, tmp, 0) < 0 ||
	    (hook(), renameat(q->dirfd, tmp, q->dirfd, dst)) < 0) {
		rc = io_err(e, q, "link the message into failed/", errno);
		unlinkat(q->dirfd, tmp, 0);
		snprintf(dst, sizeof dst, "failed/%s.env", it->env.id);
		unlinkat(q->dirfd, dst, 0);
		return rc;
	}
	hook();
	if (sync_sub(q, "failed") < 0)
		return io_err(e, q, "sync failed/", errno);
	return 0;
}

int queue_fail(struct queue *q, struct queue_item *it, const char *why, struct perr *e)
{
	char path[PATH_CAP];
	int rc;

	free(it->env.last_error);
	it->env.last_error = one_line(why ? why : "");
	rc = move_to_failed(q, it, e);
	if (rc == 0) {
		/* Committed: no longer queued.  Then the msg/ name. */
		snprintf(path, sizeof path, "env/%s", it->env.id);
		if (unlinkat(q->dirfd, path, 0) < 0 && errno != ENOENT)
			rc = io_err(e, q, "remove a failed message from env/", errno);
		else if (sync_sub(q, "env") < 0)
			rc = io_err(e, q, "sync env/", errno);
		hook();
		snprintf(path, sizeof path, "msg/%s", it->env.id);
		if (rc == 0 && unlinkat(q->dirfd, path, 0) == 0)
			sync_sub(q, "msg");
	}
	queue_release(it);
	return rc;
}

int queue_retry(struct queue *q, struct queue_item *it, const char *why, time_t now,
		long lifetime, struct perr *e)
{
	char path[PATH_CAP];
	struct tbuf b = { 0 };
	int due = now >= it->env.next_try, rc = 0;

	if (due)
		it->env.attempts++;
	if (lifetime > 0 && now - it->env.created >= lifetime) {
		char text[VALUE_MAX];
		long age = (long)(now - it->env.created);
		long unit = age >= 2 * 86400 ? 86400 : age >= 2 * 3600 ? 3600 : age >= 120 ? 60 : 1;

		snprintf(text, sizeof text, "gave up after %ld %s and %u attempt%s: %s", age / unit,
			 unit == 86400 ? "days" : unit == 3600 ? "hours" : unit == 60 ? "minutes" :
			 "seconds", it->env.attempts, it->env.attempts == 1 ? "" : "s",
			 why ? why : "");
		return queue_fail(q, it, text, e) < 0 ? -1 : 1;
	}
	if (due)
		it->env.next_try = now + backoff(it->env.attempts);
	free(it->env.last_error);
	it->env.last_error = one_line(why ? why : "");
	format_env(&it->env, &b);
	snprintf(path, sizeof path, "env/%s", it->env.id);
	if (write_env_file(q, &b, it->env.id, path) < 0 || sync_sub(q, "env") < 0)
		rc = io_err(e, q, "update the envelope", errno);
	free(b.p);
	queue_release(it);
	return rc;
}

/* ---- by id: what a person asks (--queue-delete, --queue-retry) ----------- */

/* Lock the message file path (msg/ID or failed/ID.msg) without waiting:
 * the descriptor, -1 with errno (ENOENT: none; EWOULDBLOCK: a flusher is
 * delivering it now). */
static const char *msg_damage(const struct queue *q, const char *path, long long size);

static int lock_msg(const struct queue *q, const char *path)
{
	int fd = openat(q->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		errno = err == EWOULDBLOCK ? EWOULDBLOCK : err;
		return -1;
	}
	return fd;
}

static int spool_has(const struct queue *q, const char *path)
{
	return faccessat(q->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int busy(struct perr *e, const char *id)
{
	return perr_set(e, PERR_TEMP, "message %s is being delivered right now; look again "
			"with mailq in a moment", id);
}

/* Where id is: 1 queued (env/ID), 2 failed (failed/ID.env), 0 nowhere. */
static int where(const struct queue *q, const char *id)
{
	char path[PATH_CAP];

	snprintf(path, sizeof path, "env/%s", id);
	if (spool_has(q, path))
		return 1;
	snprintf(path, sizeof path, "failed/%s.env", id);
	return spool_has(q, path) ? 2 : 0;
}

static int unknown_id(struct perr *e, const char *id)
{
	char show[QUEUE_ID_MAX + 8];

	str_copy(show, id, sizeof show);
	if (strlen(id) >= sizeof show - 4)
		memcpy(show + sizeof show - 4, "...", 4);
	for (char *p = show; *p; p++)
		if (!isprint((unsigned char)*p))
			*p = '?';
	return perr_set(e, PERR_USAGE, "no queued or failed message has the id %s; mailq lists "
			"the ids", show);
}

int queue_remove(struct queue *q, const char *id, struct perr *e)
{
	char epath[PATH_CAP], mpath[PATH_CAP];
	int at = valid_id(id) ? where(q, id) : 0, fd;

	if (!at)
		return unknown_id(e, id);
	snprintf(epath, sizeof epath, at == 1 ? "env/%s" : "failed/%s.env", id);
	snprintf(mpath, sizeof mpath, at == 1 ? "msg/%s" : "failed/%s.msg", id);
	fd = lock_msg(q, mpath);
	if (fd < 0 && errno == EWOULDBLOCK)
		return busy(e, id);
	/* A missing message file (a damaged entry) does not stop the removal. */
	if (unlinkat(q->dirfd, epath, 0) < 0 && errno != ENOENT) {
		if (fd >= 0)
			close(fd);
		return io_err(e, q, "remove the envelope", errno);
	}
	unlinkat(q->dirfd, mpath, 0);
	if (fd >= 0)
		close(fd);
	if (sync_sub(q, at == 1 ? "env" : "failed") < 0)
		return io_err(e, q, "sync the directory", errno);
	if (at == 1)
		sync_sub(q, "msg");
	return at == 1 ? 0 : 1;
}

/* env, read from epath, goes back to env/ID due now; the message file
 * is already msg/ID. */
static int requeue_env(struct queue *q, struct queue_env *env, time_t now, int fresh,
		       struct perr *e)
{
	char path[PATH_CAP];
	struct tbuf b = { 0 };
	int rc = 0;

	env->next_try = now;
	if (fresh) {
		/* Back from failed/: queue_lifetime and the backoff start again. */
		env->created = now;
		env->attempts = 0;
	}
	format_env(env, &b);
	snprintf(path, sizeof path, "env/%s", env->id);
	if (write_env_file(q, &b, env->id, path) < 0 || sync_sub(q, "env") < 0)
		rc = io_err(e, q, "write the envelope", errno);
	free(b.p);
	return rc;
}

static int damaged(struct perr *e, const struct queue *q, const char *path, const char *why)
{
	return perr_set(e, PERR_DATA, "the entry %s/%s cannot be retried: %s; delete it with "
			"postern --queue-delete", q->dir, path, why);
}

/* A failed message back into the queue: msg/ID linked from failed/ID.msg,
 * then env/ID written (the commit: from here on it is queued, and mailq
 * no longer lists the failed copy), then the failed/ files removed. */
static int retry_failed(struct queue *q, const char *id, time_t now, struct perr *e)
{
	char epath[PATH_CAP], mpath[PATH_CAP], tmp[PATH_CAP], dst[PATH_CAP];
	struct queue_env env;
	const char *why = NULL;
	int fd, rc;

	snprintf(epath, sizeof epath, "failed/%s.env", id);
	snprintf(mpath, sizeof mpath, "failed/%s.msg", id);
	fd = lock_msg(q, mpath);
	if (fd < 0)
		return errno == EWOULDBLOCK ? busy(e, id) : damaged(e, q, mpath, "its message "
								   "file is missing");
	rc = load_env(q, epath, id, &env, &why);
	if (rc < 0) {
		close(fd);
		return rc == -1 ? unknown_id(e, id) : damaged(e, q, epath, why);
	}
	if ((why = msg_damage(q, mpath, env.size))) {
		rc = damaged(e, q, mpath, why);
		goto out;
	}
	tmp_name(tmp, sizeof tmp, id, "retry");
	snprintf(dst, sizeof dst, "msg/%s", id);
	if (linkat(q->dirfd, mpath, q->dirfd, tmp, 0) < 0 ||
	    renameat(q->dirfd, tmp, q->dirfd, dst) < 0 || sync_sub(q, "msg") < 0) {
		rc = io_err(e, q, "link the message back into msg/", errno);
		unlinkat(q->dirfd, tmp, 0);
		goto out;
	}
	rc = requeue_env(q, &env, now, 1, e);
	if (rc == 0) {
		unlinkat(q->dirfd, epath, 0);
		unlinkat(q->dirfd, mpath, 0);
		sync_sub(q, "failed");
	}
out:
	queue_env_free(&env);
	close(fd);
	return rc;
}

int queue_requeue(struct queue *q, const char *id, time_t now, struct perr *e)
{
	char epath[PATH_CAP], mpath[PATH_CAP];
	struct queue_env env;
	const char *why = NULL;
	int at = valid_id(id) ? where(q, id) : 0, fd, rc;

	if (!at)
		return unknown_id(e, id);
	if (at == 2)
		return retry_failed(q, id, now, e) < 0 ? -1 : 1;
	snprintf(epath, sizeof epath, "env/%s", id);
	snprintf(mpath, sizeof mpath, "msg/%s", id);
	fd = lock_msg(q, mpath);
	if (fd < 0)
		return errno == EWOULDBLOCK ? busy(e, id) : damaged(e, q, epath, "its message "
								   "file is missing");
	rc = load_env(q, epath, id, &env, &why);
	if (rc < 0) {
		close(fd);
		return rc == -1 ? 0 /* delivered meanwhile */ : damaged(e, q, epath, why);
	}
	rc = requeue_env(q, &env, now, 0, e);
	queue_env_free(&env);
	close(fd);
	return rc;
}

/* ---- failed since a person last looked ------------------------------------ */

#define SEEN_PATH "failed/.seen"

static int newer(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

size_t queue_failed_unseen(struct queue *q)
{
	struct timespec seen = { 0, 0 };
	struct stat st;
	struct dirent *d;
	size_t n = 0;
	DIR *dir;
	int fd;

	if (fstatat(q->dirfd, SEEN_PATH, &st, AT_SYMLINK_NOFOLLOW) == 0)
		seen = st.st_mtim;
	/* One stat when nothing entered failed/ since the mark. */
	if (fstatat(q->dirfd, "failed", &st, AT_SYMLINK_NOFOLLOW) < 0 || !newer(&st.st_mtim, &seen))
		return 0;
	fd = openat(q->dirfd, "failed", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((d = readdir(dir))) {
		size_t len = strlen(d->d_name);
		char id[QUEUE_ID_MAX], path[PATH_CAP];

		if (len <= 4 || len - 4 >= QUEUE_ID_MAX || strcmp(d->d_name + len - 4, ".env") != 0)
			continue;
		memcpy(id, d->d_name, len - 4);
		id[len - 4] = '\0';
		snprintf(path, sizeof path, "env/%s", id);
		if (valid_id(id) && fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    newer(&st.st_mtim, &seen) && !spool_has(q, path))
			n++;
	}
	closedir(dir);
	return n;
}

void queue_failed_seen(struct queue *q)
{
	int fd = openat(q->dirfd, SEEN_PATH, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return;
	futimens(fd, NULL);
	close(fd);
}

/* ---- held accounts -------------------------------------------------------- */

/* held/NAME for account: [A-Za-z0-9_-] and inner dots kept, the rest %XX. */
static int hold_path(const char *account, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "held/");

	for (const unsigned char *p = (const unsigned char *)account; *p; p++) {
		int keep = isalnum(*p) || *p == '_' || *p == '-' ||
			   (*p == '.' && p != (const unsigned char *)account);

		if (n + 4 >= cap)
			return -1;
		n += (size_t)snprintf(out + n, cap - n, keep ? "%c" : "%%%02X", *p);
	}
	return account[0] && n - 5 <= ACCOUNT_FILE_MAX ? 0 : -1;
}

/* Read held/ACCOUNT: its format version (1 or 2), stamp and reason; 0
 * when absent or unreadable (a corrupt file is removed). */
static int read_hold(const struct queue *q, const char *path, char **stamp, char **reason)
{
	char *data, *p, *nl;
	size_t len;
	int version;

	*stamp = *reason = NULL;
	if (read_small(q->dirfd, path, HOLD_MAX, &data, &len) < 0)
		return 0;
	p = data;
	if (strncmp(p, "postern-hold ", 13) != 0 || (p[13] != '1' && p[13] != '2') ||
	    strncmp(p + 14, "\nstamp ", 7) != 0 || !(nl = strchr(p + 21, '\n')))
		goto corrupt;
	version = p[13] - '0';
	*stamp = xstrndup(p + 21, (size_t)(nl - p - 21));
	p = nl + 1;
	if (strncmp(p, "reason ", 7) != 0 || !(nl = strchr(p + 7, '\n')) || nl[1])
		goto corrupt;
	*reason = xstrndup(p + 7, (size_t)(nl - p - 7));
	free(data);
	return version;
corrupt:
	free(data);
	free(*stamp);
	*stamp = NULL;
	unlinkat(q->dirfd, path, 0);
	return 0;
}

int queue_hold(struct queue *q, const char *account, const char *reason,
	       const struct crypto_part *cred, size_t ncred, struct perr *e)
{
	char path[PATH_CAP + 3 * ACCOUNT_FILE_MAX], stamp[CRYPTO_STAMP_MAX], *r;
	struct tbuf b = { 0 };
	int rc = 0;

	if (hold_path(account, path, sizeof path) < 0)
		return perr_set(e, PERR_SOFTWARE, "cannot hold account \"%s\": the name is "
				"empty or too long", account);
	if (crypto_stamp(cred, ncred, stamp) < 0)
		return perr_set(e, PERR_OS, "cannot hold account %s: no random bytes for its "
				"stamp", account);
	r = one_line(reason ? reason : "");
	tb_add(&b, "postern-hold 2\nstamp %s\nreason %s\n", stamp, r);
	if (write_env_file(q, &b, "hold", path) < 0 || sync_sub(q, "held") < 0)
		rc = io_err(e, q, "write into held/", errno);
	free(b.p);
	free(r);
	return rc;
}

int queue_hold_exists(struct queue *q, const char *account)
{
	char path[PATH_CAP + 3 * ACCOUNT_FILE_MAX];
	struct stat st;

	return hold_path(account, path, sizeof path) == 0 &&
	       fstatat(q->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Does the stored stamp still describe cred?  1 yes, 0 no, -1 corrupt.
 * Version 1 stored a plain SHA-256 of cred. */
static int same_cred(int version, const char *stamp, const struct crypto_part *cred,
		     size_t ncred)
{
	char old[65];

	if (version == 2)
		return crypto_stamp_matches(cred, ncred, stamp);
	if (strlen(stamp) != 64)
		return -1;
	crypto_sha256_hex(cred, ncred, old);
	return strcmp(old, stamp) == 0;
}

int queue_held(struct queue *q, const char *account, const struct crypto_part *cred,
	       size_t ncred, char **reason)
{
	char path[PATH_CAP + 3 * ACCOUNT_FILE_MAX], *st, *why;
	int version, same;

	if (reason)
		*reason = NULL;
	if (hold_path(account, path, sizeof path) < 0 ||
	    !(version = read_hold(q, path, &st, &why)))
		return 0;
	same = same_cred(version, st, cred, ncred);
	free(st);
	if (same <= 0) {
		free(why);
		unlinkat(q->dirfd, path, 0);
		return same < 0 ? 0 : 2;
	}
	/* Still held: an unsalted stamp of the first format leaves the disk. */
	if (version == 1)
		queue_hold(q, account, why, cred, ncred, NULL);
	if (reason)
		*reason = why;
	else
		free(why);
	return 1;
}

int queue_unhold(struct queue *q, const char *account)
{
	char path[PATH_CAP + 3 * ACCOUNT_FILE_MAX];

	if (hold_path(account, path, sizeof path) < 0)
		return 0;
	if (unlinkat(q->dirfd, path, 0) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* ---- listing -------------------------------------------------------------- */

/* The hold reason of an account (caller frees), or NULL; the last answer
 * is kept, as consecutive messages mostly share an account. */
struct hold_cache {
	char *account, *reason;
};

static const char *hold_reason(const struct queue *q, struct hold_cache *c, const char *account)
{
	char path[PATH_CAP + 3 * ACCOUNT_FILE_MAX], *st;

	if (c->account && strcmp(c->account, account) == 0)
		return c->reason;
	free(c->account);
	free(c->reason);
	c->account = xstrdup(account);
	c->reason = NULL;
	if (hold_path(account, path, sizeof path) == 0 && read_hold(q, path, &st, &c->reason))
		free(st);
	return c->reason;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* What is wrong with the message file of a parsed envelope (dir/ID or
 * failed/ID.msg), or NULL. */
static const char *msg_damage(const struct queue *q, const char *path, long long size)
{
	struct stat st;

	if (fstatat(q->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? "its message file is missing" : "its message file cannot be read";
	if (!S_ISREG(st.st_mode) || (long long)st.st_size != size)
		return "its message file is not the size its envelope says";
	return NULL;
}

/* Every entry of one directory, oldest first: env/ (failed = 0) or
 * failed/ (1).  Only the ids are kept for the sort; each envelope is
 * read, shown and freed in turn. */
static int list_dir(struct queue *q, int failed,
		    int (*cb)(void *, const struct queue_entry *), void *ctx, struct perr *e)
{
	struct hold_cache hc = { 0 };
	struct idlist l;
	int stop = 0;

	if (list_ids(q, failed ? "failed" : "env", failed ? ".env" : NULL, &l) < 0)
		return io_err(e, q, failed ? "read failed/" : "read env/", errno);
	if (l.n)
		qsort(l.ids, l.n, sizeof l.ids[0], id_cmp);
	for (size_t i = 0; i < l.n && !stop; i++) {
		char epath[PATH_CAP], mpath[PATH_CAP];
		struct queue_entry ent = { .id = l.ids[i] };
		struct queue_env env;
		const char *why = NULL;
		int rc;

		snprintf(epath, sizeof epath, "env/%s", l.ids[i]);
		/* In failed/ and still in env/: a crash interrupted queue_fail;
		 * it is queued. */
		if (failed && faccessat(q->dirfd, epath, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (failed)
			snprintf(epath, sizeof epath, "failed/%s.env", l.ids[i]);
		snprintf(mpath, sizeof mpath, failed ? "failed/%s.msg" : "msg/%s", l.ids[i]);
		rc = load_env(q, epath, l.ids[i], &env, &why);
		if (rc == -1)
			continue; /* gone meanwhile: delivered */
		if (rc == 0)
			why = msg_damage(q, mpath, env.size);
		if (why) {
			ent.state = QUEUE_DAMAGED;
			ent.damage = why;
			ent.path = rc == 0 ? mpath : epath;
		} else {
			ent.state = failed ? QUEUE_FAILED : QUEUE_QUEUED;
			ent.env = &env;
			ent.held = failed ? NULL : hold_reason(q, &hc, env.account);
		}
		stop = cb(ctx, &ent);
		if (rc == 0)
			queue_env_free(&env);
	}
	free(l.ids);
	free(hc.account);
	free(hc.reason);
	return stop;
}

int queue_list(struct queue *q, int (*cb)(void *ctx, const struct queue_entry *ent), void *ctx,
	       struct perr *e)
{
	int rc;

	perr_clear(e);
	rc = list_dir(q, 0, cb, ctx, e);
	if (rc < 0)
		return -1;
	if (rc > 0)
		return 0;
	return list_dir(q, 1, cb, ctx, e) < 0 ? -1 : 0;
}

void queue_env_free(struct queue_env *env)
{
	free(env->account);
	free(env->sender);
	for (size_t i = 0; i < env->nrcpts; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	free(env->dsn_notify);
	free(env->dsn_return);
	free(env->dsn_envid);
	free(env->last_error);
	env->account = env->sender = env->dsn_notify = env->dsn_return = NULL;
	env->dsn_envid = env->last_error = NULL;
	env->rcpts = NULL;
	env->nrcpts = 0;
}
