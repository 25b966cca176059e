/* test_sample.c — every sampler against the exact Gaussian-mixture
 * denoiser: deterministic solvers converge to a high-accuracy reference
 * with their order; stochastic samplers reproduce the mixture's moments;
 * inpainting keeps known coordinates and samples the Gaussian conditional;
 * samples do not depend on the batch split. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_sample.h"
#include "test.h"

struct gden {
	struct dm_gmm g;
	struct dm_schedule s;
	struct dm_denoiser D;
};

static int
gmm_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct gden *G = ctx;
	int d = G->g.d;

	(void)first;
	for (int b = 0, e; b < B; b = e) {
		struct dm_sched_point p;
		/* rows with the same time in one call */
		for (e = b + 1; e < B && t[e] == t[b]; e++)
			;
		dm_schedule_at(&G->s, t[b], &p);
		if (dm_gmm_denoise(&G->g, p.alpha, p.sigma, x + (size_t)b * d,
		    x0 + (size_t)b * d, eps + (size_t)b * d, e - b) == -1)
			return -1;
	}
	return 0;
}

/* 2-D mixtures of three Gaussians with different covariances: well
 * separated (for the distribution tests) or overlapping (a smooth flow,
 * for the convergence orders: with sharp mode boundaries the errors stay
 * pre-asymptotic until very many steps). */
static const double W3[3] = {0.5, 0.3, 0.2};
static const double M3[6] = {-1.5, 0.5, 1.0, 1.0, 0.5, -1.5};
static const double C3[12] = {0.20, 0.05, 0.05, 0.10,
    0.05, 0, 0, 0.30,  0.15, -0.08, -0.08, 0.12};
static const double C3wide[12] = {0.9, 0.2, 0.2, 0.6,
    0.5, 0, 0, 0.8,  0.7, -0.3, -0.3, 0.6};

static void
gden_init_covs(struct gden *G, const char *schedule, const double *C)
{
	double *w = malloc(3 * sizeof *w), *m = malloc(6 * sizeof *m);
	double *c = malloc(12 * sizeof *c);

	memcpy(w, W3, sizeof W3);
	memcpy(m, M3, sizeof M3);
	memcpy(c, C, sizeof C3);
	CHECK_OK(dm_gmm_init(&G->g, 3, 2, w, m, c));
	CHECK_OK(dm_schedule_from_string(&G->s, schedule));
	G->D = (struct dm_denoiser){gmm_fn, G, 2, &G->s, NULL};
}

static void
gden_init(struct gden *G, const char *schedule)
{
	gden_init_covs(G, schedule, C3);
}

static void
gden_free(struct gden *G)
{
	dm_gmm_free(&G->g);
	dm_schedule_free(&G->s);
}

#define NB 32

/* RMS of x - ref over NB rows from the same starting noise. */
static double
run_error(struct gden *G, enum dm_sampler kind, int steps, const float *ref)
{
	struct dm_sampler_opts o;
	float x[NB * 2];
	int64_t nfe;

	dm_sampler_opts_defaults(&o);
	o.kind = kind;
	o.steps = steps;
	o.eta = 0;
	dm_sample_noise(x, NB, 2, 7, 0);
	if (dm_sample_run(&G->D, &o, x, NB, 0, &nfe) == -1) {
		CHECK_MSG(0, "%s: %s", dm_sampler_name(kind), dm_errstr());
		return NAN;
	}
	double e = 0;
	for (int i = 0; i < NB * 2; i++)
		e += (x[i] - ref[i]) * (x[i] - ref[i]);
	return sqrt(e / (NB * 2));
}

/* Least-squares slope of log(err) against log(steps). */
static double
order(struct gden *G, enum dm_sampler kind, const int *steps, int n,
    const float *ref)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0;

	for (int i = 0; i < n; i++) {
		double e = run_error(G, kind, steps[i], ref);
		if (getenv("DM_TEST_VERBOSE"))
			fprintf(stderr, "%s %d steps: error %.3g\n",
			    dm_sampler_name(kind), steps[i], e);
		double lx = log(steps[i]), ly = log(e);
		sx += lx; sy += ly; sxx += lx * lx; sxy += lx * ly;
	}
	return -(n * sxy - sx * sy) / (n * sxx - sx * sx);
}

DM_TEST(sample_convergence_orders)
{
	struct gden G;
	struct dm_sampler_opts o;
	float ref[NB * 2];
	int64_t nfe;

	/* rf with t_max = 1 (the mixture needs no clamp) and a tiny t_min */
	gden_init_covs(&G, "rf:t_min=1e-6,t_max=1", C3wide);
	dm_sampler_opts_defaults(&o);
	o.kind = DM_SAMPLER_RK4;
	o.steps = 2000;
	dm_sample_noise(ref, NB, 2, 7, 0);
	CHECK_OK(dm_sample_run(&G.D, &o, ref, NB, 0, &nfe));
	CHECK_EQ_INT(nfe, 8000);

	/* step ranges where the error is asymptotic and well above the float
	 * floor (~1e-6 here); the exponential integrators take big steps in
	 * lambda near t = 0 on a uniform-t grid, so they need more steps */
	static const int s1[] = {16, 32, 64, 128}, s2[] = {8, 16, 32, 64};
	static const int s2b[] = {32, 64, 128, 256}, s4[] = {3, 6, 12};
	struct { enum dm_sampler k; const int *st; int n; double lo, hi; } cases[] = {
		{DM_SAMPLER_EULER, s1, 4, 0.8, 1.3},
		{DM_SAMPLER_DDIM, s1, 4, 0.8, 1.3},
		{DM_SAMPLER_HEUN, s2, 4, 1.7, 2.5},
		{DM_SAMPLER_DPM2, s2b, 4, 1.7, 2.6},
		{DM_SAMPLER_DPMPP2M, s2b, 4, 1.6, 2.6},
		{DM_SAMPLER_RK4, s4, 3, 3.4, 4.8},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		double p = order(&G, cases[i].k, cases[i].st, cases[i].n, ref);
		CHECK_MSG(p >= cases[i].lo && p <= cases[i].hi,
		    "%s: observed order %.2f, expected %.1f..%.1f",
		    dm_sampler_name(cases[i].k), p, cases[i].lo, cases[i].hi);
	}
	/* adaptive at a tight tolerance lands on the reference */
	o.kind = DM_SAMPLER_ADAPTIVE;
	o.rtol = o.atol = 1e-6;
	float x[NB * 2];
	dm_sample_noise(x, NB, 2, 7, 0);
	CHECK_OK(dm_sample_run(&G.D, &o, x, NB, 0, &nfe));
	double e = 0;
	for (int i = 0; i < NB * 2; i++)
		e = fmax(e, fabs(x[i] - ref[i]));
	CHECK_MSG(e < 1e-3, "adaptive error %g with %lld NFE", e, (long long)nfe);
	gden_free(&G);
}

/* Sample moments against the mixture's mean and covariance. */
static void
moments(const float *x, int n, double mean[2], double cov[3])
{
	memset(mean, 0, 2 * sizeof *mean);
	memset(cov, 0, 3 * sizeof *cov);
	for (int i = 0; i < n; i++) {
		mean[0] += x[2 * i];
		mean[1] += x[2 * i + 1];
	}
	mean[0] /= n;
	mean[1] /= n;
	for (int i = 0; i < n; i++) {
		double a = x[2 * i] - mean[0], b = x[2 * i + 1] - mean[1];
		cov[0] += a * a; cov[1] += a * b; cov[2] += b * b;
	}
	for (int k = 0; k < 3; k++)
		cov[k] /= n - 1;
}

static void
mixture_moments(const struct dm_gmm *g, double mean[2], double cov[3])
{
	double s[3] = {0};

	mean[0] = mean[1] = 0;
	for (int k = 0; k < g->K; k++) {
		mean[0] += g->weights[k] * g->means[2 * k];
		mean[1] += g->weights[k] * g->means[2 * k + 1];
	}
	for (int k = 0; k < g->K; k++) {
		const double *m = g->means + 2 * k, *c = g->covs + 4 * k;
		double a = m[0] - mean[0], b = m[1] - mean[1];
		s[0] += g->weights[k] * (c[0] + a * a);
		s[1] += g->weights[k] * (c[1] + a * b);
		s[2] += g->weights[k] * (c[3] + b * b);
	}
	memcpy(cov, s, sizeof s);
}

#define NS 4000

DM_TEST(sample_stochastic_reproduce_mixture)
{
	static const struct { enum dm_sampler k; const char *sched; int steps; } cases[] = {
		{DM_SAMPLER_DDPM, "linear", 100},
		{DM_SAMPLER_DDPM, "cosine", 100},
		{DM_SAMPLER_EULER_A, "vp", 100},
		{DM_SAMPLER_EULER_A, "rf:t_max=1", 100},
		{DM_SAMPLER_EM, "vp", 400},
		{DM_SAMPLER_DPMPP2M_SDE, "linear", 50},
		{DM_SAMPLER_DPMPP2M_SDE, "edm", 50},
		{DM_SAMPLER_DDIM, "vp", 100},        /* eta = 1 */
	};
	float *x = malloc(NS * 2 * sizeof *x);

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct gden G;
		struct dm_sampler_opts o;
		double m[2], v[3], mm[2], mv[3];
		int64_t nfe;
		gden_init(&G, cases[c].sched);
		dm_sampler_opts_defaults(&o);
		o.kind = cases[c].k;
		o.steps = cases[c].steps;
		o.seed = 3;
		dm_sample_noise(x, NS, 2, 3, 0);
		if (dm_sample_run(&G.D, &o, x, NS, 0, &nfe) == -1) {
			CHECK_MSG(0, "%s: %s", dm_sampler_name(o.kind), dm_errstr());
			gden_free(&G);
			continue;
		}
		moments(x, NS, m, v);
		mixture_moments(&G.g, mm, mv);
		/* standard errors: mean sqrt(var/n); covariance ~ var sqrt(2/n);
		 * plus 0.03 for the discretization bias of the step count */
		for (int j = 0; j < 2; j++)
			CHECK_MSG(fabs(m[j] - mm[j]) < 5 * sqrt(mv[2 * j] / NS) + 0.03,
			    "%s/%s: mean[%d] %.4f vs %.4f", dm_sampler_name(o.kind),
			    cases[c].sched, j, m[j], mm[j]);
		for (int j = 0; j < 3; j++)
			CHECK_MSG(fabs(v[j] - mv[j]) < 5 * 1.5 * sqrt(2.0 / NS) + 0.03,
			    "%s/%s: cov[%d] %.4f vs %.4f", dm_sampler_name(o.kind),
			    cases[c].sched, j, v[j], mv[j]);
		gden_free(&G);
	}
	free(x);
}

/* Samples do not depend on how the rows are split into batches. */
DM_TEST(sample_batch_split_invariance)
{
	struct gden G;
	struct dm_sampler_opts o;
	float a[10 * 2], b[10 * 2];
	int64_t nfe;

	gden_init(&G, "linear");
	for (int k = 0; k < DM_SAMPLER_COUNT; k++) {
		dm_sampler_opts_defaults(&o);
		o.kind = (enum dm_sampler)k;
		o.steps = 12;
		o.seed = 9;
		dm_sample_noise(a, 10, 2, 9, 0);
		CHECK_OK(dm_sample_run(&G.D, &o, a, 10, 0, &nfe));
		dm_sample_noise(b, 3, 2, 9, 0);
		dm_sample_noise(b + 6, 7, 2, 9, 3);
		CHECK_OK(dm_sample_run(&G.D, &o, b, 3, 0, &nfe));
		CHECK_OK(dm_sample_run(&G.D, &o, b + 6, 7, 3, &nfe));
		CHECK_MSG(memcmp(a, b, sizeof a) == 0, "%s depends on the batch",
		    dm_sampler_name(o.kind));
	}
	gden_free(&G);
}

/* The hint of coming times (dm_denoiser.prepare): for every fixed-grid
 * sampler, each evaluation is at a time of the latest hint, and the hint
 * holds no time the steps do not use, over several hint chunks; the run
 * ends by withdrawing it. */
struct hinted {
	struct gden *G;
	double t[512];
	int n, calls, misses, unused, released;
	unsigned char used[512];
};

static int
hinted_prepare(void *ctx, const double *t, int n)
{
	struct hinted *h = ctx;

	for (int i = 0; i < h->n; i++)
		h->unused += !h->used[i];
	if (n == 0) {	/* the end of the run */
		h->released++;
		h->n = 0;
		return 0;
	}
	CHECK(n >= 1 && n <= 512);
	h->n = n < 512 ? n : 512;
	memcpy(h->t, t, (size_t)h->n * sizeof *t);
	memset(h->used, 0, sizeof h->used);
	h->calls++;
	return 0;
}

static int
hinted_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct hinted *h = ctx;
	int i = 0;

	while (i < h->n && h->t[i] != t[0])
		i++;
	if (i == h->n)
		h->misses++;
	else
		h->used[i] = 1;
	return gmm_fn(h->G, x0, eps, x, t, B, first);
}

DM_TEST(sample_prepare_hint)
{
	struct gden G;
	struct hinted h;
	struct dm_sampler_opts o;
	float x[4 * 2];
	int64_t nfe;
	static const char *sch[] = {"linear", "cosine", "rf", "edm"};

	for (int q = 0; q < 4; q++) {
		gden_init(&G, sch[q]);
		struct dm_denoiser D = {hinted_fn, &h, 2, &G.s, hinted_prepare};
		for (int k = 0; k < DM_SAMPLER_COUNT; k++) {
			if (k == DM_SAMPLER_ADAPTIVE)
				continue;
			memset(&h, 0, sizeof h);
			h.G = &G;
			dm_sampler_opts_defaults(&o);
			o.kind = (enum dm_sampler)k;
			o.steps = 150;	/* three chunks of hints */
			dm_sample_noise(x, 4, 2, 3, 0);
			CHECK_OK(dm_sample_run(&D, &o, x, 4, 0, &nfe));
			CHECK_MSG(h.calls == 3 && h.misses == 0 && h.unused == 0 &&
			    h.released == 1, "%s on %s: %d hints, %d evaluations "
			    "not hinted, %d hinted times unused, %d releases",
			    dm_sampler_name(o.kind), sch[q], h.calls, h.misses,
			    h.unused, h.released);
		}
		gden_free(&G);
	}
}

/* Inpainting a single Gaussian: the free coordinate must follow the
 * conditional N(mu_2 + c12/c11 (x1 - mu_1), c22 - c12^2/c11). */
DM_TEST(sample_inpainting_gaussian_conditional)
{
	struct gden G;
	double *w = malloc(sizeof *w), *m = malloc(2 * sizeof *m);
	double *c = malloc(4 * sizeof *c);
	float *x = malloc(NS * 2 * sizeof *x), *mask = malloc(NS * 2 * sizeof *mask);
	float *known = malloc(NS * 2 * sizeof *known);
	struct dm_sampler_opts o;
	int64_t nfe;

	w[0] = 1; m[0] = 0.5; m[1] = -1; c[0] = 1; c[1] = c[2] = 0.8; c[3] = 1;
	CHECK_OK(dm_gmm_init(&G.g, 1, 2, w, m, c));
	CHECK_OK(dm_schedule_from_string(&G.s, "linear"));
	G.D = (struct dm_denoiser){gmm_fn, &G, 2, &G.s, NULL};
	for (int i = 0; i < NS; i++) {
		mask[2 * i] = 1; mask[2 * i + 1] = 0;
		known[2 * i] = 1.5f; known[2 * i + 1] = 0;
	}
	dm_sampler_opts_defaults(&o);
	o.kind = DM_SAMPLER_DDPM;
	o.steps = 200;
	o.mask = mask;
	o.known = known;
	o.resample = 10;	/* plain replacement (1) is biased toward the prior */
	dm_sample_noise(x, NS, 2, 1, 0);
	CHECK_OK(dm_sample_run(&G.D, &o, x, NS, 0, &nfe));
	double s = 0, s2 = 0;
	int exact = 1;
	for (int i = 0; i < NS; i++) {
		exact &= x[2 * i] == 1.5f;
		s += x[2 * i + 1];
		s2 += x[2 * i + 1] * x[2 * i + 1];
	}
	double mean = s / NS, var = s2 / NS - mean * mean;
	double cm = -1 + 0.8 * (1.5 - 0.5), cv = 1 - 0.64;
	CHECK(exact);
	CHECK_MSG(fabs(mean - cm) < 5 * sqrt(cv / NS) + 0.02,
	    "conditional mean %.4f, expected %.4f", mean, cm);
	CHECK_MSG(fabs(var - cv) < 5 * cv * sqrt(2.0 / NS) + 0.02,
	    "conditional variance %.4f, expected %.4f", var, cv);
	gden_free(&G);
	free(x); free(mask); free(known);
}

DM_TEST(sample_names_and_errors)
{
	enum dm_sampler k;
	struct gden G;
	struct dm_sampler_opts o;
	float x[2];
	int64_t nfe;

	CHECK_OK(dm_sampler_parse("dpmpp_2m", &k));
	CHECK_EQ_INT(k, DM_SAMPLER_DPMPP2M);
	CHECK_OK(dm_sampler_parse("euler_ancestral", &k));
	CHECK_EQ_INT(k, DM_SAMPLER_EULER_A);
	for (int i = 0; i < DM_SAMPLER_COUNT; i++) {
		CHECK_OK(dm_sampler_parse(dm_sampler_name((enum dm_sampler)i), &k));
		CHECK_EQ_INT(k, i);
	}
	CHECK_FAILS(dm_sampler_parse("plms", &k), "unknown sampler");
	gden_init(&G, "linear");
	dm_sampler_opts_defaults(&o);
	o.steps = 0;
	CHECK_FAILS(dm_sample_run(&G.D, &o, x, 1, 0, &nfe), "at least 1");
	/* NFE per sampler for 10 steps */
	static const int want[DM_SAMPLER_COUNT] = {
		[DM_SAMPLER_DDPM] = 10, [DM_SAMPLER_DDIM] = 10,
		[DM_SAMPLER_EULER] = 10, [DM_SAMPLER_EULER_A] = 10,
		[DM_SAMPLER_HEUN] = 19, [DM_SAMPLER_RK4] = 40,
		[DM_SAMPLER_DPM2] = 19, [DM_SAMPLER_DPMPP2M] = 10,
		[DM_SAMPLER_DPMPP2M_SDE] = 10, [DM_SAMPLER_EM] = 10,
		[DM_SAMPLER_CONSISTENCY] = 10,
	};
	for (int i = 0; i < DM_SAMPLER_COUNT; i++) {
		if (i == DM_SAMPLER_ADAPTIVE)
			continue;
		o.kind = (enum dm_sampler)i;
		o.steps = 10;
		dm_sample_noise(x, 1, 2, 0, 0);
		CHECK_OK(dm_sample_run(&G.D, &o, x, 1, 0, &nfe));
		CHECK_MSG(nfe == want[i], "%s: %lld NFE for 10 steps, expected %d",
		    dm_sampler_name(o.kind), (long long)nfe, want[i]);
	}
	gden_free(&G);
}
