/* test_predict.c — every prediction kind round-trips through (x0, eps) on
 * every schedule; the PF-ODE velocity is the time derivative of the path;
 * the SDE coefficients match the VP-SDE's closed form. */
#include <math.h>
#include <string.h>

#include "dm.h"
#include "test.h"

#define N 64

DM_TEST(predict_round_trip_all_kinds_and_schedules)
{
	float x0[N], eps[N], xt[N], out[N], x0h[N], eh[N];

	dm_rng_normal(x0, N, 11, 0, 0);
	dm_rng_normal(eps, N, 11, 1, 0);
	for (int sk = 0; sk < DM_SCHEDULE_COUNT; sk++) {
		struct dm_schedule s;
		dm_schedule_defaults(&s, (enum dm_schedule_kind)sk);
		CHECK_OK(dm_schedule_init(&s));
		for (int it = 0; it <= 10; it++) {
			struct dm_sched_point p;
			dm_schedule_at(&s, dm_schedule_clamp(&s, it / 10.0), &p);
			for (int i = 0; i < N; i++)
				xt[i] = (float)(p.alpha * x0[i] + p.sigma * eps[i]);
			for (int k = 0; k < DM_PRED_COUNT; k++) {
				dm_pred_from_x0_eps((enum dm_pred)k, &p, x0, eps, out, N);
				dm_pred_to_x0_eps((enum dm_pred)k, &p, xt, out, x0h, eh, N);
				double e0 = 0, e1 = 0;
				for (int i = 0; i < N; i++) {
					e0 = fmax(e0, fabs(x0h[i] - x0[i]));
					e1 = fmax(e1, fabs(eh[i] - eps[i]));
				}
				/* float rounding amplified by 1/alpha or 1/sigma at the clamped ends */
				double tol = 1e-4 * fmax(1, fmax(p.sigma / p.alpha, p.alpha / p.sigma));
				if (k == DM_PRED_FLOW)
					tol *= fmax(1, fabs(p.dsigma) + fabs(p.dalpha));
				CHECK_MSG(e0 <= tol && e1 <= tol,
				    "%s/%s t=%g: x0 err %g eps err %g (tol %g)",
				    dm_schedule_name(s.kind), dm_pred_name((enum dm_pred)k),
				    p.t, e0, e1, tol);
			}
		}
		dm_schedule_free(&s);
	}
}

DM_TEST(predict_velocity_is_path_derivative)
{
	float x0[N], eps[N], u[N];

	dm_rng_normal(x0, N, 5, 0, 0);
	dm_rng_normal(eps, N, 5, 1, 0);
	for (int sk = 0; sk < DM_SCHEDULE_COUNT; sk++) {
		struct dm_schedule s;
		dm_schedule_defaults(&s, (enum dm_schedule_kind)sk);
		CHECK_OK(dm_schedule_init(&s));
		for (int it = 1; it < 10; it++) {
			double t = (it + 0.37) / 10.5, h = 1e-6;
			struct dm_sched_point p, a, b;
			dm_schedule_at(&s, t, &p);
			dm_schedule_at(&s, t + h, &a);
			dm_schedule_at(&s, t - h, &b);
			dm_pf_velocity(&p, x0, eps, u, N);
			for (int i = 0; i < N; i++) {
				double fd = ((a.alpha - b.alpha) * x0[i] +
				    (a.sigma - b.sigma) * eps[i]) / (2 * h);
				CHECK_MSG(fabs(fd - u[i]) <= 1e-4 * (1 + fabs(fd)),
				    "%s t=%g: u %g vs fd %g", dm_schedule_name(s.kind),
				    t, u[i], fd);
			}
		}
		dm_schedule_free(&s);
	}
}

/* VP-SDE (Song et al. 2021): f = -beta(t)/2, g^2 = beta(t), with
 * beta(t) = beta_min + t (beta_max - beta_min). */
DM_TEST(predict_sde_coeffs_vp)
{
	struct dm_schedule s;

	dm_schedule_defaults(&s, DM_SCHEDULE_VP);
	CHECK_OK(dm_schedule_init(&s));
	for (int i = 1; i <= 10; i++) {
		double t = i / 10.0, f, g2, beta = 0.1 + t * 19.9;
		struct dm_sched_point p;
		dm_schedule_at(&s, t, &p);
		dm_sde_coeffs(&p, &f, &g2);
		CHECK_NEAR(f, -beta / 2, 1e-12);
		CHECK_NEAR(g2, beta, 1e-9);
	}
	enum dm_pred k;
	CHECK_FAILS(dm_pred_parse("noise", &k), "unknown prediction");
	CHECK_OK(dm_pred_parse("flow", &k));
	CHECK_EQ_INT(k, DM_PRED_FLOW);
}
