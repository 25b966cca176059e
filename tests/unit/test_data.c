/* test_data.c — the toy generators against their geometric definitions,
 * the prefix property, IDX parsing of hand-built bytes, PNG reading of
 * files written here with libpng, finiteness checks and splits. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dm.h"
#include "test.h"

#define PI 3.14159265358979323846
#define R2 1.41421356237309504880

struct gen {
	float *x;
	int64_t *y;
	int64_t n;
};

static struct gen
gen(const char *name, const struct dm_data_opts *o, int64_t n, uint64_t seed)
{
	struct gen g = {malloc((size_t)n * 2 * sizeof(float)),
	    malloc((size_t)n * sizeof(int64_t)), n};

	CHECK_OK(dm_data_sample(name, o, 0, n, seed, g.x, g.y));
	return g;
}

static void
gen_free(struct gen *g)
{
	free(g->x);
	free(g->y);
}

static struct dm_data_opts
quiet_opts(void)
{
	struct dm_data_opts o;

	dm_data_opts_init(&o);
	o.noise = 0;
	return o;
}

/* Every class in [0, K) occurs, and nothing else. */
static void
check_labels(const struct gen *g, int K)
{
	int seen[64] = {0};

	for (int64_t i = 0; i < g->n; i++) {
		CHECK_MSG(g->y[i] >= 0 && g->y[i] < K, "label %lld of row %lld",
		    (long long)g->y[i], (long long)i);
		if (g->y[i] >= 0 && g->y[i] < 64)
			seen[g->y[i]] = 1;
	}
	for (int k = 0; k < K && k < 64; k++)
		CHECK_MSG(seen[k], "class %d never drawn", k);
}

DM_TEST(data_moons_on_half_circles)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("moons", &o, 2000, 1);
	int worst = 0;

	check_labels(&g, 2);
	for (int64_t i = 0; i < g.n; i++) {
		double a = g.x[2 * i], b = g.x[2 * i + 1], r;
		if (g.y[i] == 0) {	/* upper unit half circle */
			r = hypot(a, b);
			worst |= b < -1e-6;
		} else {		/* lower half circle about (1, 0.5) */
			r = hypot(a - 1, b - 0.5);
			worst |= b > 0.5 + 1e-6;
		}
		CHECK_NEAR(r, 1, 1e-6);
	}
	CHECK(!worst);
	gen_free(&g);
}

DM_TEST(data_circles_radii_and_noise)
{
	struct dm_data_opts o = quiet_opts();
	o.factor = 0.3;
	struct gen g = gen("circles", &o, 1000, 2);

	check_labels(&g, 2);
	for (int64_t i = 0; i < g.n; i++)
		CHECK_NEAR(hypot(g.x[2 * i], g.x[2 * i + 1]),
		    g.y[i] == 0 ? 1.0 : 0.3, 1e-6);
	gen_free(&g);

	/* default noise 0.05: the radial spread of the outer circle */
	dm_data_opts_init(&o);
	g = gen("circles", &o, 20000, 3);
	double s = 0;
	int64_t m = 0;
	for (int64_t i = 0; i < g.n; i++)
		if (g.y[i] == 0) {
			double d = hypot(g.x[2 * i], g.x[2 * i + 1]) - 1;
			s += d * d;
			m++;
		}
	CHECK_NEAR(sqrt(s / m), 0.05, 0.003);
	gen_free(&g);
}

DM_TEST(data_8gaussians_centres)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("8gaussians", &o, 800, 4);

	check_labels(&g, 8);
	for (int64_t i = 0; i < g.n; i++) {
		double t = (double)g.y[i] * PI / 4;
		CHECK_NEAR(g.x[2 * i], 2 * R2 * cos(t), 1e-6);
		CHECK_NEAR(g.x[2 * i + 1], 2 * R2 * sin(t), 1e-6);
	}
	gen_free(&g);
	/* class 2 is the centre (0, 2 sqrt 2); default std 0.5 / sqrt 2 */
	dm_data_opts_init(&o);
	g = gen("8gaussians", &o, 40000, 5);
	double sx = 0, sy = 0, sxx = 0;
	int64_t m = 0;
	for (int64_t i = 0; i < g.n; i++)
		if (g.y[i] == 2) {
			sx += g.x[2 * i];
			sy += g.x[2 * i + 1];
			sxx += g.x[2 * i] * g.x[2 * i];
			m++;
		}
	CHECK(m > 4000);
	CHECK_NEAR(sx / m, 0, 0.02);
	CHECK_NEAR(sy / m, 2 * R2, 0.02);
	CHECK_NEAR(sqrt(sxx / m), 0.5 / R2, 0.015);
	gen_free(&g);
}

DM_TEST(data_25gaussians_grid)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("25gaussians", &o, 2500, 6);

	check_labels(&g, 25);
	for (int64_t i = 0; i < g.n; i++) {
		CHECK_NEAR(g.x[2 * i], (g.y[i] / 5 - 2) / (2 * R2), 1e-6);
		CHECK_NEAR(g.x[2 * i + 1], (g.y[i] % 5 - 2) / (2 * R2), 1e-6);
	}
	gen_free(&g);
}

DM_TEST(data_checkerboard_squares)
{
	struct dm_data_opts o;
	dm_data_opts_init(&o);
	struct gen g = gen("checkerboard", &o, 4000, 7);
	int cells[4][4] = {{0}};

	check_labels(&g, 2);
	for (int64_t i = 0; i < g.n; i++) {
		double a = g.x[2 * i], b = g.x[2 * i + 1];
		int ci = (int)floor(a / 2), cj = (int)floor(b / 2);
		CHECK(a >= -4 && a < 4 && b >= -4 && b < 4);
		/* occupied squares: column + row even */
		CHECK_MSG(((ci + cj) & 1) == 0, "(%g, %g) on an empty square",
		    a, b);
		CHECK_EQ_INT(g.y[i], ci & 1);
		if (ci >= -2 && ci < 2 && cj >= -2 && cj < 2)
			cells[ci + 2][cj + 2]++;
	}
	/* the 8 occupied squares get about 500 each */
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			if (((i + j) & 1) == 0)
				CHECK(cells[i][j] > 400 && cells[i][j] < 600);
	gen_free(&g);
}

DM_TEST(data_swissroll_spiral)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("swissroll", &o, 1000, 8);

	CHECK(!dm_data_has_labels("swissroll"));
	for (int64_t i = 0; i < g.n; i++) {
		double a = g.x[2 * i], b = g.x[2 * i + 1];
		double t = 5 * hypot(a, b);	/* x = t (cos t, sin t) / 5 */
		CHECK(t >= 1.5 * PI - 1e-4 && t <= 4.5 * PI + 1e-4);
		CHECK_NEAR(a, t * cos(t) / 5, 1e-4);
		CHECK_NEAR(b, t * sin(t) / 5, 1e-4);
	}
	gen_free(&g);
}

DM_TEST(data_2spirals_symmetric)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("2spirals", &o, 20000, 9);
	double m[2][2] = {{0}}, lim = (3 * PI + 0.5 * R2) / 3;
	int64_t c[2] = {0};

	check_labels(&g, 2);
	for (int64_t i = 0; i < g.n; i++) {
		CHECK(hypot(g.x[2 * i], g.x[2 * i + 1]) <= lim + 1e-5);
		m[g.y[i]][0] += g.x[2 * i];
		m[g.y[i]][1] += g.x[2 * i + 1];
		c[g.y[i]]++;
	}
	/* arm 1 is arm 0 turned by pi */
	for (int k = 0; k < 2; k++)
		CHECK_NEAR(m[0][k] / c[0], -m[1][k] / c[1], 0.05);
	gen_free(&g);
}

DM_TEST(data_pinwheel_arms)
{
	struct dm_data_opts o = quiet_opts();
	o.classes = 3;
	struct gen g = gen("pinwheel", &o, 1500, 10);

	check_labels(&g, 3);
	for (int64_t i = 0; i < g.n; i++) {
		/* with no tangential noise x = 2a (cos t, -sin t),
		 * t = 2 pi c / K + exp(a) / 4 */
		double rr = hypot(g.x[2 * i], g.x[2 * i + 1]) / 2, best = 1e9;
		for (int s = -1; s <= 1; s += 2) {
			double a = s * rr, t = 2 * PI * g.y[i] / 3 + 0.25 * exp(a);
			double e = hypot(g.x[2 * i] - 2 * a * cos(t),
			    g.x[2 * i + 1] + 2 * a * sin(t));
			if (e < best)
				best = e;
		}
		CHECK_MSG(best < 1e-4, "row %lld off its arm by %g",
		    (long long)i, best);
	}
	gen_free(&g);
}

DM_TEST(data_rings_radii)
{
	struct dm_data_opts o = quiet_opts();
	struct gen g = gen("rings", &o, 1000, 11);

	check_labels(&g, 4);
	for (int64_t i = 0; i < g.n; i++)
		CHECK_NEAR(hypot(g.x[2 * i], g.x[2 * i + 1]),
		    0.75 * (double)(g.y[i] + 1), 1e-5);
	gen_free(&g);
}

DM_TEST(data_gauss_moments_and_shape)
{
	struct dm_data_opts o;
	struct dm_file *f = dm_file_new();

	dm_data_opts_init(&o);
	o.ndim = 3;
	o.shape[0] = 1;
	o.shape[1] = 4;
	o.shape[2] = 5;
	CHECK_OK(dm_data_generate("gauss", &o, 2000, 12, f));
	struct dm_tensor *x = dm_file_get(f, "x");
	CHECK(x != NULL && x->ndim == 4 && x->shape[0] == 2000 &&
	    x->shape[3] == 5);
	CHECK(dm_file_get(f, "y") == NULL);
	CHECK_STR(dm_file_meta(f, "dm.source"), "gauss:shape=1,4,5");
	CHECK_STR(dm_file_meta(f, "dm.kind"), "data");
	double s = 0, ss = 0;
	size_t n = dm_tensor_numel(x);
	for (size_t i = 0; i < n; i++) {
		s += ((float *)x->data)[i];
		ss += ((float *)x->data)[i] * ((float *)x->data)[i];
	}
	CHECK_NEAR(s / n, 0, 0.01);
	CHECK_NEAR(ss / n, 1, 0.02);
	dm_file_free(f);
}

DM_TEST(data_prefix_and_determinism)
{
	static const char *names[] = {"moons", "circles", "8gaussians",
	    "25gaussians", "checkerboard", "swissroll", "2spirals",
	    "pinwheel", "rings", "gauss"};
	struct dm_data_opts o;

	dm_data_opts_init(&o);
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		struct gen a = gen(names[k], &o, 10, 42);
		struct gen b = gen(names[k], &o, 1000, 42);
		struct gen c = gen(names[k], &o, 10, 43);
		CHECK_MSG(memcmp(a.x, b.x, 20 * sizeof(float)) == 0,
		    "%s: first rows depend on n", names[k]);
		if (dm_data_has_labels(names[k]))
			CHECK(memcmp(a.y, b.y, 10 * sizeof(int64_t)) == 0);
		CHECK_MSG(memcmp(a.x, c.x, 20 * sizeof(float)) != 0,
		    "%s: seed ignored", names[k]);
		/* rows 500.. from first = 500 equal the same rows of b */
		float part[20];
		CHECK_OK(dm_data_sample(names[k], &o, 500, 10, 42, part, NULL));
		CHECK(memcmp(part, b.x + 1000, sizeof part) == 0);
		gen_free(&a);
		gen_free(&b);
		gen_free(&c);
	}
}

DM_TEST(data_options_checked)
{
	struct dm_data_opts o;
	char buf[128];

	dm_data_opts_init(&o);
	CHECK_OK(dm_data_source("moons", &o, buf, sizeof buf));
	CHECK_STR(buf, "moons:noise=0.05");
	CHECK_OK(dm_data_source("pinwheel", &o, buf, sizeof buf));
	CHECK_STR(buf, "pinwheel:arms=5,noise=0.1");
	CHECK_FAILS(dm_data_check("blobs", &o), "unknown data set");
	o.classes = 3;
	CHECK_FAILS(dm_data_check("moons", &o), "does not apply");
	CHECK_OK(dm_data_check("rings", &o));
	dm_data_opts_init(&o);
	o.factor = 1.5;
	CHECK_FAILS(dm_data_check("circles", &o), "factor");
	o.factor = 0.5;
	CHECK_FAILS(dm_data_check("moons", &o), "only to circles");
	dm_data_opts_init(&o);
	o.noise = 1;
	CHECK_FAILS(dm_data_check("gauss", &o), "does not apply");
	struct dm_file *f = dm_file_new();
	dm_data_opts_init(&o);
	CHECK_FAILS(dm_data_generate("moons", &o, 0, 0, f), "out of range");
	dm_file_free(f);
}

DM_TEST(data_finite_check_names_row)
{
	int64_t s[2] = {20, 3};
	struct dm_tensor *t = dm_tensor_new(2, s);

	CHECK_OK(dm_tensor_set_name(t, "x"));
	CHECK_OK(dm_data_check_finite(t));
	((float *)t->data)[12 * 3 + 1] = NAN;
	((float *)t->data)[15 * 3] = INFINITY;
	CHECK_FAILS(dm_data_check_finite(t), "x: row 12 has NaN");
	((float *)t->data)[12 * 3 + 1] = 0;
	CHECK_FAILS(dm_data_check_finite(t), "x: row 15 has Inf");
	dm_tensor_free(t);
	/* F64 */
	t = dm_tensor_new_dtype(DM_DTYPE_F64, 2, s);
	CHECK_OK(dm_tensor_set_name(t, "z"));
	((double *)t->data)[7 * 3 + 2] = -INFINITY;
	CHECK_FAILS(dm_data_check_finite(t), "z: row 7 has Inf");
	dm_tensor_free(t);
}

/* ---- IDX ---- */

static size_t
idx_bytes(unsigned char *b, unsigned type, int ndim, const uint32_t *dims,
    const unsigned char *data, size_t n)
{
	size_t k = 0;

	b[k++] = 0;
	b[k++] = 0;
	b[k++] = (unsigned char)type;
	b[k++] = (unsigned char)ndim;
	for (int i = 0; i < ndim; i++) {
		b[k++] = dims[i] >> 24;
		b[k++] = dims[i] >> 16 & 0xff;
		b[k++] = dims[i] >> 8 & 0xff;
		b[k++] = dims[i] & 0xff;
	}
	memcpy(b + k, data, n);
	return k + n;
}

DM_TEST(data_idx_parse_and_errors)
{
	unsigned char b[256], px[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 254, 255};
	uint32_t d3[3] = {2, 2, 3};
	struct dm_tensor *t;
	size_t n = idx_bytes(b, 8, 3, d3, px, 12);

	CHECK_EQ_INT(n, 4 + 12 + 12);
	CHECK_OK(dm_idx_parse(b, n, &t));
	CHECK(t != NULL && t->dtype == DM_DTYPE_U8 && t->ndim == 3 &&
	    t->shape[0] == 2 && t->shape[1] == 2 && t->shape[2] == 3);
	CHECK(t && memcmp(t->data, px, 12) == 0);
	dm_tensor_free(t);

	CHECK_FAILS(dm_idx_parse(b, n - 1, &t), "11 bytes, expected 12");
	b[n] = 0;
	CHECK_FAILS(dm_idx_parse(b, n + 1, &t), "13 bytes, expected 12");
	CHECK_FAILS(dm_idx_parse(b, 3, &t), "not an IDX");
	CHECK_FAILS(dm_idx_parse(b, 10, &t), "header truncated");
	b[2] = 0x09;	/* signed bytes: not supported */
	CHECK_FAILS(dm_idx_parse(b, n, &t), "bad IDX magic 0x00000903");
	b[2] = 0x08;
	b[0] = 1;
	CHECK_FAILS(dm_idx_parse(b, n, &t), "bad IDX magic");
	b[0] = 0;
	b[3] = 0;
	CHECK_FAILS(dm_idx_parse(b, n, &t), "bad IDX magic");
	/* sizes whose product overflows */
	uint32_t big[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 2};
	n = idx_bytes(b, 8, 4, big, px, 0);
	CHECK_FAILS(dm_idx_parse(b, n, &t), "too large");
	CHECK(t == NULL);
	/* labels */
	uint32_t d1 = 3;
	n = idx_bytes(b, 8, 1, &d1, px, 3);
	CHECK_OK(dm_idx_parse(b, n, &t));
	CHECK(t && t->ndim == 1 && t->shape[0] == 3);
	dm_tensor_free(t);
}

static void
write_bytes(const char *path, const unsigned char *b, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		CHECK(g != NULL && gzwrite(g, b, (unsigned)n) == (int)n);
		gzclose(g);
	} else {
		FILE *fp = fopen(path, "wb");
		CHECK(fp != NULL && fwrite(b, 1, n, fp) == n);
		fclose(fp);
	}
}

DM_TEST(data_idx_import)
{
	unsigned char b[256], px[12] = {0, 255, 128, 1, 2, 3, 4, 5, 6, 7, 8, 9};
	unsigned char lab[3] = {9, 0, 3};
	uint32_t d3[3] = {2, 2, 3}, d1 = 2, d1b = 3;
	const char *img = dm_test_path("img.idx.gz");
	const char *lab2 = dm_test_path("lab2.idx");
	const char *lab3 = dm_test_path("lab3.idx");
	struct dm_file *f = dm_file_new();

	write_bytes(img, b, idx_bytes(b, 8, 3, d3, px, 12), 1);
	write_bytes(lab2, b, idx_bytes(b, 8, 1, &d1, lab, 2), 0);
	write_bytes(lab3, b, idx_bytes(b, 8, 1, &d1b, lab, 3), 0);
	CHECK_OK(dm_data_import_idx(img, lab2, f));
	struct dm_tensor *x = dm_file_get(f, "x"), *y = dm_file_get(f, "y");
	CHECK(x && x->ndim == 4 && x->shape[0] == 2 && x->shape[1] == 1 &&
	    x->shape[2] == 2 && x->shape[3] == 3);
	CHECK(y && y->dtype == DM_DTYPE_I64 && y->shape[0] == 2);
	if (x && y) {
		float *v = x->data;
		CHECK(v[0] == -1.0f);
		CHECK(v[1] == 1.0f);
		CHECK_NEAR(v[2], 128 / 127.5 - 1, 1e-7);
		CHECK_NEAR(v[11], 9 / 127.5 - 1, 1e-7);
		CHECK_EQ_INT(((int64_t *)y->data)[0], 9);
		CHECK_EQ_INT(((int64_t *)y->data)[1], 0);
	}
	CHECK_STR(dm_file_meta(f, "dm.kind"), "data");
	dm_file_free(f);

	f = dm_file_new();
	CHECK_FAILS(dm_data_import_idx(img, lab3, f), "3 labels for 2 images");
	CHECK_FAILS(dm_data_import_idx(lab3, NULL, f), "3 dimensions");
	CHECK_FAILS(dm_data_import_idx(img, img, f), "1 dimension");
	CHECK_FAILS(dm_data_import_idx(dm_test_path("none"), NULL, f),
	    "cannot open");
	dm_file_free(f);
}

/* ---- PNG ---- */

/* Write a PNG of the given colour type and depth; rows are raw PNG rows. */
static void
write_png(const char *path, int w, int h, int ctype, int depth,
    const unsigned char *raw, const png_color *pal, int npal,
    const unsigned char *trns, int ntrns)
{
	FILE *fp = fopen(path, "wb");
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
	    NULL, NULL);
	png_infop info = png_create_info_struct(png);
	size_t rowbytes;

	CHECK(fp && png && info);
	if (setjmp(png_jmpbuf(png))) {
		CHECK_MSG(0, "libpng failed writing %s", path);
		png_destroy_write_struct(&png, &info);
		fclose(fp);
		return;
	}
	png_init_io(png, fp);
	png_set_IHDR(png, info, w, h, depth, ctype, PNG_INTERLACE_NONE,
	    PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (pal)
		png_set_PLTE(png, info, pal, npal);
	if (trns)
		png_set_tRNS(png, info, trns, ntrns, NULL);
	png_write_info(png, info);
	rowbytes = png_get_rowbytes(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, raw + (size_t)y * rowbytes);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	fclose(fp);
}

#define V8(v) ((v) / 127.5 - 1)

DM_TEST(data_png_gray_rgb_rgba)
{
	struct dm_image im;
	/* gray 3x2: planar order equals raster order */
	unsigned char g[6] = {0, 255, 128, 10, 20, 30};
	write_png(dm_test_path("g.png"), 3, 2, PNG_COLOR_TYPE_GRAY, 8, g,
	    NULL, 0, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("g.png"), 0, &im));
	CHECK(im.c == 1 && im.h == 2 && im.w == 3);
	if (im.data)
		for (int i = 0; i < 6; i++)
			CHECK_NEAR(im.data[i], V8(g[i]), 1e-6);
	dm_image_free(&im);

	/* RGB 2x1: pixels (1,2,3) (4,5,6) -> planes R = {1,4}, G, B */
	unsigned char rgb[6] = {1, 2, 3, 4, 5, 6};
	write_png(dm_test_path("rgb.png"), 2, 1, PNG_COLOR_TYPE_RGB, 8, rgb,
	    NULL, 0, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("rgb.png"), 0, &im));
	CHECK(im.c == 3 && im.h == 1 && im.w == 2);
	if (im.data) {
		CHECK_NEAR(im.data[0], V8(1), 1e-6);
		CHECK_NEAR(im.data[1], V8(4), 1e-6);
		CHECK_NEAR(im.data[2], V8(2), 1e-6);
		CHECK_NEAR(im.data[5], V8(6), 1e-6);
	}
	dm_image_free(&im);

	/* RGBA 1x1, then with DM_PNG_RGB the alpha is dropped */
	unsigned char rgba[4] = {200, 100, 50, 7};
	write_png(dm_test_path("rgba.png"), 1, 1, PNG_COLOR_TYPE_RGBA, 8,
	    rgba, NULL, 0, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("rgba.png"), 0, &im));
	CHECK(im.c == 4);
	if (im.data)
		CHECK_NEAR(im.data[3], V8(7), 1e-6);
	dm_image_free(&im);
	CHECK_OK(dm_png_read(dm_test_path("rgba.png"), DM_PNG_RGB, &im));
	CHECK(im.c == 3);
	if (im.data)
		CHECK_NEAR(im.data[2], V8(50), 1e-6);
	dm_image_free(&im);
	/* gray with DM_PNG_RGB: replicated */
	CHECK_OK(dm_png_read(dm_test_path("g.png"), DM_PNG_RGB, &im));
	CHECK(im.c == 3 && im.w == 3);
	if (im.data)
		CHECK(im.data[1] == im.data[7] && im.data[7] == im.data[13]);
	dm_image_free(&im);
}

DM_TEST(data_png_16bit_palette_lowbit)
{
	struct dm_image im;
	/* 16-bit gray, big-endian samples 0, 65535, 0x1234 */
	unsigned char g16[6] = {0, 0, 0xff, 0xff, 0x12, 0x34};
	write_png(dm_test_path("g16.png"), 3, 1, PNG_COLOR_TYPE_GRAY, 16, g16,
	    NULL, 0, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("g16.png"), 0, &im));
	CHECK(im.c == 1 && im.w == 3);
	if (im.data) {
		CHECK_NEAR(im.data[0], -1, 1e-6);
		CHECK_NEAR(im.data[1], 1, 1e-6);
		CHECK_NEAR(im.data[2], 0x1234 / 32767.5 - 1, 1e-6);
	}
	dm_image_free(&im);

	/* palette of 2 colours, index 1 transparent: RGBA */
	png_color pal[2] = {{10, 20, 30}, {250, 240, 230}};
	unsigned char trns[1] = {255};	/* index 0 opaque, 1 opaque by default */
	unsigned char idx[2] = {1, 0};
	write_png(dm_test_path("pal.png"), 2, 1, PNG_COLOR_TYPE_PALETTE, 8,
	    idx, pal, 2, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("pal.png"), 0, &im));
	CHECK(im.c == 3 && im.w == 2);
	if (im.data) {
		CHECK_NEAR(im.data[0], V8(250), 1e-6);	/* R of pixel 0 */
		CHECK_NEAR(im.data[1], V8(10), 1e-6);	/* R of pixel 1 */
		CHECK_NEAR(im.data[5], V8(30), 1e-6);	/* B of pixel 1 */
	}
	dm_image_free(&im);
	trns[0] = 0;	/* index 0 fully transparent */
	write_png(dm_test_path("palt.png"), 2, 1, PNG_COLOR_TYPE_PALETTE, 8,
	    idx, pal, 2, trns, 1);
	CHECK_OK(dm_png_read(dm_test_path("palt.png"), 0, &im));
	CHECK(im.c == 4);
	if (im.data) {
		CHECK_NEAR(im.data[6], 1, 1e-6);	/* alpha of pixel 0 */
		CHECK_NEAR(im.data[7], -1, 1e-6);	/* alpha of pixel 1 */
	}
	dm_image_free(&im);

	/* 1-bit gray 0b10100000: pixels 1, 0, 1 -> 255, 0, 255 */
	unsigned char bits[1] = {0xa0};
	write_png(dm_test_path("g1.png"), 3, 1, PNG_COLOR_TYPE_GRAY, 1, bits,
	    NULL, 0, NULL, 0);
	CHECK_OK(dm_png_read(dm_test_path("g1.png"), 0, &im));
	CHECK(im.c == 1);
	if (im.data) {
		CHECK_NEAR(im.data[0], 1, 1e-6);
		CHECK_NEAR(im.data[1], -1, 1e-6);
		CHECK_NEAR(im.data[2], 1, 1e-6);
	}
	dm_image_free(&im);
}

DM_TEST(data_png_errors_and_import)
{
	struct dm_image im;
	unsigned char g[6] = {0, 1, 2, 3, 4, 5};
	const char *a = dm_test_path("a.png");
	const char *b = dm_test_path("b.png");
	const char *c = dm_test_path("c.png");
	const char *bad = dm_test_path("bad.png");

	write_png(a, 3, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0, NULL, 0);
	write_png(b, 3, 2, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0, NULL, 0);
	write_png(c, 2, 1, PNG_COLOR_TYPE_RGB, 8, g, NULL, 0, NULL, 0);
	write_bytes(bad, (const unsigned char *)"\x89PNG\r\n\x1a\nxyz", 11, 0);
	CHECK_FAILS(dm_png_read(bad, 0, &im), "");
	CHECK(im.data == NULL);
	CHECK_FAILS(dm_png_read(dm_test_path("nothere.png"), 0, &im),
	    "cannot open");
	write_bytes(bad, (const unsigned char *)"GIF89a.....", 11, 0);
	CHECK_FAILS(dm_png_read(bad, 0, &im), "not a PNG");

	const char *ok[2] = {a, b};
	int64_t lab[2] = {4, 5};
	struct dm_file *f = dm_file_new();
	CHECK_OK(dm_data_import_png(ok, 2, lab, 0, "png:test", f));
	struct dm_tensor *x = dm_file_get(f, "x");
	CHECK(x && x->ndim == 4 && x->shape[0] == 2 && x->shape[1] == 1 &&
	    x->shape[2] == 2 && x->shape[3] == 3);
	if (x)
		CHECK_NEAR(((float *)x->data)[6 + 5], V8(5), 1e-6);
	CHECK(dm_file_get(f, "y") && ((int64_t *)dm_file_get(f, "y")->data)[1] == 5);
	dm_file_free(f);

	const char *mixed[3] = {a, b, c};
	char want[512];
	snprintf(want, sizeof want, "%s: 2x1 RGB, expected 3x2 gray (from %s)",
	    c, a);
	f = dm_file_new();
	CHECK_FAILS(dm_data_import_png(mixed, 3, NULL, 0, NULL, f), want);
	CHECK_EQ_INT(f->ntensors, 0);
	dm_file_free(f);
}

/* ---- split ---- */

static struct dm_file *
split_input(void)
{
	struct dm_file *f = dm_file_new();
	int64_t sx[2] = {10, 2}, sy = 10, sw = 3;
	struct dm_tensor *x = dm_tensor_new(2, sx);
	struct dm_tensor *y = dm_tensor_new_dtype(DM_DTYPE_I64, 1, &sy);
	struct dm_tensor *w = dm_tensor_new_dtype(DM_DTYPE_F64, 1, &sw);

	for (int i = 0; i < 10; i++) {
		((float *)x->data)[2 * i] = (float)i;
		((float *)x->data)[2 * i + 1] = (float)(100 + i);
		((int64_t *)y->data)[i] = 1000 + i;
	}
	((double *)w->data)[2] = 0.5;
	CHECK_OK(dm_tensor_set_name(x, "x"));
	CHECK_OK(dm_tensor_set_name(y, "y"));
	CHECK_OK(dm_tensor_set_name(w, "gmm.weights"));
	CHECK_OK(dm_file_add(f, x));
	CHECK_OK(dm_file_add(f, y));
	CHECK_OK(dm_file_add(f, w));
	CHECK_OK(dm_file_meta_set(f, "dm.source", "hand"));
	return f;
}

DM_TEST(data_split_rows_consistent)
{
	struct dm_file *in = split_input(), *tr, *te;

	CHECK_OK(dm_data_split(in, 3, 0, 0, &tr, &te));
	if (tr && te) {
		struct dm_tensor *x = dm_file_get(te, "x");
		CHECK(x && x->shape[0] == 3 && ((float *)x->data)[0] == 7.0f);
		CHECK_EQ_INT(dm_file_get(tr, "x")->shape[0], 7);
		CHECK_EQ_INT(((int64_t *)dm_file_get(te, "y")->data)[2], 1009);
		CHECK(dm_file_get(tr, "gmm.weights") &&
		    ((double *)dm_file_get(te, "gmm.weights")->data)[2] == 0.5);
		CHECK_STR(dm_file_meta(te, "dm.source"), "hand");
	}
	dm_file_free(tr);
	dm_file_free(te);

	CHECK_OK(dm_data_split(in, 4, 1, 7, &tr, &te));
	int seen[10] = {0};
	struct dm_file *parts[2] = {tr, te};
	for (int p = 0; p < 2; p++) {
		struct dm_tensor *x = dm_file_get(parts[p], "x");
		struct dm_tensor *y = dm_file_get(parts[p], "y");
		for (int64_t i = 0; i < x->shape[0]; i++) {
			int r = (int)((float *)x->data)[2 * i];
			CHECK(((float *)x->data)[2 * i + 1] == 100 + r);
			CHECK(((int64_t *)y->data)[i] == 1000 + r);
			seen[r]++;
		}
	}
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(seen[i], 1);
	/* shuffled: not simply the last 4 rows (fixed seed, checked once) */
	float *tx = dm_file_get(te, "x")->data;
	CHECK(!(tx[0] == 6 && tx[2] == 7 && tx[4] == 8 && tx[6] == 9));
	dm_file_free(tr);
	dm_file_free(te);

	CHECK_FAILS(dm_data_split(in, 11, 0, 0, &tr, &te), "11 test rows");
	((float *)dm_file_get(in, "x")->data)[2 * 6 + 1] = NAN;
	CHECK_FAILS(dm_data_split(in, 3, 0, 0, &tr, &te), "x: row 6 has NaN");
	CHECK(tr == NULL && te == NULL);
	dm_file_free(in);
}
