/* test_ot.c — Sinkhorn against independent answers: a brute-force search
 * over permutations (exact OT for n <= 7), the sorted-sample closed form
 * of 1-D W_p, couplings forced by the weights; plan marginals, the
 * divergence's properties, stability at small epsilon, pairings, bad
 * input, thread-count independence. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_ot.h"
#include "ot_ref.h"
#include "test.h"

static float *
points(int64_t n, int d, uint64_t seed, float shift)
{
	float *x = malloc((size_t)n * d * sizeof *x);

	dm_rng_normal(x, (size_t)n * d, seed, 0, 0);
	for (int64_t i = 0; i < n * d; i += d)
		x[i] += shift;
	return x;
}

DM_TEST(ot_sinkhorn_approaches_exact_small)
{
	for (int p = 1; p <= 2; p++)
		for (int n = 2; n <= 7; n++) {
			float *x = points(n, 2, 10 + n, 0);
			float *y = points(n, 2, 20 + n, 0.5f);
			struct dm_ot_opts o;
			struct dm_ot_result r;
			dm_ot_opts_defaults(&o);
			o.p = p;
			o.eps_rel = 1e-3;
			o.tol = 1e-5;
			o.max_iter = 100000;
			double ex = ot_brute_force(x, y, n, 2, p), cmax = 0;
			for (int i = 0; i < n * n; i++)
				cmax = fmax(cmax, ot_cost(x, y, 2, p, i / n,
				    i % n));
			CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 2,
			    &o, &r, NULL, NULL), 0);
			/* an entropic plan costs at least the optimum, and at
			 * most eps log n more (OT_eps <= OT + eps KL(perm |
			 * a b^T) = OT + eps log n, and <P, C> <= OT_eps), up
			 * to what the marginal error moves: tol max C */
			double slack = o.tol * cmax;
			CHECK_MSG(r.cost >= ex - slack && r.cost <= ex +
			    r.eps * log(n) + slack, "n %d p %d: cost %.9g, "
			    "exact %.9g, eps %g", n, p, r.cost, ex, r.eps);
			CHECK(r.entropic >= ex - slack);
			CHECK(r.entropic <= ex + r.eps * log(n) + slack);
			CHECK_NEAR(r.w, pow(r.cost, 1.0 / p), 1e-12);
			CHECK(r.converged && r.marginal_error <= o.tol);
			free(x);
			free(y);
		}
}

static int
cmpf(const void *a, const void *b)
{
	float u = *(const float *)a, v = *(const float *)b;
	return (u > v) - (u < v);
}

DM_TEST(ot_sinkhorn_1d_closed_form)
{
	int n = 40;
	float *x = points(n, 1, 3, 0), *y = points(n, 1, 4, 1.5f);

	for (int p = 1; p <= 2; p++) {
		struct dm_ot_opts o;
		struct dm_ot_result r;
		dm_ot_opts_defaults(&o);
		o.p = p;
		o.eps_rel = 1e-3;
		o.tol = 1e-8;
		CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 1, &o, &r,
		    NULL, NULL), 0);
		float *xs = malloc(n * sizeof *xs), *ys = malloc(n * sizeof *ys);
		memcpy(xs, x, n * sizeof *xs);
		memcpy(ys, y, n * sizeof *ys);
		qsort(xs, n, sizeof *xs, cmpf);
		qsort(ys, n, sizeof *ys, cmpf);
		double wp = 0;
		for (int i = 0; i < n; i++)
			wp += pow(fabs((double)xs[i] - ys[i]), p) / n;
		CHECK(r.cost >= wp - 1e-9 && r.cost <= wp + r.eps * log(n));
		CHECK_NEAR(r.w, pow(wp, 1.0 / p), 1e-2 * pow(wp, 1.0 / p));
		free(xs);
		free(ys);
	}
	free(x);
	free(y);
}

DM_TEST(ot_sinkhorn_weights_known_answers)
{
	/* one point: the only coupling is a b^T, at every epsilon */
	float x0[1] = {0}, y0[2] = {1, 3};
	double a0[1] = {2}, b0[2] = {0.5, 1.5};   /* normalised to 1 */
	struct dm_ot_opts o;
	struct dm_ot_result r;

	dm_ot_opts_defaults(&o);
	o.eps = 0.7;
	CHECK_EQ_INT(dm_ot_sinkhorn(x0, a0, 1, y0, b0, 2, 1, &o, &r, NULL,
	    NULL), 0);
	CHECK_NEAR(r.cost, 0.25 * 1 + 0.75 * 9, 1e-9);
	CHECK_NEAR(r.entropic, r.cost, 1e-9);
	/* 1-D, 0.3 at 0 and 0.7 at 1 onto half and half: 0.2 moves by 1 */
	float x1[2] = {0, 1}, y1[2] = {0, 1};
	double a1[2] = {0.3, 0.7}, b1[2] = {0.5, 0.5};
	o.eps = 1e-3;
	o.tol = 1e-10;
	for (o.p = 1; o.p <= 2; o.p++) {
		CHECK_EQ_INT(dm_ot_sinkhorn(x1, a1, 2, y1, b1, 2, 1, &o, &r,
		    NULL, NULL), 0);
		CHECK_NEAR(r.cost, 0.2, 1e-6);
	}
}

DM_TEST(ot_plan_marginals_and_map)
{
	int64_t n = 37, m = 53;
	float *x = points(n, 3, 5, 0), *y = points(m, 3, 6, 1);
	double *a = malloc(n * sizeof *a), *b = malloc(m * sizeof *b);
	double *f = malloc(n * sizeof *f), *g = malloc(m * sizeof *g);
	double *P = malloc(n * m * sizeof *P), sa = 0, sb = 0;
	float *T = malloc(n * 3 * sizeof *T);
	struct dm_ot_opts o;
	struct dm_ot_result r;

	for (int64_t i = 0; i < n; i++)
		sa += a[i] = 1 + (i % 5);
	for (int64_t j = 0; j < m; j++)
		sb += b[j] = 1 + (j % 3);
	for (int64_t i = 0; i < n; i++)
		a[i] /= sa;
	for (int64_t j = 0; j < m; j++)
		b[j] /= sb;
	dm_ot_opts_defaults(&o);
	o.eps_rel = 0.01;
	o.tol = 1e-8;
	CHECK_EQ_INT(dm_ot_sinkhorn(x, a, n, y, b, m, 3, &o, &r, f, g), 0);
	CHECK_OK(dm_ot_plan(x, a, n, y, b, m, 3, 2, r.eps, f, g, P, T, NULL,
	    0));
	double err = 0, cost = 0, tot = 0;
	for (int64_t i = 0; i < n; i++) {
		double s = 0;
		for (int64_t j = 0; j < m; j++) {
			s += P[i * m + j];
			cost += P[i * m + j] * ot_cost(x, y, 3, 2, i, j);
		}
		err += fabs(s - a[i]);
		tot += s;
	}
	for (int64_t j = 0; j < m; j++) {
		double s = 0;
		for (int64_t i = 0; i < n; i++)
			s += P[i * m + j];
		err += fabs(s - b[j]);
	}
	CHECK(err <= 2 * o.tol);
	CHECK_NEAR(tot, 1, 1e-8);
	CHECK_NEAR(cost, r.cost, 1e-7 * r.cost);
	/* the barycentric map, and the entropic value from the plan */
	double kl = 0;
	for (int64_t i = 0; i < n; i++) {
		for (int k = 0; k < 3; k++) {
			double t = 0;
			for (int64_t j = 0; j < m; j++)
				t += P[i * m + j] * y[j * 3 + k];
			CHECK_NEAR(T[i * 3 + k], t / a[i], 1e-5);
		}
		for (int64_t j = 0; j < m; j++) {
			double q = P[i * m + j];
			if (q > 0)
				kl += q * log(q / (a[i] * b[j])) - q +
				    a[i] * b[j];
		}
	}
	CHECK_NEAR(r.entropic, cost + r.eps * kl, 1e-7 * fabs(r.entropic));
	free(x), free(y), free(a), free(b), free(f), free(g), free(P), free(T);
}

/* Passes in single precision (a loose solve runs in them throughout):
 * the plan rebuilt in double from the potentials meets the marginals to
 * the reported error and has the reported cost; a tight solve ends in
 * double and agrees with one that never leaves double. */
DM_TEST(ot_single_precision_passes)
{
	int64_t n = 400, m = 300;
	float *x = points(n, 2, 31, 0), *y = points(m, 2, 32, 1);
	double *f = malloc(n * sizeof *f), *g = malloc(m * sizeof *g);
	double *P = malloc(n * m * sizeof *P);
	struct dm_ot_opts o;
	struct dm_ot_result r, rf;

	dm_ot_opts_defaults(&o);
	o.eps_rel = 0.01;
	o.tol = 1e-3;
	CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, m, 2, &o, &r, f, g),
	    0);
	CHECK_OK(dm_ot_plan(x, NULL, n, y, NULL, m, 2, 2, r.eps, f, g, P,
	    NULL, NULL, 0));
	double err = 0, cost = 0;
	for (int64_t i = 0; i < n; i++) {
		double s = 0;
		for (int64_t j = 0; j < m; j++) {
			s += P[i * m + j];
			cost += P[i * m + j] * ot_cost(x, y, 2, 2, i, j);
		}
		err += fabs(s - 1.0 / n);
	}
	for (int64_t j = 0; j < m; j++) {
		double s = 0;
		for (int64_t i = 0; i < n; i++)
			s += P[i * m + j];
		err += fabs(s - 1.0 / m);
	}
	CHECK_NEAR(err, r.marginal_error, 1e-5);
	CHECK(err <= o.tol + 1e-5);
	CHECK_NEAR(cost, r.cost, 1e-9 * r.cost);
	o.tol = 1e-9;
	CHECK_OK(dm_ot_sinkhorn(x, NULL, n, y, NULL, m, 2, &o, &r, NULL,
	    NULL));
	o.full_precision = 1;
	CHECK_OK(dm_ot_sinkhorn(x, NULL, n, y, NULL, m, 2, &o, &rf, NULL,
	    NULL));
	CHECK(r.converged && rf.converged);
	CHECK_NEAR(r.cost, rf.cost, 1e-8 * rf.cost);
	CHECK_NEAR(r.entropic, rf.entropic, 1e-8 * fabs(rf.entropic));
	free(x), free(y), free(f), free(g), free(P);
}

DM_TEST(ot_pairing_argmax_and_sample)
{
	int64_t n = 50;
	float *x = points(n, 2, 8, 0), *y = malloc(n * 2 * sizeof *y);
	double *f = malloc(n * sizeof *f), *g = malloc(n * sizeof *g);
	int64_t *pa = malloc(n * sizeof *pa);
	struct dm_ot_opts o;
	struct dm_ot_result r;

	/* Y = X reversed and moved a little: the pairing undoes it */
	for (int64_t i = 0; i < n; i++) {
		y[2 * (n - 1 - i)] = x[2 * i] + 0.01f;
		y[2 * (n - 1 - i) + 1] = x[2 * i + 1];
	}
	dm_ot_opts_defaults(&o);
	o.eps_rel = 1e-3;
	o.tol = 1e-4;
	CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 2, &o, &r, f, g),
	    0);
	CHECK_OK(dm_ot_plan(x, NULL, n, y, NULL, n, 2, 2, r.eps, f, g, NULL,
	    NULL, pa, 0));
	for (int64_t i = 0; i < n; i++)
		CHECK_EQ_INT(pa[i], n - 1 - i);
	/* sampling: reproducible for a seed, and distributed as the rows
	 * of the plan: 4000 points at 0 onto 1 and 3 weighted 1/4 and 3/4
	 * (every coupling is a b^T) */
	int64_t N = 4000, *pc = malloc(N * sizeof *pc), *pd = malloc(N *
	    sizeof *pd);
	float *z = calloc(N, sizeof *z), w[2] = {1, 3};
	double b[2] = {0.25, 0.75}, *fz = malloc(N * sizeof *fz), gz[2];
	o.eps_rel = 0.1;
	CHECK_EQ_INT(dm_ot_sinkhorn(z, NULL, N, w, b, 2, 1, &o, &r, fz, gz),
	    0);
	CHECK_OK(dm_ot_plan(z, NULL, N, w, b, 2, 1, 2, r.eps, fz, gz, NULL,
	    NULL, pc, 9));
	CHECK_OK(dm_ot_plan(z, NULL, N, w, b, 2, 1, 2, r.eps, fz, gz, NULL,
	    NULL, pd, 9));
	CHECK(memcmp(pc, pd, N * sizeof *pc) == 0);
	int64_t ones = 0;
	for (int64_t i = 0; i < N; i++)
		ones += pc[i] == 1;
	CHECK_NEAR((double)ones / N, 0.75, 4 * sqrt(0.75 * 0.25 / N));
	free(z), free(fz), free(pd);
	free(x), free(y), free(f), free(g), free(pa), free(pc);
}

DM_TEST(ot_divergence_properties)
{
	int64_t n = 300, m = 200;
	float *x = points(n, 2, 11, 0), *y = points(m, 2, 12, 0.3f);
	struct dm_ot_opts o;
	double sxy, syx, sxx;

	dm_ot_opts_defaults(&o);
	o.eps_rel = 0.01;
	o.tol = 1e-9;
	CHECK_EQ_INT(dm_ot_divergence(x, n, y, m, 2, &o, &sxy), 0);
	CHECK_EQ_INT(dm_ot_divergence(y, m, x, n, 2, &o, &syx), 0);
	CHECK_EQ_INT(dm_ot_divergence(x, n, x, n, 2, &o, &sxx), 0);
	CHECK(sxy > 0.01);
	CHECK_NEAR(sxy, syx, 1e-7 * sxy);
	CHECK_NEAR(sxx, 0, 1e-9);
	/* far apart, S approaches the squared distance of the means' shift */
	float *z = points(n, 2, 11, 10);
	double sfar;
	CHECK_EQ_INT(dm_ot_divergence(x, n, z, n, 2, &o, &sfar), 0);
	CHECK_NEAR(sfar, 100, 1);
	free(x), free(y), free(z);
}

DM_TEST(ot_stable_at_small_epsilon)
{
	int64_t n = 2000;
	float *x = points(n, 2, 13, 0), *y = points(n, 2, 14, 1);
	struct dm_ot_opts o;
	struct dm_ot_result r;
	double mean = 0;

	for (int64_t i = 0; i < n; i += 7)
		for (int64_t j = 0; j < n; j += 7)
			mean += ot_cost(x, y, 2, 2, i, j);
	mean /= (double)((n + 6) / 7) * ((n + 6) / 7);
	dm_ot_opts_defaults(&o);
	o.eps = 1e-3 * mean;
	o.tol = 1e-2;
	CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 2, &o, &r, NULL,
	    NULL), 0);
	CHECK(isfinite(r.cost) && isfinite(r.entropic) && r.converged);
	CHECK_NEAR(r.eps, 1e-3 * mean, 1e-12);
	/* a problem that stops at max_iter says so */
	o.max_iter = 3;
	CHECK_EQ_INT(dm_ot_sinkhorn(x, NULL, n, y, NULL, n, 2, &o, &r, NULL,
	    NULL), 1);
	CHECK(!r.converged && r.iterations == 3 && isfinite(r.cost));
	free(x), free(y);
}

DM_TEST(ot_threads_do_not_change_results)
{
	int64_t n = 700, m = 600;
	float *x = points(n, 5, 15, 0), *y = points(m, 5, 16, 1);
	struct dm_ot_opts o;
	struct dm_ot_result r1, r2;

	dm_ot_opts_defaults(&o);
	o.eps_rel = 0.01;
	o.threads = 1;
	CHECK_OK(dm_ot_sinkhorn(x, NULL, n, y, NULL, m, 5, &o, &r1, NULL,
	    NULL));
	o.threads = 2;
	CHECK_OK(dm_ot_sinkhorn(x, NULL, n, y, NULL, m, 5, &o, &r2, NULL,
	    NULL));
	CHECK(r1.cost == r2.cost && r1.entropic == r2.entropic &&
	    r1.iterations == r2.iterations);
	free(x), free(y);
}

DM_TEST(ot_bad_input)
{
	float x[4] = {0, 1, 2, 3}, y[4] = {1, 2, 3, 4}, bad[2] = {0, NAN};
	double a[2] = {0.5, 0.5}, b[2] = {0.5, 0.6}, neg[2] = {1.5, -0.5};
	struct dm_ot_opts o;
	struct dm_ot_result r;

	dm_ot_opts_defaults(&o);
	CHECK_FAILS(dm_ot_sinkhorn(x, a, 2, y, b, 2, 2, &o, &r, NULL, NULL),
	    "different total mass");
	CHECK_FAILS(dm_ot_sinkhorn(x, neg, 2, y, a, 2, 2, &o, &r, NULL, NULL),
	    "weight 1 is -0.5");
	CHECK_FAILS(dm_ot_sinkhorn(bad, NULL, 2, y, NULL, 2, 1, &o, &r, NULL,
	    NULL), "non-finite");
	CHECK_FAILS(dm_ot_sinkhorn(x, NULL, 0, y, NULL, 2, 2, &o, &r, NULL,
	    NULL), "no points");
	o.eps = -1;
	CHECK_FAILS(dm_ot_sinkhorn(x, NULL, 2, y, NULL, 2, 2, &o, &r, NULL,
	    NULL), "epsilon");
	o.eps = 0.1;
	o.blur = 0.1;
	CHECK_FAILS(dm_ot_sinkhorn(x, NULL, 2, y, NULL, 2, 2, &o, &r, NULL,
	    NULL), "one of");
	dm_ot_opts_defaults(&o);
	o.p = 3;
	CHECK_FAILS(dm_ot_sinkhorn(x, NULL, 2, y, NULL, 2, 2, &o, &r, NULL,
	    NULL), "p must be 1 or 2");
}
