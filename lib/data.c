/* data.c — the 2-D toy generators and the Gaussian prior, the IDX reader,
 * finiteness checks and train/test splits.  The definitions follow
 * scikit-learn (make_moons, make_circles, make_swiss_roll) and the toy
 * sets of FFJORD (Grathwohl et al. 2019); dm-data(1) states each one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dm_base.h"
#include "dm_data.h"
#include "dm_rng.h"

_Static_assert(sizeof(float) == 4, "float is IEEE single");

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define SQRT2 1.41421356237309504880

enum set {
	SET_MOONS, SET_CIRCLES, SET_8GAUSS, SET_25GAUSS, SET_CHECKER,
	SET_SWISSROLL, SET_2SPIRALS, SET_PINWHEEL, SET_RINGS, SET_GAUSS,
	SET_COUNT
};

/* name, default noise, default classes (0: fixed), has labels, takes noise */
static const struct {
	const char *name;
	double noise;
	int classes;
	int labels;
} sets[SET_COUNT] = {
	[SET_MOONS] = {"moons", 0.05, 0, 1},
	[SET_CIRCLES] = {"circles", 0.05, 0, 1},
	[SET_8GAUSS] = {"8gaussians", 0.5 / SQRT2, 0, 1},
	[SET_25GAUSS] = {"25gaussians", 0.05 / (2 * SQRT2), 0, 1},
	[SET_CHECKER] = {"checkerboard", 0, 0, 1},
	[SET_SWISSROLL] = {"swissroll", 0.2, 0, 0},
	[SET_2SPIRALS] = {"2spirals", 0.1, 0, 1},
	[SET_PINWHEEL] = {"pinwheel", 0.1, 5, 1},
	[SET_RINGS] = {"rings", 0.08, 4, 1},
	[SET_GAUSS] = {"gauss", 0, 0, 0},
};

#define MAX_CLASSES 1000

static int
set_index(const char *name)
{
	for (int i = 0; i < SET_COUNT; i++)
		if (strcmp(name, sets[i].name) == 0)
			return i;
	return -1;
}

void
dm_data_opts_init(struct dm_data_opts *o)
{
	memset(o, 0, sizeof *o);
	o->noise = NAN;
	o->factor = NAN;
}

int
dm_data_known(const char *name)
{
	return set_index(name) >= 0;
}

int
dm_data_has_labels(const char *name)
{
	int s = set_index(name);

	return s >= 0 && sets[s].labels;
}

int
dm_data_check(const char *name, const struct dm_data_opts *o)
{
	int s = set_index(name);

	if (s < 0)
		return dm_seterr("unknown data set '%s'", name);
	if (!isnan(o->noise)) {
		if (s == SET_GAUSS)
			return dm_seterr("--noise does not apply to gauss");
		if (!(o->noise >= 0 && o->noise <= 100))
			return dm_seterr("noise must be in [0, 100]");
	}
	if (!isnan(o->factor)) {
		if (s != SET_CIRCLES)
			return dm_seterr("--factor applies only to circles");
		if (!(o->factor > 0 && o->factor < 1))
			return dm_seterr("factor must be in (0, 1)");
	}
	if (o->classes != 0) {
		if (sets[s].classes == 0)
			return dm_seterr("--classes does not apply to %s",
			    name);
		if (o->classes < 1 || o->classes > MAX_CLASSES)
			return dm_seterr("classes must be in 1..%d",
			    MAX_CLASSES);
	}
	if (o->ndim != 0) {
		if (s != SET_GAUSS)
			return dm_seterr("--dim and --shape apply only to gauss");
		if (o->ndim != 1 && o->ndim != 3)
			return dm_seterr("gauss: a shape of 1 or 3 dimensions");
		int64_t per = 1;
		for (int k = 0; k < o->ndim; k++) {
			if (o->shape[k] < 1 || o->shape[k] > (1 << 24))
				return dm_seterr("gauss: dimension %lld out of "
				    "range", (long long)o->shape[k]);
			per *= o->shape[k];
			if (per > (INT64_C(1) << 31))
				return dm_seterr("gauss: sample too large");
		}
	}
	return 0;
}

size_t
dm_data_dim(const char *name, const struct dm_data_opts *o)
{
	size_t d = 1;

	if (set_index(name) != SET_GAUSS || o->ndim == 0)
		return 2;
	for (int k = 0; k < o->ndim; k++)
		d *= (size_t)o->shape[k];
	return d;
}

static double
noise_of(int s, const struct dm_data_opts *o)
{
	return isnan(o->noise) ? sets[s].noise : o->noise;
}

static int
classes_of(int s, const struct dm_data_opts *o)
{
	return o->classes ? o->classes : sets[s].classes;
}

int
dm_data_source(const char *name, const struct dm_data_opts *o, char *buf,
    size_t len)
{
	int s = set_index(name), n;

	if (s < 0)
		return dm_seterr("unknown data set '%s'", name);
	if (s == SET_GAUSS) {
		if (o->ndim == 3)
			n = snprintf(buf, len, "gauss:shape=%lld,%lld,%lld",
			    (long long)o->shape[0], (long long)o->shape[1],
			    (long long)o->shape[2]);
		else
			n = snprintf(buf, len, "gauss:dim=%zu",
			    dm_data_dim(name, o));
	} else if (s == SET_CIRCLES)
		n = snprintf(buf, len, "circles:factor=%.6g,noise=%.6g",
		    isnan(o->factor) ? 0.5 : o->factor, noise_of(s, o));
	else if (sets[s].classes)
		n = snprintf(buf, len, "%s:%s=%d,noise=%.6g", name,
		    s == SET_PINWHEEL ? "arms" : "classes", classes_of(s, o),
		    noise_of(s, o));
	else
		n = snprintf(buf, len, "%s:noise=%.6g", name, noise_of(s, o));
	if (n < 0 || (size_t)n >= len)
		return dm_seterr("source text too long");
	return 0;
}

/* One 2-D point of set s from the sample's own generator r; returns the
 * label (-1 for none).  Every draw is taken in a fixed order. */
static int64_t
toy_point(int s, double noise, int K, double factor, struct dm_rng *r,
    double *p)
{
	double u, t, a, b;
	int64_t c = -1;

	switch (s) {
	case SET_MOONS:		/* sklearn make_moons, angle uniform */
		c = (int64_t)dm_rng_next_below(r, 2);
		t = M_PI * dm_rng_next_uniform(r);
		if (c == 0) {
			p[0] = cos(t);
			p[1] = sin(t);
		} else {
			p[0] = 1 - cos(t);
			p[1] = 0.5 - sin(t);
		}
		break;
	case SET_CIRCLES:	/* sklearn make_circles */
		c = (int64_t)dm_rng_next_below(r, 2);
		t = 2 * M_PI * dm_rng_next_uniform(r);
		a = c == 0 ? 1 : factor;
		p[0] = a * cos(t);
		p[1] = a * sin(t);
		break;
	case SET_8GAUSS:	/* centres 2 sqrt 2 (cos k pi/4, sin k pi/4) */
		c = (int64_t)dm_rng_next_below(r, 8);
		p[0] = 2 * SQRT2 * cos(c * M_PI / 4);
		p[1] = 2 * SQRT2 * sin(c * M_PI / 4);
		break;
	case SET_25GAUSS:	/* centres (i - 2, j - 2) / (2 sqrt 2) */
		c = (int64_t)dm_rng_next_below(r, 25);
		p[0] = (double)(c / 5 - 2) / (2 * SQRT2);
		p[1] = (double)(c % 5 - 2) / (2 * SQRT2);
		break;
	case SET_CHECKER:	/* FFJORD: x1 in [-2, 2), x2 on the same colour */
		u = 4 * dm_rng_next_uniform(r) - 2;
		c = (int64_t)floor(u) & 1;
		t = dm_rng_next_uniform(r) -
		    2 * (double)dm_rng_next_below(r, 2) + (double)c;
		p[0] = 2 * u;
		p[1] = 2 * t;
		break;
	case SET_SWISSROLL:	/* sklearn make_swiss_roll, (x, z) / 5 */
		t = 1.5 * M_PI * (1 + 2 * dm_rng_next_uniform(r));
		p[0] = t * cos(t) / 5;
		p[1] = t * sin(t) / 5;
		break;
	case SET_2SPIRALS:	/* FFJORD: m = sqrt(u) 3 pi, jitter U(0, 0.5) */
		c = (int64_t)dm_rng_next_below(r, 2);
		t = sqrt(dm_rng_next_uniform(r)) * 3 * M_PI;
		a = -cos(t) * t + 0.5 * dm_rng_next_uniform(r);
		b = sin(t) * t + 0.5 * dm_rng_next_uniform(r);
		if (c == 1) {
			a = -a;
			b = -b;
		}
		p[0] = a / 3;
		p[1] = b / 3;
		break;
	case SET_PINWHEEL:	/* FFJORD: radial 0.3, rate 0.25, times 2 */
		c = (int64_t)dm_rng_next_below(r, (uint64_t)K);
		a = 1 + 0.3 * dm_rng_next_normal(r);
		b = noise * dm_rng_next_normal(r);
		t = 2 * M_PI * (double)c / K + 0.25 * exp(a);
		p[0] = 2 * (a * cos(t) + b * sin(t));
		p[1] = 2 * (-a * sin(t) + b * cos(t));
		return c;	/* the noise is the tangential spread */
	case SET_RINGS:		/* radii 3 (k + 1) / K */
		c = (int64_t)dm_rng_next_below(r, (uint64_t)K);
		t = 2 * M_PI * dm_rng_next_uniform(r);
		a = 3.0 * (double)(c + 1) / K;
		p[0] = a * cos(t);
		p[1] = a * sin(t);
		break;
	}
	if (noise > 0) {
		p[0] += noise * dm_rng_next_normal(r);
		p[1] += noise * dm_rng_next_normal(r);
	}
	return c;
}

int
dm_data_sample(const char *name, const struct dm_data_opts *o,
    int64_t first, int64_t n, uint64_t seed, float *x, int64_t *y)
{
	int s = set_index(name);

	if (dm_data_check(name, o) == -1)
		return -1;
	if (n < 0 || first < 0 || first + n > (INT64_C(1) << 48))
		return dm_seterr("sample range out of bounds");
	if (s == SET_GAUSS) {
		size_t d = dm_data_dim(name, o);
		#pragma omp parallel for schedule(static)
		for (int64_t i = 0; i < n; i++)
			dm_rng_normal(x + (size_t)i * d, d, seed,
			    dm_noise_stream(DM_NOISE_DATA, (uint64_t)(first + i)),
			    0);
		return 0;
	}
	double noise = noise_of(s, o);
	double factor = isnan(o->factor) ? 0.5 : o->factor;
	int K = classes_of(s, o);
	#pragma omp parallel for schedule(static)
	for (int64_t i = 0; i < n; i++) {
		struct dm_rng r;
		double p[2] = {0, 0};
		int64_t c;

		dm_rng_init(&r, seed,
		    dm_noise_stream(DM_NOISE_DATA, (uint64_t)(first + i)));
		c = toy_point(s, noise, K, factor, &r, p);
		x[2 * i] = (float)p[0];
		x[2 * i + 1] = (float)p[1];
		if (y != NULL)
			y[i] = c;
	}
	return 0;
}

static struct dm_tensor *
named(struct dm_tensor *t, const char *name)
{
	if (t != NULL && dm_tensor_set_name(t, name) == -1) {
		dm_tensor_free(t);
		return NULL;
	}
	return t;
}

/* Add t to f, freeing it on failure. */
static int
add(struct dm_file *f, struct dm_tensor *t)
{
	if (t == NULL)
		return -1;
	if (dm_file_add(f, t) == -1) {
		dm_tensor_free(t);
		return -1;
	}
	return 0;
}

int
dm_data_generate(const char *name, const struct dm_data_opts *o, int64_t n,
    uint64_t seed, struct dm_file *out)
{
	int64_t shape[4];
	int ndim = 2;
	char src[256];
	struct dm_tensor *x, *y = NULL;

	if (dm_data_check(name, o) == -1 ||
	    dm_data_source(name, o, src, sizeof src) == -1)
		return -1;
	if (n < 1 || n > (INT64_C(1) << 40))
		return dm_seterr("number of samples %lld out of range",
		    (long long)n);
	shape[0] = n;
	if (set_index(name) == SET_GAUSS && o->ndim != 0) {
		ndim = 1 + o->ndim;
		memcpy(shape + 1, o->shape, (size_t)o->ndim * sizeof *shape);
	} else
		shape[1] = 2;
	if ((x = named(dm_tensor_new(ndim, shape), "x")) == NULL)
		return -1;
	if (dm_data_has_labels(name) &&
	    (y = named(dm_tensor_new_dtype(DM_DTYPE_I64, 1, &n), "y")) == NULL) {
		dm_tensor_free(x);
		return -1;
	}
	if (dm_data_sample(name, o, 0, n, seed, x->data,
	    y ? y->data : NULL) == -1 || dm_data_check_finite(x) == -1) {
		dm_tensor_free(x);
		dm_tensor_free(y);
		return -1;
	}
	if (add(out, x) == -1) {
		dm_tensor_free(y);
		return -1;
	}
	if (y != NULL && add(out, y) == -1)
		return -1;
	if (dm_file_meta_set(out, "dm.kind", "data") == -1 ||
	    dm_file_meta_set(out, "dm.source", src) == -1)
		return -1;
	return 0;
}

/* ---- finiteness ---- */

int
dm_data_check_finite(const struct dm_tensor *t)
{
	size_t n = dm_tensor_numel(t), bad = (size_t)-1, per;
	const char *name = t->name ? t->name : "tensor";

	if (!dm_dtype_is_float(t->dtype))
		return 0;
	if (t->dtype == DM_DTYPE_F32) {
		const float *p = t->data;
		size_t first = n;
		#pragma omp parallel for reduction(min:first) schedule(static)
		for (size_t i = 0; i < n; i++)
			if (!isfinite(p[i]) && i < first)
				first = i;
		if (first < n)
			bad = first;
	} else {
		for (size_t i = 0; i < n; i++)
			if (!isfinite(dm_tensor_get(t, i))) {
				bad = i;
				break;
			}
	}
	if (bad == (size_t)-1)
		return 0;
	per = t->ndim >= 1 && t->shape[0] > 0 ? n / (size_t)t->shape[0] : 1;
	if (per == 0)
		per = 1;
	return dm_seterr("%s: row %zu has %s", name, bad / per,
	    isnan(dm_tensor_get(t, bad)) ? "NaN" : "Inf");
}

int
dm_data_check_file(const struct dm_file *f)
{
	for (int i = 0; i < f->ntensors; i++)
		if (dm_data_check_finite(f->tensors[i]) == -1)
			return -1;
	return 0;
}

/* ---- IDX ---- */

#define IDX_UBYTE 0x08
#define IDX_MAX_DIMS 4

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* The header of an IDX file: ndim, shape and the data size it implies. */
static int
idx_header(const unsigned char *buf, size_t len, int *ndim, int64_t *shape,
    size_t *datalen)
{
	if (len < 4)
		return dm_seterr("not an IDX file (%zu bytes)", len);
	if (buf[0] != 0 || buf[1] != 0 || buf[2] != IDX_UBYTE ||
	    buf[3] < 1 || buf[3] > IDX_MAX_DIMS)
		return dm_seterr("bad IDX magic 0x%08x (expected 0x000008NN: "
		    "unsigned bytes, 1 to %d dimensions)", be32(buf),
		    IDX_MAX_DIMS);
	*ndim = buf[3];
	if (len < 4 + 4 * (size_t)*ndim)
		return dm_seterr("IDX header truncated");
	for (int k = 0; k < *ndim; k++)
		shape[k] = be32(buf + 4 + 4 * k);
	return dm_shape_numel(*ndim, shape, DM_DTYPE_U8, NULL, datalen);
}

/* Validate a whole IDX file in buf: its shape and where the data begin. */
static int
idx_check(const unsigned char *buf, size_t len, int *ndim, int64_t *shape,
    size_t *hdr)
{
	size_t need;

	if (idx_header(buf, len, ndim, shape, &need) == -1)
		return -1;
	*hdr = 4 + 4 * (size_t)*ndim;
	if (len - *hdr != need) {
		char s[64];
		dm_shape_format(s, sizeof s, *ndim, shape);
		return dm_seterr("IDX data is %zu bytes, expected %zu for %s",
		    len - *hdr, need, s);
	}
	return 0;
}

int
dm_idx_parse(const unsigned char *buf, size_t len, struct dm_tensor **out)
{
	int ndim = 0;
	int64_t shape[IDX_MAX_DIMS];
	size_t hdr;
	struct dm_tensor *t;

	*out = NULL;
	if (idx_check(buf, len, &ndim, shape, &hdr) == -1)
		return -1;
	if ((t = dm_tensor_new_dtype(DM_DTYPE_U8, ndim, shape)) == NULL)
		return -1;
	memcpy(t->data, buf + hdr, len - hdr);
	*out = t;
	return 0;
}

/* gzread a whole file (compressed or not), growing the buffer with what
 * arrives rather than with what a header claims. */
static int
slurp(const char *path, unsigned char **out, size_t *outlen)
{
	gzFile gz;
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;

	if ((gz = gzopen(path, "rb")) == NULL)
		return dm_seterr("cannot open: %s", strerror(errno));
	gzbuffer(gz, 1 << 18);
	for (;;) {
		if (cap - len < (1u << 20)) {
			size_t ncap = cap ? cap * 2 : 1u << 22;
			unsigned char *nb;
			if (ncap < cap || (nb = dm_realloc(buf, ncap)) == NULL) {
				rc = ncap < cap ? dm_seterr("file too large") : -1;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		size_t want = cap - len > (1u << 30) ? 1u << 30 : cap - len;
		int got = gzread(gz, buf + len, (unsigned)want);
		if (got < 0) {
			int e;
			const char *m = gzerror(gz, &e);
			rc = dm_seterr("read error: %s",
			    e == Z_ERRNO ? "I/O error" : m);
			break;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (rc == 0 && !gzeof(gz)) {
		int e;
		const char *m = gzerror(gz, &e);
		rc = dm_seterr("read error: %s", m);
	}
	gzclose(gz);
	if (rc == -1) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int
dm_idx_read(const char *path, struct dm_tensor **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if (slurp(path, &buf, &len) == -1)
		return -1;
	rc = dm_idx_parse(buf, len, out);
	free(buf);
	return rc;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Images IDX [N, H, W] to x [N, 1, H, W] = v/127.5 - 1, straight from
 * the file's bytes. */
static struct dm_tensor *
idx_images(const char *path)
{
	unsigned char *buf = NULL;
	size_t len = 0, hdr = 0;
	int ndim = 0;
	int64_t shape[IDX_MAX_DIMS];
	struct dm_tensor *x = NULL;

	if (slurp(path, &buf, &len) == -1 ||
	    idx_check(buf, len, &ndim, shape, &hdr) == -1) {
		dm_errctx("%s: ", path);
		goto done;
	}
	if (ndim != 3) {
		dm_seterr("%s: IDX images have 3 dimensions [N, H, W], not %d",
		    path, ndim);
		goto done;
	}
	int64_t s4[4] = {shape[0], 1, shape[1], shape[2]};
	if ((x = named(dm_tensor_new(4, s4), "x")) == NULL)
		goto done;
	const unsigned char *s = buf + hdr;
	float *d = x->data, lut[256];
	size_t n = len - hdr;
	for (int v = 0; v < 256; v++)	/* v/127.5 - 1, rounded once */
		lut[v] = (float)(v / 127.5 - 1.0);
	#pragma omp parallel for schedule(static)
	for (size_t i = 0; i < n; i++)
		d[i] = lut[s[i]];
done:
	free(buf);
	return x;
}

int
dm_data_import_idx(const char *images, const char *labels,
    struct dm_file *out)
{
	struct dm_tensor *x, *l = NULL, *y = NULL;
	char src[512];
	int rc = -1;

	if ((x = idx_images(images)) == NULL)
		return -1;
	if (labels != NULL) {
		if (dm_idx_read(labels, &l) == -1) {
			dm_errctx("%s: ", labels);
			goto done;
		}
		if (l->ndim != 1) {
			dm_seterr("%s: IDX labels have 1 dimension, not %d",
			    labels, l->ndim);
			goto done;
		}
		if (l->shape[0] != x->shape[0]) {
			dm_seterr("%s: %lld labels for %lld images", labels,
			    (long long)l->shape[0], (long long)x->shape[0]);
			goto done;
		}
		if ((y = named(dm_tensor_new_dtype(DM_DTYPE_I64, 1, l->shape),
		    "y")) == NULL)
			goto done;
		for (int64_t i = 0; i < l->shape[0]; i++)
			((int64_t *)y->data)[i] = ((unsigned char *)l->data)[i];
	}
	if (add(out, x) == -1) {
		x = NULL;
		goto done;
	}
	x = NULL;
	if (y != NULL) {
		rc = add(out, y);
		y = NULL;
		if (rc == -1)
			goto done;
	}
	snprintf(src, sizeof src, "idx:%s", base_name(images));
	rc = dm_file_meta_set(out, "dm.kind", "data") == -1 ||
	    dm_file_meta_set(out, "dm.source", src) == -1 ? -1 : 0;
done:
	dm_tensor_free(x);
	dm_tensor_free(y);
	dm_tensor_free(l);
	return rc;
}

/* ---- split ---- */

static struct dm_tensor *
take_rows(const struct dm_tensor *t, const int64_t *rows, int64_t n)
{
	int64_t shape[DM_MAX_DIMS];
	struct dm_tensor *o;
	size_t rowbytes = t->nbytes / (size_t)t->shape[0];

	memcpy(shape, t->shape, sizeof shape);
	shape[0] = n;
	if ((o = dm_tensor_new_dtype(t->dtype, t->ndim, shape)) == NULL)
		return NULL;
	for (int64_t i = 0; i < n; i++)
		memcpy((char *)o->data + (size_t)i * rowbytes,
		    (const char *)t->data + (size_t)rows[i] * rowbytes, rowbytes);
	if (dm_tensor_set_name(o, t->name) == -1) {
		dm_tensor_free(o);
		return NULL;
	}
	return o;
}

static int
fill_split(const struct dm_file *in, int64_t N, const int64_t *rows,
    int64_t n, struct dm_file *f)
{
	for (int i = 0; i < in->ntensors; i++) {
		const struct dm_tensor *t = in->tensors[i];
		struct dm_tensor *o;
		if (t->ndim >= 1 && t->shape[0] == N)
			o = take_rows(t, rows, n);
		else
			o = dm_tensor_clone(t);
		if (add(f, o) == -1)
			return -1;
	}
	for (int i = 0; i < in->nmeta; i++)
		if (dm_file_meta_set(f, in->meta_keys[i],
		    in->meta_values[i]) == -1)
			return -1;
	return 0;
}

int
dm_data_split(const struct dm_file *in, int64_t ntest, int shuffle,
    uint64_t seed, struct dm_file **train, struct dm_file **test)
{
	const struct dm_tensor *x = dm_file_get(in, "x");
	int64_t N, *rows = NULL;
	struct dm_file *a = NULL, *b = NULL;

	*train = *test = NULL;
	if (x == NULL)
		return dm_seterr("no tensor 'x'");
	if (x->ndim < 1)
		return dm_seterr("x: a scalar has no rows");
	N = x->shape[0];
	if (N < 1)
		return dm_seterr("x has no rows");
	if (ntest < 0 || ntest > N)
		return dm_seterr("%lld test rows of %lld", (long long)ntest,
		    (long long)N);
	if (dm_data_check_file(in) == -1)
		return -1;
	size_t bytes;
	if (dm_mul_size((size_t)N, sizeof *rows, &bytes) == -1 ||
	    (rows = dm_malloc(bytes)) == NULL)
		return -1;
	for (int64_t i = 0; i < N; i++)
		rows[i] = i;
	if (shuffle) {
		struct dm_rng r;
		dm_rng_init(&r, seed, dm_noise_stream(DM_NOISE_DATA, 0));
		dm_rng_shuffle(&r, rows, (size_t)N);
	}
	if ((a = dm_file_new()) == NULL || (b = dm_file_new()) == NULL ||
	    fill_split(in, N, rows, N - ntest, a) == -1 ||
	    fill_split(in, N, rows + (N - ntest), ntest, b) == -1) {
		free(rows);
		dm_file_free(a);
		dm_file_free(b);
		return -1;
	}
	free(rows);
	*train = a;
	*test = b;
	return 0;
}
