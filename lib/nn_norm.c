/* nn_norm.c — LayerNorm, GroupNorm, and GroupNorm fused with SiLU
 * (dm_nn.h).
 *
 * Both normalize a set S of values: xhat = (x - mean) rstd,
 * rstd = 1 / sqrt(var + eps) with the biased variance, then
 * out = xhat w + b per channel.  Mean and variance are two passes in
 * double.  Backward, with dxhat = dout w and means over S:
 *   din += rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
 *   dw += sum dout xhat, db += sum dout over everything but the channel.
 * w and b may be NULL (no affine part: w = 1, b = 0); so may dw, db, din.
 * Sets are split among threads; dw and db by channel, so every sum runs
 * in one order whatever the thread count.
 */
#include <math.h>
#include <stddef.h>

#include "dm_nn.h"
#include "nn_internal.h"

/* mean and 1 / sqrt(var + eps) of x[0..n) */
static inline __attribute__((always_inline)) void
moments(const float *restrict x, size_t n, float eps, float *mean,
    float *rstd)
{
	double s = 0, v = 0, m;

	#pragma omp simd reduction(+:s)
	for (size_t i = 0; i < n; i++)
		s += x[i];
	m = s / (double)n;
	#pragma omp simd reduction(+:v)
	for (size_t i = 0; i < n; i++) {
		double d = x[i] - m;
		v += d * d;
	}
	v /= (double)n;
	*mean = (float)m;
	*rstd = (float)(1.0 / sqrt(v + eps));
}

/* o = x scale + shift over n values */
static inline __attribute__((always_inline)) void
affine(float *restrict o, const float *restrict x, size_t n, float scale,
    float shift)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++)
		o[i] = x[i] * scale + shift;
}

/* sums of dxhat = g w and dxhat xhat, xhat = (x - m) rs, over n values */
static inline __attribute__((always_inline)) void
dxhat_sums(const float *restrict g, const float *restrict x, size_t n,
    float w, float m, float rs, double *s1, double *s2)
{
	double a = 0, c = 0;

	#pragma omp simd reduction(+:a, c)
	for (size_t i = 0; i < n; i++) {
		float dx = g[i] * w;
		a += dx;
		c += dx * ((x[i] - m) * rs);
	}
	*s1 += a;
	*s2 += c;
}

/* din += rs (g w - m1 - xhat m2) over n values */
static inline __attribute__((always_inline)) void
din_add(float *restrict d, const float *restrict g, const float *restrict x,
    size_t n, float w, float m, float rs, float m1, float m2)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float xhat = (x[i] - m) * rs;
		d[i] += rs * (g[i] * w - m1 - xhat * m2);
	}
}

/*
 * LayerNorm: S is one row of C values, the channel is the column.
 */

void
dm_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
    const float *w, const float *b, int n, int C, float eps)
{
	if (n <= 0 || C <= 0)
		return;

	#pragma omp parallel for schedule(static) \
	    if ((size_t)n * (size_t)C >= DM_NN_PAR_MIN)
	for (int r = 0; r < n; r++) {
		const float *restrict x = in + (size_t)r * C;
		float *restrict o = out + (size_t)r * C;
		float m, rs;
		moments(x, (size_t)C, eps, &m, &rs);
		mean[r] = m;
		rstd[r] = rs;
		if (w == NULL && b == NULL) {
			affine(o, x, (size_t)C, rs, -m * rs);
			continue;
		}
		#pragma omp simd
		for (int c = 0; c < C; c++) {
			float y = (x[c] - m) * rs;
			o[c] = y * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
		}
	}
}

/* One row of the LayerNorm input gradient: d += rs (dx - mean(dx) -
 * xhat mean(dx xhat)), dx = g w; compiled for the machine's vectors. */
static DM_CLONES void
ln_back_row(float *restrict d, const float *restrict g,
    const float *restrict x, const float *restrict w, float m, float rs,
    int C, int set)
{
	double s1 = 0, s2 = 0;

	#pragma omp simd reduction(+:s1, s2)
	for (int c = 0; c < C; c++) {
		float dx = g[c] * (w ? w[c] : 1.0f);
		s1 += dx;
		s2 += dx * ((x[c] - m) * rs);
	}
	float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
	if (set) {
		#pragma omp simd
		for (int c = 0; c < C; c++) {
			float xhat = (x[c] - m) * rs;
			float dx = g[c] * (w ? w[c] : 1.0f);
			d[c] = rs * (dx - m1 - xhat * m2);
		}
		return;
	}
	#pragma omp simd
	for (int c = 0; c < C; c++) {
		float xhat = (x[c] - m) * rs;
		float dx = g[c] * (w ? w[c] : 1.0f);
		d[c] += rs * (dx - m1 - xhat * m2);
	}
}

/* dw[c0, c1) += sum over rows of g xhat, db the same of g. */
static DM_CLONES void
ln_back_params(float *restrict dw, float *restrict db,
    const float *restrict dout, const float *restrict in,
    const float *restrict mean, const float *restrict rstd, int n, int C,
    int c0, int c1)
{
	for (int r = 0; r < n; r++) {
		const float *restrict x = in + (size_t)r * C;
		const float *restrict g = dout + (size_t)r * C;
		float m = mean[r], rs = rstd[r];
		if (dw != NULL) {
			#pragma omp simd
			for (int c = c0; c < c1; c++)
				dw[c] += g[c] * ((x[c] - m) * rs);
		}
		if (db != NULL) {
			#pragma omp simd
			for (int c = c0; c < c1; c++)
				db[c] += g[c];
		}
	}
}

static void
layernorm_backward(float *din, int set, float *dw, float *db,
    const float *dout, const float *in, const float *w, const float *mean,
    const float *rstd, int n, int C)
{
	if (n <= 0 || C <= 0)
		return;
	size_t total = (size_t)n * (size_t)C;

	if (din != NULL) {
		#pragma omp parallel for schedule(static) if (total >= DM_NN_PAR_MIN)
		for (int r = 0; r < n; r++)
			ln_back_row(din + (size_t)r * C, dout + (size_t)r * C,
			    in + (size_t)r * C, w, mean[r], rstd[r], C, set);
	}
	if (dw == NULL && db == NULL)
		return;
	enum { CHUNK = 256 };
	int nchunk = (C + CHUNK - 1) / CHUNK;

	#pragma omp parallel for schedule(static) \
	    if (total >= DM_NN_PAR_MIN && nchunk > 1)
	for (int k = 0; k < nchunk; k++) {
		int c0 = k * CHUNK, c1 = c0 + CHUNK < C ? c0 + CHUNK : C;
		ln_back_params(dw, db, dout, in, mean, rstd, n, C, c0, c1);
	}
}

void
dm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, const float *mean, const float *rstd,
    int n, int C)
{
	layernorm_backward(din, 0, dw, db, dout, in, w, mean, rstd, n, C);
}

void
dm_layernorm_backward_set(float *din, float *dw, float *db,
    const float *dout, const float *in, const float *w, const float *mean,
    const float *rstd, int n, int C)
{
	layernorm_backward(din, 1, dw, db, dout, in, w, mean, rstd, n, C);
}

/* din += the input gradient of one GroupNorm set of Cg channels of hw
 * values, from its output gradient g; wg: the set's Cg weights or NULL */
static DM_CLONES void
gn_set_din(float *d, const float *g, const float *x, const float *wg, int Cg,
    size_t hw, float m, float rs)
{
	double s1 = 0, s2 = 0;
	size_t set = (size_t)Cg * hw;

	for (int j = 0; j < Cg; j++)
		dxhat_sums(g + j * hw, x + j * hw, hw, wg ? wg[j] : 1.0f, m, rs,
		    &s1, &s2);
	float m1 = (float)(s1 / set), m2 = (float)(s2 / set);
	for (int j = 0; j < Cg; j++)
		din_add(d + j * hw, g + j * hw, x + j * hw, hw,
		    wg ? wg[j] : 1.0f, m, rs, m1, m2);
}

/* dw[c] += sum of dout xhat, db[c] += sum of dout over the images and
 * pixels of channel c, in one order */
static DM_CLONES void
gn_param_grad(float *dw, float *db, const float *dout, const float *in,
    const float *mean, const float *rstd, int B, int C, size_t hw, int G,
    int c)
{
	int g = c / (C / G);
	double sw = 0, sb = 0;

	for (int i = 0; i < B; i++) {
		size_t off = ((size_t)i * C + c) * hw;
		const float *restrict x = in + off;
		const float *restrict gr = dout + off;
		float m = mean[(size_t)i * G + g];
		float rs = rstd[(size_t)i * G + g];
		double a = 0, e = 0;
		#pragma omp simd reduction(+:a, e)
		for (size_t k = 0; k < hw; k++) {
			a += gr[k] * ((x[k] - m) * rs);
			e += gr[k];
		}
		sw += a;
		sb += e;
	}
	if (dw != NULL)
		dw[c] += (float)sw;
	if (db != NULL)
		db[c] += (float)sb;
}

/*
 * GroupNorm: S is one sample's C/G channels of HW values each.
 */

/* One set of Cg channels of hw values: its moments, nm = the normalized
 * values (or NULL) and, unless o is NULL, o = SiLU of them; wg, bg: the
 * set's weights and biases or NULL.  Compiled for the machine's vectors. */
static DM_CLONES void
gn_apply_set(float *nm, float *o, float *mean, float *rstd, const float *x,
    const float *wg, const float *bg, int Cg, size_t hw, float eps)
{
	float m, rs;

	moments(x, (size_t)Cg * hw, eps, &m, &rs);
	*mean = m;
	*rstd = rs;
	for (int j = 0; j < Cg; j++) {
		float scale = rs * (wg ? wg[j] : 1.0f);
		float shift = (bg ? bg[j] : 0.0f) - m * scale;
		const float *restrict xj = x + j * hw;
		float *restrict oj = o != NULL ? o + j * hw : NULL;
		if (o == NULL) {
			affine(nm + j * hw, xj, hw, scale, shift);
		} else if (nm != NULL) {
			float *restrict nj = nm + j * hw;
			#pragma omp simd
			for (size_t i = 0; i < hw; i++) {
				float v = xj[i] * scale + shift;
				nj[i] = v;
				oj[i] = v / (1.0f + dm_nn_exp(-v));
			}
		} else {
			#pragma omp simd
			for (size_t i = 0; i < hw; i++) {
				float v = xj[i] * scale + shift;
				oj[i] = v / (1.0f + dm_nn_exp(-v));
			}
		}
	}
}

/* norm = GroupNorm(in) (or NULL: not kept) and, unless act is NULL,
 * act = SiLU(norm); act may be in when norm is NULL */
static void
groupnorm_apply(float *norm, float *act, float *mean, float *rstd,
    const float *in, const float *w, const float *b, int B, int C, int HW,
    int G, float eps)
{
	if (B <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
		return;
	int Cg = C / G;
	size_t hw = (size_t)HW, set = (size_t)Cg * hw;
	long nsets = (long)B * G;

	#pragma omp parallel for schedule(static) \
	    if ((size_t)nsets * set >= DM_NN_PAR_MIN)
	for (long s = 0; s < nsets; s++) {
		int g = (int)(s % G);
		gn_apply_set(norm != NULL ? norm + (size_t)s * set : NULL,
		    act != NULL ? act + (size_t)s * set : NULL, mean + s,
		    rstd + s, in + (size_t)s * set, w ? w + g * Cg : NULL,
		    b ? b + g * Cg : NULL, Cg, hw, eps);
	}
}

void
dm_groupnorm_forward(float *out, float *mean, float *rstd, const float *in,
    const float *w, const float *b, int B, int C, int HW, int G, float eps)
{
	groupnorm_apply(out, NULL, mean, rstd, in, w, b, B, C, HW, G, eps);
}

void
dm_groupnorm_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, const float *mean, const float *rstd,
    int B, int C, int HW, int G)
{
	if (B <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
		return;
	int Cg = C / G;
	size_t hw = (size_t)HW, set = (size_t)Cg * hw;
	size_t total = (size_t)B * (size_t)C * hw;
	long nsets = (long)B * G;

	if (din != NULL) {
		#pragma omp parallel for schedule(static) if (total >= DM_NN_PAR_MIN)
		for (long s = 0; s < nsets; s++) {
			int g = (int)(s % G);
			const float *x = in + (size_t)s * set;
			const float *gr = dout + (size_t)s * set;
			gn_set_din(din + (size_t)s * set, gr, x,
			    w ? w + g * Cg : NULL, Cg, hw, mean[s], rstd[s]);
		}
	}
	if (dw == NULL && db == NULL)
		return;

	#pragma omp parallel for schedule(static) if (total >= DM_NN_PAR_MIN)
	for (int c = 0; c < C; c++)
		gn_param_grad(dw, db, dout, in, mean, rstd, B, C, hw, G, c);
}

/*
 * GroupNorm and SiLU fused: n = GroupNorm(x), out = n s(n), s the logistic
 * function, with the same arithmetic as dm_groupnorm_forward followed by
 * dm_silu_forward (so results agree bit for bit), in one pass over the
 * data and one parallel region.
 */

void
dm_groupnorm_silu_forward(float *norm, float *out, float *mean, float *rstd,
    const float *in, const float *w, const float *b, int B, int C, int HW,
    int G, float eps)
{
	groupnorm_apply(norm, out, mean, rstd, in, w, b, B, C, HW, G, eps);
}

/* g = dout s(n) (1 + n (1 - s(n))), the gradient of n, over n values */
static inline __attribute__((always_inline)) void
silu_grad(float *restrict g, const float *restrict dout,
    const float *restrict nm, size_t n)
{
	#pragma omp simd
	for (size_t i = 0; i < n; i++) {
		float v = nm[i];
		float s = 1.0f / (1.0f + dm_nn_exp(-v));
		g[i] = dout[i] * s * (1.0f + v * (1.0f - s));
	}
}

static DM_CLONES void
gn_silu_grad(float *restrict g, const float *restrict dout,
    const float *restrict nm, size_t n)
{
	silu_grad(g, dout, nm, n);
}

/* Backward of both: dnorm (B, C, HW) is scratch that gets the gradient of
 * n (as dm_silu_backward would add it to zeros); then din, dw and db as
 * dm_groupnorm_backward from it.  One parallel region: sets, then
 * channels. */
void
dm_groupnorm_silu_backward(float *din, float *dw, float *db, float *dnorm,
    const float *dout, const float *norm, const float *in, const float *w,
    const float *mean, const float *rstd, int B, int C, int HW, int G)
{
	if (B <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
		return;
	int Cg = C / G;
	size_t hw = (size_t)HW, set = (size_t)Cg * hw;
	size_t total = (size_t)B * (size_t)C * hw;
	long nsets = (long)B * G;

	#pragma omp parallel if (total >= DM_NN_PAR_MIN)
	{
		#pragma omp for schedule(static)
		for (long s = 0; s < nsets; s++) {
			int g = (int)(s % G);
			const float *x = in + (size_t)s * set;
			float *gr = dnorm + (size_t)s * set;
			gn_silu_grad(gr, dout + (size_t)s * set,
			    norm + (size_t)s * set, set);
			if (din != NULL)
				gn_set_din(din + (size_t)s * set, gr, x,
				    w ? w + g * Cg : NULL, Cg, hw, mean[s],
				    rstd[s]);
		}
		if (dw != NULL || db != NULL) {
			#pragma omp for schedule(static)
			for (int c = 0; c < C; c++)
				gn_param_grad(dw, db, dnorm, in, mean, rstd, B,
				    C, hw, G, c);
		}
	}
}
