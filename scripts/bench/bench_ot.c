/* bench_ot.c — Sinkhorn speed (dm_ot_sinkhorn) on 2-D Gaussian clouds,
 * squared Euclidean cost, uniform weights, epsilon relative to the
 * largest cost (as POT's examples normalise the cost by its maximum).
 *
 *   bench_ot [-t THREADS] [-r REPEATS] [-l TOL] N:EPS_REL ...
 *
 * TSV lines: ot, n=m, eps_rel, best wall s, iterations, iterations/s,
 * points^2/s (n m entries per half-iteration, two per iteration),
 * marginal error, converged.  X is N(0, I), Y is N((1, 0), diag(1,
 * 0.25)), fixed draws.  The best of REPEATS runs (default 3) is kept:
 * other jobs on the machine only slow a run down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm.h"
#include "dm_ot.h"

static float *
cloud(int64_t n, int which)
{
	float *x = malloc((size_t)n * 2 * sizeof *x);

	if (x == NULL)
		exit(1);
	dm_rng_normal(x, (size_t)n * 2, 7, (uint64_t)which, 0);
	if (which == 1)
		for (int64_t i = 0; i < n; i++) {
			x[2 * i] += 1;
			x[2 * i + 1] *= 0.5f;
		}
	return x;
}

int
main(int argc, char **argv)
{
	int th = 0, reps = 3, c;
	double tol = 1e-9;

	dm_tool_init(argv);
	while ((c = getopt(argc, argv, "l:r:t:")) != -1) {
		switch (c) {
		case 'l':
			tol = atof(optarg);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 't':
			th = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_ot [-t THREADS] "
			    "[-r REPEATS] [-l TOL] N:EPS_REL ...\n");
			return 2;
		}
	}
	if (th > 0)
		dm_threads_set(th);
	for (int k = optind; k < argc; k++) {
		int64_t n = atoll(argv[k]);
		const char *colon = strchr(argv[k], ':');
		double rel = colon ? atof(colon + 1) : 0.05, best = 1e30;
		float *x = cloud(n, 0), *y = cloud(n, 1);
		struct dm_ot_opts o;
		struct dm_ot_result r;

		dm_ot_opts_defaults(&o);
		o.eps_rel = rel;
		o.tol = tol;
		o.max_iter = 100000;
		o.threads = th;
		for (int rep = 0; rep < reps; rep++) {
			double t0 = dm_now();
			if (dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 2, &o, &r,
			    NULL, NULL) == -1) {
				fprintf(stderr, "bench_ot: %s\n", dm_errstr());
				return 1;
			}
			double t = dm_now() - t0;
			best = t < best ? t : best;
		}
		printf("ot\t%lld\t%g\t%.4f s\t%lld it\t%.1f it/s\t%.3g pts2/s"
		    "\terr %.2g\tconverged %d\n", (long long)n, rel, best,
		    (long long)r.iterations, r.iterations / best,
		    2.0 * r.iterations * (double)n * n / best,
		    r.marginal_error, r.converged);
		fflush(stdout);
		free(x);
		free(y);
	}
	return 0;
}
