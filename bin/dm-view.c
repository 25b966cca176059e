/* dm-view — tensors to PNG pictures: image grids, 2-D scatter and density
 * plots, trajectories, curves from TSV logs.  The manual is dm-view(1);
 * drawing and PNG output are in lib/plot.c and lib/image_write.c. */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum mode { MODE_NONE, MODE_GRID, MODE_SCATTER, MODE_DENSITY,
	MODE_TRAJECTORY, MODE_CURVE };

enum {
	OPT_BINS = DM_OPT_FIRST_TOOL,
	OPT_CURVE,
	OPT_DENSITY,
	OPT_DIMS,
	OPT_GRID,
	OPT_LABELS,
	OPT_LIM,
	OPT_LINEAR,
	OPT_LOGX,
	OPT_LOGY,
	OPT_NROW,
	OPT_PAD,
	OPT_PAD_VALUE,
	OPT_POINTS,
	OPT_RANGE,
	OPT_SCALE,
	OPT_SCATTER,
	OPT_SIZE,
	OPT_TRAJECTORY,
	OPT_X,
	OPT_Y
};

#define MAX_CURVES 8
#define MAX_ROWS 10000000
#define MAX_TSV (64u << 20)

struct opts {
	enum mode mode;
	const char *out, *tname, *xcol, *ycols;
	int64_t n;                 /* -n; 0 = mode default */
	int quiet, nrow, pad, pad_value, scale, bins, linear, labels;
	int logx, logy, points;
	int dims[2], width, height, have_lim;
	double lo, hi;             /* --range */
	double lim[4];             /* xmin, xmax, ymin, ymax */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-view --grid [--nrow K] [--pad P] [--pad-value V] "
	    "[--range LO:HI]\n"
	    "               [--scale S] [-hqV] [-n N] [-t NAME] -o OUT.png FILE\n"
	    "       dm-view --scatter [--dims I,J] [--labels] [--lim LIM] "
	    "[--size W[xH]]\n"
	    "               [-hqV] [-n N] [-t NAME] -o OUT.png FILE ...\n"
	    "       dm-view --density [--bins B] [--dims I,J] [--linear] "
	    "[--lim LIM]\n"
	    "               [--size W[xH]] [-hqV] [-n N] [-t NAME] "
	    "-o OUT.png FILE\n"
	    "       dm-view --trajectory [--dims I,J] [--lim LIM] "
	    "[--size W[xH]]\n"
	    "               [-hqV] [-n N] [-t NAME] -o OUT.png FILE\n"
	    "       dm-view --curve [--lim LIM] [--logx] [--logy] [--points] "
	    "[--size W[xH]]\n"
	    "               [--x COL] [--y COL[,COL...]] [-hqV] "
	    "-o OUT.png FILE.tsv\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

static void
bad_arg(const char *opt)
{
	warnx("%s: %s", opt, dm_errstr());
	usage_error();
}

/* "LO:HI" into two finite numbers with lo < hi. */
static int
parse_pair(const char *s, double *lo, double *hi)
{
	char buf[128];
	const char *colon = strchr(s, ':');
	size_t k;

	if (colon == NULL || (k = (size_t)(colon - s)) >= sizeof buf)
		return dm_seterr("'%s' is not LO:HI", s);
	memcpy(buf, s, k);
	buf[k] = '\0';
	if (dm_parse_double(buf, -1e30, 1e30, lo) == -1 ||
	    dm_parse_double(colon + 1, -1e30, 1e30, hi) == -1)
		return -1;
	if (!(*lo < *hi))
		return dm_seterr("'%s': LO must be less than HI", s);
	return 0;
}

/* "XMIN:XMAX,YMIN:YMAX", or "LO:HI" for both axes. */
static int
parse_lim(const char *s, double lim[4])
{
	char buf[256];
	const char *comma = strchr(s, ',');

	if (comma == NULL) {
		if (parse_pair(s, &lim[0], &lim[1]) == -1)
			return -1;
		lim[2] = lim[0];
		lim[3] = lim[1];
		return 0;
	}
	if ((size_t)(comma - s) >= sizeof buf)
		return dm_seterr("'%s' is too long", s);
	memcpy(buf, s, (size_t)(comma - s));
	buf[comma - s] = '\0';
	return parse_pair(buf, &lim[0], &lim[1]) == -1 ||
	    parse_pair(comma + 1, &lim[2], &lim[3]) == -1 ? -1 : 0;
}

/* "W" (square) or "WxH". */
static int
parse_size(const char *s, int *w, int *h)
{
	char buf[64];
	const char *x = strchr(s, 'x');

	if (x == NULL) {
		if (dm_parse_int(s, 128, 8192, w) == -1)
			return -1;
		*h = *w;
		return 0;
	}
	if ((size_t)(x - s) >= sizeof buf)
		return dm_seterr("'%s' is not W or WxH", s);
	memcpy(buf, s, (size_t)(x - s));
	buf[x - s] = '\0';
	return dm_parse_int(buf, 128, 8192, w) == -1 ||
	    dm_parse_int(x + 1, 128, 8192, h) == -1 ? -1 : 0;
}

static int
parse_dims(const char *s, int dims[2])
{
	char buf[64];
	const char *comma = strchr(s, ',');

	if (comma == NULL || (size_t)(comma - s) >= sizeof buf)
		return dm_seterr("'%s' is not I,J", s);
	memcpy(buf, s, (size_t)(comma - s));
	buf[comma - s] = '\0';
	return dm_parse_int(buf, 0, 1 << 30, &dims[0]) == -1 ||
	    dm_parse_int(comma + 1, 0, 1 << 30, &dims[1]) == -1 ? -1 : 0;
}

/* The F32 tensor of a file; exits with "dm-view: FILE: reason". */
static struct dm_tensor *
load(struct dm_file **f, const char *path, const char *name)
{
	struct dm_tensor *t;
	const float *x;
	size_t n;

	if (dm_file_read(f, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if ((t = dm_file_get_f32(*f, name)) == NULL)
		errx(1, "%s: %s", path, dm_errstr());
	x = t->data;
	n = dm_tensor_numel(t);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(x[i]))
			errx(1, "%s: tensor '%s' holds %s (element %zu)", path,
			    name, isnan(x[i]) ? "NaN" : "Inf", i);
	return t;
}

static void
shape_error(const char *path, const struct dm_tensor *t, const char *name,
    const char *want)
{
	char s[128];

	dm_shape_format(s, sizeof s, t->ndim, t->shape);
	errx(1, "%s: tensor '%s' has shape %s; %s", path, name, s, want);
}

static void
save(const struct dm_canvas *im, const char *out)
{
	if (dm_png_write(im, out) == -1)
		errx(1, "%s: %s", strcmp(out, "-") == 0 ? "stdout" : out,
		    dm_errstr());
}

static struct dm_canvas *
canvas(const struct opts *o)
{
	struct dm_canvas *im = dm_canvas_new(o->width, o->height, DM_WHITE);

	if (im == NULL)
		errx(1, "%s", dm_errstr());
	return im;
}

static void
plot_setup(struct dm_plot *p, struct dm_canvas *im, const double lim[4],
    int flags, const char *path)
{
	if (dm_plot_init(p, im, lim[0], lim[1], lim[2], lim[3], flags) == -1)
		errx(1, "%s: %s", path, dm_errstr());
}

static void
view_grid(const struct opts *o, const char *path)
{
	struct dm_file *f;
	struct dm_tensor *t = load(&f, path, o->tname);
	struct dm_grid g;
	int64_t c = 1, h, w, nsamp, nshow, steps = 1;
	int per_row;

	switch (t->ndim) {
	case 3:
		h = t->shape[1], w = t->shape[2];
		break;
	case 4:
	case 5:
		c = t->shape[t->ndim - 3];
		h = t->shape[t->ndim - 2];
		w = t->shape[t->ndim - 1];
		if (c == 1 || c == 3 || c == 4)
			break;
		/* FALLTHROUGH */
	default:
		shape_error(path, t, o->tname, "--grid wants N x C x H x W "
		    "(C = 1, 3 or 4), N x H x W, or a trajectory "
		    "K+1 x N x C x H x W");
		return;
	}
	if (t->ndim == 5) {
		/* a trajectory: one row per time, samples across */
		steps = t->shape[0];
		nsamp = t->shape[1];
		nshow = o->n ? o->n : 8;
		if (nshow > nsamp)
			nshow = nsamp;
		per_row = (int)(nshow > 0 ? nshow : 1);
	} else {
		nsamp = t->shape[0];
		nshow = o->n ? o->n : 64;
		if (nshow > nsamp)
			nshow = nsamp;
		per_row = o->nrow;
	}
	if (nshow < 1 || h < 1 || w < 1)
		errx(1, "%s: tensor '%s' holds no pictures", path, o->tname);
	int scale = o->scale;
	if (scale == 0) {
		int64_t side = h > w ? h : w;
		scale = side >= 64 ? 1 : (int)(64 / side);
	}
	if (dm_grid_layout(&g, steps * nshow, per_row, h, w, scale, o->pad) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	struct dm_canvas *im = dm_canvas_new(g.w, g.h,
	    DM_RGB(o->pad_value, o->pad_value, o->pad_value));
	if (im == NULL)
		errx(1, "%s", dm_errstr());
	size_t pic = (size_t)(c * h * w);
	for (int64_t k = 0; k < steps; k++)
		for (int64_t i = 0; i < nshow; i++)
			dm_grid_put(im, &g, (int)(k * nshow + i),
			    (const float *)t->data + (size_t)(k * nsamp + i) * pic,
			    (int)c, (int)h, (int)w, o->lo, o->hi);
	save(im, o->out);
	dm_canvas_free(im);
	dm_file_free(f);
}

/* x [N, d] (scatter, density) or [K+1, N, d] (trajectory): checks the
 * shape and the dims; *d is the row length. */
static void
check_points(const struct opts *o, const char *path, const struct dm_tensor *t,
    int ndim, int64_t *d)
{
	const char *want = ndim == 2 ? "points must be N x d (d >= 2)" :
	    "a trajectory must be K+1 x N x d (d >= 2)";

	if (t->ndim != ndim || t->shape[ndim - 1] < 2)
		shape_error(path, t, o->tname, want);
	*d = t->shape[ndim - 1];
	if (o->dims[0] >= *d || o->dims[1] >= *d)
		errx(1, "%s: --dims %d,%d: tensor '%s' has %lld dimensions", path,
		    o->dims[0], o->dims[1], o->tname, (long long)*d);
}

static void
axis_names(const struct opts *o, char *xl, char *yl, size_t n)
{
	snprintf(xl, n, "%s[%d]", o->tname, o->dims[0]);
	snprintf(yl, n, "%s[%d]", o->tname, o->dims[1]);
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s != NULL && s[1] != '\0' ? s + 1 : path;
}

static void
view_scatter(const struct opts *o, char **paths, int npaths)
{
	struct dm_canvas *im = canvas(o);
	struct dm_plot p;
	char xl[64], yl[64];
	const char *names[MAX_CURVES + 2];
	uint32_t colors[MAX_CURVES + 2];
	int seen[MAX_CURVES] = {0}, nleg = 0;
	size_t total = 0, outside = 0;

	plot_setup(&p, im, o->lim, 0, paths[0]);
	axis_names(o, xl, yl, sizeof xl);
	dm_plot_axes(&p, xl, yl);
	for (int k = 0; k < npaths; k++) {
		struct dm_file *f;
		struct dm_tensor *t = load(&f, paths[k], o->tname), *y = NULL;
		int64_t d, n;
		check_points(o, paths[k], t, 2, &d);
		n = t->shape[0];
		if (o->n && o->n < n)
			n = o->n;
		if (o->labels) {
			if ((y = dm_file_get(f, "y")) == NULL)
				errx(1, "%s: --labels: no tensor 'y'", paths[k]);
			if (y->ndim != 1 || y->shape[0] != t->shape[0])
				shape_error(paths[k], y, "y", "labels must be [N] "
				    "with N as in x");
		}
		/* dense scatters: more transparent points, so that density
		 * shows (opacity 0.8 up to 2000 points, then 1600/N, >= 0.1) */
		double alpha = n <= 2000 ? 0.8 : fmax(0.1, 1600.0 / (double)n);
		const float *x = t->data;
		for (int64_t i = 0; i < n; i++) {
			double px = x[i * d + o->dims[0]], py = x[i * d + o->dims[1]];
			uint32_t c = dm_palette(k);
			if (y != NULL) {
				double v = dm_tensor_get(y, (size_t)i);
				int cls = isfinite(v) && v >= 0 && v < 1e9 ?
				    (int)v : 0;
				c = dm_palette(cls);
				if (cls < MAX_CURVES)
					seen[cls] = 1;
			}
			if (px < o->lim[0] || px > o->lim[1] || py < o->lim[2] ||
			    py > o->lim[3])
				outside++;
			dm_draw_disc(im, dm_plot_px(&p, px), dm_plot_py(&p, py),
			    2.0, c, alpha);
		}
		total += (size_t)n;
		if (y == NULL && npaths > 1 && nleg < MAX_CURVES) {
			names[nleg] = base_name(paths[k]);
			colors[nleg++] = dm_palette(k);
		}
		dm_file_free(f);
	}
	static const char *cls_names[MAX_CURVES] = {
		"class 0", "class 1", "class 2", "class 3", "class 4", "class 5",
		"class 6", "class 7"
	};
	if (o->labels) {
		nleg = 0;
		for (int i = 0; i < MAX_CURVES; i++)
			if (seen[i]) {
				names[nleg] = cls_names[i];
				colors[nleg++] = dm_palette(i);
			}
	}
	dm_canvas_unclip(im);
	dm_plot_legend(&p, names, colors, nleg);
	if (outside && !o->quiet)
		warnx("%zu of %zu points outside the limits (see --lim)",
		    outside, total);
	save(im, o->out);
	dm_canvas_free(im);
}

static void
view_density(const struct opts *o, const char *path)
{
	struct dm_file *f;
	struct dm_tensor *t = load(&f, path, o->tname);
	struct dm_canvas *im = canvas(o);
	struct dm_plot p;
	char xl[64], yl[64], leg[64];
	int64_t d, n, *count, max = 0;
	int B = o->bins;
	double bw = (o->lim[1] - o->lim[0]) / B, bh = (o->lim[3] - o->lim[2]) / B;

	check_points(o, path, t, 2, &d);
	n = t->shape[0];
	if (o->n && o->n < n)
		n = o->n;
	if ((count = calloc((size_t)B * (size_t)B, sizeof *count)) == NULL)
		err(1, NULL);
	const float *x = t->data;
	for (int64_t i = 0; i < n; i++) {
		double u = (x[i * d + o->dims[0]] - o->lim[0]) / bw;
		double v = (x[i * d + o->dims[1]] - o->lim[2]) / bh;
		if (!(u >= 0 && u <= B && v >= 0 && v <= B))
			continue;
		int a = u >= B ? B - 1 : (int)u, b = v >= B ? B - 1 : (int)v;
		if (++count[(size_t)b * B + a] > max)
			max = count[(size_t)b * B + a];
	}
	plot_setup(&p, im, o->lim, 0, path);
	axis_names(o, xl, yl, sizeof xl);
	dm_plot_axes(&p, xl, yl);
	for (int b = 0; b < B; b++)
		for (int a = 0; a < B; a++) {
			int64_t c = count[(size_t)b * B + a];
			if (c == 0)
				continue;
			double s = o->linear ? (double)c / max :
			    log1p((double)c) / log1p((double)max);
			int xa = (int)floor(dm_plot_px(&p, o->lim[0] + a * bw) + 0.5);
			int xb = a == B - 1 ? p.x1 + 1 :
			    (int)floor(dm_plot_px(&p, o->lim[0] + (a + 1) * bw) + 0.5);
			int ya = (int)floor(dm_plot_py(&p, o->lim[2] + (b + 1) * bh) + 0.5);
			int yb = b == 0 ? p.y1 + 1 :
			    (int)floor(dm_plot_py(&p, o->lim[2] + b * bh) + 0.5);
			if (b == B - 1)
				ya = p.y0;
			if (a == 0)
				xa = p.x0;
			dm_draw_fill(im, xa, ya, xb - xa, yb - ya, dm_colormap(s));
		}
	snprintf(leg, sizeof leg, "max %lld", (long long)max);
	const char *names[1] = {leg};
	uint32_t colors[1] = {dm_colormap(1)};
	dm_canvas_unclip(im);
	dm_plot_legend(&p, names, colors, 1);
	save(im, o->out);
	free(count);
	dm_canvas_free(im);
	dm_file_free(f);
}

static void
view_trajectory(const struct opts *o, const char *path)
{
	struct dm_file *f;
	struct dm_tensor *t = load(&f, path, o->tname), *tt;
	struct dm_canvas *im = canvas(o);
	struct dm_plot p;
	char xl[64], yl[64];
	int64_t d, K1, n, first, last, dir;

	check_points(o, path, t, 3, &d);
	K1 = t->shape[0];
	n = t->shape[1];
	if (K1 < 1 || n < 1)
		errx(1, "%s: tensor '%s' holds no paths", path, o->tname);
	if (n > (o->n ? o->n : 64))
		n = o->n ? o->n : 64;
	/* walk from t = 1 to t = 0: reversed when t is stored increasing */
	first = 0, last = K1 - 1, dir = 1;
	if ((tt = dm_file_get(f, "t")) != NULL) {
		if (tt->ndim != 1 || tt->shape[0] != K1)
			shape_error(path, tt, "t", "times must be [K+1] with K+1 "
			    "as in x");
		if (K1 > 1 && dm_tensor_get(tt, 0) < dm_tensor_get(tt,
		    (size_t)K1 - 1))
			first = K1 - 1, last = 0, dir = -1;
	}
	plot_setup(&p, im, o->lim, 0, path);
	axis_names(o, xl, yl, sizeof xl);
	dm_plot_axes(&p, xl, yl);
	const float *x = t->data;
	size_t stride = (size_t)(t->shape[1] * d);
#define PT(k, i, j) ((double)x[(size_t)(k) * stride + (size_t)(i) * d + o->dims[j]])
	for (int64_t i = 0; i < n; i++) {
		uint32_t c = dm_palette((int)(i % 6));
		for (int64_t k = first; k != last; k += dir)
			dm_draw_line(im, dm_plot_px(&p, PT(k, i, 0)),
			    dm_plot_py(&p, PT(k, i, 1)),
			    dm_plot_px(&p, PT(k + dir, i, 0)),
			    dm_plot_py(&p, PT(k + dir, i, 1)), c, 0.7);
	}
	for (int64_t i = 0; i < n; i++) {
		dm_draw_disc(im, dm_plot_px(&p, PT(first, i, 0)),
		    dm_plot_py(&p, PT(first, i, 1)), 2.0, DM_RGB(150, 150, 150), 1);
		dm_draw_disc(im, dm_plot_px(&p, PT(last, i, 0)),
		    dm_plot_py(&p, PT(last, i, 1)), 2.0, DM_BLACK, 1);
	}
#undef PT
	const char *names[2] = {"start t=1", "end t=0"};
	uint32_t colors[2] = {DM_RGB(150, 150, 150), DM_BLACK};
	dm_canvas_unclip(im);
	dm_plot_legend(&p, names, colors, 2);
	save(im, o->out);
	dm_canvas_free(im);
	dm_file_free(f);
}

/* A TSV table: a header of column names, then rows of numbers, NAN
 * where a value is missing. */
struct table {
	int ncol;
	char **names;
	size_t nrow;
	double *v;                 /* nrow x ncol */
	char *text;
};

static char *
read_all(const char *path, size_t *len)
{
	FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (fp == NULL)
		errx(1, "%s: %s", path, strerror(errno));
	for (;;) {
		if (n + 65536 + 1 > cap) {
			if (cap >= MAX_TSV)
				errx(1, "%s: larger than %u MiB", path, MAX_TSV >> 20);
			cap = cap ? 2 * cap : 65536 * 2;
			if ((buf = realloc(buf, cap)) == NULL)
				err(1, NULL);
		}
		size_t k = fread(buf + n, 1, 65536, fp);
		n += k;
		if (k < 65536)
			break;
	}
	if (ferror(fp))
		errx(1, "%s: read error", path);
	if (fp != stdin)
		fclose(fp);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL)
		errx(1, "%s: not a text file", path);
	*len = n;
	return buf;
}

#define BLANKS " \t\r"

/* s without the blanks around it (cut in place). */
static char *
trim(char *s)
{
	size_t n;

	s += strspn(s, BLANKS);
	for (n = strlen(s); n > 0 && strchr(BLANKS, s[n - 1]) != NULL; n--)
		s[n - 1] = '\0';
	return s;
}

/* Split a line in place into fields, trimmed of blanks: at every tab
 * when the line has one, so that a field may be empty ("1\t\t3" has
 * three), else at runs of spaces.  Returns the field count, or cap + 1
 * when there are more. */
static int
split(char *s, char **field, int cap)
{
	int n = 0, tabs = strchr(s, '\t') != NULL;
	const char *sep = tabs ? "\t" : " \r";

	for (;;) {
		if (!tabs)
			s += strspn(s, sep);
		if (!tabs && *s == '\0')
			return n;
		if (n == cap)
			return cap + 1;
		char *end = s + strcspn(s, sep), c = *end;
		*end = '\0';
		field[n++] = trim(s);
		if (c == '\0')
			return n;
		s = end + 1;
	}
}

/* A field of a table: a finite number, or NAN for a missing value ("-",
 * empty, or NaN spelt as strtod reads it: nan, NaN, -nan...).  -1 if it
 * is not a number, -2 if it is infinite. */
static int
parse_field(const char *s, double *v)
{
	char *end;

	*v = NAN;
	if (*s == '\0' || strcmp(s, "-") == 0)
		return 0;
	double x = strtod(s, &end);
	if (end == s || *end != '\0')
		return -1;
	if (isinf(x))
		return -2;
	if (!isnan(x))
		*v = x;
	return 0;
}

#define MAX_COLS 64

/* The header line into tb->names. */
static void
table_header(struct table *tb, const char *path, size_t lineno,
    char **field, int nf)
{
	for (int j = 0; j < nf; j++)
		if (*field[j] == '\0')
			errx(1, "%s: line %zu: column %d has no name", path,
			    lineno, j + 1);
	if ((tb->names = calloc((size_t)nf, sizeof *tb->names)) == NULL)
		err(1, NULL);
	memcpy(tb->names, field, (size_t)nf * sizeof *field);
	tb->ncol = nf;
}

static void
table_read(struct table *tb, const char *path)
{
	char *field[MAX_COLS], *line, *next;
	size_t len, lineno = 0, cap = 0;

	memset(tb, 0, sizeof *tb);
	tb->text = read_all(path, &len);
	for (line = tb->text; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		if (*line == '#' || line[strspn(line, BLANKS)] == '\0')
			continue;
		int nf = split(line, field, MAX_COLS);
		if (nf > MAX_COLS)
			errx(1, "%s: line %zu: more than %d columns", path,
			    lineno, MAX_COLS);
		if (tb->names == NULL) {
			table_header(tb, path, lineno, field, nf);
			continue;
		}
		if (nf != tb->ncol)
			errx(1, "%s: line %zu: %d fields, the header has %d", path,
			    lineno, nf, tb->ncol);
		if (tb->nrow == MAX_ROWS)
			errx(1, "%s: more than %d rows", path, MAX_ROWS);
		if (tb->nrow == cap) {
			cap = cap ? 2 * cap : 256;
			tb->v = realloc(tb->v, cap * (size_t)tb->ncol * sizeof *tb->v);
			if (tb->v == NULL)
				err(1, NULL);
		}
		for (int j = 0; j < nf; j++) {
			int rc = parse_field(field[j],
			    &tb->v[tb->nrow * (size_t)tb->ncol + (size_t)j]);
			if (rc == -1)
				errx(1, "%s: line %zu: column %s: '%s' is not a "
				    "number", path, lineno, tb->names[j], field[j]);
			if (rc == -2)
				errx(1, "%s: line %zu: column %s: '%s' is not "
				    "finite", path, lineno, tb->names[j], field[j]);
		}
		tb->nrow++;
	}
	if (tb->names == NULL)
		errx(1, "%s: no header line", path);
	if (tb->nrow == 0)
		errx(1, "%s: no rows", path);
}

static int
table_col(const struct table *tb, const char *path, const char *name)
{
	for (int j = 0; j < tb->ncol; j++)
		if (strcmp(tb->names[j], name) == 0)
			return j;
	errx(1, "%s: no column '%s'", path, name);
}

static int
table_has_values(const struct table *tb, int col)
{
	for (size_t r = 0; r < tb->nrow; r++)
		if (!isnan(tb->v[r * (size_t)tb->ncol + (size_t)col]))
			return 1;
	return 0;
}

/* Limits lo..hi widened to whole tick steps (a flat range is opened). */
static void
autoscale(double *lo, double *hi)
{
	double t[32], step;

	if (*hi - *lo <= 1e-12 * fmax(fabs(*lo), fabs(*hi))) {
		double w = *lo != 0 ? fabs(*lo) * 0.1 : 1;
		*lo -= w;
		*hi += w;
	}
	if (dm_ticks(*lo, *hi, 6, t, 32, &step) == -1)
		return;
	*lo = floor(*lo / step + 1e-9) * step;
	*hi = ceil(*hi / step - 1e-9) * step;
}

/* Limits of a logarithmic axis (log10 values): whole decades when the
 * data span one or more, else a small margin. */
static void
autoscale_log(double *lo, double *hi)
{
	if (*hi - *lo >= 1) {
		*lo = floor(*lo);
		*hi = ceil(*hi);
	} else {
		double m = fmax(0.05 * (*hi - *lo), 0.02);
		*lo -= m;
		*hi += m;
	}
}

/* The columns of a --curve plot: x, and the y columns drawn. */
struct curves {
	int xc, yc[MAX_CURVES], ny;
	size_t npoint[MAX_CURVES];    /* rows where x and y are both present */
};

static void
curve_columns(const struct opts *o, const struct table *tb, const char *path,
    struct curves *cv)
{
	cv->xc = table_col(tb, path, o->xcol ? o->xcol : tb->names[0]);
	cv->ny = 0;
	if (o->ycols != NULL) {
		char buf[1024], *s, *save = NULL;
		snprintf(buf, sizeof buf, "%s", o->ycols);
		for (s = strtok_r(buf, ",", &save); s != NULL;
		    s = strtok_r(NULL, ",", &save)) {
			if (cv->ny == MAX_CURVES)
				errx(2, "--y: at most %d columns", MAX_CURVES);
			cv->yc[cv->ny++] = table_col(tb, path, s);
		}
	} else
		for (int j = 0; j < tb->ncol && cv->ny < MAX_CURVES; j++)
			if (j != cv->xc)
				cv->yc[cv->ny++] = j;
	if (cv->ny == 0)
		errx(1, "%s: no column to plot against %s", path,
		    tb->names[cv->xc]);
}

/* Point (x, y) of curve k in row r, in axis units (log10 on a log
 * axis); 0 if x or y is missing there. */
static int
curve_point(const struct opts *o, const struct table *tb,
    const struct curves *cv, int k, size_t r, double *x, double *y)
{
	const double *row = tb->v + r * (size_t)tb->ncol;

	*x = row[cv->xc];
	*y = row[cv->yc[k]];
	if (isnan(*x) || isnan(*y))
		return 0;
	*x = o->logx ? log10(*x) : *x;
	*y = o->logy ? log10(*y) : *y;
	return 1;
}

/* Counts the points of each curve, checks them for log axes, and finds
 * the limits (data[4] in axis units: xmin, xmax, ymin, ymax). */
static void
curve_data(const struct opts *o, const struct table *tb, const char *path,
    struct curves *cv, double data[4])
{
	data[0] = data[2] = INFINITY;
	data[1] = data[3] = -INFINITY;
	for (int k = 0; k < cv->ny; k++) {
		cv->npoint[k] = 0;
		for (size_t r = 0; r < tb->nrow; r++) {
			const double *row = tb->v + r * (size_t)tb->ncol;
			double x, y;
			if (!curve_point(o, tb, cv, k, r, &x, &y))
				continue;
			if (o->logx && !(row[cv->xc] > 0))
				errx(1, "%s: row %zu: column %s: %g is not positive "
				    "(--logx)", path, r + 1, tb->names[cv->xc],
				    row[cv->xc]);
			if (o->logy && !(row[cv->yc[k]] > 0))
				errx(1, "%s: row %zu: column %s: %g is not positive "
				    "(--logy)", path, r + 1, tb->names[cv->yc[k]],
				    row[cv->yc[k]]);
			cv->npoint[k]++;
			data[0] = fmin(data[0], x);
			data[1] = fmax(data[1], x);
			data[2] = fmin(data[2], y);
			data[3] = fmax(data[3], y);
		}
		if (cv->npoint[k] > 0)
			continue;
		int col = table_has_values(tb, cv->xc) ? cv->yc[k] : cv->xc;
		if (!table_has_values(tb, col))
			errx(1, "%s: column %s has no values", path,
			    tb->names[col]);
		errx(1, "%s: column %s has no values on rows where %s has one",
		    path, tb->names[cv->yc[k]], tb->names[cv->xc]);
	}
}

/* Curve k: a line through its points in the order of the rows, across
 * the rows where it is missing; with markers, a square at each point. */
static void
curve_draw(const struct opts *o, const struct table *tb,
    const struct curves *cv, int k, struct dm_plot *p, int markers)
{
	uint32_t c = dm_palette(k);
	double px = 0, py = 0, x, y;
	int first = 1;

	for (size_t r = 0; r < tb->nrow; r++) {
		if (!curve_point(o, tb, cv, k, r, &x, &y))
			continue;
		x = dm_plot_px(p, x);
		y = dm_plot_py(p, y);
		if (markers)
			dm_draw_square(p->im, x, y, 2, c);
		else if (!first)
			dm_draw_line(p->im, px, py, x, y, c, 1);
		px = x, py = y, first = 0;
	}
}

static void
view_curve(const struct opts *o, const char *path)
{
	struct table tb;
	struct curves cv;
	double lim[4];

	table_read(&tb, path);
	curve_columns(o, &tb, path, &cv);
	curve_data(o, &tb, path, &cv, lim);
	if (o->have_lim) {
		memcpy(lim, o->lim, sizeof lim);
		for (int i = 0; i < 4; i++)
			if (i < 2 ? o->logx : o->logy)
				lim[i] = log10(lim[i]);
	} else {
		(o->logx ? autoscale_log : autoscale)(&lim[0], &lim[1]);
		(o->logy ? autoscale_log : autoscale)(&lim[2], &lim[3]);
	}
	struct dm_canvas *im = canvas(o);
	struct dm_plot p;
	const char *names[MAX_CURVES];
	uint32_t colors[MAX_CURVES];
	plot_setup(&p, im, lim, (o->logx ? DM_PLOT_LOGX : 0) |
	    (o->logy ? DM_PLOT_LOGY : 0), path);
	dm_plot_axes(&p, tb.names[cv.xc],
	    cv.ny == 1 ? tb.names[cv.yc[0]] : NULL);
	for (int k = 0; k < cv.ny; k++)
		curve_draw(o, &tb, &cv, k, &p, 0);
	/* markers over all the lines; a lone point always gets one */
	for (int k = 0; k < cv.ny; k++)
		if (o->points || cv.npoint[k] == 1)
			curve_draw(o, &tb, &cv, k, &p, 1);
	dm_canvas_unclip(im);
	for (int k = 0; k < cv.ny; k++) {
		names[k] = tb.names[cv.yc[k]];
		colors[k] = dm_palette(k);
	}
	if (cv.ny > 1)
		dm_plot_legend(&p, names, colors, cv.ny);
	save(im, o->out);
	dm_canvas_free(im);
	free(tb.v);
	free(tb.names);
	free(tb.text);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"bins", required_argument, NULL, OPT_BINS},
		{"curve", no_argument, NULL, OPT_CURVE},
		{"density", no_argument, NULL, OPT_DENSITY},
		{"dims", required_argument, NULL, OPT_DIMS},
		{"grid", no_argument, NULL, OPT_GRID},
		{"help", no_argument, NULL, 'h'},
		{"labels", no_argument, NULL, OPT_LABELS},
		{"lim", required_argument, NULL, OPT_LIM},
		{"linear", no_argument, NULL, OPT_LINEAR},
		{"logx", no_argument, NULL, OPT_LOGX},
		{"logy", no_argument, NULL, OPT_LOGY},
		{"nrow", required_argument, NULL, OPT_NROW},
		{"output", required_argument, NULL, 'o'},
		{"pad", required_argument, NULL, OPT_PAD},
		{"pad-value", required_argument, NULL, OPT_PAD_VALUE},
		{"points", no_argument, NULL, OPT_POINTS},
		{"quiet", no_argument, NULL, 'q'},
		{"range", required_argument, NULL, OPT_RANGE},
		{"samples", required_argument, NULL, 'n'},
		{"scale", required_argument, NULL, OPT_SCALE},
		{"scatter", no_argument, NULL, OPT_SCATTER},
		{"size", required_argument, NULL, OPT_SIZE},
		{"tensor", required_argument, NULL, 't'},
		{"trajectory", no_argument, NULL, OPT_TRAJECTORY},
		{"version", no_argument, NULL, 'V'},
		{"x", required_argument, NULL, OPT_X},
		{"y", required_argument, NULL, OPT_Y},
		{NULL, 0, NULL, 0}
	};
	struct opts o = {
		.mode = MODE_NONE, .tname = "x", .nrow = 8, .pad = 2,
		.pad_value = 255, .bins = 64, .dims = {0, 1}, .lo = -1, .hi = 1,
		.lim = {-4, 4, -4, 4}
	};
	int ch, size_set = 0;

	while ((ch = getopt_long(argc, argv, "hn:o:qt:V", longopts, NULL)) != -1) {
		enum mode m = MODE_NONE;
		switch (ch) {
		case 'h':
			usage(stdout);
			return 0;
		case 'n':
			if (dm_parse_int64(optarg, 1, INT64_C(1) << 40, &o.n) == -1)
				bad_arg("-n");
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 't':
			o.tname = optarg;
			break;
		case 'V':
			printf("dm-view (dm toolkit) %s\n", DM_VERSION);
			return 0;
		case OPT_BINS:
			if (dm_parse_int(optarg, 2, 1024, &o.bins) == -1)
				bad_arg("--bins");
			break;
		case OPT_CURVE: m = MODE_CURVE; break;
		case OPT_DENSITY: m = MODE_DENSITY; break;
		case OPT_GRID: m = MODE_GRID; break;
		case OPT_SCATTER: m = MODE_SCATTER; break;
		case OPT_TRAJECTORY: m = MODE_TRAJECTORY; break;
		case OPT_DIMS:
			if (parse_dims(optarg, o.dims) == -1)
				bad_arg("--dims");
			break;
		case OPT_LABELS:
			o.labels = 1;
			break;
		case OPT_LIM:
			if (parse_lim(optarg, o.lim) == -1)
				bad_arg("--lim");
			o.have_lim = 1;
			break;
		case OPT_LINEAR:
			o.linear = 1;
			break;
		case OPT_LOGX:
			o.logx = 1;
			break;
		case OPT_LOGY:
			o.logy = 1;
			break;
		case OPT_NROW:
			if (dm_parse_int(optarg, 1, 65535, &o.nrow) == -1)
				bad_arg("--nrow");
			break;
		case OPT_PAD:
			if (dm_parse_int(optarg, 0, 1024, &o.pad) == -1)
				bad_arg("--pad");
			break;
		case OPT_PAD_VALUE:
			if (dm_parse_int(optarg, 0, 255, &o.pad_value) == -1)
				bad_arg("--pad-value");
			break;
		case OPT_POINTS:
			o.points = 1;
			break;
		case OPT_RANGE:
			if (parse_pair(optarg, &o.lo, &o.hi) == -1)
				bad_arg("--range");
			break;
		case OPT_SCALE:
			if (dm_parse_int(optarg, 1, 256, &o.scale) == -1)
				bad_arg("--scale");
			break;
		case OPT_SIZE:
			if (parse_size(optarg, &o.width, &o.height) == -1)
				bad_arg("--size");
			size_set = 1;
			break;
		case OPT_X:
			o.xcol = optarg;
			break;
		case OPT_Y:
			o.ycols = optarg;
			break;
		default:
			usage_error();
		}
		if (m != MODE_NONE) {
			if (o.mode != MODE_NONE && o.mode != m) {
				warnx("choose one of --grid, --scatter, --density, "
				    "--trajectory, --curve");
				usage_error();
			}
			o.mode = m;
		}
	}
	argc -= optind;
	argv += optind;
	if (o.mode == MODE_NONE) {
		warnx("choose one of --grid, --scatter, --density, "
		    "--trajectory, --curve");
		usage_error();
	}
	if (argc < 1 || (argc > 1 && o.mode != MODE_SCATTER))
		usage_error();
	if (o.out == NULL) {
		warnx("-o OUT.png is required (-o - for standard output)");
		usage_error();
	}
	if (o.mode == MODE_CURVE && o.have_lim && o.logx && !(o.lim[0] > 0))
		errx(2, "--lim: x limits must be positive with --logx");
	if (o.mode == MODE_CURVE && o.have_lim && o.logy && !(o.lim[2] > 0))
		errx(2, "--lim: y limits must be positive with --logy");
	if (dm_check_binary_output(o.out) == -1)
		errx(1, "%s", dm_errstr());
	if (!size_set) {
		o.width = o.mode == MODE_CURVE ? 640 : 480;
		o.height = o.mode == MODE_CURVE ? 400 : 480;
	}
	switch (o.mode) {
	case MODE_GRID: view_grid(&o, argv[0]); break;
	case MODE_SCATTER: view_scatter(&o, argv, argc); break;
	case MODE_DENSITY: view_density(&o, argv[0]); break;
	case MODE_TRAJECTORY: view_trajectory(&o, argv[0]); break;
	case MODE_CURVE: view_curve(&o, argv[0]); break;
	default: break;
	}
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
