/* dm_schedule.h — noise schedules (SPEC.md §2) and sampling time grids.
 *
 * Time convention (SPEC.md §1): t in [0, 1], t = 0 is data, t = 1 is noise
 * (or the source distribution); x_t = alpha_t * x0 + sigma_t * eps;
 * lambda_t = log(alpha_t / sigma_t).  A discrete schedule with T steps maps
 * step i to t = i/T with alpha = sqrt(abar_i), sigma = sqrt(1 - abar_i), and
 * log(abar) is interpolated linearly in t between steps. */
#ifndef DM_SCHEDULE_H
#define DM_SCHEDULE_H

#include <stddef.h>

enum dm_schedule_kind {
	DM_SCHEDULE_LINEAR,   /* DDPM: beta linear, T steps (discrete, VP) */
	DM_SCHEDULE_COSINE,   /* Nichol & Dhariwal, T steps (discrete, VP) */
	DM_SCHEDULE_VP,       /* continuous VP-SDE (Song et al. 2021) */
	DM_SCHEDULE_VE,       /* alpha = 1, geometric sigma, or sigma_q sqrt(t) */
	DM_SCHEDULE_RF,       /* alpha = 1 - t, sigma = t */
	DM_SCHEDULE_EDM,      /* alpha = 1, Karras rho-interpolated sigma */
	DM_SCHEDULE_COUNT
};

struct dm_schedule {
	enum dm_schedule_kind kind;
	int T;                      /* discrete steps (linear, cosine) */
	double beta_min, beta_max;  /* linear: 1e-4, 0.02; vp: 0.1, 20 */
	double s;                   /* cosine offset, 0.008 */
	double sigma_min, sigma_max;/* ve: 0.01, 50; edm: 0.002, 80 */
	double rho;                 /* edm: 7 */
	double sigma_q;             /* ve with ve_sqrt: sigma = sigma_q sqrt(t) */
	int ve_sqrt;                /* ve: 1 = sigma_q sqrt(t), 0 = geometric */
	int zero_snr;               /* VP kinds: rescale to zero terminal SNR */
	double t_min, t_max;        /* clamp for conversions that divide by alpha or sigma */
	/* derived (dm_schedule_init) */
	double *log_abar;           /* discrete: [T + 1], log_abar[0] = 0 */
	double alpha1;              /* zero_snr: base alpha at t = 1 */
};

/* Defaults of SPEC.md §2 for a kind (no allocation). */
void dm_schedule_defaults(struct dm_schedule *s, enum dm_schedule_kind kind);
/* Validate parameters and build derived tables; -1 with reason. */
int dm_schedule_init(struct dm_schedule *s);
void dm_schedule_free(struct dm_schedule *s);
/* A schedule as text, as tools take it (--schedule) and model files record
 * it (dm.schedule): "NAME[:KEY=VALUE,...]" with keys T, beta_min, beta_max,
 * s, sigma_min, sigma_max, rho, sigma_q, t_min, t_max and the flags sqrt
 * (ve: sigma_q sqrt(t)) and zero_snr.  E.g. "linear", "cosine:T=4000",
 * "ve:sqrt,sigma_q=2", "linear:zero_snr".  Initializes s (free it). */
int dm_schedule_from_string(struct dm_schedule *s, const char *spec);
/* The canonical text of an initialized schedule, every parameter that
 * matters for its kind; -1 if it does not fit in n bytes. */
int dm_schedule_to_string(const struct dm_schedule *s, char *buf, size_t n);
/* "linear", "cosine", "vp", "ve", "rf", "edm" <-> kind. */
const char *dm_schedule_name(enum dm_schedule_kind kind);
int dm_schedule_parse(const char *name, enum dm_schedule_kind *out);
int dm_schedule_is_vp(const struct dm_schedule *s);

/* Everything about the path at time t (t is clamped to [0, 1]). */
struct dm_sched_point {
	double t, alpha, sigma;
	double dalpha, dsigma;      /* d alpha / dt, d sigma / dt */
	double lambda;              /* log(alpha / sigma); +-inf at the ends */
};
void dm_schedule_at(const struct dm_schedule *s, double t,
    struct dm_sched_point *p);
double dm_schedule_alpha(const struct dm_schedule *s, double t);
double dm_schedule_sigma(const struct dm_schedule *s, double t);
double dm_schedule_lambda(const struct dm_schedule *s, double t);
/* The t in [0, 1] with lambda_t = lambda (closed form where one exists,
 * bisection otherwise); lambda beyond the schedule's range gives 0 or 1. */
double dm_schedule_t_of_lambda(const struct dm_schedule *s, double lambda);

/* Discrete schedules: beta_i and abar_i for i = 1..T (abar_0 = 1). */
double dm_schedule_beta(const struct dm_schedule *s, int i);
double dm_schedule_abar(const struct dm_schedule *s, int i);

/* Posterior q(x_s | x_t, x0) = N(c_xt x_t + c_x0 x0, var I) for s < t. */
void dm_schedule_posterior(const struct dm_schedule *s, double t_s,
    double t_t, double *c_xt, double *c_x0, double *var);

/* Sampling time grids: n steps give n + 1 points t[0] > ... > t[n] = 0. */
enum dm_spacing {
	DM_SPACING_TRAILING,   /* uniform in t, t[0] = 1 */
	DM_SPACING_LEADING,    /* diffusers' "leading" over T (1000 if continuous) */
	DM_SPACING_LAMBDA,     /* uniform in log-SNR between t_max and t_min */
	DM_SPACING_KARRAS,     /* Karras rho-spacing in sigma/alpha */
	DM_SPACING_SHIFT,      /* uniform, then t' = k t / (1 + (k - 1) t) */
	DM_SPACING_COUNT
};
const char *dm_spacing_name(enum dm_spacing sp);
int dm_spacing_parse(const char *name, enum dm_spacing *out);
/* Fill t[0..n]; param is rho for karras (<= 0: the schedule's rho or 7)
 * and k for shift. */
int dm_schedule_grid(const struct dm_schedule *s, int n, enum dm_spacing sp,
    double param, double *t);

#endif
