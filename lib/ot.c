/* ot.c — entropic optimal transport between point clouds (SPEC.md §7):
 * Sinkhorn in the log domain with epsilon-scaling, the Sinkhorn
 * divergence, and plans, barycentric maps and pairings from potentials.
 *
 * Costs are never stored: a pass computes, for every point i of one cloud
 * A against all points j of the other cloud B,
 *     S_i = sum_j exp(ah_i + bh_j - C_ij / eps)
 * in tiles of BI x BJ, threads over blocks of A.  With p = 2 the cost is
 * |a|^2 + |b|^2 - 2 a.b: the norms go into ah and bh, and the coordinates
 * are scaled by sqrt(2 / eps), so an entry is d fused multiply-adds, an
 * exponential and an add.  The potential of A is the stabiliser
 * (ah_i = (pot_i - |a_i|^2) / eps), so the exponents stay near 0 and one
 * pass suffices; a row whose sum leaves [1e-200, 1e200] (far from
 * convergence, or at extreme weights) is summed again with its maximum
 * taken out first.  The potentials are in double: they need a precision
 * of eps * tol against a magnitude of max C.  A pass of the squared cost
 * runs in single precision (16 lanes, an exponential of half the
 * degree) while the marginal error is far above what that precision
 * resolves, which is all of a loose solve and the early iterations of a
 * tight one; the rest is in double.
 *
 * Sums run in a fixed order inside one thread, so results do not depend
 * on the number of threads. */
#pragma GCC optimize("fp-contract=fast")
#pragma GCC diagnostic ignored "-Wpsabi"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_ot.h"
#include "dm_rng.h"

#define VL 8                 /* doubles in a vector */
#define FL 16                /* floats in a vector; sides are padded to it */
/* Passes in single precision while the marginal error exceeds this many
 * times the rounding unit at the magnitude of an exponent's terms (see
 * want_single). */
#ifndef SINGLE_MARGIN
#define SINGLE_MARGIN 4.0
#endif
#define BI 16                /* points of A per block */
/* An intermediate epsilon of the scaling runs until the marginal error
 * is below this: one iteration a stage (as in geomloss) leaves the
 * plan far from the marginals at small epsilon, where plain Sinkhorn
 * then needs thousands of iterations. */
#ifndef STAGE_TOL
#define STAGE_TOL 1e-2
#endif
/* Over-relaxation (see relax_update): the largest factor, and how long a
 * factor w is tried before it is judged, in units of 1 / (2 - w). */
#define OMEGA_MAX 1.9
#define RELAX_TRIAL 12
#define BJ 512               /* points of B per tile (multiple of VL) */

typedef double v8d __attribute__((vector_size(64)));
typedef unsigned long long v8l __attribute__((vector_size(64)));
typedef float v16f __attribute__((vector_size(64)));
typedef unsigned int v16u __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define OT_CLONES __attribute__((target_clones("arch=x86-64-v4", \
    "arch=x86-64-v3", "default")))
#else
#define OT_CLONES
#endif

void
dm_ot_opts_defaults(struct dm_ot_opts *o)
{
	memset(o, 0, sizeof *o);
	o->p = 2;
	o->scaling = 0.5;
	o->tol = 1e-6;
	o->max_iter = 10000;
}

/* exp(x) for x clamped to [-700, 700], relative error below 3e-13: x =
 * k ln2 + r, |r| <= ln2 / 2, a degree-10 Taylor polynomial in r, and k
 * added to the exponent bits.  A smooth function of x but for steps of
 * that size where k changes; they set the floor of the marginal error
 * (a degree-8 polynomial stalled near 1e-10). */
static inline __attribute__((always_inline)) v8d
vexp(v8d x)
{
	const double shift = 6755399441055744.0;     /* 1.5 * 2^52 */

	for (int l = 0; l < VL; l++) {
		x[l] = x[l] > -700.0 ? x[l] : -700.0;
		x[l] = x[l] < 700.0 ? x[l] : 700.0;
	}
	v8d t = x * 1.4426950408889634 + shift;
	v8d k = t - shift;
	v8d r = x - k * 0.6931471805599453;
	v8d q = r * (1.0 / 3628800) + 1.0 / 362880;
	q = q * r + 1.0 / 40320;
	q = q * r + 1.0 / 5040;
	q = q * r + 1.0 / 720;
	q = q * r + 1.0 / 120;
	q = q * r + 1.0 / 24;
	q = q * r + 1.0 / 6;
	q = q * r + 0.5;
	q = q * r + 1.0;
	q = q * r + 1.0;
	return (v8d)((v8l)q + ((v8l)t << 52));
}

/* expf(x) for x clamped to [-87, 88], relative error below 2e-7 (a few
 * units in the last place): x = k ln2 + r with ln2 in two parts,
 * |r| <= ln2 / 2, a degree-7 Taylor polynomial. */
static inline __attribute__((always_inline)) v16f
vexpf(v16f x)
{
	const float shift = 12582912.0f;              /* 1.5 * 2^23 */

	for (int l = 0; l < FL; l++) {
		x[l] = x[l] > -87.0f ? x[l] : -87.0f;
		x[l] = x[l] < 88.0f ? x[l] : 88.0f;
	}
	v16f t = x * 1.44269504f + shift;
	v16f k = t - shift;
	v16f r = x - k * 0.693359375f;
	r = r + k * 2.12194440e-4f;
	v16f q = r * (1.0f / 5040) + 1.0f / 720;
	q = q * r + 1.0f / 120;
	q = q * r + 1.0f / 24;
	q = q * r + 1.0f / 6;
	q = q * r + 0.5f;
	q = q * r + 1.0f;
	q = q * r + 1.0f;
	return (v16f)((v16u)q + ((v16u)t << 23));
}

/* One prepared cloud: coordinates centred (on the mean of both clouds),
 * transposed and padded to a multiple of FL points. */
struct side {
	int64_t n, np;
	double *c;            /* [d][np] centred coordinates */
	double *s;            /* [d][np] scaled: sqrt(2/eps) c (p = 2), c/eps */
	double *sq;           /* [np] |c|^2 */
	double *lw;           /* [np] log weights (-inf on padding) */
	double *w;            /* [n] weights, summing to 1 */
	double *pot;          /* [np] potential (cost units) */
	double *h;            /* [np] (pot - |c|^2 (p = 2)) / eps: stabiliser */
	double *hw;           /* [np] h + log weight: the summed side */
	double *sum;          /* [np] sums of a pass */
	float *sf, *hf, *hwf; /* s, h and hw in single precision */
	double big;           /* max |h| over the points (set by side_h) */
	double sqmax;         /* max |c|^2 */
};

struct prob {
	struct side A, B;     /* X and Y (B unused when symmetric) */
	int d, p, sym;
	int nt;               /* threads */
	int single;           /* this pass in single precision */
	int full;             /* every pass in double */
	double eps;
};

/* |a - b_j|^p for one point a (coordinates k lda apart) against a
 * vector of B (rows ldb apart), p = 1 or 2. */
static inline __attribute__((always_inline)) v8d
dist8(int d, int p, const double *a, int64_t lda, const double *b,
    int64_t ldb, int64_t j)
{
	v8d q = {0};

	for (int k = 0; k < d; k++) {
		v8d y;
		memcpy(&y, b + k * ldb + j, sizeof y);
		y -= a[k * lda];
		q += y * y;
	}
	if (p == 1)
		for (int l = 0; l < VL; l++)
			q[l] = sqrt(q[l]);
	return q;
}

/* The exponent of entry (i, j) in scaled units, 1 point of A against a
 * vector of B: ah + bh_j - C_ij / eps. */
static inline __attribute__((always_inline)) v8d
arg8(int d, int p, double ah, const double *as, int64_t lda, const v8d *bh,
    const double *bs, int64_t ldb, int64_t j)
{
	v8d acc = *bh + ah;

	if (p == 2) {
		for (int k = 0; k < d; k++) {
			v8d y;
			memcpy(&y, bs + k * ldb + j, sizeof y);
			acc += as[k * lda] * y;
		}
		return acc;
	}
	return acc - dist8(d, 1, as, lda, bs, ldb, j);
}

/* s[i] += sum over the tile of exp(ah_i + bh_j - C_ij / eps), rows
 * i0..i1 of A, vectors j0..j1 of B; with cost, of exp(...) C_ij (the
 * plan's entries over a_i times their costs, C_ij from the unscaled
 * centred coordinates). */
static inline __attribute__((always_inline)) void
tile_sum_body(int d, int p, int cost, const struct side *A, int64_t i0,
    int64_t i1, const struct side *B, int64_t j0, int64_t j1, double *s)
{
	for (int64_t i = i0; i < i1; i++) {
		v8d acc = {0};
		for (int64_t j = j0; j < j1; j += VL) {
			v8d bh, e;
			memcpy(&bh, B->hw + j, sizeof bh);
			e = vexp(arg8(d, p, A->h[i], A->s + i, A->np, &bh,
			    B->s, B->np, j));
			if (cost)
				e *= dist8(d, p, A->c + i, A->np, B->c, B->np,
				    j);
			acc += e;
		}
		double t = 0;
		for (int l = 0; l < VL; l++)
			t += acc[l];
		s[i - i0] += t;
	}
}

OT_CLONES static void
tile_sum(int d, int p, int cost, const struct side *A, int64_t i0,
    int64_t i1, const struct side *B, int64_t j0, int64_t j1, double *s)
{
	/* constant d and p let the compiler unroll the common cases */
	if (cost && p == 2 && d == 2)
		tile_sum_body(2, 2, 1, A, i0, i1, B, j0, j1, s);
	else if (cost)
		tile_sum_body(d, p, 1, A, i0, i1, B, j0, j1, s);
	else if (p == 2 && d == 2)
		tile_sum_body(2, 2, 0, A, i0, i1, B, j0, j1, s);
	else if (p == 2 && d == 1)
		tile_sum_body(1, 2, 0, A, i0, i1, B, j0, j1, s);
	else if (p == 2 && d == 3)
		tile_sum_body(3, 2, 0, A, i0, i1, B, j0, j1, s);
	else if (p == 2)
		tile_sum_body(d, 2, 0, A, i0, i1, B, j0, j1, s);
	else
		tile_sum_body(d, 1, 0, A, i0, i1, B, j0, j1, s);
}

/* The largest C_ij over rows i0..i1 of A and all of B. */
OT_CLONES static double
rows_max_cost(int d, int p, const struct side *A, int64_t i0, int64_t i1,
    const struct side *B)
{
	v8d mx = {0};

	for (int64_t i = i0; i < i1; i++)
		for (int64_t j = 0; j < B->np; j += VL) {
			v8d c = dist8(d, 2, A->c + i, A->np, B->c, B->np, j);
			for (int l = 0; l < VL; l++)
				mx[l] = c[l] > mx[l] && j + l < B->n ? c[l] :
				    mx[l];
		}
	double m = 0;
	for (int l = 0; l < VL; l++)
		m = mx[l] > m ? mx[l] : m;
	return p == 1 ? sqrt(m) : m;
}

/* The same for p = 2 in single precision, vectors of FL. */
static inline __attribute__((always_inline)) void
tile_sum_f_body(int d, const struct side *A, int64_t i0, int64_t i1,
    const struct side *B, int64_t j0, int64_t j1, double *s)
{
	for (int64_t i = i0; i < i1; i++) {
		v16f acc = {0};
		float ah = A->hf[i], as[8];
		for (int k = 0; k < d && k < 8; k++)
			as[k] = A->sf[k * A->np + i];
		for (int64_t j = j0; j < j1; j += FL) {
			v16f e;
			memcpy(&e, B->hwf + j, sizeof e);
			e += ah;
			for (int k = 0; k < d; k++) {
				v16f y;
				memcpy(&y, B->sf + k * B->np + j, sizeof y);
				e += (k < 8 ? as[k] : A->sf[k * A->np + i]) * y;
			}
			acc += vexpf(e);
		}
		double t = 0;
		for (int l = 0; l < FL; l++)
			t += acc[l];
		s[i - i0] += t;
	}
}

OT_CLONES static void
tile_sum_f(int d, const struct side *A, int64_t i0, int64_t i1,
    const struct side *B, int64_t j0, int64_t j1, double *s)
{
	if (d == 2)
		tile_sum_f_body(2, A, i0, i1, B, j0, j1, s);
	else if (d == 1)
		tile_sum_f_body(1, A, i0, i1, B, j0, j1, s);
	else if (d == 3)
		tile_sum_f_body(3, A, i0, i1, B, j0, j1, s);
	else
		tile_sum_f_body(d, A, i0, i1, B, j0, j1, s);
}

/* C_ij for one i and all j < B->np (unscaled, from centred coordinates). */
static void
cost_row(const struct prob *P, const struct side *A, int64_t i,
    const struct side *B, double *c)
{
	for (int64_t j = 0; j < B->np; j += VL) {
		v8d q = dist8(P->d, P->p, A->c + i, A->np, B->c, B->np, j);
		memcpy(c + j, &q, sizeof q);
	}
}

/* The slow, safe row: log sum_j exp(ah_i + bh_j - C_ij/eps) with the
 * maximum taken out, in libm's exp. */
static double
row_lse_safe(const struct prob *P, const struct side *A, int64_t i,
    const struct side *B, double *c)
{
	double mx = -INFINITY, s = 0;

	cost_row(P, A, i, B, c);
	for (int64_t j = 0; j < B->n; j++) {
		c[j] = A->h[i] + B->hw[j] - c[j] / P->eps;
		mx = c[j] > mx ? c[j] : mx;
	}
	if (mx == -INFINITY)
		return -INFINITY;
	for (int64_t j = 0; j < B->n; j++)
		s += exp(c[j] - mx);
	return mx + log(s);
}

/* h and hw of a side for the current potential and eps (and their
 * single-precision copies for a single-precision pass). */
static void
side_h(const struct prob *P, struct side *S)
{
	double big = 0;

	for (int64_t i = 0; i < S->np; i++) {
		double v = S->pot[i] / P->eps;
		if (P->p == 2)
			v -= S->sq[i] / P->eps;
		S->h[i] = i < S->n ? v : -INFINITY;
		S->hw[i] = S->h[i] + S->lw[i];
		if (i < S->n && fabs(v) > big)
			big = fabs(v);
	}
	S->big = big;
	if (!P->single)
		return;
	for (int64_t i = 0; i < S->np; i++) {
		S->hf[i] = (float)S->h[i];
		S->hwf[i] = (float)S->hw[i];
	}
}

/* One pass A <- B: A->sum[i] = log S_i for i < A->n. */
static void
pass(const struct prob *P, struct side *A, struct side *B)
{
	side_h(P, A);
	if (B != A)
		side_h(P, B);
	int64_t nb = (A->n + BI - 1) / BI;
	int err = 0;

	#pragma omp parallel num_threads(P->nt)
	{
		double *c = NULL;
		#pragma omp for schedule(dynamic, 4)
		for (int64_t b = 0; b < nb; b++) {
			int64_t i0 = b * BI, i1 = i0 + BI < A->n ? i0 + BI : A->n;
			double s[BI] = {0};
			for (int64_t j0 = 0; j0 < B->np; j0 += BJ) {
				int64_t j1 = j0 + BJ < B->np ? j0 + BJ : B->np;
				if (P->single)
					tile_sum_f(P->d, A, i0, i1, B, j0, j1, s);
				else
					tile_sum(P->d, P->p, 0, A, i0, i1, B, j0,
					    j1, s);
			}
			for (int64_t i = i0; i < i1; i++) {
				double v = s[i - i0];
				if (P->single ? v > 1e-30 && v < 1e30 :
				    v > 1e-200 && v < 1e200) {
					A->sum[i] = log(v);
					continue;
				}
				if (c == NULL && (c = malloc((size_t)B->np *
				    sizeof *c)) == NULL) {
					#pragma omp atomic write
					err = 1;
					A->sum[i] = 0;
					continue;
				}
				A->sum[i] = row_lse_safe(P, A, i, B, c);
			}
		}
		free(c);
	}
	if (err)
		dm_seterr("out of memory");
}

/* L1 marginal error of side A after a pass: sum_i w_i |S_i^q - 1|. */
static double
marginal_error(const struct side *A, double q)
{
	double e = 0;

	for (int64_t i = 0; i < A->n; i++)
		e += A->w[i] * fabs(exp(q * A->sum[i]) - 1);
	return e;
}

static void
side_free(struct side *S)
{
	free(S->c);
	free(S->sf);
	memset(S, 0, sizeof *S);
}

/* Allocate and fill a side from points (centred on mu) and weights. */
static int
side_init(struct side *S, const float *x, const double *w, int64_t n, int d,
    const double *mu)
{
	int64_t np = (n + FL - 1) / FL * FL;
	size_t per = (size_t)np * (2 * (size_t)d + 6) + (size_t)n;
	size_t bytes, fbytes;

	memset(S, 0, sizeof *S);
	if (dm_mul_size(per, sizeof(double), &bytes) == -1 ||
	    dm_mul_size((size_t)np * ((size_t)d + 2), sizeof(float),
	    &fbytes) == -1)
		return -1;
	if ((S->c = aligned_alloc(64, (bytes + 63) / 64 * 64)) == NULL ||
	    (S->sf = aligned_alloc(64, (fbytes + 63) / 64 * 64)) == NULL) {
		side_free(S);
		return dm_seterr("out of memory (%zu bytes)", bytes + fbytes);
	}
	S->hf = S->sf + (size_t)d * np;
	S->hwf = S->hf + np;
	S->n = n;
	S->np = np;
	S->s = S->c + (size_t)d * np;
	S->sq = S->s + (size_t)d * np;
	S->lw = S->sq + np;
	S->pot = S->lw + np;
	S->h = S->pot + np;
	S->hw = S->h + np;
	S->sum = S->hw + np;
	S->w = S->sum + np;
	double tot = 0;
	for (int64_t i = 0; i < n; i++)
		tot += w ? w[i] : 1;
	for (int64_t i = 0; i < np; i++) {
		double q = 0;
		for (int k = 0; k < d; k++) {
			double v = i < n ? x[(size_t)i * d + k] - mu[k] : 0;
			S->c[(size_t)k * np + i] = v;
			q += v * v;
		}
		S->sq[i] = q;
		if (q > S->sqmax)
			S->sqmax = q;
		S->pot[i] = 0;
		S->sum[i] = 0;
		if (i < n) {
			S->w[i] = (w ? w[i] : 1) / tot;
			S->lw[i] = log(S->w[i]);
		} else
			S->lw[i] = -INFINITY;
	}
	return 0;
}

/* Scaled coordinates for the current eps. */
static void
side_scale(const struct prob *P, struct side *S)
{
	double f = P->p == 2 ? sqrt(2 / P->eps) : 1 / P->eps;

	for (size_t k = 0; k < (size_t)P->d * S->np; k++) {
		S->s[k] = S->c[k] * f;
		S->sf[k] = (float)S->s[k];
	}
}

/* max_ij C_ij between two sides (the diameter used for eps_rel and the
 * first epsilon). */
static double
max_cost(const struct prob *P, const struct side *A, const struct side *B)
{
	double mx = 0;
	int64_t nb = (A->n + BI - 1) / BI;

	#pragma omp parallel for num_threads(P->nt) schedule(dynamic, 4) \
	    reduction(max:mx)
	for (int64_t b = 0; b < nb; b++) {
		int64_t i0 = b * BI, i1 = i0 + BI < A->n ? i0 + BI : A->n;
		double v = rows_max_cost(P->d, P->p, A, i0, i1, B);
		mx = v > mx ? v : mx;
	}
	return mx;
}

static int
check_points(const float *x, int64_t n, int d, const char *what)
{
	if (n < 1)
		return dm_seterr("%s: no points", what);
	for (size_t k = 0; k < (size_t)n * d; k++)
		if (!isfinite(x[k]))
			return dm_seterr("%s: point %zu has a non-finite "
			    "coordinate", what, k / (size_t)d);
	return 0;
}

static int
check_weights(const double *w, int64_t n, const char *what, double *mass)
{
	double s = 0;

	if (w == NULL) {
		*mass = 1;
		return 0;
	}
	for (int64_t i = 0; i < n; i++) {
		if (!isfinite(w[i]) || w[i] < 0)
			return dm_seterr("%s: weight %lld is %g (weights must "
			    "be finite and >= 0)", what, (long long)i, w[i]);
		s += w[i];
	}
	if (!(s > 0))
		return dm_seterr("%s: the weights sum to 0", what);
	*mass = s;
	return 0;
}

static int
check_opts(const struct dm_ot_opts *o, int d)
{
	if (o->p != 1 && o->p != 2)
		return dm_seterr("p must be 1 or 2 (not %d)", o->p);
	if (d < 1)
		return dm_seterr("points have no coordinates");
	int given = (o->eps != 0) + (o->eps_rel != 0) + (o->blur != 0);
	if (given > 1)
		return dm_seterr("give one of eps, eps_rel and blur");
	if (!(o->eps >= 0 && o->eps_rel >= 0 && o->blur >= 0) ||
	    !isfinite(o->eps) || !isfinite(o->eps_rel) || !isfinite(o->blur))
		return dm_seterr("epsilon must be a finite number > 0");
	if (!(o->scaling > 0 && o->scaling < 1))
		return dm_seterr("scaling must be in (0, 1) (not %g)",
		    o->scaling);
	if (!(o->tol > 0) || !isfinite(o->tol))
		return dm_seterr("tol must be > 0 (not %g)", o->tol);
	if (o->max_iter < 1)
		return dm_seterr("max_iter must be >= 1");
	return 0;
}

/* The target epsilon from the options and the diameter. */
static double
target_eps(const struct dm_ot_opts *o, double diam)
{
	if (o->eps > 0)
		return o->eps;
	if (o->eps_rel > 0)
		return o->eps_rel * (diam > 0 ? diam : 1);
	return pow(o->blur > 0 ? o->blur : 0.05, o->p);
}

static void
prob_free(struct prob *P)
{
	side_free(&P->A);
	side_free(&P->B);
}

static int
prob_init(struct prob *P, const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d, int p, int threads)
{
	double *mu = calloc((size_t)d, sizeof *mu);

	memset(P, 0, sizeof *P);
	if (mu == NULL)
		return dm_seterr("out of memory");
	P->d = d;
	P->p = p;
	P->nt = threads > 0 ? threads : omp_get_max_threads();
	if ((double)n * (y ? m : n) < 65536)
		P->nt = 1;    /* waking threads would cost more than the work */
	P->sym = y == NULL;
	for (int64_t i = 0; i < n; i++)
		for (int k = 0; k < d; k++)
			mu[k] += x[(size_t)i * d + k];
	for (int64_t j = 0; j < (P->sym ? 0 : m); j++)
		for (int k = 0; k < d; k++)
			mu[k] += y[(size_t)j * d + k];
	for (int k = 0; k < d; k++)
		mu[k] /= (double)(n + (P->sym ? 0 : m));
	int rc = side_init(&P->A, x, a, n, d, mu);
	if (rc == 0 && !P->sym)
		rc = side_init(&P->B, y, b, m, d, mu);
	free(mu);
	if (rc == -1)
		prob_free(P);
	return rc;
}

static void
set_eps(struct prob *P, double eps)
{
	P->eps = eps;
	side_scale(P, &P->A);
	if (!P->sym)
		side_scale(P, &P->B);
}

/* Row i of the plan divided by a_i: e_j = b_j exp((f_i + g_j - C_ij) /
 * eps) for j < B->np (0 on padding), and c_j = C_ij. */
static void
plan_row(const struct prob *P, const struct side *A, int64_t i,
    const struct side *B, const double *f, const double *g, double *c,
    double *e)
{
	cost_row(P, A, i, B, c);
	for (int64_t j = 0; j < B->np; j++)
		e[j] = j < B->n ? (f[i] + g[j] - c[j]) / P->eps + B->lw[j] :
		    -INFINITY;
	for (int64_t j = 0; j < B->np; j += VL) {
		v8d v;
		memcpy(&v, e + j, sizeof v);
		v = vexp(v);
		memcpy(e + j, &v, sizeof v);
	}
	for (int64_t j = B->n; j < B->np; j++)
		e[j] = 0;
}

/* <P, C> at the current potentials, summed in row order (so that the
 * thread count does not change it); rc: n doubles of scratch. */
static double
transport_cost(struct prob *P, struct side *A, struct side *B, double *rc)
{
	double tot = 0;
	int64_t nb = (A->n + BI - 1) / BI;

	P->single = 0;
	side_h(P, A);
	if (B != A)
		side_h(P, B);
	#pragma omp parallel for num_threads(P->nt) schedule(dynamic, 4)
	for (int64_t b = 0; b < nb; b++) {
		int64_t i0 = b * BI, i1 = i0 + BI < A->n ? i0 + BI : A->n;
		double s[BI] = {0};
		for (int64_t j0 = 0; j0 < B->np; j0 += BJ) {
			int64_t j1 = j0 + BJ < B->np ? j0 + BJ : B->np;
			tile_sum(P->d, P->p, 1, A, i0, i1, B, j0, j1, s);
		}
		for (int64_t i = i0; i < i1; i++)
			rc[i] = A->w[i] * s[i - i0];
	}
	for (int64_t i = 0; i < A->n; i++)
		tot += rc[i];
	return tot;
}

/* Over-relaxation (Thibault et al. 2021, "Overrelaxed Sinkhorn-Knopp
 * algorithm for regularized optimal transport"): pot <- pot - w eps log S
 * with w in [1, 2).  At the target epsilon the plain iteration runs until
 * its linear rate rho (error ratio per iteration) can be read, then w =
 * 2 / (1 + sqrt(1 - rho)), the optimum for a linear rate rho; if the
 * error is still above where it was after RELAX_TRIAL / (2 - w)
 * iterations, back to w = 1 and a fresh estimate.  (Judged after 5
 * iterations instead, w was dropped nearly every time on slowly
 * converging problems: 2-D moons against moons at blur 0.05 took 8539
 * iterations to a marginal error of 1e-5, against 1004 now.) */
struct relax {
	double w, e[3];       /* last errors, newest first */
	double at;            /* the error when w was set */
	int plain;            /* iterations since w was last set */
	int wait;             /* plain iterations before w may be raised */
};

static void
relax_update(struct relax *R, double err)
{
	R->e[2] = R->e[1];
	R->e[1] = R->e[0];
	R->e[0] = err;
	R->plain++;
	if (R->w > 1) {
		/* the error may rise at first, for a time of the order of
		 * 1 / (2 - w) iterations (the relaxed iteration's own time
		 * scale; at w = 1.9 it rises tenfold within a few), but not
		 * stay above where it was; if it does, plain iterations for
		 * longer each time */
		if (R->plain > RELAX_TRIAL / (2 - R->w) && err > R->at) {
			R->w = 1;
			R->plain = 0;
			R->wait = 2 * R->wait + 8;
		}
		return;
	}
	if (R->plain < R->wait || !(R->e[0] < R->e[1] && R->e[1] < R->e[2]))
		return;
	double rho = sqrt(R->e[0] / R->e[2]);
	if (rho > 0.1 && rho < 1) {
		R->w = fmin(OMEGA_MAX, 2 / (1 + sqrt(1 - rho)));
		R->at = err;
		R->plain = 0;
	}
}

/* Whether the next pass may run in single precision.  An exponent is
 * summed in single precision from terms of magnitude up to M, so an
 * entry is off by up to about M 2^-24 relative; the errors of a row's
 * entries mostly cancel, and the marginal error of iterations in single
 * precision levels off 30 to 50 times lower (2e-7 at M = 130: 2-D
 * Gaussians at eps_rel 0.01).  Single precision while the marginal
 * error is above SINGLE_MARGIN M 2^-24, a hundred times or more above
 * that floor. */
static int
want_single(const struct prob *P, const struct side *A, const struct side *B,
    double err)
{
	if (P->p != 2 || P->full)
		return 0;
	double M = A->big + B->big + (A->sqmax + B->sqmax) / P->eps + 40;
	return err > SINGLE_MARGIN * M * 0x1p-24;
}

/* Solve one problem; the symmetric one (P->sym, OT(X, X)) by the
 * averaged update f <- (f + T(f)) / 2 on a single potential. */
static int
solve(struct prob *P, const struct dm_ot_opts *o, double eps_target,
    double diam, struct dm_ot_result *r)
{
	struct side *A = &P->A, *B = P->sym ? &P->A : &P->B;
	double eps = diam > eps_target ? diam : eps_target, err = INFINITY;
	double row_err = 0, w = 1;
	struct relax R = {1, {0, 0, 0}, 0, 0, 4};
	int64_t it = 0;
	int stall = 0;        /* single-precision iterations without progress */
	int single_ok = 1;    /* single precision still allowed */
	double last = INFINITY;

	memset(r, 0, sizeof *r);
	for (;;) {
		if (eps != P->eps)
			set_eps(P, eps);
		int final = eps == eps_target;
		w = final ? R.w : 1;
		/* at the target epsilon, once a pass is in double the rest
		 * are; so are they when single precision stops reducing the
		 * error (its floor higher than estimated) */
		if (final && P->single)
			stall = err < 0.99 * last ? 0 : stall + 1;
		last = err;
		P->single = single_ok && stall < 4 &&
		    want_single(P, A, B, err);
		if (final && !P->single)
			single_ok = 0;
		if (P->sym) {
			pass(P, A, A);
			err = marginal_error(A, 1);
			it++;
			if (final && (err <= o->tol || it >= o->max_iter))
				break;
			for (int64_t i = 0; i < A->n; i++)
				A->pot[i] -= 0.5 * eps * A->sum[i];
		} else {
			/* rows: S_i at (f, g); after f -= w eps log S_i they
			 * sum to a_i S_i^(1 - w) */
			pass(P, A, B);
			row_err = marginal_error(A, 1 - w);
			for (int64_t i = 0; i < A->n; i++)
				A->pot[i] -= w * eps * A->sum[i];
			pass(P, B, A);
			err = row_err + marginal_error(B, 1);
			it++;
			if (final && (err <= o->tol || it >= o->max_iter))
				break;
			for (int64_t j = 0; j < B->n; j++)
				B->pot[j] -= w * eps * B->sum[j];
			if (final)
				relax_update(&R, err);
		}
		if (*dm_errstr() != '\0')
			return -1;
		if (!final && it >= o->max_iter)
			break;
		if (!final && err <= STAGE_TOL)
			eps = eps * o->scaling > eps_target ? eps * o->scaling :
			    eps_target;
	}
	if (*dm_errstr() != '\0')
		return -1;
	/* The entropic value as the dual objective at the final potentials,
	 * <a, f> + <b, g> - eps (sum_ij P_ij - 1): concave with its maximum
	 * OT_eps where the marginals are met, so its error is of the second
	 * order in the marginal error (the primal value <P, C> + eps KL(P |
	 * a b^T) = <P 1, f> + <P^T 1, g> - eps (sum P - 1) differs from it
	 * by <P 1 - a, f> + <P^T 1 - b, g>, of the first order).  The
	 * columns of P sum to b_j S_j (B->sum); symmetric: the one
	 * potential counts twice. */
	double fa = 0, gb = 0, mass = 0;
	for (int64_t j = 0; j < B->n; j++) {
		gb += B->w[j] * B->pot[j];
		mass += B->w[j] * exp(B->sum[j]);
	}
	if (P->sym)
		fa = gb;
	else
		for (int64_t i = 0; i < A->n; i++)
			fa += A->w[i] * A->pot[i];
	double cost = transport_cost(P, A, B, A->sum);
	if (*dm_errstr() != '\0')
		return -1;
	r->cost = cost > 0 ? cost : 0;
	r->w = pow(r->cost, 1.0 / P->p);
	r->entropic = fa + gb - P->eps * (mass - 1);
	r->eps = P->eps;
	r->marginal_error = err;
	r->iterations = it;
	r->converged = err <= o->tol && eps == eps_target;
	if (!isfinite(r->cost) || !isfinite(r->entropic) || !isfinite(err))
		return dm_seterr("the solution is not finite (epsilon %g)",
		    P->eps);
	return 0;
}

static void
copy_pot(const struct side *S, double *out)
{
	if (out != NULL)
		memcpy(out, S->pot, (size_t)S->n * sizeof *out);
}

/* Checks shared by the entry points; *diam is left for the caller. */
static int
check_all(const float *x, const double *a, int64_t n, const float *y,
    const double *b, int64_t m, int d, const struct dm_ot_opts *o)
{
	double ma, mb;

	if (check_opts(o, d) == -1 || check_points(x, n, d, "X") == -1 ||
	    check_points(y, m, d, "Y") == -1 ||
	    check_weights(a, n, "X", &ma) == -1 ||
	    check_weights(b, m, "Y", &mb) == -1)
		return -1;
	if (fabs(ma - mb) > 1e-6 * (ma > mb ? ma : mb))
		return dm_seterr("the weights of X and Y have different total "
		    "mass (%.9g and %.9g)", ma, mb);
	return 0;
}

int
dm_ot_sinkhorn(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d,
    const struct dm_ot_opts *o, struct dm_ot_result *r,
    double *f, double *g)
{
	struct prob P;

	dm_clearerr();
	if (check_all(x, a, n, y, b, m, d, o) == -1)
		return -1;
	if (prob_init(&P, x, a, n, y, b, m, d, o->p, o->threads) == -1)
		return -1;
	P.full = o->full_precision;
	double diam = max_cost(&P, &P.A, &P.B);
	int rc = solve(&P, o, target_eps(o, diam), diam, r);
	if (rc == 0) {
		copy_pot(&P.A, f);
		copy_pot(&P.B, g);
	}
	prob_free(&P);
	return rc == -1 ? -1 : r->converged ? 0 : 1;
}

int
dm_ot_divergence_full(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d,
    const struct dm_ot_opts *o, double *div, struct dm_ot_result r[3],
    double *f, double *g)
{
	struct dm_ot_result rr[3];
	struct prob P;

	if (r == NULL)
		r = rr;
	dm_clearerr();
	if (check_all(x, a, n, y, b, m, d, o) == -1)
		return -1;
	if (prob_init(&P, x, a, n, y, b, m, d, o->p, o->threads) == -1)
		return -1;
	P.full = o->full_precision;
	double diam = max_cost(&P, &P.A, &P.B), eps = target_eps(o, diam);
	int rc = solve(&P, o, eps, diam, &r[0]);
	if (rc == 0) {
		copy_pot(&P.A, f);
		copy_pot(&P.B, g);
	}
	prob_free(&P);
	for (int k = 1; k <= 2 && rc == 0; k++) {
		const float *z = k == 1 ? x : y;
		const double *w = k == 1 ? a : b;
		int64_t nz = k == 1 ? n : m;
		if (prob_init(&P, z, w, nz, NULL, NULL, 0, d, o->p,
		    o->threads) == -1)
			return -1;
		P.full = o->full_precision;
		rc = solve(&P, o, eps, max_cost(&P, &P.A, &P.A), &r[k]);
		prob_free(&P);
	}
	if (rc == -1)
		return -1;
	double s = r[0].entropic - 0.5 * (r[1].entropic + r[2].entropic);
	/* S_eps >= 0; what rounding and the tolerance leave below 0 is 0 */
	*div = s > 0 ? s : 0;
	return r[0].converged && r[1].converged && r[2].converged ? 0 : 1;
}

int
dm_ot_divergence(const float *x, int64_t n, const float *y, int64_t m,
    int d, const struct dm_ot_opts *o, double *div)
{
	return dm_ot_divergence_full(x, NULL, n, y, NULL, m, d, o, div, NULL,
	    NULL, NULL);
}

int
dm_ot_plan(const float *x, const double *a, int64_t n,
    const float *y, const double *b, int64_t m, int d, int p, double eps,
    const double *f, const double *g, double *plan, float *map,
    int64_t *pair, uint64_t seed)
{
	struct dm_ot_opts o;
	struct prob P;
	int err = 0;

	dm_clearerr();
	dm_ot_opts_defaults(&o);
	o.p = p;
	o.eps = eps;
	if (!(eps > 0) || !isfinite(eps))
		return dm_seterr("epsilon must be a finite number > 0");
	if (check_all(x, a, n, y, b, m, d, &o) == -1)
		return -1;
	for (int64_t i = 0; i < n + m; i++)
		if (!isfinite(i < n ? f[i] : g[i - n]))
			return dm_seterr("the potentials are not finite");
	if (prob_init(&P, x, a, n, y, b, m, d, p, 0) == -1)
		return -1;
	P.eps = eps;
	#pragma omp parallel num_threads(P.nt)
	{
		double *c = malloc(2 * (size_t)P.B.np * sizeof *c);
		if (c == NULL) {
			#pragma omp atomic write
			err = 1;
		}
		#pragma omp for schedule(dynamic, 16)
		for (int64_t i = 0; i < n; i++) {
			if (c == NULL)
				continue;
			double *e = c + P.B.np, s = 0;
			plan_row(&P, &P.A, i, &P.B, f, g, c, e);
			for (int64_t j = 0; j < m; j++)
				s += e[j];
			if (plan != NULL)
				for (int64_t j = 0; j < m; j++)
					plan[(size_t)i * m + j] = P.A.w[i] *
					    e[j];
			if (map != NULL)
				for (int k = 0; k < d; k++) {
					double t = 0;
					for (int64_t j = 0; j < m; j++)
						t += e[j] * y[(size_t)j * d + k];
					map[(size_t)i * d + k] = (float)t;
				}
			if (pair == NULL)
				continue;
			int64_t best = 0;
			if (seed == 0) {
				for (int64_t j = 1; j < m; j++)
					if (e[j] > e[best])
						best = j;
			} else {
				double u;
				dm_rng_uniform_f64(&u, 1, seed,
				    dm_noise_stream(DM_NOISE_OTHER, (uint64_t)i),
				    0);
				double t = u * s, acc = 0;
				best = m - 1;
				for (int64_t j = 0; j < m; j++)
					if ((acc += e[j]) > t && e[j] > 0) {
						best = j;
						break;
					}
			}
			pair[i] = best;
		}
		free(c);
	}
	prob_free(&P);
	if (err)
		return dm_seterr("out of memory");
	return 0;
}
