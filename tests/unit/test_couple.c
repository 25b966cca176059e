/* test_couple.c — the minibatch OT coupling of flow-matching training
 * (dm_train_couple and the trainer's batches) against brute force. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_ot.h"
#include "test.h"

static double
sqdist(const float *a, const float *b, int d)
{
	double s = 0;

	for (int k = 0; k < d; k++)
		s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
	return s;
}

/* The least of sum_k ||x0_rows[k] - x1_rows[s(k)]||^2 over permutations s
 * of rows[k..m) (recursion; m <= 8). */
static double
brute(const float *x0, const float *x1, int d, const int *rows, int *s,
    int k, int m, double acc)
{
	double best = INFINITY;

	if (k == m)
		return acc;
	for (int q = k; q < m; q++) {
		int t = s[k];
		s[k] = s[q];
		s[q] = t;
		double c = brute(x0, x1, d, rows, s, k + 1, m, acc +
		    sqdist(x0 + rows[k] * d, x1 + s[k] * d, d));
		if (c < best)
			best = c;
		s[q] = s[k];
		s[k] = t;
	}
	return best;
}

/* Each row of c is a row of x1 taken once, and from a row of the same
 * class (y NULL: any row).  Returns 1 if so. */
static int
is_repairing(const float *c, const float *x1, const int64_t *y, int B, int d)
{
	int used[16] = {0};

	for (int j = 0; j < B; j++) {
		int k;
		for (k = 0; k < B; k++)
			if (!used[k] && memcmp(c + j * d, x1 + k * d,
			    (size_t)d * sizeof *c) == 0 &&
			    (y == NULL || y[k] == y[j]))
				break;
		if (k == B)
			return 0;
		used[k] = 1;
	}
	return 1;
}

/* B = 7 rows, no classes: the re-paired batch reaches the least cost over
 * all 5040 pairings. */
DM_TEST(couple_is_optimal_pairing)
{
	enum { B = 7, D = 2 };
	float x0[B * D], x1[B * D], c[B * D];
	int rows[B], s[B];

	for (int trial = 0; trial < 20; trial++) {
		double got = 0, best;
		dm_rng_normal(x0, B * D, 21, (uint64_t)trial, 0);
		dm_rng_normal(x1, B * D, 22, (uint64_t)trial, 0);
		memcpy(c, x1, sizeof c);
		CHECK_OK(dm_train_couple(c, x0, NULL, B, D, 0));
		CHECK_MSG(is_repairing(c, x1, NULL, B, D),
		    "trial %d: not a permutation of the source rows", trial);
		for (int j = 0; j < B; j++) {
			got += sqdist(x0 + j * D, c + j * D, D);
			rows[j] = s[j] = j;
		}
		best = brute(x0, x1, D, rows, s, 0, B, 0);
		CHECK_MSG(fabs(got - best) <= 1e-9 * best,
		    "trial %d: cost %.17g, optimum %.17g", trial, got, best);
	}
}

/* With labels, rows pair within their class, optimally in each. */
DM_TEST(couple_within_classes)
{
	enum { B = 10, D = 3 };
	static const int64_t y[B] = {2, 0, 1, 0, 2, 0, 1, 1, 0, 2};
	float x0[B * D], x1[B * D], c[B * D];
	int rows[B], s[B];

	dm_rng_normal(x0, B * D, 23, 0, 0);
	dm_rng_normal(x1, B * D, 23, 1, 0);
	memcpy(c, x1, sizeof c);
	CHECK_OK(dm_train_couple(c, x0, y, B, D, 0));
	CHECK(is_repairing(c, x1, y, B, D));
	for (int64_t cls = 0; cls < 3; cls++) {
		int m = 0;
		double got = 0, best;
		for (int j = 0; j < B; j++)
			if (y[j] == cls) {
				got += sqdist(x0 + j * D, c + j * D, D);
				rows[m] = j;
				s[m++] = j;
			}
		best = brute(x0, x1, D, rows, s, 0, m, 0);
		CHECK_MSG(fabs(got - best) <= 1e-9 * best,
		    "class %lld: cost %.17g, optimum %.17g", (long long)cls, got,
		    best);
	}
	CHECK_FAILS(dm_train_couple(c, x0, NULL, 0, D, 0), "bad batch");
}

/* The trainer's batch: after a step with the OT coupling, the source rows
 * of the batch are paired with its data rows optimally; the same step
 * with the independent coupling is not (for this seed). */
DM_TEST(couple_trainer_batch)
{
	enum { N = 64, B = 7 };
	int64_t shape[1] = {2}, rows[N];
	float x[N * 2];
	struct dm_model_config cfg;
	struct dm_train_opts o;
	double cost[2] = {0, 0}, best = 0;

	dm_rng_normal(x, N * 2, 24, 0, 0);
	for (int i = 0; i < N; i++) {
		rows[i] = i;
		x[2 * i] = 3 * x[2 * i] + 4;	/* apart from the source */
	}
	dm_model_config_defaults(&cfg, DM_ARCH_MLP, 1, shape);
	cfg.width = 16;
	cfg.pred = DM_PRED_FLOW;
	snprintf(cfg.schedule, sizeof cfg.schedule, "rf");
	for (int ot = 0; ot < 2; ot++) {
		struct dm_model *m = dm_model_new(&cfg, 0);
		struct dm_train_data td = {.n = N, .d = 2, .x0 = x, .rows = rows,
		    .nrows = N};
		struct dm_trainer *tr;
		dm_train_opts_defaults(&o);
		o.batch = B;
		o.coupling = ot ? DM_COUPLING_OT : DM_COUPLING_INDEPENDENT;
		tr = dm_trainer_new(m, &o, &td);
		CHECK(m != NULL && tr != NULL);
		if (tr == NULL)
			return;
		CHECK_OK(dm_trainer_step(tr));
		for (int j = 0; j < B; j++)
			cost[ot] += sqdist(tr->x0 + 2 * j, tr->eps + 2 * j, 2);
		if (ot) {
			int r[B], s[B];
			for (int j = 0; j < B; j++)
				r[j] = s[j] = j;
			best = brute(tr->x0, tr->eps, 2, r, s, 0, B, 0);
		}
		dm_trainer_free(tr);
		dm_model_free(m);
	}
	CHECK_MSG(fabs(cost[1] - best) <= 1e-9 * best,
	    "OT batch cost %.17g, optimum %.17g", cost[1], best);
	CHECK_MSG(cost[0] > best * (1 + 1e-6),
	    "independent batch cost %.17g is already the optimum", cost[0]);
	/* and refused where it makes no sense */
	struct dm_model *m = dm_model_new(&cfg, 0);
	float x1[N * 2];
	struct dm_train_data tp = {.n = N, .d = 2, .x0 = x, .x1 = x1,
	    .rows = rows, .nrows = N};
	dm_train_opts_defaults(&o);
	o.coupling = DM_COUPLING_OT;
	dm_clearerr();
	CHECK(dm_trainer_new(m, &o, &tp) == NULL);
	CHECK(strstr(dm_errstr(), "paired already") != NULL);
	dm_model_free(m);
}

/* A batch above DM_COUPLING_EXACT_MAX rows: pairs drawn from the entropic
 * plan.  Every row gets one of the source rows, the pairing's cost is
 * within 10% of the exact optimum (eps is 1% of the largest cost) and
 * closes most of the gap from the independent one, and the draws follow
 * the seed. */
DM_TEST(couple_large_batch_sinkhorn)
{
	enum { B = DM_COUPLING_EXACT_MAX + 76, D = 2 };
	float *x0 = malloc(B * D * sizeof *x0), *x1 = malloc(B * D * sizeof *x1);
	float *c = malloc(B * D * sizeof *c), *c2 = malloc(B * D * sizeof *c2);
	int64_t *perm = malloc(B * sizeof *perm);
	double ind = 0, got = 0, exact;
	int bad = 0;

	dm_rng_normal(x0, B * D, 25, 0, 0);
	dm_rng_normal(x1, B * D, 25, 1, 0);
	for (int k = 0; k < B * D; k++)
		x0[k] = 0.5f * x0[k] + (k % 2 ? 2 : -1);
	memcpy(c, x1, B * D * sizeof *c);
	CHECK_FAILS(dm_train_couple(c, x0, NULL, B, D, 0), "needs a seed");
	CHECK_OK(dm_train_couple(c, x0, NULL, B, D, 77));
	CHECK_OK(dm_ot_assign(x0, x1, B, D, 2, perm, &exact));
	for (int j = 0; j < B; j++) {
		int k;
		for (k = 0; k < B; k++)
			if (memcmp(c + j * D, x1 + k * D, D * sizeof *c) == 0)
				break;
		bad += k == B;
		ind += sqdist(x0 + j * D, x1 + j * D, D) / B;
		got += sqdist(x0 + j * D, c + j * D, D) / B;
	}
	CHECK_EQ_INT(bad, 0);
	fprintf(stderr, "couple B %d: cost independent %.4f, sinkhorn pairs "
	    "%.4f, exact %.4f\n", B, ind, got, exact);
	CHECK_MSG(got < exact * 1.1 && got < (ind + exact) / 2,
	    "cost %g: exact %g, independent %g", got, exact, ind);
	memcpy(c2, x1, B * D * sizeof *c2);
	CHECK_OK(dm_train_couple(c2, x0, NULL, B, D, 77));
	CHECK(memcmp(c, c2, B * D * sizeof *c) == 0);
	free(x0);
	free(x1);
	free(c);
	free(c2);
	free(perm);
}
