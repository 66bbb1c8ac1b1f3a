/* cli.c — sendmail's command line -> struct cli.
 *
 * getopt does not fit sendmail's syntax (values attached or separate,
 * "-oi" and "-odq" as one option with a value, "-q" with an optional
 * attached value, long options mixed in), so this is a small explicit
 * parser driven by a table of option letters.  Short options may be
 * grouped ("-ti", "-tfADDR"); options end at "--" or at the first
 * recipient.  Every value that can reach the wire or a header is checked
 * here: control characters are refused, and shown escaped in the error,
 * never raw.  The struct points into argv; nothing is allocated. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "cli.h"
#include "util.h"

#define CLI_FULLNAME_MAX 256  /* -F: a display name, not a paragraph */
#define CLI_ENVID_MAX 100     /* -V: RFC 3461 section 4.4 */
#define CLI_SHOW_MAX 64       /* bytes of a bad value quoted in an error */

enum arg_kind {
	ARG_NONE,      /* a flag */
	ARG_REQUIRED,  /* value attached (-fADDR) or the next argument (-f ADDR) */
	ARG_ATTACHED,  /* optional value, attached only (-q, -q30m) */
};

struct opt {
	char letter;
	enum arg_kind arg;
};

/* Every short option postern accepts; see apply_short for what each does. */
static const struct opt short_opts[] = {
	{ 'a', ARG_REQUIRED }, /* account */
	{ 'B', ARG_REQUIRED }, /* body type */
	{ 'b', ARG_REQUIRED }, /* mode: m s p i */
	{ 'C', ARG_REQUIRED }, /* configuration file */
	{ 'F', ARG_REQUIRED }, /* full name */
	{ 'f', ARG_REQUIRED }, /* envelope sender */
	{ 'G', ARG_NONE },     /* ignored: relay submission */
	{ 'h', ARG_REQUIRED }, /* ignored: hop count */
	{ 'i', ARG_NONE },     /* ignored: postern always reads to end of input */
	{ 'L', ARG_REQUIRED }, /* ignored: syslog tag */
	{ 'm', ARG_NONE },     /* ignored: "me too" */
	{ 'N', ARG_REQUIRED }, /* DSN notify */
	{ 'n', ARG_NONE },     /* ignored: no aliasing */
	{ 'o', ARG_REQUIRED }, /* -odq queue only; every other -o ignored */
	{ 'q', ARG_ATTACHED }, /* queue run */
	{ 'R', ARG_REQUIRED }, /* DSN return */
	{ 'r', ARG_REQUIRED }, /* envelope sender (old name) */
	{ 't', ARG_NONE },     /* recipients from the headers too */
	{ 'U', ARG_NONE },     /* ignored: initial user submission */
	{ 'V', ARG_REQUIRED }, /* DSN envelope id */
	{ 'v', ARG_NONE },     /* transcript */
	{ 'X', ARG_REQUIRED }, /* ignored: traffic log file */
};

struct state {
	struct cli *c;
	const char *mode_opt;  /* the option that chose the mode, or NULL */
};

/* Print-safe copy of s: control and 8-bit bytes as \r \n \t \xNN,
 * truncated with "..." after CLI_SHOW_MAX input bytes. */
static const char *escaped(const char *s, char *buf, size_t cap)
{
	size_t used = 0, i;

	buf[0] = '\0';
	for (i = 0; s[i] && used + 8 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (i == CLI_SHOW_MAX) {
			used += (size_t)snprintf(buf + used, cap - used, "...");
			break;
		}
		if (ch == '\r')
			used += (size_t)snprintf(buf + used, cap - used, "\\r");
		else if (ch == '\n')
			used += (size_t)snprintf(buf + used, cap - used, "\\n");
		else if (ch == '\t')
			used += (size_t)snprintf(buf + used, cap - used, "\\t");
		else if (ch < 0x20 || ch >= 0x7f || ch == '\\')
			used += (size_t)snprintf(buf + used, cap - used, "\\x%02x", ch);
		else
			buf[used++] = (char)ch, buf[used] = '\0';
	}
	return buf;
}

/* The first C0 control or DEL in s, or NULL. */
static const char *find_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return s;
	return NULL;
}

/* Refuse control characters in what will reach the wire or a header. */
static int check_controls(const char *what, const char *v, struct perr *e)
{
	char show[CLI_SHOW_MAX * 4 + 16], ch[16];
	const char *bad = find_control(v);

	if (!bad)
		return 0;
	escaped((const char[]){ *bad, '\0' }, ch, sizeof(ch));
	return perr_set(e, PERR_USAGE, "%s \"%s\" contains a control character (%s); "
			"CR, LF and other control characters are never allowed there",
			what, escaped(v, show, sizeof(show)), ch);
}

static int word_in(const char *v, size_t n, const char *const *words, int count)
{
	int i;

	for (i = 0; i < count; i++)
		if (strlen(words[i]) == n && strncasecmp(v, words[i], n) == 0)
			return 1;
	return 0;
}

/* -N: never, or a comma list of success, failure, delay. */
static int dsn_notify_ok(const char *v)
{
	static const char *const words[] = { "success", "failure", "delay" };
	size_t n;

	if (str_ieq(v, "never"))
		return 1;
	for (;;) {
		n = strcspn(v, ",");
		if (!word_in(v, n, words, 3))
			return 0;
		if (!v[n])
			return 1;
		v += n + 1;
	}
}

/* -V: printable ASCII that needs no xtext encoding, at most 100 bytes. */
static int envid_ok(const char *v)
{
	size_t n = 0;

	for (; *v; v++, n++)
		if (*v < 0x21 || *v > 0x7e || *v == '+' || *v == '=')
			return 0;
	return n > 0 && n <= CLI_ENVID_MAX;
}

static int set_mode(struct state *st, enum cli_mode m, const char *opt, struct perr *e)
{
	if (st->mode_opt && st->c->mode != m)
		return perr_set(e, PERR_USAGE, "options %s and %s cannot be used together; "
				"give only one", st->mode_opt, opt);
	st->c->mode = m;
	st->mode_opt = opt;
	return 0;
}

static int set_account(struct state *st, const char *opt, const char *v, struct perr *e)
{
	char show[CLI_SHOW_MAX * 4 + 16];

	if (check_controls(opt, v, e) < 0)
		return -1;
	if (!*v)
		return perr_set(e, PERR_USAGE, "option %s needs an account name", opt);
	if (st->c->account && strcmp(st->c->account, v) != 0)
		return perr_set(e, PERR_USAGE, "two accounts given (%s and %s); give one",
				st->c->account, escaped(v, show, sizeof(show)));
	st->c->account = v;
	return 0;
}

static int set_from(struct cli *c, char opt, const char *v, struct perr *e)
{
	char name[4] = { '-', opt, '\0' };

	if (check_controls(opt == 'f' ? "option -f" : "option -r", v, e) < 0)
		return -1;
	if (!*v || strcmp(v, "<>") == 0) {
		c->from = ""; /* the null sender */
		return 0;
	}
	if (v[0] == '-')
		return perr_set(e, PERR_USAGE, "option %s: \"%.*s\" looks like an option; give "
				"the sender address after %s", name, CLI_SHOW_MAX, v, name);
	if (addr_check(v, 1, e) < 0) {
		e->kind = PERR_USAGE;
		perr_prefix(e, "option %s", name);
		return -1;
	}
	c->from = v;
	return 0;
}

static int set_mode_b(struct state *st, const char *v, struct perr *e)
{
	char show[CLI_SHOW_MAX * 4 + 16];

	if (strcmp(v, "m") == 0)
		return set_mode(st, CLI_SEND, "-bm", e);
	if (strcmp(v, "s") == 0)
		return set_mode(st, CLI_SMTP_STDIO, "-bs", e);
	if (strcmp(v, "p") == 0)
		return set_mode(st, CLI_QUEUE_LIST, "-bp", e);
	if (strcmp(v, "i") == 0)
		return set_mode(st, CLI_NEWALIASES, "-bi", e);
	return perr_set(e, PERR_USAGE, "unsupported mode -b%s; postern knows -bm, -bs, -bp "
			"and -bi (see postern --help)", escaped(v, show, sizeof(show)));
}

/* The options whose value goes into a DSN parameter or the body type. */
static int set_dsn_or_body(struct cli *c, char opt, const char *v, struct perr *e)
{
	char show[CLI_SHOW_MAX * 4 + 16], what[16];

	snprintf(what, sizeof(what), "option -%c", opt);
	if (check_controls(what, v, e) < 0)
		return -1;
	escaped(v, show, sizeof(show));
	switch (opt) {
	case 'N':
		if (!dsn_notify_ok(v))
			return perr_set(e, PERR_USAGE, "option -N: \"%s\" is not never or a "
					"comma list of success, failure, delay", show);
		c->dsn_notify = v;
		return 0;
	case 'R':
		if (!str_ieq(v, "full") && !str_ieq(v, "hdrs"))
			return perr_set(e, PERR_USAGE, "option -R: \"%s\" is not full or hdrs",
					show);
		c->dsn_return = v;
		return 0;
	case 'V':
		if (!envid_ok(v))
			return perr_set(e, PERR_USAGE, "option -V: \"%s\" is not 1 to %d "
					"printable ASCII characters without space, '+' or '='",
					show, CLI_ENVID_MAX);
		c->dsn_envid = v;
		return 0;
	default: /* 'B' */
		if (str_ieq(v, "7BIT"))
			c->body_type = "7BIT";
		else if (str_ieq(v, "8BITMIME"))
			c->body_type = "8BITMIME";
		else
			return perr_set(e, PERR_USAGE, "option -B: \"%s\" is not 7BIT or "
					"8BITMIME", show);
		return 0;
	}
}

static int apply_short(struct state *st, char opt, const char *v, struct perr *e)
{
	struct cli *c = st->c;

	switch (opt) {
	case 'a': return set_account(st, "option -a", v, e);
	case 'B': case 'N': case 'R': case 'V': return set_dsn_or_body(c, opt, v, e);
	case 'b': return set_mode_b(st, v, e);
	case 'C':
		if (check_controls("option -C", v, e) < 0)
			return -1;
		if (!*v)
			return perr_set(e, PERR_USAGE, "option -C needs a file name");
		c->config_file = v;
		return 0;
	case 'F':
		if (check_controls("option -F", v, e) < 0)
			return -1;
		if (strlen(v) > CLI_FULLNAME_MAX)
			return perr_set(e, PERR_USAGE, "option -F: longer than %d bytes; give a "
					"shorter name", CLI_FULLNAME_MAX);
		c->fullname = v;
		return 0;
	case 'f': case 'r': return set_from(c, opt, v, e);
	case 'o':
		if (v[0] == 'd')
			c->queue_only = strcmp(v, "dq") == 0;
		return 0;
	case 'q': return set_mode(st, CLI_QUEUE_RUN, "-q", e);
	case 't': c->extract = 1; return 0;
	case 'v': c->verbose++; return 0;
	default: return 0; /* accepted and ignored: G h i L m n U X */
	}
}

static const struct opt *find_short(char letter)
{
	size_t i;

	for (i = 0; i < sizeof(short_opts) / sizeof(short_opts[0]); i++)
		if (short_opts[i].letter == letter)
			return &short_opts[i];
	return NULL;
}

/* One argument of short options, possibly grouped; *i advances past a
 * value taken from the next argument. */
static int parse_short(struct state *st, int argc, char **argv, int *i, struct perr *e)
{
	const char *p = argv[*i] + 1, *v;
	const struct opt *o;
	char show[16];

	while (*p) {
		char letter = *p++;

		o = find_short(letter);
		if (!o)
			return perr_set(e, PERR_USAGE, "unknown option -%s; see postern --help",
					escaped((const char[]){ letter, '\0' }, show, sizeof(show)));
		v = NULL;
		if (o->arg == ARG_REQUIRED) {
			if (*p)
				v = p;
			else if (*i + 1 < argc)
				v = argv[++*i];
			else
				return perr_set(e, PERR_USAGE, "option -%c needs a value", letter);
			p = "";
		} else if (o->arg == ARG_ATTACHED) {
			v = p;
			p = "";
		}
		if (apply_short(st, letter, v, e) < 0)
			return -1;
	}
	return 0;
}

/* --name, --name=value, and --account VALUE.  0: go on; 1: --help or
 * --version (stop parsing); -1: error. */
static int parse_long(struct state *st, int argc, char **argv, int *i, struct perr *e)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '='), *v = eq ? eq + 1 : NULL;
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	char show[CLI_SHOW_MAX * 4 + 16];

#define IS(name) (n == strlen(name) && strncmp(arg, name, n) == 0)
	if (IS("probe") || IS("set-password")) {
		if (v && set_account(st, IS("probe") ? "--probe" : "--set-password", v, e) < 0)
			return -1;
		return set_mode(st, IS("probe") ? CLI_PROBE : CLI_SET_PASSWORD,
				IS("probe") ? "--probe" : "--set-password", e);
	}
	if (IS("authorize")) {
		if (v && set_account(st, "--authorize", v, e) < 0)
			return -1;
		return set_mode(st, CLI_AUTHORIZE, "--authorize", e);
	}
	if (IS("account")) {
		if (!v && *i + 1 < argc)
			v = argv[++*i];
		if (!v)
			return perr_set(e, PERR_USAGE, "option --account needs a value");
		return set_account(st, "--account", v, e);
	}
	if (IS("queue-delete") || IS("queue-retry")) {
		if (v)
			return perr_set(e, PERR_USAGE, "option --%.*s takes the ids as arguments: "
					"postern --%.*s ID...", (int)n, arg, (int)n, arg);
		return set_mode(st, IS("queue-delete") ? CLI_QUEUE_DELETE : CLI_QUEUE_RETRY,
				IS("queue-delete") ? "--queue-delete" : "--queue-retry", e);
	}
	if (v && (IS("check") || IS("due") || IS("json") || IS("help") || IS("version")))
		return perr_set(e, PERR_USAGE, "option --%.*s takes no value", (int)n, arg);
	if (IS("check"))
		return set_mode(st, CLI_CHECK, "--check", e);
	if (IS("system")) {
		if (v)
			return perr_set(e, PERR_USAGE, "option --system takes no value");
		return set_mode(st, CLI_SYSTEM, "--system", e);
	}
	if (IS("listen")) {
		if (!v && *i + 1 < argc)
			v = argv[++*i];
		if (!v || !*v || check_controls("--listen", v, e) < 0)
			return v && *v ? -1 : perr_set(e, PERR_USAGE, "option --listen needs a "
							 "socket path or 127.0.0.1:PORT");
		st->c->listen = v;
		return 0;
	}
	if (IS("due")) {
		st->c->due_only = 1;
		return 0;
	}
	if (IS("json")) {
		st->c->json = 1;
		return 0;
	}
	if (IS("help") || IS("version")) {
		st->c->mode = IS("help") ? CLI_HELP : CLI_VERSION;
		return 1; /* stop: nothing else matters */
	}
#undef IS
	return perr_set(e, PERR_USAGE, "unknown option --%s; see postern --help",
			escaped(arg, show, sizeof(show)));
}

/* Recipients are argv[first..argc): kept as given (comma lists are split
 * later), refused here when empty, holding control characters, or looking
 * like an option that came after the first recipient. */
static int take_recipients(struct cli *c, int argc, char **argv, int first, int after_dashes,
			   struct perr *e)
{
	char show[CLI_SHOW_MAX * 4 + 16];
	int i;

	for (i = first; i < argc; i++) {
		if (!argv[i][0])
			return perr_set(e, PERR_USAGE, "empty recipient argument; remove it");
		if (check_controls("recipient", argv[i], e) < 0)
			return -1;
		if (!after_dashes && argv[i][0] == '-' && argv[i][1])
			return perr_set(e, PERR_USAGE, "option %s comes after the recipient %s; "
					"put options before the first recipient",
					escaped(argv[i], show, sizeof(show)), argv[first]);
	}
	c->rcpts = argv + first;
	c->nrcpts = argc - first;
	return 0;
}

static int final_checks(const struct cli *c, struct perr *e)
{
	if (c->due_only && c->mode != CLI_QUEUE_RUN)
		return perr_set(e, PERR_USAGE, "--due works only with -q: postern -q --due");
	if (c->json && c->mode != CLI_PROBE)
		return perr_set(e, PERR_USAGE, "--json works only with --probe");
	if (c->listen && c->mode != CLI_SYSTEM)
		return perr_set(e, PERR_USAGE, "--listen works only with --system");
	if ((c->mode == CLI_QUEUE_DELETE || c->mode == CLI_QUEUE_RETRY) && c->nrcpts == 0)
		return perr_set(e, PERR_USAGE, "%s needs the ids of the messages; mailq lists them",
				c->mode == CLI_QUEUE_DELETE ? "--queue-delete" : "--queue-retry");
	if (c->mode == CLI_SEND && c->nrcpts == 0 && !c->extract)
		return perr_set(e, PERR_USAGE, "no recipients; give them as arguments, or use "
				"-t to take them from the message's To, Cc and Bcc");
	return 0;
}

static enum cli_mode mode_of_name(const char *progname)
{
	if (strcmp(progname, "mailq") == 0)
		return CLI_QUEUE_LIST;
	if (strcmp(progname, "newaliases") == 0)
		return CLI_NEWALIASES;
	return CLI_SEND;
}

int cli_parse(struct cli *c, int argc, char **argv, struct perr *e)
{
	/* only the pointer is kept here; *c is cleared below before any use */
	/* cppcheck-suppress ctuuninitvar */
	struct state st = { c, NULL };
	int i, r, dashes = 0;

	memset(c, 0, sizeof(*c));
	c->progname = argc > 0 && argv[0] ? path_base(argv[0]) : "postern";
	c->mode = mode_of_name(c->progname);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			dashes = 1;
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (a[1] == '\0')
			return perr_set(e, PERR_USAGE, "unknown option -; see postern --help");
		r = a[1] == '-' ? parse_long(&st, argc, argv, &i, e)
				: parse_short(&st, argc, argv, &i, e);
		if (r < 0)
			return -1;
		if (r > 0)
			return 0; /* --help, --version */
	}
	if (take_recipients(c, argc, argv, i, dashes, e) < 0)
		return -1;
	return final_checks(c, e);
}

const char *cli_usage(void)
{
	return
	"Usage: postern [options] [--] [recipient ...] < message\n"
	"       postern -bp | mailq\n"
	"       postern -q [--due]\n"
	"       postern --queue-delete ID... | --queue-retry ID...\n"
	"Submit a message read from standard input through the SMTP server of an\n"
	"account in ~/.smtprc (see smtprc(5)).  Installed as sendmail, it takes\n"
	"sendmail's options.\n"
	"\n"
	"Sending:\n"
	"  recipient ...        addresses; one argument may hold several, comma separated\n"
	"  -t                   also take recipients from To, Cc, Bcc (Bcc is not sent)\n"
	"  -f ADDR, -r ADDR     envelope sender; -f '<>' or -f '' for the null sender\n"
	"  -F NAME              full name for a From header that postern adds\n"
	"  -a NAME, --account=NAME\n"
	"                       use this account\n"
	"  -C FILE              use this configuration file\n"
	"  -v                   print the SMTP dialogue to stderr (AUTH shown as ****)\n"
	"  -N never|success,failure,delay\n"
	"                       DSN: when the server should report delivery\n"
	"  -R full|hdrs         DSN: return the full message or its headers\n"
	"  -V ENVID             DSN: envelope identifier\n"
	"  -B 7BIT|8BITMIME     body type\n"
	"  -i, -oi              accepted; a line with a single '.' never ends the message\n"
	"  -odq                 queue only; make no delivery attempt\n"
	"\n"
	"Modes:\n"
	"  -bm                  deliver a message (the default)\n"
	"  -bs                  speak SMTP on standard input and output\n"
	"  -bp                  list the queue (also: mailq)\n"
	"  -q, -q...            deliver every queued message now\n"
	"  -q --due             deliver the queued messages whose retry time has come\n"
	"  --queue-delete ID... remove queued or failed messages\n"
	"  --queue-retry ID...  make queued messages due now; move failed ones back\n"
	"                       into the queue, due now\n"
	"  -bi                  nothing to do; exit 0 (also: newaliases)\n"
	"  --check              print the resolved account, secrets masked, and where\n"
	"                       each setting came from; check its files and that its\n"
	"                       secret can be had (without the network)\n"
	"  --probe[=ACCOUNT]    diagnose the account's server without sending mail\n"
	"                       (--json: the report as JSON)\n"
	"  --set-password[=ACCOUNT]\n"
	"                       store the account's password in the keyring\n"
	"  --authorize[=ACCOUNT]\n"
	"                       OAuth2: sign in once (a browser, or a device code)\n"
	"                       and store the account's refresh token\n"
	"  --system [--listen PATH|127.0.0.1:PORT]\n"
	"                       the service that sends for users without a\n"
	"                       configuration of their own (/etc/postern/system.smtprc)\n"
	"  --help, --version    this text; the version\n"
	"\n"
	"Accepted and ignored: -o... (-odb, -odi, -oem, -oee, -om, ...), -L TAG, -h N,\n"
	"-U, -G, -X FILE, -m, -n.  Options come before the recipients; -- ends them.\n"
	"\n"
	"Exit status: 0 delivered or queued, 64 usage, 65 bad message, 67 recipient\n"
	"refused, 69 refused by the server, 70 internal error, 71/74 system or I/O\n"
	"error, 75 temporary failure, 76 protocol error, 77 authentication refused,\n"
	"78 configuration error.  See postern(1).\n";
}
