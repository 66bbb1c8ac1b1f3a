/* probe.h — postern --probe: diagnose an account's server without sending
 * mail (SPEC section 8).
 *
 * Ports 587, 465, 2525, 25 and the account's own are probed at the same
 * time (one forked child each, results in shared memory), each bounded by
 * the account's timeout: TCP connect, greeting, EHLO, STARTTLS (465:
 * implicit TLS), the certificate (recorded, never trusted blindly), EHLO
 * again.  Then, on the port the account would use, the configured
 * credentials are tried with AUTH only (QUIT follows; no mail is sent).
 * The report ends with a recommendation: which port and TLS mode to
 * write in ~/.smtprc. */
#ifndef POSTERN_PROBE_H
#define POSTERN_PROBE_H

#include <stdio.h>

#include "config.h"
#include "errors.h"

/* Probe account a of cfg and print the report to out: aligned text
 * (colour only when out is a terminal and NO_COLOR is unset), or with
 * json one JSON object.  Returns 0 when the account works as configured
 * (its port answers, TLS verifies, the credentials are accepted), else -1
 * with e holding one line naming the cause and the fix. */
int probe_run(const struct config *cfg, const struct account *a, int json, FILE *out,
	      struct perr *e);

#endif
