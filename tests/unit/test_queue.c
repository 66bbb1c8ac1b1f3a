/* test_queue.c — the durable spool: commit protocol, claiming under locks,
 * backoff, failed/, held accounts, listing, permissions, write failures
 * and crash safety.  queue.c is included with its test hooks compiled in
 * (POSTERN_QUEUE_CRASH_AT=N ends a child at the Nth step of a protocol);
 * since this object defines every queue_* symbol, the library's queue.o is
 * not linked in. */
#define POSTERN_QUEUE_TEST_HOOKS 1
#include "queue.c"

#include <ftw.h>
#include <grp.h>
#include <regex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

struct fx {
	char dir[64];   /* scratch directory */
	char spool[96]; /* dir/spool */
	struct queue q;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	struct perr e;

	str_copy(f->dir, "/tmp/postern-qtest.XXXXXX", sizeof f->dir);
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->spool, sizeof f->spool, "%s/spool", f->dir);
	if (queue_open(&f->q, f->spool, &e) < 0) {
		fprintf(stderr, "# %s\n", e.text);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	queue_close(&f->q);
	chmod(f->spool, 0700);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static char *rcpts2[] = { "bob@example.org", "carol@example.net" };

static void make_env(struct queue_env *env, const char *account)
{
	memset(env, 0, sizeof *env);
	env->account = (char *)account;
	env->sender = "alice@example.com";
	env->rcpts = rcpts2;
	env->nrcpts = 2;
}

/* A message as message_read would leave it: headers in memory, body in an
 * unlinked temporary file of blen bytes (numbered lines). */
static void make_msg(struct message *m, size_t blen)
{
	char path[] = "/tmp/postern-qbody.XXXXXX";
	unsigned char *body = xmalloc(blen + 1);
	size_t n = 0;
	int fd = mkstemp(path);

	if (fd < 0)
		abort(); /* no cmocka assert: children call this too */
	unlink(path);
	for (unsigned i = 0; n < blen; i++) {
		int k = snprintf((char *)body + n, blen + 1 - n, "line %u of the body\n", i);

		n += (size_t)k < blen - n ? (size_t)k : blen - n;
	}
	if (write(fd, body, blen) != (ssize_t)blen)
		abort();
	free(body);
	memset(m, 0, sizeof *m);
	m->headers = xstrdup("From: alice@example.com\nSubject: test\n");
	m->headers_len = strlen(m->headers);
	m->has_separator = 1;
	m->body_fd = fd;
	m->body_len = (off_t)blen;
}

static unsigned char *msg_bytes(const struct message *m, size_t *len)
{
	unsigned char *buf = xmalloc((size_t)message_size(m) + 65536);
	struct msg_reader r;
	struct perr e;
	long got;

	*len = 0;
	message_rewind(m, &r);
	while ((got = message_next(&r, buf + *len, 65536, &e)) > 0)
		*len += (size_t)got;
	assert_int_equal(got, 0);
	return buf;
}

static unsigned char *item_bytes(struct queue_item *it, size_t *len)
{
	size_t cap = 65536;
	unsigned char *buf = xmalloc(cap);
	struct perr e;
	long got;

	*len = 0;
	queue_item_rewind(it);
	while ((got = queue_item_read(it, buf + *len, cap - *len, &e)) > 0) {
		*len += (size_t)got;
		if (cap - *len < 4096)
			buf = xrealloc(buf, cap *= 2);
	}
	assert_int_equal(got, 0);
	return buf;
}

static void assert_same_bytes(struct queue_item *it, const unsigned char *want, size_t wlen)
{
	size_t len;
	unsigned char *got = item_bytes(it, &len);

	assert_int_equal(len, wlen);
	assert_memory_equal(got, want, wlen);
	free(got);
}

/* Add a message of blen body bytes for account; its id into id. */
static void add_one(struct fx *f, const char *account, unsigned attempts, size_t blen,
		    char id[QUEUE_ID_MAX])
{
	struct queue_env env;
	struct message m;
	struct perr e;

	make_env(&env, account);
	env.attempts = attempts;
	env.last_error = attempts ? "421 try later" : NULL;
	make_msg(&m, blen);
	if (queue_add(&f->q, &env, &m, &e) < 0)
		fail_msg("queue_add: %s", e.text);
	str_copy(id, env.id, QUEUE_ID_MAX);
	message_free(&m);
}

static size_t claim(struct fx *f, const char *account, int due, time_t now,
		    struct queue_item **its, struct perr *e)
{
	size_t n;

	if (queue_claim(&f->q, account, due, now, its, &n, e) < 0)
		fail_msg("queue_claim: %s", e->text);
	return n;
}

static size_t count_dir(struct fx *f, const char *sub)
{
	char path[160];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	snprintf(path, sizeof path, "%s/%s", f->spool, sub);
	dir = opendir(path);
	if (!dir)
		return 1000; /* fails any comparison; no assert (children use it) */
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Does spool/DIR/ID+SUFFIX exist? */
static int exists(struct fx *f, const char *dir, const char *id, const char *suffix)
{
	char path[256];

	snprintf(path, sizeof path, "%s/%s/%s%s", f->spool, dir, id, suffix);
	return access(path, F_OK) == 0;
}

/* ---- basic life cycle ------------------------------------------------------ */

static void test_add_claim_done(void **state)
{
	struct fx *f = *state;
	struct queue_env env;
	struct queue_item *its;
	struct message m;
	struct perr e;
	unsigned char *want;
	size_t wlen;

	make_env(&env, "work");
	env.sender = "";
	env.body_8bit = 1;
	env.dsn_notify = "SUCCESS,FAILURE";
	env.dsn_return = "HDRS";
	env.dsn_envid = "abc123";
	env.attempts = 1;
	env.last_error = "421 4.7.0 busy\r\nnext line";
	make_msg(&m, 1000);
	want = msg_bytes(&m, &wlen);
	assert_int_equal(queue_add(&f->q, &env, &m, &e), 0);
	assert_int_equal(strlen(env.id), 21);
	assert_true(valid_id(env.id));
	assert_int_equal(env.size, (long long)wlen);
	assert_int_equal(env.next_try, env.created + 300);
	/* Due in 5 minutes: a due-only flush leaves it, a bare -q takes it. */
	assert_int_equal(claim(f, NULL, 1, env.created, &its, &e), 0);
	assert_int_equal(claim(f, NULL, 0, env.created, &its, &e), 1);
	assert_string_equal(e.text, "");
	assert_string_equal(its[0].env.id, env.id);
	assert_string_equal(its[0].env.account, "work");
	assert_string_equal(its[0].env.sender, "");
	assert_int_equal(its[0].env.nrcpts, 2);
	assert_string_equal(its[0].env.rcpts[1], "carol@example.net");
	assert_int_equal(its[0].env.body_8bit, 1);
	assert_int_equal(its[0].env.smtputf8, 0);
	assert_string_equal(its[0].env.dsn_notify, "SUCCESS,FAILURE");
	assert_string_equal(its[0].env.dsn_return, "HDRS");
	assert_string_equal(its[0].env.dsn_envid, "abc123");
	assert_string_equal(its[0].env.last_error, "421 4.7.0 busy  next line");
	assert_int_equal(its[0].env.attempts, 1);
	assert_int_equal(its[0].env.created, env.created);
	assert_same_bytes(&its[0], want, wlen);
	assert_same_bytes(&its[0], want, wlen); /* rewind works */
	assert_int_equal(queue_done(&f->q, &its[0], &e), 0);
	assert_int_equal(its[0].lockfd, -1);
	assert_false(exists(f, "env", env.id, ""));
	assert_false(exists(f, "msg", env.id, ""));
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 0);
	assert_null(its);
	free(want);
	message_free(&m);
}

static void test_add_refuses_bad_envelope(void **state)
{
	struct fx *f = *state;
	char *bad[] = { "bob@example.org\r\nRCPT TO:<x@y>" };
	struct queue_env env;
	struct message m;
	struct perr e;

	make_msg(&m, 10);
	make_env(&env, "work");
	env.rcpts = bad;
	env.nrcpts = 1;
	assert_int_equal(queue_add(&f->q, &env, &m, &e), -1);
	assert_int_equal(e.kind, PERR_SOFTWARE);
	make_env(&env, "work");
	env.nrcpts = 0;
	assert_int_equal(queue_add(&f->q, &env, &m, &e), -1);
	make_env(&env, "");
	assert_int_equal(queue_add(&f->q, &env, &m, &e), -1);
	assert_int_equal(count_dir(f, "msg") + count_dir(f, "env") + count_dir(f, "tmp"), 0);
	message_free(&m);
}

static void test_env_roundtrip(void **state)
{
	char *r[] = { "\"a b\"@example.org", "x@y" };
	struct queue_env in = { .account = "acc", .sender = "", .rcpts = r, .nrcpts = 2,
				.smtputf8 = 1, .size = 42, .created = 1700000000,
				.next_try = 1700000300, .attempts = 3, .dsn_envid = "" };
	struct queue_env out;
	struct tbuf b = { 0 };
	const char *why = NULL;

	(void)state;
	str_copy(in.id, "0123456789abcdef", sizeof in.id);
	format_env(&in, &b);
	assert_int_equal(parse_env(b.p, b.len, "0123456789abcdef", &out, &why), 0);
	assert_string_equal(out.rcpts[0], "\"a b\"@example.org");
	assert_string_equal(out.sender, "");
	assert_string_equal(out.dsn_envid, "");
	assert_null(out.dsn_notify);
	assert_null(out.last_error);
	assert_int_equal(out.smtputf8, 1);
	assert_int_equal(out.size, 42);
	assert_int_equal(out.next_try, 1700000300);
	assert_int_equal(out.attempts, 3);
	queue_env_free(&out);
	free(b.p);
}

/* ---- claiming --------------------------------------------------------------- */

static void test_claim_order_account_and_own_locks(void **state)
{
	struct fx *f = *state;
	char a1[QUEUE_ID_MAX], b1[QUEUE_ID_MAX], a2[QUEUE_ID_MAX];
	struct queue_item *its, *more;
	struct perr e;

	add_one(f, "a", 0, 10, a1);
	add_one(f, "b", 0, 10, b1);
	add_one(f, "a", 0, 10, a2);
	assert_int_equal(claim(f, "a", 1, time(NULL), &its, &e), 2);
	assert_string_equal(its[0].env.id, a1);
	assert_string_equal(its[1].env.id, a2);
	/* The same process claiming again gets only what is not locked. */
	assert_int_equal(claim(f, NULL, 0, time(NULL), &more, &e), 1);
	assert_string_equal(more[0].env.id, b1);
	queue_items_free(more, 1);
	queue_release(&its[1]);
	assert_int_equal(claim(f, NULL, 0, time(NULL), &more, &e), 2);
	assert_string_equal(more[0].env.id, b1);
	assert_string_equal(more[1].env.id, a2);
	queue_items_free(more, 2);
	queue_items_free(its, 2);
}

static void test_claim_skips_locked_by_other_process(void **state)
{
	struct fx *f = *state;
	char id[QUEUE_ID_MAX], c;
	struct queue_item *its;
	struct perr e;
	int p[2], st;
	size_t n;
	pid_t pid;

	add_one(f, "a", 0, 100, id);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		n = 0;
		queue_claim(&f->q, NULL, 0, time(NULL), &its, &n, &e);
		c = n == 1 ? 'y' : 'n';
		if (write(p[1], &c, 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	n = claim(f, NULL, 0, time(NULL), &its, &e);
	queue_items_free(its, n);
	kill(pid, SIGKILL);
	assert_int_equal(c, 'y');
	assert_int_equal(n, 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 1);
	assert_string_equal(its[0].env.id, id);
	queue_items_free(its, 1);
}

static void test_claim_skips_vanished(void **state)
{
	struct fx *f = *state;
	char id[QUEUE_ID_MAX], path[PATH_CAP];
	struct queue_item it = { .lockfd = -1, .msgfd = -1 };
	struct queue_scan s;
	struct perr e;

	queue_scan_init(&s, NULL, 0, time(NULL));
	/* Between the scan and the lock another process delivered it. */
	add_one(f, "a", 0, 10, id);
	perr_clear(&e);
	snprintf(path, sizeof path, "env/%s", id);
	assert_int_equal(unlinkat(f->q.dirfd, path, 0), 0);
	assert_int_equal(try_claim(&f->q, id, &s, &it, &e), 0);
	assert_string_equal(e.text, "");
	/* msg/ID gone with env/ID: gone, no note. */
	snprintf(path, sizeof path, "msg/%s", id);
	assert_int_equal(unlinkat(f->q.dirfd, path, 0), 0);
	assert_int_equal(try_claim(&f->q, id, &s, &it, &e), 0);
	assert_string_equal(e.text, "");
	/* env/ID without msg/ID: reported. */
	add_one(f, "a", 0, 10, id);
	snprintf(path, sizeof path, "msg/%s", id);
	assert_int_equal(unlinkat(f->q.dirfd, path, 0), 0);
	assert_int_equal(try_claim(&f->q, id, &s, &it, &e), 0);
	assert_non_null(strstr(e.text, "message file is missing"));
}

/* Flushers and a submitter at once: every message delivered exactly once. */
static void flusher(struct fx *f, int log)
{
	for (int round = 0; round < 400; round++) {
		struct queue_item *its;
		struct perr e;
		size_t n = 0;

		if (queue_claim(&f->q, NULL, 0, time(NULL), &its, &n, &e) < 0)
			_exit(3);
		for (size_t i = 0; i < n; i++) {
			char line[QUEUE_ID_MAX + 1];
			unsigned char buf[4096];
			long got, len = 0;
			int k = snprintf(line, sizeof line, "%s\n", its[i].env.id);

			while ((got = queue_item_read(&its[i], buf, sizeof buf, &e)) > 0)
				len += got;
			if (got < 0 || len != its[i].env.size || write(log, line, (size_t)k) != k)
				_exit(4);
			if (queue_done(&f->q, &its[i], &e) < 0)
				_exit(5);
		}
		queue_items_free(its, n);
		if (n == 0)
			usleep(1000);
	}
	_exit(0);
}

static size_t read_lines(const char *path, char ids[][QUEUE_ID_MAX], size_t max)
{
	FILE *fp = fopen(path, "r");
	char line[64];
	size_t n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof line, fp) && n < max) {
		line[strcspn(line, "\n")] = '\0';
		str_copy(ids[n++], line, QUEUE_ID_MAX);
	}
	fclose(fp);
	return n;
}

static void test_concurrent_flushers(void **state)
{
	enum { PRE = 30, LATE = 30, FLUSHERS = 4, ALL = PRE + LATE };
	struct fx *f = *state;
	char added[ALL][QUEUE_ID_MAX], sent[2 * ALL][QUEUE_ID_MAX];
	char logp[128], addp[128];
	struct queue_item *its;
	pid_t pids[FLUSHERS + 1];
	struct perr e;
	size_t na, ns, n;
	int log, addlog, st;

	snprintf(logp, sizeof logp, "%s/sent.log", f->dir);
	snprintf(addp, sizeof addp, "%s/added.log", f->dir);
	log = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
	addlog = open(addp, O_WRONLY | O_CREAT | O_APPEND, 0600);
	assert_true(log >= 0 && addlog >= 0);
	for (int i = 0; i < PRE; i++) {
		char id[QUEUE_ID_MAX + 1];

		add_one(f, i % 2 ? "a" : "b", 0, 200, id);
		dprintf(addlog, "%s\n", id);
	}
	for (int i = 0; i <= FLUSHERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0 && i < FLUSHERS)
			flusher(f, log);
		if (pids[i] == 0) {
			struct queue_env env;
			struct message m;

			make_msg(&m, 200);
			for (int j = 0; j < LATE; j++) {
				make_env(&env, "c");
				if (queue_add(&f->q, &env, &m, &e) < 0)
					_exit(6);
				dprintf(addlog, "%s\n", env.id);
			}
			_exit(0);
		}
	}
	for (int i = 0; i <= FLUSHERS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	/* Whatever the flushers did not get (none, usually) goes now. */
	n = claim(f, NULL, 0, time(NULL), &its, &e);
	for (size_t i = 0; i < n; i++) {
		dprintf(log, "%s\n", its[i].env.id);
		assert_int_equal(queue_done(&f->q, &its[i], &e), 0);
	}
	queue_items_free(its, n);
	close(log);
	close(addlog);
	na = read_lines(addp, added, ALL);
	ns = read_lines(logp, sent, 2 * ALL);
	assert_int_equal(na, ALL);
	assert_int_equal(ns, ALL);
	for (size_t i = 0; i < na; i++) {
		int seen = 0;

		for (size_t j = 0; j < ns; j++)
			seen += strcmp(added[i], sent[j]) == 0;
		assert_int_equal(seen, 1);
	}
	assert_int_equal(count_dir(f, "env") + count_dir(f, "msg"), 0);
}

/* ---- backoff, lifetime, failed/ ------------------------------------------- */

static void test_backoff_table(void **state)
{
	static const struct {
		unsigned attempts;
		time_t delay;
	} t[] = {
		{ 0, 0 },        { 1, 300 },      { 2, 600 },       { 3, 1200 },
		{ 4, 2400 },     { 5, 4800 },     { 6, 9600 },      { 7, 14400 },
		{ 8, 14400 },    { 60, 14400 },   { UINT_MAX, 14400 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(queue_backoff(t[i].attempts), t[i].delay);
}

static void test_retry_due_and_backoff(void **state)
{
	struct fx *f = *state;
	char id[QUEUE_ID_MAX];
	struct queue_item *its;
	struct perr e;
	time_t created, now;

	add_one(f, "a", 0, 10, id);
	assert_int_equal(claim(f, NULL, 1, time(NULL), &its, &e), 1);  /* -odq: due now */
	created = its[0].env.created;
	now = created + 10;
	assert_int_equal(queue_retry(&f->q, &its[0], "451 4.3.0 later\n", now, 86400, &e), 0);
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 1, now + 299, &its, &e), 0);
	assert_int_equal(claim(f, NULL, 1, now + 300, &its, &e), 1);
	assert_int_equal(its[0].env.attempts, 1);
	assert_int_equal(its[0].env.next_try, now + 300);
	assert_string_equal(its[0].env.last_error, "451 4.3.0 later ");
	now += 300;
	assert_int_equal(queue_retry(&f->q, &its[0], "again", now, 86400, &e), 0);
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 1, now + 599, &its, &e), 0);
	assert_int_equal(claim(f, NULL, 0, now + 1, &its, &e), 1); /* bare -q */
	assert_int_equal(its[0].env.attempts, 2);
	assert_int_equal(its[0].env.next_try, now + 600);
	assert_string_equal(its[0].env.last_error, "again");
	queue_items_free(its, 1);
}

struct listed {
	size_t n, damaged;
	char id[8][QUEUE_ID_MAX];
	int failed[8];
	enum queue_state state[8];
	char held[8][64];
	char error[8][256];   /* last error, or what is damaged */
	char path[8][64];     /* damaged: the file */
};

static int collect(void *ctx, const struct queue_entry *ent)
{
	struct listed *l = ctx;
	const struct queue_env *env = ent->env;

	if (l->n == 8)
		return 1;
	str_copy(l->id[l->n], ent->id, QUEUE_ID_MAX);
	l->state[l->n] = ent->state;
	l->failed[l->n] = ent->state == QUEUE_FAILED;
	l->damaged += ent->state == QUEUE_DAMAGED;
	str_copy(l->held[l->n], ent->held ? ent->held : "", sizeof l->held[0]);
	if (env)
		str_copy(l->error[l->n], env->last_error ? env->last_error : "", sizeof l->error[0]);
	else
		str_copy(l->error[l->n], ent->damage, sizeof l->error[0]);
	str_copy(l->path[l->n], ent->path ? ent->path : "", sizeof l->path[0]);
	l->n++;
	return 0;
}

/* Credentials as deliver.c passes them (a label, then the secret). */
#define NCRED 2
static const struct crypto_part *cred(const char *secret)
{
	static struct crypto_part parts[NCRED];

	parts[0] = (struct crypto_part){ "postern-hold-1", 15 };
	parts[1] = (struct crypto_part){ secret, strlen(secret) };
	return parts;
}

static void test_lifetime_moves_to_failed(void **state)
{
	struct fx *f = *state;
	char id[QUEUE_ID_MAX];
	struct queue_item *its;
	struct message m;
	struct listed l = { 0 };
	unsigned char *want;
	size_t wlen;
	struct perr e;
	time_t created;

	make_msg(&m, 5000);
	want = msg_bytes(&m, &wlen);
	message_free(&m);
	add_one(f, "a", 1, 5000, id);
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 1);
	created = its[0].env.created;
	/* One second short of the lifetime: retried.  Both tries come before
	 * the message is due (created + 300): neither counts. */
	assert_int_equal(queue_retry(&f->q, &its[0], "421 busy", created + 99, 100, &e), 0);
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 1);
	assert_int_equal(its[0].env.attempts, 1);
	assert_int_equal(its[0].env.next_try, created + 300);
	assert_int_equal(queue_retry(&f->q, &its[0], "421 busy", created + 100, 100, &e), 1);
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 0);
	assert_false(exists(f, "env", id, ""));
	assert_false(exists(f, "msg", id, ""));
	assert_true(exists(f, "failed", id, ".env"));
	assert_true(exists(f, "failed", id, ".msg"));
	/* The failed copy is the message, byte for byte. */
	{
		char path[256];
		unsigned char *got = xmalloc(wlen + 1);
		int fd;

		snprintf(path, sizeof path, "%s/failed/%s.msg", f->spool, id);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(read(fd, got, wlen + 1), (ssize_t)wlen);
		assert_memory_equal(got, want, wlen);
		close(fd);
		free(got);
	}
	assert_int_equal(queue_list(&f->q, collect, &l, &e), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.failed[0], 1);
	assert_string_equal(l.error[0], "gave up after 100 seconds and 1 attempt: 421 busy");
	free(want);
}

static void test_list_queued_held_and_failed(void **state)
{
	struct fx *f = *state;
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX];
	struct queue_item *its;
	struct listed l = { 0 };
	struct perr e;

	add_one(f, "a", 1, 10, a);
	add_one(f, "b", 0, 10, b);
	add_one(f, "a", 0, 10, c);
	assert_int_equal(claim(f, "b", 0, time(NULL), &its, &e), 1);
	assert_int_equal(queue_fail(&f->q, &its[0], "550 5.1.1 no such user", &e), 0);
	queue_items_free(its, 1);
	assert_int_equal(queue_hold(&f->q, "a", "535 5.7.8 bad credentials", cred("st1"), NCRED, &e), 0);
	/* A locked message is listed too. */
	assert_int_equal(claim(f, "a", 0, time(NULL), &its, &e), 2);
	assert_int_equal(queue_list(&f->q, collect, &l, &e), 0);
	queue_items_free(its, 2);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.id[0], a);
	assert_string_equal(l.id[1], c);
	assert_string_equal(l.id[2], b);
	assert_int_equal(l.failed[0], 0);
	assert_int_equal(l.failed[2], 1);
	assert_string_equal(l.held[0], "535 5.7.8 bad credentials");
	assert_string_equal(l.held[1], "535 5.7.8 bad credentials");
	assert_string_equal(l.held[2], "");
	assert_string_equal(l.error[0], "421 try later");
	assert_string_equal(l.error[1], "");
	assert_string_equal(l.error[2], "550 5.1.1 no such user");
}

/* ---- held accounts ------------------------------------------------------------ */

static void test_hold_stamps(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = { "work", "we/ird", "..", ".hidden", "a b%c" };
	struct perr e;
	char *why;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		const char *acc = names[i];

		assert_int_equal(queue_held(&f->q, acc, cred("s1"), NCRED, &why), 0);
		assert_int_equal(queue_hold(&f->q, acc, "535 refused\r\nx", cred("s1"), NCRED, &e), 0);
		assert_int_equal(count_dir(f, "held"), 1);
		assert_int_equal(queue_held(&f->q, acc, cred("s1"), NCRED, &why), 1);
		assert_string_equal(why, "535 refused  x");
		free(why);
		assert_int_equal(queue_held(&f->q, acc, cred("s1"), NCRED, NULL), 1);
		/* Another stamp: the configuration changed, the hold ends (2:
		 * lifted just now). */
		assert_true(queue_hold_exists(&f->q, acc));
		assert_int_equal(queue_held(&f->q, acc, cred("s2"), NCRED, &why), 2);
		assert_false(queue_hold_exists(&f->q, acc));
		assert_null(why);
		assert_int_equal(queue_held(&f->q, acc, cred("s1"), NCRED, &why), 0);
		assert_int_equal(count_dir(f, "held"), 0);
		assert_int_equal(queue_hold(&f->q, acc, "535", cred("s1"), NCRED, &e), 0);
		assert_int_equal(queue_unhold(&f->q, acc), 0);
		assert_int_equal(queue_held(&f->q, acc, cred("s1"), NCRED, &why), 0);
		assert_int_equal(queue_unhold(&f->q, acc), 0);
	}
	assert_int_equal(queue_hold(&f->q, "", "x", cred("s"), NCRED, &e), -1);
	/* Nothing escaped held/. */
	assert_int_equal(count_dir(f, "."), 5);
}

/* ---- corrupt entries ---------------------------------------------------------- */

#define BAD_ID "0000000001000000000a"
#define GOOD_HEAD "postern-queue 1\nid " BAD_ID "\naccount a\nsender s@x\n"
#define GOOD_TAIL "body_8bit 0\nsmtputf8 0\nsize 5\ncreated 100\nnext_try 100\nattempts 0\n"

static void test_corrupt_env_skipped(void **state)
{
	static const struct {
		const char *name, *text;
		int good;
	} t[] = {
		{ "control: well-formed", GOOD_HEAD "rcpt r@x\n" GOOD_TAIL "end\n", 1 },
		{ "empty", "", 0 },
		{ "no version line", "id " BAD_ID "\naccount a\nsender s@x\nrcpt r@x\n" GOOD_TAIL "end\n", 0 },
		{ "other version", "postern-queue 2\nid " BAD_ID "\naccount a\nsender s@x\nrcpt r@x\n" GOOD_TAIL "end\n", 0 },
		{ "no end line", GOOD_HEAD "rcpt r@x\n" GOOD_TAIL, 0 },
		{ "torn", GOOD_HEAD "rcpt r@x\n" GOOD_TAIL "en", 0 },
		{ "after end", GOOD_HEAD "rcpt r@x\n" GOOD_TAIL "end\nrcpt z@x\n", 0 },
		{ "unknown key", GOOD_HEAD "rcpt r@x\nprio 1\n" GOOD_TAIL "end\n", 0 },
		{ "repeated key", GOOD_HEAD "rcpt r@x\naccount b\n" GOOD_TAIL "end\n", 0 },
		{ "no recipient", GOOD_HEAD GOOD_TAIL "end\n", 0 },
		{ "empty recipient", GOOD_HEAD "rcpt\n" GOOD_TAIL "end\n", 0 },
		{ "CR in a value", GOOD_HEAD "rcpt r@x\r\n" GOOD_TAIL "end\n", 0 },
		{ "bad number", GOOD_HEAD "rcpt r@x\n" "body_8bit 0\nsmtputf8 0\nsize 5\ncreated 1e3\nnext_try 100\nattempts 0\nend\n", 0 },
		{ "negative number", GOOD_HEAD "rcpt r@x\n" "body_8bit 0\nsmtputf8 0\nsize 5\ncreated 100\nnext_try 100\nattempts -1\nend\n", 0 },
		{ "huge number", GOOD_HEAD "rcpt r@x\n" "body_8bit 0\nsmtputf8 0\nsize 5\ncreated 99999999999999999999\nnext_try 100\nattempts 0\nend\n", 0 },
		{ "id mismatch", "postern-queue 1\nid 0000000001000000000b\naccount a\nsender s@x\nrcpt r@x\n" GOOD_TAIL "end\n", 0 },
		{ "missing size", GOOD_HEAD "rcpt r@x\nbody_8bit 0\nsmtputf8 0\ncreated 100\nnext_try 100\nattempts 0\nend\n", 0 },
		{ "size differs from msg", GOOD_HEAD "rcpt r@x\nbody_8bit 0\nsmtputf8 0\nsize 6\ncreated 100\nnext_try 100\nattempts 0\nend\n", 0 },
	};
	struct fx *f = *state;
	char good[QUEUE_ID_MAX], path[256];
	struct queue_item *its;
	struct perr e;

	add_one(f, "a", 0, 10, good);
	snprintf(path, sizeof path, "%s/msg/%s", f->spool, BAD_ID);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs("hello", fp);
		fclose(fp);
	}
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct listed l = { 0 };
		size_t n;
		FILE *fp;

		snprintf(path, sizeof path, "%s/env/%s", f->spool, BAD_ID);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fputs(t[i].text, fp);
		fclose(fp);
		n = claim(f, NULL, 0, time(NULL), &its, &e);
		print_message("# %s: %zu claimed, note: %s\n", t[i].name, n, e.text);
		assert_int_equal(e.kind, PERR_NONE);
		assert_int_equal(n, t[i].good ? 2 : 1);
		assert_string_equal(its[n - 1].env.id, good);
		if (!t[i].good) {
			assert_non_null(strstr(e.text, "skipped"));
			assert_non_null(strstr(e.text, BAD_ID));
			assert_non_null(strstr(e.text, f->spool));
		}
		queue_items_free(its, n);
		assert_int_equal(queue_list(&f->q, collect, &l, &e), 0);
		/* Listed either way: a damaged entry as such, with its file. */
		assert_int_equal(l.n, 2);
		assert_int_equal(l.damaged, t[i].good ? 0 : 1);
		assert_string_equal(l.id[0], BAD_ID);
		assert_int_equal(l.state[0], t[i].good ? QUEUE_QUEUED : QUEUE_DAMAGED);
		assert_int_equal(l.state[1], QUEUE_QUEUED);
		if (!t[i].good) {
			int size = strcmp(t[i].name, "size differs from msg") == 0;

			assert_string_equal(l.path[0], size ? "msg/" BAD_ID : "env/" BAD_ID);
			assert_true(l.error[0][0] != '\0');
			print_message("#   listed as damaged: %s\n", l.error[0]);
		}
	}
}

/* ---- runs through a large queue --------------------------------------------------- */

/* A queued message written straight into the spool (no fsync, so tests
 * can plant hundreds): its id made of created and seq, so ids sort as
 * (created, seq), as queue_add's do. */
static void plant(struct fx *f, const char *account, time_t created, unsigned seq,
		  time_t next_try, unsigned attempts, char id[QUEUE_ID_MAX])
{
	struct queue_env env;
	struct tbuf b = { 0 };
	char path[PATH_CAP];
	int fd;

	make_env(&env, account);
	snprintf(env.id, sizeof env.id, "%010llx%05x%06x", (unsigned long long)created, seq, 0u);
	env.size = 5;
	env.created = created;
	env.next_try = next_try;
	env.attempts = attempts;
	snprintf(path, sizeof path, "msg/%s", env.id);
	fd = openat(f->q.dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	close(fd);
	format_env(&env, &b);
	snprintf(path, sizeof path, "env/%s", env.id);
	fd = openat(f->q.dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.p, b.len), (ssize_t)b.len);
	close(fd);
	free(b.p);
	if (id)
		str_copy(id, env.id, QUEUE_ID_MAX);
}

/* Can another open file description lock msg/ID now (nobody holds it)? */
static int lockable(struct fx *f, const char *id)
{
	char path[PATH_CAP];
	int fd, ok;

	snprintf(path, sizeof path, "msg/%s", id);
	fd = openat(f->q.dirfd, path, O_RDONLY);
	assert_true(fd >= 0);
	ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return ok;
}

/* 600 queued: one scan claims them all in bounded batches (256, 256,
 * 88), oldest first, each once, although each batch is released
 * unchanged before the next (a run never tries a message twice). */
static void test_scan_takes_everything_once(void **state)
{
	enum { N = 600 };
	struct fx *f = *state;
	time_t now = time(NULL);
	struct queue_scan s;
	struct queue_item *its;
	char last[QUEUE_ID_MAX] = "";
	size_t got[4] = { 0 }, calls = 0, n;
	struct perr e;

	for (unsigned i = 0; i < N; i++)
		plant(f, i % 3 ? "a" : "b", now - 1000, i, now + 3600, 1, NULL);
	queue_scan_init(&s, NULL, 0, now);
	while (!s.done && calls < 4) {
		assert_int_equal(queue_claim_next(&f->q, &s, QUEUE_CLAIM_MAX, &its, &n, &e), 0);
		assert_string_equal(e.text, "");
		for (size_t i = 0; i < n; i++) {
			assert_true(strcmp(its[i].env.id, last) > 0);
			str_copy(last, its[i].env.id, sizeof last);
		}
		got[calls++] = n;
		queue_items_free(its, n);
	}
	assert_int_equal(calls, 3);
	assert_int_equal(got[0], 256);
	assert_int_equal(got[1], 256);
	assert_int_equal(got[2], 88);
	assert_true(s.done);
	/* The scan is over: nothing more, even though all are still queued. */
	assert_int_equal(queue_claim_next(&f->q, &s, QUEUE_CLAIM_MAX, &its, &n, &e), 0);
	assert_int_equal(n, 0);
	assert_int_equal(count_dir(f, "env"), N);
	/* A smaller batch size is honoured, and a new scan starts over. */
	queue_scan_init(&s, "b", 0, now);
	assert_int_equal(queue_claim_next(&f->q, &s, 7, &its, &n, &e), 0);
	assert_int_equal(n, 7);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(its[i].env.account, "b");
	queue_items_free(its, n);
}

/* 300 older messages not yet due ahead of 5 due ones: a due-only claim
 * takes exactly the 5, and never locks the others. */
static void test_due_not_starved(void **state)
{
	struct fx *f = *state;
	time_t now = time(NULL);
	char due[5][QUEUE_ID_MAX], first[QUEUE_ID_MAX];
	struct queue_item *its;
	struct perr e;
	size_t n;

	for (unsigned i = 0; i < 300; i++)
		plant(f, "dead", now - 1000, i, now + 3600, 3, i ? NULL : first);
	for (unsigned i = 0; i < 5; i++)
		plant(f, "live", now - 500, i, now - 1, 1, due[i]);
	n = claim(f, NULL, 1, now, &its, &e);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(its[i].env.id, due[i]);
	assert_true(lockable(f, first));
	assert_false(lockable(f, due[0]));
	queue_items_free(its, n);
	/* Per account, too. */
	assert_int_equal(claim(f, "dead", 1, now, &its, &e), 0);
	assert_int_equal(claim(f, "live", 1, now, &its, &e), 5);
	queue_items_free(its, 5);
}

static enum queue_pick pick_by_account(void *ctx, const struct queue_env *env)
{
	(void)ctx;
	if (strcmp(env->account, "lifted") == 0)
		return QUEUE_PICK_ANY;
	if (strcmp(env->account, "held") == 0)
		return QUEUE_PICK_SKIP;
	return QUEUE_PICK_RULE;
}

/* The scan's pick: a held account's messages stay untouched even when
 * due, all of a lifted account's go even when not due. */
static void test_scan_pick(void **state)
{
	struct fx *f = *state;
	time_t now = time(NULL);
	struct queue_scan s;
	struct queue_item *its;
	struct perr e;
	size_t n, by[3] = { 0 };

	for (unsigned i = 0; i < 30; i++) {
		static const char *const acc[] = { "lifted", "held", "plain" };

		plant(f, acc[i % 3], now - 100, i, i % 2 ? now - 1 : now + 600, 1, NULL);
	}
	queue_scan_init(&s, NULL, 1, now);
	s.pick = pick_by_account;
	assert_int_equal(queue_claim_next(&f->q, &s, QUEUE_CLAIM_MAX, &its, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		by[strcmp(its[i].env.account, "lifted") == 0 ? 0 :
		   strcmp(its[i].env.account, "held") == 0 ? 1 : 2]++;
	assert_int_equal(by[0], 10);  /* all of them */
	assert_int_equal(by[1], 0);   /* none */
	assert_int_equal(by[2], 5);   /* the due half */
	assert_int_equal(n, 15);
	queue_items_free(its, n);
}

/* A try before the message is due (a bare -q, or, before, the flush after
 * every send) leaves its backoff alone: 12 failed sends in 2 seconds do
 * not push a message to the 4-hour maximum. */
static void test_early_tries_do_not_back_off(void **state)
{
	struct fx *f = *state;
	time_t now = time(NULL);
	struct queue_item *its;
	struct perr e;
	char id[QUEUE_ID_MAX];

	plant(f, "a", now, 1, now + 300, 1, id);
	for (int i = 0; i < 12; i++) {
		char why[32];

		snprintf(why, sizeof why, "421 try %d", i);
		assert_int_equal(claim(f, NULL, 0, now, &its, &e), 1);
		assert_int_equal(queue_retry(&f->q, &its[0], why, now + i / 6, 86400, &e), 0);
		queue_items_free(its, 1);
	}
	assert_int_equal(claim(f, NULL, 0, now, &its, &e), 1);
	assert_int_equal(its[0].env.attempts, 1);
	assert_int_equal(its[0].env.next_try, now + 300);
	assert_string_equal(its[0].env.last_error, "421 try 11");
	/* Tried when due: counted, backed off from then. */
	assert_int_equal(queue_retry(&f->q, &its[0], "421 due", now + 300, 86400, &e), 0);
	queue_items_free(its, 1);
	assert_int_equal(claim(f, NULL, 0, now, &its, &e), 1);
	assert_int_equal(its[0].env.attempts, 2);
	assert_int_equal(its[0].env.next_try, now + 300 + 600);
	queue_items_free(its, 1);
}

static void put_file(struct fx *f, const char *rel, const char *text, int append)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", f->spool, rel);
	fp = fopen(path, append ? "a" : "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* mailq's view: damaged entries are listed where they are, with what is
 * wrong and the file, among the others. */
static void test_list_damaged(void **state)
{
	struct fx *f = *state;
	time_t now = time(NULL);
	char g[QUEUE_ID_MAX], x[QUEUE_ID_MAX], y[QUEUE_ID_MAX], z[QUEUE_ID_MAX];
	char fa[QUEUE_ID_MAX], d[QUEUE_ID_MAX], rel[64];
	struct queue_item *its;
	struct listed l = { 0 };
	struct perr e;
	size_t n;

	plant(f, "a", now, 1, now, 0, g);
	plant(f, "a", now, 2, now, 0, x);
	plant(f, "a", now, 3, now, 0, y);
	plant(f, "a", now, 4, now, 0, z);
	plant(f, "a", now, 5, now, 0, fa);
	plant(f, "a", now, 6, now, 0, d);
	snprintf(rel, sizeof rel, "env/%s", x);
	put_file(f, rel, "garbage\n", 0);
	snprintf(rel, sizeof rel, "msg/%s", y);
	assert_int_equal(unlinkat(f->q.dirfd, rel, 0), 0);
	snprintf(rel, sizeof rel, "msg/%s", z);
	put_file(f, rel, "more", 1);
	n = claim(f, NULL, 0, now, &its, &e);
	assert_int_equal(n, 3); /* g, fa, d */
	assert_int_equal(queue_fail(&f->q, &its[1], "550 no", &e), 0);
	assert_int_equal(queue_fail(&f->q, &its[2], "550 no", &e), 0);
	queue_items_free(its, n);
	snprintf(rel, sizeof rel, "failed/%s.env", d);
	put_file(f, rel, "postern-queue 1\n", 0);
	assert_int_equal(queue_list(&f->q, collect, &l, &e), 0);
	assert_int_equal(l.n, 6);
	assert_int_equal(l.damaged, 4);
	assert_string_equal(l.id[0], g);
	assert_int_equal(l.state[0], QUEUE_QUEUED);
	assert_string_equal(l.id[1], x);
	assert_int_equal(l.state[1], QUEUE_DAMAGED);
	assert_string_equal(l.error[1], "the first line is not \"postern-queue 1\"");
	snprintf(rel, sizeof rel, "env/%s", x);
	assert_string_equal(l.path[1], rel);
	assert_string_equal(l.id[2], y);
	assert_int_equal(l.state[2], QUEUE_DAMAGED);
	assert_string_equal(l.error[2], "its message file is missing");
	assert_string_equal(l.id[3], z);
	assert_int_equal(l.state[3], QUEUE_DAMAGED);
	assert_string_equal(l.error[3], "its message file is not the size its envelope says");
	snprintf(rel, sizeof rel, "msg/%s", z);
	assert_string_equal(l.path[3], rel);
	assert_string_equal(l.id[4], fa);
	assert_int_equal(l.state[4], QUEUE_FAILED);
	assert_string_equal(l.id[5], d);
	assert_int_equal(l.state[5], QUEUE_DAMAGED);
	snprintf(rel, sizeof rel, "failed/%s.env", d);
	assert_string_equal(l.path[5], rel);
}

static char *slurp(struct fx *f, const char *rel)
{
	char path[256];
	FILE *fp;
	char *buf = xcalloc(1, 4096);

	snprintf(path, sizeof path, "%s/%s", f->spool, rel);
	fp = fopen(path, "r");
	if (!fp) {
		free(buf);
		return NULL;
	}
	buf[fread(buf, 1, 4095, fp)] = '\0';
	fclose(fp);
	return buf;
}

static void assert_hold_format(const char *text, const char *reason)
{
	char pattern[256];
	regex_t re;

	snprintf(pattern, sizeof pattern, "^postern-hold 2\nstamp pbkdf2-sha256\\$100000\\$"
		 "[0-9a-f]{32}\\$[0-9a-f]{64}\nreason %s\n$", reason);
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&re, text, 0, NULL, 0) != 0)
		fail_msg("hold file not in the salted format:\n%s", text);
	regfree(&re);
}

/* The hold file keeps a salted, slow stamp: never the secret, never its
 * plain SHA-256; the same credentials stamped twice differ (new salt). */
static void test_hold_format(void **state)
{
	struct fx *f = *state;
	const char *pw = "correct-horse-42-battery";
	char plain[65], *one, *two, *why;
	struct perr e;
	int64_t t0;

	crypto_sha256_hex(cred(pw), NCRED, plain);
	assert_int_equal(queue_hold(&f->q, "work", "535 5.7.8 no", cred(pw), NCRED, &e), 0);
	one = slurp(f, "held/work");
	assert_non_null(one);
	assert_hold_format(one, "535 5.7.8 no");
	assert_null(strstr(one, plain));
	assert_null(strstr(one, pw));
	assert_int_equal(queue_hold(&f->q, "work", "535 5.7.8 no", cred(pw), NCRED, &e), 0);
	two = slurp(f, "held/work");
	assert_hold_format(two, "535 5.7.8 no");
	assert_string_not_equal(one, two);
	t0 = mono_ms();
	assert_int_equal(queue_held(&f->q, "work", cred(pw), NCRED, &why), 1);
	print_message("# one stamp check: %lld ms\n", (long long)(mono_ms() - t0));
	assert_string_equal(why, "535 5.7.8 no");
	free(why);
	assert_int_equal(queue_held(&f->q, "work", cred("another"), NCRED, &why), 2);
	assert_false(queue_hold_exists(&f->q, "work"));
	free(one);
	free(two);

	/* The first format (a plain SHA-256): compared once the old way,
	 * then re-stamped when still held... */
	one = xcalloc(1, 256);
	snprintf(one, 256, "postern-hold 1\nstamp %s\nreason 535 old\n", plain);
	put_file(f, "held/work", one, 0);
	assert_int_equal(queue_held(&f->q, "work", cred(pw), NCRED, &why), 1);
	assert_string_equal(why, "535 old");
	free(why);
	two = slurp(f, "held/work");
	assert_hold_format(two, "535 old");
	assert_null(strstr(two, plain));
	free(two);
	assert_int_equal(queue_held(&f->q, "work", cred(pw), NCRED, NULL), 1);
	/* ...or removed when the credentials changed. */
	put_file(f, "held/work", one, 0);
	assert_int_equal(queue_held(&f->q, "work", cred("another"), NCRED, &why), 2);
	assert_null(why);
	assert_false(queue_hold_exists(&f->q, "work"));
	free(one);

	/* Stamps that are not of the format: refused (and such a file goes). */
	static const char *const bad[] = {
		"", "pbkdf2-sha256$", "pbkdf2-sha256$1000$00000000000000000000000000000000$"
		"0000000000000000000000000000000000000000000000000000000000000000",
		"pbkdf2-sha256$100000$0000$00", "sha256$100000$x$y",
		"pbkdf2-sha256$100000$00000000000000000000000000000000$"
		"0000000000000000000000000000000000000000000000000000000000000000x",
		"pbkdf2-sha256$99999999999$00000000000000000000000000000000$"
		"0000000000000000000000000000000000000000000000000000000000000000",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(crypto_stamp_matches(cred(pw), NCRED, bad[i]), -1);
	put_file(f, "held/work", "postern-hold 2\nstamp pbkdf2-sha256$1000$00000000000000000000000000000000$"
		 "0000000000000000000000000000000000000000000000000000000000000000\nreason x\n", 0);
	assert_int_equal(queue_held(&f->q, "work", cred(pw), NCRED, &why), 0);
	assert_false(queue_hold_exists(&f->q, "work"));
}

/* ---- files, permissions, failures -------------------------------------------- */

static void test_permissions(void **state)
{
	struct fx *f = *state;
	char id[QUEUE_ID_MAX], path[256];
	struct stat st;
	mode_t old = umask(0);

	add_one(f, "a", 0, 10, id);
	umask(old);
	assert_int_equal(stat(f->spool, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", f->spool, subdirs[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
	snprintf(path, sizeof path, "%s/msg/%s", f->spool, id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(path, sizeof path, "%s/env/%s", f->spool, id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* A spool left group-readable is tightened on open. */
	queue_close(&f->q);
	assert_int_equal(chmod(f->spool, 0755), 0);
	assert_int_equal(queue_open(&f->q, f->spool, NULL), 0);
	assert_int_equal(stat(f->spool, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
}

static void test_default_dir(void **state)
{
	char *old_xdg = getenv("XDG_STATE_HOME"), *old_home = getenv("HOME");
	char *sx = old_xdg ? xstrdup(old_xdg) : NULL, *sh = old_home ? xstrdup(old_home) : NULL;
	char *d;

	(void)state;
	setenv("XDG_STATE_HOME", "/x/state", 1);
	setenv("HOME", "/home/u", 1);
	d = default_dir(0, NULL);
	assert_string_equal(d, "/var/spool/postern");
	free(d);
	d = default_dir(1000, NULL);
	assert_string_equal(d, "/x/state/postern/queue");
	free(d);
	setenv("XDG_STATE_HOME", "relative/state", 1);
	d = default_dir(1000, NULL);
	assert_string_equal(d, "/home/u/.local/state/postern/queue");
	free(d);
	unsetenv("XDG_STATE_HOME");
	d = default_dir(1000, NULL);
	assert_string_equal(d, "/home/u/.local/state/postern/queue");
	free(d);
	if (sx)
		setenv("XDG_STATE_HOME", sx, 1);
	if (sh)
		setenv("HOME", sh, 1);
	else
		unsetenv("HOME");
	free(sx);
	free(sh);
}

static void test_open_under_a_file(void **state)
{
	struct fx *f = *state;
	char file[128], bad[160];
	struct queue q2;
	struct perr e;
	int fd;

	snprintf(file, sizeof file, "%s/plainfile", f->dir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(bad, sizeof bad, "%s/spool", file);
	assert_int_equal(queue_open(&q2, bad, &e), -1);
	assert_int_equal(e.kind, PERR_IO);
	assert_non_null(strstr(e.text, bad));
	assert_non_null(strstr(e.text, "Not a directory"));
	assert_non_null(strstr(e.text, "directory"));
	assert_null(q2.dir);
}

/* Writes cut short by RLIMIT_FSIZE (as a full disk would): in a child, so
 * the limit stays there. */
static void test_write_failure_leaves_nothing(void **state)
{
	static const struct {
		size_t body;
		rlim_t limit;
	} t[] = {
		{ 300000, 65536 }, /* the message itself does not fit */
		{ 40, 150 },       /* the message fits, its envelope does not */
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		pid_t pid = fork();
		int st;

		assert_true(pid >= 0);
		if (pid == 0) {
			struct rlimit rl = { t[i].limit, t[i].limit };
			struct queue_env env;
			struct message m;
			struct perr e;
			char *longr[] = { "a-rather-long-recipient-address-to-fill-the-env@example.org",
					  "another-rather-long-recipient-address@example.org" };

			make_msg(&m, t[i].body);
			make_env(&env, "a");
			env.rcpts = longr;
			signal(SIGXFSZ, SIG_IGN);
			setrlimit(RLIMIT_FSIZE, &rl);
			if (queue_add(&f->q, &env, &m, &e) != -1)
				_exit(10);
			if (e.kind != PERR_IO || !strstr(e.text, f->spool) || env.id[0])
				_exit(11);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		assert_int_equal(count_dir(f, "tmp"), 0);
		assert_int_equal(count_dir(f, "msg"), 0);
		assert_int_equal(count_dir(f, "env"), 0);
	}
}

/* Checks without cmocka (they may run in a child): 0 or the failing case. */
static int unwritable_cases(struct fx *f)
{
	static const char *const subs[] = { "tmp", "msg", "env" };

	for (int i = 0; i < 3; i++) {
		struct queue_env env;
		struct message m;
		struct perr e;
		char path[160];
		int rc;

		snprintf(path, sizeof path, "%s/%s", f->spool, subs[i]);
		if (chmod(path, 0500) < 0)
			return 10 + i;
		make_msg(&m, 100);
		make_env(&env, "a");
		rc = queue_add(&f->q, &env, &m, &e);
		message_free(&m);
		if (rc != -1 || e.kind != PERR_IO || !strstr(e.text, f->spool) ||
		    !strstr(e.text, "chmod"))
			return 20 + i;
		if (chmod(path, 0700) < 0)
			return 30 + i;
		if (count_dir(f, "tmp") + count_dir(f, "msg") + count_dir(f, "env") != 0)
			return 40 + i;
	}
	return 0;
}

static int chown_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(p, 65534, 65534);
}

/* Mode bits do not stop root: as root the cases run in a child that has
 * become nobody (uid 65534) and owns the spool. */
static void test_unwritable_spool(void **state)
{
	struct fx *f = *state;
	pid_t pid;
	int st;

	if (geteuid() != 0) {
		assert_int_equal(unwritable_cases(f), 0);
		return;
	}
	assert_int_equal(nftw(f->dir, chown_one, 16, FTW_PHYS), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		if (access(f->spool, W_OK) < 0)
			_exit(3);
		_exit(unwritable_cases(f));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_sweep_leftovers(void **state)
{
	struct fx *f = *state;
	char keep[QUEUE_ID_MAX], orphan[QUEUE_ID_MAX], path[PATH_CAP];
	struct queue_item *its;
	struct perr e;
	int fd;

	add_one(f, "a", 0, 10, keep);
	add_one(f, "a", 0, 10, orphan);
	snprintf(path, sizeof path, "env/%s", orphan);
	assert_int_equal(unlinkat(f->q.dirfd, path, 0), 0);
	fd = openat(f->q.dirfd, "tmp/leftover.msg.1", O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* Fresh leftovers stay (a writer may be at work). */
	assert_int_equal(claim(f, NULL, 0, time(NULL), &its, &e), 1);
	queue_items_free(its, 1);
	assert_int_equal(count_dir(f, "tmp"), 1);
	assert_int_equal(count_dir(f, "msg"), 2);
	/* Two hours later they go; the queued message stays. */
	assert_int_equal(claim(f, NULL, 0, time(NULL) + 7200, &its, &e), 1);
	assert_string_equal(its[0].env.id, keep);
	queue_items_free(its, 1);
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "msg"), 1);
	assert_true(exists(f, "msg", keep, ""));
}

/* ---- crash safety ----------------------------------------------------------------- */

struct crash {
	char id[QUEUE_ID_MAX];   /* message the action works on ("" for add) */
	const struct message *m;
	unsigned char *want;     /* its bytes */
	size_t wlen;
};

/* Run action in a child that ends at hook n; its exit status (99: crashed). */
static int run_crashing(struct fx *f, unsigned n, void (*action)(struct fx *, struct crash *),
			struct crash *c)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		char s[16];

		snprintf(s, sizeof s, "%u", n);
		setenv("POSTERN_QUEUE_CRASH_AT", s, 1);
		hook_count = 0;
		action(f, c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void act_add(struct fx *f, struct crash *c)
{
	struct queue_env env;
	struct perr e;

	make_env(&env, "a");
	if (queue_add(&f->q, &env, c->m, &e) < 0)
		_exit(3);
}

static void act_claim_then(struct fx *f, struct crash *c, int what)
{
	struct queue_item *its;
	struct perr e;
	size_t n = 0;
	int rc = -1;

	if (queue_claim(&f->q, NULL, 0, time(NULL), &its, &n, &e) < 0 || n != 1)
		_exit(4);
	if (what == 0)
		rc = queue_done(&f->q, &its[0], &e);
	else if (what == 1)
		rc = queue_retry(&f->q, &its[0], "421 later", time(NULL), 0, &e);
	else
		rc = queue_fail(&f->q, &its[0], "550 no", &e);
	if (rc < 0)
		_exit(5);
	(void)c;
}

static void act_done(struct fx *f, struct crash *c) { act_claim_then(f, c, 0); }
static void act_retry(struct fx *f, struct crash *c) { act_claim_then(f, c, 1); }
static void act_fail(struct fx *f, struct crash *c) { act_claim_then(f, c, 2); }

static int failed_copy_ok(struct fx *f, struct crash *c)
{
	char path[256];
	unsigned char *got;
	ssize_t r;
	int fd;

	snprintf(path, sizeof path, "%s/failed/%s.msg", f->spool, c->id);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	got = xmalloc(c->wlen + 1);
	r = read(fd, got, c->wlen + 1);
	close(fd);
	assert_int_equal(r, (ssize_t)c->wlen);
	assert_memory_equal(got, c->want, c->wlen);
	free(got);
	assert_true(exists(f, "failed", c->id, ".env"));
	return 1;
}

/* After a crash: at most one claimable message, and it is complete. */
static size_t check_after(struct fx *f, struct crash *c, int kind, int status)
{
	struct queue_item *its;
	struct listed l = { 0 };
	struct perr e;
	size_t n = claim(f, NULL, 0, time(NULL), &its, &e);

	assert_true(n <= 1);
	assert_string_equal(e.text, "");
	if (n == 1) {
		assert_same_bytes(&its[0], c->want, c->wlen);
		if (kind == 1 && status == 0)
			assert_int_equal(its[0].env.attempts, 1);
	}
	if (kind == 2 && n == 0)
		assert_true(failed_copy_ok(f, c));
	/* Listed once, as queued or as failed. */
	assert_int_equal(queue_list(&f->q, collect, &l, &e), 0);
	assert_int_equal(l.n, kind == 0 && n == 0 ? 0 : 1);
	queue_items_free(its, n);
	return n;
}

static void clean_spool(struct fx *f)
{
	static const char *const subs[] = { "tmp", "msg", "env", "failed" };

	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		char path[160];

		snprintf(path, sizeof path, "%s/%s", f->spool, subs[i]);
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		mkdirat(f->q.dirfd, subs[i], 0700);
	}
}

static void crash_every_step(struct fx *f, void (*action)(struct fx *, struct crash *),
			     int kind, unsigned min_steps)
{
	struct message m;
	struct crash c = { 0 };
	unsigned n;
	int status;

	make_msg(&m, 200000); /* several 64 KB chunks */
	c.m = &m;
	c.want = msg_bytes(&m, &c.wlen);
	for (n = 1;; n++) {
		size_t left;

		clean_spool(f);
		if (kind != 3) {
			struct queue_env env;
			struct perr e;

			make_env(&env, "a");
			assert_int_equal(queue_add(&f->q, &env, &m, &e), 0);
			str_copy(c.id, env.id, sizeof c.id);
		}
		status = run_crashing(f, n, action, &c);
		assert_true(status == 99 || status == 0);
		left = check_after(f, &c, kind == 3 ? 0 : kind, status);
		if (status == 0) {
			/* Completed: added (1), delivered (0), retried (1), failed (0). */
			assert_int_equal(left, kind == 3 || kind == 1 ? 1 : 0);
			break;
		}
		if (kind == 1)
			assert_int_equal(left, 1); /* a retry never loses it */
		/* Leftovers of the crash are swept later; nothing else remains. */
		sweep(&f->q, time(NULL) + 7200);
		if (left == 0 && kind != 2)
			assert_int_equal(count_dir(f, "tmp") + count_dir(f, "msg") +
					 count_dir(f, "env"), 0);
	}
	print_message("# %u crash points\n", n - 1);
	assert_true(n - 1 >= min_steps);
	free(c.want);
	message_free(&m);
}

static void test_crash_during_add(void **state)
{
	crash_every_step(*state, act_add, 3, 8);
}

static void test_crash_during_done(void **state)
{
	crash_every_step(*state, act_done, 0, 2);
}

static void test_crash_during_retry(void **state)
{
	crash_every_step(*state, act_retry, 1, 4);
}

static void test_crash_during_fail(void **state)
{
	crash_every_step(*state, act_fail, 2, 6);
}

/* SIGKILL at arbitrary moments of queue_add of a 2 MB message.  The
 * child records each step it reaches (hook_progress, in shared memory),
 * so each round's outcome is checked against what it must be: the
 * message is queued exactly when the child got past the rename of its
 * envelope (the last step, H).  Killed with step H - 1 reached, the
 * rename itself may or may not have happened: the one round kind where
 * either outcome is right. */
static void test_sigkill_during_add(void **state)
{
	struct fx *f = *state;
	struct message m;
	struct crash c = { 0 };
	volatile unsigned *progress;
	unsigned steps = 0, must_complete = 0, must_none = 0, either = 0, complete = 0;

	make_msg(&m, 2 * 1024 * 1024);
	c.m = &m;
	c.want = msg_bytes(&m, &c.wlen);
	progress = mmap(NULL, sizeof *progress, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			-1, 0);
	assert_true(progress != MAP_FAILED);
	/* How many steps a whole queue_add takes. */
	for (unsigned i = 0; i <= 24; i++) {
		pid_t pid;
		int st;
		size_t left;

		clean_spool(f);
		*progress = 0;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			hook_count = 0;
			hook_progress = progress;
			act_add(f, &c);
			_exit(0);
		}
		if (i > 0) {
			usleep((i - 1) * (i - 1) * 60);
			kill(pid, SIGKILL);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (i == 0) {
			/* The measuring round: not killed. */
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
			steps = *progress;
			assert_true(steps >= 8);
			assert_int_equal(check_after(f, &c, 0, -1), 1);
			continue;
		}
		left = check_after(f, &c, 0, -1);
		complete += left;
		if (*progress == steps) {
			must_complete++;
			assert_int_equal(left, 1);
		} else if (*progress + 1 == steps) {
			either++;
		} else {
			must_none++;
			assert_int_equal(left, 0);
			/* Nothing half-written is ever taken for a message, and
			 * what is left is swept. */
			sweep(&f->q, time(NULL) + 7200);
			assert_int_equal(count_dir(f, "tmp") + count_dir(f, "msg") +
					 count_dir(f, "env"), 0);
		}
	}
	print_message("# %u steps; 24 kills: %u past the commit, %u before it, %u at it; "
		      "%u complete\n", steps, must_complete, must_none, either, complete);
	assert_true(complete >= must_complete && complete <= must_complete + either);
	munmap((void *)progress, sizeof *progress);
	free(c.want);
	message_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_claim_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_refuses_bad_envelope, setup, teardown),
		cmocka_unit_test(test_env_roundtrip),
		cmocka_unit_test_setup_teardown(test_claim_order_account_and_own_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_skips_locked_by_other_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_skips_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_flushers, setup, teardown),
		cmocka_unit_test(test_backoff_table),
		cmocka_unit_test_setup_teardown(test_retry_due_and_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifetime_moves_to_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_queued_held_and_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_stamps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_env_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_takes_everything_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_not_starved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_pick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_early_tries_do_not_back_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test_setup_teardown(test_open_under_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_done, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_during_add, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
