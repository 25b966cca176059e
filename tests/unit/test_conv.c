/* test_conv.c — 2-D convolution against a direct convolution in double,
 * finite differences, and the accumulation rule of backward. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_nn.h"
#include "gradcheck.h"
#include "nn_internal.h"
#include "test.h"

struct shape {
	int B, Cin, H, W, Cout, k, s;
};

static int
osize(int n, int k, int s)
{
	return (n + 2 * (k / 2) - k) / s + 1;
}

static float *
randn(size_t n, uint64_t seed)
{
	float *x = malloc((n ? n : 1) * sizeof *x);

	if (x != NULL)
		dm_rng_normal(x, n, seed, 0, 0);
	return x;
}

static float *
work_new(const struct shape *sh)
{
	size_t n = dm_conv2d_work_size(sh->B, sh->Cin, sh->H, sh->W, sh->Cout,
	    sh->k, sh->s);

	CHECK(n != SIZE_MAX);
	return n == SIZE_MAX ? NULL : malloc(n * sizeof(float));
}

/* The definition, in double: out[b,o,y,x] = bias[o] + sum over c, i, j of
 * w[o,c,i,j] in[b, c, s y - k/2 + i, s x - k/2 + j] (zero outside). */
static void
naive_forward(double *out, const float *in, const float *w, const float *b,
    const struct shape *sh)
{
	int Ho = osize(sh->H, sh->k, sh->s), Wo = osize(sh->W, sh->k, sh->s);
	int k = sh->k, p = k / 2;

	for (int n = 0; n < sh->B; n++)
	for (int o = 0; o < sh->Cout; o++)
	for (int y = 0; y < Ho; y++)
	for (int x = 0; x < Wo; x++) {
		double acc = b != NULL ? b[o] : 0;
		for (int c = 0; c < sh->Cin; c++)
		for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++) {
			int iy = sh->s * y - p + i, ix = sh->s * x - p + j;
			if (iy < 0 || iy >= sh->H || ix < 0 || ix >= sh->W)
				continue;
			acc += (double)w[((o * sh->Cin + c) * k + i) * k + j] *
			    in[((n * sh->Cin + c) * sh->H + iy) * sh->W + ix];
		}
		out[((n * sh->Cout + o) * Ho + y) * Wo + x] = acc;
	}
}

/* Gradients of sum(out * dout), in double, by the same seven loops. */
static void
naive_backward(double *din, double *dw, double *db, const float *dout,
    const float *in, const float *w, const struct shape *sh)
{
	int Ho = osize(sh->H, sh->k, sh->s), Wo = osize(sh->W, sh->k, sh->s);
	int k = sh->k, p = k / 2;

	for (int n = 0; n < sh->B; n++)
	for (int o = 0; o < sh->Cout; o++)
	for (int y = 0; y < Ho; y++)
	for (int x = 0; x < Wo; x++) {
		double g = dout[((n * sh->Cout + o) * Ho + y) * Wo + x];
		db[o] += g;
		for (int c = 0; c < sh->Cin; c++)
		for (int i = 0; i < k; i++)
		for (int j = 0; j < k; j++) {
			int iy = sh->s * y - p + i, ix = sh->s * x - p + j;
			if (iy < 0 || iy >= sh->H || ix < 0 || ix >= sh->W)
				continue;
			size_t wi = (size_t)((o * sh->Cin + c) * k + i) * k + j;
			size_t ii = (size_t)((n * sh->Cin + c) * sh->H + iy) *
			    sh->W + ix;
			dw[wi] += g * in[ii];
			din[ii] += g * w[wi];
		}
	}
}

static size_t
nin(const struct shape *sh)
{
	return (size_t)sh->B * sh->Cin * sh->H * sh->W;
}

static size_t
nout(const struct shape *sh)
{
	return (size_t)sh->B * sh->Cout * osize(sh->H, sh->k, sh->s) *
	    osize(sh->W, sh->k, sh->s);
}

static size_t
nw(const struct shape *sh)
{
	return (size_t)sh->Cout * sh->Cin * sh->k * sh->k;
}

/* max |a - b| / max(1, |b|) */
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

static const struct shape shapes[] = {
	{2, 3, 5, 6, 4, 3, 1},     /* odd/even H, W; few channels: direct loops */
	{2, 5, 6, 7, 6, 3, 1},     /* through columns */
	{2, 6, 5, 4, 1, 3, 1},     /* one output channel */
	{2, 2, 3, 5, 7, 1, 1},     /* 1x1, few channels */
	{3, 2, 7, 5, 5, 3, 2},     /* stride 2, odd sizes */
	{2, 4, 6, 8, 3, 3, 2},     /* stride 2, even sizes */
	{1, 1, 1, 1, 1, 3, 1},     /* a single pixel */
	{2, 1, 2, 3, 2, 3, 2},
	{2, 5, 4, 3, 6, 1, 1},     /* 1x1 through columns */
	{3, 6, 16, 17, 4, 1, 1},   /* 1x1 on the input directly (N >= 256) */
	{2, 3, 7, 6, 2, 1, 2},     /* 1x1 stride 2 */
	{10, 32, 28, 28, 32, 3, 1}, /* the batch in more than one chunk */
	{9, 24, 14, 14, 40, 3, 2},
	/* 3x3 stride 1 on planes of 64 pixels or more: computed directly
	 * where the machine has 16-lane vectors; planes that are not whole
	 * vectors, channel counts that are not whole tiles */
	{2, 5, 9, 13, 7, 3, 1},
	{3, 6, 8, 8, 5, 3, 1},
	{1, 7, 11, 7, 9, 3, 1},
	{2, 9, 20, 5, 6, 3, 1},
	{2, 16, 5, 40, 13, 3, 1},
	{40, 3, 10, 12, 5, 3, 1},  /* small planes side by side, 2 chunks */
};

static void
check_shape(const struct shape *sh, int with_bias)
{
	size_t ni = nin(sh), no = nout(sh), nwt = nw(sh);
	float *in = randn(ni, 1), *w = randn(nwt, 2), *b = randn(sh->Cout, 3);
	float *dout = randn(no, 4), *out = malloc(no * sizeof *out);
	float *din = randn(ni, 5), *dw = randn(nwt, 6), *db = randn(sh->Cout, 7);
	float *din0 = malloc(ni * sizeof *din0), *dw0 = malloc(nwt * sizeof *dw0);
	float db0[64];
	double *rout = calloc(no, sizeof *rout), *rdin = calloc(ni, sizeof *rdin);
	double *rdw = calloc(nwt, sizeof *rdw), *rdb = calloc(sh->Cout, sizeof *rdb);
	float *work = work_new(sh);

	CHECK(in && w && b && dout && out && din && dw && db && din0 && dw0 &&
	    rout && rdin && rdw && rdb && work && sh->Cout <= 64);
	if (work == NULL)
		goto done;
	memcpy(din0, din, ni * sizeof *din);
	memcpy(dw0, dw, nwt * sizeof *dw);
	memcpy(db0, db, sh->Cout * sizeof *db);
	/* poison: forward must overwrite every output, whatever was there */
	for (size_t i = 0; i < no; i++)
		out[i] = NAN;
	dm_conv2d_forward(out, in, w, with_bias ? b : NULL, sh->B, sh->Cin,
	    sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
	naive_forward(rout, in, w, with_bias ? b : NULL, sh);
	/* float sums of K = Cin k k products of unit normals */
	double e = maxrel(out, rout, no);
	CHECK_MSG(e < 5e-6 * sqrt((double)sh->Cin * sh->k * sh->k), "forward %dx%dx%dx%d -> %d k%d s%d: error %g",
	    sh->B, sh->Cin, sh->H, sh->W, sh->Cout, sh->k, sh->s, e);

	/* backward adds to what was in din, dw, db */
	dm_conv2d_backward(din, dw, db, dout, in, w, sh->B, sh->Cin, sh->H,
	    sh->W, sh->Cout, sh->k, sh->s, work);
	for (size_t i = 0; i < ni; i++)
		rdin[i] = din0[i];
	for (size_t i = 0; i < nwt; i++)
		rdw[i] = dw0[i];
	for (int i = 0; i < sh->Cout; i++)
		rdb[i] = db0[i];
	naive_backward(rdin, rdw, rdb, dout, in, w, sh);
	double ei = maxrel(din, rdin, ni), ew = maxrel(dw, rdw, nwt);
	double eb = maxrel(db, rdb, sh->Cout);
	/* dw and db: float sums of B Ho Wo products, whose rounding grows
	 * with the running sums (about 2e-8 per term measured) */
	double terms = (double)sh->B * osize(sh->H, sh->k, sh->s) *
	    osize(sh->W, sh->k, sh->s);
	CHECK_MSG(ei < 5e-6 * sqrt((double)sh->Cout * sh->k * sh->k) &&
	    ew < 1e-5 + 5e-8 * terms && eb < 1e-5 + 5e-8 * terms,
	    "backward %dx%dx%dx%d -> %d k%d s%d: din %g dw %g db %g", sh->B,
	    sh->Cin, sh->H, sh->W, sh->Cout, sh->k, sh->s, ei, ew, eb);
done:
	free(in); free(w); free(b); free(dout); free(out); free(din); free(dw);
	free(db); free(din0); free(dw0); free(rout); free(rdin); free(rdw);
	free(rdb); free(work);
}

DM_TEST(conv2d_forward_backward_vs_direct)
{
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		check_shape(&shapes[i], (int)(i % 3 != 1));
}

/* The same with the direct 3x3 kernels switched off: the column path
 * (the only one on machines without 16-lane vectors) stays right. */
DM_TEST(conv2d_forward_backward_vs_direct_columns)
{
	dm_conv_direct_off = 1;
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		check_shape(&shapes[i], (int)(i % 3 != 0));
	dm_conv_direct_off = 0;
}

/* Calling backward twice from zero gives exactly twice the gradients, and a
 * NULL din leaves dw and db as they would be. */
DM_TEST(conv2d_backward_accumulates)
{
	static const struct shape shs[] = {
		{3, 4, 9, 7, 5, 3, 1}, {3, 4, 9, 7, 5, 3, 2},
		{2, 3, 16, 16, 5, 1, 1}, {2, 6, 5, 7, 5, 3, 1},
	};
	for (size_t t = 0; t < sizeof shs / sizeof shs[0]; t++) {
		const struct shape *sh = &shs[t];
		size_t ni = nin(sh), no = nout(sh), nwt = nw(sh);
		float *in = randn(ni, 11), *w = randn(nwt, 12), *dout = randn(no, 13);
		float *d1 = calloc(ni, 4), *d2 = calloc(ni, 4);
		float *w1 = calloc(nwt, 4), *w2 = calloc(nwt, 4), *w3 = calloc(nwt, 4);
		float b1[5] = {0}, b2[5] = {0}, b3[5] = {0};
		float *work = work_new(sh);

		CHECK(in && w && dout && d1 && d2 && w1 && w2 && w3 && work);
		if (work == NULL)
			return;
		dm_conv2d_backward(d1, w1, b1, dout, in, w, sh->B, sh->Cin,
		    sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
		dm_conv2d_backward(d2, w2, b2, dout, in, w, sh->B, sh->Cin,
		    sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
		dm_conv2d_backward(d2, w2, b2, dout, in, w, sh->B, sh->Cin,
		    sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
		dm_conv2d_backward(NULL, w3, b3, dout, in, w, sh->B, sh->Cin,
		    sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
		int bad = 0;
		for (size_t i = 0; i < ni; i++)
			bad += fabsf(d2[i] - 2 * d1[i]) > 1e-5f * (1 + fabsf(d1[i]));
		for (size_t i = 0; i < nwt; i++) {
			bad += fabsf(w2[i] - 2 * w1[i]) > 1e-5f * (1 + fabsf(w1[i]));
			bad += w3[i] != w1[i];
		}
		for (int i = 0; i < 5; i++)
			bad += b2[i] != 2 * b1[i] || b3[i] != b1[i];
		CHECK_EQ_INT(bad, 0);
		/* and the gradients are not all zero */
		CHECK(w1[0] != 0 && d1[ni / 2] != 0 && b1[0] != 0);
		free(in); free(w); free(dout); free(d1); free(d2); free(w1);
		free(w2); free(w3); free(work);
	}
}

struct conv_ctx {
	const struct shape *sh;
	float *out, *in, *w, *b, *work;
};

static void
conv_fwd(void *p)
{
	struct conv_ctx *c = p;
	const struct shape *sh = c->sh;

	dm_conv2d_forward(c->out, c->in, c->w, c->b, sh->B, sh->Cin, sh->H,
	    sh->W, sh->Cout, sh->k, sh->s, c->work);
}

DM_TEST(conv2d_gradcheck)
{
	static const struct shape shs[] = {
		{2, 3, 6, 5, 4, 3, 1}, {2, 3, 7, 6, 4, 3, 2},
		{2, 5, 6, 5, 6, 3, 1}, {2, 6, 5, 6, 5, 3, 2},
		{2, 3, 16, 17, 2, 1, 1}, {2, 3, 5, 5, 2, 1, 2},
		{2, 5, 8, 9, 6, 3, 1}, {1, 2, 9, 8, 3, 3, 1},
	};
	for (size_t t = 0; t < sizeof shs / sizeof shs[0]; t++) {
		const struct shape *sh = &shs[t];
		size_t ni = nin(sh), no = nout(sh), nwt = nw(sh);
		struct conv_ctx c = {sh, malloc(no * 4), randn(ni, 21),
		    randn(nwt, 22), randn(sh->Cout, 23), work_new(sh)};
		float *r = randn(no, 24), *din = calloc(ni, 4);
		float *dw = calloc(nwt, 4), *db = calloc(sh->Cout, 4);

		CHECK(c.out && c.in && c.w && c.b && c.work && r && din && dw && db);
		if (c.work == NULL)
			return;
		conv_fwd(&c);
		dm_conv2d_backward(din, dw, db, r, c.in, c.w, sh->B, sh->Cin,
		    sh->H, sh->W, sh->Cout, sh->k, sh->s, c.work);
		gradcheck("conv din", c.in, din, ni, conv_fwd, &c, c.out, r, no,
		    1e-2, 1e-2);
		gradcheck("conv dw", c.w, dw, nwt, conv_fwd, &c, c.out, r, no,
		    1e-2, 1e-2);
		gradcheck("conv db", c.b, db, sh->Cout, conv_fwd, &c, c.out, r,
		    no, 1e-2, 1e-2);
		free(c.out); free(c.in); free(c.w); free(c.b); free(c.work);
		free(r); free(din); free(dw); free(db);
	}
}

DM_TEST(conv2d_work_size_refuses_bad_shapes)
{
	CHECK(dm_conv2d_work_size(1, 1, 4, 4, 1, 2, 1) == SIZE_MAX);
	CHECK(dm_conv2d_work_size(1, 1, 4, 4, 1, 3, 3) == SIZE_MAX);
	CHECK(dm_conv2d_work_size(0, 1, 4, 4, 1, 3, 1) == SIZE_MAX);
	CHECK(dm_conv2d_work_size(1, 1, -4, 4, 1, 3, 1) == SIZE_MAX);
	CHECK(strstr(dm_errstr(), "conv2d") != NULL);
	CHECK(dm_conv2d_work_size(1, INT32_MAX, INT32_MAX, INT32_MAX,
	    INT32_MAX, 3, 1) == SIZE_MAX);
	/* a small case: the columns and the GEMM result of the whole batch */
	size_t n = dm_conv2d_work_size(2, 3, 4, 4, 5, 3, 1);
	CHECK(n != SIZE_MAX && n >= (size_t)(27 + 5) * 16 * 2 &&
	    n < (size_t)1 << 20);
}

/* Results agree across thread counts to rounding, relative to the largest
 * value (the BLAS's kernels for a split's edge round otherwise): threads split a chunk's columns, and 3 threads cut tiles
 * across rows and images. */
static int
count_far(const float *a, const float *b, size_t n, float tol)
{
	int bad = 0;
	float big = 0;

	for (size_t i = 0; i < n; i++)
		big = fabsf(a[i]) > big ? fabsf(a[i]) : big;
	for (size_t i = 0; i < n; i++)
		bad += fabsf(a[i] - b[i]) > tol * (1 + big);
	return bad;
}

DM_TEST(conv2d_threads)
{
	static const struct shape shs[] = {
		{1, 32, 28, 28, 32, 3, 1}, {1, 64, 7, 7, 128, 3, 1},
		{3, 24, 13, 11, 40, 3, 1}, {2, 48, 15, 9, 24, 3, 2},
		{5, 96, 14, 14, 32, 1, 1}, {1, 33, 9, 31, 17, 3, 1},
	};
	int threads = dm_threads_get();

	for (size_t t = 0; t < sizeof shs / sizeof shs[0]; t++) {
		const struct shape *sh = &shs[t];
		size_t ni = nin(sh), no = nout(sh), nwt = nw(sh);
		float *in = randn(ni, 31), *w = randn(nwt, 32);
		float *b = randn(sh->Cout, 33), *dout = randn(no, 34);
		float *o[3], *d[3], *dw[3], *work = work_new(sh);

		for (int k = 0; k < 3; k++) {
			o[k] = malloc(no * 4);
			d[k] = calloc(ni, 4);
			dw[k] = calloc(nwt, 4);
			dm_threads_set(k + 1);
			dm_conv2d_forward(o[k], in, w, b, sh->B, sh->Cin, sh->H,
			    sh->W, sh->Cout, sh->k, sh->s, work);
			dm_conv2d_backward(d[k], dw[k], NULL, dout, in, w, sh->B,
			    sh->Cin, sh->H, sh->W, sh->Cout, sh->k, sh->s, work);
		}
		for (int k = 1; k < 3; k++) {
			CHECK_MSG(count_far(o[0], o[k], no, 1e-5f) == 0,
			    "shape %zu: forward on %d threads differs", t, k + 1);
			CHECK_MSG(count_far(d[0], d[k], ni, 1e-5f) == 0,
			    "shape %zu: din on %d threads differs", t, k + 1);
			CHECK_MSG(count_far(dw[0], dw[k], nwt, 1e-5f) == 0,
			    "shape %zu: dw on %d threads differs", t, k + 1);
		}
		for (int k = 0; k < 3; k++) {
			free(o[k]); free(d[k]); free(dw[k]);
		}
		free(in); free(w); free(b); free(dout); free(work);
	}
	dm_threads_set(threads);
}
