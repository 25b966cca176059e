/* test_stats.c — dm_tensor_stats against closed forms. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "dm.h"
#include "test.h"

/* 0, 1, ..., n-1: mean (n-1)/2, population variance (n^2-1)/12. */
DM_TEST(stats_arange_closed_form)
{
	const size_t n = 1000003; /* many chunks and a ragged last one */
	int64_t shape[1] = {(int64_t)n};
	struct dm_tensor *t = dm_tensor_new(1, shape);
	struct dm_stats s;
	double nd = (double)n;

	for (size_t i = 0; i < n; i++)
		((float *)t->data)[i] = (float)i;
	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_EQ_INT(s.n, n);
	CHECK_EQ_INT(s.nan, 0);
	CHECK_EQ_INT(s.inf, 0);
	CHECK(s.min == 0.0);
	CHECK(s.max == nd - 1);
	CHECK_NEAR(s.mean, (nd - 1) / 2, 1e-9 * nd);
	CHECK_NEAR(s.m2 / nd, (nd * nd - 1) / 12, 1e-10 * nd * nd);
	CHECK_NEAR(dm_stats_std(&s), sqrt((nd * nd - 1) / 12), 1e-9 * nd);
	dm_tensor_free(t);
}

/* A large offset must not cost precision: 1e9 + i, i < n, as F64. */
DM_TEST(stats_offset_is_stable)
{
	const size_t n = 100000;
	int64_t shape[2] = {1000, 100};
	struct dm_tensor *t = dm_tensor_new_dtype(DM_DTYPE_F64, 2, shape);
	struct dm_stats s;
	double nd = (double)n;

	for (size_t i = 0; i < n; i++)
		((double *)t->data)[i] = 1e9 + (double)i;
	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_NEAR(s.mean, 1e9 + (nd - 1) / 2, 1e-6);
	CHECK_NEAR(s.m2 / nd, (nd * nd - 1) / 12, 1e-9 * (nd * nd - 1) / 12);
	CHECK(s.min == 1e9);
	CHECK(s.max == 1e9 + nd - 1);
	dm_tensor_free(t);
}

DM_TEST(stats_counts_nan_and_inf)
{
	int64_t shape[1] = {7};
	struct dm_tensor *t = dm_tensor_new(1, shape);
	float *x = t->data;
	struct dm_stats s;

	x[0] = 1; x[1] = NAN; x[2] = INFINITY; x[3] = -INFINITY;
	x[4] = 3; x[5] = -NAN; x[6] = 2;
	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_EQ_INT(s.n, 3);
	CHECK_EQ_INT(s.nan, 2);
	CHECK_EQ_INT(s.inf, 2);
	CHECK(s.min == 1 && s.max == 3);
	CHECK_NEAR(s.mean, 2, 1e-15);
	CHECK_NEAR(dm_stats_std(&s), sqrt(2.0 / 3), 1e-15);
	/* all NaN: no finite value */
	for (int i = 0; i < 7; i++)
		x[i] = NAN;
	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_EQ_INT(s.n, 0);
	CHECK_EQ_INT(s.nan, 7);
	CHECK(isnan(dm_stats_std(&s)));
	dm_tensor_free(t);
}

DM_TEST(stats_empty_and_scalar)
{
	int64_t zero[2] = {0, 5};
	struct dm_tensor *t = dm_tensor_new(2, zero);
	struct dm_stats s;

	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_EQ_INT(s.n + s.nan + s.inf, 0);
	CHECK(isnan(dm_stats_std(&s)));
	dm_tensor_free(t);
	t = dm_tensor_new_dtype(DM_DTYPE_I64, 0, NULL);
	((int64_t *)t->data)[0] = -42;
	CHECK_OK(dm_tensor_stats(t, &s));
	CHECK_EQ_INT(s.n, 1);
	CHECK(s.min == -42 && s.max == -42 && s.mean == -42 && s.m2 == 0);
	dm_tensor_free(t);
}

/* Every integer and half dtype: values -3..3 repeated; mean 0, var 4. */
DM_TEST(stats_every_dtype)
{
	static const enum dm_dtype dts[] = {
		DM_DTYPE_F16, DM_DTYPE_BF16, DM_DTYPE_I64, DM_DTYPE_I32,
		DM_DTYPE_I16, DM_DTYPE_I8,
	};
	int64_t shape[1] = {7 * 3001};
	struct dm_stats s;

	for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
		struct dm_tensor *t = dm_tensor_new(1, shape);
		for (int64_t i = 0; i < shape[0]; i++)
			((float *)t->data)[i] = (float)(i % 7 - 3);
		CHECK_OK(dm_tensor_convert(t, dts[k]));
		CHECK_OK(dm_tensor_stats(t, &s));
		CHECK_MSG(s.n == (size_t)shape[0] && s.min == -3 && s.max == 3,
		    "%s: n %zu min %g max %g", dm_dtype_name(dts[k]), s.n,
		    s.min, s.max);
		CHECK_NEAR(s.mean, 0, 1e-12);
		CHECK_NEAR(dm_stats_std(&s), 2, 1e-12);
		dm_tensor_free(t);
	}
	/* U8 0..6 and BOOL (nonzero is 1) */
	struct dm_tensor *u = dm_tensor_new_dtype(DM_DTYPE_U8, 1, shape);
	for (int64_t i = 0; i < shape[0]; i++)
		((uint8_t *)u->data)[i] = (uint8_t)(i % 7);
	CHECK_OK(dm_tensor_stats(u, &s));
	CHECK(s.min == 0 && s.max == 6);
	CHECK_NEAR(s.mean, 3, 1e-12);
	u->dtype = DM_DTYPE_BOOL;
	CHECK_OK(dm_tensor_stats(u, &s));
	CHECK(s.min == 0 && s.max == 1);
	CHECK_NEAR(s.mean, 6.0 / 7, 1e-12);
	CHECK_NEAR(s.m2 / (double)s.n, 6.0 / 49, 1e-12);
	dm_tensor_free(u);
}

/* The same bits whatever the thread count. */
DM_TEST(stats_thread_independent)
{
	int64_t shape[1] = {300007};
	struct dm_tensor *t = dm_tensor_new(1, shape);
	struct dm_stats a, b;
	uint32_t h = 12345;
	int saved = omp_get_max_threads();

	for (int64_t i = 0; i < shape[0]; i++) {
		h = h * 1664525u + 1013904223u;
		((float *)t->data)[i] = (float)h / 4294967296.0f - 0.3f;
	}
	omp_set_num_threads(1);
	CHECK_OK(dm_tensor_stats(t, &a));
	omp_set_num_threads(3);
	CHECK_OK(dm_tensor_stats(t, &b));
	omp_set_num_threads(saved);
	CHECK(memcmp(&a.mean, &b.mean, sizeof a.mean) == 0);
	CHECK(memcmp(&a.m2, &b.m2, sizeof a.m2) == 0);
	/* uniform(-0.3, 0.7): mean 0.2, variance 1/12 */
	CHECK_NEAR(a.mean, 0.2, 0.01);
	CHECK_NEAR(a.m2 / (double)a.n, 1.0 / 12, 0.002);
	dm_tensor_free(t);
}

/* Merging two halves equals the statistics of the whole. */
DM_TEST(stats_merge_matches_whole)
{
	struct dm_stats a, b;

	dm_stats_init(&a);
	dm_stats_init(&b);
	/* a = {2, 4}: mean 3, M2 2;  b = {4, 5, 9}: mean 6, M2 14 */
	a.n = 2; a.mean = 3; a.m2 = 2; a.min = 2; a.max = 4;
	b.n = 3; b.mean = 6; b.m2 = 14; b.min = 4; b.max = 9;
	b.nan = 1;
	dm_stats_merge(&a, &b);
	CHECK_EQ_INT(a.n, 5);
	CHECK_EQ_INT(a.nan, 1);
	CHECK_NEAR(a.mean, 4.8, 1e-15);
	/* sum (x - 4.8)^2 = 7.84 + 0.64 + 0.64 + 0.04 + 17.64 = 26.8 */
	CHECK_NEAR(a.m2, 26.8, 1e-12);
	CHECK(a.min == 2 && a.max == 9);
}

/* Non-finite values inside large F32 and F64 tensors (many chunks). */
DM_TEST(stats_nonfinite_in_large_tensors)
{
	int64_t shape[1] = {50001};
	struct dm_stats s;

	for (int k = 0; k < 2; k++) {
		enum dm_dtype dt = k ? DM_DTYPE_F64 : DM_DTYPE_F32;
		struct dm_tensor *t = dm_tensor_new(1, shape);
		float *x = t->data;
		for (int64_t i = 0; i < shape[0]; i++)
			x[i] = (float)(i % 5);      /* 0..4: mean 2, var 2 */
		x[20000] = NAN;                     /* was 0 */
		x[40000] = -INFINITY;               /* was 0 */
		x[50000] = INFINITY;                /* was 0 */
		CHECK_OK(dm_tensor_convert(t, dt));
		CHECK_OK(dm_tensor_stats(t, &s));
		CHECK_EQ_INT(s.n, 49998);
		CHECK_EQ_INT(s.nan, 1);
		CHECK_EQ_INT(s.inf, 2);
		CHECK(s.min == 0 && s.max == 4);
		/* 10001 zeros, less 3, and 10000 each of 1..4 */
		double n = 49998, sum = 100000, sq = 300000;
		CHECK_NEAR(s.mean, sum / n, 1e-12);
		CHECK_NEAR(s.m2 / n, sq / n - (sum / n) * (sum / n), 1e-10);
		dm_tensor_free(t);
	}
}
