/* test_plot.c — the rasterizer, ticks, grid layout, value mapping, PNG. */
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "test.h"

/* Pixels of im that are not white. */
static int
count_set(const struct dm_canvas *im)
{
	int n = 0;

	for (int y = 0; y < im->h; y++)
		for (int x = 0; x < im->w; x++)
			n += dm_canvas_get(im, x, y) != DM_WHITE;
	return n;
}

DM_TEST(plot_line_diagonal_exact)
{
	struct dm_canvas *im = dm_canvas_new(10, 10, DM_WHITE);

	CHECK(im != NULL);
	dm_draw_line(im, 0, 0, 9, 9, DM_BLACK, 1);
	for (int y = 0; y < 10; y++)
		for (int x = 0; x < 10; x++)
			CHECK_EQ_INT(dm_canvas_get(im, x, y),
			    x == y ? DM_BLACK : DM_WHITE);
	dm_canvas_free(im);
}

DM_TEST(plot_line_shapes)
{
	struct dm_canvas *im = dm_canvas_new(20, 20, DM_WHITE);

	/* a steep line: one pixel per row, 11 rows, ends included */
	dm_draw_line(im, 3, 2, 7, 12, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 11);
	CHECK_EQ_INT(dm_canvas_get(im, 3, 2), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 7, 12), DM_BLACK);
	for (int y = 2; y <= 12; y++) {
		int n = 0;
		for (int x = 0; x < 20; x++)
			n += dm_canvas_get(im, x, y) == DM_BLACK;
		CHECK_EQ_INT(n, 1);
	}
	/* the same line drawn backwards sets the same count */
	struct dm_canvas *b = dm_canvas_new(20, 20, DM_WHITE);
	dm_draw_line(b, 7, 12, 3, 2, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(b), 11);
	/* a single point */
	dm_canvas_free(b);
	b = dm_canvas_new(20, 20, DM_WHITE);
	dm_draw_line(b, 5, 5, 5, 5, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(b), 1);
	CHECK_EQ_INT(dm_canvas_get(b, 5, 5), DM_BLACK);
	dm_canvas_free(b);
	dm_canvas_free(im);
}

DM_TEST(plot_line_clipping)
{
	struct dm_canvas *im = dm_canvas_new(10, 10, DM_WHITE);

	/* a long diagonal is cut to the image: exactly the diagonal */
	dm_draw_line(im, -5, -5, 20, 20, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(dm_canvas_get(im, i, i), DM_BLACK);
	dm_canvas_free(im);

	/* wholly outside: nothing; huge and non-finite: no crash */
	im = dm_canvas_new(10, 10, DM_WHITE);
	dm_draw_line(im, 20, 0, 30, 9, DM_BLACK, 1);
	dm_draw_line(im, -3, -1, 12, -1, DM_BLACK, 1);
	dm_draw_line(im, NAN, 0, 5, 5, DM_BLACK, 1);
	dm_draw_line(im, -INFINITY, 0, 5, 5, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 0);
	dm_draw_line(im, -1e300, 5, 1e300, 5, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 10);
	for (int x = 0; x < 10; x++)
		CHECK_EQ_INT(dm_canvas_get(im, x, 5), DM_BLACK);
	dm_canvas_free(im);

	/* a clip rectangle [2, 8) x [3, 8): only the diagonal inside it */
	im = dm_canvas_new(10, 10, DM_WHITE);
	dm_canvas_clip(im, 2, 3, 8, 8);
	dm_draw_line(im, 0, 0, 9, 9, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 5);
	for (int i = 3; i < 8; i++)
		CHECK_EQ_INT(dm_canvas_get(im, i, i), DM_BLACK);
	/* discs and fills are clipped too */
	dm_draw_disc(im, 0, 0, 100, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 6 * 5);
	dm_canvas_unclip(im);
	dm_draw_fill(im, -100, -100, 1000, 1000, DM_BLACK);
	CHECK_EQ_INT(count_set(im), 100);
	dm_canvas_free(im);
}

DM_TEST(plot_disc_and_blend)
{
	struct dm_canvas *im = dm_canvas_new(11, 11, DM_WHITE);

	/* radius 1 around a pixel centre: the centre and its 4 neighbours */
	dm_draw_disc(im, 5, 5, 1, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 5);
	CHECK_EQ_INT(dm_canvas_get(im, 5, 4), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 4, 4), DM_WHITE);
	/* radius 2: 13 pixel centres within distance 2 */
	dm_draw_disc(im, 5, 5, 2, DM_BLACK, 1);
	CHECK_EQ_INT(count_set(im), 13);
	/* half black over white: 255 - 127.5 rounds to 128 */
	dm_canvas_blend(im, 0, 0, DM_BLACK, 0.5);
	CHECK_EQ_INT(dm_canvas_get(im, 0, 0), DM_RGB(128, 128, 128));
	dm_canvas_blend(im, 1, 0, DM_RGB(255, 0, 0), 0.25);
	CHECK_EQ_INT(dm_canvas_get(im, 1, 0), DM_RGB(255, 191, 191));
	dm_canvas_blend(im, 2, 0, DM_BLACK, 0);
	CHECK_EQ_INT(dm_canvas_get(im, 2, 0), DM_WHITE);
	dm_canvas_blend(im, -1, 0, DM_BLACK, 1);  /* outside: ignored */
	dm_canvas_free(im);
}

DM_TEST(plot_square_marker)
{
	struct dm_canvas *im = dm_canvas_new(20, 20, DM_WHITE);

	/* r = 2: the 5x5 pixels around the nearest pixel (5, 7) */
	dm_draw_square(im, 5.4, 6.6, 2, DM_BLACK);
	CHECK_EQ_INT(count_set(im), 25);
	CHECK_EQ_INT(dm_canvas_get(im, 3, 5), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 7, 9), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 2, 5), DM_WHITE);
	CHECK_EQ_INT(dm_canvas_get(im, 7, 10), DM_WHITE);
	/* cut at the corner: 3x3 left; r = 0 is one pixel */
	dm_draw_square(im, 19, 0, 2, DM_BLACK);
	CHECK_EQ_INT(count_set(im), 25 + 9);
	dm_draw_square(im, 15, 15, 0, DM_BLACK);
	CHECK_EQ_INT(count_set(im), 25 + 9 + 1);
	/* not finite, far away, bad radius: nothing, no crash */
	dm_draw_square(im, NAN, 5, 2, DM_BLACK);
	dm_draw_square(im, 5, INFINITY, 2, DM_BLACK);
	dm_draw_square(im, -3e9, 5, 2, DM_BLACK);
	dm_draw_square(im, 5, 1e300, 2, DM_BLACK);
	dm_draw_square(im, 10, 10, -1, DM_BLACK);
	CHECK_EQ_INT(count_set(im), 35);
	dm_canvas_free(im);
}

DM_TEST(plot_canvas_size_limits)
{
	CHECK(dm_canvas_new(0, 5, DM_WHITE) == NULL);
	CHECK(dm_canvas_new(5, -1, DM_WHITE) == NULL);
	CHECK(dm_canvas_new(65535, 65535, DM_WHITE) == NULL);
	CHECK(strstr(dm_errstr(), "out of range") != NULL);
}

DM_TEST(plot_font_glyphs)
{
	struct dm_canvas *im = dm_canvas_new(20, 10, DM_WHITE);

	CHECK_EQ_INT(dm_text_width(""), 0);
	CHECK_EQ_INT(dm_text_width("a"), 5);
	CHECK_EQ_INT(dm_text_width("12"), 11);
	/* '1' is ..#.. / .##.. / ..#.. x4 / .###. : 10 pixels */
	CHECK_EQ_INT(dm_draw_text(im, 1, 1, "1", DM_BLACK), 5);
	CHECK_EQ_INT(count_set(im), 10);
	CHECK_EQ_INT(dm_canvas_get(im, 3, 1), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 1, 1), DM_WHITE);
	CHECK_EQ_INT(dm_canvas_get(im, 2, 2), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 2, 7), DM_BLACK);
	CHECK_EQ_INT(dm_canvas_get(im, 4, 7), DM_BLACK);
	/* '-' is one row of 3; an unknown byte draws a box (5x7 outline) */
	dm_draw_fill(im, 0, 0, 20, 10, DM_WHITE);
	dm_draw_text(im, 0, 0, "-", DM_BLACK);
	CHECK_EQ_INT(count_set(im), 3);
	dm_draw_fill(im, 0, 0, 20, 10, DM_WHITE);
	dm_draw_text(im, 0, 0, "\x01", DM_BLACK);
	CHECK_EQ_INT(count_set(im), 2 * 5 + 2 * 5);
	dm_canvas_free(im);
	/* upwards text: "-" becomes a vertical bar of 3 at column x + 3 */
	im = dm_canvas_new(10, 10, DM_WHITE);
	dm_draw_text_up(im, 0, 9, "-", DM_BLACK);
	CHECK_EQ_INT(count_set(im), 3);
	for (int y = 6; y <= 8; y++)
		CHECK_EQ_INT(dm_canvas_get(im, 3, y), DM_BLACK);
	dm_canvas_free(im);
}

DM_TEST(plot_ticks_nice_numbers)
{
	double t[32], step;
	char buf[32];
	int n;

	n = dm_ticks(-4, 4, 7, t, 32, &step);
	CHECK_EQ_INT(n, 5);
	CHECK(step == 2);
	CHECK(t[0] == -4 && t[2] == 0 && t[4] == 4);
	n = dm_ticks(0, 1, 6, t, 32, &step);
	CHECK_EQ_INT(n, 6);
	CHECK_NEAR(step, 0.2, 1e-15);
	CHECK_NEAR(t[5], 1, 1e-12);
	n = dm_ticks(0, 2000, 5, t, 32, &step);
	CHECK_EQ_INT(n, 5);
	CHECK(step == 500);
	CHECK(t[3] == 1500);
	n = dm_ticks(-0.3, 0.7, 11, t, 32, &step);
	CHECK_EQ_INT(n, 11);
	CHECK_NEAR(step, 0.1, 1e-15);
	CHECK(t[3] == 0);       /* exactly 0, not -0 or 1e-17 */
	CHECK(!signbit(t[3]));
	n = dm_ticks(0.13, 0.17, 5, t, 32, &step);  /* 0.13 .. 0.17 by 0.01 */
	CHECK_EQ_INT(n, 5);
	CHECK_NEAR(step, 0.01, 1e-15);
	n = dm_ticks(3, 97, 4, t, 32, &step);       /* 20 40 60 80 */
	CHECK_EQ_INT(n, 4);
	CHECK(step == 20 && t[0] == 20);
	CHECK_FAILS(dm_ticks(1, 1, 5, t, 32, &step), "limits");
	CHECK_FAILS(dm_ticks(NAN, 1, 5, t, 32, &step), "limits");
	CHECK_FAILS(dm_ticks(-INFINITY, 1, 5, t, 32, &step), "limits");

	dm_tick_label(buf, sizeof buf, 0.5, 0.1);
	CHECK_STR(buf, "0.5");
	dm_tick_label(buf, sizeof buf, -2, 2);
	CHECK_STR(buf, "-2");
	dm_tick_label(buf, sizeof buf, 0.1 * 3, 0.05);
	CHECK_STR(buf, "0.30");
	dm_tick_label(buf, sizeof buf, -1e-17, 0.1);
	CHECK_STR(buf, "0.0");
	dm_tick_label(buf, sizeof buf, 2e6, 1e6);
	CHECK_STR(buf, "2e+06");
	dm_tick_label(buf, sizeof buf, 1500, 500);
	CHECK_STR(buf, "1500");
}

DM_TEST(plot_grid_layout)
{
	struct dm_grid g;
	int x, y;

	/* N = 10, 4 to a row: 3 rows; 28x28 pictures, pad 2 */
	CHECK_OK(dm_grid_layout(&g, 10, 4, 28, 28, 1, 2));
	CHECK_EQ_INT(g.ncol, 4);
	CHECK_EQ_INT(g.nrow, 3);
	CHECK_EQ_INT(g.w, 4 * (28 + 2) + 2);
	CHECK_EQ_INT(g.h, 3 * (28 + 2) + 2);
	dm_grid_cell(&g, 5, &x, &y);          /* row 1, column 1 */
	CHECK_EQ_INT(x, 2 + 30);
	CHECK_EQ_INT(y, 2 + 30);
	dm_grid_cell(&g, 9, &x, &y);          /* row 2, column 1 */
	CHECK_EQ_INT(x, 32);
	CHECK_EQ_INT(y, 62);
	/* fewer pictures than a row; scale 3, no padding; H != W */
	CHECK_OK(dm_grid_layout(&g, 3, 8, 5, 7, 3, 0));
	CHECK_EQ_INT(g.ncol, 3);
	CHECK_EQ_INT(g.nrow, 1);
	CHECK_EQ_INT(g.w, 3 * 21);
	CHECK_EQ_INT(g.h, 15);
	/* refused: nothing, huge, bad parameters */
	CHECK_FAILS(dm_grid_layout(&g, 0, 8, 5, 5, 1, 2), "pictures");
	CHECK_FAILS(dm_grid_layout(&g, 1 << 20, 1024, 64, 64, 4, 2), "too large");
	CHECK_FAILS(dm_grid_layout(&g, 4, 2, INT64_C(1) << 40, 5, 1, 2),
	    "out of range");
	CHECK_FAILS(dm_grid_layout(&g, 4, 0, 5, 5, 1, 2), "bad grid");
}

DM_TEST(plot_value_mapping)
{
	CHECK_EQ_INT(dm_value_to_u8(-1, -1, 1), 0);
	CHECK_EQ_INT(dm_value_to_u8(1, -1, 1), 255);
	CHECK_EQ_INT(dm_value_to_u8(0, -1, 1), 128);      /* 127.5 up */
	CHECK_EQ_INT(dm_value_to_u8(0.5, -1, 1), 191);    /* 191.25 */
	CHECK_EQ_INT(dm_value_to_u8(7, -1, 1), 255);      /* clipped */
	CHECK_EQ_INT(dm_value_to_u8(-7, -1, 1), 0);
	CHECK_EQ_INT(dm_value_to_u8(NAN, -1, 1), 0);
	CHECK_EQ_INT(dm_value_to_u8(100, 0, 255), 100);
	CHECK_EQ_INT(dm_palette(0), 0x0072b2);
	CHECK_EQ_INT(dm_palette(8), dm_palette(0));
	CHECK_EQ_INT(dm_colormap(0), DM_RGB(68, 1, 84));
	CHECK_EQ_INT(dm_colormap(1), DM_RGB(253, 231, 37));
	CHECK_EQ_INT(dm_colormap(0.5), DM_RGB(33, 145, 140));
	CHECK_EQ_INT(dm_colormap(-3), dm_colormap(0));
}

DM_TEST(plot_grid_put_pixels)
{
	struct dm_grid g;
	/* two 2x2 gray pictures and one RGBA */
	static const float gray[4] = {-1, 1, 0, 0.5};
	static const float rgba[16] = {
		1, 1, 1, 1,      /* R */
		-1, -1, -1, -1,  /* G */
		-1, -1, -1, -1,  /* B */
		1, -1, 0, 1      /* A: opaque, clear, half, opaque */
	};
	struct dm_canvas *im;

	CHECK_OK(dm_grid_layout(&g, 2, 2, 2, 2, 2, 1));
	CHECK_EQ_INT(g.w, 2 * 5 + 1);
	im = dm_canvas_new(g.w, g.h, DM_RGB(9, 9, 9));
	dm_grid_put(im, &g, 0, gray, 1, 2, 2, -1, 1);
	dm_grid_put(im, &g, 1, rgba, 4, 2, 2, -1, 1);
	/* cell 0 at (1, 1), each source pixel a 2x2 block */
	CHECK_EQ_INT(dm_canvas_get(im, 0, 0), DM_RGB(9, 9, 9));
	CHECK_EQ_INT(dm_canvas_get(im, 1, 1), DM_RGB(0, 0, 0));
	CHECK_EQ_INT(dm_canvas_get(im, 2, 2), DM_RGB(0, 0, 0));
	CHECK_EQ_INT(dm_canvas_get(im, 3, 1), DM_RGB(255, 255, 255));
	CHECK_EQ_INT(dm_canvas_get(im, 1, 3), DM_RGB(128, 128, 128));
	CHECK_EQ_INT(dm_canvas_get(im, 4, 4), DM_RGB(191, 191, 191));
	CHECK_EQ_INT(dm_canvas_get(im, 5, 1), DM_RGB(9, 9, 9)); /* padding */
	/* cell 1 at (6, 1): red over white by alpha 1, 0, 128/255, 1 */
	CHECK_EQ_INT(dm_canvas_get(im, 6, 1), DM_RGB(255, 0, 0));
	CHECK_EQ_INT(dm_canvas_get(im, 8, 1), DM_RGB(255, 255, 255));
	CHECK_EQ_INT(dm_canvas_get(im, 6, 3), DM_RGB(255, 127, 127));
	CHECK_EQ_INT(dm_canvas_get(im, 9, 4), DM_RGB(255, 0, 0));
	dm_canvas_free(im);
}

DM_TEST(plot_frame_mapping)
{
	struct dm_canvas *im = dm_canvas_new(480, 480, DM_WHITE);
	struct dm_plot p;

	CHECK_OK(dm_plot_init(&p, im, -4, 4, -4, 4, 0));
	CHECK_NEAR(dm_plot_px(&p, -4), p.x0, 0);
	CHECK_NEAR(dm_plot_px(&p, 4), p.x1, 0);
	CHECK_NEAR(dm_plot_py(&p, -4), p.y1, 0);
	CHECK_NEAR(dm_plot_py(&p, 4), p.y0, 0);
	CHECK_NEAR(dm_plot_px(&p, 0), (p.x0 + p.x1) / 2.0, 1e-12);
	CHECK_FAILS(dm_plot_init(&p, im, 1, 1, 0, 1, 0), "x limits");
	CHECK_FAILS(dm_plot_init(&p, im, 0, 1, 0, NAN, 0), "y limits");
	/* after the axes only the inside of the frame can be drawn on */
	dm_plot_axes(&p, "x", "y");
	CHECK_EQ_INT(dm_canvas_get(im, p.x0 - 1, p.y0 - 1), DM_BLACK);
	dm_draw_line(im, 0, 0, 479, 0, DM_RGB(255, 0, 0), 1);
	CHECK_EQ_INT(dm_canvas_get(im, 200, 0), DM_WHITE);
	dm_draw_disc(im, dm_plot_px(&p, 4), dm_plot_py(&p, 4), 3,
	    DM_RGB(255, 0, 0), 1);
	CHECK_EQ_INT(dm_canvas_get(im, p.x1, p.y0), DM_RGB(255, 0, 0));
	CHECK_EQ_INT(dm_canvas_get(im, p.x1 + 1, p.y0 - 1), DM_BLACK);
	dm_canvas_free(im);
}

#define GRID DM_RGB(228, 228, 228)

/* Is pixel column (row) at data value v a grid line, looked at in a row
 * (column) where no grid line of the other axis runs? */
static int
grid_at_x(const struct dm_plot *p, double v, int row)
{
	return dm_canvas_get(p->im, (int)floor(dm_plot_px(p, v) + 0.5), row) ==
	    GRID;
}

static int
grid_at_y(const struct dm_plot *p, double v, int col)
{
	return dm_canvas_get(p->im, col, (int)floor(dm_plot_py(p, v) + 0.5)) ==
	    GRID;
}

DM_TEST(plot_log_axes)
{
	struct dm_canvas *im = dm_canvas_new(480, 480, DM_WHITE);
	struct dm_plot p;
	int row, col;

	/* x from 1 to 100: grid lines at the powers of ten only, where a
	 * linear axis over 0..2 would have them at 0.5 steps */
	CHECK_OK(dm_plot_init(&p, im, 0, 2, 0, 1, DM_PLOT_LOGX));
	CHECK(p.logx && !p.logy);
	dm_plot_axes(&p, NULL, NULL);
	row = (int)floor(dm_plot_py(&p, 0.1) + 0.5);  /* y ticks 0, 0.2, .. */
	CHECK(grid_at_x(&p, 1, row));
	CHECK(grid_at_x(&p, 2, row));
	CHECK(!grid_at_x(&p, 0.5, row));
	CHECK(!grid_at_x(&p, log10(2), row));
	CHECK(!grid_at_x(&p, log10(5), row));
	dm_canvas_free(im);

	/* less than a decade, 2..8 on both axes: round numbers 2, 4, 6, 8
	 * on each, the same rule for x and y */
	im = dm_canvas_new(480, 480, DM_WHITE);
	CHECK_OK(dm_plot_init(&p, im, log10(2), log10(8), log10(2), log10(8),
	    DM_PLOT_LOGX | DM_PLOT_LOGY));
	CHECK(p.logx && p.logy);
	dm_plot_axes(&p, NULL, NULL);
	row = (int)floor(dm_plot_py(&p, log10(3)) + 0.5);
	col = (int)floor(dm_plot_px(&p, log10(3)) + 0.5);
	for (int v = 2; v <= 8; v++) {
		CHECK_MSG(grid_at_x(&p, log10(v), row) == (v % 2 == 0),
		    "x grid line at %d", v);
		CHECK_MSG(grid_at_y(&p, log10(v), col) == (v % 2 == 0),
		    "y grid line at %d", v);
	}
	dm_canvas_free(im);
}

DM_TEST(plot_wide_axis_ticks_span_it)
{
	/* 8192 pixels wide would ask for 136 ticks: the step is chosen for
	 * the 16 that are kept, so ticks reach the right end (0, 20, .. 200) */
	struct dm_canvas *im = dm_canvas_new(8192, 200, DM_WHITE);
	struct dm_plot p;

	CHECK_OK(dm_plot_init(&p, im, 0, 200, 0, 1, 0));
	dm_plot_axes(&p, NULL, NULL);
	int row = (int)floor(dm_plot_py(&p, 0.1) + 0.5);
	CHECK(grid_at_x(&p, 180, row));
	CHECK(grid_at_x(&p, 20, row));
	CHECK(!grid_at_x(&p, 10, row));
	dm_canvas_free(im);
}

/* Decode a PNG in memory with libpng into RGB8; NULL on failure. */
static unsigned char *
png_decode_rgb(const unsigned char *p, size_t n, int *w, int *h)
{
	png_image img;
	unsigned char *buf;

	memset(&img, 0, sizeof img);
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, p, n))
		return NULL;
	img.format = PNG_FORMAT_RGB;
	if ((buf = malloc(PNG_IMAGE_SIZE(img))) == NULL ||
	    !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
		free(buf);
		png_image_free(&img);
		return NULL;
	}
	*w = (int)img.width;
	*h = (int)img.height;
	return buf;
}

static struct dm_canvas *
sample_picture(void)
{
	struct dm_canvas *im = dm_canvas_new(37, 23, DM_WHITE);

	for (int y = 0; y < 23; y++)
		for (int x = 0; x < 37; x++)
			dm_canvas_set(im, x, y, DM_RGB(x * 7, y * 11, (x * y) & 255));
	dm_draw_line(im, 0, 22, 36, 0, DM_BLACK, 1);
	dm_draw_text(im, 2, 2, "1e-3", DM_RGB(0, 0, 255));
	return im;
}

static unsigned char *
slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *b = malloc(1 << 20);

	*n = fp && b ? fread(b, 1, 1 << 20, fp) : 0;
	if (fp)
		fclose(fp);
	return b;
}

DM_TEST(plot_png_round_trip_and_deterministic)
{
	static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
	struct dm_canvas *im = sample_picture(), *im2 = sample_picture();
	unsigned char *a = NULL, *b = NULL, *px;
	size_t na = 0, nb = 0;
	int w = 0, h = 0;

	CHECK_OK(dm_png_encode(im, &a, &na));
	CHECK_OK(dm_png_encode(im2, &b, &nb));
	CHECK(na > 8 && memcmp(a, sig, 8) == 0);
	CHECK(na == nb && memcmp(a, b, na) == 0);
	/* IHDR: width 37, height 23, depth 8, colour type 2 (RGB) */
	CHECK(a[11] == 13 && memcmp(a + 12, "IHDR", 4) == 0);
	CHECK_EQ_INT(a[19], 37);
	CHECK_EQ_INT(a[23], 23);
	CHECK_EQ_INT(a[24], 8);
	CHECK_EQ_INT(a[25], 2);
	CHECK(memmem(a, na, "tIME", 4) == NULL);
	px = png_decode_rgb(a, na, &w, &h);
	CHECK(px != NULL);
	if (px != NULL) {
		CHECK_EQ_INT(w, 37);
		CHECK_EQ_INT(h, 23);
		CHECK(memcmp(px, im->rgb, 37 * 23 * 3) == 0);
	}
	free(px);

	/* to files: the same bytes, no temporary left over */
	size_t n1, n2;
	const char *p1 = dm_test_path("a.png"), *p2 = dm_test_path("b.png");
	CHECK_OK(dm_png_write(im, p1));
	CHECK_OK(dm_png_write(im, p2));
	unsigned char *f1 = slurp(p1, &n1), *f2 = slurp(p2, &n2);
	CHECK(n1 == na && n2 == na && memcmp(f1, a, na) == 0 &&
	    memcmp(f2, a, na) == 0);
	free(f1);
	free(f2);
	DIR *d = opendir(dm_test_tmpdir());
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL)
		CHECK_MSG(strstr(e->d_name, ".png.") == NULL,
		    "temporary %s left", e->d_name);
	if (d != NULL)
		closedir(d);
	CHECK_FAILS(dm_png_write(im, "/dev/full"), "write");
	CHECK_FAILS(dm_png_write(im, dm_test_path("no/such/dir.png")),
	    "temporary");
	free(a);
	free(b);
	dm_canvas_free(im);
	dm_canvas_free(im2);
}
