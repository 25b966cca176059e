/* test_train.c — optimizer, LR schedule, EMA, clipping, t sampling, loss
 * weights, targets, data order, option parsing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

DM_TEST(train_adamw_two_steps)
{
	/* p = 1, g = 0.5 then -1, lr 0.1, betas 0.9/0.999, eps 1e-8,
	 * wd 0.01; values computed by hand (bias-corrected moments):
	 * step 1: m = 0.05, v = 2.5e-4, m^ = 0.5, v^ = 0.25 -> p = 1 - 0.1 (1 + 0.01) */
	float p = 1, m = 0, v = 0, g = 0.5f;

	dm_adamw_step(&p, &g, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 1);
	CHECK_NEAR(m, 0.05, 1e-7);
	CHECK_NEAR(v, 2.5e-4, 1e-9);
	CHECK_NEAR(p, 0.899, 1e-6);
	g = -1;
	dm_adamw_step(&p, &g, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01, 2);
	CHECK_NEAR(m, -0.055, 1e-7);
	CHECK_NEAR(v, 0.00124975, 1e-9);
	CHECK_NEAR(p, 0.9347113542385653, 2e-6);
}

DM_TEST(train_adamw_decay_is_decoupled)
{
	/* zero gradient, zero moments: only p -= lr wd p moves it, whatever
	 * the moments would scale */
	float p[2] = {1, -2}, g[2] = {0, 0}, m[2] = {0, 0}, v[2] = {0, 0};

	dm_adamw_step(p, g, m, v, 2, 0.1, 0.9, 0.999, 1e-8, 0.5, 1);
	CHECK_NEAR(p[0], 0.95, 1e-7);
	CHECK_NEAR(p[1], -1.9, 1e-7);
	/* wd 0: a gradient of any size moves p by about lr on step 1 */
	float q = 3, h = 1000, mq = 0, vq = 0;
	dm_adamw_step(&q, &h, &mq, &vq, 1, 0.01, 0.9, 0.999, 1e-8, 0, 1);
	CHECK_NEAR(q, 2.99, 1e-6);
}

DM_TEST(train_lr_warmup_cosine)
{
	struct dm_train_opts o;

	dm_train_opts_defaults(&o);
	o.lr = 1;
	o.warmup = 10;
	o.steps = 110;
	o.lr_schedule = DM_LR_COSINE;
	CHECK_NEAR(dm_lr_at(&o, 0), 0.1, 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 4), 0.5, 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 9), 1.0, 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 10), 1.0, 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 60), 0.5, 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 35), 0.5 * (1 + cos(M_PI / 4)), 1e-12);
	CHECK_NEAR(dm_lr_at(&o, 110), 0, 1e-12);
	o.lr_schedule = DM_LR_CONSTANT;
	CHECK_NEAR(dm_lr_at(&o, 60), 1, 1e-12);
	o.warmup = 0;
	CHECK_NEAR(dm_lr_at(&o, 0), 1, 1e-12);
}

DM_TEST(train_ema)
{
	float e[1] = {0}, p[1] = {1};

	for (int k = 1; k <= 5; k++) {
		dm_ema_update(e, p, 1, 0.9);
		CHECK_NEAR(e[0], 1 - pow(0.9, k), 1e-6);
	}
	/* warm-up: min(D, (1 + k)/(10 + k)) */
	CHECK_NEAR(dm_ema_decay(0.999, 0), 0.1, 1e-15);
	CHECK_NEAR(dm_ema_decay(0.999, 8), 0.5, 1e-15);
	CHECK_NEAR(dm_ema_decay(0.999, 8990), 0.999, 1e-15);
	CHECK_NEAR(dm_ema_decay(0.999, 1000000), 0.999, 1e-15);
	CHECK_NEAR(dm_ema_decay(0.5, 100), 0.5, 1e-15);
	CHECK_NEAR(dm_ema_decay(0, 3), 0, 1e-15);
}

DM_TEST(train_clip_global_norm)
{
	float g[3] = {3, 0, 4};

	CHECK_NEAR(dm_grad_clip(g, 3, 0), 5, 1e-12);      /* off */
	CHECK(g[0] == 3 && g[2] == 4);
	CHECK_NEAR(dm_grad_clip(g, 3, 10), 5, 1e-12);     /* below */
	CHECK(g[0] == 3 && g[2] == 4);
	CHECK_NEAR(dm_grad_clip(g, 3, 1), 5, 1e-12);
	CHECK_NEAR(g[0], 0.6, 1e-7);
	CHECK_NEAR(g[2], 0.8, 1e-7);
	CHECK_NEAR(dm_grad_clip(g, 3, 0), 1, 1e-6);
	float h[2] = {NAN, 1};
	CHECK(isnan(dm_grad_clip(h, 2, 1)));
}

/* The norm in chunks against one sum in order (long double), for sizes
 * around the chunk length. */
DM_TEST(train_grad_norm_chunks)
{
	static const size_t sz[] = {1, 7, 16383, 16385, 100003, 5000001};

	for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
		size_t n = sz[k];
		float *g = malloc(n * sizeof *g);
		long double ss = 0;
		dm_rng_normal(g, n, 3, k, 0);
		for (size_t i = 0; i < n; i++)
			ss += (long double)g[i] * g[i];
		CHECK_NEAR(dm_grad_norm(g, n), sqrtl(ss), 1e-12 * sqrtl(ss));
		free(g);
	}
}

/* The fused update is clip + AdamW + EMA in turn to the bit, and leaves
 * the gradient at zero; sizes odd and across thread chunks, clipping on
 * and off, several steps (the moments and the EMA warm-up move). */
static void
fused_case(size_t n, double clip, double wd)
{
	float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float));
	float *g1 = malloc(n * sizeof(float)), *g2 = malloc(n * sizeof(float));
	float *m1 = calloc(n, sizeof(float)), *m2 = calloc(n, sizeof(float));
	float *v1 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
	float *e1 = malloc(n * sizeof(float)), *e2 = malloc(n * sizeof(float));
	int bad = 0, nonzero = 0;

	dm_rng_normal(p1, n, 5, 0, 0);
	memcpy(p2, p1, n * sizeof(float));
	memcpy(e1, p1, n * sizeof(float));
	memcpy(e2, p1, n * sizeof(float));
	for (int step = 0; step < 4; step++) {
		dm_rng_normal(g1, n, 6, (uint64_t)step, 0);
		memcpy(g2, g1, n * sizeof(float));
		double lr = 1e-2 * (step + 1), decay = dm_ema_decay(0.999, step);
		double gn = dm_grad_clip(g1, n, clip);
		dm_adamw_step(p1, g1, m1, v1, n, lr, 0.9, 0.999, 1e-8, wd,
		    step + 1);
		dm_ema_update(e1, p1, n, decay);
		double gn2 = dm_grad_norm(g2, n);
		struct dm_optim_step os = {lr, 0.9, 0.999, 1e-8, wd, step + 1,
		    dm_grad_clip_scale(gn2, clip), decay};
		dm_optim_fused(p2, g2, m2, v2, e2, n, &os);
		CHECK(gn == gn2);
		for (size_t i = 0; i < n; i++) {
			bad += p1[i] != p2[i] || m1[i] != m2[i] ||
			    v1[i] != v2[i] || e1[i] != e2[i];
			nonzero += g2[i] != 0;
		}
	}
	CHECK_MSG(bad == 0 && nonzero == 0, "fused update, n %zu clip %g: "
	    "%d values differ, %d gradients not zeroed", n, clip, bad,
	    nonzero);
	free(p1); free(p2); free(g1); free(g2); free(m1); free(m2);
	free(v1); free(v2); free(e1); free(e2);
}

DM_TEST(train_optim_fused)
{
	fused_case(1, 0, 0);
	fused_case(13, 1, 0.01);
	fused_case(16385, 0.5, 0);
	fused_case(100003, 1e6, 0.1);
	fused_case(100003, 10, 0.1);
}

static void
t_moments(const struct dm_train_opts *o, const struct dm_schedule *s,
    int n, int logit, double *mean, double *var)
{
	double sum = 0, sq = 0;

	for (int i = 0; i < n; i++) {
		double t = dm_train_draw_t(o, s, 7, (uint64_t)i);
		if (logit)
			t = log(t / (1 - t));
		sum += t;
		sq += t * t;
	}
	*mean = sum / n;
	*var = sq / n - *mean * *mean;
}

DM_TEST(train_t_sampling_moments)
{
	struct dm_train_opts o;
	struct dm_schedule s;
	double mean, var;
	int n = 40000;

	dm_train_opts_defaults(&o);
	CHECK_OK(dm_schedule_from_string(&s, "rf"));
	/* uniform: mean 1/2, variance 1/12 (sd of the mean ~ 0.0014) */
	t_moments(&o, &s, n, 0, &mean, &var);
	CHECK_NEAR(mean, 0.5, 0.006);
	CHECK_NEAR(var, 1.0 / 12, 0.003);
	/* logit-normal m = 0.5, s = 0.8: logit t ~ N(0.5, 0.64) */
	CHECK_OK(dm_tsampling_parse("logit-normal:0.5,0.8", &o));
	CHECK_NEAR(o.ln_m, 0.5, 0);
	CHECK_NEAR(o.ln_s, 0.8, 0);
	t_moments(&o, &s, n, 1, &mean, &var);
	CHECK_NEAR(mean, 0.5, 0.02);
	CHECK_NEAR(var, 0.64, 0.03);
	dm_schedule_free(&s);
	/* discrete over linear T = 1000: t = i/1000, i in 1..1000, mean 0.5005 */
	CHECK_OK(dm_tsampling_parse("discrete", &o));
	CHECK_OK(dm_schedule_from_string(&s, "linear"));
	int offgrid = 0;
	double sum = 0, lo = 1, hi = 0;
	for (int i = 0; i < n; i++) {
		double t = dm_train_draw_t(&o, &s, 3, (uint64_t)i);
		double k = t * 1000;
		offgrid += fabs(k - floor(k + 0.5)) > 1e-9;
		sum += t;
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	CHECK_EQ_INT(offgrid, 0);
	CHECK_NEAR(sum / n, 0.5005, 0.006);
	CHECK_NEAR(lo, 0.001, 1e-12);
	CHECK(hi <= 1);
	dm_schedule_free(&s);
	/* the same (seed, row) gives the same t */
	CHECK_OK(dm_schedule_from_string(&s, "rf"));
	CHECK(dm_train_draw_t(&o, &s, 9, 123) == dm_train_draw_t(&o, &s, 9, 123));
	dm_schedule_free(&s);
}

DM_TEST(train_parse_options)
{
	struct dm_train_opts o;

	dm_train_opts_defaults(&o);
	CHECK_FAILS(dm_tsampling_parse("gauss", &o), "unknown t sampling");
	CHECK_FAILS(dm_tsampling_parse("logit-normal:1", &o), "two numbers");
	CHECK_FAILS(dm_tsampling_parse("logit-normal:0,-1", &o), "0 < s");
	CHECK_FAILS(dm_tsampling_parse("uniform:3", &o), "unknown");
	CHECK_OK(dm_weighting_parse("min-snr", &o));
	CHECK(o.weighting == DM_WEIGHTING_MIN_SNR && o.gamma == 5);
	CHECK_OK(dm_weighting_parse("min-snr:3", &o));
	CHECK(o.gamma == 3);
	CHECK_FAILS(dm_weighting_parse("min-snr:x", &o), "not a number");
	CHECK_FAILS(dm_weighting_parse("snr2", &o), "unknown weighting");
	enum dm_objective ob;
	CHECK_OK(dm_objective_parse("classifier", &ob));
	CHECK(ob == DM_OBJECTIVE_CLASSIFIER);
	CHECK_FAILS(dm_objective_parse("vel", &ob), "unknown objective");
	char a[1024], b[1024];
	CHECK_OK(dm_train_opts_format(&o, a, sizeof a));
	o.lr = nextafter(o.lr, 1);
	CHECK_OK(dm_train_opts_format(&o, b, sizeof b));
	CHECK(strcmp(a, b) != 0);
}

static struct dm_sched_point
point(double a, double s, double da, double ds)
{
	struct dm_sched_point p = {0};

	p.alpha = a;
	p.sigma = s;
	p.dalpha = da;
	p.dsigma = ds;
	return p;
}

DM_TEST(train_weighting_closed_forms)
{
	/* VP point alpha 0.8, sigma 0.6: SNR = 16/9 */
	struct dm_sched_point p = point(0.8, 0.6, 0, 0);
	double snr = 16.0 / 9;

	/* min-SNR (Hang et al. 2023): eps min(SNR,g)/SNR, x0 min(SNR,g),
	 * v min(SNR,g)/(SNR+1) */
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5, DM_OBJECTIVE_EPS, &p),
	    1, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 1, DM_OBJECTIVE_EPS, &p),
	    1 / snr, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 1, DM_OBJECTIVE_X0, &p),
	    1, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5, DM_OBJECTIVE_X0, &p),
	    snr, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 1, DM_OBJECTIVE_V, &p),
	    1 / (snr + 1), 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5, DM_OBJECTIVE_V, &p),
	    snr / (snr + 1), 1e-12);
	/* score: eps = -sigma s, so |x0 err|^2 = sigma^4/alpha^2 |s err|^2 */
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 1, DM_OBJECTIVE_SCORE, &p),
	    pow(0.6, 4) / 0.64, 1e-12);
	/* SNR weighting is the plain eps loss; truncated SNR max(SNR,1) */
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_SNR, 0, DM_OBJECTIVE_EPS, &p),
	    1, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_SNR, 0, DM_OBJECTIVE_X0, &p),
	    snr, 1e-12);
	struct dm_sched_point q = point(0.6, 0.8, 0, 0);   /* SNR 9/16 < 1 */
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_TRUNC_SNR, 0, DM_OBJECTIVE_EPS, &q),
	    16.0 / 9, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_TRUNC_SNR, 0, DM_OBJECTIVE_EPS, &p),
	    1, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_TRUNC_SNR, 0, DM_OBJECTIVE_X0, &q),
	    1, 1e-12);
	/* rf at t = 0.3: x0_hat = x_t - t u_hat, so |x0 err|^2 = t^2 |u err|^2;
	 * SNR = 49/9 > 5: min-SNR weight 5 t^2 = 0.45 */
	struct dm_sched_point r = point(0.7, 0.3, -1, 1);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5, DM_OBJECTIVE_FLOW, &r),
	    0.45, 1e-12);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_MIN_SNR, 10, DM_OBJECTIVE_FLOW, &r),
	    0.49, 1e-12);
	/* defaults: uniform, and sigma^2 for score (denoising score matching) */
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_AUTO, 5, DM_OBJECTIVE_FLOW, &r),
	    1, 0);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_AUTO, 5, DM_OBJECTIVE_SCORE, &r),
	    0.09, 1e-15);
	CHECK_NEAR(dm_train_weight(DM_WEIGHTING_SNR, 5, DM_OBJECTIVE_CLASSIFIER,
	    &r), 1, 0);
	/* the ends stay finite: rf t = 1 (alpha 0) and t = 0 (sigma 0) */
	struct dm_sched_point e1 = point(0, 1, -1, 1), e0 = point(1, 0, -1, 1);
	for (int k = 0; k < DM_OBJECTIVE_CLASSIFIER; k++) {
		CHECK(isfinite(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5,
		    (enum dm_objective)k, &e1)));
		CHECK(isfinite(dm_train_weight(DM_WEIGHTING_MIN_SNR, 5,
		    (enum dm_objective)k, &e0)));
	}
}

DM_TEST(train_targets)
{
	/* the targets of SPEC.md §5 at an rf point t = 0.25 and a VP point */
	float x0[2] = {1, -2}, eps[2] = {0.5f, 3}, out[2];
	struct dm_schedule s;
	struct dm_sched_point p;

	CHECK_OK(dm_schedule_from_string(&s, "rf"));
	dm_schedule_at(&s, 0.25, &p);
	dm_pred_from_x0_eps(DM_PRED_FLOW, &p, x0, eps, out, 2);
	CHECK_NEAR(out[0], -0.5, 1e-6);          /* x1 - x0 */
	CHECK_NEAR(out[1], 5, 1e-6);
	dm_pred_from_x0_eps(DM_PRED_V, &p, x0, eps, out, 2);
	CHECK_NEAR(out[0], 0.75 * 0.5 - 0.25 * 1, 1e-6);
	dm_pred_from_x0_eps(DM_PRED_SCORE, &p, x0, eps, out, 2);
	CHECK_NEAR(out[1], -3 / 0.25, 1e-5);
	dm_pred_from_x0_eps(DM_PRED_EPS, &p, x0, eps, out, 2);
	CHECK(out[0] == 0.5f);
	dm_pred_from_x0_eps(DM_PRED_X0, &p, x0, eps, out, 2);
	CHECK(out[1] == -2);
	dm_schedule_free(&s);
}

DM_TEST(train_epoch_order_and_split)
{
	int64_t a[100], b[100], c[100];
	int seen[100] = {0};

	dm_train_epoch_perm(a, 100, 5, 0);
	dm_train_epoch_perm(b, 100, 5, 0);
	dm_train_epoch_perm(c, 100, 5, 1);
	CHECK(memcmp(a, b, sizeof a) == 0);
	CHECK(memcmp(a, c, sizeof a) != 0);
	for (int i = 0; i < 100; i++)
		if (a[i] >= 0 && a[i] < 100)
			seen[a[i]]++;
	for (int i = 0; i < 100; i++)
		CHECK_EQ_INT(seen[i], 1);

	int64_t *tr, *va, nt, nv;
	CHECK_OK(dm_train_split(10, 0.25, 1, &tr, &nt, &va, &nv));
	CHECK_EQ_INT(nv, 3);
	CHECK_EQ_INT(nt, 7);
	memset(seen, 0, sizeof seen);
	for (int64_t i = 0; i < nt; i++)
		seen[tr[i]]++;
	for (int64_t i = 0; i < nv; i++)
		seen[va[i]]++;
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(seen[i], 1);
	free(tr);
	free(va);
	CHECK_FAILS(dm_train_split(1, 0.5, 1, &tr, &nt, &va, &nv), "no rows");
	CHECK_FAILS(dm_train_split(10, 1, 1, &tr, &nt, &va, &nv), "not in");
}

/* Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| of two 2-D samples
 * (V-statistic). */
static double
energy2(const float *a, int na, const float *b, int nb)
{
	double ab = 0, aa = 0, bb = 0;

	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			ab += hypot(a[2 * i] - b[2 * j], a[2 * i + 1] - b[2 * j + 1]);
	for (int i = 0; i < na; i++)
		for (int j = 0; j < na; j++)
			aa += hypot(a[2 * i] - a[2 * j], a[2 * i + 1] - a[2 * j + 1]);
	for (int i = 0; i < nb; i++)
		for (int j = 0; j < nb; j++)
			bb += hypot(b[2 * i] - b[2 * j], b[2 * i + 1] - b[2 * j + 1]);
	return 2 * ab / ((double)na * nb) - aa / ((double)na * na) -
	    bb / ((double)nb * nb);
}

/* mean (2) and covariance (xx, xy, yy) of a 2-D sample */
static void
moments2(const float *x, int n, double *mu, double *cov)
{
	mu[0] = mu[1] = cov[0] = cov[1] = cov[2] = 0;
	for (int i = 0; i < n; i++) {
		mu[0] += x[2 * i];
		mu[1] += x[2 * i + 1];
	}
	mu[0] /= n;
	mu[1] /= n;
	for (int i = 0; i < n; i++) {
		double u = x[2 * i] - mu[0], v = x[2 * i + 1] - mu[1];
		cov[0] += u * u / n;
		cov[1] += u * v / n;
		cov[2] += v * v / n;
	}
}

/* Flow matching with the default options on a 2-D set, then 2000 samples
 * by 50 Euler steps, against 2000 fresh rows of the set.  Writes the
 * samples to the scratch directory (NAME-samples.st) for a look with
 * dm-view --scatter. */
static void
flow_quality(const char *set, double tol_mu, double tol_cov, double tol_ed)
{
	struct dm_data_opts dopt;
	struct dm_file *df = dm_file_new(), *ref = dm_file_new();
	struct dm_model_config cfg;
	struct dm_train_opts o;
	int64_t shape[1] = {2}, n = 20000, *rows;
	int ns = 2000;

	/* minutes of CPU: only on request (DM_TRAIN_QUALITY=1 or =full) */
	if (getenv("DM_TRAIN_QUALITY") == NULL) {
		dm_file_free(df);
		dm_file_free(ref);
		return;
	}
	dm_data_opts_init(&dopt);
	CHECK_OK(dm_data_generate(set, &dopt, n, 1, df));
	CHECK_OK(dm_data_generate(set, &dopt, ns, 99, ref));
	struct dm_tensor *x = dm_file_get(df, "x"), *xr = dm_file_get(ref, "x");
	CHECK(x != NULL && xr != NULL);
	if (x == NULL || xr == NULL)
		return;
	/* the defaults with DM_TRAIN_QUALITY=full; a smaller network and
	 * fewer steps in `make check` */
	int full = getenv("DM_TRAIN_QUALITY") != NULL &&
	    strcmp(getenv("DM_TRAIN_QUALITY"), "full") == 0;
	dm_model_config_defaults(&cfg, DM_ARCH_MLP, 1, shape);
	if (!full)
		cfg.width = 128;
	cfg.pred = DM_PRED_FLOW;
	snprintf(cfg.schedule, sizeof cfg.schedule, "rf");
	struct dm_model *m = dm_model_new(&cfg, 0);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	dm_train_opts_defaults(&o);
	if (!full)
		o.steps = 1500;
	rows = malloc((size_t)n * sizeof *rows);
	for (int64_t i = 0; i < n; i++)
		rows[i] = i;
	struct dm_train_data td = {.n = n, .d = 2, .x0 = x->data, .rows = rows,
	    .nrows = n};
	struct dm_trainer *tr = dm_trainer_new(m, &o, &td);
	CHECK(tr != NULL);
	double t0 = dm_now();
	while (tr != NULL && tr->step < o.steps) {
		if (dm_trainer_step(tr) == -1) {
			CHECK_MSG(0, "%s: %s", set, dm_errstr());
			break;
		}
	}
	double secs = dm_now() - t0;
	/* sample with the EMA weights */
	memcpy(m->params, tr->ema, m->nparams * sizeof(float));
	int64_t sshape[2] = {ns, 2};
	struct dm_tensor *s = dm_tensor_new(2, sshape);
	CHECK_OK(dm_train_quick_sample(m, s->data, ns, 50, NULL, 5));
	double mu[2], cov[3], mur[2], covr[3];
	moments2(s->data, ns, mu, cov);
	moments2(xr->data, ns, mur, covr);
	double ed = energy2(s->data, ns, xr->data, ns);
	double ed_gauss;
	{	/* the same distance for N(0, I), the flow's start */
		float *g = malloc((size_t)ns * 2 * sizeof *g);
		dm_rng_normal(g, (size_t)ns * 2, 3, 0, 0);
		ed_gauss = energy2(g, ns, xr->data, ns);
		free(g);
	}
	fprintf(stderr, "flow %s: %.1f s, loss %.4f, mean err %.3f %.3f, "
	    "cov err %.3f %.3f %.3f, energy %.4f (N(0,I): %.4f)\n", set, secs,
	    tr->loss_ema, mu[0] - mur[0], mu[1] - mur[1], cov[0] - covr[0],
	    cov[1] - covr[1], cov[2] - covr[2], ed, ed_gauss);
	CHECK_NEAR(mu[0], mur[0], tol_mu);
	CHECK_NEAR(mu[1], mur[1], tol_mu);
	for (int k = 0; k < 3; k++)
		CHECK_NEAR(cov[k], covr[k], tol_cov);
	CHECK_MSG(ed < tol_ed, "%s: energy distance %g >= %g", set, ed, tol_ed);
	struct dm_file *sf = dm_file_new();
	char name[64];
	snprintf(name, sizeof name, "%s-samples.st", set);
	CHECK_OK(dm_tensor_set_name(s, "x"));
	CHECK_OK(dm_file_add(sf, s));
	CHECK_OK(dm_file_write(sf, dm_test_path(name), 0));
	if (getenv("DM_TRAIN_SAMPLES") != NULL) {
		snprintf(name, sizeof name, "%s/%s-samples.st",
		    getenv("DM_TRAIN_SAMPLES"), set);
		CHECK_OK(dm_file_write(sf, name, 0));
	}
	dm_file_free(sf);
	dm_trainer_free(tr);
	dm_model_free(m);
	free(rows);
	dm_file_free(df);
	dm_file_free(ref);
}

DM_TEST(train_flow_quality_moons)
{
	flow_quality("moons", 0.05, 0.05, 0.01);
}

DM_TEST(train_flow_quality_8gaussians)
{
	flow_quality("8gaussians", 0.15, 0.3, 0.02);
}
