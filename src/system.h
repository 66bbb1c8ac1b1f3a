/* system.h — system mode (SPEC section 11): one account for every local
 * user, its secret readable by the service alone, no set-id bit.
 *
 * The service (`postern --system`) runs as its own user with the system
 * configuration (/etc/postern/system.smtprc, or -C) and its own queue.  It
 * serves connections on
 *   - a UNIX socket (/run/postern/submit, or $POSTERN_SOCKET): the
 *     handoff (system_proto.h), the caller's uid taken from SO_PEERCRED;
 *   - a loopback TCP socket: SMTP, as `postern -bs` speaks it, to
 *     loopback peers only, through the configured account only.
 * Either from systemd (Accept=yes: the connection on fds 0/1) or with
 * `--listen PATH|ADDR:PORT`: one child per connection, at most
 * SYSTEM_CHILDREN_MAX at once.  (system_service.c)
 *
 * A handoff carries the caller's arguments and message; the service
 * answers with notices and one result (the wire format: system_proto.h).
 * The service parses the arguments with cli_parse (every check
 * of the command line again; only sending is allowed; -C, -a and -v are
 * ignored), prepends a Received header naming the caller, restricts -f to
 * what the account's `from` allows and delivers with deliver_message.
 *
 * The caller (a postern with no configuration of its own) writes the same
 * bytes first to its outbox, $XDG_STATE_HOME/postern/outbox (owner-only),
 * then hands them over; the file is removed once the service answered.
 * When the service cannot be reached the message stays there, the caller
 * exits 0 with a line saying so, and later runs hand it over.
 * (system_caller.c) */
#ifndef POSTERN_SYSTEM_H
#define POSTERN_SYSTEM_H

#include <stdio.h>

#include "cli.h"
#include "errors.h"

#define SYSTEM_CONFIG_PATH "/etc/postern/system.smtprc"
#define SYSTEM_SOCKET_PATH "/run/postern/submit"
#define SYSTEM_QUEUE_DIR "/var/spool/postern-system"
/* Connections served at once with --listen; more wait in the backlog. */
#define SYSTEM_CHILDREN_MAX 32
/* A larger message is refused (65): providers take 25-50 MB. */
#define SYSTEM_MESSAGE_MAX (100L * 1024 * 1024)
/* Arguments in one handoff, and bytes in one argument line. */
#define SYSTEM_ARGS_MAX 2100
#define SYSTEM_LINE_MAX 4096
/* Every wait for the peer has this deadline (RFC 5321's 5 minutes);
 * $POSTERN_SYSTEM_TIMEOUT (seconds) in the service's environment sets
 * another.  A handoff takes at most SYSTEM_TOTAL_S however its bytes
 * trickle in. */
#define SYSTEM_TIMEOUT_S 300
#define SYSTEM_TOTAL_S 3600

/* `postern --system [--listen WHERE]`: serve until killed (with --listen)
 * or for the one connection on fds 0/1.  0, or -1 with e filled. */
int system_serve(const struct cli *c, void (*notice)(const char *line), struct perr *e);

/* The caller side of a send without a configuration of its own: keep the
 * message in the outbox, hand it over, then any older kept messages.
 * argv: the command line (argv[0] excluded from what is sent).  0 when
 * the message was delivered, queued by the service, or kept (a notice
 * says so); -1 with e filled with the service's answer or the local
 * failure. */
int system_handoff(int argc, char **argv, void (*notice)(const char *line), struct perr *e);

/* `postern -q` without a configuration: hand over what the outbox keeps.
 * 0, or -1 with e filled (the service unreachable: PERR_TEMP). */
int system_flush_outbox(void (*notice)(const char *line), struct perr *e);

/* Requests to the service on the same socket (system_proto.h):
 *   SYSTEM_MAILQ: the queue listing, written to out — the whole queue
 *       for root and the service's own user, only the messages they
 *       handed over (the owner recorded in each) for anyone else;
 *   SYSTEM_FLUSH: run the whole queue now (root and the service's user
 *       only; anyone else: kind PERR_AUTH).
 * Notices go to notice.  0; 1 when the service
 * cannot be reached (e: PERR_TEMP saying how to start it); -1 with e
 * filled with the service's refusal. */
enum system_request { SYSTEM_MAILQ, SYSTEM_FLUSH };
int system_request(enum system_request what, FILE *out, void (*notice)(const char *line),
		   struct perr *e);

/* How many messages the caller's outbox keeps (not yet handed over);
 * dir gets its path. */
int system_outbox_count(char *dir, size_t cap);

#endif
