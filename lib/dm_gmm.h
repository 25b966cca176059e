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
	/* optional class of each component (dm_gmm_set_classes): class c
	 * is the mixture of its components, p(x | c) = sum_{k in c} pi_k
	 * N(mu_k, Sigma_k) / sum_{k in c} pi_k; NULL = no classes */
	int *cls;           /* [K], 0 .. classes - 1 */
	int classes;        /* 0 = none */
};

/* Take ownership of arrays (malloc'ed) and validate: weights > 0 (then
 * normalized), means finite, covs symmetric within 1e-9 relative (then
 * symmetrized) and positive definite.  -1 with reason ("component 2:
 * covariance is not positive definite"); on failure the arrays are freed
 * and g is zeroed, so dm_gmm_free(g) is always safe. */
int dm_gmm_init(struct dm_gmm *g, int K, int d, double *weights,
    double *means, double *covs);
void dm_gmm_free(struct dm_gmm *g);
/* Give component k the class cls[k]; classes = max + 1, and every class
 * from 0 to max must have a component.  -1 with reason, g unchanged. */
int dm_gmm_set_classes(struct dm_gmm *g, const int64_t *cls);
/* From/to the tensors of a file (to: adds F64 tensors and the gmm model
 * metadata; schedule text may be NULL for a pure data mixture).  The
 * optional integer tensor gmm.classes [K] holds the components' classes. */
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
/* The same for class-conditional mixtures: row p uses only the
 * components of class y[p]; y[p] < 0 or >= classes (the null class) or
 * y = NULL means the whole mixture. */
int dm_gmm_denoise_class(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, const int64_t *y, float *x0, float *eps, int64_t n);
/* The exact classifier of a mixture with classes: logp[p] = log p(y[p] |
 * x_t) = log sum_{k in y} pi_k N_k(x_t) - log sum_k pi_k N_k(x_t) with
 * N_k = N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I), and grad (n, d) its
 * gradient in x_t, sum_{k in y} w_k^y g_k - sum_k w_k g_k, g_k = -A_k^-1
 * (x_t - alpha mu_k) (either output may be NULL).  Needs classes and
 * labels in 0 .. classes - 1. */
int dm_gmm_class_logp(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, const int64_t *y, double *logp, float *grad, int64_t n);
/* log p_t(x_t) for n points (natural log). */
int dm_gmm_logp(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, double *logp, int64_t n);

#endif
