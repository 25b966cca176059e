/* eval.c — classifier-based evaluation: feature moments, the Fréchet
 * distance between Gaussians, and the classifier's accuracy (dm_eval.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapack.h>

#include "dm_base.h"
#include "dm_eval.h"

int
dm_moments_init(struct dm_moments *mo, int d)
{
	size_t dd;

	memset(mo, 0, sizeof *mo);
	if (d < 1)
		return dm_seterr("moments: dimension %d", d);
	if (dm_mul_size((size_t)d, (size_t)d, &dd) == -1 ||
	    dm_mul_size(dd, sizeof(double), &dd) == -1)
		return -1;
	mo->d = d;
	mo->shift = dm_calloc((size_t)d, sizeof(double));
	mo->sum = dm_calloc((size_t)d, sizeof(double));
	mo->sxx = dm_malloc(dd);
	if (mo->shift == NULL || mo->sum == NULL || mo->sxx == NULL) {
		dm_moments_free(mo);
		return -1;
	}
	memset(mo->sxx, 0, dd);
	return 0;
}

void
dm_moments_free(struct dm_moments *mo)
{
	free(mo->shift);
	free(mo->sum);
	free(mo->sxx);
	memset(mo, 0, sizeof *mo);
}

#define MOMENT_ROWS 256		/* rows per dsyrk */

int
dm_moments_add(struct dm_moments *mo, const float *x, int64_t n)
{
	int d = mo->d;
	double *buf;

	if (n <= 0)
		return 0;
	if ((buf = dm_malloc((size_t)MOMENT_ROWS * d * sizeof(double))) == NULL)
		return -1;
	if (mo->n == 0)
		for (int j = 0; j < d; j++)
			mo->shift[j] = x[j];
	for (int64_t r0 = 0; r0 < n; r0 += MOMENT_ROWS) {
		int b = n - r0 < MOMENT_ROWS ? (int)(n - r0) : MOMENT_ROWS;
		for (int i = 0; i < b; i++)
			for (int j = 0; j < d; j++) {
				double v = (double)x[(r0 + i) * d + j] -
				    mo->shift[j];
				buf[(size_t)i * d + j] = v;
				mo->sum[j] += v;
			}
		cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, b, 1.0,
		    buf, d, 1.0, mo->sxx, d);
	}
	mo->n += n;
	free(buf);
	return 0;
}

int
dm_moments_get(const struct dm_moments *mo, double *mean, double *cov)
{
	int d = mo->d;
	double n = (double)mo->n;

	if (mo->n < 2)
		return dm_seterr("moments: a covariance needs 2 rows or more, "
		    "not %lld", (long long)mo->n);
	for (int j = 0; j < d; j++)
		mean[j] = mo->shift[j] + mo->sum[j] / n;
	for (int i = 0; i < d; i++)
		for (int j = i; j < d; j++) {
			double c = (mo->sxx[(size_t)i * d + j] -
			    mo->sum[i] * mo->sum[j] / n) / (n - 1);
			cov[(size_t)i * d + j] = c;
			cov[(size_t)j * d + i] = c;
		}
	return 0;
}

/* Eigenvalues w (ascending) of the symmetric a [d, d] and, with vectors,
 * its eigenvectors as the columns of a (column-major); a is overwritten. */
static int
sym_eig(double *a, double *w, int d, int vectors)
{
	lapack_int n = d, info = 0, lwork = -1, liwork = -1, iq;
	double wq;
	double *work;
	lapack_int *iwork;
	char jobz = vectors ? 'V' : 'N', uplo = 'U';

	LAPACK_dsyevd(&jobz, &uplo, &n, a, &n, w, &wq, &lwork, &iq, &liwork,
	    &info);
	if (info != 0)
		return dm_seterr("eigendecomposition: dsyevd query failed (%d)",
		    (int)info);
	lwork = (lapack_int)wq;
	liwork = iq;
	work = dm_malloc((size_t)lwork * sizeof *work);
	iwork = dm_malloc((size_t)liwork * sizeof *iwork);
	if (work == NULL || iwork == NULL) {
		free(work);
		free(iwork);
		return -1;
	}
	LAPACK_dsyevd(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork,
	    &info);
	free(work);
	free(iwork);
	if (info != 0)
		return dm_seterr("eigendecomposition: dsyevd did not converge "
		    "(%d)", (int)info);
	return 0;
}

int
dm_frechet_distance(const double *mu1, const double *s1, const double *mu2,
    const double *s2, int d, double *out)
{
	size_t dd;
	double *v = NULL, *r, *root, *t, *w;
	double dist = 0, tr = 0, trm = 0;
	int rc = -1;

	if (d < 1)
		return dm_seterr("frechet: dimension %d", d);
	if (dm_mul_size((size_t)d, (size_t)d, &dd) == -1 ||
	    dm_mul_size(dd, 4 * sizeof(double), &dd) == -1 ||
	    dm_add_size(dd, (size_t)d * sizeof(double), &dd) == -1)
		return -1;
	if ((v = dm_malloc(dd)) == NULL)
		return -1;
	dd = (size_t)d * d;
	r = v + dd;
	root = r + dd;
	t = root + dd;
	w = t + dd;
	for (int j = 0; j < d; j++) {
		double e = mu1[j] - mu2[j];
		dist += e * e;
		tr += s1[(size_t)j * d + j] + s2[(size_t)j * d + j];
	}
	/* s1 = V diag(w) V^T, so s1^1/2 = V diag(w^1/2) V^T = R R^T with
	 * R = V diag(w^1/4) (column-major; symmetric inputs read alike). */
	memcpy(v, s1, dd * sizeof(double));
	if (sym_eig(v, w, d, 1) == -1)
		goto out;
	for (int j = 0; j < d; j++) {
		double q = w[j] > 0 ? sqrt(sqrt(w[j])) : 0;
		for (int i = 0; i < d; i++)
			r[(size_t)j * d + i] = v[(size_t)j * d + i] * q;
	}
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, r,
	    d, r, d, 0.0, root, d);
	/* M = s1^1/2 s2 s1^1/2, symmetric positive semi-definite */
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0,
	    root, d, s2, d, 0.0, t, d);
	cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, t,
	    d, root, d, 0.0, v, d);
	for (int i = 0; i < d; i++)
		for (int j = i + 1; j < d; j++) {
			double a = 0.5 * (v[(size_t)i * d + j] +
			    v[(size_t)j * d + i]);
			v[(size_t)i * d + j] = v[(size_t)j * d + i] = a;
		}
	if (sym_eig(v, w, d, 0) == -1)
		goto out;
	for (int j = 0; j < d; j++)
		if (w[j] > 0)
			trm += sqrt(w[j]);
	*out = dist + tr - 2 * trm;
	rc = 0;
out:
	free(v);
	return rc;
}

int
dm_eval_classify(struct dm_model *m, const float *x, int64_t n, int batch,
    int64_t *pred, struct dm_moments *feat)
{
	size_t in = dm_model_in_size(m), K = dm_model_out_size(m);
	size_t fd = dm_model_feature_size(m);
	float *t = NULL, *logits = NULL, *f = NULL;
	float t0;
	int rc = -1;

	if (m->cfg.head != DM_HEAD_CLASSIFIER)
		return dm_seterr("model: not a classifier (dm-train "
		    "--objective classifier)");
	if (feat != NULL && feat->d != (int)fd)
		return dm_seterr("features: %d dimensions for a model with %zu",
		    feat->d, fd);
	if (batch < 1)
		return dm_seterr("batch of %d", batch);
	if (n < batch)
		batch = n > 0 ? (int)n : 1;
	t0 = (float)dm_schedule_clamp(&m->sched, 0);
	t = dm_malloc((size_t)batch * sizeof *t);
	logits = dm_malloc((size_t)batch * K * sizeof *logits);
	f = dm_malloc((size_t)batch * fd * sizeof *f);
	if (t == NULL || logits == NULL || f == NULL)
		goto out;
	for (int i = 0; i < batch; i++)
		t[i] = t0;
	for (int64_t r0 = 0; r0 < n; r0 += batch) {
		int b = n - r0 < batch ? (int)(n - r0) : batch;
		if (dm_model_features(m, f, logits, x + (size_t)r0 * in, t, NULL,
		    b) == -1)
			goto out;
		for (int i = 0; pred != NULL && i < b; i++) {
			const float *l = logits + (size_t)i * K;
			size_t best = 0;
			for (size_t k = 1; k < K; k++)
				if (l[k] > l[best])
					best = k;
			pred[r0 + i] = (int64_t)best;
		}
		for (size_t k = 0; k < (size_t)b * fd; k++)
			if (!isfinite(f[k])) {
				dm_seterr("row %lld: features are not finite",
				    (long long)(r0 + (int64_t)(k / fd)));
				goto out;
			}
		if (feat != NULL && dm_moments_add(feat, f, b) == -1)
			goto out;
	}
	rc = 0;
out:
	free(t);
	free(logits);
	free(f);
	return rc;
}

int
dm_eval_accuracy(const int64_t *pred, const int64_t *labels, int64_t n,
    int K, double *acc, double *per_class)
{
	int64_t right = 0, *cnt, *hit;

	if (n < 1)
		return dm_seterr("accuracy of no rows");
	if (K < 1)
		return dm_seterr("accuracy: %d classes", K);
	cnt = dm_calloc((size_t)K, sizeof *cnt);
	hit = dm_calloc((size_t)K, sizeof *hit);
	if (cnt == NULL || hit == NULL) {
		free(cnt);
		free(hit);
		return -1;
	}
	for (int64_t i = 0; i < n; i++) {
		if (labels[i] < 0 || labels[i] >= K) {
			free(cnt);
			free(hit);
			return dm_seterr("row %lld: label %lld is not in 0..%d",
			    (long long)i, (long long)labels[i], K - 1);
		}
		cnt[labels[i]]++;
		if (pred[i] == labels[i]) {
			hit[labels[i]]++;
			right++;
		}
	}
	*acc = (double)right / (double)n;
	for (int c = 0; per_class != NULL && c < K; c++)
		per_class[c] = cnt[c] ? (double)hit[c] / (double)cnt[c] : NAN;
	free(cnt);
	free(hit);
	return 0;
}
