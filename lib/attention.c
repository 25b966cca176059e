/* attention.c — the core of multi-head self-attention (no mask).
 *
 * Per image b and head h, with hs = C/NH, q, k, v the (T, hs) slices of
 * qkv (row stride 3C) and scale = 1/sqrt(hs):
 *
 *   att = softmax(scale q k^T)  (rows; the row maximum is subtracted)
 *   out = att v
 *
 * Backward, with g = dout of the head:
 *
 *   datt = g v^T,  dv += att^T g
 *   dscores = att * (datt - rowsum(att * datt))   (softmax Jacobian)
 *   dq += scale dscores k,  dk += scale dscores^T q
 *
 * T is small in the unet (49 at 7x7), so plain loops over the (b, h)
 * pairs, one pair per OpenMP iteration: the pairs write disjoint parts of
 * out, att and dqkv, so the result does not depend on the thread count. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dm_base.h"
#include "dm_nn.h"
#include "nn_internal.h"

void
dm_attention_forward(float *out, float *att, const float *qkv, int B, int T,
    int C, int NH)
{
	int hs = C / NH;
	size_t C3 = (size_t)3 * C, TT = (size_t)T * T;
	float scale = 1.0f / sqrtf((float)hs);

	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)B * NH * T * T * hs >= DM_NN_PAR_MIN)
	for (int b = 0; b < B; b++)
	for (int h = 0; h < NH; h++) {
		const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
		const float *k = q + C, *v = q + 2 * (size_t)C;
		float *a = att + ((size_t)b * NH + h) * TT;
		float *o = out + (size_t)b * T * C + (size_t)h * hs;
		for (int t = 0; t < T; t++) {
			const float *qt = q + (size_t)t * C3;
			float *at = a + (size_t)t * T, mx = -INFINITY;
			for (int u = 0; u < T; u++) {
				const float *ku = k + (size_t)u * C3;
				float dot = 0;
				#pragma omp simd reduction(+:dot)
				for (int i = 0; i < hs; i++)
					dot += qt[i] * ku[i];
				at[u] = dot * scale;
				if (at[u] > mx)
					mx = at[u];
			}
			float sum = 0;
			for (int u = 0; u < T; u++) {
				at[u] = expf(at[u] - mx);
				sum += at[u];
			}
			float inv = 1.0f / sum;
			float *ot = o + (size_t)t * C;
			memset(ot, 0, (size_t)hs * sizeof *ot);
			for (int u = 0; u < T; u++) {
				const float *vu = v + (size_t)u * C3;
				float p = at[u] *= inv;
				#pragma omp simd
				for (int i = 0; i < hs; i++)
					ot[i] += p * vu[i];
			}
		}
	}
}

size_t
dm_attention_work_size(int B, int T, int C, int NH)
{
	size_t n;

	(void)C;
	if (B < 1 || T < 1 || NH < 1 ||
	    dm_mul_size((size_t)B * NH, (size_t)T * T, &n) == -1) {
		if (B < 1 || T < 1 || NH < 1)
			dm_seterr("attention: unsupported shape (B %d, T %d, "
			    "NH %d)", B, T, NH);
		return SIZE_MAX;
	}
	return n;
}

void
dm_attention_backward(float *dqkv, const float *dout, const float *qkv,
    const float *att, int B, int T, int C, int NH, float *work)
{
	int hs = C / NH;
	size_t C3 = (size_t)3 * C, TT = (size_t)T * T;
	float scale = 1.0f / sqrtf((float)hs);

	#pragma omp parallel for collapse(2) schedule(static) \
	    if ((size_t)B * NH * T * T * hs >= DM_NN_PAR_MIN)
	for (int b = 0; b < B; b++)
	for (int h = 0; h < NH; h++) {
		size_t base = (size_t)b * T * C3 + (size_t)h * hs;
		const float *q = qkv + base, *k = q + C, *v = q + 2 * (size_t)C;
		float *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * (size_t)C;
		const float *a = att + ((size_t)b * NH + h) * TT;
		const float *g = dout + (size_t)b * T * C + (size_t)h * hs;
		float *ds = work + ((size_t)b * NH + h) * TT;
		for (int t = 0; t < T; t++) {
			const float *gt = g + (size_t)t * C;
			const float *at = a + (size_t)t * T;
			float *dst = ds + (size_t)t * T, dot_ad = 0;
			for (int u = 0; u < T; u++) {
				const float *vu = v + (size_t)u * C3;
				float *dvu = dv + (size_t)u * C3;
				float dot = 0, p = at[u];
				#pragma omp simd reduction(+:dot)
				for (int i = 0; i < hs; i++) {
					dot += gt[i] * vu[i];
					dvu[i] += p * gt[i];
				}
				dst[u] = dot;
				dot_ad += p * dot;
			}
			for (int u = 0; u < T; u++)
				dst[u] = at[u] * (dst[u] - dot_ad) * scale;
		}
		/* dq[t] += sum_u ds[t, u] k[u];  dk[u] += sum_t ds[t, u] q[t] */
		for (int t = 0; t < T; t++) {
			const float *dst = ds + (size_t)t * T;
			const float *qt = q + (size_t)t * C3;
			float *dqt = dq + (size_t)t * C3;
			for (int u = 0; u < T; u++) {
				const float *ku = k + (size_t)u * C3;
				float *dku = dk + (size_t)u * C3;
				float d = dst[u];
				#pragma omp simd
				for (int i = 0; i < hs; i++) {
					dqt[i] += d * ku[i];
					dku[i] += d * qt[i];
				}
			}
		}
	}
}
