/* dm_tensor.h — dense tensors: contiguous, row-major, one dtype, a name. */
#ifndef DM_TENSOR_H
#define DM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum dm_dtype {
	DM_DTYPE_F64,
	DM_DTYPE_F32,
	DM_DTYPE_F16,
	DM_DTYPE_BF16,
	DM_DTYPE_I64,
	DM_DTYPE_I32,
	DM_DTYPE_I16,
	DM_DTYPE_I8,
	DM_DTYPE_U8,
	DM_DTYPE_BOOL,
	DM_DTYPE_COUNT
};

#define DM_MAX_DIMS 8

struct dm_tensor {
	char *name;               /* owned; may be NULL */
	enum dm_dtype dtype;
	int ndim;                 /* 0 = scalar (one element) */
	int64_t shape[DM_MAX_DIMS];
	void *data;               /* nbytes bytes, aligned for dtype */
	size_t nbytes;
	int owns_data;            /* 1: data is malloc'ed and freed with the tensor */
};

size_t dm_dtype_size(enum dm_dtype dt);
/* safetensors spelling: "F32", "BF16", "BOOL", ... */
const char *dm_dtype_name(enum dm_dtype dt);
/* Parses "F32" (or lower case "f32", "float32"); -1 if unknown. */
int dm_dtype_parse(const char *s, enum dm_dtype *out);
int dm_dtype_is_float(enum dm_dtype dt);

/* Number of elements for a shape; -1 (with reason) on negative dims,
 * too many dims, or overflow of the element count or byte size. */
int dm_shape_numel(int ndim, const int64_t *shape, enum dm_dtype dt,
    size_t *numel, size_t *nbytes);

/* New zero-filled F32 tensor. */
struct dm_tensor *dm_tensor_new(int ndim, const int64_t *shape);
/* New zero-filled tensor of any dtype. */
struct dm_tensor *dm_tensor_new_dtype(enum dm_dtype dt, int ndim,
    const int64_t *shape);
/* A tensor that points at data it does not own (must outlive the view). */
struct dm_tensor *dm_tensor_view(enum dm_dtype dt, int ndim,
    const int64_t *shape, void *data);
/* Deep copy (always owns its data). */
struct dm_tensor *dm_tensor_clone(const struct dm_tensor *t);
void dm_tensor_free(struct dm_tensor *t);

int dm_tensor_set_name(struct dm_tensor *t, const char *name);
size_t dm_tensor_numel(const struct dm_tensor *t);
/* Change the shape, keeping the element count. */
int dm_tensor_reshape(struct dm_tensor *t, int ndim, const int64_t *shape);
/* Make t own its data (copy it if it is a view). */
int dm_tensor_own(struct dm_tensor *t);
/* Convert in place to another dtype.  Float to integer rounds to nearest and
 * refuses NaN and values out of range; to BOOL is "nonzero"; to F16/BF16
 * rounds to nearest even. */
int dm_tensor_convert(struct dm_tensor *t, enum dm_dtype to);
/* Element i as double (any dtype). */
double dm_tensor_get(const struct dm_tensor *t, size_t i);
/* Format the shape as "[2, 3]" into buf. */
void dm_shape_format(char *buf, size_t n, int ndim, const int64_t *shape);

/* Scalar half-precision conversions (round to nearest even). */
float dm_f16_to_f32(uint16_t h);
uint16_t dm_f32_to_f16(float f);
float dm_bf16_to_f32(uint16_t h);
uint16_t dm_f32_to_bf16(float f);

/* Summary statistics in double.  min, max, mean and m2 (the sum of squared
 * deviations from the mean) cover the n finite elements; NaN and +-Inf are
 * only counted.  With n == 0, min = +Inf and max = -Inf. */
struct dm_stats {
	size_t n, nan, inf;
	double min, max, mean, m2;
};
/* One pass over t->data (OpenMP over fixed chunks merged in order, so the
 * result does not depend on the thread count); -1 only if out of memory. */
int dm_tensor_stats(const struct dm_tensor *t, struct dm_stats *s);
void dm_stats_init(struct dm_stats *s);
/* a := statistics of the union of a and b (Chan, Golub and LeVeque). */
void dm_stats_merge(struct dm_stats *a, const struct dm_stats *b);
/* Population standard deviation sqrt(m2 / n); NaN if n == 0. */
double dm_stats_std(const struct dm_stats *s);

#endif
