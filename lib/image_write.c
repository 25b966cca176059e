/* image_write.c — PNG output with libpng: 8-bit RGB, fixed settings so the
 * same image always gives the same bytes, written atomically. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct bytes {
	const unsigned char *p;
	size_t n;
};

static int
write_bytes_fd(int fd, void *ctx)
{
	const struct bytes *b = ctx;

	return dm_write_all(fd, b->p, b->n);
}

int
dm_png_write(const struct dm_canvas *im, const char *path)
{
	unsigned char *p;
	size_t n;
	int rc;

	if (dm_png_encode(im, &p, &n) == -1)
		return -1;
	rc = dm_write_path(path, write_bytes_fd, &(struct bytes){p, n});
	free(p);
	return rc;
}
