/* image_read.c — PNG files into float tensors [C, H, W] in [-1, 1]
 * (libpng), and many of them into one data set [N, C, H, W]. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_data.h"

#define PNG_MAX_SIDE 4096

/* libpng reports through these: keep the message, jump back. */
struct png_err {
	char msg[256];
};

static void
on_error(png_structp png, png_const_charp msg)
{
	struct png_err *e = png_get_error_ptr(png);

	snprintf(e->msg, sizeof e->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void
on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

const char *
dm_image_channels_name(int c)
{
	static const char *names[] = {"gray", "gray+alpha", "RGB", "RGBA"};

	return c >= 1 && c <= 4 ? names[c - 1] : "?";
}

void
dm_image_free(struct dm_image *img)
{
	if (img != NULL) {
		free(img->data);
		img->data = NULL;
	}
}

/* Rows of bytes to planar floats: v / (M/2) - 1, M = 255 or 65535; 16-bit
 * samples are big-endian as PNG stores them. */
static void
to_planar(float *out, unsigned char *const *rows, int c, int h, int w,
    int depth)
{
	double half = depth == 16 ? 32767.5 : 127.5;
	size_t plane = (size_t)h * (size_t)w;

	for (int y = 0; y < h; y++) {
		const unsigned char *r = rows[y];
		for (int x = 0; x < w; x++)
			for (int k = 0; k < c; k++) {
				size_t s = (size_t)x * (size_t)c + (size_t)k;
				unsigned v = depth == 16 ?
				    (unsigned)r[2 * s] << 8 | r[2 * s + 1] : r[s];
				out[(size_t)k * plane + (size_t)y * (size_t)w +
				    (size_t)x] = (float)(v / half - 1.0);
			}
	}
}

/* The reading itself; everything that libpng may jump over lives in
 * *st so that it survives the longjmp. */
struct png_state {
	FILE *fp;
	png_structp png;
	png_infop info;
	unsigned char *pixels;
	unsigned char **rows;
	struct png_err err;
};

static int
png_decode(struct png_state *st, unsigned flags, struct dm_image *img)
{
	png_uint_32 w, h;
	int depth, ctype, c;
	size_t rowbytes, total;

	if (setjmp(png_jmpbuf(st->png)))
		return dm_seterr("%s", st->err.msg);
	png_init_io(st->png, st->fp);
	png_set_user_limits(st->png, PNG_MAX_SIDE, PNG_MAX_SIDE);
	png_read_info(st->png, st->info);
	png_get_IHDR(st->png, st->info, &w, &h, &depth, &ctype, NULL, NULL,
	    NULL);
	png_set_expand(st->png);    /* palette to RGB, < 8 bits to 8, tRNS to alpha */
	if (flags & DM_PNG_RGB) {
		png_set_strip_alpha(st->png);
		png_set_gray_to_rgb(st->png);
	}
	png_set_interlace_handling(st->png);
	png_read_update_info(st->png, st->info);
	c = png_get_channels(st->png, st->info);
	depth = png_get_bit_depth(st->png, st->info);
	rowbytes = png_get_rowbytes(st->png, st->info);
	if (c < 1 || c > 4 || (depth != 8 && depth != 16) ||
	    rowbytes != (size_t)w * (size_t)c * (size_t)(depth / 8))
		return dm_seterr("unsupported PNG layout (%d channels, %d bits)",
		    c, depth);
	if (dm_mul_size(rowbytes, h, &total) == -1 ||
	    (st->pixels = dm_malloc(total)) == NULL ||
	    (st->rows = dm_malloc(h * sizeof *st->rows)) == NULL)
		return -1;
	for (png_uint_32 y = 0; y < h; y++)
		st->rows[y] = st->pixels + y * rowbytes;
	png_read_image(st->png, st->rows);
	png_read_end(st->png, NULL);
	if ((img->data = dm_malloc((size_t)c * w * h * sizeof(float))) == NULL)
		return -1;
	img->c = c;
	img->h = (int)h;
	img->w = (int)w;
	to_planar(img->data, st->rows, c, (int)h, (int)w, depth);
	return 0;
}

int
dm_png_read(const char *path, unsigned flags, struct dm_image *img)
{
	struct png_state st;
	unsigned char sig[8];
	int rc = -1;

	memset(&st, 0, sizeof st);
	memset(img, 0, sizeof *img);
	if ((st.fp = fopen(path, "rb")) == NULL)
		return dm_seterr("cannot open: %s", strerror(errno));
	if (fread(sig, 1, 8, st.fp) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
		dm_seterr("not a PNG file");
		goto done;
	}
	st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st.err,
	    on_error, on_warning);
	if (st.png == NULL || (st.info = png_create_info_struct(st.png)) == NULL) {
		dm_seterr("out of memory");
		goto done;
	}
	png_set_sig_bytes(st.png, 8);
	rc = png_decode(&st, flags, img);
done:
	if (st.png != NULL)
		png_destroy_read_struct(&st.png, st.info ? &st.info : NULL, NULL);
	free(st.rows);
	free(st.pixels);
	fclose(st.fp);
	if (rc == -1)
		dm_image_free(img);
	return rc;
}

int
dm_data_import_png(const char *const *paths, size_t n,
    const int64_t *labels, unsigned flags, const char *source,
    struct dm_file *out)
{
	struct dm_tensor *x = NULL, *y = NULL;
	struct dm_image img, first = {0, 0, 0, NULL};
	size_t per = 0, total;

	if (n == 0 || n > (size_t)INT64_MAX)
		return dm_seterr("no PNG files");
	for (size_t i = 0; i < n; i++) {
		if (dm_png_read(paths[i], flags, &img) == -1) {
			dm_errctx("%s: ", paths[i]);
			goto fail;
		}
		if (i == 0) {
			int64_t shape[4] = {(int64_t)n, img.c, img.h, img.w};
			first = img;
			first.data = NULL;
			per = (size_t)img.c * img.h * img.w;
			if (dm_mul_size(per, n, &total) == -1 ||
			    dm_mul_size(total, sizeof(float), &total) == -1 ||
			    (x = dm_tensor_new(4, shape)) == NULL) {
				dm_image_free(&img);
				goto fail;
			}
		} else if (img.c != first.c || img.h != first.h ||
		    img.w != first.w) {
			dm_seterr("%s: %dx%d %s, expected %dx%d %s (from %s)",
			    paths[i], img.w, img.h,
			    dm_image_channels_name(img.c), first.w, first.h,
			    dm_image_channels_name(first.c), paths[0]);
			dm_image_free(&img);
			goto fail;
		}
		memcpy((float *)x->data + i * per, img.data,
		    per * sizeof(float));
		dm_image_free(&img);
	}
	if (dm_tensor_set_name(x, "x") == -1)
		goto fail;
	if (labels != NULL) {
		int64_t nn = (int64_t)n;
		if ((y = dm_tensor_new_dtype(DM_DTYPE_I64, 1, &nn)) == NULL ||
		    dm_tensor_set_name(y, "y") == -1)
			goto fail;
		memcpy(y->data, labels, n * sizeof *labels);
	}
	if (dm_file_add(out, x) == -1)
		goto fail;
	x = NULL;
	if (y != NULL) {
		if (dm_file_add(out, y) == -1)
			goto fail;
		y = NULL;
	}
	if (dm_file_meta_set(out, "dm.kind", "data") == -1 ||
	    dm_file_meta_set(out, "dm.source", source ? source : "png") == -1)
		return -1;
	return 0;
fail:
	dm_tensor_free(x);
	dm_tensor_free(y);
	return -1;
}
