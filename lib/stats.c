/* stats.c — summary statistics of a tensor: one pass, in double.
 *
 * The elements are cut into fixed chunks of STATS_CHUNK.  Each chunk is
 * summed, then its squared deviations from its own mean are summed while it
 * is still in cache, so memory is read once.  Chunks run in parallel and are
 * then merged in chunk order with the pairwise update of Chan, Golub and
 * LeVeque (1979):
 *
 *   n = na + nb,  d = mean_b - mean_a,
 *   mean = mean_a + d * nb / n,  M2 = M2_a + M2_b + d^2 * na * nb / n,
 *
 * so the result does not depend on the number of threads. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dm_base.h"
#include "dm_tensor.h"

#define STATS_CHUNK 8192

static inline double conv_f64(double v) { return v; }
static inline double conv_f32(float v) { return v; }
static inline double conv_f16(uint16_t v) { return dm_f16_to_f32(v); }
static inline double conv_bf16(uint16_t v) { return dm_bf16_to_f32(v); }
static inline double conv_i64(int64_t v) { return (double)v; }
static inline double conv_i32(int32_t v) { return v; }
static inline double conv_i16(int16_t v) { return v; }
static inline double conv_i8(int8_t v) { return v; }
static inline double conv_u8(uint8_t v) { return v; }
static inline double conv_bool(uint8_t v) { return v != 0; }

/* Statistics of p[lo..hi) into *s. */
#define STATS_CHUNK_FN(fn, type, conv)                                    \
static void                                                               \
fn(const void *data, size_t lo, size_t hi, struct dm_stats *s)            \
{                                                                         \
	const type *p = data;                                             \
	double sum = 0, mn = INFINITY, mx = -INFINITY, mean, m2 = 0;      \
	size_t n = 0, nan = 0, inf = 0, i;                                \
                                                                          \
	for (i = lo; i < hi; i++) {                                       \
		double v = conv(p[i]);                                    \
		if (isfinite(v)) {                                        \
			sum += v;                                         \
			n++;                                              \
			mn = v < mn ? v : mn;                             \
			mx = v > mx ? v : mx;                             \
		} else if (isnan(v)) {                                    \
			nan++;                                            \
		} else {                                                  \
			inf++;                                            \
		}                                                         \
	}                                                                 \
	mean = n ? sum / (double)n : 0;                                   \
	if (n > 1)                                                        \
		for (i = lo; i < hi; i++) {                               \
			double v = conv(p[i]);                            \
			if (isfinite(v))                                  \
				m2 += (v - mean) * (v - mean);            \
		}                                                         \
	s->n = n;                                                         \
	s->nan = nan;                                                     \
	s->inf = inf;                                                     \
	s->min = mn;                                                      \
	s->max = mx;                                                      \
	s->mean = mean;                                                   \
	s->m2 = m2;                                                       \
}

STATS_CHUNK_FN(chunk_f64_any, double, conv_f64)
STATS_CHUNK_FN(chunk_f32_any, float, conv_f32)

/* The common case of floats without NaN or Inf, in loops the compiler can
 * vectorize; a chunk with a non-finite value takes the general path. */
#define STATS_FAST_FN(fn, type, any, big)                                 \
static void                                                               \
fn(const void *data, size_t lo, size_t hi, struct dm_stats *s)            \
{                                                                         \
	const type *p = data;                                             \
	double sum = 0, mean, m2 = 0;                                     \
	type mn = p[lo], mx = p[lo];                                      \
	int bad = 0;                                                      \
                                                                          \
	_Pragma("omp simd reduction(+:sum) reduction(min:mn) reduction(max:mx) reduction(|:bad)") \
	for (size_t i = lo; i < hi; i++) {                                \
		type v = p[i];                                            \
		sum += v;                                                 \
		mn = v < mn ? v : mn;                                     \
		mx = v > mx ? v : mx;                                     \
		bad |= !(v <= (big) && v >= -(big));                      \
	}                                                                 \
	if (bad) {                                                        \
		any(data, lo, hi, s);                                     \
		return;                                                   \
	}                                                                 \
	mean = sum / (double)(hi - lo);                                   \
	_Pragma("omp simd reduction(+:m2)")                               \
	for (size_t i = lo; i < hi; i++)                                  \
		m2 += ((double)p[i] - mean) * ((double)p[i] - mean);      \
	s->n = hi - lo;                                                   \
	s->nan = s->inf = 0;                                              \
	s->min = mn;                                                      \
	s->max = mx;                                                      \
	s->mean = mean;                                                   \
	s->m2 = m2;                                                       \
}

STATS_FAST_FN(chunk_f64, double, chunk_f64_any, DBL_MAX)

/* F32, the bulk of every data set: the fast path above in double, built
 * also for AVX2 where the machine has it (the dispatch is at load time). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DM_CLONES
#endif

DM_CLONES static void
chunk_f32(const void *data, size_t lo, size_t hi, struct dm_stats *s)
{
	const float *p = data;
	double sum = 0, m2 = 0, mean;
	float mn = p[lo], mx = p[lo];
	int bad = 0;

#pragma omp simd reduction(+:sum) reduction(min:mn) reduction(max:mx) reduction(|:bad)
	for (size_t i = lo; i < hi; i++) {
		float v = p[i];
		sum += v;
		mn = v < mn ? v : mn;
		mx = v > mx ? v : mx;
		/* & not &&: a branch here would stop the vectorizer */
		bad |= !((v <= FLT_MAX) & (v >= -FLT_MAX));
	}
	if (bad) {
		chunk_f32_any(data, lo, hi, s);
		return;
	}
	mean = sum / (double)(hi - lo);
#pragma omp simd reduction(+:m2)
	for (size_t i = lo; i < hi; i++)
		m2 += ((double)p[i] - mean) * ((double)p[i] - mean);
	s->n = hi - lo;
	s->nan = s->inf = 0;
	s->min = mn;
	s->max = mx;
	s->mean = mean;
	s->m2 = m2;
}

STATS_CHUNK_FN(chunk_f16, uint16_t, conv_f16)
STATS_CHUNK_FN(chunk_bf16, uint16_t, conv_bf16)
STATS_CHUNK_FN(chunk_i64, int64_t, conv_i64)
STATS_CHUNK_FN(chunk_i32, int32_t, conv_i32)
STATS_CHUNK_FN(chunk_i16, int16_t, conv_i16)
STATS_CHUNK_FN(chunk_i8, int8_t, conv_i8)
STATS_CHUNK_FN(chunk_u8, uint8_t, conv_u8)
STATS_CHUNK_FN(chunk_bool, uint8_t, conv_bool)

typedef void chunk_fn(const void *, size_t, size_t, struct dm_stats *);

static chunk_fn *const chunk_fns[DM_DTYPE_COUNT] = {
	[DM_DTYPE_F64] = chunk_f64,
	[DM_DTYPE_F32] = chunk_f32,
	[DM_DTYPE_F16] = chunk_f16,
	[DM_DTYPE_BF16] = chunk_bf16,
	[DM_DTYPE_I64] = chunk_i64,
	[DM_DTYPE_I32] = chunk_i32,
	[DM_DTYPE_I16] = chunk_i16,
	[DM_DTYPE_I8] = chunk_i8,
	[DM_DTYPE_U8] = chunk_u8,
	[DM_DTYPE_BOOL] = chunk_bool,
};

void
dm_stats_init(struct dm_stats *s)
{
	s->n = s->nan = s->inf = 0;
	s->min = INFINITY;
	s->max = -INFINITY;
	s->mean = 0;
	s->m2 = 0;
}

void
dm_stats_merge(struct dm_stats *a, const struct dm_stats *b)
{
	a->nan += b->nan;
	a->inf += b->inf;
	if (b->n == 0)
		return;
	if (a->n == 0) {
		a->n = b->n;
		a->min = b->min;
		a->max = b->max;
		a->mean = b->mean;
		a->m2 = b->m2;
		return;
	}
	double na = (double)a->n, nb = (double)b->n, n = na + nb;
	double d = b->mean - a->mean;

	a->mean += d * (nb / n);
	a->m2 += b->m2 + d * d * (na / n) * nb;
	a->n += b->n;
	a->min = b->min < a->min ? b->min : a->min;
	a->max = b->max > a->max ? b->max : a->max;
}

double
dm_stats_std(const struct dm_stats *s)
{
	return s->n ? sqrt(s->m2 / (double)s->n) : NAN;
}

int
dm_tensor_stats(const struct dm_tensor *t, struct dm_stats *out)
{
	struct dm_stats *part;
	size_t numel, nchunk;
	chunk_fn *fn;

	dm_stats_init(out);
	if ((unsigned)t->dtype >= DM_DTYPE_COUNT)
		return dm_seterr("bad dtype");
	fn = chunk_fns[t->dtype];
	numel = dm_tensor_numel(t);
	if (numel == 0)
		return 0;
	nchunk = numel / STATS_CHUNK + (numel % STATS_CHUNK != 0);
	if (nchunk == 1) {
		fn(t->data, 0, numel, out);
		return 0;
	}
	if ((part = dm_calloc(nchunk, sizeof *part)) == NULL)
		return -1;
	#pragma omp parallel for schedule(static)
	for (size_t c = 0; c < nchunk; c++) {
		size_t lo = c * STATS_CHUNK;
		size_t hi = numel - lo < STATS_CHUNK ? numel : lo + STATS_CHUNK;
		fn(t->data, lo, hi, &part[c]);
	}
	for (size_t c = 0; c < nchunk; c++)
		dm_stats_merge(out, &part[c]);
	free(part);
	return 0;
}
