/* system_caller.c — the caller's side of system mode, for a postern
 * with no configuration of its own: the handoff of its command line and
 * message to the service, the outbox that keeps them while the service
 * cannot be reached, the outbox's flush, and the queue requests of mailq
 * and -q.  See system.h for the contract and system_proto.h for the wire
 * format. */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "system.h"
#include "system_proto.h"
#include "util.h"

/* The caller waits this long for the service's answer: delivery may wait
 * 10 minutes for the reply to the end of data (SPEC 3, timeout). */
#define ANSWER_TIMEOUT_S 900

static const char *socket_path(void)
{
	const char *p = getenv("POSTERN_SOCKET");

	return p && p[0] == '/' ? p : SYSTEM_SOCKET_PATH;
}

static int outbox_dir(char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	struct passwd *pw;

	if (xdg && xdg[0] == '/')
		return (size_t)snprintf(buf, cap, "%s/postern/outbox", xdg) < cap ? 0 : -1;
	if (!home || home[0] != '/') {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || home[0] != '/')
		return -1;
	return (size_t)snprintf(buf, cap, "%s/.local/state/postern/outbox", home) < cap ? 0 : -1;
}

/* mkdir -p, 0700 for what is created; the outbox itself must be ours. */
static int make_outbox(const char *path)
{
	char b[4096];
	struct stat st;

	str_copy(b, path, sizeof b);
	for (char *p = b + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(b, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(b, 0700) < 0 && errno != EEXIST)
		return -1;
	if (lstat(b, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid())
		return -1;
	return chmod(b, 0700);
}

/* The request: header, arguments, blank line, standard input.  -1 with
 * errno E2BIG (an argument too long, or too many of them) or EFBIG (a
 * message the service would refuse for its size) when it is refused
 * before anything is kept. */
static int write_request(int fd, int argc, char **argv)
{
	char esc[SYSTEM_LINE_MAX], in[65536];
	long long total = 0;
	ssize_t n;

	if (argc > SYSTEM_ARGS_MAX)
		return errno = E2BIG, -1;
	if (write_full(fd, SYSTEM_MAGIC_HANDOFF "\n", sizeof SYSTEM_MAGIC_HANDOFF) < 0)
		return -1;
	for (int i = 1; i < argc; i++) {
		size_t w = system_arg_line(esc, sizeof esc, argv[i]);
		if (w == 0)
			return errno = E2BIG, -1;
		if (write_full(fd, esc, w) < 0)
			return -1;
	}
	if (write_full(fd, "\n", 1) < 0)
		return -1;
	while ((n = read(STDIN_FILENO, in, sizeof in)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0 && (total += n) > SYSTEM_MESSAGE_MAX)
			return errno = EFBIG, -1;
		if (n < 0 || write_full(fd, in, (size_t)n) < 0)
			return -1;
	}
	return 0;
}

static int connect_service(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = socket_path();
	int fd;

	if (strlen(path) >= sizeof sun.sun_path)
		return errno = ENAMETOOLONG, -1;
	str_copy(sun.sun_path, path, sizeof sun.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Read the service's answer on sfd: notices to notice, listing lines to
 * out (may be NULL), then the result into e.  0: answered (kind
 * PERR_NONE: done, text says how); 1: the connection ended without one. */
static int read_answer(int sfd, FILE *out, void (*notice)(const char *), struct perr *e)
{
	static struct system_rbuf r;
	char line[PERR_TEXT_MAX + 96], clean[sizeof line];

	memset(&r, 0, sizeof r);
	r.fd = sfd;
	r.deadline = mono_ms() + ANSWER_TIMEOUT_S * 1000LL;
	while (system_rb_line(&r, line, sizeof line) == 1) {
		log_sanitize(clean, sizeof clean, line, strlen(line));
		if (clean[0] == 'N' && clean[1] == ' ') {
			if (notice)
				notice(clean + 2);
			continue;
		}
		if (clean[0] == 'L' && clean[1] == ' ') {
			if (out)
				fprintf(out, "%s\n", clean + 2);
			continue;
		}
		int kind, off = 0;
		if (clean[0] != 'R' || sscanf(clean + 1, " %d %n", &kind, &off) != 1 || !off ||
		    kind < PERR_NONE || kind > PERR_CONFIG)
			break;
		perr_set(e, (enum perr_kind)kind, "%s", clean + 1 + off);
		return 0;
	}
	perr_set(e, PERR_TEMP, "the service closed the connection without an answer");
	return 1;
}

/* Hand one request file over.  1: the service could not be reached (or
 * went away before answering: the file stays); 0: answered, e holds the
 * answer (kind PERR_NONE: delivered or queued, text says which). */
static int hand_over(int rfd, void (*notice)(const char *), struct perr *e)
{
	char buf[65536];
	int sfd = connect_service(), r;
	ssize_t n;

	if (sfd < 0)
		return perr_set(e, PERR_TEMP, "%s", strerror(errno)), 1;
	signal(SIGPIPE, SIG_IGN);
	if (lseek(rfd, 0, SEEK_SET) < 0) {
		close(sfd);
		return perr_set(e, PERR_TEMP, "cannot read the kept message: %s",
				strerror(errno)), 1;
	}
	while ((n = read(rfd, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_full(sfd, buf, (size_t)n) < 0)
			break;   /* the service may have answered already: read it */
	}
	shutdown(sfd, SHUT_WR);
	r = read_answer(sfd, NULL, notice, e);
	close(sfd);
	return r;
}

static void unreachable_hint(char *buf, size_t cap, const char *why)
{
	snprintf(buf, cap, "the postern service is not reachable at %s (%.200s); start it with "
		 "systemctl enable --now postern.socket, or postern --system --listen %s",
		 socket_path(), why, socket_path());
}

/* Hand over older kept messages after a successful contact. */
static int flush_dir(const char *dir, const char *skip, void (*notice)(const char *),
		     int *left, struct perr *last)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096], line[PERR_TEXT_MAX + 4200];
	int handed = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct perr e = { 0 };
		if (de->d_name[0] == '.' || strncmp(de->d_name, "tmp.", 4) == 0 ||
		    strcmp(de->d_name, "failed") == 0 || (skip && strcmp(de->d_name, skip) == 0))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;   /* another run is handing it over */
		}
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink == 0) {
			close(fd);
			continue;   /* already handed over by that other run */
		}
		if (hand_over(fd, notice, &e) == 1) {
			(*left)++;
			*last = e;
		} else if (e.kind == PERR_NONE || e.kind != PERR_TEMP) {
			if (e.kind == PERR_NONE) {
				unlink(path);
				handed++;
			} else {
				char failed[4096];
				snprintf(failed, sizeof failed, "%s/failed", dir);
				mkdir(failed, 0700);
				snprintf(failed, sizeof failed, "%s/failed/%s", dir, de->d_name);
				rename(path, failed);
			}
			snprintf(line, sizeof line, "kept message %s handed over: %s%s", de->d_name,
				 e.text, e.kind == PERR_NONE ? "" : " (moved to the outbox's failed/)");
			if (notice)
				notice(line);
		} else {
			(*left)++;
		}
		close(fd);
	}
	closedir(d);
	return handed;
}

int system_flush_outbox(void (*notice)(const char *line), struct perr *e)
{
	char dir[4096], hint[PERR_TEXT_MAX];
	int left = 0;
	struct perr last = { 0 };

	if (outbox_dir(dir, sizeof dir) < 0)
		return 0;
	flush_dir(dir, NULL, notice, &left, &last);
	if (left) {
		unreachable_hint(hint, sizeof hint, last.text);
		return perr_set(e, PERR_TEMP, "%d kept message(s) still in %s: %s", left, dir, hint);
	}
	return 0;
}

/* Keep the request in the outbox: a complete file named ID, locked.
 * Returns its descriptor; -1 when there is no usable outbox (then an
 * unlinked temporary file is used and nothing outlives the run). */
static int keep_request(int argc, char **argv, char *dir, size_t dcap, char *id, size_t icap,
			struct perr *e)
{
	char tmp[4200], final[4200];
	int fd = -1;

	if (outbox_dir(dir, dcap) == 0 && make_outbox(dir) == 0) {
		snprintf(tmp, sizeof tmp, "%s/tmp.XXXXXX", dir);
		fd = mkstemp(tmp);
	}
	if (fd < 0) {
		const char *t = getenv("TMPDIR");
		dir[0] = '\0';
		snprintf(tmp, sizeof tmp, "%s/postern-out-XXXXXX", t && t[0] == '/' ? t : "/tmp");
		fd = mkstemp(tmp);
		if (fd < 0)
			return perr_set(e, PERR_TEMP, "cannot keep the message (%s: %s)", tmp,
					strerror(errno));
		unlink(tmp);
	}
	flock(fd, LOCK_EX);
	if (write_request(fd, argc, argv) < 0 || (dir[0] && fsync(fd) < 0)) {
		int err = errno;
		if (dir[0])
			unlink(tmp);
		close(fd);
		if (err == E2BIG)
			return perr_set(e, PERR_USAGE, "more than %d arguments, or one over %d "
					"bytes: the postern service refuses them; send to fewer "
					"recipients at once", SYSTEM_ARGS_MAX - 1, SYSTEM_LINE_MAX - 8);
		if (err == EFBIG)
			return perr_set(e, PERR_DATA, "the message is larger than %ld MB; the "
					"postern service refuses it (nothing was kept or sent)",
					SYSTEM_MESSAGE_MAX / (1024 * 1024));
		return perr_set(e, PERR_IO, "cannot keep the message: %s", strerror(err));
	}
	if (dir[0]) {
		snprintf(id, icap, "%lld.%ld", (long long)time(NULL), (long)getpid());
		snprintf(final, sizeof final, "%s/%s", dir, id);
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rename(tmp, final) < 0 || dfd < 0 || fsync(dfd) < 0) {
			int err = errno;
			unlink(tmp);
			if (dfd >= 0)
				close(dfd);
			close(fd);
			return perr_set(e, PERR_IO, "cannot keep the message in %s: %s", dir,
					strerror(err));
		}
		close(dfd);
	}
	return fd;
}

int system_handoff(int argc, char **argv, void (*notice)(const char *line), struct perr *e)
{
	char dir[4096], id[64] = "", path[4200], hint[PERR_TEXT_MAX], line[PERR_TEXT_MAX + 4300];
	int fd = keep_request(argc, argv, dir, sizeof dir, id, sizeof id, e);
	int r, left = 0;
	struct perr last = { 0 };

	if (fd < 0)
		return -1;
	r = hand_over(fd, notice, e);
	if (r == 1) {
		close(fd);
		unreachable_hint(hint, sizeof hint, e->text);
		if (!dir[0])
			return perr_set(e, PERR_TEMP, "%s; nothing was kept", hint);
		snprintf(line, sizeof line, "kept %s in %s: %s; the next postern run or "
			 "postern -q hands it over", id, dir, hint);
		perr_clear(e);
		if (notice)
			notice(line);
		return 0;
	}
	if (dir[0]) {
		snprintf(path, sizeof path, "%s/%s", dir, id);
		unlink(path);
	}
	close(fd);
	if (e->kind != PERR_NONE)
		return -1;
	if (strncmp(e->text, "queued ", 7) == 0 && notice)
		notice(e->text);
	perr_clear(e);
	if (dir[0])
		flush_dir(dir, id, notice, &left, &last);
	return 0;
}

int system_request(enum system_request what, FILE *out, void (*notice)(const char *line),
		   struct perr *e)
{
	const char *magic =
		what == SYSTEM_MAILQ ? SYSTEM_MAGIC_MAILQ "\n" : SYSTEM_MAGIC_FLUSH "\n";
	char hint[PERR_TEXT_MAX];
	int sfd = connect_service();

	if (sfd < 0) {
		unreachable_hint(hint, sizeof hint, strerror(errno));
		return perr_set(e, PERR_TEMP, "%s", hint), 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (write_full(sfd, magic, strlen(magic)) < 0) {
		close(sfd);
		return perr_set(e, PERR_TEMP, "the postern service closed the connection: %s",
				strerror(errno));
	}
	shutdown(sfd, SHUT_WR);
	read_answer(sfd, out, notice, e);
	close(sfd);
	if (out)
		fflush(out);
	if (e->kind != PERR_NONE)
		return -1;
	perr_clear(e);
	return 0;
}

int system_outbox_count(char *dir, size_t cap)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	if (outbox_dir(dir, cap) < 0 || !(d = opendir(dir)))
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, "tmp.", 4) != 0 &&
		    strcmp(de->d_name, "failed") != 0)
			n++;
	closedir(d);
	return n;
}
