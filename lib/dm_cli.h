/* dm_cli.h — what every dm tool shares: strict number parsing, the common
 * options, output checks, progress lines, thread setup. */
#ifndef DM_CLI_H
#define DM_CLI_H

#include <stdint.h>
#include <stdio.h>

/* Strict parsing: the whole string must be a number in [min, max]; "",
 * "1x", " 1", "0x10", overflow and (for doubles) NaN/Inf and hex are
 * refused with a reason ("'1x' is not an integer", "'1x' is not a number",
 * "'300' is out of range (0 to 255)").  A leading '+' is accepted; '-' is
 * refused by dm_parse_uint64. */
int dm_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
int dm_parse_int(const char *s, int min, int max, int *out);
int dm_parse_uint64(const char *s, uint64_t *out);
int dm_parse_double(const char *s, double min, double max, double *out);
/* A list "a,b,c" of doubles into out[0..cap); sets *n. */
int dm_parse_doubles(const char *s, double *out, int cap, int *n);

/* The options every tool takes.  Tools keep their own getopt_long table and
 * pass the common letters/ids here. */
struct dm_common {
	const char *output;        /* -o FILE; NULL or "-" = stdout */
	int quiet;                 /* -q */
	uint64_t seed;             /* --seed N (default 0) */
	int threads;               /* --threads N (default: online CPUs) */
	const char *log;           /* --log FILE (TSV) */
};
/* Long option ids for the common options that have no short letter. */
enum {
	DM_OPT_SEED = 0x1000,
	DM_OPT_THREADS,
	DM_OPT_LOG,
	DM_OPT_HELP,
	DM_OPT_VERSION,
	DM_OPT_FIRST_TOOL = 0x1100  /* tools number their own long options from here */
};
void dm_common_init(struct dm_common *c);
/* Handle option `opt` with `arg` if it is a common one: returns 1 if handled,
 * 0 if not a common option, -1 (with reason) if its argument is bad. */
int dm_common_option(struct dm_common *c, int opt, const char *arg);

/* Binary output check: -1 with a hint if path is stdout ("-" or NULL) and
 * standard output is a terminal. */
int dm_check_binary_output(const char *path);

/* The first call of a tool's main.  libgomp's threads spin-wait at
 * barriers by default, and on a machine where other jobs share the cores
 * (make -j, batch jobs) a spinning thread burns the time slice the
 * thread it waits for needs: 200 steps of a small mlp took 62 s instead
 * of 0.6 s with two other processes running.  libgomp reads its settings
 * as it loads, before main, so unless the user chose them
 * (OMP_WAIT_POLICY or GOMP_SPINCOUNT set) this sets
 * OMP_WAIT_POLICY=passive and executes the program again with the same
 * arguments; if that fails it carries on as it is. */
void dm_tool_init(char **argv);

/* Threads: sets OpenBLAS and OpenMP to n (n <= 0: online CPUs). */
void dm_threads_set(int n);
int dm_threads_get(void);

/* A progress line on stderr, drawn only when stderr is a terminal and not
 * quiet: "  1200/5000  24%  350.2/s  ETA 0:11  loss 0.0312". */
struct dm_progress {
	const char *what;          /* e.g. "step" */
	int64_t total;
	int enabled;
	double start, last;        /* seconds (monotonic) */
	int drawn;
};
void dm_progress_start(struct dm_progress *p, const char *what, int64_t total,
    int quiet);
/* Redraws at most a few times per second; extra is a short figure or NULL. */
void dm_progress_update(struct dm_progress *p, int64_t done, const char *extra);
/* Clears the line. */
void dm_progress_end(struct dm_progress *p);
/* The line itself, as drawn at time `now` (dm_now() seconds) with `done`
 * steps done: "\r  step 1200/5000  24%  350.2/s  ETA 0:11  loss 0.0312\033[K"
 * (ETA as M:SS or H:MM:SS; without a total (<= 0) only the count and the
 * rate).  snprintf-like: returns the full length, buf is cut to n - 1. */
int dm_progress_format(char *buf, size_t n, const struct dm_progress *p,
    int64_t done, double now, const char *extra);
/* Monotonic seconds. */
double dm_now(void);

#endif
