/* schedule.c — noise schedules (SPEC.md §2): alpha_t, sigma_t, their
 * derivatives, lambda_t and its inverse, discrete beta/abar tables, the
 * posterior q(x_s | x_t, x0), and sampling time grids. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_schedule.h"

static const char *kind_names[DM_SCHEDULE_COUNT] = {
	"linear", "cosine", "vp", "ve", "rf", "edm"
};
static const char *spacing_names[DM_SPACING_COUNT] = {
	"trailing", "leading", "lambda", "karras", "shift"
};

const char *
dm_schedule_name(enum dm_schedule_kind kind)
{
	return (unsigned)kind < DM_SCHEDULE_COUNT ? kind_names[kind] : "?";
}

int
dm_schedule_parse(const char *name, enum dm_schedule_kind *out)
{
	for (int i = 0; i < DM_SCHEDULE_COUNT; i++)
		if (strcmp(name, kind_names[i]) == 0) {
			*out = (enum dm_schedule_kind)i;
			return 0;
		}
	return dm_seterr("unknown schedule '%s' (linear, cosine, vp, ve, rf, edm)",
	    name);
}

const char *
dm_spacing_name(enum dm_spacing sp)
{
	return (unsigned)sp < DM_SPACING_COUNT ? spacing_names[sp] : "?";
}

int
dm_spacing_parse(const char *name, enum dm_spacing *out)
{
	for (int i = 0; i < DM_SPACING_COUNT; i++)
		if (strcmp(name, spacing_names[i]) == 0) {
			*out = (enum dm_spacing)i;
			return 0;
		}
	if (strcmp(name, "uniform") == 0) {
		*out = DM_SPACING_TRAILING;
		return 0;
	}
	return dm_seterr("unknown spacing '%s' "
	    "(trailing, leading, lambda, karras, shift)", name);
}

int
dm_schedule_is_vp(const struct dm_schedule *s)
{
	return s->kind == DM_SCHEDULE_LINEAR || s->kind == DM_SCHEDULE_COSINE ||
	    s->kind == DM_SCHEDULE_VP;
}

static int
is_discrete(const struct dm_schedule *s)
{
	return s->kind == DM_SCHEDULE_LINEAR || s->kind == DM_SCHEDULE_COSINE;
}

void
dm_schedule_defaults(struct dm_schedule *s, enum dm_schedule_kind kind)
{
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->T = 1000;
	s->s = 0.008;
	s->rho = 7;
	s->sigma_q = 1;
	switch (kind) {
	case DM_SCHEDULE_LINEAR:
		s->beta_min = 1e-4;
		s->beta_max = 0.02;
		break;
	case DM_SCHEDULE_VP:
		s->beta_min = 0.1;
		s->beta_max = 20;
		break;
	case DM_SCHEDULE_VE:
		s->sigma_min = 0.01;
		s->sigma_max = 50;
		break;
	case DM_SCHEDULE_EDM:
		s->sigma_min = 0.002;
		s->sigma_max = 80;
		break;
	default:
		break;
	}
	s->t_min = -1;	/* resolved in init */
	s->t_max = -1;
}

/* Nichol & Dhariwal's f(t) = cos^2((t + s)/(1 + s) * pi/2). */
static double
cosine_f(double t, double s)
{
	double c = cos((t + s) / (1 + s) * M_PI / 2);

	return c * c;
}

static int
build_table(struct dm_schedule *s)
{
	int T = s->T;

	if ((s->log_abar = dm_calloc((size_t)T + 1, sizeof(double))) == NULL)
		return -1;
	s->log_abar[0] = 0;
	for (int i = 1; i <= T; i++) {
		double beta;
		if (s->kind == DM_SCHEDULE_LINEAR)
			beta = T == 1 ? s->beta_min : s->beta_min +
			    (s->beta_max - s->beta_min) * (i - 1) / (T - 1);
		else {
			double f0 = cosine_f(0, s->s);
			beta = 1 - (cosine_f((double)i / T, s->s) / f0) /
			    (cosine_f((double)(i - 1) / T, s->s) / f0);
			if (beta > 0.999)
				beta = 0.999;
		}
		s->log_abar[i] = s->log_abar[i - 1] + log1p(-beta);
	}
	return 0;
}

int
dm_schedule_init(struct dm_schedule *s)
{
	struct dm_sched_point p;

	s->log_abar = NULL;
	s->alpha1 = 0;
	if ((unsigned)s->kind >= DM_SCHEDULE_COUNT)
		return dm_seterr("bad schedule kind");
	if (is_discrete(s) && (s->T < 1 || s->T > 1000000))
		return dm_seterr("T must be 1..1000000 (got %d)", s->T);
	if ((s->kind == DM_SCHEDULE_LINEAR || s->kind == DM_SCHEDULE_VP) &&
	    !(s->beta_min > 0 && s->beta_max >= s->beta_min &&
	    (s->kind == DM_SCHEDULE_VP || s->beta_max < 1)))
		return dm_seterr("beta range must satisfy 0 < beta_min <= "
		    "beta_max%s (got %g, %g)",
		    s->kind == DM_SCHEDULE_LINEAR ? " < 1" : "", s->beta_min,
		    s->beta_max);
	if (s->kind == DM_SCHEDULE_COSINE && !(s->s >= 0 && s->s < 1))
		return dm_seterr("cosine offset s must be in [0, 1) (got %g)", s->s);
	if ((s->kind == DM_SCHEDULE_EDM || (s->kind == DM_SCHEDULE_VE &&
	    !s->ve_sqrt)) && !(s->sigma_min > 0 && s->sigma_max > s->sigma_min))
		return dm_seterr("sigma range must satisfy 0 < sigma_min < "
		    "sigma_max (got %g, %g)", s->sigma_min, s->sigma_max);
	if (s->kind == DM_SCHEDULE_EDM && !(s->rho > 0))
		return dm_seterr("rho must be positive (got %g)", s->rho);
	if (s->kind == DM_SCHEDULE_VE && s->ve_sqrt && !(s->sigma_q > 0))
		return dm_seterr("sigma_q must be positive (got %g)", s->sigma_q);
	if (s->zero_snr && !dm_schedule_is_vp(s))
		return dm_seterr("zero terminal SNR applies to VP schedules "
		    "(linear, cosine, vp), not %s", dm_schedule_name(s->kind));
	if (is_discrete(s) && build_table(s) == -1)
		return -1;
	if (s->zero_snr) {
		int z = s->zero_snr;
		s->zero_snr = 0;
		dm_schedule_at(s, 1, &p);
		s->zero_snr = z;
		s->alpha1 = p.alpha;
	}
	if (s->t_min < 0) {
		int data_sigma_positive = s->kind == DM_SCHEDULE_EDM ||
		    (s->kind == DM_SCHEDULE_VE && !s->ve_sqrt);
		s->t_min = data_sigma_positive ? 0 :
		    is_discrete(s) ? 1.0 / s->T : 1e-3;
	}
	if (s->t_max < 0)
		s->t_max = s->kind == DM_SCHEDULE_RF || s->zero_snr ? 1 - 1e-3 : 1;
	if (!(s->t_min >= 0 && s->t_min < s->t_max && s->t_max <= 1)) {
		dm_schedule_free(s);
		return dm_seterr("need 0 <= t_min < t_max <= 1 (got %g, %g)",
		    s->t_min, s->t_max);
	}
	return 0;
}

void
dm_schedule_free(struct dm_schedule *s)
{
	free(s->log_abar);
	s->log_abar = NULL;
}

/* VP kinds: log abar(t) and its derivative. */
static void
vp_log_abar(const struct dm_schedule *s, double t, double *la, double *dla)
{
	if (s->kind == DM_SCHEDULE_VP) {
		/* Song et al. 2021: beta(t) = beta_min + t (beta_max - beta_min),
		 * abar(t) = exp(-int_0^t beta), so that the mean coefficient
		 * alpha = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2) is
		 * the paper's and vp is the continuous limit of linear (T = 1000:
		 * abar(1) = 4.3e-5).  SPEC.md §2 writes that exponent as log abar;
		 * it is log alpha. */
		double db = s->beta_max - s->beta_min;
		*la = -0.5 * t * t * db - t * s->beta_min;
		*dla = -t * db - s->beta_min;
		return;
	}
	/* discrete: linear interpolation of log abar between steps */
	double u = t * s->T;
	int i = (int)floor(u);
	if (i >= s->T)
		i = s->T - 1;
	if (i < 0)
		i = 0;
	double d = s->log_abar[i + 1] - s->log_abar[i];
	*la = s->log_abar[i] + (u - i) * d;
	*dla = d * s->T;
}

void
dm_schedule_at(const struct dm_schedule *s, double t, struct dm_sched_point *p)
{
	double a, sg, da, ds;

	if (!(t >= 0))
		t = 0;
	if (t > 1)
		t = 1;
	p->t = t;
	switch (s->kind) {
	case DM_SCHEDULE_RF:
		a = 1 - t, sg = t, da = -1, ds = 1;
		break;
	case DM_SCHEDULE_VE:
		a = 1, da = 0;
		if (s->ve_sqrt) {
			sg = s->sigma_q * sqrt(t);
			ds = t > 0 ? s->sigma_q / (2 * sqrt(t)) : INFINITY;
		} else {
			double r = log(s->sigma_max / s->sigma_min);
			sg = s->sigma_min * exp(r * t);
			ds = sg * r;
		}
		break;
	case DM_SCHEDULE_EDM: {
		double lo = pow(s->sigma_min, 1 / s->rho);
		double dd = pow(s->sigma_max, 1 / s->rho) - lo;
		double b = lo + t * dd;
		a = 1, da = 0;
		sg = pow(b, s->rho);
		ds = s->rho * pow(b, s->rho - 1) * dd;
		break;
	}
	default: {
		double la, dla;
		vp_log_abar(s, t, &la, &dla);
		a = exp(0.5 * la);
		sg = sqrt(fmax(0, -expm1(la)));
		da = 0.5 * a * dla;
		ds = sg > 0 ? -exp(la) * dla / (2 * sg) : INFINITY;
		break;
	}
	}
	if (s->zero_snr) {
		/* Lin et al. 2024: shift alpha so alpha(1) = 0, keep alpha(0) = 1 */
		double k = 1 / (1 - s->alpha1);
		a = (a - s->alpha1) * k;
		da *= k;
		sg = sqrt((1 - a) * (1 + a));
		ds = sg > 0 ? -a * da / sg : INFINITY;
	}
	p->alpha = a;
	p->sigma = sg;
	p->dalpha = da;
	p->dsigma = ds;
	p->lambda = log(a) - log(sg);
}

double
dm_schedule_alpha(const struct dm_schedule *s, double t)
{
	struct dm_sched_point p;

	dm_schedule_at(s, t, &p);
	return p.alpha;
}

double
dm_schedule_sigma(const struct dm_schedule *s, double t)
{
	struct dm_sched_point p;

	dm_schedule_at(s, t, &p);
	return p.sigma;
}

double
dm_schedule_lambda(const struct dm_schedule *s, double t)
{
	struct dm_sched_point p;

	dm_schedule_at(s, t, &p);
	return p.lambda;
}

static double
clamp01(double t)
{
	return t < 0 ? 0 : t > 1 ? 1 : t;
}

/* lambda is non-increasing in t for every schedule: bisection. */
static double
t_of_lambda_bisect(const struct dm_schedule *s, double lambda)
{
	double lo = 0, hi = 1;

	for (int i = 0; i < 200 && hi - lo > 1e-16; i++) {
		double mid = 0.5 * (lo + hi);
		if (dm_schedule_lambda(s, mid) > lambda)
			lo = mid;
		else
			hi = mid;
	}
	return 0.5 * (lo + hi);
}

double
dm_schedule_t_of_lambda(const struct dm_schedule *s, double lambda)
{
	if (isnan(lambda))
		return NAN;
	if (s->zero_snr)
		return t_of_lambda_bisect(s, lambda);
	switch (s->kind) {
	case DM_SCHEDULE_RF:
		return 1 / (1 + exp(lambda));
	case DM_SCHEDULE_VP: {
		/* abar = sigmoid(2 lambda): solve a t^2 + b t + la = 0 */
		double la = -log1p(exp(-2 * lambda));
		double a = 0.5 * (s->beta_max - s->beta_min);
		double b = s->beta_min;
		if (lambda < -350)	/* exp overflow: la ~ 2 lambda */
			la = 2 * lambda;
		return clamp01(-2 * la / (b + sqrt(b * b - 4 * a * la)));
	}
	case DM_SCHEDULE_VE:
		if (s->ve_sqrt) {
			double r = exp(-lambda) / s->sigma_q;
			return clamp01(r * r);
		}
		return clamp01((-lambda - log(s->sigma_min)) /
		    log(s->sigma_max / s->sigma_min));
	case DM_SCHEDULE_EDM: {
		double lo = pow(s->sigma_min, 1 / s->rho);
		double dd = pow(s->sigma_max, 1 / s->rho) - lo;
		return clamp01((exp(-lambda / s->rho) - lo) / dd);
	}
	default:
		return t_of_lambda_bisect(s, lambda);
	}
}

double
dm_schedule_beta(const struct dm_schedule *s, int i)
{
	if (!is_discrete(s) || i < 1 || i > s->T)
		return NAN;
	if (s->zero_snr) {
		double a0 = dm_schedule_abar(s, i - 1), a1 = dm_schedule_abar(s, i);
		return 1 - a1 / a0;
	}
	return -expm1(s->log_abar[i] - s->log_abar[i - 1]);
}

double
dm_schedule_abar(const struct dm_schedule *s, int i)
{
	double a;

	if (!is_discrete(s) || i < 0 || i > s->T)
		return NAN;
	if (!s->zero_snr)
		return exp(s->log_abar[i]);
	a = dm_schedule_alpha(s, (double)i / s->T);
	return a * a;
}

void
dm_schedule_posterior(const struct dm_schedule *s, double t_s, double t_t,
    double *c_xt, double *c_x0, double *var)
{
	struct dm_sched_point ps, pt;
	double a_ts, v_ts;

	dm_schedule_at(s, t_s, &ps);
	dm_schedule_at(s, t_t, &pt);
	a_ts = pt.alpha / ps.alpha;
	v_ts = pt.sigma * pt.sigma - a_ts * a_ts * ps.sigma * ps.sigma;
	if (v_ts < 0)
		v_ts = 0;
	*c_xt = a_ts * ps.sigma * ps.sigma / (pt.sigma * pt.sigma);
	*c_x0 = ps.alpha * v_ts / (pt.sigma * pt.sigma);
	*var = v_ts * ps.sigma * ps.sigma / (pt.sigma * pt.sigma);
}

int
dm_schedule_grid(const struct dm_schedule *s, int n, enum dm_spacing sp,
    double param, double *t)
{
	if (n < 1)
		return dm_seterr("steps must be at least 1 (got %d)", n);
	t[n] = 0;
	switch (sp) {
	case DM_SPACING_TRAILING:
		for (int k = 0; k < n; k++)
			t[k] = 1 - (double)k / n;
		break;
	case DM_SPACING_LEADING: {
		/* diffusers: timesteps (n-1-k)*ratio + 1 of T, ratio = T // n */
		int T = is_discrete(s) ? s->T : 1000;
		int ratio = T / n;
		if (ratio < 1)
			return dm_seterr("leading spacing: %d steps exceed T = %d",
			    n, T);
		for (int k = 0; k < n; k++)
			t[k] = (double)((n - 1 - k) * ratio + 1) / T;
		break;
	}
	case DM_SPACING_LAMBDA: {
		double l0 = dm_schedule_lambda(s, s->t_max);
		double l1 = dm_schedule_lambda(s, s->t_min);
		if (!isfinite(l0) || !isfinite(l1))
			return dm_seterr("log-SNR is infinite at t_min or t_max; "
			    "set them inside (0, 1)");
		for (int k = 0; k < n; k++)
			t[k] = dm_schedule_t_of_lambda(s,
			    n == 1 ? l0 : l0 + (l1 - l0) * k / (n - 1));
		t[0] = s->t_max;
		break;
	}
	case DM_SPACING_KARRAS: {
		double rho = param > 0 ? param : s->rho > 0 ? s->rho : 7;
		double hi = exp(-dm_schedule_lambda(s, s->t_max));
		double lo = exp(-dm_schedule_lambda(s, s->t_min));
		if (!isfinite(hi) || !(lo > 0))
			return dm_seterr("karras spacing needs sigma/alpha finite "
			    "and positive at t_max and t_min");
		double a = pow(hi, 1 / rho), b = pow(lo, 1 / rho);
		for (int k = 0; k < n; k++) {
			double sg = pow(n == 1 ? a : a + (b - a) * k / (n - 1), rho);
			t[k] = dm_schedule_t_of_lambda(s, -log(sg));
		}
		t[0] = s->t_max;
		break;
	}
	case DM_SPACING_SHIFT: {
		double k = param > 0 ? param : 3;
		for (int i = 0; i < n; i++) {
			double u = 1 - (double)i / n;
			t[i] = k * u / (1 + (k - 1) * u);
		}
		break;
	}
	default:
		return dm_seterr("bad spacing");
	}
	for (int k = 0; k < n; k++)
		if (!(t[k] > t[k + 1]))
			return dm_seterr("%s spacing with %d steps gives a "
			    "non-decreasing grid at step %d (t = %g, %g)",
			    dm_spacing_name(sp), n, k, t[k], t[k + 1]);
	return 0;
}

/* Parameters by name, for the text form. */
static const struct {
	const char *key;
	size_t off;
	int is_int;
} params[] = {
	{"T", offsetof(struct dm_schedule, T), 1},
	{"beta_min", offsetof(struct dm_schedule, beta_min), 0},
	{"beta_max", offsetof(struct dm_schedule, beta_max), 0},
	{"s", offsetof(struct dm_schedule, s), 0},
	{"sigma_min", offsetof(struct dm_schedule, sigma_min), 0},
	{"sigma_max", offsetof(struct dm_schedule, sigma_max), 0},
	{"rho", offsetof(struct dm_schedule, rho), 0},
	{"sigma_q", offsetof(struct dm_schedule, sigma_q), 0},
	{"t_min", offsetof(struct dm_schedule, t_min), 0},
	{"t_max", offsetof(struct dm_schedule, t_max), 0},
};
#define NPARAMS (sizeof params / sizeof params[0])

static int
set_param(struct dm_schedule *s, const char *key, const char *val)
{
	for (size_t i = 0; i < NPARAMS; i++) {
		if (strcmp(key, params[i].key) != 0)
			continue;
		char *end;
		errno = 0;
		double v = strtod(val, &end);
		if (*val == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
			return dm_seterr("schedule parameter %s: '%s' is not a "
			    "number", key, val);
		if (params[i].is_int) {
			if (v != floor(v) || v < 1 || v > 1000000)
				return dm_seterr("schedule parameter %s: '%s' is "
				    "not an integer in 1..1000000", key, val);
			*(int *)(void *)((char *)s + params[i].off) = (int)v;
		} else
			*(double *)(void *)((char *)s + params[i].off) = v;
		return 0;
	}
	return dm_seterr("unknown schedule parameter '%s'", key);
}

int
dm_schedule_from_string(struct dm_schedule *s, const char *spec)
{
	char buf[512], *p, *item, *save = NULL;
	enum dm_schedule_kind kind = DM_SCHEDULE_LINEAR;

	if (strlen(spec) >= sizeof buf)
		return dm_seterr("schedule text too long");
	strcpy(buf, spec);
	if ((p = strchr(buf, ':')) != NULL)
		*p++ = '\0';
	if (dm_schedule_parse(buf, &kind) == -1)
		return -1;
	dm_schedule_defaults(s, kind);
	for (item = p ? strtok_r(p, ",", &save) : NULL; item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (eq == NULL) {
			if (strcmp(item, "sqrt") == 0 && kind == DM_SCHEDULE_VE)
				s->ve_sqrt = 1;
			else if (strcmp(item, "zero_snr") == 0)
				s->zero_snr = 1;
			else
				return dm_seterr("schedule %s: bad item '%s' "
				    "(want KEY=VALUE%s)", buf, item,
				    kind == DM_SCHEDULE_VE ? ", sqrt or zero_snr" :
				    " or zero_snr");
			continue;
		}
		*eq = '\0';
		if (set_param(s, item, eq + 1) == -1)
			return -1;
	}
	return dm_schedule_init(s);
}

/* Shortest of %.15g/%.17g that reads back exactly. */
static void
fmt_double(char *buf, size_t n, double v)
{
	snprintf(buf, n, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, n, "%.17g", v);
}

/* Append "key=value," to buf at *k (snprintf-style: *k may exceed n). */
static void
append(char *buf, size_t n, size_t *k, const char *text)
{
	*k += (size_t)snprintf(buf + (*k < n ? *k : n), *k < n ? n - *k : 0,
	    "%s,", text);
}

static const struct dm_schedule_param_list {
	const char *keys[4];
} used[DM_SCHEDULE_COUNT] = {
	[DM_SCHEDULE_LINEAR] = {{"T", "beta_min", "beta_max"}},
	[DM_SCHEDULE_COSINE] = {{"T", "s"}},
	[DM_SCHEDULE_VP] = {{"beta_min", "beta_max"}},
	[DM_SCHEDULE_VE] = {{"sigma_min", "sigma_max"}},
	[DM_SCHEDULE_RF] = {{NULL}},
	[DM_SCHEDULE_EDM] = {{"sigma_min", "sigma_max", "rho"}},
};

static void
append_param(const struct dm_schedule *s, const char *key, char *buf,
    size_t n, size_t *k)
{
	char item[64], v[40];

	for (size_t i = 0; i < NPARAMS; i++) {
		const char *p = (const char *)s + params[i].off;
		if (strcmp(key, params[i].key) != 0)
			continue;
		if (params[i].is_int)
			snprintf(v, sizeof v, "%d", *(const int *)(const void *)p);
		else
			fmt_double(v, sizeof v, *(const double *)(const void *)p);
		snprintf(item, sizeof item, "%s=%s", key, v);
		append(buf, n, k, item);
	}
}

int
dm_schedule_to_string(const struct dm_schedule *s, char *buf, size_t n)
{
	size_t k = 0;
	const char *const *keys = used[s->kind].keys;

	if (n == 0)
		return dm_seterr("no room for the schedule text");
	k = (size_t)snprintf(buf, n, "%s:", dm_schedule_name(s->kind));
	if (s->kind == DM_SCHEDULE_VE && s->ve_sqrt) {
		append(buf, n, &k, "sqrt");
		append_param(s, "sigma_q", buf, n, &k);
	} else
		for (int i = 0; i < 4 && keys[i] != NULL; i++)
			append_param(s, keys[i], buf, n, &k);
	if (s->zero_snr)
		append(buf, n, &k, "zero_snr");
	append_param(s, "t_min", buf, n, &k);
	append_param(s, "t_max", buf, n, &k);
	if (k >= n)
		return dm_seterr("schedule text longer than %zu bytes", n);
	buf[k - 1] = '\0';	/* the last ',' */
	return 0;
}
