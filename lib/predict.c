/* predict.c — prediction kinds and their conversions (SPEC.md §4). */
#include <string.h>

#include "dm_base.h"
#include "dm_predict.h"

static const char *names[DM_PRED_COUNT] = {"eps", "x0", "v", "flow", "score"};

const char *
dm_pred_name(enum dm_pred k)
{
	return (unsigned)k < DM_PRED_COUNT ? names[k] : "?";
}

int
dm_pred_parse(const char *name, enum dm_pred *out)
{
	for (int i = 0; i < DM_PRED_COUNT; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (enum dm_pred)i;
			return 0;
		}
	return dm_seterr("unknown prediction kind '%s' (eps, x0, v, flow, score)",
	    name);
}

double
dm_schedule_clamp(const struct dm_schedule *s, double t)
{
	return t < s->t_min ? s->t_min : t > s->t_max ? s->t_max : t;
}

void
dm_pred_to_x0_eps(enum dm_pred k, const struct dm_sched_point *p,
    const float *xt, const float *out, float *x0, float *eps, size_t n)
{
	double a = p->alpha, s = p->sigma, da = p->dalpha, ds = p->dsigma;

	for (size_t i = 0; i < n; i++) {
		double x = xt[i], o = out[i], x0h, eh;
		switch (k) {
		case DM_PRED_EPS:
			eh = o;
			x0h = (x - s * eh) / a;
			break;
		case DM_PRED_X0:
			x0h = o;
			eh = (x - a * x0h) / s;
			break;
		case DM_PRED_V: {
			double r = a * a + s * s;
			x0h = (a * x - s * o) / r;
			eh = (s * x + a * o) / r;
			break;
		}
		case DM_PRED_FLOW: {
			double d = a * ds - s * da;
			x0h = (ds * x - s * o) / d;
			eh = (a * o - da * x) / d;
			break;
		}
		default: /* score */
			eh = -s * o;
			x0h = (x - s * eh) / a;
			break;
		}
		if (x0)
			x0[i] = (float)x0h;
		if (eps)
			eps[i] = (float)eh;
	}
}

void
dm_pred_from_x0_eps(enum dm_pred k, const struct dm_sched_point *p,
    const float *x0, const float *eps, float *out, size_t n)
{
	double a = p->alpha, s = p->sigma, da = p->dalpha, ds = p->dsigma;

	for (size_t i = 0; i < n; i++) {
		double v;
		switch (k) {
		case DM_PRED_EPS: v = eps[i]; break;
		case DM_PRED_X0: v = x0[i]; break;
		case DM_PRED_V: v = a * eps[i] - s * x0[i]; break;
		case DM_PRED_FLOW: v = da * x0[i] + ds * eps[i]; break;
		default: v = -eps[i] / s; break;
		}
		out[i] = (float)v;
	}
}

void
dm_pf_velocity(const struct dm_sched_point *p, const float *x0,
    const float *eps, float *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		u[i] = (float)(p->dalpha * x0[i] + p->dsigma * eps[i]);
}

void
dm_sde_coeffs(const struct dm_sched_point *p, double *f, double *g2)
{
	*f = p->dalpha / p->alpha;
	*g2 = 2 * p->sigma * p->dsigma - 2 * *f * p->sigma * p->sigma;
}
