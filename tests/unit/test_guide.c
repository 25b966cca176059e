/* test_guide.c — classifier guidance, score distillation and dynamic
 * thresholding against exact answers: the class posterior of a Gaussian
 * mixture with classes (closed form, checked by finite differences and by
 * sub-mixture densities), guided sampling of the class-conditional
 * mixture, SDS ending at the mixture's modes, thresholding as percentile
 * clip and rescale. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_sample.h"
#include "test.h"

/* A mixture from arrays (copied), with classes when cls != NULL. */
static void
mix_init(struct dm_gmm *g, int K, int d, const double *w, const double *m,
    const double *sd, const int64_t *cls)
{
	double *wc = malloc(K * sizeof *wc), *mc = malloc(K * d * sizeof *mc);
	double *cc = calloc((size_t)K * d * d, sizeof *cc);

	memcpy(wc, w, K * sizeof *wc);
	memcpy(mc, m, K * d * sizeof *mc);
	for (int k = 0; k < K; k++)
		for (int i = 0; i < d; i++)
			cc[(size_t)k * d * d + i * d + i] = sd[k] * sd[k];
	CHECK_OK(dm_gmm_init(g, K, d, wc, mc, cc));
	if (cls)
		CHECK_OK(dm_gmm_set_classes(g, cls));
}

/* The components of class c as a mixture of their own (weights
 * renormalized), and the class's prior weight. */
static double
sub_mixture(struct dm_gmm *sub, const struct dm_gmm *g, int c)
{
	int K = 0, d = g->d;
	double w[8], m[16], sd[8], ws = 0;

	for (int k = 0; k < g->K; k++)
		if (g->cls[k] == c) {
			w[K] = g->weights[k];
			ws += w[K];
			memcpy(m + K * d, g->means + k * d, d * sizeof *m);
			sd[K] = sqrt(g->covs[(size_t)k * d * d]);
			K++;
		}
	mix_init(sub, K, d, w, m, sd, NULL);
	return ws;
}

static const double W4[4] = {0.3, 0.1, 0.4, 0.2};
static const double M4[8] = {-2, 0,  0, 2,  2, 0,  0, -2};
static const double S4[4] = {0.4, 0.4, 0.4, 0.4};
static const int64_t C4[4] = {0, 0, 1, 1};

/* log p(y | x_t) against log(P(y) p_t(x | y)) - log p_t(x) from the
 * densities of the sub-mixtures; its gradient against central finite
 * differences; the class denoiser against the sub-mixture's denoiser. */
DM_TEST(gmm_class_posterior_exact)
{
	struct dm_gmm g, sub[2];
	double pw[2];
	static const double ab[3][2] = {{1, 0.3}, {0.6, 0.8}, {0.1, 1}};
	float x[10 * 2];
	int64_t y[10];

	mix_init(&g, 4, 2, W4, M4, S4, C4);
	CHECK_EQ_INT(g.classes, 2);
	for (int c = 0; c < 2; c++)
		pw[c] = sub_mixture(&sub[c], &g, c);
	dm_rng_normal(x, 20, 5, 0, 0);
	for (int i = 0; i < 20; i++)
		x[i] *= 1.5f;
	for (int i = 0; i < 10; i++)
		y[i] = i % 2;
	for (int a = 0; a < 3; a++) {
		double al = ab[a][0], si = ab[a][1], lp[10], lall[10], lsub[10];
		float gr[20], x0[20], x0s[20], e[20], es[20];
		CHECK_OK(dm_gmm_class_logp(&g, al, si, x, y, lp, gr, 10));
		CHECK_OK(dm_gmm_logp(&g, al, si, x, lall, 10));
		for (int i = 0; i < 10; i++) {
			CHECK_OK(dm_gmm_logp(&sub[y[i]], al, si, x + 2 * i,
			    &lsub[i], 1));
			double want = log(pw[y[i]]) + lsub[i] - lall[i];
			CHECK_MSG(fabs(lp[i] - want) < 1e-9 * (1 + fabs(want)),
			    "alpha %g row %d: log p(y|x) %.12g, sub-mixtures %.12g",
			    al, i, lp[i], want);
			for (int j = 0; j < 2; j++) {
				float xp[2] = {x[2 * i], x[2 * i + 1]};
				float xm[2] = {x[2 * i], x[2 * i + 1]};
				double h = 1e-2, lpp, lpm;
				xp[j] += (float)h;
				xm[j] -= (float)h;
				h = ((double)xp[j] - xm[j]) / 2;
				CHECK_OK(dm_gmm_class_logp(&g, al, si, xp, &y[i], &lpp,
				    NULL, 1));
				CHECK_OK(dm_gmm_class_logp(&g, al, si, xm, &y[i], &lpm,
				    NULL, 1));
				double fd = (lpp - lpm) / (2 * h);
				CHECK_MSG(fabs(gr[2 * i + j] - fd) < 2e-3 * (1 +
				    fabs(fd)), "alpha %g row %d: gradient[%d] %.6g, "
				    "finite difference %.6g", al, i, j, gr[2 * i + j], fd);
			}
			CHECK_OK(dm_gmm_denoise_class(&g, al, si, x + 2 * i, &y[i],
			    x0 + 2 * i, e + 2 * i, 1));
			CHECK_OK(dm_gmm_denoise(&sub[y[i]], al, si, x + 2 * i,
			    x0s + 2 * i, es + 2 * i, 1));
			for (int j = 0; j < 2; j++) {
				CHECK_NEAR(x0[2 * i + j], x0s[2 * i + j], 1e-5);
				CHECK_NEAR(e[2 * i + j], es[2 * i + j], 1e-5);
			}
		}
	}
	/* the null class (label = classes) is the whole mixture */
	{
		int64_t yn[10];
		float a[20], b[20];
		for (int i = 0; i < 10; i++)
			yn[i] = 2;
		CHECK_OK(dm_gmm_denoise_class(&g, 0.7, 0.7, x, yn, a, NULL, 10));
		CHECK_OK(dm_gmm_denoise(&g, 0.7, 0.7, x, b, NULL, 10));
		CHECK(memcmp(a, b, sizeof a) == 0);
	}
	y[0] = 2;
	CHECK_FAILS(dm_gmm_class_logp(&g, 1, 1, x, y, NULL, NULL, 1),
	    "out of range");
	int64_t bad[4] = {0, 2, 2, 0};
	CHECK_FAILS(dm_gmm_set_classes(&sub[0], bad), "out of range");
	int64_t gap[4] = {0, 2, 2, 0};
	CHECK_FAILS(dm_gmm_set_classes(&g, gap), "class 1 has no component");
	dm_gmm_free(&sub[0]);
	dm_gmm_free(&sub[1]);
	dm_gmm_free(&g);
}

/* A gmm model file in memory -> struct dm_model. */
static struct dm_model *
gmm_model(const struct dm_gmm *g, const char *schedule)
{
	struct dm_file *f = dm_file_new();
	struct dm_model *m = NULL;

	CHECK(f != NULL);
	CHECK_OK(dm_gmm_to_file(g, f, schedule));
	CHECK_OK(dm_model_from_file(&m, f));
	dm_file_free(f);
	return m;
}

/* The denoiser of a model (unconditional, or at label y) with classifier
 * guidance from clf at `scale` (clf NULL = none). */
struct guided {
	struct dm_model *m, *clf;
	double scale;
	int64_t y;
	int64_t *ys;
};

static int
guided_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct guided *G = ctx;
	struct dm_sched_point p;

	(void)first;
	for (int b = 0; b < B; b++)
		G->ys[b] = G->y;
	/* the samplers call with one time per batch here */
	for (int b = 1; b < B; b++)
		CHECK(t[b] == t[0]);
	if (dm_model_denoise(G->m, x0, eps, x, t[0], G->clf ? NULL : G->ys,
	    B) == -1)
		return -1;
	if (G->clf == NULL)
		return 0;
	dm_schedule_at(&G->m->sched, dm_schedule_clamp(&G->m->sched, t[0]), &p);
	return dm_model_classifier_guidance(G->clf, G->scale, &p, x0, eps, x,
	    G->ys, B);
}

#define NS 4000

static void
sample_guided(struct guided *G, enum dm_sampler kind, int steps, float *x,
    int n)
{
	struct dm_sampler_opts o;
	struct dm_denoiser D = {guided_fn, G, dm_model_in_size(G->m),
	    &G->m->sched, NULL};
	int64_t nfe;

	dm_sampler_opts_defaults(&o);
	o.kind = kind;
	o.steps = steps;
	o.seed = 11;
	G->ys = malloc((size_t)n * sizeof *G->ys);
	dm_sample_noise(x, n, D.d, 11, 0);
	CHECK_OK(dm_sample_run(&D, &o, x, n, 0, &nfe));
	free(G->ys);
}

/* Classifier guidance at scale 1 with the exact classifier turns the
 * unconditional denoiser into the class-conditional one: samples follow
 * the class's mixture (component weights 0.75/0.25, their means). */
DM_TEST(classifier_guidance_samples_class_conditional)
{
	struct dm_gmm g, gu;
	float *x = malloc(NS * 2 * sizeof *x);

	mix_init(&g, 4, 2, W4, M4, S4, C4);
	mix_init(&gu, 4, 2, W4, M4, S4, NULL);
	struct dm_model *clf = gmm_model(&g, "rf");
	struct dm_model *den = gmm_model(&gu, "rf");
	CHECK(dm_model_is_classifier(clf));
	CHECK(!dm_model_is_classifier(den));
	CHECK_EQ_INT(clf->cfg.classes, 2);
	for (int y = 0; y < 2; y++) {
		struct guided G = {den, clf, 1, y, NULL};
		int cnt[4] = {0};
		double ms[4][2] = {{0}};
		sample_guided(&G, DM_SAMPLER_EULER_A, 100, x, NS);
		for (int i = 0; i < NS; i++) {
			int best = 0;
			double bd = INFINITY;
			for (int k = 0; k < 4; k++) {
				double a = x[2 * i] - M4[2 * k], b = x[2 * i + 1] - M4[2 * k + 1];
				if (a * a + b * b < bd) {
					bd = a * a + b * b;
					best = k;
				}
			}
			cnt[best]++;
			ms[best][0] += x[2 * i];
			ms[best][1] += x[2 * i + 1];
		}
		int in = 0;
		double wy = 0;
		for (int k = 0; k < 4; k++)
			if (C4[k] == y) {
				in += cnt[k];
				wy += W4[k];
			}
		CHECK_MSG(in >= NS - 10, "class %d: %d of %d samples in the class",
		    y, in, NS);
		for (int k = 0; k < 4; k++) {
			if (C4[k] != y)
				continue;
			double p = W4[k] / wy, f = (double)cnt[k] / NS;
			CHECK_MSG(fabs(f - p) < 5 * sqrt(p * (1 - p) / NS) + 0.01,
			    "class %d component %d: weight %.4f, expected %.4f", y,
			    k, f, p);
			for (int j = 0; j < 2; j++) {
				double m = ms[k][j] / cnt[k];
				CHECK_MSG(fabs(m - M4[2 * k + j]) < 5 * 0.4 /
				    sqrt(cnt[k]) + 0.03, "class %d component %d: "
				    "mean[%d] %.4f, expected %.4f", y, k, j, m,
				    M4[2 * k + j]);
			}
		}
	}
	dm_model_free(clf);
	dm_model_free(den);
	dm_gmm_free(&g);
	dm_gmm_free(&gu);
	free(x);
}

/* Two overlapping classes, N((-0.5, 0), I) and N((0.5, 0), I), weights
 * 1/2: the class-0 conditional puts P(x_1 < 0) = Phi(0.5) = 0.6915 of its
 * mass left of 0; guidance (classifier-free or classifier) at scale 1
 * reproduces it, at scale 3 it concentrates further, at 0 it is the
 * unconditional 1/2. */
static double
left_fraction(struct guided *G, enum dm_sampler kind, float *x)
{
	int left = 0;

	sample_guided(G, kind, 50, x, NS);
	for (int i = 0; i < NS; i++)
		left += x[2 * i] < 0;
	return (double)left / NS;
}

DM_TEST(guidance_two_classes_sharpens)
{
	static const double w[2] = {0.5, 0.5}, m[4] = {-0.5, 0, 0.5, 0};
	static const double sd[2] = {1, 1};
	static const int64_t c[2] = {0, 1};
	struct dm_gmm g, gu;
	float *x = malloc(NS * 2 * sizeof *x);
	double want = 0.5 * erfc(-0.5 / sqrt(2)), tol = 5 * sqrt(0.25 / NS);

	mix_init(&g, 2, 2, w, m, sd, c);
	mix_init(&gu, 2, 2, w, m, sd, NULL);
	struct dm_model *clf = gmm_model(&g, "linear");
	struct dm_model *den = gmm_model(&gu, "linear");
	struct dm_model *cond = gmm_model(&g, "linear");
	struct guided G = {den, clf, 1, 0, NULL};
	double f1 = left_fraction(&G, DM_SAMPLER_DDPM, x);
	CHECK_MSG(fabs(f1 - want) < tol, "classifier scale 1: %.4f left, "
	    "expected %.4f", f1, want);
	G.scale = 3;
	double f3 = left_fraction(&G, DM_SAMPLER_DDPM, x);
	CHECK_MSG(f3 > want + 0.05, "classifier scale 3: %.4f left, not above "
	    "%.4f", f3, want);
	G.scale = 0;
	double f0 = left_fraction(&G, DM_SAMPLER_DDPM, x);
	CHECK_MSG(fabs(f0 - 0.5) < tol, "scale 0: %.4f left", f0);
	/* the conditional gmm denoiser at label 0 (classifier-free w = 1) */
	struct guided C = {cond, NULL, 1, 0, NULL};
	double fc = left_fraction(&C, DM_SAMPLER_EULER_A, x);
	CHECK_MSG(fabs(fc - want) < tol, "conditional: %.4f left, expected "
	    "%.4f", fc, want);
	dm_model_free(clf);
	dm_model_free(den);
	dm_model_free(cond);
	dm_gmm_free(&g);
	dm_gmm_free(&gu);
	free(x);
}

/* SDS on a point set with the exact denoiser of three well-separated
 * components: every point ends near one of the means. */
static int
gmm_den_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct dm_model *m = ctx;

	(void)first;
	return dm_model_denoise(m, x0, eps, x, t[0], NULL, B);
}

DM_TEST(sds_points_end_at_modes)
{
	static const double w[3] = {0.3, 0.3, 0.4};
	static const double m[6] = {-3, 0, 3, 0, 0, 3}, sd[3] = {0.2, 0.2, 0.2};
	struct dm_gmm g;
	struct dm_sds_opts o;
	enum { N = 200 };
	float x[N * 2], x2[N * 2];
	int64_t nfe;
	int hit[3] = {0};

	mix_init(&g, 3, 2, w, m, sd, NULL);
	struct dm_model *den = gmm_model(&g, "rf");
	struct dm_denoiser D = {gmm_den_fn, den, 2, &den->sched, NULL};
	dm_rng_uniform(x, N * 2, 4, 0, 0);
	for (int i = 0; i < N * 2; i++)
		x[i] = 8 * x[i] - 4;
	memcpy(x2, x, sizeof x);
	dm_sds_opts_defaults(&o);
	o.t_hi = 0.3;
	o.seed = 2;
	CHECK_OK(dm_sds_run(&D, &o, x, N, 0, &nfe));
	CHECK_EQ_INT(nfe, o.steps);
	double worst = 0;
	for (int i = 0; i < N; i++) {
		double bd = INFINITY;
		int bk = 0;
		for (int k = 0; k < 3; k++) {
			double a = x[2 * i] - m[2 * k], b = x[2 * i + 1] - m[2 * k + 1];
			if (sqrt(a * a + b * b) < bd) {
				bd = sqrt(a * a + b * b);
				bk = k;
			}
		}
		hit[bk]++;
		worst = fmax(worst, bd);
		if (getenv("DM_TEST_VERBOSE") && bd > 0.05)
			fprintf(stderr, "start (%.2f %.2f) end (%.3f %.3f)\n",
			    x2[2 * i], x2[2 * i + 1], x[2 * i], x[2 * i + 1]);
	}
	CHECK_MSG(worst < 0.1, "a point ends %.3f from every mean", worst);
	for (int k = 0; k < 3; k++)
		CHECK_MSG(hit[k] > 0, "no point at mode %d", k);
	/* rows do not depend on the batch */
	CHECK_OK(dm_sds_run(&D, &o, x2, 7, 0, &nfe));
	CHECK_OK(dm_sds_run(&D, &o, x2 + 14, N - 7, 7, &nfe));
	CHECK(memcmp(x, x2, sizeof x) == 0);
	o.t_lo = 0.6;
	CHECK_FAILS(dm_sds_run(&D, &o, x, N, 0, &nfe), "t_lo <= t_hi");
	dm_model_free(den);
	dm_gmm_free(&g);
}

/* Dynamic thresholding of x0_hat: with the consistency sampler's single
 * step the result is the thresholded x0_hat itself; the expected values
 * are the percentile of |x0| by linear interpolation (numpy's default),
 * at least 1, then clip and divide. */
struct fixed {
	float *x0;
};

static int
fixed_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct fixed *F = ctx;

	(void)t;
	memcpy(x0, F->x0 + (size_t)first * 50, (size_t)B * 50 * sizeof *x0);
	for (int i = 0; i < B * 50; i++)
		eps[i] = x[i];
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

DM_TEST(dynamic_thresholding_closed_form)
{
	enum { B = 3, d = 50 };
	float x0[B * d], x[B * d];
	struct fixed F = {x0};
	struct dm_schedule s;
	struct dm_sampler_opts o;
	int64_t nfe;

	CHECK_OK(dm_schedule_from_string(&s, "linear"));
	struct dm_denoiser D = {fixed_fn, &F, d, &s, NULL};
	dm_rng_normal(x0, B * d, 8, 0, 0);
	for (int i = 0; i < d; i++) {
		x0[i] *= 3;             /* row 0: many values beyond 1 */
		x0[d + i] *= 0.2f;      /* row 1: all within 1: unchanged */
		x0[2 * d + i] = (float)(i - 25) / 5;  /* row 2: a ramp */
	}
	dm_sampler_opts_defaults(&o);
	o.kind = DM_SAMPLER_CONSISTENCY;
	o.steps = 1;
	o.threshold = 0.9;
	dm_sample_noise(x, B, d, 1, 0);
	CHECK_OK(dm_sample_run(&D, &o, x, B, 0, &nfe));
	for (int b = 0; b < B; b++) {
		double a[d];
		for (int i = 0; i < d; i++)
			a[i] = fabs(x0[b * d + i]);
		qsort(a, d, sizeof *a, cmp_double);
		double pos = 0.9 * (d - 1), lo = floor(pos);
		double q = a[(int)lo] + (pos - lo) * (a[(int)lo + 1] - a[(int)lo]);
		double sc = q > 1 ? q : 1;
		for (int i = 0; i < d; i++) {
			double v = x0[b * d + i];
			double want = (v > sc ? sc : v < -sc ? -sc : v) / sc;
			CHECK_MSG(fabs(x[b * d + i] - want) < 1e-6, "row %d [%d]: "
			    "%.7g, expected %.7g (s = %g)", b, i, x[b * d + i], want,
			    sc);
		}
		if (b == 0)
			CHECK(sc > 1);
	}
	/* row 2 by hand: |ramp| sorted has 45th value (pos 44.1) 4.4 and
	 * the next 4.6, so s = 4.4 + 0.1 * 0.2 = 4.42 */
	CHECK_NEAR(x[2 * d + 0], -1, 1e-6);
	CHECK_NEAR(x[2 * d + 35], 2 / 4.42, 1e-6);
	CHECK_NEAR(x[2 * d + 49], 1, 1e-6);
	dm_schedule_free(&s);
}
