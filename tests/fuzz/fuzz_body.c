/* fuzz_body.c — fuzz target for the body normaliser (body.c).
 *
 * The first input byte chooses DATA (dot-stuffing) or BDAT and how the
 * rest is cut into chunks; the rest is the message.  Oracles:
 *  - the output does not depend on the cut (one call, the chosen chunks
 *    and one byte at a time all give the same bytes and 8-bit flag);
 *  - it is exactly what an independent model gives: every line end
 *    (CRLF, LF, CR) as CRLF, a final CRLF added, '.' doubled at the start
 *    of a line in DATA mode;
 *  - decoding it (split at CRLF, no bare CR or LF left, one leading dot
 *    removed in DATA mode) gives back the normalised input;
 *  - in DATA mode no CRLF.CRLF (nor a leading ".CRLF") occurs, so the
 *    message cannot end early;
 *  - a second pass changes nothing but the dots: the CRLF form (what
 *    message_read keeps of standard input) encoded again, in other
 *    chunks, gives the same bytes as encoding the input once;
 *  - a NUL is refused with PERR_DATA and the offset of the first NUL;
 *  - no call writes past BODY_OUT_MAX(n) (buffers are allocated exactly).
 */
#include "autoconf.h"

#include <string.h>

#include "body.h"
#include "fuzz.h"
#include "util.h"

struct out {
	unsigned char *p;
	size_t len;
	int has_8bit;
};

/* Encode in[0..n) cut into chunks of the sizes step() gives. */
static long encode(const unsigned char *in, size_t n, int dot, unsigned seed, struct out *o,
		   struct perr *e)
{
	struct body b;
	unsigned char *buf, fin[2];
	size_t i = 0, k = 0, chunk;
	long r;

	body_init(&b, dot);
	o->p = xmalloc(BODY_OUT_MAX(n));
	o->len = 0;
	while (i < n) {
		chunk = seed == 0 ? n - i : 1 + (seed * 31 + k++ * 17) % (seed + 1);
		if (chunk > n - i)
			chunk = n - i;
		buf = xmalloc(BODY_OUT_MAX(chunk));
		r = body_encode(&b, in + i, chunk, buf, e);
		if (r < 0) {
			free(buf);
			return -1;
		}
		FUZZ_CHECK((size_t)r <= BODY_OUT_MAX(chunk));
		memcpy(o->p + o->len, buf, (size_t)r);
		o->len += (size_t)r;
		free(buf);
		i += chunk;
	}
	k = body_finish(&b, fin);
	FUZZ_CHECK(k <= 2);
	memcpy(o->p + o->len, fin, k);
	o->len += k;
	o->has_8bit = b.has_8bit;
	return 0;
}

/* The model: line ends unified to LF, final LF added. */
static size_t normalise(const unsigned char *in, size_t n, unsigned char *out)
{
	size_t o = 0;
	int after_cr = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && after_cr) {
			after_cr = 0;
			continue;
		}
		after_cr = in[i] == '\r';
		out[o++] = in[i] == '\r' ? '\n' : in[i];
	}
	if (o > 0 && out[o - 1] != '\n')
		out[o++] = '\n';
	return o;
}

/* The model of the wire form of normalised text. */
static size_t wire(const unsigned char *norm, size_t n, int dot, unsigned char *out)
{
	size_t o = 0;
	int bol = 1;

	for (size_t i = 0; i < n; i++) {
		if (bol && dot && norm[i] == '.')
			out[o++] = '.';
		if (norm[i] == '\n')
			out[o++] = '\r';
		out[o++] = norm[i];
		bol = norm[i] == '\n';
	}
	return o;
}

/* Decode the wire form back to LF text; checks it has no bare CR/LF. */
static size_t decode(const unsigned char *w, size_t n, int dot, unsigned char *out)
{
	size_t o = 0;
	int bol = 1;

	for (size_t i = 0; i < n; i++) {
		if (bol && dot && w[i] == '.') {
			FUZZ_CHECK(i + 1 < n && w[i + 1] == '.');
			i++;
		}
		if (w[i] == '\r') {
			FUZZ_CHECK(i + 1 < n && w[i + 1] == '\n');
			i++;
		} else {
			FUZZ_CHECK(w[i] != '\n');
		}
		out[o++] = w[i];
		bol = w[i] == '\n';
	}
	return o;
}

static void check_nul(const unsigned char *in, size_t n, int dot, unsigned seed)
{
	const unsigned char *z = memchr(in, '\0', n);
	char want[64];
	struct out o;
	struct perr e;

	memset(&e, 0, sizeof e);
	FUZZ_CHECK(encode(in, n, dot, seed, &o, &e) < 0);
	FUZZ_CHECK_ERROR(&e);
	FUZZ_CHECK(e.kind == PERR_DATA);
	snprintf(want, sizeof want, "offset %zu;", (size_t)(z - in));
	FUZZ_CHECK(strstr(e.text, want) != NULL);
	free(o.p);
}

static void check_second_pass(const unsigned char *in, size_t n, int dot,
			      const struct out *first)
{
	struct out crlf, again;
	struct perr e;

	memset(&e, 0, sizeof e);
	FUZZ_CHECK(encode(in, n, 0, 0, &crlf, &e) == 0);
	FUZZ_CHECK(encode(crlf.p, crlf.len, dot, 7, &again, &e) == 0);
	FUZZ_CHECK(again.len == first->len && memcmp(again.p, first->p, first->len) == 0);
	FUZZ_CHECK(again.has_8bit == first->has_8bit);
	free(again.p);
	free(crlf.p);
}

static void check_wire(const unsigned char *w, size_t n, int dot)
{
	FUZZ_CHECK(n == 0 || (n >= 2 && w[n - 2] == '\r' && w[n - 1] == '\n'));
	if (!dot)
		return;
	FUZZ_CHECK(!(n >= 3 && memcmp(w, ".\r\n", 3) == 0));
	for (size_t i = 0; i + 5 <= n; i++)
		FUZZ_CHECK(memcmp(w + i, "\r\n.\r\n", 5) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *in = data + 1;
	size_t n = size ? size - 1 : 0, nn, wn, dn;
	unsigned seeds[3], i;
	unsigned char *norm, *model, *back;
	struct out o[3];
	struct perr e;
	int dot, eight = 0;

	if (size == 0)
		return 0;
	dot = data[0] & 1;
	seeds[0] = 0;
	seeds[1] = data[0] >> 1;
	seeds[2] = 1 /* chunks of one or two bytes */;
	if (memchr(in, '\0', n)) {
		for (i = 0; i < 3; i++)
			check_nul(in, n, dot, seeds[i]);
		return 0;
	}
	for (i = 0; i < 3; i++) {
		memset(&e, 0, sizeof e);
		FUZZ_CHECK(encode(in, n, dot, seeds[i], &o[i], &e) == 0);
	}
	for (i = 0; i < n; i++)
		eight |= in[i] >= 0x80;
	norm = xmalloc(n + 2);
	model = xmalloc(BODY_OUT_MAX(n) + 2);
	back = xmalloc(BODY_OUT_MAX(n) + 2);
	nn = normalise(in, n, norm);
	wn = wire(norm, nn, dot, model);
	for (i = 0; i < 3; i++) {
		FUZZ_CHECK(o[i].len == wn && memcmp(o[i].p, model, wn) == 0);
		FUZZ_CHECK(o[i].has_8bit == eight);
	}
	check_wire(o[0].p, o[0].len, dot);
	check_second_pass(in, n, dot, &o[0]);
	dn = decode(o[0].p, o[0].len, dot, back);
	FUZZ_CHECK(dn == nn && memcmp(back, norm, nn) == 0);
	for (i = 0; i < 3; i++)
		free(o[i].p);
	free(back);
	free(model);
	free(norm);
	return 0;
}
