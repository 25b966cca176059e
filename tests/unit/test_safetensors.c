/* test_safetensors.c — reading hand-built safetensors bytes (every dtype,
 * every malformation), the exact bytes the writer produces, round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test.h"

/* A file: 8-byte little-endian length of hdr, hdr, then dlen bytes of data
 * (zeros where data is NULL).  *len gets the total. */
static unsigned char *
build(const char *hdr, const void *data, size_t dlen, size_t *len)
{
	size_t n = strlen(hdr);
	unsigned char *b = calloc(1, 8 + n + dlen + 1);

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(b + 8, hdr, n);
	if (data != NULL)
		memcpy(b + 8 + n, data, dlen);
	*len = 8 + n + dlen;
	return b;
}

/* Parse hdr + data; the file (or NULL) in *out. */
static int
read_built(const char *hdr, const void *data, size_t dlen,
    struct dm_file **out)
{
	size_t len;
	unsigned char *b = build(hdr, data, dlen, &len);
	int rc = dm_file_read_mem(out, b, len);

	free(b);
	return rc;
}

static int
refused(const char *hdr, size_t dlen)
{
	struct dm_file *f;
	int rc = read_built(hdr, NULL, dlen, &f);

	if (rc == 0)
		dm_file_free(f);
	return rc;
}

DM_TEST(safetensors_reads_every_dtype)
{
	/* little-endian encodings of two known values per dtype */
	static const struct {
		const char *dtype;
		unsigned char bytes[16];
		size_t size;
		double v0, v1;
	} c[] = {
		{"F64", {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0x02, 0xc0},
		    8, 1.5, -2.25},
		{"F32", {0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc1}, 4, 1.0, -10.0},
		{"F16", {0x00, 0x3c, 0x00, 0xc0}, 2, 1.0, -2.0},
		{"BF16", {0x80, 0x3f, 0x49, 0xc0}, 2, 1.0, -3.140625},
		{"I64", {0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0, 0, 0, 0, 0, 1, 0, 0}, 8, -5, 1099511627776.0},
		{"I32", {0x00, 0xff, 0xff, 0xff, 0x40, 0xe2, 0x01, 0x00}, 4,
		    -256, 123456},
		{"I16", {0x00, 0x80, 0xff, 0x7f}, 2, -32768, 32767},
		{"I8", {0x80, 0x7f}, 1, -128, 127},
		{"U8", {0xff, 0x07}, 1, 255, 7},
		{"BOOL", {0x00, 0x01}, 1, 0, 1},
	};
	char hdr[256];

	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct dm_file *f;
		enum dm_dtype dt;
		snprintf(hdr, sizeof hdr, "{\"t\":{\"dtype\":\"%s\",\"shape\":[2],"
		    "\"data_offsets\":[0,%zu]}}", c[i].dtype, 2 * c[i].size);
		if (read_built(hdr, c[i].bytes, 2 * c[i].size, &f) == -1) {
			CHECK_MSG(0, "%s: %s", c[i].dtype, dm_errstr());
			continue;
		}
		struct dm_tensor *t = dm_file_get(f, "t");
		CHECK(t != NULL && f->ntensors == 1);
		CHECK_OK(dm_dtype_parse(c[i].dtype, &dt));
		CHECK(t->dtype == dt && t->ndim == 1 && t->shape[0] == 2);
		CHECK_EQ_INT(t->nbytes, 2 * c[i].size);
		CHECK_MSG(dm_tensor_get(t, 0) == c[i].v0 &&
		    dm_tensor_get(t, 1) == c[i].v1, "%s: %g %g", c[i].dtype,
		    dm_tensor_get(t, 0), dm_tensor_get(t, 1));
		CHECK(f->format == DM_FORMAT_SAFETENSORS && !f->compressed);
		dm_file_free(f);
	}
}

DM_TEST(safetensors_scalars_empty_metadata_order)
{
	const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[],"
	    "\"data_offsets\":[4,8]},"
	    "\"__metadata__\":{\"dm.kind\":\"data\",\"note\":\"\\u00e9\\n\"},"
	    "\"e\":{\"shape\":[0,3],\"data_offsets\":[4,4],\"dtype\":\"I64\"},"
	    "\"e2\":{\"dtype\":\"U8\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
	    "\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}   ";
	unsigned char data[8] = {7, 0, 0, 0, 0, 0, 0x40, 0x40};
	struct dm_file *f;

	if (read_built(hdr, data, 8, &f) == -1) {
		CHECK_MSG(0, "%s", dm_errstr());
		return;
	}
	CHECK_EQ_INT(f->ntensors, 4);
	CHECK_STR(f->tensors[0]->name, "b");
	CHECK_STR(f->tensors[1]->name, "e");
	CHECK_STR(f->tensors[3]->name, "a");
	CHECK_EQ_INT(f->tensors[0]->ndim, 0);
	CHECK(dm_tensor_get(f->tensors[0], 0) == 3.0);
	CHECK_EQ_INT(f->tensors[1]->nbytes, 0);
	CHECK_EQ_INT(f->tensors[1]->shape[1], 3);
	CHECK(dm_tensor_get(f->tensors[3], 0) == 7);
	CHECK_EQ_INT(f->nmeta, 2);
	CHECK_STR(dm_file_meta(f, "dm.kind"), "data");
	CHECK_STR(dm_file_meta(f, "note"), "\xc3\xa9\n");
	dm_file_free(f);
}

DM_TEST(safetensors_aligned_views_unaligned_copies)
{
	/* header of 54 bytes: data starts at 62, not 4-aligned: copied */
	const char *h1 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
	    "\"data_offsets\":[0,8]}}";
	/* padded to 56: data at 64, aligned in f->buf (malloc'ed) */
	const char *h2 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
	    "\"data_offsets\":[0,8]}}  ";
	unsigned char d[8] = {0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf};
	struct dm_file *f;

	CHECK_EQ_INT(strlen(h1), 54);
	CHECK_OK(read_built(h1, d, 8, &f));
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		CHECK(t->owns_data);
		CHECK((uintptr_t)t->data % 4 == 0);
		CHECK(((float *)t->data)[0] == 1.0f);
		CHECK(((float *)t->data)[1] == -1.0f);
		dm_file_free(f);
	}
	CHECK_OK(read_built(h2, d, 8, &f));
	if (f != NULL) {
		struct dm_tensor *t = f->tensors[0];
		CHECK(!t->owns_data);
		CHECK((unsigned char *)t->data == (unsigned char *)f->buf + 64);
		CHECK(((float *)t->data)[1] == -1.0f);
		dm_file_free(f);
	}
}

DM_TEST(safetensors_truncated)
{
	const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,3],"
	    "\"data_offsets\":[0,24]}}";
	size_t len, n = strlen(hdr);
	unsigned char *b = build(hdr, NULL, 24, &len);
	static const struct {
		size_t cut;
		const char *why;
	} cuts[] = {
		{1, "too short"}, {7, "too short"},
		{8, "exceeds file size 8"}, {9, "exceeds file size 9"},
		{0, "exceeds file size"},   /* 8 + n - 1 */
		{1000, "exceed the data section (0 bytes)"},  /* 8 + n */
		{2000, "exceed the data section (23 bytes)"}, /* one byte short */
	};
	struct dm_file *f;

	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		size_t cut = cuts[i].cut == 0 ? 8 + n - 1 :
		    cuts[i].cut == 1000 ? 8 + n :
		    cuts[i].cut == 2000 ? len - 1 : cuts[i].cut;
		CHECK_FAILS(dm_file_read_mem(&f, b, cut), cuts[i].why);
		CHECK(f == NULL);
	}
	CHECK_FAILS(dm_file_read_mem(&f, b, 0), "empty file");
	CHECK_OK(dm_file_read_mem(&f, b, len));
	dm_file_free(f);
	free(b);
}

DM_TEST(safetensors_header_length)
{
	unsigned char b[32] = {0};
	struct dm_file *f;

	memcpy(b + 8, "{}", 2);
	CHECK_FAILS(dm_file_read_mem(&f, b, 10), "header length 0 is too small");
	b[0] = 1;
	CHECK_FAILS(dm_file_read_mem(&f, b, 10), "header length 1 is too small");
	b[0] = 2;
	CHECK_OK(dm_file_read_mem(&f, b, 10));    /* "{}": no tensors */
	if (f != NULL)
		CHECK_EQ_INT(f->ntensors, 0);
	dm_file_free(f);
	b[0] = 100;
	CHECK_FAILS(dm_file_read_mem(&f, b, 32),
	    "header length 100 exceeds file size 32");
	b[0] = 0, b[7] = 0x40;                    /* 2^62 */
	CHECK_FAILS(dm_file_read_mem(&f, b, 32), "exceeds the limit");
	b[7] = 0xff;
	CHECK_FAILS(dm_file_read_mem(&f, b, 32), "exceeds the limit");
	b[7] = 0;
	b[0] = 1, b[1] = 0, b[2] = 0x40, b[3] = 0x06; /* 100 MiB + 1 */
	CHECK_FAILS(dm_file_read_mem(&f, b, 32), "exceeds the limit");
}

DM_TEST(safetensors_malformed_headers)
{
#define T(name, rest) "{\"" name "\":{" rest "}}"
#define F32_2x3 "\"dtype\":\"F32\",\"shape\":[2,3],"
	static const struct {
		const char *hdr, *why;
		size_t dlen;
	} bad[] = {
		{"{\"x\":", "header: JSON: unexpected end of input", 0},
		{"{\"x\":{}", "JSON: unexpected end", 0},
		{"[1,2]", "header is not a JSON object", 0},
		{"\"x\"", "header is not a JSON object", 0},
		{"{\"x\":[]}", "tensor 'x': not a JSON object", 0},
		{T("x", "\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]"),
		    "tensor 'x': unsupported dtype 'U16'", 2},
		{T("x", "\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"),
		    "unsupported dtype 'f32'", 4},
		{T("x", "\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]"),
		    "unsupported dtype 'F8_E4M3'", 1},
		{T("x", "\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"),
		    "dtype is not a string", 4},
		{T("x", "\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"),
		    "tensor 'x': shape is not an array", 8},
		{T("x", "\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]"),
		    "shape[1]: -1 is not a non-negative integer", 8},
		{T("x", "\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]"),
		    "shape[0]: 2.5 is not a non-negative integer", 8},
		{T("x", "\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]"),
		    "not a non-negative integer", 8},
		{T("x", "\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]"),
		    "shape[0]: not a number", 8},
		{T("x", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
		    "\"data_offsets\":[0,1]"), "shape has 9 dimensions (at most 8)",
		    1},
		{T("x", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],"
		    "\"data_offsets\":[0,0]"), "overflow", 0},
		{T("x", "\"dtype\":\"U8\",\"shape\":[9223372036854775808],"
		    "\"data_offsets\":[0,0]"), "too large", 0},
		{T("x", "\"dtype\":\"F64\",\"shape\":[1152921504606846976],"
		    "\"data_offsets\":[0,0]"), "overflow", 0},
		{T("x", F32_2x3 "\"data_offsets\":[24,0]"),
		    "tensor 'x': data_offsets [24, 0] are reversed", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,24]"),
		    "tensor 'x': data_offsets [0, 24] exceed the data section "
		    "(20 bytes)", 20},
		{T("x", F32_2x3 "\"data_offsets\":[0,18446744073709551615]"),
		    "exceed the data section", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,18446744073709551616]"),
		    "data_offsets: 18446744073709551616 is too large", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,96]"),
		    "tensor 'x': data_offsets [0, 96] do not match shape [2, 3] "
		    "of F32 (24 bytes)", 96},
		{T("x", F32_2x3 "\"data_offsets\":[0]"),
		    "data_offsets is not an array of two integers", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,24,0]"),
		    "data_offsets is not an array of two integers", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,-24]"),
		    "not a non-negative integer", 24},
		{T("x", F32_2x3 "\"data_offsets\":[0,24],\"foo\":1"),
		    "tensor 'x': unknown key 'foo'", 24},
		{T("x", "\"dtype\":\"F32\",\"data_offsets\":[0,24]"),
		    "tensor 'x': no \"shape\"", 24},
		{T("x", "\"shape\":[1],\"data_offsets\":[0,4]"),
		    "no \"dtype\"", 4},
		{T("x", "\"dtype\":\"F32\",\"shape\":[1]"),
		    "no \"data_offsets\"", 4},
		{T("", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]"),
		    "empty tensor name", 1},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
		    "tensors 'a' and 'b' overlap (data_offsets [0, 8] and [4, 12])",
		    12},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
		    "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}",
		    "tensors 'a' and 'b' overlap", 10},
		{"{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
		    "\"a\":{\"dtype\":\"U8\",\"shape\":[5],\"data_offsets\":[0,5]}}",
		    "tensors 'a' and 'b' overlap", 8},
		{"{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		    "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
		    "duplicate key 'x'", 2},
		{"{\"__metadata__\":{\"a\":1}}",
		    "__metadata__ 'a': value is not a string", 0},
		{"{\"__metadata__\":{\"a\":\"b\",\"c\":null}}",
		    "value is not a string", 0},
		{"{\"__metadata__\":[\"a\"]}", "__metadata__ is not a JSON object", 0},
		{"{\"__metadata__\":\"a\"}", "__metadata__ is not a JSON object", 0},
		{"{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}} x",
		    "JSON: trailing characters", 1},
	};
#undef T
#undef F32_2x3
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_FAILS(refused(bad[i].hdr, bad[i].dlen), bad[i].why);
}

DM_TEST(safetensors_header_nul_and_name_limits)
{
	/* a NUL byte inside the header (counted in its length) */
	static const char h[] = "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],"
	    "\"data_offsets\":[0,1]}}\0   ";
	unsigned char b[128] = {0};
	struct dm_file *f;

	b[0] = sizeof h - 1;
	memcpy(b + 8, h, sizeof h - 1);
	CHECK_FAILS(dm_file_read_mem(&f, b, 8 + sizeof h - 1 + 1),
	    "header: JSON: trailing characters");

	/* names: 1024 bytes are fine, 1025 are not */
	char *hdr = malloc(2048);
	for (int len = 1024; len <= 1025; len++) {
		char *p = hdr;
		p += sprintf(p, "{\"");
		memset(p, 'n', (size_t)len);
		p += len;
		sprintf(p, "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
		if (len == 1024) {
			CHECK_OK(refused(hdr, 1));
		} else {
			CHECK_FAILS(refused(hdr, 1),
			    "tensor name of 1025 bytes (at most 1024)");
			/* the message holds a shortened name */
			CHECK(strlen(dm_errstr()) < 200);
		}
	}
	free(hdr);
}

/* n zero-size tensors "t0", "t1", ... and nmeta metadata entries. */
static char *
many(int n, int nmeta)
{
	size_t cap = 64 + (size_t)n * 64 + (size_t)nmeta * 32, k = 0;
	char *s = malloc(cap);

	k += (size_t)sprintf(s + k, "{\"__metadata__\":{");
	for (int i = 0; i < nmeta; i++)
		k += (size_t)sprintf(s + k, "%s\"k%d\":\"v\"", i ? "," : "", i);
	k += (size_t)sprintf(s + k, "}");
	for (int i = 0; i < n; i++)
		k += (size_t)sprintf(s + k, ",\"t%d\":{\"dtype\":\"U8\","
		    "\"shape\":[0],\"data_offsets\":[0,0]}", i);
	sprintf(s + k, "}");
	return s;
}

DM_TEST(safetensors_count_limits)
{
	char *s;

	s = many(DM_MAX_TENSORS, 1);
	CHECK_OK(refused(s, 0));
	free(s);
	s = many(DM_MAX_TENSORS + 1, 1);
	CHECK_FAILS(refused(s, 0), "header lists 65537 tensors (at most 65536)");
	free(s);
	s = many(1, DM_MAX_META);
	CHECK_OK(refused(s, 0));
	free(s);
	s = many(1, DM_MAX_META + 1);
	CHECK_FAILS(refused(s, 0), "__metadata__ has 4097 entries (at most 4096)");
	free(s);
}

DM_TEST(safetensors_writer_exact_bytes)
{
	/* {"x":...} is 54 bytes; 8 + 54 + 2 spaces = 64: data 8-aligned */
	static const char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
	    "\"data_offsets\":[0,8]}}  ";
	static const unsigned char data[8] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
	unsigned char want[8 + sizeof hdr - 1 + 8] = {sizeof hdr - 1};
	struct dm_membuf b = {0};
	struct dm_sink s = {dm_membuf_write, &b};
	struct dm_file *f = dm_file_new();
	int64_t shape[1] = {2};
	struct dm_tensor *t = dm_tensor_new(1, shape);

	memcpy(want + 8, hdr, sizeof hdr - 1);
	memcpy(want + 8 + sizeof hdr - 1, data, 8);
	((float *)t->data)[0] = 1.0f;
	((float *)t->data)[1] = 2.0f;
	CHECK_OK(dm_tensor_set_name(t, "x"));
	CHECK_OK(dm_file_add(f, t));
	CHECK_OK(dm_safetensors_write(f, &s));
	CHECK_EQ_INT(b.len, sizeof want);
	CHECK(b.len == sizeof want && memcmp(b.p, want, b.len) == 0);

	/* with metadata, which comes first; escapes in keys and values */
	static const char hdr2[] = "{\"__metadata__\":{\"dm.kind\":\"data\","
	    "\"q\\\"\":\"a\\u000ab\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
	    "\"data_offsets\":[0,8]}}";
	CHECK_OK(dm_file_meta_set(f, "dm.kind", "data"));
	CHECK_OK(dm_file_meta_set(f, "q\"", "a\nb"));
	b.len = 0;
	CHECK_OK(dm_safetensors_write(f, &s));
	size_t n = b.len >= 8 ? (size_t)b.p[0] | (size_t)b.p[1] << 8 : 0;
	CHECK_EQ_INT((8 + n) % 8, 0);
	CHECK(n >= sizeof hdr2 - 1 &&
	    memcmp(b.p + 8, hdr2, sizeof hdr2 - 1) == 0);
	for (size_t i = 8 + sizeof hdr2 - 1; i < 8 + n; i++)
		CHECK(b.p[i] == ' ');
	CHECK(b.len == 8 + n + 8 && memcmp(b.p + 8 + n, data, 8) == 0);

	/* a tensor that cannot be named in the format */
	CHECK_OK(dm_tensor_set_name(t, "__metadata__"));
	CHECK_FAILS(dm_safetensors_write(f, &s), "cannot be named");
	free(b.p);
	dm_file_free(f);
}

/* A tensor of each dtype with values 0, 1, ..., n-1 (negated for signed). */
static struct dm_file *
all_dtypes(void)
{
	struct dm_file *f = dm_file_new();
	char name[32];

	for (int d = 0; d < DM_DTYPE_COUNT; d++) {
		int64_t shape[2] = {2, 3};
		struct dm_tensor *t = dm_tensor_new(2, shape);
		for (int i = 0; i < 6; i++)
			((float *)t->data)[i] = (float)(d == DM_DTYPE_U8 ||
			    d == DM_DTYPE_BOOL ? i % 2 : -i);
		CHECK_OK(dm_tensor_convert(t, (enum dm_dtype)d));
		snprintf(name, sizeof name, "w.%s", dm_dtype_name((enum dm_dtype)d));
		CHECK_OK(dm_tensor_set_name(t, name));
		CHECK_OK(dm_file_add(f, t));
	}
	int64_t one[1] = {1};
	struct dm_tensor *s = dm_tensor_new_dtype(DM_DTYPE_U8, 0, one);
	CHECK_OK(dm_tensor_set_name(s, "scalar"));
	*(uint8_t *)s->data = 42;
	CHECK_OK(dm_file_add(f, s));
	int64_t zero[2] = {0, 5};
	struct dm_tensor *z = dm_tensor_new_dtype(DM_DTYPE_F64, 2, zero);
	CHECK_OK(dm_tensor_set_name(z, "empty"));
	CHECK_OK(dm_file_add(f, z));
	CHECK_OK(dm_file_meta_set(f, "dm.kind", "model"));
	CHECK_OK(dm_file_meta_set(f, "text", "tab\there \"quoted\" \xc3\xa9"));
	return f;
}

static void
check_same(const struct dm_file *a, const struct dm_file *b)
{
	CHECK_EQ_INT(a->ntensors, b->ntensors);
	CHECK_EQ_INT(a->nmeta, b->nmeta);
	for (int i = 0; i < a->ntensors && i < b->ntensors; i++) {
		const struct dm_tensor *x = a->tensors[i], *y = b->tensors[i];
		CHECK_STR(x->name, y->name);
		CHECK(x->dtype == y->dtype && x->ndim == y->ndim &&
		    x->nbytes == y->nbytes);
		CHECK(memcmp(x->shape, y->shape, sizeof x->shape[0] *
		    (size_t)x->ndim) == 0);
		CHECK(x->nbytes == y->nbytes &&
		    memcmp(x->data, y->data, x->nbytes) == 0);
	}
	for (int i = 0; i < a->nmeta && i < b->nmeta; i++) {
		CHECK_STR(a->meta_keys[i], b->meta_keys[i]);
		CHECK_STR(a->meta_values[i], b->meta_values[i]);
	}
}

DM_TEST(safetensors_round_trip_all_dtypes)
{
	struct dm_file *f = all_dtypes(), *g;
	const char *path = dm_test_path("all.safetensors");

	CHECK_OK(dm_file_write(f, path, 0));
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL) {
		check_same(f, g);
		CHECK(g->mapped && !g->compressed);
		for (int i = 0; i < g->ntensors; i++)
			CHECK(!g->tensors[i]->owns_data);
		CHECK(dm_tensor_get(dm_file_get(g, "w.I16"), 5) == -5);
		CHECK(dm_tensor_get(dm_file_get(g, "w.BF16"), 4) == -4);
		CHECK(dm_tensor_get(dm_file_get(g, "scalar"), 0) == 42);
		dm_file_free(g);
	}
	dm_file_free(f);
}
