/* reflow.c — reflow pairs, transport cost and straightness, and the
 * progressive-distillation target (SPEC.md §8). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_reflow.h"

static int
model_fn(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct dm_model *m = ctx;
	size_t d = dm_model_in_size(m);

	(void)first;
	for (int b = 0; b < B;) {
		int e = b + 1;
		while (e < B && t[e] == t[b])
			e++;
		if (dm_model_denoise(m, x0 ? x0 + (size_t)b * d : NULL,
		    eps ? eps + (size_t)b * d : NULL, x + (size_t)b * d, t[b],
		    NULL, e - b) == -1)
			return -1;
		b = e;
	}
	return 0;
}

static int
model_prepare(void *ctx, const double *t, int n)
{
	return dm_model_prepare(ctx, t, n);
}

void
dm_model_denoiser(struct dm_denoiser *D, struct dm_model *m)
{
	D->prepare = model_prepare;
	D->fn = model_fn;
	D->ctx = m;
	D->d = dm_model_in_size(m);
	D->sched = &m->sched;
}

int
dm_reflow_pairs(const struct dm_denoiser *D, const struct dm_sampler_opts *so,
    const float *x1, float *x0, int64_t n, int batch)
{
	size_t d = D->d;

	if (batch < 1 || n < 0)
		return dm_seterr("reflow pairs: bad batch or count");
	if (x0 != x1)
		memmove(x0, x1, (size_t)n * d * sizeof *x0);
	for (int64_t i = 0; i < n; i += batch) {
		int B = (int)(n - i < batch ? n - i : batch);
		int64_t nfe;
		if (dm_sample_run(D, so, x0 + (size_t)i * d, B, i, &nfe) == -1)
			return -1;
	}
	return 0;
}

/* Trajectory recorder for dm_reflow_straightness. */
struct traj {
	float *x;        /* [(K + 1), B, d] */
	double *t;       /* [K + 1] */
	size_t n;        /* B d */
	int K;
};

static void
on_step(void *ctx, int k, double t, const float *x, int B)
{
	struct traj *tr = ctx;

	(void)B;
	if (k < 0 || k > tr->K)
		return;
	memcpy(tr->x + (size_t)k * tr->n, x, tr->n * sizeof *x);
	tr->t[k] = t;
}

int
dm_reflow_straightness(const struct dm_denoiser *D,
    const struct dm_sampler_opts *so, const float *x1, int64_t n, int batch,
    float *x0, double *cost, double *S)
{
	struct dm_sampler_opts o = *so;
	struct traj tr = {0};
	size_t d = D->d, nb;
	float *xe = NULL, *xh = NULL, *eh = NULL, *u = NULL;
	double *tv = NULL, csum = 0, ssum = 0;
	int K = so->steps, rc = -1;

	if (batch < 1 || n < 1)
		return dm_seterr("straightness: no rows");
	if (so->kind == DM_SAMPLER_ADAPTIVE || dm_sampler_is_stochastic(so->kind))
		return dm_seterr("straightness needs a deterministic sampler "
		    "on a fixed grid");
	if (K < 1)
		return dm_seterr("straightness: steps must be at least 1");
	if (dm_mul_size((size_t)batch, d, &nb) == -1 ||
	    dm_mul_size(nb, (size_t)K + 1, &tr.n) == -1 ||
	    dm_mul_size(tr.n, sizeof(float), &tr.n) == -1)
		return -1;
	tr.x = dm_malloc(tr.n);
	tr.t = dm_malloc(((size_t)K + 1) * sizeof *tr.t);
	xe = dm_malloc(nb * sizeof *xe);
	xh = dm_malloc(nb * sizeof *xh);
	eh = dm_malloc(nb * sizeof *eh);
	u = dm_malloc(nb * sizeof *u);
	tv = dm_malloc((size_t)batch * sizeof *tv);
	if (!tr.x || !tr.t || !xe || !xh || !eh || !u || !tv)
		goto out;
	tr.K = K;
	o.on_step = on_step;
	o.on_step_ctx = &tr;
	for (int64_t i = 0; i < n; i += batch) {
		int B = (int)(n - i < batch ? n - i : batch);
		size_t bn = (size_t)B * d;
		int64_t nfe;
		tr.n = bn;
		memcpy(xe, x1 + (size_t)i * d, bn * sizeof *xe);
		if (dm_sample_run(D, &o, xe, B, i, &nfe) == -1)
			goto out;
		if (x0 != NULL)
			memcpy(x0 + (size_t)i * d, xe, bn * sizeof *xe);
		for (size_t k = 0; k < bn; k++) {
			double e = (double)x1[(size_t)i * d + k] - xe[k];
			csum += e * e;
		}
		for (int k = 0; k <= K; k++) {
			struct dm_sched_point p;
			double tc = dm_schedule_clamp(D->sched, tr.t[k]), s2 = 0;
			for (int b = 0; b < B; b++)
				tv[b] = tc;
			if (D->fn(D->ctx, xh, eh, tr.x + (size_t)k * bn, tv, B,
			    i) == -1)
				goto out;
			dm_schedule_at(D->sched, tc, &p);
			dm_pf_velocity(&p, xh, eh, u, bn);
			for (size_t e = 0; e < bn; e++) {
				double v = (double)x1[(size_t)i * d + e] - xe[e] -
				    u[e];
				s2 += v * v;
			}
			/* trapezoid rule over the grid */
			ssum += 0.5 * s2 * ((k < K ? tr.t[k] - tr.t[k + 1] : 0) +
			    (k > 0 ? tr.t[k - 1] - tr.t[k] : 0));
		}
	}
	*cost = csum / (double)n;
	*S = ssum / (double)n;
	rc = isfinite(*S) && isfinite(*cost) ? 0 :
	    dm_seterr("straightness: NaN or Inf");
out:
	free(tr.x);
	free(tr.t);
	free(xe);
	free(xh);
	free(eh);
	free(u);
	free(tv);
	return rc;
}

/* x0_hat of rows z at per-row times t (clamped here): the model's output
 * converted per row. */
static int
x0_rows(struct dm_model *m, float *x0, const float *z, const double *t, int B)
{
	size_t d = dm_model_in_size(m);

	for (int b = 0; b < B;) {
		int e = b + 1;
		while (e < B && t[e] == t[b])
			e++;
		if (dm_model_denoise(m, x0 + (size_t)b * d, NULL,
		    z + (size_t)b * d, t[b], NULL, e - b) == -1)
			return -1;
		b = e;
	}
	return 0;
}

/* One DDIM (eta = 0) step per row from t to s: z <- alpha_s x0_hat +
 * sigma_s eps_hat, eps_hat = (z - alpha_c x0_hat)/sigma_c at clamped t. */
static int
ddim_rows(struct dm_model *m, float *z, const double *t, const double *s,
    int B, float *x0)
{
	const struct dm_schedule *sc = &m->sched;
	size_t d = dm_model_in_size(m);
	double *tc = dm_malloc((size_t)B * sizeof *tc);

	if (tc == NULL)
		return -1;
	for (int b = 0; b < B; b++)
		tc[b] = dm_schedule_clamp(sc, t[b]);
	if (x0_rows(m, x0, z, tc, B) == -1) {
		free(tc);
		return -1;
	}
	for (int b = 0; b < B; b++) {
		struct dm_sched_point pt, ps;
		dm_schedule_at(sc, tc[b], &pt);
		dm_schedule_at(sc, s[b], &ps);
		for (size_t k = 0; k < d; k++) {
			size_t i = (size_t)b * d + k;
			double eps = (z[i] - pt.alpha * x0[i]) / pt.sigma;
			z[i] = (float)(ps.alpha * x0[i] + ps.sigma * eps);
		}
	}
	free(tc);
	return 0;
}

int
dm_pd_target(struct dm_model *teacher, const float *z, int B,
    const double *t, const double *t1, const double *t2, float *xt)
{
	const struct dm_schedule *sc = &teacher->sched;
	size_t d = dm_model_in_size(teacher), n;
	float *zz, *w;
	int rc = -1;

	if (dm_mul_size((size_t)B, d, &n) == -1)
		return -1;
	zz = dm_malloc(n * sizeof *zz);
	w = dm_malloc(n * sizeof *w);
	if (zz == NULL || w == NULL)
		goto out;
	memcpy(zz, z, n * sizeof *zz);
	if (ddim_rows(teacher, zz, t, t1, B, w) == -1 ||
	    ddim_rows(teacher, zz, t1, t2, B, w) == -1)
		goto out;
	for (int b = 0; b < B; b++) {
		struct dm_sched_point pt, p2;
		dm_schedule_at(sc, dm_schedule_clamp(sc, t[b]), &pt);
		dm_schedule_at(sc, t2[b], &p2);
		double r = p2.sigma / pt.sigma, den = p2.alpha - r * pt.alpha;
		if (!(fabs(den) > 0)) {
			dm_seterr("progressive target: t'' = %g is not below "
			    "t = %g", t2[b], t[b]);
			goto out;
		}
		for (size_t k = 0; k < d; k++) {
			size_t i = (size_t)b * d + k;
			xt[i] = (float)((zz[i] - r * z[i]) / den);
		}
	}
	rc = 0;
out:
	free(zz);
	free(w);
	return rc;
}
