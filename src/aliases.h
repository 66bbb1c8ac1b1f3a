/* aliases.h — local recipients: which addresses are local, and the
 * aliases file that maps local names to real addresses.
 *
 * File format (as /etc/aliases and msmtp's): "name: addr, addr" per entry,
 * '#' comments, continuation lines starting with a space or tab, names
 * case-insensitive, "default: addr" catching every other local name.
 * Values may name other local names; expansion follows them (bounded
 * depth, loops refused).  Pipes ("|cmd"), files ("/path") and :include:
 * cannot be delivered by a submission agent and are errors. */
#ifndef POSTERN_ALIASES_H
#define POSTERN_ALIASES_H

#include <stddef.h>

#include "errors.h"

/* Lines longer than this are an error (real alias files stay far below). */
#define ALIASES_LINE_MAX 4096
/* Alias chains deeper than this are treated as a loop. */
#define ALIASES_DEPTH_MAX 16

struct alias {
	char *name;     /* lower case */
	char *value;    /* the comma list, continuation lines joined */
	int line;
};

struct aliases {
	char *path;
	struct alias *v;
	size_t n;
};

/* Read an aliases file.  A missing file: PERR_CONFIG naming it. */
int aliases_load(struct aliases *al, const char *path, struct perr *e);

/* True when addr is local: no '@', or its domain is "localhost",
 * "localhost.localdomain", one of this host's names (hostname, FQDN), or
 * listed in local_domains (space or comma separated; may be NULL). */
int aliases_is_local(const char *addr, const char *local_domains);

/* Expand a local address (its local part is looked up) into non-local
 * addresses, calling cb for each.  al may be NULL (no aliases file).
 * Unresolvable: PERR_NOUSER with a line saying how to add an alias. */
int aliases_expand(const struct aliases *al, const char *addr,
		   int (*cb)(void *ctx, const char *addr, struct perr *e), void *ctx,
		   struct perr *e);

void aliases_free(struct aliases *al);

#endif
