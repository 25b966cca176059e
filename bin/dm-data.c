/* dm-data — make and import data sets: the 2-D toy sets, the Gaussian
 * prior, Gaussian mixtures, IDX and PNG images, train/test splits.  The
 * manual is dm-data(1); the generators and readers are lib/data.c,
 * lib/image_read.c and lib/gmm.c. */
#include <dirent.h>
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dm.h"

enum {
	OPT_ARMS = DM_OPT_FIRST_TOOL,
	OPT_CLASSES,
	OPT_DIM,
	OPT_FACTOR,
	OPT_K,
	OPT_LABELS,
	OPT_LABELS_FROM_DIRS,
	OPT_MODEL,
	OPT_NOISE,
	OPT_RADIUS,
	OPT_RGB,
	OPT_SCHEDULE,
	OPT_SHAPE,
	OPT_SHUFFLE,
	OPT_SPEC,
	OPT_STD,
	OPT_TEST,
	OPT_TEST_N
};

#define MAX_SPEC (1 << 20)	/* bytes of a gmm spec file */

struct args {
	struct dm_common com;
	struct dm_data_opts d;
	int64_t n;
	int have_n, dim, k, model, rgb, labels_from_dirs, shuffle;
	double radius, std, test;
	int64_t test_n;
	const char *spec, *schedule, *labels, *test_out;
	unsigned used;			/* OPT_* bits seen, for usage checks */
};

#define USED(o) (1u << ((o) - OPT_ARMS))

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-data [-hqV] [-n N] [--noise S] [--classes K] [--factor F]\n"
	    "               [--seed N] [-o FILE] SET\n"
	    "       dm-data gauss [-n N] [--dim D | --shape C,H,W] [--seed N] [-o FILE]\n"
	    "       dm-data gmm (--spec FILE | --k K --dim D [--radius R] [--std S])\n"
	    "               [-n N] [--seed N] [-o FILE]\n"
	    "       dm-data gmm --model --schedule SPEC (--spec FILE | --k K --dim D\n"
	    "               [--radius R] [--std S]) [-o FILE]\n"
	    "       dm-data import [--labels FILE] [-o FILE] IDX-IMAGES\n"
	    "       dm-data import [--labels-from-dirs] [--rgb] [-o FILE] PNG... | DIR\n"
	    "       dm-data split [--shuffle] [--seed N] [--test F | --test-n N]\n"
	    "               -o TRAIN -O TEST FILE\n"
	    "SET: moons circles 8gaussians 25gaussians checkerboard swissroll\n"
	    "     2spirals pinwheel rings gauss gmm\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

static void
bad_option(const char *opt)
{
	warnx("%s: %s", opt, dm_errstr());
	usage_error();
}

static const char *
output_path(const struct args *a)
{
	return a->com.output ? a->com.output : "-";
}

/* Check for NaN/Inf, then write atomically. */
static void
write_out(struct dm_file *f, const char *path)
{
	if (dm_data_check_file(f) == -1)
		errx(1, "%s", dm_errstr());
	if (dm_file_meta(f, "dm.version") == NULL &&
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1)
		errx(1, "%s", dm_errstr());
	if (dm_file_write(f, path, 0) == -1)
		errx(1, "%s: %s", strcmp(path, "-") ? path : "stdout",
		    dm_errstr());
}

/* Options that only some commands take: refuse the others. */
static void
only(const struct args *a, unsigned allowed, const char *cmd)
{
	static const char *names[] = {
		"--arms", "--classes", "--dim", "--factor", "--k", "--labels",
		"--labels-from-dirs", "--model", "--noise", "--radius", "--rgb",
		"--schedule", "--shape", "--shuffle", "--spec", "--std",
		"--test", "--test-n"
	};
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if ((a->used & (1u << i)) && !(allowed & (1u << i))) {
			warnx("%s does not apply to %s", names[i], cmd);
			usage_error();
		}
}

/* ---- generators ---- */

static void
cmd_generate(struct args *a, const char *name)
{
	struct dm_file *f;

	only(a, USED(OPT_NOISE) | USED(OPT_CLASSES) | USED(OPT_ARMS) |
	    USED(OPT_FACTOR) | USED(OPT_DIM) | USED(OPT_SHAPE), name);
	if (a->used & USED(OPT_DIM)) {
		if (a->used & USED(OPT_SHAPE)) {
			warnx("--dim and --shape exclude each other");
			usage_error();
		}
		a->d.ndim = 1;
		a->d.shape[0] = a->dim;
	}
	if (dm_data_check(name, &a->d) == -1) {
		warnx("%s", dm_errstr());
		usage_error();
	}
	if (dm_check_binary_output(a->com.output) == -1)
		errx(1, "%s", dm_errstr());
	if ((f = dm_file_new()) == NULL ||
	    dm_data_generate(name, &a->d, a->n, a->com.seed, f) == -1)
		errx(1, "%s", dm_errstr());
	write_out(f, output_path(a));
	dm_file_free(f);
}

static char *
read_text(const char *path)
{
	FILE *fp = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *buf;
	size_t n;

	if (fp == NULL)
		err(1, "%s", path);
	if ((buf = malloc(MAX_SPEC + 1)) == NULL)
		err(1, NULL);
	n = fread(buf, 1, MAX_SPEC + 1, fp);
	if (ferror(fp))
		err(1, "%s", path);
	if (n > MAX_SPEC)
		errx(1, "%s: longer than %d bytes", path, MAX_SPEC);
	if (memchr(buf, '\0', n) != NULL)
		errx(1, "%s: not a text file", path);
	buf[n] = '\0';
	if (fp != stdin)
		fclose(fp);
	return buf;
}

/* K equal components of covariance std^2 I, means on a circle of the
 * given radius in the first two coordinates (evenly spaced on [-R, R] in
 * one dimension). */
static int
gmm_from_options(struct dm_gmm *g, int K, int d, double R, double sd)
{
	if ((double)K * d * d > 1e8)
		return dm_seterr("mixture too large (K d^2 = %.3g)",
		    (double)K * d * d);
	double *w = calloc((size_t)K, sizeof *w);
	double *m = calloc((size_t)K * d, sizeof *m);
	double *c = calloc((size_t)K * d * d, sizeof *c);

	if (w == NULL || m == NULL || c == NULL) {
		free(w);
		free(m);
		free(c);
		return dm_seterr("out of memory");
	}
	for (int k = 0; k < K; k++) {
		w[k] = 1.0 / K;
		if (d == 1)
			m[k] = K == 1 ? 0 : -R + 2 * R * k / (K - 1);
		else {
			m[(size_t)k * d] = R * cos(2 * M_PI * k / K);
			m[(size_t)k * d + 1] = R * sin(2 * M_PI * k / K);
		}
		for (int i = 0; i < d; i++)
			c[(size_t)k * d * d + (size_t)i * d + i] = sd * sd;
	}
	return dm_gmm_init(g, K, d, w, m, c);
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s && s[1] ? s + 1 : path;
}

static void
cmd_gmm(struct args *a)
{
	struct dm_gmm g;
	struct dm_file *f;
	char src[512], canon[512];
	int byopts = (a->used & (USED(OPT_K) | USED(OPT_DIM))) != 0;

	only(a, USED(OPT_SPEC) | USED(OPT_K) | USED(OPT_DIM) | USED(OPT_RADIUS) |
	    USED(OPT_STD) | USED(OPT_MODEL) | USED(OPT_SCHEDULE), "gmm");
	if ((a->spec != NULL) == byopts ||
	    (byopts && !((a->used & USED(OPT_K)) && (a->used & USED(OPT_DIM)))) ||
	    (a->spec && (a->used & (USED(OPT_RADIUS) | USED(OPT_STD)))) ||
	    a->model != (a->schedule != NULL)) {
		warnx("gmm takes --spec FILE or --k K --dim D; --model goes "
		    "with --schedule");
		usage_error();
	}
	if (a->model && a->have_n) {
		warnx("-n does not apply to --model");
		usage_error();
	}
	if (a->schedule != NULL) {
		struct dm_schedule s;
		if (dm_schedule_from_string(&s, a->schedule) == -1) {
			warnx("--schedule: %s", dm_errstr());
			usage_error();
		}
		if (dm_schedule_to_string(&s, canon, sizeof canon) == -1)
			errx(1, "%s", dm_errstr());
		dm_schedule_free(&s);
	}
	if (dm_check_binary_output(a->com.output) == -1)
		errx(1, "%s", dm_errstr());
	if (a->spec != NULL) {
		char *text = read_text(a->spec);
		if (dm_gmm_parse(&g, text) == -1)
			errx(1, "%s: %s", a->spec, dm_errstr());
		free(text);
		snprintf(src, sizeof src, "gmm:spec=%s", base_name(a->spec));
	} else {
		if (gmm_from_options(&g, a->k, a->dim, a->radius, a->std) == -1)
			errx(1, "%s", dm_errstr());
		snprintf(src, sizeof src, "gmm:k=%d,dim=%d,radius=%.6g,std=%.6g",
		    a->k, a->dim, a->radius, a->std);
	}
	if ((f = dm_file_new()) == NULL)
		errx(1, "%s", dm_errstr());
	if (a->model) {
		if (dm_gmm_to_file(&g, f, canon) == -1 ||
		    dm_file_meta_set(f, "dm.source", src) == -1)
			errx(1, "%s", dm_errstr());
	} else {
		int64_t sx[2] = {a->n, g.d};
		struct dm_tensor *x = dm_tensor_new(2, sx);
		struct dm_tensor *y = dm_tensor_new_dtype(DM_DTYPE_I64, 1, &a->n);
		if (x == NULL || y == NULL ||
		    dm_tensor_set_name(x, "x") == -1 ||
		    dm_tensor_set_name(y, "y") == -1 ||
		    dm_gmm_sample(&g, a->n, a->com.seed, 0, x->data,
		    y->data) == -1 ||
		    dm_file_add(f, x) == -1 || dm_file_add(f, y) == -1 ||
		    dm_gmm_to_file(&g, f, NULL) == -1 ||
		    dm_file_meta_set(f, "dm.kind", "data") == -1 ||
		    dm_file_meta_set(f, "dm.source", src) == -1)
			errx(1, "%s", dm_errstr());
	}
	write_out(f, output_path(a));
	dm_file_free(f);
	dm_gmm_free(&g);
}

/* ---- import ---- */

struct list {
	char **v;
	int64_t *labels;
	size_t n, cap;
};

static void
list_add(struct list *l, char *path, int64_t label)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = reallocarray(l->v, l->cap, sizeof *l->v);
		l->labels = reallocarray(l->labels, l->cap, sizeof *l->labels);
		if (l->v == NULL || l->labels == NULL)
			err(1, NULL);
	}
	l->v[l->n] = path;
	l->labels[l->n++] = label;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
is_png_name(const char *s)
{
	size_t n = strlen(s);

	return n > 4 && strcasecmp(s + n - 4, ".png") == 0 && s[0] != '.';
}

static int
is_class_dir(const char *parent, const char *name)
{
	char *p;
	struct stat st;
	int r;

	if (name[0] == '.')
		return 0;
	if (asprintf(&p, "%s/%s", parent, name) == -1)
		err(1, NULL);
	r = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	free(p);
	return r;
}

/* The *.png of dir, sorted by name (byte order), all with one label. */
static void
scan_pngs(struct list *l, const char *dir, int64_t label)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, by_name);

	if (n < 0)
		err(1, "%s", dir);
	for (int i = 0; i < n; i++) {
		char *p;
		if (is_png_name(ents[i]->d_name)) {
			if (asprintf(&p, "%s/%s", dir, ents[i]->d_name) == -1)
				err(1, NULL);
			list_add(l, p, label);
		}
		free(ents[i]);
	}
	free(ents);
}

/* DIR/CLASS/ *.png: y is the index of CLASS among the sorted class
 * directories. */
static void
scan_classes(struct list *l, const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, by_name);
	int64_t cls = 0;

	if (n < 0)
		err(1, "%s", dir);
	for (int i = 0; i < n; i++) {
		if (is_class_dir(dir, ents[i]->d_name)) {
			char *p;
			if (asprintf(&p, "%s/%s", dir, ents[i]->d_name) == -1)
				err(1, NULL);
			scan_pngs(l, p, cls++);
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
}

static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
looks_like_png(const char *path)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n',
	    0x1a, '\n'};
	unsigned char b[8];
	FILE *fp = fopen(path, "rb");
	int r;

	if (fp == NULL)
		return 0;
	r = fread(b, 1, 8, fp) == 8 && memcmp(b, sig, 8) == 0;
	fclose(fp);
	return r;
}

static void
import_png(struct args *a, char **ops, int nops)
{
	struct list l = {NULL, NULL, 0, 0};
	struct dm_file *f;
	char src[512];

	if (is_dir(ops[0])) {
		if (nops != 1) {
			warnx("import takes one directory or a list of PNG files");
			usage_error();
		}
		if (a->labels_from_dirs)
			scan_classes(&l, ops[0]);
		else
			scan_pngs(&l, ops[0], 0);
		if (l.n == 0)
			errx(1, "%s: no PNG files", ops[0]);
		snprintf(src, sizeof src, "png:%s", base_name(ops[0]));
	} else {
		if (a->labels_from_dirs) {
			warnx("--labels-from-dirs needs a directory");
			usage_error();
		}
		for (int i = 0; i < nops; i++)
			list_add(&l, ops[i], 0);
		snprintf(src, sizeof src, "png:%d files", nops);
	}
	if ((f = dm_file_new()) == NULL ||
	    dm_data_import_png((const char *const *)l.v, l.n,
	    a->labels_from_dirs ? l.labels : NULL, a->rgb ? DM_PNG_RGB : 0,
	    src, f) == -1)
		errx(1, "%s", dm_errstr());
	write_out(f, output_path(a));
	dm_file_free(f);
	if (is_dir(ops[0]))
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i]);
	free(l.v);
	free(l.labels);
}

static void
cmd_import(struct args *a, char **ops, int nops)
{
	only(a, USED(OPT_LABELS) | USED(OPT_RGB) | USED(OPT_LABELS_FROM_DIRS),
	    "import");
	if (nops < 1) {
		warnx("import: no input");
		usage_error();
	}
	if (dm_check_binary_output(a->com.output) == -1)
		errx(1, "%s", dm_errstr());
	if (is_dir(ops[0]) || looks_like_png(ops[0])) {
		if (a->labels != NULL) {
			warnx("--labels is for IDX images");
			usage_error();
		}
		import_png(a, ops, nops);
		return;
	}
	if (nops != 1 || a->rgb || a->labels_from_dirs) {
		warnx("%s: not a PNG file or directory; IDX import takes one "
		    "file and --labels", ops[0]);
		usage_error();
	}
	struct dm_file *f = dm_file_new();
	if (f == NULL || dm_data_import_idx(ops[0], a->labels, f) == -1)
		errx(1, "%s", dm_errstr());
	write_out(f, output_path(a));
	dm_file_free(f);
}

/* ---- split ---- */

static void
cmd_split(struct args *a, char **ops, int nops)
{
	struct dm_file *in, *train, *test;
	const struct dm_tensor *x;
	int64_t N, ntest;

	only(a, USED(OPT_SHUFFLE) | USED(OPT_TEST) | USED(OPT_TEST_N), "split");
	if (nops != 1 || a->com.output == NULL || a->test_out == NULL ||
	    ((a->used & USED(OPT_TEST)) && (a->used & USED(OPT_TEST_N)))) {
		warnx("split takes one FILE, -o TRAIN, -O TEST and at most one "
		    "of --test, --test-n");
		usage_error();
	}
	if (strcmp(a->com.output, "-") == 0 && strcmp(a->test_out, "-") == 0) {
		warnx("split: -o and -O cannot both be standard output");
		usage_error();
	}
	if (dm_check_binary_output(a->com.output) == -1 ||
	    dm_check_binary_output(a->test_out) == -1)
		errx(1, "%s", dm_errstr());
	if (dm_file_read(&in, ops[0]) == -1)
		errx(1, "%s: %s", ops[0], dm_errstr());
	if ((x = dm_file_get(in, "x")) == NULL || x->ndim < 1)
		errx(1, "%s: no tensor 'x' with rows", ops[0]);
	N = x->shape[0];
	ntest = (a->used & USED(OPT_TEST_N)) ? a->test_n :
	    (int64_t)llround(a->test * (double)N);
	if (ntest > N)
		errx(1, "%s: --test-n %lld is more than the %lld rows", ops[0],
		    (long long)ntest, (long long)N);
	if (dm_data_split(in, ntest, a->shuffle, a->com.seed, &train,
	    &test) == -1)
		errx(1, "%s: %s", ops[0], dm_errstr());
	write_out(train, a->com.output);
	write_out(test, a->test_out);
	dm_file_free(train);
	dm_file_free(test);
	dm_file_free(in);
}

/* ---- options ---- */

static void
parse_shape(struct args *a, const char *s)
{
	double v[4];
	int n;

	if (dm_parse_doubles(s, v, 4, &n) == -1 || n != 3)
		goto bad;
	for (int k = 0; k < 3; k++) {
		if (v[k] < 1 || v[k] > (1 << 24) || v[k] != floor(v[k]))
			goto bad;
		a->d.shape[k] = (int64_t)v[k];
	}
	a->d.ndim = 3;
	return;
bad:
	warnx("--shape: '%s' is not C,H,W (three positive integers)", s);
	usage_error();
}

static void
parse_option(struct args *a, int ch, const char *arg)
{
	if (ch >= OPT_ARMS && ch <= OPT_TEST_N)
		a->used |= USED(ch);
	switch (ch) {
	case 'n':
		if (dm_parse_int64(arg, 1, INT64_C(1) << 32, &a->n) == -1)
			bad_option("-n");
		a->have_n = 1;
		break;
	case 'O':
		if (*arg == '\0') {
			warnx("-O: empty file name");
			usage_error();
		}
		a->test_out = arg;
		break;
	case OPT_ARMS:
	case OPT_CLASSES:
		if (dm_parse_int(arg, 1, 1000, &a->d.classes) == -1)
			bad_option(ch == OPT_ARMS ? "--arms" : "--classes");
		break;
	case OPT_DIM:
		if (dm_parse_int(arg, 1, 1 << 20, &a->dim) == -1)
			bad_option("--dim");
		break;
	case OPT_FACTOR:
		if (dm_parse_double(arg, 0, 1, &a->d.factor) == -1)
			bad_option("--factor");
		break;
	case OPT_K:
		if (dm_parse_int(arg, 1, 100000, &a->k) == -1)
			bad_option("--k");
		break;
	case OPT_LABELS:
		a->labels = arg;
		break;
	case OPT_LABELS_FROM_DIRS:
		a->labels_from_dirs = 1;
		break;
	case OPT_MODEL:
		a->model = 1;
		break;
	case OPT_NOISE:
		if (dm_parse_double(arg, 0, 100, &a->d.noise) == -1)
			bad_option("--noise");
		break;
	case OPT_RADIUS:
		if (dm_parse_double(arg, 0, 1e6, &a->radius) == -1)
			bad_option("--radius");
		break;
	case OPT_RGB:
		a->rgb = 1;
		break;
	case OPT_SCHEDULE:
		a->schedule = arg;
		break;
	case OPT_SHAPE:
		parse_shape(a, arg);
		break;
	case OPT_SHUFFLE:
		a->shuffle = 1;
		break;
	case OPT_SPEC:
		a->spec = arg;
		break;
	case OPT_STD:
		if (dm_parse_double(arg, 1e-6, 1e6, &a->std) == -1)
			bad_option("--std");
		break;
	case OPT_TEST:
		if (dm_parse_double(arg, 0, 1, &a->test) == -1)
			bad_option("--test");
		break;
	case OPT_TEST_N:
		if (dm_parse_int64(arg, 0, INT64_MAX, &a->test_n) == -1)
			bad_option("--test-n");
		break;
	default:
		usage_error();
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"arms", required_argument, NULL, OPT_ARMS},
		{"classes", required_argument, NULL, OPT_CLASSES},
		{"dim", required_argument, NULL, OPT_DIM},
		{"factor", required_argument, NULL, OPT_FACTOR},
		{"help", no_argument, NULL, 'h'},
		{"k", required_argument, NULL, OPT_K},
		{"labels", required_argument, NULL, OPT_LABELS},
		{"labels-from-dirs", no_argument, NULL, OPT_LABELS_FROM_DIRS},
		{"model", no_argument, NULL, OPT_MODEL},
		{"noise", required_argument, NULL, OPT_NOISE},
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"radius", required_argument, NULL, OPT_RADIUS},
		{"rgb", no_argument, NULL, OPT_RGB},
		{"schedule", required_argument, NULL, OPT_SCHEDULE},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"shape", required_argument, NULL, OPT_SHAPE},
		{"shuffle", no_argument, NULL, OPT_SHUFFLE},
		{"spec", required_argument, NULL, OPT_SPEC},
		{"std", required_argument, NULL, OPT_STD},
		{"test", required_argument, NULL, OPT_TEST},
		{"test-n", required_argument, NULL, OPT_TEST_N},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	struct args a;
	const char *cmd;
	int ch;

	dm_tool_init(argv);
	memset(&a, 0, sizeof a);
	dm_common_init(&a.com);
	dm_data_opts_init(&a.d);
	a.n = 10000;
	a.radius = 3;
	a.std = 0.5;
	a.test = 0.1;
	while ((ch = getopt_long(argc, argv, "hn:O:o:qV", longopts,
	    NULL)) != -1) {
		int r = dm_common_option(&a.com, ch, optarg);
		if (r == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch == 'V') {
			printf("dm-data (dm toolkit) %s\n", DM_VERSION);
			return 0;
		}
		parse_option(&a, ch, optarg);
	}
	if (optind >= argc) {
		warnx("no data set or command");
		usage_error();
	}
	dm_threads_set(a.com.threads);
	cmd = argv[optind++];
	if (a.test_out != NULL && strcmp(cmd, "split") != 0) {
		warnx("-O applies only to split");
		usage_error();
	}
	if (strcmp(cmd, "import") == 0)
		cmd_import(&a, argv + optind, argc - optind);
	else if (strcmp(cmd, "split") == 0)
		cmd_split(&a, argv + optind, argc - optind);
	else {
		if (optind != argc) {
			warnx("%s takes no operands", cmd);
			usage_error();
		}
		if (strcmp(cmd, "gmm") == 0)
			cmd_gmm(&a);
		else if (dm_data_known(cmd))
			cmd_generate(&a, cmd);
		else
			errx(2, "unknown data set or command '%s' (see "
			    "dm-data --help)", cmd);
	}
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
