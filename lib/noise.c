/* noise.c — the forward process (SPEC.md §3), one-shot and step by step. */
#include <math.h>
#include <stdlib.h>

#include "dm_base.h"
#include "dm_noise.h"
#include "dm_rng.h"

void
dm_noise_draw_eps(float *eps, int64_t n, size_t d, uint64_t seed,
    int64_t first)
{
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++)
		dm_rng_normal(eps + (size_t)i * d, d, seed,
		    dm_noise_stream(DM_NOISE_EPS, (uint64_t)(first + i)), 0);
}

void
dm_noise_draw_t(float *t, int64_t n, uint64_t seed, int64_t first)
{
	for (int64_t i = 0; i < n; i++)
		dm_rng_uniform(t + i, 1, seed,
		    dm_noise_stream(DM_NOISE_TIME, (uint64_t)(first + i)), 0);
}

void
dm_noise_forward(const struct dm_schedule *s, const float *t,
    int t_per_sample, const float *x0, const float *eps, float *xt,
    int64_t n, size_t d)
{
#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++) {
		struct dm_sched_point p;
		dm_schedule_at(s, t[t_per_sample ? i : 0], &p);
		for (size_t j = 0; j < d; j++) {
			size_t k = (size_t)i * d + j;
			xt[k] = (float)(p.alpha * x0[k] + p.sigma * eps[k]);
		}
	}
}

int
dm_noise_chain_T(const struct dm_schedule *s)
{
	return s->T >= 1 ? s->T : 1000;
}

int
dm_noise_chain_step(const struct dm_schedule *s, double t, int *step)
{
	int T = dm_noise_chain_T(s);
	double u = t * T, r = nearbyint(u);

	if (!(t >= 0 && t <= 1))
		return dm_seterr("t = %g is outside [0, 1]", t);
	if (fabs(u - r) > 1e-6 * (1 + u))
		return dm_seterr("t = %g is not on the chain's grid j/%d", t, T);
	*step = (int)r;
	return 0;
}

/* Coefficients of step j: x_j = a x_{j-1} + b eps_j. */
static void
chain_coeffs(const struct dm_schedule *s, int T, int j, double *a, double *b)
{
	struct dm_sched_point p0, p1;
	double v;

	dm_schedule_at(s, (double)(j - 1) / T, &p0);
	dm_schedule_at(s, (double)j / T, &p1);
	*a = p0.alpha > 0 ? p1.alpha / p0.alpha : 0;
	v = p1.sigma * p1.sigma - *a * *a * p0.sigma * p0.sigma;
	*b = v > 0 ? sqrt(v) : 0;
}

int
dm_noise_chain(const struct dm_schedule *s, const int *steps, int per_sample,
    const float *x0, float *xt, int64_t n, size_t d, uint64_t seed,
    int64_t first)
{
	int T = dm_noise_chain_T(s), fail = 0, maxstep = 0;
	double *coef;
	struct dm_sched_point p;

	for (int64_t i = 0; i < (per_sample ? n : n > 0); i++) {
		if (steps[i] < 0 || steps[i] > T)
			return dm_seterr("chain step %d outside 0..%d", steps[i], T);
		if (steps[i] > maxstep)
			maxstep = steps[i];
	}
	if ((coef = dm_malloc(2 * ((size_t)maxstep + 1) * sizeof *coef)) == NULL)
		return -1;
	dm_schedule_at(s, 0, &p);
	coef[0] = p.alpha;
	coef[1] = p.sigma;
	for (int j = 1; j <= maxstep; j++)
		chain_coeffs(s, T, j, &coef[2 * j], &coef[2 * j + 1]);
#pragma omp parallel
	{
		double *x = malloc(d * sizeof *x);
		float *e = malloc(d * sizeof *e);
		if (x == NULL || e == NULL) {
#pragma omp atomic write
			fail = 1;
		}
#pragma omp for schedule(static)
		for (int64_t i = 0; i < n; i++) {
			if (x == NULL || e == NULL)
				continue;
			uint64_t stream = dm_noise_stream(DM_NOISE_STEP,
			    (uint64_t)(first + i));
			int step = steps[per_sample ? i : 0];
			for (int j = 0; j <= step; j++) {
				double a = coef[2 * j], b = coef[2 * j + 1];
				if (b > 0)
					dm_rng_normal(e, d, seed, stream,
					    dm_noise_index((uint64_t)j, 0));
				for (size_t k = 0; k < d; k++) {
					double prev = j == 0 ?
					    x0[(size_t)i * d + k] : x[k];
					x[k] = a * prev + (b > 0 ? b * e[k] : 0);
				}
			}
			for (size_t k = 0; k < d; k++)
				xt[(size_t)i * d + k] = (float)x[k];
		}
		free(x);
		free(e);
	}
	free(coef);
	if (fail)
		return dm_seterr("out of memory");
	return 0;
}
