/* mailq.c — the operator's view of the spool: listing, managing by id,
 * and the notice of failed messages.  See mailq.h. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mailq.h"
#include "queue.h"
#include "util.h"

/* An error longer than this, met again, is not printed again. */
#define LONG_ERROR 72
/* Distinct long errors remembered by one listing (the rest print in full). */
#define SEEN_ERRORS 32
/* Parts of an error ("; "-separated) that compaction looks at. */
#define COMPACT_PARTS 64
#define COMPACT_MAX 4096

/* ---- one reply for several recipients, once ------------------------------- */

struct part {
	const char *p;
	size_t len;
	size_t rcpt;   /* offset of "<addr>: " in the part, or len when none */
	size_t key;    /* offset of the reply after "<addr>: " */
};

/* Find "<addr>: " at the start of the part or after ": ". */
static void find_rcpt(struct part *pt)
{
	pt->rcpt = pt->key = pt->len;
	for (size_t i = 0; i < pt->len; i++) {
		if (pt->p[i] != '<' || (i > 0 && (i < 2 || memcmp(pt->p + i - 2, ": ", 2) != 0)))
			continue;
		const char *gt = memchr(pt->p + i, '>', pt->len - i);
		size_t end = gt ? (size_t)(gt - pt->p) : pt->len;

		if (end + 3 <= pt->len && memcmp(pt->p + end, ">: ", 3) == 0) {
			pt->rcpt = i;
			pt->key = end + 3;
		}
		return;
	}
}

static int same_reply(const struct part *a, const struct part *b)
{
	return a->len - a->key == b->len - b->key &&
	       memcmp(a->p + a->key, b->p + b->key, a->len - a->key) == 0;
}

static void put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
	if (*n + 1 >= cap)
		return;
	if (len > cap - 1 - *n)
		len = cap - 1 - *n;
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = '\0';
}

void mailq_compact_error(char *out, size_t cap, const char *text)
{
	struct part parts[COMPACT_PARTS];
	size_t np = 0, n = 0, len = strlen(text);
	const char *s = text;

	if (cap == 0)
		return;
	out[0] = '\0';
	while (np < COMPACT_PARTS) {
		const char *semi = strstr(s, "; ");
		struct part *pt = &parts[np++];

		pt->p = s;
		pt->len = semi ? (size_t)(semi - s) : strlen(s);
		find_rcpt(pt);
		if (!semi)
			break;
		s = semi + 2;
	}
	if (np == COMPACT_PARTS || len > COMPACT_MAX) {  /* too many to judge */
		str_copy(out, text, cap);
		return;
	}
	for (size_t i = 0; i < np; i++) {
		const struct part *g = &parts[i];
		size_t j = i + 1;

		if (i)
			put(out, cap, &n, "; ", 2);
		if (g->rcpt == g->len) {
			put(out, cap, &n, g->p, g->len);
			continue;
		}
		/* g's prefix and address, then the following parts that are only
		 * "<addr>: " and the same reply. */
		put(out, cap, &n, g->p, g->key - 2);
		for (; j < np && parts[j].rcpt == 0 && same_reply(g, &parts[j]); j++) {
			put(out, cap, &n, ", ", 2);
			put(out, cap, &n, parts[j].p, parts[j].key - 2);
		}
		put(out, cap, &n, g->p + g->key - 2, g->len - g->key + 2);
		i = j - 1;
	}
}

/* ---- the listing ----------------------------------------------------------- */

static void format_age(char *buf, size_t cap, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 3600)
		snprintf(buf, cap, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, cap, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
	else
		snprintf(buf, cap, "%lldd%02lldh", secs / 86400, secs % 86400 / 3600);
}

struct listing {
	FILE *out;
	const char *dir;
	int filtered;   /* only the messages of owner (system mode) */
	uid_t owner;
	size_t queued, held, failed, damaged, shown_failed;
	struct {
		char *text;
		char id[QUEUE_ID_MAX];
	} seen[SEEN_ERRORS];
	size_t nseen;
};

static void list_header(struct listing *l, enum queue_state state)
{
	if (state == QUEUE_FAILED && l->shown_failed++ == 0)
		fprintf(l->out, "%s-- failed (given up; kept in the spool's failed/ directory) --\n",
			l->queued + l->held + l->damaged ? "\n" : "");
	if (state != QUEUE_FAILED && l->queued + l->held + l->damaged + l->failed == 0)
		fprintf(l->out, "%-22s %7s %9s  %-8s %-9s %s\n", "ID", "AGE", "SIZE", "ATTEMPTS",
			"NEXT TRY", "SENDER");
}

static void list_damaged(struct listing *l, const struct queue_entry *ent)
{
	char line[PERR_TEXT_MAX];

	log_sanitize(line, sizeof line, ent->damage, strlen(ent->damage));
	fprintf(l->out, "%-22s damaged: %s\n    file: %s/%s; delete it with postern "
		"--queue-delete %s\n", ent->id, line, l->dir, ent->path, ent->id);
	l->damaged++;
}

/* Print "    LABEL: TEXT", or, for a long text an earlier message showed,
 * "    LABEL: as for ID above". */
static void list_error(struct listing *l, const char *label, const char *text, const char *id)
{
	char compact[COMPACT_MAX], line[COMPACT_MAX];
	size_t len = strlen(text);

	if (len > LONG_ERROR) {
		for (size_t i = 0; i < l->nseen; i++) {
			if (strcmp(l->seen[i].text, text) == 0) {
				fprintf(l->out, "    %s: as for %s above\n", label, l->seen[i].id);
				return;
			}
		}
		if (l->nseen < SEEN_ERRORS) {
			l->seen[l->nseen].text = xstrdup(text);
			str_copy(l->seen[l->nseen++].id, id, QUEUE_ID_MAX);
		}
	}
	mailq_compact_error(compact, sizeof compact, text);
	log_sanitize(line, sizeof line, compact, strlen(compact));
	fprintf(l->out, "    %s: %s\n", label, line);
}

static void next_try(char *next, size_t cap, const struct queue_entry *ent, time_t now)
{
	const struct queue_env *qe = ent->env;

	if (ent->state == QUEUE_FAILED)
		str_copy(next, "-", cap);
	else if (ent->held)
		str_copy(next, "held", cap);
	else if (qe->next_try <= now)
		str_copy(next, "now", cap);
	else {
		char in[24];
		format_age(in, sizeof in, (long long)(qe->next_try - now));
		snprintf(next, cap, "in %s", in);
	}
}

static int list_one(void *ctx, const struct queue_entry *ent)
{
	struct listing *l = ctx;
	const struct queue_env *qe = ent->env;
	char age[32], next[32], line[PERR_TEXT_MAX];
	time_t now = time(NULL);

	if (l->filtered && (!qe || !qe->owned || qe->owner != l->owner))
		return 0;
	list_header(l, ent->state);
	if (ent->state == QUEUE_DAMAGED) {
		list_damaged(l, ent);
		return 0;
	}
	format_age(age, sizeof age, (long long)(now - qe->created));
	next_try(next, sizeof next, ent, now);
	log_sanitize(line, sizeof line, qe->sender, strlen(qe->sender));
	fprintf(l->out, "%-22s %7s %9lld  %-8u %-9s %s\n", qe->id, age, qe->size, qe->attempts,
		next, qe->sender[0] ? line : "<>");
	for (size_t i = 0; i < qe->nrcpts; i++) {
		log_sanitize(line, sizeof line, qe->rcpts[i], strlen(qe->rcpts[i]));
		fprintf(l->out, "    to: %s\n", line);
	}
	fprintf(l->out, "    account: %s\n", qe->account);
	if (ent->held && (!qe->last_error || strcmp(ent->held, qe->last_error) != 0))
		list_error(l, "held", ent->held, qe->id);
	if (ent->held)
		fprintf(l->out, "    held: run postern -q after fixing the credentials%s\n",
			qe->last_error && strcmp(ent->held, qe->last_error) == 0 ?
			" (the last error says why)" : "");
	if (qe->last_error)
		list_error(l, "last error", qe->last_error, qe->id);
	if (ent->state == QUEUE_FAILED)
		l->failed++;
	else if (ent->held)
		l->held++;
	else
		l->queued++;
	return 0;
}

static int list_queue(FILE *out, struct listing *how, struct perr *e)
{
	struct queue q;
	struct listing l = *how;
	int rc;

	if (queue_open(&q, NULL, e) < 0)
		return -1;
	l.dir = q.dir;
	rc = queue_list(&q, list_one, &l, e);
	if (rc == 0 && !l.filtered)
		queue_failed_seen(&q);
	queue_close(&q);
	for (size_t i = 0; i < l.nseen; i++)
		free(l.seen[i].text);
	if (rc < 0)
		return -1;
	if (!l.queued && !l.held && !l.failed && !l.damaged)
		fprintf(out, "Mail queue is empty\n");
	else
		fprintf(out, "\nqueued %zu, held %zu, failed %zu, damaged %zu\n", l.queued, l.held,
			l.failed, l.damaged);
	return 0;
}

int mailq_list(FILE *out, struct perr *e)
{
	struct listing l = { .out = out };

	return list_queue(out, &l, e);
}

int mailq_list_of(FILE *out, uid_t owner, struct perr *e)
{
	struct listing l = { .out = out, .filtered = 1, .owner = owner };

	return list_queue(out, &l, e);
}

/* ---- by id ------------------------------------------------------------------ */

int mailq_manage(enum mailq_op op, char *const *ids, size_t n, FILE *out,
		 void (*notice)(const char *line), struct perr *e)
{
	struct queue q;
	struct perr one;
	int rc = 0;

	if (n == 0)
		return perr_set(e, PERR_USAGE, "%s needs the ids of the messages (mailq lists "
				"them)", op == MAILQ_DELETE ? "--queue-delete" : "--queue-retry");
	if (queue_open(&q, NULL, e) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int r;

		perr_clear(&one);
		r = op == MAILQ_DELETE ? queue_remove(&q, ids[i], &one)
				       : queue_requeue(&q, ids[i], time(NULL), &one);
		if (r < 0) {
			/* One line per id refused; the last is main's. */
			if (rc < 0 && notice)
				notice(e->text);
			*e = one;
			rc = -1;
			continue;
		}
		if (op == MAILQ_DELETE)
			fprintf(out, "%s: deleted (it was %s)\n", ids[i], r ? "failed" : "queued");
		else
			fprintf(out, "%s: %s\n", ids[i], r ? "back in the queue from failed/, due now "
				"(postern -q sends it)" : "due now (postern -q sends it)");
	}
	queue_close(&q);
	return rc;
}

/* ---- failed since a person last looked -------------------------------------- */

void mailq_failed_notice(void (*notice)(const char *line))
{
	struct queue q;
	size_t n;
	char line[160];

	if (queue_open_existing(&q, NULL) < 0)
		return;
	n = queue_failed_unseen(&q);
	if (n) {
		snprintf(line, sizeof line, "%zu message%s failed and %s kept in failed/ since you "
			 "last looked; see %s with mailq (postern -bp)", n, n == 1 ? "" : "s",
			 n == 1 ? "is" : "are", n == 1 ? "it" : "them");
		notice(line);
		queue_failed_seen(&q);
	}
	queue_close(&q);
}
