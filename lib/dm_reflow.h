/* dm_reflow.h — straightening and distillation (SPEC.md §8): reflow pairs,
 * transport cost and straightness, progressive-distillation targets, and
 * consistency models (training, distillation).  dm-reflow(1) and
 * dm-train(1) --objective consistency are the tools around it.
 *
 * Time convention (SPEC.md §1): t = 0 is data, t = 1 the source; pairs are
 * (x0, x1) with x0 = Flow(x1), the ODE solved from t = 1 down to 0. */
#ifndef DM_REFLOW_H
#define DM_REFLOW_H

#include <stddef.h>
#include <stdint.h>

#include "dm_model.h"
#include "dm_sample.h"
#include "dm_train.h"

/* The samplers' view of an unconditional model: D->fn evaluates
 * dm_model_denoise on runs of rows that share a time. */
void dm_model_denoiser(struct dm_denoiser *D, struct dm_model *m);

/* x0[i] = Flow(x1[i]) for n rows of d elements, in batches of `batch`
 * rows, with the sampler of `so` (a deterministic one makes a map). */
int dm_reflow_pairs(const struct dm_denoiser *D,
    const struct dm_sampler_opts *so, const float *x1, float *x0, int64_t n,
    int batch);

/* Transport cost E||x1 - x0||^2 and straightness
 *   S = int_0^1 E||(x1 - x0) - u(x_t, t)||^2 dt
 * along the trajectories the sampler of `so` simulates from x1: with
 * grid t_0 = 1 > ... > t_K = 0 and trajectory points x_k, the trapezoid
 * rule over the grid of mean_i ||x1_i - x0_i - u(x_k,i, t_k)||^2, with
 * u = alpha' x0_hat + sigma' eps_hat the PF-ODE velocity (dx/dt) at t_k
 * clamped.  0 for a flow that is constant along straight lines.  x0 (n
 * rows) receives the end points when not NULL.  The sampler's NFE plus
 * K + 1 per row. */
int dm_reflow_straightness(const struct dm_denoiser *D,
    const struct dm_sampler_opts *so, const float *x1, int64_t n, int batch,
    float *x0, double *cost, double *S);

/* Progressive distillation (Salimans & Ho 2022): per row b, two DDIM
 * (eta = 0) steps of the teacher from z_t at t[b] through t1[b] to t2[b]
 * give z'' and the student's x0 target
 *   x~ = (z'' - (sigma''/sigma_t) z_t) / (alpha'' - (sigma''/sigma_t) alpha_t),
 * the x0 whose single DDIM step t -> t2 lands on z''.  (alpha_t, sigma_t)
 * are taken at t clamped to the schedule's range, where the student is
 * evaluated, so that the identity holds for the student's own step.
 * Rows are d elements; xt receives the targets. */
int dm_pd_target(struct dm_model *teacher, const float *z, int B,
    const double *t, const double *t1, const double *t2, float *xt);

/* Consistency options: preset improved (1: stop-gradient target,
 * pseudo-Huber, lognormal index, doubling curriculum 10..1280, weight
 * 1/(sigma_{n+1} - sigma_n)) or original (0: EMA target mu0 = 0.9, L2,
 * uniform index, sqrt curriculum 2..150, weight 1). */
void dm_cm_opts_preset(struct dm_cm_opts *o, int improved);
/* One option by key: "target" sg|ema[:mu0], "loss" l2|huber[:c],
 * "sigma" uniform|lognormal[:mean,std], "steps" doubling[:s0,s1] |
 * sqrt[:s0,s1] | fixed:N, "weight" uniform|inv-dsigma. */
int dm_cm_opts_parse(struct dm_cm_opts *o, const char *key,
    const char *value);
/* The options as ",cm_target=...": snprintf-like (full length). */
int dm_cm_opts_format(const struct dm_cm_opts *o, char *buf, size_t n);
/* N(k): grid points at update k of K (Song et al. 2023, Song & Dhariwal
 * 2023): doubling min(s0 2^floor(k/K'), s1) + 1 with
 * K' = floor(K / (log2(s1/s0) + 1)); sqrt ceil(sqrt(k/K ((s1+1)^2 -
 * s0^2) + s0^2) - 1) + 1; fixed s1 + 1. */
int dm_cm_steps(const struct dm_cm_opts *o, int64_t k, int64_t K);
/* The VE noise levels of an N-point grid: Karras rho = 7 spacing between
 * the model schedule's sigma_min and sigma_max, sigma[0] = sigma_min. */
void dm_cm_sigmas(const struct dm_schedule *s, int N, double *sigma);

/* Distillation modes of a trainer (they replace dm_trainer_step's loss):
 *  - consistency: with objective consistency and a model with cm=1.
 *    Without a teacher, consistency training (x_n = x0 + sigma_n eps with
 *    the same eps); with one, consistency distillation: x_n is one Heun
 *    step of the teacher's VE ODE dx/dsigma = (x - D(x, sigma))/sigma
 *    from x_{n+1}, any teacher schedule through x_VE = x/alpha,
 *    sigma_VE = sigma/alpha.
 *  - progressive: the student (same kind as the teacher) learns two DDIM
 *    steps of the teacher on an N-step grid (t = i/N, i = 1..N) in one,
 *    x0 loss weighted max(SNR, 1).
 * The teacher is borrowed and must have the student's data shape. */
int dm_cm_set_teacher(struct dm_trainer *tr, struct dm_model *teacher);
int dm_pd_set_teacher(struct dm_trainer *tr, struct dm_model *teacher,
    int N);
/* Called by dm_trainer_step when a mode is set. */
int dm_distill_step(struct dm_trainer *tr);
void dm_distill_free(struct dm_cm_state *st);
/* EMA target parameters of the original consistency training (NULL
 * otherwise), for checkpoints. */
float *dm_distill_target(struct dm_trainer *tr);

#endif
