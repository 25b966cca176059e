/* main.c — the unit-test runner (see test.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm.h"
#include "test.h"

#define MAX_TESTS 4096

static struct {
	const char *name;
	void (*fn)(void);
} tests[MAX_TESTS];
static int ntests, failures_in_test;
static const char *current;
static char tmpdir[256];

void
dm_test_register(const char *name, void (*fn)(void))
{
	if (ntests < MAX_TESTS) {
		tests[ntests].name = name;
		tests[ntests].fn = fn;
		ntests++;
	}
}

void
dm_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (failures_in_test++ >= 10)
		return;	/* one broken loop should not flood the log */
	fprintf(stderr, "FAIL %s: %s:%d: ", current, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
dm_test_tmpdir(void)
{
	return tmpdir;
}

const char *
dm_test_path(const char *name)
{
	static char bufs[8][512];
	static int k;
	char *b = bufs[k++ & 7];

	snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
	return b;
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
main(int argc, char **argv)
{
	const char *pattern = argc > 1 ? argv[1] : "";
	const char *base = getenv("TMPDIR");
	int passed = 0, failed = 0;

	snprintf(tmpdir, sizeof tmpdir, "%s/dm-unit-XXXXXX",
	    base && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	qsort(tests, (size_t)ntests, sizeof tests[0], cmp);
	for (int i = 0; i < ntests; i++) {
		if (strstr(tests[i].name, pattern) == NULL)
			continue;
		current = tests[i].name;
		failures_in_test = 0;
		dm_clearerr();
		tests[i].fn();
		if (failures_in_test) {
			failed++;
			fprintf(stderr, "not ok %s (%d failed checks)\n", current,
			    failures_in_test);
		} else {
			passed++;
			if (getenv("DM_TEST_VERBOSE"))
				fprintf(stderr, "ok %s\n", current);
		}
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", tmpdir);
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
