/* fuzz_addr.c — fuzz target for the address parsers (addr.c).
 *
 * The input (up to its first NUL) is given to addr_check, addr_parse_list
 * and addr_parse_mailbox.  Oracles:
 *  - every addr-spec a list yields is at most ADDR_MAX bytes, one line
 *    (blanks only), and parses back as itself (the parser's output is a fixed point);
 *  - a value addr_parse_mailbox accepts is also a list of exactly that
 *    one address; its outputs fit their buffers, also tiny ones;
 *  - a mailbox addr_check accepts is short, has no control character,
 *    '<' or '>', has '@' unless a local name was allowed, and "<it>"
 *    parses as a list of exactly itself;
 *  - every refusal is one line of text. */
#include "autoconf.h"

#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "util.h"

#define LIST_MAX 64

struct list {
	char addrs[LIST_MAX][ADDR_MAX + 1];
	int n;
	int stop_at; /* callback refuses the address with this index */
};

static int collect(void *ctx, const char *addr, struct perr *e)
{
	struct list *l = ctx;
	size_t n = strlen(addr);

	FUZZ_CHECK(n > 0 && n <= ADDR_MAX);
	/* one line: blanks may stay inside quotes and literals */
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)addr[i] >= 0x20 ? addr[i] != 0x7f : addr[i] == '\t');
	if (l->n == l->stop_at)
		return perr_set(e, PERR_NOUSER, "stopped by the callback");
	if (l->n < LIST_MAX)
		memcpy(l->addrs[l->n], addr, n + 1);
	l->n++;
	return 0;
}

/* Parse s as a list; returns its result, addresses in *l. */
static int parse(const char *s, struct list *l, int stop_at)
{
	struct perr e;
	int r;

	memset(&e, 0, sizeof e);
	l->n = 0;
	l->stop_at = stop_at;
	r = addr_parse_list(s, collect, l, &e);
	FUZZ_CHECK(r == 0 || r == -1);
	if (r < 0)
		FUZZ_CHECK_ERROR(&e);
	return r;
}

/* s parses as a list of exactly want. */
static void check_single(const char *s, const char *want)
{
	static struct list again;

	FUZZ_CHECK(parse(s, &again, -1) == 0);
	FUZZ_CHECK(again.n == 1 && strcmp(again.addrs[0], want) == 0);
}

static void check_list(const char *s)
{
	static struct list l;
	int r = parse(s, &l, -1);

	if (r == 0) {
		for (int i = 0; i < l.n && i < LIST_MAX; i++)
			check_single(l.addrs[i], l.addrs[i]);
		if (l.n > 0) {
			/* a callback's refusal stops the parse, its error kept */
			struct perr e;

			memset(&e, 0, sizeof e);
			l.n = 0;
			l.stop_at = 0;
			FUZZ_CHECK(addr_parse_list(s, collect, &l, &e) == -1);
			FUZZ_CHECK(e.kind == PERR_NOUSER && l.n == 0);
		}
	}
}

static void check_mailbox(const char *s)
{
	static const size_t caps[] = {1, 4, 16, ADDR_MAX + 1};
	char name[512], addr[ADDR_MAX + 1], small[16];
	int r;

	memset(name, 'X', sizeof name);
	r = addr_parse_mailbox(s, name, 256, addr, sizeof addr);
	FUZZ_CHECK(name[256] == 'X' && strlen(name) < 256);
	if (r == 0) {
		FUZZ_CHECK(strlen(addr) > 0 && strlen(addr) <= ADDR_MAX);
		check_single(s, addr);
	} else {
		FUZZ_CHECK(r == -1 && addr[0] == '\0' && name[0] == '\0');
	}
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
		memset(small, 'X', sizeof small);
		if (addr_parse_mailbox(s, small, caps[k] < sizeof small ? caps[k] : sizeof small,
				       addr, caps[k]) == 0)
			FUZZ_CHECK(strlen(addr) < caps[k]);
		FUZZ_CHECK(caps[k] >= sizeof small || small[caps[k]] == 'X');
	}
	FUZZ_CHECK(addr_parse_mailbox(s, NULL, 0, addr, sizeof addr) == r);
}

static void check_envelope(const char *s)
{
	char *angle;
	size_t n = strlen(s);
	struct perr e;

	for (int local = 0; local <= 1; local++) {
		memset(&e, 0, sizeof e);
		if (addr_check(s, local, &e) < 0) {
			FUZZ_CHECK_ERROR(&e);
			continue;
		}
		FUZZ_CHECK(n > 0 && n <= ADDR_MAX);
		FUZZ_CHECK(fuzz_one_line(s) && !strpbrk(s, "<>"));
		FUZZ_CHECK(local || addr_domain(s) != NULL);
		FUZZ_CHECK(addr_check(s, 1, &e) == 0);
		angle = xmalloc(n + 3);
		angle[0] = '<';
		memcpy(angle + 1, s, n);
		memcpy(angle + 1 + n, ">", 2);
		check_single(angle, s);
		free(angle);
	}
	FUZZ_CHECK(addr_is_utf8(s) ==
		   (strspn(s, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"
			      "\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
			      "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !\"#$%&'()*+,-./"
			      "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
			      "abcdefghijklmnopqrstuvwxyz{|}~\x7f") != n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	check_envelope(s);
	check_list(s);
	check_mailbox(s);
	free(s);
	return 0;
}
