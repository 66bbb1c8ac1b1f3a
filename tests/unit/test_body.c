/* test_body.c — the streaming body normaliser: exact outputs, the same
 * output for every way of cutting the input into chunks, the SMTP
 * smuggling oracle (no CRLF.CRLF before the end in DATA mode, and undoing
 * the dot-stuffing gives back the normalised input), NUL refusal. */
#include "autoconf.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"

/* Inputs in these tests stay small; the fuzz loop's are under 64 bytes. */
#define IN_MAX 256
#define OUT_MAX BODY_OUT_MAX(IN_MAX)

struct buf {
	unsigned char b[OUT_MAX];
	size_t n;
};

/* Encode in[0..n) cut at the given positions (ascending), then finish. */
static void encode_cuts(const unsigned char *in, size_t n, int dotstuff, const size_t *cuts,
			size_t ncuts, struct buf *out)
{
	struct body b;
	struct perr e;
	size_t from = 0;
	long r;

	body_init(&b, dotstuff);
	out->n = 0;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;

		r = body_encode(&b, in + from, to - from, out->b + out->n, &e);
		assert_true(r >= 0);
		assert_true((size_t)r <= BODY_OUT_MAX(to - from));
		out->n += (size_t)r;
		from = to;
	}
	out->n += body_finish(&b, out->b + out->n);
	assert_int_equal(b.offset, n);
}

static void encode_once(const unsigned char *in, size_t n, int dotstuff, struct buf *out)
{
	encode_cuts(in, n, dotstuff, NULL, 0, out);
}

static void assert_same(const struct buf *a, const struct buf *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->b, b->b, a->n);
}

/* Every 2-way and 3-way split and byte-by-byte give the one-shot output. */
static void check_splits(const unsigned char *in, size_t n, int dotstuff, int three_way)
{
	struct buf once, split;
	size_t cuts[IN_MAX];

	encode_once(in, n, dotstuff, &once);
	for (size_t i = 0; i <= n; i++) {
		cuts[0] = i;
		encode_cuts(in, n, dotstuff, cuts, 1, &split);
		assert_same(&once, &split);
		for (size_t j = i; three_way && j <= n; j++) {
			cuts[1] = j;
			encode_cuts(in, n, dotstuff, cuts, 2, &split);
			assert_same(&once, &split);
		}
	}
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	encode_cuts(in, n, dotstuff, cuts, n, &split);
	assert_same(&once, &split);
}

/* Reference normaliser, written the obvious way: CRLF, CR, LF -> CRLF and
 * a final CRLF unless the input is empty. */
static void ref_normalise(const unsigned char *in, size_t n, struct buf *out)
{
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				i++;
			out->b[out->n++] = '\r';
			out->b[out->n++] = '\n';
		} else {
			out->b[out->n++] = in[i];
		}
	}
	if (out->n >= 1 && out->b[out->n - 1] != '\n') {
		out->b[out->n++] = '\r';
		out->b[out->n++] = '\n';
	}
}

/* Undo dot-stuffing: drop the first '.' of every line that starts with one
 * (and fail if a line starts with a single '.' alone: it was not stuffed). */
static void unstuff(const struct buf *in, struct buf *out)
{
	int bol = 1;

	out->n = 0;
	for (size_t i = 0; i < in->n; i++) {
		if (bol && in->b[i] == '.') {
			assert_true(i + 1 < in->n && in->b[i + 1] == '.');
			i++;
		}
		out->b[out->n++] = in->b[i];
		bol = in->b[i] == '\n';
	}
}

/* The oracle for one input, both modes. */
static void check_oracle(const unsigned char *in, size_t n)
{
	unsigned char framed[OUT_MAX + 2];
	struct buf data, bdat, ref, plain;

	encode_once(in, n, 1, &data);
	encode_once(in, n, 0, &bdat);
	ref_normalise(in, n, &ref);
	/* BDAT: exactly the normalised input */
	assert_same(&bdat, &ref);
	/* DATA: as the server sees it after "DATA\r\n", nothing ends the data
	 * early: no "\r\n.\r\n" anywhere (and so no "." line at the start) */
	framed[0] = '\r';
	framed[1] = '\n';
	memcpy(framed + 2, data.b, data.n);
	for (size_t i = 0; i + 5 <= data.n + 2; i++)
		assert_false(memcmp(framed + i, "\r\n.\r\n", 5) == 0);
	/* every CR is followed by LF and every LF preceded by CR */
	for (size_t i = 0; i < data.n; i++) {
		if (data.b[i] == '\r')
			assert_true(i + 1 < data.n && data.b[i + 1] == '\n');
		if (data.b[i] == '\n')
			assert_true(i > 0 && data.b[i - 1] == '\r');
	}
	unstuff(&data, &plain);
	assert_same(&plain, &ref);
}

struct exact_case {
	const char *in;
	size_t len;
	const char *data; /* expected output with dot-stuffing */
	const char *bdat; /* without */
};

#define S(x) x, sizeof x - 1

static const struct exact_case exact[] = {
	{ S(""), "", "" },
	{ S("a"), "a\r\n", "a\r\n" },
	{ S("a\n"), "a\r\n", "a\r\n" },
	{ S("a\r"), "a\r\n", "a\r\n" },
	{ S("a\r\n"), "a\r\n", "a\r\n" },
	{ S("\n"), "\r\n", "\r\n" },
	{ S("\r"), "\r\n", "\r\n" },
	{ S("\r\r"), "\r\n\r\n", "\r\n\r\n" },
	{ S("\n\r"), "\r\n\r\n", "\r\n\r\n" },
	{ S("\r\n\r\n"), "\r\n\r\n", "\r\n\r\n" },
	{ S("\n\n"), "\r\n\r\n", "\r\n\r\n" },
	{ S("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd\r\n", "a\r\nb\r\nc\r\nd\r\n" },
	{ S("."), "..\r\n", ".\r\n" },
	{ S(".\n"), "..\r\n", ".\r\n" },
	{ S("..\n"), "...\r\n", "..\r\n" },
	{ S("a.b\n.c\n"), "a.b\r\n..c\r\n", "a.b\r\n.c\r\n" },
	{ S(" .\n"), " .\r\n", " .\r\n" },
	/* smuggling attempts */
	{ S("a\n.\nMAIL FROM:<x>\n"), "a\r\n..\r\nMAIL FROM:<x>\r\n",
	  "a\r\n.\r\nMAIL FROM:<x>\r\n" },
	{ S("a\r\n.\r\n"), "a\r\n..\r\n", "a\r\n.\r\n" },
	{ S("a\r.\r"), "a\r\n..\r\n", "a\r\n.\r\n" },
	{ S("\n.\r\n"), "\r\n..\r\n", "\r\n.\r\n" },
	{ S("a\n.\r\nQUIT\r\n"), "a\r\n..\r\nQUIT\r\n", "a\r\n.\r\nQUIT\r\n" },
	{ S("a\r\n.\rRSET"), "a\r\n..\r\nRSET\r\n", "a\r\n.\r\nRSET\r\n" },
	{ S(".\r.\n.\r\n."), "..\r\n..\r\n..\r\n..\r\n", ".\r\n.\r\n.\r\n.\r\n" },
	/* long runs (the word-at-a-time path) with line ends inside */
	{ S("0123456789abcdef0123456789\n.0123456789abcdef\r\n"),
	  "0123456789abcdef0123456789\r\n..0123456789abcdef\r\n",
	  "0123456789abcdef0123456789\r\n.0123456789abcdef\r\n" },
	{ S("caf\xc3\xa9 \xff\n"), "caf\xc3\xa9 \xff\r\n", "caf\xc3\xa9 \xff\r\n" },
};

static void test_exact(void **state)
{
	struct buf out;

	(void)state;
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
		const struct exact_case *c = &exact[i];

		encode_once((const unsigned char *)c->in, c->len, 1, &out);
		assert_int_equal(out.n, strlen(c->data));
		assert_memory_equal(out.b, c->data, out.n);
		encode_once((const unsigned char *)c->in, c->len, 0, &out);
		assert_int_equal(out.n, strlen(c->bdat));
		assert_memory_equal(out.b, c->bdat, out.n);
	}
}

static void test_splits(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
		check_splits((const unsigned char *)exact[i].in, exact[i].len, 1, 1);
		check_splits((const unsigned char *)exact[i].in, exact[i].len, 0, 1);
	}
}

static void test_oracle_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
		check_oracle((const unsigned char *)exact[i].in, exact[i].len);
}

/* Pseudo-random inputs over {CR, LF, '.', 'a'} (and a few longer runs of
 * 'a' for the fast path): the oracle, and splits, on each. */
static void test_fuzz(void **state)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a' };
	unsigned char in[64];
	uint32_t x = 12345;
	size_t cuts[2];
	struct buf once, split;

	(void)state;
	for (int iter = 0; iter < 5000; iter++) {
		size_t n;

		x = x * 1103515245u + 12345u;
		n = (x >> 16) % sizeof in;
		for (size_t i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = alpha[(x >> 16) & 3];
			if (((x >> 20) & 15) == 0) /* now and then a run of 9 'a' */
				for (int k = 0; k < 9 && i + 1 < n; k++)
					in[++i] = 'a';
		}
		check_oracle(in, n);
		check_splits(in, n, 1, 0);
		/* and one random 3-way split per input */
		x = x * 1103515245u + 12345u;
		cuts[0] = n ? (x >> 8) % (n + 1) : 0;
		cuts[1] = cuts[0] + (n - cuts[0] ? (x >> 18) % (n - cuts[0] + 1) : 0);
		encode_once(in, n, 1, &once);
		encode_cuts(in, n, 1, cuts, 2, &split);
		assert_same(&once, &split);
	}
}

/* Every input of length <= 8 over {CR, LF, '.', 'a'}: the oracle. */
static void test_exhaustive_short(void **state)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a' };
	unsigned char in[8] = { 0 };

	(void)state;
	for (size_t n = 0; n <= sizeof in; n++) {
		for (uint32_t v = 0; v < (1u << (2 * n)); v++) {
			for (size_t i = 0; i < n; i++)
				in[i] = alpha[(v >> (2 * i)) & 3];
			check_oracle(in, n);
		}
	}
}

/* message_read normalises standard input with body_encode (no
 * dot-stuffing) and the SMTP client encodes the result again: the second
 * pass must change nothing but the dots.  Every input of length <= 8 over
 * {CR, LF, '.', 'a'}. */
static void test_idempotent(void **state)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a' };
	unsigned char in[8] = { 0 };
	struct buf once, twice, data_once, data_twice;

	(void)state;
	for (size_t n = 0; n <= sizeof in; n++) {
		for (uint32_t v = 0; v < (1u << (2 * n)); v++) {
			for (size_t i = 0; i < n; i++)
				in[i] = alpha[(v >> (2 * i)) & 3];
			encode_once(in, n, 0, &once);
			encode_once(once.b, once.n, 0, &twice);
			assert_same(&once, &twice);
			encode_once(in, n, 1, &data_once);
			encode_once(once.b, once.n, 1, &data_twice);
			assert_same(&data_once, &data_twice);
		}
	}
}

struct nul_case {
	const char *in;
	size_t len;
	size_t cut;          /* first chunk length */
	unsigned long long offset;
};

static const struct nul_case nuls[] = {
	{ S("\0"), 1, 0 },
	{ S("abc\0def"), 7, 3 },
	{ S("abc\0def"), 2, 3 },
	{ S("abc\0def"), 4, 3 },
	{ S("0123456789abcdef\0"), 17, 16 },
	{ S("0123456789\0abcdef"), 5, 10 },
	{ S("a\r\0"), 2, 2 },
	{ S("a\r\n\0"), 2, 3 },
	{ S(".\0"), 1, 1 },
};

static void test_nul(void **state)
{
	unsigned char out[BODY_OUT_MAX(IN_MAX)];
	char expect[80];
	struct body b;
	struct perr e;
	long r;

	(void)state;
	for (size_t i = 0; i < sizeof nuls / sizeof nuls[0]; i++) {
		const struct nul_case *c = &nuls[i];
		const unsigned char *in = (const unsigned char *)c->in;

		body_init(&b, 1);
		perr_clear(&e);
		r = body_encode(&b, in, c->cut, out, &e);
		if (c->cut > c->offset) {
			assert_int_equal(r, -1);
		} else {
			assert_true(r >= 0);
			r = body_encode(&b, in + c->cut, c->len - c->cut, out, &e);
			assert_int_equal(r, -1);
		}
		assert_int_equal(e.kind, PERR_DATA);
		snprintf(expect, sizeof expect, "NUL byte at offset %llu;", c->offset);
		assert_non_null(strstr(e.text, expect));
		assert_non_null(strstr(e.text, "MIME-encoded (base64)"));
	}
}

static void test_8bit(void **state)
{
	unsigned char out[BODY_OUT_MAX(40)];
	unsigned char in[40];
	struct body b;
	struct perr e;

	(void)state;
	memset(in, 'a', sizeof in);
	body_init(&b, 1);
	assert_int_equal(body_encode(&b, in, sizeof in, out, &e), (long)sizeof in);
	assert_int_equal(b.has_8bit, 0);
	/* an 8-bit byte in the word-at-a-time part and in the tail */
	for (size_t pos = 0; pos < sizeof in; pos++) {
		memset(in, 'a', sizeof in);
		in[pos] = 0xe9;
		in[(pos + 20) % sizeof in] = '\n';
		body_init(&b, 0);
		assert_true(body_encode(&b, in, sizeof in, out, &e) > 0);
		assert_int_equal(b.has_8bit, 1);
	}
	/* 0x7f is not 8-bit */
	in[0] = 0x7f;
	body_init(&b, 0);
	assert_true(body_encode(&b, in, 1, out, &e) > 0);
	assert_int_equal(b.has_8bit, 0);
}

static void test_finish(void **state)
{
	unsigned char out[BODY_OUT_MAX(8)];
	struct body b;
	struct perr e;

	(void)state;
	/* empty stays empty, even after empty chunks */
	body_init(&b, 1);
	assert_int_equal(body_encode(&b, (const unsigned char *)"", 0, out, &e), 0);
	assert_int_equal(body_finish(&b, out), 0);
	/* after a CR at the very end, finish adds nothing more */
	body_init(&b, 1);
	assert_int_equal(body_encode(&b, (const unsigned char *)"x\r", 2, out, &e), 3);
	assert_int_equal(body_finish(&b, out), 0);
	/* a missing final line end is added */
	body_init(&b, 1);
	assert_int_equal(body_encode(&b, (const unsigned char *)"x", 1, out, &e), 1);
	assert_int_equal(body_finish(&b, out), 2);
	assert_memory_equal(out, "\r\n", 2);
}

/* A long input (several MB) in odd-sized chunks against the reference. */
static void test_large(void **state)
{
	const size_t n = 3 * 1024 * 1024 + 7;
	unsigned char *in = malloc(n), *out = malloc(BODY_OUT_MAX(n)), *ref = malloc(2 * n + 2);
	size_t o = 0, from = 0, chunk = 1, r = 0;
	struct body b;
	struct perr e;
	uint32_t x = 99;
	long got;

	(void)state;
	assert_non_null(in);
	assert_non_null(out);
	assert_non_null(ref);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		if ((x >> 16) % 97 == 0)
			in[i] = (unsigned char)"\r\n."[(x >> 8) % 3];
		else
			in[i] = (unsigned char)('a' + (x >> 24) % 26);
	}
	body_init(&b, 0);
	while (from < n) {
		size_t len = chunk < n - from ? chunk : n - from;

		got = body_encode(&b, in + from, len, out + o, &e);
		assert_true(got >= 0);
		o += (size_t)got;
		from += len;
		chunk = chunk * 3 + 1;
		if (chunk > 100000)
			chunk = 1;
	}
	o += body_finish(&b, out + o);
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				i++;
			ref[r++] = '\r';
			ref[r++] = '\n';
		} else {
			ref[r++] = in[i];
		}
	}
	if (ref[r - 1] != '\n') {
		ref[r++] = '\r';
		ref[r++] = '\n';
	}
	assert_int_equal(o, r);
	assert_memory_equal(out, ref, r);
	free(in);
	free(out);
	free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_splits),
		cmocka_unit_test(test_oracle_table),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_exhaustive_short),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
