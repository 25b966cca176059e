/* test_schedule.c — schedules against closed forms computed here
 * independently, derivatives against finite differences, lambda inverse,
 * posterior against DDPM's beta-tilde, and time grids. */
#include <math.h>
#include <string.h>

#include "dm.h"
#include "dm_schedule.h"
#include "test.h"

static struct dm_schedule
make(enum dm_schedule_kind kind)
{
	struct dm_schedule s;

	dm_schedule_defaults(&s, kind);
	if (dm_schedule_init(&s) == -1)
		dm_test_fail(__FILE__, __LINE__, "init: %s", dm_errstr());
	return s;
}

/* DDPM linear: abar_i = prod_{k<=i} (1 - beta_k), beta linear. */
DM_TEST(schedule_linear_closed_form)
{
	struct dm_schedule s = make(DM_SCHEDULE_LINEAR);
	double prod = 1;

	for (int i = 1; i <= 1000; i++) {
		double beta = 1e-4 + (0.02 - 1e-4) * (i - 1) / 999.0;
		prod *= 1 - beta;
		CHECK_NEAR(dm_schedule_beta(&s, i), beta, 1e-12);
		CHECK_NEAR(dm_schedule_abar(&s, i) / prod, 1, 1e-10);
		CHECK_NEAR(dm_schedule_alpha(&s, i / 1000.0), sqrt(prod), 1e-12);
		CHECK_NEAR(dm_schedule_sigma(&s, i / 1000.0), sqrt(1 - prod), 1e-12);
	}
	/* known value: abar_1000 of DDPM's schedule is about 4.04e-5 */
	CHECK_NEAR(dm_schedule_abar(&s, 1000), 4.035e-5, 0.01e-5);
	/* between steps log abar is linear in t */
	double a = dm_schedule_abar(&s, 500), b = dm_schedule_abar(&s, 501);
	double al = dm_schedule_alpha(&s, 500.25 / 1000);
	CHECK_NEAR(2 * log(al), 0.75 * log(a) + 0.25 * log(b), 1e-12);
	dm_schedule_free(&s);
}

DM_TEST(schedule_cosine_closed_form)
{
	struct dm_schedule s = make(DM_SCHEDULE_COSINE);
	double f0 = pow(cos(0.008 / 1.008 * M_PI / 2), 2), prod = 1;

	for (int i = 1; i <= 1000; i++) {
		double fi = pow(cos((i / 1000.0 + 0.008) / 1.008 * M_PI / 2), 2);
		double fp = pow(cos(((i - 1) / 1000.0 + 0.008) / 1.008 * M_PI / 2), 2);
		double beta = fmin(1 - fi / fp, 0.999);
		prod *= 1 - beta;
		CHECK_NEAR(dm_schedule_abar(&s, i) / prod, 1, 1e-9);
		if (i < 990)	/* unclipped: abar is f(t)/f(0) itself */
			CHECK_NEAR(dm_schedule_abar(&s, i), fi / f0, 1e-9);
	}
	CHECK_NEAR(dm_schedule_beta(&s, 1000), 0.999, 1e-12);
	dm_schedule_free(&s);
}

DM_TEST(schedule_continuous_closed_forms)
{
	struct dm_schedule vp = make(DM_SCHEDULE_VP), ve = make(DM_SCHEDULE_VE);
	struct dm_schedule rf = make(DM_SCHEDULE_RF), edm = make(DM_SCHEDULE_EDM);

	for (int i = 0; i <= 20; i++) {
		double t = i / 20.0;
		/* Song et al. 2021, the mean coefficient of the VP-SDE */
		double lalpha = -0.25 * t * t * (20 - 0.1) - 0.5 * t * 0.1;
		CHECK_NEAR(dm_schedule_alpha(&vp, t), exp(lalpha), 1e-14);
		CHECK_NEAR(dm_schedule_sigma(&vp, t), sqrt(1 - exp(2 * lalpha)), 1e-14);
		CHECK_NEAR(dm_schedule_alpha(&ve, t), 1, 0);
		CHECK_NEAR(dm_schedule_sigma(&ve, t) / (0.01 * pow(5000, t)), 1, 1e-13);
		CHECK_NEAR(dm_schedule_alpha(&rf, t), 1 - t, 1e-15);
		CHECK_NEAR(dm_schedule_sigma(&rf, t), t, 1e-15);
		double r = pow(0.002, 1 / 7.0) + t * (pow(80, 1 / 7.0) - pow(0.002, 1 / 7.0));
		CHECK_NEAR(dm_schedule_sigma(&edm, t) / pow(r, 7), 1, 1e-13);
	}
	CHECK_NEAR(dm_schedule_sigma(&edm, 0), 0.002, 1e-15);
	CHECK_NEAR(dm_schedule_sigma(&edm, 1), 80, 1e-11);
	ve.ve_sqrt = 1;
	ve.sigma_q = 2;
	CHECK_NEAR(dm_schedule_sigma(&ve, 0.25), 1, 1e-15);
}

/* d alpha/dt and d sigma/dt against central differences, for every kind. */
DM_TEST(schedule_derivatives_finite_difference)
{
	for (int k = 0; k < DM_SCHEDULE_COUNT; k++) {
		struct dm_schedule s = make((enum dm_schedule_kind)k);
		for (int zs = 0; zs <= dm_schedule_is_vp(&s); zs++) {
			s.zero_snr = zs;
			dm_schedule_free(&s);
			CHECK_OK(dm_schedule_init(&s));
			for (int i = 1; i < 40; i++) {
				/* off the discrete knots, where log abar is smooth */
				double t = (i + 0.3) / 40.0, h = 1e-7;
				struct dm_sched_point p, a, b;
				dm_schedule_at(&s, t, &p);
				dm_schedule_at(&s, t + h, &a);
				dm_schedule_at(&s, t - h, &b);
				double fa = (a.alpha - b.alpha) / (2 * h);
				double fs = (a.sigma - b.sigma) / (2 * h);
				CHECK_MSG(fabs(fa - p.dalpha) <= 1e-5 * (1 + fabs(fa)),
				    "%s zero_snr=%d t=%g dalpha %g vs fd %g",
				    dm_schedule_name(s.kind), zs, t, p.dalpha, fa);
				CHECK_MSG(fabs(fs - p.dsigma) <= 1e-5 * (1 + fabs(fs)),
				    "%s zero_snr=%d t=%g dsigma %g vs fd %g",
				    dm_schedule_name(s.kind), zs, t, p.dsigma, fs);
			}
		}
		dm_schedule_free(&s);
	}
}

DM_TEST(schedule_lambda_inverse)
{
	for (int k = 0; k < DM_SCHEDULE_COUNT; k++) {
		struct dm_schedule s = make((enum dm_schedule_kind)k);
		for (int zs = 0; zs <= dm_schedule_is_vp(&s); zs++) {
			s.zero_snr = zs;
			dm_schedule_free(&s);
			CHECK_OK(dm_schedule_init(&s));
			for (int i = 1; i < 50; i++) {
				double t = i / 50.0 * 0.98 + 0.01;
				double l = dm_schedule_lambda(&s, t);
				double back = dm_schedule_t_of_lambda(&s, l);
				CHECK_MSG(fabs(back - t) < 1e-9,
				    "%s zero_snr=%d: t %g -> lambda %g -> t %g",
				    dm_schedule_name(s.kind), zs, t, l, back);
			}
		}
		dm_schedule_free(&s);
	}
}

/* Zero terminal SNR: alpha(1) = 0 exactly, alpha(0) = 1. */
DM_TEST(schedule_zero_terminal_snr)
{
	struct dm_schedule s;

	dm_schedule_defaults(&s, DM_SCHEDULE_LINEAR);
	s.zero_snr = 1;
	CHECK_OK(dm_schedule_init(&s));
	CHECK_NEAR(dm_schedule_alpha(&s, 1), 0, 1e-15);
	CHECK_NEAR(dm_schedule_sigma(&s, 1), 1, 1e-15);
	CHECK_NEAR(dm_schedule_alpha(&s, 0), 1, 1e-15);
	CHECK(isinf(dm_schedule_lambda(&s, 1)));
	CHECK_NEAR(dm_schedule_abar(&s, 1000), 0, 1e-15);
	CHECK_NEAR(dm_schedule_beta(&s, 1000), 1, 1e-12);
	dm_schedule_free(&s);
	dm_schedule_defaults(&s, DM_SCHEDULE_RF);
	s.zero_snr = 1;
	CHECK_FAILS(dm_schedule_init(&s), "VP schedules");
}

/* For DDPM's chain, the posterior variance is beta-tilde and the mean
 * coefficients are the paper's (Ho et al. 2020, eq. 7). */
DM_TEST(schedule_posterior_ddpm)
{
	struct dm_schedule s = make(DM_SCHEDULE_LINEAR);

	for (int i = 2; i <= 1000; i += 37) {
		double b = dm_schedule_beta(&s, i), ab = dm_schedule_abar(&s, i);
		double abp = dm_schedule_abar(&s, i - 1), cxt, cx0, var;
		dm_schedule_posterior(&s, (i - 1) / 1000.0, i / 1000.0, &cxt,
		    &cx0, &var);
		CHECK_NEAR(var / ((1 - abp) / (1 - ab) * b), 1, 1e-9);
		CHECK_NEAR(cx0, sqrt(abp) * b / (1 - ab), 1e-12);
		CHECK_NEAR(cxt, sqrt(1 - b) * (1 - abp) / (1 - ab), 1e-12);
	}
	dm_schedule_free(&s);
}

DM_TEST(schedule_grids)
{
	struct dm_schedule s = make(DM_SCHEDULE_LINEAR);
	double t[2001];

	CHECK_OK(dm_schedule_grid(&s, 4, DM_SPACING_TRAILING, 0, t));
	CHECK_NEAR(t[0], 1, 0); CHECK_NEAR(t[1], 0.75, 0); CHECK_NEAR(t[4], 0, 0);
	/* diffusers leading, 10 steps of 1000: 901, 801, ..., 1 */
	CHECK_OK(dm_schedule_grid(&s, 10, DM_SPACING_LEADING, 0, t));
	CHECK_NEAR(t[0], 0.901, 1e-15); CHECK_NEAR(t[9], 0.001, 1e-15);
	CHECK_NEAR(t[10], 0, 0);
	/* uniform in lambda: equal lambda differences */
	CHECK_OK(dm_schedule_grid(&s, 8, DM_SPACING_LAMBDA, 0, t));
	double d0 = dm_schedule_lambda(&s, t[1]) - dm_schedule_lambda(&s, t[0]);
	for (int k = 1; k < 7; k++)
		CHECK_NEAR(dm_schedule_lambda(&s, t[k + 1]) -
		    dm_schedule_lambda(&s, t[k]), d0, 1e-6);
	CHECK_NEAR(t[7], s.t_min, 1e-9);
	/* karras on edm: sigma_k = (80^(1/7) + k/(n-1) (0.002^(1/7) - 80^(1/7)))^7 */
	struct dm_schedule e = make(DM_SCHEDULE_EDM);
	CHECK_OK(dm_schedule_grid(&e, 5, DM_SPACING_KARRAS, 0, t));
	for (int k = 0; k < 5; k++) {
		double a = pow(80, 1 / 7.0), b = pow(0.002, 1 / 7.0);
		double want = pow(a + (b - a) * k / 4.0, 7);
		CHECK_NEAR(dm_schedule_sigma(&e, t[k]) / want, 1, 1e-9);
	}
	/* edm's own sigma grid is karras-spaced: t is uniform */
	CHECK_NEAR(t[1], 0.75, 1e-9);
	/* flow shift k = 3 */
	struct dm_schedule r = make(DM_SCHEDULE_RF);
	CHECK_OK(dm_schedule_grid(&r, 2, DM_SPACING_SHIFT, 3, t));
	CHECK_NEAR(t[0], 1, 1e-15); CHECK_NEAR(t[1], 1.5 / 2, 1e-15);
	CHECK_FAILS(dm_schedule_grid(&s, 2000, DM_SPACING_LEADING, 0, t), "exceed");
	CHECK_FAILS(dm_schedule_grid(&s, 0, DM_SPACING_TRAILING, 0, t), "at least 1");
	dm_schedule_free(&s);
	dm_schedule_free(&e);
	dm_schedule_free(&r);
}

DM_TEST(schedule_bad_parameters)
{
	struct dm_schedule s;

	dm_schedule_defaults(&s, DM_SCHEDULE_LINEAR);
	s.beta_max = 1.5;
	CHECK_FAILS(dm_schedule_init(&s), "beta range");
	dm_schedule_defaults(&s, DM_SCHEDULE_LINEAR);
	s.T = 0;
	CHECK_FAILS(dm_schedule_init(&s), "T must be");
	dm_schedule_defaults(&s, DM_SCHEDULE_EDM);
	s.sigma_min = 100;
	CHECK_FAILS(dm_schedule_init(&s), "sigma range");
	enum dm_schedule_kind k;
	CHECK_FAILS(dm_schedule_parse("sqrt", &k), "unknown schedule");
}

DM_TEST(schedule_text_round_trip)
{
	static const char *specs[] = {
		"linear", "cosine:T=4000", "vp:beta_max=10", "ve", "ve:sqrt,sigma_q=2",
		"rf", "edm:rho=5", "linear:zero_snr,T=500", "linear:beta_max=0.03",
	};
	char text[512], text2[512];
	struct dm_schedule s, s2;

	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		CHECK_OK(dm_schedule_from_string(&s, specs[i]));
		CHECK_OK(dm_schedule_to_string(&s, text, sizeof text));
		CHECK_OK(dm_schedule_from_string(&s2, text));
		CHECK_OK(dm_schedule_to_string(&s2, text2, sizeof text2));
		CHECK_STR(text, text2);
		for (int k = 0; k <= 10; k++)
			CHECK(dm_schedule_alpha(&s, k / 10.0) ==
			    dm_schedule_alpha(&s2, k / 10.0) &&
			    dm_schedule_sigma(&s, k / 10.0) ==
			    dm_schedule_sigma(&s2, k / 10.0));
		dm_schedule_free(&s);
		dm_schedule_free(&s2);
	}
	CHECK_OK(dm_schedule_from_string(&s, "linear:T=10"));
	CHECK_OK(dm_schedule_to_string(&s, text, sizeof text));
	CHECK_STR(text, "linear:T=10,beta_min=0.0001,beta_max=0.02,t_min=0.1,t_max=1");
	CHECK_FAILS(dm_schedule_to_string(&s, text, 12), "longer");
	dm_schedule_free(&s);
	CHECK_FAILS(dm_schedule_from_string(&s, "linear:T=1.5"), "not an integer");
	CHECK_FAILS(dm_schedule_from_string(&s, "linear:beta=3"), "unknown schedule parameter");
	CHECK_FAILS(dm_schedule_from_string(&s, "vp:sqrt"), "bad item");
	CHECK_FAILS(dm_schedule_from_string(&s, "edm:rho=x"), "not a number");
	CHECK_FAILS(dm_schedule_from_string(&s, "cosine:s=nan"), "not a number");
	CHECK_FAILS(dm_schedule_from_string(&s, "cosin"), "unknown schedule");
}
