/* fuzz.h — what the fuzz targets in tests/fuzz/ share: the libFuzzer entry
 * point, a check that aborts (libFuzzer and the replay driver both report
 * an abort as a failure), and small oracles used by several targets.
 *
 * Each fuzz_NAME.c defines LLVMFuzzerTestOneInput.  It is linked either
 * with libFuzzer (./configure --enable-fuzzing CC=clang; `make fuzz`) or
 * with replay.c, which runs the checked-in corpus tests/fuzz/corpus/NAME/ as a
 * TAP test in every build. */
#ifndef POSTERN_FUZZ_H
#define POSTERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
	} while (0)

static inline void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: oracle failed: %s\n", file, line, what);
	abort();
}

/* True when s[0..n) is valid UTF-8 with no C0 control, DEL or C1
 * control, i.e. safe to print; '\n' allowed only when nl is set. */
static inline int fuzz_printable(const char *s, size_t n, int nl)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (p[i] == '\n' && nl) {
			i++;
			continue;
		}
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			len = 2;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			len = 3;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			len = 4;
		else
			return 0;
		if (i + len > n)
			return 0;
		cp = p[i] & (0x7f >> len);
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
			return 0;
		i += len;
	}
	return 1;
}

/* True when s has no C0 control character but TAB, and no DEL: one
 * line, no escape sequences (8-bit bytes allowed). */
static inline int fuzz_one_line(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return 0;
	return 1;
}

/* A perr filled by a failure: a kind and one line of text. */
#define FUZZ_CHECK_ERROR(e)                                                                        \
	do {                                                                                       \
		FUZZ_CHECK((e)->kind != PERR_NONE);                                                \
		FUZZ_CHECK((e)->text[0] != '\0');                                                  \
		FUZZ_CHECK(memchr((e)->text, '\0', sizeof(e)->text) != NULL);                      \
		FUZZ_CHECK(fuzz_one_line((e)->text));                                              \
	} while (0)

#endif
