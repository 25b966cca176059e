/* nn_serial.c — the linear layer for a few rows on the calling thread.
 *
 * At batch 1 (sampling one trajectory) a network is a chain of
 * matrix-vector products of a few microseconds each: a BLAS sgemm call
 * packs the whole weight matrix and starts its thread team every time,
 * which costs more than the product.  Here each weight row is read once
 * for all the rows of the batch, dotted with them in the order of
 * memory, with no allocation and no thread.  The kernel is compiled for
 * three instruction sets and picked at load time (GCC's target_clones),
 * so a build for any x86-64 still uses the wide vectors of the machine it
 * runs on. */
#include <stddef.h>
#include <stdint.h>

#include "nn_internal.h"

#define CLONES DM_CLONES

/* 16 floats, loaded from any float address.  Lane-wise arithmetic on
 * these is IEEE arithmetic per lane whatever the registers' width, so
 * the three clones differ only where contraction to FMA is available. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t i16 __attribute__((vector_size(64)));

#define LO8  {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}
#define HI8  {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}
#define LO4  {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}
#define HI4  {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31}
#define LO2  {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29}
#define HI2  {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31}
#define LO1  {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}
#define HI1  {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}

/* FOLD(a, b, lo, hi) with halves h: lane i of each h-lane group of the
 * result is the pairwise sum of the two halves of a group of 2h lanes of
 * a (the first half of the result) or of b (the second). */
#define FOLD(a, b, lo, hi) \
	(__builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi))

/* The sum of the 16 lanes of each of a0 .. a7, by halving: lanes i and
 * i + 8, then i and i + 4, i + 2, i + 1.  Done for eight vectors at once
 * by transposing as it folds; each sum is added in the same order as
 * hsum() adds one vector's lanes. */
static inline __attribute__((always_inline)) void
hsum8(v16 a0, v16 a1, v16 a2, v16 a3, v16 a4, v16 a5, v16 a6, v16 a7,
    float out[8])
{
	const i16 lo8 = LO8, hi8 = HI8, lo4 = LO4, hi4 = HI4;
	const i16 lo2 = LO2, hi2 = HI2, lo1 = LO1, hi1 = HI1;
	v16 b0 = FOLD(a0, a1, lo8, hi8), b1 = FOLD(a2, a3, lo8, hi8);
	v16 b2 = FOLD(a4, a5, lo8, hi8), b3 = FOLD(a6, a7, lo8, hi8);
	v16 c0 = FOLD(b0, b1, lo4, hi4), c1 = FOLD(b2, b3, lo4, hi4);
	v16 d = FOLD(c0, c1, lo2, hi2);
	v16 e = FOLD(d, d, lo1, hi1);
	for (int i = 0; i < 8; i++)
		out[i] = e[i];
}

static inline __attribute__((always_inline)) float
hsum(v16 a)
{
	float h8[8], h4[4], h2[2];

	for (int i = 0; i < 8; i++)
		h8[i] = a[i] + a[i + 8];
	for (int i = 0; i < 4; i++)
		h4[i] = h8[i] + h8[i + 4];
	for (int i = 0; i < 2; i++)
		h2[i] = h4[i] + h4[i + 2];
	return h2[0] + h2[1];
}

/* One output: the sum over k < din of w[k] x[k] in 16 lanes (lane l
 * takes k = l mod 16), the lanes summed by halving, then the last din mod
 * 16 products one by one, then the bias.  hsum8 gives eight outputs in
 * exactly this order. */
static inline float
dot_tail(float s, const float *restrict w, const float *restrict x, int k0,
    int din)
{
	for (int k = k0; k < din; k++)
		s += w[k] * x[k];
	return s;
}

/* o[0..7]: the eight sums a0 .. a7 of weight rows w .. w + 7 din with
 * x, each completed by its tail and bias b[r] (b may be NULL). */
static inline __attribute__((always_inline)) void
finish8(float *restrict o, const float *restrict w, const float *restrict x,
    const float *restrict b, v16 a0, v16 a1, v16 a2, v16 a3, v16 a4, v16 a5,
    v16 a6, v16 a7, int k16, int din)
{
	float s[8];

	hsum8(a0, a1, a2, a3, a4, a5, a6, a7, s);
	for (int r = 0; r < 8; r++) {
		float v = dot_tail(s[r], w + (size_t)r * din, x, k16, din);
		o[r] = b ? v + b[r] : v;
	}
}

/* Eight weight rows at a time, each read once for all n rows of in: at
 * batch 1 this streams the weights at the cache's rate with 8
 * independent sums; for many rows (the time path of several t at once,
 * dm_mlp_prepare) the eight rows stay in L1. */
CLONES __attribute__((optimize("fp-contract=fast"))) void
dm_linear_rows_serial(float *restrict out, size_t ostride,
    const float *restrict in, const float *restrict w,
    const float *restrict b, int n, int din, int dout)
{
	int k16 = din / 16 * 16, j = 0;

	for (; j + 8 <= dout; j += 8) {
		const float *restrict wj = w + (size_t)j * din;
		int i = 0;
		/* two rows of in at a time when there are several: 16 sums,
		 * each weight vector loaded once for both */
		for (; i + 2 <= n; i += 2) {
			const float *restrict x = in + (size_t)i * din;
			const float *restrict y = x + din;
			v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0},
			    a5 = {0}, a6 = {0}, a7 = {0};
			v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0},
			    c5 = {0}, c6 = {0}, c7 = {0};
			for (int k = 0; k < k16; k += 16) {
				v16 xv = *(const v16 *)(x + k);
				v16 yv = *(const v16 *)(y + k);
				v16 wv;
#define ROW(r, a, c) (wv = *(const v16 *)(wj + (size_t)(r) * din + k), \
				a += wv * xv, c += wv * yv)
				ROW(0, a0, c0), ROW(1, a1, c1), ROW(2, a2, c2);
				ROW(3, a3, c3), ROW(4, a4, c4), ROW(5, a5, c5);
				ROW(6, a6, c6), ROW(7, a7, c7);
#undef ROW
			}
			finish8(out + (size_t)i * ostride + j, wj, x, b ? b + j :
			    NULL, a0, a1, a2, a3, a4, a5, a6, a7, k16, din);
			finish8(out + (size_t)(i + 1) * ostride + j, wj, y, b ?
			    b + j : NULL, c0, c1, c2, c3, c4, c5, c6, c7, k16,
			    din);
		}
		for (; i < n; i++) {
			const float *restrict x = in + (size_t)i * din;
			v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0},
			    a5 = {0}, a6 = {0}, a7 = {0};
			for (int k = 0; k < k16; k += 16) {
				v16 xv = *(const v16 *)(x + k);
#define ROW(r) (*(const v16 *)(wj + (size_t)(r) * din + k) * xv)
				a0 += ROW(0), a1 += ROW(1), a2 += ROW(2);
				a3 += ROW(3), a4 += ROW(4), a5 += ROW(5);
				a6 += ROW(6), a7 += ROW(7);
#undef ROW
			}
			finish8(out + (size_t)i * ostride + j, wj, x, b ? b + j :
			    NULL, a0, a1, a2, a3, a4, a5, a6, a7, k16, din);
		}
	}
	for (; j < dout; j++) {
		const float *restrict wj = w + (size_t)j * din;
		for (int i = 0; i < n; i++) {
			const float *restrict x = in + (size_t)i * din;
			v16 a = {0};
			for (int k = 0; k < k16; k += 16)
				a += *(const v16 *)(wj + k) * *(const v16 *)(x + k);
			float v = dot_tail(hsum(a), wj, x, k16, din);
			out[(size_t)i * ostride + j] = b ? v + b[j] : v;
		}
	}
}

void
dm_linear_forward_serial(float *out, const float *in, const float *w,
    const float *b, int n, int din, int dout)
{
	dm_linear_rows_serial(out, (size_t)dout, in, w, b, n, din, dout);
}

/*
 * The layer for many rows at once, the rows as columns: inT (din, ld)
 * holds input row c in column c, outT (dout, ld) receives output row c in
 * column c, for the columns [c0, c1) (multiples of 16, c1 <= ld).  Lanes
 * run across rows, so every output is one chain of fused multiply-adds
 * over k from its bias, and there is nothing to sum across lanes: eight
 * weight rows against 32 columns is 16 independent chains per k for 10
 * loads.  For the time path of many t (dm_mlp_prepare).
 */
#define BR(s) ((v16){0} + (s))
#define ACC2(r) v16 p##r = BR(b ? b[j + r] : 0.0f), q##r = p##r
#define STEP2(r) (wv = BR(w0[(size_t)(r) * din + k]), p##r += wv * x0, \
	q##r += wv * x1)
#define STORE2(r) (*(v16 *)(outT + (size_t)(j + r) * ld + c) = p##r, \
	*(v16 *)(outT + (size_t)(j + r) * ld + c + 16) = q##r)
#define ACC1(r) v16 p##r = BR(b ? b[j + r] : 0.0f)
#define STEP1(r) (p##r += BR(w0[(size_t)(r) * din + k]) * x0)
#define STORE1(r) (*(v16 *)(outT + (size_t)(j + r) * ld + c) = p##r)

CLONES __attribute__((optimize("fp-contract=fast"))) void
dm_linear_cols_serial(float *restrict outT, const float *restrict inT,
    size_t ld, int c0, int c1, const float *restrict w,
    const float *restrict b, int din, int dout)
{
	int j = 0;

	for (; j + 8 <= dout; j += 8) {
		const float *restrict w0 = w + (size_t)j * din;
		int c = c0;
		for (; c + 32 <= c1; c += 32) {
			ACC2(0); ACC2(1); ACC2(2); ACC2(3);
			ACC2(4); ACC2(5); ACC2(6); ACC2(7);
			for (int k = 0; k < din; k++) {
				v16 x0 = *(const v16 *)(inT + (size_t)k * ld + c);
				v16 x1 = *(const v16 *)(inT + (size_t)k * ld + c +
				    16);
				v16 wv;
				STEP2(0), STEP2(1), STEP2(2), STEP2(3);
				STEP2(4), STEP2(5), STEP2(6), STEP2(7);
			}
			STORE2(0), STORE2(1), STORE2(2), STORE2(3);
			STORE2(4), STORE2(5), STORE2(6), STORE2(7);
		}
		for (; c < c1; c += 16) {
			ACC1(0); ACC1(1); ACC1(2); ACC1(3);
			ACC1(4); ACC1(5); ACC1(6); ACC1(7);
			for (int k = 0; k < din; k++) {
				v16 x0 = *(const v16 *)(inT + (size_t)k * ld + c);
				STEP1(0), STEP1(1), STEP1(2), STEP1(3);
				STEP1(4), STEP1(5), STEP1(6), STEP1(7);
			}
			STORE1(0), STORE1(1), STORE1(2), STORE1(3);
			STORE1(4), STORE1(5), STORE1(6), STORE1(7);
		}
	}
	for (; j < dout; j++) {
		const float *restrict w0 = w + (size_t)j * din;
		for (int c = c0; c < c1; c += 16) {
			ACC1(0);
			for (int k = 0; k < din; k++) {
				v16 x0 = *(const v16 *)(inT + (size_t)k * ld + c);
				STEP1(0);
			}
			STORE1(0);
		}
	}
}
