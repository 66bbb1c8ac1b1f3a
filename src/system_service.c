/* system_service.c — the postern service (`postern --system`): listening
 * on a path or a loopback port, or the one connection systemd passes; one
 * child per connection; on the UNIX socket the caller's uid from
 * SO_PEERCRED and its request (a handoff, a queue listing, a queue run);
 * on the TCP socket SMTP for loopback peers only.  See system.h for why
 * it is safe and system_proto.h for the wire format. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "mailq.h"
#include "message.h"
#include "smtpstdio.h"
#include "system.h"
#include "system_proto.h"
#include "util.h"

/* How long the service waits for a caller: $POSTERN_SYSTEM_TIMEOUT
 * seconds (1 to 3600) when set, else SYSTEM_TIMEOUT_S. */
static int peer_timeout_s(void)
{
	const char *v = getenv("POSTERN_SYSTEM_TIMEOUT");
	char *end;
	long t = v && *v ? strtol(v, &end, 10) : 0;

	return v && *v && !*end && t >= 1 && t <= 3600 ? (int)t : SYSTEM_TIMEOUT_S;
}

/* ---- the service: one handoff --------------------------------------------- */

static int peer_fd = -1;   /* the connection of this child, for notices */

static void peer_line(char tag, int kind, const char *text)
{
	char clean[PERR_TEXT_MAX + 64], line[PERR_TEXT_MAX + 96];
	int n;

	log_sanitize(clean, sizeof clean, text, strlen(text));
	n = kind < 0 ? snprintf(line, sizeof line, "%c %s\n", tag, clean)
		     : snprintf(line, sizeof line, "%c %d %s\n", tag, kind, clean);
	if (n > 0 && peer_fd >= 0)
		write_full(peer_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void peer_notice(const char *line)
{
	peer_line('N', -1, line);
}

/* The arguments of a handoff into argv (argv[0] = "sendmail"). */
static int read_args(struct system_rbuf *r, char ***argvp, int *argcp, struct perr *e)
{
	char line[SYSTEM_LINE_MAX];
	char **argv = xcalloc(SYSTEM_ARGS_MAX + 2, sizeof *argv);
	int argc = 1;

	*argvp = argv;
	argv[0] = xstrdup("sendmail");
	for (;;) {
		if (system_rb_line(r, line, sizeof line) != 1)
			return errno == ETIMEDOUT
				? perr_set(e, PERR_TEMP, "handoff: the caller sent nothing more "
					   "within %d s", peer_timeout_s())
				: perr_set(e, PERR_PROTOCOL, "handoff: the argument list ended "
					   "early or has a line over %d bytes", SYSTEM_LINE_MAX);
		if (!line[0])
			break;
		if (strncmp(line, "A ", 2) != 0 || system_arg_unescape(line + 2) < 0)
			return perr_set(e, PERR_PROTOCOL, "handoff: malformed argument line");
		if (argc >= SYSTEM_ARGS_MAX)
			return perr_set(e, PERR_USAGE, "more than %d arguments", SYSTEM_ARGS_MAX - 1);
		argv[argc++] = xstrdup(line + 2);
		*argcp = argc;
	}
	*argcp = argc;
	return 0;
}

/* Received: naming the local user, then the message until the caller's
 * end of writing, into an unlinked temporary file at offset 0. */
static int spool_message(struct system_rbuf *r, uid_t uid, const char *name, struct perr *e)
{
	char path[4096], host[256], date[64], hdr[1024];
	const char *dir = getenv("TMPDIR");
	time_t now = time(NULL);
	struct tm tm;
	long long total = 0;
	int fd, n;

	if (!dir || dir[0] != '/')
		dir = "/tmp";
	snprintf(path, sizeof path, "%s/postern-handoff-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return perr_set(e, PERR_TEMP, "the service cannot create a temporary file in %s: "
				"%s", dir, strerror(errno));
	unlink(path);
	if (gethostname(host, sizeof host - 1) < 0 || !str_is_printable(host, 0))
		str_copy(host, "localhost", sizeof host);
	host[sizeof host - 1] = '\0';
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(hdr, sizeof hdr, "Received: from local user %s (uid %u)\r\n\tby %s "
		     "with postern; %s\r\n", name, (unsigned)uid, host, date);
	if (write_full(fd, hdr, (size_t)n) < 0)
		goto io;
	for (;;) {
		size_t have = r->len - r->pos;
		total += (long long)have;
		if (total > SYSTEM_MESSAGE_MAX) {
			close(fd);
			return perr_set(e, PERR_DATA, "the message is larger than %ld MB; the "
					"service refuses it", SYSTEM_MESSAGE_MAX / (1024 * 1024));
		}
		if (have && write_full(fd, r->buf + r->pos, have) < 0)
			goto io;
		r->pos = r->len;
		int f = system_rb_fill(r);
		if (f == 0)
			break;
		if (f < 0) {
			close(fd);
			return perr_set(e, PERR_IO, "the caller's message did not arrive: %s",
					strerror(errno));
		}
	}
	if (lseek(fd, 0, SEEK_SET) == 0)
		return fd;
io:
	n = errno;
	close(fd);
	return perr_set(e, PERR_TEMP, "the service cannot keep the message in %s: %s", dir,
			strerror(n));
}

/* -f is kept only when the account's `from` (an address or a glob) allows
 * it; a local name (cronie's -f USER) and the null sender are kept as
 * they are, since delivery puts the account's address in place of the
 * first.  Anything else is dropped: the account's sender is used. */
static const char *allowed_sender(const struct config *cfg, const char *account,
				  const char *from)
{
	const struct account *a;
	struct perr e = { 0 };

	if (!from || !from[0] || !strchr(from, '@'))
		return from;
	a = config_choose(cfg, account, from, &e);
	if (a && a->from && fnmatch(a->from, from, FNM_CASEFOLD) == 0)
		return from;
	return NULL;
}

static int deliver_policed(const struct config *cfg, const struct deliver_req *req,
			   struct message *m, struct deliver_result *res, struct perr *e)
{
	struct deliver_req r = *req;

	r.account = NULL;   /* the account the configuration chooses */
	r.from = allowed_sender(cfg, NULL, req->from);
	return deliver_message(cfg, &r, m, res, e);
}

static void service_log(uid_t uid, const char *name, const char *what, const char *text)
{
	char clean[PERR_TEXT_MAX];

	log_sanitize(clean, sizeof clean, text, strlen(text));
	fprintf(stderr, "postern: system: uid %u (%s): %s%s%s\n", (unsigned)uid, name, what,
		clean[0] ? ": " : "", clean);
}

static void serve_handoff(const struct config *cfg, struct system_rbuf *r,
			  const struct ucred *cr, const char *name)
{
	struct ucred cred = *cr;
	char **argv = NULL;
	int argc = 1, mfd = -1, rc = -1;
	struct cli c;
	struct perr e = { 0 };
	struct message m = { .body_fd = -1 };
	struct deliver_result res = { 0 };

	if (read_args(r, &argv, &argc, &e) == 0 && cli_parse(&c, argc, argv, &e) == 0) {
		if (c.mode != CLI_SEND) {
			perr_set(&e, PERR_USAGE, "the postern service only takes messages to send; "
				 "run that command with a configuration of your own");
		} else if ((mfd = spool_message(r, cred.uid, name, &e)) >= 0 &&
			   message_read(&m, mfd, c.extract, &e) == 0) {
			struct deliver_req req = {
				.from = c.from ? c.from : c.extract ? NULL : name,
				.fullname = c.fullname,
				.extract = c.extract,
				.rcpts = c.rcpts,
				.nrcpts = (size_t)c.nrcpts,
				.dsn_notify = c.dsn_notify,
				.dsn_return = c.dsn_return,
				.dsn_envid = c.dsn_envid,
				.body_type = c.body_type,
				.queue_only = c.queue_only,
				.notice = peer_notice,
				.owned = 1,
				.owner = cred.uid,
			};
			if (c.from && c.from[0] && !allowed_sender(cfg, NULL, c.from))
				peer_notice("the envelope sender given with -f is not one the "
					    "system account allows; the account's address is used");
			rc = deliver_policed(cfg, &req, &m, &res, &e);
		}
	}
	if (mfd >= 0)
		close(mfd);
	message_free(&m);
	for (int i = 0; argv && i < argc; i++)
		free(argv[i]);
	free(argv);
	if (rc < 0) {
		service_log(cred.uid, name, "failed", e.text);
		peer_line('R', (int)(e.kind == PERR_NONE ? PERR_SOFTWARE : e.kind), e.text);
	} else if (res.outcome == DELIVER_QUEUED) {
		char line[PERR_TEXT_MAX + 64];
		snprintf(line, sizeof line, "queued %s: %s", res.queue_id, res.reason);
		service_log(cred.uid, name, "queued", line);
		peer_line('R', 0, line);
	} else {
		service_log(cred.uid, name, "delivered", "");
		peer_line('R', 0, "delivered");
	}
}

/* mailq through the service: root and the service's own user see the
 * whole queue, anyone else only the messages they handed over.  The
 * listing goes to an unlinked temporary file first, then to the peer as
 * "L <line>" lines. */
static void serve_mailq(const struct ucred *cred, const char *name)
{
	struct perr e = { 0 };
	FILE *f = tmpfile();
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc;

	if (!f) {
		perr_set(&e, PERR_TEMP, "the service cannot create a temporary file: %s",
			 strerror(errno));
		peer_line('R', (int)e.kind, e.text);
		return;
	}
	if (cred->uid == 0 || cred->uid == geteuid())
		rc = mailq_list(f, &e);
	else
		rc = mailq_list_of(f, cred->uid, &e);
	rewind(f);
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		if (write_full(peer_fd, "L ", 2) < 0 || write_full(peer_fd, line, (size_t)n) < 0)
			break;
	}
	free(line);
	fclose(f);
	service_log(cred->uid, name, "listed the queue", rc < 0 ? e.text : "");
	peer_line('R', rc < 0 ? (int)e.kind : 0, rc < 0 ? e.text : "listed");
}

/* postern -q through the service: root (or the service's own user) only;
 * every queued message is tried now, holds lifted. */
static void serve_flush(const struct config *cfg, const struct ucred *cred, const char *name)
{
	struct perr e = { 0 };
	int rc;

	if (cred->uid != 0 && cred->uid != geteuid()) {
		perr_set(&e, PERR_AUTH, "only root runs the system queue; your own messages are "
			 "retried by the service");
		service_log(cred->uid, name, "refused a queue run", "");
		peer_line('R', (int)e.kind, e.text);
		return;
	}
	rc = deliver_flush(cfg, 0, peer_notice, &e);
	service_log(cred->uid, name, "ran the queue", rc < 0 ? e.text : "");
	peer_line('R', rc < 0 ? (int)e.kind : 0, rc < 0 ? e.text : "the queue was run");
}

/* One connection on the UNIX socket: who is calling, and what for. */
static void serve_unix(const struct config *cfg, int fd)
{
	static struct system_rbuf r;   /* 8 KB: not on the stack */
	struct ucred cred;
	socklen_t cl = sizeof cred;
	struct passwd *pw;
	char name[64], first[64] = "";
	struct perr e = { 0 };

	memset(&r, 0, sizeof r);
	r.fd = fd;
	r.deadline = mono_ms() + SYSTEM_TOTAL_S * 1000LL;
	r.idle_ms = peer_timeout_s() * 1000LL;
	peer_fd = fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		perr_set(&e, PERR_OS, "cannot learn the caller's uid: %s", strerror(errno));
		peer_line('R', (int)e.kind, e.text);
		return;
	}
	pw = getpwuid(cred.uid);
	if (pw && str_is_printable(pw->pw_name, 0) && !strpbrk(pw->pw_name, " ()"))
		str_copy(name, pw->pw_name, sizeof name);
	else
		snprintf(name, sizeof name, "uid%u", (unsigned)cred.uid);
	if (system_rb_line(&r, first, sizeof first) != 1)
		first[0] = '\0';
	if (strcmp(first, SYSTEM_MAGIC_HANDOFF) == 0) {
		serve_handoff(cfg, &r, &cred, name);
		return;
	}
	if (strcmp(first, SYSTEM_MAGIC_MAILQ) == 0) {
		serve_mailq(&cred, name);
		return;
	}
	if (strcmp(first, SYSTEM_MAGIC_FLUSH) == 0) {
		serve_flush(cfg, &cred, name);
		return;
	}
	perr_set(&e, PERR_PROTOCOL, "not a postern request (the first line is not %s)",
		 SYSTEM_MAGIC_HANDOFF);
	service_log(cred.uid, name, "refused", e.text);
	peer_line('R', (int)e.kind, e.text);
}

/* ---- the service: connections ---------------------------------------------- */

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* End our side after a refusal so that the reply is not lost to a reset:
 * FIN first, then what the peer still sends is read and dropped for a
 * second at most (64 KB at most). */
static void linger_close(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	int64_t end = mono_ms() + 1000;
	char sink[4096];
	size_t got = 0;

	shutdown(fd, SHUT_WR);
	while (got < 65536 && mono_ms() < end && poll(&pf, 1, (int)(end - mono_ms())) > 0) {
		ssize_t n = read(fd, sink, sizeof sink);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
}

/* "[127.0.0.1]:40312", "[::1]:40312"; "unknown" when there is none. */
static void peer_text(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "";
	unsigned port = 0;

	if (len > 0 && ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
		port = ntohs(s4->sin_port);
	} else if (len > 0 && ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
	}
	if (ip[0])
		snprintf(buf, cap, "[%s]:%u", ip, port);
	else
		str_copy(buf, "unknown", cap);
}

static void serve_smtp(const struct config *cfg, int fd, void (*notice)(const char *))
{
	struct sockaddr_storage peer = { 0 };
	socklen_t pl = sizeof peer;
	struct perr e = { 0 };
	struct smtpstdio_opts o = {
		.in_fd = fd,
		.out_fd = fd,
		.timeout_s = peer_timeout_s(),
		.base = { .notice = notice },
		.deliver = deliver_policed,
	};
	static const char refuse[] = "554 5.7.1 postern serves loopback clients only\r\n";
	char addr[INET6_ADDRSTRLEN + 16];

	if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 || !is_loopback(&peer)) {
		if (write_full(fd, refuse, sizeof refuse - 1) < 0)
			e.kind = PERR_IO;
		linger_close(fd);
		peer_text(&peer, pl, addr, sizeof addr);
		fprintf(stderr, "postern: system: refused a connection from %s: not a loopback "
			"peer\n", addr);
		return;
	}
	peer_text(&peer, pl, addr, sizeof addr);
	o.received_from = addr;
	fprintf(stderr, "postern: system: SMTP connection from %s\n", addr);
	if (smtpstdio_run(cfg, &o, &e) < 0)
		fprintf(stderr, "postern: system: SMTP session: %s\n", e.text);
}

/* One connection, whatever kind of socket it came on. */
static void serve_conn(const struct config *cfg, int fd, void (*notice)(const char *))
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof me;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) == 0 && me.ss_family == AF_UNIX)
		serve_unix(cfg, fd);
	else
		serve_smtp(cfg, fd, notice);
}

static volatile sig_atomic_t children;

static void on_sigchld(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		children--;
	errno = saved;
}

static int listen_on(const char *where, struct perr *e)
{
	int fd;

	if (where[0] == '/') {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		struct stat st;

		if (strlen(where) >= sizeof sun.sun_path)
			return perr_set(e, PERR_USAGE, "--listen %s: the path is too long", where);
		str_copy(sun.sun_path, where, sizeof sun.sun_path);
		if (lstat(where, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(where);   /* a previous service's */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
		    chmod(where, 0666) < 0 || listen(fd, 128) < 0)
			goto fail;
		return fd;
	}
	const char *colon = strrchr(where, ':');
	char host[64];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;

	if (!colon || (size_t)(colon - where) >= sizeof host || *end || port <= 0 || port > 65535)
		return perr_set(e, PERR_USAGE, "--listen %s: give a socket path or "
				"127.0.0.1:PORT", where);
	memcpy(host, where, (size_t)(colon - where));
	host[colon - where] = '\0';
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 ||
	    (ntohl(sin.sin_addr.s_addr) >> 24) != 127)
		return perr_set(e, PERR_USAGE, "--listen %s: the SMTP listener serves loopback "
				"only; give 127.0.0.1:PORT", where);
	sin.sin_port = htons((unsigned short)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:
	perr_set(e, PERR_OS, "--listen %s: %s", where, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int listen_loop(const struct config *cfg, int lfd, void (*notice)(const char *))
{
	struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_NOCLDSTOP };
	sigset_t chld, old;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		sigprocmask(SIG_BLOCK, &chld, &old);
		while (children >= SYSTEM_CHILDREN_MAX)
			sigsuspend(&old);
		sigprocmask(SIG_SETMASK, &old, NULL);
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				continue;
			fprintf(stderr, "postern: system: accept: %s\n", strerror(errno));
			return -1;
		}
		sigprocmask(SIG_BLOCK, &chld, &old);
		pid_t pid = fork();
		if (pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			signal(SIGCHLD, SIG_DFL);
			close(lfd);
			serve_conn(cfg, cfd, notice);
			close(cfd);
			_exit(0);
		}
		if (pid > 0)
			children++;
		else
			fprintf(stderr, "postern: system: fork: %s\n", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(cfd);
	}
}

int system_serve(const struct cli *c, void (*notice)(const char *line), struct perr *e)
{
	struct config cfg = { 0 };
	const char *qdir = getenv("POSTERN_QUEUE_DIR");
	int rc = 0;

	/* The service's own queue: never the personal spool of its user, nor
	 * root's /var/spool/postern (mode 0700: the service could not reach
	 * a directory inside it). */
	if (!qdir || !qdir[0])
		setenv("POSTERN_QUEUE_DIR", SYSTEM_QUEUE_DIR, 1);
	int lfd = c->listen ? listen_on(c->listen, e) : -1;

	if (c->listen && lfd < 0)
		return -1;
	if (config_load_system(&cfg, c->config_file ? c->config_file : SYSTEM_CONFIG_PATH,
			       e) < 0) {
		if (lfd >= 0)
			close(lfd);
		if (!c->listen) {   /* tell the one peer why */
			struct sockaddr_storage me;
			socklen_t ml = sizeof me;
			peer_fd = STDOUT_FILENO;
			if (getsockname(STDIN_FILENO, (struct sockaddr *)&me, &ml) == 0 &&
			    me.ss_family == AF_UNIX)
				peer_line('R', (int)e->kind, e->text);
		}
		return -1;
	}
	if (c->listen) {
		rc = listen_loop(&cfg, lfd, notice);
		close(lfd);
		if (rc < 0)
			perr_set(e, PERR_OS, "the service stopped accepting connections");
	} else {
		struct stat st;
		if (fstat(STDIN_FILENO, &st) < 0 || !S_ISSOCK(st.st_mode))
			rc = perr_set(e, PERR_USAGE, "postern --system serves a socket: run it from "
				      "postern.socket (Accept=yes) or with --listen PATH");
		else
			serve_conn(&cfg, STDIN_FILENO, notice);
	}
	config_free(&cfg);
	return rc;
}
