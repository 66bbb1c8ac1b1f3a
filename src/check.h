/* check.h — postern --check: what can be checked without the network.
 *
 * After the configuration has loaded (its syntax, values, addresses and
 * globs are checked by config.c), check_account looks at what the account
 * names outside the file: the files it reads (tls_ca_file, tls_cert_file,
 * tls_key_file, oauth2_ca_file, aliases) exist, are regular and readable
 * (the aliases file also parses), the log file can be written, and the
 * secret can be had (password_command runs and exits 0, the keyring
 * answers) — the secret itself is never printed.  One line per check to
 * out; each failure is one line to notice naming the configuration line
 * of the key, the cause and the fix. */
#ifndef POSTERN_CHECK_H
#define POSTERN_CHECK_H

#include <stdio.h>

#include "config.h"
#include "errors.h"

/* 0 when everything checked is usable; -1 with e (PERR_CONFIG) holding
 * the last failure (the earlier ones went to notice). */
int check_account(const struct account *a, FILE *out, void (*notice)(const char *line),
		  struct perr *e);

#endif
