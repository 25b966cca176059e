/* conv_direct.c — 3x3 stride-1 convolutions (padding 1, NCHW) computed
 * directly with 16-lane vectors, without a column matrix.
 *
 * An image plane is walked as a flat array of H W pixels in vectors of 16.
 * For output pixels p .. p + 15 and tap (i, j) the inputs sit at
 * p + (i - 1) W + (j - 1): one unaligned load, whose lanes that fall off
 * the image (left or right edge, first or last row, past the plane) are
 * masked to zero.  The masks, one 16-bit word per vector and tap, are
 * computed once per call.
 *
 *   forward  a tile of CO output channels by PV vectors of pixels keeps
 *            its CO PV sums in registers over all input channels and taps:
 *            per tap PV loads, CO broadcasts of weights, CO PV
 *            multiply-adds
 *   din      the same kernel on dout, with the weights transposed and
 *            flipped (din[c] = sum_o w[o, c, 2 - i, 2 - j] * dout[o])
 *   dw       for CW output channels and one input channel, 9 CW sums in
 *            registers over all images and pixels: per vector CW loads of
 *            dout, 9 of the input, 9 CW multiply-adds
 *
 * Each output (pixel, or weight) is computed by one thread in an order
 * that depends on the shape only, so results are the same whatever the
 * thread count.  The kernels are built for AVX-512 and used when the
 * machine has it; elsewhere dm_conv3_direct_ok() says no and conv.c uses
 * its columns. */
#include <stdint.h>
#include <string.h>

#include "nn_internal.h"

int dm_conv_direct_off;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(DM_NO_AVX512)
#include <immintrin.h>

#define TGT __attribute__((target("avx512f,fma")))
#define INL inline __attribute__((always_inline))

/* forward tile: output channels by vectors of pixels */
#define CO 4
#define PV 4
/* dw: output channels per task */
#define CW 3

static size_t
nvec(int H, int W)
{
	size_t n = ((size_t)H * W + 15) / 16;

	return (n + PV - 1) / PV * PV;
}

/* Floats of scratch: the packed weights, then the masks (9 tap masks and
 * one store mask per vector, as 16-bit words). */
size_t
dm_conv3_direct_work(int Cin, int H, int W, int Cout)
{
	return (size_t)Cin * Cout * 9 + (nvec(H, W) * 10 + 1) / 2;
}

int
dm_conv3_direct_ok(int Cin, int H, int W, int Cout)
{
	static int have = -1;

	(void)Cin;
	(void)Cout;
	if (have == -1) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("avx512f") != 0;
	}
	/* planes of fewer than 64 pixels waste too many lanes */
	return have && !dm_conv_direct_off && (size_t)H * W >= 64;
}

/* mk[v 10 + t]: lanes of vector v whose input at tap t is inside the
 * image; mk[v 10 + 9]: lanes that are pixels of the plane. */
static uint16_t *
masks(float *work, size_t wfloats, int H, int W)
{
	uint16_t *mk = (uint16_t *)(work + wfloats);
	size_t HW = (size_t)H * W, nv = nvec(H, W);

	for (size_t v = 0; v < nv; v++) {
		uint16_t m[10] = {0};
		for (int l = 0; l < 16; l++) {
			size_t p = v * 16 + (size_t)l;
			if (p >= HW)
				continue;
			int y = (int)(p / (size_t)W), x = (int)(p % (size_t)W);
			m[9] |= (uint16_t)(1u << l);
			for (int t = 0; t < 9; t++) {
				int iy = y + t / 3 - 1, ix = x + t % 3 - 1;
				if (iy >= 0 && iy < H && ix >= 0 && ix < W)
					m[t] |= (uint16_t)(1u << l);
			}
		}
		memcpy(mk + v * 10, m, sizeof m);
	}
	return mk;
}

/* wp: for each block of cw output channels from o0 (blocks of CO, then
 * single channels), at o0 Cin 9: [c][tap][cw].  flip: the input gradient's
 * weights, out channel o = the layer's input channel, in channel c = the
 * layer's output channel, taps reversed (w is then [Cin][Cout][3][3] read
 * as the layer's [Cout = Cin'][Cin = Cout'] ...). */
static void
pack(float *wp, const float *w, int Cout, int Cin, int flip)
{
	#pragma omp parallel for schedule(static) \
	    if ((size_t)Cout * Cin * 9 >= DM_NN_PAR_MIN)
	for (int o = 0; o < Cout; o++) {
		int o0 = Cout - o <= Cout % CO ? o : o / CO * CO;
		int cw = Cout - o <= Cout % CO ? 1 : CO;
		float *dst = wp + (size_t)o0 * Cin * 9 + (size_t)(o - o0);
		for (int c = 0; c < Cin; c++)
			for (int t = 0; t < 9; t++)
				dst[((size_t)c * 9 + t) * cw] = flip ?
				    w[((size_t)c * Cout + o) * 9 + 8 - t] :
				    w[((size_t)o * Cin + c) * 9 + t];
	}
}

static INL TGT void
fwd_tile(float *out, const float *in, const float *wp, const float *b,
    int add, int Cin, size_t HW, const int *off, const uint16_t *mk,
    size_t v0, const int cw, const int pv)
{
	__m512 acc[CO][PV];

	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++)
		#pragma GCC unroll 16
		for (int v = 0; v < pv; v++)
			acc[o][v] = _mm512_setzero_ps();
	for (int c = 0; c < Cin; c++) {
		const float *src = in + (size_t)c * HW + v0 * 16;
		const float *wc = wp + (size_t)c * 9 * cw;
		#pragma GCC unroll 16
		for (int t = 0; t < 9; t++) {
			__m512 x[PV];
			#pragma GCC unroll 16
			for (int v = 0; v < pv; v++)
				x[v] = _mm512_maskz_loadu_ps(mk[(v0 + v) * 10 + t],
				    src + v * 16 + off[t]);
			#pragma GCC unroll 16
			for (int o = 0; o < cw; o++) {
				__m512 wv = _mm512_set1_ps(wc[t * cw + o]);
				#pragma GCC unroll 16
				for (int v = 0; v < pv; v++)
					acc[o][v] = _mm512_fmadd_ps(wv, x[v],
					    acc[o][v]);
			}
		}
	}
	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++) {
		float *dst = out + (size_t)o * HW + v0 * 16;
		__m512 bv = _mm512_set1_ps(b != NULL ? b[o] : 0.0f);
		#pragma GCC unroll 16
		for (int v = 0; v < pv; v++) {
			__mmask16 m = mk[(v0 + v) * 10 + 9];
			__m512 r = _mm512_add_ps(acc[o][v], bv);
			if (add)
				r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m,
				    dst + v * 16));
			_mm512_mask_storeu_ps(dst + v * 16, m, r);
		}
	}
}

#define FWD_TILE(name, cw, pv)                                          \
static TGT void                                                         \
name(float *out, const float *in, const float *wp, const float *b,      \
    int add, int Cin, size_t HW, const int *off, const uint16_t *mk,    \
    size_t v0)                                                          \
{                                                                       \
	fwd_tile(out, in, wp, b, add, Cin, HW, off, mk, v0, cw, pv);    \
}
FWD_TILE(fwd_tile44, CO, PV)
FWD_TILE(fwd_tile14, 1, PV)
FWD_TILE(fwd_tile41, CO, 1)
FWD_TILE(fwd_tile11, 1, 1)

static void
offsets(int *off, int W)
{
	#pragma GCC unroll 16
	for (int t = 0; t < 9; t++)
		off[t] = (t / 3 - 1) * W + t % 3 - 1;
}

/* out = (add ? out : 0) + conv(in, w) + b; flip: w is a layer's
 * [Cin = Cout here][Cout = Cin here][3][3] and the convolution is its
 * input gradient. */
void
dm_conv3_direct_forward(float *out, const float *in, const float *w,
    const float *b, int add, int B, int Cin, int H, int W, int Cout,
    int flip, float *work)
{
	size_t HW = (size_t)H * W, nv = (HW + 15) / 16, nft = nv / PV;
	size_t npt = nft + nv % PV;
	int nfull = Cout / CO, ncb = nfull + Cout % CO, off[9];
	uint16_t *mk = masks(work, (size_t)Cin * Cout * 9, H, W);
	size_t ntask = (size_t)B * npt * (size_t)ncb;

	offsets(off, W);
	pack(work, w, Cout, Cin, flip);
	/* tasks: images, then tiles of PV vectors (and the last vectors
	 * one by one), then blocks of output channels (CO, then single) */
	#pragma omp parallel for schedule(static) \
	    if (ntask * PV * 16 * CO * (size_t)Cin * 9 >= 16 * DM_NN_PAR_MIN)
	for (size_t task = 0; task < ntask; task++) {
		size_t j = task / (npt * (size_t)ncb), r = task % (npt * ncb);
		size_t pt = r / (size_t)ncb;
		size_t v0 = pt < nft ? pt * PV : nft * PV + (pt - nft);
		int cb = (int)(r % (size_t)ncb), whole = pt < nft;
		int o0 = cb < nfull ? cb * CO : nfull * CO + (cb - nfull);
		const float *src = in + j * (size_t)Cin * HW;
		float *dst = out + (j * (size_t)Cout + (size_t)o0) * HW;
		const float *wp = work + (size_t)o0 * Cin * 9;
		const float *bb = b != NULL ? b + o0 : NULL;
		if (cb < nfull && whole)
			fwd_tile44(dst, src, wp, bb, add, Cin, HW, off, mk, v0);
		else if (cb < nfull)
			fwd_tile41(dst, src, wp, bb, add, Cin, HW, off, mk, v0);
		else if (whole)
			fwd_tile14(dst, src, wp, bb, add, Cin, HW, off, mk, v0);
		else
			fwd_tile11(dst, src, wp, bb, add, Cin, HW, off, mk, v0);
	}
}

static INL TGT void
dw_task(float *dw, const float *dout, const float *in, int B, int Cin,
    int Cout, size_t HW, size_t nv, const int *off, const uint16_t *mk,
    const int cw)
{
	__m512 acc[CW][9];

	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++)
		#pragma GCC unroll 16
		for (int t = 0; t < 9; t++)
			acc[o][t] = _mm512_setzero_ps();
	for (int j = 0; j < B; j++) {
		const float *g = dout + (size_t)j * Cout * HW;
		const float *src = in + (size_t)j * Cin * HW;
		for (size_t v = 0; v < nv; v++) {
			const uint16_t *m = mk + v * 10;
			__m512 gv[CW];
			#pragma GCC unroll 16
			for (int o = 0; o < cw; o++)
				gv[o] = _mm512_maskz_loadu_ps(m[9],
				    g + (size_t)o * HW + v * 16);
			#pragma GCC unroll 16
			for (int t = 0; t < 9; t++) {
				__m512 x = _mm512_maskz_loadu_ps(m[t],
				    src + v * 16 + off[t]);
				#pragma GCC unroll 16
				for (int o = 0; o < cw; o++)
					acc[o][t] = _mm512_fmadd_ps(gv[o], x,
					    acc[o][t]);
			}
		}
	}
	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++)
		#pragma GCC unroll 16
		for (int t = 0; t < 9; t++)
			dw[(size_t)o * Cin * 9 + (size_t)t] +=
			    _mm512_reduce_add_ps(acc[o][t]);
}

static TGT void
dw_taskw(float *dw, const float *dout, const float *in, int B, int Cin,
    int Cout, size_t HW, size_t nv, const int *off, const uint16_t *mk)
{
	dw_task(dw, dout, in, B, Cin, Cout, HW, nv, off, mk, CW);
}

static TGT void
dw_task1(float *dw, const float *dout, const float *in, int B, int Cin,
    int Cout, size_t HW, size_t nv, const int *off, const uint16_t *mk)
{
	dw_task(dw, dout, in, B, Cin, Cout, HW, nv, off, mk, 1);
}

/* dw (Cout, Cin, 3, 3) += the weight gradient; work as for forward. */
void
dm_conv3_direct_dw(float *dw, const float *dout, const float *in, int B,
    int Cin, int H, int W, int Cout, float *work)
{
	size_t HW = (size_t)H * W, nv = ((size_t)H * W + 15) / 16;
	int nfull = Cout / CW, ncb = nfull + Cout % CW, off[9];
	uint16_t *mk = masks(work, (size_t)Cin * Cout * 9, H, W);
	size_t ntask = (size_t)ncb * Cin;

	offsets(off, W);
	#pragma omp parallel for schedule(static) \
	    if (ntask * nv * 16 * CW * 9 * (size_t)B >= 16 * DM_NN_PAR_MIN)
	for (size_t task = 0; task < ntask; task++) {
		int cb = (int)(task / (size_t)Cin), c = (int)(task % (size_t)Cin);
		int o0 = cb < nfull ? cb * CW : nfull * CW + (cb - nfull);
		float *d = dw + ((size_t)o0 * Cin + (size_t)c) * 9;
		const float *g = dout + (size_t)o0 * HW;
		const float *src = in + (size_t)c * HW;
		if (cb < nfull)
			dw_taskw(d, g, src, B, Cin, Cout, HW, nv, off, mk);
		else
			dw_task1(d, g, src, B, Cin, Cout, HW, nv, off, mk);
	}
}

#else

size_t
dm_conv3_direct_work(int Cin, int H, int W, int Cout)
{
	(void)Cin;
	(void)H;
	(void)W;
	(void)Cout;
	return 0;
}

int
dm_conv3_direct_ok(int Cin, int H, int W, int Cout)
{
	(void)Cin;
	(void)H;
	(void)W;
	(void)Cout;
	return 0;
}

void
dm_conv3_direct_forward(float *out, const float *in, const float *w,
    const float *b, int add, int B, int Cin, int H, int W, int Cout,
    int flip, float *work)
{
	(void)out; (void)in; (void)w; (void)b; (void)add; (void)B; (void)Cin;
	(void)H; (void)W; (void)Cout; (void)flip; (void)work;
}

void
dm_conv3_direct_dw(float *dw, const float *dout, const float *in, int B,
    int Cin, int H, int W, int Cout, float *work)
{
	(void)dw; (void)dout; (void)in; (void)B; (void)Cin; (void)H; (void)W;
	(void)Cout; (void)work;
}

#endif
