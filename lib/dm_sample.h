/* dm_sample.h — samplers (SPEC.md §6): integrate from t = 1 (noise) down to
 * t = 0 (data) on a time grid, with any denoiser.
 *
 * A sampler sees the model only through (x0_hat, eps_hat), so every sampler
 * runs every prediction kind, every schedule and every time grid.  Noise is
 * per sample: row r of a run draws its starting point from
 * (seed, dm_noise_stream(DM_NOISE_EPS, r)) and its step-k noise from
 * (seed, dm_noise_stream(DM_NOISE_STEP, r), dm_noise_index(k, j)), so a
 * sample does not change with the batch size, the sample count or the
 * number of threads. */
#ifndef DM_SAMPLE_H
#define DM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "dm_schedule.h"

/* The model as the samplers see it: (x0_hat, eps_hat) for rows x (B, d) at
 * per-row times t (B) — already clamped to [t_min, t_max] by the caller —
 * for rows first .. first+B-1 of the run (for per-row labels or noise). */
struct dm_denoiser {
	int (*fn)(void *ctx, float *x0, float *eps, const float *x,
	    const double *t, int B, int64_t first);
	void *ctx;
	size_t d;                      /* elements per sample */
	const struct dm_schedule *sched;
	/* optional: the times of the next evaluations (dm_model_prepare);
	 * dm_sample_run ends with n = 0 */
	int (*prepare)(void *ctx, const double *t, int n);
};

enum dm_sampler {
	DM_SAMPLER_DDPM,
	DM_SAMPLER_DDIM,
	DM_SAMPLER_EULER,
	DM_SAMPLER_EULER_A,
	DM_SAMPLER_HEUN,
	DM_SAMPLER_RK4,
	DM_SAMPLER_DPM2,
	DM_SAMPLER_DPMPP2M,
	DM_SAMPLER_DPMPP2M_SDE,
	DM_SAMPLER_EM,
	DM_SAMPLER_ADAPTIVE,
	DM_SAMPLER_CONSISTENCY,
	DM_SAMPLER_COUNT
};
const char *dm_sampler_name(enum dm_sampler s);
/* Names as k-diffusion / stable-diffusion.cpp spell them, plus aliases
 * (dpmpp2m, dpm++_2m, euler_ancestral, ...). */
int dm_sampler_parse(const char *name, enum dm_sampler *out);
int dm_sampler_is_stochastic(enum dm_sampler s);

struct dm_sampler_opts {
	enum dm_sampler kind;
	int steps;                     /* grid intervals (adaptive: ignored) */
	enum dm_spacing spacing;
	double spacing_param;          /* karras rho / shift k; 0 = default */
	double eta;                    /* ddim, euler_a, dpm++2m_sde noise
	                                * scale; < 0: the sampler's default,
	                                * 0 for ddim, 1 for the others */
	double rtol, atol;             /* adaptive */
	uint64_t seed;
	/* inpainting: mask (B, d), 1 = known, known values (B, d); NULL = off */
	const float *mask, *known;
	/* RePaint resampling (Lugmayr et al. 2022): with inpainting, each
	 * step is taken `resample` times, renoising x from s back to t in
	 * between, so the unknown part settles with the known part; 1 = off */
	int resample;
	double threshold;              /* dynamic thresholding quantile in (0, 1); 0 = off */
	/* called with x at every grid point (k = 0 .. steps, t[k]); NULL = off */
	void (*on_step)(void *ctx, int k, double t, const float *x, int B);
	void *on_step_ctx;
};
void dm_sampler_opts_defaults(struct dm_sampler_opts *o);

/* The starting noise of rows first .. first+B-1: x (B, d). */
void dm_sample_noise(float *x, int B, size_t d, uint64_t seed, int64_t first);

/* Run the sampler on B rows: x (B, d) holds x1 (t = 1) on entry and the
 * samples (t = 0) on return.  *nfe receives the number of denoiser
 * evaluations per row (the largest over the rows for adaptive).  -1 with
 * reason on bad options or a denoiser failure; NaN/Inf in the result is
 * reported as an error, never returned silently. */
int dm_sample_run(const struct dm_denoiser *D, const struct dm_sampler_opts *o,
    float *x, int B, int64_t first, int64_t *nfe);

/* Score distillation sampling (SPEC §6; Poole et al. 2022): optimise x
 * itself with Adam along the gradient w(t) (eps_hat(alpha_t x + sigma_t
 * eps, t) - eps), w(t) = sigma_t^2 (DreamFusion's weighting).  Step k
 * draws one t for the whole batch, uniform in [t_lo, t_hi], from (seed,
 * dm_noise_stream(DM_NOISE_TIME, 2^48 - 1), k), and row r's eps from
 * (seed, dm_noise_stream(DM_NOISE_STEP, r), dm_noise_index(k, 0)), so a
 * row does not depend on the batch.  The learning rate decays from lr to
 * 0 on a cosine, so the last steps settle. */
struct dm_sds_opts {
	int steps;                     /* Adam updates */
	double lr;
	double t_lo, t_hi;             /* clamped to the schedule's range */
	uint64_t seed;
};
void dm_sds_opts_defaults(struct dm_sds_opts *o); /* 500, 0.05, 0.02, 0.98 */
/* x (B, d): the starting tensor on entry, the optimised one on return.
 * *nfe receives the denoiser evaluations per row. */
int dm_sds_run(const struct dm_denoiser *D, const struct dm_sds_opts *o,
    float *x, int B, int64_t first, int64_t *nfe);

#endif
