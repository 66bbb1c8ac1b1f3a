/* body.h — streaming normalisation of message bytes: the one place line
 * endings are decided.
 *
 * Line endings (CRLF, bare LF, bare CR) all become CRLF; with dot-stuffing
 * (DATA) a line starting with '.' gets another '.'; the end guarantees a
 * final CRLF.  State is carried across chunk boundaries, so every split of
 * the input gives the same output.  NUL bytes are refused with their
 * offset.  No input can produce CRLF.CRLF before the end in DATA mode.
 *
 * Without dot-stuffing it is idempotent: output fed in again comes out
 * unchanged.  message_read uses it that way on standard input; the SMTP
 * client uses it again on the wire (dots, and spool files of older
 * versions).
 */
#ifndef POSTERN_BODY_H
#define POSTERN_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct body {
	int dotstuff;          /* 1 for DATA, 0 for BDAT */
	int at_bol;            /* next output byte starts a line */
	int pending_cr;        /* input ended in CR; LF may follow */
	int empty;             /* nothing emitted yet */
	uint64_t offset;       /* input bytes consumed so far */
	int has_8bit;          /* a byte >= 0x80 was seen */
};

void body_init(struct body *b, int dotstuff);

/* Output needed for n input bytes, worst case. */
#define BODY_OUT_MAX(n) (2 * (n) + 2)

/* Normalise in[0..n) into out (BODY_OUT_MAX(n) bytes).  Returns the
 * number of bytes written, or -1 on a NUL byte (PERR_DATA "the message
 * contains a NUL byte at offset N; ..."). */
long body_encode(struct body *b, const unsigned char *in, size_t n, unsigned char *out,
		 struct perr *e);

/* End of input: flush a pending CR and ensure the output ends in CRLF
 * (an empty message stays empty).  Writes at most 2 bytes to out;
 * returns how many. */
size_t body_finish(struct body *b, unsigned char *out);

#endif
