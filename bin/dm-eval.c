/* dm-eval — judge samples with a classifier of the toolkit: its accuracy
 * on the intended labels and the Fréchet distance between its penultimate
 * features of the samples and of reference data (FD-classifier, not
 * Inception FID).  The manual is dm-eval(1); the computations are
 * lib/eval.c. */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_BATCH = DM_OPT_FIRST_TOOL,
	OPT_CLASSIFIER,
	OPT_LABEL,
	OPT_LABELS,
	OPT_REF
};

#define MAX_RAW_DIM 2048	/* raw-vector features: d x d covariances */

struct args {
	struct dm_common com;
	const char *classifier, *labels, *ref;
	int64_t label;
	int batch, verbose;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-eval [-hqvV] [-c MODEL] [--batch B] [--label K | --labels FILE]\n"
	    "               [--ref FILE] [--threads N] SAMPLES\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

static void
parse_args(struct args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"batch", required_argument, NULL, OPT_BATCH},
		{"classifier", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"label", required_argument, NULL, OPT_LABEL},
		{"labels", required_argument, NULL, OPT_LABELS},
		{"quiet", no_argument, NULL, 'q'},
		{"ref", required_argument, NULL, OPT_REF},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int ch;

	memset(a, 0, sizeof *a);
	dm_common_init(&a->com);
	a->label = -1;
	a->batch = 256;
	while ((ch = getopt_long(argc, argv, "c:hqvV", longopts, NULL)) != -1) {
		int r = dm_common_option(&a->com, ch, optarg);
		if (r == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		switch (ch) {
		case 'c':
			a->classifier = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'v':
			a->verbose = 1;
			break;
		case 'V':
			printf("dm-eval (dm toolkit) %s\n", DM_VERSION);
			exit(0);
		case OPT_BATCH:
			if (dm_parse_int(optarg, 1, 1 << 20, &a->batch) == -1) {
				warnx("--batch: %s", dm_errstr());
				usage_error();
			}
			break;
		case OPT_LABEL:
			if (dm_parse_int64(optarg, 0, 1 << 20, &a->label) == -1) {
				warnx("--label: %s", dm_errstr());
				usage_error();
			}
			break;
		case OPT_LABELS:
			a->labels = optarg;
			break;
		case OPT_REF:
			a->ref = optarg;
			break;
		default:
			usage_error();
		}
	}
	if (argc - optind != 1) {
		warnx(optind < argc ? "one SAMPLES file" : "no SAMPLES file");
		usage_error();
	}
	if (a->label >= 0 && a->labels != NULL) {
		warnx("give --label or --labels, not both");
		usage_error();
	}
	if (a->classifier == NULL && (a->label >= 0 || a->labels != NULL)) {
		warnx("labels need a classifier (-c)");
		usage_error();
	}
	if (a->classifier == NULL && a->ref == NULL) {
		warnx("nothing to do: give a classifier (-c), a reference "
		    "(--ref) or both");
		usage_error();
	}
}

/* The rows x of a data file as F32 (the file stays open in *keep). */
static struct dm_tensor *
load_x(const char *path, struct dm_file **keep)
{
	struct dm_tensor *x;

	if (dm_file_read(keep, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if ((x = dm_file_get_f32(*keep, "x")) == NULL)
		errx(1, "%s: %s", path, dm_errstr());
	if (x->ndim < 1 || x->shape[0] < 1)
		errx(1, "%s: tensor 'x' has no rows", path);
	return x;
}

/* x must hold rows of the model's data shape. */
static void
check_shape(const char *path, const struct dm_tensor *x,
    const struct dm_model *m)
{
	int ok = x->ndim == m->cfg.ndim + 1;

	for (int i = 0; ok && i < m->cfg.ndim; i++)
		ok = x->shape[i + 1] == m->cfg.shape[i];
	if (!ok)
		errx(1, "%s: rows of x do not have the classifier's data shape",
		    path);
}

static size_t
row_size(const struct dm_tensor *x)
{
	return dm_tensor_numel(x) / (size_t)x->shape[0];
}

/* Feature moments of the rows of x: the classifier's penultimate features,
 * or without a classifier the rows themselves. */
static void
features(const char *path, const struct dm_tensor *x, struct dm_model *m,
    int batch, int64_t *pred, struct dm_moments *mo)
{
	int64_t n = x->shape[0];
	size_t d = m ? dm_model_feature_size(m) : row_size(x);

	if (mo != NULL && dm_moments_init(mo, (int)d) == -1)
		errx(1, "%s", dm_errstr());
	if (m == NULL) {
		for (size_t i = 0; i < dm_tensor_numel(x); i++)
			if (!isfinite(((const float *)x->data)[i]))
				errx(1, "%s: row %zu is not finite", path, i / d);
		if (dm_moments_add(mo, x->data, n) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		return;
	}
	if (dm_eval_classify(m, x->data, n, batch, pred, mo) == -1)
		errx(1, "%s: %s", path, dm_errstr());
}

/* The intended labels: --label, --labels, else tensor y of the samples if
 * there is one; NULL when there are none. */
static int64_t *
intended_labels(const struct args *a, const char *path,
    const struct dm_file *sf, int64_t n, int K)
{
	struct dm_file *lf = NULL;
	struct dm_tensor *y;
	int64_t *lab;

	if (a->label >= K)
		errx(1, "--label %lld: the classifier has classes 0..%d",
		    (long long)a->label, K - 1);
	if ((lab = malloc((size_t)n * sizeof *lab)) == NULL)
		err(1, NULL);
	if (a->label >= 0) {
		for (int64_t i = 0; i < n; i++)
			lab[i] = a->label;
		return lab;
	}
	if (a->labels != NULL) {
		if (dm_file_read(&lf, a->labels) == -1)
			errx(1, "%s: %s", a->labels, dm_errstr());
		path = a->labels;
		y = dm_file_get(lf, "y");
		if (y == NULL)
			errx(1, "%s: no tensor 'y'", path);
	} else if ((y = dm_file_get(sf, "y")) == NULL) {
		free(lab);
		return NULL;
	}
	if (dm_tensor_convert(y, DM_DTYPE_I64) == -1)
		errx(1, "%s: y: %s", path, dm_errstr());
	if ((int64_t)dm_tensor_numel(y) != n)
		errx(1, "%s: %zu labels for %lld samples", path,
		    dm_tensor_numel(y), (long long)n);
	memcpy(lab, y->data, (size_t)n * sizeof *lab);
	for (int64_t i = 0; i < n; i++)
		if (lab[i] < 0 || lab[i] >= K)
			errx(1, "%s: label %lld is not a class of the classifier "
			    "(0..%d)", path, (long long)lab[i], K - 1);
	dm_file_free(lf);
	return lab;
}

int
main(int argc, char **argv)
{
	struct args a;
	struct dm_model *m = NULL;
	struct dm_file *sf, *rf = NULL;
	struct dm_tensor *x, *rx = NULL;
	struct dm_moments ms, mr;
	int64_t n, *pred = NULL, *lab = NULL;
	double acc = NAN, fd = NAN, *pc = NULL;
	int K = 0;

	dm_tool_init(argv);
	parse_args(&a, argc, argv);
	dm_threads_set(a.com.threads);
	const char *spath = argv[optind];
	if (a.classifier != NULL) {
		if (dm_model_load(&m, a.classifier) == -1)
			errx(1, "%s: %s", a.classifier, dm_errstr());
		if (m->cfg.head != DM_HEAD_CLASSIFIER)
			errx(1, "%s: not a classifier (train one with dm-train "
			    "--objective classifier)", a.classifier);
		K = m->cfg.classes;
	}
	x = load_x(spath, &sf);
	n = x->shape[0];
	if (m != NULL)
		check_shape(spath, x, m);
	else if (row_size(x) > MAX_RAW_DIM)
		errx(1, "%s: rows of %zu values; without a classifier the "
		    "limit is %d", spath, row_size(x), MAX_RAW_DIM);
	if (a.ref != NULL) {
		rx = load_x(a.ref, &rf);
		if (m != NULL)
			check_shape(a.ref, rx, m);
		else if (rx->ndim != x->ndim || row_size(rx) != row_size(x))
			errx(1, "%s: rows do not have the shape of %s's", a.ref,
			    spath);
		if (n < 2 || rx->shape[0] < 2)
			errx(1, "%s: the Fréchet distance needs 2 rows or more "
			    "on each side", n < 2 ? spath : a.ref);
	}
	if (m != NULL && (pred = malloc((size_t)n * sizeof *pred)) == NULL)
		err(1, NULL);
	features(spath, x, m, a.batch, pred, a.ref ? &ms : NULL);
	if (a.ref != NULL) {
		int d = ms.d;
		double *mu1 = malloc(2 * ((size_t)d * d + d) * sizeof(double));
		if (mu1 == NULL)
			err(1, NULL);
		double *s1 = mu1 + d, *mu2 = s1 + (size_t)d * d, *s2 = mu2 + d;
		features(a.ref, rx, m, a.batch, NULL, &mr);
		if (dm_moments_get(&ms, mu1, s1) == -1 ||
		    dm_moments_get(&mr, mu2, s2) == -1 ||
		    dm_frechet_distance(mu1, s1, mu2, s2, d, &fd) == -1)
			errx(1, "%s", dm_errstr());
		free(mu1);
		dm_moments_free(&ms);
		dm_moments_free(&mr);
	}
	if (m != NULL) {
		lab = intended_labels(&a, spath, sf, n, K);
		if ((pc = calloc((size_t)K, sizeof *pc)) == NULL)
			err(1, NULL);
		if (lab != NULL && dm_eval_accuracy(pred, lab, n, K, &acc,
		    pc) == -1)
			errx(1, "%s", dm_errstr());
		if (lab == NULL)	/* the share of rows predicted c */
			for (int64_t i = 0; i < n; i++)
				pc[pred[i]] += 1.0 / (double)n;
	}

	printf("n");
	if (lab != NULL)
		printf("\taccuracy");
	if (a.ref != NULL)
		printf("\tn_ref\tfd");
	for (int c = 0; a.verbose && c < K; c++)
		printf(lab ? "\tacc_%d" : "\tfrac_%d", c);
	printf("\n%lld", (long long)n);
	if (lab != NULL)
		printf("\t%.4f", acc);
	if (a.ref != NULL)
		printf("\t%lld\t%.6g", (long long)rx->shape[0], fd);
	for (int c = 0; a.verbose && c < K; c++)
		printf("\t%.4f", pc[c]);
	printf("\n");
	free(pc);
	free(lab);
	free(pred);
	dm_file_free(sf);
	dm_file_free(rf);
	dm_model_free(m);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
