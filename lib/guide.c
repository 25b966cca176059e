/* guide.c — classifier guidance (SPEC.md §6): the gradient of
 * log p(y | x_t, t) from a time-conditioned classifier, a network with a
 * classifier head (through its backward pass) or a Gaussian mixture with
 * classes (in closed form), and its effect on (x0_hat, eps_hat). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_model.h"

int
dm_model_is_classifier(const struct dm_model *m)
{
	if (m->cfg.arch == DM_ARCH_GMM)
		return m->gmm.classes >= 2;
	return m->cfg.head == DM_HEAD_CLASSIFIER;
}

/* The network: forward without dropout keeping the caches, then the
 * gradient of the log-softmax at y, onehot(y) - softmax(logits), back to
 * the input. */
static int
net_class_grad(struct dm_model *m, float *grad, double *logp, const float *x,
    double t, const int64_t *y, int B)
{
	size_t K = (size_t)m->cfg.classes;
	float *logit = dm_malloc((size_t)B * K * sizeof *logit);
	float *dout = dm_malloc((size_t)B * K * sizeof *dout);
	float *tt = dm_malloc((size_t)B * sizeof *tt);
	float dropout = m->cfg.dropout;
	int rc = -1;

	if (logit == NULL || dout == NULL || tt == NULL)
		goto out;
	for (int b = 0; b < B; b++)
		tt[b] = (float)t;
	m->cfg.dropout = 0;
	rc = dm_model_forward(m, logit, x, tt, NULL, B, 1);
	m->cfg.dropout = dropout;
	if (rc == -1)
		goto out;
	for (int b = 0; b < B; b++) {
		const float *o = logit + (size_t)b * K;
		float *g = dout + (size_t)b * K;
		double mx = o[0], z = 0;
		for (size_t k = 1; k < K; k++)
			mx = o[k] > mx ? o[k] : mx;
		for (size_t k = 0; k < K; k++)
			z += exp(o[k] - mx);
		for (size_t k = 0; k < K; k++)
			g[k] = (float)(((int64_t)k == y[b]) - exp(o[k] - mx) / z);
		if (logp)
			logp[b] = o[y[b]] - mx - log(z);
	}
	rc = dm_model_backward(m, grad, dout);
out:
	free(logit);
	free(dout);
	free(tt);
	return rc;
}

int
dm_model_class_grad(struct dm_model *m, float *grad, double *logp,
    const float *x, double t, const int64_t *y, int B)
{
	struct dm_sched_point p;

	if (!dm_model_is_classifier(m))
		return dm_seterr("model: not a classifier (a network trained "
		    "with the classifier objective, or a gmm with classes)");
	if (B < 1)
		return dm_seterr("model: batch of %d", B);
	for (int b = 0; b < B; b++)
		if (y[b] < 0 || y[b] >= m->cfg.classes)
			return dm_seterr("model: label %lld out of range (0 to "
			    "%d)", (long long)y[b], m->cfg.classes - 1);
	dm_schedule_at(&m->sched, dm_schedule_clamp(&m->sched, t), &p);
	if (m->cfg.arch == DM_ARCH_GMM)
		return dm_gmm_class_logp(&m->gmm, p.alpha, p.sigma, x, y, logp,
		    grad, B);
	return net_class_grad(m, grad, logp, x, p.t, y, B);
}

int
dm_model_classifier_guidance(struct dm_model *clf, double scale,
    const struct dm_sched_point *p, float *x0, float *eps, const float *x,
    const int64_t *y, int B)
{
	size_t d = dm_model_in_size(clf), n = (size_t)B * d;
	float *g = dm_malloc(n * sizeof *g);

	if (g == NULL)
		return -1;
	if (dm_model_class_grad(clf, g, NULL, x, p->t, y, B) == -1) {
		free(g);
		return -1;
	}
	/* eps' = eps - s sigma grad; x0' = (x - sigma eps')/alpha keeps the
	 * pair consistent: x0 + s sigma^2/alpha grad */
	double ce = scale * p->sigma;
	double c0 = p->alpha > 0 ? scale * p->sigma * p->sigma / p->alpha : 0;
	for (size_t i = 0; i < n; i++) {
		eps[i] -= (float)(ce * g[i]);
		x0[i] += (float)(c0 * g[i]);
	}
	free(g);
	return 0;
}
