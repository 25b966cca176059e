/* test_file.c — reading and writing files: memory maps, gzip both ways,
 * atomic replacement, special files, errors; tensors and metadata of a
 * struct dm_file. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"
#include "test.h"

/* A small file: "x" F32 [2, 3] = 0..5, "y" I64 [2] = {7, -1}, one key. */
static struct dm_file *
sample(void)
{
	struct dm_file *f = dm_file_new();
	int64_t sx[2] = {2, 3}, sy[1] = {2};
	struct dm_tensor *x = dm_tensor_new(2, sx);
	struct dm_tensor *y = dm_tensor_new_dtype(DM_DTYPE_I64, 1, sy);

	for (int i = 0; i < 6; i++)
		((float *)x->data)[i] = (float)i;
	((int64_t *)y->data)[0] = 7;
	((int64_t *)y->data)[1] = -1;
	CHECK_OK(dm_tensor_set_name(x, "x"));
	CHECK_OK(dm_tensor_set_name(y, "y"));
	CHECK_OK(dm_file_add(f, x));
	CHECK_OK(dm_file_add(f, y));
	CHECK_OK(dm_file_meta_set(f, "dm.kind", "data"));
	return f;
}

static int
is_sample(const struct dm_file *f)
{
	const struct dm_tensor *x = dm_file_get(f, "x"), *y = dm_file_get(f, "y");

	if (f->ntensors != 2 || x == NULL || y == NULL || x->ndim != 2 ||
	    x->shape[0] != 2 || x->shape[1] != 3 || y->dtype != DM_DTYPE_I64)
		return 0;
	for (int i = 0; i < 6; i++)
		if (dm_tensor_get(x, (size_t)i) != i)
			return 0;
	return dm_tensor_get(y, 0) == 7 && dm_tensor_get(y, 1) == -1 &&
	    dm_file_meta(f, "dm.kind") != NULL &&
	    strcmp(dm_file_meta(f, "dm.kind"), "data") == 0;
}

/* Names in the scratch directory that start with '.' (temporaries). */
static int
count_hidden(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *b = NULL;
	long n;

	*len = 0;
	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
	    fseek(fp, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) != NULL)
		*len = fread(b, 1, (size_t)n, fp);
	fclose(fp);
	return b;
}

static void
spit(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");

	CHECK(fp != NULL);
	if (fp == NULL)
		return;
	CHECK(fwrite(p, 1, n, fp) == n);
	CHECK(fclose(fp) == 0);
}

DM_TEST(file_write_read_mapped)
{
	struct dm_file *f = sample(), *g;
	const char *path = dm_test_path("s.st");
	struct stat st;
	mode_t mask = umask(022);

	umask(mask);
	CHECK_OK(dm_file_write(f, path, 0));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0644 & ~mask));
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL) {
		CHECK(is_sample(g));
		CHECK(g->mapped && g->map != NULL && !g->compressed);
		CHECK(g->format == DM_FORMAT_SAFETENSORS);
		CHECK_EQ_INT(g->file_size, st.st_size);
		CHECK(!g->tensors[0]->owns_data && !g->tensors[1]->owns_data);
		/* copy-on-write: tensors may be changed in memory */
		((float *)g->tensors[0]->data)[0] = 9.0f;
		dm_file_free(g);
	}
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL)
		CHECK(is_sample(g));
	dm_file_free(g);
	CHECK_EQ_INT(count_hidden(dm_test_tmpdir()), 0);
	dm_file_free(f);
}

DM_TEST(file_gzip_round_trip)
{
	struct dm_file *f = sample(), *g;
	const char *path = dm_test_path("s.st.gz");
	size_t len;
	unsigned char *b;

	CHECK_OK(dm_file_write(f, path, 0));
	b = slurp(path, &len);
	CHECK(b != NULL && len > 2 && b[0] == 0x1f && b[1] == 0x8b);
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL) {
		CHECK(is_sample(g));
		CHECK(g->compressed && !g->mapped);
		CHECK_EQ_INT(g->file_size, len);
		dm_file_free(g);
	}
	/* the same bytes from memory */
	CHECK_OK(dm_file_read_mem(&g, b, len));
	if (g != NULL)
		CHECK(is_sample(g) && g->compressed);
	dm_file_free(g);
	/* the flag alone compresses whatever the name */
	CHECK_OK(dm_file_write(f, dm_test_path("flag.st"), DM_WRITE_GZIP));
	free(b);
	b = slurp(dm_test_path("flag.st"), &len);
	CHECK(b != NULL && len > 2 && b[0] == 0x1f && b[1] == 0x8b);
	free(b);
	dm_file_free(f);
}

/* A safetensors file in two gzip members, made with zlib's gz* API. */
DM_TEST(file_reads_zlib_gzip_members)
{
	static const char hdr[] = "{\"v\":{\"dtype\":\"I16\",\"shape\":[3],"
	    "\"data_offsets\":[0,6]}}";
	unsigned char head[8] = {sizeof hdr - 1};
	static const unsigned char data[6] = {1, 0, 0xfe, 0xff, 0, 0x80};
	const char *path = dm_test_path("z.gz");
	struct dm_file *g;
	gzFile z;

	z = gzopen(path, "wb9");
	CHECK(z != NULL);
	if (z == NULL)
		return;
	CHECK(gzwrite(z, head, 8) == 8);
	CHECK(gzwrite(z, hdr, sizeof hdr - 1) == (int)sizeof hdr - 1);
	CHECK(gzclose(z) == Z_OK);
	z = gzopen(path, "ab");
	CHECK(gzwrite(z, data, 6) == 6);
	CHECK(gzclose(z) == Z_OK);
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL) {
		struct dm_tensor *t = dm_file_get(g, "v");
		CHECK(t != NULL && g->compressed);
		CHECK(t != NULL && dm_tensor_get(t, 0) == 1 &&
		    dm_tensor_get(t, 1) == -2 && dm_tensor_get(t, 2) == -32768);
		dm_file_free(g);
	}
}

DM_TEST(file_corrupt_gzip)
{
	struct dm_file *f = sample(), *g;
	const char *path = dm_test_path("c.st.gz");
	size_t len;
	unsigned char *b;

	CHECK_OK(dm_file_write(f, path, 0));
	b = slurp(path, &len);
	CHECK(b != NULL && len > 30);
	if (b == NULL || len <= 30)
		goto out;
	CHECK_FAILS(dm_file_read_mem(&g, b, len - 5), "corrupt gzip data");
	CHECK_FAILS(dm_file_read_mem(&g, b, 12), "corrupt gzip data");
	CHECK_FAILS(dm_file_read_mem(&g, b, 2), "corrupt gzip data");
	b[len - 6] ^= 0xff;   /* the CRC-32 of the trailer */
	CHECK_FAILS(dm_file_read_mem(&g, b, len), "corrupt gzip data");
	b[len - 6] ^= 0xff;
	b[3] = 0xe0;          /* reserved flag bits */
	CHECK_FAILS(dm_file_read_mem(&g, b, len), "corrupt gzip data");
	spit(path, b, len - 5);
	CHECK_FAILS(dm_file_read(&g, path), "corrupt gzip data");
	CHECK(g == NULL);
out:
	free(b);
	dm_file_free(f);
}

DM_TEST(file_read_errors)
{
	struct dm_file *g;

	CHECK_FAILS(dm_file_read(&g, dm_test_path("absent.st")),
	    "No such file or directory");
	CHECK_FAILS(dm_file_read(&g, dm_test_tmpdir()), "is a directory");
	spit(dm_test_path("empty.st"), "", 0);
	CHECK_FAILS(dm_file_read(&g, dm_test_path("empty.st")), "empty file");
	/* the path is the caller's to print, not ours */
	CHECK(strstr(dm_errstr(), "empty.st") == NULL);
	spit(dm_test_path("junk.st"), "hello world", 11);
	CHECK_FAILS(dm_file_read(&g, dm_test_path("junk.st")), "header length");
	CHECK(g == NULL);
	/* /dev/null is a character device: read as a (empty) stream */
	CHECK_FAILS(dm_file_read(&g, "/dev/null"), "empty file");
}

DM_TEST(file_write_replaces_atomically)
{
	struct dm_file *f = sample(), *one = dm_file_new(), *g;
	const char *path = dm_test_path("r.st");
	int64_t s1[1] = {1};
	struct dm_tensor *t = dm_tensor_new(1, s1);

	CHECK_OK(dm_tensor_set_name(t, "only"));
	CHECK_OK(dm_file_add(one, t));
	CHECK_OK(dm_file_write(one, path, 0));
	CHECK_OK(dm_file_write(f, path, 0));      /* replaces it */
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL)
		CHECK(is_sample(g) && dm_file_get(g, "only") == NULL);
	dm_file_free(g);
	/* failures leave the old file as it was and no temporary */
	CHECK_FAILS(dm_file_write(f, path, DM_WRITE_NPY),
	    "npy holds one tensor; this file has 2");
	CHECK_FAILS(dm_file_write(f, dm_test_path("r.npy"), 0),
	    "npy holds one tensor");
	CHECK(access(dm_test_path("r.npy"), F_OK) == -1);
	CHECK_OK(dm_tensor_set_name(f->tensors[1], "__metadata__"));
	CHECK_FAILS(dm_file_write(f, path, 0), "cannot be named");
	CHECK_OK(dm_tensor_set_name(f->tensors[1], "y"));
	CHECK_OK(dm_file_read(&g, path));
	if (g != NULL)
		CHECK(is_sample(g));
	dm_file_free(g);
	CHECK_EQ_INT(count_hidden(dm_test_tmpdir()), 0);
	dm_file_free(one);
	dm_file_free(f);
}

DM_TEST(file_write_failures_leave_nothing)
{
	struct dm_file *f = sample();

	CHECK_FAILS(dm_file_write(f, dm_test_path("nodir/x.st"), 0),
	    "No such file or directory");
	CHECK(access(dm_test_path("nodir"), F_OK) == -1);
	CHECK_FAILS(dm_file_write(f, dm_test_tmpdir(), 0), "is a directory");
	CHECK_FAILS(dm_file_write(f, "", 0), "empty file name");
	if (access("/dev/full", W_OK) == 0) {
		int before = count_hidden("/dev");
		CHECK_FAILS(dm_file_write(f, "/dev/full", 0), "No space left");
		CHECK_FAILS(dm_file_write(f, "/dev/full", DM_WRITE_GZIP),
		    "No space left");
		CHECK_EQ_INT(count_hidden("/dev"), before);
	}
	if (access("/dev/null", W_OK) == 0)
		CHECK_OK(dm_file_write(f, "/dev/null", 0));
	CHECK_EQ_INT(count_hidden(dm_test_tmpdir()), 0);
	dm_file_free(f);
}

DM_TEST(file_permissions_kept_on_replace)
{
	struct dm_file *f = sample();
	const char *path = dm_test_path("p.st");
	struct stat st;

	CHECK_OK(dm_file_write(f, path, 0));
	CHECK(chmod(path, 0600) == 0);
	CHECK_OK(dm_file_write(f, path, 0));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	dm_file_free(f);
}

DM_TEST(file_npy_by_name)
{
	struct dm_file *f = dm_file_new(), *g;
	int64_t shape[2] = {2, 2};
	struct dm_tensor *t = dm_tensor_new(2, shape);
	unsigned char *b;
	size_t len;

	for (int i = 0; i < 4; i++)
		((float *)t->data)[i] = (float)i + 0.5f;
	CHECK_OK(dm_tensor_set_name(t, "x"));
	CHECK_OK(dm_file_add(f, t));
	CHECK_OK(dm_file_write(f, dm_test_path("a.npy"), 0));
	b = slurp(dm_test_path("a.npy"), &len);
	CHECK(b != NULL && len > 6 && memcmp(b, "\x93NUMPY", 6) == 0);
	free(b);
	CHECK_OK(dm_file_read(&g, dm_test_path("a.npy")));
	if (g != NULL) {
		CHECK(g->format == DM_FORMAT_NPY && g->ntensors == 1);
		CHECK(g->ntensors == 1 && dm_tensor_get(g->tensors[0], 3) == 3.5);
		dm_file_free(g);
	}
	CHECK_OK(dm_file_write(f, dm_test_path("a.npy.gz"), 0));
	b = slurp(dm_test_path("a.npy.gz"), &len);
	CHECK(b != NULL && len > 2 && b[0] == 0x1f && b[1] == 0x8b);
	free(b);
	CHECK_OK(dm_file_read(&g, dm_test_path("a.npy.gz")));
	if (g != NULL)
		CHECK(g->format == DM_FORMAT_NPY && g->compressed);
	dm_file_free(g);
	dm_file_free(f);
}

DM_TEST(file_tensors_and_metadata)
{
	struct dm_file *f = sample(), *g;
	int64_t s1[1] = {3};
	struct dm_tensor *t, *z = dm_tensor_new(1, s1);

	CHECK_EQ_INT(dm_file_index(f, "x"), 0);
	CHECK_EQ_INT(dm_file_index(f, "y"), 1);
	CHECK_EQ_INT(dm_file_index(f, "nope"), -1);
	/* add replaces a tensor of the same name in its place */
	CHECK_OK(dm_tensor_set_name(z, "x"));
	CHECK_OK(dm_file_add(f, z));
	CHECK_EQ_INT(f->ntensors, 2);
	CHECK(f->tensors[0] == z);
	struct dm_tensor *anon = dm_tensor_new(1, s1);
	CHECK_FAILS(dm_file_add(f, anon), "needs a name");
	dm_tensor_free(anon);
	/* get_f32 converts in place */
	t = dm_file_get_f32(f, "y");
	CHECK(t != NULL && t->dtype == DM_DTYPE_F32 &&
	    ((float *)t->data)[1] == -1.0f);
	CHECK(dm_file_get_f32(f, "nope") == NULL);
	CHECK(strstr(dm_errstr(), "no tensor 'nope'") != NULL);
	CHECK_OK(dm_file_remove(f, "x"));
	CHECK_FAILS(dm_file_remove(f, "x"), "no tensor 'x'");
	CHECK_EQ_INT(f->ntensors, 1);
	CHECK_STR(f->tensors[0]->name, "y");
	dm_file_free(f);

	/* take from a mapped file returns an owned copy */
	f = sample();
	CHECK_OK(dm_file_write(f, dm_test_path("t.st"), 0));
	dm_file_free(f);
	CHECK_OK(dm_file_read(&g, dm_test_path("t.st")));
	if (g == NULL)
		return;
	t = dm_file_take(g, "x");
	CHECK(t != NULL && t->owns_data && g->ntensors == 1);
	CHECK(dm_file_take(g, "x") == NULL);
	dm_file_free(g);     /* t outlives the map */
	CHECK(t != NULL && dm_tensor_get(t, 5) == 5);
	dm_tensor_free(t);

	/* metadata: set, replace, unset, order kept */
	f = dm_file_new();
	CHECK(dm_file_meta(f, "a") == NULL);
	CHECK_OK(dm_file_meta_set(f, "a", "1"));
	CHECK_OK(dm_file_meta_set(f, "b", "2"));
	CHECK_OK(dm_file_meta_set(f, "c", "3"));
	CHECK_OK(dm_file_meta_set(f, "a", "one"));
	CHECK_STR(dm_file_meta(f, "a"), "one");
	CHECK_EQ_INT(f->nmeta, 3);
	CHECK_OK(dm_file_meta_unset(f, "b"));
	CHECK_FAILS(dm_file_meta_unset(f, "b"), "no metadata key 'b'");
	CHECK_EQ_INT(f->nmeta, 2);
	CHECK_STR(f->meta_keys[1], "c");
	CHECK_STR(f->meta_values[1], "3");
	for (int i = 0; i < 100; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		CHECK_OK(dm_file_meta_set(f, k, k));
	}
	CHECK_STR(dm_file_meta(f, "k99"), "k99");
	dm_file_free(f);
	dm_file_free(NULL);
}
