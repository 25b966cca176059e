/* test_ot_lap.c — dm_ot_assign against brute force and closed forms. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_ot.h"
#include "ot_ref.h"
#include "test.h"

/* perm is a permutation of 0..n-1 and cost its mean cost. */
static int
check_perm(const float *x, const float *y, int n, int d, int p,
    const int64_t *perm, double cost)
{
	unsigned char *seen = calloc((size_t)n, 1);
	double sum = 0;
	int ok = 1;

	for (int i = 0; i < n; i++) {
		if (perm[i] < 0 || perm[i] >= n || seen[perm[i]]) {
			ok = 0;
			break;
		}
		seen[perm[i]] = 1;
		sum += ot_cost(x, y, d, p, i, (int)perm[i]);
	}
	free(seen);
	CHECK_MSG(ok, "perm is not a permutation of 0..%d", n - 1);
	if (ok)
		CHECK_NEAR(cost, sum / n, 1e-12 * (1 + sum / n));
	return ok;
}

/* Many random problems, n <= 8, p = 1 and 2, d = 1, 2, 3 (costs computed
 * per row) and 12 (the stored matrix): Gaussian points (no ties) and
 * points rounded to integers (many ties and equal costs). */
DM_TEST(ot_assign_matches_brute_force)
{
	static const int dims[4] = {1, 2, 3, 12};
	float x[8 * 12], y[8 * 12];
	int64_t perm[8];

	for (int trial = 0; trial < 384; trial++) {
		int n = 1 + trial % 8, d = dims[trial / 8 % 4];
		int p = 1 + trial / 32 % 2, grid = trial / 64 % 2;
		double cost, best;

		dm_rng_normal(x, (size_t)n * d, 11, 2 * (uint64_t)trial, 0);
		dm_rng_normal(y, (size_t)n * d, 11, 2 * (uint64_t)trial + 1, 0);
		if (grid)
			for (int k = 0; k < n * d; k++) {
				x[k] = roundf(x[k]);
				y[k] = roundf(y[k]);
			}
		CHECK_OK(dm_ot_assign(x, y, n, d, p, perm, &cost));
		best = ot_brute_force(x, y, n, d, p);
		if (!check_perm(x, y, n, d, p, perm, cost))
			return;
		CHECK_MSG(fabs(cost - best) <= 1e-12 * (1 + best),
		    "trial %d (n %d d %d p %d%s): cost %.17g, optimum %.17g",
		    trial, n, d, p, grid ? " grid" : "", cost, best);
	}
}

static int
cmp_float(const void *a, const void *b)
{
	float u = *(const float *)a, v = *(const float *)b;

	return (u > v) - (u < v);
}

/* In 1-D the sorted matching is optimal for convex costs |x - y|^p,
 * p >= 1: for n = 500 the optimum equals its cost. */
DM_TEST(ot_assign_1d_sorted)
{
	enum { N = 500 };
	float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	float *xs = malloc(N * sizeof *xs), *ys = malloc(N * sizeof *ys);
	int64_t *perm = malloc(N * sizeof *perm);

	dm_rng_normal(x, N, 5, 0, 0);
	dm_rng_uniform(y, N, 5, 1, 0);
	for (int k = 0; k < N; k++)
		y[k] = 3 * y[k] - 1;
	memcpy(xs, x, N * sizeof *x);
	memcpy(ys, y, N * sizeof *y);
	qsort(xs, N, sizeof *xs, cmp_float);
	qsort(ys, N, sizeof *ys, cmp_float);
	for (int p = 1; p <= 2; p++) {
		double cost, sorted = 0;
		for (int k = 0; k < N; k++)
			sorted += ot_cost(xs, ys, 1, p, k, k);
		sorted /= N;
		CHECK_OK(dm_ot_assign(x, y, N, 1, p, perm, &cost));
		check_perm(x, y, N, 1, p, perm, cost);
		CHECK_NEAR(cost, sorted, 1e-12 * sorted);
		/* p = 2: the matching itself is the sorted one (no ties) */
		if (p == 2)
			for (int i = 0; i < N; i++) {
				int r = 0;
				for (int k = 0; k < N; k++)
					r += x[k] < x[i];
				if (y[perm[i]] != ys[r]) {
					CHECK_MSG(0, "x[%d] (rank %d) matched to "
					    "y %g, not %g", i, r, y[perm[i]], ys[r]);
					break;
				}
			}
	}
	free(x);
	free(y);
	free(xs);
	free(ys);
	free(perm);
}

/* Y a permutation of X: the optimum is 0 and recovers the permutation
 * (D = 3: costs per row; D = 10: the stored matrix). */
static void
recovers_permutation(int D)
{
	enum { N = 400 };
	float *x = malloc(N * D * sizeof *x), *y = malloc(N * D * sizeof *y);
	int64_t *perm = malloc(N * sizeof *perm), *s = malloc(N * sizeof *s);
	double cost;

	dm_rng_normal(x, N * D, 9, 0, 0);
	for (int i = 0; i < N; i++)
		s[i] = i;
	for (int i = N - 1; i > 0; i--) {	/* Fisher–Yates */
		int j = (int)(dm_rng_u32(9, 1, (uint64_t)i) % (uint32_t)(i + 1));
		int64_t t = s[i];
		s[i] = s[j];
		s[j] = t;
	}
	for (int i = 0; i < N; i++)
		memcpy(y + s[i] * D, x + i * D, D * sizeof *x);
	for (int p = 1; p <= 2; p++) {
		CHECK_OK(dm_ot_assign(x, y, N, D, p, perm, &cost));
		CHECK(cost == 0);
		for (int i = 0; i < N; i++)
			if (perm[i] != s[i]) {
				CHECK_MSG(0, "d %d p %d: perm[%d] = %lld, not %lld",
				    D, p, i, (long long)perm[i], (long long)s[i]);
				break;
			}
	}
	free(x);
	free(y);
	free(perm);
	free(s);
}

DM_TEST(ot_assign_recovers_permutation)
{
	recovers_permutation(3);
	recovers_permutation(10);
}

/* Larger clouds: perm is a permutation, its cost is what is reported,
 * and no single swap of two rows' columns lowers it (a necessary
 * condition of optimality that brute force cannot reach at this n). */
DM_TEST(ot_assign_no_improving_swap)
{
	enum { N = 300, D = 2 };
	float *x = malloc(N * D * sizeof *x), *y = malloc(N * D * sizeof *y);
	int64_t *perm = malloc(N * sizeof *perm);
	double cost;

	dm_rng_normal(x, N * D, 3, 0, 0);
	dm_rng_normal(y, N * D, 3, 1, 0);
	for (int k = 0; k < N * D; k++)
		y[k] += 1;
	for (int p = 1; p <= 2; p++) {
		CHECK_OK(dm_ot_assign(x, y, N, D, p, perm, &cost));
		if (!check_perm(x, y, N, D, p, perm, cost))
			break;
		double worst = 0;
		for (int i = 0; i < N; i++)
			for (int k = i + 1; k < N; k++) {
				int a = (int)perm[i], b = (int)perm[k];
				double gain = ot_cost(x, y, D, p, i, a) +
				    ot_cost(x, y, D, p, k, b) -
				    ot_cost(x, y, D, p, i, b) -
				    ot_cost(x, y, D, p, k, a);
				if (gain > worst)
					worst = gain;
			}
		CHECK_MSG(worst <= 1e-12, "p %d: a swap lowers the cost by %g",
		    p, worst);
	}
	free(x);
	free(y);
	free(perm);
}

DM_TEST(ot_assign_rejects_bad_input)
{
	float x[4] = {0, 1, 2, 3}, y[4] = {1, 2, 3, 4};
	int64_t perm[2];
	double cost;

	CHECK_FAILS(dm_ot_assign(x, y, 0, 2, 2, perm, &cost), "n = 0");
	CHECK_FAILS(dm_ot_assign(x, y, -3, 2, 2, perm, &cost), "n = -3");
	CHECK_FAILS(dm_ot_assign(x, y, 2, 0, 2, perm, &cost), "dimension 0");
	CHECK_FAILS(dm_ot_assign(x, y, 2, 2, 3, perm, &cost), "p = 3");
	CHECK_FAILS(dm_ot_assign(x, y, INT64_C(1) << 40, 2, 2, perm, &cost),
	    "too many");
	y[3] = NAN;
	CHECK_FAILS(dm_ot_assign(x, y, 2, 2, 2, perm, &cost),
	    "row 1 of Y is not finite");
	x[0] = INFINITY;
	CHECK_FAILS(dm_ot_assign(x, y, 2, 2, 1, perm, &cost),
	    "row 0 of X is not finite");
	/* one point: matched to the other one */
	x[0] = 0;
	CHECK_OK(dm_ot_assign(x, y, 1, 2, 2, perm, &cost));
	CHECK(perm[0] == 0);
	CHECK_NEAR(cost, 2, 0);
}
