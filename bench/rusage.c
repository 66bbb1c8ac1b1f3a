/* rusage.c — run a command and report what it cost, for bench/run.
 *
 *   rusage OUTFILE PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM (stdin, stdout and stderr inherited), waits, and
 * writes "maxrss_kb utime_s stime_s" to OUTFILE; exits with the child's
 * status.  A small C parent matters: Linux counts the memory a child had
 * before exec into its peak RSS, so a child forked from Python would
 * report Python's size, not the program's. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid;
	FILE *f;

	if (argc < 3) {
		fputs("usage: rusage OUTFILE PROGRAM [ARG...]\n", stderr);
		return 64;
	}
	pid = fork();
	if (pid < 0)
		return 71;
	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 71;
	f = fopen(argv[1], "w");
	if (!f)
		return 73;
	fprintf(f, "%ld %ld.%06ld %ld.%06ld\n", ru.ru_maxrss, (long)ru.ru_utime.tv_sec,
		(long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
	fclose(f);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
