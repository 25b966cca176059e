/* dm_predict.h — what a model predicts, and conversions (SPEC.md §4).
 *
 * Samplers work only with (x0_hat, eps_hat), so every sampler runs every
 * kind of model.  Conversions divide by alpha or sigma near the ends of
 * [0, 1]: evaluate them at a point clamped with dm_schedule_clamp(). */
#ifndef DM_PREDICT_H
#define DM_PREDICT_H

#include <stddef.h>

#include "dm_schedule.h"

enum dm_pred {
	DM_PRED_EPS,     /* eps */
	DM_PRED_X0,      /* x0 */
	DM_PRED_V,       /* v = alpha eps - sigma x0 */
	DM_PRED_FLOW,    /* u = alpha' x0 + sigma' eps (rf: eps - x0) */
	DM_PRED_SCORE,   /* -eps / sigma */
	DM_PRED_COUNT
};

const char *dm_pred_name(enum dm_pred k);
int dm_pred_parse(const char *name, enum dm_pred *out);

/* t clamped to the schedule's [t_min, t_max]. */
double dm_schedule_clamp(const struct dm_schedule *s, double t);

/* A network output of kind k at x_t -> (x0_hat, eps_hat); n elements.
 * x0 or eps may be NULL when not wanted. */
void dm_pred_to_x0_eps(enum dm_pred k, const struct dm_sched_point *p,
    const float *xt, const float *out, float *x0, float *eps, size_t n);
/* (x0, eps) -> what a model of kind k outputs (its training target). */
void dm_pred_from_x0_eps(enum dm_pred k, const struct dm_sched_point *p,
    const float *x0, const float *eps, float *out, size_t n);
/* Probability-flow ODE velocity dx/dt = alpha' x0_hat + sigma' eps_hat. */
void dm_pf_velocity(const struct dm_sched_point *p, const float *x0,
    const float *eps, float *u, size_t n);
/* Reverse-SDE coefficients: f = alpha'/alpha, g^2 = 2 sigma sigma' - 2 f sigma^2. */
void dm_sde_coeffs(const struct dm_sched_point *p, double *f, double *g2);

#endif
