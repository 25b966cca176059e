/* safetensors.c — the safetensors format: an 8-byte little-endian header
 * length N, N bytes of JSON header, then the data section.  The header maps
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data section) and may hold "__metadata__", an object of
 * strings.  Everything is validated before a byte of data is trusted. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "safetensors data is little-endian; so must the host be");

#define META_KEY "__metadata__"

/* One tensor of the header, checked. */
struct entry {
	const char *name;
	enum dm_dtype dtype;
	int ndim;
	int64_t shape[DM_MAX_DIMS];
	uint64_t begin, end;
};

static uint64_t
le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A name for a message: at most 64 bytes, control characters as '?'. */
static const char *
printable(const char *name, char *buf, size_t n)
{
	size_t k = 0;

	for (; name[k] != '\0' && k + 4 < n && k < 64; k++)
		buf[k] = (unsigned char)name[k] < 0x20 || name[k] == 0x7f ?
		    '?' : name[k];
	if (name[k] != '\0' && k + 4 <= n) {
		memcpy(buf + k, "...", 3);
		k += 3;
	}
	buf[k] = '\0';
	return buf;
}

static int
tensor_errctx(const char *name)
{
	char buf[80];

	return dm_errctx("tensor '%s': ", printable(name, buf, sizeof buf));
}

/* Exact uppercase names only: the lower-case aliases are not the format. */
static int
parse_dtype(const struct dm_json *v, enum dm_dtype *dt)
{
	char buf[80];

	if (v->type != DM_JSON_STRING)
		return dm_seterr("dtype is not a string");
	for (int i = 0; i < DM_DTYPE_COUNT; i++)
		if (strcmp(v->str, dm_dtype_name((enum dm_dtype)i)) == 0) {
			*dt = (enum dm_dtype)i;
			return 0;
		}
	return dm_seterr("unsupported dtype '%s'",
	    printable(v->str, buf, sizeof buf));
}

static int
parse_shape(const struct dm_json *v, struct entry *e)
{
	uint64_t d;

	if (v->type != DM_JSON_ARRAY)
		return dm_seterr("shape is not an array");
	if (v->n > DM_MAX_DIMS)
		return dm_seterr("shape has %d dimensions (at most %d)", v->n,
		    DM_MAX_DIMS);
	for (int i = 0; i < v->n; i++) {
		if (dm_json_uint(&v->kids[i], INT64_MAX, &d) == -1)
			return dm_errctx("shape[%d]: ", i);
		e->shape[i] = (int64_t)d;
	}
	e->ndim = v->n;
	return 0;
}

static int
parse_offsets(const struct dm_json *v, struct entry *e, size_t dlen)
{
	if (v->type != DM_JSON_ARRAY || v->n != 2)
		return dm_seterr("data_offsets is not an array of two integers");
	if (dm_json_uint(&v->kids[0], UINT64_MAX, &e->begin) == -1 ||
	    dm_json_uint(&v->kids[1], UINT64_MAX, &e->end) == -1)
		return dm_errctx("data_offsets: ");
	if (e->begin > e->end)
		return dm_seterr("data_offsets [%llu, %llu] are reversed",
		    (unsigned long long)e->begin, (unsigned long long)e->end);
	if (e->end > dlen)
		return dm_seterr("data_offsets [%llu, %llu] exceed the data "
		    "section (%zu bytes)", (unsigned long long)e->begin,
		    (unsigned long long)e->end, dlen);
	return 0;
}

static int
check_keys(const struct dm_json *v)
{
	char buf[80];

	for (int i = 0; i < v->n; i++) {
		const char *k = v->kids[i].key;
		if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 &&
		    strcmp(k, "data_offsets") != 0)
			return dm_seterr("unknown key '%s'",
			    printable(k, buf, sizeof buf));
	}
	return 0;
}

static int
check_size(const struct entry *e)
{
	char shape[256];
	size_t nbytes;

	if (dm_shape_numel(e->ndim, e->shape, e->dtype, NULL, &nbytes) == -1)
		return -1;
	if (e->end - e->begin == nbytes)
		return 0;
	dm_shape_format(shape, sizeof shape, e->ndim, e->shape);
	return dm_seterr("data_offsets [%llu, %llu] do not match shape %s "
	    "of %s (%zu bytes)", (unsigned long long)e->begin,
	    (unsigned long long)e->end, shape, dm_dtype_name(e->dtype), nbytes);
}

static int
parse_entry(const struct dm_json *v, struct entry *e, size_t dlen)
{
	static const char *const need[] = {"dtype", "shape", "data_offsets"};
	const struct dm_json *m[3];

	if (v->type != DM_JSON_OBJECT)
		return dm_seterr("not a JSON object");
	if (check_keys(v) == -1)
		return -1;
	for (int i = 0; i < 3; i++)
		if ((m[i] = dm_json_get(v, need[i])) == NULL)
			return dm_seterr("no \"%s\"", need[i]);
	if (parse_dtype(m[0], &e->dtype) == -1 || parse_shape(m[1], e) == -1 ||
	    parse_offsets(m[2], e, dlen) == -1)
		return -1;
	return check_size(e);
}

static int
parse_meta(struct dm_file *f, const struct dm_json *v)
{
	char buf[80];

	if (v->type != DM_JSON_OBJECT)
		return dm_seterr(META_KEY " is not a JSON object");
	if (v->n > DM_MAX_META)
		return dm_seterr(META_KEY " has %d entries (at most %d)", v->n,
		    DM_MAX_META);
	for (int i = 0; i < v->n; i++) {
		const struct dm_json *k = &v->kids[i];
		if (strlen(k->key) > DM_MAX_NAME)
			return dm_seterr(META_KEY " key of %zu bytes (at most "
			    "%d)", strlen(k->key), DM_MAX_NAME);
		if (k->type != DM_JSON_STRING)
			return dm_seterr(META_KEY " '%s': value is not a string",
			    printable(k->key, buf, sizeof buf));
		if (dm_file_meta_set(f, k->key, k->str) == -1)
			return -1;
	}
	return 0;
}

static int
cmp_begin(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;

	return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Sorted by begin, disjoint ranges each end before the next begins;
 * zero-size tensors occupy nothing. */
static int
check_overlap(struct entry *e, int n)
{
	const struct entry **s, *prev = NULL;
	char a[80], b[80];
	int i, k = 0, rc = 0;

	if ((s = dm_calloc((size_t)n, sizeof *s)) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (e[i].end > e[i].begin)
			s[k++] = &e[i];
	qsort(s, (size_t)k, sizeof *s, cmp_begin);
	for (i = 0; i < k; prev = s[i++]) {
		if (prev == NULL || prev->end <= s[i]->begin)
			continue;
		rc = dm_seterr("tensors '%s' and '%s' overlap (data_offsets "
		    "[%llu, %llu] and [%llu, %llu])",
		    printable(prev->name, a, sizeof a),
		    printable(s[i]->name, b, sizeof b),
		    (unsigned long long)prev->begin,
		    (unsigned long long)prev->end,
		    (unsigned long long)s[i]->begin,
		    (unsigned long long)s[i]->end);
		break;
	}
	free(s);
	return rc;
}

/* A tensor over data: a view where data is aligned for the dtype (or
 * there is none), an aligned copy otherwise. */
static struct dm_tensor *
make_tensor(const struct entry *e, unsigned char *data)
{
	struct dm_tensor *t;

	if ((uintptr_t)data % dm_dtype_size(e->dtype) == 0 || e->end == e->begin)
		t = dm_tensor_view(e->dtype, e->ndim, e->shape, data);
	else if ((t = dm_tensor_new_dtype(e->dtype, e->ndim, e->shape)) != NULL)
		memcpy(t->data, data, t->nbytes);
	if (t != NULL && dm_tensor_set_name(t, e->name) == -1) {
		dm_tensor_free(t);
		return NULL;
	}
	return t;
}

static int
check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return dm_seterr("empty tensor name");
	if (n > DM_MAX_NAME)
		return dm_seterr("tensor name of %zu bytes (at most %d)", n,
		    DM_MAX_NAME);
	return 0;
}

/* The tensors (and metadata) of the header object into f. */
static int
parse_members(struct dm_file *f, const struct dm_json *root,
    unsigned char *data, size_t dlen)
{
	struct entry *e;
	int i, n = 0, rc = -1;

	if ((e = dm_calloc((size_t)root->n, sizeof *e)) == NULL)
		return -1;
	for (i = 0; i < root->n; i++) {
		const struct dm_json *v = &root->kids[i];
		if (strcmp(v->key, META_KEY) == 0) {
			if (parse_meta(f, v) == -1)
				goto out;
			continue;
		}
		e[n].name = v->key;
		if (check_name(v->key) == -1 ||
		    parse_entry(v, &e[n], dlen) == -1) {
			tensor_errctx(v->key);
			goto out;
		}
		n++;
	}
	if (check_overlap(e, n) == -1)
		goto out;
	for (i = 0; i < n; i++) {
		struct dm_tensor *t = make_tensor(&e[i], data + e[i].begin);
		if (t == NULL || dm_file_append(f, t) == -1) {
			dm_tensor_free(t);
			goto out;
		}
	}
	rc = 0;
out:
	free(e);
	return rc;
}

int
dm_safetensors_parse(struct dm_file *f, unsigned char *buf, size_t len)
{
	struct dm_json *root;
	uint64_t n;
	int rc, ntensors;

	if (len < 8)
		return dm_seterr("file of %zu bytes is too short for a "
		    "safetensors header", len);
	n = le64(buf);
	if (n < 2)
		return dm_seterr("header length %llu is too small",
		    (unsigned long long)n);
	if (n > DM_MAX_HEADER)
		return dm_seterr("header length %llu exceeds the limit of %u "
		    "bytes", (unsigned long long)n, DM_MAX_HEADER);
	if (n > len - 8)
		return dm_seterr("header length %llu exceeds file size %zu",
		    (unsigned long long)n, len);
	if ((root = dm_json_parse((const char *)buf + 8, (size_t)n)) == NULL)
		return dm_errctx("header: ");
	if (root->type != DM_JSON_OBJECT) {
		dm_json_free(root);
		return dm_seterr("header is not a JSON object");
	}
	ntensors = root->n - (dm_json_get(root, META_KEY) != NULL);
	if (ntensors > DM_MAX_TENSORS)
		rc = dm_seterr("header lists %d tensors (at most %d)", ntensors,
		    DM_MAX_TENSORS);
	else
		rc = parse_members(f, root, buf + 8 + n, len - 8 - (size_t)n);
	dm_json_free(root);
	if (rc == 0)
		f->format = DM_FORMAT_SAFETENSORS;
	return rc;
}

/* Writer. */

static int
putf(struct dm_sink *s, const char *fmt, ...) DM_PRINTF(2, 3);

static int
putf(struct dm_sink *s, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return dm_seterr("header field too long");
	return dm_sink_write(s, buf, (size_t)n);
}

static int
write_meta(const struct dm_file *f, struct dm_sink *s)
{
	if (f->nmeta == 0)
		return 0;
	if (f->nmeta > DM_MAX_META)
		return dm_seterr("%d metadata entries (at most %d)", f->nmeta,
		    DM_MAX_META);
	if (putf(s, "\"" META_KEY "\":{") == -1)
		return -1;
	for (int i = 0; i < f->nmeta; i++)
		if ((i && putf(s, ",") == -1) ||
		    dm_json_write_string(s, f->meta_keys[i]) == -1 ||
		    putf(s, ":") == -1 ||
		    dm_json_write_string(s, f->meta_values[i]) == -1)
			return -1;
	return putf(s, "}");
}

static int
write_entry(const struct dm_tensor *t, uint64_t begin, struct dm_sink *s)
{
	if (t->name == NULL || check_name(t->name) == -1)
		return dm_seterr("a tensor without a valid name cannot be "
		    "written");
	if (strcmp(t->name, META_KEY) == 0)
		return dm_seterr("a tensor cannot be named " META_KEY);
	if (dm_json_write_string(s, t->name) == -1 ||
	    putf(s, ":{\"dtype\":\"%s\",\"shape\":[",
	    dm_dtype_name(t->dtype)) == -1)
		return -1;
	for (int d = 0; d < t->ndim; d++)
		if (putf(s, "%s%lld", d ? "," : "", (long long)t->shape[d]) == -1)
			return -1;
	return putf(s, "],\"data_offsets\":[%llu,%llu]}",
	    (unsigned long long)begin,
	    (unsigned long long)(begin + t->nbytes));
}

/* The header JSON, padded with spaces so that the data starts 8-aligned. */
static int
build_header(const struct dm_file *f, struct dm_membuf *h)
{
	struct dm_sink s = {dm_membuf_write, h};
	uint64_t off = 0;

	if (f->ntensors > DM_MAX_TENSORS)
		return dm_seterr("%d tensors (at most %d)", f->ntensors,
		    DM_MAX_TENSORS);
	if (putf(&s, "{") == -1 || write_meta(f, &s) == -1)
		return -1;
	for (int i = 0; i < f->ntensors; i++) {
		if (((i || f->nmeta) && putf(&s, ",") == -1) ||
		    write_entry(f->tensors[i], off, &s) == -1)
			return -1;
		off += f->tensors[i]->nbytes;
	}
	if (putf(&s, "}") == -1)
		return -1;
	while ((8 + h->len) % 8 != 0)
		if (putf(&s, " ") == -1)
			return -1;
	if (h->len > DM_MAX_HEADER)
		return dm_seterr("header of %zu bytes exceeds the limit of %u",
		    h->len, DM_MAX_HEADER);
	return 0;
}

int
dm_safetensors_write(const struct dm_file *f, struct dm_sink *s)
{
	struct dm_membuf h = {0};
	unsigned char len[8];
	int rc = -1;

	if (build_header(f, &h) == -1)
		goto out;
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
	if (dm_sink_write(s, len, 8) == -1 || dm_sink_write(s, h.p, h.len) == -1)
		goto out;
	for (int i = 0; i < f->ntensors; i++)
		if (dm_sink_write(s, f->tensors[i]->data,
		    f->tensors[i]->nbytes) == -1)
			goto out;
	rc = 0;
out:
	free(h.p);
	return rc;
}
