/* image_write.c — PNG output with libpng: 8-bit RGB, fixed settings so the
 * same image always gives the same bytes, written atomically. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "internal.h"
#include "dm_plot.h"

struct png_ctx {
	struct dm_membuf out;
	int failed;                /* the sink failed (reason already set) */
	jmp_buf jmp;
};

static void
png_error_fn(png_structp png, png_const_charp msg)
{
	struct png_ctx *c = png_get_error_ptr(png);

	if (!c->failed)
		dm_seterr("libpng: %s", msg);
	longjmp(c->jmp, 1);
}

static void
png_warning_fn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void
png_write_fn(png_structp png, png_bytep p, size_t n)
{
	struct png_ctx *c = png_get_io_ptr(png);

	if (dm_membuf_write(&c->out, p, n) == -1) {
		c->failed = 1;
		png_error(png, "out of memory");
	}
}

static void
png_flush_fn(png_structp png)
{
	(void)png;
}

int
dm_png_encode(const struct dm_canvas *im, unsigned char **out, size_t *len)
{
	struct png_ctx *c;
	png_structp png;
	png_infop info = NULL;

	if ((c = dm_calloc(1, sizeof *c)) == NULL)
		return -1;
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_error_fn,
	    png_warning_fn);
	if (png == NULL || (info = png_create_info_struct(png)) == NULL) {
		png_destroy_write_struct(&png, NULL);
		free(c);
		return dm_seterr("libpng: cannot initialise");
	}
	if (setjmp(c->jmp)) {
		png_destroy_write_struct(&png, &info);
		free(c->out.p);
		free(c);
		return -1;
	}
	png_set_write_fn(png, c, png_write_fn, png_flush_fn);
	png_set_compression_level(png, 9);
	png_set_compression_strategy(png, 1 /* Z_FILTERED */);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
	png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8,
	    PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE,
	    PNG_FILTER_TYPE_BASE);
	png_write_info(png, info);
	for (int y = 0; y < im->h; y++)
		png_write_row(png, im->rgb + (size_t)y * (size_t)im->w * 3);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	*out = c->out.p;
	*len = c->out.len;
	free(c);
	return 0;
}

static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n < SSIZE_MAX ? n : SSIZE_MAX);
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

/* "DIR/.NAME.XXXXXX" beside "DIR/NAME". */
static char *
temp_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dir = slash ? (size_t)(slash - path) + 1 : 0, n;
	char *t;

	if (dm_add_size(strlen(path), 9, &n) == -1 || (t = dm_malloc(n)) == NULL)
		return NULL;
	memcpy(t, path, dir);
	snprintf(t + dir, n - dir, ".%s.XXXXXX", path + dir);
	return t;
}

static int
write_atomic(const char *path, const unsigned char *p, size_t n,
    const struct stat *old, int exists)
{
	char *tmp;
	int fd, rc;
	mode_t mode, mask;

	if ((tmp = temp_name(path)) == NULL)
		return -1;
	if ((fd = mkstemp(tmp)) == -1) {
		rc = dm_seterr("cannot create a temporary file: %s",
		    strerror(errno));
		free(tmp);
		return rc;
	}
	if (exists)
		mode = old->st_mode & 07777;
	else {
		mask = umask(022);
		umask(mask);
		mode = 0644 & ~mask;
	}
	rc = fchmod(fd, mode) == -1 ? dm_seterr("fchmod: %s", strerror(errno)) : 0;
	if (rc == 0)
		rc = write_all(fd, p, n);
	if (close(fd) == -1 && rc == 0)
		rc = dm_seterr("close: %s", strerror(errno));
	if (rc == 0 && rename(tmp, path) == -1)
		rc = dm_seterr("rename: %s", strerror(errno));
	if (rc == -1)
		unlink(tmp);
	free(tmp);
	return rc;
}

static int
write_bytes(const char *path, const unsigned char *p, size_t n)
{
	struct stat st;
	int fd, rc, exists;

	if (path == NULL || strcmp(path, "-") == 0)
		return write_all(STDOUT_FILENO, p, n);
	if (*path == '\0')
		return dm_seterr("empty file name");
	exists = stat(path, &st) == 0;
	if (exists && S_ISDIR(st.st_mode))
		return dm_seterr("is a directory");
	if (exists && !S_ISREG(st.st_mode)) {
		/* a device or pipe: written in place */
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
			return dm_seterr("%s", strerror(errno));
		rc = write_all(fd, p, n);
		if (close(fd) == -1 && rc == 0)
			rc = dm_seterr("close: %s", strerror(errno));
		return rc;
	}
	return write_atomic(path, p, n, &st, exists);
}

int
dm_png_write(const struct dm_canvas *im, const char *path)
{
	unsigned char *p;
	size_t n;
	int rc;

	if (dm_png_encode(im, &p, &n) == -1)
		return -1;
	rc = write_bytes(path, p, n);
	free(p);
	return rc;
}
