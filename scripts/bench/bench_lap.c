/* bench_lap.c — time of the exact assignment (dm_ot_assign) on 2-D Gaussian
 * clouds X ~ N(0, I) and Y ~ N((1, 1), I), the whole call: cost matrix and
 * solver.
 *
 *   bench_lap N [DIR]   best of 5 calls; with DIR, X and Y are written as
 *                       DIR/x.npy and DIR/y.npy for scripts/pot_emd_bench.py
 *
 * Prints one TSV line: assign, N, setting, wall milliseconds, CPU
 * milliseconds of the process (both the best of the 5 calls: the figures
 * least disturbed by other work on the machine), mean cost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dm.h"
#include "dm_ot.h"

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
write_npy(const char *dir, const char *name, const float *p, int64_t n)
{
	char path[4096];
	int64_t shape[2] = {n, 2};
	struct dm_file *f = dm_file_new();
	struct dm_tensor *t = dm_tensor_new(2, shape);

	snprintf(path, sizeof path, "%s/%s.npy", dir, name);
	if (f == NULL || t == NULL || dm_tensor_set_name(t, "x") == -1)
		return -1;
	memcpy(t->data, p, (size_t)n * 2 * sizeof *p);
	if (dm_file_add(f, t) == -1 || dm_file_write(f, path, 0) == -1)
		return -1;
	dm_file_free(f);
	return 0;
}

int
main(int argc, char **argv)
{
	int64_t n = argc > 1 ? atol(argv[1]) : 0, *perm;
	float *x, *y;
	double best = 1e30, best_cpu = 1e30, cost = 0;

	if (n <= 0 || argc > 3) {
		fprintf(stderr, "usage: bench_lap N [DIR]\n");
		return 2;
	}
	dm_threads_set(0);
	x = malloc((size_t)n * 2 * sizeof *x);
	y = malloc((size_t)n * 2 * sizeof *y);
	perm = malloc((size_t)n * sizeof *perm);
	if (x == NULL || y == NULL || perm == NULL)
		return 1;
	dm_rng_normal(x, (size_t)n * 2, 1, 0, 0);
	dm_rng_normal(y, (size_t)n * 2, 1, 1, 0);
	for (int64_t k = 0; k < n * 2; k++)
		y[k] += 1;
	if (argc == 3 && (write_npy(argv[2], "x", x, n) == -1 ||
	    write_npy(argv[2], "y", y, n) == -1)) {
		fprintf(stderr, "bench_lap: %s: %s\n", argv[2], dm_errstr());
		return 1;
	}
	for (int rep = 0; rep < 5; rep++) {
		double t0 = dm_now(), c0 = cpu_now();
		if (dm_ot_assign(x, y, n, 2, 2, perm, &cost) == -1) {
			fprintf(stderr, "bench_lap: %s\n", dm_errstr());
			return 1;
		}
		double dt = dm_now() - t0, dc = cpu_now() - c0;
		if (dt < best)
			best = dt;
		if (dc < best_cpu)
			best_cpu = dc;
	}
	printf("assign\t%lld\t2-D Gaussians, p 2, %d threads\t%.1f ms\t"
	    "%.1f ms CPU\tcost %.6f\n", (long long)n, dm_threads_get(),
	    best * 1e3, best_cpu * 1e3, cost);
	free(x);
	free(y);
	free(perm);
	return 0;
}
