/* test_nn.c — the basic layers of dm_nn.h: forwards against direct double
 * computations and closed forms, every gradient against central finite
 * differences, and accumulation (backward adds, never overwrites). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_nn.h"
#include "gradcheck.h"
#include "nn_internal.h"
#include "test.h"

static float *
randn(size_t n, uint64_t stream)
{
	float *p = malloc(n * sizeof *p);

	if (p != NULL)
		dm_rng_normal(p, n, 1234, stream, 0);
	return p;
}

static float *
zeros(size_t n)
{
	return calloc(n, sizeof(float));
}

/* b == 2 a elementwise (a gradient accumulated twice), to float rounding */
static int
doubled(const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabs(b[i] - 2.0 * a[i]) > 1e-5 * fmax(1, fabs(b[i])))
			return 0;
	return 1;
}

/*
 * Linear
 */

struct lin {
	float *out, *in, *w, *b;
	int n, din, dout;
};

static void
lin_fwd(void *p)
{
	struct lin *c = p;

	dm_linear_forward(c->out, c->in, c->w, c->b, c->n, c->din, c->dout);
}

static void
linear_case(int n, int din, int dout, int bias)
{
	size_t nin = (size_t)n * din, nw = (size_t)dout * din,
	    nout = (size_t)n * dout;
	struct lin c = { zeros(nout), randn(nin, 1), randn(nw, 2),
	    bias ? randn((size_t)dout, 3) : NULL, n, din, dout };
	float *r = randn(nout, 4);
	float *gin = zeros(nin), *gw = zeros(nw), *gb = zeros((size_t)dout);
	float *gin2 = zeros(nin), *gw2 = zeros(nw), *gb2 = zeros((size_t)dout);
	int bad = 0;

	lin_fwd(&c);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < dout; j++) {
			double s = bias ? c.b[j] : 0;
			for (int k = 0; k < din; k++)
				s += (double)c.in[(size_t)i * din + k] *
				    c.w[(size_t)j * din + k];
			if (fabs(c.out[(size_t)i * dout + j] - s) >
			    1e-5 * (1 + fabs(s)) * sqrt(din))
				bad++;
		}
	CHECK_MSG(bad == 0, "linear %dx%dx%d: %d outputs differ from the "
	    "triple loop", n, din, dout, bad);

	dm_linear_backward(gin, gw, bias ? gb : NULL, r, c.in, c.w, n, din,
	    dout);
	gradcheck("linear din", c.in, gin, nin, lin_fwd, &c, c.out, r, nout,
	    1e-2, 1e-2);
	gradcheck("linear dw", c.w, gw, nw, lin_fwd, &c, c.out, r, nout,
	    1e-2, 1e-2);
	if (bias)
		gradcheck("linear db", c.b, gb, (size_t)dout, lin_fwd, &c,
		    c.out, r, nout, 1e-2, 1e-2);

	/* db is an exact column sum */
	if (bias)
		for (int j = 0; j < dout; j++) {
			double s = 0;
			for (int i = 0; i < n; i++)
				s += r[(size_t)i * dout + j];
			CHECK_NEAR(gb[j], s, 1e-5 * (1 + fabs(s)) * sqrt(n));
		}

	/* twice: the gradients double; din NULL is allowed */
	for (int t = 0; t < 2; t++)
		dm_linear_backward(gin2, gw2, bias ? gb2 : NULL, r, c.in, c.w,
		    n, din, dout);
	CHECK(doubled(gin, gin2, nin));
	CHECK(doubled(gw, gw2, nw));
	CHECK(doubled(gb, gb2, (size_t)dout));
	memset(gw2, 0, nw * sizeof *gw2);
	dm_linear_backward(NULL, gw2, NULL, r, c.in, c.w, n, din, dout);
	CHECK(memcmp(gw, gw2, nw * sizeof *gw) == 0);

	free(c.out); free(c.in); free(c.w); free(c.b); free(r);
	free(gin); free(gw); free(gb); free(gin2); free(gw2); free(gb2);
}

DM_TEST(nn_linear)
{
	linear_case(4, 5, 3, 1);
	linear_case(3, 7, 2, 0);
	linear_case(37, 70, 50, 1);
	linear_case(300, 8, 128, 1);
	linear_case(64, 4, 600, 1);
}

/* The serial kernel of a few rows against the triple loop in double, and
 * against the BLAS layer: sizes below, at and above its four-row tile,
 * with and without bias. */
/* b[0] (if b) + the dot product of w (din) with x (din, stride xs), in
 * double; *abs the same with magnitudes (the rounding scale). */
static double
ref_dot(const float *w, const float *x, size_t xs, int din, const float *b,
    double *abs)
{
	double s = b ? b[0] : 0, a = b ? fabs(b[0]) : 0;

	for (int k = 0; k < din; k++) {
		double p = (double)w[k] * x[(size_t)k * xs];
		s += p;
		a += fabs(p);
	}
	*abs = a;
	return s;
}

static void
linear_serial_case(int n, int din, int dout, int bias)
{
	size_t nin = (size_t)n * din, nw = (size_t)dout * din,
	    nout = (size_t)n * dout;
	float *in = randn(nin, 11), *w = randn(nw, 12);
	float *b = bias ? randn((size_t)dout, 13) : NULL;
	float *o1 = zeros(nout), *o2 = zeros(nout);
	int bad = 0;

	dm_linear_forward_serial(o1, in, w, b, n, din, dout);
	dm_linear_forward(o2, in, w, b, n, din, dout);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < dout; j++) {
			double a, s = ref_dot(w + (size_t)j * din, in + (size_t)i *
			    din, 1, din, bias ? b + j : NULL, &a);
			size_t o = (size_t)i * dout + j;
			if (fabs(o1[o] - s) > 1e-6 * (1 + a) ||
			    fabs(o1[o] - o2[o]) > 1e-6 * (1 + a))
				bad++;
		}
	CHECK_MSG(bad == 0, "serial linear %dx%dx%d (bias %d): %d outputs "
	    "differ", n, din, dout, bias, bad);
	free(in); free(w); free(b); free(o1); free(o2);
}

DM_TEST(nn_linear_serial)
{
	static const int sz[][3] = {{1, 1, 1}, {1, 2, 256}, {1, 64, 256},
	    {1, 256, 2}, {3, 7, 5}, {4, 33, 13}, {2, 256, 256}, {5, 17, 3},
	    {1, 1000, 7}};

	for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
		linear_serial_case(sz[i][0], sz[i][1], sz[i][2], 1);
		linear_serial_case(sz[i][0], sz[i][1], sz[i][2], 0);
	}
}

/* Every output of the serial kernel is computed alike whatever the
 * number of rows, the slice of outputs or the row stride: a layer split
 * into slices at multiples of 4 outputs, one row at a time, equals the
 * whole layer on all rows bit for bit (what the batch-1 forward split
 * across threads relies on). */
DM_TEST(nn_linear_serial_slices)
{
	static const int sz[][3] = {{5, 256, 64}, {3, 17, 24}, {2, 2, 36}};

	for (size_t c = 0; c < sizeof sz / sizeof sz[0]; c++) {
		int n = sz[c][0], din = sz[c][1], dout = sz[c][2], bad = 0;
		float *in = randn((size_t)n * din, 21), *w = randn((size_t)dout *
		    din, 22), *b = randn((size_t)dout, 23);
		float *o1 = zeros((size_t)n * dout), *o2 = zeros((size_t)n * dout);
		dm_linear_forward_serial(o1, in, w, b, n, din, dout);
		for (int i = 0; i < n; i++)
			for (int lo = 0; lo < dout; lo += 12) {
				int hi = lo + 12 < dout ? lo + 12 : dout;
				dm_linear_rows_serial(o2 + (size_t)i * dout + lo,
				    (size_t)dout, in + (size_t)i * din,
				    w + (size_t)lo * din, b + lo, 1, din, hi - lo);
			}
		bad = memcmp(o1, o2, (size_t)n * dout * sizeof *o1) != 0;
		CHECK_MSG(!bad, "serial linear %dx%dx%d: slices differ from the "
		    "whole", n, din, dout);
		free(in); free(w); free(b); free(o1); free(o2);
	}
}

/* The column kernel (rows of the batch as columns) against sums in
 * double, on column ranges that start past 0 and end short of ld. */
DM_TEST(nn_linear_cols)
{
	static const int sz[][4] = {{64, 64, 256, 1}, {48, 256, 13, 1},
	    {16, 3, 9, 0}, {80, 100, 8, 1}};

	for (size_t c = 0; c < sizeof sz / sizeof sz[0]; c++) {
		int ld = sz[c][0], din = sz[c][1], dout = sz[c][2], bias = sz[c][3];
		int c0 = ld > 16 ? 16 : 0, c1 = ld, bad = 0;
		float *inT = randn((size_t)din * ld, 31);
		float *w = randn((size_t)dout * din, 32);
		float *b = bias ? randn((size_t)dout, 33) : NULL;
		float *out = zeros((size_t)dout * ld);
		dm_linear_cols_serial(out, inT, (size_t)ld, c0, c1, w, b, din,
		    dout);
		for (int j = 0; j < dout; j++)
			for (int col = 0; col < ld; col++) {
				float o = out[(size_t)j * ld + col];
				if (col < c0) {	/* outside the range: untouched */
					bad += o != 0;
					continue;
				}
				double a, s = ref_dot(w + (size_t)j * din, inT + col,
				    (size_t)ld, din, b ? b + j : NULL, &a);
				bad += !(fabs(o - s) <= 1e-6 * (1 + a));
			}
		CHECK_MSG(bad == 0, "column linear ld %d, %dx%d: %d outputs "
		    "wrong", ld, din, dout, bad);
		free(inT); free(w); free(b); free(out);
	}
}

/* The team: every member runs each job once, and a barrier holds every
 * member until all have arrived (each checks the others' writes of the
 * round before going on). */
struct team_probe {
	struct dm_team *T;
	int n, rounds;
	int slot[8];
	int bad;
};

static void
team_job(void *arg, int me)
{
	struct team_probe *p = arg;

	for (int r = 1; r <= p->rounds; r++) {
		__atomic_store_n(&p->slot[me], r, __ATOMIC_RELAXED);
		dm_team_barrier(p->T);
		for (int i = 0; i < p->n; i++)
			if (__atomic_load_n(&p->slot[i], __ATOMIC_RELAXED) < r)
				__atomic_add_fetch(&p->bad, 1, __ATOMIC_RELAXED);
		dm_team_barrier(p->T);
	}
}

DM_TEST(nn_team)
{
	for (int n = 2; n <= 4; n++) {
		struct team_probe p = {dm_team_new(n), n, 200, {0}, 0};
		CHECK(p.T != NULL);
		if (p.T == NULL)
			continue;
		CHECK_EQ_INT(dm_team_size(p.T), n);
		for (int job = 0; job < 50; job++) {
			memset(p.slot, 0, sizeof p.slot);
			dm_team_run(p.T, team_job, &p);
			for (int i = 0; i < n; i++)
				CHECK_EQ_INT(p.slot[i], p.rounds);
		}
		CHECK_EQ_INT(p.bad, 0);
		dm_team_free(p.T);
	}
	/* a NULL team runs the job on the caller as member 0 */
	struct team_probe q = {NULL, 1, 3, {0}, 0};
	dm_team_run(NULL, team_job, &q);
	CHECK_EQ_INT(q.slot[0], 3);
	CHECK_EQ_INT(q.bad, 0);
	CHECK(dm_team_new(1) == NULL);
}

DM_TEST(nn_linear_known)
{
	/* in [[1,2],[3,4]], w [[1,0],[1,1],[0,-1]], b [10,20,30] */
	float in[4] = {1, 2, 3, 4}, w[6] = {1, 0, 1, 1, 0, -1};
	float b[3] = {10, 20, 30}, out[6];
	float want[6] = {11, 23, 28, 13, 27, 26};

	dm_linear_forward(out, in, w, b, 2, 2, 3);
	for (int i = 0; i < 6; i++)
		CHECK(out[i] == want[i]);
}

/*
 * Activations
 */

struct act {
	float *out, *in;
	size_t n;
	void (*fwd)(float *, const float *, size_t);
};

static void
act_fwd(void *p)
{
	struct act *c = p;

	c->fwd(c->out, c->in, c->n);
}

static double
silu_ref(double x)
{
	return x / (1 + exp(-x));
}

static double
silu_dref(double x)
{
	double s = 1 / (1 + exp(-x));
	return s * (1 + x * (1 - s));
}

static double
gelu_ref(double x)
{
	return 0.5 * x * erfc(-x / sqrt(2.0));	/* = (1 + erf) / 2, no cancellation */
}

static double
gelu_dref(double x)
{
	return 0.5 * (1 + erf(x / sqrt(2.0))) +
	    x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
}

static double
relu_ref(double x)
{
	return x > 0 ? x : 0;
}

static double
relu_dref(double x)
{
	return x > 0;
}

static void
act_case(const char *name, void (*fwd)(float *, const float *, size_t),
    void (*bwd)(float *, const float *, const float *, size_t),
    double (*ref)(double), double (*dref)(double), size_t n, double tol)
{
	struct act c = { zeros(n), randn(n, 5), n, fwd };
	float *r = randn(n, 6), *g = zeros(n), *g2 = zeros(n);
	int bad = 0, badd = 0;

	for (size_t i = 0; i < n; i++) {
		c.in[i] *= 4;
		if (fabs(c.in[i]) < 0.05)	/* off ReLU's kink */
			c.in[i] = 0.5f;
	}
	act_fwd(&c);
	bwd(g, r, c.in, n);
	for (size_t i = 0; i < n; i++) {
		double x = c.in[i], y = ref(x), dy = r[i] * dref(x);
		/* relative, but for outputs under 1e-4 (in the far left
		 * tail GELU's relative error grows with |x|: erfc has
		 * relative condition 2 z^2 at z = -x / sqrt 2) */
		if (fabs(c.out[i] - y) > tol * fmax(1e-4, fabs(y)) &&
		    bad++ < 3)
			CHECK_MSG(0, "%s(%.9g) = %.9g, want %.9g", name, x,
			    c.out[i], y);
		/* s and x (1 - s) cancel near SiLU's minimum */
		if (fabs(g[i] - dy) > tol * (fabs(dy) + fabs(r[i])) &&
		    badd++ < 3)
			CHECK_MSG(0, "%s'(%.9g) r = %.9g, want %.9g", name, x,
			    g[i], dy);
	}
	if (n <= 4096)
		gradcheck(name, c.in, g, n, act_fwd, &c, c.out, r, n, 1e-3,
		    1e-2);
	bwd(g2, r, c.in, n);
	bwd(g2, r, c.in, n);
	CHECK(doubled(g, g2, n));
	bwd(NULL, r, c.in, n);
	/* in place */
	memcpy(c.out, c.in, n * sizeof *c.in);
	fwd(c.out, c.out, n);
	for (size_t i = 0; i < n; i += 97)
		CHECK_NEAR(c.out[i], ref(c.in[i]),
		    tol * fmax(1e-4, fabs(ref(c.in[i]))));
	free(c.out); free(c.in); free(r); free(g); free(g2);
}

DM_TEST(nn_activations)
{
	act_case("silu", dm_silu_forward, dm_silu_backward, silu_ref,
	    silu_dref, 1000, 2e-6);
	act_case("silu", dm_silu_forward, dm_silu_backward, silu_ref,
	    silu_dref, (size_t)1 << 16, 2e-6);
	act_case("gelu", dm_gelu_forward, dm_gelu_backward, gelu_ref,
	    gelu_dref, 1000, 2e-6);
	act_case("gelu", dm_gelu_forward, dm_gelu_backward, gelu_ref,
	    gelu_dref, (size_t)1 << 16, 2e-6);
	act_case("relu", dm_relu_forward, dm_relu_backward, relu_ref,
	    relu_dref, 1000, 0);
	act_case("relu", dm_relu_forward, dm_relu_backward, relu_ref,
	    relu_dref, (size_t)1 << 16, 0);
}

DM_TEST(nn_activations_known)
{
	/* x Phi(x): Phi(1) = 0.841344746068543, Phi(2) = 0.977249868051821 */
	float x[5] = {0, 1, -1, 2, -3}, y[5];
	dm_gelu_forward(y, x, 5);
	CHECK(y[0] == 0);
	CHECK_NEAR(y[1], 0.841344746068543, 1e-7);
	CHECK_NEAR(y[2], -0.158655253931457, 1e-7);
	CHECK_NEAR(y[3], 1.954499736103642, 2e-7);
	CHECK_NEAR(y[4], -0.00404969409489031, 1e-8);
	/* SiLU(1) = 1 / (1 + e^-1), SiLU(-2) = -2 / (1 + e^2) */
	dm_silu_forward(y, x, 5);
	CHECK(y[0] == 0);
	CHECK_NEAR(y[1], 0.731058578630005, 1e-7);
	CHECK_NEAR(y[2], -0.268941421369995, 1e-7);
	CHECK_NEAR(y[3], 1.761594155955765, 2e-7);
	CHECK_NEAR(y[4], -0.142277619532700, 1e-7);
	/* far tails: finite, and NaN stays NaN */
	float big[6] = {-1e30f, -200, 200, 1e30f, NAN, 88.5f}, z[6];
	dm_silu_forward(z, big, 6);
	CHECK(fabsf(z[0]) < 1e-6f && fabsf(z[1]) < 1e-30f);
	CHECK(z[2] == 200 && z[3] == 1e30f && isnan(z[4]));
	CHECK_NEAR(z[5], 88.5, 1e-5);
	float gz[6] = {0}, one[6] = {1, 1, 1, 1, 1, 1};
	dm_silu_backward(gz, one, big, 6);
	CHECK(fabsf(gz[0]) < 1e-6f && fabsf(gz[1]) < 1e-30f);
	CHECK(gz[2] == 1 && gz[3] == 1 && isnan(gz[4]));
}

/*
 * LayerNorm
 */

struct ln {
	float *out, *mean, *rstd, *in, *w, *b;
	int n, C;
	float eps;
};

static void
ln_fwd(void *p)
{
	struct ln *c = p;

	dm_layernorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b,
	    c->n, c->C, c->eps);
}

static void
layernorm_case(int n, int C)
{
	size_t N = (size_t)n * C;
	struct ln c = { zeros(N), zeros((size_t)n), zeros((size_t)n),
	    randn(N, 7), NULL, NULL, n, C, 1e-5f };
	float *w = randn((size_t)C, 8), *b = randn((size_t)C, 9);
	float *r = randn(N, 10);
	float *gin = zeros(N), *gw = zeros((size_t)C), *gb = zeros((size_t)C);
	float *gin2 = zeros(N), *gw2 = zeros((size_t)C),
	    *gb2 = zeros((size_t)C);

	for (size_t i = 0; i < N; i++)
		c.in[i] = 3 * c.in[i] + 2;	/* mean 2, sd 3 */
	/* no affine part: every row has mean 0 and variance v / (v + eps) */
	ln_fwd(&c);
	for (int i = 0; i < n; i++) {
		double s = 0, q = 0, m = 0, v = 0;
		for (int k = 0; k < C; k++)
			m += c.in[(size_t)i * C + k];
		m /= C;
		for (int k = 0; k < C; k++) {
			double d = c.in[(size_t)i * C + k] - m;
			v += d * d;
		}
		v /= C;
		for (int k = 0; k < C; k++) {
			s += c.out[(size_t)i * C + k];
			q += (double)c.out[(size_t)i * C + k] *
			    c.out[(size_t)i * C + k];
		}
		CHECK_NEAR(s / C, 0, 1e-6);
		CHECK_NEAR(q / C, v / (v + 1e-5), 1e-5);
		CHECK_NEAR(c.mean[i], m, 1e-5 * fabs(m) + 1e-6);
		CHECK_NEAR(c.rstd[i], 1 / sqrt(v + 1e-5), 1e-5 / sqrt(v));
	}
	/* affine part against a direct double computation */
	c.w = w;
	c.b = b;
	ln_fwd(&c);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		double m = 0, v = 0;
		const float *x = c.in + (size_t)i * C;
		for (int k = 0; k < C; k++)
			m += x[k];
		m /= C;
		for (int k = 0; k < C; k++)
			v += (x[k] - m) * (x[k] - m);
		v /= C;
		for (int k = 0; k < C; k++) {
			double y = (x[k] - m) / sqrt(v + 1e-5) * w[k] + b[k];
			if (fabs(c.out[(size_t)i * C + k] - y) >
			    1e-5 * (1 + fabs(y)))
				bad++;
		}
	}
	CHECK_MSG(bad == 0, "layernorm: %d outputs differ", bad);

	dm_layernorm_backward(gin, gw, gb, r, c.in, c.w, c.mean, c.rstd, n, C);
	gradcheck("layernorm din", c.in, gin, N, ln_fwd, &c, c.out, r, N,
	    1e-2, 1e-2);
	gradcheck("layernorm dw", c.w, gw, (size_t)C, ln_fwd, &c, c.out, r, N,
	    1e-2, 1e-2);
	gradcheck("layernorm db", c.b, gb, (size_t)C, ln_fwd, &c, c.out, r, N,
	    1e-2, 1e-2);
	for (int t = 0; t < 2; t++)
		dm_layernorm_backward(gin2, gw2, gb2, r, c.in, c.w, c.mean,
		    c.rstd, n, C);
	CHECK(doubled(gin, gin2, N));
	CHECK(doubled(gw, gw2, (size_t)C));
	CHECK(doubled(gb, gb2, (size_t)C));
	/* without affine part */
	c.w = c.b = NULL;
	ln_fwd(&c);
	memset(gin, 0, N * sizeof *gin);
	dm_layernorm_backward(gin, NULL, NULL, r, c.in, NULL, c.mean, c.rstd,
	    n, C);
	gradcheck("layernorm din (no affine)", c.in, gin, N, ln_fwd, &c,
	    c.out, r, N, 1e-2, 1e-2);

	free(c.out); free(c.mean); free(c.rstd); free(c.in); free(w); free(b);
	free(r); free(gin); free(gw); free(gb); free(gin2); free(gw2);
	free(gb2);
}

DM_TEST(nn_layernorm)
{
	layernorm_case(6, 10);
	layernorm_case(1, 3);
	layernorm_case(128, 300);	/* threaded rows and columns */
}

/*
 * GroupNorm
 */

struct gn {
	float *out, *mean, *rstd, *in, *w, *b;
	int B, C, HW, G;
};

static void
gn_fwd(void *p)
{
	struct gn *c = p;

	dm_groupnorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b,
	    c->B, c->C, c->HW, c->G, 1e-5f);
}

static void
groupnorm_case(int B, int C, int HW, int G)
{
	size_t N = (size_t)B * C * HW, NG = (size_t)B * G;
	struct gn c = { zeros(N), zeros(NG), zeros(NG), randn(N, 11),
	    randn((size_t)C, 12), randn((size_t)C, 13), B, C, HW, G };
	float *r = randn(N, 14);
	float *gin = zeros(N), *gw = zeros((size_t)C), *gb = zeros((size_t)C);
	float *gin2 = zeros(N), *gw2 = zeros((size_t)C),
	    *gb2 = zeros((size_t)C);
	int Cg = C / G, bad = 0;

	for (size_t i = 0; i < N; i++)
		c.in[i] = 2 * c.in[i] - 1 + (float)(i % 7) * 0.1f;
	gn_fwd(&c);
	/* direct double computation, group by group */
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			double m = 0, v = 0;
			size_t n = (size_t)Cg * HW;
			const float *x = c.in + ((size_t)b * C + (size_t)g * Cg) * HW;
			for (size_t k = 0; k < n; k++)
				m += x[k];
			m /= n;
			for (size_t k = 0; k < n; k++)
				v += (x[k] - m) * (x[k] - m);
			v /= n;
			double rs = 1 / sqrt(v + 1e-5);
			CHECK_NEAR(c.mean[b * G + g], m, 1e-5);
			CHECK_NEAR(c.rstd[b * G + g], rs, 1e-5 * rs);
			for (size_t k = 0; k < n; k++) {
				int ch = g * Cg + (int)(k / (size_t)HW);
				double y = (x[k] - m) * rs * c.w[ch] + c.b[ch];
				double o = c.out[((size_t)b * C +
				    (size_t)g * Cg) * HW + k];
				if (fabs(o - y) > 1e-5 * (1 + fabs(y)))
					bad++;
			}
		}
	CHECK_MSG(bad == 0, "groupnorm B%d C%d HW%d G%d: %d outputs differ",
	    B, C, HW, G, bad);

	dm_groupnorm_backward(gin, gw, gb, r, c.in, c.w, c.mean, c.rstd, B, C,
	    HW, G);
	if (N <= 4096) {
		gradcheck("groupnorm din", c.in, gin, N, gn_fwd, &c, c.out, r,
		    N, 1e-2, 1e-2);
		gradcheck("groupnorm dw", c.w, gw, (size_t)C, gn_fwd, &c,
		    c.out, r, N, 1e-2, 1e-2);
		gradcheck("groupnorm db", c.b, gb, (size_t)C, gn_fwd, &c,
		    c.out, r, N, 1e-2, 1e-2);
	} else {
		/* big: db against the direct sum, a few din entries by
		 * finite differences */
		for (int ch = 0; ch < C; ch++) {
			double s = 0;
			for (int b = 0; b < B; b++)
				for (int k = 0; k < HW; k++)
					s += r[((size_t)b * C + ch) * HW + k];
			CHECK_NEAR(gb[ch], s, 1e-4 * (1 + fabs(s)));
		}
		gradcheck("groupnorm dw (big)", c.w, gw, (size_t)C, gn_fwd,
		    &c, c.out, r, N, 1e-2, 2e-2);
	}
	for (int t = 0; t < 2; t++)
		dm_groupnorm_backward(gin2, gw2, gb2, r, c.in, c.w, c.mean,
		    c.rstd, B, C, HW, G);
	CHECK(doubled(gin, gin2, N));
	CHECK(doubled(gw, gw2, (size_t)C));
	CHECK(doubled(gb, gb2, (size_t)C));
	dm_groupnorm_backward(NULL, NULL, NULL, r, c.in, c.w, c.mean, c.rstd,
	    B, C, HW, G);

	free(c.out); free(c.mean); free(c.rstd); free(c.in); free(c.w);
	free(c.b); free(r); free(gin); free(gw); free(gb); free(gin2);
	free(gw2); free(gb2);
}

DM_TEST(nn_groupnorm)
{
	groupnorm_case(2, 6, 5, 3);
	groupnorm_case(3, 4, 4, 1);
	groupnorm_case(2, 4, 3, 4);
	groupnorm_case(4, 64, 256, 8);	/* threaded */
}

/* The fused GroupNorm + SiLU against the two layers apart: forward bit
 * for bit (norm kept, not kept, in place), backward to rounding. */
static void
groupnorm_silu_case(int B, int C, int HW, int G)
{
	size_t N = (size_t)B * C * HW, NG = (size_t)B * G;
	float *in = randn(N, 21), *w = randn((size_t)C, 22);
	float *b = randn((size_t)C, 23), *r = randn(N, 24);
	float *n1 = zeros(N), *s1 = zeros(N), *m1 = zeros(NG), *q1 = zeros(NG);
	float *n2 = zeros(N), *s2 = zeros(N), *m2 = zeros(NG), *q2 = zeros(NG);
	float *gn = zeros(N), *gin1 = zeros(N), *gw1 = zeros((size_t)C),
	    *gb1 = zeros((size_t)C), *gin2 = zeros(N), *gw2 = zeros((size_t)C),
	    *gb2 = zeros((size_t)C), *dnorm = randn(N, 25);
	int bad = 0;

	for (size_t i = 0; i < N; i++)
		in[i] = 3 * in[i] + (float)(i % 5) * 0.2f;
	dm_groupnorm_forward(n1, m1, q1, in, w, b, B, C, HW, G, 1e-5f);
	dm_silu_forward(s1, n1, N);
	dm_groupnorm_silu_forward(n2, s2, m2, q2, in, w, b, B, C, HW, G,
	    1e-5f);
	CHECK(memcmp(n1, n2, N * sizeof *n1) == 0);
	CHECK(memcmp(s1, s2, N * sizeof *s1) == 0);
	CHECK(memcmp(m1, m2, NG * sizeof *m1) == 0);
	CHECK(memcmp(q1, q2, NG * sizeof *q1) == 0);
	memset(s2, 0, N * sizeof *s2);
	dm_groupnorm_silu_forward(NULL, s2, m2, q2, in, w, b, B, C, HW, G,
	    1e-5f);
	CHECK(memcmp(s1, s2, N * sizeof *s1) == 0);
	memcpy(s2, in, N * sizeof *s2);
	dm_groupnorm_silu_forward(NULL, s2, m2, q2, s2, w, b, B, C, HW, G,
	    1e-5f);
	CHECK(memcmp(s1, s2, N * sizeof *s1) == 0);

	dm_silu_backward(gn, r, n1, N);
	dm_groupnorm_backward(gin1, gw1, gb1, gn, in, w, m1, q1, B, C, HW, G);
	dm_groupnorm_silu_backward(gin2, gw2, gb2, dnorm, r, n1, in, w, m1, q1,
	    B, C, HW, G);
	CHECK(memcmp(dnorm, gn, N * sizeof *gn) == 0);
	for (size_t i = 0; i < N; i++)
		if (fabsf(gin1[i] - gin2[i]) > 1e-6f * (1 + fabsf(gin1[i])))
			bad++;
	for (int c = 0; c < C; c++)
		if (fabsf(gw1[c] - gw2[c]) > 1e-6f * (1 + fabsf(gw1[c])) ||
		    fabsf(gb1[c] - gb2[c]) > 1e-6f * (1 + fabsf(gb1[c])))
			bad++;
	CHECK_MSG(bad == 0, "groupnorm+silu B%d C%d HW%d G%d: %d gradients "
	    "differ", B, C, HW, G, bad);
	dm_groupnorm_silu_backward(NULL, NULL, NULL, dnorm, r, n1, in, w, m1,
	    q1, B, C, HW, G);

	free(in); free(w); free(b); free(r); free(n1); free(s1); free(m1);
	free(q1); free(n2); free(s2); free(m2); free(q2); free(gn);
	free(gin1); free(gw1); free(gb1); free(gin2); free(gw2); free(gb2);
	free(dnorm);
}

DM_TEST(nn_groupnorm_silu)
{
	groupnorm_silu_case(1, 6, 5, 3);
	groupnorm_silu_case(3, 4, 7, 1);
	groupnorm_silu_case(2, 4, 3, 4);
	groupnorm_silu_case(4, 64, 256, 8);	/* threaded */
}

/*
 * Upsampling and concatenation
 */

struct up {
	float *out, *in;
	int B, C, H, W;
};

static void
up_fwd(void *p)
{
	struct up *c = p;

	dm_upsample2_forward(c->out, c->in, c->B, c->C, c->H, c->W);
}

static void
upsample_case(int B, int C, int H, int W)
{
	size_t n = (size_t)B * C * H * W;
	struct up c = { zeros(4 * n), randn(n, 15), B, C, H, W };
	float *r = randn(4 * n, 16), *g = zeros(n), *g2 = zeros(n);
	int bad = 0;

	up_fwd(&c);
	for (int p = 0; p < B * C; p++)
		for (int y = 0; y < 2 * H; y++)
			for (int x = 0; x < 2 * W; x++)
				if (c.out[((size_t)p * 2 * H + y) * 2 * W + x] !=
				    c.in[((size_t)p * H + y / 2) * W + x / 2])
					bad++;
	CHECK_EQ_INT(bad, 0);
	dm_upsample2_backward(g, r, B, C, H, W);
	for (int p = 0; p < B * C; p++)
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++) {
				const float *q = r + ((size_t)p * 2 * H + 2 * y) *
				    2 * W + 2 * x;
				double s = (double)q[0] + q[1] + q[2 * W] +
				    q[2 * W + 1];
				if (fabs(g[((size_t)p * H + y) * W + x] - s) > 1e-5)
					bad++;
			}
	CHECK_EQ_INT(bad, 0);
	if (n <= 4096)
		gradcheck("upsample2 din", c.in, g, n, up_fwd, &c, c.out, r,
		    4 * n, 1e-2, 1e-2);
	dm_upsample2_backward(g2, r, B, C, H, W);
	dm_upsample2_backward(g2, r, B, C, H, W);
	CHECK(doubled(g, g2, n));
	free(c.out); free(c.in); free(r); free(g); free(g2);
}

DM_TEST(nn_upsample2)
{
	float in[4] = {1, 2, 3, 4}, out[16];
	float want[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};

	dm_upsample2_forward(out, in, 1, 1, 2, 2);
	CHECK(memcmp(out, want, sizeof out) == 0);
	upsample_case(2, 3, 2, 3);
	upsample_case(1, 1, 1, 1);
	upsample_case(2, 16, 32, 32);	/* threaded */
}

struct cat {
	float *out, *a, *b;
	int B, Ca, Cb, HW;
};

static void
cat_fwd(void *p)
{
	struct cat *c = p;

	dm_concat_forward(c->out, c->a, c->b, c->B, c->Ca, c->Cb, c->HW);
}

DM_TEST(nn_concat)
{
	float a[4] = {1, 2, 3, 4}, b[6] = {5, 6, 7, 8, 9, 10}, out[10];
	/* B 2, Ca 1, Cb 1 with HW 2 ... then b has 3 values per sample */
	float want[10] = {1, 2, 5, 6, 7, 3, 4, 8, 9, 10};

	/* Ca = 2 with HW = 1, Cb = 3 */
	dm_concat_forward(out, a, b, 2, 2, 3, 1);
	CHECK(memcmp(out, want, sizeof out) == 0);

	int B = 3, Ca = 2, Cb = 3, HW = 4;
	size_t na = (size_t)B * Ca * HW, nb = (size_t)B * Cb * HW,
	    no = na + nb;
	struct cat c = { zeros(no), randn(na, 17), randn(nb, 18), B, Ca, Cb,
	    HW };
	float *r = randn(no, 19), *ga = zeros(na), *gb = zeros(nb);
	float *ga2 = zeros(na), *gb2 = zeros(nb);

	cat_fwd(&c);
	dm_concat_backward(ga, gb, r, B, Ca, Cb, HW);
	gradcheck("concat da", c.a, ga, na, cat_fwd, &c, c.out, r, no, 1e-2,
	    1e-2);
	gradcheck("concat db", c.b, gb, nb, cat_fwd, &c, c.out, r, no, 1e-2,
	    1e-2);
	dm_concat_backward(ga2, gb2, r, B, Ca, Cb, HW);
	dm_concat_backward(ga2, gb2, r, B, Ca, Cb, HW);
	CHECK(doubled(ga, ga2, na));
	CHECK(doubled(gb, gb2, nb));
	dm_concat_backward(NULL, gb2, r, B, Ca, Cb, HW);
	CHECK(fabs(gb2[0] - 3.0 * gb[0]) < 1e-5);
	free(c.out); free(c.a); free(c.b); free(r); free(ga); free(gb);
	free(ga2); free(gb2);
}

/*
 * Embeddings
 */

DM_TEST(nn_timestep_embedding)
{
	float t[3] = {0, 0.25f, 1}, out[3 * 8];

	dm_timestep_embedding(out, t, 3, 8, 1000);
	for (int b = 0; b < 3; b++)
		for (int i = 0; i < 4; i++) {
			double f = pow(10000.0, -i / 4.0);
			double a = 1000.0 * t[b] * f;
			CHECK_NEAR(out[b * 8 + i], cos(a), 1e-6);
			CHECK_NEAR(out[b * 8 + 4 + i], sin(a), 1e-6);
		}
	CHECK(out[0] == 1 && out[3] == 1 && out[4] == 0 && out[7] == 0);
	/* dim 2: the one frequency is 1: [cos(1000 t), sin(1000 t)] */
	float t1 = 0.001f, o2[2];
	dm_timestep_embedding(o2, &t1, 1, 2, 1000);
	CHECK_NEAR(o2[0], 0.5403023058681398, 1e-6);
	CHECK_NEAR(o2[1], 0.8414709848078965, 1e-6);
}

DM_TEST(nn_embedding)
{
	/* K = 4 (3 classes and the null class 3), dim 2 */
	float table[8] = {0, 1, 10, 11, 20, 21, 30, 31};
	int64_t y[3] = {3, 0, 3};
	float out[6], want[6] = {30, 31, 0, 1, 30, 31};
	float dout[6] = {1, 2, 3, 4, 5, 6}, dt[8] = {0};
	float dwant[8] = {3, 4, 0, 0, 0, 0, 6, 8};

	dm_embedding_forward(out, y, table, 3, 2);
	CHECK(memcmp(out, want, sizeof out) == 0);
	dm_embedding_backward(dt, dout, y, 3, 2);
	CHECK(memcmp(dt, dwant, sizeof dt) == 0);
	dm_embedding_backward(dt, dout, y, 3, 2);
	for (int i = 0; i < 8; i++)
		CHECK(dt[i] == 2 * dwant[i]);
}

/*
 * Dropout
 */

struct drop {
	float *out, *in;
	uint8_t *mask;
	size_t n;
	float p;
};

static void
drop_fwd(void *q)
{
	struct drop *c = q;

	dm_dropout_forward(c->out, c->mask, c->in, c->n, c->p, 7, 99);
}

DM_TEST(nn_dropout)
{
	size_t n = 100000;
	float p = 0.3f;
	struct drop c = { zeros(n), randn(n, 20), malloc(n), n, p };
	float *u = malloc(n * sizeof *u), *g = zeros(n), *g2 = zeros(n);
	float *r = randn(n, 21);
	uint8_t *m2 = malloc(777), *m3 = malloc(777);
	size_t kept = 0;
	int bad = 0;

	drop_fwd(&c);
	dm_rng_uniform(u, n, 7, 99, 0);
	for (size_t i = 0; i < n; i++) {
		int keep = u[i] >= p;
		kept += c.mask[i];
		if (c.mask[i] != keep)
			bad++;
		else if (keep ? fabs(c.out[i] - c.in[i] / (1.0 - p)) >
		    1e-6 * fabs(c.in[i]) : c.out[i] != 0)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	/* binomial(n, 0.7): sd 145 */
	CHECK_MSG(fabs((double)kept - 0.7 * n) < 5 * sqrt(n * 0.21),
	    "kept %zu of %zu", kept, n);
	/* a prefix of the mask does not depend on n; other seeds differ */
	float *o2 = zeros(777);
	dm_dropout_forward(o2, m2, c.in, 777, p, 7, 99);
	CHECK(memcmp(m2, c.mask, 777) == 0);
	CHECK(memcmp(o2, c.out, 777 * sizeof *o2) == 0);
	dm_dropout_forward(o2, m3, c.in, 777, p, 8, 99);
	CHECK(memcmp(m3, c.mask, 777) != 0);
	dm_dropout_forward(o2, m3, c.in, 777, p, 7, 100);
	CHECK(memcmp(m3, c.mask, 777) != 0);

	/* backward: dout / (1 - p) where kept; accumulates */
	dm_dropout_backward(g, r, c.mask, n, p);
	bad = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(g[i] - (c.mask[i] ? r[i] / (1.0 - p) : 0)) >
		    1e-6 * fabs(r[i]))
			bad++;
	CHECK_EQ_INT(bad, 0);
	c.n = 600;
	drop_fwd(&c);
	gradcheck("dropout din", c.in, g, 600, drop_fwd, &c, c.out, r, 600,
	    1e-2, 1e-2);
	dm_dropout_backward(g2, r, c.mask, n, p);
	dm_dropout_backward(g2, r, c.mask, n, p);
	CHECK(doubled(g, g2, n));

	/* p = 0 keeps everything unchanged, p = 1 drops everything */
	dm_dropout_forward(o2, m3, c.in, 777, 0, 7, 99);
	CHECK(memcmp(o2, c.in, 777 * sizeof *o2) == 0);
	dm_dropout_forward(o2, m3, c.in, 777, 1, 7, 99);
	for (int i = 0; i < 777; i++)
		CHECK(o2[i] == 0 && m3[i] == 0);

	free(c.out); free(c.in); free(c.mask); free(u); free(g); free(g2);
	free(r); free(m2); free(m3); free(o2);
}
