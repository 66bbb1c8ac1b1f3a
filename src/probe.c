/* probe.c — postern --probe: what a mail administrator would find out with
 * telnet, openssl s_client and swaks, in one report.
 *
 * Owns: the list of ports to try (the account's ports in both TLS modes,
 * the standard ones in their usual mode), one forked child per port and
 * mode (results in a MAP_SHARED array, so the whole probe takes about one
 * timeout however many ports drop packets), the credential check, the
 * verdict, the recommendation, and the report as text or JSON.
 *
 * It speaks no SMTP itself: every session is the SMTP engine's
 * (smtp_open, as a delivery opens it), watched through its observer, so
 * the probe and a delivery cannot disagree.  The verdict and its exit
 * status are the ones a delivery would meet on the port a delivery would
 * use, and the failure line carries submit.c's advice.
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

#include "deliver.h"
#include "hint.h"
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
/* Each port once, the account's ports once more in the other TLS mode. */
#define PROBE_MAX (NSTD + 2 * CFG_PORTS_MAX)
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
	int other_mode;            /* a configured port in the TLS mode not configured */
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
	int ehlo_seen;             /* EHLO was answered 250 */
	struct perr err;           /* the engine's verdict on the session, kind NONE if fine */
	int64_t t0;                /* when the connection was started */
	int usable;                /* postern could submit here (set by the parent) */
};

struct cred_result {
	int needed;     /* the account authenticates */
	int checked;    /* an AUTH was tried */
	int accepted;
	unsigned port;
	char mech[24];  /* the mechanism AUTH used */
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
	struct perr verdict;     /* what a delivery meets; kind NONE: it works */
	int sender_checked, sender_accepted;   /* MAIL FROM on the port used */
	char sender[256];
	char sender_text[PERR_TEXT_MAX];       /* why not accepted */
	int works;
};

/* ---- one port (runs in a child) ----------------------------------------- *
 *
 * Each port is one session of the SMTP engine, exactly as a delivery
 * opens it but without AUTH; the observer records what each step saw. */

static void on_connected(void *ctx, const char *addr)
{
	struct port_result *p = ctx;

	(void)addr;
	p->reachable = 1;
	p->connect_ms = (long)(mono_ms() - p->t0);
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

static void on_greeting(void *ctx, const struct reply *r)
{
	struct port_result *p = ctx;

	reply_text(r, p->greeting, sizeof p->greeting);
}

/* Keep the EHLO keywords: AUTH's mechanisms apart, the rest one a line. */
static void on_ehlo(void *ctx, const struct reply *r, int tls_active)
{
	struct port_result *p = ctx;
	char line[REPLY_LINE_MAX];
	size_t o = 0;

	(void)tls_active;
	p->ehlo_seen = 1;
	smtp_parse_ehlo(r, &p->c);
	p->starttls_offered |= (p->c.flags & SMTP_CAP_STARTTLS) != 0;
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

static void on_tls(void *ctx, const struct tls_peer_info *info)
{
	struct port_result *p = ctx;

	p->tls = *info;
	p->tls_ok = 1;
}

static const struct smtp_observer port_observer = {
	.connected = on_connected, .greeting = on_greeting, .ehlo = on_ehlo, .tls = on_tls,
};

/* The session's parameters for port p in TLS mode `mode`, as submit.c
 * sets them (with AUTH only when secret is given). */
static void fill_params(struct smtp_params *sp, const struct account *a, const struct secret *s,
			unsigned port, enum tls_mode mode, const char *helo)
{
	memset(sp, 0, sizeof *sp);
	sp->host = a->host;
	sp->port = port;
	sp->tls = mode;
	sp->tls_opts = submit_tls_opts(a);
	sp->helo = helo;
	sp->timeout_s = a->timeout;
	sp->auth = AUTH_OFF;
	if (s) {
		sp->auth = secret_needed(a) || a->auth == AUTH_EXTERNAL ? a->auth : AUTH_OFF;
		sp->user = a->user;
		sp->secret = s->value;
		sp->secret_len = s->len;
	}
}

/* What the engine's error means for the port's status line. */
static void classify(struct port_result *p, const struct perr *e, int timeout)
{
	p->err = *e;
	if (!p->reachable) {
		p->status = e->cause == PERR_CAUSE_CONNECT_REFUSED ? PS_REFUSED :
			    e->cause == PERR_CAUSE_CONNECT_TIMEOUT ? PS_TIMEOUT : PS_UNREACHABLE;
		str_copy(p->error, e->text, sizeof p->error);
	} else if (e->cause == PERR_CAUSE_GREETING && e->timed_out && !p->greeting[0]) {
		p->status = PS_TIMEOUT;
		snprintf(p->error, sizeof p->error, "connected, but no greeting within %d s: "
			 "a TLS-only port (try tls = implicit) or a filter", timeout);
	} else if (e->cause == PERR_CAUSE_NO_STARTTLS && p->ehlo_seen) {
		p->status = PS_OK; /* STARTTLS not offered: the report says TLS none */
	} else {
		p->status = PS_ERROR;
		str_copy(p->error, e->text, sizeof p->error);
	}
}

static void probe_port(struct port_result *p, const struct account *a, const char *helo)
{
	struct smtp_observer ob = port_observer;
	struct smtp_params sp;
	struct perr e;
	struct smtp s;

	ob.ctx = p;
	fill_params(&sp, a, NULL, p->port, p->mode, helo);
	sp.observer = &ob;
	perr_clear(&e);
	p->t0 = mono_ms();
	if (smtp_open(&s, &sp, &e) == 0) {
		p->status = PS_OK;
		smtp_quit(&s);
		return;
	}
	classify(p, &e, a->timeout);
}

/* ---- running the children ----------------------------------------------- */

static void add_port(struct probe *pr, unsigned port, enum tls_mode mode, int configured)
{
	for (size_t i = 0; i < pr->n; i++) {
		if (pr->res[i].port == port && !pr->res[i].other_mode) {
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
	/* SPEC 8: on the configured ports both TLS modes, to say which one
	 * the server speaks. */
	for (size_t i = 0, n = pr->n; i < n && pr->n < PROBE_MAX; i++) {
		struct port_result *p = &pr->res[i];

		if (!p->configured || config_port_tls(a, p->port) == TLS_OFF)
			continue;
		pr->res[pr->n] = (struct port_result){
			.port = p->port, .configured = 1, .other_mode = 1,
			.mode = p->mode == TLS_IMPLICIT ? TLS_STARTTLS : TLS_IMPLICIT,
		};
		pr->n++;
	}
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
			perr_set(&pr->res[i].err, PERR_TEMP, "port %u: %s", pr->res[i].port,
				 pr->res[i].error);
			perr_because(&pr->res[i].err, PERR_CAUSE_LOST);
		}
	}
}

static int run_children(struct probe *pr, struct perr *e)
{
	pid_t pids[PROBE_MAX] = { 0 };
	/* A child spends at most one timeout connecting (all addresses
	 * together) and one on each step of the session, which rarely takes
	 * more than one: two timeouts and a little more is the most any
	 * child may take. */
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

/* Could postern submit on this port, as the account is configured?  The
 * engine's session went through, and (with a secret) the server offers a
 * mechanism the engine would use with it. */
static int port_usable(const struct port_result *p, const struct account *a)
{
	if (p->status != PS_OK || p->err.kind != PERR_NONE)
		return 0;
	if (secret_needed(a) && smtp_pick_mech(p->c.mechs, a->auth) == AUTH_OFF)
		return 0;
	return 1;
}

/* The account's port (in its configured mode) at index i, or -1. */
static int find_port(const struct probe *pr, unsigned port, int other_mode)
{
	for (size_t i = 0; i < pr->n; i++)
		if (pr->res[i].port == port && pr->res[i].other_mode == other_mode)
			return (int)i;
	return -1;
}

/* The port a delivery would end on: the account's ports in order, the
 * next one tried only when the connection could not be made (submit.c's
 * open_session). */
static int used_port(const struct probe *pr)
{
	int i = -1;

	for (int k = 0; k < pr->a->nports; k++) {
		i = find_port(pr, pr->a->ports[k], 0);
		if (i >= 0 && !perr_is_connect(&pr->res[i].err))
			return i;
	}
	return i;
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

/* The TLS mode the server speaks on configured port entry i: the mode
 * whose session reached EHLO over TLS, the configured one first; -1 when
 * neither did. */
static int speaks(const struct probe *pr, size_t i)
{
	const struct port_result *p = &pr->res[i];
	int j = find_port(pr, p->port, !p->other_mode);

	if (p->ehlo_seen && p->tls_ok)
		return (int)p->mode;
	if (j >= 0 && pr->res[j].ehlo_seen && pr->res[j].tls_ok)
		return (int)pr->res[j].mode;
	return -1;
}

static void on_auth(void *ctx, const char *mech, int rc)
{
	struct cred_result *cr = ctx;

	(void)rc;
	str_copy(cr->mech, mech, sizeof cr->mech);
}

/* The session a delivery would open on port index i, AUTH included (no
 * mail is sent); on the port a delivery uses, then MAIL FROM with the
 * sender a delivery would use, and RSET.  e gets the engine's error. */
static int check_session(struct probe *pr, int i, struct perr *e)
{
	struct cred_result *cr = &pr->cred;
	const struct port_result *p = &pr->res[i];
	struct smtp_observer ob = { .ctx = cr, .auth = on_auth };
	struct secret sec = { 0 };
	struct smtp_params sp;
	struct smtp s;
	char buf[512];
	const char *sender = deliver_default_sender(pr->a, buf, sizeof buf);
	int rc = -1;

	cr->port = p->port;
	if (cr->needed && secret_resolve(pr->a, &sec, e) < 0) {
		cr->kind = e->kind;
		str_copy(cr->text, "not checked: ", sizeof cr->text);
		str_copy(cr->text + 13, e->text, sizeof cr->text - 13);
		return -1;
	}
	fill_params(&sp, pr->a, cr->needed ? &sec : NULL, p->port, p->mode, pr->helo);
	sp.observer = &ob;
	cr->checked = cr->needed;
	rc = smtp_open(&s, &sp, e);
	/* As a delivery does: an OAuth2 token refused early is replaced once. */
	if (rc < 0 && e->token_refused && pr->a->oauth2 && cr->needed) {
		smtp_close(&s);
		if ((rc = oauth2_renew(pr->a, &sec, e)) == 0) {
			fill_params(&sp, pr->a, &sec, p->port, p->mode, pr->helo);
			sp.observer = &ob;
			rc = smtp_open(&s, &sp, e);
		}
	}
	if (rc == 0) {
		cr->accepted = cr->needed;
		if (i != pr->used) {
			rc = 0;
		} else {
			pr->sender_checked = 1;
			str_copy(pr->sender, sender, sizeof pr->sender);
			rc = smtp_try_sender(&s, sender, e);
			pr->sender_accepted = rc == 0;
			if (rc < 0)
				hint_advise_probed(e, pr->a, p->port, s.greeting[0] ? s.greeting : NULL);
		}
		smtp_quit(&s);
		if (rc < 0)
			str_copy(pr->sender_text, e->text, sizeof pr->sender_text);
	} else if (cr->needed) {
		cr->kind = e->kind;
		hint_advise_probed(e, pr->a, p->port, s.greeting[0] ? s.greeting : NULL);
		str_copy(cr->text, e->text, sizeof cr->text);
	} else {
		hint_advise_probed(e, pr->a, p->port, s.greeting[0] ? s.greeting : NULL);
	}
	secret_free(&sec);
	return rc;
}

/* Usable ports, the port a delivery would use, its whole session there
 * (or only the credentials, on the recommended port, when that one cannot
 * be used), and the verdict in pr->verdict: a delivery's error, or kind
 * NONE. */
static void judge(struct probe *pr)
{
	struct perr ce;

	for (size_t k = 0; k < pr->n; k++)
		pr->res[k].usable = port_usable(&pr->res[k], pr->a);
	pr->used = used_port(pr);
	pr->best = best_port(pr);
	pr->cred.needed = secret_needed(pr->a);
	perr_clear(&pr->verdict);
	perr_clear(&ce);
	if (pr->used < 0) {
		perr_set(&pr->verdict, PERR_CONFIG, "account %s has no port to try", pr->a->name);
	} else if (pr->res[pr->used].err.kind != PERR_NONE) {
		pr->verdict = pr->res[pr->used].err;
		hint_advise_probed(&pr->verdict, pr->a, pr->res[pr->used].port,
				   pr->res[pr->used].greeting[0] ? pr->res[pr->used].greeting : NULL);
	} else if (check_session(pr, pr->used, &ce) < 0) {
		pr->verdict = ce;
	}
	if (pr->cred.needed && !pr->cred.checked && !pr->cred.text[0]) {
		if (pr->best >= 0 && pr->best != pr->used)
			check_session(pr, pr->best, &ce);
		else
			str_copy(pr->cred.text, "not checked: no port could be used",
				 sizeof pr->cred.text);
	}
	pr->works = pr->verdict.kind == PERR_NONE;
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
		snprintf(buf, cap, "the configuration works: port = %u, tls = %s",
			 pr->res[pr->used].port, mode_name(config_port_tls(pr->a, pr->res[pr->used].port)));
	else if (b && pr->cred.needed && pr->cred.checked && !pr->cred.accepted)
		snprintf(buf, cap, "port = %u, tls = %s reaches the server, but the credentials "
			 "were refused: fix user or the password first", b->port, mode_name(b->mode));
	else if (b)
		snprintf(buf, cap, "set port = %u and tls = %s in %s", b->port,
			 mode_name(b->mode),
			 pr->a->config_file ? pr->a->config_file : "the configuration file");
	else if (all_timeout)
		snprintf(buf, cap, "every port timed out: this network blocks outgoing mail "
			 "(try another network, or ask its administrator), or host = %s is wrong",
			 pr->a->host);
	else
		snprintf(buf, cap, "no port works for account %s: see each port's error above",
			 pr->a->name);
}

/* The failure line: the error a delivery meets, with submit.c's advice,
 * and the recommendation when it names another port or TLS mode. */
static int probe_error(const struct probe *pr, struct perr *e)
{
	const struct port_result *b = pr->best >= 0 ? &pr->res[pr->best] : NULL;
	char rec[PERR_TEXT_MAX];

	*e = pr->verdict;
	if (b && pr->best != pr->used) {
		recommendation(pr, rec, sizeof rec);
		perr_append(e, "; --probe recommends: %s", rec);
	}
	return -1;
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
	fprintf(out, "%s%s\n", note,
		p->other_mode ? " [configured port, other TLS mode]" :
		p->configured ? " [configured]" : "");
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
	if (p->configured && !p->other_mode && config_port_tls(pr->a, p->port) != TLS_OFF) {
		int m = speaks(pr, (size_t)(p - pr->res));

		if (m < 0)
			label(out, "speaks", "%sneither STARTTLS nor implicit TLS%s", st->bad, st->off);
		else
			label(out, "speaks", "%s%s%s (tls = %s)", (enum tls_mode)m == p->mode ? st->ok : st->warn,
			      m == TLS_IMPLICIT ? "implicit TLS" : "STARTTLS", st->off,
			      mode_name((enum tls_mode)m));
	}
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
		fprintf(out, "%-18s%saccepted%s (user %s, AUTH %s, port %u; no mail sent)\n",
			"credentials", st->ok, st->off, a->user ? a->user : "", pr->cred.mech,
			pr->cred.port);
	else
		fprintf(out, "%-18s%s%s%s\n", "credentials", st->bad,
			pr->cred.text[0] ? pr->cred.text : "not checked", st->off);
	if (pr->sender_checked)
		fprintf(out, "%-18s%s%s%s (MAIL FROM:<%s>, then RSET)\n", "sender",
			pr->sender_accepted ? st->ok : st->bad,
			pr->sender_accepted ? "accepted" : pr->sender_text, st->off, pr->sender);
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

static void json_port(FILE *out, const struct probe *pr, const struct port_result *p)
{
	fprintf(out, "    {\"port\": %u, \"mode\": ", p->port);
	jstr(out, mode_name(p->mode));
	fprintf(out, ", \"configured\": %s, \"other_mode\": %s, ", p->configured ? "true" : "false",
		p->other_mode ? "true" : "false");
	if (p->configured && !p->other_mode && config_port_tls(pr->a, p->port) != TLS_OFF) {
		int m = speaks(pr, (size_t)(p - pr->res));

		jkv(out, "speaks", m < 0 ? NULL : mode_name((enum tls_mode)m), 1);
	}
	fputs("\"status\": ", out);
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
		json_port(out, pr, &pr->res[i]);
		fputs(i + 1 < pr->n ? ",\n" : "\n", out);
	}
	fprintf(out, "  ],\n  \"credentials\": {\"needed\": %s, \"checked\": %s, \"accepted\": %s, ",
		c->needed ? "true" : "false", c->checked ? "true" : "false",
		c->accepted ? "true" : "false");
	if (c->port)
		fprintf(out, "\"port\": %u, ", c->port);
	jkv(out, "mechanism", c->mech, 1);
	jkv(out, "user", a->user, 1);
	jkv(out, "error", c->accepted ? NULL : c->text, 0);
	recommendation(pr, rec, sizeof rec);
	fprintf(out, "},\n  \"sender\": {\"checked\": %s, \"accepted\": %s, ",
		pr->sender_checked ? "true" : "false", pr->sender_accepted ? "true" : "false");
	jkv(out, "address", pr->sender_checked ? pr->sender : NULL, 1);
	jkv(out, "error", pr->sender_accepted ? NULL : pr->sender_text, 0);
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
	if (!pr.works)
		rc = probe_error(&pr, e);
	munmap(pr.res, bytes);
	return rc;
}
