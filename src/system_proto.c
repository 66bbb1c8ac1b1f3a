/* system_proto.c — the wire format of system mode, both directions: the
 * line reader with a deadline and the %XX escaping of arguments.  See
 * system_proto.h. */
#include "autoconf.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "system_proto.h"
#include "util.h"

int system_rb_fill(struct system_rbuf *r)
{
	struct pollfd pf = { .fd = r->fd, .events = POLLIN };

	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	for (;;) {
		int64_t left = r->deadline - mono_ms();
		if (r->idle_ms > 0 && left > r->idle_ms)
			left = r->idle_ms;
		int p = left > 0 ? poll(&pf, 1, (int)left) : 0;
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0) {
			errno = p == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			r->eof = 1;
			return 0;
		}
		r->len += (size_t)n;
		return 1;
	}
}

int system_rb_line(struct system_rbuf *r, char *out, size_t cap)
{
	for (;;) {
		char *lf = memchr(r->buf + r->pos, '\n', r->len - r->pos);
		if (lf) {
			size_t n = (size_t)(lf - (r->buf + r->pos));
			if (n >= cap) {
				errno = EMSGSIZE;
				return -1;
			}
			memcpy(out, r->buf + r->pos, n);
			out[n] = '\0';
			r->pos += n + 1;
			return 1;
		}
		if (r->eof)   /* a last line without LF is no line */
			return r->len == r->pos ? 0 : (errno = EPROTO, -1);
		if (r->len - r->pos >= sizeof r->buf - 1)
			return errno = EMSGSIZE, -1;
		if (system_rb_fill(r) < 0)
			return -1;
	}
}

size_t system_arg_line(char *out, size_t cap, const char *arg)
{
	size_t w = str_copy(out, "A ", cap);

	for (const unsigned char *s = (const unsigned char *)arg; *s; s++) {
		if (w + 5 >= cap)
			return 0;
		if (*s < 0x21 || *s == '%' || *s == 0x7f)
			w += (size_t)snprintf(out + w, cap - w, "%%%02X", *s);
		else
			out[w++] = (char)*s;
	}
	out[w++] = '\n';
	return w;
}

int system_arg_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if ((unsigned char)*s < 0x21 || *s == 0x7f)
			return -1;
		if (*s != '%') {
			*w++ = *s;
			continue;
		}
		unsigned v;
		if (sscanf(s + 1, "%2x", &v) != 1 || !s[1] || !s[2] || v == 0)
			return -1;
		*w++ = (char)v;
		s += 2;
	}
	*w = '\0';
	return 0;
}
