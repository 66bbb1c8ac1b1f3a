/* deliver.h — what happens to a message handed to postern.
 *
 * deliver_message chooses the account, builds the envelope (sender,
 * recipients through the aliases file), applies the header policy,
 * resolves the secret (before any connection), then delivers the message
 * now — over the same connection also the account's queued messages — or
 * queues it on a temporary failure (queue = on), or refuses it.
 * deliver_flush is `postern -q`: every account's queued messages over one
 * connection per account.  Neither prints: notices go to a callback, the
 * final error to struct perr; main.c turns them into lines and exit codes. */
#ifndef POSTERN_DELIVER_H
#define POSTERN_DELIVER_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "errors.h"
#include "message.h"
#include "queue.h"

/* What the caller asked for (the command line, or a -bs session). */
struct deliver_req {
	const char *account;       /* -a, or NULL */
	const char *from;          /* -f: "" for the null sender; NULL: not given */
	const char *fullname;      /* -F */
	int extract;               /* -t: recipients from To/Cc/Bcc too */
	char *const *rcpts;        /* recipient arguments; each may be a comma list */
	size_t nrcpts;
	const char *dsn_notify, *dsn_return, *dsn_envid;
	const char *body_type;     /* -B */
	int queue_only;            /* -odq */
	/* System mode: the caller's uid, recorded with a queued message
	 * (queue_env.owner); owned 0: none. */
	int owned;
	uid_t owner;
	/* One line for the person (a queued message's id and reason, a
	 * failed queued message); may be NULL. */
	void (*notice)(const char *line);
};

enum deliver_outcome { DELIVER_SENT = 0, DELIVER_QUEUED };

struct deliver_result {
	enum deliver_outcome outcome;
	char queue_id[QUEUE_ID_MAX];   /* when queued */
	char reason[PERR_TEXT_MAX];    /* why it was queued */
};

/* m has been read with message_read(m, fd, req->extract, ...).  Returns 0
 * when the message was delivered or safely queued (res says which), -1
 * with e filled when it was refused or could not be kept: then the
 * message is still the caller's. */
int deliver_message(const struct config *cfg, const struct deliver_req *req, struct message *m,
		    struct deliver_result *res, struct perr *e);

/* postern -q: deliver queued messages, one session per account.
 * due_only: only messages whose next try has come, and held accounts are
 * skipped (timers); otherwise everything now, and holds are lifted (a
 * person asked).  Returns 0 when every attempted message was delivered,
 * or -1 with e describing the last failure (messages stay queued). */
int deliver_flush(const struct config *cfg, int due_only, void (*notice)(const char *line),
		  struct perr *e);
/* The same, and then, when out is not NULL, one line per account met to
 * out ("account NAME: delivered N, queued N (why), held N, failed N", the
 * reason being the last one a message of the account stayed queued for)
 * and a total line; an account held in this run is said by its line
 * alone ("held N (why)"), not by a notice of its own. */
int deliver_flush_report(const struct config *cfg, int due_only,
			 void (*notice)(const char *line), FILE *out, struct perr *e);

/* The envelope sender a message gets without -f: the account's from
 * (unless a glob), else the user when it is an address, else
 * LOGIN@HOST (buf holds it).  --probe tries it with MAIL FROM. */
const char *deliver_default_sender(const struct account *a, char *buf, size_t cap);

#endif
