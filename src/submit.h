/* submit.h — submission policy: which ports in which order, which TLS
 * mode, which AUTH mechanism; the advice appended to errors.  Calls
 * smtp.c; knows the account, never argv. */
#ifndef POSTERN_SUBMIT_H
#define POSTERN_SUBMIT_H

#include "config.h"
#include "errors.h"
#include "message.h"
#include "secret.h"
#include "smtp.h"

/* Submit one prepared message to the account's server: ports tried in
 * order on connection failure only; errors are those of smtp.h with a fix
 * appended ("the network may block port 587; try port = 465 or 2525"). */
int submit_message(const struct account *a, const struct secret *s,
		   const struct smtp_envelope *env, const struct message *m, struct perr *e);

/* The EHLO name: account domain, else this host's fully qualified name. */
const char *submit_helo_name(const struct account *a);

#endif
