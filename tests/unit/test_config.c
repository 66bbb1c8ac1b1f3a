/* test_config.c — unit tests for config.c: parsing, validation errors
 * (file:line and key), [defaults] inheritance, built-in defaults, origins,
 * the password permission check, long lines, the lookup order and account
 * choice. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"

static char tmpdir[256];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write text to DIR/name with the given mode; returns the static path. */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static int load_text(struct config *cfg, const char *text, mode_t mode, struct perr *e)
{
	const char *path = write_file("smtprc", text, mode);

	perr_clear(e);
	return config_load_file(cfg, path, e);
}

static const struct account *find(const struct config *cfg, const char *name)
{
	int i;

	for (i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	fail_msg("no account %s", name);
	return NULL;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postern-test-config-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	setenv("HOME", tmpdir, 1);
	unsetenv("SMTPRC");
	unsetenv("XDG_CONFIG_HOME");
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- values and defaults ------------------------------------------------ */

static void test_minimal_defaults(void **state)
{
	struct config cfg;
	struct perr e;
	const struct account *a;

	(void)state;
	assert_int_equal(load_text(&cfg, "[work]\nhost = smtp.example.com\n", 0644, &e), 0);
	assert_int_equal(cfg.naccounts, 1);
	a = find(&cfg, "work");
	assert_string_equal(a->host, "smtp.example.com");
	assert_int_equal(a->nports, 1);
	assert_int_equal(a->ports[0], 587);
	assert_int_equal(a->tls, TLS_STARTTLS);
	assert_int_equal(a->tls_explicit, 0);
	assert_int_equal(a->tls_min_version, 12);
	assert_int_equal(a->auth, AUTH_AUTO);
	assert_int_equal(a->timeout, 30);
	assert_int_equal(a->queue, 1);
	assert_int_equal(a->queue_lifetime, 5 * 86400);
	assert_int_equal(a->add_headers, 1);
	assert_int_equal(a->from_header_force, 0);
	assert_string_equal(a->log, "syslog");
	assert_null(a->user);
	assert_null(a->from);
	assert_null(a->password);
	assert_null(cfg.default_account);
	assert_string_equal(a->origin[CFG_HOST], "~/smtprc:2 [work]");
	assert_string_equal(a->origin[CFG_PORT], "built-in default");
	assert_string_equal(a->origin[CFG_LOG], "built-in default");
	assert_null(a->origin[CFG_USER]);
	assert_null(a->origin[CFG_PASSWORD]);
	config_free(&cfg);
}

static const char spec_example[] =
	"[defaults]\n"
	"account = work            ; account used when none is chosen\n"
	"aliases = /etc/aliases    ; local names (root, cron's user) to addresses\n"
	"\n"
	"[work]\n"
	"host = smtp.example.com\n"
	"port = 587                ; may be a list tried in order: 587 465 2525\n"
	"tls = starttls            ; starttls | implicit | off\n"
	"user = joe@example.com\n"
	"from = joe@example.com    ; envelope sender; may be a glob: *@example.com\n";

static void test_spec_example(void **state)
{
	struct config cfg;
	struct perr e;
	const struct account *a;

	(void)state;
	assert_int_equal(load_text(&cfg, spec_example, 0600, &e), 0);
	assert_string_equal(cfg.default_account, "work");
	a = find(&cfg, "work");
	assert_string_equal(a->aliases, "/etc/aliases");
	assert_string_equal(a->origin[CFG_ALIASES], "~/smtprc:3 [defaults]");
	assert_string_equal(a->origin[CFG_ACCOUNT], "~/smtprc:2 [defaults]");
	assert_int_equal(a->nports, 1);
	assert_int_equal(a->ports[0], 587);
	assert_int_equal(a->tls, TLS_STARTTLS);
	assert_int_equal(a->tls_explicit, 1);
	assert_string_equal(a->user, "joe@example.com");
	assert_string_equal(a->from, "joe@example.com");
	assert_string_equal(a->origin[CFG_FROM], "~/smtprc:10 [work]");
	config_free(&cfg);
}

static void test_all_keys(void **state)
{
	static const char text[] =
		"[a]\n"
		"host = mail.example.org\n"
		"port = 2525, 465 587\n"
		"tls_ca_file = ~/ca.pem\n"
		"tls_fingerprint = sha256:" "AB:cd:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:"
		"ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89\n"
		"tls_cert_file = /c.pem\n"
		"tls_key_file = /k.pem\n"
		"tls_min_version = 1.3\n"
		"auth = SCRAM-SHA-256\n"
		"user = joe\n"
		"password_command = pass show mail/joe\n"
		"password_credential = smtp-password\n"
		"from = *@example.org\n"
		"domain = laptop.example.org\n"
		"timeout = 3600\n"
		"queue = no\n"
		"queue_lifetime = 12h\n"
		"add_headers = false\n"
		"from_header = force\n"
		"local_domains = box.lan, box\n"
		"dsn_notify = failure,DELAY\n"
		"dsn_return = hdrs\n"
		"log = /var/log/postern.log\n";
	struct config cfg;
	struct perr e;
	const struct account *a;
	char want[512];

	(void)state;
	assert_int_equal(load_text(&cfg, text, 0644, &e), 0);
	a = find(&cfg, "a");
	assert_int_equal(a->nports, 3);
	assert_int_equal(a->ports[0], 2525);
	assert_int_equal(a->ports[1], 465);
	assert_int_equal(a->ports[2], 587);
	assert_int_equal(config_port_tls(a, 2525), TLS_STARTTLS);
	assert_int_equal(config_port_tls(a, 465), TLS_IMPLICIT);
	snprintf(want, sizeof(want), "%s/ca.pem", tmpdir);
	assert_string_equal(a->tls_ca_file, want);
	assert_string_equal(a->tls_fingerprint, "sha256:abcdef0123456789abcdef0123456789"
			    "abcdef0123456789abcdef0123456789");
	assert_string_equal(a->tls_cert_file, "/c.pem");
	assert_string_equal(a->tls_key_file, "/k.pem");
	assert_int_equal(a->tls_min_version, 13);
	assert_int_equal(a->auth, AUTH_SCRAM_SHA_256);
	assert_string_equal(a->password_command, "pass show mail/joe");
	assert_string_equal(a->password_credential, "smtp-password");
	assert_string_equal(a->domain, "laptop.example.org");
	assert_int_equal(a->timeout, 3600);
	assert_int_equal(a->queue, 0);
	assert_int_equal(a->queue_lifetime, 12 * 3600);
	assert_int_equal(a->add_headers, 0);
	assert_int_equal(a->from_header_force, 1);
	assert_string_equal(a->local_domains, "box.lan, box");
	assert_string_equal(a->dsn_notify, "failure,DELAY");
	assert_string_equal(a->dsn_return, "hdrs");
	assert_string_equal(a->log, "/var/log/postern.log");
	config_free(&cfg);
}

/* password_credential names a credential, never a path. */
static void test_credential_name(void **state)
{
	static const char *const bad[] = { "/etc/postern/pw", "../pw", "..", "." };
	struct config cfg;
	struct perr e;
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "[a]\nhost = h\npassword_credential = %s\n", bad[i]);
		assert_int_equal(load_text(&cfg, text, 0600, &e), -1);
		assert_int_equal(e.kind, PERR_CONFIG);
		assert_non_null(strstr(e.text, "password_credential is the name of a systemd"));
	}
}

static void test_tls_implicit_port(void **state)
{
	struct config cfg;
	struct perr e;
	const struct account *a, *b;

	(void)state;
	assert_int_equal(load_text(&cfg, "[a]\nhost=h\ntls=implicit\n[b]\nhost=h\ntls=off\n"
				   "port=465\n", 0600, &e), 0);
	a = find(&cfg, "a");
	assert_int_equal(a->nports, 1);
	assert_int_equal(a->ports[0], 465);
	assert_int_equal(config_port_tls(a, 465), TLS_IMPLICIT);
	b = find(&cfg, "b");
	assert_int_equal(config_port_tls(b, 465), TLS_OFF);
	config_free(&cfg);
}

static void test_durations(void **state)
{
	static const struct { const char *key, *v; long secs; } rows[] = {
		{ "queue_lifetime", "5d", 432000 }, { "queue_lifetime", "12h", 43200 },
		{ "queue_lifetime", "30m", 1800 }, { "queue_lifetime", "3600s", 3600 },
		{ "queue_lifetime", "90", 90 }, { "queue_lifetime", "1w", 604800 },
		{ "queue_lifetime", "365d", 365L * 86400 },
		{ "timeout", "45", 45 }, { "timeout", "45s", 45 }, { "timeout", "2m", 120 },
		{ "timeout", "1h", 3600 }, { "timeout", "3600", 3600 },
		/* errors: -1 */
		{ "timeout", "0", -1 }, { "timeout", "0s", -1 }, { "timeout", "61m", -1 },
		{ "timeout", "2h", -1 }, { "timeout", "1d", -1 }, { "timeout", "3601", -1 },
		{ "timeout", "s", -1 }, { "timeout", "10x", -1 }, { "timeout", "-5", -1 },
		{ "timeout", "1.5m", -1 }, { "timeout", "5 m", -1 },
		{ "queue_lifetime", "366d", -1 }, { "queue_lifetime", "0d", -1 },
		{ "queue_lifetime", "d", -1 },
	};
	char text[128];
	struct config cfg;
	struct perr e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		print_message("# %s = %s\n", rows[i].key, rows[i].v);
		snprintf(text, sizeof(text), "[a]\nhost=h\n%s = %s\n", rows[i].key, rows[i].v);
		if (rows[i].secs < 0) {
			assert_int_equal(load_text(&cfg, text, 0600, &e), -1);
			assert_int_equal(e.kind, PERR_CONFIG);
			assert_contains(e.text, "~/smtprc:3: key '");
			assert_contains(e.text, rows[i].key);
			continue;
		}
		assert_int_equal(load_text(&cfg, text, 0600, &e), 0);
		if (strcmp(rows[i].key, "timeout") == 0)
			assert_int_equal(cfg.accounts[0].timeout, rows[i].secs);
		else
			assert_int_equal(cfg.accounts[0].queue_lifetime, rows[i].secs);
		config_free(&cfg);
	}
}

static void test_inheritance(void **state)
{
	static const char text[] =
		"[early]\n"                     /* 1 */
		"host = a.example\n"            /* 2 */
		"timeout = 5\n"                 /* 3 */
		"[defaults]\n"                  /* 4 */
		"timeout = 10\n"                /* 5 */
		"user = shared\n"               /* 6 */
		"tls = implicit\n"              /* 7 */
		"host = fallback.example\n"     /* 8 */
		"[late]\n"                      /* 9 */
		"tls = starttls\n";             /* 10 */
	struct config cfg;
	struct perr e;
	const struct account *early, *late;

	(void)state;
	assert_int_equal(load_text(&cfg, text, 0600, &e), 0);
	assert_int_equal(cfg.naccounts, 2);
	early = find(&cfg, "early");
	late = find(&cfg, "late");
	assert_int_equal(early->timeout, 5);
	assert_string_equal(early->origin[CFG_TIMEOUT], "~/smtprc:3 [early]");
	assert_string_equal(early->user, "shared");
	assert_string_equal(early->origin[CFG_USER], "~/smtprc:6 [defaults]");
	assert_int_equal(early->tls, TLS_IMPLICIT);
	assert_int_equal(early->tls_explicit, 1);
	assert_int_equal(early->ports[0], 465);
	assert_string_equal(early->host, "a.example");
	assert_int_equal(late->timeout, 10);
	assert_string_equal(late->user, "shared");
	assert_string_equal(late->host, "fallback.example");
	assert_string_equal(late->origin[CFG_HOST], "~/smtprc:8 [defaults]");
	assert_int_equal(late->tls, TLS_STARTTLS);
	assert_int_equal(late->ports[0], 587);
	assert_string_equal(late->origin[CFG_TLS], "~/smtprc:10 [late]");
	config_free(&cfg);
}

static void test_syntax_variants(void **state)
{
	/* indented keys, CRLF, a BOM, ':' separator, '#' comments, a ';'
	 * inside a value (not after a blank) kept */
	static const char text[] =
		"\xef\xbb\xbf# comment\r\n"
		"[a]\r\n"
		"   host = h.example\r\n"
		"\tuser: joe\r\n"
		"  password_command = cmd --x=1;echo  ; a comment\r\n";
	struct config cfg;
	struct perr e;
	const struct account *a;

	(void)state;
	assert_int_equal(load_text(&cfg, text, 0600, &e), 0);
	a = find(&cfg, "a");
	assert_string_equal(a->host, "h.example");
	assert_string_equal(a->user, "joe");
	assert_string_equal(a->password_command, "cmd --x=1;echo");
	config_free(&cfg);
}

/* ---- errors ------------------------------------------------------------- */

struct err_row {
	const char *text;
	const char *want;   /* substring of the error text */
	const char *want2;  /* second substring or NULL */
};

static const struct err_row err_rows[] = {
	{ "[a]\nhost=h\nbogus = 1\n", "smtprc:3: key 'bogus': unknown key", "smtprc(5)" },
	{ "[a]\nHost = h\n", "smtprc:2: key 'Host': unknown key", "write 'host'" },
	{ "[a]\nhost=h\nport = 0\n", "smtprc:3: key 'port':", "1-65535" },
	{ "[a]\nhost=h\nport = 70000\n", "smtprc:3: key 'port': '70000'", NULL },
	{ "[a]\nhost=h\nport = 587 abc\n", "smtprc:3: key 'port': 'abc'", NULL },
	{ "[a]\nhost=h\nport = -1\n", "smtprc:3: key 'port'", NULL },
	{ "[a]\nhost=h\nport = 1 2 3 4 5 6 7 8 9\n", "smtprc:3: key 'port': more than 8", NULL },
	{ "[a]\nhost=h\nport =\n", "smtprc:3: key 'port': no port", NULL },
	{ "[a]\nhost=h\ntls = maybe\n", "smtprc:3: key 'tls': 'maybe'", "starttls, implicit or off" },
	{ "[a]\nhost=h\ntls_min_version = 1.1\n", "smtprc:3: key 'tls_min_version'", "1.2 or 1.3" },
	{ "[a]\nhost=h\nauth = cram-md5\n", "smtprc:3: key 'auth': 'cram-md5'", "scram-sha-256" },
	{ "[a]\nhost=h\ntimeout = 0\n", "smtprc:3: key 'timeout'", "from 1 s to 1h" },
	{ "[a]\nhost=h\ntimeout = 3601\n", "smtprc:3: key 'timeout'", NULL },
	{ "[a]\nhost=h\ntimeout = 10x\n", "smtprc:3: key 'timeout'", "timeout = 30" },
	{ "[a]\nhost=h\ntimeout = -3\n", "smtprc:3: key 'timeout'", NULL },
	{ "[a]\nhost=h\nqueue = maybe\n", "smtprc:3: key 'queue': 'maybe'", "queue = on" },
	{ "[a]\nhost=h\nadd_headers = 2\n", "smtprc:3: key 'add_headers'", NULL },
	{ "[a]\nhost=h\nqueue_lifetime = 5x\n", "smtprc:3: key 'queue_lifetime'", "5d" },
	{ "[a]\nhost=h\nqueue_lifetime = 0\n", "smtprc:3: key 'queue_lifetime'", NULL },
	{ "[a]\nhost=h\nqueue_lifetime = 999d\n", "smtprc:3: key 'queue_lifetime'", NULL },
	{ "[a]\nhost=h\nfrom_header = replace\n", "smtprc:3: key 'from_header'", "keep or force" },
	{ "[a]\nhost=h\ntls_fingerprint = sha256:abcd\n", "smtprc:3: key 'tls_fingerprint'", NULL },
	{ "[a]\nhost=h\ntls_fingerprint = md5:00\n", "smtprc:3: key 'tls_fingerprint'", NULL },
	{ "[a]\nhost=h\ntls_fingerprint = sha256:"
	  "zz00000000000000000000000000000000000000000000000000000000000000\n",
	  "smtprc:3: key 'tls_fingerprint'", NULL },
	{ "[a]\nhost=h\ndsn_notify = sometimes\n", "smtprc:3: key 'dsn_notify'", NULL },
	{ "[a]\nhost=h\ndsn_notify = never,success\n", "smtprc:3: key 'dsn_notify'", NULL },
	{ "[a]\nhost=h\ndsn_notify = success,,delay\n", "smtprc:3: key 'dsn_notify'", NULL },
	{ "[a]\nhost=h\ndsn_return = body\n", "smtprc:3: key 'dsn_return'", "full or hdrs" },
	{ "[a]\nhost = smtp example.com\n", "smtprc:2: key 'host'", "space" },
	{ "[a]\nhost =\n", "smtprc:2: key 'host': empty", NULL },
	{ "[a]\nhost=h\nfrom = joe\n", "smtprc:3: key 'from': 'joe'", NULL },
	{ "[a]\nhost=h\nfrom = <joe@x>\n", "smtprc:3: key 'from'", NULL },
	{ "[a]\nhost=h\nlog = postern.log\n", "smtprc:3: key 'log'", "absolute" },
	{ "[a]\nhost=h\nuser =\n", "smtprc:3: key 'user': empty", NULL },
	{ "[a]\nhost=h\n[b]\nhost=h\n[a]\nhost=h\n", "smtprc:5: section [a] is already "
	  "defined at line 1", NULL },
	{ "[defaults]\n[defaults]\n", "smtprc:2: section [defaults]", NULL },
	{ "[a]\nhost=h\nhost=g\n", "smtprc:3: key 'host': already set in [a] at line 2", NULL },
	{ "host=h\n[a]\n", "smtprc:1: key 'host': outside any section", NULL },
	{ "[a]\nhost=h\naccount = a\n", "smtprc:3: key 'account': only allowed in [defaults]",
	  NULL },
	{ "[defaults]\naccount = nope\n[a]\nhost=h\n[b]\nhost=h\n",
	  "smtprc:2: key 'account': no account [nope]", "a, b" },
	{ "[a]\nuser=joe\n", "smtprc:1: account [a] has no host", "host =" },
	{ "[a]\nhost h\n", "smtprc:2: expected 'key = value'", NULL },
	{ "[a\nhost=h\n", "smtprc:1: section header without ']'", NULL },
	{ "[a] x\nhost=h\n", "smtprc:1: text after ']'", NULL },
	{ "[my account]\nhost=h\n", "smtprc:1: bad section name", NULL },
	{ "[]\nhost=h\n", "smtprc:1: bad section name", NULL },
	{ "[a]\nhost=h\nuser=jo\001e\n", "smtprc:3: control character 0x01", NULL },
	{ "[a]\nhost=h\nuser=jo\x7f\n", "smtprc:3: control character 0x7f", NULL },
	{ "[a]\nhost=h\n=x\n", "smtprc:3: no key name", NULL },
	{ "[a]\nhost=h\nuser ; x = y\nbogus=1\n", "smtprc:3: expected 'key = value'", NULL },
};

static void test_errors(void **state)
{
	struct config cfg;
	struct perr e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
		if (load_text(&cfg, err_rows[i].text, 0600, &e) == 0)
			fail_msg("row %zu accepted: %s", i, err_rows[i].text);
		assert_int_equal(e.kind, PERR_CONFIG);
		assert_contains(e.text, err_rows[i].want);
		if (err_rows[i].want2)
			assert_contains(e.text, err_rows[i].want2);
		assert_int_equal(cfg.naccounts, 0);
		assert_null(cfg.accounts);
		config_free(&cfg);
	}
}

/* ---- long lines --------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_long_values_kept_whole(void **state)
{
	/* around inih's 200-byte buffer, and well beyond it */
	static const size_t lens[] = { 150, 180, 190, 195, 196, 197, 198, 199, 200,
				       201, 250, 500, 3000, 4000 };
	struct config cfg;
	struct perr e;
	char *text, *val;
	size_t i, cap;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		val = repeat('x', lens[i]);
		memcpy(val, "echo ", 5);
		cap = lens[i] + 128;
		text = malloc(cap);
		assert_non_null(text);
		snprintf(text, cap, "[a]\nhost = h\npassword_command = %s   ; note\nuser = u\n", val);
		if (load_text(&cfg, text, 0600, &e) != 0)
			fail_msg("length %zu: %s", lens[i], e.text);
		assert_string_equal(cfg.accounts[0].password_command, val);
		assert_string_equal(cfg.accounts[0].user, "u");
		assert_string_equal(cfg.accounts[0].origin[CFG_USER], "~/smtprc:4 [a]");
		config_free(&cfg);
		free(text);
		free(val);
	}
}

static void test_too_long_line(void **state)
{
	struct config cfg;
	struct perr e;
	char *val = repeat('y', 5000), *text = malloc(5200);

	(void)state;
	assert_non_null(text);
	snprintf(text, 5200, "[a]\nhost = h\npassword_command = %s\n", val);
	assert_int_equal(load_text(&cfg, text, 0600, &e), -1);
	assert_contains(e.text, "smtprc:3: line too long (over 4096 bytes)");
	free(text);
	free(val);
}

/* ---- passwords ---------------------------------------------------------- */

static void test_password_value(void **state)
{
	struct config cfg;
	struct perr e;
	const struct account *a;

	(void)state;
	assert_int_equal(load_text(&cfg, "[a]\nhost=h\npassword = s3cr;et x  ; comment\n"
				   "[b]\nhost=h\npassword=p=q:r\n", 0600, &e), 0);
	a = find(&cfg, "a");
	assert_string_equal(a->password, "s3cr;et x");
	assert_string_equal(find(&cfg, "b")->password, "p=q:r");
	config_free(&cfg);
}

static void test_password_permissions(void **state)
{
	static const struct { mode_t mode; const char *want; } rows[] = {
		{ 0644, "readable by others (mode 0644)" },
		{ 0640, "readable by others (mode 0640)" },
		{ 0604, "readable by others (mode 0604)" },
	};
	struct config cfg;
	struct perr e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(load_text(&cfg, "[defaults]\npassword = x\n[a]\nhost=h\n",
					   rows[i].mode, &e), -1);
		assert_int_equal(e.kind, PERR_CONFIG);
		assert_contains(e.text, "~/smtprc: contains a password but is ");
		assert_contains(e.text, rows[i].want);
		assert_contains(e.text, "chmod 600 ~/smtprc");
		assert_null(strstr(e.text, "x\n"));
	}
	assert_int_equal(load_text(&cfg, "[a]\nhost=h\npassword = x\n", 0400, &e), 0);
	config_free(&cfg);
	/* no password: readable by others is fine */
	assert_int_equal(load_text(&cfg, "[a]\nhost=h\npassword_command = x\n", 0644, &e), 0);
	config_free(&cfg);
}

/* Like ssh and sudo: any configuration writable by group or others, or
 * owned by someone other than the caller or root, is refused, whatever it
 * holds; checked on the opened file. */
static void test_file_permissions(void **state)
{
	static const struct { mode_t mode; const char *want; } rows[] = {
		{ 0664, "~/smtprc: writable by its group (mode 0664)" },
		{ 0620, "~/smtprc: writable by its group (mode 0620)" },
		{ 0646, "~/smtprc: writable by others (mode 0646)" },
		{ 0602, "~/smtprc: writable by others (mode 0602)" },
		{ 0666, "~/smtprc: writable by group and others (mode 0666)" },
	};
	static const char *const texts[] = {
		"[a]\nhost=h\npassword_command = x\n", "[a]\nhost=h\n",
	};
	char path[512];
	struct config cfg;
	struct perr e;
	size_t i, j;

	(void)state;
	for (j = 0; j < 2; j++) {
		for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			assert_int_equal(load_text(&cfg, texts[j], rows[i].mode, &e), -1);
			assert_int_equal(e.kind, PERR_CONFIG);
			assert_contains(e.text, rows[i].want);
			assert_contains(e.text, "run chmod go-w ~/smtprc");
		}
	}
	/* owned by another user (uid 65534, nobody): only root can set that up */
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof(path), "%s/smtprc", tmpdir);
	write_file("smtprc", texts[0], 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	perr_clear(&e);
	assert_int_equal(config_load_file(&cfg, path, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_contains(e.text, "~/smtprc: owned by uid 65534, not by you (uid 0) or root");
	assert_contains(e.text, "chown 0 ~/smtprc");
	/* owned by root (the caller here): fine */
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(config_load_file(&cfg, path, &e), 0);
	config_free(&cfg);
}

/* A FIFO (or another file that is not a regular one) is refused at once:
 * opening or reading it must never wait for a writer. */
static void test_not_regular(void **state)
{
	char path[512];
	struct config cfg;
	struct perr e;
	int64_t t0;

	(void)state;
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	t0 = now_ms();
	perr_clear(&e);
	alarm(10); /* a hang ends the test, not the whole run */
	assert_int_equal(config_load_file(&cfg, path, &e), -1);
	alarm(0);
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_contains(e.text, "configuration file ");
	assert_contains(e.text, "/fifo is a FIFO, not a regular file");
	unlink(path);
	/* a directory */
	snprintf(path, sizeof(path), "%s/dir", tmpdir);
	mkdir(path, 0700);
	perr_clear(&e);
	assert_int_equal(config_load_file(&cfg, path, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_contains(e.text, "/dir is a directory, not a regular file");
	rmdir(path);
}

/* ---- lookup order ------------------------------------------------------- */

static void make_dir(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	mkdir(path, 0700);
}

static void remove_file(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	unlink(path);
}

/* Load through the lookup order and return the host of the only account. */
static const char *lookup_host(const char *explicit_path, struct perr *e)
{
	static char host[64];
	struct config cfg;

	perr_clear(e);
	if (config_load(&cfg, explicit_path, e) < 0)
		return NULL;
	snprintf(host, sizeof(host), "%s", cfg.accounts[0].host);
	config_free(&cfg);
	return host;
}

static void test_lookup_order(void **state)
{
	struct perr e;
	char xdg[400], smtprc[400];
	int etc = access("/etc/smtprc", F_OK) == 0;

	(void)state;
	if (!etc) {
		assert_null(lookup_host(NULL, &e));
		assert_int_equal(e.kind, PERR_CONFIG);
		assert_contains(e.text, "~/.smtprc, ~/.config/postern/smtprc, /etc/smtprc");
		assert_contains(e.text, "create ~/.smtprc");
	}
	make_dir(".config");
	make_dir(".config/postern");
	write_file(".config/postern/smtprc", "[a]\nhost = dotconfig\n", 0600);
	assert_string_equal(lookup_host(NULL, &e), "dotconfig");

	make_dir("xdg");
	make_dir("xdg/postern");
	snprintf(xdg, sizeof(xdg), "%s/xdg", tmpdir);
	setenv("XDG_CONFIG_HOME", xdg, 1);
	if (!etc) {
		assert_null(lookup_host(NULL, &e));
		assert_contains(e.text, "~/xdg/postern/smtprc");
	}
	write_file("xdg/postern/smtprc", "[a]\nhost = xdg\n", 0600);
	assert_string_equal(lookup_host(NULL, &e), "xdg");

	write_file(".smtprc", "[a]\nhost = home\n", 0600);
	assert_string_equal(lookup_host(NULL, &e), "home");

	snprintf(smtprc, sizeof(smtprc), "%s", write_file("env", "[a]\nhost = env\n", 0600));
	setenv("SMTPRC", smtprc, 1);
	assert_string_equal(lookup_host(NULL, &e), "env");

	assert_string_equal(lookup_host(write_file("explicit", "[a]\nhost = explicit\n", 0600),
					&e), "explicit");

	/* explicit and $SMTPRC paths that do not exist are errors, not skipped */
	assert_null(lookup_host("/nonexistent/postern.rc", &e));
	assert_contains(e.text, "/nonexistent/postern.rc: no such file");
	assert_contains(e.text, "-C");
	setenv("SMTPRC", "/nonexistent/env.rc", 1);
	assert_null(lookup_host(NULL, &e));
	assert_contains(e.text, "/nonexistent/env.rc: no such file");
	assert_contains(e.text, "SMTPRC");

	/* an error in the first file found is reported, not skipped */
	unsetenv("SMTPRC");
	write_file(".smtprc", "[a]\nhost = home\nport = x\n", 0600);
	assert_null(lookup_host(NULL, &e));
	assert_contains(e.text, "~/.smtprc:3: key 'port'");

	unsetenv("XDG_CONFIG_HOME");
	remove_file(".smtprc");
	remove_file("xdg/postern/smtprc");
	remove_file(".config/postern/smtprc");
}

/* ---- choosing and printing --------------------------------------------- */

static const char choose_text[] =
	"[personal]\nhost=p\nfrom = joe@home.example\n"
	"[work]\nhost=w\nfrom = *@Work.Example\n"
	"[other]\nhost=o\n";

static void test_choose(void **state)
{
	struct config cfg;
	struct perr e;
	const struct account *a;

	(void)state;
	assert_int_equal(load_text(&cfg, choose_text, 0600, &e), 0);
	assert_string_equal(config_choose(&cfg, "other", NULL, &e)->name, "other");
	assert_string_equal(config_choose(&cfg, NULL, "ann@work.example", &e)->name, "work");
	assert_string_equal(config_choose(&cfg, NULL, "ANN@WORK.EXAMPLE", &e)->name, "work");
	assert_string_equal(config_choose(&cfg, NULL, "joe@home.example", &e)->name, "personal");
	/* -a wins over the sender */
	assert_string_equal(config_choose(&cfg, "other", "joe@home.example", &e)->name, "other");
	/* no match, no default, three accounts */
	perr_clear(&e);
	assert_null(config_choose(&cfg, NULL, "x@elsewhere.example", &e));
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_contains(e.text, "personal, work, other");
	assert_contains(e.text, "-a NAME");
	perr_clear(&e);
	a = config_choose(&cfg, "nope", NULL, &e);
	assert_null(a);
	assert_int_equal(e.kind, PERR_CONFIG);
	assert_contains(e.text, "no account [nope]");
	assert_contains(e.text, "personal, work, other");
	config_free(&cfg);

	assert_int_equal(load_text(&cfg, "[defaults]\naccount = b\n[a]\nhost=a\n[b]\nhost=b\n",
				   0600, &e), 0);
	assert_string_equal(config_choose(&cfg, NULL, NULL, &e)->name, "b");
	assert_string_equal(config_choose(&cfg, NULL, "", &e)->name, "b");
	config_free(&cfg);

	assert_int_equal(load_text(&cfg, "[only]\nhost=a\n", 0600, &e), 0);
	assert_string_equal(config_choose(&cfg, NULL, "x@y", &e)->name, "only");
	config_free(&cfg);

	assert_int_equal(load_text(&cfg, "[defaults]\ntimeout=3\n", 0600, &e), 0);
	perr_clear(&e);
	assert_null(config_choose(&cfg, NULL, NULL, &e));
	assert_contains(e.text, "no account defined");
	config_free(&cfg);
}

static void test_print(void **state)
{
	static const char text[] =
		"[defaults]\naccount = work\ntimeout = 12\n"
		"[work]\nhost = smtp.example.com\nport = 587 465\nuser = joe\n"
		"password = hunter2secret\npassword_command = pass show smtp\n";
	struct config cfg;
	struct perr e;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(load_text(&cfg, text, 0600, &e), 0);
	f = open_memstream(&out, &len);
	assert_non_null(f);
	config_print(&cfg, config_choose(&cfg, NULL, NULL, &e), f);
	fclose(f);
	assert_contains(out, "configuration  ~/smtprc\n");
	assert_contains(out, "account        work\n");
	assert_contains(out, "host              = smtp.example.com");
	assert_contains(out, "(~/smtprc:5 [work])");
	assert_contains(out, "port              = 587 465");
	assert_contains(out, "tls               = 587 starttls, 465 implicit");
	assert_contains(out, "password          = ********");
	assert_contains(out, "password_command  = pass show smtp");
	assert_contains(out, "timeout           = 12");
	assert_contains(out, "(~/smtprc:3 [defaults])");
	assert_contains(out, "queue             = on");
	assert_contains(out, "queue_lifetime    = 5d ");
	assert_contains(out, "(built-in default)");
	assert_contains(out, "from              = (unset)");
	assert_null(strstr(out, "hunter2"));
	free(out);
	config_free(&cfg);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(config_tls_name(TLS_IMPLICIT), "implicit");
	assert_string_equal(config_auth_name(AUTH_XOAUTH2), "xoauth2");
	assert_string_equal(config_auth_name(AUTH_SCRAM_SHA_256), "scram-sha-256");
	assert_string_equal(config_key_name(CFG_PASSWORD_COMMAND), "password_command");
	assert_string_equal(config_key_name(CFG_ACCOUNT), "account");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_credential_name),
		cmocka_unit_test(test_tls_implicit_port),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_inheritance),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_values_kept_whole),
		cmocka_unit_test(test_too_long_line),
		cmocka_unit_test(test_password_value),
		cmocka_unit_test(test_password_permissions),
		cmocka_unit_test(test_file_permissions),
		cmocka_unit_test(test_not_regular),
		cmocka_unit_test(test_lookup_order),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
