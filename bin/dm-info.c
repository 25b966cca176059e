/* dm-info — look inside tensor files: list, summarize, print values, convert.
 * The manual is dm-info(1). */
#include <err.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_ROWS = DM_OPT_FIRST_TOOL,
	OPT_DTYPE,
	OPT_FLOAT,
	OPT_F16,
	OPT_GZ,
	OPT_NPY,
	OPT_RENAME,
	OPT_SET,
	OPT_UNSET
};

/* A row range: Python's a:b, or one index a. */
struct rows {
	int given, single, has_lo, has_hi;
	int64_t lo, hi;
};

/* A table of strings, printed with aligned columns. */
struct table {
	int ncol, nrow, cap;
	const char *const *head;
	const char *align;         /* per column: 'l' or 'r' */
	char **cell;               /* nrow * ncol */
};

#define USAGE_LIST "usage: dm-info [-hpqsV] [--rows A:B] [-t NAME]... " \
	"[--threads N] FILE...\n"
#define USAGE_CONVERT "dm-info convert [--dtype DT | --float DT | --f16] [--gz] " \
	"[--npy] [-o OUT] [-t NAME]...\n" \
	"               [--rename OLD=NEW]... [--set KEY=VALUE]... " \
	"[--unset KEY]... FILE\n"

static int in_convert;

/* Usage errors show the synopsis of the mode in use; --help shows both. */
static void
usage(FILE *fp)
{
	if (fp == stdout)
		fputs(USAGE_LIST "       " USAGE_CONVERT, fp);
	else if (in_convert)
		fputs("usage: " USAGE_CONVERT, fp);
	else
		fputs(USAGE_LIST "       dm-info convert [options] FILE\n", fp);
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
	if (opt != NULL)
		warnx("%s: %s", opt, dm_errstr());
	else
		warnx("%s", dm_errstr());
	usage_error();
}

static const char *
shown(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0 ? "stdin" : path;
}

/* A copy of s with control characters written as \n, \t or \xNN. */
static char *
escape(const char *s)
{
	size_t n = strlen(s), k = 0;
	char *e = malloc(4 * n + 1);

	if (e == NULL)
		err(1, NULL);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n') {
			e[k++] = '\\';
			e[k++] = 'n';
		} else if (c == '\t') {
			e[k++] = '\\';
			e[k++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			k += (size_t)sprintf(e + k, "\\x%02x", c);
		} else {
			e[k++] = (char)c;
		}
	}
	e[k] = '\0';
	return e;
}

static char *
xprintf(const char *fmt, ...) DM_PRINTF(1, 2);

static char *
xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	return s;
}

/* "64 B", "1.5 KiB", "1.2 MiB". */
static char *
human_size(uint64_t n)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double x = (double)n;
	int u = 0;

	if (n < 1024)
		return xprintf("%" PRIu64 " B", n);
	while (x >= 1024 && u < 6) {
		x /= 1024;
		u++;
	}
	return xprintf("%.1f %s", x, unit[u]);
}

static void
table_add(struct table *tb, char **row)
{
	if (tb->nrow == tb->cap) {
		tb->cap = tb->cap ? 2 * tb->cap : 16;
		tb->cell = realloc(tb->cell, (size_t)tb->cap * (size_t)tb->ncol *
		    sizeof *tb->cell);
		if (tb->cell == NULL)
			err(1, NULL);
	}
	memcpy(tb->cell + (size_t)tb->nrow * (size_t)tb->ncol, row,
	    (size_t)tb->ncol * sizeof *row);
	tb->nrow++;
}

static void
print_row(const struct table *tb, const char *const *row, const size_t *w)
{
	for (int c = 0; c < tb->ncol; c++) {
		int last = c == tb->ncol - 1;
		int pad = (int)(w[c] - strlen(row[c]));
		if (tb->align[c] == 'r')
			printf("  %*s%s", pad, "", row[c]);
		else
			printf("  %s%*s", row[c], last ? 0 : pad, "");
	}
	putchar('\n');
}

/* Print and free the cells. */
static void
table_print(struct table *tb, int header)
{
	size_t w[16] = {0};

	for (int c = 0; c < tb->ncol; c++) {
		if (header)
			w[c] = strlen(tb->head[c]);
		for (int r = 0; r < tb->nrow; r++) {
			size_t n = strlen(tb->cell[r * tb->ncol + c]);
			w[c] = n > w[c] ? n : w[c];
		}
	}
	if (header)
		print_row(tb, tb->head, w);
	for (int r = 0; r < tb->nrow; r++)
		print_row(tb, (const char *const *)tb->cell + r * tb->ncol, w);
	for (int i = 0; i < tb->nrow * tb->ncol; i++)
		free(tb->cell[i]);
	free(tb->cell);
	tb->cell = NULL;
	tb->nrow = tb->cap = 0;
}

static char *
stat_cell(double v, size_t n)
{
	return n ? xprintf("%.6g", v) : xprintf("-");
}

/* The tensors a command works on: those named by -t (in that order) or all.
 * NULL with a reason if a name is absent. */
static struct dm_tensor **
select_tensors(const struct dm_file *f, char **sel, int nsel, int *n)
{
	int cnt = nsel ? nsel : f->ntensors;
	struct dm_tensor **ts = calloc((size_t)cnt + 1, sizeof *ts);

	if (ts == NULL)
		err(1, NULL);
	for (int i = 0; i < cnt; i++) {
		if (nsel == 0) {
			ts[i] = f->tensors[i];
			continue;
		}
		if ((ts[i] = dm_file_get(f, sel[i])) == NULL) {
			char *e = escape(sel[i]);
			dm_seterr("no tensor '%s'", e);
			free(e);
			free(ts);
			return NULL;
		}
	}
	*n = cnt;
	return ts;
}

static int
list_file(const char *path, const struct dm_file *f, char **sel, int nsel,
    int stats, int quiet)
{
	static const char *const head[] = {"name", "dtype", "shape", "elements",
		"bytes", "min", "max", "mean", "std", "nan", "inf"};
	struct table tb = {stats ? 11 : 5, 0, 0, head, "lllrrrrrrrr", NULL};
	struct dm_tensor **ts;
	const char *kind = dm_file_meta(f, "dm.kind");
	char *s, shape[160];
	int nt;

	if ((ts = select_tensors(f, sel, nsel, &nt)) == NULL)
		return -1;
	for (int i = 0; i < nt; i++) {
		struct dm_tensor *t = ts[i];
		char *row[11];
		row[0] = escape(t->name ? t->name : "");
		row[1] = xprintf("%s", dm_dtype_name(t->dtype));
		dm_shape_format(shape, sizeof shape, t->ndim, t->shape);
		row[2] = xprintf("%s", shape);
		row[3] = xprintf("%zu", dm_tensor_numel(t));
		row[4] = human_size(t->nbytes);
		if (stats) {
			struct dm_stats st;
			if (dm_tensor_stats(t, &st) == -1) {
				for (int c = 0; c < 5; c++)
					free(row[c]);
				free(ts);
				table_print(&tb, 0);
				return -1;
			}
			row[5] = stat_cell(st.min, st.n);
			row[6] = stat_cell(st.max, st.n);
			row[7] = stat_cell(st.mean, st.n);
			row[8] = stat_cell(dm_stats_std(&st), st.n);
			row[9] = xprintf("%zu", st.nan);
			row[10] = xprintf("%zu", st.inf);
		}
		table_add(&tb, row);
	}
	free(ts);

	s = escape(path);
	printf("%s: %s, %d tensor%s, ", s,
	    f->format == DM_FORMAT_NPY ? "npy" : "safetensors", f->ntensors,
	    f->ntensors == 1 ? "" : "s");
	free(s);
	s = human_size(f->file_size);
	printf("%s%s%s\n", s, f->compressed ? ", gzip" : "",
	    f->mapped ? ", mapped" : "");
	free(s);
	if (kind != NULL) {
		s = escape(kind);
		printf("  kind: %s\n", s);
		free(s);
	}
	for (int i = 0; i < f->nmeta; i++) {
		char *k, *v;
		if (strcmp(f->meta_keys[i], "dm.kind") == 0)
			continue;
		k = escape(f->meta_keys[i]);
		v = escape(f->meta_values[i]);
		printf("  %s = %s\n", k, v);
		free(k);
		free(v);
	}
	table_print(&tb, !quiet);
	return 0;
}

/* Element i in its own notation: %.9g for F32 and the half types (F32
 * round-trips), %.17g for F64, integers as integers. */
static void
put_value(const struct dm_tensor *t, size_t i)
{
	const void *p = t->data;
	double v;

	switch (t->dtype) {
	case DM_DTYPE_I64:
		printf("%" PRId64, ((const int64_t *)p)[i]);
		return;
	case DM_DTYPE_I32:
		printf("%" PRId32, ((const int32_t *)p)[i]);
		return;
	case DM_DTYPE_I16:
	case DM_DTYPE_I8:
	case DM_DTYPE_U8:
	case DM_DTYPE_BOOL:
		printf("%.0f", dm_tensor_get(t, i));
		return;
	default:
		break;
	}
	v = dm_tensor_get(t, i);
	if (isnan(v))
		fputs("nan", stdout);
	else if (isinf(v))
		fputs(v < 0 ? "-inf" : "inf", stdout);
	else if (t->dtype == DM_DTYPE_F64)
		printf("%.17g", v);
	else
		printf("%.9g", v);
}

static size_t
nrows(const struct dm_tensor *t)
{
	return t->ndim == 0 ? 1 : (size_t)t->shape[0];
}

/* Column names of t: "y" for a vector, "x.0" "x.1" for [N, 2], "x.0.1" for
 * [N, 2, 3], ... (indices over the dimensions after the first). */
static void
put_header(const struct dm_tensor *t, size_t ncols, int first)
{
	char *name = escape(t->name ? t->name : "");

	for (size_t c = 0; c < ncols; c++) {
		if (!first || c > 0)
			putchar('\t');
		fputs(name, stdout);
		if (t->ndim <= 1)
			continue;
		int64_t idx[DM_MAX_DIMS];
		size_t rest = c;
		for (int d = t->ndim - 1; d >= 1; d--) {
			idx[d] = (int64_t)(rest % (size_t)t->shape[d]);
			rest /= (size_t)t->shape[d];
		}
		for (int d = 1; d < t->ndim; d++)
			printf(".%" PRId64, idx[d]);
	}
	free(name);
}

/* Resolve the range against n rows into [lo, hi). */
static int
rows_resolve(const struct rows *r, size_t n, size_t *lo, size_t *hi)
{
	int64_t nn = (int64_t)n, a, b;

	if (!r->given) {
		*lo = 0;
		*hi = n;
		return 0;
	}
	if (r->single) {
		a = r->lo < 0 ? r->lo + nn : r->lo;
		if (a < 0 || a >= nn)
			return dm_seterr("row %" PRId64 " out of range (%zu rows)",
			    r->lo, n);
		*lo = (size_t)a;
		*hi = (size_t)a + 1;
		return 0;
	}
	a = r->has_lo ? r->lo : 0;
	b = r->has_hi ? r->hi : nn;
	if (a < 0)
		a = a + nn < 0 ? 0 : a + nn;
	if (b < 0)
		b = b + nn < 0 ? 0 : b + nn;
	a = a > nn ? nn : a;
	b = b > nn ? nn : b;
	*lo = (size_t)a;
	*hi = (size_t)(b > a ? b : a);
	return 0;
}

static int
print_file(const struct dm_file *f, char **sel, int nsel,
    const struct rows *r, int quiet)
{
	struct dm_tensor **ts;
	size_t n, lo = 0, hi = 0, *ncols;
	int nt;

	if ((ts = select_tensors(f, sel, nsel, &nt)) == NULL)
		return -1;
	if (nt == 0) {
		free(ts);
		return 0;
	}
	n = nrows(ts[0]);
	for (int k = 1; k < nt; k++)
		if (nrows(ts[k]) != n) {
			char *a = escape(ts[0]->name), *b = escape(ts[k]->name);
			dm_seterr("cannot print '%s' (%zu rows) beside '%s' "
			    "(%zu rows); choose tensors with -t", a, n, b,
			    nrows(ts[k]));
			free(a);
			free(b);
			free(ts);
			return -1;
		}
	if (rows_resolve(r, n, &lo, &hi) == -1) {
		free(ts);
		return -1;
	}
	if ((ncols = calloc((size_t)nt, sizeof *ncols)) == NULL)
		err(1, NULL);
	for (int k = 0; k < nt; k++) {
		size_t numel = dm_tensor_numel(ts[k]);
		if (n > 0) {
			ncols[k] = numel / n;
		} else {
			ncols[k] = 1;
			for (int d = 1; d < ts[k]->ndim; d++)
				ncols[k] *= (size_t)ts[k]->shape[d];
		}
	}
	if (!quiet) {
		for (int k = 0; k < nt; k++)
			put_header(ts[k], ncols[k], k == 0);
		putchar('\n');
	}
	for (size_t i = lo; i < hi && !ferror(stdout); i++) {
		int first = 1;
		for (int k = 0; k < nt; k++)
			for (size_t c = 0; c < ncols[k]; c++) {
				if (!first)
					putchar('\t');
				first = 0;
				put_value(ts[k], i * ncols[k] + c);
			}
		putchar('\n');
	}
	free(ncols);
	free(ts);
	return 0;
}

/* "A:B", "A:", ":B", ":" or "A" (negative counts from the end). */
static int
parse_rows(const char *s, struct rows *r)
{
	const char *colon = strchr(s, ':');
	char buf[64];

	memset(r, 0, sizeof *r);
	r->given = 1;
	if (colon == NULL) {
		r->single = 1;
		if (dm_parse_int64(s, INT64_MIN + 1, INT64_MAX, &r->lo) == -1)
			return dm_seterr("'%s' is not a row range A:B or a row", s);
		return 0;
	}
	if (strchr(colon + 1, ':') != NULL || (size_t)(colon - s) >= sizeof buf)
		return dm_seterr("'%s' is not a row range A:B", s);
	memcpy(buf, s, (size_t)(colon - s));
	buf[colon - s] = '\0';
	if (buf[0] != '\0') {
		r->has_lo = 1;
		if (dm_parse_int64(buf, INT64_MIN + 1, INT64_MAX, &r->lo) == -1)
			return dm_seterr("'%s' is not a row range A:B", s);
	}
	if (colon[1] != '\0') {
		r->has_hi = 1;
		if (dm_parse_int64(colon + 1, INT64_MIN + 1, INT64_MAX,
		    &r->hi) == -1)
			return dm_seterr("'%s' is not a row range A:B", s);
	}
	return 0;
}

static void
version(void)
{
	printf("dm-info (dm toolkit) %s\n", dm_version());
	exit(0);
}

static int
finish(int rc)
{
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return rc;
}

/* Split "A=B" at the first '='; both parts non-empty unless empty_b. */
static void
split_pair(const char *opt, char *s, char **a, char **b, int empty_b)
{
	char *eq = strchr(s, '=');

	if (eq == NULL || eq == s || (!empty_b && eq[1] == '\0')) {
		warnx("%s: '%s' is not %s", opt, s,
		    empty_b ? "KEY=VALUE" : "OLD=NEW");
		usage_error();
	}
	*eq = '\0';
	*a = s;
	*b = eq + 1;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

struct convert_opts {
	char **sel;
	int nsel;
	char **rename_from, **rename_to;
	int nrename;
	char **set_key, **set_value;
	int nset;
	char **unset;
	int nunset;
	int has_dtype, only_float;
	enum dm_dtype dtype;
	unsigned flags;
	const char *output;
};

/* Keep only the selected tensors, in the order of -t. */
static int
convert_select(struct dm_file *f, char **sel, int nsel)
{
	struct dm_tensor **ts;
	int nt, k = 0;

	if ((ts = select_tensors(f, sel, nsel, &nt)) == NULL)
		return -1;
	for (int i = 0; i < nt; i++) {
		int dup = 0;
		for (int j = 0; j < k; j++)
			dup |= ts[j] == ts[i];
		if (!dup)
			ts[k++] = ts[i];
	}
	for (int i = f->ntensors - 1; i >= 0; i--) {
		int keep = 0;
		for (int j = 0; j < k; j++)
			keep |= ts[j] == f->tensors[i];
		if (!keep) {
			char *name = dm_strdup(f->tensors[i]->name);
			if (name == NULL || dm_file_remove(f, name) == -1) {
				free(name);
				free(ts);
				return -1;
			}
			free(name);
		}
	}
	/* the same tensors remain: put them in the order asked for */
	for (int i = 0; i < k && i < f->ntensors; i++)
		f->tensors[i] = ts[i];
	free(ts);
	return 0;
}

static int
convert_apply(struct dm_file *f, const struct convert_opts *o)
{
	if (o->nsel && convert_select(f, o->sel, o->nsel) == -1)
		return -1;
	for (int i = 0; i < o->nrename; i++) {
		struct dm_tensor *t = dm_file_get(f, o->rename_from[i]);
		char *e;
		if (t == NULL) {
			e = escape(o->rename_from[i]);
			dm_seterr("--rename: no tensor '%s'", e);
			free(e);
			return -1;
		}
		if (strcmp(o->rename_from[i], o->rename_to[i]) == 0)
			continue;
		if (dm_file_get(f, o->rename_to[i]) != NULL) {
			e = escape(o->rename_to[i]);
			dm_seterr("--rename: tensor '%s' exists already", e);
			free(e);
			return -1;
		}
		if (dm_tensor_set_name(t, o->rename_to[i]) == -1)
			return -1;
	}
	if (o->has_dtype)
		for (int i = 0; i < f->ntensors; i++) {
			struct dm_tensor *t = f->tensors[i];
			if (o->only_float && !dm_dtype_is_float(t->dtype))
				continue;
			if (dm_tensor_convert(t, o->dtype) == -1) {
				char *e = escape(t->name);
				dm_errctx("tensor '%s': ", e);
				free(e);
				return -1;
			}
		}
	for (int i = 0; i < o->nunset; i++)
		if (dm_file_meta(f, o->unset[i]) != NULL &&
		    dm_file_meta_unset(f, o->unset[i]) == -1)
			return -1;
	for (int i = 0; i < o->nset; i++)
		if (dm_file_meta_set(f, o->set_key[i], o->set_value[i]) == -1)
			return -1;
	if (f->ntensors != 1 && ((o->flags & DM_WRITE_NPY) ||
	    (o->output != NULL && (ends_with(o->output, ".npy") ||
	    ends_with(o->output, ".npy.gz")))))
		return dm_seterr("a .npy file holds exactly one tensor, not %d;"
		    " choose one with -t", f->ntensors);
	return 0;
}

static void
push(char ***v, int *n, char *s)
{
	char **p = realloc(*v, (size_t)(*n + 1) * sizeof *p);

	if (p == NULL)
		err(1, NULL);
	p[(*n)++] = s;
	*v = p;
}

static int
convert_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dtype", required_argument, NULL, OPT_DTYPE},
		{"f16", no_argument, NULL, OPT_F16},
		{"float", required_argument, NULL, OPT_FLOAT},
		{"gz", no_argument, NULL, OPT_GZ},
		{"help", no_argument, NULL, 'h'},
		{"npy", no_argument, NULL, OPT_NPY},
		{"output", required_argument, NULL, 'o'},
		{"rename", required_argument, NULL, OPT_RENAME},
		{"set", required_argument, NULL, OPT_SET},
		{"tensor", required_argument, NULL, 't'},
		{"unset", required_argument, NULL, OPT_UNSET},
		{NULL, 0, NULL, 0}
	};
	struct convert_opts o = {0};
	struct dm_file *f;
	char *a, *b;
	int ch, rc = 0;

	in_convert = 1;
	while ((ch = getopt_long(argc, argv, "ho:t:", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_F16:	/* shorthand for --float f16 */
			optarg = "f16";
			ch = OPT_FLOAT;
			/* FALLTHROUGH */
		case OPT_DTYPE:
		case OPT_FLOAT:
			if (o.has_dtype) {
				warnx("give one --dtype or --float");
				usage_error();
			}
			if (dm_dtype_parse(optarg, &o.dtype) == -1)
				bad_arg(ch == OPT_DTYPE ? "--dtype" : "--float");
			o.has_dtype = 1;
			o.only_float = ch == OPT_FLOAT;
			break;
		case OPT_GZ:
			o.flags |= DM_WRITE_GZIP;
			break;
		case 'h':
			usage(stdout);
			return finish(0);
		case OPT_NPY:
			o.flags |= DM_WRITE_NPY;
			break;
		case 'o':
			o.output = optarg;
			break;
		case OPT_RENAME:
			split_pair("--rename", optarg, &a, &b, 0);
			if (strlen(b) > DM_MAX_NAME ||
			    strcmp(b, "__metadata__") == 0) {
				warnx("--rename: '%s' cannot be a tensor name", b);
				usage_error();
			}
			push(&o.rename_from, &o.nrename, a);
			o.nrename--;
			push(&o.rename_to, &o.nrename, b);
			break;
		case OPT_SET:
			split_pair("--set", optarg, &a, &b, 1);
			push(&o.set_key, &o.nset, a);
			o.nset--;
			push(&o.set_value, &o.nset, b);
			break;
		case 't':
			push(&o.sel, &o.nsel, optarg);
			break;
		case OPT_UNSET:
			push(&o.unset, &o.nunset, optarg);
			break;
		default:
			usage_error();
		}
	}
	if (argc - optind != 1) {
		warnx("convert takes one FILE");
		usage_error();
	}
	if (dm_check_binary_output(o.output) == -1)
		errx(1, "%s", dm_errstr());
	const char *in = argv[optind];
	if (dm_file_read(&f, in) == -1)
		errx(1, "%s: %s", shown(in), dm_errstr());
	if (convert_apply(f, &o) == -1) {
		warnx("%s: %s", shown(in), dm_errstr());
		rc = 1;
	} else if (dm_file_write(f, o.output ? o.output : "-", o.flags) == -1) {
		warnx("%s: %s", o.output && strcmp(o.output, "-") != 0 ?
		    o.output : "stdout", dm_errstr());
		rc = 1;
	}
	dm_file_free(f);
	free(o.sel);
	free(o.rename_from);
	free(o.rename_to);
	free(o.set_key);
	free(o.set_value);
	free(o.unset);
	return finish(rc);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"print", no_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"rows", required_argument, NULL, OPT_ROWS},
		{"stats", no_argument, NULL, 's'},
		{"tensor", required_argument, NULL, 't'},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	struct dm_common common;
	struct rows rows = {0};
	char **sel = NULL;
	int ch, nsel = 0, print = 0, stats = 0, rc = 0, listed = 0;

	dm_tool_init(argv);
	if (argc > 1 && strcmp(argv[1], "convert") == 0)
		return convert_main(argc - 1, argv + 1);
	dm_common_init(&common);
	while ((ch = getopt_long(argc, argv, "hpqst:V", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout);
			return finish(0);
		case 'p':
			print = 1;
			break;
		case OPT_ROWS:
			if (parse_rows(optarg, &rows) == -1)
				bad_arg("--rows");
			print = 1;
			break;
		case 's':
			stats = 1;
			break;
		case 't':
			push(&sel, &nsel, optarg);
			break;
		case 'V':
			version();
			break;
		case 'q':
		case DM_OPT_THREADS:
			if (dm_common_option(&common, ch, optarg) == 1)
				break;
			bad_arg(NULL);
			break;
		default:
			usage_error();
		}
	}
	if (optind == argc) {
		warnx("no FILE given");
		usage_error();
	}
	if (print && stats) {
		warnx("-p (or --rows) and -s exclude each other");
		usage_error();
	}
	dm_threads_set(common.threads);
	for (int i = optind; i < argc; i++) {
		struct dm_file *f;
		const char *path = argv[i];
		int r;

		if (dm_file_read(&f, path) == -1) {
			fflush(stdout);
			warnx("%s: %s", shown(path), dm_errstr());
			rc = 1;
			continue;
		}
		if (!print && listed++)
			putchar('\n');
		if (print)
			r = print_file(f, sel, nsel, &rows, common.quiet);
		else
			r = list_file(shown(path), f, sel, nsel, stats,
			    common.quiet);
		if (r == -1) {
			fflush(stdout);
			warnx("%s: %s", shown(path), dm_errstr());
			rc = 1;
		}
		dm_file_free(f);
	}
	free(sel);
	return finish(rc);
}
