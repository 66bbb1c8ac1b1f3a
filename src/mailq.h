/* mailq.h — the operator's view of the spool: the mailq listing, the
 * messages managed by id (--queue-delete, --queue-retry), and the one
 * line that tells a person that messages failed since they last looked.
 * Nothing here sends mail (deliver.c does); main.c turns the errors into
 * exit codes. */
#ifndef POSTERN_MAILQ_H
#define POSTERN_MAILQ_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "errors.h"

/* postern -bp / mailq: every queued message (held ones marked), the
 * damaged entries, then the failed ones, and a summary line "queued N,
 * held N, failed N, damaged N".  A long error shared by several messages
 * is printed in full once, and one reply repeated for several recipients
 * once for all of them.  Marks the failed messages as seen. */
int mailq_list(FILE *out, struct perr *e);

/* The same listing of owner's messages only (the system queue seen by
 * one user; damaged entries are not shown).  The failed ones stay unseen. */
int mailq_list_of(FILE *out, uid_t owner, struct perr *e);

enum mailq_op { MAILQ_DELETE, MAILQ_RETRY };

/* --queue-delete / --queue-retry ID...: one line on out per message
 * handled; every id is tried.  -1 when one could not be handled: each
 * such id's error went to notice, and e holds the first. */
int mailq_manage(enum mailq_op op, char *const *ids, size_t n, FILE *out,
		 void (*notice)(const char *line), struct perr *e);

/* When messages moved to failed/ since a person last looked (mailq, or
 * this notice), one line to notice saying how many and how to see them;
 * then they count as seen.  Nothing when the spool does not exist. */
void mailq_failed_notice(void (*notice)(const char *line));

/* Compact an error for display: "<a>: R; <b>: R" becomes "<a>, <b>: R"
 * (the same reply given to several recipients, shown once).  out has cap
 * bytes; the result is cut, never overflowed. */
void mailq_compact_error(char *out, size_t cap, const char *text);

#endif
