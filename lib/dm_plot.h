/* dm_plot.h — pictures: an RGB8 raster with a small deterministic
 * rasterizer (pixels, lines, discs, a built-in 5x7 font), plot frames with
 * axes and legends, image-grid layout, and PNG output (libpng). */
#ifndef DM_PLOT_H
#define DM_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* Colours are 0xRRGGBB. */
#define DM_RGB(r, g, b) ((uint32_t)(r) << 16 | (uint32_t)(g) << 8 | (uint32_t)(b))
#define DM_WHITE DM_RGB(255, 255, 255)
#define DM_BLACK DM_RGB(0, 0, 0)

/* Largest image made: 2^26 pixels (192 MiB of RGB8); sides <= 65535. */
#define DM_CANVAS_MAX_PIXELS (1L << 26)
#define DM_CANVAS_MAX_SIDE 65535

/* A picture in memory: w x h pixels, 3 bytes (R, G, B) each, rows top to
 * bottom.  Every drawing call only touches pixels inside the clip
 * rectangle [cx0, cx1) x [cy0, cy1), which is the whole image at first. */
struct dm_canvas {
	int w, h;
	unsigned char *rgb;
	int cx0, cy0, cx1, cy1;
};

/* A new image filled with bg; NULL (with reason) if a side is < 1 or too
 * large. */
struct dm_canvas *dm_canvas_new(int w, int h, uint32_t bg);
void dm_canvas_free(struct dm_canvas *im);
/* Clip rectangle [x0, x1) x [y0, y1), cut to the image. */
void dm_canvas_clip(struct dm_canvas *im, int x0, int y0, int x1, int y1);
void dm_canvas_unclip(struct dm_canvas *im);
/* Pixel (x, y) as 0xRRGGBB; 0 outside the image. */
uint32_t dm_canvas_get(const struct dm_canvas *im, int x, int y);
/* Blend colour c over pixel (x, y) with opacity alpha in [0, 1]:
 * new = old + alpha (c - old), rounded; nothing outside the clip. */
void dm_canvas_blend(struct dm_canvas *im, int x, int y, uint32_t c,
    double alpha);
void dm_canvas_set(struct dm_canvas *im, int x, int y, uint32_t c);

/* A filled rectangle and a one-pixel outline, w x h pixels at (x, y). */
void dm_draw_fill(struct dm_canvas *im, int x, int y, int w, int h, uint32_t c);
void dm_draw_box(struct dm_canvas *im, int x, int y, int w, int h, uint32_t c);
/* A line between pixel centres (x0, y0) and (x1, y1), Bresenham, each
 * pixel blended once with alpha, pixels outside the clip rectangle
 * skipped.  The pixels do not depend on the clip; segments that miss it
 * are rejected first (Liang-Barsky), and ends beyond 1e5 are cut, so huge
 * coordinates are fine. */
void dm_draw_line(struct dm_canvas *im, double x0, double y0, double x1,
    double y1, uint32_t c, double alpha);
/* A filled disc: the pixels whose centres lie within r of (cx, cy). */
void dm_draw_disc(struct dm_canvas *im, double cx, double cy, double r,
    uint32_t c, double alpha);
/* A filled square of 2r+1 pixels a side (a plot marker) centred on the
 * pixel nearest (cx, cy), r <= 1000; nothing when the centre is not finite
 * or lies beyond 1e5. */
void dm_draw_square(struct dm_canvas *im, double cx, double cy, int r,
    uint32_t c);

/* The built-in font: 5x7 glyphs in 6x9 cells (ASCII digits, letters and
 * . , - + : _ / ( ) = [ ] % ' # * < > ! ? |; others draw as a box). */
#define DM_FONT_W 5
#define DM_FONT_H 7
#define DM_FONT_ADVANCE 6
int dm_text_width(const char *s);
/* Text with its top-left corner at (x, y); returns the width drawn. */
int dm_draw_text(struct dm_canvas *im, int x, int y, const char *s, uint32_t c);
/* Text turned 90 degrees counter-clockwise (reading upwards), its
 * bottom-left corner at (x, y). */
int dm_draw_text_up(struct dm_canvas *im, int x, int y, const char *s,
    uint32_t c);

/* Values to bytes: round(255 (v - lo) / (hi - lo)), clipped to 0..255
 * (NaN gives 0). */
uint8_t dm_value_to_u8(double v, double lo, double hi);
/* Colour i of the Okabe-Ito palette (colour-blind safe), in an order that
 * keeps the first ones apart on white; i wraps around after 8. */
uint32_t dm_palette(int i);
/* A viridis-like colour for v in [0, 1] (clipped). */
uint32_t dm_colormap(double v);

/* Tick marks at "nice" numbers (1, 2 or 5 times a power of ten): the
 * multiples of the step that lie in [lo, hi], the step chosen as the
 * smallest nice step giving at most maxn ticks.  Writes up to cap ticks,
 * returns their number (or -1 with reason when lo >= hi or not finite). */
int dm_ticks(double lo, double hi, int maxn, double *ticks, int cap,
    double *step);
/* The tick value as text with as many decimals as the step needs ("0.5",
 * "-2", "1e+06"). */
void dm_tick_label(char *buf, size_t n, double v, double step);

/* An image grid: n pictures of cw x ch pixels (after scaling), per_row to a
 * row, pad pixels around and between them.
 *   ncol = min(n, per_row), nrow = ceil(n / per_row),
 *   w = ncol (cw + pad) + pad, h = nrow (ch + pad) + pad. */
struct dm_grid {
	int n, ncol, nrow, cw, ch, pad, w, h;
};
/* -1 with reason if a number is out of range or the image would be too
 * large (DM_CANVAS_MAX_PIXELS). */
int dm_grid_layout(struct dm_grid *g, int64_t n, int per_row, int64_t height,
    int64_t width, int scale, int pad);
/* Top-left pixel of cell i (row-major). */
void dm_grid_cell(const struct dm_grid *g, int i, int *x, int *y);
/* Draw picture data[c][h][w] (c = 1 gray, 3 RGB, 4 RGBA composited over
 * white) into cell i, values mapped by dm_value_to_u8(v, lo, hi),
 * upscaled by the grid's scale (nearest neighbour). */
void dm_grid_put(struct dm_canvas *im, const struct dm_grid *g, int i,
    const float *data, int c, int h, int w, double lo, double hi);

/* A plot: a frame inside the image, data limits, and the map between
 * them.  x = xmin falls on pixel column x0 and xmax on x1; y = ymin on row
 * y1 and ymax on row y0.  On a logarithmic axis (logx, logy) the limits
 * are log10 values. */
struct dm_plot {
	struct dm_canvas *im;
	int x0, y0, x1, y1;
	double xmin, xmax, ymin, ymax;
	int logx, logy;
};
/* Flags of dm_plot_init: logarithmic axes. */
#define DM_PLOT_LOGY 1
#define DM_PLOT_LOGX 2
/* Lay out a plot in im with room for tick labels and axis labels; flags
 * is 0 or DM_PLOT_LOGX and DM_PLOT_LOGY or'ed.  -1 with reason if the
 * limits are not finite and increasing or the image is too small. */
int dm_plot_init(struct dm_plot *p, struct dm_canvas *im, double xmin,
    double xmax, double ymin, double ymax, int flags);
/* Pixel coordinates (fractional) of data x and y (already log10 on a
 * logarithmic axis). */
double dm_plot_px(const struct dm_plot *p, double x);
double dm_plot_py(const struct dm_plot *p, double y);
/* The frame, ticks with numbers, axis labels (may be NULL); afterwards the
 * clip rectangle is the inside of the frame.  Both axes get their ticks
 * the same way: round numbers (dm_ticks), and on a logarithmic axis that
 * spans a decade or more whole powers of ten. */
void dm_plot_axes(struct dm_plot *p, const char *xlabel, const char *ylabel);
/* A legend of n swatches and names in the top-right corner of the plot. */
void dm_plot_legend(struct dm_plot *p, const char *const *names,
    const uint32_t *colors, int n);

/* PNG (8-bit RGB, no interlace, no time stamp, zlib level 9, filter
 * chosen by libpng's fixed heuristic): the same image gives the same bytes.
 * dm_png_encode returns a malloc'ed buffer in *out. */
int dm_png_encode(const struct dm_canvas *im, unsigned char **out, size_t *len);
/* Write to path ("-" is standard output).  A regular file is written to a
 * temporary name in its directory and renamed; special files are written
 * in place; on failure nothing is left behind. */
int dm_png_write(const struct dm_canvas *im, const char *path);

#endif
