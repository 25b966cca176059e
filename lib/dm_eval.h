/* dm_eval.h — evaluation of generated samples with a classifier of the
 * toolkit instead of Inception weights: the classifier's accuracy on the
 * intended labels, and the Fréchet distance between Gaussians fitted to
 * its penultimate features ("FD-classifier"; not Inception FID, whose
 * numbers it does not reproduce). */
#ifndef DM_EVAL_H
#define DM_EVAL_H

#include <stdint.h>

#include "dm_model.h"

/* Mean and covariance of vectors of dimension d, accumulated in float64
 * about the first row added (less cancellation than raw moments). */
struct dm_moments {
	int d;
	int64_t n;
	double *shift;           /* [d] the first row */
	double *sum;             /* [d] sum of (x - shift) */
	double *sxx;             /* [d, d] sum of (x - shift)(x - shift)^T,
	                          * upper triangle */
};
int dm_moments_init(struct dm_moments *mo, int d);
/* Add n rows x (n, d). */
int dm_moments_add(struct dm_moments *mo, const float *x, int64_t n);
/* mean [d] and covariance cov [d, d] (divisor n - 1); needs n >= 2. */
int dm_moments_get(const struct dm_moments *mo, double *mean, double *cov);
void dm_moments_free(struct dm_moments *mo);

/* Fréchet (2-Wasserstein) distance squared between N(mu1, s1) and
 * N(mu2, s2) in dimension d:
 *   |mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1^1/2 s2 s1^1/2)^1/2),
 * with both square roots from symmetric eigendecompositions (LAPACK
 * dsyevd; eigenvalues below 0 from rounding count as 0). */
int dm_frechet_distance(const double *mu1, const double *s1,
    const double *mu2, const double *s2, int d, double *out);

/* Classify n images x (n, in) with a classifier model at t = 0 (clamped to
 * its schedule's t_min), `batch` rows per forward: the predicted labels
 * into pred [n] (argmax of the logits; may be NULL) and, when feat is not
 * NULL, the penultimate features added to feat (of dimension
 * dm_model_feature_size). */
int dm_eval_classify(struct dm_model *m, const float *x, int64_t n,
    int batch, int64_t *pred, struct dm_moments *feat);

/* Accuracy of pred against labels (n each, labels in [0, K)): the overall
 * fraction into *acc, and per class c the fraction of rows labelled c that
 * are predicted c into per_class[c] (NaN for classes without rows; may be
 * NULL). */
int dm_eval_accuracy(const int64_t *pred, const int64_t *labels, int64_t n,
    int K, double *acc, double *per_class);

#endif
