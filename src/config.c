/* config.c — the configuration file (~/.smtprc): where it is looked up,
 * reading it through inih, validating every key, [defaults] inheritance,
 * built-in defaults, the origin of each value (for --check), the
 * permission checks (a regular file, owned by the caller or root, writable
 * by no one else; readable by no one else when it holds a password), and
 * choosing an account.
 *
 * The file is read whole (at most CFG_FILE_MAX bytes) and handed to inih
 * one line at a time by our own reader.  The reader counts lines (the
 * installed inih passes no line number to the handler), refuses lines
 * over CFG_LINE_MAX bytes and control characters, tracks sections itself
 * (duplicates, empty accounts), strips leading blanks (so an indented key
 * is never taken as a continuation line), and never lets a value that does
 * not fit inih's fixed line buffer be cut: such values, and every
 * `password` value, are passed to inih as a one-byte stand-in and read
 * from our buffer instead.  Our buffer is wiped after the parse; inih's
 * stack buffer never sees a password. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "util.h"

#define CFG_LINE_MAX 4096           /* longest line accepted, in bytes */
#define CFG_FILE_MAX (1024 * 1024)  /* a configuration is a few KB at most */
#define CFG_SECTIONS_MAX 256        /* [defaults] and accounts */
#define CFG_NAME_MAX 64             /* section and key names */
#define CFG_SHOW_MAX 80             /* bytes of a bad value quoted in an error */
#define CFG_PATH_MAX 4096           /* paths built from $HOME and friends */
#define CFG_TIMEOUT_MAX 3600
#define CFG_LIFETIME_MAX (365L * 86400)
#define CFG_ETC_PATH "/etc/smtprc"

/* The stand-in value given to inih for values it must not see. Control
 * characters are refused in the file, so it cannot occur there. */
#define STANDIN "\001"

static const char *const key_names[CFG_KEY_COUNT] = {
	[CFG_HOST] = "host",
	[CFG_PORT] = "port",
	[CFG_TLS] = "tls",
	[CFG_TLS_CA_FILE] = "tls_ca_file",
	[CFG_TLS_FINGERPRINT] = "tls_fingerprint",
	[CFG_TLS_CERT_FILE] = "tls_cert_file",
	[CFG_TLS_KEY_FILE] = "tls_key_file",
	[CFG_TLS_MIN_VERSION] = "tls_min_version",
	[CFG_AUTH] = "auth",
	[CFG_USER] = "user",
	[CFG_PASSWORD_COMMAND] = "password_command",
	[CFG_PASSWORD] = "password",
	[CFG_PASSWORD_CREDENTIAL] = "password_credential",
	[CFG_FROM] = "from",
	[CFG_DOMAIN] = "domain",
	[CFG_TIMEOUT] = "timeout",
	[CFG_QUEUE] = "queue",
	[CFG_QUEUE_LIFETIME] = "queue_lifetime",
	[CFG_ADD_HEADERS] = "add_headers",
	[CFG_FROM_HEADER] = "from_header",
	[CFG_LOCAL_DOMAINS] = "local_domains",
	[CFG_DSN_NOTIFY] = "dsn_notify",
	[CFG_DSN_RETURN] = "dsn_return",
	[CFG_LOG] = "log",
	[CFG_ALIASES] = "aliases",
	[CFG_ACCOUNT] = "account",
	[CFG_OAUTH2] = "oauth2",
	[CFG_OAUTH2_CLIENT_ID] = "oauth2_client_id",
	[CFG_OAUTH2_CLIENT_SECRET] = "oauth2_client_secret",
	[CFG_OAUTH2_TENANT] = "oauth2_tenant",
	[CFG_OAUTH2_FLOW] = "oauth2_flow",
	[CFG_OAUTH2_AUTH_URL] = "oauth2_auth_url",
	[CFG_OAUTH2_TOKEN_URL] = "oauth2_token_url",
	[CFG_OAUTH2_SCOPE] = "oauth2_scope",
	[CFG_OAUTH2_CA_FILE] = "oauth2_ca_file",
	[CFG_OAUTH2_DEVICE_URL] = "oauth2_device_url",
	[CFG_OAUTH2_CLIENT_SECRET_COMMAND] = "oauth2_client_secret_command",
	[CFG_OAUTH2_KEY_FILE] = "oauth2_key_file",
	[CFG_OAUTH2_CERT_FILE] = "oauth2_cert_file",
};

static const char *const oauth2_names[] = { "none", "google", "microsoft", "custom" };
static const char *const oauth2_flow_names[] = {
	"auto", "authcode", "device", "client_credentials", "service_account",
};

/* The presets (SPEC 10, NOTES "OAuth2 for SMTP").  Microsoft's URLs hold
 * the tenant in place of %s. */
#define GOOGLE_AUTH_URL "https://accounts.google.com/o/oauth2/v2/auth"
#define GOOGLE_TOKEN_URL "https://oauth2.googleapis.com/token"
#define GOOGLE_SCOPE "https://mail.google.com/"
#define MICROSOFT_AUTH_URL "https://login.microsoftonline.com/%s/oauth2/v2.0/authorize"
#define MICROSOFT_TOKEN_URL "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
#define MICROSOFT_DEVICE_URL "https://login.microsoftonline.com/%s/oauth2/v2.0/devicecode"
#define MICROSOFT_SCOPE "https://outlook.office.com/SMTP.Send offline_access"
#define MICROSOFT_APP_SCOPE "https://outlook.office365.com/.default"

static const char *const tls_names[] = { "starttls", "implicit", "off" };

static const char *const auth_names[] = {
	"auto", "plain", "login", "scram-sha-256", "xoauth2", "oauthbearer", "external", "off",
};

/* One section as read: typed values and the line each key was set on. */
struct sect {
	char *name;
	int line;
	int is_defaults;
	struct account acc;
	int set_line[CFG_KEY_COUNT]; /* 0: not set here */
};

struct parse {
	const char *show;            /* the path as printed (~ for $HOME) */
	const char *buf;             /* the file's bytes */
	size_t len, pos;
	int lineno;
	const char *standin_val;     /* value of the current stood-in line */
	size_t standin_len;
	struct sect *sects;
	int nsects;
	struct sect *cur;
	char *default_account;
	int failed;
	struct perr *e;
};

const char *config_key_name(enum cfg_key k)
{
	return (unsigned)k < CFG_KEY_COUNT ? key_names[k] : "?";
}

const char *config_oauth2_name(enum oauth2_provider p)
{
	return (unsigned)p < sizeof(oauth2_names) / sizeof(oauth2_names[0]) ? oauth2_names[p] : "?";
}

const char *config_tls_name(enum tls_mode m)
{
	return (unsigned)m < sizeof(tls_names) / sizeof(tls_names[0]) ? tls_names[m] : "?";
}

const char *config_auth_name(enum auth_mech m)
{
	return (unsigned)m < sizeof(auth_names) / sizeof(auth_names[0]) ? auth_names[m] : "?";
}

/* ---- paths ------------------------------------------------------------- */

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h)
		return h;
	pw = getpwuid(getuid());
	return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

/* The path as shown to the user: $HOME/x becomes ~/x. */
static void show_path(const char *path, char *out, size_t cap)
{
	const char *h = home_dir();
	size_t hl = h ? strlen(h) : 0;

	if (hl > 1 && strncmp(path, h, hl) == 0 && path[hl] == '/')
		snprintf(out, cap, "~%s", path + hl);
	else
		snprintf(out, cap, "%s", path);
}

/* "~/x" -> "$HOME/x"; anything else copied. */
static char *expand_home(const char *v)
{
	const char *h = home_dir();
	char buf[CFG_PATH_MAX];

	if (v[0] != '~' || v[1] != '/' || !h)
		return xstrdup(v);
	if ((size_t)snprintf(buf, sizeof(buf), "%s%s", h, v + 1) >= sizeof(buf))
		return xstrdup(v);
	return xstrdup(buf);
}

/* ---- errors ------------------------------------------------------------ */

static void fail(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first error as "FILE:LINE: text" and stop the parse. */
static void fail(struct parse *p, int line, const char *fmt, ...)
{
	char msg[PERR_TEXT_MAX];
	va_list ap;

	if (p->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->failed = 1;
	if (line > 0)
		perr_set(p->e, PERR_CONFIG, "%s:%d: %s", p->show, line, msg);
	else
		perr_set(p->e, PERR_CONFIG, "%s: %s", p->show, msg);
}

/* ---- value parsers: 0, or -1 with "problem; fix" in why ---------------- */

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Decimal digits only, at most max; no sign, no overflow. */
static int parse_uint(const char *s, size_t n, long max, long *out)
{
	long v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static int word_index(const char *v, const char *const *words, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (str_ieq(v, words[i]))
			return i;
	return -1;
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	if (word_index(v, yes, 4) >= 0)
		*out = 1;
	else if (word_index(v, no, 4) >= 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int parse_ports(const char *v, struct account *a, char *why, size_t cap)
{
	const char *s = v;
	long port;
	size_t n;

	a->nports = 0;
	while (*s) {
		while (is_blank(*s) || *s == ',')
			s++;
		if (!*s)
			break;
		n = strcspn(s, " \t,");
		if (parse_uint(s, n, 65535, &port) < 0 || port == 0) {
			snprintf(why, cap, "'%.*s' is not a port number (1-65535); "
				 "write e.g. port = 587, or a list: port = 587 465 2525",
				 (int)(n < CFG_SHOW_MAX ? n : CFG_SHOW_MAX), s);
			return -1;
		}
		if (a->nports == CFG_PORTS_MAX) {
			snprintf(why, cap, "more than %d ports; list at most %d",
				 CFG_PORTS_MAX, CFG_PORTS_MAX);
			return -1;
		}
		a->ports[a->nports++] = (unsigned)port;
		s += n;
	}
	if (a->nports == 0) {
		snprintf(why, cap, "no port given; write e.g. port = 587");
		return -1;
	}
	return 0;
}

/* A duration: plain seconds, or a number with s, m, h, d (or w); from
 * 1 s to max seconds. */
static int parse_duration(const char *v, long max, long *out)
{
	size_t n = strlen(v);
	long mult = 1, num;

	if (n > 1) {
		switch (v[n - 1]) {
		case 's': mult = 1; n--; break;
		case 'm': mult = 60; n--; break;
		case 'h': mult = 3600; n--; break;
		case 'd': mult = 86400; n--; break;
		case 'w': mult = 7 * 86400; n--; break;
		default: break;
		}
	}
	if (parse_uint(v, n, max, &num) < 0 || num == 0)
		return -1;
	if (num > max / mult)
		return -1;
	*out = num * mult;
	return 0;
}

static int is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* "sha256:" then 64 hex digits, optionally a colon between pairs. */
static int check_fingerprint(const char *v)
{
	int digits = 0;

	if (strncasecmp(v, "sha256:", 7) != 0)
		return -1;
	for (v += 7; *v; v++) {
		if (is_hex((unsigned char)*v)) {
			digits++;
		} else if (*v == ':' && digits % 2 == 0 && digits > 0 && v[1]) {
			continue;
		} else {
			return -1;
		}
	}
	return digits == 64 ? 0 : -1;
}

/* A checked fingerprint as "sha256:" and 64 lower-case hex digits. */
static char *fingerprint_normal(const char *v)
{
	char out[7 + 64 + 1];
	size_t n = 7;

	memcpy(out, "sha256:", 7);
	for (v += 7; *v && n < sizeof(out) - 1; v++)
		if (*v != ':')
			out[n++] = (*v >= 'A' && *v <= 'F') ? (char)(*v - 'A' + 'a') : *v;
	out[n] = '\0';
	return xstrdup(out);
}

/* never, or a comma list of success, failure, delay. */
static int check_dsn_notify(const char *v)
{
	static const char *const words[] = { "success", "failure", "delay" };
	char item[16];
	size_t n;

	if (str_ieq(v, "never"))
		return 0;
	for (;;) {
		n = strcspn(v, ",");
		if (n == 0 || n >= sizeof(item))
			return -1;
		memcpy(item, v, n);
		item[n] = '\0';
		if (word_index(item, words, 3) < 0)
			return -1;
		if (!v[n])
			return 0;
		v += n + 1;
	}
}

/* A host or EHLO name: non-empty, no blanks (control bytes are refused
 * for the whole file already). */
static int check_name(const char *v, const char *k, char *why, size_t cap)
{
	if (!*v) {
		snprintf(why, cap, "empty; write e.g. %s = smtp.example.com", k);
		return -1;
	}
	if (strpbrk(v, " \t")) {
		snprintf(why, cap, "'%.*s' contains a space; write only the name, "
			 "e.g. %s = smtp.example.com", CFG_SHOW_MAX, v, k);
		return -1;
	}
	if (strlen(v) > 255) {
		snprintf(why, cap, "longer than 255 bytes; a DNS name is at most 253");
		return -1;
	}
	return 0;
}

/* from: an address or a glob with a local part and a domain. */
static int check_from(const char *v, char *why, size_t cap)
{
	const char *at = strrchr(v, '@');

	if (!*v || strpbrk(v, " \t<>\"") || !at || at == v || !at[1]) {
		snprintf(why, cap, "'%.*s' is not an address or glob; write e.g. "
			 "from = joe@example.com or from = *@example.com", CFG_SHOW_MAX, v);
		return -1;
	}
	return 0;
}

static int parse_enum(const char *v, const char *const *names, int n, int *out,
		      const char *k, char *why, size_t cap)
{
	char list[256];
	size_t used = 0;
	int i = word_index(v, names, n);

	if (i >= 0) {
		*out = i;
		return 0;
	}
	list[0] = '\0';
	for (i = 0; i < n && used < sizeof(list); i++)
		used += snprintf(list + used, sizeof(list) - used, "%s%s",
				 i ? (i == n - 1 ? " or " : ", ") : "", names[i]);
	snprintf(why, cap, "'%.*s' is not %s; write e.g. %s = %s", CFG_SHOW_MAX, v, list, k,
		 names[0]);
	return -1;
}

static int set_str(char **field, const char *v, char *why, size_t cap)
{
	if (!*v) {
		snprintf(why, cap, "empty value; give a value or remove the line");
		return -1;
	}
	*field = xstrdup(v);
	return 0;
}

static int set_path(char **field, const char *v, char *why, size_t cap)
{
	if (!*v) {
		snprintf(why, cap, "empty value; give a file path or remove the line");
		return -1;
	}
	*field = expand_home(v);
	return 0;
}

static int parse_log(struct account *a, const char *v, char *why, size_t cap)
{
	if (str_ieq(v, "syslog") || str_ieq(v, "off")) {
		a->log = xstrdup(str_ieq(v, "off") ? "off" : "syslog");
		return 0;
	}
	if (v[0] != '/' && !(v[0] == '~' && v[1] == '/')) {
		snprintf(why, cap, "'%.*s' is not syslog, off or an absolute file path; "
			 "write e.g. log = syslog or log = ~/.postern.log", CFG_SHOW_MAX, v);
		return -1;
	}
	a->log = expand_home(v);
	return 0;
}

static int parse_timing(struct account *a, enum cfg_key k, const char *v, char *why,
			size_t cap)
{
	long n;

	if (k == CFG_TIMEOUT) {
		if (parse_duration(v, CFG_TIMEOUT_MAX, &n) < 0) {
			snprintf(why, cap, "'%.*s' is not a duration from 1 s to 1h; write e.g. "
				 "timeout = 30 (seconds) or 30s, 2m", CFG_SHOW_MAX, v);
			return -1;
		}
		a->timeout = (int)n;
		return 0;
	}
	if (parse_duration(v, CFG_LIFETIME_MAX, &a->queue_lifetime) < 0) {
		snprintf(why, cap, "'%.*s' is not a duration up to 365d; write e.g. "
			 "queue_lifetime = 5d (or 12h, 30m, 3600s)", CFG_SHOW_MAX, v);
		return -1;
	}
	return 0;
}

static int parse_flag(struct account *a, enum cfg_key k, const char *v, char *why,
		      size_t cap)
{
	int *field = k == CFG_QUEUE ? &a->queue : &a->add_headers;

	if (parse_bool(v, field) < 0) {
		snprintf(why, cap, "'%.*s' is not on or off; write %s = on or %s = off",
			 CFG_SHOW_MAX, v, key_names[k], key_names[k]);
		return -1;
	}
	return 0;
}

static int parse_tls_key(struct account *a, enum cfg_key k, const char *v, char *why,
			 size_t cap)
{
	static const char *const versions[] = { "1.2", "1.3" };
	int i;

	switch (k) {
	case CFG_TLS:
		if (parse_enum(v, tls_names, 3, &i, "tls", why, cap) < 0)
			return -1;
		a->tls = (enum tls_mode)i;
		a->tls_explicit = 1;
		return 0;
	case CFG_TLS_MIN_VERSION:
		if (parse_enum(v, versions, 2, &i, "tls_min_version", why, cap) < 0)
			return -1;
		a->tls_min_version = 12 + i;
		return 0;
	case CFG_TLS_FINGERPRINT:
		if (check_fingerprint(v) < 0) {
			snprintf(why, cap, "'%.*s' is not sha256: and 64 hex digits; get it with "
				 "postern --probe or: openssl x509 -noout -fingerprint -sha256",
				 CFG_SHOW_MAX, v);
			return -1;
		}
		a->tls_fingerprint = fingerprint_normal(v);
		return 0;
	case CFG_TLS_CA_FILE:
		return set_path(&a->tls_ca_file, v, why, cap);
	case CFG_TLS_CERT_FILE:
		return set_path(&a->tls_cert_file, v, why, cap);
	default:
		return set_path(&a->tls_key_file, v, why, cap);
	}
}

static int parse_dsn(struct account *a, enum cfg_key k, const char *v, char *why, size_t cap)
{
	static const char *const ret[] = { "full", "hdrs" };
	int i;

	if (k == CFG_DSN_RETURN) {
		if (parse_enum(v, ret, 2, &i, "dsn_return", why, cap) < 0)
			return -1;
		a->dsn_return = xstrdup(ret[i]);
		return 0;
	}
	if (check_dsn_notify(v) < 0) {
		snprintf(why, cap, "'%.*s' is not never or a comma list of success, failure, "
			 "delay; write e.g. dsn_notify = failure,delay", CFG_SHOW_MAX, v);
		return -1;
	}
	a->dsn_notify = xstrdup(v);
	return 0;
}

static int check_https_url(const char *v, const char *key, char *why, size_t cap)
{
	if (strncmp(v, "https://", 8) != 0 || !v[8] || strpbrk(v, " \t")) {
		snprintf(why, cap, "'%.*s' is not an https:// URL; %s must be one, e.g. "
			 "https://login.example.com/oauth2/token", CFG_SHOW_MAX, v, key);
		return -1;
	}
	return 0;
}

static int parse_oauth2_key(struct account *a, enum cfg_key k, const char *v, char *why,
			    size_t cap)
{
	int i;

	switch (k) {
	case CFG_OAUTH2:
		if (parse_enum(v, oauth2_names + 1, 3, &i, "oauth2", why, cap) < 0)
			return -1;
		a->oauth2 = (enum oauth2_provider)(i + 1);
		return 0;
	case CFG_OAUTH2_FLOW:
		if (parse_enum(v, oauth2_flow_names, 5, &i, "oauth2_flow", why, cap) < 0)
			return -1;
		a->oauth2_flow = (enum oauth2_flow)i;
		return 0;
	case CFG_OAUTH2_CLIENT_ID:
		return set_str(&a->oauth2_client_id, v, why, cap);
	case CFG_OAUTH2_CLIENT_SECRET:
		return set_str(&a->oauth2_client_secret, v, why, cap);
	case CFG_OAUTH2_TENANT:
		if (!*v || strpbrk(v, "/?#% \t")) {
			snprintf(why, cap, "'%.*s' is not a tenant; write common, organizations, "
				 "consumers, a domain or a tenant id", CFG_SHOW_MAX, v);
			return -1;
		}
		return set_str(&a->oauth2_tenant, v, why, cap);
	case CFG_OAUTH2_AUTH_URL: case CFG_OAUTH2_TOKEN_URL: case CFG_OAUTH2_DEVICE_URL:
		if (check_https_url(v, key_names[k], why, cap) < 0)
			return -1;
		return set_str(k == CFG_OAUTH2_AUTH_URL ? &a->oauth2_auth_url
			       : k == CFG_OAUTH2_TOKEN_URL ? &a->oauth2_token_url
			       : &a->oauth2_device_url, v, why, cap);
	case CFG_OAUTH2_CLIENT_SECRET_COMMAND:
		return set_str(&a->oauth2_client_secret_command, v, why, cap);
	case CFG_OAUTH2_KEY_FILE:
		return set_path(&a->oauth2_key_file, v, why, cap);
	case CFG_OAUTH2_CERT_FILE:
		return set_path(&a->oauth2_cert_file, v, why, cap);
	case CFG_OAUTH2_SCOPE:
		return set_str(&a->oauth2_scope, v, why, cap);
	case CFG_OAUTH2_CA_FILE:
		return set_path(&a->oauth2_ca_file, v, why, cap);
	default:
		snprintf(why, cap, "internal: no parser");
		return -1;
	}
}

/* Validate v for key k and store it in a. */
static int parse_value(struct account *a, enum cfg_key k, const char *v, char *why, size_t cap)
{
	static const char *const fromhdr[] = { "keep", "force" };
	int i;

	switch (k) {
	case CFG_HOST:
	case CFG_DOMAIN:
		if (check_name(v, key_names[k], why, cap) < 0)
			return -1;
		return set_str(k == CFG_HOST ? &a->host : &a->domain, v, why, cap);
	case CFG_PORT:
		return parse_ports(v, a, why, cap);
	case CFG_TLS: case CFG_TLS_MIN_VERSION: case CFG_TLS_FINGERPRINT:
	case CFG_TLS_CA_FILE: case CFG_TLS_CERT_FILE: case CFG_TLS_KEY_FILE:
		return parse_tls_key(a, k, v, why, cap);
	case CFG_AUTH:
		if (parse_enum(v, auth_names, 8, &i, "auth", why, cap) < 0)
			return -1;
		a->auth = (enum auth_mech)i;
		return 0;
	case CFG_USER:
		return set_str(&a->user, v, why, cap);
	case CFG_PASSWORD_COMMAND:
		return set_str(&a->password_command, v, why, cap);
	case CFG_PASSWORD:
		return set_str(&a->password, v, why, cap);
	case CFG_PASSWORD_CREDENTIAL:
		if (!v[0] || strchr(v, '/') || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
			snprintf(why, cap, "password_credential is the name of a systemd "
				 "credential (LoadCredential=NAME:PATH), not a path");
			return -1;
		}
		return set_str(&a->password_credential, v, why, cap);
	case CFG_FROM:
		if (check_from(v, why, cap) < 0)
			return -1;
		return set_str(&a->from, v, why, cap);
	case CFG_TIMEOUT: case CFG_QUEUE_LIFETIME:
		return parse_timing(a, k, v, why, cap);
	case CFG_QUEUE: case CFG_ADD_HEADERS:
		return parse_flag(a, k, v, why, cap);
	case CFG_FROM_HEADER:
		if (parse_enum(v, fromhdr, 2, &i, "from_header", why, cap) < 0)
			return -1;
		a->from_header_force = i;
		return 0;
	case CFG_LOCAL_DOMAINS:
		return set_str(&a->local_domains, v, why, cap);
	case CFG_DSN_NOTIFY: case CFG_DSN_RETURN:
		return parse_dsn(a, k, v, why, cap);
	case CFG_LOG:
		return parse_log(a, v, why, cap);
	case CFG_ALIASES:
		return set_path(&a->aliases, v, why, cap);
	case CFG_OAUTH2: case CFG_OAUTH2_CLIENT_ID: case CFG_OAUTH2_CLIENT_SECRET:
	case CFG_OAUTH2_TENANT: case CFG_OAUTH2_FLOW: case CFG_OAUTH2_AUTH_URL:
	case CFG_OAUTH2_TOKEN_URL: case CFG_OAUTH2_SCOPE: case CFG_OAUTH2_CA_FILE:
	case CFG_OAUTH2_DEVICE_URL: case CFG_OAUTH2_CLIENT_SECRET_COMMAND:
	case CFG_OAUTH2_KEY_FILE: case CFG_OAUTH2_CERT_FILE:
		return parse_oauth2_key(a, k, v, why, cap);
	default:
		snprintf(why, cap, "internal: no parser");
		return -1;
	}
}

/* ---- the inih handler --------------------------------------------------- */

static int key_lookup(const char *name)
{
	int k;

	for (k = 0; k < CFG_KEY_COUNT; k++)
		if (strcmp(name, key_names[k]) == 0)
			return k;
	return -1;
}

static void fail_unknown_key(struct parse *p, const char *name)
{
	int k;

	for (k = 0; k < CFG_KEY_COUNT; k++)
		if (str_ieq(name, key_names[k]))
			break;
	if (k < CFG_KEY_COUNT)
		fail(p, p->lineno, "key '%s': unknown key; keys are lower case: write '%s'",
		     name, key_names[k]);
	else
		fail(p, p->lineno, "key '%s': unknown key; see smtprc(5) for the keys", name);
}

static int set_account_key(struct parse *p, const char *v)
{
	if (!p->cur->is_defaults) {
		fail(p, p->lineno, "key 'account': only allowed in [defaults]; move it there "
		     "(it names the account used when none is chosen)");
		return -1;
	}
	if (!*v) {
		fail(p, p->lineno, "key 'account': empty value; name an account, e.g. account = work");
		return -1;
	}
	p->default_account = xstrdup(v);
	return 0;
}

static int set_key(struct parse *p, const char *name, const char *value)
{
	char why[PERR_TEXT_MAX / 2];
	int k = key_lookup(name);

	if (k < 0) {
		fail_unknown_key(p, name);
		return -1;
	}
	if (!p->cur) {
		fail(p, p->lineno, "key '%s': outside any section; put it under [defaults] "
		     "or under an account such as [work]", name);
		return -1;
	}
	if (p->cur->set_line[k]) {
		fail(p, p->lineno, "key '%s': already set in [%s] at line %d; keep only one",
		     name, p->cur->name, p->cur->set_line[k]);
		return -1;
	}
	if (k == CFG_ACCOUNT) {
		if (set_account_key(p, value) < 0)
			return -1;
	} else if (parse_value(&p->cur->acc, (enum cfg_key)k, value, why, sizeof(why)) < 0) {
		fail(p, p->lineno, "key '%s': %s", name, why);
		return -1;
	}
	p->cur->set_line[k] = p->lineno;
	return 0;
}

/* The value of a stood-in line, treated as inih treats values: cut at a
 * ';' that follows a blank, blanks stripped at both ends. */
static char *standin_value(const struct parse *p)
{
	const char *s = p->standin_val, *end = s + p->standin_len, *q;
	int was_blank = 0;

	for (q = s; q < end; q++) {
		if (was_blank && *q == ';')
			break;
		was_blank = is_blank(*q);
	}
	end = q;
	while (s < end && is_blank(*s))
		s++;
	while (end > s && is_blank(end[-1]))
		end--;
	return xstrndup(s, (size_t)(end - s));
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	char *own = NULL;
	int r;

	(void)section; /* the reader tracks sections itself */
	if (p->failed)
		return 1;
	if (p->standin_val && strcmp(value, STANDIN) == 0)
		value = own = standin_value(p);
	r = set_key(p, name, value);
	wipe_free(own);
	return r == 0;
}

/* ---- the line reader ---------------------------------------------------- */

/* Hand inih one line: s[0..n) and a newline. */
static char *give(char *str, int num, const char *s, size_t n)
{
	if (n + 2 > (size_t)num)
		n = 0; /* callers make sure this does not happen */
	memcpy(str, s, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

static int check_line_bytes(struct parse *p, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			fail(p, p->lineno, "control character 0x%02x in column %zu; "
			     "remove it (values cannot hold control characters)", c, i + 1);
			return -1;
		}
	}
	return 0;
}

static int section_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > CFG_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '[' || s[i] == ';' || s[i] == '#')
			return 0;
	return 1;
}

static struct sect *add_section(struct parse *p, const char *name, size_t n)
{
	struct sect *s;
	int i;

	for (i = 0; i < p->nsects; i++) {
		if (strlen(p->sects[i].name) == n && memcmp(p->sects[i].name, name, n) == 0) {
			fail(p, p->lineno, "section [%s] is already defined at line %d; "
			     "merge the two or rename one", p->sects[i].name, p->sects[i].line);
			return NULL;
		}
	}
	if (p->nsects == CFG_SECTIONS_MAX) {
		fail(p, p->lineno, "more than %d sections; remove some", CFG_SECTIONS_MAX);
		return NULL;
	}
	p->sects = xrealloc(p->sects, sizeof(*p->sects) * (size_t)(p->nsects + 1));
	s = &p->sects[p->nsects++];
	memset(s, 0, sizeof(*s));
	s->name = xstrndup(name, n);
	s->line = p->lineno;
	s->is_defaults = strcmp(s->name, "defaults") == 0;
	return s;
}

static char *section_line(struct parse *p, char *str, int num, const char *s, size_t n)
{
	const char *rb = memchr(s, ']', n), *q;

	if (!rb) {
		fail(p, p->lineno, "section header without ']'; write [defaults] or [NAME]");
		return NULL;
	}
	for (q = rb + 1; q < s + n && is_blank(*q); q++)
		;
	if (q < s + n && *q != ';' && *q != '#') {
		fail(p, p->lineno, "text after ']'; put only [NAME] on the line");
		return NULL;
	}
	if (!section_name_ok(s + 1, (size_t)(rb - s - 1))) {
		fail(p, p->lineno, "bad section name '%.*s'; use 1 to %d characters without "
		     "spaces, e.g. [work]", (int)(rb - s - 1 < CFG_SHOW_MAX ? rb - s - 1 : CFG_SHOW_MAX),
		     s + 1, CFG_NAME_MAX);
		return NULL;
	}
	p->cur = add_section(p, s + 1, (size_t)(rb - s - 1));
	if (!p->cur)
		return NULL;
	return give(str, num, s, (size_t)(rb - s + 1));
}

static char *key_line(struct parse *p, char *str, int num, const char *s, size_t n)
{
	const char *sep = s;
	size_t klen;
	int was_blank = 0;

	/* as inih does: the key ends at '=' or ':'; a ';' after a blank
	 * starts a comment */
	while (sep < s + n && *sep != '=' && *sep != ':' && !(was_blank && *sep == ';'))
		was_blank = is_blank(*sep++);
	if (sep == s + n || *sep == ';') {
		fail(p, p->lineno, "expected 'key = value' or '[section]'; "
		     "comments start with ';' or '#'");
		return NULL;
	}
	for (klen = (size_t)(sep - s); klen && is_blank(s[klen - 1]); klen--)
		;
	if (klen == 0 || klen > CFG_NAME_MAX) {
		fail(p, p->lineno, "%s; write 'key = value'",
		     klen ? "key name too long" : "no key name before '='");
		return NULL;
	}
	if (n + 2 <= (size_t)num && !(klen == 8 && memcmp(s, "password", 8) == 0) &&
	    !(klen == 20 && memcmp(s, "oauth2_client_secret", 20) == 0))
		return give(str, num, s, n);
	/* Too long for inih's buffer, or a secret: inih sees "key=\001". */
	p->standin_val = sep + 1;
	p->standin_len = (size_t)(s + n - sep - 1);
	memcpy(str, s, klen);
	str[klen] = '=';
	str[klen + 1] = STANDIN[0];
	str[klen + 2] = '\n';
	str[klen + 3] = '\0';
	return str;
}

/* inih's reader: one physical line per call. */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	const char *line, *end, *nl;
	size_t n;

	p->standin_val = NULL;
	if (p->failed || p->pos >= p->len)
		return NULL;
	if (num < CFG_NAME_MAX + 8) {
		fail(p, 0, "internal: inih line buffer of %d bytes is too small", num);
		return NULL;
	}
	line = p->buf + p->pos;
	nl = memchr(line, '\n', p->len - p->pos);
	end = nl ? nl : p->buf + p->len;
	p->pos = nl ? (size_t)(nl - p->buf) + 1 : p->len;
	p->lineno++;
	if (end > line && end[-1] == '\r')
		end--;
	n = (size_t)(end - line);
	if (n > CFG_LINE_MAX) {
		fail(p, p->lineno, "line too long (over %d bytes); shorten it (a long "
		     "password_command can run a script)", CFG_LINE_MAX);
		return NULL;
	}
	if (check_line_bytes(p, line, n) < 0)
		return NULL;
	while (n && is_blank(*line))
		line++, n--;
	if (n == 0 || *line == ';' || *line == '#')
		return give(str, num, "", 0);
	if (*line == '[')
		return section_line(p, str, num, line, n);
	return key_line(p, str, num, line, n);
}

/* ---- from sections to accounts ----------------------------------------- */

static void account_clear(struct account *a)
{
	int k;

	free(a->name);
	free(a->config_file);
	free(a->host);
	free(a->tls_ca_file);
	free(a->tls_fingerprint);
	free(a->tls_cert_file);
	free(a->tls_key_file);
	free(a->user);
	free(a->password_command);
	free(a->password_credential);
	wipe_free(a->password);
	free(a->from);
	free(a->domain);
	free(a->local_domains);
	free(a->dsn_notify);
	free(a->dsn_return);
	free(a->log);
	free(a->aliases);
	free(a->oauth2_client_id);
	wipe_free(a->oauth2_client_secret);
	free(a->oauth2_tenant);
	free(a->oauth2_auth_url);
	free(a->oauth2_token_url);
	free(a->oauth2_scope);
	free(a->oauth2_ca_file);
	free(a->oauth2_device_url);
	free(a->oauth2_client_secret_command);
	free(a->oauth2_key_file);
	free(a->oauth2_cert_file);
	for (k = 0; k < CFG_KEY_COUNT; k++)
		free(a->origin[k]);
	memset(a, 0, sizeof(*a));
}

static void dup_field(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

/* Copy key k's value from [defaults] into an account. */
static void inherit_key(struct account *a, const struct account *d, enum cfg_key k)
{
	switch (k) {
	case CFG_HOST: dup_field(&a->host, d->host); break;
	case CFG_PORT:
		memcpy(a->ports, d->ports, sizeof(a->ports));
		a->nports = d->nports;
		break;
	case CFG_TLS: a->tls = d->tls; a->tls_explicit = d->tls_explicit; break;
	case CFG_TLS_CA_FILE: dup_field(&a->tls_ca_file, d->tls_ca_file); break;
	case CFG_TLS_FINGERPRINT: dup_field(&a->tls_fingerprint, d->tls_fingerprint); break;
	case CFG_TLS_CERT_FILE: dup_field(&a->tls_cert_file, d->tls_cert_file); break;
	case CFG_TLS_KEY_FILE: dup_field(&a->tls_key_file, d->tls_key_file); break;
	case CFG_TLS_MIN_VERSION: a->tls_min_version = d->tls_min_version; break;
	case CFG_AUTH: a->auth = d->auth; break;
	case CFG_USER: dup_field(&a->user, d->user); break;
	case CFG_PASSWORD_COMMAND: dup_field(&a->password_command, d->password_command); break;
	case CFG_PASSWORD_CREDENTIAL:
		dup_field(&a->password_credential, d->password_credential);
		break;
	case CFG_PASSWORD:
		wipe_free(a->password);
		a->password = d->password ? xstrdup(d->password) : NULL;
		break;
	case CFG_FROM: dup_field(&a->from, d->from); break;
	case CFG_DOMAIN: dup_field(&a->domain, d->domain); break;
	case CFG_TIMEOUT: a->timeout = d->timeout; break;
	case CFG_QUEUE: a->queue = d->queue; break;
	case CFG_QUEUE_LIFETIME: a->queue_lifetime = d->queue_lifetime; break;
	case CFG_ADD_HEADERS: a->add_headers = d->add_headers; break;
	case CFG_FROM_HEADER: a->from_header_force = d->from_header_force; break;
	case CFG_LOCAL_DOMAINS: dup_field(&a->local_domains, d->local_domains); break;
	case CFG_DSN_NOTIFY: dup_field(&a->dsn_notify, d->dsn_notify); break;
	case CFG_DSN_RETURN: dup_field(&a->dsn_return, d->dsn_return); break;
	case CFG_LOG: dup_field(&a->log, d->log); break;
	case CFG_ALIASES: dup_field(&a->aliases, d->aliases); break;
	case CFG_OAUTH2: a->oauth2 = d->oauth2; break;
	case CFG_OAUTH2_CLIENT_ID: dup_field(&a->oauth2_client_id, d->oauth2_client_id); break;
	case CFG_OAUTH2_CLIENT_SECRET:
		wipe_free(a->oauth2_client_secret);
		a->oauth2_client_secret = d->oauth2_client_secret ? xstrdup(d->oauth2_client_secret)
					  : NULL;
		break;
	case CFG_OAUTH2_TENANT: dup_field(&a->oauth2_tenant, d->oauth2_tenant); break;
	case CFG_OAUTH2_FLOW: a->oauth2_flow = d->oauth2_flow; break;
	case CFG_OAUTH2_AUTH_URL: dup_field(&a->oauth2_auth_url, d->oauth2_auth_url); break;
	case CFG_OAUTH2_TOKEN_URL: dup_field(&a->oauth2_token_url, d->oauth2_token_url); break;
	case CFG_OAUTH2_SCOPE: dup_field(&a->oauth2_scope, d->oauth2_scope); break;
	case CFG_OAUTH2_CA_FILE: dup_field(&a->oauth2_ca_file, d->oauth2_ca_file); break;
	case CFG_OAUTH2_DEVICE_URL: dup_field(&a->oauth2_device_url, d->oauth2_device_url); break;
	case CFG_OAUTH2_CLIENT_SECRET_COMMAND:
		dup_field(&a->oauth2_client_secret_command, d->oauth2_client_secret_command);
		break;
	case CFG_OAUTH2_KEY_FILE: dup_field(&a->oauth2_key_file, d->oauth2_key_file); break;
	case CFG_OAUTH2_CERT_FILE: dup_field(&a->oauth2_cert_file, d->oauth2_cert_file); break;
	default: break;
	}
}

/* Set key k's built-in default; 0 when the key has none. */
static int builtin_default(struct account *a, enum cfg_key k)
{
	switch (k) {
	case CFG_PORT:
		a->ports[0] = a->tls == TLS_IMPLICIT ? 465 : 587;
		a->nports = 1;
		return 1;
	case CFG_TLS: a->tls = TLS_STARTTLS; a->tls_explicit = 0; return 1;
	case CFG_TLS_MIN_VERSION: a->tls_min_version = 12; return 1;
	case CFG_AUTH: a->auth = AUTH_AUTO; return 1;
	case CFG_TIMEOUT: a->timeout = 30; return 1;
	case CFG_QUEUE: a->queue = 1; return 1;
	case CFG_QUEUE_LIFETIME: a->queue_lifetime = 5L * 86400; return 1;
	case CFG_ADD_HEADERS: a->add_headers = 1; return 1;
	case CFG_FROM_HEADER: a->from_header_force = 0; return 1;
	case CFG_LOG: dup_field(&a->log, "syslog"); return 1;
	default: return 0;
	}
}

static char *origin_of(const struct parse *p, int line, const char *sect)
{
	char buf[CFG_PATH_MAX + CFG_NAME_MAX + 32];

	snprintf(buf, sizeof(buf), "%s:%d [%s]", p->show, line, sect);
	return xstrdup(buf);
}

/* A preset's value for a key left unset, with its origin. */
static void preset(struct account *a, enum cfg_key k, char **field, const char *value)
{
	char buf[512];

	if (*field)
		return;
	*field = xstrdup(value);
	free(a->origin[k]);
	snprintf(buf, sizeof buf, "oauth2 = %s preset", oauth2_names[a->oauth2]);
	a->origin[k] = xstrdup(buf);
}

/* With oauth2 set: the preset's URLs and scope, auth xoauth2 unless
 * oauthbearer was chosen, and the keys a flow needs.  Each error names
 * the key and the fix. */
static void oauth2_flow_check(struct parse *p, const struct sect *s, struct account *a);

static void oauth2_finish(struct parse *p, const struct sect *s, struct account *a)
{
	if (!a->oauth2) {
		if (a->origin[CFG_OAUTH2_CLIENT_ID])
			fail(p, s->line, "account [%s] has oauth2_client_id but no oauth2 = "
			     "google | microsoft | custom; add it", a->name);
		return;
	}
	if (a->oauth2 == OAUTH2_MICROSOFT && !a->oauth2_tenant)
		a->oauth2_tenant = xstrdup("common");
	if (a->oauth2_flow == OAUTH2_FLOW_AUTO) {
		a->oauth2_flow = a->oauth2 == OAUTH2_MICROSOFT ? OAUTH2_FLOW_DEVICE
				 : a->oauth2 == OAUTH2_CUSTOM && a->oauth2_device_url &&
				   !a->oauth2_auth_url ? OAUTH2_FLOW_DEVICE : OAUTH2_FLOW_AUTHCODE;
		free(a->origin[CFG_OAUTH2_FLOW]);
		a->origin[CFG_OAUTH2_FLOW] = xstrdup("auto: the preset's interactive flow");
	}
	if (a->oauth2 == OAUTH2_GOOGLE) {
		preset(a, CFG_OAUTH2_AUTH_URL, &a->oauth2_auth_url, GOOGLE_AUTH_URL);
		preset(a, CFG_OAUTH2_TOKEN_URL, &a->oauth2_token_url, GOOGLE_TOKEN_URL);
		preset(a, CFG_OAUTH2_SCOPE, &a->oauth2_scope, GOOGLE_SCOPE);
	} else if (a->oauth2 == OAUTH2_MICROSOFT) {
		char url[512];

		snprintf(url, sizeof url, MICROSOFT_AUTH_URL, a->oauth2_tenant);
		preset(a, CFG_OAUTH2_AUTH_URL, &a->oauth2_auth_url, url);
		snprintf(url, sizeof url, MICROSOFT_TOKEN_URL, a->oauth2_tenant);
		preset(a, CFG_OAUTH2_TOKEN_URL, &a->oauth2_token_url, url);
		snprintf(url, sizeof url, MICROSOFT_DEVICE_URL, a->oauth2_tenant);
		preset(a, CFG_OAUTH2_DEVICE_URL, &a->oauth2_device_url, url);
		preset(a, CFG_OAUTH2_SCOPE, &a->oauth2_scope,
		       a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS ? MICROSOFT_APP_SCOPE
		       : MICROSOFT_SCOPE);
	}
	if (a->auth == AUTH_AUTO) {
		a->auth = AUTH_XOAUTH2;
		free(a->origin[CFG_AUTH]);
		a->origin[CFG_AUTH] = xstrdup("the default with oauth2");
	} else if (a->auth != AUTH_XOAUTH2 && a->auth != AUTH_OAUTHBEARER) {
		fail(p, s->line, "account [%s] has oauth2 = %s but auth = %s; OAuth2 tokens "
		     "need auth = xoauth2 (or oauthbearer)", a->name, oauth2_names[a->oauth2],
		     auth_names[a->auth]);
		return;
	}
	oauth2_flow_check(p, s, a);
}

/* The keys the account's flow needs, each error naming the key and the
 * fix. */
static void oauth2_flow_check(struct parse *p, const struct sect *s, struct account *a)
{
	const char *flow = oauth2_flow_names[a->oauth2_flow];

	if (a->oauth2_flow == OAUTH2_FLOW_SERVICE_ACCOUNT) {
		if (a->oauth2 == OAUTH2_MICROSOFT)
			fail(p, s->line, "account [%s]: oauth2_flow = service_account is Google's; "
			     "for Microsoft use oauth2_flow = client_credentials", a->name);
		else if (!a->oauth2_key_file)
			fail(p, s->line, "account [%s] has oauth2_flow = service_account but no "
			     "oauth2_key_file; set it to the service account's JSON key file",
			     a->name);
		else if (!a->oauth2_token_url)
			fail(p, s->line, "account [%s] has oauth2 = custom but no "
			     "oauth2_token_url; add it", a->name);
		else if (!a->user || !*a->user)
			fail(p, s->line, "account [%s] has oauth2_flow = service_account but no "
			     "user; set user = the mailbox the service account sends as", a->name);
		return;
	}
	if (!a->oauth2_client_id || !*a->oauth2_client_id)
		fail(p, s->line, "account [%s] has oauth2 = %s but no oauth2_client_id; add the "
		     "client id of your app registration (see contrib/providers/)", a->name,
		     oauth2_names[a->oauth2]);
	else if (a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS && a->oauth2 == OAUTH2_GOOGLE)
		fail(p, s->line, "account [%s]: Google has no client credentials grant for mail; "
		     "use oauth2_flow = service_account", a->name);
	else if (a->oauth2_flow == OAUTH2_FLOW_CLIENT_CREDENTIALS && a->oauth2_key_file &&
		 !a->oauth2_client_secret && !a->oauth2_client_secret_command &&
		 !a->oauth2_cert_file)
		fail(p, s->line, "account [%s] has oauth2_key_file but no oauth2_cert_file; the "
		     "client assertion names the certificate: set oauth2_cert_file", a->name);
	else if (a->oauth2_flow == OAUTH2_FLOW_DEVICE && !a->oauth2_device_url)
		fail(p, s->line, "account [%s] has oauth2_flow = device but no "
		     "oauth2_device_url; add it", a->name);
	else if (a->oauth2_flow == OAUTH2_FLOW_AUTHCODE && !a->oauth2_auth_url)
		fail(p, s->line, "account [%s] has oauth2_flow = %s but no oauth2_auth_url; add it",
		     a->name, flow);
	else if (!a->oauth2_token_url)
		fail(p, s->line, "account [%s] has oauth2 = custom but no oauth2_token_url; add it",
		     a->name);
	else if (!a->user || !*a->user)
		fail(p, s->line, "account [%s] has oauth2 = %s but no user; set user = the "
		     "mailbox address the token is for", a->name, oauth2_names[a->oauth2]);
}

/* Move a section's values into out, add what [defaults] and the built-in
 * defaults give, and record each origin. */
static void resolve_account(struct parse *p, struct sect *s, const struct sect *d,
			    struct account *out)
{
	int k;

	*out = s->acc;
	memset(&s->acc, 0, sizeof(s->acc));
	out->name = xstrdup(s->name);
	out->config_file = xstrdup(p->show);
	for (k = 0; k < CFG_KEY_COUNT; k++) {
		if (k != CFG_ACCOUNT && s->set_line[k]) {
			out->origin[k] = origin_of(p, s->set_line[k], s->name);
		} else if (d && d->set_line[k]) {
			inherit_key(out, &d->acc, (enum cfg_key)k);
			out->origin[k] = origin_of(p, d->set_line[k], d->name);
		}
	}
	/* tls before port: the default port depends on the TLS mode. */
	if (!out->origin[CFG_TLS] && builtin_default(out, CFG_TLS))
		out->origin[CFG_TLS] = xstrdup("built-in default");
	for (k = 0; k < CFG_KEY_COUNT; k++)
		if (!out->origin[k] && builtin_default(out, (enum cfg_key)k))
			out->origin[k] = xstrdup("built-in default");
	if (!out->host)
		fail(p, s->line, "account [%s] has no host; add host = smtp.example.com "
		     "under [%s] (or in [defaults])", s->name, s->name);
	if (!p->failed)
		oauth2_finish(p, s, out);
}

static void list_accounts(const struct account *a, int n, char *buf, size_t cap)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < n && used < cap; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", a[i].name);
	if (n == 0)
		snprintf(buf, cap, "(none)");
}

static void check_password_mode(struct parse *p, mode_t mode)
{
	int i;

	if (!(mode & 077))
		return;
	for (i = 0; i < p->nsects; i++) {
		if (p->sects[i].set_line[CFG_PASSWORD] ||
		    p->sects[i].set_line[CFG_OAUTH2_CLIENT_SECRET]) {
			fail(p, 0, "contains a password but is %s by others (mode %04o); "
			     "run chmod 600 %s",
			     mode & 044 ? "readable" : mode & 022 ? "writable" : "usable",
			     (unsigned)(mode & 07777), p->show);
			return;
		}
	}
}

static void build(struct config *cfg, struct parse *p, mode_t mode)
{
	const struct sect *d = NULL;
	char names[512];
	int i;

	check_password_mode(p, mode);
	for (i = 0; i < p->nsects; i++)
		if (p->sects[i].is_defaults)
			d = &p->sects[i];
	cfg->accounts = xcalloc((size_t)p->nsects + 1, sizeof(*cfg->accounts));
	for (i = 0; i < p->nsects && !p->failed; i++)
		if (!p->sects[i].is_defaults)
			resolve_account(p, &p->sects[i], d, &cfg->accounts[cfg->naccounts++]);
	cfg->default_account = p->default_account;
	p->default_account = NULL;
	if (p->failed || !cfg->default_account)
		return;
	for (i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].name, cfg->default_account) == 0)
			return;
	list_accounts(cfg->accounts, cfg->naccounts, names, sizeof(names));
	fail(p, d->set_line[CFG_ACCOUNT], "key 'account': no account [%s] in this file; "
	     "name one of: %s", cfg->default_account, names);
}

static int parse_buffer(struct config *cfg, const char *show, const char *buf, size_t len,
			mode_t mode, struct perr *e)
{
	struct parse p;
	int r, i;

	memset(&p, 0, sizeof(p));
	p.show = show;
	p.buf = buf;
	p.len = len;
	p.e = e;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		p.pos = 3; /* UTF-8 byte order mark */
	r = ini_parse_stream(cfg_reader, &p, cfg_handler, &p);
	if (!p.failed && r == -2)
		perr_set(e, PERR_OS, "%s: out of memory while reading it", show), p.failed = 1;
	else if (!p.failed && r != 0)
		fail(&p, r, "cannot read this line; write 'key = value' or '[section]'");
	if (!p.failed)
		build(cfg, &p, mode);
	for (i = 0; i < p.nsects; i++) {
		account_clear(&p.sects[i].acc);
		free(p.sects[i].name);
	}
	free(p.sects);
	free(p.default_account);
	return p.failed ? -1 : 0;
}

/* ---- reading files and the lookup order -------------------------------- */

/* Like ssh and sudo: the file says which command postern runs
 * (password_command) and where mail goes, so only the caller (or root)
 * may be able to change it. */
static int check_owner_mode(const struct stat *st, const char *show, struct perr *e)
{
	uid_t me = getuid();

	if (st->st_uid != me && st->st_uid != 0)
		return perr_set(e, PERR_CONFIG, "%s: owned by uid %u, not by you (uid %u) or "
				"root; postern runs what a configuration says, so it refuses "
				"this one: use a file of your own, or run chown %u %s",
				show, (unsigned)st->st_uid, (unsigned)me, (unsigned)me, show);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return perr_set(e, PERR_CONFIG, "%s: writable by %s (mode %04o); whoever can "
				"change it can make postern run commands as you, so it is "
				"refused: run chmod go-w %s", show,
				(st->st_mode & S_IWGRP) && (st->st_mode & S_IWOTH) ? "group and others"
				: st->st_mode & S_IWGRP ? "its group" : "others",
				(unsigned)(st->st_mode & 07777), show);
	return 0;
}

/* Set by config_load_system while it reads the service's file. */
static int system_file;

/* Read path whole.  1: it does not exist; 0: read; -1: error.  The
 * checks are made on the opened descriptor, never on the path again. */
static int read_file(const char *path, const char *show, char **buf, size_t *len,
		     mode_t *mode, struct perr *e)
{
	struct stat st;
	int fd = open_regular(path, O_RDONLY, 0, "configuration file", e);

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 1 : -1;
	if (fstat(fd, &st) < 0) {
		perr_set(e, PERR_CONFIG, "%s: cannot stat: %s", show, strerror(errno));
		close(fd);
		return -1;
	}
	if (check_owner_mode(&st, show, e) < 0) {
		close(fd);
		return -1;
	}
	if (st.st_size > CFG_FILE_MAX) {
		close(fd);
		return perr_set(e, PERR_CONFIG, "%s: larger than 1 MB; give the path of a "
				"configuration file", show);
	}
	*buf = xmalloc((size_t)st.st_size + 1);
	*len = read_full(fd, *buf, (size_t)st.st_size);
	close(fd);
	*mode = st.st_mode;
	/* System mode (SPEC 11): the service's own file may be readable by
	 * its group (root:postern 0640), password included. */
	if (system_file && st.st_gid == getegid() && !(st.st_mode & 007))
		*mode &= ~(mode_t)S_IRGRP;
	return 0;
}

/* 1: not found; 0: loaded; -1: error (cfg left empty). */
static int try_load(struct config *cfg, const char *path, struct perr *e)
{
	char show[CFG_PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	show_path(path, show, sizeof(show));
	r = read_file(path, show, &buf, &len, &mode, e);
	if (r != 0)
		return r;
	r = parse_buffer(cfg, show, buf, len, mode, e);
	wipe(buf, len);
	free(buf);
	if (r < 0) {
		config_free(cfg);
		return -1;
	}
	cfg->path = xstrdup(path);
	return 0;
}

static int load_named(struct config *cfg, const char *path, const char *why, struct perr *e)
{
	char show[CFG_PATH_MAX];
	int r = try_load(cfg, path, e);

	if (r != 1)
		return r;
	show_path(path, show, sizeof(show));
	return perr_set(e, PERR_CONFIG, "%s: no such file (%s)", show, why);
}

int config_load_file(struct config *cfg, const char *path, struct perr *e)
{
	return load_named(cfg, path, "check the path", e);
}

int config_load_system(struct config *cfg, const char *path, struct perr *e)
{
	int r;

	system_file = 1;
	r = load_named(cfg, path, "the system configuration; see Server-wide use in the README", e);
	system_file = 0;
	return r;
}

int config_load_buffer(struct config *cfg, const char *name, const char *buf, size_t len,
		       struct perr *e)
{
	memset(cfg, 0, sizeof(*cfg));
	if (len > CFG_FILE_MAX)
		return perr_set(e, PERR_CONFIG, "%s: larger than 1 MB; give the path of a "
				"configuration file", name);
	if (parse_buffer(cfg, name, buf, len, 0600, e) < 0) {
		config_free(cfg);
		return -1;
	}
	cfg->path = xstrdup(name);
	return 0;
}

/* The lookup list after -C and $SMTPRC; returns how many. */
static int candidates(char paths[3][CFG_PATH_MAX])
{
	const char *home = home_dir(), *xdg = getenv("XDG_CONFIG_HOME");
	int n = 0;

	if (home && (size_t)snprintf(paths[n], CFG_PATH_MAX, "%s/.smtprc", home) < CFG_PATH_MAX)
		n++;
	if (xdg && xdg[0] == '/') {
		if ((size_t)snprintf(paths[n], CFG_PATH_MAX, "%s/postern/smtprc", xdg) < CFG_PATH_MAX)
			n++;
	} else if (home && (size_t)snprintf(paths[n], CFG_PATH_MAX, "%s/.config/postern/smtprc",
					     home) < CFG_PATH_MAX) {
		n++;
	}
	snprintf(paths[n++], CFG_PATH_MAX, "%s", CFG_ETC_PATH);
	return n;
}

int config_load(struct config *cfg, const char *explicit_path, struct perr *e)
{
	char paths[3][CFG_PATH_MAX];
	const char *env = getenv("SMTPRC");
	char looked[PERR_TEXT_MAX / 2], show[CFG_PATH_MAX];
	size_t used = 0;
	int i, n, r;

	if (explicit_path)
		return load_named(cfg, explicit_path, "given with -C; check the path", e);
	if (env && *env)
		return load_named(cfg, env, "named by $SMTPRC; fix or unset SMTPRC", e);
	n = candidates(paths);
	looked[0] = '\0';
	for (i = 0; i < n; i++) {
		r = try_load(cfg, paths[i], e);
		if (r != 1)
			return r;
		show_path(paths[i], show, sizeof(show));
		if (used < sizeof(looked))
			used += (size_t)snprintf(looked + used, sizeof(looked) - used, "%s%s",
						 i ? ", " : "", show);
	}
	return perr_set(e, PERR_CONFIG, "no configuration file found (looked for %s); "
			"create ~/.smtprc with an account (see smtprc(5))", looked);
}

int config_have_own(const char *explicit_path)
{
	char paths[3][CFG_PATH_MAX];
	const char *env = getenv("SMTPRC");
	struct stat st;
	int i, n;

	if (explicit_path || (env && *env))
		return 1;
	n = candidates(paths);
	for (i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0 && (errno == ENOENT || errno == ENOTDIR))
			continue;
		/* /etc/smtprc that the caller cannot read is the admin's own. */
		if (strcmp(paths[i], CFG_ETC_PATH) == 0 && access(paths[i], R_OK) < 0)
			continue;
		return 1;
	}
	return 0;
}

/* ---- choosing an account ------------------------------------------------ */

static int lower_copy(char *dst, const char *src, size_t cap)
{
	size_t i;

	for (i = 0; src[i]; i++) {
		if (i + 1 >= cap)
			return -1;
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
	}
	dst[i] = '\0';
	return 0;
}

/* Does sender match the account's from (an address or a glob)?  Compared
 * without regard to case. */
static int from_matches(const char *pattern, const char *sender)
{
	char p[512], s[512]; /* longer than any address */

	if (lower_copy(p, pattern, sizeof(p)) < 0 || lower_copy(s, sender, sizeof(s)) < 0)
		return 0;
	return fnmatch(p, s, 0) == 0;
}

const struct account *config_choose(const struct config *cfg, const char *name,
				    const char *sender, struct perr *e)
{
	char names[512], show[CFG_PATH_MAX];
	int i;

	list_accounts(cfg->accounts, cfg->naccounts, names, sizeof(names));
	show_path(cfg->path ? cfg->path : "the configuration", show, sizeof(show));
	if (!name && sender && *sender)
		for (i = 0; i < cfg->naccounts; i++)
			if (cfg->accounts[i].from && from_matches(cfg->accounts[i].from, sender))
				return &cfg->accounts[i];
	if (!name)
		name = cfg->default_account;
	if (name) {
		for (i = 0; i < cfg->naccounts; i++)
			if (strcmp(cfg->accounts[i].name, name) == 0)
				return &cfg->accounts[i];
		return perr_set(e, PERR_CONFIG, "%s: no account [%.*s]; the accounts are: %s",
				show, CFG_NAME_MAX, name, names), NULL;
	}
	if (cfg->naccounts == 1)
		return &cfg->accounts[0];
	if (cfg->naccounts == 0)
		return perr_set(e, PERR_CONFIG, "%s: no account defined; add a section such "
				"as [work] with host = smtp.example.com", show), NULL;
	return perr_set(e, PERR_CONFIG, "%s: %d accounts (%s) and none chosen; use -a NAME "
			"or set account = NAME in [defaults]", show, cfg->naccounts, names), NULL;
}

enum tls_mode config_port_tls(const struct account *a, unsigned port)
{
	if (a->tls_explicit)
		return a->tls;
	return port == 465 ? TLS_IMPLICIT : TLS_STARTTLS;
}

/* ---- --check ------------------------------------------------------------ */

static void ports_text(const struct account *a, int with_tls, char *buf, size_t cap)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < a->nports && used < cap; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%u%s%s",
					 i ? (with_tls ? ", " : " ") : "", a->ports[i],
					 with_tls ? " " : "",
					 with_tls ? config_tls_name(config_port_tls(a, a->ports[i])) : "");
}

static void duration_text(long secs, char *buf, size_t cap)
{
	if (secs % 86400 == 0)
		snprintf(buf, cap, "%ldd", secs / 86400);
	else if (secs % 3600 == 0)
		snprintf(buf, cap, "%ldh", secs / 3600);
	else if (secs % 60 == 0)
		snprintf(buf, cap, "%ldm", secs / 60);
	else
		snprintf(buf, cap, "%lds", secs);
}

static const char *value_text(const struct config *cfg, const struct account *a,
			      enum cfg_key k, char *buf, size_t cap)
{
	switch (k) {
	case CFG_HOST: return a->host;
	case CFG_PORT: ports_text(a, 0, buf, cap); return buf;
	case CFG_TLS:
		if (a->tls_explicit || a->nports == 0)
			return config_tls_name(a->tls);
		ports_text(a, 1, buf, cap);
		return buf;
	case CFG_TLS_CA_FILE: return a->tls_ca_file;
	case CFG_TLS_FINGERPRINT: return a->tls_fingerprint;
	case CFG_TLS_CERT_FILE: return a->tls_cert_file;
	case CFG_TLS_KEY_FILE: return a->tls_key_file;
	case CFG_TLS_MIN_VERSION: return a->tls_min_version == 13 ? "1.3" : "1.2";
	case CFG_AUTH: return config_auth_name(a->auth);
	case CFG_USER: return a->user;
	case CFG_PASSWORD_COMMAND: return a->password_command;
	case CFG_PASSWORD: return a->password ? "********" : NULL;
	case CFG_PASSWORD_CREDENTIAL: return a->password_credential;
	case CFG_FROM: return a->from;
	case CFG_DOMAIN: return a->domain;
	case CFG_TIMEOUT: snprintf(buf, cap, "%d", a->timeout); return buf;
	case CFG_QUEUE: return a->queue ? "on" : "off";
	case CFG_QUEUE_LIFETIME: duration_text(a->queue_lifetime, buf, cap); return buf;
	case CFG_ADD_HEADERS: return a->add_headers ? "on" : "off";
	case CFG_FROM_HEADER: return a->from_header_force ? "force" : "keep";
	case CFG_LOCAL_DOMAINS: return a->local_domains;
	case CFG_DSN_NOTIFY: return a->dsn_notify;
	case CFG_DSN_RETURN: return a->dsn_return;
	case CFG_LOG: return a->log;
	case CFG_ALIASES: return a->aliases;
	case CFG_ACCOUNT: return cfg->default_account;
	case CFG_OAUTH2: return a->oauth2 ? oauth2_names[a->oauth2] : NULL;
	case CFG_OAUTH2_CLIENT_ID: return a->oauth2_client_id;
	case CFG_OAUTH2_CLIENT_SECRET: return a->oauth2_client_secret ? "********" : NULL;
	case CFG_OAUTH2_TENANT: return a->oauth2_tenant;
	case CFG_OAUTH2_FLOW: return a->oauth2 ? oauth2_flow_names[a->oauth2_flow] : NULL;
	case CFG_OAUTH2_AUTH_URL: return a->oauth2_auth_url;
	case CFG_OAUTH2_TOKEN_URL: return a->oauth2_token_url;
	case CFG_OAUTH2_SCOPE: return a->oauth2_scope;
	case CFG_OAUTH2_CA_FILE: return a->oauth2_ca_file;
	case CFG_OAUTH2_DEVICE_URL: return a->oauth2_device_url;
	case CFG_OAUTH2_CLIENT_SECRET_COMMAND: return a->oauth2_client_secret_command;
	case CFG_OAUTH2_KEY_FILE: return a->oauth2_key_file;
	case CFG_OAUTH2_CERT_FILE: return a->oauth2_cert_file;
	default: return NULL;
	}
}

void config_print(const struct config *cfg, const struct account *a, FILE *out)
{
	char show[CFG_PATH_MAX], buf[256];
	const char *v;
	int k;

	show_path(cfg->path ? cfg->path : "(none)", show, sizeof(show));
	fprintf(out, "configuration  %s\naccount        %s\n\n", show, a->name);
	for (k = 0; k < CFG_KEY_COUNT; k++) {
		v = value_text(cfg, a, (enum cfg_key)k, buf, sizeof(buf));
		if (!v)
			fprintf(out, "%-17s = (unset)\n", key_names[k]);
		else
			fprintf(out, "%-17s = %-30s (%s)\n", key_names[k], v,
				a->origin[k] ? a->origin[k] : "built-in default");
	}
}

void config_free(struct config *cfg)
{
	int i;

	if (!cfg)
		return;
	for (i = 0; i < cfg->naccounts; i++)
		account_clear(&cfg->accounts[i]);
	free(cfg->accounts);
	free(cfg->path);
	free(cfg->default_account);
	memset(cfg, 0, sizeof(*cfg));
}
