/* dm_noise.h — the forward process (SPEC.md §3): x_t = alpha_t x0 +
 * sigma_t eps in one shot, and the step-by-step chain
 * x_i = a_i x_{i-1} + b_i eps_i that must agree with it in distribution.
 *
 * Random draws (seed, stream, index) of sample i (its index in the file):
 *   eps      normal floats 0..d-1 of dm_noise_stream(DM_NOISE_EPS, i);
 *   t        uniform float 0 of dm_noise_stream(DM_NOISE_TIME, i);
 *   chain    step j's noise: normal floats dm_noise_index(j, 0..d-1) of
 *            dm_noise_stream(DM_NOISE_STEP, i), j = 0..step. */
#ifndef DM_NOISE_H
#define DM_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "dm_schedule.h"

/* eps [n, d] for samples first .. first + n - 1. */
void dm_noise_draw_eps(float *eps, int64_t n, size_t d, uint64_t seed,
    int64_t first);
/* t [n] uniform on (0, 1) for samples first .. first + n - 1. */
void dm_noise_draw_t(float *t, int64_t n, uint64_t seed, int64_t first);
/* xt [n, d] = alpha(t_i) x0 + sigma(t_i) eps, t_i = t[i] (or t[0] for
 * every sample when t_per_sample is 0).  xt may be x0. */
void dm_noise_forward(const struct dm_schedule *s, const float *t,
    int t_per_sample, const float *x0, const float *eps, float *xt,
    int64_t n, size_t d);

/* The chain's grid: t_j = j / T with T the schedule's own step count (a
 * continuous schedule is discretized with its T, 1000 unless set). */
int dm_noise_chain_T(const struct dm_schedule *s);
/* The step j with j / T = t (within 1e-6 of a step); -1 with reason if t
 * is not on the grid or outside [0, 1]. */
int dm_noise_chain_step(const struct dm_schedule *s, double t, int *step);
/* Run the chain of sample first + i from x0 to step steps[i] (or steps[0]
 * for all when per_sample is 0): x_0 = alpha_0 x0 + sigma_0 eps_0 (just
 * x0 where sigma_0 = 0), then for j = 1 .. step
 *   x_j = (alpha_j / alpha_{j-1}) x_{j-1} + sqrt(sigma_j^2 -
 *         (alpha_j / alpha_{j-1})^2 sigma_{j-1}^2) eps_j,
 * which for a variance-preserving schedule is DDPM's
 * x_j = sqrt(1 - beta_j) x_{j-1} + sqrt(beta_j) eps_j.  Work in double;
 * -1 only if out of memory.  xt may be x0. */
int dm_noise_chain(const struct dm_schedule *s, const int *steps,
    int per_sample, const float *x0, float *xt, int64_t n, size_t d,
    uint64_t seed, int64_t first);

#endif
