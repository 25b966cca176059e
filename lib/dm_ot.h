/* dm_ot.h — optimal transport between point clouds (SPEC.md §7).
 *
 * Point clouds X [n, d] and Y [m, d] (row-major float), weights a [n] and
 * b [m] (NULL = uniform 1/n, 1/m), cost C_ij = ||x_i - y_j||^p with p = 1
 * or 2 (2 by default, no 1/2 factor).
 *
 * Entropic OT is solved in the log domain with epsilon-scaling; costs are
 * computed on the fly from the points in blocks, so memory is O(n + m)
 * unless a dense plan is requested.  The exact solver handles the
 * assignment problem (n = m, uniform weights).
 *
 * Every function returns 0 on success and -1 with dm_errstr() set on bad
 * input; dm_ot_sinkhorn returns 1 when it stopped at max_iter without
 * reaching tol (the result is filled in, converged = 0). */
#ifndef DM_OT_H
#define DM_OT_H

#include <stddef.h>
#include <stdint.h>

struct dm_ot_opts {
	int p;              /* cost exponent: 1 or 2 (default 2) */
	double eps;         /* absolute epsilon in cost units (> 0), or 0 */
	double eps_rel;     /* epsilon = eps_rel * max_ij C_ij, or 0 */
	double blur;        /* epsilon = blur^p (geomloss' convention), or 0;
	                       default 0.05 when eps and eps_rel are 0 */
	double scaling;     /* epsilon-scaling factor per stage, in (0, 1)
	                       (default 0.5) */
	double tol;         /* stop when the L1 marginal error <= tol
	                       (default 1e-6) */
	int64_t max_iter;   /* iterations over all stages (default 10000) */
	int threads;        /* 0 = default (DM_THREADS / all cores) */
	int full_precision; /* 1: every pass in double; 0 (default): passes
	                       of the squared cost in single precision while
	                       the marginal error is far above what single
	                       precision resolves */
};

struct dm_ot_result {
	double cost;        /* <P, C> */
	double entropic;    /* <P, C> + eps KL(P | a b^T) */
	double w;           /* <P, C>^(1/p) */
	double eps;         /* the final epsilon used */
	double marginal_error; /* L1 error of the marginal not fixed last
	                          (plus that of the other one when the
	                          iteration is over-relaxed) */
	int64_t iterations;
	int converged;
};

void dm_ot_opts_defaults(struct dm_ot_opts *o);

/* Entropic OT.  On return f [n] and g [m] (optional, may be NULL) hold
 * the dual potentials in cost units: P_ij = a_i b_j exp((f_i + g_j -
 * C_ij) / eps). */
int dm_ot_sinkhorn(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d,
    const struct dm_ot_opts *o, struct dm_ot_result *r,
    double *f, double *g);

/* The Sinkhorn divergence S_eps(X, Y) = OT_eps(X, Y) - OT_eps(X, X) / 2
 * - OT_eps(Y, Y) / 2, with the entropic terms (geomloss' definition),
 * uniform weights; one epsilon for all three problems, from X versus Y. */
int dm_ot_divergence(const float *x, int64_t n, const float *y, int64_t m,
    int d, const struct dm_ot_opts *o, double *div);

/* The same with optional weights (a, b may be NULL), the results of the
 * three problems (r[0] X-Y, r[1] X-X, r[2] Y-Y; r may be NULL) and the
 * potentials of X-Y (f, g may be NULL).  Both return 1 when a problem
 * stopped at max_iter (*div is set). */
int dm_ot_divergence_full(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d,
    const struct dm_ot_opts *o, double *div, struct dm_ot_result r[3],
    double *f, double *g);

/* From potentials (as left by dm_ot_sinkhorn with the same inputs and
 * r->eps): the dense plan P [n, m] (doubles), the barycentric map
 * T [n, d] (T_i = sum_j P_ij y_j / a_i), and a pairing j [n] (argmax of
 * row i, or, with seed != 0, a draw from P_i. / a_i, seeded per row).
 * Any output may be NULL. */
int dm_ot_plan(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d, int p, double eps,
    const double *f, const double *g, double *plan, float *map,
    int64_t *pair, uint64_t seed);

/* Exact assignment (n = m, uniform weights): perm[i] = the row of Y
 * matched to row i of X, minimising sum_i C_i,perm[i]; *cost is the mean
 * cost (= <P, C> with P = I/n).  O(n^3) worst case; meant for n up to a
 * few thousand. */
int dm_ot_assign(const float *x, const float *y, int64_t n, int d, int p,
    int64_t *perm, double *cost);

#endif
