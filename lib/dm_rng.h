/* dm_rng.h — counter-based random numbers (Philox4x32-10, Salmon et al.
 * 2011).  Every draw is a pure function of (seed, stream, index), so sample
 * i's noise does not depend on the batch size, the sample count or the
 * number of threads: use the sample's index (or a value derived from it) as
 * the stream, and the position inside the sample as the index.
 *
 * The mapping, fixed so that files made today can be remade later:
 *   block b of (seed, stream) = Philox4x32-10 of counter
 *     {b & 0xffffffff, b >> 32, stream & 0xffffffff, stream >> 32}
 *     under key {seed & 0xffffffff, seed >> 32}, giving words w0..w3;
 *   raw draw i (dm_rng_u32)   = word i % 4 of block i / 4;
 *   uniform float i           = ((w >> 9) + 0.5) * 2^-23, w = raw draw i
 *                               (23 bits: 1 - 2^-24 is the largest float < 1);
 *   uniform double i          = ((x >> 12) + 0.5) * 2^-52 with
 *                               x = w[2j] << 32 | w[2j+1], j = i % 2, of
 *                               block i / 2 (52 bits, so never 0 or 1);
 *   normal doubles 2k, 2k+1   = Box–Muller on uniform doubles u1 = 2k and
 *                               u2 = 2k+1 (both from block k):
 *                               sqrt(-2 ln u1) cos(2 pi u2), ... sin(2 pi u2);
 *   normal float i            = (float) normal double i.
 * So out[k] of every fill function is value index+k however a range is
 * split into calls. */
#ifndef DM_RNG_H
#define DM_RNG_H

#include <stddef.h>
#include <stdint.h>

/* The toolkit's layout of streams, shared by every tool so that a sample's
 * draws depend only on (seed, its index, what they are for):
 *   stream = purpose << 48 | sample index   (sample indices < 2^48)
 *   index  = step << 32 | element           (elements < 2^32 per sample)
 * e.g. the forward noise of sample i is dm_rng_normal(eps, d, seed,
 * dm_noise_stream(DM_NOISE_EPS, i), 0). */
enum dm_noise_purpose {
	DM_NOISE_EPS = 0,      /* forward-process noise / a sampler's x1 */
	DM_NOISE_TIME = 1,     /* per-sample t draws */
	DM_NOISE_STEP = 2,     /* a stochastic sampler's step noise (step = index >> 32) */
	DM_NOISE_DATA = 3,     /* data set generators */
	DM_NOISE_TRAIN = 4,    /* training: batches, dropout, label drop */
	DM_NOISE_INIT = 5,     /* network weight initialization */
	DM_NOISE_OTHER = 6
};
static inline uint64_t
dm_noise_stream(enum dm_noise_purpose purpose, uint64_t sample)
{
	return (uint64_t)purpose << 48 | (sample & ((UINT64_C(1) << 48) - 1));
}
static inline uint64_t
dm_noise_index(uint64_t step, uint64_t element)
{
	return step << 32 | (element & 0xffffffffu);
}

/* One Philox4x32-10 block: ctr[4] encrypted under key[2], into out[4]. */
void dm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
    uint32_t out[4]);

/* Raw 32-bit draw number `index` of (seed, stream). */
uint32_t dm_rng_u32(uint64_t seed, uint64_t stream, uint64_t index);

/* Fill out[k] with draw number (index + k) of (seed, stream), k < n. */
void dm_rng_uniform(float *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index);               /* uniform on (0, 1), never 0 or 1 */
void dm_rng_normal(float *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index);               /* standard normal */
void dm_rng_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index);               /* uniform on (0, 1), 52 bits */
void dm_rng_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index);

/* A sequential generator for code that draws one value at a time: it walks
 * the raw draws of one (seed, stream).  next_u32 takes one raw draw,
 * next_uniform two (x = first << 32 | second, mapped as above), next_normal
 * four (u1 from the first two, u2 from the last two; it returns the cosine
 * half), next_below one per try for n < 2^32 and two otherwise (none for
 * n <= 1). */
struct dm_rng {
	uint64_t seed, stream, index;
};
void dm_rng_init(struct dm_rng *r, uint64_t seed, uint64_t stream);
uint32_t dm_rng_next_u32(struct dm_rng *r);
double dm_rng_next_uniform(struct dm_rng *r);     /* (0, 1) */
double dm_rng_next_normal(struct dm_rng *r);
/* Uniform integer in [0, n), without modulo bias; n >= 1. */
uint64_t dm_rng_next_below(struct dm_rng *r, uint64_t n);
/* Fisher–Yates shuffle of idx[0..n). */
void dm_rng_shuffle(struct dm_rng *r, int64_t *idx, size_t n);

#endif
