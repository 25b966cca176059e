/* test_npy.c — NumPy .npy reading and writing against byte strings built
 * from the format description (numpy.lib.format) and bytes np.save wrote. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "internal.h"
#include "test.h"

/* A 64-byte aligned buffer, so that a file's offsets are its alignment. */
struct npybuf {
	unsigned char *p;
	size_t n, cap;
};

static void
put(struct npybuf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = (b->n + n + 4095) & ~(size_t)4095;
		unsigned char *q = aligned_alloc(64, cap);
		if (b->n)
			memcpy(q, b->p, b->n);
		free(b->p);
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

/* The preamble: magic, version, header length (2 bytes LE in 1.x, 4 in
 * 2.x and 3.x). */
static void
preamble(struct npybuf *b, int major, int minor, uint32_t hlen)
{
	unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

	pre[6] = (unsigned char)major;
	pre[7] = (unsigned char)minor;
	pre[8] = hlen & 0xff;
	pre[9] = (hlen >> 8) & 0xff;
	pre[10] = (hlen >> 16) & 0xff;
	pre[11] = (hlen >> 24) & 0xff;
	put(b, pre, major == 1 ? 10 : 12);
}

/* A whole file: dict text, spaces up to a multiple of align (0: none), a
 * newline, then the data. */
static void
build(struct npybuf *b, int major, const char *dict, size_t align,
    const void *data, size_t n)
{
	size_t pre = major == 1 ? 10 : 12, hlen = strlen(dict) + 1;

	if (align)
		while ((pre + hlen) % align)
			hlen++;
	b->n = 0;
	preamble(b, major, 0, (uint32_t)hlen);
	put(b, dict, strlen(dict));
	for (size_t i = strlen(dict) + 1; i < hlen; i++)
		put(b, " ", 1);
	put(b, "\n", 1);
	put(b, data, n);
}

static struct dm_file *
parse(struct npybuf *b)
{
	struct dm_file *f = dm_file_new();

	if (f == NULL)
		return NULL;
	dm_clearerr();
	if (dm_npy_parse(f, b->p, b->n) == -1) {
		dm_test_fail(__FILE__, __LINE__, "parse failed: %s", dm_errstr());
		dm_file_free(f);
		return NULL;
	}
	return f;
}

/* Parsing must fail with a reason that contains substr. */
static void
refused(struct npybuf *b, const char *substr, int line)
{
	struct dm_file *f = dm_file_new();

	dm_clearerr();
	if (dm_npy_parse(f, b->p, b->n) != -1)
		dm_test_fail(__FILE__, line, "accepted; want \"%s\"", substr);
	else if (strstr(dm_errstr(), substr) == NULL)
		dm_test_fail(__FILE__, line, "reason \"%s\" lacks \"%s\"",
		    dm_errstr(), substr);
	else if (f->ntensors != 0)
		dm_test_fail(__FILE__, line, "tensor added on failure");
	dm_file_free(f);
}
#define REFUSED(b, s) refused((b), (s), __LINE__)

static int
same_shape(const struct dm_tensor *t, int ndim, const int64_t *shape)
{
	if (t->ndim != ndim)
		return 0;
	for (int i = 0; i < ndim; i++)
		if (t->shape[i] != shape[i])
			return 0;
	return 1;
}

#define SP10 "          "
#define SP60 SP10 SP10 SP10 SP10 SP10 SP10

#define DICT(descr, shape) \
	"{'descr': '" descr "', 'fortran_order': False, 'shape': " shape ", }"

DM_TEST(npy_every_dtype_v1)
{
	/* the data as little-endian bytes, with the values they stand for */
	static const struct {
		const char *descr;
		enum dm_dtype dt;
		unsigned char bytes[16];
		double v0, v1;
	} c[] = {
		{"<f8", DM_DTYPE_F64, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f,
		    0, 0, 0, 0, 0, 0, 0x02, 0xc0}, 1.5, -2.25},
		{"<f4", DM_DTYPE_F32, {0, 0, 0xc0, 0x3f, 0, 0, 0x10, 0xc0},
		    1.5, -2.25},
		{"<f2", DM_DTYPE_F16, {0x00, 0x3e, 0x80, 0xc0}, 1.5, -2.25},
		{"<i8", DM_DTYPE_I64, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0x00, 0x01, 0, 0, 0, 0, 0, 0}, -2, 256},
		{"<i4", DM_DTYPE_I32, {0xfe, 0xff, 0xff, 0xff, 0x00, 0x01, 0, 0},
		    -2, 256},
		{"<i2", DM_DTYPE_I16, {0xfe, 0xff, 0x00, 0x01}, -2, 256},
		{"|i1", DM_DTYPE_I8, {0x80, 0x7f}, -128, 127},
		{"|u1", DM_DTYPE_U8, {0xff, 0x07}, 255, 7},
		{"<u1", DM_DTYPE_U8, {0x00, 0x80}, 0, 128},
		{"=i1", DM_DTYPE_I8, {0xff, 0x01}, -1, 1},
		{"|b1", DM_DTYPE_BOOL, {0x01, 0x00}, 1, 0},
		{"=f4", DM_DTYPE_F32, {0, 0, 0xc0, 0x3f, 0, 0, 0x10, 0xc0},
		    1.5, -2.25},
		{">u1", DM_DTYPE_U8, {0x01, 0x02}, 1, 2},
	};
	struct npybuf b = {0};
	char dict[128];
	int64_t two[1] = {2};

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		size_t esz = dm_dtype_size(c[i].dt);
		snprintf(dict, sizeof dict, DICT("%s", "(2,)"), c[i].descr);
		build(&b, 1, dict, 64, c[i].bytes, 2 * esz);
		CHECK_EQ_INT(b.n, 128 + 2 * esz);
		struct dm_file *f = parse(&b);
		if (f == NULL)
			continue;
		CHECK_EQ_INT(f->ntensors, 1);
		CHECK_EQ_INT(f->format, DM_FORMAT_NPY);
		struct dm_tensor *t = dm_file_get(f, "x");
		CHECK(t != NULL);
		if (t != NULL) {
			CHECK_EQ_INT(t->dtype, c[i].dt);
			CHECK(same_shape(t, 1, two));
			CHECK_EQ_INT(t->nbytes, 2 * esz);
			CHECK_MSG(dm_tensor_get(t, 0) == c[i].v0 &&
			    dm_tensor_get(t, 1) == c[i].v1, "%s: got %g %g",
			    c[i].descr, dm_tensor_get(t, 0), dm_tensor_get(t, 1));
			/* aligned little-endian C order: zero copy */
			CHECK_EQ_INT(t->owns_data, 0);
			CHECK(t->data == b.p + 128);
		}
		dm_file_free(f);
	}
	free(b.p);
}

/* A literal file exactly as np.save(np.arange(6, dtype='<i2').reshape(2, 3))
 * writes it (numpy 1.24: 118-byte header, data at 128). */
DM_TEST(npy_literal_numpy_file)
{
	static const char hdr[] = "\x93NUMPY\x01\x00\x76\x00"
	    "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }"
	    SP10 SP10 SP10 SP10 SP10 "        \n"
	    "\x00\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00";
	struct npybuf b = {0};
	int64_t shape[2] = {2, 3};

	put(&b, hdr, sizeof hdr - 1);
	CHECK_EQ_INT(b.n, 140);
	struct dm_file *f = parse(&b);
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		CHECK_STR(t->name, "x");
		CHECK_EQ_INT(t->dtype, DM_DTYPE_I16);
		CHECK(same_shape(t, 2, shape));
		for (int i = 0; i < 6; i++)
			CHECK_EQ_INT(((int16_t *)t->data)[i], i);
	}
	dm_file_free(f);
	free(b.p);
}

DM_TEST(npy_versions_2_and_3)
{
	static const float v[3] = {0.5f, -1.0f, 3.0f};
	struct npybuf b = {0};
	int64_t three[1] = {3};

	for (int major = 2; major <= 3; major++) {
		build(&b, major, DICT("<f4", "(3,)"), 64, v, sizeof v);
		CHECK_EQ_INT(b.p[6], major);
		CHECK_EQ_INT(b.p[8] | b.p[9] << 8, 116);   /* 12 + 116 = 128 */
		CHECK_EQ_INT(b.p[10] | b.p[11], 0);
		struct dm_file *f = parse(&b);
		if (f != NULL) {
			struct dm_tensor *t = f->tensors[0];
			CHECK(same_shape(t, 1, three));
			CHECK(memcmp(t->data, v, sizeof v) == 0);
		}
		dm_file_free(f);
	}
	free(b.p);
}

DM_TEST(npy_big_endian)
{
	/* 1.5 and -0.0 as big-endian IEEE doubles */
	static const unsigned char f8[16] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
	    0x80, 0, 0, 0, 0, 0, 0, 0};
	/* -2 and 0x01020304 as big-endian int32 */
	static const unsigned char i4[8] = {0xff, 0xff, 0xff, 0xfe,
	    0x01, 0x02, 0x03, 0x04};
	/* 1.0 (0x3c00) and -2.0 (0xc000) as big-endian halves, then 65504 */
	static const unsigned char f2[6] = {0x3c, 0x00, 0xc0, 0x00, 0x7b, 0xff};
	struct npybuf b = {0};
	struct dm_file *f;
	struct dm_tensor *t;

	for (size_t align = 0; align <= 64; align += 64) {
		/* align 0: data at an odd offset, so the reader must copy */
		build(&b, 1, DICT(">f8", "(2,)"), align, f8, sizeof f8);
		if ((f = parse(&b)) != NULL) {
			t = f->tensors[0];
			CHECK_EQ_INT(t->dtype, DM_DTYPE_F64);
			CHECK(((double *)t->data)[0] == 1.5);
			CHECK(((double *)t->data)[1] == 0.0 &&
			    signbit(((double *)t->data)[1]));
			CHECK_EQ_INT(t->owns_data, align == 0);
		}
		dm_file_free(f);

		build(&b, 1, DICT(">i4", "(2,)"), align, i4, sizeof i4);
		if ((f = parse(&b)) != NULL) {
			t = f->tensors[0];
			CHECK_EQ_INT(t->dtype, DM_DTYPE_I32);
			CHECK_EQ_INT(((int32_t *)t->data)[0], -2);
			CHECK_EQ_INT(((int32_t *)t->data)[1], 0x01020304);
		}
		dm_file_free(f);

		build(&b, 2, DICT(">f2", "(3,)"), align, f2, sizeof f2);
		if ((f = parse(&b)) != NULL) {
			t = f->tensors[0];
			CHECK_EQ_INT(t->dtype, DM_DTYPE_F16);
			CHECK_EQ_INT(((uint16_t *)t->data)[0], 0x3c00);
			CHECK_EQ_INT(((uint16_t *)t->data)[1], 0xc000);
			CHECK(dm_tensor_get(t, 2) == 65504.0);
		}
		dm_file_free(f);
	}
	free(b.p);
}

DM_TEST(npy_unaligned_is_copied)
{
	static const int64_t v[2] = {INT64_MIN, INT64_MAX};
	struct npybuf b = {0};

	/* header "...}\n" unpadded: 10 + 57 + 1 = 68, not a multiple of 8 */
	build(&b, 1, DICT("<i8", "(2,)"), 0, v, sizeof v);
	CHECK_EQ_INT(b.n, 68 + 16);
	struct dm_file *f = parse(&b);
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		CHECK_EQ_INT(t->owns_data, 1);
		CHECK((uintptr_t)t->data % 8 == 0);
		CHECK_EQ_INT(((int64_t *)t->data)[0], INT64_MIN);
		CHECK_EQ_INT(((int64_t *)t->data)[1], INT64_MAX);
	}
	dm_file_free(f);
	free(b.p);
}

DM_TEST(npy_fortran_order_2d)
{
	/* a[i][j] = 10 i + j, shape (2, 3), stored column by column */
	static const int32_t col[6] = {0, 10, 1, 11, 2, 12};
	struct npybuf b = {0};
	int64_t shape[2] = {2, 3};

	build(&b, 1, "{'descr': '<i4', 'fortran_order': True, "
	    "'shape': (2, 3), }", 64, col, sizeof col);
	struct dm_file *f = parse(&b);
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		const int32_t *x = t->data;
		CHECK(same_shape(t, 2, shape));
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++)
				CHECK_MSG(x[i * 3 + j] == 10 * i + j,
				    "a[%d][%d] = %d", i, j, x[i * 3 + j]);
	}
	dm_file_free(f);

	/* big-endian and column-major at once: the same values as >i2 */
	unsigned char be[12];
	for (int k = 0; k < 6; k++) {
		be[2 * k] = 0;
		be[2 * k + 1] = (unsigned char)col[k];
	}
	build(&b, 1, "{'descr': '>i2', 'fortran_order': True, "
	    "'shape': (2, 3), }", 64, be, sizeof be);
	if ((f = parse(&b)) != NULL) {
		const int16_t *x = f->tensors[0]->data;
		CHECK_EQ_INT(f->tensors[0]->dtype, DM_DTYPE_I16);
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++)
				CHECK_EQ_INT(x[i * 3 + j], 10 * i + j);
	}
	dm_file_free(f);
	free(b.p);
}

DM_TEST(npy_fortran_order_3d)
{
	/* a[i][j][k] = 100 i + 10 j + k, shape (2, 3, 4); column-major puts
	 * a[i][j][k] at i + 2 (j + 3 k) */
	double col[24];
	struct npybuf b = {0};
	int64_t shape[3] = {2, 3, 4};

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			for (int k = 0; k < 4; k++)
				col[i + 2 * (j + 3 * k)] = 100 * i + 10 * j + k;
	build(&b, 1, "{'descr': '<f8', 'fortran_order': True, "
	    "'shape': (2, 3, 4), }", 64, col, sizeof col);
	struct dm_file *f = parse(&b);
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		const double *x = t->data;
		CHECK(same_shape(t, 3, shape));
		CHECK_EQ_INT(t->owns_data, 1);
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 3; j++)
				for (int k = 0; k < 4; k++)
					CHECK_MSG(x[(i * 3 + j) * 4 + k] ==
					    100 * i + 10 * j + k, "a[%d][%d][%d]"
					    " = %g", i, j, k, x[(i * 3 + j) * 4 + k]);
	}
	dm_file_free(f);

	/* 1-D fortran order is the same as C order; zero-size is empty */
	static const uint8_t u[3] = {7, 8, 9};
	build(&b, 1, "{'descr': '|u1', 'fortran_order': True, "
	    "'shape': (3,), }", 64, u, 3);
	if ((f = parse(&b)) != NULL)
		CHECK(memcmp(f->tensors[0]->data, u, 3) == 0);
	dm_file_free(f);
	build(&b, 1, "{'descr': '<f4', 'fortran_order': True, "
	    "'shape': (4, 0, 2), }", 64, NULL, 0);
	if ((f = parse(&b)) != NULL)
		CHECK_EQ_INT(f->tensors[0]->nbytes, 0);
	dm_file_free(f);
	free(b.p);
}

DM_TEST(npy_scalar_and_empty)
{
	static const double pi = 3.25;
	struct npybuf b = {0};
	struct dm_file *f;

	build(&b, 1, DICT("<f8", "()"), 64, &pi, 8);
	if ((f = parse(&b)) != NULL) {
		CHECK_EQ_INT(f->tensors[0]->ndim, 0);
		CHECK_EQ_INT(dm_tensor_numel(f->tensors[0]), 1);
		CHECK(dm_tensor_get(f->tensors[0], 0) == 3.25);
	}
	dm_file_free(f);

	int64_t s1[1] = {0}, s2[2] = {3, 0};
	build(&b, 1, DICT("|b1", "(0,)"), 64, NULL, 0);
	if ((f = parse(&b)) != NULL) {
		CHECK(same_shape(f->tensors[0], 1, s1));
		CHECK_EQ_INT(f->tensors[0]->nbytes, 0);
	}
	dm_file_free(f);
	build(&b, 1, DICT("<i8", "(3, 0)"), 0, NULL, 0);
	if ((f = parse(&b)) != NULL) {
		CHECK(same_shape(f->tensors[0], 2, s2));
		CHECK_EQ_INT(f->tensors[0]->dtype, DM_DTYPE_I64);
	}
	dm_file_free(f);
	free(b.p);
}

DM_TEST(npy_header_spellings)
{
	/* legal Python dict literals numpy also reads */
	static const char *ok[] = {
		"{'shape': (2, 2), 'fortran_order': False, 'descr': '<i2'}",
		"{\"descr\": \"<i2\", \"fortran_order\": False, \"shape\": (2,2)}",
		"{ 'descr' : '<i2' ,\n 'fortran_order' : False ,"
		    " 'shape' : ( 2 , 2 , ) , }",
		"{'descr':'<i2','fortran_order':False,'shape':(2, 2,),}",
		"{'descr': '<i2', 'fortran_order': False, 'shape': (2L, 2L), }",
		"\t{'fortran_order': False, 'descr': '<i2', 'shape': (02 - 0, 2)}",
	};
	static const int16_t v[4] = {1, -1, 2, -2};
	struct npybuf b = {0};
	int64_t shape[2] = {2, 2};

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		build(&b, 1, ok[i], 64, v, sizeof v);
		if (i == 5) {
			/* "02 - 0" is not a literal: refused */
			REFUSED(&b, "bad npy header");
			continue;
		}
		struct dm_file *f = parse(&b);
		if (f != NULL) {
			CHECK_MSG(same_shape(f->tensors[0], 2, shape),
			    "header %zu", i);
			CHECK(memcmp(f->tensors[0]->data, v, sizeof v) == 0);
		}
		dm_file_free(f);
	}
	/* Python 2's "2L" only in versions 1.0 and 2.0 */
	build(&b, 3, ok[4], 64, v, sizeof v);
	REFUSED(&b, "bad character in a dimension");
	free(b.p);
}

/* Bytes np.save wrote (numpy 1.24): the header length 0x76 = 118 puts the
 * data at 128; numpy leaves 21 - len(str(shape[0])) spaces of room for the
 * first dimension before the padding. */
static const struct {
	const char *name;
	const char *bytes;
	size_t n;
} numpy_saved[] = {
	{"arange(3, '<i4')", "\x93NUMPY\x01\x00v\x00{'descr': '<i4', "
	    "'fortran_order': False, 'shape': (3,), }" SP60 "\n"
	    "\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00", 140},
	{"[[1.5, -2, 0], [0.25, 3, -0.0]] '<f4'", "\x93NUMPY\x01\x00v\x00"
	    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	    SP10 SP10 SP10 SP10 SP10 "        \n"
	    "\x00\x00\xc0?\x00\x00\x00\xc0\x00\x00\x00\x00"
	    "\x00\x00\x80>\x00\x00@@\x00\x00\x00\x80", 152},
	{"2.5 '<f8'", "\x93NUMPY\x01\x00v\x00{'descr': '<f8', "
	    "'fortran_order': False, 'shape': (), }" SP60 "  \n"
	    "\x00\x00\x00\x00\x00\x00\x04@", 136},
	{"zeros(0, '?')", "\x93NUMPY\x01\x00v\x00{'descr': '|b1', "
	    "'fortran_order': False, 'shape': (0,), }" SP60 "\n", 128},
	{"zeros((10**12, 0), 'u1')", "\x93NUMPY\x01\x00v\x00{'descr': '|u1', "
	    "'fortran_order': False, 'shape': (1000000000000, 0), }"
	    SP10 SP10 SP10 SP10 "      \n", 128},
	{"full((1, 2, 1, 1, 1, 1, 1, 1), -2, '<i2')", "\x93NUMPY\x01\x00v\x00"
	    "{'descr': '<i2', 'fortran_order': False, "
	    "'shape': (1, 2, 1, 1, 1, 1, 1, 1), }" SP10 SP10 SP10 SP10 "\n"
	    "\xfe\xff\xfe\xff", 132},
	/* numpy's own header writer (np.zeros refuses so large a shape): the
	 * first dimension's room pushes the header past 128 to 192 */
	{"header of zeros((0, 10**18, 10**18), '<f8')",
	    "\x93NUMPY\x01\x00\xb6\x00{'descr': '<f8', "
	    "'fortran_order': False, "
	    "'shape': (0, 1000000000000000000, 1000000000000000000), }"
	    SP60 SP10 SP10 "   \n", 192},
};

struct memsink {
	unsigned char *p;
	size_t n;
	int fail_after;           /* refuse writes once this many were made */
	int calls;
};

static int
mem_write(void *ctx, const void *p, size_t n)
{
	struct memsink *m = ctx;
	unsigned char *q;

	if (m->fail_after >= 0 && m->calls++ >= m->fail_after)
		return dm_seterr("disk full");
	if ((q = realloc(m->p, m->n + n)) == NULL)
		return dm_seterr("out of memory");
	memcpy(q + m->n, p, n);
	m->p = q;
	m->n += n;
	return 0;
}

static void
check_written(const struct dm_tensor *t, size_t k)
{
	struct memsink m = {NULL, 0, -1, 0};
	struct dm_sink s = {mem_write, &m};

	CHECK_OK(dm_npy_write(t, &s));
	CHECK_MSG(m.n == numpy_saved[k].n && memcmp(m.p, numpy_saved[k].bytes,
	    m.n) == 0, "%s: %zu bytes differ from numpy's %zu: %.*s",
	    numpy_saved[k].name, m.n, numpy_saved[k].n, (int)m.n,
	    m.p ? (const char *)m.p : "");
	free(m.p);
}

DM_TEST(npy_write_matches_numpy)
{
	int64_t s1[1] = {3}, s2[2] = {2, 3}, s0[1] = {0};
	int64_t s3[2] = {INT64_C(1000000000000), 0};
	int64_t s8[8] = {1, 2, 1, 1, 1, 1, 1, 1};
	struct dm_tensor *t;

	/* the expected bytes are consistent: the header ends in a newline */
	for (size_t k = 0; k < sizeof numpy_saved / sizeof numpy_saved[0]; k++) {
		const unsigned char *p = (const unsigned char *)numpy_saved[k].bytes;
		CHECK_EQ_INT(p[10 + (p[8] | p[9] << 8) - 1], '\n');
	}

	t = dm_tensor_new_dtype(DM_DTYPE_I32, 1, s1);
	for (int i = 0; i < 3; i++)
		((int32_t *)t->data)[i] = i;
	check_written(t, 0);
	dm_tensor_free(t);

	t = dm_tensor_new_dtype(DM_DTYPE_F32, 2, s2);
	float *x = t->data;
	x[0] = 1.5f; x[1] = -2.0f; x[2] = 0.0f;
	x[3] = 0.25f; x[4] = 3.0f; x[5] = -0.0f;
	check_written(t, 1);
	dm_tensor_free(t);

	t = dm_tensor_new_dtype(DM_DTYPE_F64, 0, NULL);
	*(double *)t->data = 2.5;
	check_written(t, 2);
	dm_tensor_free(t);

	t = dm_tensor_new_dtype(DM_DTYPE_BOOL, 1, s0);
	check_written(t, 3);
	dm_tensor_free(t);

	t = dm_tensor_new_dtype(DM_DTYPE_U8, 2, s3);
	check_written(t, 4);
	dm_tensor_free(t);

	t = dm_tensor_new_dtype(DM_DTYPE_I16, 8, s8);
	((int16_t *)t->data)[0] = ((int16_t *)t->data)[1] = -2;
	check_written(t, 5);
	dm_tensor_free(t);

	int64_t s4[3] = {0, INT64_C(1000000000000000000),
	    INT64_C(1000000000000000000)};
	t = dm_tensor_new_dtype(DM_DTYPE_F64, 3, s4);
	check_written(t, 6);
	dm_tensor_free(t);
}

DM_TEST(npy_write_then_read_every_dtype)
{
	int64_t shape[3] = {2, 1, 3};

	for (int d = 0; d < DM_DTYPE_COUNT; d++) {
		struct dm_tensor *t = dm_tensor_new_dtype((enum dm_dtype)d, 3,
		    shape);
		struct memsink m = {NULL, 0, -1, 0};
		struct dm_sink s = {mem_write, &m};
		unsigned char *p = t->data;

		for (size_t i = 0; i < t->nbytes; i++)
			p[i] = (unsigned char)(d == DM_DTYPE_BOOL ? i & 1 : 37 * i + 1);
		if (d == DM_DTYPE_BF16) {
			CHECK_FAILS(dm_npy_write(t, &s), "npy has no bfloat16");
			dm_tensor_free(t);
			free(m.p);
			continue;
		}
		CHECK_OK(dm_npy_write(t, &s));
		CHECK_EQ_INT(m.n, 128 + t->nbytes);
		struct npybuf b = {0};
		put(&b, m.p, m.n);
		struct dm_file *f = parse(&b);
		if (f != NULL) {
			struct dm_tensor *u = f->tensors[0];
			CHECK_EQ_INT(u->dtype, d);
			CHECK(same_shape(u, 3, shape));
			CHECK(memcmp(u->data, t->data, t->nbytes) == 0);
		}
		dm_file_free(f);
		free(b.p);
		free(m.p);
		dm_tensor_free(t);
	}
}

DM_TEST(npy_write_sink_failure)
{
	int64_t shape[1] = {4};
	struct dm_tensor *t = dm_tensor_new(1, shape);

	for (int k = 0; k < 4; k++) {
		struct memsink m = {NULL, 0, k, 0};
		struct dm_sink s = {mem_write, &m};
		CHECK_FAILS(dm_npy_write(t, &s), "disk full");
		free(m.p);
	}
	dm_tensor_free(t);
}

DM_TEST(npy_malformed_refused)
{
	static const float v[2] = {1, 2};
	struct npybuf b = {0};

	/* magic and version */
	build(&b, 1, DICT("<f4", "(2,)"), 64, v, 8);
	b.p[1] = 'n';
	REFUSED(&b, "bad magic");
	b.n = 0;
	put(&b, "PK\x03\x04", 4);
	REFUSED(&b, "bad magic");
	b.n = 0;
	put(&b, "\x93NUMPY\x01", 7);
	REFUSED(&b, "truncated npy file");
	b.n = 0;
	put(&b, "\x93NUMPY\x02\x00\x10", 9);
	REFUSED(&b, "truncated npy file");
	build(&b, 1, DICT("<f4", "(2,)"), 64, v, 8);
	b.p[6] = 4;
	REFUSED(&b, "unsupported npy version 4.0");
	b.p[6] = 0;
	REFUSED(&b, "unsupported npy version 0.0");
	b.p[6] = 1;
	b.p[7] = 1;
	REFUSED(&b, "unsupported npy version 1.1");

	/* header length beyond the buffer, or not ending in a newline */
	b.n = 0;
	preamble(&b, 1, 0, 200);
	put(&b, DICT("<f4", "(2,)") "\n", strlen(DICT("<f4", "(2,)")) + 1);
	REFUSED(&b, "header length 200 goes beyond");
	b.n = 0;
	preamble(&b, 2, 0, 0xffffffffu);
	put(&b, "{}\n", 3);
	REFUSED(&b, "header length 4294967295 goes beyond");
	b.n = 0;
	preamble(&b, 1, 0, 0);
	REFUSED(&b, "does not end with a newline");
	build(&b, 1, DICT("<f4", "(2,)"), 64, v, 8);
	b.p[127] = ' ';
	REFUSED(&b, "does not end with a newline");

	/* keys */
	build(&b, 1, "{'descr': '<f4', 'shape': (2,), }", 64, v, 8);
	REFUSED(&b, "lacks the key 'fortran_order'");
	build(&b, 1, "{'fortran_order': False, 'shape': (2,), }", 64, v, 8);
	REFUSED(&b, "lacks the key 'descr'");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': False}", 64, v, 8);
	REFUSED(&b, "lacks the key 'shape'");
	build(&b, 1, "{}", 64, v, 8);
	REFUSED(&b, "lacks the key");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
	    "'extra': 1}", 64, v, 8);
	REFUSED(&b, "unknown key 'extra'");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
	    "'shape': (2,)}", 64, v, 8);
	REFUSED(&b, "key 'shape' twice");
	build(&b, 1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "expected ',' or '}'");
	build(&b, 1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "expected ':'");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
	    64, v, 8);
	REFUSED(&b, "bad npy header");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
	    64, v, 8);
	REFUSED(&b, "text after the dict");
	build(&b, 1, "['descr', '<f4']", 64, v, 8);
	REFUSED(&b, "expected '{'");
	build(&b, 1, "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "unknown key 'descr: '");
	build(&b, 1, "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "expected a string");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "fortran_order must be True or False");
	build(&b, 1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,)}",
	    64, v, 8);
	REFUSED(&b, "fortran_order must be True or False");
	build(&b, 1, "{'descr': '\\x3cf4', 'fortran_order': False, "
	    "'shape': (2,)}", 64, v, 8);
	REFUSED(&b, "unsupported character");

	/* dtypes */
	static const char *bad[] = {"<c8", "<u2", "<u4", "<u8", "|O", "<U10",
	    "|S3", "<M8[s]", "<m8", "<f16", "|V4", "f4", "<b2", "<i3", "", "<f4 "};
	char dict[160], want[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(dict, sizeof dict, DICT("%s", "(2,)"), bad[i]);
		build(&b, 1, dict, 64, v, 8);
		snprintf(want, sizeof want, "unsupported npy dtype '%s'", bad[i]);
		REFUSED(&b, want);
	}
	build(&b, 1, "{'descr': [('a', '<f4'), ('b', '<f4')], "
	    "'fortran_order': False, 'shape': (1,), }", 64, v, 8);
	REFUSED(&b, "unsupported npy dtype: structured");

	/* shape syntax, values and size */
	static const char *badshape[] = {"(2)", "[2]", "2", "(2,,)", "(,)",
	    "(a,)", "(2.0,)", "(0x2,)", "(02,)", "(2, 1", "(1, 2 3)", "(2L,)"};
	for (size_t i = 0; i < sizeof badshape / sizeof badshape[0]; i++) {
		snprintf(dict, sizeof dict, DICT("<f4", "%s"), badshape[i]);
		build(&b, i == 11 ? 3 : 1, dict, 64, v, 8);
		REFUSED(&b, "bad npy header");
	}
	build(&b, 1, DICT("<f4", "(2, -1)"), 64, v, 8);
	REFUSED(&b, "negative dimension -1");
	build(&b, 1, DICT("<f4", "(99999999999999999999,)"), 64, v, 8);
	REFUSED(&b, "dimension too large");
	build(&b, 1, DICT("<f4", "(9223372036854775808,)"), 64, v, 8);
	REFUSED(&b, "dimension too large");
	build(&b, 1, DICT("<f4", "(9223372036854775807,)"), 64, v, 8);
	REFUSED(&b, "overflow");
	build(&b, 1, DICT("<f4", "(4294967296, 4294967296, 4)"), 64, v, 8);
	REFUSED(&b, "overflow");
	build(&b, 1, DICT("<f4", "(1, 1, 1, 1, 1, 1, 1, 1, 2)"), 64, v, 8);
	REFUSED(&b, "more than 8 dimensions");
	build(&b, 1, DICT("<f4", "(3,)"), 64, v, 8);
	REFUSED(&b, "truncated: need 12 bytes of data, have 8");
	build(&b, 1, DICT("<f4", "()"), 64, v, 2);
	REFUSED(&b, "truncated: need 4 bytes of data, have 2");
	build(&b, 1, DICT("<f4", "(1,)"), 64, v, 8);
	REFUSED(&b, "4 bytes of trailing data");
	build(&b, 1, DICT("<f4", "(0,)"), 64, v, 1);
	REFUSED(&b, "1 bytes of trailing data");
	free(b.p);
}
