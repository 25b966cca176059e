/* nn_internal.h — helpers shared by the layer files (nn.c, nn_norm.c);
 * not installed. */
#ifndef DM_NN_INTERNAL_H
#define DM_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <omp.h>

/* A function compiled for three instruction sets, the one for the machine
 * picked at load time (GCC's target_clones): a build for any x86-64 still
 * uses the wide vectors of the machine it runs on. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define DM_CLONES __attribute__((target_clones("arch=x86-64-v4", \
    "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef DM_CLONES
#define DM_CLONES
#endif

/* Work below this many elements stays on the calling thread. */
#define DM_NN_PAR_MIN ((size_t)1 << 15)

/* for i in [0, n): the braced body, as a simd loop, across threads when n
 * is large.  The body must touch element i only. */
#define DM_NN_ELEMWISE(n, ...) do {                                      \
	size_t n_ = (n);                                                  \
	if (n_ >= DM_NN_PAR_MIN) {                                        \
		_Pragma("omp parallel for simd schedule(static)")         \
		for (size_t i = 0; i < n_; i++)                           \
			__VA_ARGS__                                       \
	} else {                                                          \
		_Pragma("omp simd")                                       \
		for (size_t i = 0; i < n_; i++)                           \
			__VA_ARGS__                                       \
	}                                                                 \
} while (0)

/* call, with lo and hi in scope, for [lo, hi) = [0, n), or for each
 * thread's share of it (multiples of 16) when n is large. */
#define DM_NN_RANGES(n, call) do {                                        \
	size_t n_ = (n);                                                  \
	if (n_ >= DM_NN_PAR_MIN) {                                        \
		_Pragma("omp parallel")                                   \
		{                                                         \
			size_t nt_ = (size_t)omp_get_num_threads();       \
			size_t id_ = (size_t)omp_get_thread_num();        \
			size_t u_ = (n_ + 15) / 16;                       \
			size_t lo = u_ * id_ / nt_ * 16;                  \
			size_t hi = u_ * (id_ + 1) / nt_ * 16;            \
			if (hi > n_)                                      \
				hi = n_;                                  \
			if (lo < hi)                                      \
				call;                                     \
		}                                                         \
	} else {                                                          \
		size_t lo = 0, hi = n_;                                   \
		call;                                                     \
	}                                                                 \
} while (0)

/* Stride-1 convolutions, 3x3 (padding 1) or 1x1, without columns, with
 * 16-lane vectors (conv_direct.c).  ok: the machine has the vectors and
 * dm_conv_direct_off (a switch for tests) is 0.  work: floats of scratch
 * the calls need (either k).  forward: out = (add ? out : 0) + conv(in,
 * w) + b; with flip, w is [Cout][Cin][k][k] of the layer whose input
 * gradient this is (the kernel transposed and flipped).  dw3: the weight
 * gradient of a 3x3 layer, added to dw. */
extern int dm_conv_direct_off;
int dm_convd_ok(void);
size_t dm_convd_work(int B, int Cin, int H, int W, int Cout);
void dm_convd_forward(float *out, const float *in, const float *w,
    const float *b, int add, int B, int Cin, int H, int W, int Cout, int k,
    int flip, float *work);
void dm_convd_dw3(float *dw, const float *dout, const float *in, int B,
    int Cin, int H, int W, int Cout, float *work);

/* dm_linear_backward, dm_silu_backward, dm_dropout_backward and
 * dm_layernorm_backward that set din instead of adding to it: for a
 * buffer whose only (or first) gradient this is, which then needs no
 * zeroing pass before the backward. */
void dm_linear_backward_set(float *din, float *dw, float *db,
    const float *dout, const float *in, const float *w, int n, int din_dim,
    int dout_dim);
void dm_silu_backward_set(float *din, const float *dout, const float *in,
    size_t n);
void dm_dropout_backward_set(float *din, const float *dout,
    const uint8_t *mask, size_t n, float p);
void dm_layernorm_backward_set(float *din, float *dw, float *db,
    const float *dout, const float *in, const float *w, const float *mean,
    const float *rstd, int n, int C);

/* out (n, dout) = in (n, din) . w^T + b, as dm_linear_forward, on the
 * calling thread without BLAS: for a few rows (nn_serial.c). */
void dm_linear_forward_serial(float *out, const float *in, const float *w,
    const float *b, int n, int din, int dout);
/* The same with the rows of out ostride floats apart: a slice of the
 * outputs of a wider layer (w and b at its first output).  Each output is
 * computed alike whatever n, the slice or ostride, so a layer split into
 * slices (at multiples of 4 outputs) equals the whole layer bit for bit. */
void dm_linear_rows_serial(float *out, size_t ostride, const float *in,
    const float *w, const float *b, int n, int din, int dout);

/* outT (dout, ld) = w inT + b for the columns [c0, c1) of inT (din, ld),
 * a column per input row; c0 and c1 multiples of 16 (nn_serial.c). */
void dm_linear_cols_serial(float *outT, const float *inT, size_t ld, int c0,
    int c1, const float *w, const float *b, int din, int dout);

/* A team of n threads, the caller and n - 1 helpers, for jobs of a few
 * microseconds (team.c): dm_team_run calls fn(arg, i) on member i for
 * every i < n and returns when all are done; inside fn, members meet at
 * dm_team_barrier.  Helpers spin briefly for the next job, then sleep.
 * dm_team_new returns NULL when n < 2 or threads cannot start; a NULL
 * team runs fn(arg, 0) on the caller alone. */
struct dm_team;
struct dm_team *dm_team_new(int n);
void dm_team_free(struct dm_team *T);
int dm_team_size(const struct dm_team *T);
void dm_team_run(struct dm_team *T, void (*fn)(void *, int), void *arg);
void dm_team_barrier(struct dm_team *T);

/*
 * e^x in a form the compiler vectorizes (libm's expf is a call it cannot):
 * x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2, ln2 split in a
 * part exact under multiplication by k and a remainder (Cody and Waite);
 * e^r by its Taylor polynomial of degree 7 (truncation below 2e-8
 * relative); 2^k written into the exponent field.  x is clamped to
 * [-87, 88] so that 2^k stays a normal float: the result is within a few
 * ulp of e^x there, and e^-87 or e^88 outside (NaN too).
 */
#define DM_NN_BITS_88 0x42b00000	/* bits of 88.0f */
#define DM_NN_BITS_87 0x42ae0000	/* bits of 87.0f */
static inline float
dm_nn_exp(float x)
{
	union { float f; int32_t i; } v = {x}, two_k;

	/* the clamp on the bits, by sign-magnitude: integer selects keep
	 * the loop free of branches (float compares may trap, so the
	 * compiler would not turn two of them into selects) */
	int32_t neg = v.i >> 31;	/* all ones when x < 0 */
	int32_t lim = DM_NN_BITS_88 ^ ((DM_NN_BITS_88 ^ DM_NN_BITS_87) & neg);
	int32_t mag = v.i & INT32_MAX;
	mag = mag > lim ? lim : mag;
	v.i = mag | (v.i & INT32_MIN);
	x = v.f;
	/* adding and removing 1.5 * 2^23 rounds to the nearest integer */
	float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
	float r = x - k * 0.693359375f;
	r = r - k * -2.12194440e-4f;
	float p = 1.0f / 5040;
	p = p * r + 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	two_k.i = ((int32_t)k + 127) << 23;
	return p * two_k.f;
}

#endif
