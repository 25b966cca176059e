/* conv_direct.c — stride-1 convolutions, 3x3 (padding 1) or 1x1, NCHW,
 * computed directly with 16-lane vectors, without a column matrix.
 *
 * An image plane is walked as a flat array of H W pixels in vectors of 16.
 * For output pixels p .. p + 15 and tap (i, j) the inputs sit at
 * p + (i - 1) W + (j - 1): one unaligned load, whose lanes that fall off
 * the image (left or right edge, first or last row, past the plane) are
 * masked to zero.  The masks, one 16-bit word per vector and tap, are
 * computed once per call.  Planes of fewer than FLAT_MIN pixels (7x7)
 * would waste lanes: the images of a chunk are then copied side by side,
 * [C][image][pixel], and walked as one plane whose masks also stop at the
 * images' edges.
 *
 *   forward  a tile of CO output channels by PV vectors of pixels keeps
 *            its CO PV sums in registers over all input channels and taps:
 *            per tap PV loads, CO broadcasts of weights (read where they
 *            are), CO PV multiply-adds; a 1x1 kernel is the centre tap
 *   din      the same kernel on dout, with the weights transposed and
 *            flipped (din[c] = sum_o w[o, c, 2 - i, 2 - j] * dout[o])
 *   dw       for CW output channels and one input channel, 9 CW sums in
 *            registers over all images and pixels: per vector CW loads of
 *            dout, 9 of the input, 9 CW multiply-adds
 *
 * Each output (pixel, or weight) is computed by one thread in an order
 * that depends on the shape only, so results are the same whatever the
 * thread count.  The kernels are built for AVX-512 and used when the
 * machine has it; elsewhere dm_convd_ok() says no and conv.c uses its
 * columns. */
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
/* planes of fewer pixels are laid side by side, images per chunk so that
 * a chunk has about FLAT_PIXELS */
#define FLAT_MIN 128
#define FLAT_PIXELS 4096

/* A flat plane: L pixels, images of HW pixels (rows of W) one after
 * another; nv vectors; off: where each tap's inputs start relative to
 * the output pixel; mk[v 10 + t]: lanes of vector v whose input at tap t
 * is inside its image, mk[v 10 + 9]: lanes that are pixels. */
struct plane {
	size_t L, nv;
	int off[9];
	uint16_t *mk;
};

static size_t
flat_chunk(int B, size_t HW)
{
	size_t nb = HW >= FLAT_MIN ? 1 : FLAT_PIXELS / HW;

	if (nb < 1)
		nb = 1;
	return nb < (size_t)B ? nb : (size_t)B;
}

/* Floats of scratch: with images side by side, the inputs and outputs of
 * a chunk in that layout; then the masks (16-bit words). */
size_t
dm_convd_work(int B, int Cin, int H, int W, int Cout)
{
	size_t HW = (size_t)H * W, nb = flat_chunk(B, HW), L = nb * HW;
	size_t n = nb > 1 ? ((size_t)Cin + (size_t)Cout) * L : 0;

	return n + ((L + 15) / 16 * 10 + 1) / 2;
}

int
dm_convd_ok(void)
{
	static int have = -1;

	if (have == -1) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("avx512f") != 0;
	}
	return have && !dm_conv_direct_off;
}

static void
plane_init(struct plane *pl, uint16_t *mk, size_t nb, int H, int W)
{
	size_t HW = (size_t)H * W;

	pl->L = nb * HW;
	pl->nv = (pl->L + 15) / 16;
	pl->mk = mk;
	for (int t = 0; t < 9; t++)
		pl->off[t] = (t / 3 - 1) * W + t % 3 - 1;
	/* (y, x): the pixel of lane q, walked without divisions */
	int y = 0, x = 0;
	for (size_t v = 0; v < pl->nv; v++) {
		uint16_t m[10] = {0};
		for (int l = 0; l < 16 && v * 16 + (size_t)l < pl->L; l++) {
			m[9] |= (uint16_t)(1u << l);
			for (int t = 0; t < 9; t++) {
				int iy = y + t / 3 - 1, ix = x + t % 3 - 1;
				if (iy >= 0 && iy < H && ix >= 0 && ix < W)
					m[t] |= (uint16_t)(1u << l);
			}
			if (++x == W) {
				x = 0;
				if (++y == H)
					y = 0;
			}
		}
		memcpy(mk + v * 10, m, sizeof m);
	}
}

/* acc[o][v] += w[o so + wt] x[v] for one tap t: x[v] the inputs of the
 * tap for vector v of the tile */
static INL TGT void
fwd_tap(__m512 acc[CO][PV], const float *src, const float *wc, size_t so,
    const uint16_t *mk, const int *off, const int t, const int wt,
    const int cw, const int pv)
{
	__m512 x[PV];

	#pragma GCC unroll 16
	for (int v = 0; v < pv; v++)
		x[v] = _mm512_maskz_loadu_ps(mk[v * 10 + t], src + v * 16 +
		    off[t]);
	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++) {
		__m512 wv = _mm512_set1_ps(wc[(size_t)o * so + (size_t)wt]);
		#pragma GCC unroll 16
		for (int v = 0; v < pv; v++)
			acc[o][v] = _mm512_fmadd_ps(wv, x[v], acc[o][v]);
	}
}

/* Output channels o .. o + cw - 1 (planes L apart) at vectors v0 ..
 * v0 + pv - 1 of the plane: the weight of (o, c, tap t) is
 * w[o so + c sc + t], or of tap 8 - t with flip. */
static INL TGT void
fwd_tile(float *out, const float *in, const float *w, size_t so, size_t sc,
    const float *b, int add, int Cin, const struct plane *pl, size_t v0,
    const int cw, const int pv, const int flip, const int k1)
{
	__m512 acc[CO][PV];
	const uint16_t *mk = pl->mk + v0 * 10;
	size_t L = pl->L;

	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++)
		#pragma GCC unroll 16
		for (int v = 0; v < pv; v++)
			acc[o][v] = _mm512_setzero_ps();
	for (int c = 0; c < Cin; c++) {
		const float *src = in + (size_t)c * L + v0 * 16;
		const float *wc = w + (size_t)c * sc;
		/* a 1x1 kernel is the centre tap alone */
		if (k1)
			fwd_tap(acc, src, wc, so, mk, pl->off, 4, 0, cw, pv);
		else
			#pragma GCC unroll 16
			for (int t = 0; t < 9; t++)
				fwd_tap(acc, src, wc, so, mk, pl->off, t,
				    flip ? 8 - t : t, cw, pv);
	}
	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++) {
		float *dst = out + (size_t)o * L + v0 * 16;
		__m512 bv = _mm512_set1_ps(b != NULL ? b[o] : 0.0f);
		#pragma GCC unroll 16
		for (int v = 0; v < pv; v++) {
			__mmask16 m = mk[v * 10 + 9];
			__m512 r = _mm512_add_ps(acc[o][v], bv);
			if (add)
				r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m,
				    dst + v * 16));
			_mm512_mask_storeu_ps(dst + v * 16, m, r);
		}
	}
}

typedef void fwd_fn(float *, const float *, const float *, size_t, size_t,
    const float *, int, int, const struct plane *, size_t);

#define FWD_TILE(name, cw, pv, flip, k1)                                 \
static TGT void                                                         \
name(float *out, const float *in, const float *w, size_t so, size_t sc, \
    const float *b, int add, int Cin, const struct plane *pl, size_t v0) \
{                                                                       \
	fwd_tile(out, in, w, so, sc, b, add, Cin, pl, v0, cw, pv, flip, \
	    k1);                                                        \
}
#define FWD_TILES(k1, s)                                                 \
FWD_TILE(fwd_44##s, CO, PV, 0, k1)                                       \
FWD_TILE(fwd_14##s, 1, PV, 0, k1)                                        \
FWD_TILE(fwd_41##s, CO, 1, 0, k1)                                        \
FWD_TILE(fwd_11##s, 1, 1, 0, k1)                                         \
FWD_TILE(fwd_44f##s, CO, PV, 1, k1)                                      \
FWD_TILE(fwd_14f##s, 1, PV, 1, k1)                                       \
FWD_TILE(fwd_41f##s, CO, 1, 1, k1)                                       \
FWD_TILE(fwd_11f##s, 1, 1, 1, k1)
FWD_TILES(0, _3)
FWD_TILES(1, _1)

/* [1x1][blocks of CO output channels or one][whole tile or one vector]
 * [flip] */
static fwd_fn *const fwd_tiles[2][2][2][2] = {
	{{{fwd_44_3, fwd_44f_3}, {fwd_41_3, fwd_41f_3}},
	 {{fwd_14_3, fwd_14f_3}, {fwd_11_3, fwd_11f_3}}},
	{{{fwd_44_1, fwd_44f_1}, {fwd_41_1, fwd_41f_1}},
	 {{fwd_14_1, fwd_14f_1}, {fwd_11_1, fwd_11f_1}}},
};

/* out (Cout planes L apart) = (add ? out : 0) + conv(in (Cin planes)) + b
 * for nimg groups of planes (images), ostride and istride floats apart. */
static void
fwd_planes(float *out, size_t ostride, const float *in, size_t istride,
    int nimg, const float *w, const float *b, int add, int Cin, int Cout,
    int k, int flip, const struct plane *pl)
{
	size_t nft = pl->nv / PV, npt = nft + pl->nv % PV;
	int nfull = Cout / CO, ncb = nfull + Cout % CO;
	size_t ntask = (size_t)nimg * npt * (size_t)ncb, kk = (size_t)k * k;
	/* the layer's w is [Cout][Cin][k][k]; flipped, [Cin][Cout][k][k] */
	size_t so = flip ? kk : (size_t)Cin * kk;
	size_t sc = flip ? (size_t)Cout * kk : kk;

	/* tasks: images, then tiles of PV vectors (and the last vectors one
	 * by one), then blocks of output channels (CO, then single) */
	#pragma omp parallel for schedule(static) \
	    if (ntask * PV * 16 * CO * (size_t)Cin * kk >= 16 * DM_NN_PAR_MIN)
	for (size_t task = 0; task < ntask; task++) {
		size_t j = task / (npt * (size_t)ncb), r = task % (npt * ncb);
		size_t pt = r / (size_t)ncb;
		size_t v0 = pt < nft ? pt * PV : nft * PV + (pt - nft);
		int cb = (int)(r % (size_t)ncb);
		int o0 = cb < nfull ? cb * CO : nfull * CO + (cb - nfull);
		fwd_tiles[k == 1][cb >= nfull][pt >= nft][flip](
		    out + j * ostride + (size_t)o0 * pl->L, in + j * istride,
		    w + (size_t)o0 * so, so, sc, b != NULL ? b + o0 : NULL,
		    add, Cin, pl, v0);
	}
}

/* dst [C][jj HW + p] = src [j0 + jj][C][p] for nb images */
static void
to_flat(float *dst, const float *src, size_t nb, int C, size_t HW)
{
	#pragma omp parallel for schedule(static) \
	    if (nb * (size_t)C * HW >= DM_NN_PAR_MIN)
	for (int c = 0; c < C; c++)
		for (size_t jj = 0; jj < nb; jj++)
			memcpy(dst + (size_t)c * nb * HW + jj * HW,
			    src + (jj * (size_t)C + (size_t)c) * HW,
			    HW * sizeof *dst);
}

/* dst [j][C][p] = (add ? dst : 0) + src [C][jj HW + p] */
static void
from_flat(float *dst, const float *src, size_t nb, int C, size_t HW,
    int add)
{
	#pragma omp parallel for schedule(static) \
	    if (nb * (size_t)C * HW >= DM_NN_PAR_MIN)
	for (int c = 0; c < C; c++)
		for (size_t jj = 0; jj < nb; jj++) {
			float *d = dst + (jj * (size_t)C + (size_t)c) * HW;
			const float *q = src + (size_t)c * nb * HW + jj * HW;
			if (add)
				for (size_t p = 0; p < HW; p++)
					d[p] += q[p];
			else
				memcpy(d, q, HW * sizeof *d);
		}
}

/* out = (add ? out : 0) + conv(in, w) + b, kernel k x k (3 or 1); flip: w
 * is [Cin = Cout here][Cout = Cin here][k][k], a layer's, and the
 * convolution is its input gradient. */
void
dm_convd_forward(float *out, const float *in, const float *w,
    const float *b, int add, int B, int Cin, int H, int W, int Cout, int k,
    int flip, float *work)
{
	size_t HW = (size_t)H * W, nb = flat_chunk(B, HW), L = nb * HW;
	float *tin = work, *tout = work + (size_t)Cin * L;
	struct plane pl;

	if (nb == 1) {
		plane_init(&pl, (uint16_t *)work, 1, H, W);
		fwd_planes(out, (size_t)Cout * HW, in, (size_t)Cin * HW, B, w,
		    b, add, Cin, Cout, k, flip, &pl);
		return;
	}
	plane_init(&pl, (uint16_t *)(work + ((size_t)Cin + (size_t)Cout) * L),
	    nb, H, W);
	for (size_t j0 = 0; j0 < (size_t)B; j0 += nb) {
		size_t n = (size_t)B - j0 < nb ? (size_t)B - j0 : nb;
		struct plane part = pl;
		if (n < nb)
			plane_init(&part, pl.mk, n, H, W);
		to_flat(tin, in + j0 * Cin * HW, n, Cin, HW);
		fwd_planes(tout, 0, tin, 0, 1, w, b, 0, Cin, Cout, k, flip,
		    &part);
		from_flat(out + j0 * Cout * HW, tout, n, Cout, HW, add);
	}
}

/* dw[o, c, t] over output channels o .. o + cw - 1, one input channel:
 * sums over nimg groups of planes (g: gstride, in: istride apart) */
static INL TGT void
dw_task(float *dw, size_t so, const float *g, size_t gstride,
    const float *in, size_t istride, int nimg, const struct plane *pl,
    const int cw)
{
	__m512 acc[CW][9];
	size_t L = pl->L;

	#pragma GCC unroll 16
	for (int o = 0; o < cw; o++)
		#pragma GCC unroll 16
		for (int t = 0; t < 9; t++)
			acc[o][t] = _mm512_setzero_ps();
	for (int j = 0; j < nimg; j++) {
		const float *gj = g + (size_t)j * gstride;
		const float *src = in + (size_t)j * istride;
		for (size_t v = 0; v < pl->nv; v++) {
			const uint16_t *m = pl->mk + v * 10;
			__m512 gv[CW];
			#pragma GCC unroll 16
			for (int o = 0; o < cw; o++)
				gv[o] = _mm512_maskz_loadu_ps(m[9],
				    gj + (size_t)o * L + v * 16);
			#pragma GCC unroll 16
			for (int t = 0; t < 9; t++) {
				__m512 x = _mm512_maskz_loadu_ps(m[t],
				    src + v * 16 + pl->off[t]);
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
			dw[(size_t)o * so + (size_t)t] +=
			    _mm512_reduce_add_ps(acc[o][t]);
}

typedef void dw_fn(float *, size_t, const float *, size_t, const float *,
    size_t, int, const struct plane *);

#define DW_TASK(name, cw)                                                \
static TGT void                                                         \
name(float *dw, size_t so, const float *g, size_t gstride,              \
    const float *in, size_t istride, int nimg, const struct plane *pl)  \
{                                                                       \
	dw_task(dw, so, g, gstride, in, istride, nimg, pl, cw);         \
}
DW_TASK(dw_3, CW)
DW_TASK(dw_2, 2)
DW_TASK(dw_1, 1)

/* dw += the weight gradient over nimg groups of planes, in blocks of
 * images whose dout planes fit in about DW_BLOCK_BYTES (the L2 cache):
 * within a block the tasks go input channel by input channel, each over
 * all blocks of output channels, so one input plane and the block's dout
 * are read from the cache; the blocks' sums are added to dw in order. */
#define DW_BLOCK_BYTES ((size_t)512 << 10)

static void
dw_planes(float *dw, const float *g, size_t gstride, const float *in,
    size_t istride, int nimg, int Cin, int Cout, const struct plane *pl)
{
	int nfull = Cout / CW, rest = Cout % CW, ncb = nfull + (rest > 0);
	size_t ntask = (size_t)ncb * Cin, so = (size_t)Cin * 9;
	size_t per = (size_t)Cout * pl->L * sizeof(float);
	int nbk = per * (size_t)nimg <= DW_BLOCK_BYTES ? nimg :
	    (int)(DW_BLOCK_BYTES / per > 0 ? DW_BLOCK_BYTES / per : 1);

	for (int j0 = 0; j0 < nimg; j0 += nbk) {
		int n = nimg - j0 < nbk ? nimg - j0 : nbk;
		const float *gb = g + (size_t)j0 * gstride;
		const float *ib = in + (size_t)j0 * istride;
		#pragma omp parallel for schedule(static) \
		    if (ntask * pl->nv * 16 * CW * 9 * (size_t)n >= \
		    16 * DM_NN_PAR_MIN)
		for (size_t task = 0; task < ntask; task++) {
			int c = (int)(task / (size_t)ncb);
			int cb = (int)(task % (size_t)ncb), o0 = cb * CW;
			dw_fn *f = cb < nfull ? dw_3 : rest == 2 ? dw_2 : dw_1;
			f(dw + (size_t)o0 * so + (size_t)c * 9, so,
			    gb + (size_t)o0 * pl->L, gstride,
			    ib + (size_t)c * pl->L, istride, n, pl);
		}
	}
}

/* dw (Cout, Cin, 3, 3) += the weight gradient; work as for forward.
 * With images side by side, a chunk's sums are added to dw chunk by
 * chunk (an order fixed by the shape). */
void
dm_convd_dw3(float *dw, const float *dout, const float *in, int B,
    int Cin, int H, int W, int Cout, float *work)
{
	size_t HW = (size_t)H * W, nb = flat_chunk(B, HW), L = nb * HW;
	float *tin = work, *tg = work + (size_t)Cin * L;
	struct plane pl;

	if (nb == 1) {
		plane_init(&pl, (uint16_t *)work, 1, H, W);
		dw_planes(dw, dout, (size_t)Cout * HW, in, (size_t)Cin * HW, B,
		    Cin, Cout, &pl);
		return;
	}
	plane_init(&pl, (uint16_t *)(work + ((size_t)Cin + (size_t)Cout) * L),
	    nb, H, W);
	for (size_t j0 = 0; j0 < (size_t)B; j0 += nb) {
		size_t n = (size_t)B - j0 < nb ? (size_t)B - j0 : nb;
		struct plane part = pl;
		if (n < nb)
			plane_init(&part, pl.mk, n, H, W);
		to_flat(tin, in + j0 * Cin * HW, n, Cin, HW);
		to_flat(tg, dout + j0 * Cout * HW, n, Cout, HW);
		dw_planes(dw, tg, 0, tin, 0, 1, Cin, Cout, &part);
	}
}

#else

size_t
dm_convd_work(int B, int Cin, int H, int W, int Cout)
{
	(void)B;
	(void)Cin;
	(void)H;
	(void)W;
	(void)Cout;
	return 0;
}

int
dm_convd_ok(void)
{
	return 0;
}

void
dm_convd_forward(float *out, const float *in, const float *w,
    const float *b, int add, int B, int Cin, int H, int W, int Cout, int k,
    int flip, float *work)
{
	(void)out; (void)in; (void)w; (void)b; (void)add; (void)B; (void)Cin;
	(void)H; (void)W; (void)Cout; (void)k; (void)flip; (void)work;
}

void
dm_convd_dw3(float *dw, const float *dout, const float *in, int B,
    int Cin, int H, int W, int Cout, float *work)
{
	(void)dw; (void)dout; (void)in; (void)B; (void)Cin; (void)H; (void)W;
	(void)Cout; (void)work;
}

#endif
