/* plot.c — a small deterministic rasterizer on an RGB8 image: pixels with
 * alpha blending, Bresenham lines cut by Liang-Barsky, discs, a built-in
 * 5x7 font, nice tick numbers, plot frames, legends, image grids. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_plot.h"

struct dm_canvas *
dm_canvas_new(int w, int h, uint32_t bg)
{
	struct dm_canvas *im;
	size_t n;

	if (w < 1 || h < 1 || w > DM_CANVAS_MAX_SIDE || h > DM_CANVAS_MAX_SIDE ||
	    (long)w * h > DM_CANVAS_MAX_PIXELS) {
		dm_seterr("image size %dx%d out of range (at most %ld pixels)",
		    w, h, (long)DM_CANVAS_MAX_PIXELS);
		return NULL;
	}
	if (dm_mul_size((size_t)w * (size_t)h, 3, &n) == -1 ||
	    (im = dm_calloc(1, sizeof *im)) == NULL)
		return NULL;
	if ((im->rgb = dm_malloc(n)) == NULL) {
		free(im);
		return NULL;
	}
	im->w = w;
	im->h = h;
	dm_canvas_unclip(im);
	dm_draw_fill(im, 0, 0, w, h, bg);
	return im;
}

void
dm_canvas_free(struct dm_canvas *im)
{
	if (im == NULL)
		return;
	free(im->rgb);
	free(im);
}

static int
clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void
dm_canvas_clip(struct dm_canvas *im, int x0, int y0, int x1, int y1)
{
	im->cx0 = clampi(x0, 0, im->w);
	im->cy0 = clampi(y0, 0, im->h);
	im->cx1 = clampi(x1, im->cx0, im->w);
	im->cy1 = clampi(y1, im->cy0, im->h);
}

void
dm_canvas_unclip(struct dm_canvas *im)
{
	dm_canvas_clip(im, 0, 0, im->w, im->h);
}

uint32_t
dm_canvas_get(const struct dm_canvas *im, int x, int y)
{
	const unsigned char *p;

	if (x < 0 || y < 0 || x >= im->w || y >= im->h)
		return 0;
	p = im->rgb + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
	return DM_RGB(p[0], p[1], p[2]);
}

static int
inside(const struct dm_canvas *im, int x, int y)
{
	return x >= im->cx0 && x < im->cx1 && y >= im->cy0 && y < im->cy1;
}

void
dm_canvas_set(struct dm_canvas *im, int x, int y, uint32_t c)
{
	unsigned char *p;

	if (!inside(im, x, y))
		return;
	p = im->rgb + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
	p[0] = (unsigned char)(c >> 16);
	p[1] = (unsigned char)(c >> 8);
	p[2] = (unsigned char)c;
}

void
dm_canvas_blend(struct dm_canvas *im, int x, int y, uint32_t c, double alpha)
{
	unsigned char *p;

	if (!inside(im, x, y) || !(alpha > 0))
		return;
	if (alpha >= 1) {
		dm_canvas_set(im, x, y, c);
		return;
	}
	p = im->rgb + 3 * ((size_t)y * (size_t)im->w + (size_t)x);
	for (int k = 0; k < 3; k++) {
		double old = p[k], v = (c >> (16 - 8 * k)) & 0xff;
		p[k] = (unsigned char)floor(old + alpha * (v - old) + 0.5);
	}
}

void
dm_draw_fill(struct dm_canvas *im, int x, int y, int w, int h, uint32_t c)
{
	int xa = clampi(x, im->cx0, im->cx1), ya = clampi(y, im->cy0, im->cy1);
	int xb = (int)fmin((double)x + w, im->cx1);
	int yb = (int)fmin((double)y + h, im->cy1);

	for (int j = ya; j < yb; j++)
		for (int i = xa; i < xb; i++)
			dm_canvas_set(im, i, j, c);
}

void
dm_draw_box(struct dm_canvas *im, int x, int y, int w, int h, uint32_t c)
{
	if (w < 1 || h < 1)
		return;
	dm_draw_fill(im, x, y, w, 1, c);
	dm_draw_fill(im, x, y + h - 1, w, 1, c);
	dm_draw_fill(im, x, y, 1, h, c);
	dm_draw_fill(im, x + w - 1, y, 1, h, c);
}

static double
clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Liang-Barsky: cut the segment to [xl, xr] x [yt, yb]; 0 if nothing is
 * left.  An end cut at a side is put exactly on that side, and the results
 * are clamped to the rectangle, since with huge coordinates x0 + t dx
 * cancels badly. */
static int
clip_segment(double *x0, double *y0, double *x1, double *y1, double xl,
    double yt, double xr, double yb)
{
	double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
	double p[4] = {-dx, dx, -dy, dy};
	double q[4] = {*x0 - xl, xr - *x0, *y0 - yt, yb - *y0};
	double side[4] = {xl, xr, yt, yb};
	int i0 = -1, i1 = -1;

	if (!isfinite(dx) || !isfinite(dy))
		return 0;
	for (int i = 0; i < 4; i++) {
		if (p[i] == 0) {
			if (q[i] < 0)
				return 0;
			continue;
		}
		double r = q[i] / p[i];
		if (p[i] < 0) {
			if (r > t1)
				return 0;
			if (r > t0)
				t0 = r, i0 = i;
		} else {
			if (r < t0)
				return 0;
			if (r < t1)
				t1 = r, i1 = i;
		}
	}
	double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
	double bx = *x0 + t1 * dx, by = *y0 + t1 * dy;
	if (i0 >= 0)
		*(i0 < 2 ? &ax : &ay) = side[i0];
	if (i1 >= 0)
		*(i1 < 2 ? &bx : &by) = side[i1];
	*x0 = clampd(ax, xl, xr);
	*y0 = clampd(ay, yt, yb);
	*x1 = clampd(bx, xl, xr);
	*y1 = clampd(by, yt, yb);
	return 1;
}

/* Beyond this, end points are cut before rounding to integers. */
#define FAR 1e5

void
dm_draw_line(struct dm_canvas *im, double x0, double y0, double x1, double y1,
    uint32_t c, double alpha)
{
	double ax = x0, ay = y0, bx = x1, by = y1;

	/* nothing to draw unless some of the segment is inside the clip */
	if (im->cx0 >= im->cx1 || im->cy0 >= im->cy1 ||
	    !clip_segment(&ax, &ay, &bx, &by, im->cx0 - 0.5, im->cy0 - 0.5,
	    im->cx1 - 0.5, im->cy1 - 0.5))
		return;
	/* Bresenham between the rounded end points, so that the pixels do
	 * not depend on the clip; only far ends are cut first */
	if ((fabs(x0) > FAR || fabs(y0) > FAR || fabs(x1) > FAR ||
	    fabs(y1) > FAR) &&
	    !clip_segment(&x0, &y0, &x1, &y1, -FAR, -FAR, FAR, FAR))
		return;
	int xa = (int)floor(x0 + 0.5), ya = (int)floor(y0 + 0.5);
	int xb = (int)floor(x1 + 0.5), yb = (int)floor(y1 + 0.5);
	int dx = abs(xb - xa), sx = xa < xb ? 1 : -1;
	int dy = -abs(yb - ya), sy = ya < yb ? 1 : -1;
	int e = dx + dy;

	for (;;) {
		dm_canvas_blend(im, xa, ya, c, alpha);
		if (xa == xb && ya == yb)
			break;
		int e2 = 2 * e;
		if (e2 >= dy) {
			e += dy;
			xa += sx;
		}
		if (e2 <= dx) {
			e += dx;
			ya += sy;
		}
	}
}

void
dm_draw_disc(struct dm_canvas *im, double cx, double cy, double r, uint32_t c,
    double alpha)
{
	if (!isfinite(cx) || !isfinite(cy) || !(r >= 0) || r > 1e4)
		return;
	double xa = fmax(ceil(cx - r), im->cx0), xb = fmin(floor(cx + r), im->cx1 - 1);
	double ya = fmax(ceil(cy - r), im->cy0), yb = fmin(floor(cy + r), im->cy1 - 1);

	for (double y = ya; y <= yb; y++)
		for (double x = xa; x <= xb; x++)
			if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
				dm_canvas_blend(im, (int)x, (int)y, c, alpha);
}

void
dm_draw_square(struct dm_canvas *im, double cx, double cy, int r, uint32_t c)
{
	if (!isfinite(cx) || !isfinite(cy) || fabs(cx) > FAR || fabs(cy) > FAR ||
	    r < 0 || r > 1000)
		return;
	int x = (int)floor(cx + 0.5), y = (int)floor(cy + 0.5);
	dm_draw_fill(im, x - r, y - r, 2 * r + 1, 2 * r + 1, c);
}

/* Glyphs: 7 rows, the 5 low bits of each, the most significant on the
 * left. */
static const unsigned char font[128][DM_FONT_H] = {
	[' '] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	['0'] = {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e},
	['1'] = {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e},
	['2'] = {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f},
	['3'] = {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e},
	['4'] = {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02},
	['5'] = {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e},
	['6'] = {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e},
	['7'] = {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	['8'] = {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e},
	['9'] = {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c},
	['A'] = {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},
	['B'] = {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e},
	['C'] = {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e},
	['D'] = {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c},
	['E'] = {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f},
	['F'] = {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10},
	['G'] = {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f},
	['H'] = {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11},
	['I'] = {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e},
	['J'] = {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c},
	['K'] = {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	['L'] = {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f},
	['M'] = {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11},
	['N'] = {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	['O'] = {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},
	['P'] = {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10},
	['Q'] = {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d},
	['R'] = {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11},
	['S'] = {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e},
	['T'] = {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	['U'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e},
	['V'] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04},
	['W'] = {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a},
	['X'] = {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11},
	['Y'] = {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04},
	['Z'] = {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f},
	['a'] = {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f},
	['b'] = {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e},
	['c'] = {0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e},
	['d'] = {0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f},
	['e'] = {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e},
	['f'] = {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08},
	['g'] = {0x00, 0x0f, 0x11, 0x11, 0x0f, 0x01, 0x0e},
	['h'] = {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},
	['i'] = {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e},
	['j'] = {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c},
	['k'] = {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12},
	['l'] = {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e},
	['m'] = {0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11},
	['n'] = {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},
	['o'] = {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e},
	['p'] = {0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10},
	['q'] = {0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01},
	['r'] = {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},
	['s'] = {0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e},
	['t'] = {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06},
	['u'] = {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d},
	['v'] = {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04},
	['w'] = {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a},
	['x'] = {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11},
	['y'] = {0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e},
	['z'] = {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f},
	['.'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c},
	[','] = {0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08},
	['-'] = {0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00},
	['+'] = {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00},
	[':'] = {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00},
	['_'] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f},
	['/'] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
	['('] = {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	[')'] = {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	['='] = {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00},
	['['] = {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e},
	[']'] = {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e},
	['%'] = {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	['\''] = {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00},
	['#'] = {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a},
	['*'] = {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00},
	['<'] = {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},
	['>'] = {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
	['!'] = {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},
	['?'] = {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},
	['|'] = {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
};

static const unsigned char *
glyph(unsigned char ch)
{
	static const unsigned char box[DM_FONT_H] = {
		0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f
	};

	if (ch == ' ')
		return font[' '];
	if (ch < 128)
		for (int r = 0; r < DM_FONT_H; r++)
			if (font[ch][r])
				return font[ch];
	return box;
}

int
dm_text_width(const char *s)
{
	size_t n = strlen(s);

	return n ? (int)(n * DM_FONT_ADVANCE - 1) : 0;
}

int
dm_draw_text(struct dm_canvas *im, int x, int y, const char *s, uint32_t c)
{
	for (const char *p = s; *p != '\0'; p++, x += DM_FONT_ADVANCE) {
		const unsigned char *g = glyph((unsigned char)*p);
		for (int r = 0; r < DM_FONT_H; r++)
			for (int k = 0; k < DM_FONT_W; k++)
				if (g[r] >> (DM_FONT_W - 1 - k) & 1)
					dm_canvas_set(im, x + k, y + r, c);
	}
	return dm_text_width(s);
}

int
dm_draw_text_up(struct dm_canvas *im, int x, int y, const char *s, uint32_t c)
{
	/* glyph pixel (k, r) goes to (x + r, y - k) */
	for (const char *p = s; *p != '\0'; p++, y -= DM_FONT_ADVANCE) {
		const unsigned char *g = glyph((unsigned char)*p);
		for (int r = 0; r < DM_FONT_H; r++)
			for (int k = 0; k < DM_FONT_W; k++)
				if (g[r] >> (DM_FONT_W - 1 - k) & 1)
					dm_canvas_set(im, x + r, y - k, c);
	}
	return dm_text_width(s);
}

uint8_t
dm_value_to_u8(double v, double lo, double hi)
{
	double t = (v - lo) / (hi - lo) * 255;

	if (!(t > 0))
		return 0;
	if (t >= 255)
		return 255;
	return (uint8_t)floor(t + 0.5);
}

uint32_t
dm_palette(int i)
{
	/* Okabe and Ito (2008): blue, vermillion, bluish green, reddish
	 * purple, orange, sky blue, black, yellow */
	static const uint32_t pal[8] = {
		0x0072b2, 0xd55e00, 0x009e73, 0xcc79a7,
		0xe69f00, 0x56b4e9, 0x000000, 0xf0e442
	};

	return pal[((i % 8) + 8) % 8];
}

uint32_t
dm_colormap(double v)
{
	/* viridis sampled at 0, 1/4, 1/2, 3/4, 1, interpolated linearly */
	static const unsigned char stop[5][3] = {
		{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98},
		{253, 231, 37}
	};
	uint32_t c = 0;

	if (!(v > 0))
		v = 0;
	if (v > 1)
		v = 1;
	int i = v >= 1 ? 3 : (int)(v * 4);
	double f = v * 4 - i;
	for (int k = 0; k < 3; k++) {
		double x = stop[i][k] + f * (stop[i + 1][k] - stop[i][k]);
		c = c << 8 | (uint32_t)floor(x + 0.5);
	}
	return c;
}

int
dm_ticks(double lo, double hi, int maxn, double *ticks, int cap, double *step)
{
	static const double mult[3] = {1, 2, 5};
	double span = hi - lo, base, s = 0;
	int64_t k0 = 0, k1 = -1;

	if (!isfinite(lo) || !isfinite(hi) || !isfinite(span) || !(lo < hi))
		return dm_seterr("bad axis limits %g:%g", lo, hi);
	if (maxn < 2)
		maxn = 2;
	base = pow(10, floor(log10(span / maxn)));
	for (int e = 0; e < 4; e++, base *= 10) {
		int m;
		for (m = 0; m < 3; m++) {
			s = base * mult[m];
			k0 = (int64_t)ceil(lo / s - 1e-9);
			k1 = (int64_t)floor(hi / s + 1e-9);
			if (k1 - k0 + 1 <= maxn)
				break;
		}
		if (m < 3)
			break;
	}
	int n = 0;
	for (int64_t k = k0; k <= k1 && n < cap; k++) {
		double v = (double)k * s;
		ticks[n++] = fabs(v) < s * 1e-9 ? 0 : v;
	}
	if (step)
		*step = s;
	return n;
}

void
dm_tick_label(char *buf, size_t n, double v, double step)
{
	if (fabs(v) < step * 1e-9)
		v = 0;
	if (v != 0 && (fabs(v) >= 1e6 || step < 1e-4)) {
		snprintf(buf, n, "%.3g", v);
		return;
	}
	int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
	snprintf(buf, n, "%.*f", dec, v);
}

int
dm_grid_layout(struct dm_grid *g, int64_t n, int per_row, int64_t height,
    int64_t width, int scale, int pad)
{
	int64_t ncol, nrow, cw, ch, w, h;

	if (n < 1 || n > (1 << 24))
		return dm_seterr("%lld pictures (1 to %d)", (long long)n, 1 << 24);
	if (per_row < 1 || scale < 1 || scale > 256 || pad < 0 || pad > 1024)
		return dm_seterr("bad grid parameters");
	if (height < 1 || width < 1 || height > DM_CANVAS_MAX_SIDE ||
	    width > DM_CANVAS_MAX_SIDE)
		return dm_seterr("picture size %lldx%lld out of range",
		    (long long)width, (long long)height);
	ncol = n < per_row ? n : per_row;
	nrow = (n + per_row - 1) / per_row;
	cw = width * scale;
	ch = height * scale;
	w = ncol * (cw + pad) + pad;     /* no overflow: all factors < 2^25 */
	h = nrow * (ch + pad) + pad;
	if (w > DM_CANVAS_MAX_SIDE || h > DM_CANVAS_MAX_SIDE ||
	    w * h > DM_CANVAS_MAX_PIXELS)
		return dm_seterr("grid of %lldx%lld pixels is too large "
		    "(at most %d a side and %ld pixels)", (long long)w,
		    (long long)h, DM_CANVAS_MAX_SIDE, (long)DM_CANVAS_MAX_PIXELS);
	g->n = (int)n;
	g->ncol = (int)ncol;
	g->nrow = (int)nrow;
	g->cw = (int)cw;
	g->ch = (int)ch;
	g->pad = pad;
	g->w = (int)w;
	g->h = (int)h;
	return 0;
}

void
dm_grid_cell(const struct dm_grid *g, int i, int *x, int *y)
{
	*x = g->pad + (i % g->ncol) * (g->cw + g->pad);
	*y = g->pad + (i / g->ncol) * (g->ch + g->pad);
}

void
dm_grid_put(struct dm_canvas *im, const struct dm_grid *g, int i,
    const float *data, int c, int h, int w, double lo, double hi)
{
	size_t plane = (size_t)h * (size_t)w;
	int x0, y0, scale = g->cw / w;

	dm_grid_cell(g, i, &x0, &y0);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t o = (size_t)y * (size_t)w + (size_t)x;
			unsigned v[3];
			for (int k = 0; k < 3; k++)
				v[k] = dm_value_to_u8(data[(c >= 3 ? k : 0) *
				    plane + o], lo, hi);
			if (c == 4) {
				/* over white: v a + 255 (1 - a) */
				double a = dm_value_to_u8(data[3 * plane + o],
				    lo, hi) / 255.0;
				for (int k = 0; k < 3; k++)
					v[k] = (unsigned)floor(v[k] * a +
					    255 * (1 - a) + 0.5);
			}
			dm_draw_fill(im, x0 + x * scale, y0 + y * scale, scale,
			    scale, DM_RGB(v[0], v[1], v[2]));
		}
}

/* Room around the plot area for tick numbers and axis labels. */
#define MARGIN_LEFT 62
#define MARGIN_RIGHT 14
#define MARGIN_TOP 12
#define MARGIN_BOTTOM 36

int
dm_plot_init(struct dm_plot *p, struct dm_canvas *im, double xmin, double xmax,
    double ymin, double ymax, int flags)
{
	if (!isfinite(xmin) || !isfinite(xmax) || !(xmin < xmax) ||
	    !isfinite(xmax - xmin))
		return dm_seterr("bad x limits %g:%g", xmin, xmax);
	if (!isfinite(ymin) || !isfinite(ymax) || !(ymin < ymax) ||
	    !isfinite(ymax - ymin))
		return dm_seterr("bad y limits %g:%g", ymin, ymax);
	if (im->w < MARGIN_LEFT + MARGIN_RIGHT + 16 ||
	    im->h < MARGIN_TOP + MARGIN_BOTTOM + 16)
		return dm_seterr("image %dx%d too small for a plot", im->w, im->h);
	p->im = im;
	p->x0 = MARGIN_LEFT;
	p->x1 = im->w - 1 - MARGIN_RIGHT;
	p->y0 = MARGIN_TOP;
	p->y1 = im->h - 1 - MARGIN_BOTTOM;
	p->xmin = xmin;
	p->xmax = xmax;
	p->ymin = ymin;
	p->ymax = ymax;
	p->logx = (flags & DM_PLOT_LOGX) != 0;
	p->logy = (flags & DM_PLOT_LOGY) != 0;
	return 0;
}

double
dm_plot_px(const struct dm_plot *p, double x)
{
	return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * (p->x1 - p->x0);
}

double
dm_plot_py(const struct dm_plot *p, double y)
{
	return p->y1 - (y - p->ymin) / (p->ymax - p->ymin) * (p->y1 - p->y0);
}

#define MAX_TICKS 16
#define GRID_GRAY DM_RGB(228, 228, 228)
#define TEXT_GRAY DM_RGB(40, 40, 40)

/* Ticks of one axis from lo to hi in the axis' own units (log10 values
 * when logscale), about maxn of them at most: positions into pos, labels into
 * lab.  A log axis over a decade or more gets whole powers of ten; over
 * less, round numbers, fewer of them since they crowd towards one end.
 * Both axes of a plot go through here. */
static int
axis_ticks(double lo, double hi, int logscale, int maxn, double *pos,
    char lab[][24])
{
	double t[MAX_TICKS], step = 1;
	int n, k = 0;

	if (maxn > MAX_TICKS)
		maxn = MAX_TICKS;
	if (!logscale || hi - lo < 1) {
		double a = logscale ? pow(10, lo) : lo;
		double b = logscale ? pow(10, hi) : hi;
		n = dm_ticks(a, b, logscale ? maxn * 2 / 3 : maxn, t, MAX_TICKS,
		    &step);
		for (int i = 0; i < n; i++) {
			if (logscale && !(t[i] > 0))
				continue;
			dm_tick_label(lab[k], 24, t[i], step);
			pos[k++] = logscale ? log10(t[i]) : t[i];
		}
		return k;
	}
	n = dm_ticks(lo, hi, maxn, t, MAX_TICKS, &step);
	if (step < 1) {
		n = 0;
		for (double e = ceil(lo); e <= hi && n < MAX_TICKS; e++)
			t[n++] = e;
	}
	for (int i = 0; i < n; i++) {
		snprintf(lab[i], 24, "%g", pow(10, t[i]));
		pos[i] = t[i];
	}
	return n;
}

void
dm_plot_axes(struct dm_plot *p, const char *xlabel, const char *ylabel)
{
	struct dm_canvas *im = p->im;
	double xt[MAX_TICKS], yt[MAX_TICKS];
	char xl[MAX_TICKS][24], yl[MAX_TICKS][24];
	int nx, ny, maxw = 0;

	dm_canvas_unclip(im);
	nx = axis_ticks(p->xmin, p->xmax, p->logx, (p->x1 - p->x0) / 60 + 1,
	    xt, xl);
	ny = axis_ticks(p->ymin, p->ymax, p->logy, 6, yt, yl);
	/* light grid lines at the ticks, then the frame around the area */
	for (int i = 0; i < nx; i++) {
		int x = (int)floor(dm_plot_px(p, xt[i]) + 0.5);
		dm_draw_fill(im, x, p->y0, 1, p->y1 - p->y0 + 1, GRID_GRAY);
		dm_draw_fill(im, x, p->y1 + 2, 1, 4, DM_BLACK);
		dm_draw_text(im, x - dm_text_width(xl[i]) / 2, p->y1 + 8, xl[i],
		    TEXT_GRAY);
	}
	for (int i = 0; i < ny; i++) {
		int y = (int)floor(dm_plot_py(p, yt[i]) + 0.5);
		int w = dm_text_width(yl[i]);
		dm_draw_fill(im, p->x0, y, p->x1 - p->x0 + 1, 1, GRID_GRAY);
		dm_draw_fill(im, p->x0 - 5, y, 4, 1, DM_BLACK);
		dm_draw_text(im, p->x0 - 8 - w, y - DM_FONT_H / 2, yl[i],
		    TEXT_GRAY);
		if (w > maxw)
			maxw = w;
	}
	dm_draw_box(im, p->x0 - 1, p->y0 - 1, p->x1 - p->x0 + 3,
	    p->y1 - p->y0 + 3, DM_BLACK);
	if (xlabel != NULL)
		dm_draw_text(im, (p->x0 + p->x1 - dm_text_width(xlabel)) / 2,
		    p->y1 + 8 + DM_FONT_H + 5, xlabel, DM_BLACK);
	if (ylabel != NULL) {
		int x = p->x0 - 8 - maxw - 5 - DM_FONT_H;
		dm_draw_text_up(im, x < 1 ? 1 : x,
		    (p->y0 + p->y1 + dm_text_width(ylabel)) / 2, ylabel, DM_BLACK);
	}
	dm_canvas_clip(im, p->x0, p->y0, p->x1 + 1, p->y1 + 1);
}

void
dm_plot_legend(struct dm_plot *p, const char *const *names,
    const uint32_t *colors, int n)
{
	struct dm_canvas *im = p->im;
	char buf[25];
	int w = 0, row = DM_FONT_H + 5;

	if (n < 1)
		return;
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%s", names[i]);
		if (dm_text_width(buf) > w)
			w = dm_text_width(buf);
	}
	w += 8 + 4 + 2 * 5;
	int h = n * row + 5, x = p->x1 - 4 - w, y = p->y0 + 4;
	dm_draw_fill(im, x, y, w, h, DM_WHITE);
	dm_draw_box(im, x, y, w, h, DM_RGB(160, 160, 160));
	for (int i = 0; i < n; i++) {
		int ry = y + 5 + i * row;
		snprintf(buf, sizeof buf, "%s", names[i]);
		dm_draw_fill(im, x + 5, ry, 8, DM_FONT_H, colors[i]);
		dm_draw_text(im, x + 5 + 8 + 4, ry, buf, DM_BLACK);
	}
}
