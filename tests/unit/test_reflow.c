/* test_reflow.c — straightness against closed forms, the progressive
 * distillation target against a direct two-step teacher run, the
 * consistency parameterisation's boundary condition and gradient, the
 * curriculum, and consistency options. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

/* A single Gaussian N(mu, s^2 I) in 2-D as a gmm model on `schedule`. */
static struct dm_model *
gauss_model(const char *schedule, double m0, double m1, double s)
{
	struct dm_gmm g;
	struct dm_file *f = dm_file_new();
	struct dm_model *m = NULL;
	double *w = malloc(sizeof *w), *mu = malloc(2 * sizeof *mu);
	double *c = calloc(4, sizeof *c);

	w[0] = 1;
	mu[0] = m0;
	mu[1] = m1;
	c[0] = c[3] = s * s;
	CHECK_OK(dm_gmm_init(&g, 1, 2, w, mu, c));
	CHECK_OK(dm_gmm_to_file(&g, f, schedule));
	CHECK_OK(dm_model_from_file(&m, f));
	dm_gmm_free(&g);
	dm_file_free(f);
	return m;
}

/* rf flow of the coupling x0 = x1 - c: u = c everywhere, x0_hat = x - t c,
 * eps_hat = x0_hat + c. */
static const float shift[2] = {0.75f, -1.5f};

static int
shift_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	(void)ctx;
	(void)first;
	for (int b = 0; b < B; b++)
		for (int k = 0; k < 2; k++) {
			float v = (float)(x[2 * b + k] - t[b] * shift[k]);
			if (x0)
				x0[2 * b + k] = v;
			if (eps)
				eps[2 * b + k] = v + shift[k];
		}
	return 0;
}

DM_TEST(reflow_straightness_zero_for_straight_flow)
{
	struct dm_schedule s;
	struct dm_sampler_opts o;
	enum { N = 64 };
	float x1[2 * N], x0[2 * N];
	double cost, S;

	CHECK_OK(dm_schedule_from_string(&s, "rf:t_min=0,t_max=1"));
	struct dm_denoiser D = {shift_fn, NULL, 2, &s, NULL};
	dm_sampler_opts_defaults(&o);
	o.steps = 7;
	dm_sample_noise(x1, N, 2, 5, 0);
	CHECK_OK(dm_reflow_straightness(&D, &o, x1, N, 10, x0, &cost, &S));
	CHECK_MSG(S < 1e-10, "straightness %g of a straight flow", S);
	CHECK_NEAR(cost, 0.75 * 0.75 + 1.5 * 1.5, 1e-5);
	CHECK_NEAR(x0[0], x1[0] - 0.75, 1e-5);
	/* pairs agree with the straightness run's end points */
	float p0[2 * N];
	CHECK_OK(dm_reflow_pairs(&D, &o, x1, p0, N, 7));
	CHECK(memcmp(p0, x0, sizeof p0) == 0);
	o.kind = DM_SAMPLER_EULER_A;
	CHECK_FAILS(dm_reflow_straightness(&D, &o, x1, N, 10, x0, &cost, &S),
	    "deterministic");
	dm_schedule_free(&s);
}

/* Gaussian data N(mu, s^2 I), rf: trajectories x_t = (1-t) mu + r_t z with
 * r_t = sqrt((1-t)^2 s^2 + t^2), so x1 - x0 - u = (1 - s - r'_t) z and
 * S = mean ||z||^2 * int_0^1 (1 - s - r'_t)^2 dt (midpoint rule, 1e5
 * points); the cost is mean ||x1 - x0||^2 with x0 = mu + s z. */
DM_TEST(reflow_straightness_gaussian_closed_form)
{
	const double s = 0.5, mu[2] = {1, -2};
	struct dm_model *m = gauss_model("rf:t_min=1e-6,t_max=1", mu[0], mu[1], s);
	struct dm_denoiser D;
	struct dm_sampler_opts o;
	enum { N = 500 };
	float *x1 = malloc(2 * N * sizeof *x1);
	double cost, S, I = 0, z2 = 0, c2 = 0;

	if (m == NULL)
		return;
	for (int i = 0; i < 100000; i++) {
		double t = (i + 0.5) / 100000;
		double r = sqrt((1 - t) * (1 - t) * s * s + t * t);
		double dr = (t - (1 - t) * s * s) / r;
		I += (1 - s - dr) * (1 - s - dr) / 100000;
	}
	dm_sample_noise(x1, N, 2, 1, 0);
	for (int i = 0; i < 2 * N; i++) {
		double e = x1[i] - (mu[i % 2] + s * x1[i]);
		z2 += (double)x1[i] * x1[i] / N;
		c2 += e * e / N;
	}
	dm_model_denoiser(&D, m);
	dm_sampler_opts_defaults(&o);
	o.kind = DM_SAMPLER_RK4;
	o.steps = 200;
	CHECK_OK(dm_reflow_straightness(&D, &o, x1, N, 128, NULL, &cost, &S));
	CHECK_MSG(fabs(S / (I * z2) - 1) < 2e-3, "S %.6g vs closed form %.6g",
	    S, I * z2);
	CHECK_MSG(fabs(cost / c2 - 1) < 1e-4, "cost %.6g vs %.6g", cost, c2);
	CHECK(S > 0.05);
	free(x1);
	dm_model_free(m);
}

struct cap {
	float x[5][2 * 8];
};

static void
capture(void *ctx, int k, double t, const float *x, int B)
{
	struct cap *c = ctx;

	(void)t;
	memcpy(c->x[k], x, (size_t)B * 2 * sizeof *x);
}

/* The target x~ is the x0 whose single DDIM step 0.75 -> 0.25 lands where
 * two DDIM steps of the teacher (dm_sample_run, 4 steps) land. */
DM_TEST(reflow_progressive_target_two_teacher_steps)
{
	static const char *scheds[] = {"linear", "cosine", "rf"};

	for (int q = 0; q < 3; q++) {
		struct dm_model *m = gauss_model(scheds[q], 0.5, -1, 0.3);
		struct dm_denoiser D;
		struct dm_sampler_opts o;
		struct cap c;
		float x[2 * 8], xt[2 * 8];
		double t[8], t1[8], t2[8];
		int64_t nfe;
		if (m == NULL)
			return;
		dm_model_denoiser(&D, m);
		dm_sampler_opts_defaults(&o);
		o.kind = DM_SAMPLER_DDIM;
		o.eta = 0;
		o.steps = 4;
		o.on_step = capture;
		o.on_step_ctx = &c;
		dm_sample_noise(x, 8, 2, 3, 0);
		CHECK_OK(dm_sample_run(&D, &o, x, 8, 0, &nfe));
		for (int b = 0; b < 8; b++) {
			t[b] = 0.75;
			t1[b] = 0.5;
			t2[b] = 0.25;
		}
		CHECK_OK(dm_pd_target(m, c.x[1], 8, t, t1, t2, xt));
		struct dm_sched_point pt, p2;
		dm_schedule_at(&m->sched, 0.75, &pt);
		dm_schedule_at(&m->sched, 0.25, &p2);
		double err = 0;
		for (int i = 0; i < 16; i++) {
			double eps = (c.x[1][i] - pt.alpha * xt[i]) / pt.sigma;
			double z = p2.alpha * xt[i] + p2.sigma * eps;
			err = fmax(err, fabs(z - c.x[3][i]));
		}
		CHECK_MSG(err < 1e-5, "%s: one student step misses two teacher "
		    "steps by %g", scheds[q], err);
		dm_model_free(m);
	}
}

static struct dm_model *
cm_mlp(const char *sched)
{
	struct dm_model_config cfg;
	int64_t shape[1] = {2};

	dm_model_config_defaults(&cfg, DM_ARCH_MLP, 1, shape);
	cfg.pred = DM_PRED_X0;
	cfg.width = 16;
	cfg.depth = 1;
	cfg.cm = 1;
	snprintf(cfg.schedule, sizeof cfg.schedule, "%s", sched);
	struct dm_model *m = dm_model_new(&cfg, 4);
	/* a non-zero output layer, so that F matters */
	for (size_t i = 0; m != NULL && i < m->nparams; i++)
		if (m->params[i] == 0)
			m->params[i] = 0.05f * (float)((int)(i % 7) - 3);
	return m;
}

DM_TEST(reflow_consistency_boundary)
{
	struct dm_model *m = cm_mlp("edm");
	float x[8] = {0.3f, -2, 5, 0.25f, -0.7f, 1e-3f, 40, -80}, f[8];
	float t0[4] = {0, 0, 0, 0}, t1[4] = {0.3f, 0.3f, 0.3f, 0.3f};

	if (m == NULL)
		return;
	CHECK_OK(dm_model_forward(m, f, x, t0, NULL, 4, 0));
	CHECK_MSG(memcmp(f, x, sizeof f) == 0, "f(x, sigma_min) != x: %g vs %g",
	    f[0], x[0]);
	CHECK_OK(dm_model_denoise(m, f, NULL, x, 0, NULL, 4));
	CHECK(memcmp(f, x, sizeof f) == 0);
	CHECK_OK(dm_model_forward(m, f, x, t1, NULL, 4, 0));
	CHECK(memcmp(f, x, sizeof f) != 0);
	/* the coefficients at sigma_min and sigma -> inf */
	double cs, co, ci;
	dm_cm_coeffs(0.002, 0.002, 0.5, &cs, &co, &ci);
	CHECK(cs == 1 && co == 0);
	CHECK_NEAR(ci, 1 / sqrt(0.002 * 0.002 + 0.25), 1e-15);
	dm_cm_coeffs(1e6, 0.002, 0.5, &cs, &co, &ci);
	CHECK_NEAR(cs, 0, 1e-12);
	CHECK_NEAR(co, 0.5, 1e-6);
	/* the config survives a file */
	struct dm_file *fl = dm_file_new();
	struct dm_model *m2 = NULL;
	CHECK_OK(dm_model_to_file(m, NULL, fl));
	CHECK_OK(dm_model_from_file(&m2, fl));
	if (m2 != NULL) {
		CHECK(m2->cfg.cm == 1 && m2->cfg.sigma_data == 0.5);
		CHECK_OK(dm_model_forward(m2, f, x, t1, NULL, 4, 0));
		float g[8];
		CHECK_OK(dm_model_forward(m, g, x, t1, NULL, 4, 0));
		CHECK(memcmp(f, g, sizeof f) == 0);
	}
	dm_model_free(m2);
	dm_file_free(fl);
	dm_model_free(m);
}

/* d/dx and d/dparams of L = sum r . f(x, t) through the parameterisation,
 * against central differences (on the rf schedule, alpha != 1). */
DM_TEST(reflow_consistency_gradient)
{
	struct dm_model *m = cm_mlp("rf");
	float x[6] = {0.3f, -1.2f, 0.8f, 0.25f, -0.7f, 1.1f}, f[6], dx[6];
	float t[3] = {0.2f, 0.5f, 0.9f}, r[6] = {1, -0.5f, 0.3f, 2, -1, 0.7f};

	if (m == NULL)
		return;
	CHECK_OK(dm_model_forward(m, f, x, t, NULL, 3, 1));
	dm_model_zero_grad(m);
	CHECK_OK(dm_model_backward(m, dx, r));
	for (int i = 0; i < 6; i++) {
		double h = 1e-2, lp = 0, lm = 0;
		float xp[6], xm[6];
		memcpy(xp, x, sizeof x);
		memcpy(xm, x, sizeof x);
		xp[i] += (float)h;
		xm[i] -= (float)h;
		CHECK_OK(dm_model_forward(m, f, xp, t, NULL, 3, 0));
		for (int k = 0; k < 6; k++)
			lp += (double)r[k] * f[k];
		CHECK_OK(dm_model_forward(m, f, xm, t, NULL, 3, 0));
		for (int k = 0; k < 6; k++)
			lm += (double)r[k] * f[k];
		double fd = (lp - lm) / (2 * h);
		CHECK_MSG(fabs(fd - dx[i]) < 2e-3 * (1 + fabs(fd)),
		    "dx[%d] %g vs finite difference %g", i, dx[i], fd);
	}
	/* one parameter of the output layer */
	size_t pi = m->nparams - 1;
	float keep = m->params[pi], g = m->grads[pi];
	double lp = 0, lm = 0;
	m->params[pi] = keep + 1e-2f;
	CHECK_OK(dm_model_forward(m, f, x, t, NULL, 3, 0));
	for (int k = 0; k < 6; k++)
		lp += (double)r[k] * f[k];
	m->params[pi] = keep - 1e-2f;
	CHECK_OK(dm_model_forward(m, f, x, t, NULL, 3, 0));
	for (int k = 0; k < 6; k++)
		lm += (double)r[k] * f[k];
	m->params[pi] = keep;
	CHECK_NEAR((lp - lm) / 2e-2, g, 2e-3 * (1 + fabs(g)));
	dm_model_free(m);
}

DM_TEST(reflow_consistency_curriculum)
{
	struct dm_cm_opts o;
	struct dm_schedule s;
	double sg[11];

	dm_cm_opts_preset(&o, 1);
	/* K' = floor(8000 / (log2(128) + 1)) = 1000 */
	CHECK_EQ_INT(dm_cm_steps(&o, 0, 8000), 11);
	CHECK_EQ_INT(dm_cm_steps(&o, 999, 8000), 11);
	CHECK_EQ_INT(dm_cm_steps(&o, 1000, 8000), 21);
	CHECK_EQ_INT(dm_cm_steps(&o, 7999, 8000), 1281);
	dm_cm_opts_preset(&o, 0);
	CHECK_EQ_INT(dm_cm_steps(&o, 0, 100), 2);
	CHECK_EQ_INT(dm_cm_steps(&o, 100, 100), 151);
	/* k/K = 1/2: ceil(sqrt((151^2 - 4)/2 + 4) - 1) + 1 = 107 */
	CHECK_EQ_INT(dm_cm_steps(&o, 50, 100), 107);
	CHECK_OK(dm_cm_opts_parse(&o, "steps", "fixed:17"));
	CHECK_EQ_INT(dm_cm_steps(&o, 5, 100), 18);
	CHECK_FAILS(dm_cm_opts_parse(&o, "steps", "doubling:5,2"), "s0");
	CHECK_FAILS(dm_cm_opts_parse(&o, "loss", "l1"), "l2 or huber");
	CHECK_FAILS(dm_cm_opts_parse(&o, "target", "ema:2"), "out of range");
	CHECK_OK(dm_schedule_from_string(&s, "edm"));
	dm_cm_sigmas(&s, 11, sg);
	CHECK_NEAR(sg[0], 0.002, 1e-15);
	CHECK_NEAR(sg[10], 80, 1e-9);
	/* Karras: sigma_i^(1/7) evenly spaced */
	CHECK_NEAR(pow(sg[5], 1 / 7.0), (pow(0.002, 1 / 7.0) + pow(80, 1 /
	    7.0)) / 2, 1e-12);
	dm_schedule_free(&s);
}
