/* test_gmm.c — the Gaussian-mixture denoiser against closed forms,
 * quadrature and Monte Carlo; sampling moments; the text spec and files. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

static void
must_parse(struct dm_gmm *g, const char *text)
{
	if (dm_gmm_parse(g, text) == -1)
		CHECK_MSG(0, "parse failed: %s", dm_errstr());
}

DM_TEST(gmm_single_gaussian_1d_closed_form)
{
	struct dm_gmm g;
	const double mu = 0.7, var = 2.0;
	const double as[][2] = {{0.6, 0.8}, {1, 0.1}, {0.05, 1}, {0.9, 3}};
	float x[5] = {-3, -0.5, 0, 1.25, 4}, out[5];
	double lp[5];

	must_parse(&g, "# one Gaussian\ndim 1\n3.0  0.7  1.4142135623730951\n");
	for (size_t c = 0; c < sizeof as / sizeof as[0]; c++) {
		double a = as[c][0], s = as[c][1], v = a * a * var + s * s;
		CHECK_OK(dm_gmm_x0(&g, a, s, x, out, 5));
		CHECK_OK(dm_gmm_logp(&g, a, s, x, lp, 5));
		for (int i = 0; i < 5; i++) {
			double want = mu + a * var / v * (x[i] - a * mu);
			double r = x[i] - a * mu;
			double wlp = -0.5 * log(2 * M_PI * v) - 0.5 * r * r / v;
			CHECK_NEAR(out[i], want, 1e-6 * (1 + fabs(want)));
			CHECK_NEAR(lp[i], wlp, 1e-10 * (1 + fabs(wlp)));
		}
	}
	dm_gmm_free(&g);
}

DM_TEST(gmm_single_gaussian_2x2_closed_form)
{
	struct dm_gmm g;
	const double mu[2] = {1, -1}, S[2][2] = {{2, 0.6}, {0.6, 1}};
	const double a = 0.8, s = 0.6;
	float x[6] = {0, 0, 1.5, -2, -3, 2.5}, out[6];
	double lp[3];

	must_parse(&g, "dim 2\n1  1 -1  2 0.6 0.6 1\n");
	CHECK_OK(dm_gmm_x0(&g, a, s, x, out, 3));
	CHECK_OK(dm_gmm_logp(&g, a, s, x, lp, 3));
	/* A = a^2 S + s^2 I and its inverse by the 2x2 formula */
	double A[2][2] = {{a * a * S[0][0] + s * s, a * a * S[0][1]},
	    {a * a * S[1][0], a * a * S[1][1] + s * s}};
	double det = A[0][0] * A[1][1] - A[0][1] * A[1][0];
	double Ai[2][2] = {{A[1][1] / det, -A[0][1] / det},
	    {-A[1][0] / det, A[0][0] / det}};
	for (int p = 0; p < 3; p++) {
		double r[2] = {x[2 * p] - a * mu[0], x[2 * p + 1] - a * mu[1]};
		double u[2] = {Ai[0][0] * r[0] + Ai[0][1] * r[1],
		    Ai[1][0] * r[0] + Ai[1][1] * r[1]};
		for (int i = 0; i < 2; i++) {
			double want = mu[i] + a * (S[i][0] * u[0] + S[i][1] * u[1]);
			CHECK_NEAR(out[2 * p + i], want, 1e-6 * (1 + fabs(want)));
		}
		double q = r[0] * u[0] + r[1] * u[1];
		double wlp = -log(2 * M_PI) - 0.5 * log(det) - 0.5 * q;
		CHECK_NEAR(lp[p], wlp, 1e-10 * (1 + fabs(wlp)));
	}
	dm_gmm_free(&g);
}

/* p0(x0) of the 1-D mixture below */
static double
mix1(double x)
{
	double a = (x + 1.5) / 0.5, b = (x - 2) / 1.2;
	return 0.3 * exp(-0.5 * a * a) / (0.5 * sqrt(2 * M_PI)) +
	    0.7 * exp(-0.5 * b * b) / (1.2 * sqrt(2 * M_PI));
}

DM_TEST(gmm_mixture_1d_against_quadrature)
{
	struct dm_gmm g;
	const double as[][2] = {{0.9, 0.3}, {0.5, 0.85}, {0.2, 1}, {1, 2}};
	float x[6] = {-2.5, -1, 0, 0.4, 1.7, 3.5}, out[6];
	double lp[6];

	must_parse(&g, "dim 1\n0.3 -1.5 0.5\n0.7 2 1.2\n");
	for (size_t c = 0; c < sizeof as / sizeof as[0]; c++) {
		double a = as[c][0], s = as[c][1];
		CHECK_OK(dm_gmm_x0(&g, a, s, x, out, 6));
		CHECK_OK(dm_gmm_logp(&g, a, s, x, lp, 6));
		for (int i = 0; i < 6; i++) {
			/* Simpson over x0 in [-12, 14] */
			const int m = 40000;
			const double lo = -12, hi = 14, h = (hi - lo) / m;
			double num = 0, den = 0;
			for (int k = 0; k <= m; k++) {
				double x0 = lo + k * h, z = (x[i] - a * x0) / s;
				double w = (k == 0 || k == m) ? 1 : k % 2 ? 4 : 2;
				double f = mix1(x0) * exp(-0.5 * z * z) /
				    (s * sqrt(2 * M_PI));
				num += w * x0 * f;
				den += w * f;
			}
			CHECK_NEAR(out[i], num / den, 1e-6 * (1 + fabs(num / den)));
			CHECK_NEAR(lp[i], log(den * h / 3), 1e-8);
		}
	}
	dm_gmm_free(&g);
}

DM_TEST(gmm_ends_without_nan)
{
	struct dm_gmm g;
	float x[4] = {0.5, -1, 3, 1e6}, out[4];

	must_parse(&g, "dim 2\n1 1 2 0.5\n3 -1 0 2 0.1\n");
	/* alpha = 0: the prior mean sum pi_k mu_k */
	CHECK_OK(dm_gmm_x0(&g, 0, 1, x, out, 2));
	for (int i = 0; i < 2; i++) {
		CHECK_NEAR(out[2 * i], 0.25 * 1 + 0.75 * -1, 1e-6);
		CHECK_NEAR(out[2 * i + 1], 0.25 * 2 + 0.75 * 0, 1e-6);
	}
	/* sigma = 0: x0 = x_t / alpha */
	CHECK_OK(dm_gmm_x0(&g, 0.5, 0, x, out, 2));
	for (int i = 0; i < 4; i++)
		CHECK_NEAR(out[i], x[i] / 0.5, 1e-6 * fabs(x[i]));
	/* tiny sigma and a far point: finite, near x_t / alpha */
	CHECK_OK(dm_gmm_x0(&g, 1, 1e-6, x, out, 2));
	for (int i = 0; i < 4; i++) {
		CHECK(isfinite(out[i]));
		CHECK_NEAR(out[i], x[i], 1e-3 * (1 + fabs(x[i])));
	}
	CHECK_FAILS(dm_gmm_x0(&g, 0, 0, x, out, 2), "not both 0");
	CHECK_FAILS(dm_gmm_x0(&g, -1, 1, x, out, 2), "alpha");
	CHECK_FAILS(dm_gmm_x0(&g, NAN, 1, x, out, 2), "alpha");
	dm_gmm_free(&g);
}

static const char *mix3 =
    "dim 2\n"
    "0.5   -2  0    1 0.5 0.5 1\n"
    "0.3    2  1    0.6 0.3\n"
    "0.2    0 -2.5  0.4\n";

/* Mean and covariance of the mixture of mix3 (weights already sum to 1). */
static void
mix3_moments(const struct dm_gmm *g, double m[2], double C[2][2])
{
	m[0] = m[1] = 0;
	memset(C, 0, 4 * sizeof(double));
	for (int k = 0; k < g->K; k++)
		for (int i = 0; i < 2; i++)
			m[i] += g->weights[k] * g->means[2 * k + i];
	for (int k = 0; k < g->K; k++)
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++)
				C[i][j] += g->weights[k] * (g->covs[4 * k + 2 * i + j] +
				    (g->means[2 * k + i] - m[i]) *
				    (g->means[2 * k + j] - m[j]));
}

DM_TEST(gmm_sample_moments)
{
	struct dm_gmm g;
	const int64_t n = 200000;
	float *x = malloc(2 * n * sizeof *x);
	int64_t *lab = malloc(n * sizeof *lab), cnt[3] = {0, 0, 0};
	double m[2], C[2][2];

	must_parse(&g, mix3);
	/* the parsed values, as written in mix3 */
	CHECK_NEAR(g.weights[0], 0.5, 1e-15);
	CHECK_NEAR(g.covs[4 * 1 + 0], 0.36, 1e-15);
	CHECK_NEAR(g.covs[4 * 1 + 3], 0.09, 1e-15);
	CHECK_NEAR(g.covs[4 * 2 + 3], 0.16, 1e-15);
	CHECK_NEAR(g.covs[4 * 2 + 1], 0, 0);
	mix3_moments(&g, m, C);
	CHECK_OK(dm_gmm_sample(&g, n, 7, 0, x, lab));
	double sm[2] = {0, 0};
	for (int64_t i = 0; i < n; i++) {
		sm[0] += x[2 * i];
		sm[1] += x[2 * i + 1];
		CHECK(lab[i] >= 0 && lab[i] < 3);
		cnt[lab[i]]++;
	}
	sm[0] /= n, sm[1] /= n;
	for (int i = 0; i < 2; i++)
		CHECK_NEAR(sm[i], m[i], 5 * sqrt(C[i][i] / n));
	for (int k = 0; k < 3; k++) {
		double p = g.weights[k];
		CHECK_NEAR((double)cnt[k] / n, p, 5 * sqrt(p * (1 - p) / n));
	}
	for (int i = 0; i < 2; i++)
		for (int j = 0; j <= i; j++) {
			double s = 0, s2 = 0;
			for (int64_t r = 0; r < n; r++) {
				double v = (x[2 * r + i] - m[i]) * (x[2 * r + j] - m[j]);
				s += v;
				s2 += v * v;
			}
			double mean = s / n, var = s2 / n - mean * mean;
			CHECK_NEAR(mean, C[i][j], 5 * sqrt(var / n));
		}
	/* sample i depends only on (seed, first + i) */
	float y[6];
	int64_t ly[3];
	CHECK_OK(dm_gmm_sample(&g, 3, 7, 1000, y, ly));
	CHECK(memcmp(y, x + 2000, sizeof y) == 0);
	CHECK(memcmp(ly, lab + 1000, sizeof ly) == 0);
	free(x);
	free(lab);
	dm_gmm_free(&g);
}

/* Monte Carlo: the residual x0 - E[x0 | x_t] has mean 0 and is orthogonal
 * to every function of x_t. */
DM_TEST(gmm_posterior_mean_orthogonality)
{
	struct dm_gmm g;
	const int64_t n = 100000;
	const double as[][2] = {{0.8, 0.6}, {0.3, 0.95}, {1, 1.5}};
	float *x0 = malloc(2 * n * sizeof *x0), *xt = malloc(2 * n * sizeof *xt);
	float *d0 = malloc(2 * n * sizeof *d0);

	must_parse(&g, mix3);
	CHECK_OK(dm_gmm_sample(&g, n, 11, 0, x0, NULL));
	for (size_t c = 0; c < sizeof as / sizeof as[0]; c++) {
		double a = as[c][0], s = as[c][1];
		for (int64_t i = 0; i < n; i++) {
			float e[2];
			dm_rng_normal(e, 2, 11 + c, dm_noise_stream(DM_NOISE_EPS, i), 0);
			for (int j = 0; j < 2; j++)
				xt[2 * i + j] = (float)(a * x0[2 * i + j] + s * e[j]);
		}
		CHECK_OK(dm_gmm_x0(&g, a, s, xt, d0, n));
		for (int j = 0; j < 2; j++)
			for (int fn = 0; fn < 4; fn++) {
				double sum = 0, sum2 = 0;
				for (int64_t i = 0; i < n; i++) {
					double u = xt[2 * i], v = xt[2 * i + 1], gv;
					gv = fn == 0 ? 1 : fn == 1 ? u : fn == 2 ?
					    sin(v) : tanh(u * v);
					double r = (x0[2 * i + j] - d0[2 * i + j]) * gv;
					sum += r;
					sum2 += r * r;
				}
				double mean = sum / n, se = sqrt((sum2 / n -
				    mean * mean) / n);
				CHECK_MSG(fabs(mean) <= 5 * se, "alpha %g sigma %g "
				    "coord %d g%d: mean residual %g, se %g", a, s,
				    j, fn, mean, se);
			}
	}
	/* and a wrong denoiser fails the same test: the prior mean */
	CHECK_OK(dm_gmm_x0(&g, 0, 1, xt, d0, n));
	double sum = 0, sum2 = 0;
	for (int64_t i = 0; i < n; i++) {
		double r = (x0[2 * i] - d0[2 * i]) * xt[2 * i];
		sum += r, sum2 += r * r;
	}
	CHECK(fabs(sum / n) > 5 * sqrt((sum2 / n - (sum / n) * (sum / n)) / n));
	free(x0);
	free(xt);
	free(d0);
	dm_gmm_free(&g);
}

DM_TEST(gmm_parse_table)
{
	static const struct {
		const char *text, *err;   /* err NULL: accepted */
		int K, d;
	} cases[] = {
		{"dim 1\n1 0\n", NULL, 1, 1},
		{"# c\n\n  dim 3  # three\n1 0 0 0\n2 1 1 1 0.5\n"
		    "1 0 0 0 1 2 3\n1 0 0 0 1 0 0 0 1 0 0 0 1\n", NULL, 4, 3},
		{"dim 2\n+1 -1e-3 .5 \t2\r\n", NULL, 1, 2},
		{"", "empty", 0, 0},
		{"# only\n\n", "empty", 0, 0},
		{"dim 0\n1 0\n", "dim", 0, 0},
		{"dim 2 3\n", "line 1: expected \"dim D\"", 0, 0},
		{"dims 2\n", "line 1", 0, 0},
		{"dim 2\n", "no components", 0, 0},
		{"dim x\n", "line 1", 0, 0},
		{"dim 2\n\n1 0 0 1 2 3\n", "line 3: expected 2, 3, 4 or 6 "
		    "numbers after the weight, got 5", 0, 0},
		{"dim 2\n1\n", "got 0", 0, 0},
		{"dim 1\n1 0 1x\n", "line 2: '1x' is not a number", 0, 0},
		{"dim 1\n1 0 nan\n", "not a number", 0, 0},
		{"dim 1\n1 0 0x1\n", "not a number", 0, 0},
		{"dim 1\n1 0 1e999\n", "line 2", 0, 0},
		{"dim 1\n0 0\n", "weight", 0, 0},
		{"dim 1\n-1 0\n", "weight", 0, 0},
		{"dim 1\n1 0 -1\n", "standard deviation", 0, 0},
		{"dim 1\n1 0 0\n", "standard deviation", 0, 0},
		{"dim 2\n1 0 0 1 0\n", "standard deviation", 0, 0},
		{"dim 2\n1 0 0 1 2 2 1\n2 0 0 1 0 0 1\n",
		    "component 1: covariance is not positive definite", 0, 0},
		{"dim 2\n1 0 0 1 0 0 1\n1 0 0 1 0.5 0.4 1\n",
		    "component 2: covariance is not symmetric", 0, 0},
		{"dim 99999\n1 0\n", "out of range", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dm_gmm g;
		dm_clearerr();
		int r = dm_gmm_parse(&g, cases[i].text);
		if (cases[i].err == NULL) {
			CHECK_MSG(r == 0, "case %zu: %s", i, dm_errstr());
			if (r == 0) {
				CHECK_EQ_INT(g.K, cases[i].K);
				CHECK_EQ_INT(g.d, cases[i].d);
			}
		} else
			CHECK_MSG(r == -1 && strstr(dm_errstr(), cases[i].err),
			    "case %zu: want \"%s\", got %d \"%s\"", i,
			    cases[i].err, r, dm_errstr());
		dm_gmm_free(&g);
	}
	/* weights are normalized; the full covariance is read row-major */
	struct dm_gmm g;
	must_parse(&g, "dim 2\n1 0 0 1 0.5 0.5 2\n3 1 1\n");
	CHECK_NEAR(g.weights[0], 0.25, 1e-15);
	CHECK_NEAR(g.weights[1], 0.75, 1e-15);
	CHECK_NEAR(g.covs[3], 2, 0);
	CHECK_NEAR(g.covs[4 + 0], 1, 0);
	CHECK_NEAR(g.covs[4 + 1], 0, 0);
	/* chol: L = [[1, 0], [0.5, sqrt(1.75)]] */
	CHECK_NEAR(g.chol[2], 0.5, 1e-15);
	CHECK_NEAR(g.chol[3], sqrt(1.75), 1e-15);
	CHECK_NEAR(g.chol[1], 0, 0);
	dm_gmm_free(&g);
}

DM_TEST(gmm_file_round_trip_and_shapes)
{
	struct dm_gmm g, h;
	struct dm_file *f = dm_file_new(), *r = NULL;
	const char *path = dm_test_path("gmm.st");

	must_parse(&g, mix3);
	CHECK_OK(dm_gmm_to_file(&g, f, "rf"));
	CHECK_OK(dm_file_write(f, path, 0));
	CHECK_OK(dm_file_read(&r, path));
	CHECK_STR(dm_file_meta(r, "dm.kind"), "model");
	CHECK_STR(dm_file_meta(r, "dm.arch"), "gmm");
	CHECK_STR(dm_file_meta(r, "dm.prediction"), "x0");
	CHECK_STR(dm_file_meta(r, "dm.schedule"), "rf");
	CHECK_OK(dm_gmm_from_file(&h, r));
	CHECK_EQ_INT(h.K, 3);
	CHECK_EQ_INT(h.d, 2);
	CHECK(memcmp(h.means, g.means, 6 * sizeof(double)) == 0);
	CHECK(memcmp(h.covs, g.covs, 12 * sizeof(double)) == 0);
	dm_gmm_free(&h);
	/* F32 tensors are accepted */
	CHECK_OK(dm_tensor_convert(dm_file_get(r, "gmm.covs"), DM_DTYPE_F32));
	CHECK_OK(dm_gmm_from_file(&h, r));
	CHECK_NEAR(h.covs[4 + 0], 0.36, 1e-7);
	dm_gmm_free(&h);
	/* shapes must match exactly */
	int64_t bad[3] = {3, 3, 3};
	struct dm_tensor *t = dm_tensor_new_dtype(DM_DTYPE_F64, 3, bad);
	dm_tensor_set_name(t, "gmm.covs");
	dm_file_add(r, t);
	CHECK_FAILS(dm_gmm_from_file(&h, r),
	    "gmm.covs: shape [3, 3, 3] does not match K=3, d=2");
	dm_file_remove(r, "gmm.weights");
	CHECK_FAILS(dm_gmm_from_file(&h, r), "gmm.weights");
	dm_gmm_free(&h);
	/* a pure data mixture: tensors, no model metadata */
	struct dm_file *e = dm_file_new();
	CHECK_OK(dm_gmm_to_file(&g, e, NULL));
	CHECK(dm_file_meta(e, "dm.arch") == NULL);
	CHECK(dm_file_get(e, "gmm.means") != NULL);
	dm_file_free(e);
	dm_file_free(f);
	dm_file_free(r);
	dm_gmm_free(&g);
}

DM_TEST(gmm_init_validates)
{
	struct dm_gmm g;
	double *w = malloc(2 * sizeof *w), *m = calloc(2, sizeof *m);
	double *c = malloc(2 * sizeof *c);

	w[0] = 1, w[1] = INFINITY, c[0] = c[1] = 1;
	CHECK_FAILS(dm_gmm_init(&g, 2, 1, w, m, c), "component 2: weight");
	dm_gmm_free(&g);
	w = malloc(sizeof *w), m = calloc(1, sizeof *m), c = malloc(sizeof *c);
	w[0] = 2, c[0] = 0;
	CHECK_FAILS(dm_gmm_init(&g, 1, 1, w, m, c), "not positive definite");
	w = malloc(sizeof *w), m = calloc(1, sizeof *m), c = malloc(sizeof *c);
	w[0] = 2, c[0] = 4;
	CHECK_OK(dm_gmm_init(&g, 1, 1, w, m, c));
	CHECK_NEAR(g.weights[0], 1, 0);
	CHECK_NEAR(g.chol[0], 2, 0);
	dm_gmm_free(&g);
}

/* eps = E[eps | x_t] equals (x_t - alpha x0_hat)/sigma where that is well
 * conditioned, and stays accurate where it is not (sigma -> 0). */
DM_TEST(gmm_denoise_eps)
{
	double *w = malloc(2 * sizeof *w), *m = malloc(4 * sizeof *m);
	double *c = malloc(8 * sizeof *c);
	struct dm_gmm g;
	float x[8], x0[8], eps[8];
	static const double C[8] = {0.5, 0.1, 0.1, 0.4, 0.3, 0, 0, 0.6};

	w[0] = 0.6; w[1] = 0.4;
	m[0] = -1; m[1] = 0; m[2] = 1; m[3] = 0.5;
	memcpy(c, C, sizeof C);
	CHECK_OK(dm_gmm_init(&g, 2, 2, w, m, c));
	dm_rng_normal(x, 8, 4, 0, 0);
	CHECK_OK(dm_gmm_denoise(&g, 0.8, 0.6, x, x0, eps, 4));
	for (int i = 0; i < 8; i++)
		CHECK_NEAR(eps[i], (x[i] - 0.8 * x0[i]) / 0.6, 1e-5);
	/* near sigma = 0 a single Gaussian gives eps = sigma A^-1 (x - alpha mu)
	 * in closed form; for x = alpha mu + sigma z it tends to z */
	double *w1 = malloc(sizeof *w1), *m1 = malloc(sizeof *m1), *c1 = malloc(sizeof *c1);
	struct dm_gmm g1;
	w1[0] = 1; m1[0] = 0.25; c1[0] = 2;
	CHECK_OK(dm_gmm_init(&g1, 1, 1, w1, m1, c1));
	float x1 = (float)(0.9999 * 0.25 + 1e-4 * 0.7), e1, z1;
	CHECK_OK(dm_gmm_denoise(&g1, 0.9999, 1e-4, &x1, &z1, &e1, 1));
	double A = 0.9999 * 0.9999 * 2 + 1e-8;
	CHECK_NEAR(e1, 1e-4 / A * ((double)x1 - 0.9999 * 0.25), 1e-6);
	dm_gmm_free(&g);
	dm_gmm_free(&g1);
}
