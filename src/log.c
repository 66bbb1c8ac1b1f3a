/* log.c — what postern tells people.
 *
 * Three parts, in this order:
 *   1. sanitising untrusted text (log_sanitize), used by everything below
 *      and by any module that prints server or header text;
 *   2. the -v transcript on stderr ("* event", "C: line", "S: line");
 *   3. the one-line-per-message syslog/file log: log_record_format makes
 *      the line, log_record_write and log_event_line send it to syslog or
 *      append it to a file.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- 1. sanitising ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence starting at p (n bytes available), or
 * 0 when it is not one.  Refuses overlong forms, surrogates, code points
 * above U+10FFFF and the C1 controls U+0080..U+009F (terminals obey some). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff)
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

size_t log_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, seq;

	if (cap == 0)
		return 0;
	while (i < len && o + 1 < cap) {
		unsigned char c = s[i];

		if (c >= 0x20 && c < 0x7f) {
			dst[o++] = (char)c;
			i++;
		} else if (c == '\t') {
			dst[o++] = ' ';
			i++;
		} else if (c >= 0x80 && (seq = utf8_seq(s + i, len - i)) > 0) {
			if (o + seq + 1 > cap)
				break; /* never cut a character in half */
			memcpy(dst + o, s + i, seq);
			o += seq;
			i += seq;
		} else {
			dst[o++] = '?';
			i++;
		}
	}
	dst[o] = '\0';
	return o;
}

/* ---- 2. the -v transcript ----------------------------------------------- */

/* Longest transcript line printed; longer ones end in "...".  Reply lines
 * are at most REPLY_LINE_MAX (2048) bytes, so this loses nothing real. */
#define LOG_LINE_MAX 4096

static int verbose;

void log_set_verbose(int level)
{
	verbose = level;
}

int log_verbose_level(void)
{
	return verbose;
}

/* One line "PREFIXtext\n" on stderr, sanitised, written with one call so
 * that lines from concurrent writers do not interleave mid-line. */
static void emit(const char *prefix, const char *text, size_t len)
{
	char line[LOG_LINE_MAX + 8];
	size_t plen = strlen(prefix), n;

	memcpy(line, prefix, plen);
	n = log_sanitize(line + plen, LOG_LINE_MAX, text, len);
	if (n < len && n + 3 < LOG_LINE_MAX) {
		memcpy(line + plen + n, "...", 3);
		n += 3;
	}
	line[plen + n] = '\n';
	fwrite(line, 1, plen + n + 1, stderr);
}

void log_event(const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	va_list ap;
	int n;

	if (verbose < 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	emit("* ", text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

void log_wire(char dir, const char *line, size_t len)
{
	if (verbose < 1)
		return;
	emit(dir == 'C' ? "C: " : "S: ", line, len);
}

/* ---- 3. the per-message log line (syslog or file) ----------------------- */

/* The line being built: text appended with bounds, never past cap - 1. */
struct line {
	char *buf;
	size_t cap, len;
};

static void put_raw(struct line *l, const char *s, size_t n)
{
	if (l->len + 1 >= l->cap)
		return;
	if (n > l->cap - 1 - l->len)
		n = l->cap - 1 - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

static void put_str(struct line *l, const char *s)
{
	put_raw(l, s, strlen(s));
}

/* Sanitised text; line breaks become spaces; with word, spaces become
 * '_' so that every key=value stays one word. */
static void put_clean(struct line *l, const char *s, int word)
{
	char tmp[LOG_RECORD_MAX];
	size_t n, i;

	n = log_sanitize(tmp, sizeof tmp, s, strlen(s));
	for (i = 0; i < n; i++) {
		if (tmp[i] == '?' && (s[i] == '\n' || s[i] == '\r'))
			tmp[i] = ' ';
		if (word && tmp[i] == ' ')
			tmp[i] = '_';
	}
	put_raw(l, tmp, n);
}

/* " key=value", "-" for a missing or empty value. */
static void put_kv(struct line *l, const char *key, const char *val)
{
	put_str(l, l->len ? " " : "");
	put_str(l, key);
	put_str(l, "=");
	if (val && *val)
		put_clean(l, val, 1);
	else
		put_str(l, "-");
}

/* Recipients "<a>,<b>"; cut to fit with "(+N more)". */
static void put_rcpts(struct line *l, char *const *rcpts, size_t n)
{
	/* Room kept for everything after the list (tls, size, result...). */
	size_t room = l->cap > 1024 ? l->cap - 1024 : l->cap / 2;
	size_t i;

	put_str(l, " to=");
	if (n == 0)
		put_str(l, "-");
	for (i = 0; i < n; i++) {
		if (l->len + strlen(rcpts[i]) + 3 > room) {
			char more[32];

			snprintf(more, sizeof more, "(+%zu more)", n - i);
			put_str(l, more);
			return;
		}
		put_str(l, i ? ",<" : "<");
		put_clean(l, rcpts[i], 1);
		put_str(l, ">");
	}
}

size_t log_record_format(char *buf, size_t cap, const struct log_record *r)
{
	struct line l = { buf, cap, 0 };
	char num[64], tls[128], *sp;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	put_kv(&l, "account", r->account);
	if (r->host && r->port) {
		snprintf(num, sizeof num, ":%u", r->port);
		put_str(&l, " relay=");
		put_clean(&l, r->host, 1);
		put_str(&l, num);
	} else {
		put_kv(&l, "relay", r->host);
	}
	str_copy(tls, r->tls && *r->tls ? r->tls : "none", sizeof tls);
	if ((sp = strchr(tls, ' ')) != NULL)
		*sp = '/'; /* "TLSv1.3/TLS_AES_256_GCM_SHA384" */
	put_kv(&l, "tls", tls);
	put_str(&l, " from=<");
	put_clean(&l, r->sender ? r->sender : "", 1);
	put_str(&l, ">");
	put_rcpts(&l, r->rcpts, r->rcpts ? r->nrcpts : 0);
	snprintf(num, sizeof num, "%lld", r->size);
	put_kv(&l, "size", r->size >= 0 ? num : NULL);
	put_kv(&l, "msgid", r->msgid);
	put_kv(&l, "queue_id", r->queue_id);
	snprintf(num, sizeof num, "%ld.%03lds", r->duration_ms / 1000, r->duration_ms % 1000);
	put_kv(&l, "duration", r->duration_ms >= 0 ? num : NULL);
	put_kv(&l, "status", r->status ? r->status : "unknown");
	if (r->result && *r->result) {
		put_str(&l, " (");
		put_clean(&l, r->result, 0);
		put_str(&l, ")");
	}
	return l.len;
}

static enum log_level status_level(const char *status)
{
	if (!status)
		return LOGL_ERR;
	if (strcmp(status, "sent") == 0 || strcmp(status, "delivered") == 0)
		return LOGL_INFO;
	if (strcmp(status, "queued") == 0 || strcmp(status, "deferred") == 0)
		return LOGL_WARNING;
	return LOGL_ERR;
}

/* "~/x" -> "$HOME/x" into buf; other paths as they are. */
static const char *log_path(const char *setting, char *buf, size_t cap)
{
	const char *home = getenv("HOME");

	if (strncmp(setting, "~/", 2) != 0 || !home || !*home)
		return setting;
	snprintf(buf, cap, "%s/%s", home, setting + 2);
	return buf;
}

static int append_file(const char *setting, const char *text, struct perr *e)
{
	char line[LOG_RECORD_MAX + 96], stamp[40], pathbuf[4096];
	const char *path = log_path(setting, pathbuf, sizeof pathbuf);
	time_t now = time(NULL);
	struct tm tm;
	ssize_t w;
	int fd, n, err;

	if (!localtime_r(&now, &tm) || strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0)
		str_copy(stamp, "-", sizeof stamp);
	n = snprintf(line, sizeof line, "%s postern[%ld]: %s\n", stamp, (long)getpid(), text);
	if (n < 0)
		return perr_set(e, PERR_SOFTWARE, "cannot format the log line");
	if ((size_t)n >= sizeof line) {
		n = (int)sizeof line - 1;
		line[n - 1] = '\n';
	}
	/* A FIFO (or a device) is refused at once: writing to one could block
	 * postern after the message was sent. */
	fd = open_regular(path, O_WRONLY | O_APPEND | O_CREAT, 0600, "log file", e);
	if (fd < 0) {
		if (e && errno != EINVAL)
			e->kind = PERR_IO;
		perr_append(e, " (the log key), or set log = syslog or log = off");
		return -1;
	}
	w = write(fd, line, (size_t)n);
	err = errno;
	close(fd);
	if (w != n)
		return perr_set(e, PERR_IO, "cannot write log file %s: %s; set log = syslog or "
				"log = off", path, w < 0 ? strerror(err) : "short write");
	return 0;
}

static int emit_log(const char *setting, enum log_level level, const char *text, struct perr *e)
{
	static const int prio[] = { [LOGL_INFO] = LOG_INFO, [LOGL_WARNING] = LOG_WARNING,
				    [LOGL_ERR] = LOG_ERR };
	static int opened;

	if (setting && strcmp(setting, "off") == 0)
		return 0;
	if (setting && *setting && strcmp(setting, "syslog") != 0)
		return append_file(setting, text, e);
	if (!opened) {
		openlog("postern", LOG_PID, LOG_MAIL);
		opened = 1;
	}
	syslog(prio[level], "%s", text);
	return 0;
}

int log_record_write(const char *setting, const struct log_record *r, struct perr *e)
{
	char text[LOG_RECORD_MAX];

	if (setting && strcmp(setting, "off") == 0)
		return 0;
	log_record_format(text, sizeof text, r);
	return emit_log(setting, status_level(r->status), text, e);
}

int log_event_line(const char *setting, enum log_level level, struct perr *e, const char *fmt, ...)
{
	char raw[LOG_RECORD_MAX], text[LOG_RECORD_MAX];
	struct line l = { text, sizeof text, 0 };
	va_list ap;
	int n;

	if (setting && strcmp(setting, "off") == 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	if (n < 0)
		return perr_set(e, PERR_SOFTWARE, "cannot format the log line");
	text[0] = '\0';
	put_clean(&l, raw, 0);
	return emit_log(setting, level, text, e);
}
