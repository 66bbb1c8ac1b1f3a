/* base64.c — RFC 4648 base64 encoding and strict decoding. */
#include "autoconf.h"

#include "base64.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	size_t i, o = 0;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		int a = val(in[i]), b = val(in[i + 1]), c = val(in[i + 2]), d = val(in[i + 3]);
		int last = i + 4 == n;
		size_t k = 3;

		if (last && in[i + 3] == '=') {
			k = in[i + 2] == '=' ? 1 : 2;
			d = 0;
			if (k == 1)
				c = 0;
		}
		if (a < 0 || b < 0 || c < 0 || d < 0 || o + k > cap)
			return -1;
		/* strict: the bits padding leaves over must be zero ("QR==" is
		 * not another spelling of "QQ==") */
		if ((k == 1 && (b & 15)) || (k == 2 && (c & 3)))
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		if (k > 1)
			out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		if (k > 2)
			out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	return (long)o;
}

size_t base64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t len = base64_encode(in, n, out);

	for (size_t i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	while (len && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	return len;
}
