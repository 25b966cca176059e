/* test_attention.c — multi-head self-attention against a direct
 * computation in double (the softmax Jacobian written out in full), and
 * finite differences. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_nn.h"
#include "gradcheck.h"
#include "test.h"

static float *
randn(size_t n, uint64_t seed, float sd)
{
	float *x = malloc((n ? n : 1) * sizeof *x);

	if (x != NULL) {
		dm_rng_normal(x, n, seed, 0, 0);
		for (size_t i = 0; i < n; i++)
			x[i] *= sd;
	}
	return x;
}

/* out, att as in dm_nn.h; dqkv = gradient of sum(out * dout).  The
 * softmax backward uses the full Jacobian d p_u / d s_w = p_u (delta_uw -
 * p_w). */
static void
naive(double *out, double *att, double *dqkv, const float *qkv,
    const float *dout, int B, int T, int C, int NH)
{
	int hs = C / NH, C3 = 3 * C;
	double sc = 1 / sqrt(hs);
	double *s = malloc((size_t)T * sizeof *s), *da = malloc((size_t)T * sizeof *da);

	for (int b = 0; b < B; b++)
	for (int h = 0; h < NH; h++)
	for (int t = 0; t < T; t++) {
		const float *x = qkv + (size_t)b * T * C3;
#define Q(t, i) ((double)x[(size_t)(t) * C3 + h * hs + (i)])
#define K(t, i) ((double)x[(size_t)(t) * C3 + C + h * hs + (i)])
#define V(t, i) ((double)x[(size_t)(t) * C3 + 2 * C + h * hs + (i)])
		double *p = att + (((size_t)b * NH + h) * T + t) * T;
		double mx = -INFINITY, z = 0;
		for (int u = 0; u < T; u++) {
			s[u] = 0;
			for (int i = 0; i < hs; i++)
				s[u] += Q(t, i) * K(u, i);
			s[u] *= sc;
			mx = fmax(mx, s[u]);
		}
		for (int u = 0; u < T; u++)
			z += p[u] = exp(s[u] - mx);
		for (int u = 0; u < T; u++)
			p[u] /= z;
		const float *g = dout + ((size_t)b * T + t) * C + h * hs;
		double *o = out + ((size_t)b * T + t) * C + h * hs;
		double *dx = dqkv + (size_t)b * T * C3;
		for (int i = 0; i < hs; i++) {
			o[i] = 0;
			for (int u = 0; u < T; u++)
				o[i] += p[u] * V(u, i);
		}
		/* d/dv[u,i] of sum_i g_i o_i = p_u g_i;  d/dp_u = g . v_u */
		for (int u = 0; u < T; u++) {
			da[u] = 0;
			for (int i = 0; i < hs; i++) {
				dx[(size_t)u * C3 + 2 * C + h * hs + i] += p[u] * g[i];
				da[u] += g[i] * V(u, i);
			}
		}
		for (int w = 0; w < T; w++) {
			double ds = 0;
			for (int u = 0; u < T; u++)
				ds += da[u] * p[u] * ((u == w) - p[w]);
			ds *= sc;
			for (int i = 0; i < hs; i++) {
				dx[(size_t)t * C3 + h * hs + i] += ds * K(w, i);
				dx[(size_t)w * C3 + C + h * hs + i] += ds * Q(t, i);
			}
		}
#undef Q
#undef K
#undef V
	}
	free(s);
	free(da);
}

static double
maxrel(const float *a, const double *b, size_t n)
{
	double m = 0;

	for (size_t i = 0; i < n; i++) {
		double d = fabs(a[i] - b[i]) / fmax(1, fabs(b[i]));
		if (!(d <= m))
			m = d;
	}
	return m;
}

static void
check_case(int B, int T, int C, int NH, float sd)
{
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
	size_t na = (size_t)B * NH * T * T;
	size_t nw = dm_attention_work_size(B, T, C, NH);
	float *qkv = randn(nq, 31, sd), *dout = randn(no, 32, 1);
	float *dqkv = randn(nq, 33, 1), *dq0 = malloc(nq * 4);
	float *out = malloc(no * 4), *att = malloc(na * 4);
	double *rout = calloc(no, 8), *ratt = calloc(na, 8);
	double *rdq = calloc(nq, 8);
	float *work = nw == SIZE_MAX ? NULL : malloc(nw * 4);

	CHECK(qkv && dout && dqkv && dq0 && out && att && rout && ratt && rdq &&
	    work);
	if (work == NULL)
		return;
	memcpy(dq0, dqkv, nq * 4);
	for (size_t i = 0; i < nq; i++)
		rdq[i] = dq0[i];
	dm_attention_forward(out, att, qkv, B, T, C, NH);
	dm_attention_backward(dqkv, dout, qkv, att, B, T, C, NH, work);
	naive(rout, ratt, rdq, qkv, dout, B, T, C, NH);
	double eo = maxrel(out, rout, no), ea = maxrel(att, ratt, na);
	double ed = maxrel(dqkv, rdq, nq);
	double tol = sd > 2 ? 1e-3 : 1e-5;
	CHECK_MSG(eo < tol && ea < tol && ed < 10 * tol,
	    "attention B%d T%d C%d NH%d sd %g: out %g att %g dqkv %g",
	    B, T, C, NH, sd, eo, ea, ed);
	free(qkv); free(dout); free(dqkv); free(dq0); free(out); free(att);
	free(rout); free(ratt); free(rdq); free(work);
}

DM_TEST(attention_vs_direct)
{
	check_case(2, 5, 8, 2, 1);
	check_case(3, 7, 12, 3, 1);
	check_case(1, 1, 4, 1, 1);      /* one token: att = 1, out = v */
	check_case(2, 49, 64, 4, 1);    /* the unet's 7x7 */
	/* scores of a few hundred: exp overflows without the max subtracted */
	check_case(2, 6, 8, 2, 12);
}

struct att_ctx {
	float *out, *att, *qkv;
	int B, T, C, NH;
};

static void
att_fwd(void *p)
{
	struct att_ctx *c = p;

	dm_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
}

DM_TEST(attention_gradcheck)
{
	struct att_ctx c = {NULL, NULL, NULL, 2, 5, 8, 2};
	size_t nq = 2 * 5 * 24, no = 2 * 5 * 8;
	size_t nw = dm_attention_work_size(2, 5, 8, 2);

	c.out = malloc(no * 4);
	c.att = malloc(2 * 2 * 25 * 4);
	c.qkv = randn(nq, 41, 1);
	float *r = randn(no, 42, 1), *dq = calloc(nq, 4);
	float *work = nw == SIZE_MAX ? NULL : malloc(nw * 4);
	CHECK(c.out && c.att && c.qkv && r && dq && work);
	if (work == NULL)
		return;
	att_fwd(&c);
	dm_attention_backward(dq, r, c.qkv, c.att, 2, 5, 8, 2, work);
	gradcheck("attention dqkv", c.qkv, dq, nq, att_fwd, &c, c.out, r, no,
	    1e-2, 1e-2);
	free(c.out); free(c.att); free(c.qkv); free(r); free(dq); free(work);
}

DM_TEST(attention_rows_are_distributions)
{
	int B = 2, T = 9, C = 16, NH = 4;
	float *qkv = randn((size_t)B * T * 3 * C, 51, 3);
	float *out = malloc((size_t)B * T * C * 4);
	float *att = malloc((size_t)B * NH * T * T * 4);

	CHECK(qkv && out && att);
	dm_attention_forward(out, att, qkv, B, T, C, NH);
	for (int r = 0; r < B * NH * T; r++) {
		double s = 0;
		for (int u = 0; u < T; u++) {
			CHECK(att[r * T + u] >= 0);
			s += att[r * T + u];
		}
		CHECK_NEAR(s, 1, 1e-5);
	}
	CHECK(dm_attention_work_size(0, 5, 8, 2) == SIZE_MAX);
	CHECK(dm_attention_work_size(2, 5, 8, 2) >= 2 * 2 * 25);
	free(qkv); free(out); free(att);
}
