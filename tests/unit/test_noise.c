/* test_noise.c — the forward process: the one-shot formula against closed
 * forms, the step-by-step chain against it in distribution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

/* DDPM's linear schedule: abar_i = prod_{k <= i} (1 - beta_k),
 * beta_k = 1e-4 + (k - 1)/999 (0.02 - 1e-4) */
static double
linear_abar(int i)
{
	double p = 1;

	for (int k = 1; k <= i; k++)
		p *= 1 - (1e-4 + (k - 1) / 999.0 * (0.02 - 1e-4));
	return p;
}

/* cosine: abar(t) = f(t)/f(0), f(t) = cos^2((t + s)/(1 + s) pi/2) (no
 * clipping of beta is reached for the t used here) */
static double
cosine_abar(double t)
{
	double c = cos((t + 0.008) / 1.008 * M_PI / 2);
	double c0 = cos(0.008 / 1.008 * M_PI / 2);

	return c * c / (c0 * c0);
}

DM_TEST(noise_forward_closed_form)
{
	struct dm_schedule s;
	float x0[6] = {1, -2, 0.5, 3, 0, -1}, eps[6], xt[6], t[2] = {0.25f, 0.7f};

	CHECK_OK(dm_schedule_from_string(&s, "linear"));
	dm_noise_draw_eps(eps, 2, 3, 5, 0);
	for (int i = 0; i < 2; i++) {
		float e[3];
		dm_rng_normal(e, 3, 5, dm_noise_stream(DM_NOISE_EPS, i), 0);
		CHECK(memcmp(e, eps + 3 * i, sizeof e) == 0);
	}
	dm_noise_forward(&s, t, 1, x0, eps, xt, 2, 3);
	for (int i = 0; i < 2; i++) {
		double ab = linear_abar(i == 0 ? 250 : 700);
		for (int j = 0; j < 3; j++) {
			double want = sqrt(ab) * x0[3 * i + j] + sqrt(1 - ab) *
			    eps[3 * i + j];
			CHECK_NEAR(xt[3 * i + j], want, 1e-5);
		}
	}
	/* one t for all */
	dm_noise_forward(&s, t + 1, 0, x0, eps, xt, 2, 3);
	CHECK_NEAR(xt[0], sqrt(linear_abar(700)) * x0[0] +
	    sqrt(1 - linear_abar(700)) * eps[0], 1e-5);
	dm_schedule_free(&s);
}

DM_TEST(noise_draws_do_not_depend_on_n)
{
	float a[2000], b[20], t1[1000], t2[10];

	dm_noise_draw_eps(a, 1000, 2, 9, 0);
	dm_noise_draw_eps(b, 10, 2, 9, 0);
	CHECK(memcmp(a, b, sizeof b) == 0);
	dm_noise_draw_eps(b, 10, 2, 9, 500);
	CHECK(memcmp(a + 1000, b, sizeof b) == 0);
	dm_noise_draw_t(t1, 1000, 9, 0);
	dm_noise_draw_t(t2, 10, 9, 0);
	CHECK(memcmp(t1, t2, sizeof t2) == 0);
	double m = 0;
	for (int i = 0; i < 1000; i++) {
		CHECK(t1[i] > 0 && t1[i] < 1);
		m += t1[i];
	}
	CHECK_NEAR(m / 1000, 0.5, 5 * sqrt(1 / 12.0 / 1000));
}

DM_TEST(noise_chain_grid)
{
	struct dm_schedule s;
	int step = -1;

	CHECK_OK(dm_schedule_from_string(&s, "linear:T=50"));
	CHECK_EQ_INT(dm_noise_chain_T(&s), 50);
	CHECK_OK(dm_noise_chain_step(&s, 0.3, &step));
	CHECK_EQ_INT(step, 15);
	CHECK_OK(dm_noise_chain_step(&s, (float)0.3, &step));
	CHECK_EQ_INT(step, 15);
	CHECK_OK(dm_noise_chain_step(&s, 1, &step));
	CHECK_EQ_INT(step, 50);
	CHECK_FAILS(dm_noise_chain_step(&s, 0.31, &step), "not on the chain");
	CHECK_FAILS(dm_noise_chain_step(&s, 1.5, &step), "outside");
	/* step 0 of a schedule with sigma(0) = 0 is x0 itself */
	float x0[3] = {1, 2, 3}, xt[3];
	int zero = 0;
	CHECK_OK(dm_noise_chain(&s, &zero, 0, x0, xt, 1, 3, 1, 0));
	CHECK(memcmp(x0, xt, sizeof xt) == 0);
	dm_schedule_free(&s);
}

/* The chain from a fixed x0 to step j has mean alpha x0 and variance
 * sigma^2 per element: both within 5 standard errors over n samples. */
static void
chain_vs_closed_form(const char *spec, double t, double alpha, double sigma)
{
	struct dm_schedule s;
	const int64_t n = 20000;
	const size_t d = 2;
	const float x0v[2] = {1.5f, -0.75f};
	float *x0 = malloc(n * d * sizeof *x0), *xt = malloc(n * d * sizeof *xt);
	int step;

	CHECK_OK(dm_schedule_from_string(&s, spec));
	CHECK_OK(dm_noise_chain_step(&s, t, &step));
	for (int64_t i = 0; i < n; i++)
		memcpy(x0 + i * d, x0v, sizeof x0v);
	CHECK_OK(dm_noise_chain(&s, &step, 0, x0, xt, n, d, 3, 0));
	for (size_t j = 0; j < d; j++) {
		double m = 0, v = 0;
		for (int64_t i = 0; i < n; i++)
			m += xt[i * d + j];
		m /= n;
		for (int64_t i = 0; i < n; i++)
			v += (xt[i * d + j] - m) * (xt[i * d + j] - m);
		v /= n - 1;
		double want_m = alpha * x0v[j], want_v = sigma * sigma;
		CHECK_MSG(fabs(m - want_m) <= 5 * sigma / sqrt(n) + 1e-6,
		    "%s t=%g: chain mean %g, want %g", spec, t, m, want_m);
		CHECK_MSG(fabs(v - want_v) <= 5 * want_v * sqrt(2.0 / (n - 1)) +
		    1e-9, "%s t=%g: chain variance %g, want %g", spec, t, v,
		    want_v);
	}
	free(x0);
	free(xt);
	dm_schedule_free(&s);
}

DM_TEST(noise_chain_agrees_with_one_shot)
{
	static const double ts[] = {0.05, 0.3, 0.6, 1};
	for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
		double ab = linear_abar((int)lround(ts[k] * 1000));
		chain_vs_closed_form("linear", ts[k], sqrt(ab), sqrt(1 - ab));
		if (ts[k] < 1) {
			ab = cosine_abar(ts[k]);
			chain_vs_closed_form("cosine", ts[k], sqrt(ab),
			    sqrt(1 - ab));
		}
		/* a schedule that is not variance-preserving */
		chain_vs_closed_form("rf:T=100", ts[k], 1 - ts[k], ts[k]);
	}
}

/* The chain's draws for a sample depend only on (seed, its index). */
DM_TEST(noise_chain_deterministic)
{
	struct dm_schedule s;
	float x0[20], a[20], b[4];
	int step = 400;

	for (int i = 0; i < 20; i++)
		x0[i] = (float)i;
	CHECK_OK(dm_schedule_from_string(&s, "cosine"));
	CHECK_OK(dm_noise_chain(&s, &step, 0, x0, a, 10, 2, 4, 0));
	CHECK_OK(dm_noise_chain(&s, &step, 0, x0 + 6, b, 2, 2, 4, 3));
	CHECK(memcmp(a + 6, b, sizeof b) == 0);
	dm_schedule_free(&s);
}
