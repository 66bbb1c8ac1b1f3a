/* hint.c — the fix a person needs for a failure, chosen from its typed
 * cause, the server's reply code and enhanced status code, the provider
 * behind the server and the account; the one table of providers. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hint.h"

/* ---- enhanced status codes ------------------------------------------------ */

/* One to three digits at *p; the number, or -1. */
static int number(const char **p)
{
	int n = 0, digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 4) {
		n = n * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	return digits >= 1 && digits <= 3 ? n : -1;
}

int hint_parse_status(const char *s, struct hint_status *st)
{
	struct hint_status v = { 0 };
	const char *p = s;

	memset(st, 0, sizeof *st);
	if (!s || (*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
		return -1;
	v.cls = *p - '0';
	p += 2;
	if ((v.subject = number(&p)) < 0 || *p++ != '.')
		return -1;
	if ((v.detail = number(&p)) < 0 || *p != '\0')
		return -1;
	*st = v;
	return 0;
}

static bool status_is(const struct hint_status *st, int subject, int detail)
{
	return st->cls && st->subject == subject && st->detail == detail;
}

/* ---- providers -------------------------------------------------------------- */

#define SUFFIXES_MAX 6
#define MARKS_MAX 4
#define OWN_STATUSES_MAX 2

/* How a provider is recognised.  A suffix matches the host name itself or
 * any name under it ("outlook.com": smtp-mail.outlook.com); a mark is
 * looked for (case-insensitively) in the greeting and the reply text;
 * an own status is an enhanced code no one else sends. */
static const struct provider {
	enum hint_provider id;
	const char *suffixes[SUFFIXES_MAX];
	const char *marks[MARKS_MAX];
	struct hint_status own[OWN_STATUSES_MAX];
} providers[] = {
	{ HINT_PROVIDER_MICROSOFT,
	  { "office365.com", "outlook.com", "hotmail.com", "live.com", "office.com", NULL },
	  /* "220 XX.outlook.office365.com Microsoft ESMTP MAIL Service ready";
	   * replies end "[BN9PR03CA0123.namprd03.prod.outlook.com ...]" */
	  { "Microsoft ESMTP MAIL Service", ".outlook.com", ".office365.com", NULL },
	  { { 5, 7, 139 }, { 0, 0, 0 } } },
	{ HINT_PROVIDER_GOOGLE,
	  { "gmail.com", "google.com", "googlemail.com", NULL },
	  /* "220 smtp.gmail.com ESMTP ... - gsmtp"; replies point to
	   * https://support.google.com/mail/?p=... and end "- gsmtp" */
	  { "gsmtp", "support.google.com", NULL },
	  { { 0, 0, 0 } } },
};

#define NPROVIDERS (sizeof providers / sizeof providers[0])

static bool host_under(const char *host, const char *suffix)
{
	size_t hl = strlen(host), sl = strlen(suffix);

	if (hl && host[hl - 1] == '.')
		hl--; /* a fully qualified "smtp.gmail.com." */
	if (hl == sl)
		return strncasecmp(host, suffix, sl) == 0;
	return hl > sl && host[hl - sl - 1] == '.' && strncasecmp(host + hl - sl, suffix, sl) == 0;
}

static bool marked(const char *text, const char *mark)
{
	return text && strcasestr(text, mark) != NULL;
}

static bool recognised(const struct provider *p, const char *host, const char *greeting,
		       const char *text, const struct hint_status *st)
{
	for (size_t i = 0; i < SUFFIXES_MAX && p->suffixes[i]; i++)
		if (host && host_under(host, p->suffixes[i]))
			return true;
	for (size_t i = 0; i < MARKS_MAX && p->marks[i]; i++)
		if (marked(greeting, p->marks[i]) || marked(text, p->marks[i]))
			return true;
	for (size_t i = 0; i < OWN_STATUSES_MAX && p->own[i].cls; i++)
		if (st && st->cls && status_is(st, p->own[i].subject, p->own[i].detail))
			return true;
	return false;
}

enum hint_provider hint_provider_of(const char *host, const char *greeting, const char *text,
				    const struct hint_status *st)
{
	for (size_t i = 0; i < NPROVIDERS; i++)
		if (recognised(&providers[i], host, greeting, text, st))
			return providers[i].id;
	return HINT_PROVIDER_OTHER;
}

/* ---- the fixes -------------------------------------------------------------- */

/* Everything a rule looks at, worked out once. */
struct facts {
	const struct perr *e;
	const struct account *a;
	unsigned port;
	const char *file;          /* the configuration file, as shown */
	struct hint_status st;     /* the reply's enhanced code */
	enum hint_provider provider;
	bool oauth2;               /* postern fetches the account's tokens */
	bool token;                /* the secret is an OAuth2 access token */
	const char *probe;         /* ", or run postern --probe", or "" when
				      the line is the probe's own */
};

static bool permanent(const struct facts *f)
{
	return f->e->code >= 500 && f->e->code < 600;
}

/* The account's secret, named by where it comes from (the lookup order:
 * password_command, the keyring, password). */
static const char *secret_named(const struct account *a, char *buf, size_t cap)
{
	if (a->password_command)
		return "what password_command prints";
	if (a->password)
		return "password";
	snprintf(buf, cap, "the keyring entry (postern --set-password=%s)", a->name);
	return buf;
}

/* Where an app password goes, for the same source. */
static const char *app_password_where(const struct account *a, char *buf, size_t cap)
{
	if (a->password_command)
		return "make password_command print it";
	if (a->password)
		return "set password to it";
	snprintf(buf, cap, "store it with postern --set-password=%s", a->name);
	return buf;
}

static const char *other_ports(unsigned port)
{
	return port == 465 ? "587 or 2525" : port == 2525 ? "587 or 465" : "465 or 2525";
}

/* The account itself cannot be used as it is. */
static bool account_fix(const struct facts *f, char *buf, size_t cap)
{
	if (f->e->cause != PERR_CAUSE_NO_USER)
		return false;
	snprintf(buf, cap, "; set user = the login name for account %s in %s", f->a->name,
		 f->file);
	return true;
}

/* Failures before a word with the server: name, route, connection. */
static bool network_fix(const struct facts *f, char *buf, size_t cap)
{
	switch (f->e->cause) {
	case PERR_CAUSE_RESOLVE:
		if (f->e->timed_out)
			snprintf(buf, cap, "; check the network's name service, and host in %s",
				 f->file);
		else
			snprintf(buf, cap, "; check host in %s", f->file);
		return true;
	case PERR_CAUSE_CONNECT_TIMEOUT:
		snprintf(buf, cap, "; the network may block port %u: try port = %s in %s%s",
			 f->port, other_ports(f->port), f->file, f->probe);
		return true;
	case PERR_CAUSE_CONNECT_REFUSED:
		snprintf(buf, cap, "; nothing listens on port %u of %s: check host and port in %s%s",
			 f->port, f->a->host, f->file, f->probe);
		return true;
	case PERR_CAUSE_CONNECT_UNREACHABLE:
		snprintf(buf, cap, "; no route to %s: check the network connection, and host in %s",
			 f->a->host, f->file);
		return true;
	default:
		return false;
	}
}

/* The TLS handshake met plain text: on an implicit-TLS port the server
 * speaks plain SMTP; after STARTTLS's 220 it is broken or tampered with. */
static bool plain_fix(const struct facts *f, char *buf, size_t cap)
{
	if (f->e->cause != PERR_CAUSE_TLS_PLAIN)
		return false;
	if (config_port_tls(f->a, f->port) == TLS_IMPLICIT)
		snprintf(buf, cap, "; port %u speaks plain SMTP: for STARTTLS ports (587, 25) set "
			 "tls = starttls in %s", f->port, f->file);
	else
		snprintf(buf, cap, "; it answered 220 to STARTTLS but then did not start TLS: a "
			 "broken server, or something on the network path tampering with STARTTLS; "
			 "try tls = implicit with port = 465 in %s%s", f->file, f->probe);
	return true;
}

/* The greeting and EHLO: the server turns this client away. */
static bool session_fix(const struct facts *f, char *buf, size_t cap)
{
	const struct perr *e = f->e;

	if (e->cause == PERR_CAUSE_GREETING && e->timed_out &&
	    config_port_tls(f->a, f->port) != TLS_IMPLICIT) {
		snprintf(buf, cap, "; a server that waits silently may expect TLS from the first "
			 "byte: set tls = implicit (usual on port 465) in %s%s", f->file, f->probe);
		return true;
	}
	if (e->cause == PERR_CAUSE_GREETING && e->kind == PERR_TEMP && !e->code && !e->timed_out) {
		/* closed or reset before a word: a limit, a block list, or a
		 * port that is not SMTP */
		snprintf(buf, cap, "; the server hung up before its greeting (a connection limit, "
			 "a block on this address, or not an SMTP port): try again later; if it "
			 "lasts, check host and port in %s%s", f->file, f->probe);
		return true;
	}
	if (e->cause == PERR_CAUSE_GREETING && e->code / 100 == 4) {
		snprintf(buf, cap, "; that is the server's reason for turning postern away for "
			 "now: a later attempt may work; if it lasts, check host and port in %s or ask "
			 "the server's administrator", f->file);
		return true;
	}
	if (e->cause == PERR_CAUSE_GREETING && permanent(f)) {
		snprintf(buf, cap, "; that is the server's reason for refusing this client: ask "
			 "its administrator, or check host and port in %s", f->file);
		return true;
	}
	if (e->cause == PERR_CAUSE_EHLO && permanent(f)) {
		snprintf(buf, cap, "; set domain = this host's fully qualified name in %s "
			 "(the name sent with EHLO)", f->file);
		return true;
	}
	return false;
}

/* The certificate: the facts are in the text (its names, its
 * fingerprint, the date); the fix depends on what is wrong with it. */
static bool cert_fix(const struct facts *f, char *buf, size_t cap)
{
	switch (f->e->cause) {
	case PERR_CAUSE_CERT_NAME:
		snprintf(buf, cap, "; set host to one of those names in %s", f->file);
		return true;
	case PERR_CAUSE_CERT_UNTRUSTED:
		snprintf(buf, cap, "; if the server is yours, set tls_fingerprint to it, or "
			 "tls_ca_file, for account %s in %s", f->a->name, f->file);
		return true;
	case PERR_CAUSE_CERT_PIN:
		snprintf(buf, cap, "; if the server's certificate was replaced, check the new one "
			 "and set tls_fingerprint to it in %s", f->file);
		return true;
	case PERR_CAUSE_CERT_EXPIRED:
		/* nothing in the configuration can make it valid */
		snprintf(buf, cap, "; the server's administrator must renew it");
		return true;
	case PERR_CAUSE_CERT_NOTYET:
		snprintf(buf, cap, "; check this machine's clock");
		return true;
	case PERR_CAUSE_CLIENT_CERT:
		snprintf(buf, cap, "; set tls_cert_file and tls_key_file for account %s in %s",
			 f->a->name, f->file);
		return true;
	default:
		return false;
	}
}

/* What the server offers does not fit the account: no STARTTLS, no AUTH,
 * no mechanism postern may use; or postern will not log in unencrypted. */
static bool offer_fix(const struct facts *f, char *buf, size_t cap)
{
	switch (f->e->cause) {
	case PERR_CAUSE_NO_STARTTLS:
		snprintf(buf, cap, "; if the server uses TLS from the first byte, set tls = implicit "
			 "and port = 465 in %s%s", f->file, f->probe);
		return true;
	case PERR_CAUSE_CLEARTEXT:
		snprintf(buf, cap, "; set tls = starttls (or tls = implicit with port = 465) in %s",
			 f->file);
		return true;
	case PERR_CAUSE_NO_AUTH:
		snprintf(buf, cap, "; if it needs no login, remove user or set auth = off for "
			 "account %s in %s", f->a->name, f->file);
		return true;
	case PERR_CAUSE_MECH:
		if (f->a->auth == AUTH_AUTO)
			snprintf(buf, cap, "; for a token or a certificate set auth = xoauth2, "
				 "oauthbearer or external for account %s in %s", f->a->name, f->file);
		else
			snprintf(buf, cap, "; set auth to one of those, or auto, for account %s in %s",
				 f->a->name, f->file);
		return true;
	default:
		break;
	}
	/* 538 (RFC 4954): this mechanism only over an encrypted connection */
	if (f->e->cause == PERR_CAUSE_AUTH && f->e->code == 538 &&
	    config_port_tls(f->a, f->port) == TLS_OFF) {
		snprintf(buf, cap, "; set tls = starttls (or tls = implicit with port = 465) in %s",
			 f->file);
		return true;
	}
	return false;
}

/* 530: the server wants TLS or a login before this command. */
static bool needs_fix(const struct facts *f, char *buf, size_t cap)
{
	if (f->e->code != 530)
		return false;
	if (config_port_tls(f->a, f->port) == TLS_OFF) {
		snprintf(buf, cap, "; set tls = starttls in %s", f->file);
		return true;
	}
	if (f->a->auth == AUTH_OFF || !f->a->user) {
		snprintf(buf, cap, "; the server wants a login first: set user and a secret for "
			 "account %s in %s", f->a->name, f->file);
		return true;
	}
	return false;
}

/* Microsoft answers 535 5.7.139 to AUTH, or 550 5.7.30 (to AUTH or MAIL),
 * when basic authentication is off for the mailbox or its tenant. */
static bool basic_auth_off(const struct facts *f)
{
	return f->provider == HINT_PROVIDER_MICROSOFT && permanent(f) &&
	       (status_is(&f->st, 7, 139) || status_is(&f->st, 7, 30));
}

static void microsoft_fix(const struct facts *f, char *buf, size_t cap)
{
	if (f->oauth2)
		snprintf(buf, cap, "; SMTP AUTH is off for this mailbox or its tenant: an "
			 "administrator must turn on Authenticated SMTP for it");
	else
		snprintf(buf, cap, "; basic authentication (a password) is off for this Microsoft "
			 "account; use OAuth2: set oauth2 = microsoft and oauth2_client_id for account "
			 "%s in %s, then run postern --authorize=%s", f->a->name, f->file, f->a->name);
}

/* AUTH refused for good. */
static bool credentials_fix(const struct facts *f, char *buf, size_t cap)
{
	const struct account *a = f->a;
	char src[128];

	if (f->e->kind != PERR_AUTH || f->e->cause != PERR_CAUSE_AUTH || !permanent(f) ||
	    f->e->code == 538)
		return false;
	if (f->oauth2)
		snprintf(buf, cap, "; the server refused the OAuth2 access token: run "
			 "postern --authorize=%s", a->name);
	else if (f->token)
		snprintf(buf, cap, "; the server refused the access token: %s for account %s in %s "
			 "must be a fresh one (or set oauth2 = google | microsoft there and run "
			 "postern --authorize=%s)", secret_named(a, src, sizeof src), a->name, f->file,
			 a->name);
	else if (f->provider == HINT_PROVIDER_GOOGLE)
		snprintf(buf, cap, "; Gmail refuses the account's normal password: use an app "
			 "password (%s) or OAuth2 (oauth2 = google for account %s in %s, then "
			 "postern --authorize=%s)", app_password_where(a, src, sizeof src), a->name,
			 f->file, a->name);
	else if (f->provider == HINT_PROVIDER_MICROSOFT)
		snprintf(buf, cap, "; check user and %s for account %s in %s; if basic "
			 "authentication is off for the tenant, use OAuth2 (oauth2 = microsoft, then "
			 "postern --authorize=%s)", secret_named(a, src, sizeof src), a->name, f->file,
			 a->name);
	else
		snprintf(buf, cap, "; check user and %s for account %s in %s",
			 secret_named(a, src, sizeof src), a->name, f->file);
	return true;
}

/* A permanent refusal that is about the sender: the reply to MAIL FROM
 * (an addressing or policy status, or without one the mailbox codes), or
 * at the end of the data a status that names the sender's address
 * (X.1.7, X.1.8) or a provider's "may not send as" (X.2.252, X.7.60). */
static bool sender_refused(const struct facts *f)
{
	static const int sender_statuses[][2] = { { 1, 7 }, { 1, 8 }, { 2, 252 }, { 7, 60 } };
	const struct perr *e = f->e;

	if (!permanent(f))
		return false;
	if (e->cause == PERR_CAUSE_SENDER) {
		if (f->st.cls)
			return f->st.subject == 1 || f->st.subject == 7;
		return e->code == 550 || e->code == 551 || e->code == 553 || e->code == 554;
	}
	if (e->cause != PERR_CAUSE_CONTENT)
		return false;
	for (size_t i = 0; i < sizeof sender_statuses / sizeof sender_statuses[0]; i++)
		if (status_is(&f->st, sender_statuses[i][0], sender_statuses[i][1]))
			return true;
	return false;
}

const char *hint_for(const struct perr *e, const struct hint_in *in, char *buf, size_t cap)
{
	struct facts f = { .e = e, .a = in->a, .port = in->port };

	if (!e || !in->a || !cap)
		return NULL;
	f.file = in->config_file ? in->config_file
		 : in->a->config_file ? in->a->config_file : "the configuration file";
	hint_parse_status(e->enhanced, &f.st);
	f.provider = hint_provider_of(in->a->host, in->greeting, e->text, &f.st);
	f.oauth2 = in->a->oauth2 != OAUTH2_NONE;
	f.token = in->a->auth == AUTH_XOAUTH2 || in->a->auth == AUTH_OAUTHBEARER;
	f.probe = in->probing ? "" : ", or run postern --probe";
	if (account_fix(&f, buf, cap) || network_fix(&f, buf, cap) || plain_fix(&f, buf, cap) || session_fix(&f, buf, cap) ||
	    cert_fix(&f, buf, cap) || offer_fix(&f, buf, cap) || needs_fix(&f, buf, cap))
		return buf;
	if (basic_auth_off(&f)) {
		microsoft_fix(&f, buf, cap);
		return buf;
	}
	if (credentials_fix(&f, buf, cap))
		return buf;
	if (sender_refused(&f)) {
		snprintf(buf, cap, "; the provider refuses this From address for account %s: set "
			 "from = an address it may send as, or from_header = force, in %s",
			 in->a->name, f.file);
		return buf;
	}
	return NULL;
}

void hint_append(struct perr *e, const struct hint_in *in)
{
	char fix[512];
	size_t tlen, hlen, room;

	if (!e || !hint_for(e, in, fix, sizeof fix))
		return;
	tlen = strlen(e->text);
	if (tlen >= 2 && e->text[tlen - 1] == '.' && e->text[tlen - 2] != '.')
		e->text[--tlen] = '\0'; /* "disabled." + "; fix" */
	hlen = strlen(fix);
	if (tlen + hlen >= sizeof e->text) {
		/* The fix matters more than the tail of a long server text. */
		room = sizeof e->text - hlen - 4;
		while (room > 0 && ((unsigned char)e->text[room] & 0xC0) == 0x80)
			room--; /* not inside a UTF-8 sequence */
		memcpy(e->text + room, "...", 4);
		tlen = room + 3;
	}
	memcpy(e->text + tlen, fix, hlen + 1);
}

void hint_advise_greeted(struct perr *e, const struct account *a, unsigned port,
			 const char *greeting)
{
	struct hint_in in = { .a = a, .port = port, .greeting = greeting };

	hint_append(e, &in);
}

void hint_advise_probed(struct perr *e, const struct account *a, unsigned port,
			const char *greeting)
{
	struct hint_in in = { .a = a, .port = port, .greeting = greeting, .probing = true };

	hint_append(e, &in);
}

void hint_advise(struct perr *e, const struct account *a, unsigned port)
{
	hint_advise_greeted(e, a, port, NULL);
}
