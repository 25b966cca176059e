/* nn.c — linear layer, activations, resampling, concatenation, embeddings
 * and dropout (dm_nn.h).  The normalizations are in nn_norm.c.
 *
 * Elementwise loops carry `omp simd` and go parallel only above
 * DM_NN_PAR_MIN elements, where a team start-up (microseconds) is worth
 * it.  Every loop writes element i from element i alone, so an
 * activation's forward may run in place (out == in). */
#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dm_nn.h"
#include "dm_rng.h"
#include "nn_internal.h"

/*
 * Linear
 */

void
dm_linear_forward(float *out, const float *in, const float *w,
    const float *b, int n, int din, int dout)
{
	if (n <= 0 || dout <= 0 || din < 0)
		return;
	if (din == 0)
		memset(out, 0, (size_t)n * (size_t)dout * sizeof *out);
	else
		/* out (n, dout) = in (n, din) . w^T, w stored (dout, din) */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dout,
		    din, 1.0f, in, din, w, din, 0.0f, out, dout);
	if (b == NULL)
		return;
	/* one thread: the add costs 1/din of the product, and an OpenMP
	 * team spinning beside OpenBLAS's threads would cost more */
	for (int i = 0; i < n; i++) {
		float *restrict o = out + (size_t)i * dout;
		#pragma omp simd
		for (int j = 0; j < dout; j++)
			o[j] += b[j];
	}
}

/* db[j] += sum_i dout[i, j], row by row (vectorized along j), on one
 * thread like the bias add. */
static void
column_sum_add(float *restrict db, const float *restrict dout, int n,
    int dout_dim)
{
	for (int i = 0; i < n; i++) {
		const float *restrict g = dout + (size_t)i * dout_dim;
		#pragma omp simd
		for (int j = 0; j < dout_dim; j++)
			db[j] += g[j];
	}
}

/* din = beta din + dout w (beta 1: add, 0: set); dw += dout^T in; db +=
 * the column sums of dout */
static void
linear_backward(float *din, float beta, float *dw, float *db,
    const float *dout, const float *in, const float *w, int n, int din_dim,
    int dout_dim)
{
	if (n <= 0 || dout_dim <= 0 || din_dim < 0)
		return;
	if (din_dim > 0) {
		/* din (n, din) = beta din + dout (n, dout) . w (dout, din) */
		if (din != NULL)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
			    n, din_dim, dout_dim, 1.0f, dout, dout_dim, w,
			    din_dim, beta, din, din_dim);
		/* dw (dout, din) += dout^T (dout, n) . in (n, din) */
		if (dw != NULL)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
			    dout_dim, din_dim, n, 1.0f, dout, dout_dim, in,
			    din_dim, 1.0f, dw, din_dim);
	}
	if (db != NULL)
		column_sum_add(db, dout, n, dout_dim);
}

void
dm_linear_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int n, int din_dim, int dout_dim)
{
	linear_backward(din, 1.0f, dw, db, dout, in, w, n, din_dim, dout_dim);
}

void
dm_linear_backward_set(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int n, int din_dim, int dout_dim)
{
	linear_backward(din, 0.0f, dw, db, dout, in, w, n, din_dim, dout_dim);
}

/*
 * Activations
 */

/* SiLU: x s(x), s = 1 / (1 + e^-x); d/dx = s (1 + x (1 - s)).  The
 * loops are compiled for the machine's vectors (DM_CLONES), on ranges
 * split across threads when long. */
static DM_CLONES void
silu_range(float *restrict out, const float *restrict in, size_t lo,
    size_t hi)
{
	#pragma omp simd
	for (size_t i = lo; i < hi; i++) {
		float x = in[i];
		out[i] = x / (1.0f + dm_nn_exp(-x));
	}
}

static DM_CLONES void
silu_back_range(float *restrict din, const float *restrict dout,
    const float *restrict in, size_t lo, size_t hi, int set)
{
	if (set) {
		#pragma omp simd
		for (size_t i = lo; i < hi; i++) {
			float x = in[i];
			float s = 1.0f / (1.0f + dm_nn_exp(-x));
			din[i] = dout[i] * s * (1.0f + x * (1.0f - s));
		}
		return;
	}
	#pragma omp simd
	for (size_t i = lo; i < hi; i++) {
		float x = in[i];
		float s = 1.0f / (1.0f + dm_nn_exp(-x));
		din[i] += dout[i] * s * (1.0f + x * (1.0f - s));
	}
}

void
dm_silu_forward(float *out, const float *in, size_t n)
{
	DM_NN_RANGES(n, silu_range(out, in, lo, hi));
}

void
dm_silu_backward(float *din, const float *dout, const float *in, size_t n)
{
	if (din == NULL)
		return;
	DM_NN_RANGES(n, silu_back_range(din, dout, in, lo, hi, 0));
}

void
dm_silu_backward_set(float *din, const float *dout, const float *in,
    size_t n)
{
	if (din == NULL)
		return;
	DM_NN_RANGES(n, silu_back_range(din, dout, in, lo, hi, 1));
}

/* GELU, exact: x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, computed as
 * erfc(-x / sqrt 2) / 2, which keeps its relative accuracy for x << 0;
 * d/dx = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi). */
#define SQRT1_2F 0.70710678118654752f
#define INV_SQRT_2PI_F 0.39894228040143268f

void
dm_gelu_forward(float *out, const float *in, size_t n)
{
	DM_NN_ELEMWISE(n, {
		float x = in[i];
		out[i] = 0.5f * x * erfcf(-x * SQRT1_2F);
	});
}

void
dm_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
	if (din == NULL)
		return;
	DM_NN_ELEMWISE(n, {
		float x = in[i];
		float cdf = 0.5f * erfcf(-x * SQRT1_2F);
		float pdf = INV_SQRT_2PI_F * dm_nn_exp(-0.5f * x * x);
		din[i] += dout[i] * (cdf + x * pdf);
	});
}

void
dm_relu_forward(float *out, const float *in, size_t n)
{
	DM_NN_ELEMWISE(n, {
		float x = in[i];
		out[i] = x > 0.0f ? x : 0.0f;
	});
}

void
dm_relu_backward(float *din, const float *dout, const float *in, size_t n)
{
	if (din == NULL)
		return;
	DM_NN_ELEMWISE(n, {
		float g = dout[i];
		din[i] += in[i] > 0.0f ? g : 0.0f;
	});
}

/*
 * Nearest-neighbour upsampling by 2 and channel concatenation
 */

void
dm_upsample2_forward(float *out, const float *in, int B, int C, int H,
    int W)
{
	if (B <= 0 || C <= 0 || H <= 0 || W <= 0)
		return;
	long planes = (long)B * C;
	size_t hw = (size_t)H * W;

	#pragma omp parallel for schedule(static) if (planes * hw >= DM_NN_PAR_MIN)
	for (long p = 0; p < planes; p++) {
		const float *src = in + (size_t)p * hw;
		float *dst = out + (size_t)p * 4 * hw;
		for (int y = 0; y < H; y++) {
			const float *restrict s = src + (size_t)y * W;
			float *restrict d0 = dst + (size_t)(2 * y) * (2 * W);
			float *restrict d1 = d0 + 2 * W;
			for (int x = 0; x < W; x++) {
				d0[2 * x] = d0[2 * x + 1] = s[x];
				d1[2 * x] = d1[2 * x + 1] = s[x];
			}
		}
	}
}

void
dm_upsample2_backward(float *din, const float *dout, int B, int C, int H,
    int W)
{
	if (din == NULL || B <= 0 || C <= 0 || H <= 0 || W <= 0)
		return;
	long planes = (long)B * C;
	size_t hw = (size_t)H * W;

	#pragma omp parallel for schedule(static) if (planes * hw >= DM_NN_PAR_MIN)
	for (long p = 0; p < planes; p++) {
		float *dst = din + (size_t)p * hw;
		const float *src = dout + (size_t)p * 4 * hw;
		for (int y = 0; y < H; y++) {
			float *restrict d = dst + (size_t)y * W;
			const float *restrict g0 = src + (size_t)(2 * y) * (2 * W);
			const float *restrict g1 = g0 + 2 * W;
			for (int x = 0; x < W; x++)
				d[x] += (g0[2 * x] + g0[2 * x + 1]) +
				    (g1[2 * x] + g1[2 * x + 1]);
		}
	}
}

void
dm_concat_forward(float *out, const float *a, const float *b, int B,
    int Ca, int Cb, int HW)
{
	if (B <= 0 || Ca < 0 || Cb < 0 || HW <= 0)
		return;
	size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;

	for (int i = 0; i < B; i++) {
		float *o = out + (size_t)i * (na + nb);
		if (na)
			memcpy(o, a + (size_t)i * na, na * sizeof *o);
		if (nb)
			memcpy(o + na, b + (size_t)i * nb, nb * sizeof *o);
	}
}

static void
add_into(float *restrict d, const float *restrict s, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++)
		d[i] += s[i];
}

void
dm_concat_backward(float *da, float *db, const float *dout, int B, int Ca,
    int Cb, int HW)
{
	if (B <= 0 || Ca < 0 || Cb < 0 || HW <= 0)
		return;
	size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;

	#pragma omp parallel for schedule(static) \
	    if ((size_t)B * (na + nb) >= DM_NN_PAR_MIN)
	for (int i = 0; i < B; i++) {
		const float *g = dout + (size_t)i * (na + nb);
		if (da != NULL)
			add_into(da + (size_t)i * na, g, na);
		if (db != NULL)
			add_into(db + (size_t)i * nb, g + na, nb);
	}
}

/*
 * Embeddings
 */

/* One embedding, element i at o[i * stride]. */
static void
temb_one(float *o, size_t stride, double st, int dim)
{
	int half = dim / 2;
	const double lg = log(10000.0);

	for (int i = 0; i < half; i++) {
		double a = st * exp(-lg * i / half);
		o[(size_t)i * stride] = (float)cos(a);
		o[(size_t)(half + i) * stride] = (float)sin(a);
	}
	if (dim & 1)
		o[(size_t)(dim - 1) * stride] = 0.0f;	/* odd dim: zero pad */
}

void
dm_timestep_embedding(float *out, const float *t, int B, int dim,
    float scale)
{
	if (B <= 0 || dim <= 0)
		return;
	for (int b = 0; b < B; b++)
		temb_one(out + (size_t)b * dim, 1, (double)scale * t[b], dim);
}

void
dm_timestep_embedding_cols(float *outT, size_t ld, const float *t, int B,
    int dim, float scale)
{
	if (B <= 0 || dim <= 0)
		return;
	for (int b = 0; b < B; b++)
		temb_one(outT + b, ld, (double)scale * t[b], dim);
}

void
dm_embedding_forward(float *out, const int64_t *y, const float *table,
    int B, int dim)
{
	if (B <= 0 || dim <= 0)
		return;
	for (int b = 0; b < B; b++)
		memcpy(out + (size_t)b * dim, table + (size_t)y[b] * dim,
		    (size_t)dim * sizeof *out);
}

void
dm_embedding_backward(float *dtable, const float *dout, const int64_t *y,
    int B, int dim)
{
	if (dtable == NULL || B <= 0 || dim <= 0)
		return;
	/* serial: a class may occur more than once in y */
	for (int b = 0; b < B; b++)
		add_into(dtable + (size_t)y[b] * dim, dout + (size_t)b * dim,
		    (size_t)dim);
}

/*
 * Dropout: element e is kept iff uniform draw e of (seed, stream) >= p.
 * Draws lie in (0, 1), so p <= 0 keeps all and p >= 1 drops all.
 */

static float
dropout_scale(float p)
{
	if (!(p > 0.0f))
		return 1.0f;
	return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

void
dm_dropout_forward(float *out, uint8_t *mask, const float *in, size_t n,
    float p, uint64_t seed, uint64_t stream)
{
	enum { CHUNK = 1024 };
	float scale = dropout_scale(p);
	size_t nchunk = (n + CHUNK - 1) / CHUNK;

	#pragma omp parallel for schedule(static) if (n >= DM_NN_PAR_MIN)
	for (size_t c = 0; c < nchunk; c++) {
		float u[CHUNK];
		size_t i0 = c * CHUNK;
		size_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
		dm_rng_uniform(u, m, seed, stream, i0);
		#pragma omp simd
		for (size_t k = 0; k < m; k++) {
			uint8_t keep = u[k] >= p;
			mask[i0 + k] = keep;
			out[i0 + k] = in[i0 + k] * (keep ? scale : 0.0f);
		}
	}
}

void
dm_dropout_backward(float *din, const float *dout, const uint8_t *mask,
    size_t n, float p)
{
	if (din == NULL)
		return;
	float scale = dropout_scale(p);

	DM_NN_ELEMWISE(n, {
		din[i] += dout[i] * (mask[i] ? scale : 0.0f);
	});
}

void
dm_dropout_backward_set(float *din, const float *dout, const uint8_t *mask,
    size_t n, float p)
{
	if (din == NULL)
		return;
	float scale = dropout_scale(p);

	DM_NN_ELEMWISE(n, {
		din[i] = dout[i] * (mask[i] ? scale : 0.0f);
	});
}
