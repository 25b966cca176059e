/* file.c — tensor files: reading (stdin, memory maps, gzip), format
 * dispatch, atomic writing through sinks, and the tensors and metadata of a
 * struct dm_file. */
#define ZLIB_CONST
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

/* Largest stream or decompressed file read into memory. */
#define MAX_READ ((size_t)1 << 40)
/* Maps smaller than this are prefaulted in one go. */
#define POPULATE_MAX ((size_t)256 << 20)
#define CHUNK ((size_t)1 << 16)

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* Growing buffers and the memory sink. */

/* Make room for n more bytes, growing geometrically. */
static int
membuf_reserve(struct dm_membuf *b, size_t n)
{
	size_t need, cap;
	unsigned char *p;

	if (dm_add_size(b->len, n, &need) == -1)
		return -1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : CHUNK;
	while (cap < need)
		if (dm_mul_size(cap, 2, &cap) == -1)
			return -1;
	if ((p = dm_realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
dm_membuf_write(void *ctx, const void *p, size_t n)
{
	struct dm_membuf *b = ctx;

	if (membuf_reserve(b, n) == -1)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* Reading. */

static int
read_fd(int fd, struct dm_membuf *b)
{
	ssize_t r;

	for (;;) {
		if (b->len >= MAX_READ)
			return dm_seterr("input larger than %zu bytes", MAX_READ);
		if (membuf_reserve(b, CHUNK) == -1)
			return -1;
		r = read(fd, b->p + b->len, b->cap - b->len);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return dm_seterr("read: %s", strerror(errno));
		}
		b->len += (size_t)r;
	}
}

static int
inflate_error(z_stream *z, int rc)
{
	const char *why = z->msg ? z->msg : zError(rc);

	if (rc == Z_BUF_ERROR || rc == Z_OK)
		why = "unexpected end of stream";
	return dm_seterr("corrupt gzip data: %s", why);
}

/* Inflate every member of the stream; members follow one another. */
static int
inflate_all(z_stream *z, const unsigned char *in, size_t len,
    struct dm_membuf *out)
{
	size_t left = len;
	int rc;

	for (;;) {
		if (z->avail_in == 0 && left > 0) {
			z->avail_in = left < UINT_MAX ? (uInt)left : UINT_MAX;
			z->next_in = in + (len - left);
			left -= z->avail_in;
		}
		if (out->len >= MAX_READ)
			return dm_seterr("decompressed data larger than %zu "
			    "bytes", MAX_READ);
		if (membuf_reserve(out, CHUNK) == -1)
			return -1;
		z->next_out = out->p + out->len;
		z->avail_out = (uInt)(out->cap - out->len < UINT_MAX ?
		    out->cap - out->len : UINT_MAX);
		rc = inflate(z, Z_NO_FLUSH);
		out->len = (size_t)(z->next_out - out->p);
		if (rc == Z_STREAM_END) {
			if (z->avail_in == 0 && left == 0)
				return 0;
			if (inflateReset(z) != Z_OK)
				return inflate_error(z, Z_STREAM_ERROR);
		} else if (rc != Z_OK || (z->avail_in == 0 && left == 0 &&
		    z->avail_out != 0)) {
			return inflate_error(z, rc);
		}
	}
}

static int
gunzip(const unsigned char *in, size_t len, struct dm_membuf *out)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return dm_seterr("zlib: cannot initialise inflate");
	rc = inflate_all(&z, in, len, out);
	inflateEnd(&z);
	return rc;
}

static int
is_gzip(const unsigned char *p, size_t len)
{
	return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* Parse buf (owned by f from here on) by its content. */
static int
parse(struct dm_file *f, unsigned char *buf, size_t len)
{
	if (len == 0)
		return dm_seterr("empty file");
	if (len >= sizeof npy_magic && memcmp(buf, npy_magic,
	    sizeof npy_magic) == 0) {
		f->format = DM_FORMAT_NPY;
		return dm_npy_parse(f, buf, len);
	}
	f->format = DM_FORMAT_SAFETENSORS;
	return dm_safetensors_parse(f, buf, len);
}

/* Bytes in memory (gzip or not) into f->buf, then parse. */
static int
load_mem(struct dm_file *f, const unsigned char *p, size_t len)
{
	struct dm_membuf b = {0};

	f->file_size = len;
	if (len == 0)
		return dm_seterr("empty file");
	if (is_gzip(p, len)) {
		f->compressed = 1;
		if (gunzip(p, len, &b) == -1) {
			free(b.p);
			return -1;
		}
	} else if (dm_membuf_write(&b, p, len) == -1) {
		free(b.p);
		return -1;
	}
	f->buf = b.p;
	return parse(f, b.p, b.len);
}

/* A stream (stdin, pipe, device) read to its end. */
static int
load_stream(struct dm_file *f, int fd)
{
	struct dm_membuf b = {0};
	int rc;

	if (read_fd(fd, &b) == -1) {
		free(b.p);
		return -1;
	}
	if (is_gzip(b.p, b.len)) {
		rc = load_mem(f, b.p, b.len);
		free(b.p);
		return rc;
	}
	f->buf = b.p;	/* no second copy of plain data */
	f->file_size = b.len;
	return parse(f, b.p, b.len);
}

/* A regular file: mapped copy-on-write, so parsers may modify it. */
static int
load_regular(struct dm_file *f, int fd, size_t size)
{
	unsigned char *p;
	int flags = MAP_PRIVATE | (size <= POPULATE_MAX ? MAP_POPULATE : 0);

	if (size == 0)
		return dm_seterr("empty file");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		return dm_seterr("mmap: %s", strerror(errno));
	if (is_gzip(p, size)) {
		int rc = load_mem(f, p, size);
		munmap(p, size);
		return rc;
	}
	madvise(p, size, MADV_SEQUENTIAL);
	f->map = p;
	f->maplen = size;
	f->mapped = 1;
	f->file_size = size;
	return parse(f, p, size);
}

static int
load_fd(struct dm_file *f, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return dm_seterr("%s", strerror(errno));
	if (S_ISDIR(st.st_mode))
		return dm_seterr("is a directory");
	if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > SIZE_MAX)
			return dm_seterr("file too large");
		return load_regular(f, fd, (size_t)st.st_size);
	}
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
		return load_stream(f, fd);
	return dm_seterr("not a regular file, pipe or device");
}

int
dm_file_read(struct dm_file **out, const char *path)
{
	struct dm_file *f;
	int fd, rc;

	*out = NULL;
	if ((f = dm_file_new()) == NULL)
		return -1;
	if (path == NULL || strcmp(path, "-") == 0) {
		rc = load_fd(f, STDIN_FILENO);
	} else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		rc = dm_seterr("%s", strerror(errno));
	} else {
		rc = load_fd(f, fd);
		close(fd);
	}
	if (rc == -1) {
		dm_file_free(f);
		return -1;
	}
	*out = f;
	return 0;
}

int
dm_file_read_mem(struct dm_file **out, const void *buf, size_t len)
{
	struct dm_file *f;

	*out = NULL;
	if ((f = dm_file_new()) == NULL)
		return -1;
	if (load_mem(f, buf, len) == -1) {
		dm_file_free(f);
		return -1;
	}
	*out = f;
	return 0;
}

/* Writing: a buffered file-descriptor sink, optionally behind gzip. */

struct fdsink {
	int fd;
	size_t n;
	unsigned char buf[CHUNK];
};

int
dm_write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n < SSIZE_MAX ? n : SSIZE_MAX);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return dm_seterr("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
fdsink_flush(struct fdsink *s)
{
	int rc = dm_write_all(s->fd, s->buf, s->n);

	s->n = 0;
	return rc;
}

static int
fdsink_write(void *ctx, const void *p, size_t n)
{
	struct fdsink *s = ctx;

	if (s->n + n <= sizeof s->buf) {
		memcpy(s->buf + s->n, p, n);
		s->n += n;
		return 0;
	}
	if (fdsink_flush(s) == -1)
		return -1;
	if (n >= sizeof s->buf)
		return dm_write_all(s->fd, p, n);
	memcpy(s->buf, p, n);
	s->n = n;
	return 0;
}

struct gzsink {
	z_stream z;
	struct dm_sink *next;
	unsigned char out[CHUNK];
};

/* Feed n bytes (or, with Z_FINISH, the end) through deflate. */
static int
gz_deflate(struct gzsink *g, const void *p, size_t n, int flush)
{
	int rc;

	g->z.next_in = p;
	g->z.avail_in = (uInt)n;
	do {
		g->z.next_out = g->out;
		g->z.avail_out = sizeof g->out;
		rc = deflate(&g->z, flush);
		if (rc == Z_STREAM_ERROR)
			return dm_seterr("zlib: deflate failed");
		if (dm_sink_write(g->next, g->out,
		    sizeof g->out - g->z.avail_out) == -1)
			return -1;
	} while (g->z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

static int
gzsink_write(void *ctx, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		size_t k = n < UINT_MAX ? n : UINT_MAX;
		if (gz_deflate(ctx, b, k, Z_NO_FLUSH) == -1)
			return -1;
		b += k;
		n -= k;
	}
	return 0;
}

static int
write_format(const struct dm_file *f, struct dm_sink *s, unsigned flags)
{
	if (flags & DM_WRITE_NPY)
		return dm_npy_write(f->tensors[0], s);
	return dm_safetensors_write(f, s);
}

/* The whole file to fd: format, optional gzip, flush. */
static int
write_fd(const struct dm_file *f, int fd, unsigned flags)
{
	struct fdsink *fs;
	struct gzsink *gz = NULL;
	struct dm_sink out, zs;
	int rc = -1;

	if ((fs = dm_malloc(sizeof *fs)) == NULL)
		return -1;
	fs->fd = fd;
	fs->n = 0;
	out = (struct dm_sink){fdsink_write, fs};
	if (flags & DM_WRITE_GZIP) {
		if ((gz = dm_calloc(1, sizeof *gz)) == NULL)
			goto out;
		if (deflateInit2(&gz->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
		    15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
			free(gz);
			gz = NULL;
			dm_seterr("zlib: cannot initialise deflate");
			goto out;
		}
		gz->next = &out;
		zs = (struct dm_sink){gzsink_write, gz};
	}
	if (write_format(f, gz ? &zs : &out, flags) == -1 ||
	    (gz && gz_deflate(gz, NULL, 0, Z_FINISH) == -1))
		goto out;
	rc = fdsink_flush(fs);
out:
	if (gz) {
		deflateEnd(&gz->z);
		free(gz);
	}
	free(fs);
	return rc;
}

static int
has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* Flags implied by the name: "*.gz" compresses, "*.npy[.gz]" is NumPy. */
static unsigned
name_flags(const char *path)
{
	size_t n;
	unsigned flags = 0;

	if (path == NULL)
		return 0;
	n = strlen(path);
	if (has_suffix(path, n, ".gz")) {
		flags |= DM_WRITE_GZIP;
		n -= 3;
	}
	if (has_suffix(path, n, ".npy"))
		flags |= DM_WRITE_NPY;
	return flags;
}

/* "DIR/.NAME.XXXXXX" for a path "DIR/NAME" (or ".NAME.XXXXXX"). */
static char *
temp_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dir = slash ? (size_t)(slash - path) + 1 : 0, n;
	char *t;

	if (dm_add_size(strlen(path), 9, &n) == -1 || (t = dm_malloc(n)) == NULL)
		return NULL;
	memcpy(t, path, dir);
	strcpy(t + dir, ".");
	strcat(t + dir, path + dir);
	strcat(t + dir, ".XXXXXX");
	return t;
}

/* Permissions for the new file: those of the file it replaces, else 0644
 * less the umask. */
static mode_t
new_mode(const struct stat *old, int exists)
{
	mode_t mask;

	if (exists)
		return old->st_mode & 07777;
	mask = umask(022);
	umask(mask);
	return 0644 & ~mask;
}

/* Write to a temporary in the same directory, then rename over path. */
static int
write_atomic(const char *path, int (*fn)(int, void *), void *ctx,
    const struct stat *old, int exists)
{
	char *tmp;
	int fd, rc;

	if ((tmp = temp_name(path)) == NULL)
		return -1;
	if ((fd = mkstemp(tmp)) == -1) {
		rc = dm_seterr("cannot create a temporary file: %s",
		    strerror(errno));
		free(tmp);
		return rc;
	}
	rc = fchmod(fd, new_mode(old, exists)) == -1 ?
	    dm_seterr("fchmod: %s", strerror(errno)) : 0;
	if (rc == 0)
		rc = fn(fd, ctx);
	if (close(fd) == -1 && rc == 0)
		rc = dm_seterr("close: %s", strerror(errno));
	if (rc == 0 && rename(tmp, path) == -1)
		rc = dm_seterr("rename: %s", strerror(errno));
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* A device or pipe: written in place (no temporaries in /dev). */
static int
write_special(const char *path, int (*fn)(int, void *), void *ctx)
{
	int fd, rc;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return dm_seterr("%s", strerror(errno));
	rc = fn(fd, ctx);
	if (close(fd) == -1 && rc == 0)
		rc = dm_seterr("close: %s", strerror(errno));
	return rc;
}

int
dm_write_path(const char *path, int (*fn)(int fd, void *ctx), void *ctx)
{
	struct stat st;
	int exists;

	if (path == NULL || strcmp(path, "-") == 0)
		return fn(STDOUT_FILENO, ctx);
	if (*path == '\0')
		return dm_seterr("empty file name");
	exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode))
		return dm_seterr("is a directory");
	if (exists && !S_ISREG(st.st_mode))
		return write_special(path, fn, ctx);
	return write_atomic(path, fn, ctx, &st, exists);
}

struct file_job {
	const struct dm_file *f;
	unsigned flags;
};

static int
write_file_fd(int fd, void *ctx)
{
	const struct file_job *j = ctx;

	return write_fd(j->f, fd, j->flags);
}

int
dm_file_write(const struct dm_file *f, const char *path, unsigned flags)
{
	struct file_job job = {f, flags | name_flags(path)};

	if ((job.flags & DM_WRITE_NPY) && f->ntensors != 1)
		return dm_seterr("npy holds one tensor; this file has %d",
		    f->ntensors);
	return dm_write_path(path, write_file_fd, &job);
}

/* Tensors and metadata. */

struct dm_file *
dm_file_new(void)
{
	return dm_calloc(1, sizeof(struct dm_file));
}

void
dm_file_free(struct dm_file *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->ntensors; i++)
		dm_tensor_free(f->tensors[i]);
	free(f->tensors);
	for (int i = 0; i < f->nmeta; i++) {
		free(f->meta_keys[i]);
		free(f->meta_values[i]);
	}
	free(f->meta_keys);
	free(f->meta_values);
	if (f->map != NULL)
		munmap(f->map, f->maplen);
	free(f->buf);
	free(f);
}

int
dm_file_index(const struct dm_file *f, const char *name)
{
	for (int i = 0; i < f->ntensors; i++)
		if (f->tensors[i]->name != NULL &&
		    strcmp(f->tensors[i]->name, name) == 0)
			return i;
	return -1;
}

struct dm_tensor *
dm_file_get(const struct dm_file *f, const char *name)
{
	int i = dm_file_index(f, name);

	return i < 0 ? NULL : f->tensors[i];
}

/* Room for one more element in an array of cap slots of size sz. */
static int
grow(void **arr, int *cap, int n, size_t sz)
{
	void *p;
	int ncap;

	if (n < *cap)
		return 0;
	if (*cap >= INT_MAX / 2)
		return dm_seterr("too many entries");
	ncap = *cap ? *cap * 2 : 8;
	if ((p = dm_realloc(*arr, (size_t)ncap * sz)) == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

int
dm_file_append(struct dm_file *f, struct dm_tensor *t)
{
	void *arr = f->tensors;
	int rc = grow(&arr, &f->tensor_cap, f->ntensors, sizeof *f->tensors);

	f->tensors = arr;
	if (rc == -1)
		return -1;
	f->tensors[f->ntensors++] = t;
	return 0;
}

int
dm_file_add(struct dm_file *f, struct dm_tensor *t)
{
	int i;

	if (t == NULL || t->name == NULL)
		return dm_seterr("a tensor needs a name to be added to a file");
	if ((i = dm_file_index(f, t->name)) < 0)
		return dm_file_append(f, t);
	if (f->tensors[i] != t)
		dm_tensor_free(f->tensors[i]);
	f->tensors[i] = t;
	return 0;
}

struct dm_tensor *
dm_file_take(struct dm_file *f, const char *name)
{
	int i = dm_file_index(f, name);
	struct dm_tensor *t;

	if (i < 0) {
		dm_seterr("no tensor '%s'", name);
		return NULL;
	}
	t = f->tensors[i];
	if (dm_tensor_own(t) == -1)
		return NULL;
	memmove(f->tensors + i, f->tensors + i + 1,
	    (size_t)(f->ntensors - i - 1) * sizeof *f->tensors);
	f->ntensors--;
	return t;
}

int
dm_file_remove(struct dm_file *f, const char *name)
{
	int i = dm_file_index(f, name);

	if (i < 0)
		return dm_seterr("no tensor '%s'", name);
	dm_tensor_free(f->tensors[i]);
	memmove(f->tensors + i, f->tensors + i + 1,
	    (size_t)(f->ntensors - i - 1) * sizeof *f->tensors);
	f->ntensors--;
	return 0;
}

struct dm_tensor *
dm_file_get_f32(struct dm_file *f, const char *name)
{
	struct dm_tensor *t = dm_file_get(f, name);

	if (t == NULL) {
		dm_seterr("no tensor '%s'", name);
		return NULL;
	}
	if (dm_tensor_convert(t, DM_DTYPE_F32) == -1) {
		dm_errctx("tensor '%s': ", name);
		return NULL;
	}
	return t;
}

static int
meta_index(const struct dm_file *f, const char *key)
{
	for (int i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta_keys[i], key) == 0)
			return i;
	return -1;
}

const char *
dm_file_meta(const struct dm_file *f, const char *key)
{
	int i = meta_index(f, key);

	return i < 0 ? NULL : f->meta_values[i];
}

int
dm_file_meta_set(struct dm_file *f, const char *key, const char *value)
{
	int i = meta_index(f, key), cap;
	char *k = NULL, *v;
	void *arr;

	if ((v = dm_strdup(value)) == NULL)
		return -1;
	if (i >= 0) {
		free(f->meta_values[i]);
		f->meta_values[i] = v;
		return 0;
	}
	cap = f->meta_cap;
	arr = f->meta_keys;
	if (grow(&arr, &cap, f->nmeta, sizeof(char *)) == -1)
		goto bad;
	f->meta_keys = arr;
	arr = f->meta_values;
	if (grow(&arr, &f->meta_cap, f->nmeta, sizeof(char *)) == -1)
		goto bad;
	f->meta_values = arr;
	if ((k = dm_strdup(key)) == NULL)
		goto bad;
	f->meta_keys[f->nmeta] = k;
	f->meta_values[f->nmeta++] = v;
	return 0;
bad:
	free(v);
	return -1;
}

int
dm_file_meta_unset(struct dm_file *f, const char *key)
{
	int i = meta_index(f, key);
	size_t n;

	if (i < 0)
		return dm_seterr("no metadata key '%s'", key);
	free(f->meta_keys[i]);
	free(f->meta_values[i]);
	n = (size_t)(f->nmeta - i - 1) * sizeof(char *);
	memmove(f->meta_keys + i, f->meta_keys + i + 1, n);
	memmove(f->meta_values + i, f->meta_values + i + 1, n);
	f->nmeta--;
	return 0;
}
