/* test_eval.c — dm_eval.h: feature moments against a two-pass reference,
 * the Fréchet distance against closed forms, the accuracy against counting
 * by hand, and the models' penultimate features against their last layer. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

/* A random rotation Q [d, d] (row-major) by Gram-Schmidt on normals. */
static void
random_rotation(double *q, int d, uint64_t seed)
{
	float *z = malloc((size_t)d * d * sizeof *z);

	dm_rng_normal(z, (size_t)d * d, seed, 1, 0);
	for (int i = 0; i < d; i++) {
		double *r = q + (size_t)i * d, nr = 0;
		for (int j = 0; j < d; j++)
			r[j] = z[(size_t)i * d + j];
		for (int k = 0; k < i; k++) {
			double dot = 0;
			for (int j = 0; j < d; j++)
				dot += r[j] * q[(size_t)k * d + j];
			for (int j = 0; j < d; j++)
				r[j] -= dot * q[(size_t)k * d + j];
		}
		for (int j = 0; j < d; j++)
			nr += r[j] * r[j];
		for (int j = 0; j < d; j++)
			r[j] /= sqrt(nr);
	}
	free(z);
}

/* s = Q^T diag(e) Q */
static void
rotated_diag(double *s, const double *q, const double *e, int d)
{
	for (int i = 0; i < d; i++)
		for (int j = 0; j < d; j++) {
			double v = 0;
			for (int k = 0; k < d; k++)
				v += q[(size_t)k * d + i] * e[k] *
				    q[(size_t)k * d + j];
			s[(size_t)i * d + j] = v;
		}
}

/* Commuting covariances (one eigenbasis): the distance is
 * |mu1 - mu2|^2 + sum (sqrt a_k - sqrt b_k)^2. */
DM_TEST(frechet_commuting_closed_form)
{
	enum { D = 12 };
	double q[D * D], s1[D * D], s2[D * D], a[D], b[D], mu1[D], mu2[D];
	double want = 0, got;

	random_rotation(q, D, 7);
	for (int k = 0; k < D; k++) {
		a[k] = 0.1 + k * 0.3;
		b[k] = k % 3 == 0 ? 0 : 2.0 / (k + 1);   /* singular s2 */
		mu1[k] = 0.5 * k;
		mu2[k] = 1 - 0.25 * k;
		want += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]) +
		    (sqrt(a[k]) - sqrt(b[k])) * (sqrt(a[k]) - sqrt(b[k]));
	}
	rotated_diag(s1, q, a, D);
	rotated_diag(s2, q, b, D);
	CHECK_OK(dm_frechet_distance(mu1, s1, mu2, s2, D, &got));
	CHECK_NEAR(got, want, 1e-9 * want);
	/* symmetric in its arguments, 0 for equal Gaussians */
	CHECK_OK(dm_frechet_distance(mu2, s2, mu1, s1, D, &got));
	CHECK_NEAR(got, want, 1e-9 * want);
	CHECK_OK(dm_frechet_distance(mu1, s1, mu1, s1, D, &got));
	CHECK_NEAR(got, 0, 1e-9);
}

/* Two non-commuting 2x2 covariances: for a 2x2 positive semi-definite M,
 * tr M^1/2 = sqrt(tr M + 2 sqrt(det M)), and with M = s1^1/2 s2 s1^1/2,
 * tr M = tr(s1 s2), det M = det s1 det s2. */
DM_TEST(frechet_2x2_closed_form)
{
	double s1[4] = {2.0, 0.7, 0.7, 0.5}, s2[4] = {0.3, -0.2, -0.2, 1.9};
	double mu1[2] = {1, -2}, mu2[2] = {0.5, 0.25}, got;
	double trp = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] +
	    s1[3] * s2[3];
	double det = (s1[0] * s1[3] - s1[1] * s1[2]) *
	    (s2[0] * s2[3] - s2[1] * s2[2]);
	double want = 0.25 + 2.25 * 2.25 + s1[0] + s1[3] + s2[0] + s2[3] -
	    2 * sqrt(trp + 2 * sqrt(det));

	CHECK_OK(dm_frechet_distance(mu1, s1, mu2, s2, 2, &got));
	CHECK_NEAR(got, want, 1e-12);
	CHECK_FAILS(dm_frechet_distance(mu1, s1, mu2, s2, 0, &got),
	    "dimension");
}

/* Moments about the first row against a two-pass mean and covariance, on
 * data far from the origin (raw second moments would cancel badly). */
DM_TEST(moments_two_pass)
{
	enum { N = 1001, D = 5 };
	static float x[N * D];
	double mean[D], cov[D * D], m2[D] = {0};
	struct dm_moments mo;

	dm_rng_normal(x, N * D, 3, 2, 0);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++)
			x[i * D + j] = 1e4f + (float)(j + 1) * x[i * D + j] +
			    (j ? 0.5f * x[i * D] : 0);
	CHECK_OK(dm_moments_init(&mo, D));
	CHECK_OK(dm_moments_add(&mo, x, 300));     /* in pieces */
	CHECK_OK(dm_moments_add(&mo, x + 300 * D, N - 300));
	CHECK_EQ_INT(mo.n, N);
	CHECK_OK(dm_moments_get(&mo, mean, cov));
	for (int j = 0; j < D; j++) {
		for (int i = 0; i < N; i++)
			m2[j] += x[i * D + j];
		m2[j] /= N;
		CHECK_NEAR(mean[j], m2[j], 1e-9 * 1e4);
	}
	for (int j = 0; j < D; j++)
		for (int k = 0; k < D; k++) {
			double c = 0;
			for (int i = 0; i < N; i++)
				c += (x[i * D + j] - m2[j]) * (x[i * D + k] - m2[k]);
			c /= N - 1;
			CHECK_NEAR(cov[j * D + k], c, 1e-9 + 1e-9 * fabs(c));
		}
	dm_moments_free(&mo);
	CHECK_OK(dm_moments_init(&mo, 3));
	CHECK_OK(dm_moments_add(&mo, x, 1));
	CHECK_FAILS(dm_moments_get(&mo, mean, cov), "2 rows");
	dm_moments_free(&mo);
}

DM_TEST(eval_accuracy_counts)
{
	int64_t pred[8] = {0, 1, 2, 2, 1, 0, 0, 2};
	int64_t lab[8] = {0, 1, 1, 2, 1, 2, 0, 0};
	double acc, pc[4];

	CHECK_OK(dm_eval_accuracy(pred, lab, 8, 4, &acc, pc));
	CHECK_NEAR(acc, 5.0 / 8, 0);
	CHECK_NEAR(pc[0], 2.0 / 3, 0);
	CHECK_NEAR(pc[1], 2.0 / 3, 0);
	CHECK_NEAR(pc[2], 1.0 / 2, 0);
	CHECK(isnan(pc[3]));
	lab[5] = 4;
	CHECK_FAILS(dm_eval_accuracy(pred, lab, 8, 4, &acc, pc), "label 4");
}

static const struct dm_param *
param(const struct dm_model *m, const char *name)
{
	for (int i = 0; i < m->nparam; i++)
		if (strcmp(m->param[i].name, name) == 0)
			return &m->param[i];
	return NULL;
}

/* The features are what the last linear layer reads: logits = W f + b,
 * with random (not zero) head weights. */
static void
check_features(struct dm_model *m, const char *head, int B)
{
	size_t in = dm_model_in_size(m), K = dm_model_out_size(m);
	size_t fd = dm_model_feature_size(m);
	const struct dm_param *w = param(m, head);
	float *x = malloc(B * in * sizeof *x), *t = malloc(B * sizeof *t);
	float *f = malloc(B * fd * sizeof *f), *l = malloc(B * K * sizeof *l);
	char bname[128];

	CHECK(w != NULL && (size_t)w->shape[0] == K &&
	    (size_t)w->shape[1] == fd);
	snprintf(bname, sizeof bname, "%.*s.bias",
	    (int)(strlen(head) - strlen(".weight")), head);
	const struct dm_param *bp = param(m, bname);
	CHECK(bp != NULL);
	if (w == NULL || bp == NULL)
		goto out;
	dm_rng_normal(m->params + w->offset, w->numel, 5, 0, 0);
	dm_rng_normal(m->params + bp->offset, bp->numel, 5, 1, 0);
	dm_rng_normal(x, B * in, 6, 0, 0);
	for (int i = 0; i < B; i++)
		t[i] = 0.1f * i;
	CHECK_OK(dm_model_features(m, f, l, x, t, NULL, B));
	for (int i = 0; i < B; i++)
		for (size_t k = 0; k < K; k++) {
			double s = m->params[bp->offset + k];
			for (size_t j = 0; j < fd; j++)
				s += (double)m->params[w->offset + k * fd + j] *
				    f[i * fd + j];
			CHECK_NEAR(l[i * K + k], s, 1e-4 * (1 + fabs(s)));
		}
out:
	free(x);
	free(t);
	free(f);
	free(l);
}

DM_TEST(model_features_mlp_unet)
{
	struct dm_model_config c;
	struct dm_model *m;
	int64_t s1[1] = {3}, s3[3] = {1, 8, 8};

	dm_model_config_defaults(&c, DM_ARCH_MLP, 1, s1);
	c.width = 16;
	c.depth = 2;
	c.head = DM_HEAD_CLASSIFIER;
	c.classes = 4;
	CHECK((m = dm_model_new(&c, 1)) != NULL);
	CHECK_EQ_INT(dm_model_feature_size(m), 16);
	check_features(m, "output.weight", 5);
	dm_model_free(m);

	dm_model_config_defaults(&c, DM_ARCH_UNET, 3, s3);
	c.ch = 8;
	c.nlevels = 2;
	c.mult[0] = 1;
	c.mult[1] = 2;
	c.groups = 4;
	c.heads = 2;
	c.head = DM_HEAD_CLASSIFIER;
	c.classes = 3;
	CHECK((m = dm_model_new(&c, 2)) != NULL);
	CHECK_EQ_INT(dm_model_feature_size(m), 16);
	check_features(m, "head.weight", 3);
	dm_model_free(m);

	/* a field-head unet has none */
	c.head = DM_HEAD_FIELD;
	CHECK((m = dm_model_new(&c, 2)) != NULL);
	CHECK_EQ_INT(dm_model_feature_size(m), 0);
	float x[64] = {0}, t[1] = {0.5f}, f[16], l[64];
	CHECK_FAILS(dm_model_features(m, f, l, x, t, NULL, 1), "features");
	dm_model_free(m);
}
