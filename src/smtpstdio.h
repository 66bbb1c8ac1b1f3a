/* smtpstdio.h — `postern -bs`: an SMTP server dialogue on standard input
 * and output (RFC 5321), as Symfony Mailer's sendmail transport and other
 * programs that speak SMTP to `sendmail -bs` expect.
 *
 * Offered: EHLO/HELO, MAIL (BODY=7BIT|8BITMIME, SIZE=n, SMTPUTF8), RCPT,
 * DATA, RSET, NOOP, QUIT, VRFY (252), HELP; EHLO advertises PIPELINING,
 * SIZE, 8BITMIME, SMTPUTF8 and ENHANCEDSTATUSCODES.  Not offered (502):
 * STARTTLS, AUTH, BDAT, EXPN, ETRN; unknown MAIL/RCPT parameters: 555.
 *
 * Each message accepted by a final "." is handed to a deliver function
 * (deliver_message unless a test gives another) with the envelope of the
 * transaction; the reply to the final "." is its real outcome:
 *   delivered                    250 2.0.0 delivered
 *   queued (temporary failure)   250 2.0.0 queued as ID: reason
 *   refused or could not be kept the error mapped to 4xx/5xx (the
 *                                server's own code when it gave one of the
 *                                right class) with the one-line reason.
 * Local recipients are checked at RCPT against the aliases file of the
 * account the sender chooses (an unknown local name: 550 5.1.1 there).
 *
 * Limits: a command line of at most SMTPSTDIO_LINE_MAX bytes (longer: 500,
 * the rest of the line discarded); at most SMTPSTDIO_RCPTS_MAX recipients
 * per message (452 beyond); the message itself goes to an unlinked
 * temporary file (dot-unstuffed, only <CRLF>.<CRLF> ends it), so memory
 * stays flat whatever its size.  Every wait for input has a deadline
 * (timeout_s): a silent client gets 421 and the session ends. */
#ifndef POSTERN_SMTPSTDIO_H
#define POSTERN_SMTPSTDIO_H

#include "cli.h"
#include "config.h"
#include "deliver.h"
#include "errors.h"
#include "message.h"

/* RFC 5321 4.5.3.1.4 allows 512 for a command line; SMTPUTF8 addresses
 * and parameters make real ones longer, 1000 leaves room for both. */
#define SMTPSTDIO_LINE_MAX 1000
/* RFC 5321 4.5.3.1.8 asks for at least 100. */
#define SMTPSTDIO_RCPTS_MAX 1000
/* RFC 5321 4.5.3.2.7: a server waits 5 minutes for the next command. */
#define SMTPSTDIO_TIMEOUT_DEFAULT 300

typedef int (*smtpstdio_deliver_fn)(const struct config *cfg, const struct deliver_req *req,
				    struct message *m, struct deliver_result *res,
				    struct perr *e);

struct smtpstdio_opts {
	int in_fd, out_fd;            /* STDIN_FILENO, STDOUT_FILENO */
	int timeout_s;                /* per wait for input; <= 0: the default */
	/* Per-message settings from the command line: account (-a), fullname
	 * (-F), dsn_* (-N/-R/-V), body_type (-B; BODY= overrides it),
	 * queue_only (-odq), notice.  from, rcpts and extract are ignored:
	 * they come from MAIL and RCPT. */
	struct deliver_req base;
	smtpstdio_deliver_fn deliver; /* NULL: deliver_message */
	/* The system service's loopback listener: the client's address, e.g.
	 * "[127.0.0.1]:40312"; each message then begins with "Received: from
	 * HELO (ADDRESS) by HOST with postern; DATE".  NULL: no header. */
	const char *received_from;
};

/* Run the dialogue until QUIT or the end of input.  Returns 0 after QUIT
 * or at the end of input between commands; -1 with e filled when the
 * session broke: the client was silent for timeout_s (PERR_TEMP, after a
 * 421), input ended inside DATA (PERR_IO; that message was not taken), or
 * reading/writing failed (PERR_IO).  Prints nothing but the SMTP replies
 * (delivery notices go to base.notice). */
int smtpstdio_run(const struct config *cfg, const struct smtpstdio_opts *o, struct perr *e);

/* What main.c calls for -bs: load the configuration (-C), run the
 * dialogue on fds 0/1 with the command line's per-message settings,
 * notices to notice.  A configuration that cannot be read is answered
 * with "421 4.3.5 reason" as the greeting.  0, or -1 with e filled (the
 * kinds of smtpstdio_run, or PERR_CONFIG). */
int smtpstdio_main(const struct cli *c, void (*notice)(const char *line), struct perr *e);

#endif
