/* conv.c — 2-D convolution (kernel 1 or 3, stride 1 or 2, zero padding
 * k/2, NCHW) by im2col and sgemm.  When the machine has 16-lane vectors,
 * stride-1 layers go to the kernels of conv_direct.c instead: 3x3 ones
 * forward and backward, 1x1 ones forward (backward the GEMMs are faster).
 *
 * Notation: K = Cin k k rows of the column matrix, N = Ho Wo output pixels
 * per image.  The batch is processed in chunks of nb images whose columns
 * sit side by side, col (K, nb N), so that the GEMMs are large even for
 * 7x7 images:
 *
 *   forward   tmp (Cout, nb N) = w (Cout, K) col,  out[b] = tmp[:, b] + bias
 *   backward  tmp = dout[b] side by side,  dw += tmp col^T,
 *             db += row sums of dout
 *   din       stride 1: a convolution of dout with w transposed and
 *             flipped (im2col of dout, inner dimension Cout k k);
 *             stride 2: col = w^T tmp, then col2im adds col into din
 *
 * A forward chunk (and the stride-1 input gradient, itself a forward) is
 * one parallel region: each thread builds the columns of its own range of
 * the chunk's pixels, multiplies them on its thread and stores its part
 * of the output, so that a layer costs one fork and join, not the three
 * of im2col, a threaded GEMM and the copy out, and small GEMMs (one image
 * when sampling) are not split inside the BLAS.
 *
 * The chunk size is a pure function of the shape (so forward, backward and
 * dm_conv2d_work_size agree, and results do not depend on the thread
 * count); it keeps a chunk's buffers near the size of the L2 cache.  A 1x1
 * stride-1 convolution on large images needs no columns at all: the input
 * of one image already is its column matrix. */
#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "dm_base.h"
#include "dm_nn.h"
#include "nn_internal.h"

/* floats of scratch a chunk aims for (col + tmp): about the L2 cache */
#ifndef CONV_CHUNK_FLOATS
#define CONV_CHUNK_FLOATS ((size_t)1 << 19)
#endif
/* a 1x1 stride-1 convolution multiplies in place from this many pixels on */
#define CONV_DIRECT_MIN_N 256

static int
conv_out_size(int n, int k, int s)
{
	return (int)(((int64_t)n + 2 * (k / 2) - k) / s + 1);
}

static int
conv_direct(int k, int s, size_t N)
{
	return k == 1 && s == 1 && N >= CONV_DIRECT_MIN_N;
}

/* Floats of scratch one image of a chunk takes: the columns and GEMM
 * result of the forward pass, (K + Cout) N, or of the input gradient of a
 * stride-1 convolution, (Cout k k + Cin) N; *nw gets the floats of the
 * flipped kernel.  -1 on overflow. */
static int
conv_sizes(int Cin, int H, int W, int Cout, int k, int s, size_t *per,
    size_t *nw)
{
	size_t N, kk = (size_t)k * k, a, b;

	if (dm_mul_size((size_t)conv_out_size(H, k, s),
	    (size_t)conv_out_size(W, k, s), &N) == -1 ||
	    dm_mul_size((size_t)Cin, kk, &a) == -1 ||
	    dm_add_size(a, (size_t)Cout, &a) == -1 ||
	    dm_mul_size((size_t)Cout, kk, &b) == -1 ||
	    dm_add_size(b, (size_t)Cin, &b) == -1 ||
	    dm_mul_size(a > b ? a : b, N, per) == -1 ||
	    dm_mul_size((size_t)Cout * kk, (size_t)Cin, nw) == -1)
		return -1;
	return 0;
}

/* Images per chunk. */
static int
conv_chunk(int B, size_t per_image)
{
	size_t nb = per_image ? CONV_CHUNK_FLOATS / per_image : (size_t)B;

	if (nb < 1)
		nb = 1;
	if (nb > (size_t)B)
		nb = (size_t)B;
	return (int)nb;
}

/* Returns SIZE_MAX (with a reason) for a shape the layer does not take or
 * whose size overflows. */
size_t
dm_conv2d_work_size(int B, int Cin, int H, int W, int Cout, int k, int s)
{
	size_t per, nw, total;

	if (B < 1 || Cin < 1 || H < 1 || W < 1 || Cout < 1 ||
	    (k != 1 && k != 3) || (s != 1 && s != 2)) {
		dm_seterr("conv2d: unsupported shape (B %d, Cin %d, %dx%d, "
		    "Cout %d, k %d, s %d)", B, Cin, H, W, Cout, k, s);
		return SIZE_MAX;
	}
	if (conv_sizes(Cin, H, W, Cout, k, s, &per, &nw) == -1)
		return SIZE_MAX;
	if (conv_direct(k, s, (size_t)conv_out_size(H, k, s) *
	    (size_t)conv_out_size(W, k, s)))
		total = 1;
	else if (dm_mul_size(per, (size_t)conv_chunk(B, per), &total) == -1 ||
	    dm_add_size(total, nw, &total) == -1)
		return SIZE_MAX;
	/* the vector kernels' scratch, whether or not they run */
	if (s == 1 && dm_convd_work(B, Cin, H, W, Cout) > total)
		total = dm_convd_work(B, Cin, H, W, Cout);
	return total;
}

/* The adjoint of im2col: din += the columns folded back onto the image. */
static void
col2im(float *din, const float *col, size_t ld, int nb, int Cin, int H,
    int W, int k, int s, int Ho, int Wo)
{
	size_t N = (size_t)Ho * Wo, HW = (size_t)H * W;
	int p = k / 2;

	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)nb * Cin * N * k * k >= DM_NN_PAR_MIN)
	for (int j = 0; j < nb; j++)
	for (int c = 0; c < Cin; c++) {
		float *dst = din + ((size_t)j * Cin + c) * HW;
		for (int ki = 0; ki < k; ki++)
		for (int kj = 0; kj < k; kj++) {
			const float *src = col +
			    ((size_t)(c * k + ki) * k + kj) * ld + (size_t)j * N;
			int off = kj - p, xlo = 0, xhi = Wo;
			while (xlo < Wo && xlo * s + off < 0)
				xlo++;
			while (xhi > xlo && (xhi - 1) * s + off >= W)
				xhi--;
			for (int y = 0; y < Ho; y++) {
				int iy = y * s - p + ki;
				if (iy < 0 || iy >= H)
					continue;
				const float *row = src + (size_t)y * Wo;
				float *drow = dst + (size_t)iy * W;
				if (s == 1)
					for (int x = xlo; x < xhi; x++)
						drow[x + off] += row[x];
				else
					for (int x = xlo; x < xhi; x++)
						drow[2 * x + off] += row[x];
			}
		}
	}
}

static void
conv_forward_direct(float *out, const float *in, const float *w,
    const float *b, int B, int Cin, int Cout, size_t N)
{
	for (int j = 0; j < B; j++) {
		float *o = out + (size_t)j * Cout * N;
		float beta = 0;
		if (b != NULL) {
			#pragma omp parallel for schedule(static) \
	    if ((size_t)Cout * N >= DM_NN_PAR_MIN)
			for (int co = 0; co < Cout; co++)
				for (size_t n = 0; n < N; n++)
					o[(size_t)co * N + n] = b[co];
			beta = 1;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout,
		    (int)N, Cin, 1.0f, w, Cin, in + (size_t)j * Cin * N,
		    (int)N, beta, o, (int)N);
	}
}

/* Few input or output channels (the image's own, 1 or 3), on a machine
 * without the vectors of conv_direct.c: the GEMMs would be thin and
 * im2col would dominate, so stride-1 convolutions loop directly over the
 * taps, each tap a shifted row update that vectorizes along x: forward
 * with Cout <= CONV_THIN, backward with Cin or Cout <= CONV_THIN
 * (measured by bench_nn: with few input channels the forward GEMM, whose
 * columns are cheap, stays faster). */
#define CONV_THIN 4

static int
conv_thin(int Cin, int Cout, int s, int backward)
{
	return s == 1 && (Cout <= CONV_THIN || (backward && Cin <= CONV_THIN));
}

/* The x range [*lo, *hi) of an output row whose input x + off is inside. */
static void
conv_xrange(int W, int off, int *lo, int *hi)
{
	*lo = off < 0 ? -off : 0;
	*hi = off > 0 ? W - off : W;
	if (*hi < *lo)
		*hi = *lo;
}

static void
conv_thin_forward(float *out, const float *in, const float *w,
    const float *b, int B, int Cin, int H, int W, int Cout, int k)
{
	size_t HW = (size_t)H * W, kk = (size_t)k * k;
	int p = k / 2;

	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)B * Cout * HW * Cin * kk >= DM_NN_PAR_MIN)
	for (int n = 0; n < B; n++)
	for (int o = 0; o < Cout; o++) {
		float *dst = out + ((size_t)n * Cout + o) * HW;
		float bias = b != NULL ? b[o] : 0.0f;
		for (size_t i = 0; i < HW; i++)
			dst[i] = bias;
		for (int c = 0; c < Cin; c++) {
			const float *src = in + ((size_t)n * Cin + c) * HW;
			const float *wk = w + ((size_t)o * Cin + c) * kk;
			for (int ki = 0; ki < k; ki++)
			for (int kj = 0; kj < k; kj++) {
				int off = kj - p, lo, hi;
				float wv = wk[ki * k + kj];
				conv_xrange(W, off, &lo, &hi);
				for (int y = 0; y < H; y++) {
					int iy = y + ki - p;
					if (iy < 0 || iy >= H)
						continue;
					float *orow = dst + (size_t)y * W;
					const float *irow = src + (size_t)iy * W;
					#pragma omp simd
					for (int x = lo; x < hi; x++)
						orow[x] += wv * irow[x + off];
				}
			}
		}
	}
}

static void
conv_thin_backward(float *din, float *dw, const float *dout, const float *in,
    const float *w, int B, int Cin, int H, int W, int Cout, int k)
{
	size_t HW = (size_t)H * W, kk = (size_t)k * k;
	int p = k / 2;

	/* dw[o, c, ki, kj] += sum over images and pixels of dout * shifted in */
	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)B * Cout * HW * Cin * kk >= DM_NN_PAR_MIN)
	for (int o = 0; o < Cout; o++)
	for (int c = 0; c < Cin; c++)
	for (int ki = 0; ki < k; ki++)
	for (int kj = 0; kj < k; kj++) {
		int off = kj - p, lo, hi;
		double sum = 0;
		conv_xrange(W, off, &lo, &hi);
		for (int n = 0; n < B; n++) {
			const float *g = dout + ((size_t)n * Cout + o) * HW;
			const float *src = in + ((size_t)n * Cin + c) * HW;
			for (int y = 0; y < H; y++) {
				int iy = y + ki - p;
				if (iy < 0 || iy >= H)
					continue;
				const float *grow = g + (size_t)y * W;
				const float *irow = src + (size_t)iy * W;
				float part = 0;
				#pragma omp simd reduction(+:part)
				for (int x = lo; x < hi; x++)
					part += grow[x] * irow[x + off];
				sum += part;
			}
		}
		dw[((size_t)o * Cin + c) * kk + (size_t)ki * k + kj] += (float)sum;
	}
	if (din == NULL)
		return;
	/* din[c] at (y + ki - p, x + kj - p) += w[o, c, ki, kj] dout[o] at (y, x) */
	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)B * Cout * HW * Cin * kk >= DM_NN_PAR_MIN)
	for (int n = 0; n < B; n++)
	for (int c = 0; c < Cin; c++) {
		float *dst = din + ((size_t)n * Cin + c) * HW;
		for (int o = 0; o < Cout; o++) {
			const float *g = dout + ((size_t)n * Cout + o) * HW;
			const float *wk = w + ((size_t)o * Cin + c) * kk;
			for (int ki = 0; ki < k; ki++)
			for (int kj = 0; kj < k; kj++) {
				int off = kj - p, lo, hi;
				float wv = wk[ki * k + kj];
				conv_xrange(W, off, &lo, &hi);
				for (int y = 0; y < H; y++) {
					int iy = y + ki - p;
					if (iy < 0 || iy >= H)
						continue;
					float *drow = dst + (size_t)iy * W;
					const float *grow = g + (size_t)y * W;
					#pragma omp simd
					for (int x = lo; x < hi; x++)
						drow[x + off] += wv * grow[x];
				}
			}
		}
	}
}

/* This thread's range [c0, c1) of n columns, in whole tiles of 16 */
static void
thread_columns(size_t n, size_t *c0, size_t *c1)
{
	size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();

	*c0 = n * t / nt / 16 * 16;
	*c1 = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
}

/* out (nb, Cout, N) at chunk columns [c0, c1) = (add ? out : 0) + tmp
 * (Cout, c1 - c0) + b */
static void
conv_store(float *out, const float *tmp, const float *b, int add, int Cout,
    size_t N, size_t c0, size_t c1)
{
	size_t wn = c1 - c0;

	for (size_t i = c0; i < c1;) {
		size_t j = i / N, n = i % N, len = N - n < c1 - i ? N - n : c1 - i;
		for (int co = 0; co < Cout; co++) {
			float *dst = out + (j * Cout + co) * N + n;
			const float *t = tmp + (size_t)co * wn + (i - c0);
			float bias = b != NULL ? b[co] : 0.0f;
			if (add)
				for (size_t x = 0; x < len; x++)
					dst[x] += t[x] + bias;
			else
				for (size_t x = 0; x < len; x++)
					dst[x] = t[x] + bias;
		}
		i += len;
	}
}

/* Columns [c0, c1) of the column matrix of a chunk (its images side by
 * side, N = Ho Wo columns each) into col (Cin k k, c1 - c0), rows ld
 * apart.  The range is walked in segments of output rows, the same for
 * every (c, ki, kj) row of col: where a segment starts (image, output
 * row, column) is found once; each row of col is then copies of input
 * row pieces and zeros, in loops compiled for the machine's vectors. */
static DM_CLONES void
im2col_range(float *col, size_t ld, const float *in, int Cin, int H, int W,
    int k, int s, int Ho, int Wo, size_t c0, size_t c1)
{
	size_t N = (size_t)Ho * Wo, HW = (size_t)H * W;
	int p = k / 2;
	size_t j0 = c0 / N, n0 = c0 % N;
	int y0 = (int)(n0 / (size_t)Wo), xs0 = (int)(n0 % (size_t)Wo);

	for (int c = 0; c < Cin; c++)
	for (int ki = 0; ki < k; ki++)
	for (int kj = 0; kj < k; kj++) {
		float *restrict dst = col + ((size_t)(c * k + ki) * k + kj) * ld -
		    c0;
		int off = kj - p, xlo = 0, xhi = Wo;
		while (xlo < Wo && xlo * s + off < 0)
			xlo++;
		while (xhi > xlo && (xhi - 1) * s + off >= W)
			xhi--;
		size_t i = c0, j = j0;
		int y = y0, x0 = xs0;
		while (i < c1) {
			int x1 = Wo - x0 < (int)(c1 - i) ? Wo : x0 + (int)(c1 - i);
			int iy = y * s - p + ki, a = x0 > xlo ? x0 : xlo;
			int e = x1 < xhi ? x1 : xhi;
			float *restrict row = dst + i - x0;
			if (iy < 0 || iy >= H || a >= e) {
				for (int x = x0; x < x1; x++)
					row[x] = 0;
			} else {
				const float *restrict srow = in + (j * Cin + c) * HW +
				    (size_t)iy * W + off;
				for (int x = x0; x < a; x++)
					row[x] = 0;
				if (s == 1) {
					#pragma omp simd
					for (int x = a; x < e; x++)
						row[x] = srow[x];
				} else
					for (int x = a; x < e; x++)
						row[x] = srow[2 * x];
				for (int x = e; x < x1; x++)
					row[x] = 0;
			}
			i += (size_t)(x1 - x0);
			x0 = 0;
			if (++y == Ho) {
				y = 0;
				j++;
			}
		}
	}
}

/* Columns of nb images: col (Cin k k, ld) with image j at column j N;
 * threads take ranges of columns. */
static void
im2col(float *col, size_t ld, const float *in, int Cin, int H, int W, int k,
    int s, int Ho, int Wo)
{
	size_t K = (size_t)Cin * k * k;

	#pragma omp parallel if (ld * K >= DM_NN_PAR_MIN)
	{
		size_t c0, c1;
		thread_columns(ld, &c0, &c1);
		if (c1 > c0)
			im2col_range(col + c0, ld, in, Cin, H, W, k, s, Ho, Wo,
			    c0, c1);
	}
}

/* out = (add ? out : 0) + conv(in, w) + b over the whole batch, nb images
 * per chunk; work holds (K + Cout) nb N floats.  Each thread takes a range
 * of a chunk's columns: its own columns, GEMM (on its thread) and output,
 * so a chunk is one parallel region without a barrier (a column's value
 * is its dot products over K, whatever the split, up to the BLAS's own
 * blocking). */
static void
conv_chunked(float *out, const float *in, const float *w, const float *b,
    int add, int B, int Cin, int H, int W, int Cout, int k, int s, int chunk,
    float *work)
{
	int Ho = conv_out_size(H, k, s), Wo = conv_out_size(W, k, s);
	size_t N = (size_t)Ho * Wo, K = (size_t)Cin * k * k;

	for (int b0 = 0; b0 < B; b0 += chunk) {
		int nb = B - b0 < chunk ? B - b0 : chunk;
		size_t ld = (size_t)nb * N;
		const float *src = in + (size_t)b0 * Cin * H * W;
		float *o = out + (size_t)b0 * Cout * N;
		#pragma omp parallel if (ld * K * Cout >= 8 * DM_NN_PAR_MIN)
		{
			size_t c0, c1;
			thread_columns(ld, &c0, &c1);
			size_t wn = c1 - c0;
			float *col = work + K * c0, *tmp = work + K * ld + Cout * c0;
			if (wn > 0) {
				im2col_range(col, wn, src, Cin, H, W, k, s, Ho, Wo,
				    c0, c1);
				cblas_sgemm(CblasRowMajor, CblasNoTrans,
				    CblasNoTrans, Cout, (int)wn, (int)K, 1.0f, w,
				    (int)K, col, (int)wn, 0.0f, tmp, (int)wn);
				conv_store(o, tmp, b, add, Cout, N, c0, c1);
			}
		}
	}
}

void
dm_conv2d_forward(float *out, const float *in, const float *w,
    const float *b, int B, int Cin, int H, int W, int Cout, int k, int s,
    float *work)
{
	size_t per, nw, N = (size_t)conv_out_size(H, k, s) *
	    (size_t)conv_out_size(W, k, s);

	if (s == 1 && dm_convd_ok()) {
		dm_convd_forward(out, in, w, b, 0, B, Cin, H, W, Cout, k, 0,
		    work);
		return;
	}
	if (conv_direct(k, s, N)) {
		conv_forward_direct(out, in, w, b, B, Cin, Cout, N);
		return;
	}
	if (conv_thin(Cin, Cout, s, 0)) {
		conv_thin_forward(out, in, w, b, B, Cin, H, W, Cout, k);
		return;
	}
	conv_sizes(Cin, H, W, Cout, k, s, &per, &nw);
	conv_chunked(out, in, w, b, 0, B, Cin, H, W, Cout, k, s,
	    conv_chunk(B, per), work);
}

/* The sum of a channel's n values, in 16 interleaved partial sums
 * (vectors of the machine). */
static DM_CLONES float
channel_sum(const float *restrict src, size_t n)
{
	float part = 0;

	#pragma omp simd reduction(+:part)
	for (size_t i = 0; i < n; i++)
		part += src[i];
	return part;
}

/* db[co] += sum over images and pixels of dout[:, co, :]. */
static void
conv_bias_backward(float *db, const float *dout, int B, int Cout, size_t N)
{
	#pragma omp parallel for schedule(static) \
	    if ((size_t)B * Cout * N >= DM_NN_PAR_MIN)
	for (int co = 0; co < Cout; co++) {
		double sum = 0;
		for (int j = 0; j < B; j++)
			sum += channel_sum(dout + ((size_t)j * Cout + co) * N, N);
		db[co] += (float)sum;
	}
}

static void
conv_backward_direct(float *din, float *dw, const float *dout,
    const float *in, const float *w, int B, int Cin, int Cout, size_t N)
{
	for (int j = 0; j < B; j++) {
		const float *g = dout + (size_t)j * Cout * N;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin,
		    (int)N, 1.0f, g, (int)N, in + (size_t)j * Cin * N, (int)N,
		    1.0f, dw, Cin);
		if (din != NULL)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin,
			    (int)N, Cout, 1.0f, w, Cin, g, (int)N, 1.0f,
			    din + (size_t)j * Cin * N, (int)N);
	}
}

/* din += the input gradient of a stride-1 convolution, itself a
 * convolution of dout with the kernel transposed (Cin <-> Cout) and
 * flipped: din[c] = sum_o w[o, c, k-1-i, k-1-j] * dout[o] (padding k/2). */
static void
conv_backward_input_s1(float *din, const float *dout, const float *w,
    int B, int Cin, int H, int W, int Cout, int k, int chunk, float *work)
{
	size_t kk = (size_t)k * k;
	float *wt = work;

	#pragma omp parallel for schedule(static) \
	    if ((size_t)Cin * Cout * kk >= DM_NN_PAR_MIN)
	for (int c = 0; c < Cin; c++)
		for (int o = 0; o < Cout; o++)
			for (size_t t = 0; t < kk; t++)
				wt[((size_t)c * Cout + o) * kk + t] =
				    w[((size_t)o * Cin + c) * kk + kk - 1 - t];
	conv_chunked(din, dout, wt, NULL, 1, B, Cout, H, W, Cin, k, 1, chunk,
	    work + (size_t)Cin * Cout * kk);
}

void
dm_conv2d_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int B, int Cin, int H, int W, int Cout,
    int k, int s, float *work)
{
	int Ho = conv_out_size(H, k, s), Wo = conv_out_size(W, k, s);
	size_t N = (size_t)Ho * Wo, K = (size_t)Cin * k * k, per, nw;

	if (db != NULL)
		conv_bias_backward(db, dout, B, Cout, N);
	/* 3x3: the vector kernels (the input gradient is a convolution of
	 * dout); 1x1 layers run faster backward through the GEMMs */
	if (k == 3 && s == 1 && dm_convd_ok()) {
		dm_convd_dw3(dw, dout, in, B, Cin, H, W, Cout, work);
		if (din != NULL)
			dm_convd_forward(din, dout, w, NULL, 1, B, Cout, H, W,
			    Cin, k, 1, work);
		return;
	}
	if (conv_direct(k, s, N)) {
		conv_backward_direct(din, dw, dout, in, w, B, Cin, Cout, N);
		return;
	}
	if (conv_thin(Cin, Cout, s, 1)) {
		conv_thin_backward(din, dw, dout, in, w, B, Cin, H, W, Cout, k);
		return;
	}
	conv_sizes(Cin, H, W, Cout, k, s, &per, &nw);
	int chunk = conv_chunk(B, per);
	for (int b0 = 0; b0 < B; b0 += chunk) {
		int nb = B - b0 < chunk ? B - b0 : chunk;
		size_t ld = (size_t)nb * N;
		float *col = work, *tmp = work + K * ld;
		const float *g = dout + (size_t)b0 * Cout * N;
		#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)nb * Cout * N >= DM_NN_PAR_MIN)
		for (int j = 0; j < nb; j++)
		for (int co = 0; co < Cout; co++)
			memcpy(tmp + (size_t)co * ld + (size_t)j * N,
			    g + ((size_t)j * Cout + co) * N, N * sizeof *tmp);
		im2col(col, ld, in + (size_t)b0 * Cin * H * W, Cin, H, W, k, s,
		    Ho, Wo);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout,
		    (int)K, (int)ld, 1.0f, tmp, (int)ld, col, (int)ld, 1.0f, dw,
		    (int)K);
		if (din == NULL || s == 1)
			continue;
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K,
		    (int)ld, Cout, 1.0f, w, (int)K, tmp, (int)ld, 0.0f, col,
		    (int)ld);
		col2im(din + (size_t)b0 * Cin * H * W, col, ld, nb, Cin, H, W,
		    k, s, Ho, Wo);
	}
	if (din != NULL && s == 1)
		conv_backward_input_s1(din, dout, w, B, Cin, H, W, Cout, k,
		    chunk, work);
}
