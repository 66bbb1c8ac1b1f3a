/* test_hint.c — the fix chosen for each failure (hint.c): one table row
 * per rule, with the words the fix must hold and the words it must not;
 * the enhanced status parser; the provider table; a fix that always fits
 * the one error line; the configuration file named is the one read. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "hint.h"

/* ---- enhanced status codes ------------------------------------------------ */

static void test_parse_status(void **state)
{
	static const struct {
		const char *in;
		int rc, cls, subject, detail;
	} rows[] = {
		{ "5.7.139", 0, 5, 7, 139 }, { "5.7.30", 0, 5, 7, 30 }, { "2.0.0", 0, 2, 0, 0 },
		{ "4.7.0", 0, 4, 7, 0 }, { "5.999.999", 0, 5, 999, 999 }, { "5.01.1", 0, 5, 1, 1 },
		{ "", -1, 0, 0, 0 }, { "5.7", -1, 0, 0, 0 }, { "5.7.", -1, 0, 0, 0 },
		{ "5..1", -1, 0, 0, 0 }, { "6.1.1", -1, 0, 0, 0 }, { "3.1.1", -1, 0, 0, 0 },
		{ "5.1234.0", -1, 0, 0, 0 }, { "5.1.1234", -1, 0, 0, 0 }, { "5.7.1x", -1, 0, 0, 0 },
		{ " 5.7.1", -1, 0, 0, 0 }, { "5.7.1 ", -1, 0, 0, 0 }, { "57.1.1", -1, 0, 0, 0 },
		{ "5-7-1", -1, 0, 0, 0 },
	};
	struct hint_status st;

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int rc = hint_parse_status(rows[i].in, &st);

		if (rc != rows[i].rc || st.cls != rows[i].cls || st.subject != rows[i].subject ||
		    st.detail != rows[i].detail)
			fail_msg("hint_parse_status(\"%s\") = %d {%d,%d,%d}, want %d {%d,%d,%d}",
				 rows[i].in, rc, st.cls, st.subject, st.detail, rows[i].rc,
				 rows[i].cls, rows[i].subject, rows[i].detail);
	}
	assert_int_equal(hint_parse_status(NULL, &st), -1);
}

/* ---- providers -------------------------------------------------------------- */

static void test_provider(void **state)
{
	static const struct hint_status ms_own = { 5, 7, 139 }, requiretls = { 5, 7, 30 },
					pf = { 5, 7, 8 };
	static const struct {
		const char *host, *greeting, *text;
		const struct hint_status *st;
		enum hint_provider want;
	} rows[] = {
		{ "smtp.office365.com", NULL, NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "SMTP.Office365.COM.", NULL, NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "smtp-mail.outlook.com", NULL, NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "eur.mail.protection.outlook.com", NULL, NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "outlook.com", NULL, NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "smtp.gmail.com", NULL, NULL, NULL, HINT_PROVIDER_GOOGLE },
		{ "aspmx.l.google.com", NULL, NULL, NULL, HINT_PROVIDER_GOOGLE },
		{ "gmail.com", NULL, NULL, NULL, HINT_PROVIDER_GOOGLE },
		/* a suffix matches whole labels only */
		{ "notoutlook.com", NULL, NULL, NULL, HINT_PROVIDER_OTHER },
		{ "outlook.com.example.org", NULL, NULL, NULL, HINT_PROVIDER_OTHER },
		{ "mygmail.com", NULL, NULL, NULL, HINT_PROVIDER_OTHER },
		{ "mail.example.org", NULL, NULL, NULL, HINT_PROVIDER_OTHER },
		/* greeting and reply marks */
		{ "localhost", "BN9PR03CA0123.outlook.office365.com Microsoft ESMTP MAIL Service "
		  "ready at Mon, 1 Dec 2025 10:00:00 +0000", NULL, NULL, HINT_PROVIDER_MICROSOFT },
		{ "smtp.example.com", NULL, "535 5.7.3 Authentication unsuccessful "
		  "[SN4PR0201CA0071.namprd02.prod.outlook.com]", NULL, HINT_PROVIDER_MICROSOFT },
		{ "localhost", "smtp.gmail.com ESMTP a1b2c3 - gsmtp", NULL, NULL,
		  HINT_PROVIDER_GOOGLE },
		{ "localhost", NULL, "535 5.7.8 https://support.google.com/mail/?p=BadCredentials",
		  NULL, HINT_PROVIDER_GOOGLE },
		{ "localhost", "mail.example.org ESMTP Postfix (Debian/GNU)",
		  "535 5.7.8 Error: authentication failed", &pf, HINT_PROVIDER_OTHER },
		/* a status only Microsoft sends; X.7.30 is REQUIRETLS elsewhere */
		{ "localhost", NULL, NULL, &ms_own, HINT_PROVIDER_MICROSOFT },
		{ "localhost", NULL, NULL, &requiretls, HINT_PROVIDER_OTHER },
		{ NULL, NULL, NULL, NULL, HINT_PROVIDER_OTHER },
	};

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		enum hint_provider got = hint_provider_of(rows[i].host, rows[i].greeting,
							  rows[i].text, rows[i].st);
		if (got != rows[i].want)
			fail_msg("row %zu (%s): provider %d, want %d", i,
				 rows[i].host ? rows[i].host : "-", (int)got, (int)rows[i].want);
	}
}

/* ---- the rules -------------------------------------------------------------- */

static struct account acct(const char *host)
{
	struct account a;

	memset(&a, 0, sizeof a);
	a.name = (char *)"work";
	a.config_file = (char *)"~/.smtprc";
	a.host = (char *)host;
	a.ports[0] = 587;
	a.nports = 1;
	a.user = (char *)"joe@example.com";
	a.password_command = (char *)"pass show smtp";
	return a;
}

enum who {
	SELFHOSTED, MS, GMAIL, LOCAL, KEYRING, MS_OAUTH, GOOGLE_OAUTH, TOKEN, PLAINTEXT, NOAUTH,
	SYSTEM, PLAINAUTH, CLEARLOGIN
};

static struct account account_of(enum who w)
{
	struct account a = acct("mail.example.org");

	switch (w) {
	case SELFHOSTED: break;
	case MS: a.host = (char *)"smtp.office365.com"; break;
	case GMAIL: a.host = (char *)"smtp.gmail.com"; break;
	case LOCAL: a.host = (char *)"localhost"; break;
	case KEYRING: a.password_command = NULL; break;
	case MS_OAUTH:
		a.host = (char *)"smtp.office365.com";
		a.password_command = NULL;
		a.oauth2 = OAUTH2_MICROSOFT;
		a.auth = AUTH_XOAUTH2;
		break;
	case GOOGLE_OAUTH:
		a.host = (char *)"smtp.gmail.com";
		a.password_command = NULL;
		a.oauth2 = OAUTH2_GOOGLE;
		a.auth = AUTH_OAUTHBEARER;
		break;
	case TOKEN: a.auth = AUTH_XOAUTH2; break;
	case PLAINTEXT:
		a.tls = TLS_OFF;
		a.tls_explicit = 1;
		a.auth = AUTH_OFF;
		a.user = NULL;
		a.password_command = NULL;
		break;
	case NOAUTH: a.auth = AUTH_OFF; a.password_command = NULL; break;
	case SYSTEM: a.config_file = (char *)"/etc/postern/system.smtprc"; break;
	case PLAINAUTH: a.auth = AUTH_PLAIN; break;
	case CLEARLOGIN: a.tls = TLS_OFF; a.tls_explicit = 1; break;
	}
	return a;
}

#define WORDS 5
struct row {
	const char *name;
	enum who who;
	unsigned port;
	enum perr_kind kind;
	enum perr_cause cause;
	int code;
	const char *enhanced;
	const char *text;          /* the server's reply, after the code */
	const char *greeting;
	int timed_out;
	const char *want[WORDS];   /* NULL want[0]: no fix at all */
	const char *never[WORDS];
};

static const struct row rows[] = {
	/* Microsoft: basic authentication off */
	{ "535 5.7.139 from Microsoft", MS, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535, "5.7.139",
	  "Authentication unsuccessful, basic authentication is disabled.", NULL, 0,
	  { "basic authentication", "OAuth2", "oauth2 = microsoft", "postern --authorize=work",
	    "~/.smtprc" },
	  { "app password", "Gmail", "check user" } },
	{ "535 5.7.139 on a name that hides Microsoft", LOCAL, 587, PERR_AUTH, PERR_CAUSE_AUTH,
	  535, "5.7.139", "Authentication unsuccessful, basic authentication is disabled.", NULL, 0,
	  { "basic authentication", "oauth2 = microsoft", "postern --authorize=work" },
	  { "Gmail" } },
	{ "550 5.7.30 to MAIL, Microsoft's greeting", LOCAL, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_SENDER, 550, "5.7.30",
	  "Basic authentication is not supported for Client Submission.",
	  "BN9PR03CA0123.outlook.office365.com Microsoft ESMTP MAIL Service ready", 0,
	  { "basic authentication", "oauth2 = microsoft", "postern --authorize=work", "~/.smtprc" },
	  { "From address", "Gmail" } },
	{ "550 5.7.30 to AUTH from smtp.office365.com", MS, 587, PERR_AUTH, PERR_CAUSE_AUTH, 550,
	  "5.7.30", "Basic authentication is not supported for Client Submission.", NULL, 0,
	  { "basic authentication", "oauth2 = microsoft" }, { "check user" } },
	{ "5.7.30 elsewhere is REQUIRETLS, not Microsoft", SELFHOSTED, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_SENDER, 550, "5.7.30", "REQUIRETLS support required", NULL, 0,
	  { "From address" }, { "basic authentication", "OAuth2" } },
	{ "Microsoft's ordinary 535 5.7.3", MS, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535, "5.7.3",
	  "Authentication unsuccessful [SN4PR0201CA0071.namprd02.prod.outlook.com]", NULL, 0,
	  { "check user and what password_command prints", "oauth2 = microsoft", "~/.smtprc" },
	  { "Gmail", "app password" } },
	{ "an oauth2 account at Microsoft with 5.7.139", MS_OAUTH, 587, PERR_AUTH, PERR_CAUSE_AUTH,
	  535, "5.7.139", "Authentication unsuccessful, SmtpClientAuthentication is disabled for "
	  "the Tenant.", NULL, 0, { "SMTP AUTH is off", "administrator" },
	  { "password_command", "oauth2 = microsoft" } },
	/* Gmail */
	{ "Gmail's 535 5.7.8, recognised by its text", LOCAL, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535,
	  "5.7.8", "Username and Password not accepted. For more information, go to / "
	  "https://support.google.com/mail/?p=BadCredentials a1-20020a - gsmtp", NULL, 0,
	  { "Gmail", "app password (make password_command print it)",
	    "oauth2 = google for account work in ~/.smtprc", "postern --authorize=work" },
	  { "microsoft", "basic authentication" } },
	{ "Gmail's 534 5.7.9", GMAIL, 587, PERR_AUTH, PERR_CAUSE_AUTH, 534, "5.7.9",
	  "Application-specific password required.", NULL, 0,
	  { "app password", "oauth2 = google", "~/.smtprc" }, { "microsoft" } },
	{ "smtp.gmail.com without an enhanced code", GMAIL, 465, PERR_AUTH, PERR_CAUSE_AUTH, 535,
	  "", "no", NULL, 0, { "app password", "oauth2 = google" }, { NULL } },
	{ "Gmail, secret in the keyring", KEYRING, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535, "5.7.8",
	  "Username and Password not accepted. - gsmtp", NULL, 0,
	  { "app password", "store it with postern --set-password=work", "~/.smtprc" },
	  { "password_command" } },
	/* a self-hosted server */
	{ "Postfix's 535 5.7.8", SELFHOSTED, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535, "5.7.8",
	  "Error: authentication failed: authentication failure",
	  "mail.example.org ESMTP Postfix (Debian/GNU)", 0,
	  { "check user and what password_command prints for account work in ~/.smtprc" },
	  { "Gmail", "app password", "OAuth2", "Outlook", "microsoft" } },
	{ "generic 535, no enhanced code, keyring", KEYRING, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535,
	  "", "authentication failed", NULL, 0,
	  { "check user and the keyring entry (postern --set-password=work)" },
	  { "Gmail", "password_command" } },
	{ "the system account's file", SYSTEM, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535, "", "no",
	  NULL, 0, { "/etc/postern/system.smtprc" }, { "~/.smtprc" } },
	/* OAuth2 accounts */
	{ "oauth2 account, token refused", MS_OAUTH, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535,
	  "5.7.3", "Authentication unsuccessful", NULL, 0, { "run postern --authorize=work" },
	  { "password_command", "check user", "app password" } },
	{ "Google oauth2 account, token refused", GOOGLE_OAUTH, 587, PERR_AUTH, PERR_CAUSE_AUTH,
	  535, "5.7.8", "Username and Password not accepted. - gsmtp", NULL, 0,
	  { "run postern --authorize=work" }, { "password_command", "app password" } },
	{ "a token from password_command refused", TOKEN, 587, PERR_AUTH, PERR_CAUSE_AUTH, 535,
	  "5.7.8", "no", NULL, 0, { "access token", "password_command", "fresh" }, { NULL } },
	/* the account */
	{ "no user to store a password for", NOAUTH, 0, PERR_CONFIG, PERR_CAUSE_NO_USER, 0, "",
	  NULL, NULL, 0, { "set user = ", "account work in ~/.smtprc" }, { NULL } },
	/* the network */
	{ "unresolvable host", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_RESOLVE, 0, "", NULL, NULL, 0,
	  { "check host in ~/.smtprc" }, { NULL } },
	{ "name service timed out", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_RESOLVE, 0, "", NULL,
	  NULL, 1, { "name service", "host in ~/.smtprc" }, { NULL } },
	{ "connection timed out on 587", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CONNECT_TIMEOUT, 0,
	  "", NULL, NULL, 1, { "may block port 587", "465 or 2525", "~/.smtprc", "postern --probe" },
	  { NULL } },
	{ "connection timed out on 465", SELFHOSTED, 465, PERR_TEMP, PERR_CAUSE_CONNECT_TIMEOUT, 0,
	  "", NULL, NULL, 1, { "587 or 2525" }, { NULL } },
	{ "connection refused", SELFHOSTED, 2525, PERR_TEMP, PERR_CAUSE_CONNECT_REFUSED, 0, "",
	  NULL, NULL, 0, { "nothing listens on port 2525 of mail.example.org", "~/.smtprc" },
	  { NULL } },
	{ "no route", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CONNECT_UNREACHABLE, 0, "", NULL, NULL,
	  0, { "no route to mail.example.org", "~/.smtprc" }, { NULL } },
	/* greeting and EHLO */
	{ "421 greeting", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_GREETING, 421, "4.7.0",
	  "Too many connections from your address", NULL, 0,
	  { "the server's reason", "later attempt", "host and port in ~/.smtprc" }, { NULL } },
	{ "554 greeting", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_GREETING, 554, "5.7.1",
	  "Client host blocked", NULL, 0, { "refusing this client", "~/.smtprc" }, { NULL } },
	{ "silent greeting on a STARTTLS port", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_GREETING, 0,
	  "", NULL, NULL, 1, { "tls = implicit", "~/.smtprc" }, { NULL } },
	{ "silent greeting on an implicit-TLS port", SELFHOSTED, 465, PERR_TEMP,
	  PERR_CAUSE_GREETING, 0, "", NULL, NULL, 1, { NULL }, { NULL } },
	{ "EHLO refused", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_EHLO, 501, "5.5.2",
	  "invalid domain name", NULL, 0, { "set domain", "~/.smtprc" }, { NULL } },
	{ "530 on a plaintext account", PLAINTEXT, 25, PERR_UNAVAILABLE, PERR_CAUSE_SENDER, 530,
	  "5.7.0", "Must issue a STARTTLS command first", NULL, 0,
	  { "set tls = starttls in ~/.smtprc" }, { "From address" } },
	{ "530 to an account without a login", NOAUTH, 587, PERR_UNAVAILABLE, PERR_CAUSE_SENDER,
	  530, "5.7.57", "Client not authenticated to send mail", NULL, 0,
	  { "wants a login", "~/.smtprc" }, { "From address" } },
	/* the sender */
	{ "553 5.7.1 to MAIL", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_SENDER, 553, "5.7.1",
	  "<joe@example.com>: not owned by user", NULL, 0,
	  { "From address", "from =", "from_header = force", "~/.smtprc" }, { NULL } },
	{ "550 5.1.8 to MAIL", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_SENDER, 550, "5.1.8",
	  "Bad sender's system address", NULL, 0, { "From address" }, { NULL } },
	{ "553 to MAIL without an enhanced code", SELFHOSTED, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_SENDER, 553, "", "not allowed", NULL, 0, { "From address" }, { NULL } },
	{ "552 5.3.4 to MAIL is about size", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_SENDER,
	  552, "5.3.4", "Message size exceeds fixed limit; sender beware", NULL, 0, { NULL },
	  { NULL } },
	{ "451 to MAIL is temporary", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_SENDER, 451, "4.7.1",
	  "Sender address rejected: try later", NULL, 0, { NULL }, { NULL } },
	{ "Microsoft's SendAsDenied at the end of data", MS, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_CONTENT, 554, "5.2.252", "SendAsDenied; joe@example.com not allowed to send "
	  "as other@example.com", NULL, 0, { "From address", "from_header = force" }, { NULL } },
	{ "5.7.60 at the end of data", MS, 587, PERR_UNAVAILABLE, PERR_CAUSE_CONTENT, 550, "5.7.60",
	  "SMTP; Client does not have permissions to send as this sender", NULL, 0,
	  { "From address" }, { NULL } },
	/* the words of the text never choose */
	{ "5.7.1 at the end of data that says sender", SELFHOSTED, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_CONTENT, 554, "5.7.1", "Sender address rejected: message looks like spam",
	  NULL, 0, { NULL }, { NULL } },
	{ "a refused recipient", SELFHOSTED, 587, PERR_NOUSER, PERR_CAUSE_RCPT, 550, "5.1.1",
	  "sender@example.com: no such user", NULL, 0, { NULL }, { NULL } },
	{ "AUTH 454 is temporary", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_AUTH, 454, "4.7.0",
	  "Temporary authentication failure", NULL, 0, { NULL }, { NULL } },
	{ "plain text on an implicit-TLS port", SELFHOSTED, 465, PERR_TEMP, PERR_CAUSE_TLS_PLAIN,
	  0, "", NULL, NULL, 0, { "port 465 speaks plain SMTP", "set tls = starttls in ~/.smtprc" },
	  { "tls = implicit" } },
	{ "plain text after STARTTLS's 220", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_TLS_PLAIN, 0,
	  "", NULL, NULL, 0, { "did not start TLS", "tls = implicit with port = 465 in ~/.smtprc" },
	  { "set tls = starttls" } },
	{ "another TLS failure", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_TLS, 0,
	  "", NULL, NULL, 0, { NULL }, { NULL } },
	/* the server hung up before a word */
	{ "closed before the greeting", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_GREETING, 0, "",
	  NULL, NULL, 0, { "hung up before its greeting", "try again later",
	  "check host and port in ~/.smtprc", "postern --probe" }, { "tls = implicit" } },
	{ "a greeting that is not SMTP", SELFHOSTED, 587, PERR_PROTOCOL, PERR_CAUSE_GREETING, 0,
	  "", NULL, NULL, 0, { NULL }, { NULL } },
	/* the certificate: its facts are in the text, the fix here */
	{ "certificate for other names", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CERT_NAME, 0, "",
	  NULL, NULL, 0, { "set host to one of those names in ~/.smtprc" }, { "tls_fingerprint" } },
	{ "certificate from an untrusted CA", SELFHOSTED, 587, PERR_TEMP,
	  PERR_CAUSE_CERT_UNTRUSTED, 0, "", NULL, NULL, 0,
	  { "if the server is yours", "set tls_fingerprint", "tls_ca_file",
	    "account work in ~/.smtprc" }, { "set host" } },
	{ "untrusted CA, the system's file", SYSTEM, 587, PERR_TEMP, PERR_CAUSE_CERT_UNTRUSTED, 0,
	  "", NULL, NULL, 0, { "in /etc/postern/system.smtprc" }, { "~/.smtprc" } },
	{ "certificate not the pinned one", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CERT_PIN, 0, "",
	  NULL, NULL, 0, { "replaced", "tls_fingerprint", "~/.smtprc" }, { "tls_ca_file" } },
	{ "expired certificate", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CERT_EXPIRED, 0, "", NULL,
	  NULL, 0, { "administrator must renew it" }, { "tls_fingerprint", "set host" } },
	{ "certificate not valid yet", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CERT_NOTYET, 0, "",
	  NULL, NULL, 0, { "this machine's clock" }, { "renew" } },
	{ "a client certificate wanted", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_CLIENT_CERT, 0, "",
	  NULL, NULL, 0, { "set tls_cert_file and tls_key_file for account work in ~/.smtprc" },
	  { NULL } },
	/* what the server offers */
	{ "no STARTTLS offered", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_NO_STARTTLS, 0, "", NULL,
	  NULL, 0, { "set tls = implicit and port = 465 in ~/.smtprc", "postern --probe" },
	  { "tls = starttls" } },
	{ "STARTTLS refused (454)", SELFHOSTED, 587, PERR_TEMP, PERR_CAUSE_STARTTLS, 454, "4.7.0",
	  "TLS not available", NULL, 0, { NULL }, { NULL } },
	{ "no login over plain text", CLEARLOGIN, 25, PERR_CONFIG, PERR_CAUSE_CLEARTEXT, 0, "",
	  NULL, NULL, 0, { "set tls = starttls", "tls = implicit with port = 465", "~/.smtprc" },
	  { "auth = off" } },
	{ "no AUTH offered", SELFHOSTED, 587, PERR_UNAVAILABLE, PERR_CAUSE_NO_AUTH, 0, "", NULL,
	  NULL, 0, { "remove user or set auth = off for account work in ~/.smtprc" },
	  { "xoauth2" } },
	{ "no AUTH offered, the system's file", SYSTEM, 587, PERR_UNAVAILABLE, PERR_CAUSE_NO_AUTH,
	  0, "", NULL, NULL, 0, { "in /etc/postern/system.smtprc" }, { "~/.smtprc" } },
	{ "no password mechanism offered (auth = auto)", SELFHOSTED, 587, PERR_UNAVAILABLE,
	  PERR_CAUSE_MECH, 0, "", NULL, NULL, 0,
	  { "auth = xoauth2, oauthbearer or external for account work in ~/.smtprc" },
	  { "one of those" } },
	{ "the mechanism asked for not offered", PLAINAUTH, 587, PERR_UNAVAILABLE, PERR_CAUSE_MECH,
	  0, "", NULL, NULL, 0, { "set auth to one of those, or auto", "~/.smtprc" },
	  { "xoauth2" } },
	{ "538: encryption required for the mechanism", CLEARLOGIN, 25, PERR_AUTH, PERR_CAUSE_AUTH,
	  538, "5.7.11", "Encryption required for requested authentication mechanism", NULL, 0,
	  { "set tls = starttls", "~/.smtprc" }, { "check user", "password" } },
	{ "a local failure", SELFHOSTED, 587, PERR_CONFIG, PERR_CAUSE_NONE, 0, "", NULL, NULL, 0,
	  { NULL }, { NULL } },
};

static void make_error(const struct row *r, struct perr *e)
{
	perr_clear(e);
	if (r->code)
		perr_smtp(e, r->kind, r->code, r->enhanced, "mail.example.org:%u: refused: %d%s%s %s",
			  r->port, r->code, r->enhanced[0] ? " " : "", r->enhanced,
			  r->text ? r->text : "");
	else
		perr_set(e, r->kind, "mail.example.org:%u: failed", r->port);
	perr_because(e, r->cause);
	e->timed_out = r->timed_out;
}

static void test_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct account a = account_of(r->who);
		struct hint_in in = { .a = &a, .port = r->port, .greeting = r->greeting };
		struct perr e;
		char buf[512];
		const char *fix;

		make_error(r, &e);
		fix = hint_for(&e, &in, buf, sizeof buf);
		if (!r->want[0]) {
			if (fix)
				fail_msg("%s: want no fix, got \"%s\"", r->name, fix);
			continue;
		}
		if (!fix)
			fail_msg("%s: no fix", r->name);
		if (strncmp(fix, "; ", 2) != 0 || strchr(fix, '\n'))
			fail_msg("%s: the fix is not one \"; ...\" clause: \"%s\"", r->name, fix);
		for (int w = 0; w < WORDS && r->want[w]; w++)
			if (!strcasestr(fix, r->want[w]))
				fail_msg("%s: \"%s\" lacks \"%s\"", r->name, fix, r->want[w]);
		for (int w = 0; w < WORDS && r->never[w]; w++)
			if (strcasestr(fix, r->never[w]))
				fail_msg("%s: \"%s\" names \"%s\"", r->name, fix, r->never[w]);
	}
}

/* The lines --probe prints never suggest running it, and keep the rest. */
static void test_probing(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct account a = account_of(r->who);
		struct hint_in in = { .a = &a, .port = r->port, .greeting = r->greeting,
				      .probing = true };
		struct perr e;
		char buf[512];
		const char *fix;

		make_error(r, &e);
		fix = hint_for(&e, &in, buf, sizeof buf);
		if (!r->want[0] != !fix)
			fail_msg("%s: probing changes whether there is a fix", r->name);
		if (fix && strstr(fix, "postern --probe"))
			fail_msg("%s: the probe's fix suggests the probe: \"%s\"", r->name, fix);
		for (int w = 0; fix && w < WORDS && r->want[w]; w++)
			if (!strstr(r->want[w], "--probe") && !strcasestr(fix, r->want[w]))
				fail_msg("%s: \"%s\" lacks \"%s\"", r->name, fix, r->want[w]);
	}
}

/* ---- the one line ------------------------------------------------------------ */

/* A long server text is shortened so the fix fits whole. */
static void test_fix_always_fits(void **state)
{
	struct account a = account_of(GMAIL);
	struct hint_in in = { .a = &a, .port = 587 };
	struct perr e;
	char fix[512];
	size_t n;

	(void)state;
	for (size_t fill = 700; fill < PERR_TEXT_MAX; fill += 37) {
		char text[PERR_TEXT_MAX];

		/* "é" (2 bytes) over and over: a cut may fall inside one */
		for (n = 0; n + 2 < fill; n += 2)
			memcpy(text + n, "\xc3\xa9", 2);
		text[n] = '\0';
		perr_smtp(&e, PERR_AUTH, 535, "5.7.8", "%s", text);
		perr_because(&e, PERR_CAUSE_AUTH);
		assert_non_null(hint_for(&e, &in, fix, sizeof fix));
		hint_append(&e, &in);
		n = strlen(e.text);
		assert_true(n < sizeof e.text);
		assert_true(n > strlen(fix));
		assert_string_equal(e.text + n - strlen(fix), fix);
		if (strlen(text) + strlen(fix) >= sizeof e.text) {
			const char *dots = e.text + n - strlen(fix) - 3;

			assert_memory_equal(dots, "...", 3);
			/* the byte before "..." ends a whole "é" */
			assert_int_equal((unsigned char)dots[-1], 0xa9);
			assert_int_equal((unsigned char)dots[-2], 0xc3);
		}
	}
}

static void test_no_fix_leaves_text(void **state)
{
	struct account a = account_of(SELFHOSTED);
	struct perr e;

	(void)state;
	perr_smtp(&e, PERR_NOUSER, 550, "5.1.1", "x: 550 5.1.1 no such user");
	perr_because(&e, PERR_CAUSE_RCPT);
	hint_advise(&e, &a, 587);
	assert_string_equal(e.text, "x: 550 5.1.1 no such user");
}

/* The file named is the one the account was read from. */
static void test_file_read(void **state)
{
	static const char conf[] = "[work]\nhost = mail.example.org\nuser = joe\n"
				   "password_command = pass smtp\n";
	struct config cfg = { 0 };
	struct perr e = { 0 };
	const struct account *a;

	(void)state;
	assert_int_equal(config_load_buffer(&cfg, "/srv/mail/relay.conf", conf, sizeof conf - 1,
					    &e), 0);
	a = config_choose(&cfg, "work", NULL, &e);
	assert_non_null(a);
	assert_string_equal(a->config_file, "/srv/mail/relay.conf");
	perr_set(&e, PERR_TEMP, "cannot resolve mail.example.org: Name or service not known");
	perr_because(&e, PERR_CAUSE_RESOLVE);
	hint_advise(&e, a, 587);
	assert_string_equal(e.text, "cannot resolve mail.example.org: Name or service not known; "
				    "check host in /srv/mail/relay.conf");
	/* an explicit file wins over the account's */
	{
		struct hint_in in = { .a = a, .port = 587, .config_file = "/etc/smtprc" };
		char fix[256];

		assert_string_equal(hint_for(&e, &in, fix, sizeof fix),
				    "; check host in /etc/smtprc");
	}
	config_free(&cfg);
}

/* The greeting alone names Microsoft (hint_advise_greeted). */
static void test_greeted(void **state)
{
	struct account a = account_of(LOCAL);
	struct perr e;

	(void)state;
	perr_smtp(&e, PERR_UNAVAILABLE, 550, "5.7.30", "localhost:587: sender refused: 550 5.7.30 "
		  "Basic authentication is not supported for Client Submission.");
	perr_because(&e, PERR_CAUSE_SENDER);
	hint_advise_greeted(&e, &a, 587, "AM0PR01CA0001.outlook.office365.com Microsoft ESMTP "
			    "MAIL Service ready");
	assert_non_null(strstr(e.text, "basic authentication (a password) is off"));
	perr_smtp(&e, PERR_UNAVAILABLE, 550, "5.7.30", "localhost:587: sender refused: 550 5.7.30 "
		  "Basic authentication is not supported for Client Submission.");
	perr_because(&e, PERR_CAUSE_SENDER);
	hint_advise(&e, &a, 587); /* no greeting: nothing says Microsoft */
	assert_null(strstr(e.text, "basic authentication (a password)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_status),
		cmocka_unit_test(test_provider),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_probing),
		cmocka_unit_test(test_fix_always_fits),
		cmocka_unit_test(test_no_fix_leaves_text),
		cmocka_unit_test(test_file_read),
		cmocka_unit_test(test_greeted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
