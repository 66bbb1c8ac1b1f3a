/* cli.h — sendmail's command line -> a plain struct.
 *
 * cli_parse knows every sendmail option postern accepts, including the
 * explicit list of those accepted and ignored, and the modes chosen by
 * argv[0] (sendmail, mailq, newaliases).  It validates every value that
 * could reach the wire or a header (-f, -F, -N, -R, -V, recipients): CR,
 * LF, NUL and other control characters are refused here, before any
 * configuration is read or connection made. */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include "errors.h"

enum cli_mode {
	CLI_SEND = 0,      /* -bm (default) */
	CLI_SMTP_STDIO,    /* -bs */
	CLI_QUEUE_LIST,    /* -bp, mailq */
	CLI_QUEUE_RUN,     /* -q */
	CLI_NEWALIASES,    /* -bi, newaliases */
	CLI_CHECK,         /* --check */
	CLI_PROBE,         /* --probe[=ACCOUNT] */
	CLI_SET_PASSWORD,  /* --set-password[=ACCOUNT] */
	CLI_AUTHORIZE,     /* --authorize[=ACCOUNT] (OAuth2) */
	CLI_HELP,          /* --help */
	CLI_VERSION,       /* --version */
	CLI_SYSTEM,        /* --system [--listen WHERE] */
	CLI_QUEUE_DELETE,  /* --queue-delete ID... (the ids in rcpts) */
	CLI_QUEUE_RETRY,   /* --queue-retry ID... (the ids in rcpts) */
};

struct cli {
	enum cli_mode mode;
	const char *progname;     /* basename of argv[0] */
	int extract;              /* -t */
	int verbose;              /* -v (count) */
	const char *from;         /* -f/-r; "" for the null sender ('<>' or ''); NULL if not given */
	const char *fullname;     /* -F */
	const char *config_file;  /* -C */
	const char *account;      /* -a / --account / --probe=X / --set-password=X */
	const char *dsn_notify;   /* -N */
	const char *dsn_return;   /* -R */
	const char *dsn_envid;    /* -V */
	const char *body_type;    /* -B: "7BIT" or "8BITMIME" */
	int queue_only;           /* -odq */
	int due_only;             /* -q --due */
	int json;                 /* --json (with --probe) */
	const char *listen;       /* --listen (with --system): a path or 127.0.0.1:PORT */
	char **rcpts;             /* recipient arguments (each may be a comma list);
				     the ids with --queue-delete/--queue-retry */
	int nrcpts;
};

/* Parse argv.  Mode CLI_HELP/CLI_VERSION need no further checks.
 * Unknown options and bad values: PERR_USAGE naming the option, e.g.
 * "unknown option -x; see postern --help". Never exits, never prints. */
int cli_parse(struct cli *c, int argc, char **argv, struct perr *e);

/* The --help text. */
const char *cli_usage(void);

#endif
