/* internal.h — interfaces between libdm's own files; not installed. */
#ifndef DM_INTERNAL_H
#define DM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

/* Where a writer sends bytes: returns 0, or -1 with dm_seterr() done. */
struct dm_sink {
	int (*write)(void *ctx, const void *p, size_t n);
	void *ctx;
};

static inline int
dm_sink_write(struct dm_sink *s, const void *p, size_t n)
{
	return n ? s->write(s->ctx, p, n) : 0;
}

/* Write all n bytes to fd (retrying short writes); -1 with reason. */
int dm_write_all(int fd, const void *buf, size_t n);
/* Write a file the toolkit's way: "-" or NULL is standard output; an
 * existing device or pipe is written in place; a regular file is written
 * by fn to a temporary in the same directory and renamed over path, the
 * temporary removed on any failure (fn returns 0 or -1 with reason). */
int dm_write_path(const char *path, int (*fn)(int fd, void *ctx), void *ctx);

/* Parsers: buf holds the whole (uncompressed) file and is writable; it is
 * kept alive by the caller for as long as f is (f->map or f->buf).  They add
 * tensors to f that point into buf where the data is aligned for its dtype
 * and own a copy otherwise.  -1 with reason on any malformed input. */
int dm_safetensors_parse(struct dm_file *f, unsigned char *buf, size_t len);
int dm_npy_parse(struct dm_file *f, unsigned char *buf, size_t len);
/* Writers. */
int dm_safetensors_write(const struct dm_file *f, struct dm_sink *s);
int dm_npy_write(const struct dm_tensor *t, struct dm_sink *s);

/* A growing byte buffer and the sink write function that appends to it
 * (ctx = a struct dm_membuf, zero-initialised; free p when done). */
struct dm_membuf {
	unsigned char *p;
	size_t len, cap;
};
int dm_membuf_write(void *ctx, const void *p, size_t n);

/* Append t (named, its name not yet in f) without searching for a tensor of
 * the same name: parsers that have checked names use it. */
int dm_file_append(struct dm_file *f, struct dm_tensor *t);

/* Minimal strict JSON (RFC 8259) DOM for headers. */
enum dm_json_type {
	DM_JSON_NULL, DM_JSON_FALSE, DM_JSON_TRUE, DM_JSON_NUMBER,
	DM_JSON_STRING, DM_JSON_ARRAY, DM_JSON_OBJECT
};
struct dm_json {
	enum dm_json_type type;
	char *key;                /* member name when inside an object */
	char *str;                /* STRING: NUL-terminated (no NULs inside) */
	char *num;                /* NUMBER: its text, validated */
	int n;                    /* ARRAY/OBJECT: number of children */
	struct dm_json *kids;     /* ARRAY/OBJECT: children */
};
struct dm_json *dm_json_parse(const char *text, size_t len);
void dm_json_free(struct dm_json *j);
/* Object member by name, or NULL. */
const struct dm_json *dm_json_get(const struct dm_json *obj, const char *key);
/* A NUMBER that is a non-negative integer <= max; -1 otherwise. */
int dm_json_uint(const struct dm_json *j, uint64_t max, uint64_t *out);
/* Append s to a sink as a JSON string literal with escapes. */
int dm_json_write_string(struct dm_sink *s, const char *str);

#endif
