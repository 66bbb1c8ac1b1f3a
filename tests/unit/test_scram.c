/* test_scram.c — scram.c: the RFC 7677 test vector, user name escaping,
 * fresh nonces, and every way a server's message can be refused. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scram.h"

/* RFC 7677 section 3. */
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE RFC_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_SERVER_FIRST "r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static void start(struct scram *sc, const char *user, const char *nonce, char *out)
{
	struct perr e;
	size_t n = 0;

	perr_clear(&e);
	if (scram_start(sc, user, nonce, out, SCRAM_OUT_MAX, &n, &e) != 0)
		fail_msg("scram_start: %s", e.text);
	assert_int_equal(n, strlen(out));
}

/* Start with the RFC nonce and feed the server-first message. */
static int to_final(struct scram *sc, const char *server_first, char *out, struct perr *e)
{
	size_t n = 0;

	start(sc, "user", RFC_NONCE, out);
	perr_clear(e);
	return scram_final(sc, "pencil", 6, server_first, strlen(server_first), out, SCRAM_OUT_MAX,
			   &n, e);
}

static void test_rfc7677_vector(void **state)
{
	struct scram sc;
	struct perr e;
	char out[SCRAM_OUT_MAX];

	(void)state;
	start(&sc, "user", RFC_NONCE, out);
	assert_string_equal(out, "n,,n=user,r=" RFC_NONCE);
	assert_int_equal(to_final(&sc, RFC_SERVER_FIRST, out, &e), 0);
	assert_string_equal(out, RFC_CLIENT_FINAL);
	assert_int_equal(scram_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e), 0);
	/* extensions after v= are allowed */
	assert_int_equal(to_final(&sc, RFC_SERVER_FIRST, out, &e), 0);
	assert_int_equal(scram_verify(&sc, RFC_SERVER_FINAL ",y=1", strlen(RFC_SERVER_FINAL) + 4,
				      &e),
			 0);
	/* extensions after i= too; they are part of what is signed */
	assert_int_equal(to_final(&sc, RFC_SERVER_FIRST ",x=ext", out, &e), 0);
	assert_int_equal(strncmp(out, "c=biws,r=" RFC_SNONCE ",p=", strlen(RFC_SNONCE) + 12), 0);
	assert_string_not_equal(out, RFC_CLIENT_FINAL);
	scram_clear(&sc);
	assert_int_equal(sc.state, 0);
	assert_int_equal(sc.first_bare_len, 0);
}

static void test_wrong_password(void **state)
{
	struct scram sc;
	struct perr e;
	char out[SCRAM_OUT_MAX];
	size_t n;

	(void)state;
	start(&sc, "user", RFC_NONCE, out);
	assert_int_equal(scram_final(&sc, "pencil2", 7, RFC_SERVER_FIRST,
				     strlen(RFC_SERVER_FIRST), out, sizeof out, &n, &e),
			 0);
	assert_string_not_equal(out, RFC_CLIENT_FINAL);
	/* a server that knows "pencil" signs differently from what we expect */
	assert_int_equal(scram_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e), -1);
	assert_int_equal(e.kind, PERR_AUTH);
	scram_clear(&sc);
}

static const struct {
	const char *user, *want;
} user_cases[] = {
    {"user", "n,,n=user,r=N"},
    {"a,b=c", "n,,n=a=2Cb=3Dc,r=N"},
    {"==", "n,,n==3D=3D,r=N"},
    {"joe@example.com", "n,,n=joe@example.com,r=N"},
    {"j\xc3\xb6rg", "n,,n=j\xc3\xb6rg,r=N"},
};

static void test_user_escaping(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof user_cases / sizeof user_cases[0]; i++) {
		struct scram sc;
		char out[SCRAM_OUT_MAX];

		start(&sc, user_cases[i].user, "N", out);
		assert_string_equal(out, user_cases[i].want);
		scram_clear(&sc);
	}
}

static void test_bad_user(void **state)
{
	static const char *const users[] = {"", "a\nb", "tab\there", "del\x7f"};
	char big[SCRAM_USER_MAX + 2], out[SCRAM_OUT_MAX];
	struct scram sc;
	struct perr e;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
		assert_int_equal(scram_start(&sc, users[i], "N", out, sizeof out, &n, &e), -1);
		assert_int_equal(e.kind, PERR_CONFIG);
	}
	memset(big, 'u', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(scram_start(&sc, big, "N", out, sizeof out, &n, &e), -1);
	assert_int_equal(e.kind, PERR_CONFIG);
	big[SCRAM_USER_MAX] = '\0'; /* exactly the maximum, all escaped: still fits */
	memset(big, ',', SCRAM_USER_MAX);
	assert_int_equal(scram_start(&sc, big, "N", out, sizeof out, &n, &e), 0);
	assert_int_equal(n, 3 + 2 + 3 * SCRAM_USER_MAX + 3 + 1);
}

static void test_random_nonce(void **state)
{
	struct scram a, b;
	char oa[SCRAM_OUT_MAX], ob[SCRAM_OUT_MAX];

	(void)state;
	start(&a, "user", NULL, oa);
	start(&b, "user", NULL, ob);
	assert_int_equal(strlen(a.cnonce), 32);
	assert_null(strchr(a.cnonce, ','));
	assert_string_not_equal(a.cnonce, b.cnonce);
	assert_int_equal(strncmp(oa, "n,,n=user,r=", 12), 0);
	assert_string_equal(oa + 12, a.cnonce);
}

static const struct {
	const char *msg;
	enum perr_kind kind;
	const char *text;
} first_cases[] = {
    {"r=someoneelse" RFC_SNONCE ",s=" RFC_SALT ",i=4096", PERR_PROTOCOL, "does not extend ours"},
    {"r=" RFC_NONCE ",s=" RFC_SALT ",i=4096", PERR_PROTOCOL, "does not extend ours"},
    {"r=" RFC_NONCE "x y,s=" RFC_SALT ",i=4096", PERR_PROTOCOL, "does not extend ours"},
    {"m=ext,r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096", PERR_PROTOCOL, "extension (m=)"},
    {"r=" RFC_SNONCE ",i=4096", PERR_PROTOCOL, "malformed"},
    {"s=" RFC_SALT ",r=" RFC_SNONCE ",i=4096", PERR_PROTOCOL, "malformed"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT, PERR_PROTOCOL, "malformed"},
    {"r=" RFC_SNONCE ",s=not*base64,i=4096", PERR_PROTOCOL, "salt"},
    {"r=" RFC_SNONCE ",s=,i=4096", PERR_PROTOCOL, "salt"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=4095", PERR_PROTOCOL, "asks for 4095 iterations"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=1000001", PERR_PROTOCOL, "1000001 iterations"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=99999999999", PERR_PROTOCOL, "not a number"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=-4096", PERR_PROTOCOL, "not a number"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=", PERR_PROTOCOL, "not a number"},
    {"r=" RFC_SNONCE ",s=" RFC_SALT ",i=4096x", PERR_PROTOCOL, "not a number"},
    {"", PERR_PROTOCOL, "empty"},
    {"garbage", PERR_PROTOCOL, "malformed"},
};

static void test_bad_server_first(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof first_cases / sizeof first_cases[0]; i++) {
		struct scram sc;
		struct perr e;
		char out[SCRAM_OUT_MAX];

		print_message("# case %zu: %s\n", i, first_cases[i].msg);
		assert_int_equal(to_final(&sc, first_cases[i].msg, out, &e), -1);
		assert_int_equal(e.kind, first_cases[i].kind);
		assert_non_null(strstr(e.text, first_cases[i].text));
		/* a refused exchange cannot be verified afterwards */
		assert_int_equal(scram_verify(&sc, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &e),
				 -1);
		assert_int_equal(e.kind, PERR_SOFTWARE);
	}
}

static void test_server_first_limits(void **state)
{
	char big[SCRAM_MSG_MAX + 2], out[SCRAM_OUT_MAX];
	static const char nul[] = "r=" RFC_SNONCE "\0,s=" RFC_SALT ",i=4096";
	struct scram sc;
	struct perr e;
	size_t n;

	(void)state;
	memset(big, 'a', sizeof big);
	start(&sc, "user", RFC_NONCE, out);
	assert_int_equal(scram_final(&sc, "pencil", 6, big, sizeof big, out, sizeof out, &n, &e),
			 -1);
	assert_int_equal(e.kind, PERR_PROTOCOL);
	assert_int_equal(scram_final(&sc, "pencil", 6, nul, sizeof nul - 1, out, sizeof out, &n,
				     &e),
			 -1);
	assert_int_equal(e.kind, PERR_PROTOCOL);
	/* final before start */
	memset(&sc, 0, sizeof sc);
	assert_int_equal(scram_final(&sc, "pencil", 6, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST),
				     out, sizeof out, &n, &e),
			 -1);
	assert_int_equal(e.kind, PERR_SOFTWARE);
}

static const struct {
	const char *msg;
	enum perr_kind kind;
	const char *text;
} final_cases[] = {
    /* one bit changed in the last byte */
    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=", PERR_AUTH,
     "server signature does not match: the server may not be the one you think"},
    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5n", PERR_AUTH, "server signature does not match"},
    {"v=", PERR_AUTH, "server signature does not match"},
    {"v=!!!!", PERR_AUTH, "server signature does not match"},
    {"e=invalid-proof", PERR_AUTH, "refused by the server: invalid-proof"},
    {"e=bad\x1b[31mred", PERR_AUTH, "refused by the server: bad?[31mred"},
    {"x=1", PERR_PROTOCOL, "malformed"},
    {"", PERR_PROTOCOL, "empty"},
};

static void test_bad_server_final(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof final_cases / sizeof final_cases[0]; i++) {
		struct scram sc;
		struct perr e;
		char out[SCRAM_OUT_MAX];

		print_message("# case %zu: %s\n", i, final_cases[i].msg);
		assert_int_equal(to_final(&sc, RFC_SERVER_FIRST, out, &e), 0);
		assert_int_equal(scram_verify(&sc, final_cases[i].msg, strlen(final_cases[i].msg),
					      &e),
				 -1);
		assert_int_equal(e.kind, final_cases[i].kind);
		assert_non_null(strstr(e.text, final_cases[i].text));
		assert_null(strchr(e.text, '\x1b'));
		scram_clear(&sc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7677_vector),   cmocka_unit_test(test_wrong_password),
	    cmocka_unit_test(test_user_escaping),    cmocka_unit_test(test_bad_user),
	    cmocka_unit_test(test_random_nonce),     cmocka_unit_test(test_bad_server_first),
	    cmocka_unit_test(test_server_first_limits), cmocka_unit_test(test_bad_server_final),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
