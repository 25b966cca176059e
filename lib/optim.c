/* optim.c — AdamW, the learning-rate schedule, gradient clipping, EMA,
 * training-time draws and loss weights (SPEC.md §5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "nn_internal.h"
#include "dm_cli.h"
#include "dm_rng.h"
#include "dm_reflow.h"
#include "dm_train.h"

static const char *objective_names[DM_OBJECTIVE_COUNT] = {
	"eps", "x0", "v", "flow", "score", "classifier", "consistency"
};

const char *
dm_objective_name(enum dm_objective o)
{
	return (unsigned)o < DM_OBJECTIVE_COUNT ? objective_names[o] : "?";
}

int
dm_objective_parse(const char *name, enum dm_objective *out)
{
	for (int i = 0; i < DM_OBJECTIVE_COUNT; i++)
		if (strcmp(name, objective_names[i]) == 0) {
			*out = (enum dm_objective)i;
			return 0;
		}
	return dm_seterr("unknown objective '%s' (eps, x0, v, flow, score, "
	    "classifier, consistency)", name);
}

void
dm_train_opts_defaults(struct dm_train_opts *o)
{
	memset(o, 0, sizeof *o);
	o->objective = DM_OBJECTIVE_FLOW;
	o->tsampling = DM_TSAMPLING_UNIFORM;
	o->ln_m = 0;
	o->ln_s = 1;
	o->weighting = DM_WEIGHTING_AUTO;
	o->gamma = 5;
	o->cfg_drop = 0.1;
	o->steps = 3000;
	o->batch = 256;
	o->lr = 2e-3;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->adam_eps = 1e-8;
	o->wd = 0;
	o->warmup = 100;
	o->lr_schedule = DM_LR_COSINE;
	o->clip = 1;
	o->ema = 0.999;
	o->seed = 0;
	o->coupling = DM_COUPLING_INDEPENDENT;
	dm_cm_opts_preset(&o->cm, 1);
}

/* "name" or "name:args": returns the args or NULL; 0 if name does not match. */
static int
match(const char *s, const char *name, const char **args)
{
	size_t n = strlen(name);

	if (strncmp(s, name, n) != 0 || (s[n] != '\0' && s[n] != ':'))
		return 0;
	*args = s[n] == ':' ? s + n + 1 : NULL;
	return 1;
}

int
dm_tsampling_parse(const char *s, struct dm_train_opts *o)
{
	const char *a;

	if (match(s, "uniform", &a) && a == NULL)
		o->tsampling = DM_TSAMPLING_UNIFORM;
	else if (match(s, "discrete", &a) && a == NULL)
		o->tsampling = DM_TSAMPLING_DISCRETE;
	else if (match(s, "fixed", &a) && a != NULL) {
		if (dm_parse_double(a, 0, 1, &o->t_fixed) == -1)
			return dm_errctx("fixed:T: ");
		o->tsampling = DM_TSAMPLING_FIXED;
	}
	else if (match(s, "logit-normal", &a)) {
		double v[2] = {0, 1};
		int n = 2;
		if (a != NULL && (dm_parse_doubles(a, v, 2, &n) == -1 || n != 2))
			return dm_seterr("logit-normal:M,S takes two numbers "
			    "(got '%s')", a);
		if (!(v[1] > 0) || fabs(v[0]) > 100 || v[1] > 100)
			return dm_seterr("logit-normal: need |m| <= 100 and "
			    "0 < s <= 100");
		o->tsampling = DM_TSAMPLING_LOGIT_NORMAL;
		o->ln_m = v[0];
		o->ln_s = v[1];
	} else
		return dm_seterr("unknown t sampling '%s' (uniform, discrete, "
		    "logit-normal[:m,s], fixed:t)", s);
	return 0;
}

int
dm_weighting_parse(const char *s, struct dm_train_opts *o)
{
	const char *a;

	if (match(s, "uniform", &a) && a == NULL)
		o->weighting = DM_WEIGHTING_UNIFORM;
	else if (match(s, "sigma2", &a) && a == NULL)
		o->weighting = DM_WEIGHTING_SIGMA2;
	else if (match(s, "snr", &a) && a == NULL)
		o->weighting = DM_WEIGHTING_SNR;
	else if (match(s, "trunc-snr", &a) && a == NULL)
		o->weighting = DM_WEIGHTING_TRUNC_SNR;
	else if (match(s, "min-snr", &a)) {
		double g = 5;
		if (a != NULL && dm_parse_double(a, 1e-6, 1e6, &g) == -1)
			return dm_errctx("min-snr:GAMMA: ");
		o->weighting = DM_WEIGHTING_MIN_SNR;
		o->gamma = g;
	} else
		return dm_seterr("unknown weighting '%s' (uniform, sigma2, snr, "
		    "min-snr[:gamma], trunc-snr)", s);
	return 0;
}

int
dm_train_opts_format(const struct dm_train_opts *o, char *buf, size_t n)
{
	static const char *ts[] = {"uniform", "discrete", "logit-normal",
	    "fixed"};
	static const char *ws[] = {"auto", "uniform", "sigma2", "snr",
	    "min-snr", "trunc-snr"};
	int k = snprintf(buf, n, "objective=%s,t=%s,ln_m=%.17g,ln_s=%.17g,"
	    "weighting=%s,gamma=%.17g,cfg_drop=%.17g,steps=%lld,batch=%d,"
	    "lr=%.17g,beta1=%.17g,beta2=%.17g,adam_eps=%.17g,wd=%.17g,"
	    "warmup=%lld,lr_schedule=%s,clip=%.17g,ema=%.17g,seed=%llu",
	    dm_objective_name(o->objective), ts[o->tsampling], o->ln_m, o->ln_s,
	    ws[o->weighting], o->gamma, o->cfg_drop, (long long)o->steps,
	    o->batch, o->lr, o->beta1, o->beta2, o->adam_eps, o->wd,
	    (long long)o->warmup,
	    o->lr_schedule == DM_LR_COSINE ? "cosine" : "constant", o->clip,
	    o->ema, (unsigned long long)o->seed);
	if (k >= 0 && (size_t)k < n && o->tsampling == DM_TSAMPLING_FIXED)
		k += snprintf(buf + k, n - (size_t)k, ",t_fixed=%.17g",
		    o->t_fixed);
	if (k >= 0 && (size_t)k < n && o->objective == DM_OBJECTIVE_CONSISTENCY)
		k += dm_cm_opts_format(&o->cm, buf + k, n - (size_t)k);
	/* absent when independent: fingerprints of earlier runs still match */
	if (k >= 0 && (size_t)k < n && o->coupling == DM_COUPLING_OT)
		k += snprintf(buf + k, n - (size_t)k, ",coupling=ot");
	if (k < 0 || (size_t)k >= n)
		return dm_seterr("training options do not fit in %zu bytes", n);
	return 0;
}

void
dm_adamw_step(float *p, const float *g, float *m, float *v, size_t n,
    double lr, double b1, double b2, double eps, double wd, int64_t t)
{
	double c1 = 1 - pow(b1, (double)t), c2 = 1 - pow(b2, (double)t);

	/* float arithmetic with the coefficients rounded once from double */
	float fb1 = (float)b1, fb2 = (float)b2, f1b1 = (float)(1 - b1),
	    f1b2 = (float)(1 - b2), ic1 = (float)(1 / c1), ic2 = (float)(1 / c2),
	    flr = (float)lr, fwd = (float)(lr * wd), feps = (float)eps;

	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++) {
		float gi = g[i];
		float mi = fb1 * m[i] + f1b1 * gi;
		float vi = fb2 * v[i] + f1b2 * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] -= flr * (mi * ic1) / (sqrtf(vi * ic2) + feps) + fwd * p[i];
	}
}

double
dm_lr_at(const struct dm_train_opts *o, int64_t step)
{
	if (step < o->warmup)
		return o->lr * (double)(step + 1) / (double)o->warmup;
	if (o->lr_schedule == DM_LR_CONSTANT || o->steps <= o->warmup)
		return o->lr;
	double p = (double)(step - o->warmup) / (double)(o->steps - o->warmup);
	if (p > 1)
		p = 1;
	return o->lr * 0.5 * (1 + cos(M_PI * p));
}

/* Sums of squares in double over chunks of GRAD_CHUNK or more values,
 * each chunk in order on one thread, the chunk sums then in order: the
 * same result for any thread count, and no more than GRAD_NCHUNK partial
 * sums on the stack. */
#define GRAD_CHUNK ((size_t)1 << 14)
#define GRAD_NCHUNK 256

double
dm_grad_norm(const float *g, size_t n)
{
	double part[GRAD_NCHUNK], ss = 0;
	size_t len = (n + GRAD_NCHUNK - 1) / GRAD_NCHUNK;

	if (len < GRAD_CHUNK)
		len = GRAD_CHUNK;
	int nc = (int)((n + len - 1) / len);

	#pragma omp parallel for schedule(static) if (nc > 1)
	for (int c = 0; c < nc; c++) {
		size_t i0 = (size_t)c * len, i1 = i0 + len < n ? i0 + len : n;
		double s = 0;
		#pragma omp simd reduction(+:s)
		for (size_t i = i0; i < i1; i++)
			s += (double)g[i] * g[i];
		part[c] = s;
	}
	for (int c = 0; c < nc; c++)
		ss += part[c];
	return sqrt(ss);
}

double
dm_grad_clip_scale(double norm, double clip)
{
	return clip > 0 && norm > clip && isfinite(norm) ? clip / norm : 1;
}

double
dm_grad_clip(float *g, size_t n, double clip)
{
	double norm = dm_grad_norm(g, n), k = dm_grad_clip_scale(norm, clip);

	if (k != 1)
		for (size_t i = 0; i < n; i++)
			g[i] = (float)(g[i] * k);
	return norm;
}

void
dm_ema_update(float *ema, const float *p, size_t n, double decay)
{
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		ema[i] = (float)(decay * ema[i] + (1 - decay) * p[i]);
}

/* The arithmetic of dm_grad_clip, dm_adamw_step and dm_ema_update, in
 * that order, element by element: one pass over five arrays instead of
 * four passes (and the zeroing of the gradient, a fifth).  The loop is
 * compiled for the machine's vectors, on each thread's range. */
struct fused_coef {
	float fb1, fb2, f1b1, f1b2, ic1, ic2, flr, fwd, feps;
	double k, d, d1;
};

static DM_CLONES void
fused_range(float *restrict p, float *restrict g, float *restrict m,
    float *restrict v, float *restrict ema, const struct fused_coef *c,
    size_t lo, size_t hi)
{
	float fb1 = c->fb1, fb2 = c->fb2, f1b1 = c->f1b1, f1b2 = c->f1b2,
	    ic1 = c->ic1, ic2 = c->ic2, flr = c->flr, fwd = c->fwd,
	    feps = c->feps;
	double k = c->k, d = c->d, d1 = c->d1;

	#pragma omp simd
	for (size_t i = lo; i < hi; i++) {
		float gi = k != 1 ? (float)(g[i] * k) : g[i];
		float mi = fb1 * m[i] + f1b1 * gi;
		float vi = fb2 * v[i] + f1b2 * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float pi = p[i];
		pi -= flr * (mi * ic1) / (sqrtf(vi * ic2) + feps) + fwd * pi;
		p[i] = pi;
		if (ema != NULL)
			ema[i] = (float)(d * ema[i] + d1 * pi);
		g[i] = 0;
	}
}

void
dm_optim_fused(float *p, float *g, float *m, float *v, float *ema, size_t n,
    const struct dm_optim_step *s)
{
	double c1 = 1 - pow(s->beta1, (double)s->t);
	double c2 = 1 - pow(s->beta2, (double)s->t);
	struct fused_coef c = {(float)s->beta1, (float)s->beta2,
	    (float)(1 - s->beta1), (float)(1 - s->beta2), (float)(1 / c1),
	    (float)(1 / c2), (float)s->lr, (float)(s->lr * s->wd),
	    (float)s->eps, s->gscale, s->ema, 1 - s->ema};

	DM_NN_RANGES(n, fused_range(p, g, m, v, ema, &c, lo, hi));
}

double
dm_ema_decay(double D, int64_t step)
{
	double w = (1.0 + (double)step) / (10.0 + (double)step);

	return w < D ? w : D;
}

double
dm_train_draw_t(const struct dm_train_opts *o, const struct dm_schedule *s,
    uint64_t seed, uint64_t r)
{
	uint64_t stream = dm_noise_stream(DM_NOISE_TIME, r);
	double t;

	switch (o->tsampling) {
	case DM_TSAMPLING_DISCRETE: {
		double u[1];
		int T = s->T > 0 ? s->T : 1000;
		dm_rng_uniform_f64(u, 1, seed, stream, 0);
		double i = floor(u[0] * T) + 1;
		t = (i > T ? T : i) / T;
		break;
	}
	case DM_TSAMPLING_FIXED:
		t = o->t_fixed;
		break;
	case DM_TSAMPLING_LOGIT_NORMAL: {
		double z[1];
		dm_rng_normal_f64(z, 1, seed, stream, 0);
		t = 1 / (1 + exp(-(o->ln_m + o->ln_s * z[0])));
		break;
	}
	default: {
		double u[1];
		dm_rng_uniform_f64(u, 1, seed, stream, 0);
		t = u[0];
		break;
	}
	}
	return dm_schedule_clamp(s, t);
}

double
dm_train_weight(enum dm_weighting w, double gamma, enum dm_objective obj,
    const struct dm_sched_point *p)
{
	double a2 = p->alpha * p->alpha, s2 = p->sigma * p->sigma;
	double snr = a2 / s2, c, r;

	if (obj == DM_OBJECTIVE_CLASSIFIER)
		return 1;
	if (w == DM_WEIGHTING_AUTO)
		w = obj == DM_OBJECTIVE_SCORE ? DM_WEIGHTING_SIGMA2 :
		    DM_WEIGHTING_UNIFORM;
	if (w == DM_WEIGHTING_UNIFORM)
		return 1;
	if (w == DM_WEIGHTING_SIGMA2)
		return s2;
	/* c = |x0 error|^2 / |kind error|^2 and r = SNR c, in forms that
	 * stay finite where alpha or sigma is 0 */
	switch (obj) {
	case DM_OBJECTIVE_X0:
		c = 1;
		r = snr;
		break;
	case DM_OBJECTIVE_EPS:
		c = s2 / a2;
		r = 1;
		break;
	case DM_OBJECTIVE_V:
		c = s2 / ((a2 + s2) * (a2 + s2));
		r = a2 / ((a2 + s2) * (a2 + s2));
		break;
	case DM_OBJECTIVE_FLOW: {
		double D = p->alpha * p->dsigma - p->sigma * p->dalpha;
		c = s2 / (D * D);
		r = a2 / (D * D);
		break;
	}
	default: /* score */
		c = s2 * s2 / a2;
		r = s2;
		break;
	}
	switch (w) {
	case DM_WEIGHTING_SNR:
		return r;
	case DM_WEIGHTING_MIN_SNR:
		return snr <= gamma ? r : gamma * c;
	default: /* trunc-snr: max(SNR, 1) */
		return snr >= 1 ? r : c;
	}
}

void
dm_train_epoch_perm(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch)
{
	struct dm_rng r;

	for (int64_t i = 0; i < n; i++)
		perm[i] = i;
	dm_rng_init(&r, seed, dm_noise_stream(DM_NOISE_OTHER, (uint64_t)epoch));
	dm_rng_shuffle(&r, perm, (size_t)n);
}

int
dm_train_split(int64_t n, double frac, uint64_t seed, int64_t **train,
    int64_t *ntrain, int64_t **val, int64_t *nval)
{
	struct dm_rng r;
	int64_t *all, nv;

	*train = *val = NULL;
	if (!(frac > 0 && frac < 1))
		return dm_seterr("validation fraction %g is not in (0, 1)", frac);
	nv = (int64_t)ceil(frac * (double)n);
	if (nv < 1 || nv >= n)
		return dm_seterr("a validation fraction %g of %lld rows leaves "
		    "no rows to train on or to validate", frac, (long long)n);
	if ((all = dm_malloc((size_t)n * sizeof *all)) == NULL)
		return -1;
	for (int64_t i = 0; i < n; i++)
		all[i] = i;
	dm_rng_init(&r, seed, dm_noise_stream(DM_NOISE_OTHER, UINT64_C(1) << 47));
	dm_rng_shuffle(&r, all, (size_t)n);
	*val = dm_malloc((size_t)nv * sizeof **val);
	*train = dm_malloc((size_t)(n - nv) * sizeof **train);
	if (*val == NULL || *train == NULL) {
		free(*val);
		free(*train);
		free(all);
		*val = *train = NULL;
		return -1;
	}
	memcpy(*val, all, (size_t)nv * sizeof *all);
	memcpy(*train, all + nv, (size_t)(n - nv) * sizeof *all);
	*nval = nv;
	*ntrain = n - nv;
	free(all);
	return 0;
}
