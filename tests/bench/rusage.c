/* rusage.c — run a command and report what it cost, for tests/bench/run.
 *
 *   rusage [-n N] OUTFILE PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM (stdin, stdout and stderr inherited), waits, and
 * writes "maxrss_kb utime_s stime_s" to OUTFILE; exits with the child's
 * status.  With -n, runs PROGRAM N times one after the other, rewinding
 * standard input before each run, and writes one such line per run (the
 * first failing run ends it, with its status).
 *
 * A small C parent matters: Linux counts the memory a child had before
 * exec into its peak RSS, and the work a child of a big process does
 * between fork and exec (copying its page tables) into its CPU time, so a
 * child forked from Python would report some of Python's costs as the
 * program's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int run_once(char **argv, FILE *out)
{
	struct rusage ru;
	int status;
	pid_t pid;

	lseek(0, 0, SEEK_SET); /* not seekable (a pipe): nothing to rewind */
	pid = fork();
	if (pid < 0)
		return 71;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 71;
	fprintf(out, "%ld %ld.%06ld %ld.%06ld\n", ru.ru_maxrss, (long)ru.ru_utime.tv_sec,
		(long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
	long n = 1;
	int rc = 0;
	FILE *f;

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		char *end;

		n = strtol(argv[2], &end, 10);
		if (*end || n < 1)
			n = 0;
		argv += 2;
		argc -= 2;
	}
	if (argc < 3 || n < 1) {
		fputs("usage: rusage [-n N] OUTFILE PROGRAM [ARG...]\n", stderr);
		return 64;
	}
	f = fopen(argv[1], "w");
	if (!f)
		return 73;
	for (long i = 0; i < n && rc == 0; i++)
		rc = run_once(argv + 2, f);
	if (fclose(f) != 0)
		return 74;
	return rc;
}
