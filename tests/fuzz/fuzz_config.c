/* fuzz_config.c — fuzz target for the configuration parser (config.c,
 * through config_load_buffer: the same path as a file, without the
 * file).
 *
 * Oracles: a refusal is one line of text naming the file; an accepted
 * configuration has accounts whose values are within their stated
 * ranges (ports 1-65535, at most CFG_PORTS_MAX of them, TLS 1.2 or 1.3,
 * known TLS and AUTH modes) and an origin for each; choosing an account
 * and printing it (--check) work for every account, and --check shows
 * a password as stars. */
#include "autoconf.h"

#include <string.h>

#include "config.h"
#include "fuzz.h"

#define NAME "fuzz.smtprc"

static FILE *devnull(void)
{
	static FILE *f;

	if (!f)
		f = fopen("/dev/null", "w");
	FUZZ_CHECK(f != NULL);
	return f;
}

static void check_account(const struct config *cfg, const struct account *a)
{
	char out[16384], want[64];
	struct perr e;
	FILE *mem;

	FUZZ_CHECK(a->name && *a->name);
	FUZZ_CHECK(a->nports >= 1 && a->nports <= CFG_PORTS_MAX);
	for (int i = 0; i < a->nports; i++) {
		FUZZ_CHECK(a->ports[i] >= 1 && a->ports[i] <= 65535);
		FUZZ_CHECK(config_port_tls(a, a->ports[i]) <= TLS_OFF);
	}
	FUZZ_CHECK(a->tls <= TLS_OFF && a->auth <= AUTH_OFF);
	FUZZ_CHECK(a->tls_min_version == 12 || a->tls_min_version == 13);
	FUZZ_CHECK(a->timeout > 0);
	FUZZ_CHECK(config_choose(cfg, a->name, NULL, &e) != NULL);
	config_print(cfg, a, devnull());
	memset(out, 0, sizeof out);
	mem = fmemopen(out, sizeof out - 1, "w");
	FUZZ_CHECK(mem != NULL);
	config_print(cfg, a, mem);
	fclose(mem);
	if (a->password) {
		snprintf(want, sizeof want, "\n%-17s = ********", "password");
		FUZZ_CHECK(strstr(out, want) != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct perr e;

	memset(&e, 0, sizeof e);
	if (config_load_buffer(&cfg, NAME, (const char *)data, size, &e) < 0) {
		FUZZ_CHECK_ERROR(&e);
		FUZZ_CHECK(strstr(e.text, NAME) != NULL);
		FUZZ_CHECK(cfg.naccounts == 0 && cfg.accounts == NULL);
		return 0;
	}
	FUZZ_CHECK(cfg.path && strcmp(cfg.path, NAME) == 0);
	for (int i = 0; i < cfg.naccounts; i++)
		check_account(&cfg, &cfg.accounts[i]);
	if (cfg.naccounts > 0) {
		memset(&e, 0, sizeof e);
		if (!config_choose(&cfg, NULL, "someone@example.com", &e))
			FUZZ_CHECK_ERROR(&e);
	}
	config_free(&cfg);
	return 0;
}
