/* base64.h — RFC 4648 base64 for SMTP AUTH payloads (RFC 4954).
 *
 * Kept out of tls.c so that smtp.c need not include OpenSSL.  Callers that
 * encode secrets wipe the output themselves. */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

/* Bytes base64_encode writes for n input bytes, without the NUL. */
#define BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Encode in[0..n) into out, which holds BASE64_LEN(n) + 1 bytes; the
 * result is NUL-terminated.  Returns its length. */
size_t base64_encode(const unsigned char *in, size_t n, char *out);

/* base64url without padding (RFC 4648 section 5: PKCE, JWTs): as
 * base64_encode, with - and _ and no '='.  Returns its length. */
size_t base64url_encode(const unsigned char *in, size_t n, char *out);

/* Decode in[0..n) (padding required, no whitespace) into out (cap bytes).
 * Returns the decoded length, or -1 when the input is not base64 or does
 * not fit. */
long base64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

#endif
