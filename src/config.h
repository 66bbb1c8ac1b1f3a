/* config.h — ~/.smtprc: lookup order, permission check, inih -> accounts,
 * validation of every key, [defaults] inheritance, and where each value
 * came from (for --check). */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdio.h>

#include "errors.h"
#include "modes.h"

/* Keys, in the order --check prints them.  CFG_KEY_COUNT is their number. */
enum cfg_key {
	CFG_HOST, CFG_PORT, CFG_TLS, CFG_TLS_CA_FILE, CFG_TLS_FINGERPRINT,
	CFG_TLS_CERT_FILE, CFG_TLS_KEY_FILE, CFG_TLS_MIN_VERSION, CFG_AUTH,
	CFG_USER, CFG_PASSWORD_COMMAND, CFG_PASSWORD, CFG_PASSWORD_CREDENTIAL, CFG_FROM, CFG_DOMAIN,
	CFG_TIMEOUT, CFG_QUEUE, CFG_QUEUE_LIFETIME, CFG_ADD_HEADERS,
	CFG_FROM_HEADER, CFG_LOCAL_DOMAINS, CFG_DSN_NOTIFY, CFG_DSN_RETURN,
	CFG_LOG, CFG_ALIASES, CFG_ACCOUNT,
	CFG_OAUTH2, CFG_OAUTH2_CLIENT_ID, CFG_OAUTH2_CLIENT_SECRET, CFG_OAUTH2_TENANT,
	CFG_OAUTH2_FLOW, CFG_OAUTH2_AUTH_URL, CFG_OAUTH2_TOKEN_URL, CFG_OAUTH2_SCOPE,
	CFG_OAUTH2_CA_FILE, CFG_OAUTH2_DEVICE_URL, CFG_OAUTH2_CLIENT_SECRET_COMMAND,
	CFG_OAUTH2_KEY_FILE, CFG_OAUTH2_CERT_FILE,
	CFG_KEY_COUNT
};

#define CFG_PORTS_MAX 8

/* oauth2 = ...: who issues the account's tokens (SPEC 10). */
enum oauth2_provider { OAUTH2_NONE = 0, OAUTH2_GOOGLE, OAUTH2_MICROSOFT, OAUTH2_CUSTOM };

/* oauth2_flow = ...: how a token is obtained.  After loading, auto is
 * replaced by the preset's flow (microsoft: device; else authcode). */
enum oauth2_flow {
	OAUTH2_FLOW_AUTO = 0, OAUTH2_FLOW_AUTHCODE, OAUTH2_FLOW_DEVICE,
	OAUTH2_FLOW_CLIENT_CREDENTIALS, OAUTH2_FLOW_SERVICE_ACCOUNT,
};

struct account {
	char *name;                     /* section name */
	char *config_file;              /* the file it was read from, as messages
					   show it ("~/.smtprc", "/etc/smtprc") */
	char *host;
	unsigned ports[CFG_PORTS_MAX];  /* effective list (defaults applied) */
	int nports;
	enum tls_mode tls;
	int tls_explicit;               /* tls was set (else per-port: 465 implicit) */
	char *tls_ca_file, *tls_fingerprint, *tls_cert_file, *tls_key_file;
	int tls_min_version;            /* 12 or 13 */
	enum auth_mech auth;
	char *user;
	char *password_command;
	char *password;                 /* wiped on free */
	char *password_credential;      /* a file name in $CREDENTIALS_DIRECTORY */
	char *from;                     /* may be a glob; NULL: USER@DOMAIN */
	char *domain;                   /* EHLO name; NULL: this host's name */
	int timeout;                    /* seconds */
	int queue;                      /* bool */
	long queue_lifetime;            /* seconds */
	int add_headers;                /* bool */
	int from_header_force;          /* from_header = force */
	char *local_domains;            /* space/comma separated */
	char *dsn_notify, *dsn_return;
	char *log;                      /* "syslog", "off" or a path */
	char *aliases;                  /* path or NULL */
	/* OAuth2 (SPEC 10).  With oauth2 set, the preset (google, microsoft)
	 * has filled auth_url, token_url and scope unless they were given;
	 * auth is xoauth2 or oauthbearer. */
	enum oauth2_provider oauth2;
	char *oauth2_client_id;
	char *oauth2_client_secret;     /* wiped on free */
	char *oauth2_tenant;            /* microsoft; "common" by default */
	enum oauth2_flow oauth2_flow;
	char *oauth2_auth_url, *oauth2_token_url, *oauth2_scope;
	char *oauth2_ca_file;           /* NULL: the system store */
	char *oauth2_device_url;        /* device authorization endpoint */
	char *oauth2_client_secret_command; /* prints the app's client secret */
	char *oauth2_key_file;          /* PEM private key (client_credentials with a
					   certificate) or a Google service-account
					   JSON key (service_account) */
	char *oauth2_cert_file;         /* PEM certificate of that key (x5t) */
	/* Where each value came from: "~/.smtprc:12 [work]",
	 * "~/.smtprc:3 [defaults]" or "built-in default". */
	char *origin[CFG_KEY_COUNT];
};

struct config {
	char *path;                 /* the file read */
	char *default_account;      /* [defaults] account, or NULL */
	struct account *accounts;   /* every section but [defaults] */
	int naccounts;
};

/* Find and read the configuration: explicit (-C) if given, else $SMTPRC,
 * ~/.smtprc, $XDG_CONFIG_HOME/postern/smtprc (~/.config when unset),
 * /etc/smtprc — the first that exists.  None found: PERR_CONFIG saying
 * where postern looked and how to start one.  Every error names
 * file:line and the key. */
int config_load(struct config *cfg, const char *explicit_path, struct perr *e);

/* Parse a configuration from a file path (no lookup). */
int config_load_file(struct config *cfg, const char *path, struct perr *e);

/* The system service's configuration (SPEC 11): as config_load_file,
 * except that the file may also be readable by the service's group
 * (root:postern 0640), a password in it included.  Only `postern
 * --system` calls it; every other file keeps the owner-only rule. */
int config_load_system(struct config *cfg, const char *path, struct perr *e);

/* Whether the caller has a configuration of its own: -C or $SMTPRC
 * given, or a file of the lookup order exists (/etc/smtprc only when the
 * caller can read it).  Without one, a message goes to the system
 * service (system.h). */
int config_have_own(const char *explicit_path);

/* Parse a configuration held in memory (buf[0..len), need not be
 * NUL-terminated); name is the file name used in messages and in
 * cfg->path.  No permission check (the bytes have no mode).  For the
 * fuzzer and tests. */
int config_load_buffer(struct config *cfg, const char *name, const char *buf, size_t len,
		       struct perr *e);

/* Choose the account: name if given (unknown: PERR_CONFIG listing the
 * accounts), else the account whose `from` glob matches sender (may be
 * NULL), else [defaults] account, else the only account; else
 * PERR_CONFIG. */
const struct account *config_choose(const struct config *cfg, const char *name,
				    const char *sender, struct perr *e);

/* The TLS mode used on a port of this account (465 implicit when tls was
 * not set explicitly). */
enum tls_mode config_port_tls(const struct account *a, unsigned port);

/* Names for printing. */
const char *config_tls_name(enum tls_mode m);
const char *config_auth_name(enum auth_mech m);
const char *config_key_name(enum cfg_key k);
const char *config_oauth2_name(enum oauth2_provider p);

/* --check: print the resolved account, each value with its origin;
 * password shown as "********". */
void config_print(const struct config *cfg, const struct account *a, FILE *out);

void config_free(struct config *cfg);

#endif
