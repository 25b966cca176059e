/* dm-sample — draw samples from a model with any sampler, guidance,
 * composition of models and inpainting.  The manual is dm-sample(1); the
 * mathematics is SPEC.md §6 (lib/sample.c). */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_ATOL = DM_OPT_FIRST_TOOL,
	OPT_BATCH,
	OPT_CLASSIFIER,
	OPT_CLASSIFIER_SCALE,
	OPT_ETA,
	OPT_GUIDANCE,
	OPT_KNOWN,
	OPT_LABEL,
	OPT_LABELS,
	OPT_LORA,
	OPT_MASK,
	OPT_NEGATIVE,
	OPT_PNG,
	OPT_RESAMPLE,
	OPT_RHO,
	OPT_RTOL,
	OPT_SAMPLER,
	OPT_SDS,
	OPT_SDS_LR,
	OPT_SDS_STEPS,
	OPT_SDS_T,
	OPT_SHIFT,
	OPT_SPACING,
	OPT_STEPS,
	OPT_THRESHOLD,
	OPT_TRAJECTORY,
	OPT_X1
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-sample [-hqV] [-n N] [--sampler NAME] [--steps K] "
	    "[--spacing SP]\n"
	    "                 [--eta E] [--rtol R] [--atol A] [--label L|all | "
	    "--labels FILE]\n"
	    "                 [--guidance W] [--negative L] [--classifier FILE "
	    "[--classifier-scale S]]\n"
	    "                 [--mask FILE --known FILE]"
	    " [--resample U] [--threshold Q]\n"
	    "                 [--x1 FILE] [--trajectory FILE] "
	    "[--sds INIT [--sds-steps K] [--sds-lr LR] [--sds-t LO,HI]]\n"
	    "                 [--batch B] [--png FILE] [--seed N] "
	    "[--threads N] [-o FILE]\n"
	    "                 [--lora ADAPTER[:S]]...\n"
	    "                 MODEL[:WEIGHT]...\n");
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

/* The models and how their predictions are combined (SPEC §6). */
struct expert {
	struct dm_model *m;
	double w;
};

struct guide {
	struct expert *ex;
	int nex;
	const struct dm_schedule *sched;
	size_t d;
	int classes;
	const int64_t *labels;     /* per run row, or NULL */
	int64_t label;             /* every row's label when labels is NULL; -1 none */
	double guidance;           /* classifier-free guidance scale w */
	int64_t negative;          /* the "unconditional" branch's label; -1 = null */
	/* classifier guidance: eps -= scale sigma grad log p(y | x_t) */
	struct dm_model *clf;
	double clf_scale;
	/* work arrays for the doubled (conditional + unconditional) batch */
	float *xx, *x0x, *epsx, *acc0, *acce;
	int64_t *yy, *cy;
	int cap;
};

static int
guide_reserve(struct guide *g, int B)
{
	if (B <= g->cap)
		return 0;
	size_t n = 2 * (size_t)B * g->d;
	free(g->xx); free(g->x0x); free(g->epsx); free(g->yy);
	free(g->acc0); free(g->acce); free(g->cy);
	g->cy = malloc((size_t)B * sizeof *g->cy);
	g->xx = malloc(n * sizeof *g->xx);
	g->x0x = malloc(n * sizeof *g->x0x);
	g->epsx = malloc(n * sizeof *g->epsx);
	g->acc0 = malloc(n / 2 * sizeof *g->acc0);
	g->acce = malloc(n / 2 * sizeof *g->acce);
	g->yy = malloc(2 * (size_t)B * sizeof *g->yy);
	if (!g->xx || !g->x0x || !g->epsx || !g->yy || !g->acc0 || !g->acce ||
	    !g->cy)
		return dm_seterr("out of memory");
	g->cap = B;
	return 0;
}

/* One model at one time for B rows, with classifier-free guidance when
 * asked: conditional and unconditional rows go through one forward pass,
 * and x0_hat, eps_hat = uncond + w (cond - uncond) (the same affine
 * combination keeps the pair consistent). */
static int
guided(struct guide *g, struct dm_model *m, float *x0, float *eps,
    const float *x, double t, int B, int64_t first)
{
	size_t n = (size_t)B * g->d;
	int cond = g->labels != NULL || g->label >= 0;
	int cfg = cond && (g->guidance != 1 || g->negative >= 0);

	for (int b = 0; b < B; b++) {
		g->yy[b] = g->labels ? g->labels[first + b] :
		    g->label >= 0 ? g->label : g->classes;
		g->yy[B + b] = g->negative >= 0 ? g->negative : g->classes;
	}
	if (!cfg)
		return dm_model_denoise(m, x0, eps, x, t, m->cfg.classes ?
		    g->yy : NULL, B);
	memcpy(g->xx, x, n * sizeof *x);
	memcpy(g->xx + n, x, n * sizeof *x);
	if (dm_model_denoise(m, g->x0x, g->epsx, g->xx, t, g->yy, 2 * B) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		x0[i] = g->x0x[n + i] + (float)g->guidance * (g->x0x[i] - g->x0x[n + i]);
		eps[i] = g->epsx[n + i] + (float)g->guidance * (g->epsx[i] - g->epsx[n + i]);
	}
	return 0;
}

/* Product of experts: eps_hat = sum w_k eps_k; x0_hat to match it,
 * sum w_k x0_k + (1 - sum w_k) x / alpha. */
static int
denoise_at(struct guide *g, float *x0, float *eps, const float *x, double t,
    int B, int64_t first)
{
	size_t n = (size_t)B * g->d;
	double wsum = 0;

	if (g->nex == 1 && g->ex[0].w == 1)
		return guided(g, g->ex[0].m, x0, eps, x, t, B, first);
	memset(g->acc0, 0, n * sizeof *g->acc0);
	memset(g->acce, 0, n * sizeof *g->acce);
	for (int k = 0; k < g->nex; k++) {
		if (guided(g, g->ex[k].m, x0, eps, x, t, B, first) == -1)
			return -1;
		for (size_t i = 0; i < n; i++) {
			g->acc0[i] += (float)g->ex[k].w * x0[i];
			g->acce[i] += (float)g->ex[k].w * eps[i];
		}
		wsum += g->ex[k].w;
	}
	double alpha = dm_schedule_alpha(g->sched, t);
	for (size_t i = 0; i < n; i++) {
		eps[i] = g->acce[i];
		x0[i] = g->acc0[i] + (alpha > 0 ? (float)((1 - wsum) * x[i] / alpha) : 0);
	}
	return 0;
}

/* Classifier guidance on the combined prediction, at the denoiser's
 * clamped time (where dm_model_denoise evaluated it). */
static int
classifier_guide(struct guide *g, float *x0, float *eps, const float *x,
    double t, int B, int64_t first)
{
	struct dm_sched_point p;

	for (int b = 0; b < B; b++)
		g->cy[b] = g->labels ? g->labels[first + b] : g->label;
	dm_schedule_at(g->sched, dm_schedule_clamp(g->sched, t), &p);
	return dm_model_classifier_guidance(g->clf, g->clf_scale, &p, x0, eps,
	    x, g->cy, B);
}

/* The samplers' entry: rows with equal times go together. */
static int
denoise(void *ctx, float *x0, float *eps, const float *x, const double *t,
    int B, int64_t first)
{
	struct guide *g = ctx;

	if (guide_reserve(g, B) == -1)
		return -1;
	for (int b = 0, e; b < B; b = e) {
		for (e = b + 1; e < B && t[e] == t[b]; e++)
			;
		size_t o = (size_t)b * g->d;
		if (denoise_at(g, x0 + o, eps + o, x + o, t[b], e - b,
		    first + b) == -1)
			return -1;
		if (g->clf != NULL && classifier_guide(g, x0 + o, eps + o, x + o,
		    t[b], e - b, first + b) == -1)
			return -1;
	}
	return 0;
}

/* The samplers' hint of the times to come, passed to every expert. */
static int
prepare(void *ctx, const double *t, int n)
{
	struct guide *g = ctx;

	for (int k = 0; k < g->nex; k++)
		if (dm_model_prepare(g->ex[k].m, t, n) == -1)
			return -1;
	return 0;
}

/* The trajectory: x at every grid point, rows placed by their run index. */
struct traj {
	float *x;            /* (K + 1, N, d) */
	float *t;            /* K + 1 */
	int64_t N, first;
	size_t d;
};

static void
on_step(void *ctx, int k, double t, const float *x, int B)
{
	struct traj *tr = ctx;

	tr->t[k] = (float)t;
	memcpy(tr->x + ((size_t)k * tr->N + tr->first) * tr->d, x,
	    (size_t)B * tr->d * sizeof *x);
}

static struct dm_tensor *
load_tensor(const char *path, const char *name, struct dm_file **keep)
{
	struct dm_file *f;
	struct dm_tensor *t;

	if (dm_file_read(&f, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if ((t = dm_file_get(f, name)) == NULL)
		errx(1, "%s: no tensor '%s'", path, name);
	*keep = f;
	return t;
}

struct args {
	struct dm_common com;
	struct dm_sampler_opts so;
	int64_t n;
	int batch;
	const char *labels_path, *mask_path, *known_path, *x1_path;
	const char *traj_path, *png_path;
	int64_t label, negative;
	int label_all;               /* --label all: sample i has class i mod K */
	double guidance;
	char *lora[64];              /* --lora ADAPTER[:S], on the first model */
	int nlora;
	const char *clf_path, *sds_path;
	double clf_scale;
	struct dm_sds_opts sds;
};

/* "LO,HI" with 0 <= LO <= HI <= 1. */
static int
parse_range(const char *s, double *lo, double *hi)
{
	char buf[64], *comma;

	if (strlen(s) >= sizeof buf || (comma = strchr(s, ',')) == NULL)
		return dm_seterr("'%s' is not LO,HI", s);
	memcpy(buf, s, strlen(s) + 1);
	buf[comma - s] = '\0';
	if (dm_parse_double(buf, 0, 1, lo) == -1 ||
	    dm_parse_double(buf + (comma - s) + 1, 0, 1, hi) == -1)
		return -1;
	if (*lo > *hi)
		return dm_seterr("'%s': LO is above HI", s);
	return 0;
}

static void
parse_args(struct args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"atol", required_argument, NULL, OPT_ATOL},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"classifier", required_argument, NULL, OPT_CLASSIFIER},
		{"classifier-scale", required_argument, NULL, OPT_CLASSIFIER_SCALE},
		{"eta", required_argument, NULL, OPT_ETA},
		{"guidance", required_argument, NULL, OPT_GUIDANCE},
		{"help", no_argument, NULL, 'h'},
		{"known", required_argument, NULL, OPT_KNOWN},
		{"label", required_argument, NULL, OPT_LABEL},
		{"labels", required_argument, NULL, OPT_LABELS},
		{"lora", required_argument, NULL, OPT_LORA},
		{"mask", required_argument, NULL, OPT_MASK},
		{"negative", required_argument, NULL, OPT_NEGATIVE},
		{"output", required_argument, NULL, 'o'},
		{"png", required_argument, NULL, OPT_PNG},
		{"quiet", no_argument, NULL, 'q'},
		{"resample", required_argument, NULL, OPT_RESAMPLE},
		{"rho", required_argument, NULL, OPT_RHO},
		{"rtol", required_argument, NULL, OPT_RTOL},
		{"sampler", required_argument, NULL, OPT_SAMPLER},
		{"sds", required_argument, NULL, OPT_SDS},
		{"sds-lr", required_argument, NULL, OPT_SDS_LR},
		{"sds-steps", required_argument, NULL, OPT_SDS_STEPS},
		{"sds-t", required_argument, NULL, OPT_SDS_T},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"shift", required_argument, NULL, OPT_SHIFT},
		{"spacing", required_argument, NULL, OPT_SPACING},
		{"steps", required_argument, NULL, OPT_STEPS},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"threshold", required_argument, NULL, OPT_THRESHOLD},
		{"trajectory", required_argument, NULL, OPT_TRAJECTORY},
		{"version", no_argument, NULL, 'V'},
		{"x1", required_argument, NULL, OPT_X1},
		{NULL, 0, NULL, 0}
	};
	int ch, r;

	memset(a, 0, sizeof *a);
	dm_common_init(&a->com);
	dm_sampler_opts_defaults(&a->so);
	a->so.steps = 20;
	a->n = 1000;
	a->batch = 1024;
	a->label = a->negative = -1;
	a->guidance = 1;
	a->clf_scale = 1;
	dm_sds_opts_defaults(&a->sds);
	while ((ch = getopt_long(argc, argv, "hn:o:qV", longopts, NULL)) != -1) {
		if ((r = dm_common_option(&a->com, ch, optarg)) == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		switch (ch) {
		case 'h': usage(stdout); exit(0);
		case 'V': printf("dm-sample (dm toolkit) %s\n", DM_VERSION); exit(0);
		case 'n':
			if (dm_parse_int64(optarg, 1, INT64_C(1) << 40, &a->n) == -1)
				bad_option("-n");
			break;
		case OPT_ATOL:
			if (dm_parse_double(optarg, 1e-12, 1, &a->so.atol) == -1)
				bad_option("--atol");
			break;
		case OPT_BATCH:
			if (dm_parse_int(optarg, 1, 1 << 20, &a->batch) == -1)
				bad_option("--batch");
			break;
		case OPT_CLASSIFIER: a->clf_path = optarg; break;
		case OPT_CLASSIFIER_SCALE:
			if (dm_parse_double(optarg, -1000, 1000, &a->clf_scale) == -1)
				bad_option("--classifier-scale");
			break;
		case OPT_ETA:
			if (dm_parse_double(optarg, 0, 10, &a->so.eta) == -1)
				bad_option("--eta");
			break;
		case OPT_GUIDANCE:
			if (dm_parse_double(optarg, -100, 100, &a->guidance) == -1)
				bad_option("--guidance");
			break;
		case OPT_KNOWN: a->known_path = optarg; break;
		case OPT_LABEL:
			if (strcmp(optarg, "all") == 0)
				a->label_all = 1;
			else if (dm_parse_int64(optarg, 0, INT32_MAX, &a->label)
			    == -1)
				bad_option("--label");
			break;
		case OPT_LABELS: a->labels_path = optarg; break;
		case OPT_LORA:
			if (a->nlora == (int)(sizeof a->lora / sizeof a->lora[0]))
				errx(2, "--lora: too many adapters");
			a->lora[a->nlora++] = optarg;
			break;
		case OPT_MASK: a->mask_path = optarg; break;
		case OPT_NEGATIVE:
			if (dm_parse_int64(optarg, 0, INT32_MAX, &a->negative) == -1)
				bad_option("--negative");
			break;
		case OPT_PNG: a->png_path = optarg; break;
		case OPT_RESAMPLE:
			if (dm_parse_int(optarg, 1, 1000, &a->so.resample) == -1)
				bad_option("--resample");
			break;
		case OPT_RHO:
		case OPT_SHIFT:
			if (dm_parse_double(optarg, 1e-3, 1e3, &a->so.spacing_param) == -1)
				bad_option(ch == OPT_RHO ? "--rho" : "--shift");
			break;
		case OPT_RTOL:
			if (dm_parse_double(optarg, 1e-12, 1, &a->so.rtol) == -1)
				bad_option("--rtol");
			break;
		case OPT_SAMPLER:
			if (dm_sampler_parse(optarg, &a->so.kind) == -1)
				bad_option("--sampler");
			break;
		case OPT_SDS: a->sds_path = optarg; break;
		case OPT_SDS_LR:
			if (dm_parse_double(optarg, 1e-9, 100, &a->sds.lr) == -1)
				bad_option("--sds-lr");
			break;
		case OPT_SDS_STEPS:
			if (dm_parse_int(optarg, 1, 10000000, &a->sds.steps) == -1)
				bad_option("--sds-steps");
			break;
		case OPT_SDS_T:
			if (parse_range(optarg, &a->sds.t_lo, &a->sds.t_hi) == -1)
				bad_option("--sds-t");
			break;
		case OPT_SPACING:
			if (dm_spacing_parse(optarg, &a->so.spacing) == -1)
				bad_option("--spacing");
			break;
		case OPT_STEPS:
			if (dm_parse_int(optarg, 1, 100000, &a->so.steps) == -1)
				bad_option("--steps");
			break;
		case OPT_THRESHOLD:
			if (dm_parse_double(optarg, 1e-6, 0.999999, &a->so.threshold) == -1)
				bad_option("--threshold");
			break;
		case OPT_TRAJECTORY: a->traj_path = optarg; break;
		case OPT_X1: a->x1_path = optarg; break;
		default: usage_error();
		}
	}
	if (optind >= argc)
		usage_error();
	if ((a->mask_path == NULL) != (a->known_path == NULL)) {
		warnx("--mask and --known go together");
		usage_error();
	}
	if ((a->label >= 0 || a->label_all) && a->labels_path) {
		warnx("give --label or --labels, not both");
		usage_error();
	}
	if (a->clf_path && a->label < 0 && !a->label_all &&
	    a->labels_path == NULL) {
		warnx("--classifier needs a target class (--label or --labels)");
		usage_error();
	}
	if (a->sds_path && (a->x1_path || a->mask_path || a->traj_path)) {
		warnx("--sds optimises its own tensor: no --x1, --mask or "
		    "--trajectory");
		usage_error();
	}
	if (a->traj_path && a->so.kind == DM_SAMPLER_ADAPTIVE) {
		warnx("--trajectory needs a fixed grid; adaptive has none");
		usage_error();
	}
	a->so.seed = a->com.seed;
	a->sds.seed = a->com.seed;
}

/* A per-row tensor of N rows x d (or one row of d broadcast). */
static float *
rows_f32(const char *path, int64_t N, size_t d, const char *what)
{
	struct dm_file *f;
	struct dm_tensor *t = load_tensor(path, "x", &f);
	float *out;

	if (dm_tensor_convert(t, DM_DTYPE_F32) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	size_t n = dm_tensor_numel(t);
	if (n != d && n != (size_t)N * d)
		errx(1, "%s: %s has %zu values; need %zu (one sample) or %zu "
		    "(one per sample)", path, what, n, d, (size_t)N * d);
	if ((out = malloc((size_t)N * d * sizeof *out)) == NULL)
		err(1, NULL);
	for (int64_t i = 0; i < N; i++)
		memcpy(out + (size_t)i * d, (float *)t->data + (n == d ? 0 :
		    (size_t)i * d), d * sizeof *out);
	dm_file_free(f);
	return out;
}

/* The image grid: `cols` images a row. */
static int
write_png(const char *path, const float *x, int64_t N, const struct dm_model *m,
    int cols)
{
	struct dm_grid g;
	int C, H, W;

	if (m->cfg.ndim != 3)
		return dm_seterr("--png needs an image model (C x H x W)");
	C = (int)m->cfg.shape[0];
	H = (int)m->cfg.shape[1];
	W = (int)m->cfg.shape[2];
	if (dm_grid_layout(&g, N, cols, H, W, H < 64 ? 2 : 1, 2) == -1)
		return -1;
	struct dm_canvas *im = dm_canvas_new(g.w, g.h, 0xffffff);
	if (im == NULL)
		return -1;
	for (int64_t i = 0; i < N; i++)
		dm_grid_put(im, &g, (int)i, x + (size_t)i * C * H * W, C, H, W,
		    -1, 1);
	int rc = dm_png_write(im, path);
	dm_canvas_free(im);
	return rc;
}

/* The --classifier model: a classifier (network or gmm with classes) of
 * the denoiser's data shape and schedule, with the target labels in its
 * range. */
static void
load_classifier(struct guide *g, const struct args *a, const char *model_path)
{
	char s1[512], s2[512];
	struct dm_model *c;

	if (dm_model_load(&c, a->clf_path) == -1)
		errx(1, "%s: %s", a->clf_path, dm_errstr());
	g->clf = c;
	g->clf_scale = a->clf_scale;
	if (!dm_model_is_classifier(c))
		errx(1, "%s: not a classifier (train one with dm-train "
		    "--objective classifier, or a gmm with classes)", a->clf_path);
	if (dm_model_in_size(c) != g->d)
		errx(1, "%s: data shape differs from %s", a->clf_path, model_path);
	if (dm_schedule_to_string(&c->sched, s1, sizeof s1) == -1 ||
	    dm_schedule_to_string(g->sched, s2, sizeof s2) == -1)
		errx(1, "%s", dm_errstr());
	if (strcmp(s1, s2) != 0)
		errx(1, "%s: schedule %s differs from the model's %s",
		    a->clf_path, s1, s2);
	if (a->label >= c->cfg.classes)
		errx(1, "--label %lld: the classifier has %d classes",
		    (long long)a->label, c->cfg.classes);
}

int
main(int argc, char **argv)
{
	struct args a;
	struct guide g;
	struct traj tr = {0};
	struct dm_file *lab_file = NULL, *out;
	int64_t N, nfe = 0, *labels = NULL, *own_labels = NULL;
	float *x, *mask = NULL, *known = NULL;

	dm_tool_init(argv);
	parse_args(&a, argc, argv);
	dm_threads_set(a.com.threads);
	if (a.png_path == NULL && dm_check_binary_output(a.com.output) == -1)
		errx(1, "%s", dm_errstr());
	memset(&g, 0, sizeof g);
	g.nex = argc - optind;
	if ((g.ex = calloc((size_t)g.nex, sizeof *g.ex)) == NULL)
		err(1, NULL);
	for (int k = 0; k < g.nex; k++) {
		char *path = argv[optind + k], *colon = strrchr(path, ':');
		g.ex[k].w = 1;
		if (colon && colon != path && dm_parse_double(colon + 1, -100,
		    100, &g.ex[k].w) == 0)
			*colon = '\0';
		if (dm_model_load(&g.ex[k].m, path) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		if (k > 0 && dm_model_in_size(g.ex[k].m) != dm_model_in_size(g.ex[0].m))
			errx(1, "%s: data shape differs from %s", path, argv[optind]);
		if (g.ex[k].m->cfg.head != DM_HEAD_FIELD)
			errx(1, "%s: a classifier is not a denoiser", path);
	}
	struct dm_model *m0 = g.ex[0].m;
	/* adapters: W' = W + s (alpha/r) B A in the model's own weights */
	uint64_t base_hash = a.nlora > 0 ? dm_lora_model_hash(m0) : 0;
	for (int k = 0; k < a.nlora; k++) {
		char *path = a.lora[k], *colon = strrchr(path, ':');
		double s = 1;
		struct dm_lora *l;
		if (colon && colon != path && dm_parse_double(colon + 1, -1e6,
		    1e6, &s) == 0)
			*colon = '\0';
		if (m0->cfg.arch == DM_ARCH_GMM)
			errx(1, "%s: a gmm model has no layers to adapt",
			    argv[optind]);
		if (dm_lora_load(&l, path, m0) == -1 ||
		    dm_lora_check_base(l, base_hash) == -1 ||
		    dm_lora_merge(m0, l, s) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		dm_lora_free(l);
	}
	g.sched = &m0->sched;
	g.d = dm_model_in_size(m0);
	g.classes = m0->cfg.classes;
	g.label = a.label;
	g.negative = a.negative;
	g.guidance = a.guidance;
	if (a.clf_path)
		load_classifier(&g, &a, argv[optind]);
	if ((((a.label >= 0 || a.label_all || a.labels_path) && g.clf == NULL) ||
	    a.negative >= 0 || a.guidance != 1) && g.classes == 0)
		errx(1, "%s: the model is unconditional; labels and guidance need "
		    "a class-conditional model", argv[optind]);
	if (a.label >= g.classes && a.label >= 0 && g.classes > 0)
		errx(1, "--label %lld: the model has %d classes", (long long)a.label,
		    g.classes);
	if (a.negative >= g.classes && a.negative >= 0)
		errx(1, "--negative %lld: the model has %d classes",
		    (long long)a.negative, g.classes);

	/* starting points: given x1 (or the SDS start), or per-sample noise */
	const char *init = a.x1_path ? a.x1_path : a.sds_path;
	if (init) {
		struct dm_file *f;
		struct dm_tensor *t = load_tensor(init, "x", &f);
		if (dm_tensor_convert(t, DM_DTYPE_F32) == -1)
			errx(1, "%s: %s", init, dm_errstr());
		if (t->ndim < 1 || t->shape[0] < 1 ||
		    dm_tensor_numel(t) % g.d != 0 ||
		    dm_tensor_numel(t) / (size_t)t->shape[0] != g.d)
			errx(1, "%s: x does not hold rows of the model's shape",
			    init);
		N = t->shape[0];
		if ((x = malloc(t->nbytes)) == NULL)
			err(1, NULL);
		memcpy(x, t->data, t->nbytes);
		dm_file_free(f);
	} else {
		N = a.n;
		if ((x = malloc((size_t)N * g.d * sizeof *x)) == NULL)
			err(1, NULL);
		for (int64_t i = 0; i < N; i += a.batch) {
			int B = (int)(N - i < a.batch ? N - i : a.batch);
			dm_sample_noise(x + (size_t)i * g.d, B, g.d, a.com.seed, i);
		}
	}
	if (a.labels_path) {
		struct dm_tensor *t = load_tensor(a.labels_path, "y", &lab_file);
		if (dm_tensor_convert(t, DM_DTYPE_I64) == -1)
			errx(1, "%s: %s", a.labels_path, dm_errstr());
		if ((int64_t)dm_tensor_numel(t) != N)
			errx(1, "%s: %zu labels for %lld samples", a.labels_path,
			    dm_tensor_numel(t), (long long)N);
		labels = t->data;
		int lim = g.classes > 0 ? g.classes : g.clf->cfg.classes;
		for (int64_t i = 0; i < N; i++)
			if (labels[i] < 0 || labels[i] >= lim || (g.clf &&
			    labels[i] >= g.clf->cfg.classes))
				errx(1, "%s: label %lld out of range 0..%d",
				    a.labels_path, (long long)labels[i], lim - 1);
		g.labels = labels;
	} else if (a.label_all) {
		int lim = g.classes > 0 ? g.classes : g.clf->cfg.classes;
		if ((own_labels = malloc((size_t)N * sizeof *own_labels)) == NULL)
			err(1, NULL);
		for (int64_t i = 0; i < N; i++)
			own_labels[i] = i % lim;
		g.labels = labels = own_labels;
	}
	if (a.mask_path) {
		mask = rows_f32(a.mask_path, N, g.d, "the mask");
		known = rows_f32(a.known_path, N, g.d, "the known values");
	}
	if (a.traj_path) {
		tr.N = N;
		tr.d = g.d;
		tr.x = malloc(((size_t)a.so.steps + 1) * (size_t)N * g.d * sizeof *tr.x);
		tr.t = malloc(((size_t)a.so.steps + 1) * sizeof *tr.t);
		if (tr.x == NULL || tr.t == NULL)
			err(1, NULL);
		a.so.on_step = on_step;
		a.so.on_step_ctx = &tr;
	}

	struct dm_denoiser D = {denoise, &g, g.d, g.sched, prepare};
	struct dm_progress prog;
	double t0 = dm_now();
	dm_progress_start(&prog, "sample", N, a.com.quiet);
	for (int64_t i = 0; i < N; i += a.batch) {
		int B = (int)(N - i < a.batch ? N - i : a.batch);
		int64_t bn;
		a.so.mask = mask ? mask + (size_t)i * g.d : NULL;
		a.so.known = known ? known + (size_t)i * g.d : NULL;
		tr.first = i;
		if ((a.sds_path ? dm_sds_run(&D, &a.sds, x + (size_t)i * g.d, B,
		    i, &bn) : dm_sample_run(&D, &a.so, x + (size_t)i * g.d, B, i,
		    &bn)) == -1)
			errx(1, "%s: %s", argv[optind], dm_errstr());
		if (bn > nfe)
			nfe = bn;
		dm_progress_update(&prog, i + B, NULL);
	}
	dm_progress_end(&prog);

	/* the samples, in the model's data shape */
	int64_t shape[5] = {N};
	for (int i = 0; i < m0->cfg.ndim; i++)
		shape[i + 1] = m0->cfg.shape[i];
	if ((out = dm_file_new()) == NULL)
		errx(1, "%s", dm_errstr());
	struct dm_tensor *tx = dm_tensor_view(DM_DTYPE_F32, m0->cfg.ndim + 1,
	    shape, x);
	char meta[256];
	if (a.sds_path)
		snprintf(meta, sizeof meta, "sds steps=%d lr=%g t=%g,%g nfe=%lld "
		    "seed=%llu", a.sds.steps, a.sds.lr, a.sds.t_lo, a.sds.t_hi,
		    (long long)nfe, (unsigned long long)a.com.seed);
	else
		snprintf(meta, sizeof meta, "%s steps=%d spacing=%s nfe=%lld "
		    "seed=%llu", dm_sampler_name(a.so.kind), a.so.steps,
		    dm_spacing_name(a.so.spacing), (long long)nfe,
		    (unsigned long long)a.com.seed);
	if (tx == NULL || dm_tensor_set_name(tx, "x") == -1 ||
	    dm_file_add(out, tx) == -1 || dm_file_meta_set(out, "dm.kind", "data") == -1 ||
	    dm_file_meta_set(out, "dm.sampler", meta) == -1 ||
	    dm_file_meta_set(out, "dm.version", DM_VERSION) == -1)
		errx(1, "%s", dm_errstr());
	if (labels || a.label >= 0) {
		struct dm_tensor *ty = dm_tensor_new_dtype(DM_DTYPE_I64, 1, &N);
		if (ty == NULL || dm_tensor_set_name(ty, "y") == -1)
			errx(1, "%s", dm_errstr());
		for (int64_t i = 0; i < N; i++)
			((int64_t *)ty->data)[i] = labels ? labels[i] : a.label;
		if (dm_file_add(out, ty) == -1)
			errx(1, "%s", dm_errstr());
	}
	/* --label all: one class a column */
	int cols = a.label_all ? (g.classes > 0 ? g.classes : g.clf->cfg.classes)
	    : 8;
	if (a.png_path && write_png(a.png_path, x, N, m0, cols) == -1)
		errx(1, "%s: %s", a.png_path, dm_errstr());
	if ((a.png_path == NULL || a.com.output != NULL) &&
	    dm_file_write(out, a.com.output, 0) == -1)
		errx(1, "%s: %s", a.com.output ? a.com.output : "stdout", dm_errstr());
	if (a.traj_path) {
		struct dm_file *tf = dm_file_new();
		int64_t ts[6] = {a.so.steps + 1, N}, k1 = a.so.steps + 1;
		for (int i = 0; i < m0->cfg.ndim; i++)
			ts[i + 2] = m0->cfg.shape[i];
		struct dm_tensor *a1 = dm_tensor_view(DM_DTYPE_F32, m0->cfg.ndim + 2,
		    ts, tr.x);
		struct dm_tensor *a2 = dm_tensor_view(DM_DTYPE_F32, 1, &k1, tr.t);
		if (tf == NULL || a1 == NULL || a2 == NULL ||
		    dm_tensor_set_name(a1, "x") == -1 || dm_tensor_set_name(a2, "t") == -1 ||
		    dm_file_add(tf, a1) == -1 || dm_file_add(tf, a2) == -1 ||
		    dm_file_meta_set(tf, "dm.kind", "trajectory") == -1 ||
		    dm_file_meta_set(tf, "dm.sampler", meta) == -1 ||
		    dm_file_write(tf, a.traj_path, 0) == -1)
			errx(1, "%s: %s", a.traj_path, dm_errstr());
		dm_file_free(tf);
	}
	if (!a.com.quiet)
		fprintf(stderr, "dm-sample: %lld samples, %s, %lld NFE per sample, "
		    "%.2f s\n", (long long)N, a.sds_path ? "sds" :
		    dm_sampler_name(a.so.kind),
		    (long long)nfe, dm_now() - t0);
	dm_file_free(out);
	dm_file_free(lab_file);
	for (int k = 0; k < g.nex; k++)
		dm_model_free(g.ex[k].m);
	dm_model_free(g.clf);
	free(g.cy);
	free(g.ex); free(g.xx); free(g.x0x); free(g.epsx); free(g.yy);
	free(g.acc0); free(g.acce);
	free(x); free(mask); free(known); free(tr.x); free(tr.t);
	free(own_labels);
	if (fflush(stdout) == EOF || ferror(stdout))
		err(1, "stdout");
	return 0;
}
