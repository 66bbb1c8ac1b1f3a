/* util.h — small helpers every module may use: allocation that aborts on
 * exhaustion, bounded string copies, the monotonic clock, wiping secrets,
 * opening the files the configuration names. */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errors.h"

/* Allocation: these never return NULL; on exhaustion they print one line
 * and exit with EX_OSERR (71). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copy src into dst of size cap, always NUL-terminated; returns strlen(src)
 * (truncation when >= cap), like BSD strlcpy. */
size_t str_copy(char *dst, const char *src, size_t cap);

/* Read up to n bytes from fd into buf, retrying after EINTR and short
 * reads; returns how many were read (fewer at end of file or on error). */
size_t read_full(int fd, void *buf, size_t n);

/* Write all n bytes of buf to fd, retrying after EINTR and short writes;
 * 0, or -1 with errno set (EIO when write made no progress). */
int write_full(int fd, const void *buf, size_t n);

/* The n bytes of p as 2n lower-case hex digits and a NUL into out. */
void hex_encode(const unsigned char *p, size_t n, char *out);

/* Milliseconds from a monotonic clock. */
int64_t mono_ms(void);

/* Overwrite n bytes in a way the compiler cannot drop. */
void wipe(void *p, size_t n);

/* Wipe and free a NUL-terminated secret; NULL is fine. */
void wipe_free(char *s);

/* True when every byte of s is printable ASCII or, with allow_8bit, a byte
 * >= 0x80; i.e. no C0 control, no DEL. */
int str_is_printable(const char *s, int allow_8bit);

/* Case-insensitive ASCII compare. */
int str_ieq(const char *a, const char *b);

/* Base name of a path (pointer into p). */
const char *path_base(const char *p);

/* Open a file that the configuration or the environment names (the
 * configuration itself, aliases, log, tls_ca_file, tls_cert/key_file) so
 * that nothing can make postern wait: open(path, flags | O_NONBLOCK |
 * O_NOCTTY | O_CLOEXEC, mode), fstat the descriptor and refuse at once
 * anything that is not a regular file (a FIFO, a device, a directory, a
 * socket); then O_NONBLOCK is cleared.  what names the file for the user,
 * e.g. "tls_ca_file" or "the aliases file".
 * Returns the descriptor, or -1 with e filled (PERR_CONFIG: "WHAT PATH:
 * cause; fix") and errno set: open's errno when open failed (ENOENT lets
 * a caller treat a missing file as it likes), EINVAL for a file that is
 * not a regular file.  A FIFO opened for writing with no reader (ENXIO)
 * is reported as not a regular file. */
int open_regular(const char *path, int flags, mode_t mode, const char *what, struct perr *e);

/* "a FIFO", "a directory", "a character device"... for a st_mode. */
const char *file_type_name(mode_t mode);

/* Load a library with dlopen (RTLD_NOW | RTLD_LOCAL) and resolve names[i]
 * into the i-th function pointer of table (a struct of n function
 * pointers, in the order of names).  Tried once per *state (0 before the
 * first call); the library stays loaded.  Returns 1 when every name was
 * resolved, 0 when the library or one of its functions is missing. */
int dynlib_load(int *state, const char *soname, const char *const names[], void *table,
		size_t n);

#endif
