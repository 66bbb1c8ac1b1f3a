/* body.c — streaming normalisation of message bytes: every line ending
 * (CRLF, LF, CR) becomes CRLF, lines starting with '.' are dot-stuffed for
 * DATA, a final CRLF is ensured, NUL bytes are refused.
 *
 * message_read runs it (without dot-stuffing) over standard input as it
 * arrives, so the header scan, SIZE and the spool see CRLF lines only;
 * the SMTP client runs it again on the way out, where it changes nothing
 * but the dots (CRLF in, CRLF out) and still mends spool files written
 * by versions that kept bare line ends.
 *
 * The state (at the start of a line? did the last chunk end in CR?) lives
 * in struct body, so the output does not depend on how the input is cut
 * into chunks.  A CR is turned into CRLF at once; pending_cr then makes an
 * LF that follows it (in this chunk or the next) part of the same line end.
 *
 * Speed matters (100 MB messages): runs of ordinary bytes are found eight
 * bytes at a time and copied with memcpy; only CR, LF, NUL and a '.' at
 * the start of a line get individual attention. */
#include "autoconf.h"

#include <string.h>

#include "body.h"

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero when some byte of w is below 0x0e (all of NUL, LF, CR are);
 * exact as a yes/no answer for n <= 0x80. */
#define HAS_LESS(w, n) (((w) - ONES * (n)) & ~(w) & HIGHS)

void body_init(struct body *b, int dotstuff)
{
	memset(b, 0, sizeof *b);
	b->dotstuff = dotstuff;
	b->at_bol = 1;
	b->empty = 1;
}

static int is_special(unsigned char c)
{
	return c == '\n' || c == '\r' || c == '\0';
}

/* Length of the run of bytes at p that are not CR, LF or NUL; ORs every
 * byte looked at into *seen (for the 8-bit flag). */
static size_t plain_run(const unsigned char *p, size_t n, uint64_t *seen)
{
	size_t i = 0;
	uint64_t w, acc = 0;

	while (i + 8 <= n) {
		memcpy(&w, p + i, 8);
		if (HAS_LESS(w, 0x0e))
			break;
		acc |= w;
		i += 8;
	}
	while (i < n && !is_special(p[i]))
		acc |= p[i++];
	*seen |= acc;
	return i;
}

long body_encode(struct body *b, const unsigned char *in, size_t n, unsigned char *out,
		 struct perr *e)
{
	unsigned char *o = out;
	uint64_t seen = 0;
	size_t i = 0, run;

	while (i < n) {
		if (b->pending_cr) {
			b->pending_cr = 0;
			if (in[i] == '\n') {
				i++;
				continue;
			}
		}
		if (b->at_bol && b->dotstuff && in[i] == '.')
			*o++ = '.';
		run = plain_run(in + i, n - i, &seen);
		if (run > 0) {
			memcpy(o, in + i, run);
			o += run;
			i += run;
			b->at_bol = 0;
			if (i == n)
				break;
		}
		if (in[i] == '\0') {
			b->offset += i;
			return perr_set(e, PERR_DATA,
					"the message contains a NUL byte at offset %llu; "
					"binary data must be sent MIME-encoded (base64), "
					"e.g. as an attachment",
					(unsigned long long)b->offset);
		}
		b->pending_cr = in[i] == '\r';
		*o++ = '\r';
		*o++ = '\n';
		b->at_bol = 1;
		i++;
	}
	b->offset += n;
	if (seen & HIGHS)
		b->has_8bit = 1;
	if (o != out)
		b->empty = 0;
	return (long)(o - out);
}

size_t body_finish(struct body *b, unsigned char *out)
{
	b->pending_cr = 0;
	if (b->empty || b->at_bol)
		return 0;
	out[0] = '\r';
	out[1] = '\n';
	b->at_bol = 1;
	return 2;
}
