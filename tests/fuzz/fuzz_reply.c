/* fuzz_reply.c — fuzz target for the SMTP reply parser (reply.c).
 *
 * The input is a server's byte stream: it is cut into lines at LF (a CR
 * before the LF dropped, lines cut at REPLY_LINE_MAX as the reader does)
 * and fed to reply_feed.  Oracles: a complete reply has a valid code, at
 * most REPLY_LINES_MAX lines, text that is printable UTF-8 and fits its
 * buffer, an enhanced code of its own class; reply_line and
 * reply_oneline stay inside their buffers and keep the text printable; a
 * refusal is PERR_PROTOCOL with one printable line. */
#include "autoconf.h"

#include <string.h>

#include "fuzz.h"
#include "reply.h"

static void check_enhanced(const struct reply *r)
{
	const char *s = r->enhanced;
	size_t n = strlen(s), dots = 0;

	if (n == 0)
		return;
	FUZZ_CHECK(n >= 5 && s[0] == (char)('0' + r->code / 100) && s[1] == '.');
	for (size_t i = 2; i < n; i++) {
		FUZZ_CHECK((s[i] >= '0' && s[i] <= '9') || s[i] == '.');
		dots += s[i] == '.';
	}
	FUZZ_CHECK(dots == 1 && s[n - 1] != '.');
}

static void check_views(const struct reply *r)
{
	static const size_t caps[] = {1, 2, 4, 5, 8, 17, 80, 512, REPLY_TEXT_MAX + 8};
	char buf[REPLY_TEXT_MAX + 8];
	unsigned newlines = 0;
	int n;

	for (size_t i = 0; i < r->len; i++)
		newlines += r->text[i] == '\n';
	FUZZ_CHECK(newlines < r->nlines);
	for (unsigned i = 0; i <= newlines + 1; i++) {
		n = reply_line(r, i, buf, sizeof buf);
		FUZZ_CHECK(i <= newlines ? n >= 0 && (size_t)n == strlen(buf) : n == -1);
		if (n >= 0)
			FUZZ_CHECK(fuzz_printable(buf, (size_t)n, 0));
		n = reply_line(r, i, buf, 3);
		FUZZ_CHECK(n < 3);
	}
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
		memset(buf, 'X', sizeof buf);
		reply_oneline(r, buf, caps[k]);
		FUZZ_CHECK(strlen(buf) < caps[k]);
		FUZZ_CHECK(fuzz_printable(buf, strlen(buf), 0));
		FUZZ_CHECK(caps[k] == sizeof buf || buf[caps[k]] == 'X');
	}
}

static void check_reply(const struct reply *r, int complete)
{
	FUZZ_CHECK(r->code >= 200 && r->code <= 559 && r->code % 100 <= 59);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= REPLY_LINES_MAX);
	FUZZ_CHECK(r->len < sizeof r->text && r->len == strlen(r->text));
	FUZZ_CHECK(fuzz_printable(r->text, r->len, 1));
	check_enhanced(r);
	if (complete)
		check_views(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct reply r;
	struct perr e;

	reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		int rc;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > REPLY_LINE_MAX)
			len = REPLY_LINE_MAX;
		memset(&e, 0, sizeof e);
		rc = reply_feed(&r, p, len, &e);
		FUZZ_CHECK(rc >= -1 && rc <= 1);
		if (rc < 0) {
			FUZZ_CHECK_ERROR(&e);
			FUZZ_CHECK(e.kind == PERR_PROTOCOL);
			FUZZ_CHECK(fuzz_printable(e.text, strlen(e.text), 0));
		} else {
			check_reply(&r, rc == 1);
		}
		if (rc != 0)
			reply_init(&r);
		p = nl ? nl + 1 : end;
	}
	return 0;
}
