/* util.c — allocation, bounded copies, clock, wiping, opening the files
 * the configuration names. */
#include "autoconf.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void oom(void)
{
	fputs("postern: out of memory\n", stderr);
	exit(71); /* EX_OSERR */
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

size_t str_copy(char *dst, const char *src, size_t cap)
{
	size_t len = strlen(src);

	if (cap) {
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

int write_full(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void wipe(void *p, size_t n)
{
	if (!p || !n)
		return;
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
#endif
}

void wipe_free(char *s)
{
	if (!s)
		return;
	wipe(s, strlen(s));
	free(s);
}

int str_is_printable(const char *s, int allow_8bit)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x80) {
			if (!allow_8bit)
				return 0;
		} else if (*p < 0x20 || *p == 0x7f) {
			return 0;
		}
	}
	return 1;
}

int str_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

const char *path_base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

const char *file_type_name(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

static int not_regular(const char *path, const char *what, const char *type, struct perr *e)
{
	perr_set(e, PERR_CONFIG, "%s %s is %s, not a regular file; give the path of a "
		 "regular file", what, path, type);
	errno = EINVAL;
	return -1;
}

int open_regular(const char *path, int flags, mode_t mode, const char *what, struct perr *e)
{
	struct stat st;
	int fd, err, fl;

	fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
	if (fd < 0) {
		err = errno;
		/* ENXIO: O_WRONLY | O_NONBLOCK on a FIFO nobody reads */
		if (err == ENXIO || err == EISDIR)
			return not_regular(path, what, err == EISDIR ? "a directory" : "a FIFO or "
					   "a device", e);
		perr_set(e, PERR_CONFIG, "cannot open %s %s: %s; check the path and the file's "
			 "permissions", what, path, strerror(err));
		errno = err;
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		close(fd);
		perr_set(e, PERR_CONFIG, "cannot stat %s %s: %s", what, path, strerror(err));
		errno = err;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return not_regular(path, what, file_type_name(st.st_mode), e);
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int dynlib_load(int *state, const char *soname, const char *const names[], void *table,
		size_t n)
{
	void *h, *sym;

	if (*state)
		return *state > 0;
	*state = -1;
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return 0;
	for (size_t i = 0; i < n; i++) {
		sym = dlsym(h, names[i]);
		if (!sym)
			return 0;
		/* a data pointer to a function pointer, as POSIX allows */
		memcpy((char *)table + i * sizeof sym, &sym, sizeof sym);
	}
	*state = 1;
	return 1;
}
