/* ot_ref.h — reference answers for the optimal-transport tests: the cost
 * ||x_i - y_j||^p in double precision and exact OT between n <= 8 points
 * by a search over all permutations. */
#ifndef DM_TEST_OT_REF_H
#define DM_TEST_OT_REF_H

#include <math.h>
#include <stdint.h>

static double
ot_cost(const float *x, const float *y, int d, int p, int64_t i, int64_t j)
{
	double s = 0;

	for (int k = 0; k < d; k++) {
		double t = (double)x[i * d + k] - y[j * d + k];
		s += t * t;
	}
	return p == 2 ? s : sqrt(s);
}

/* min over permutations of mean_i C(i, perm i), by Heap's algorithm; the
 * costs of a permutation are summed in row order. */
static double
ot_brute_force(const float *x, const float *y, int n, int d, int p)
{
	int perm[8], c[8] = {0}, k = 1;
	double best = INFINITY;

	for (int i = 0; i < n; i++)
		perm[i] = i;
	for (;;) {
		double s = 0;
		for (int i = 0; i < n; i++)
			s += ot_cost(x, y, d, p, i, perm[i]);
		best = s / n < best ? s / n : best;
		while (k < n && c[k] >= k)
			c[k++] = 0;
		if (k >= n)
			break;
		int j = k % 2 ? c[k] : 0, t = perm[j];
		perm[j] = perm[k];
		perm[k] = t;
		c[k]++;
		k = 1;
	}
	return best;
}

#endif
