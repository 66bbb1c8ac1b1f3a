/* message.h — the message a caller hands postern.
 *
 * message_read takes standard input to the end (a lone "." line is
 * content).  Line endings are normalised as the bytes are read, before
 * anything looks at them: CRLF, bare LF and bare CR all become CRLF, and a
 * non-empty message ends in CRLF (body.c does it, a CR at the end of one
 * read pairing with an LF at the start of the next).  Header fields are
 * then recognised as RFC 5322 reads them: a name of 1 to 998 printable
 * octets, optional blanks (obsolete syntax), a colon.  The header block is
 * kept in memory (at most MESSAGE_HEADERS_MAX bytes), the rest is copied
 * to an unlinked temporary file, so memory does not grow with the message.
 * NUL bytes are refused with their offset in the input.
 * message_prepare applies the policy of SPEC section 4 to the header
 * block: Bcc removed, From/Date/Message-ID added when missing,
 * from_header = force.  A reader then streams headers + body. */
#ifndef POSTERN_MESSAGE_H
#define POSTERN_MESSAGE_H

#include <stddef.h>
#include <sys/types.h>

#include "errors.h"

/* Real header blocks are under 64 KB; 1 MiB leaves room for long Received
 * chains and still bounds memory. */
#define MESSAGE_HEADERS_MAX (1024 * 1024)

struct message {
	char *headers;        /* header block: whole lines ending in CRLF, no
				 blank line; NUL-terminated */
	size_t headers_len;
	int has_separator;    /* the input had the blank line after headers */
	int body_fd;          /* unlinked temp file: everything after the blank
				 line, CRLF line endings, ending in CRLF */
	off_t body_len;
	int has_8bit;         /* any byte >= 0x80 in headers or body */
	/* From the header block (addresses as addr-specs, NUL-terminated): */
	char *from_addr;      /* From:'s address, NULL if absent or not one mailbox */
	char **hdr_rcpts;     /* To, Cc, Bcc addresses (filled by message_read
				 when extract is set; Resent-* ignored) */
	size_t nhdr_rcpts;
};

/* Read fd to its end.  extract: collect To/Cc/Bcc recipients (-t).
 * Errors: PERR_DATA (NUL at offset N, header block over the cap,
 * malformed address in To/Cc/Bcc with -t), PERR_IO (temp file). */
int message_read(struct message *m, int fd, int extract, struct perr *e);

/* The first header field called name (case-insensitive), unfolded and
 * with leading blanks removed, copied into out (cap bytes, NUL-terminated;
 * cut when longer).  Returns the value's full length, -1 when absent.
 * For the log line's Message-ID and the like; the text is untrusted. */
int message_header(const struct message *m, const char *name, char *out, size_t cap);

struct msg_opts {
	int add_headers;          /* add From, Date, Message-ID when missing */
	const char *sender;       /* envelope sender for an added From ("" null) */
	const char *fullname;     /* -F, display name for an added From */
	const char *domain;       /* right side of an added Message-ID */
	const char *force_from;   /* from_header = force: From's address becomes this */
};

/* Apply the header policy; always removes Bcc. */
int message_prepare(struct message *m, const struct msg_opts *o, struct perr *e);

/* Size in bytes of what message_next will produce. */
off_t message_size(const struct message *m);

/* Size in bytes of the message as sent (before dot-stuffing), for SIZE=
 * (RFC 1870): exact, and the same as message_size, since the stream is
 * already CRLF-normalised and the wire encoder leaves it as it is. */
off_t message_wire_size(const struct message *m);

/* Streaming: rewind, then call message_next until it returns 0. */
struct msg_reader {
	const struct message *m;
	size_t hpos;      /* position in the headers (+ separator) */
	off_t bpos;       /* position in the body file */
	int sep_done;
};
void message_rewind(const struct message *m, struct msg_reader *r);
/* Up to cap bytes of the final message; 0 at the end; -1 PERR_IO. */
long message_next(struct msg_reader *r, unsigned char *buf, size_t cap, struct perr *e);

void message_free(struct message *m);

#endif
