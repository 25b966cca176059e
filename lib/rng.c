/* rng.c — Philox4x32-10 and the draws built on it (see dm_rng.h for the
 * exact mapping from (seed, stream, index) to values). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dm_rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define TWO_PI 6.283185307179586476925286766559
/* Draw indices wrap modulo 2^64, so block numbers wrap modulo 2^62 (raw
 * draws, 4 per block) or 2^63 (doubles, 2 per block). */
#define BLOCKS_U32 (UINT64_MAX >> 2)
#define BLOCKS_F64 (UINT64_MAX >> 1)

/*
 * One round: two 32x32->64 products; the high halves are mixed with the
 * other two words and the key, the low halves pass on (Salmon et al. 2011,
 * section 3.3, with the word permutation of Random123).
 */
static inline void
philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
	uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
	uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
	uint32_t c1 = c[1], c3 = c[3];

	c[0] = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
	c[1] = (uint32_t)p1;
	c[2] = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
	c[3] = (uint32_t)p0;
}

void
dm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
    uint32_t out[4])
{
	uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
	uint32_t k0 = key[0], k1 = key[1];

	for (int r = 0; r < 10; r++) {
		if (r > 0) {
			k0 += PHILOX_W0;
			k1 += PHILOX_W1;
		}
		philox_round(c, k0, k1);
	}
	out[0] = c[0];
	out[1] = c[1];
	out[2] = c[2];
	out[3] = c[3];
}

/* Block b of (seed, stream): raw draws 4b .. 4b+3. */
static inline void
block(uint64_t seed, uint64_t stream, uint64_t b, uint32_t out[4])
{
	uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32),
	    (uint32_t)stream, (uint32_t)(stream >> 32)};
	uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};

	dm_philox4x32_10(ctr, key, out);
}

uint32_t
dm_rng_u32(uint64_t seed, uint64_t stream, uint64_t index)
{
	uint32_t w[4];

	block(seed, stream, index / 4, w);
	return w[index % 4];
}

/* Raw draws index .. index+n-1 into out, one block computation each. */
static void
fill_u32(uint32_t *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index)
{
	uint64_t b = index / 4;
	unsigned j = (unsigned)(index % 4);
	uint32_t w[4];
	size_t k = 0;

	while (k < n) {
		block(seed, stream, b, w);
		b = (b + 1) & BLOCKS_U32;
		for (; j < 4 && k < n; j++)
			out[k++] = w[j];
		j = 0;
	}
}

/* (0, 1) from 32 bits: 23 bits plus half a step, so that the largest
 * value 1 - 2^-24 is still a float below 1. */
static inline float
u32_to_float(uint32_t u)
{
	return ((float)(u >> 9) + 0.5f) * 0x1p-23f;
}

/* (0, 1) from 64 bits (hi, lo): 52 bits plus half a step; the largest
 * value is 1 - 2^-53. */
static inline double
u64_to_double(uint32_t hi, uint32_t lo)
{
	uint64_t x = (uint64_t)hi << 32 | lo;

	return ((double)(x >> 12) + 0.5) * 0x1p-52;
}

/* Box–Muller on one block: z[0] = r cos(theta), z[1] = r sin(theta). */
static inline void
box_muller(const uint32_t w[4], double z[2])
{
	double u1 = u64_to_double(w[0], w[1]);
	double u2 = u64_to_double(w[2], w[3]);
	double r = sqrt(-2.0 * log(u1));
	double theta = TWO_PI * u2;

	z[0] = r * cos(theta);
	z[1] = r * sin(theta);
}

void
dm_rng_uniform(float *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index)
{
	uint32_t w[4];
	uint64_t b = index / 4;
	unsigned j = (unsigned)(index % 4);
	size_t k = 0;

	while (k < n) {
		block(seed, stream, b, w);
		b = (b + 1) & BLOCKS_U32;
		for (; j < 4 && k < n; j++)
			out[k++] = u32_to_float(w[j]);
		j = 0;
	}
}

void
dm_rng_uniform_f64(double *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index)
{
	uint32_t w[4];
	uint64_t b = index / 2;
	unsigned j = (unsigned)(index % 2);
	size_t k = 0;

	while (k < n) {
		block(seed, stream, b, w);
		b = (b + 1) & BLOCKS_F64;
		for (; j < 2 && k < n; j++)
			out[k++] = u64_to_double(w[2 * j], w[2 * j + 1]);
		j = 0;
	}
}

void
dm_rng_normal_f64(double *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index)
{
	uint32_t w[4];
	double z[2];
	uint64_t b = index / 2;
	unsigned j = (unsigned)(index % 2);
	size_t k = 0;

	while (k < n) {
		block(seed, stream, b, w);
		b = (b + 1) & BLOCKS_F64;
		box_muller(w, z);
		for (; j < 2 && k < n; j++)
			out[k++] = z[j];
		j = 0;
	}
}

void
dm_rng_normal(float *out, size_t n, uint64_t seed, uint64_t stream,
    uint64_t index)
{
	uint32_t w[4];
	double z[2];
	uint64_t b = index / 2;
	unsigned j = (unsigned)(index % 2);
	size_t k = 0;

	while (k < n) {
		block(seed, stream, b, w);
		b = (b + 1) & BLOCKS_F64;
		box_muller(w, z);
		for (; j < 2 && k < n; j++)
			out[k++] = (float)z[j];
		j = 0;
	}
}

void
dm_rng_init(struct dm_rng *r, uint64_t seed, uint64_t stream)
{
	r->seed = seed;
	r->stream = stream;
	r->index = 0;
}

uint32_t
dm_rng_next_u32(struct dm_rng *r)
{
	return dm_rng_u32(r->seed, r->stream, r->index++);
}

double
dm_rng_next_uniform(struct dm_rng *r)
{
	uint32_t w[2];

	fill_u32(w, 2, r->seed, r->stream, r->index);
	r->index += 2;
	return u64_to_double(w[0], w[1]);
}

double
dm_rng_next_normal(struct dm_rng *r)
{
	uint32_t w[4];
	double z[2];

	fill_u32(w, 4, r->seed, r->stream, r->index);
	r->index += 4;
	box_muller(w, z);
	return z[0];
}

/*
 * Rejection without modulo bias: a draw x is kept when x >= 2^W mod n
 * (W = 32 or 64), which leaves a multiple of n equally likely values, so
 * x mod n is uniform.  Less than half of the draws are ever rejected.
 */
uint64_t
dm_rng_next_below(struct dm_rng *r, uint64_t n)
{
	if (n <= 1)
		return 0;
	if (n <= UINT64_C(0xffffffff)) {
		uint32_t m = (uint32_t)n, t = (uint32_t)(-m) % m, x;

		do
			x = dm_rng_next_u32(r);
		while (x < t);
		return x % m;
	} else {
		uint64_t t = (-n) % n, x;

		do {
			x = (uint64_t)dm_rng_next_u32(r) << 32;
			x |= dm_rng_next_u32(r);
		} while (x < t);
		return x % n;
	}
}

void
dm_rng_shuffle(struct dm_rng *r, int64_t *idx, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)dm_rng_next_below(r, i);
		int64_t t = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = t;
	}
}
