/* sample.c — the samplers of SPEC.md §6 on top of a denoiser that gives
 * (x0_hat, eps_hat).  Update coefficients use the schedule at the grid
 * points themselves; the denoiser is evaluated at times clamped to the
 * schedule's [t_min, t_max], where conversions are safe. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_predict.h"
#include "dm_rng.h"
#include "dm_sample.h"

static const struct {
	const char *name;
	const char *alias[3];
	int stochastic;
} samplers[DM_SAMPLER_COUNT] = {
	[DM_SAMPLER_DDPM] = {"ddpm", {"ancestral"}, 1},
	[DM_SAMPLER_DDIM] = {"ddim", {NULL}, 0},
	[DM_SAMPLER_EULER] = {"euler", {NULL}, 0},
	[DM_SAMPLER_EULER_A] = {"euler_a", {"euler_ancestral", "euler-a"}, 1},
	[DM_SAMPLER_HEUN] = {"heun", {NULL}, 0},
	[DM_SAMPLER_RK4] = {"rk4", {NULL}, 0},
	[DM_SAMPLER_DPM2] = {"dpm2", {"dpm_2", "dpm-solver-2"}, 0},
	[DM_SAMPLER_DPMPP2M] = {"dpm++2m", {"dpmpp2m", "dpmpp_2m", "dpm++_2m"}, 0},
	[DM_SAMPLER_DPMPP2M_SDE] = {"dpm++2m_sde",
	    {"dpmpp2m_sde", "dpmpp_2m_sde", "dpm++_2m_sde"}, 1},
	[DM_SAMPLER_EM] = {"em", {"euler_maruyama", "euler-maruyama"}, 1},
	[DM_SAMPLER_ADAPTIVE] = {"adaptive", {"bosh3", "rk23"}, 0},
	[DM_SAMPLER_CONSISTENCY] = {"consistency", {"cm", "lcm"}, 1},
};

const char *
dm_sampler_name(enum dm_sampler s)
{
	return (unsigned)s < DM_SAMPLER_COUNT ? samplers[s].name : "?";
}

int
dm_sampler_parse(const char *name, enum dm_sampler *out)
{
	for (int i = 0; i < DM_SAMPLER_COUNT; i++) {
		int hit = strcmp(name, samplers[i].name) == 0;
		for (int k = 0; k < 3 && !hit && samplers[i].alias[k]; k++)
			hit = strcmp(name, samplers[i].alias[k]) == 0;
		if (hit) {
			*out = (enum dm_sampler)i;
			return 0;
		}
	}
	return dm_seterr("unknown sampler '%s' (ddpm, ddim, euler, euler_a, "
	    "heun, rk4, dpm2, dpm++2m, dpm++2m_sde, em, adaptive, consistency)",
	    name);
}

int
dm_sampler_is_stochastic(enum dm_sampler s)
{
	return (unsigned)s < DM_SAMPLER_COUNT && samplers[s].stochastic;
}

void
dm_sampler_opts_defaults(struct dm_sampler_opts *o)
{
	memset(o, 0, sizeof *o);
	o->kind = DM_SAMPLER_EULER;
	o->steps = 50;
	o->spacing = DM_SPACING_TRAILING;
	o->eta = -1;
	o->rtol = 1e-3;
	o->atol = 1e-3;
	o->resample = 1;
}

void
dm_sample_noise(float *x, int B, size_t d, uint64_t seed, int64_t first)
{
	for (int b = 0; b < B; b++)
		dm_rng_normal(x + (size_t)b * d, d, seed,
		    dm_noise_stream(DM_NOISE_EPS, (uint64_t)(first + b)), 0);
}

/* The state of one run. */
struct run {
	const struct dm_denoiser *D;
	const struct dm_sampler_opts *o;
	const struct dm_schedule *s;
	int B;
	int64_t first;
	size_t d, n;
	double *tv;                   /* per-row times for the denoiser */
	float *x0, *eps, *u, *z;      /* (B, d) work arrays */
	int64_t nfe;
};

/* The stages of rk4 at t + c h. */
static const double rk4_c[4] = {0, 0.5, 0.5, 1};

static double
clampt(const struct run *r, double t)
{
	return dm_schedule_clamp(r->s, t);
}

/* Dynamic thresholding (Saharia et al. 2022): per row, s = the q-quantile
 * of |x0_hat| (linear interpolation between order statistics, as
 * numpy.quantile and torch.quantile), at least 1; x0_hat = clip(x0_hat,
 * -s, s) / s, and eps_hat follows so that x = alpha x0 + sigma eps. */
static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

static void
threshold(struct run *r, float *x0, float *eps, const float *x, const double *t,
    int B)
{
	float *tmp = r->z;	/* free at this point of every step */

	for (int b = 0; b < B; b++) {
		float *row = x0 + (size_t)b * r->d;
		struct dm_sched_point p;
		for (size_t j = 0; j < r->d; j++)
			tmp[j] = fabsf(row[j]);
		qsort(tmp, r->d, sizeof *tmp, cmp_float);
		double pos = r->o->threshold * (double)(r->d - 1);
		size_t k = (size_t)pos;
		double q = tmp[k];
		if (k + 1 < r->d)
			q += (pos - (double)k) * ((double)tmp[k + 1] - tmp[k]);
		double sc = fmax(1.0, q);
		dm_schedule_at(r->s, t[b], &p);
		for (size_t j = 0; j < r->d; j++) {
			double v = fmin(fmax(row[j], -sc), sc) / sc;
			row[j] = (float)v;
			if (p.sigma > 0)
				eps[(size_t)b * r->d + j] = (float)((x[(size_t)b *
				    r->d + j] - p.alpha * v) / p.sigma);
		}
	}
}

/* (x0_hat, eps_hat) for the B' rows of x at per-row times t (unclamped). */
static int
eval_rows(struct run *r, float *x0, float *eps, const float *x,
    const double *t, int B, int64_t first)
{
	double *tv = r->tv;

	for (int b = 0; b < B; b++)
		tv[b] = clampt(r, t[b]);
	if (r->D->fn(r->D->ctx, x0, eps, x, tv, B, first) == -1)
		return -1;
	if (r->o->threshold > 0)
		threshold(r, x0, eps, x, tv, B);
	return 0;
}

/* The same at one time for the whole batch; counts one NFE. */
static int
eval(struct run *r, const float *x, double t)
{
	double *tt = r->tv + r->B;	/* second half of tv holds the input */

	for (int b = 0; b < r->B; b++)
		tt[b] = t;
	r->nfe++;
	return eval_rows(r, r->x0, r->eps, x, tt, r->B, r->first);
}

/* PF-ODE velocity u = alpha' x0 + sigma' eps at clamped t. */
static void
velocity(const struct run *r, double t, const float *x0, const float *eps,
    float *u, size_t n)
{
	struct dm_sched_point p;

	dm_schedule_at(r->s, clampt(r, t), &p);
	dm_pf_velocity(&p, x0, eps, u, n);
}

static int
eval_velocity(struct run *r, const float *x, double t, float *u)
{
	if (eval(r, x, t) == -1)
		return -1;
	velocity(r, t, r->x0, r->eps, u, r->n);
	return 0;
}

/* Step-k noise of every row into r->z. */
static void
step_noise(struct run *r, int k, enum dm_noise_purpose purpose)
{
	for (int b = 0; b < r->B; b++)
		dm_rng_normal(r->z + (size_t)b * r->d, r->d, r->o->seed,
		    dm_noise_stream(purpose, (uint64_t)(r->first + b)),
		    dm_noise_index((uint64_t)k, 0));
}

/* Inpainting after the update to s (SPEC §6): known entries are replaced
 * by a fresh forward sample of the known values at s. */
static void
inpaint(struct run *r, int k, double s, float *x)
{
	const float *m = r->o->mask, *kv = r->o->known;
	struct dm_sched_point p;

	if (m == NULL)
		return;
	dm_schedule_at(r->s, s, &p);
	step_noise(r, k, DM_NOISE_OTHER);
	for (size_t i = 0; i < r->n; i++)
		if (m[i] != 0) {
			float v = (float)(p.alpha * kv[i] + p.sigma * r->z[i]);
			x[i] = m[i] * v + (1 - m[i]) * x[i];
		}
}

static void
report(struct run *r, int k, double t, const float *x)
{
	if (r->o->on_step)
		r->o->on_step(r->o->on_step_ctx, k, t, x, r->B);
}

/* x_s = a x + b x0 + c eps + e z, elementwise. */
static void
combine(float *x, size_t n, double a, const float *x0, double b,
    const float *eps, double c, const float *z, double e)
{
	for (size_t i = 0; i < n; i++) {
		double v = a * x[i] + b * x0[i] + c * eps[i];
		if (z != NULL && e != 0)
			v += e * z[i];
		x[i] = (float)v;
	}
}

/* RePaint's jump back: x_t = alpha_{t|s} x_s + sigma_{t|s} z. */
static void
renoise(struct run *r, int k, int rep, double t, double s, float *x)
{
	struct dm_sched_point pt, ps;

	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	double a = pt.alpha / ps.alpha;
	double v = fmax(0, pt.sigma * pt.sigma - a * a * ps.sigma * ps.sigma);
	/* its own noise indices: above every step index a run uses */
	step_noise(r, (1 << 30) + k * r->o->resample + rep, DM_NOISE_OTHER);
	combine(x, r->n, a, r->x0, 0, r->eps, 0, r->z, sqrt(v));
}

/* The noise scale: --eta, or the sampler's own default, 0 for ddim (the
 * deterministic DDIM of Song et al. and of diffusers) and 1 for euler_a
 * and dpm++2m_sde. */
static double
eta_of(const struct dm_sampler_opts *o)
{
	if (o->eta >= 0)
		return o->eta;
	return o->kind == DM_SAMPLER_DDIM ? 0 : 1;
}

/* DDIM with eta (SPEC §6); eta = 1 with the posterior is DDPM. */
static int
step_ddim(struct run *r, int k, double t, double s, float *x, double eta)
{
	struct dm_sched_point pt, ps;

	if (eval(r, x, t) == -1)
		return -1;
	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	double ats = pt.alpha / ps.alpha;
	double v_ts = fmax(0, pt.sigma * pt.sigma - ats * ats * ps.sigma * ps.sigma);
	double c2 = pt.sigma > 0 ? eta * eta * ps.sigma * ps.sigma * v_ts /
	    (pt.sigma * pt.sigma) : 0;
	c2 = fmin(c2, ps.sigma * ps.sigma);
	if (c2 > 0)
		step_noise(r, k, DM_NOISE_STEP);
	combine(x, r->n, 0, r->x0, ps.alpha, r->eps,
	    sqrt(fmax(0, ps.sigma * ps.sigma - c2)), r->z, sqrt(c2));
	return 0;
}

/* DDPM: ancestral sampling from q(x_s | x_t, x0 = x0_hat). */
static int
step_ddpm(struct run *r, int k, double t, double s, float *x)
{
	double cxt, cx0, var;

	if (eval(r, x, t) == -1)
		return -1;
	dm_schedule_posterior(r->s, s, t, &cxt, &cx0, &var);
	if (var > 0)
		step_noise(r, k, DM_NOISE_STEP);
	if (!isfinite(cxt))	/* sigma_t = 0 cannot happen before t = 0 */
		return dm_seterr("ddpm: posterior undefined at t = %g", t);
	combine(x, r->n, cxt, r->x0, cx0, r->eps, 0, r->z, sqrt(var));
	return 0;
}

/* Euler ancestral (k-diffusion), written in (x0_hat, eps_hat): with
 * h = lambda_s - lambda_t, sigma_up = min(sigma_s, eta sigma_s
 * sqrt(1 - e^-2h)), sigma_down = sqrt(sigma_s^2 - sigma_up^2):
 * x_s = alpha_s x0_hat + sigma_down eps_hat + sigma_up z. */
static int
step_euler_a(struct run *r, int k, double t, double s, float *x)
{
	struct dm_sched_point pt, ps;

	if (eval(r, x, t) == -1)
		return -1;
	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	double h = ps.lambda - pt.lambda;
	double up = ps.sigma > 0 ? fmin(ps.sigma, eta_of(r->o) * ps.sigma *
	    sqrt(-expm1(-2 * h))) : 0;
	double down = sqrt(fmax(0, ps.sigma * ps.sigma - up * up));
	if (up > 0)
		step_noise(r, k, DM_NOISE_STEP);
	combine(x, r->n, 0, r->x0, ps.alpha, r->eps, down, r->z, up);
	return 0;
}

static int
step_euler(struct run *r, double t, double s, float *x)
{
	if (eval_velocity(r, x, t, r->u) == -1)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		x[i] += (float)((s - t) * r->u[i]);
	return 0;
}

/* Heun: Euler predictor, trapezoid corrector; the step to t = 0 is Euler. */
static int
step_heun(struct run *r, double t, double s, float *x, float *xe, float *k1)
{
	if (eval_velocity(r, x, t, k1) == -1)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		xe[i] = x[i] + (float)((s - t) * k1[i]);
	if (s <= 0) {
		memcpy(x, xe, r->n * sizeof *x);
		return 0;
	}
	if (eval_velocity(r, xe, s, r->u) == -1)
		return -1;
	for (size_t i = 0; i < r->n; i++)
		x[i] += (float)((s - t) * 0.5 * ((double)k1[i] + r->u[i]));
	return 0;
}

/* Classical fourth-order Runge–Kutta. */

static int
step_rk4(struct run *r, double t, double s, float *x, float *xe, float *acc)
{
	double h = s - t;
	const double *c = rk4_c, w[4] = {1, 2, 2, 1};

	memcpy(xe, x, r->n * sizeof *x);
	memset(acc, 0, r->n * sizeof *acc);
	for (int st = 0; st < 4; st++) {
		if (eval_velocity(r, xe, t + c[st] * h, r->u) == -1)
			return -1;
		for (size_t i = 0; i < r->n; i++) {
			acc[i] += (float)(w[st] / 6 * r->u[i]);
			if (st < 3)
				xe[i] = x[i] + (float)(c[st + 1] * h * r->u[i]);
		}
	}
	for (size_t i = 0; i < r->n; i++)
		x[i] += (float)(h * acc[i]);
	return 0;
}

/* DPM-Solver-2's midpoint in lambda between t and s; 0 when lambda is
 * infinite at an end (the step is then a DDIM step). */
static int
dpm2_mid(const struct run *r, double t, double s, double *tr)
{
	struct dm_sched_point pt, ps;

	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	if (!isfinite(pt.lambda) || !isfinite(ps.lambda))
		return 0;
	*tr = dm_schedule_t_of_lambda(r->s, pt.lambda + (ps.lambda -
	    pt.lambda) / 2);
	return 1;
}

/* DPM-Solver-2 (singlestep, noise prediction), midpoint in lambda (SPEC
 * §6).  A step touching an end where lambda is infinite is a DDIM step. */
static int
step_dpm2(struct run *r, int k, double t, double s, float *x, float *xe)
{
	struct dm_sched_point pt, ps, pr;
	double tr;

	if (!dpm2_mid(r, t, s, &tr))
		return step_ddim(r, k, t, s, x, 0);
	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	double h = ps.lambda - pt.lambda;
	dm_schedule_at(r->s, tr, &pr);
	if (eval(r, x, t) == -1)
		return -1;
	memcpy(xe, x, r->n * sizeof *x);
	combine(xe, r->n, pr.alpha / pt.alpha, r->x0, 0, r->eps,
	    -pr.sigma * expm1(h / 2), NULL, 0);
	if (eval(r, xe, tr) == -1)
		return -1;
	combine(x, r->n, ps.alpha / pt.alpha, r->x0, 0, r->eps,
	    -ps.sigma * expm1(h), NULL, 0);
	return 0;
}

/* DPM-Solver++(2M) and its SDE variant (k-diffusion's midpoint form),
 * data prediction; x0_prev (n) holds the previous x0_hat. With
 * h = lambda_s - lambda_t, eta_h = eta h (0 for the ODE):
 *   x_s = (sigma_s/sigma_t) e^-eta_h x_t + alpha_s (1 - e^(-h-eta_h)) D
 *         + sigma_s sqrt(1 - e^(-2 eta_h)) z,
 * D = x0_hat, or on later steps D = x0_hat + (x0_hat - x0_prev)/(2r)
 * (ODE) and the midpoint correction 0.5 (1 - e^(-h-eta_h))/r (x0_hat -
 * x0_prev) (SDE), r = h_prev/h.  Lower order on the last step when
 * fewer than 15 steps. */
static int
step_dpmpp(struct run *r, int k, int N, double t, double s, float *x,
    float *x0_prev, double *h_prev, int sde)
{
	struct dm_sched_point pt, ps;

	if (eval(r, x, t) == -1)
		return -1;
	dm_schedule_at(r->s, t, &pt);
	dm_schedule_at(r->s, s, &ps);
	double h = ps.lambda - pt.lambda;
	double eh = sde ? eta_of(r->o) * h : 0;
	double a = ps.sigma > 0 ? ps.sigma / pt.sigma * exp(-eh) : 0;
	double b = ps.alpha * -expm1(-h - eh);
	double e = sde && ps.sigma > 0 ? ps.sigma * sqrt(-expm1(-2 * eh)) : 0;
	int second = k > 0 && ps.sigma > 0 && !(k == N - 1 && N < 15);
	double corr = 0;

	if (second && isfinite(*h_prev) && isfinite(h)) {
		double rr = *h_prev / h;
		corr = sde ? 0.5 / rr : 1 / (2 * rr);
	}
	if (e > 0)
		step_noise(r, k, DM_NOISE_STEP);
	for (size_t i = 0; i < r->n; i++) {
		double D = r->x0[i] + corr * ((double)r->x0[i] - x0_prev[i]);
		double v = a * x[i] + b * D;
		if (e > 0)
			v += e * r->z[i];
		x0_prev[i] = r->x0[i];
		x[i] = (float)v;
	}
	*h_prev = h;
	return 0;
}

/* Euler–Maruyama on the reverse SDE (SPEC §4, §6); coefficients at the
 * clamped t; the last step (to t = 0) returns x0_hat. */
static int
step_em(struct run *r, int k, double t, double s, float *x)
{
	struct dm_sched_point p;
	double f, g2, dt = t - s;

	if (eval(r, x, t) == -1)
		return -1;
	if (s <= 0) {
		memcpy(x, r->x0, r->n * sizeof *x);
		return 0;
	}
	dm_schedule_at(r->s, clampt(r, t), &p);
	dm_sde_coeffs(&p, &f, &g2);
	step_noise(r, k, DM_NOISE_STEP);
	double g = sqrt(fmax(0, g2));
	for (size_t i = 0; i < r->n; i++)
		x[i] = (float)(x[i] - dt * (f * x[i] + g2 * r->eps[i] / p.sigma) +
		    g * sqrt(dt) * r->z[i]);
	return 0;
}

/* Multistep consistency sampling: x = f(sigma_{t_0} x, t_0) (the standard
 * normal start scaled to the noise level of t_0: 80 on edm, 1 on VP and
 * rf); then for each later grid point tau > 0: x_tau = alpha_tau x +
 * sigma_tau z, x = f(x_tau, tau). */
static int
step_consistency(struct run *r, int k, double t, double s, float *x)
{
	struct dm_sched_point p;

	if (k == 0) {
		double sg = dm_schedule_sigma(r->s, t);
		for (size_t i = 0; i < r->n; i++)
			x[i] = (float)(sg * x[i]);
	} else {
		dm_schedule_at(r->s, t, &p);
		step_noise(r, k, DM_NOISE_STEP);
		combine(x, r->n, p.alpha, r->x0, 0, r->eps, 0, r->z, p.sigma);
	}
	if (eval(r, x, t) == -1)
		return -1;
	memcpy(x, r->x0, r->n * sizeof *x);
	(void)s;
	return 0;
}

static int adaptive(struct run *r, float *x);

/* The denoiser's hint (dm_denoiser.prepare): the times the next
 * PREPARE_STEPS steps evaluate at, computed as the steps compute them:
 * t of every step, and heun's s (but at s = 0), rk4's t + c h, dpm2's
 * midpoint in lambda. */
#define PREPARE_STEPS 63
static int dpm2_mid(const struct run *r, double t, double s, double *tr);

static int
prepare(struct run *r, const double *grid, int left)
{
	double t[3 * PREPARE_STEPS], tm;
	int steps = left < PREPARE_STEPS ? left : PREPARE_STEPS, n = 0;

	for (int i = 0; i < steps; i++) {
		double a = grid[i], b = grid[i + 1], h = b - a;
		t[n++] = clampt(r, a);
		switch (r->o->kind) {
		case DM_SAMPLER_HEUN:
			if (b > 0 && i + 1 == steps)	/* else the next t */
				t[n++] = clampt(r, b);
			break;
		case DM_SAMPLER_RK4:
			t[n++] = clampt(r, a + rk4_c[1] * h);
			if (a + rk4_c[3] * h != b || i + 1 == steps)
				t[n++] = clampt(r, a + rk4_c[3] * h);
			break;
		case DM_SAMPLER_DPM2:
			if (dpm2_mid(r, a, b, &tm))
				t[n++] = clampt(r, tm);
			break;
		default:
			break;
		}
	}
	return r->D->prepare(r->D->ctx, t, n);
}

static int
check_finite(const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return dm_seterr("sampler produced %s at element %zu",
			    isnan(x[i]) ? "NaN" : "Inf", i);
	return 0;
}

int
dm_sample_run(const struct dm_denoiser *D, const struct dm_sampler_opts *o,
    float *x, int B, int64_t first, int64_t *nfe)
{
	struct run r = {D, o, D->sched, B, first, D->d, 0, NULL, NULL, NULL,
	    NULL, NULL, 0};
	int N = o->steps, rc = -1;
	double *grid = NULL, h_prev = INFINITY;
	float *w1 = NULL, *w2 = NULL;

	if ((unsigned)o->kind >= DM_SAMPLER_COUNT)
		return dm_seterr("bad sampler");
	if (o->kind != DM_SAMPLER_ADAPTIVE && N < 1)
		return dm_seterr("steps must be at least 1 (got %d)", N);
	if (o->threshold < 0 || o->threshold >= 1)
		return dm_seterr("threshold quantile must be in (0, 1)");
	if (B < 1)
		return 0;
	if (dm_mul_size((size_t)B, D->d, &r.n) == -1)
		return -1;
	r.tv = dm_malloc(2 * (size_t)B * sizeof *r.tv);
	r.x0 = dm_malloc(r.n * sizeof(float));
	r.eps = dm_malloc(r.n * sizeof(float));
	r.u = dm_malloc(r.n * sizeof(float));
	r.z = dm_malloc((r.n > D->d ? r.n : D->d) * sizeof(float));
	w1 = dm_malloc(r.n * sizeof(float));
	w2 = dm_calloc(r.n, sizeof(float));
	if (!r.tv || !r.x0 || !r.eps || !r.u || !r.z || !w1 || !w2)
		goto out;
	if (o->kind == DM_SAMPLER_ADAPTIVE) {
		if (o->mask != NULL) {
			dm_seterr("inpainting needs a fixed time grid; "
			    "the adaptive sampler has none");
			goto out;
		}
		rc = adaptive(&r, x);
		goto out;
	}
	if ((grid = dm_malloc(((size_t)N + 1) * sizeof *grid)) == NULL ||
	    dm_schedule_grid(r.s, N, o->spacing, o->spacing_param, grid) == -1)
		goto out;
	if (o->resample < 1 || (o->resample > 1 && (o->mask == NULL ||
	    o->kind == DM_SAMPLER_DPMPP2M || o->kind == DM_SAMPLER_DPMPP2M_SDE ||
	    o->kind == DM_SAMPLER_CONSISTENCY))) {
		dm_seterr("resampling needs inpainting (a mask) and a "
		    "single-step sampler");
		goto out;
	}
	report(&r, 0, grid[0], x);
	for (int k = 0, rep = 0; k < N; rep = 0, k++) {
		double t = grid[k], s = grid[k + 1];
		int e, kn;
		if (k % PREPARE_STEPS == 0 && D->prepare != NULL &&
		    prepare(&r, grid + k, N - k) == -1)
			goto out;
again:
		kn = k * o->resample + rep;	/* noise index of this pass */
		switch (o->kind) {
		case DM_SAMPLER_DDPM: e = step_ddpm(&r, kn, t, s, x); break;
		case DM_SAMPLER_DDIM: e = step_ddim(&r, kn, t, s, x, eta_of(o));
			break;
		case DM_SAMPLER_EULER: e = step_euler(&r, t, s, x); break;
		case DM_SAMPLER_EULER_A: e = step_euler_a(&r, kn, t, s, x); break;
		case DM_SAMPLER_HEUN: e = step_heun(&r, t, s, x, w1, w2); break;
		case DM_SAMPLER_RK4: e = step_rk4(&r, t, s, x, w1, w2); break;
		case DM_SAMPLER_DPM2: e = step_dpm2(&r, kn, t, s, x, w1); break;
		case DM_SAMPLER_DPMPP2M:
		case DM_SAMPLER_DPMPP2M_SDE:
			e = step_dpmpp(&r, k, N, t, s, x, w2, &h_prev,
			    o->kind == DM_SAMPLER_DPMPP2M_SDE);
			break;
		case DM_SAMPLER_EM: e = step_em(&r, kn, t, s, x); break;
		default: e = step_consistency(&r, k, t, s, x); break;
		}
		if (e == -1)
			goto out;
		inpaint(&r, kn, s, x);
		if (++rep < o->resample && s > 0) {
			renoise(&r, k, rep, t, s, x);
			goto again;
		}
		report(&r, k + 1, s, x);
	}
	rc = check_finite(x, r.n);
out:
	if (D->prepare != NULL && D->prepare(D->ctx, NULL, 0) == -1)
		rc = -1;
	if (nfe)
		*nfe = r.nfe;
	free(grid);
	free(r.tv);
	free(r.x0);
	free(r.eps);
	free(r.u);
	free(r.z);
	free(w1);
	free(w2);
	return rc;
}

/*
 * Adaptive: Bogacki–Shampine 3(2) with its embedded error estimate, per
 * row (each sample has its own step size, so it does not depend on the
 * batch), FSAL, the usual controller h *= clamp(0.9 err^(-1/3), 0.2, 5),
 * err the RMS over the row of e_i / (atol + rtol max(|x_i|, |x_new_i|)).
 * Integrates from t = 1 to t_min and finishes with x = x0_hat(x, t_min)
 * (one more evaluation) when t_min > 0.
 */
struct arow {
	double t, h;
	int64_t nfe;
	int done;
};

/* Velocities for the active rows: xs (A, d) at per-row times ts. */
static int
velocity_rows(struct run *r, const int *act, int A, const float *xs,
    const double *ts, float *out)
{
	/* denoise each active row with its own first index: rows are
	 * contiguous in xs, and their run indices are first + act[i] */
	for (int i = 0; i < A;) {
		int j = i + 1;
		while (j < A && act[j] == act[j - 1] + 1)
			j++;
		size_t off = (size_t)i * r->d;
		if (eval_rows(r, r->x0 + off, r->eps + off, xs + off, ts + i,
		    j - i, r->first + act[i]) == -1)
			return -1;
		for (int b = i; b < j; b++)
			velocity(r, ts[b], r->x0 + (size_t)b * r->d,
			    r->eps + (size_t)b * r->d, out + (size_t)b * r->d,
			    r->d);
		i = j;
	}
	return 0;
}

static int
adaptive(struct run *r, float *x)
{
	size_t d = r->d, n = r->n;
	double t_end = r->s->t_min;
	struct arow *row = dm_calloc((size_t)r->B, sizeof *row);
	int *act = dm_malloc((size_t)r->B * sizeof *act);
	double *ts = dm_malloc((size_t)r->B * sizeof *ts);
	float *k1 = dm_malloc(n * sizeof *k1), *k2 = dm_malloc(n * sizeof *k2);
	float *k3 = dm_malloc(n * sizeof *k3), *k4 = dm_malloc(n * sizeof *k4);
	float *xa = dm_malloc(n * sizeof *xa), *xs = dm_malloc(n * sizeof *xs);
	float *xn = dm_malloc(n * sizeof *xn);
	int rc = -1, A;

	if (!row || !act || !ts || !k1 || !k2 || !k3 || !k4 || !xa || !xs || !xn)
		goto out;
	if (!(r->o->rtol > 0) || !(r->o->atol > 0)) {
		dm_seterr("adaptive: rtol and atol must be positive");
		goto out;
	}
	for (int b = 0; b < r->B; b++) {
		row[b].t = 1;
		row[b].h = -0.05;
		act[b] = b;
		ts[b] = 1;
	}
	report(r, 0, 1, x);
	if (velocity_rows(r, act, r->B, x, ts, k1) == -1)
		goto out;
	for (int b = 0; b < r->B; b++)
		row[b].nfe = 1;
	for (int iter = 0; iter < 100000; iter++) {
		/* gather the active rows */
		A = 0;
		for (int b = 0; b < r->B; b++)
			if (!row[b].done) {
				double h = fmax(row[b].h, t_end - row[b].t);
				row[b].h = h;
				memcpy(xa + (size_t)A * d, x + (size_t)b * d, d * sizeof *x);
				memcpy(k2 + (size_t)A * d, k1 + (size_t)b * d, d * sizeof *x);
				act[A++] = b;
			}
		if (A == 0)
			break;
		/* k2 first holds the gathered k1; stages go into k3, k4, xn */
		float *g1 = k2;
		float *s2 = k3, *s3 = k4;
		for (int i = 0; i < A; i++) {
			double h = row[act[i]].h;
			ts[i] = row[act[i]].t + h / 2;
			for (size_t j = 0; j < d; j++)
				xs[i * d + j] = xa[i * d + j] + (float)(h / 2 * g1[i * d + j]);
		}
		if (velocity_rows(r, act, A, xs, ts, s2) == -1)
			goto out;
		for (int i = 0; i < A; i++) {
			double h = row[act[i]].h;
			ts[i] = row[act[i]].t + 0.75 * h;
			for (size_t j = 0; j < d; j++)
				xs[i * d + j] = xa[i * d + j] + (float)(0.75 * h * s2[i * d + j]);
		}
		if (velocity_rows(r, act, A, xs, ts, s3) == -1)
			goto out;
		for (int i = 0; i < A; i++) {
			double h = row[act[i]].h;
			ts[i] = row[act[i]].t + h;
			for (size_t j = 0; j < d; j++)
				xn[i * d + j] = xa[i * d + j] + (float)(h * (2.0 / 9 *
				    g1[i * d + j] + 1.0 / 3 * s2[i * d + j] + 4.0 / 9 *
				    s3[i * d + j]));
		}
		/* the last stage's velocity goes into xs (reused as k4) */
		if (velocity_rows(r, act, A, xn, ts, xs) == -1)
			goto out;
		for (int i = 0; i < A; i++) {
			struct arow *w = &row[act[i]];
			double h = w->h, e2 = 0;
			w->nfe += 3;
			for (size_t j = 0; j < d; j++) {
				size_t q = i * d + j;
				double err = h * (-5.0 / 72 * g1[q] + 1.0 / 12 * s2[q] +
				    1.0 / 9 * s3[q] - 1.0 / 8 * xs[q]);
				double sc = r->o->atol + r->o->rtol *
				    fmax(fabs(xa[q]), fabs(xn[q]));
				e2 += (err / sc) * (err / sc);
			}
			double en = sqrt(e2 / (double)d);
			double fac = 0.9 * pow(fmax(en, 1e-10), -1.0 / 3);
			fac = fmin(5, fmax(0.2, fac));
			if (en <= 1 || fabs(h) < 1e-8) {
				size_t b = (size_t)act[i];
				w->t += h;
				memcpy(x + b * d, xn + i * d, d * sizeof *x);
				memcpy(k1 + b * d, xs + i * d, d * sizeof *x);
				if (w->t <= t_end + 1e-12)
					w->done = 1;
			} else
				fac = fmin(fac, 1);
			w->h = h * fac;
		}
	}
	if (t_end > 0) {
		/* finish with x0_hat at t_min */
		for (int b = 0; b < r->B; b++) {
			act[b] = b;
			ts[b] = t_end;
			row[b].nfe++;
		}
		if (velocity_rows(r, act, r->B, x, ts, k2) == -1)
			goto out;
		memcpy(x, r->x0, n * sizeof *x);
	}
	for (int b = 0; b < r->B; b++)
		if (row[b].nfe > r->nfe)
			r->nfe = row[b].nfe;
	report(r, 1, 0, x);
	rc = check_finite(x, n);
out:
	free(row); free(act); free(ts); free(k1); free(k2); free(k3); free(k4);
	free(xa); free(xs); free(xn);
	return rc;
}

void
dm_sds_opts_defaults(struct dm_sds_opts *o)
{
	memset(o, 0, sizeof *o);
	o->steps = 500;
	o->lr = 0.05;
	o->t_lo = 0.02;
	o->t_hi = 0.98;
}

int
dm_sds_run(const struct dm_denoiser *D, const struct dm_sds_opts *o,
    float *x, int B, int64_t first, int64_t *nfe)
{
	const struct dm_schedule *s = D->sched;
	size_t d = D->d, n;
	float *xt = NULL, *z = NULL, *x0 = NULL, *eps = NULL, *g = NULL;
	float *am = NULL, *av = NULL;
	double *tv = NULL;
	int rc = -1;

	if (nfe)
		*nfe = 0;
	if (o->steps < 1)
		return dm_seterr("sds: steps must be at least 1 (got %d)",
		    o->steps);
	if (!(o->lr > 0) || !isfinite(o->lr))
		return dm_seterr("sds: learning rate %g is not positive", o->lr);
	if (!(o->t_lo >= 0 && o->t_lo <= o->t_hi && o->t_hi <= 1))
		return dm_seterr("sds: need 0 <= t_lo <= t_hi <= 1 (got %g, %g)",
		    o->t_lo, o->t_hi);
	if (B < 1)
		return 0;
	if (dm_mul_size((size_t)B, d, &n) == -1)
		return -1;
	xt = dm_malloc(n * sizeof *xt);
	z = dm_malloc(n * sizeof *z);
	x0 = dm_malloc(n * sizeof *x0);
	eps = dm_malloc(n * sizeof *eps);
	g = dm_malloc(n * sizeof *g);
	am = dm_calloc(n, sizeof *am);
	av = dm_calloc(n, sizeof *av);
	tv = dm_malloc((size_t)B * sizeof *tv);
	if (!xt || !z || !x0 || !eps || !g || !am || !av || !tv)
		goto out;
	for (int k = 0; k < o->steps; k++) {
		struct dm_sched_point p;
		double u;
		dm_rng_uniform_f64(&u, 1, o->seed, dm_noise_stream(DM_NOISE_TIME,
		    (UINT64_C(1) << 48) - 1), (uint64_t)k);
		double t = dm_schedule_clamp(s, o->t_lo + (o->t_hi - o->t_lo) * u);
		dm_schedule_at(s, t, &p);
		for (int b = 0; b < B; b++) {
			dm_rng_normal(z + (size_t)b * d, d, o->seed,
			    dm_noise_stream(DM_NOISE_STEP, (uint64_t)(first + b)),
			    dm_noise_index((uint64_t)k, 0));
			tv[b] = t;
		}
		for (size_t i = 0; i < n; i++)
			xt[i] = (float)(p.alpha * x[i] + p.sigma * z[i]);
		if (D->fn(D->ctx, x0, eps, xt, tv, B, first) == -1)
			goto out;
		if (nfe)
			(*nfe)++;
		double w = p.sigma * p.sigma;
		for (size_t i = 0; i < n; i++)
			g[i] = (float)(w * ((double)eps[i] - z[i]));
		/* Adam (b1 0.9, b2 0.999, eps 1e-8), serial: the tensors
		 * are small and the step is cheap next to the denoiser */
		double lr = o->lr * 0.5 * (1 + cos(M_PI * k / o->steps));
		double c1 = 1 - pow(0.9, k + 1), c2 = 1 - pow(0.999, k + 1);
		for (size_t i = 0; i < n; i++) {
			am[i] = 0.9f * am[i] + 0.1f * g[i];
			av[i] = 0.999f * av[i] + 0.001f * g[i] * g[i];
			x[i] -= (float)(lr * (am[i] / c1) /
			    (sqrt(av[i] / c2) + 1e-8));
		}
	}
	rc = check_finite(x, n);
out:
	free(xt); free(z); free(x0); free(eps); free(g); free(am); free(av);
	free(tv);
	return rc;
}
