/* dm_rng.h — counter-based random numbers (Philox4x32-10, Salmon et al.
 * 2011).  Every draw is a pure function of (seed, stream, index), so sample
 * i's noise does not depend on the batch size, the sample count or the
 * number of threads: use the sample's index (or a value derived from it) as
 * the stream, and the position inside the sample as the index. */
#ifndef DM_RNG_H
#define DM_RNG_H

#include <stddef.h>
#include <stdint.h>

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
    uint64_t index);               /* uniform on (0, 1), 53 bits */
void dm_rng_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index);

/* A sequential generator for code that draws one value at a time: it walks
 * the indices of one (seed, stream). */
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
