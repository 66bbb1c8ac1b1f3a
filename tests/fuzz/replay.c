/* replay.c — runs a fuzz target over its checked-in corpus without
 * libFuzzer, so that every build (gcc included) replays it in `make
 * check`.  Linked with one fuzz_NAME.c; the program is called replay_NAME
 * and reads tests/fuzz/corpus/NAME/ (fuzz/corpus/NAME/ under $TESTS_SRCDIR,
 * or the files and directories given as arguments).
 *
 * Output is TAP: one test per regression input (files named regress-*,
 * each a bug found and fixed) and one for the rest of the corpus.  An
 * input that trips an oracle or a sanitizer aborts the program; the name
 * of the input being run is on stderr (in the test's log). */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "util.h"

/* Corpus files are small; libFuzzer's default -max_len is 4096 and the
 * message target's corpus stays under 64 KiB. */
#define INPUT_MAX (1024 * 1024)
#define PATH_CAP 4096

/* Read path whole into a buffer of exactly its size (so that a sanitizer
 * sees any read past the end).  Returns -1 on error. */
static int read_input(const char *path, uint8_t **data, size_t *size)
{
	struct stat st;
	size_t got = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > INPUT_MAX) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*data = xmalloc(st.st_size ? (size_t)st.st_size : 1);
	while (got < (size_t)st.st_size) {
		r = read(fd, *data + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*size = got;
	return 0;
}

static int run_one(const char *path)
{
	uint8_t *data = NULL;
	size_t size = 0;

	fprintf(stderr, "replaying %s\n", path);
	if (read_input(path, &data, &size) < 0) {
		fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int not_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

struct tally {
	int n;	    /* TAP tests printed */
	int corpus; /* ordinary inputs run */
	int bad;    /* unreadable inputs */
};

/* A regression input is its own TAP test; the rest are counted. */
static void run_path(struct tally *t, const char *path, const char *base)
{
	int r = run_one(path);

	if (strncmp(base, "regress-", 8) == 0) {
		printf("%s %d - %s\n", r == 0 ? "ok" : "not ok", ++t->n, base);
		fflush(stdout);
	} else if (r == 0) {
		t->corpus++;
	} else {
		t->bad++;
	}
}

static int run_dir(struct tally *t, const char *dir)
{
	struct dirent **ents;
	char path[PATH_CAP];
	int n = scandir(dir, &ents, not_hidden, alphasort);

	if (n < 0) {
		fprintf(stderr, "cannot list %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name) <
		    sizeof path)
			run_path(t, path, ents[i]->d_name);
		else
			t->bad++;
		free(ents[i]);
	}
	free(ents);
	return 0;
}

/* How many regression inputs the arguments hold (for the TAP plan). */
static int count_regress(char **paths, int n)
{
	struct dirent **ents;
	struct stat st;
	int count = 0;

	for (int i = 0; i < n; i++) {
		if (stat(paths[i], &st) == 0 && !S_ISDIR(st.st_mode)) {
			count += strncmp(path_base(paths[i]), "regress-", 8) == 0;
			continue;
		}
		int k = scandir(paths[i], &ents, not_hidden, alphasort);

		for (int j = 0; j < k; j++) {
			count += strncmp(ents[j]->d_name, "regress-", 8) == 0;
			free(ents[j]);
		}
		if (k >= 0)
			free(ents);
	}
	return count;
}

int main(int argc, char **argv)
{
	const char *name = path_base(argv[0]), *srcdir = getenv("TESTS_SRCDIR");
	char dflt[PATH_CAP], *dflt_argv[1] = {dflt};
	char **paths = argv + 1;
	int npaths = argc - 1;
	struct tally t = {0, 0, 0};
	struct stat st;

	if (strncmp(name, "replay_", 7) == 0)
		name += 7;
	if (npaths == 0) {
		snprintf(dflt, sizeof dflt, "%s/fuzz/corpus/%s", srcdir ? srcdir : "tests",
			 name);
		paths = dflt_argv;
		npaths = 1;
	}
	printf("1..%d\n", count_regress(paths, npaths) + 1);
	for (int i = 0; i < npaths; i++) {
		if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (run_dir(&t, paths[i]) < 0)
				t.bad++;
		} else {
			run_path(&t, paths[i], path_base(paths[i]));
		}
	}
	printf("%s %d - %s: %d corpus inputs replayed%s\n",
	       t.corpus > 0 && !t.bad ? "ok" : "not ok", ++t.n, name, t.corpus,
	       t.bad ? ", some unreadable" : "");
	return 0;
}
