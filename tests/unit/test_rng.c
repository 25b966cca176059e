/* test_rng.c — Philox4x32-10 known answers, the (seed, stream, index)
 * mapping, split invariance, and statistics with fixed seeds. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

DM_TEST(rng_philox_known_answers)
{
	/* Random123 tests/kat_vectors, the "philox4x32 10" lines */
	static const struct {
		uint32_t ctr[4], key[2], out[4];
	} kat[] = {
		{{0, 0, 0, 0}, {0, 0},
		    {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
		    {0xffffffff, 0xffffffff},
		    {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
		    {0xa4093822, 0x299f31d0},
		    {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	};
	uint32_t out[4];

	for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
		dm_philox4x32_10(kat[i].ctr, kat[i].key, out);
		for (int j = 0; j < 4; j++)
			CHECK_MSG(out[j] == kat[i].out[j],
			    "vector %zu word %d: %08x != %08x", i, j,
			    (unsigned)out[j], (unsigned)kat[i].out[j]);
	}
}

DM_TEST(rng_u32_mapping)
{
	static const uint32_t zero[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c,
	    0x9b00dbd8};
	/* counter {0x243f6a88, 0x05a308d3, 0x13198a2e, 0x03707344} under key
	 * {0xa4093822, 0x299f31d0}, computed by a separate implementation */
	static const uint32_t other[4] = {0x2fe11a02, 0x572a2f27, 0x2f88763b,
	    0x78d5e325};
	uint64_t seed = UINT64_C(0x299f31d0a4093822);
	uint64_t stream = UINT64_C(0x0370734413198a2e);
	uint64_t idx = UINT64_C(0x05a308d3243f6a88) * 4;

	for (int j = 0; j < 4; j++) {
		CHECK(dm_rng_u32(0, 0, j) == zero[j]);
		CHECK(dm_rng_u32(seed, stream, idx + j) == other[j]);
	}
	CHECK(dm_rng_u32(1, 0, 0) != zero[0]);
	CHECK(dm_rng_u32(0, 1, 0) != zero[0]);
	CHECK(dm_rng_u32(0, 0, 4) != zero[0]);
}

DM_TEST(rng_value_mapping)
{
	float f[4];
	double d[2], z[2];
	float zf[2];

	/* from the zero block 6627e8d5 e169c58d bc57ac4c 9b00dbd8 */
	dm_rng_uniform(f, 4, 0, 0, 0);
	CHECK(f[0] == 0.39904648065567017f);
	CHECK(f[1] == 0.88052016496658325f);
	CHECK(f[2] == 0.73571282625198364f);
	CHECK(f[3] == 0.60548180341720581f);
	dm_rng_uniform_f64(d, 2, 0, 0, 0);
	CHECK(d[0] == 0.39904647084896461);
	CHECK(d[1] == 0.73571278448344246);
	/* Box–Muller, computed by a separate implementation */
	dm_rng_normal_f64(z, 2, 0, 0, 0);
	CHECK_NEAR(z[0], -0.12151797595308224, 1e-14);
	CHECK_NEAR(z[1], -1.3500326598576551, 1e-14);
	dm_rng_normal_f64(z, 2, 42, 7, 4);
	CHECK_NEAR(z[0], -1.0569981046932508, 1e-14);
	CHECK_NEAR(z[1], 1.6599074888162972, 1e-14);
	dm_rng_normal(zf, 2, 42, 7, 4);
	CHECK(zf[0] == (float)z[0]);
	CHECK(zf[1] == (float)z[1]);
	/* the extreme raw draws map strictly inside (0, 1) */
	CHECK(((float)(0xffffffffu >> 9) + 0.5f) * 0x1p-23f < 1.0f);
	CHECK(((float)(0u >> 9) + 0.5f) * 0x1p-23f > 0.0f);
	CHECK(((double)(UINT64_MAX >> 12) + 0.5) * 0x1p-52 < 1.0);
}

DM_TEST(rng_split_invariance)
{
	enum { N = 41 };
	static const size_t piece[] = {1, 2, 0, 3, 5, 1, 7, 4, 2, 9, 1, 6};
	static const uint64_t starts[] = {0, 1, 5, 6, 7,
	    UINT64_C(0xfffffffffffffff0)};
	float fu[N], fn[N], gu[N], gn[N];
	double du[N], dn[N], eu[N], en[N];

	for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
		uint64_t i0 = starts[s];
		size_t at = 0;

		dm_rng_uniform(fu, N, 3, 11, i0);
		dm_rng_normal(fn, N, 3, 11, i0);
		dm_rng_uniform_f64(du, N, 3, 11, i0);
		dm_rng_normal_f64(dn, N, 3, 11, i0);
		for (size_t p = 0; at < N; p++) {
			size_t len = piece[p % (sizeof piece / sizeof piece[0])];

			if (len > N - at)
				len = N - at;
			dm_rng_uniform(gu + at, len, 3, 11, i0 + at);
			dm_rng_normal(gn + at, len, 3, 11, i0 + at);
			dm_rng_uniform_f64(eu + at, len, 3, 11, i0 + at);
			dm_rng_normal_f64(en + at, len, 3, 11, i0 + at);
			at += len;
		}
		for (size_t k = 0; k < N; k++) {
			CHECK_MSG(fu[k] == gu[k] && fn[k] == gn[k] &&
			    du[k] == eu[k] && dn[k] == en[k],
			    "start %llu element %zu differs when split",
			    (unsigned long long)i0, k);
			CHECK(fn[k] == (float)dn[k]);
			float one;
			dm_rng_uniform(&one, 1, 3, 11, i0 + k);
			CHECK(one == fu[k]);
			uint32_t w = dm_rng_u32(3, 11, i0 + k);
			CHECK(fu[k] == ((float)(w >> 9) + 0.5f) * 0x1p-23f);
		}
	}
}

DM_TEST(rng_sequential_matches_fill)
{
	struct dm_rng r;
	double d[3], z[2];

	dm_rng_init(&r, 9, 4);
	for (uint64_t i = 0; i < 10; i++)
		CHECK(dm_rng_next_u32(&r) == dm_rng_u32(9, 4, i));
	CHECK_EQ_INT(r.index, 10);
	/* index 10 is even: two raw draws = uniform double 5 */
	dm_rng_uniform_f64(d, 3, 9, 4, 5);
	CHECK(dm_rng_next_uniform(&r) == d[0]);
	CHECK_EQ_INT(r.index, 12);
	/* index 12 is a block start: four draws = normal double 6 */
	dm_rng_normal_f64(z, 2, 9, 4, 6);
	CHECK(dm_rng_next_normal(&r) == z[0]);
	CHECK_EQ_INT(r.index, 16);
	/* an unaligned start spans two blocks and still works */
	dm_rng_init(&r, 9, 4);
	r.index = 3;
	double u = dm_rng_next_uniform(&r);
	uint64_t x = (uint64_t)dm_rng_u32(9, 4, 3) << 32 | dm_rng_u32(9, 4, 4);
	CHECK(u == ((double)(x >> 12) + 0.5) * 0x1p-52);
}

DM_TEST(rng_uniform_statistics)
{
	enum { N = 1000000, BINS = 16 };
	float *u = malloc(N * sizeof *u);
	double *d = malloc(N * sizeof *d);
	double s = 0, s2 = 0, chi = 0;
	long bins[BINS] = {0};
	int inside = 1;

	CHECK(u != NULL && d != NULL);
	if (u == NULL || d == NULL)
		goto out;
	dm_rng_uniform(u, N, 1234, 0, 0);
	for (int i = 0; i < N; i++) {
		if (!(u[i] > 0.0f && u[i] < 1.0f))
			inside = 0;
		s += u[i];
		s2 += (double)u[i] * u[i];
		bins[(int)(u[i] * BINS)]++;
	}
	CHECK(inside);
	double mean = s / N, var = s2 / N - mean * mean;
	/* sd of the mean sqrt(1/12/N) = 2.9e-4; of the variance 7.5e-5 */
	CHECK_NEAR(mean, 0.5, 5 * 2.9e-4);
	CHECK_NEAR(var, 1.0 / 12, 5 * 7.5e-5);
	for (int b = 0; b < BINS; b++) {
		double e = (double)N / BINS;
		chi += (bins[b] - e) * (bins[b] - e) / e;
	}
	/* 15 degrees of freedom: P(chi2 > 50) ~ 1e-5 */
	CHECK_MSG(chi < 50, "uniform chi-square %g over 16 bins", chi);

	dm_rng_uniform_f64(d, N, 1234, 1, 0);
	s = s2 = 0;
	inside = 1;
	for (int i = 0; i < N; i++) {
		if (!(d[i] > 0.0 && d[i] < 1.0))
			inside = 0;
		s += d[i];
		s2 += d[i] * d[i];
	}
	CHECK(inside);
	mean = s / N;
	var = s2 / N - mean * mean;
	CHECK_NEAR(mean, 0.5, 5 * 2.9e-4);
	CHECK_NEAR(var, 1.0 / 12, 5 * 7.5e-5);
out:
	free(u);
	free(d);
}

DM_TEST(rng_normal_statistics)
{
	enum { N = 1000000 };
	float *z = malloc(N * sizeof *z);
	double s = 0, s2 = 0, s4 = 0;
	long below = 0;

	CHECK(z != NULL);
	if (z == NULL)
		return;
	dm_rng_normal(z, N, 77, 3, 1);
	for (int i = 0; i < N; i++) {
		double x = z[i];

		s += x;
		s2 += x * x;
		s4 += x * x * x * x;
		below += x < -1.0;
	}
	/* sd: mean 1e-3, E z^2 sqrt(2/N) = 1.41e-3, E z^4 sqrt(96/N) = 9.8e-3 */
	CHECK_NEAR(s / N, 0.0, 5 * 1e-3);
	CHECK_NEAR(s2 / N, 1.0, 5 * 1.41e-3);
	CHECK_NEAR(s4 / N, 3.0, 5 * 9.8e-3);
	/* P(Z < -1) = 0.158655; sd sqrt(p(1-p)/N) = 3.65e-4 */
	CHECK_NEAR((double)below / N, 0.158655254, 5 * 3.65e-4);
	free(z);
}

static double
correlation(const double *a, const double *b, int n)
{
	double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;

	for (int i = 0; i < n; i++) {
		sa += a[i];
		sb += b[i];
		saa += a[i] * a[i];
		sbb += b[i] * b[i];
		sab += a[i] * b[i];
	}
	double ca = saa - sa * sa / n, cb = sbb - sb * sb / n;
	return (sab - sa * sb / n) / sqrt(ca * cb);
}

DM_TEST(rng_streams_uncorrelated)
{
	enum { N = 100000 };
	double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
	double c;

	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	/* sd of the correlation of independent draws: 1/sqrt(N) = 3.2e-3 */
	dm_rng_normal_f64(a, N, 5, 0, 0);
	dm_rng_normal_f64(b, N, 5, 1, 0);
	c = correlation(a, b, N);
	CHECK_MSG(fabs(c) < 0.02, "streams 0, 1: correlation %g", c);
	dm_rng_uniform_f64(a, N, 5, 0, 0);
	dm_rng_uniform_f64(b, N, 5, 1, 0);
	c = correlation(a, b, N);
	CHECK_MSG(fabs(c) < 0.02, "uniform streams 0, 1: correlation %g", c);
	dm_rng_uniform_f64(b, N, 6, 0, 0);
	c = correlation(a, b, N);
	CHECK_MSG(fabs(c) < 0.02, "seeds 5, 6: correlation %g", c);
	/* neighbours inside one stream (lag 1) */
	dm_rng_normal_f64(a, N, 5, 0, 0);
	c = correlation(a, a + 1, N - 1);
	CHECK_MSG(fabs(c) < 0.02, "lag 1: correlation %g", c);
	/* the cos and sin halves of Box–Muller pairs */
	for (int i = 0; i < N / 2; i++) {
		b[i] = a[2 * i];
		b[N / 2 + i] = a[2 * i + 1];
	}
	c = correlation(b, b + N / 2, N / 2);
	CHECK_MSG(fabs(c) < 0.03, "Box-Muller pairs: correlation %g", c);
out:
	free(a);
	free(b);
}

static double
chi_square(const long *count, int k, long n)
{
	double e = (double)n / k, chi = 0;

	for (int i = 0; i < k; i++)
		chi += (count[i] - e) * (count[i] - e) / e;
	return chi;
}

DM_TEST(rng_next_below_unbiased)
{
	/* 99.999% points of chi-square with 2 and 6 degrees of freedom */
	static const struct { uint64_t n; double bound; } cases[] = {
		{3, 23.0}, {7, 33.1},
	};
	struct dm_rng r;
	long count[7];

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		long draws = 70000;
		int n = (int)cases[c].n, ok = 1;

		memset(count, 0, sizeof count);
		dm_rng_init(&r, 2024, c);
		for (long i = 0; i < draws; i++) {
			uint64_t v = dm_rng_next_below(&r, cases[c].n);

			if (v >= cases[c].n)
				ok = 0;
			else
				count[v]++;
		}
		CHECK(ok);
		double chi = chi_square(count, n, draws);
		CHECK_MSG(chi < cases[c].bound, "n=%d: chi-square %g", n, chi);
	}

	/* n = 2/3 of the word range: x mod n would give [0, n/2) with
	 * probability 2/3; the unbiased answer is 1/2 (sd 1.6e-3 here) */
	static const uint64_t big[] = {UINT64_C(0xaaaaaaab),
	    UINT64_C(0xaaaaaaaaaaaaaaab)};
	for (int c = 0; c < 2; c++) {
		long low = 0, draws = 100000;
		int ok = 1;

		dm_rng_init(&r, 99, c);
		for (long i = 0; i < draws; i++) {
			uint64_t v = dm_rng_next_below(&r, big[c]);

			ok &= v < big[c];
			low += v < big[c] / 2;
		}
		CHECK(ok);
		CHECK_NEAR((double)low / draws, 0.5, 0.01);
	}

	dm_rng_init(&r, 1, 1);
	CHECK_EQ_INT(dm_rng_next_below(&r, 1), 0);
	CHECK_EQ_INT(dm_rng_next_below(&r, 0), 0);
	CHECK(dm_rng_next_below(&r, UINT64_MAX) < UINT64_MAX);
	CHECK(dm_rng_next_below(&r, UINT64_C(1) << 32) < UINT64_C(1) << 32);
}

DM_TEST(rng_shuffle_permutation_and_uniform)
{
	enum { N = 100, K = 10, T = 50000 };
	int64_t idx[N];
	int seen[N];
	long first[K] = {0}, perms[6] = {0};
	struct dm_rng r;

	dm_rng_init(&r, 8, 0);
	for (int i = 0; i < N; i++)
		idx[i] = i;
	dm_rng_shuffle(&r, idx, N);
	memset(seen, 0, sizeof seen);
	int moved = 0, ok = 1;
	for (int i = 0; i < N; i++) {
		if (idx[i] < 0 || idx[i] >= N || seen[idx[i]]++)
			ok = 0;
		moved += idx[i] != i;
	}
	CHECK(ok);
	CHECK(moved > N / 2);
	dm_rng_shuffle(&r, idx, 0);
	dm_rng_shuffle(&r, idx, 1);

	/* first element of a shuffled 0..9: uniform (9 df, 99.999% = 37.9) */
	for (int t = 0; t < T; t++) {
		for (int i = 0; i < K; i++)
			idx[i] = i;
		dm_rng_shuffle(&r, idx, K);
		first[idx[0]]++;
	}
	double chi = chi_square(first, K, T);
	CHECK_MSG(chi < 37.9, "first element chi-square %g", chi);

	/* all 6 orders of 3 items equally likely (5 df, 99.999% = 30.9) */
	for (int t = 0; t < 60000; t++) {
		idx[0] = 0;
		idx[1] = 1;
		idx[2] = 2;
		dm_rng_shuffle(&r, idx, 3);
		perms[idx[0] * 2 + (idx[1] > idx[2])]++;
	}
	chi = chi_square(perms, 6, 60000);
	CHECK_MSG(chi < 30.9, "orders of 3: chi-square %g", chi);
}
