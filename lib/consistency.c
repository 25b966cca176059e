/* consistency.c — consistency training and distillation, and progressive
 * distillation, as modes of the trainer (SPEC.md §8, dm_reflow.h).
 *
 * Draws per global row g (as in dm_train.h): the noise level index or the
 * grid step from uniform draw 0 of dm_noise_stream(DM_NOISE_TIME, g), eps
 * from normal floats 0..d-1 of dm_noise_stream(DM_NOISE_EPS, g). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "dm_reflow.h"
#include "dm_rng.h"

#define LOSS_EMA_DECAY 0.98

enum { MODE_CM, MODE_PD };

struct dm_cm_state {
	int mode;
	struct dm_model *teacher;
	int N;                        /* progressive: student steps */
	float *target;                /* EMA target parameters, or NULL */
	int cap;
	float *xn, *tn, *w1, *w2, *tt;
	double *sg, *cdf, *s0, *s1, *td1, *td2, *td3;
	int sg_n;                     /* points in sg */
};

void
dm_cm_opts_preset(struct dm_cm_opts *o, int improved)
{
	memset(o, 0, sizeof *o);
	o->mu0 = 0.9;
	o->huber_c = -1;
	o->p_mean = -1.1;
	o->p_std = 2.0;
	if (improved) {
		o->target = DM_CM_TARGET_SG;
		o->huber = 1;
		o->lognormal = 1;
		o->curriculum = DM_CM_DOUBLING;
		o->s0 = 10;
		o->s1 = 1280;
		o->weight = 1;
	} else {
		o->target = DM_CM_TARGET_EMA;
		o->curriculum = DM_CM_SQRT;
		o->s0 = 2;
		o->s1 = 150;
	}
}

/* "name" or "name:args". */
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
dm_cm_opts_parse(struct dm_cm_opts *o, const char *key, const char *v)
{
	const char *a;
	double x[2];
	int n;

	if (strcmp(key, "target") == 0) {
		if (match(v, "sg", &a) && a == NULL)
			o->target = DM_CM_TARGET_SG;
		else if (match(v, "ema", &a)) {
			if (a != NULL && dm_parse_double(a, 0, 0.999999, &o->mu0)
			    == -1)
				return dm_errctx("ema:MU0: ");
			o->target = DM_CM_TARGET_EMA;
		} else
			return dm_seterr("'%s' is not sg or ema[:mu0]", v);
	} else if (strcmp(key, "loss") == 0) {
		if (match(v, "l2", &a) && a == NULL)
			o->huber = 0;
		else if (match(v, "huber", &a)) {
			o->huber = 1;
			o->huber_c = -1;
			if (a != NULL && dm_parse_double(a, 1e-12, 1e6,
			    &o->huber_c) == -1)
				return dm_errctx("huber:C: ");
		} else
			return dm_seterr("'%s' is not l2 or huber[:c]", v);
	} else if (strcmp(key, "sigma") == 0) {
		if (match(v, "uniform", &a) && a == NULL)
			o->lognormal = 0;
		else if (match(v, "lognormal", &a)) {
			o->lognormal = 1;
			if (a != NULL) {
				if (dm_parse_doubles(a, x, 2, &n) == -1 || n != 2 ||
				    !(x[1] > 0) || fabs(x[0]) > 100 || x[1] > 100)
					return dm_seterr("lognormal:MEAN,STD takes "
					    "two numbers, 0 < STD <= 100");
				o->p_mean = x[0];
				o->p_std = x[1];
			}
		} else
			return dm_seterr("'%s' is not uniform or "
			    "lognormal[:mean,std]", v);
	} else if (strcmp(key, "steps") == 0) {
		if (match(v, "fixed", &a) && a != NULL) {
			if (dm_parse_int(a, 1, 100000, &o->s1) == -1)
				return dm_errctx("fixed:N: ");
			o->curriculum = DM_CM_FIXED;
			o->s0 = o->s1;
			return 0;
		}
		int dbl = match(v, "doubling", &a);
		if (!dbl && !match(v, "sqrt", &a))
			return dm_seterr("'%s' is not doubling[:s0,s1], "
			    "sqrt[:s0,s1] or fixed:N", v);
		o->curriculum = dbl ? DM_CM_DOUBLING : DM_CM_SQRT;
		o->s0 = dbl ? 10 : 2;
		o->s1 = dbl ? 1280 : 150;
		if (a != NULL) {
			if (dm_parse_doubles(a, x, 2, &n) == -1 || n != 2 ||
			    x[0] != floor(x[0]) || x[1] != floor(x[1]) ||
			    !(x[0] >= 1 && x[1] >= x[0] && x[1] <= 100000))
				return dm_seterr("S0,S1: integers with 1 <= s0 "
				    "<= s1 <= 100000");
			o->s0 = (int)x[0];
			o->s1 = (int)x[1];
		}
	} else if (strcmp(key, "weight") == 0) {
		if (strcmp(v, "uniform") == 0)
			o->weight = 0;
		else if (strcmp(v, "inv-dsigma") == 0)
			o->weight = 1;
		else
			return dm_seterr("'%s' is not uniform or inv-dsigma", v);
	} else
		return dm_seterr("unknown consistency option '%s'", key);
	return 0;
}

int
dm_cm_opts_format(const struct dm_cm_opts *o, char *buf, size_t n)
{
	static const char *cur[] = {"doubling", "sqrt", "fixed"};

	return snprintf(buf, n, ",cm_target=%s,cm_mu0=%.17g,cm_loss=%s,"
	    "cm_c=%.17g,cm_sigma=%s,cm_pm=%.17g,cm_ps=%.17g,cm_steps=%s,"
	    "cm_s0=%d,cm_s1=%d,cm_weight=%s",
	    o->target == DM_CM_TARGET_EMA ? "ema" : "sg", o->mu0,
	    o->huber ? "huber" : "l2", o->huber_c,
	    o->lognormal ? "lognormal" : "uniform", o->p_mean, o->p_std,
	    cur[o->curriculum], o->s0, o->s1,
	    o->weight ? "inv-dsigma" : "uniform");
}

int
dm_cm_steps(const struct dm_cm_opts *o, int64_t k, int64_t K)
{
	if (o->curriculum == DM_CM_FIXED)
		return o->s1 + 1;
	if (o->curriculum == DM_CM_DOUBLING) {
		int64_t Kp = (int64_t)floor((double)K /
		    (log2((double)o->s1 / o->s0) + 1));
		int64_t e = Kp > 0 ? k / Kp : 0;
		double N = e > 40 ? o->s1 : fmin(o->s0 * ldexp(1, (int)e), o->s1);
		return (int)N + 1;
	}
	double s0 = o->s0, s1 = o->s1, f = K > 0 ? (double)k / (double)K : 1;
	double N = ceil(sqrt(f * ((s1 + 1) * (s1 + 1) - s0 * s0) + s0 * s0) - 1);
	return (int)fmin(fmax(N, 1), s1) + 1;
}

static double
sigma_ve(const struct dm_schedule *s, double t)
{
	struct dm_sched_point p;

	dm_schedule_at(s, t, &p);
	return p.sigma / p.alpha;
}

void
dm_cm_sigmas(const struct dm_schedule *s, int N, double *sigma)
{
	double lo = pow(sigma_ve(s, s->t_min), 1 / 7.0);
	double hi = pow(sigma_ve(s, s->t_max), 1 / 7.0);

	for (int i = 0; i < N; i++)
		sigma[i] = N > 1 ? pow(lo + (double)i / (N - 1) * (hi - lo), 7) :
		    pow(hi, 7);
	sigma[0] = sigma_ve(s, s->t_min);
}

/* The t of a schedule where sigma_t / alpha_t = sigma (lambda = -ln sigma),
 * clamped to the schedule's range. */
static double
t_of_sigma(const struct dm_schedule *s, double sigma)
{
	return dm_schedule_clamp(s, dm_schedule_t_of_lambda(s, -log(sigma)));
}

static struct dm_cm_state *
state_new(struct dm_trainer *tr, int mode)
{
	struct dm_cm_state *st;
	size_t d = tr->data.d, B = (size_t)tr->o.batch, n;

	if (tr->cm != NULL)
		return tr->cm;
	if (dm_mul_size(B, d, &n) == -1)
		return NULL;
	if ((st = dm_calloc(1, sizeof *st)) == NULL)
		return NULL;
	st->mode = mode;
	st->cap = (int)B;
	st->xn = dm_malloc(n * sizeof(float));
	st->w1 = dm_malloc(n * sizeof(float));
	st->w2 = dm_malloc(n * sizeof(float));
	st->tn = dm_malloc(B * sizeof(float));
	st->tt = dm_malloc(B * sizeof(float));
	st->s0 = dm_malloc(B * sizeof(double));
	st->s1 = dm_malloc(B * sizeof(double));
	st->td1 = dm_malloc(B * sizeof(double));
	st->td2 = dm_malloc(B * sizeof(double));
	st->td3 = dm_malloc(B * sizeof(double));
	if (!st->xn || !st->w1 || !st->w2 || !st->tn || !st->tt || !st->s0 ||
	    !st->s1 || !st->td1 || !st->td2 || !st->td3) {
		dm_distill_free(st);
		return NULL;
	}
	if (mode == MODE_CM && tr->o.cm.target == DM_CM_TARGET_EMA) {
		if ((st->target = dm_malloc(tr->m->nparams * sizeof(float) + 1))
		    == NULL) {
			dm_distill_free(st);
			return NULL;
		}
		memcpy(st->target, tr->m->params, tr->m->nparams * sizeof(float));
	}
	tr->cm = st;
	return st;
}

void
dm_distill_free(struct dm_cm_state *st)
{
	if (st == NULL)
		return;
	free(st->xn);
	free(st->w1);
	free(st->w2);
	free(st->tn);
	free(st->tt);
	free(st->s0);
	free(st->s1);
	free(st->td1);
	free(st->td2);
	free(st->td3);
	free(st->sg);
	free(st->cdf);
	free(st->target);
	free(st);
}

float *
dm_distill_target(struct dm_trainer *tr)
{
	if (tr->o.objective == DM_OBJECTIVE_CONSISTENCY &&
	    tr->o.cm.target == DM_CM_TARGET_EMA && state_new(tr, MODE_CM) == NULL)
		return NULL;
	return tr->cm != NULL ? tr->cm->target : NULL;
}

static int
check_teacher(const struct dm_trainer *tr, const struct dm_model *t)
{
	const struct dm_model *m = tr->m;

	if (t->cfg.head != DM_HEAD_FIELD)
		return dm_seterr("the teacher is a classifier, not a denoiser");
	if (dm_model_in_size(t) != dm_model_in_size(m) ||
	    t->cfg.ndim != m->cfg.ndim ||
	    memcmp(t->cfg.shape, m->cfg.shape, (size_t)m->cfg.ndim *
	    sizeof *m->cfg.shape) != 0)
		return dm_seterr("the teacher's data shape differs from the "
		    "student's");
	if (t->cfg.classes != 0 || m->cfg.classes != 0)
		return dm_seterr("distillation takes unconditional models");
	return 0;
}

int
dm_cm_set_teacher(struct dm_trainer *tr, struct dm_model *teacher)
{
	struct dm_cm_state *st;

	if (tr->o.objective != DM_OBJECTIVE_CONSISTENCY)
		return dm_seterr("consistency distillation needs the "
		    "consistency objective");
	if (check_teacher(tr, teacher) == -1)
		return -1;
	if ((st = state_new(tr, MODE_CM)) == NULL)
		return -1;
	st->teacher = teacher;
	return 0;
}

int
dm_pd_set_teacher(struct dm_trainer *tr, struct dm_model *teacher, int N)
{
	struct dm_cm_state *st;

	if (check_teacher(tr, teacher) == -1)
		return -1;
	if (N < 1)
		return dm_seterr("progressive distillation: %d student steps", N);
	if (tr->m->cfg.pred != teacher->cfg.pred || tr->m->cfg.cm)
		return dm_seterr("the student must predict what the teacher "
		    "predicts (%s)", dm_pred_name(teacher->cfg.pred));
	if ((st = state_new(tr, MODE_PD)) == NULL)
		return -1;
	st->mode = MODE_PD;
	st->teacher = teacher;
	st->N = N;
	return 0;
}

/* Data rows of the batch at global rows g0.. (the trainer's data order). */
static void
batch_rows(struct dm_trainer *tr, uint64_t g0, int B)
{
	int64_t n = tr->data.nrows;

	for (int j = 0; j < B; j++) {
		uint64_t g = g0 + (uint64_t)j;
		int64_t e = (int64_t)(g / (uint64_t)n);
		if (e != tr->perm_epoch) {
			dm_train_epoch_perm(tr->perm, n, tr->o.seed, e);
			tr->perm_epoch = e;
		}
		tr->idx[j] = tr->data.rows[tr->perm[g % (uint64_t)n]];
	}
}

/* The teacher's x0_hat of VE rows x at VE noise levels sigma[b]. */
static int
teacher_x0(struct dm_cm_state *st, float *x0, const float *x,
    const double *sigma, int B, size_t d)
{
	struct dm_model *T = st->teacher;
	const struct dm_schedule *s = &T->sched;

	for (int b = 0; b < B; b++) {
		struct dm_sched_point p;
		double t = t_of_sigma(s, sigma[b]);
		dm_schedule_at(s, t, &p);
		st->tt[b] = (float)t;
		for (size_t k = 0; k < d; k++)
			st->w2[(size_t)b * d + k] = (float)(p.alpha *
			    x[(size_t)b * d + k]);
	}
	if (T->cfg.arch == DM_ARCH_GMM) {
		for (int b = 0; b < B; b++)
			if (dm_model_denoise(T, x0 + (size_t)b * d, NULL,
			    st->w2 + (size_t)b * d, st->tt[b], NULL, 1) == -1)
				return -1;
		return 0;
	}
	if (dm_model_forward(T, x0, st->w2, st->tt, NULL, B, 0) == -1)
		return -1;
	for (int b = 0; b < B; b++) {
		struct dm_sched_point p;
		float *o = x0 + (size_t)b * d;
		dm_schedule_at(s, st->tt[b], &p);
		dm_pred_to_x0_eps(T->cfg.pred, &p, st->w2 + (size_t)b * d, o, o,
		    NULL, d);
	}
	return 0;
}

/* One Heun step of dx/dsigma = (x - D(x, sigma)) / sigma per row, from
 * s1[b] to s0[b], on VE rows x (in place). */
static int
teacher_heun(struct dm_cm_state *st, float *x, int B, size_t d)
{
	float *D = st->w1;
	size_t n = (size_t)B * d;

	if (teacher_x0(st, D, x, st->s1, B, d) == -1)
		return -1;
	/* w1 <- d1; xn <- Euler predictor */
	for (int b = 0; b < B; b++) {
		double h = st->s0[b] - st->s1[b];
		for (size_t k = 0; k < d; k++) {
			size_t i = (size_t)b * d + k;
			double d1 = (x[i] - D[i]) / st->s1[b];
			D[i] = (float)d1;
			st->xn[i] = (float)(x[i] + h * d1);
		}
	}
	float *D2 = dm_malloc(n * sizeof *D2);
	if (D2 == NULL)
		return -1;
	if (teacher_x0(st, D2, st->xn, st->s0, B, d) == -1) {
		free(D2);
		return -1;
	}
	for (int b = 0; b < B; b++) {
		double h = st->s0[b] - st->s1[b];
		for (size_t k = 0; k < d; k++) {
			size_t i = (size_t)b * d + k;
			double d2 = (st->xn[i] - D2[i]) / st->s0[b];
			x[i] = (float)(x[i] + h * 0.5 * (D[i] + d2));
		}
	}
	free(D2);
	return 0;
}

/* The index grid for N points: sigmas and (lognormal) the CDF over the
 * N - 1 intervals. */
static int
grid_for(struct dm_cm_state *st, const struct dm_trainer *tr, int N)
{
	const struct dm_cm_opts *o = &tr->o.cm;

	if (st->sg_n == N)
		return 0;
	free(st->sg);
	free(st->cdf);
	st->sg_n = 0;
	st->sg = dm_malloc((size_t)N * sizeof *st->sg);
	st->cdf = dm_malloc((size_t)N * sizeof *st->cdf);
	if (st->sg == NULL || st->cdf == NULL)
		return -1;
	dm_cm_sigmas(&tr->m->sched, N, st->sg);
	double acc = 0;
	for (int i = 0; i + 1 < N; i++) {
		double p = 1;
		if (o->lognormal)
			p = erf((log(st->sg[i + 1]) - o->p_mean) /
			    (M_SQRT2 * o->p_std)) - erf((log(st->sg[i]) -
			    o->p_mean) / (M_SQRT2 * o->p_std));
		acc += fmax(p, 0);
		st->cdf[i] = acc;
	}
	if (!(acc > 0))
		return dm_seterr("consistency: the lognormal puts no mass on "
		    "the noise levels");
	for (int i = 0; i + 1 < N; i++)
		st->cdf[i] /= acc;
	st->sg_n = N;
	return 0;
}

/* The update shared by both modes: the loss gradient is in tr->dout. */
static int
update(struct dm_trainer *tr, double loss)
{
	struct dm_model *m = tr->m;

	if (!isfinite(loss))
		return dm_seterr("step %lld: the loss is %s", (long long)tr->step
		    + 1, isnan(loss) ? "NaN" : "Inf");
	if (dm_model_backward(m, NULL, tr->dout) == -1)
		return -1;
	double gn = dm_grad_clip(m->grads, m->nparams, tr->o.clip);
	if (!isfinite(gn))
		return dm_seterr("step %lld: the gradients hold NaN or Inf",
		    (long long)tr->step + 1);
	double lr = dm_lr_at(&tr->o, tr->step);
	dm_adamw_step(m->params, m->grads, tr->adam_m, tr->adam_v, m->nparams,
	    lr, tr->o.beta1, tr->o.beta2, tr->o.adam_eps, tr->o.wd,
	    tr->step + 1);
	dm_ema_update(tr->ema, m->params, m->nparams,
	    dm_ema_decay(tr->o.ema, tr->step));
	tr->loss_ema = tr->step == 0 ? loss :
	    LOSS_EMA_DECAY * tr->loss_ema + (1 - LOSS_EMA_DECAY) * loss;
	tr->loss = loss;
	tr->gnorm = gn;
	tr->lr = lr;
	tr->step++;
	return 0;
}

static int
cm_step(struct dm_trainer *tr, struct dm_cm_state *st)
{
	struct dm_model *m = tr->m;
	const struct dm_cm_opts *o = &tr->o.cm;
	const struct dm_schedule *s = &m->sched;
	int B = tr->o.batch, N = dm_cm_steps(o, tr->step, tr->o.steps);
	size_t d = tr->data.d;
	uint64_t g0 = (uint64_t)tr->step * (uint64_t)B, seed = tr->o.seed;
	double c = o->huber_c >= 0 ? o->huber_c : 0.00054 * sqrt((double)d);
	double loss = 0;

	if (grid_for(st, tr, N) == -1)
		return -1;
	batch_rows(tr, g0, B);
	for (int j = 0; j < B; j++) {
		uint64_t g = g0 + (uint64_t)j;
		const float *x0 = tr->data.x0 + (size_t)tr->idx[j] * d;
		float *eps = tr->eps + (size_t)j * d;
		float *xv = tr->x0 + (size_t)j * d;	/* x_{n+1}, VE */
		double u[1];
		int i = 0;
		dm_rng_uniform_f64(u, 1, seed, dm_noise_stream(DM_NOISE_TIME, g),
		    0);
		while (i + 2 < N && st->cdf[i] <= u[0])
			i++;
		st->s0[j] = st->sg[i];
		st->s1[j] = st->sg[i + 1];
		dm_rng_normal(eps, d, seed, dm_noise_stream(DM_NOISE_EPS, g), 0);
		for (size_t k = 0; k < d; k++)
			xv[k] = (float)(x0[k] + st->s1[j] * eps[k]);
		/* x_n in VE variables: the same eps (training) */
		for (size_t k = 0; k < d; k++)
			st->xn[(size_t)j * d + k] = (float)(x0[k] + st->s0[j] *
			    eps[k]);
		tr->w[j] = o->weight ? (float)(1 / (st->s1[j] - st->s0[j])) : 1;
	}
	/* distillation: x_n = Heun step of the teacher from x_{n+1} */
	if (st->teacher != NULL) {
		memcpy(st->xn, tr->x0, (size_t)B * d * sizeof(float));
		if (teacher_heun(st, st->xn, B, d) == -1)
			return -1;
	}
	/* into the student's variables: x = alpha_t x_VE */
	for (int j = 0; j < B; j++) {
		struct dm_sched_point p1, p0;
		double t1 = t_of_sigma(s, st->s1[j]), t0 = t_of_sigma(s, st->s0[j]);
		dm_schedule_at(s, t1, &p1);
		dm_schedule_at(s, t0, &p0);
		tr->t[j] = (float)t1;
		st->tn[j] = (float)t0;
		for (size_t k = 0; k < d; k++) {
			size_t e = (size_t)j * d + k;
			tr->xt[e] = (float)(p1.alpha * tr->x0[e]);
			st->xn[e] = (float)(p0.alpha * st->xn[e]);
		}
	}
	/* the target: EMA or stop-gradient copy at (x_n, t_n) */
	float *keep = m->params;
	if (st->target != NULL)
		m->params = st->target;
	int r = dm_model_forward(m, tr->tgt, st->xn, st->tn, NULL, B, 0);
	m->params = keep;
	if (r == -1)
		return -1;
	m->dropout_seed = tr->o.seed;
	m->dropout_step = (uint64_t)tr->step;
	dm_model_zero_grad(m);
	if (m->grads == NULL)
		return dm_seterr("the model has no gradient buffer");
	if (dm_model_forward(m, tr->out, tr->xt, tr->t, NULL, B, 1) == -1)
		return -1;
	for (int j = 0; j < B; j++) {
		const float *a = tr->out + (size_t)j * d, *b = tr->tgt +
		    (size_t)j * d;
		float *g = tr->dout + (size_t)j * d;
		double ss = 0, w = tr->w[j];
		for (size_t k = 0; k < d; k++)
			ss += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
		if (o->huber) {
			double rr = sqrt(ss + c * c);
			loss += w * (rr - c);
			for (size_t k = 0; k < d; k++)
				g[k] = (float)(w * (a[k] - b[k]) / (rr * B));
		} else {
			loss += w * ss / (double)d;
			for (size_t k = 0; k < d; k++)
				g[k] = (float)(2 * w * (a[k] - b[k]) / ((double)d *
				    B));
		}
	}
	if (update(tr, loss / B) == -1)
		return -1;
	if (st->target != NULL) {
		/* mu(k) = exp(s0 ln mu0 / N(k)) (Song et al. 2023) */
		double mu = exp(o->s0 * log(o->mu0) / N);
		dm_ema_update(st->target, m->params, m->nparams, mu);
	}
	return 0;
}

static int
pd_step(struct dm_trainer *tr, struct dm_cm_state *st)
{
	struct dm_model *m = tr->m;
	const struct dm_schedule *s = &m->sched;
	int B = tr->o.batch, N = st->N;
	size_t d = tr->data.d;
	uint64_t g0 = (uint64_t)tr->step * (uint64_t)B, seed = tr->o.seed;
	double loss = 0;

	batch_rows(tr, g0, B);
	for (int j = 0; j < B; j++) {
		uint64_t g = g0 + (uint64_t)j;
		const float *x0 = tr->data.x0 + (size_t)tr->idx[j] * d;
		float *eps = tr->eps + (size_t)j * d;
		struct dm_sched_point p;
		double u[1];
		dm_rng_uniform_f64(u, 1, seed, dm_noise_stream(DM_NOISE_TIME, g),
		    0);
		int i = (int)floor(u[0] * N) + 1;
		i = i > N ? N : i;
		st->td1[j] = (double)i / N;
		st->td2[j] = (i - 0.5) / N;
		st->td3[j] = (double)(i - 1) / N;
		dm_rng_normal(eps, d, seed, dm_noise_stream(DM_NOISE_EPS, g), 0);
		dm_schedule_at(s, st->td1[j], &p);
		for (size_t k = 0; k < d; k++)
			tr->xt[(size_t)j * d + k] = (float)(p.alpha * x0[k] +
			    p.sigma * eps[k]);
		tr->t[j] = (float)dm_schedule_clamp(s, st->td1[j]);
	}
	if (dm_pd_target(st->teacher, tr->xt, B, st->td1, st->td2, st->td3,
	    tr->tgt) == -1)
		return -1;
	m->dropout_seed = tr->o.seed;
	m->dropout_step = (uint64_t)tr->step;
	dm_model_zero_grad(m);
	if (m->grads == NULL)
		return dm_seterr("the model has no gradient buffer");
	if (dm_model_forward(m, tr->out, tr->xt, tr->t, NULL, B, 1) == -1)
		return -1;
	for (int j = 0; j < B; j++) {
		struct dm_sched_point p;
		float zero = 0, one = 1, cx;
		float *o = tr->out + (size_t)j * d, *g = tr->dout + (size_t)j * d;
		const float *z = tr->xt + (size_t)j * d, *xt = tr->tgt +
		    (size_t)j * d;
		dm_schedule_at(s, tr->t[j], &p);
		/* x0_hat is affine in the output: its slope cx */
		dm_pred_to_x0_eps(m->cfg.pred, &p, &zero, &one, &cx, NULL, 1);
		dm_pred_to_x0_eps(m->cfg.pred, &p, z, o, st->w1, NULL, d);
		double w = fmax(p.alpha * p.alpha / (p.sigma * p.sigma), 1), ss = 0;
		for (size_t k = 0; k < d; k++) {
			double e = (double)st->w1[k] - xt[k];
			ss += e * e;
			g[k] = (float)(2 * w * e * cx / ((double)d * B));
		}
		loss += w * ss / (double)d;
	}
	return update(tr, loss / B);
}

int
dm_distill_step(struct dm_trainer *tr)
{
	struct dm_cm_state *st = tr->cm;

	if (st == NULL && (st = state_new(tr, MODE_CM)) == NULL)
		return -1;
	if (st->mode == MODE_PD)
		return pd_step(tr, st);
	if (!tr->m->cfg.cm || tr->m->cfg.pred != DM_PRED_X0)
		return dm_seterr("consistency needs a model with the consistency "
		    "parameterisation (cm=1, x0)");
	return cm_step(tr, st);
}
