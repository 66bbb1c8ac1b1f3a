/* fuzz_message.c — fuzz target for reading a message and applying the
 * header policy (message.c, with addr.c under it).
 *
 * The first input byte holds options (bit 0: -t, bit 1: add_headers,
 * bit 2: from_header = force, bit 3: an envelope sender); the rest is
 * standard input, handed over through a memfd.  Oracles:
 *  - -t recipients all pass addr_check (local names allowed);
 *  - message_next streams exactly message_size bytes, and message_wire_size
 *    is the same number, before and after message_prepare, whatever the
 *    read size;
 *  - the stream has CRLF line ends only (every CR before an LF, every LF
 *    after a CR) and ends in CRLF unless empty, so the wire encoder has
 *    nothing left to change but the dots;
 *  - the header block is whole CRLF lines, each a field ("name", blanks
 *    allowed before the colon) or a continuation, no empty line; after
 *    message_prepare no field is Bcc or Resent-Bcc (blanks before the
 *    colon included); From, Date and Message-ID are there when they were
 *    to be added; with force, From's address is the forced one;
 *  - failures are one line of text. */
#include "autoconf.h"

#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"
#include "fuzz.h"
#include "message.h"
#include "util.h"

#define FORCED "forced@example.com"

static int input_fd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-message", MFD_CLOEXEC);
	size_t done = 0;
	ssize_t w;

	FUZZ_CHECK(fd >= 0);
	while (done < size) {
		w = write(fd, data + done, size - done);
		FUZZ_CHECK(w > 0);
		done += (size_t)w;
	}
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static void check_stream(const struct message *m, size_t cap)
{
	unsigned char buf[4096];
	struct msg_reader r;
	struct perr e;
	off_t total = 0;
	int prev = '\n';
	long n;

	message_rewind(m, &r);
	while ((n = message_next(&r, buf, cap, &e)) > 0) {
		FUZZ_CHECK((size_t)n <= cap);
		FUZZ_CHECK(memchr(buf, '\0', (size_t)n) == NULL);
		for (long i = 0; i < n; i++) {
			FUZZ_CHECK((prev == '\r') == (buf[i] == '\n'));
			prev = buf[i];
		}
		total += n;
	}
	FUZZ_CHECK(n == 0);
	FUZZ_CHECK(prev == '\n');
	FUZZ_CHECK(total == message_size(m));
	FUZZ_CHECK(total == message_wire_size(m));
}

/* Length of the field name at h[i..end), the blanks before the colon
 * not counted; checks the name's bytes and that a colon follows. */
static size_t name_len(const char *h, size_t i, size_t end)
{
	size_t k = i, n;

	while (k < end && h[k] != ':' && h[k] != ' ' && h[k] != '\t') {
		FUZZ_CHECK((unsigned char)h[k] > 32 && (unsigned char)h[k] < 127);
		k++;
	}
	n = k - i;
	while (k < end && (h[k] == ' ' || h[k] == '\t'))
		k++;
	FUZZ_CHECK(n > 0 && k < end && h[k] == ':');
	return n;
}

/* Whole CRLF lines, each "name:..." or a continuation; no empty line;
 * with no_bcc, no Bcc or Resent-Bcc field. */
static void check_block(const char *h, size_t len, int no_bcc)
{
	size_t i = 0, end, n;
	int bcc;

	FUZZ_CHECK(memchr(h, '\0', len) == NULL);
	while (i < len) {
		const char *nl = memchr(h + i, '\n', len - i);

		FUZZ_CHECK(nl != NULL);
		end = (size_t)(nl - h);
		FUZZ_CHECK(end >= i + 2 && h[end - 1] == '\r');
		FUZZ_CHECK(memchr(h + i, '\r', end - 1 - i) == NULL);
		if (h[i] != ' ' && h[i] != '\t') {
			n = name_len(h, i, end - 1);
			bcc = (n == 3 && strncasecmp(h + i, "Bcc", 3) == 0) ||
			      (n == 10 && strncasecmp(h + i, "Resent-Bcc", 10) == 0);
			FUZZ_CHECK(!no_bcc || !bcc);
		} else {
			FUZZ_CHECK(i > 0);
		}
		i = end + 1;
	}
}

static void check_prepared(struct message *m, const struct msg_opts *o)
{
	char v[64], name[256], addr[ADDR_MAX + 1];

	check_block(m->headers, m->headers_len, 1);
	if (o->add_headers) {
		FUZZ_CHECK(message_header(m, "Date", v, sizeof v) >= 0);
		FUZZ_CHECK(message_header(m, "Message-ID", v, sizeof v) >= 0);
	}
	if (o->force_from || (o->add_headers && o->sender))
		FUZZ_CHECK(message_header(m, "From", v, sizeof v) >= 0);
	if (o->force_from) {
		char *from = xmalloc(m->headers_len + 1);

		FUZZ_CHECK(message_header(m, "From", from, m->headers_len + 1) >= 0);
		FUZZ_CHECK(addr_parse_mailbox(from, name, sizeof name, addr, sizeof addr) == 0);
		FUZZ_CHECK(strcmp(addr, FORCED) == 0);
		FUZZ_CHECK(m->from_addr && strcmp(m->from_addr, FORCED) == 0);
		free(from);
	}
}

static void check_read(struct message *m, int extract)
{
	char v[8];
	struct perr e;

	for (size_t i = 0; i < m->nhdr_rcpts; i++)
		FUZZ_CHECK(addr_check(m->hdr_rcpts[i], 1, &e) == 0);
	FUZZ_CHECK(extract || m->nhdr_rcpts == 0);
	FUZZ_CHECK(!m->from_addr || *m->from_addr);
	check_block(m->headers, m->headers_len, 0);
	if (message_header(m, "Subject", v, sizeof v) >= 0)
		FUZZ_CHECK(strlen(v) < sizeof v);
	check_stream(m, 1);
	check_stream(m, 7);
	check_stream(m, sizeof v * 512);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_opts o;
	struct message m;
	struct perr e;
	int fd, extract;

	if (size == 0)
		return 0;
	memset(&o, 0, sizeof o);
	extract = data[0] & 1;
	o.add_headers = !!(data[0] & 2);
	o.force_from = data[0] & 4 ? FORCED : NULL;
	o.sender = data[0] & 8 ? "sender@example.com" : NULL;
	o.fullname = "Fuzz \"Q\" User";
	o.domain = "example.org";
	fd = input_fd(data + 1, size - 1);
	memset(&e, 0, sizeof e);
	if (message_read(&m, fd, extract, &e) < 0) {
		FUZZ_CHECK_ERROR(&e);
		close(fd);
		return 0;
	}
	close(fd);
	check_read(&m, extract);
	memset(&e, 0, sizeof e);
	FUZZ_CHECK(message_prepare(&m, &o, &e) == 0);
	check_prepared(&m, &o);
	check_stream(&m, 5);
	check_stream(&m, 4096);
	message_free(&m);
	return 0;
}
