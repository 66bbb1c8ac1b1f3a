/* aliases.c — local addresses and the aliases file. */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "util.h"

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void add_entry(struct aliases *al, const char *name, size_t nlen, const char *value,
		      int line)
{
	struct alias *a;

	al->v = xrealloc(al->v, (al->n + 1) * sizeof *al->v);
	a = &al->v[al->n++];
	a->name = xstrndup(name, nlen);
	lower(a->name);
	a->value = xstrdup(value);
	a->line = line;
}

/* Append a continuation line to the last entry's value. */
static void continue_entry(struct aliases *al, const char *more)
{
	struct alias *a = &al->v[al->n - 1];
	size_t old = strlen(a->value), add = strlen(more);

	a->value = xrealloc(a->value, old + add + 2);
	a->value[old] = ' ';
	memcpy(a->value + old + 1, more, add + 1);
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* One line of the file (without its newline). */
static int parse_line(struct aliases *al, char *line, int lineno, struct perr *e)
{
	char *colon, *name;
	int cont = (line[0] == ' ' || line[0] == '\t');
	char *s = trim(line);

	if (*s == '\0' || *s == '#')
		return 0;
	if (cont) {
		if (al->n == 0)
			return perr_set(e, PERR_CONFIG,
					"%s:%d: continuation line before any alias; start the line with 'name:'",
					al->path, lineno);
		continue_entry(al, s);
		return 0;
	}
	colon = strchr(s, ':');
	name = s;
	if (!colon || colon == s)
		return perr_set(e, PERR_CONFIG, "%s:%d: expected 'name: address, ...'", al->path,
				lineno);
	*colon = '\0';
	name = trim(name);
	if (!*name || strpbrk(name, " \t@"))
		return perr_set(e, PERR_CONFIG, "%s:%d: '%s' is not a local name", al->path, lineno,
				name);
	add_entry(al, name, strlen(name), trim(colon + 1), lineno);
	return 0;
}

int aliases_load(struct aliases *al, const char *path, struct perr *e)
{
	char buf[ALIASES_LINE_MAX + 2];
	int lineno = 0, rc = 0, fd;
	FILE *f;

	memset(al, 0, sizeof *al);
	al->path = xstrdup(path);
	/* A FIFO or a device is refused at once: reading one could wait forever. */
	fd = open_regular(path, O_RDONLY, 0, "the aliases file", e);
	if (fd < 0) {
		perr_append(e, " (the aliases key of the configuration)");
		return -1;
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return perr_set(e, PERR_OS, "cannot read the aliases file %s: %s", path,
				strerror(errno));
	}
	while (rc == 0 && fgets(buf, sizeof buf, f)) {
		size_t len = strlen(buf);

		lineno++;
		if (len > ALIASES_LINE_MAX && buf[len - 1] != '\n') {
			rc = perr_set(e, PERR_CONFIG, "%s:%d: line longer than %d bytes; split it with "
				      "continuation lines", path, lineno, ALIASES_LINE_MAX);
			break;
		}
		buf[strcspn(buf, "\r\n")] = '\0';
		rc = parse_line(al, buf, lineno, e);
	}
	if (rc == 0 && ferror(f))
		rc = perr_set(e, PERR_CONFIG, "cannot read the aliases file %s", path);
	fclose(f);
	return rc;
}

/* This host's names, found once. */
static int is_own_name(const char *domain)
{
	static char host[256], fqdn[256];
	static int done;

	if (!done) {
		struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;

		done = 1;
		if (gethostname(host, sizeof host - 1) != 0)
			host[0] = '\0';
		if (host[0] && getaddrinfo(host, NULL, &hints, &res) == 0) {
			if (res && res->ai_canonname)
				str_copy(fqdn, res->ai_canonname, sizeof fqdn);
			freeaddrinfo(res);
		}
	}
	return (host[0] && str_ieq(domain, host)) || (fqdn[0] && str_ieq(domain, fqdn));
}

static int in_list(const char *domain, const char *list)
{
	size_t dlen = strlen(domain);

	while (list && *list) {
		size_t n;

		list += strspn(list, " ,\t");
		n = strcspn(list, " ,\t");
		if (n == dlen && strncasecmp(list, domain, n) == 0)
			return 1;
		list += n;
	}
	return 0;
}

int aliases_is_local(const char *addr, const char *local_domains)
{
	const char *d = addr_domain(addr);

	if (!d)
		return 1;
	return str_ieq(d, "localhost") || str_ieq(d, "localhost.localdomain") || is_own_name(d) ||
	       in_list(d, local_domains);
}

static const struct alias *find(const struct aliases *al, const char *name)
{
	for (size_t i = 0; al && i < al->n; i++)
		if (str_ieq(al->v[i].name, name))
			return &al->v[i];
	return NULL;
}

struct expand {
	const struct aliases *al;
	int (*cb)(void *ctx, const char *addr, struct perr *e);
	void *ctx;
	int depth;
};

static int expand_one(struct expand *x, const char *addr, struct perr *e);

static int expand_cb(void *ctx, const char *addr, struct perr *e)
{
	struct expand *x = ctx;

	if (addr[0] == '|' || addr[0] == '/' || strncasecmp(addr, ":include:", 9) == 0)
		return perr_set(e, PERR_NOUSER, "alias target '%s' is a command or a file, which "
				"postern cannot deliver; use a mail address", addr);
	if (!aliases_is_local(addr, NULL))
		return x->cb(x->ctx, addr, e);
	return expand_one(x, addr, e);
}

static int expand_one(struct expand *x, const char *addr, struct perr *e)
{
	char name[ADDR_MAX + 1];
	const struct alias *a;
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);

	if (n > ADDR_MAX)
		n = ADDR_MAX;
	memcpy(name, addr, n);
	name[n] = '\0';
	if (x->depth >= ALIASES_DEPTH_MAX)
		return perr_set(e, PERR_CONFIG, "%s: the alias of '%s' loops (deeper than %d); fix "
				"the aliases file", x->al ? x->al->path : "aliases", name,
				ALIASES_DEPTH_MAX);
	a = find(x->al, name);
	if (!a)
		a = find(x->al, "default");
	if (!a) {
		if (x->al)
			return perr_set(e, PERR_NOUSER, "local recipient '%s' has no alias in %s; add "
					"a line '%s: you@example.com' there, or give a full address",
					name, x->al->path, name);
		return perr_set(e, PERR_NOUSER, "local recipient '%s' cannot be delivered: set "
				"aliases = /etc/aliases in [defaults] of the configuration and add "
				"'%s: you@example.com' to it, or give a full address", name, name);
	}
	x->depth++;
	int rc = addr_parse_list(a->value, expand_cb, x, e);
	x->depth--;
	return rc;
}

int aliases_expand(const struct aliases *al, const char *addr,
		   int (*cb)(void *ctx, const char *addr, struct perr *e), void *ctx,
		   struct perr *e)
{
	struct expand x = { .al = al, .cb = cb, .ctx = ctx };

	return expand_one(&x, addr, e);
}

void aliases_free(struct aliases *al)
{
	for (size_t i = 0; i < al->n; i++) {
		free(al->v[i].name);
		free(al->v[i].value);
	}
	free(al->v);
	free(al->path);
	memset(al, 0, sizeof *al);
}
