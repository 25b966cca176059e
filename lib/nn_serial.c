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

#include "nn_internal.h"

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", \
    "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef CLONES
#define CLONES
#endif

/* Four weight rows at a time: four independent sums keep the FMA units
 * busy while one row's sum waits on its latency. */
CLONES void
dm_linear_forward_serial(float *restrict out, const float *restrict in,
    const float *restrict w, const float *restrict b, int n, int din,
    int dout)
{
	int j = 0;

	for (; j + 4 <= dout; j += 4) {
		const float *restrict w0 = w + (size_t)j * din;
		const float *restrict w1 = w0 + din, *restrict w2 = w1 + din,
		    *restrict w3 = w2 + din;
		for (int i = 0; i < n; i++) {
			const float *restrict x = in + (size_t)i * din;
			float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
			#pragma omp simd reduction(+:s0, s1, s2, s3)
			for (int k = 0; k < din; k++) {
				s0 += w0[k] * x[k];
				s1 += w1[k] * x[k];
				s2 += w2[k] * x[k];
				s3 += w3[k] * x[k];
			}
			float *o = out + (size_t)i * dout + j;
			o[0] = b ? s0 + b[j] : s0;
			o[1] = b ? s1 + b[j + 1] : s1;
			o[2] = b ? s2 + b[j + 2] : s2;
			o[3] = b ? s3 + b[j + 3] : s3;
		}
	}
	for (; j < dout; j++) {
		const float *restrict wj = w + (size_t)j * din;
		for (int i = 0; i < n; i++) {
			const float *restrict x = in + (size_t)i * din;
			float s = 0;
			#pragma omp simd reduction(+:s)
			for (int k = 0; k < din; k++)
				s += wj[k] * x[k];
			out[(size_t)i * dout + j] = b ? s + b[j] : s;
		}
	}
}
