/* probe.c — postern --probe: what a mail administrator would find out with
 * telnet, openssl s_client and swaks, in one report.
 *
 * Owns: the list of ports to try, one forked child per port (results in a
 * MAP_SHARED array, so the whole probe takes about one timeout however
 * many ports drop packets), the small SMTP dialogue each child runs
 * (greeting, EHLO, STARTTLS, EHLO), the credential check (smtp_open, which
 * stops after AUTH, then QUIT), the recommendation, and the report as
 * text or JSON.
 */
#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "probe.h"
#include "reply.h"
#include "oauth2.h"
#include "secret.h"
#include "smtp.h"
#include "submit.h"
#include "tls.h"
#include "util.h"

/* The standard submission ports, then the account's own. */
static const unsigned std_ports[] = { 587, 465, 2525, 25 };
#define NSTD (sizeof std_ports / sizeof std_ports[0])
#define PROBE_MAX (NSTD + CFG_PORTS_MAX)
/* EHLO keywords kept for the report (a real server sends ~15 short ones). */
#define CAPS_MAX 1024
#define MECHS_MAX 256
#define GREETING_MAX 512

enum port_status {
	PS_NOT_RUN = 0,
	PS_OK,          /* greeting, EHLO and (if offered) TLS went through */
	PS_REFUSED,     /* nothing listens */
	PS_TIMEOUT,     /* no TCP answer, or no greeting: likely a filter */
	PS_UNREACHABLE, /* no route, name does not resolve */
	PS_ERROR,       /* connected, then something failed (error says what) */
};

static const char *const status_names[] = {
	[PS_NOT_RUN] = "not probed", [PS_OK] = "ok", [PS_REFUSED] = "refused",
	[PS_TIMEOUT] = "timed out", [PS_UNREACHABLE] = "unreachable", [PS_ERROR] = "error",
};

/* One port's findings; lives in shared memory, written by its child. */
struct port_result {
	unsigned port;
	enum tls_mode mode;        /* TLS_IMPLICIT, or TLS_STARTTLS (plain first) */
	int configured;            /* one of the account's ports */
	enum port_status status;
	int reachable;             /* the TCP connection was made */
	long connect_ms;
	char error[PERR_TEXT_MAX]; /* "" when status is PS_OK */
	enum perr_kind err_kind;
	char greeting[GREETING_MAX];
	int starttls_offered;
	int tls_ok;                /* a TLS session was established */
	struct tls_peer_info tls;
	char caps[CAPS_MAX];       /* EHLO keywords (AUTH aside), "\n"-separated */
	char mechs[MECHS_MAX];     /* AUTH mechanisms as offered, space-separated */
	struct smtp_caps c;
	int usable;                /* postern could submit here (set by the parent) */
};

struct cred_result {
	int needed;     /* the account authenticates */
	int checked;    /* an AUTH was tried */
	int accepted;
	unsigned port;
	char text[PERR_TEXT_MAX]; /* why not accepted or not checked */
	enum perr_kind kind;
};

struct probe {
	const struct account *a;
	const char *helo;
	struct port_result *res; /* shared mapping, n entries */
	size_t n;
	struct cred_result cred;
	int used;                /* index of the port submit would use, -1 none */
	int best;                /* recommended port, -1 none */
	int works;
};

/* ---- one port (runs in a child) ----------------------------------------- */

/* Start a step: the conn's own per-step deadline, but never past end. */
static void arm(struct conn *c, int64_t end)
{
	conn_arm(c);
	if (c->deadline > end)
		c->deadline = end;
}

static int get_reply(struct conn *c, struct reply *r, int64_t end, struct perr *e)
{
	char line[REPLY_LINE_MAX];
	size_t len;
	int rc;

	arm(c, end);
	reply_init(r);
	do {
		if (conn_read_line(c, line, sizeof line, &len, e) < 0)
			return -1;
		log_wire('S', line, len);
		rc = reply_feed(r, line, len, e);
		if (rc < 0)
			return -1;
	} while (rc == 0);
	return 0;
}

static int command(struct conn *c, const char *text, struct reply *r, int64_t end,
		   struct perr *e)
{
	log_wire('C', text, strlen(text));
	if (conn_printf(c, e, "%s\r\n", text) < 0)
		return -1;
	arm(c, end);
	if (conn_flush(c, e) < 0)
		return -1;
	return get_reply(c, r, end, e);
}

/* "250 2.0.0 text" of a reply, one line. */
static void reply_text(const struct reply *r, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%d%s%s ", r->code, r->enhanced[0] ? " " : "", r->enhanced);

	if (n > 0 && (size_t)n < cap)
		reply_oneline(r, buf + n, cap - (size_t)n);
	n = (int)strlen(buf);
	if (n > 0 && buf[n - 1] == ' ')
		buf[n - 1] = '\0';
}

/* Keep the EHLO keywords: AUTH's mechanisms apart, the rest one a line. */
static void record_ehlo(struct port_result *p, const struct reply *r)
{
	char line[REPLY_LINE_MAX];
	size_t o = 0;

	smtp_parse_ehlo(r, &p->c);
	p->caps[0] = p->mechs[0] = '\0';
	for (unsigned i = 1; reply_line(r, i, line, sizeof line) >= 0; i++) {
		const char *kw = line + strspn(line, " ");

		if (strncasecmp(kw, "AUTH", 4) == 0 && (kw[4] == ' ' || kw[4] == '=')) {
			if (!p->mechs[0])
				str_copy(p->mechs, kw + 5 + strspn(kw + 5, " "), sizeof p->mechs);
			continue;
		}
		if (!*kw || o + strlen(kw) + 2 > sizeof p->caps)
			continue;
		o += (size_t)snprintf(p->caps + o, sizeof p->caps - o, "%s%s", o ? "\n" : "", kw);
	}
}

static int fail(struct port_result *p, const struct perr *e)
{
	p->status = PS_ERROR;
	p->err_kind = e->kind;
	str_copy(p->error, e->text, sizeof p->error);
	return -1;
}

static int do_tls(struct port_result *p, struct conn *c, const struct tls_opts *o, int64_t end,
		  struct perr *e)
{
	arm(c, end);
	if (tls_start_probe(c, o, &p->tls, e) < 0)
		return fail(p, e);
	p->tls_ok = 1;
	return 0;
}

/* A reply other than the one wanted: "WHAT: 554 text" as the error. */
static int refused(struct port_result *p, const struct reply *r, enum perr_kind kind,
		   const char *what, struct perr *e)
{
	char text[GREETING_MAX];

	reply_text(r, text, sizeof text);
	perr_set(e, kind, "%s: %s", what, text);
	return fail(p, e);
}

static int greeting(struct port_result *p, struct conn *c, int64_t end, struct perr *e)
{
	struct reply r;

	if (get_reply(c, &r, end, e) < 0) {
		if (e->kind != PERR_TEMP || !strstr(e->text, "timed out"))
			return fail(p, e);
		p->status = PS_TIMEOUT;
		snprintf(p->error, sizeof p->error, "connected, but no greeting within %d s: "
			 "a TLS-only port (try tls = implicit) or a filter",
			 (c->timeout_ms + 999) / 1000);
		return -1;
	}
	reply_text(&r, p->greeting, sizeof p->greeting);
	if (r.code != 220)
		return refused(p, &r, PERR_UNAVAILABLE, "the server refused the session", e);
	return 0;
}

static int ehlo(struct port_result *p, struct conn *c, const char *helo, int64_t end,
		struct perr *e)
{
	char line[300];
	struct reply r;

	snprintf(line, sizeof line, "EHLO %s", helo);
	if (command(c, line, &r, end, e) < 0)
		return fail(p, e);
	if (r.code != 250)
		return refused(p, &r, PERR_UNAVAILABLE, "EHLO refused", e);
	record_ehlo(p, &r);
	return 0;
}

/* Greeting, EHLO, STARTTLS and EHLO again (or TLS first on implicit). */
static int session(struct port_result *p, struct conn *c, const struct tls_opts *o,
		   const char *helo, int64_t end, struct perr *e)
{
	struct reply r;

	if (p->mode == TLS_IMPLICIT && do_tls(p, c, o, end, e) < 0)
		return -1;
	if (greeting(p, c, end, e) < 0 || ehlo(p, c, helo, end, e) < 0)
		return -1;
	p->starttls_offered = (p->c.flags & SMTP_CAP_STARTTLS) != 0;
	if (p->mode == TLS_IMPLICIT || !p->starttls_offered)
		return 0;
	if (command(c, "STARTTLS", &r, end, e) < 0)
		return fail(p, e);
	if (r.code != 220)
		return refused(p, &r, PERR_TEMP, "STARTTLS refused", e);
	if (do_tls(p, c, o, end, e) < 0)
		return -1;
	return ehlo(p, c, helo, end, e);
}

static void classify_connect(struct port_result *p, const struct perr *e)
{
	str_copy(p->error, e->text, sizeof p->error);
	p->err_kind = e->kind;
	if (strstr(e->text, "refused"))
		p->status = PS_REFUSED;
	else if (strstr(e->text, "timed out"))
		p->status = PS_TIMEOUT;
	else
		p->status = PS_UNREACHABLE;
}

static void probe_port(struct port_result *p, const struct account *a, const char *helo)
{
	struct tls_opts o = submit_tls_opts(a);
	int64_t t0 = mono_ms(), end;
	struct perr e = { 0 };
	struct reply r;
	struct conn c;

	conn_init(&c, a->timeout);
	if (conn_connect(&c, a->host, p->port, &e) < 0) {
		classify_connect(p, &e);
		conn_close(&c);
		return;
	}
	p->reachable = 1;
	p->connect_ms = (long)(mono_ms() - t0);
	/* However slow each step, a port never takes more than one timeout
	 * after its connection was made. */
	end = mono_ms() + (int64_t)a->timeout * 1000;
	if (session(p, &c, &o, helo, end, &e) == 0) {
		p->status = PS_OK;
		if (command(&c, "QUIT", &r, mono_ms() + 1000 < end ? mono_ms() + 1000 : end, &e) < 0)
			perr_clear(&e); /* the answer to QUIT does not matter */
	}
	conn_close(&c);
}

/* ---- running the children ----------------------------------------------- */

static void add_port(struct probe *pr, unsigned port, enum tls_mode mode, int configured)
{
	for (size_t i = 0; i < pr->n; i++) {
		if (pr->res[i].port == port) {
			if (configured && !pr->res[i].configured) {
				pr->res[i].configured = 1;
				pr->res[i].mode = mode;
			}
			return;
		}
	}
	if (pr->n >= PROBE_MAX)
		return;
	pr->res[pr->n].port = port;
	pr->res[pr->n].mode = mode;
	pr->res[pr->n].configured = configured;
	pr->n++;
}

static void list_ports(struct probe *pr)
{
	const struct account *a = pr->a;

	for (int i = 0; i < a->nports; i++) {
		enum tls_mode m = config_port_tls(a, a->ports[i]);

		add_port(pr, a->ports[i], m == TLS_IMPLICIT ? TLS_IMPLICIT : TLS_STARTTLS, 1);
	}
	for (size_t i = 0; i < NSTD; i++)
		add_port(pr, std_ports[i], std_ports[i] == 465 ? TLS_IMPLICIT : TLS_STARTTLS, 0);
}

/* Wait for every child; past the hard limit, kill the stragglers. */
static void reap(struct probe *pr, pid_t *pids, int64_t limit)
{
	size_t left = 0;

	for (size_t i = 0; i < pr->n; i++)
		left += pids[i] > 0;
	while (left > 0) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		pid_t w = waitpid(-1, NULL, WNOHANG);

		for (size_t i = 0; w > 0 && i < pr->n; i++)
			if (pids[i] == w) {
				pids[i] = 0;
				left--;
			}
		if (w > 0)
			continue;
		if (w < 0 && errno != EINTR)
			break;
		if (mono_ms() < limit) {
			nanosleep(&ts, NULL);
			continue;
		}
		for (size_t i = 0; i < pr->n; i++) {
			if (pids[i] <= 0)
				continue;
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
			pids[i] = 0;
			left--;
			pr->res[i].status = PS_TIMEOUT;
			snprintf(pr->res[i].error, sizeof pr->res[i].error,
				 "no result within %d s", pr->a->timeout * 2);
		}
	}
}

static int run_children(struct probe *pr, struct perr *e)
{
	pid_t pids[PROBE_MAX] = { 0 };
	/* A child spends at most one timeout connecting (all addresses
	 * together) and one on the session; two timeouts and a little more is
	 * the most any child may take. */
	int64_t limit = mono_ms() + (int64_t)pr->a->timeout * 2000 + 3000;

	fflush(NULL);
	for (size_t i = 0; i < pr->n; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			probe_port(&pr->res[i], pr->a, pr->helo);
			_exit(0);
		}
		if (pids[i] < 0) {
			int err = errno;

			reap(pr, pids, 0);
			return perr_set(e, PERR_OS, "cannot start the probe: fork: %s", strerror(err));
		}
	}
	reap(pr, pids, limit);
	return 0;
}

/* ---- judging ------------------------------------------------------------ */

/* Could postern submit on this port, as the account is configured? */
static int port_usable(const struct port_result *p, const struct account *a)
{
	unsigned mine = SMTP_MECH_PLAIN | SMTP_MECH_LOGIN | SMTP_MECH_XOAUTH2 |
			SMTP_MECH_OAUTHBEARER | SMTP_MECH_EXTERNAL;

	if (p->status != PS_OK)
		return 0;
	if (!p->tls_ok || !p->tls.verified)
		return p->configured && a->tls_explicit && a->tls == TLS_OFF && !secret_needed(a);
	if (secret_needed(a) && !(p->c.mechs & mine))
		return 0;
	return 1;
}

/* The account's port that submit would use: the first that connects. */
static int used_port(const struct probe *pr)
{
	for (int k = 0; k < pr->a->nports; k++)
		for (size_t i = 0; i < pr->n; i++)
			if (pr->res[i].port == pr->a->ports[k] && pr->res[i].reachable)
				return (int)i;
	return -1;
}

static int best_port(const struct probe *pr)
{
	static const unsigned pref[] = { 465, 587, 2525, 25 };

	if (pr->used >= 0 && pr->res[pr->used].usable)
		return pr->used;
	for (size_t i = 0; i < pr->n; i++)
		if (pr->res[i].configured && pr->res[i].usable)
			return (int)i;
	for (size_t k = 0; k < sizeof pref / sizeof pref[0]; k++)
		for (size_t i = 0; i < pr->n; i++)
			if (pr->res[i].port == pref[k] && pr->res[i].usable)
				return (int)i;
	return -1;
}

static void fill_params(struct smtp_params *sp, const struct account *a, const struct secret *s,
			const struct port_result *p, const char *helo)
{
	memset(sp, 0, sizeof *sp);
	sp->host = a->host;
	sp->port = p->port;
	sp->tls = p->configured ? config_port_tls(a, p->port) : p->mode;
	sp->tls_opts = submit_tls_opts(a);
	sp->helo = helo;
	sp->timeout_s = a->timeout;
	sp->auth = a->auth;
	sp->user = a->user;
	sp->secret = s->value;
	sp->secret_len = s->len;
}

/* AUTH with the account's secret on port index i; no mail is sent. */
static void check_credentials(struct probe *pr, int i)
{
	struct cred_result *cr = &pr->cred;
	struct secret sec = { 0 };
	struct smtp_params sp;
	struct smtp s;
	struct perr e = { 0 };

	cr->port = pr->res[i].port;
	if (secret_resolve(pr->a, &sec, &e) < 0) {
		cr->kind = e.kind;
		perr_prefix(&e, "not checked");
		str_copy(cr->text, e.text, sizeof cr->text);
		return;
	}
	fill_params(&sp, pr->a, &sec, &pr->res[i], pr->helo);
	cr->checked = 1;
	int rc = smtp_open(&s, &sp, &e);
	/* As a delivery does: an OAuth2 token refused early is replaced once. */
	if (rc < 0 && e.token_refused && pr->a->oauth2) {
		smtp_close(&s);
		if ((rc = oauth2_renew(pr->a, &sec, &e)) == 0) {
			fill_params(&sp, pr->a, &sec, &pr->res[i], pr->helo);
			rc = smtp_open(&s, &sp, &e);
		}
	}
	if (rc == 0) {
		cr->accepted = 1;
		smtp_quit(&s);
	} else {
		cr->kind = e.kind;
		if (e.kind == PERR_AUTH && pr->a->oauth2)
			perr_append(&e, "; run postern --authorize=%s if the token endpoint keeps "
				    "refusing, or check the app's mail permission", pr->a->name);
		else if (e.kind == PERR_AUTH)
			perr_append(&e, "; check the password for account %s; Gmail and Outlook "
				    "need an app password or OAuth2 (auth = xoauth2)", pr->a->name);
		str_copy(cr->text, e.text, sizeof cr->text);
	}
	secret_free(&sec);
}

static void judge(struct probe *pr)
{
	for (size_t i = 0; i < pr->n; i++)
		pr->res[i].usable = port_usable(&pr->res[i], pr->a);
	pr->used = used_port(pr);
	pr->best = best_port(pr);
	pr->cred.needed = secret_needed(pr->a);
	if (pr->cred.needed) {
		int i = pr->used >= 0 && pr->res[pr->used].usable ? pr->used : pr->best;

		if (i >= 0)
			check_credentials(pr, i);
		else
			str_copy(pr->cred.text, "not checked: no port could be used",
				 sizeof pr->cred.text);
	}
	pr->works = pr->used >= 0 && pr->res[pr->used].usable &&
		    (!pr->cred.needed || (pr->cred.accepted && pr->cred.port == pr->res[pr->used].port));
}

/* ---- the recommendation and the error line ------------------------------ */

static const char *mode_name(enum tls_mode m)
{
	return config_tls_name(m);
}

static void recommendation(const struct probe *pr, char *buf, size_t cap)
{
	const struct port_result *b = pr->best >= 0 ? &pr->res[pr->best] : NULL;
	int all_timeout = 1;

	for (size_t i = 0; i < pr->n; i++)
		all_timeout &= pr->res[i].status == PS_TIMEOUT;
	if (pr->works)
		snprintf(buf, cap, "the configuration works: port = %u, tls = %s", b->port,
			 mode_name(config_port_tls(pr->a, b->port)));
	else if (b && pr->cred.needed && pr->cred.checked && !pr->cred.accepted)
		snprintf(buf, cap, "port = %u, tls = %s reaches the server, but the credentials "
			 "were refused: fix user or the password first", b->port, mode_name(b->mode));
	else if (b)
		snprintf(buf, cap, "set port = %u and tls = %s in ~/.smtprc", b->port,
			 mode_name(b->mode));
	else if (all_timeout)
		snprintf(buf, cap, "every port timed out: this network blocks outgoing mail "
			 "(try another network, or ask its administrator), or host = %s is wrong",
			 pr->a->host);
	else
		snprintf(buf, cap, "no port works for account %s: see each port's error above",
			 pr->a->name);
}

static int probe_error(const struct probe *pr, const char *advice, struct perr *e)
{
	const struct port_result *u = pr->used >= 0 ? &pr->res[pr->used] : NULL;

	if (u && u->usable && pr->cred.needed && !pr->cred.accepted)
		return perr_set(e, pr->cred.kind ? pr->cred.kind : PERR_AUTH, "%s", pr->cred.text);
	if (u && u->status != PS_OK)
		return perr_set(e, u->err_kind ? u->err_kind : PERR_TEMP, "port %u: %s; %s",
				u->port, u->error, advice);
	if (u && u->tls_ok && !u->tls.verified)
		return perr_set(e, PERR_TEMP, "%s", u->tls.verify_error);
	if (u && !u->tls_ok && !(u->mode == TLS_STARTTLS && u->starttls_offered))
		return perr_set(e, PERR_TEMP, "port %u offers no STARTTLS; %s", u->port, advice);
	if (u)
		return perr_set(e, PERR_UNAVAILABLE, "port %u cannot be used (no AUTH mechanism "
				"postern knows: %s); %s", u->port, u->mechs[0] ? u->mechs : "none",
				advice);
	return perr_set(e, PERR_TEMP, "account %s: no configured port answers; %s", pr->a->name,
			advice);
}

/* ---- the report: text --------------------------------------------------- */

struct style {
	const char *ok, *bad, *warn, *dim, *off;
};

static void label(FILE *out, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void label(FILE *out, const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(out, "    %-14s", name);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

static void text_tls(FILE *out, const struct port_result *p, const struct style *st,
		     const char *host)
{
	const struct tls_peer_info *t = &p->tls;

	label(out, "TLS", "%s %s", t->version, t->cipher);
	label(out, "certificate", "%s", t->subject[0] ? t->subject : "(no subject)");
	label(out, "issuer", "%s", t->issuer);
	label(out, "expires", "%s%s (%ld days %s)%s", t->days_left < 14 ? st->warn : "",
	      t->not_after, t->days_left < 0 ? -t->days_left : t->days_left,
	      t->days_left < 0 ? "ago" : "left", t->days_left < 14 ? st->off : "");
	label(out, "names", "%s %s(%s %s)%s", t->names, t->host_match ? st->ok : st->bad,
	      t->host_match ? "matches" : "does not match", host, st->off);
	if (t->verified)
		label(out, "verified", "%syes%s", st->ok, st->off);
	else
		label(out, "verified", "%sno%s: %s", st->bad, st->off, t->verify_error);
}

/* What a failed connection means, after the status word. */
static void connect_note(const struct port_result *p, int timeout, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (p->status == PS_REFUSED)
		snprintf(buf, cap, "nothing listens there");
	else if (p->status == PS_TIMEOUT && !p->reachable)
		snprintf(buf, cap, "no answer within %d s: the network may block port %u", timeout,
			 p->port);
	else if (p->status == PS_UNREACHABLE && cap > 1)
		str_copy(buf, p->error, cap);
}

static void text_port(FILE *out, const struct probe *pr, const struct port_result *p,
		      const struct style *st)
{
	const char *col = p->status == PS_OK ? (p->usable ? st->ok : st->warn) : st->bad;
	char line[CAPS_MAX * 2], note[PERR_TEXT_MAX];
	size_t o = 0;

	connect_note(p, pr->a->timeout, note, sizeof note);
	fprintf(out, "port %-6u %-9s %s%s%s", p->port, mode_name(p->mode), col,
		status_names[p->status], st->off);
	fprintf(out, "%*s", 11 - (int)strlen(status_names[p->status]), "");
	if (p->reachable)
		fprintf(out, "connected in %ld ms", p->connect_ms);
	fprintf(out, "%s%s\n", note, p->configured ? " [configured]" : "");
	if (p->error[0] && p->reachable)
		label(out, "error", "%s%s%s", st->bad, p->error, st->off);
	if (p->greeting[0])
		label(out, "greeting", "%s", p->greeting);
	if (p->tls_ok)
		text_tls(out, p, st, pr->a->host);
	else if (p->status == PS_OK)
		label(out, "TLS", "%snone%s%s", st->bad, st->off,
		      p->mode == TLS_STARTTLS && !p->starttls_offered ? " (STARTTLS not offered)" : "");
	for (const char *c = p->caps; *c && o + 3 < sizeof line; c++) {
		if (*c == '\n') {
			line[o++] = ',';
			line[o++] = ' ';
		} else {
			line[o++] = *c;
		}
	}
	line[o] = '\0';
	if (line[0])
		label(out, "capabilities", "%s", line);
	if (p->status == PS_OK)
		label(out, "AUTH", "%s", p->mechs[0] ? p->mechs : "(none offered)");
}

static void report_text(const struct probe *pr, const struct config *cfg, FILE *out)
{
	static const struct style plain = { "", "", "", "", "" };
	static const struct style colour = { "\033[32m", "\033[31m", "\033[33m", "\033[2m",
					     "\033[0m" };
	const char *term = getenv("TERM");
	const struct style *st = isatty(fileno(out)) && !getenv("NO_COLOR") &&
				 !(term && strcmp(term, "dumb") == 0) ? &colour : &plain;
	const struct account *a = pr->a;
	char rec[PERR_TEXT_MAX];

	fprintf(out, "postern --probe: account %s, server %s (%s)\n", a->name, a->host,
		cfg && cfg->path ? cfg->path : "");
	fprintf(out, "configured: port %u, tls = %s, auth = %s%s%s\n\n", a->nports ? a->ports[0] : 0,
		mode_name(a->nports ? config_port_tls(a, a->ports[0]) : a->tls),
		config_auth_name(a->auth), a->user ? ", user " : "", a->user ? a->user : "");
	for (size_t i = 0; i < pr->n; i++)
		text_port(out, pr, &pr->res[i], st);
	fputc('\n', out);
	if (!pr->cred.needed)
		fprintf(out, "%-18s%s\n", "credentials", "none configured (no AUTH)");
	else if (pr->cred.accepted)
		fprintf(out, "%-18s%saccepted%s (user %s, port %u; no mail sent)\n", "credentials",
			st->ok, st->off, a->user ? a->user : "", pr->cred.port);
	else
		fprintf(out, "%-18s%s%s%s\n", "credentials", st->bad,
			pr->cred.text[0] ? pr->cred.text : "not checked", st->off);
	recommendation(pr, rec, sizeof rec);
	fprintf(out, "%-18s%s%s%s\n", "recommendation", pr->works ? st->ok : st->warn, rec, st->off);
}

/* ---- the report: JSON --------------------------------------------------- */

static void jstr(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* "key": "value" or null when empty. */
static void jkv(FILE *out, const char *key, const char *val, int comma)
{
	jstr(out, key);
	fputs(": ", out);
	if (val && *val)
		jstr(out, val);
	else
		fputs("null", out);
	if (comma)
		fputs(", ", out);
}

/* A list split on sep as a JSON array (items trimmed of leading blanks). */
static void jlist(FILE *out, const char *key, const char *list, char sep)
{
	const char seps[2] = { sep, '\0' };
	char item[REPLY_LINE_MAX];
	const char *p = list;
	int first = 1;

	jstr(out, key);
	fputs(": [", out);
	while (p && *p) {
		size_t n;

		p += strspn(p, " ");
		n = strcspn(p, seps);
		if (n) {
			str_copy(item, p, n + 1 < sizeof item ? n + 1 : sizeof item);
			fputs(first ? "" : ", ", out);
			jstr(out, item);
			first = 0;
		}
		p += n + (p[n] ? 1 : 0);
	}
	fputs("]", out);
}

static void json_tls(FILE *out, const struct port_result *p)
{
	const struct tls_peer_info *t = &p->tls;

	if (!p->tls_ok) {
		fputs("\"tls\": null, ", out);
		return;
	}
	fputs("\"tls\": {", out);
	jkv(out, "version", t->version, 1);
	jkv(out, "cipher", t->cipher, 1);
	jkv(out, "subject", t->subject, 1);
	jkv(out, "issuer", t->issuer, 1);
	jlist(out, "names", t->names, ',');
	fputs(", ", out);
	jkv(out, "not_after", t->not_after, 1);
	fprintf(out, "\"days_left\": %ld, \"host_match\": %s, \"verified\": %s, ", t->days_left,
		t->host_match ? "true" : "false", t->verified ? "true" : "false");
	jkv(out, "verify_error", t->verify_error, 1);
	jkv(out, "fingerprint", t->fingerprint, 0);
	fputs("}, ", out);
}

static void json_port(FILE *out, const struct port_result *p)
{
	fprintf(out, "    {\"port\": %u, \"mode\": ", p->port);
	jstr(out, mode_name(p->mode));
	fprintf(out, ", \"configured\": %s, \"status\": ", p->configured ? "true" : "false");
	jstr(out, status_names[p->status]);
	fprintf(out, ", \"reachable\": %s, \"connect_ms\": ", p->reachable ? "true" : "false");
	if (p->reachable)
		fprintf(out, "%ld, ", p->connect_ms);
	else
		fputs("null, ", out);
	jkv(out, "error", p->error, 1);
	jkv(out, "greeting", p->greeting, 1);
	fprintf(out, "\"starttls_offered\": %s, ", p->starttls_offered ? "true" : "false");
	json_tls(out, p);
	jlist(out, "capabilities", p->caps, '\n');
	fputs(", ", out);
	jlist(out, "auth_mechanisms", p->mechs, ' ');
	if (p->c.flags & SMTP_CAP_SIZE)
		fprintf(out, ", \"size_max\": %llu", p->c.size_max);
	fprintf(out, ", \"usable\": %s}", p->usable ? "true" : "false");
}

static void report_json(const struct probe *pr, const struct config *cfg, FILE *out)
{
	const struct account *a = pr->a;
	const struct cred_result *c = &pr->cred;
	const struct port_result *b = pr->best >= 0 ? &pr->res[pr->best] : NULL;
	char rec[PERR_TEXT_MAX];

	fputs("{", out);
	jkv(out, "account", a->name, 1);
	jkv(out, "host", a->host, 1);
	jkv(out, "config", cfg ? cfg->path : NULL, 1);
	fputs("\"ports\": [\n", out);
	for (size_t i = 0; i < pr->n; i++) {
		json_port(out, &pr->res[i]);
		fputs(i + 1 < pr->n ? ",\n" : "\n", out);
	}
	fprintf(out, "  ],\n  \"credentials\": {\"needed\": %s, \"checked\": %s, \"accepted\": %s, ",
		c->needed ? "true" : "false", c->checked ? "true" : "false",
		c->accepted ? "true" : "false");
	if (c->port)
		fprintf(out, "\"port\": %u, ", c->port);
	jkv(out, "user", a->user, 1);
	jkv(out, "error", c->accepted ? NULL : c->text, 0);
	recommendation(pr, rec, sizeof rec);
	fputs("},\n  \"recommendation\": {", out);
	if (b) {
		fprintf(out, "\"port\": %u, ", b->port);
		jkv(out, "tls", mode_name(pr->works ? config_port_tls(a, b->port) : b->mode), 1);
	}
	jkv(out, "text", rec, 0);
	fprintf(out, "},\n  \"works\": %s\n}\n", pr->works ? "true" : "false");
}

/* ---- entry -------------------------------------------------------------- */

int probe_run(const struct config *cfg, const struct account *a, int json, FILE *out,
	      struct perr *e)
{
	struct probe pr = { .a = a, .used = -1, .best = -1 };
	size_t bytes = PROBE_MAX * sizeof *pr.res;
	char rec[PERR_TEXT_MAX];
	int rc = 0;

	pr.helo = submit_helo_name(a);
	pr.res = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pr.res == MAP_FAILED)
		return perr_set(e, PERR_OS, "cannot start the probe: mmap: %s", strerror(errno));
	memset(pr.res, 0, bytes);
	list_ports(&pr);
	if (run_children(&pr, e) < 0) {
		munmap(pr.res, bytes);
		return -1;
	}
	judge(&pr);
	if (json)
		report_json(&pr, cfg, out);
	else
		report_text(&pr, cfg, out);
	fflush(out);
	if (!pr.works) {
		recommendation(&pr, rec, sizeof rec);
		rc = probe_error(&pr, rec, e);
	}
	munmap(pr.res, bytes);
	return rc;
}
