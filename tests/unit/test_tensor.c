/* test_tensor.c — shapes, allocation, dtype conversion. */
#include <stdint.h>
#include <string.h>

#include "dm.h"
#include "test.h"

DM_TEST(tensor_new_zero_and_shape)
{
	int64_t shape[3] = {2, 3, 4};
	struct dm_tensor *t = dm_tensor_new(3, shape);

	CHECK(t != NULL);
	CHECK_EQ_INT(dm_tensor_numel(t), 24);
	CHECK_EQ_INT(t->nbytes, 96);
	for (int i = 0; i < 24; i++)
		CHECK(((float *)t->data)[i] == 0.0f);
	int64_t s2[2] = {6, 4};
	CHECK_OK(dm_tensor_reshape(t, 2, s2));
	int64_t s3[2] = {5, 5};
	CHECK_FAILS(dm_tensor_reshape(t, 2, s3), "cannot reshape");
	dm_tensor_free(t);
	dm_tensor_free(NULL);
}

DM_TEST(tensor_shape_overflow_refused)
{
	int64_t big[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 4};
	int64_t neg[1] = {-1};
	size_t n;

	CHECK_FAILS(dm_shape_numel(3, big, DM_DTYPE_F32, &n, NULL), "overflow");
	CHECK_FAILS(dm_shape_numel(1, neg, DM_DTYPE_F32, &n, NULL), "negative");
	CHECK_FAILS(dm_shape_numel(9, big, DM_DTYPE_F32, &n, NULL), "dimensions");
	CHECK_OK(dm_shape_numel(0, NULL, DM_DTYPE_F64, &n, NULL));
	CHECK_EQ_INT(n, 1);
}

DM_TEST(f16_known_values)
{
	/* (half bits, value) pairs from IEEE 754 binary16 */
	static const struct { uint16_t h; float f; } kv[] = {
		{0x0000, 0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f},
		{0x7bff, 65504.0f}, {0x0400, 6.103515625e-05f},
		{0x0001, 5.9604644775390625e-08f}, {0x3555, 0.333251953125f},
		{0x7c00, INFINITY}, {0xfc00, -INFINITY},
	};
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
		CHECK(dm_f16_to_f32(kv[i].h) == kv[i].f);
		CHECK_EQ_INT(dm_f32_to_f16(kv[i].f), kv[i].h);
	}
	CHECK(isnan(dm_f16_to_f32(0x7e00)));
	CHECK_EQ_INT(dm_f32_to_f16(NAN) & 0x7e00, 0x7e00);
	/* rounding: 1 + 2^-11 is halfway between 1 and 1+2^-10: to even (1) */
	CHECK_EQ_INT(dm_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	CHECK_EQ_INT(dm_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	CHECK_EQ_INT(dm_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	CHECK_EQ_INT(dm_f32_to_f16(65520.0f), 0x7c00);   /* overflows */
	CHECK_EQ_INT(dm_f32_to_f16(65519.0f), 0x7bff);
	CHECK_EQ_INT(dm_f32_to_f16(0x1p-25f), 0x0000);   /* half of min subnormal: to even */
	CHECK_EQ_INT(dm_f32_to_f16(0x1.8p-24f), 0x0002); /* 1.5 ulp: to even */
	/* every half value round-trips exactly */
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = dm_f16_to_f32((uint16_t)h);
		if (isnan(f))
			continue;
		if (dm_f32_to_f16(f) != h)
			CHECK_MSG(0, "half 0x%04x does not round-trip", h);
	}
}

DM_TEST(bf16_known_values)
{
	CHECK_EQ_INT(dm_f32_to_bf16(1.0f), 0x3f80);
	CHECK(dm_bf16_to_f32(0x3f80) == 1.0f);
	CHECK(dm_bf16_to_f32(0xc0490000u >> 16) == -3.140625f);
	/* 1 + 2^-8 is halfway: to even */
	CHECK_EQ_INT(dm_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
	CHECK_EQ_INT(dm_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
	CHECK(isnan(dm_bf16_to_f32(dm_f32_to_bf16(NAN))));
	CHECK_EQ_INT(dm_f32_to_bf16(INFINITY), 0x7f80);
}

DM_TEST(tensor_convert_between_dtypes)
{
	int64_t shape[1] = {5};
	struct dm_tensor *t = dm_tensor_new(1, shape);
	float *x = t->data;

	x[0] = -1.5f; x[1] = 0.0f; x[2] = 2.5f; x[3] = 100.4f; x[4] = -128.0f;
	CHECK_OK(dm_tensor_convert(t, DM_DTYPE_I8));
	CHECK_EQ_INT(((int8_t *)t->data)[0], -2);   /* nearest, ties to even */
	CHECK_EQ_INT(((int8_t *)t->data)[2], 2);
	CHECK_EQ_INT(((int8_t *)t->data)[3], 100);
	CHECK_EQ_INT(((int8_t *)t->data)[4], -128);
	CHECK_OK(dm_tensor_convert(t, DM_DTYPE_F64));
	CHECK(((double *)t->data)[4] == -128.0);
	CHECK_OK(dm_tensor_convert(t, DM_DTYPE_I16));
	CHECK_FAILS(dm_tensor_convert(t, DM_DTYPE_U8), "out of range");
	CHECK_EQ_INT(t->dtype, DM_DTYPE_I16);       /* unchanged on failure */
	CHECK_OK(dm_tensor_convert(t, DM_DTYPE_BOOL));
	CHECK_EQ_INT(((uint8_t *)t->data)[1], 0);
	CHECK_EQ_INT(((uint8_t *)t->data)[0], 1);
	dm_tensor_free(t);

	t = dm_tensor_new(1, shape);
	((float *)t->data)[2] = NAN;
	CHECK_FAILS(dm_tensor_convert(t, DM_DTYPE_I32), "NaN");
	((float *)t->data)[2] = 3e9f;
	CHECK_FAILS(dm_tensor_convert(t, DM_DTYPE_I32), "out of range");
	((float *)t->data)[2] = 9.3e18f;
	CHECK_FAILS(dm_tensor_convert(t, DM_DTYPE_I64), "out of range");
	dm_tensor_free(t);
}

DM_TEST(dtype_names)
{
	enum dm_dtype dt;

	for (int i = 0; i < DM_DTYPE_COUNT; i++) {
		CHECK_OK(dm_dtype_parse(dm_dtype_name((enum dm_dtype)i), &dt));
		CHECK_EQ_INT(dt, i);
	}
	CHECK_OK(dm_dtype_parse("bfloat16", &dt));
	CHECK_EQ_INT(dt, DM_DTYPE_BF16);
	CHECK_FAILS(dm_dtype_parse("F8_E4M3", &dt), "unknown dtype");
}
