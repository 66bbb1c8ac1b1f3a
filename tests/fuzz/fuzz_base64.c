/* fuzz_base64.c — fuzz target for base64.c.
 *
 * Oracles: decoding is strict, so whatever it accepts is the one
 * canonical encoding of what it returns (encode(decode(x)) == x); it
 * never writes more than cap bytes and refuses input that does not fit;
 * and any bytes survive encode then decode unchanged. */
#include "autoconf.h"

#include <string.h>

#include "base64.h"
#include "fuzz.h"
#include "util.h"

static void check_decode(const char *in, size_t n)
{
	size_t cap = n / 4 * 3;
	unsigned char *out = xmalloc(cap ? cap : 1); /* exact: overflows show */
	char *again;
	long r = base64_decode(in, n, out, cap), r2;

	if (r >= 0) {
		FUZZ_CHECK((size_t)r <= cap);
		again = xmalloc(BASE64_LEN((size_t)r) + 1);
		FUZZ_CHECK(base64_encode(out, (size_t)r, again) == n);
		FUZZ_CHECK(memcmp(again, in, n) == 0);
		free(again);
		if (r > 0) {
			/* one byte too little room: refused, nothing past cap */
			r2 = base64_decode(in, n, out, (size_t)r - 1);
			FUZZ_CHECK(r2 == -1);
		}
	}
	free(out);
}

static void check_roundtrip(const unsigned char *in, size_t n)
{
	char *enc = xmalloc(BASE64_LEN(n) + 1);
	unsigned char *dec = xmalloc(n ? n : 1);
	size_t len = base64_encode(in, n, enc);

	FUZZ_CHECK(len == BASE64_LEN(n) && enc[len] == '\0' && strlen(enc) == len);
	FUZZ_CHECK(base64_decode(enc, len, dec, n) == (long)n);
	FUZZ_CHECK(memcmp(dec, in, n) == 0);
	free(dec);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode((const char *)data, size);
	check_roundtrip(data, size);
	return 0;
}
