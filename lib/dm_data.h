/* dm_data.h — data sets: the 2-D toy generators, the Gaussian prior,
 * IDX and PNG importers, train/test splits, finiteness checks.  The exact
 * definition of every generator is in dm-data(1). */
#ifndef DM_DATA_H
#define DM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "dm_io.h"
#include "dm_tensor.h"

/* Per-set parameters; a field left at its "unset" value takes the set's
 * default.  Which fields apply to which set: dm_data_check(). */
struct dm_data_opts {
	double noise;          /* NaN: default (see dm-data(1)) */
	double factor;         /* circles: inner radius; NaN: 0.5 */
	int classes;           /* pinwheel arms, rings; 0: default */
	int ndim;              /* gauss: 0 (= [2]), 1 ([dim]) or 3 ([C,H,W]) */
	int64_t shape[3];      /* gauss sample shape */
};
void dm_data_opts_init(struct dm_data_opts *o);

/* 1 if name is a built-in generator (moons, ..., gauss; not gmm). */
int dm_data_known(const char *name);
/* Validate name and options (unknown set, an option that does not apply,
 * values out of range); -1 with reason. */
int dm_data_check(const char *name, const struct dm_data_opts *o);
/* Elements per sample (2 for the toy sets). */
size_t dm_data_dim(const char *name, const struct dm_data_opts *o);
/* 1 if the set has class labels. */
int dm_data_has_labels(const char *name);
/* The canonical "name:key=value,..." with defaults filled in. */
int dm_data_source(const char *name, const struct dm_data_opts *o,
    char *buf, size_t len);
/* Samples first .. first+n-1 into x [n, dim] and y [n] (y may be NULL).
 * Sample i draws only from (seed, dm_noise_stream(DM_NOISE_DATA, i)). */
int dm_data_sample(const char *name, const struct dm_data_opts *o,
    int64_t first, int64_t n, uint64_t seed, float *x, int64_t *y);
/* Add x [n, ...] F32, y [n] I64 (where the set has labels) and the
 * metadata dm.kind=data, dm.source to out. */
int dm_data_generate(const char *name, const struct dm_data_opts *o,
    int64_t n, uint64_t seed, struct dm_file *out);

/* Finiteness: -1 with "NAME: row R has NaN" (or Inf) for the first bad
 * element of a float tensor (row = index along the first dimension). */
int dm_data_check_finite(const struct dm_tensor *t);
/* Every float tensor of f. */
int dm_data_check_file(const struct dm_file *f);

/* IDX (LeCun's MNIST format, unsigned bytes only): big-endian magic
 * 0x0000 08 NDIM, NDIM big-endian u32 sizes, then the bytes.  The whole
 * length must match.  The result is a U8 tensor of that shape. */
int dm_idx_parse(const unsigned char *buf, size_t len,
    struct dm_tensor **out);
/* The same from a file, gzip-compressed or not. */
int dm_idx_read(const char *path, struct dm_tensor **out);
/* Images IDX [N, H, W] (and labels IDX [N] or NULL) into out: x [N, 1, H,
 * W] F32 = v/127.5 - 1, y [N] I64, dm.kind=data, dm.source. */
int dm_data_import_idx(const char *images, const char *labels,
    struct dm_file *out);

/* One PNG image as floats [C, H, W] in [-1, 1]: v/(M/2) - 1 with M = 255
 * or 65535.  Palettes and low bit depths are expanded, transparency
 * becomes an alpha channel.  C is 1 (gray), 2 (gray+alpha), 3 (RGB) or
 * 4 (RGBA); with DM_PNG_RGB every image becomes RGB (gray replicated,
 * alpha dropped). */
#define DM_PNG_RGB 0x1
struct dm_image {
	int c, h, w;
	float *data;           /* [c * h * w], malloc'ed */
};
int dm_png_read(const char *path, unsigned flags, struct dm_image *img);
void dm_image_free(struct dm_image *img);
/* "gray", "gray+alpha", "RGB", "RGBA" for C = 1..4. */
const char *dm_image_channels_name(int c);
/* Many PNG files into out: x [N, C, H, W] F32; all must share C, H and W.
 * labels (or NULL) gives y [N] I64.  dm.kind=data, dm.source=source. */
int dm_data_import_png(const char *const *paths, size_t n,
    const int64_t *labels, unsigned flags, const char *source,
    struct dm_file *out);

/* Split the rows of every tensor whose first dimension is N (the first
 * dimension of x) into train (all but ntest rows) and test (ntest rows);
 * other tensors and all metadata go to both.  Without shuffle the test
 * set is the last ntest rows; with shuffle the rows are permuted first by
 * (seed, dm_noise_stream(DM_NOISE_DATA, 0)).  Refuses NaN/Inf. */
int dm_data_split(const struct dm_file *in, int64_t ntest, int shuffle,
    uint64_t seed, struct dm_file **train, struct dm_file **test);

#endif
