/* dm_gmm.h — Gaussian mixtures and their exact denoiser (DESIGN.md
 * "Models"): p_0 = sum_k pi_k N(mu_k, Sigma_k); under the path
 * x_t = alpha x0 + sigma eps,
 *   p_t = sum_k pi_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I),
 *   E[x0 | x_t] = sum_k w_k(x_t) (mu_k + alpha Sigma_k
 *                 (alpha^2 Sigma_k + sigma^2 I)^-1 (x_t - alpha mu_k)),
 * w_k the posterior responsibilities.  A model file of arch "gmm" holds
 * gmm.weights [K], gmm.means [K, d], gmm.covs [K, d, d] (F32 or F64) and
 * the metadata dm.kind=model, dm.arch=gmm, dm.prediction=x0, dm.schedule. */
#ifndef DM_GMM_H
#define DM_GMM_H

#include <stdint.h>

#include "dm_io.h"

/* Limits checked before anything is allocated. */
#define DM_GMM_MAX_K      1000000
#define DM_GMM_MAX_D      4096
#define DM_GMM_MAX_ELEMS  (INT64_C(1) << 27)   /* K * d * d */

struct dm_gmm {
	int K, d;
	double *weights;    /* [K], positive, normalized to sum 1 */
	double *means;      /* [K * d] */
	double *covs;       /* [K * d * d], symmetric positive definite */
	double *chol;       /* [K * d * d] lower Cholesky factors of covs */
};

/* Take ownership of arrays (malloc'ed) and validate: weights > 0 (then
 * normalized), means finite, covs symmetric within 1e-9 relative (then
 * symmetrized) and positive definite.  -1 with reason ("component 2:
 * covariance is not positive definite"); on failure the arrays are freed
 * and g is zeroed, so dm_gmm_free(g) is always safe. */
int dm_gmm_init(struct dm_gmm *g, int K, int d, double *weights,
    double *means, double *covs);
void dm_gmm_free(struct dm_gmm *g);
/* From/to the tensors of a file (to: adds F64 tensors and the gmm model
 * metadata; schedule text may be NULL for a pure data mixture). */
int dm_gmm_from_file(struct dm_gmm *g, const struct dm_file *f);
int dm_gmm_to_file(const struct dm_gmm *g, struct dm_file *f,
    const char *schedule);
/* A mixture from a text spec (see dm-data(1) "gmm"): the first line that
 * is not blank or a comment ('#' to the end of the line) is "dim D", then
 * one component per line: "weight mean_1 .. mean_D" followed by nothing
 * (std 1), one std (isotropic; for D = 1 this reading wins), D stds
 * (diagonal) or D*D covariance entries (row-major).  Strict numbers;
 * errors name the line ("line 3: expected 2, 3, 4 or 6 numbers after the
 * weight, got 5"). */
int dm_gmm_parse(struct dm_gmm *g, const char *text);

/* n samples x [n, d] of the mixture itself (t = 0) and their component
 * labels (may be NULL); sample i uses (seed, dm_noise_stream(DM_NOISE_DATA,
 * first + i)): uniform double 0 picks the component k by the cumulative
 * weights (the first k with u < pi_1 + .. + pi_k), normal doubles 2..d+1
 * are z, and x = mu_k + L_k z (L_k the Cholesky factor). */
int dm_gmm_sample(const struct dm_gmm *g, int64_t n, uint64_t seed,
    int64_t first, float *x, int64_t *labels);
/* Exact E[x0 | x_t] for n points at (alpha, sigma); alpha >= 0, sigma >= 0,
 * not both 0.  Also the posterior eps_hat = (x_t - alpha x0_hat)/sigma is
 * derived by the caller.  -1 only on bad arguments. */
int dm_gmm_x0(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, float *x0, int64_t n);
/* Both halves of the posterior: x0 = E[x0 | x_t] and eps = E[eps | x_t]
 * = (x_t - alpha x0)/sigma, computed without the cancellation of that
 * formula near sigma = 0 (eps may be NULL; 0 where sigma = 0). */
int dm_gmm_denoise(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, float *x0, float *eps, int64_t n);
/* log p_t(x_t) for n points (natural log). */
int dm_gmm_logp(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, double *logp, int64_t n);

#endif
