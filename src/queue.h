/* queue.h — the durable spool: a message handed to postern is delivered
 * or kept, never lost, never sent twice.
 *
 * Layout of the spool directory (mode 0700, files 0600):
 *   tmp/         files being written (removed when older than an hour)
 *   msg/ID       the message exactly as it will be sent (the stream
 *                message_next produces: prepared headers + body)
 *   env/ID       its envelope and delivery state (text, "key value" lines)
 *   failed/ID.msg, failed/ID.env   messages given up on, with the last error
 *   held/ACCOUNT accounts whose credentials were refused (reason inside)
 * A message is queued exactly when env/ID exists.  Writing: msg to tmp/,
 * fsync, rename into msg/; env to tmp/, fsync, rename into env/; fsync
 * the directories — a crash leaves a complete message or none.
 * Claiming: flock(LOCK_EX|LOCK_NB) on msg/ID (its inode never changes,
 * while env/ID is replaced by rename on each retry); a flusher killed by
 * SIGKILL loses its locks, so the next run retries.  Delivered: env/ID is
 * unlinked first (the commit), then msg/ID.  See queue.c for the details.
 *
 * Notes: queue_claim and queue_list skip what they cannot use (a corrupt
 * env file, a missing msg file) and still return 0; then e->kind is
 * PERR_NONE and e->text is non-empty: print it as a warning. */
#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "errors.h"
#include "message.h"

#define QUEUE_ID_MAX 32

struct queue {
	char *dir;      /* the spool directory */
	int dirfd;
	/* Set by a flusher: queue_done leaves the directory fsyncs to
	 * queue_sync (or queue_close), one per batch instead of one per
	 * message.  A removal is visible to every process at once; only a
	 * power loss before the sync can bring a delivered message back (sent
	 * twice, never lost). */
	int lazy_sync;
	int dirty;
};

/* Envelope and delivery state of one queued message. */
struct queue_env {
	char id[QUEUE_ID_MAX];
	char *account;
	char *sender;            /* "" for the null sender */
	char **rcpts;
	size_t nrcpts;
	int body_8bit, smtputf8;
	char *dsn_notify, *dsn_return, *dsn_envid;
	long long size;          /* bytes of msg/ID (checked when claimed) */
	long long wire_size;     /* bytes on the wire after CRLF normalisation,
				    for SIZE=; 0 unknown */
	time_t created;
	time_t next_try;
	unsigned attempts;
	char *last_error;        /* one line, sanitised; NULL before any attempt */
};

/* Open (and create, mode 0700) the spool: dir if given, else
 * $XDG_STATE_HOME/postern/queue (~/.local/state when unset), or
 * /var/spool/postern for root.  Errors: PERR_IO / PERR_TEMP naming the
 * directory and the fix. */
int queue_open(struct queue *q, const char *dir, struct perr *e);
void queue_close(struct queue *q);
/* fsync what lazy_sync left; 0 or -1 (nothing to report but a warning). */
int queue_sync(struct queue *q);

/* Spool a message durably; fills env->id, env->size (bytes of msg/ID),
 * env->created (now) and env->next_try (now + queue_backoff(attempts): set
 * attempts = 1 and last_error after a failed attempt, attempts = 0 for
 * -odq).  account, sender and rcpts must be single printable lines
 * (PERR_SOFTWARE otherwise).  When the spool cannot be written (disk
 * full: PERR_TEMP (75); read-only, permission: PERR_IO (74)) the text names
 * the directory and the fix, and nothing is left behind. */
int queue_add(struct queue *q, struct queue_env *env, const struct message *m, struct perr *e);

/* One claimed message: its lock is held until queue_release/done/retry. */
struct queue_item {
	struct queue_env env;
	int lockfd;     /* msg/ID, flocked (the same descriptor as msgfd) */
	int msgfd;      /* msg/ID, for reading */
	off_t pos;      /* read position for queue_item_read */
};

/* Claim every unlocked queued message of account (NULL: all accounts),
 * oldest first; with due_only only those whose next_try <= now.  The
 * caller owns *items (free with queue_items_free).  At most 256 at once
 * (each holds a descriptor); the rest are noted in e->text.  Also removes
 * leftovers of crashes (tmp files, orphan msg files) older than an hour. */
int queue_claim(struct queue *q, const char *account, int due_only, time_t now,
		struct queue_item **items, size_t *n, struct perr *e);

/* Rewind / read the claimed message's bytes (an smtp_source_fn). */
void queue_item_rewind(struct queue_item *it);
long queue_item_read(void *item, unsigned char *buf, size_t cap, struct perr *e);

/* queue_done, queue_retry and queue_fail release the item's lock (its
 * env stays valid until queue_items_free).  On -1 the message is still
 * queued or its removal is not durable (it may be sent again). */

/* Delivered: remove it (env first). */
int queue_done(struct queue *q, struct queue_item *it, struct perr *e);

/* Temporary failure: attempts + 1, next_try by exponential backoff
 * (5 min doubling, at most 4 h), last_error = why; older than lifetime
 * seconds (<= 0: no limit): moved to failed/ instead (returns 1 then, with
 * last_error "gave up after N days and M attempts: why", else 0). */
int queue_retry(struct queue *q, struct queue_item *it, const char *why, time_t now,
		long lifetime, struct perr *e);

/* Permanent failure: moved to failed/ with why. */
int queue_fail(struct queue *q, struct queue_item *it, const char *why, struct perr *e);

/* Seconds until the next try after the attempts-th failed attempt:
 * 0 for 0, 300 for 1, doubling, at most 14400. */
time_t queue_backoff(unsigned attempts);

/* Unlock without changing anything. */
void queue_release(struct queue_item *it);
void queue_items_free(struct queue_item *items, size_t n);

/* Listing for mailq: every queued message (locked ones too), oldest first,
 * and, after them, the failed ones (failed = 1).  held is the hold reason
 * of the message's account (whatever its stamp), or NULL.  A non-zero
 * return from cb stops the listing. */
int queue_list(struct queue *q,
	       int (*cb)(void *ctx, const struct queue_env *env, int failed, const char *held),
	       void *ctx, struct perr *e);

/* Accounts held after refused credentials.  stamp identifies the
 * account's configuration and secret source at the time (e.g. a hash of
 * the config values and the config file's mtime); the hold ends when the
 * stamp differs or queue_unhold is called (postern -q). */
int queue_hold(struct queue *q, const char *account, const char *reason, const char *stamp,
	       struct perr *e);
/* 1 and the reason (caller frees) when held with the same stamp; 0 when
 * not held; 2 when a hold with another stamp was found and removed (the
 * credentials changed: its messages are due at once). */
int queue_held(struct queue *q, const char *account, const char *stamp, char **reason);
int queue_unhold(struct queue *q, const char *account);
/* True when the account has a hold, whatever its stamp (no side effect). */
int queue_hold_exists(struct queue *q, const char *account);

void queue_env_free(struct queue_env *env);

#endif
