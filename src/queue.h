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
 * Notes: queue_claim skips what it cannot use (a corrupt env file, a
 * missing msg file) and still returns 0; then e->kind is PERR_NONE and
 * e->text is non-empty: print it as a warning.  queue_list lists such
 * entries as damaged. */
#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "crypto.h"
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
	/* System mode: the local user who handed the message to the service
	 * (its uid from SO_PEERCRED), so that mailq can show each user their
	 * own messages only.  owned 0: a message of the queue's own user. */
	int owned;
	uid_t owner;
};

/* Open (and create, mode 0700) the spool: dir if given, else
 * $POSTERN_QUEUE_DIR, $XDG_STATE_HOME/postern/queue (~/.local/state when unset), or
 * /var/spool/postern for root.  Errors: PERR_IO / PERR_TEMP naming the
 * directory and the fix. */
int queue_open(struct queue *q, const char *dir, struct perr *e);
/* Open the spool only when it exists and is this user's (nothing is
 * created, nothing reported): 0, or -1. */
int queue_open_existing(struct queue *q, const char *dir);
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

/* Messages claimed by one call at most: each holds a descriptor. */
#define QUEUE_CLAIM_MAX 256

/* What queue_scan's pick returns for a message (its unlocked envelope). */
enum queue_pick {
	QUEUE_PICK_SKIP = -1, /* not this one */
	QUEUE_PICK_RULE = 0,  /* account and due_only decide */
	QUEUE_PICK_ANY = 1,   /* this one, due or not (a hold just ended) */
};

/* One run through the queue: which messages it takes, and how far it has
 * got.  Messages are visited oldest first (ids begin with their creation
 * time), each at most once per scan, so a run never tries a message twice
 * and ends however many are queued; only claimed messages are held in
 * memory, never the whole queue. */
struct queue_scan {
	const char *account;   /* NULL: every account */
	int due_only;          /* only messages whose next_try <= now */
	time_t now;
	/* Optional, per message; NULL: QUEUE_PICK_RULE for all. */
	enum queue_pick (*pick)(void *ctx, const struct queue_env *env);
	void *pick_ctx;
	/* Progress, kept by queue_claim_next. */
	char after[QUEUE_ID_MAX];  /* the last id looked at */
	int done;                  /* every queued message has been looked at */
	int swept;
};

void queue_scan_init(struct queue_scan *s, const char *account, int due_only, time_t now);

/* Claim up to max (<= QUEUE_CLAIM_MAX) unlocked queued messages that the
 * scan takes, continuing after the last one it looked at.  Messages it
 * does not take are read without being locked, and do not count against
 * max: due messages are never starved by others.  Fewer than max (0 too)
 * means s->done.  The caller owns *items (free with queue_items_free).
 * The first call also removes leftovers of crashes (tmp files, orphan msg
 * files) older than an hour. */
int queue_claim_next(struct queue *q, struct queue_scan *s, size_t max,
		     struct queue_item **items, size_t *n, struct perr *e);

/* A fresh scan, its first QUEUE_CLAIM_MAX messages. */
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

/* Not delivered, not its own fault: last_error = why; when the message
 * was due (now >= next_try), attempts + 1 and next_try by exponential
 * backoff (5 min doubling, at most 4 h) — a try before its time (bare
 * -q, a hold lifted) changes neither, so backoff grows only with the
 * tries made at or after the due time.  Older than lifetime seconds
 * (<= 0: no limit): moved to failed/ instead (returns 1 then, with
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

/* Listing for mailq: every queued message (locked ones too) oldest
 * first, then the failed ones; entries that cannot be used (an envelope
 * that does not parse, a message file missing or of another size than
 * its envelope says) are listed as damaged where they are found.  A
 * non-zero return from cb stops the listing. */
enum queue_state { QUEUE_QUEUED, QUEUE_FAILED, QUEUE_DAMAGED };

struct queue_entry {
	enum queue_state state;
	const char *id;
	const struct queue_env *env;  /* NULL when damaged */
	const char *held;             /* queued: its account's hold reason, or NULL */
	const char *damage;           /* damaged: what is wrong */
	const char *path;             /* damaged: the file, below the spool ("env/ID") */
};

int queue_list(struct queue *q, int (*cb)(void *ctx, const struct queue_entry *ent), void *ctx,
	       struct perr *e);

/* Accounts held after refused credentials.  cred identifies the
 * account's configuration and secret at the time; the hold file keeps
 * only a salted, slow stamp of it (crypto_stamp: format
 * "postern-hold 2", stamp "pbkdf2-sha256$..."), never the secret or a
 * plain digest of it.  The hold ends when the credentials differ or
 * queue_unhold is called (postern -q).  Making or checking a stamp costs
 * tens of milliseconds: check queue_hold_exists first. */
int queue_hold(struct queue *q, const char *account, const char *reason,
	       const struct crypto_part *cred, size_t ncred, struct perr *e);
/* 1 and the reason (caller frees) when held with the same credentials; 0
 * when not held; 2 when a hold with other credentials was found and
 * removed (the credentials changed: its messages are due at once).  A
 * hold file of the first format ("postern-hold 1": an unsalted SHA-256)
 * is compared the old way once, then replaced by the salted format when
 * still held, or removed. */
int queue_held(struct queue *q, const char *account, const struct crypto_part *cred,
	       size_t ncred, char **reason);
int queue_unhold(struct queue *q, const char *account);
/* True when the account has a hold, whatever its credentials (one stat,
 * no side effect). */
int queue_hold_exists(struct queue *q, const char *account);

/* What a person asks by id (--queue-delete, --queue-retry).  Both return
 * 0 for a queued message, 1 for a failed one, -1 with e: PERR_USAGE for
 * an id that is neither queued nor failed, PERR_TEMP when a flusher holds
 * the message right now, PERR_DATA for a damaged entry that cannot be
 * retried, PERR_IO/PERR_TEMP when the spool cannot be written.
 * queue_remove deletes the message (a damaged entry too).  queue_requeue
 * makes a queued message due now, and moves a failed one back into the
 * queue, due now, with a fresh queue_lifetime and backoff. */
int queue_remove(struct queue *q, const char *id, struct perr *e);
int queue_requeue(struct queue *q, const char *id, time_t now, struct perr *e);

/* Messages moved to failed/ since queue_failed_seen was last called (one
 * stat when there are none); queue_failed_seen marks them all seen
 * (failed/.seen). */
size_t queue_failed_unseen(struct queue *q);
void queue_failed_seen(struct queue *q);

void queue_env_free(struct queue_env *env);

#endif
