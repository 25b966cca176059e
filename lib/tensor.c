/* tensor.c — tensor allocation, shapes and dtype conversion. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dm_base.h"
#include "dm_tensor.h"

static const struct {
	const char *name, *alias;
	size_t size;
} dtypes[DM_DTYPE_COUNT] = {
	[DM_DTYPE_F64] = {"F64", "float64", 8},
	[DM_DTYPE_F32] = {"F32", "float32", 4},
	[DM_DTYPE_F16] = {"F16", "float16", 2},
	[DM_DTYPE_BF16] = {"BF16", "bfloat16", 2},
	[DM_DTYPE_I64] = {"I64", "int64", 8},
	[DM_DTYPE_I32] = {"I32", "int32", 4},
	[DM_DTYPE_I16] = {"I16", "int16", 2},
	[DM_DTYPE_I8] = {"I8", "int8", 1},
	[DM_DTYPE_U8] = {"U8", "uint8", 1},
	[DM_DTYPE_BOOL] = {"BOOL", "bool", 1},
};

size_t
dm_dtype_size(enum dm_dtype dt)
{
	return (unsigned)dt < DM_DTYPE_COUNT ? dtypes[dt].size : 0;
}

const char *
dm_dtype_name(enum dm_dtype dt)
{
	return (unsigned)dt < DM_DTYPE_COUNT ? dtypes[dt].name : "?";
}

int
dm_dtype_parse(const char *s, enum dm_dtype *out)
{
	for (int i = 0; i < DM_DTYPE_COUNT; i++)
		if (strcasecmp(s, dtypes[i].name) == 0 ||
		    strcasecmp(s, dtypes[i].alias) == 0) {
			*out = (enum dm_dtype)i;
			return 0;
		}
	return dm_seterr("unknown dtype '%s'", s);
}

int
dm_dtype_is_float(enum dm_dtype dt)
{
	return dt == DM_DTYPE_F64 || dt == DM_DTYPE_F32 || dt == DM_DTYPE_F16 ||
	    dt == DM_DTYPE_BF16;
}

int
dm_shape_numel(int ndim, const int64_t *shape, enum dm_dtype dt,
    size_t *numel, size_t *nbytes)
{
	size_t n = 1, b;

	if (ndim < 0 || ndim > DM_MAX_DIMS)
		return dm_seterr("%d dimensions (at most %d)", ndim, DM_MAX_DIMS);
	if ((unsigned)dt >= DM_DTYPE_COUNT)
		return dm_seterr("bad dtype");
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return dm_seterr("negative dimension %lld",
			    (long long)shape[i]);
		if ((uint64_t)shape[i] > SIZE_MAX ||
		    dm_mul_size(n, (size_t)shape[i], &n) == -1)
			return dm_seterr("shape too large (element count overflows)");
	}
	if (dm_mul_size(n, dtypes[dt].size, &b) == -1 || b > (size_t)INT64_MAX)
		return dm_seterr("shape too large (byte size overflows)");
	if (numel)
		*numel = n;
	if (nbytes)
		*nbytes = b;
	return 0;
}

/* Allocation size: a multiple of 64 (aligned_alloc wants that), never 0. */
static size_t
cap64(size_t n)
{
	return n ? (n + 63) & ~(size_t)63 : 64;
}

static struct dm_tensor *
tensor_alloc(enum dm_dtype dt, int ndim, const int64_t *shape)
{
	struct dm_tensor *t;
	size_t nbytes;

	if (dm_shape_numel(ndim, shape, dt, NULL, &nbytes) == -1)
		return NULL;
	if ((t = dm_calloc(1, sizeof *t)) == NULL)
		return NULL;
	t->dtype = dt;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	t->nbytes = nbytes;
	return t;
}

struct dm_tensor *
dm_tensor_new_dtype(enum dm_dtype dt, int ndim, const int64_t *shape)
{
	struct dm_tensor *t = tensor_alloc(dt, ndim, shape);

	if (t == NULL)
		return NULL;
	/* 64-byte alignment: good for SIMD and any dtype. */
	if ((t->data = aligned_alloc(64, cap64(t->nbytes))) == NULL) {
		dm_seterr("out of memory (%zu bytes)", t->nbytes);
		free(t);
		return NULL;
	}
	memset(t->data, 0, cap64(t->nbytes));
	t->owns_data = 1;
	return t;
}

struct dm_tensor *
dm_tensor_new(int ndim, const int64_t *shape)
{
	return dm_tensor_new_dtype(DM_DTYPE_F32, ndim, shape);
}

struct dm_tensor *
dm_tensor_view(enum dm_dtype dt, int ndim, const int64_t *shape, void *data)
{
	struct dm_tensor *t = tensor_alloc(dt, ndim, shape);

	if (t != NULL)
		t->data = data;
	return t;
}

struct dm_tensor *
dm_tensor_clone(const struct dm_tensor *t)
{
	struct dm_tensor *c = dm_tensor_new_dtype(t->dtype, t->ndim, t->shape);

	if (c == NULL)
		return NULL;
	memcpy(c->data, t->data, t->nbytes);
	if (t->name != NULL && dm_tensor_set_name(c, t->name) == -1) {
		dm_tensor_free(c);
		return NULL;
	}
	return c;
}

void
dm_tensor_free(struct dm_tensor *t)
{
	if (t == NULL)
		return;
	if (t->owns_data)
		free(t->data);
	free(t->name);
	free(t);
}

int
dm_tensor_set_name(struct dm_tensor *t, const char *name)
{
	char *s = dm_strdup(name);

	if (s == NULL)
		return -1;
	free(t->name);
	t->name = s;
	return 0;
}

size_t
dm_tensor_numel(const struct dm_tensor *t)
{
	return t->nbytes / dtypes[t->dtype].size;
}

int
dm_tensor_reshape(struct dm_tensor *t, int ndim, const int64_t *shape)
{
	size_t nbytes;
	char a[128], b[128];

	if (dm_shape_numel(ndim, shape, t->dtype, NULL, &nbytes) == -1)
		return -1;
	if (nbytes != t->nbytes) {
		dm_shape_format(a, sizeof a, t->ndim, t->shape);
		dm_shape_format(b, sizeof b, ndim, shape);
		return dm_seterr("cannot reshape %s to %s", a, b);
	}
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	return 0;
}

int
dm_tensor_own(struct dm_tensor *t)
{
	void *p;

	if (t->owns_data)
		return 0;
	if ((p = aligned_alloc(64, cap64(t->nbytes))) == NULL)
		return dm_seterr("out of memory (%zu bytes)", t->nbytes);
	memcpy(p, t->data, t->nbytes);
	t->data = p;
	t->owns_data = 1;
	return 0;
}

void
dm_shape_format(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t k = 0;

	k += (size_t)snprintf(buf, n, "[");
	for (int i = 0; i < ndim && k < n; i++)
		k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "",
		    (long long)shape[i]);
	if (k < n)
		snprintf(buf + k, n - k, "]");
}

/* IEEE binary16 <-> binary32, exact for every half value, round to nearest
 * even in the other direction (overflow to infinity, NaN kept quiet). */
float
dm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	float f;

	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		f = ldexpf((float)man, -24);
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (man << 13);
	else
		bits = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &bits, sizeof f);
	return f;
}

uint16_t
dm_f32_to_f16(float f)
{
	uint32_t x, sign, absx;

	memcpy(&x, &f, sizeof x);
	sign = (x >> 16) & 0x8000;
	absx = x & 0x7fffffffu;
	if (absx > 0x7f800000u) /* NaN: keep it quiet, keep top payload bits */
		return (uint16_t)(sign | 0x7e00 | ((absx >> 13) & 0x3ff));
	if (absx >= 0x477ff000u) /* rounds to >= 65520: infinity */
		return (uint16_t)(sign | 0x7c00);
	if (absx < 0x38800000u) {
		/* result is subnormal (or zero): round absx * 2^24 to integer */
		float a;
		memcpy(&a, &absx, sizeof a);
		float m = nearbyintf(a * 16777216.0f); /* exact scaling by 2^24 */
		return (uint16_t)(sign | (uint16_t)m);
	}
	/* normal: rebias exponent, round mantissa from 23 to 10 bits */
	uint32_t r = absx - 0x38000000u; /* exponent 127 -> 15 */
	uint32_t lsb = (r >> 13) & 1;
	r += 0xfff + lsb;
	return (uint16_t)(sign | (r >> 13));
}

float
dm_bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof f);
	return f;
}

uint16_t
dm_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof x);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

double
dm_tensor_get(const struct dm_tensor *t, size_t i)
{
	const void *p = t->data;

	switch (t->dtype) {
	case DM_DTYPE_F64: return ((const double *)p)[i];
	case DM_DTYPE_F32: return ((const float *)p)[i];
	case DM_DTYPE_F16: return dm_f16_to_f32(((const uint16_t *)p)[i]);
	case DM_DTYPE_BF16: return dm_bf16_to_f32(((const uint16_t *)p)[i]);
	case DM_DTYPE_I64: return (double)((const int64_t *)p)[i];
	case DM_DTYPE_I32: return ((const int32_t *)p)[i];
	case DM_DTYPE_I16: return ((const int16_t *)p)[i];
	case DM_DTYPE_I8: return ((const int8_t *)p)[i];
	case DM_DTYPE_U8: return ((const uint8_t *)p)[i];
	case DM_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
	default: return NAN;
	}
}

/* Store v (already checked to be representable) as element i. */
static void
put_int(void *p, enum dm_dtype dt, size_t i, int64_t v)
{
	switch (dt) {
	case DM_DTYPE_I64: ((int64_t *)p)[i] = v; break;
	case DM_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case DM_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; break;
	case DM_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
	case DM_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
	case DM_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
	default: break;
	}
}

static int
int_range(enum dm_dtype dt, double *lo, double *hi)
{
	switch (dt) {
	case DM_DTYPE_I64: *lo = -9223372036854775808.0; *hi = 9223372036854775807.0; break;
	case DM_DTYPE_I32: *lo = -2147483648.0; *hi = 2147483647.0; break;
	case DM_DTYPE_I16: *lo = -32768; *hi = 32767; break;
	case DM_DTYPE_I8: *lo = -128; *hi = 127; break;
	case DM_DTYPE_U8: *lo = 0; *hi = 255; break;
	default: return -1;
	}
	return 0;
}

static int64_t
get_int(const void *p, enum dm_dtype dt, size_t i)
{
	switch (dt) {
	case DM_DTYPE_I64: return ((const int64_t *)p)[i];
	case DM_DTYPE_I32: return ((const int32_t *)p)[i];
	case DM_DTYPE_I16: return ((const int16_t *)p)[i];
	case DM_DTYPE_I8: return ((const int8_t *)p)[i];
	case DM_DTYPE_U8: return ((const uint8_t *)p)[i];
	case DM_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
	default: return 0;
	}
}

int
dm_tensor_convert(struct dm_tensor *t, enum dm_dtype to)
{
	struct dm_tensor *n;
	size_t numel, i;

	if (t->dtype == to)
		return 0;
	numel = dm_tensor_numel(t);
	if ((n = dm_tensor_new_dtype(to, t->ndim, t->shape)) == NULL)
		return -1;
	if (!dm_dtype_is_float(t->dtype) && !dm_dtype_is_float(to)) {
		/* integer to integer: exact, range-checked */
		double lo = 0, hi = 1;
		if (to != DM_DTYPE_BOOL)
			int_range(to, &lo, &hi);
		for (i = 0; i < numel; i++) {
			int64_t v = get_int(t->data, t->dtype, i);
			if (to != DM_DTYPE_BOOL && ((double)v < lo || (double)v > hi))
				goto range;
			put_int(n->data, to, i, v);
		}
	} else if (!dm_dtype_is_float(to)) {
		double lo = 0, hi = 1;
		if (to != DM_DTYPE_BOOL)
			int_range(to, &lo, &hi);
		for (i = 0; i < numel; i++) {
			double v = dm_tensor_get(t, i);
			if (isnan(v)) {
				dm_tensor_free(n);
				return dm_seterr("cannot convert NaN to %s",
				    dm_dtype_name(to));
			}
			if (to == DM_DTYPE_BOOL) {
				put_int(n->data, to, i, v != 0);
				continue;
			}
			v = nearbyint(v);
			/* hi of I64 is 2^63 in double: refuse it */
			if (v < lo || v > hi || (to == DM_DTYPE_I64 && v >= hi))
				goto range;
			put_int(n->data, to, i, (int64_t)v);
		}
	} else {
		for (i = 0; i < numel; i++) {
			double v = dm_tensor_get(t, i);
			switch (to) {
			case DM_DTYPE_F64: ((double *)n->data)[i] = v; break;
			case DM_DTYPE_F32: ((float *)n->data)[i] = (float)v; break;
			case DM_DTYPE_F16:
				((uint16_t *)n->data)[i] = dm_f32_to_f16((float)v);
				break;
			case DM_DTYPE_BF16:
				((uint16_t *)n->data)[i] = dm_f32_to_bf16((float)v);
				break;
			default: break;
			}
		}
	}
	if (t->owns_data)
		free(t->data);
	t->data = n->data;
	t->nbytes = n->nbytes;
	t->dtype = to;
	t->owns_data = 1;
	n->data = NULL;
	dm_tensor_free(n);
	return 0;
range:
	dm_tensor_free(n);
	return dm_seterr("value %g out of range for %s",
	    dm_tensor_get(t, i), dm_dtype_name(to));
}
