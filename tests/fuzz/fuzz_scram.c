/* fuzz_scram.c — fuzz target for the SCRAM-SHA-256 client (scram.c).
 *
 * The input is the server's two messages, server-first NUL server-final
 * (RFC 7677's example exchange is in the corpus: user "user", password
 * "pencil", client nonce "rOprNGfwEbeRWgbNEkqO").  Oracles: a refusal is
 * PERR_PROTOCOL or PERR_AUTH with one line of text; an accepted
 * server-first yields "c=biws,r=<the server's nonce>,p=<44 base64>"
 * whose nonce extends ours; the RFC's server-final is accepted only
 * after the RFC's server-first.  Iteration counts above FUZZ_ITER_MAX
 * (yet allowed) are skipped: they are slow, not interesting. */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "scram.h"

#define USER "user"
#define PASSWORD "pencil"
#define CNONCE "rOprNGfwEbeRWgbNEkqO"
#define FUZZ_ITER_MAX 8192
/* RFC 7677 section 3 */
#define RFC_FIRST                                                                                  \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_PROOF "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* An "i=" attribute asking for more than FUZZ_ITER_MAX but at most
 * SCRAM_ITER_MAX rounds. */
static int slow(const char *s, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		long v = 0;
		size_t k = i + 2, digits = 0;

		if (s[i] != 'i' || s[i + 1] != '=')
			continue;
		while (k < n && s[k] >= '0' && s[k] <= '9' && digits < 12)
			v = v * 10 + (s[k++] - '0'), digits++;
		if (v > FUZZ_ITER_MAX && v <= SCRAM_ITER_MAX)
			return 1;
	}
	return 0;
}

static void check_final(const char *first, size_t n, const char *out, size_t len)
{
	const char *nonce = first + 2, *p;
	size_t nl = strcspn(nonce, ",");

	FUZZ_CHECK(n > 2 && memcmp(first, "r=", 2) == 0 && nl < n);
	FUZZ_CHECK(nl > strlen(CNONCE) && memcmp(nonce, CNONCE, strlen(CNONCE)) == 0);
	FUZZ_CHECK(len == strlen(out));
	FUZZ_CHECK(len == 9 + nl + 3 + 44);
	FUZZ_CHECK(memcmp(out, "c=biws,r=", 9) == 0 && memcmp(out + 9, nonce, nl) == 0);
	p = out + 9 + nl;
	FUZZ_CHECK(memcmp(p, ",p=", 3) == 0 && p[3 + 43] == '=');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *first = (const char *)data, *final, *z;
	char out[SCRAM_OUT_MAX];
	size_t n1, n2, len = 0;
	struct scram sc;
	struct perr e;
	int r, rfc;

	z = memchr(first, '\0', size);
	n1 = z ? (size_t)(z - first) : size;
	final = z ? z + 1 : first + size;
	n2 = size - n1 - (z ? 1 : 0);
	if (slow(first, n1))
		return 0;
	memset(&e, 0, sizeof e);
	FUZZ_CHECK(scram_start(&sc, USER, CNONCE, out, sizeof out, &len, &e) == 0);
	FUZZ_CHECK(len == strlen("n,,n=" USER ",r=" CNONCE));
	r = scram_final(&sc, PASSWORD, strlen(PASSWORD), first, n1, out, sizeof out, &len, &e);
	if (r < 0) {
		FUZZ_CHECK_ERROR(&e);
		FUZZ_CHECK(e.kind == PERR_PROTOCOL);
		/* out of order: verifying now is refused */
		FUZZ_CHECK(scram_verify(&sc, final, n2, &e) < 0 && e.kind == PERR_SOFTWARE);
		scram_clear(&sc);
		return 0;
	}
	check_final(first, n1, out, len);
	rfc = n1 == strlen(RFC_FIRST) && memcmp(first, RFC_FIRST, n1) == 0;
	if (rfc)
		FUZZ_CHECK(strcmp(out + len - strlen(RFC_PROOF), RFC_PROOF) == 0);
	memset(&e, 0, sizeof e);
	r = scram_verify(&sc, final, n2, &e);
	if (r < 0) {
		FUZZ_CHECK_ERROR(&e);
		FUZZ_CHECK(e.kind == PERR_PROTOCOL || e.kind == PERR_AUTH);
	}
	/* only the server that knows the password gets through */
	FUZZ_CHECK((r == 0) == (rfc && n2 >= strlen(RFC_FINAL) &&
				memcmp(final, RFC_FINAL, strlen(RFC_FINAL)) == 0 &&
				(n2 == strlen(RFC_FINAL) || final[strlen(RFC_FINAL)] == ',')));
	scram_clear(&sc);
	return 0;
}
