/* dm_io.h — tensor files: safetensors (with __metadata__), NumPy .npy,
 * gzip-compressed input and output, stdin/stdout, memory mapping, atomic
 * writes.  The format is described in dm-tensor(5). */
#ifndef DM_IO_H
#define DM_IO_H

#include <stddef.h>

#include "dm_tensor.h"

/* Limits a reader enforces before it allocates anything. */
#define DM_MAX_HEADER   (100u << 20)  /* safetensors JSON header: 100 MiB */
#define DM_MAX_TENSORS  65536         /* tensors in one file */
#define DM_MAX_META     4096          /* __metadata__ entries */
#define DM_MAX_NAME     1024          /* bytes in a tensor name or key */

enum dm_format {
	DM_FORMAT_SAFETENSORS,
	DM_FORMAT_NPY
};

/* A file in memory: named tensors in file order, plus string metadata. */
struct dm_file {
	int ntensors;
	struct dm_tensor **tensors;
	int nmeta;
	char **meta_keys;
	char **meta_values;
	/* how it was read (informative) */
	enum dm_format format;
	int compressed;           /* input was gzip */
	int mapped;               /* tensors point into a memory map */
	size_t file_size;         /* bytes on disk (compressed size if gzip) */
	/* backing storage of tensors that do not own their data */
	void *map;
	size_t maplen;
	void *buf;
	int tensor_cap, meta_cap;  /* allocated slots */
};

/* An empty file (no tensors, no metadata). */
struct dm_file *dm_file_new(void);
void dm_file_free(struct dm_file *f);

/* Read a file: safetensors or .npy (by content, not by name), gzip
 * transparently, "-" for standard input.  Large uncompressed regular files
 * are memory-mapped (copy-on-write: tensors may be modified in memory).
 * Every header is validated before it is trusted. */
int dm_file_read(struct dm_file **out, const char *path);
/* The same from bytes in memory (copied; buf may be freed afterwards). */
int dm_file_read_mem(struct dm_file **out, const void *buf, size_t len);

/* Write flags. */
#define DM_WRITE_NPY   0x1   /* NumPy .npy (exactly one tensor) */
#define DM_WRITE_GZIP  0x2   /* gzip-compress */
/* Write a file.  The format comes from flags, or from the name: "*.npy"
 * (and "*.npy.gz") is NumPy, "*.gz" is compressed.  "-" is standard output.
 * Regular files are written to a temporary name in the same directory and
 * renamed, so a failed write leaves neither a partial file nor the
 * temporary behind; special files (devices, pipes) are written directly. */
int dm_file_write(const struct dm_file *f, const char *path, unsigned flags);

/* Tensors. */
struct dm_tensor *dm_file_get(const struct dm_file *f, const char *name);
int dm_file_index(const struct dm_file *f, const char *name); /* -1 if absent */
/* Add t (the file takes ownership); a tensor of the same name is replaced.
 * t must have a name. */
int dm_file_add(struct dm_file *f, struct dm_tensor *t);
/* Remove and return the tensor (owning its data), or NULL. */
struct dm_tensor *dm_file_take(struct dm_file *f, const char *name);
/* Remove and free; 0 if removed, -1 if absent. */
int dm_file_remove(struct dm_file *f, const char *name);
/* The named tensor converted in place to F32 (NULL with reason if absent). */
struct dm_tensor *dm_file_get_f32(struct dm_file *f, const char *name);

/* Metadata (string keys and values; toolkit keys start with "dm."). */
const char *dm_file_meta(const struct dm_file *f, const char *key);
int dm_file_meta_set(struct dm_file *f, const char *key, const char *value);
int dm_file_meta_unset(struct dm_file *f, const char *key);

#endif
