/* dm-train — train a denoiser, a flow or a time-conditioned classifier on
 * a data file.  The manual is dm-train(1); the mathematics is SPEC.md §5
 * and the loop is lib/train.c. */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_ARCH = DM_OPT_FIRST_TOOL,
	OPT_ARCH_OPTS,
	OPT_BASE,
	OPT_BATCH,
	OPT_CFG_DROP,
	OPT_CKPT,
	OPT_CKPT_EVERY,
	OPT_CLASSES,
	OPT_CLIP,
	OPT_CM,
	OPT_CM_LOSS,
	OPT_CM_SIGMA,
	OPT_CM_STEPS,
	OPT_CM_TARGET,
	OPT_CM_WEIGHT,
	OPT_COUPLING,
	OPT_EMA,
	OPT_INIT,
	OPT_LORA,
	OPT_LORA_ALPHA,
	OPT_LORA_TARGETS,
	OPT_LR,
	OPT_LR_SCHEDULE,
	OPT_OBJECTIVE,
	OPT_PAIRS,
	OPT_RESUME,
	OPT_SCHEDULE,
	OPT_SOURCE,
	OPT_STEPS,
	OPT_T_SAMPLING,
	OPT_UNTIL,
	OPT_VAL,
	OPT_VAL_EVERY,
	OPT_VAL_FRAC,
	OPT_WARMUP,
	OPT_WD,
	OPT_WEIGHTING
};

static volatile sig_atomic_t stop_signal;

static void
on_signal(int sig)
{
	stop_signal = sig;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-train [-hqV] [--arch mlp|unet] [--arch-opts K=V,...] "
	    "[--batch B]\n"
	    "                [--cfg-drop P] [--ckpt FILE] [--ckpt-every K] "
	    "[--classes K|auto]\n"
	    "                [--cm improved|original] [--cm-loss L] "
	    "[--cm-sigma S] [--cm-steps C]\n"
	    "                [--cm-target T] [--cm-weight W]\n"
	    "                [--clip C] [--coupling independent|ot] [--ema D] "
	    "[--init MODEL]\n"
	    "                [--log FILE] [--lora R --base MODEL [--lora-alpha A] "
	    "[--lora-targets P,...]]\n"
	    "                [--lr LR] [--lr-schedule cosine|constant]\n"
	    "                [--objective eps|x0|v|flow|score|classifier|consistency] "
	    "[-o MODEL]\n"
	    "                [--pairs | --source FILE] [--resume FILE] "
	    "[--schedule SPEC]\n"
	    "                [--seed N] [--steps N] [--t-sampling "
	    "uniform|discrete|logit-normal[:m,s]|fixed:t]\n"
	    "                [--threads N] [--until N] [--val FILE | "
	    "--val-frac F]\n"
	    "                [--val-every K] [--warmup N] [--wd W]\n"
	    "                [--weighting "
	    "uniform|sigma2|snr|min-snr[:gamma]|trunc-snr] DATA\n");
}

static void
usage_error(const char *fmt, const char *arg)
{
	if (fmt != NULL)
		warnx(fmt, arg);
	usage(stderr);
	exit(2);
}

struct opts {
	struct dm_train_opts t;
	struct dm_common com;
	enum dm_arch arch;
	const char *arch_opts, *schedule, *source, *val, *ckpt, *resume, *init;
	const char *base, *lora_targets;   /* --lora: adapter training */
	int lora;
	double lora_alpha;
	int pairs, classes;          /* classes: -1 = auto */
	double val_frac;
	int64_t val_every, ckpt_every, until;
};

/* A data file's arrays, F32 (and I64 labels), with its sample shape. */
struct data {
	struct dm_file *f;
	int64_t n;
	int ndim;                    /* sample dims */
	int64_t shape[DM_MAX_DIMS];
	size_t d;
	float *x0, *x1;
	int64_t *y;
};

static float *
get_rows(struct dm_file *f, const char *path, const char *name, struct data *D)
{
	struct dm_tensor *t = dm_file_get(f, name);

	if (t == NULL)
		errx(1, "%s: no tensor '%s'", path, name);
	if (!dm_dtype_is_float(t->dtype))
		errx(1, "%s: %s is %s, not a float tensor", path, name,
		    dm_dtype_name(t->dtype));
	if ((t = dm_file_get_f32(f, name)) == NULL)
		errx(1, "%s: %s", path, dm_errstr());
	if (t->ndim < 2)
		errx(1, "%s: %s has %d dimensions (need [N, ...])", path, name,
		    t->ndim);
	if (dm_data_check_finite(t) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (D->d == 0) {
		D->n = t->shape[0];
		D->ndim = t->ndim - 1;
		memcpy(D->shape, t->shape + 1, (size_t)D->ndim * sizeof *D->shape);
		D->d = dm_tensor_numel(t) / (size_t)(D->n > 0 ? D->n : 1);
		if (D->n < 1)
			errx(1, "%s: %s has no rows", path, name);
	} else if (t->ndim - 1 != D->ndim || t->shape[0] != D->n ||
	    memcmp(D->shape, t->shape + 1, (size_t)D->ndim * sizeof *D->shape))
		errx(1, "%s: %s does not have the shape of x0", path, name);
	return t->data;
}

static void
read_data(struct data *D, const char *path, int pairs, int labels)
{
	memset(D, 0, sizeof *D);
	if (dm_file_read(&D->f, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (pairs) {
		D->x0 = get_rows(D->f, path, "x0", D);
		D->x1 = get_rows(D->f, path, "x1", D);
	} else
		D->x0 = get_rows(D->f, path, "x", D);
	if (labels) {
		struct dm_tensor *y = dm_file_get(D->f, "y");
		if (y == NULL)
			errx(1, "%s: class labels asked for, but no tensor 'y'",
			    path);
		if (y->ndim != 1 || y->shape[0] != D->n)
			errx(1, "%s: y must be [%lld]", path, (long long)D->n);
		if (y->dtype != DM_DTYPE_I64 &&
		    dm_tensor_convert(y, DM_DTYPE_I64) == -1)
			errx(1, "%s: y: %s", path, dm_errstr());
		D->y = y->data;
	}
}

/* FNV-1a, to recognise the same data on --resume. */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

static uint64_t
data_hash(const struct data *D)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	if (D->x0 == NULL)
		return 0;
	h = fnv(h, D->x0, (size_t)D->n * D->d * sizeof(float));
	if (D->x1 != NULL)
		h = fnv(h, D->x1, (size_t)D->n * D->d * sizeof(float));
	if (D->y != NULL)
		h = fnv(h, D->y, (size_t)D->n * sizeof(int64_t));
	return h;
}

static void
write_checkpoint(const struct dm_trainer *tr, const char *fp, const char *path)
{
	struct dm_file *f = dm_file_new();

	if (f == NULL || dm_trainer_checkpoint(tr, fp, f) == -1 ||
	    dm_file_write(f, path, 0) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	dm_file_free(f);
}

static void
parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"arch", required_argument, NULL, OPT_ARCH},
		{"arch-opts", required_argument, NULL, OPT_ARCH_OPTS},
		{"base", required_argument, NULL, OPT_BASE},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"cfg-drop", required_argument, NULL, OPT_CFG_DROP},
		{"ckpt", required_argument, NULL, OPT_CKPT},
		{"ckpt-every", required_argument, NULL, OPT_CKPT_EVERY},
		{"classes", required_argument, NULL, OPT_CLASSES},
		{"clip", required_argument, NULL, OPT_CLIP},
		{"cm", required_argument, NULL, OPT_CM},
		{"cm-loss", required_argument, NULL, OPT_CM_LOSS},
		{"cm-sigma", required_argument, NULL, OPT_CM_SIGMA},
		{"cm-steps", required_argument, NULL, OPT_CM_STEPS},
		{"cm-target", required_argument, NULL, OPT_CM_TARGET},
		{"cm-weight", required_argument, NULL, OPT_CM_WEIGHT},
		{"coupling", required_argument, NULL, OPT_COUPLING},
		{"ema", required_argument, NULL, OPT_EMA},
		{"help", no_argument, NULL, 'h'},
		{"init", required_argument, NULL, OPT_INIT},
		{"log", required_argument, NULL, DM_OPT_LOG},
		{"lora", required_argument, NULL, OPT_LORA},
		{"lora-alpha", required_argument, NULL, OPT_LORA_ALPHA},
		{"lora-targets", required_argument, NULL, OPT_LORA_TARGETS},
		{"lr", required_argument, NULL, OPT_LR},
		{"lr-schedule", required_argument, NULL, OPT_LR_SCHEDULE},
		{"objective", required_argument, NULL, OPT_OBJECTIVE},
		{"output", required_argument, NULL, 'o'},
		{"pairs", no_argument, NULL, OPT_PAIRS},
		{"quiet", no_argument, NULL, 'q'},
		{"resume", required_argument, NULL, OPT_RESUME},
		{"schedule", required_argument, NULL, OPT_SCHEDULE},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"steps", required_argument, NULL, OPT_STEPS},
		{"t-sampling", required_argument, NULL, OPT_T_SAMPLING},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"until", required_argument, NULL, OPT_UNTIL},
		{"val", required_argument, NULL, OPT_VAL},
		{"val-every", required_argument, NULL, OPT_VAL_EVERY},
		{"val-frac", required_argument, NULL, OPT_VAL_FRAC},
		{"version", no_argument, NULL, 'V'},
		{"warmup", required_argument, NULL, OPT_WARMUP},
		{"wd", required_argument, NULL, OPT_WD},
		{"weighting", required_argument, NULL, OPT_WEIGHTING},
		{NULL, 0, NULL, 0}
	};
	int ch, r, objective_set = 0, ncm = 0;
	const char *cm_key[8], *cm_val[8], *cm_preset = NULL;

	dm_train_opts_defaults(&o->t);
	dm_common_init(&o->com);
	o->arch = DM_ARCH_MLP;
	o->schedule = NULL;
	o->val_every = 100;
	o->ckpt_every = -1;
	o->until = -1;
	while ((ch = getopt_long(argc, argv, "ho:qV", longopts, NULL)) != -1) {
		if ((r = dm_common_option(&o->com, ch, optarg)) == 1)
			continue;
		if (r == -1)
			errx(2, "%s", dm_errstr());
		const char *a = optarg;
		switch (ch) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("dm-train (dm toolkit) %s\n", DM_VERSION);
			exit(0);
		case OPT_ARCH:
			if (dm_arch_parse(a, &o->arch) == -1 ||
			    o->arch == DM_ARCH_GMM)
				errx(2, "--arch: '%s' is not mlp or unet", a);
			break;
		case OPT_ARCH_OPTS:
			o->arch_opts = a;
			break;
		case OPT_BASE:
			o->base = a;
			break;
		case OPT_BATCH:
			if (dm_parse_int(a, 1, 1 << 20, &o->t.batch) == -1)
				errx(2, "--batch: %s", dm_errstr());
			break;
		case OPT_CFG_DROP:
			if (dm_parse_double(a, 0, 1, &o->t.cfg_drop) == -1)
				errx(2, "--cfg-drop: %s", dm_errstr());
			break;
		case OPT_CKPT:
			o->ckpt = a;
			break;
		case OPT_CKPT_EVERY:
			if (dm_parse_int64(a, 0, INT64_MAX, &o->ckpt_every) == -1)
				errx(2, "--ckpt-every: %s", dm_errstr());
			break;
		case OPT_CLASSES:
			if (strcmp(a, "auto") == 0)
				o->classes = -1;
			else if (dm_parse_int(a, 0, 1000000, &o->classes) == -1 ||
			    o->classes == 1)
				errx(2, "--classes: '%s' is not 0, 2 or more, or "
				    "auto", a);
			break;
		case OPT_CLIP:
			if (dm_parse_double(a, 0, 1e30, &o->t.clip) == -1)
				errx(2, "--clip: %s", dm_errstr());
			break;
		case OPT_CM:
			if (strcmp(a, "improved") != 0 && strcmp(a, "original") != 0)
				errx(2, "--cm: '%s' is not improved or original", a);
			cm_preset = a;
			break;
		case OPT_CM_LOSS:
		case OPT_CM_SIGMA:
		case OPT_CM_STEPS:
		case OPT_CM_TARGET:
		case OPT_CM_WEIGHT:
			if (ncm == 8)
				errx(2, "too many --cm-* options");
			cm_key[ncm] = ch == OPT_CM_LOSS ? "loss" : ch == OPT_CM_SIGMA ?
			    "sigma" : ch == OPT_CM_STEPS ? "steps" : ch ==
			    OPT_CM_TARGET ? "target" : "weight";
			cm_val[ncm++] = a;
			break;
		case OPT_COUPLING:
			if (strcmp(a, "independent") == 0)
				o->t.coupling = DM_COUPLING_INDEPENDENT;
			else if (strcmp(a, "ot") == 0)
				o->t.coupling = DM_COUPLING_OT;
			else
				errx(2, "--coupling: '%s' is not independent or "
				    "ot", a);
			break;
		case OPT_EMA:
			if (dm_parse_double(a, 0, 1, &o->t.ema) == -1 ||
			    o->t.ema >= 1)
				errx(2, "--ema: '%s' is not in [0, 1)", a);
			break;
		case OPT_INIT:
			o->init = a;
			break;
		case OPT_LORA:
			if (dm_parse_int(a, 1, 1 << 20, &o->lora) == -1)
				errx(2, "--lora: %s", dm_errstr());
			break;
		case OPT_LORA_ALPHA:
			if (dm_parse_double(a, 1e-30, 1e30, &o->lora_alpha) == -1)
				errx(2, "--lora-alpha: %s", dm_errstr());
			break;
		case OPT_LORA_TARGETS:
			o->lora_targets = a;
			break;
		case OPT_LR:
			if (dm_parse_double(a, -1e30, 1e30, &o->t.lr) == -1)
				errx(2, "--lr: %s", dm_errstr());
			if (!(o->t.lr > 0))
				errx(2, "--lr: %s is not positive", a);
			break;
		case OPT_LR_SCHEDULE:
			if (strcmp(a, "cosine") == 0)
				o->t.lr_schedule = DM_LR_COSINE;
			else if (strcmp(a, "constant") == 0)
				o->t.lr_schedule = DM_LR_CONSTANT;
			else
				errx(2, "--lr-schedule: '%s' is not cosine or "
				    "constant", a);
			break;
		case OPT_OBJECTIVE:
			if (dm_objective_parse(a, &o->t.objective) == -1)
				errx(2, "--objective: %s", dm_errstr());
			objective_set = 1;
			break;
		case OPT_PAIRS:
			o->pairs = 1;
			break;
		case OPT_RESUME:
			o->resume = a;
			break;
		case OPT_SCHEDULE:
			o->schedule = a;
			break;
		case OPT_SOURCE:
			o->source = a;
			break;
		case OPT_STEPS:
			if (dm_parse_int64(a, 1, INT64_C(1) << 40, &o->t.steps) == -1)
				errx(2, "--steps: %s", dm_errstr());
			break;
		case OPT_T_SAMPLING:
			if (dm_tsampling_parse(a, &o->t) == -1)
				errx(2, "--t-sampling: %s", dm_errstr());
			break;
		case OPT_UNTIL:
			if (dm_parse_int64(a, 1, INT64_C(1) << 40, &o->until) == -1)
				errx(2, "--until: %s", dm_errstr());
			break;
		case OPT_VAL:
			o->val = a;
			break;
		case OPT_VAL_EVERY:
			if (dm_parse_int64(a, 1, INT64_MAX, &o->val_every) == -1)
				errx(2, "--val-every: %s", dm_errstr());
			break;
		case OPT_VAL_FRAC:
			if (dm_parse_double(a, 0, 1, &o->val_frac) == -1 ||
			    !(o->val_frac > 0 && o->val_frac < 1))
				errx(2, "--val-frac: '%s' is not in (0, 1)", a);
			break;
		case OPT_WARMUP:
			if (dm_parse_int64(a, 0, INT64_C(1) << 40, &o->t.warmup) == -1)
				errx(2, "--warmup: %s", dm_errstr());
			break;
		case OPT_WD:
			if (dm_parse_double(a, 0, 1e6, &o->t.wd) == -1)
				errx(2, "--wd: %s", dm_errstr());
			break;
		case OPT_WEIGHTING:
			if (dm_weighting_parse(a, &o->t) == -1)
				errx(2, "--weighting: %s", dm_errstr());
			break;
		default:
			usage_error(NULL, NULL);
		}
	}
	o->t.seed = o->com.seed;
	/* a preset first, then the single options over it */
	if (cm_preset != NULL)
		dm_cm_opts_preset(&o->t.cm, strcmp(cm_preset, "improved") == 0);
	for (int i = 0; i < ncm; i++)
		if (dm_cm_opts_parse(&o->t.cm, cm_key[i], cm_val[i]) == -1)
			errx(2, "--cm-%s: %s", cm_key[i], dm_errstr());
	if ((cm_preset != NULL || ncm > 0) &&
	    o->t.objective != DM_OBJECTIVE_CONSISTENCY)
		errx(2, "--cm options need --objective consistency");
	if (argc - optind != 1)
		usage_error(argc - optind ? "one data file only" :
		    "no data file", NULL);
	if (o->source != NULL && o->pairs)
		errx(2, "--source and --pairs exclude each other");
	if ((o->source != NULL || o->pairs) &&
	    o->t.objective != DM_OBJECTIVE_FLOW)
		errx(2, "--source and --pairs need --objective flow");
	if (o->t.coupling == DM_COUPLING_OT &&
	    o->t.objective != DM_OBJECTIVE_FLOW)
		errx(2, "--coupling ot needs --objective flow");
	if (o->t.coupling == DM_COUPLING_OT && o->pairs)
		errx(2, "--coupling ot: --pairs fixes the pairs already");
	if (o->val != NULL && o->val_frac > 0)
		errx(2, "--val and --val-frac exclude each other");
	if (o->resume != NULL && o->init != NULL)
		errx(2, "--resume and --init exclude each other");
	if (o->until > o->t.steps)
		errx(2, "--until is past --steps");
	if ((o->lora > 0) != (o->base != NULL))
		errx(2, "--lora and --base go together");
	if (o->base != NULL && (o->schedule != NULL || o->arch_opts != NULL ||
	    o->init != NULL || o->classes != 0))
		errx(2, "--base: the architecture, schedule and classes come "
		    "from the base model");
	if (o->lora_alpha == 0)
		o->lora_alpha = o->lora;
	if (o->t.objective == DM_OBJECTIVE_CLASSIFIER && o->classes == 0)
		o->classes = -1;
	if (o->schedule == NULL)
		o->schedule = o->t.objective == DM_OBJECTIVE_FLOW ? "rf" :
		    o->t.objective == DM_OBJECTIVE_CONSISTENCY ? "edm" : "linear";
	if (o->base != NULL && !objective_set)
		o->t.objective = (enum dm_objective)-1;	/* the base's */
	if (o->t.objective == DM_OBJECTIVE_CONSISTENCY && (o->val != NULL ||
	    o->val_frac > 0))
		errx(2, "--objective consistency has no validation loss");
}

/* x0 of train rows then val rows in one array, so that rows index both. */
static void
join(struct data *D, const struct data *V)
{
	size_t a = (size_t)D->n * D->d, b = (size_t)V->n * V->d, ab;
	float *x0, *x1 = NULL;
	int64_t *y = NULL;

	if (dm_add_size(a, b, &ab) == -1 ||
	    dm_mul_size(ab, sizeof(float), &ab) == -1 ||
	    (x0 = malloc(ab)) == NULL || (D->x1 && (x1 = malloc(ab)) == NULL) ||
	    (D->y && (y = malloc((size_t)(D->n + V->n) * sizeof *y)) == NULL))
		err(1, "validation data");
	memcpy(x0, D->x0, a * sizeof(float));
	memcpy(x0 + a, V->x0, b * sizeof(float));
	if (x1) {
		memcpy(x1, D->x1, a * sizeof(float));
		memcpy(x1 + a, V->x1, b * sizeof(float));
	}
	if (y) {
		memcpy(y, D->y, (size_t)D->n * sizeof *y);
		memcpy(y + D->n, V->y, (size_t)V->n * sizeof *y);
	}
	D->x0 = x0;
	D->x1 = x1;
	D->y = y;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct data D, V, S;
	struct dm_model_config cfg;
	struct dm_model *m;
	struct dm_trainer *tr;
	struct dm_schedule sched;
	struct dm_train_data td;
	int64_t *rows = NULL, *vrows = NULL, nrows = 0, nval = 0;
	char canon[256], cfgtext[4096], topts[2048], *fp;
	char ckbuf[4096];
	const char *in, *ckpt;
	int K;

	dm_tool_init(argv);
	memset(&V, 0, sizeof V);
	memset(&S, 0, sizeof S);
	parse_opts(&o, argc, argv);
	/* --base: the model to adapt sets the architecture and the rest */
	struct dm_model *base = NULL;
	struct dm_lora *lora = NULL;
	if (o.base != NULL) {
		if (dm_model_load(&base, o.base) == -1)
			errx(1, "%s: %s", o.base, dm_errstr());
		if (base->cfg.arch == DM_ARCH_GMM)
			errx(1, "%s: a gmm model has no layers to adapt", o.base);
		o.arch = base->cfg.arch;
		o.classes = base->cfg.classes;
		o.schedule = base->cfg.schedule;
		if ((int)o.t.objective == -1)
			o.t.objective = base->cfg.head == DM_HEAD_CLASSIFIER ?
			    DM_OBJECTIVE_CLASSIFIER :
			    (enum dm_objective)base->cfg.pred;
	}
	in = argv[optind];
	if (dm_schedule_from_string(&sched, o.schedule) == -1)
		errx(2, "--schedule: %s", dm_errstr());
	if (dm_schedule_to_string(&sched, canon, sizeof canon) == -1)
		errx(2, "--schedule: %s", dm_errstr());
	dm_schedule_free(&sched);
	if (dm_check_binary_output(o.com.output) == -1)
		errx(1, "%s", dm_errstr());
	dm_threads_set(o.com.threads);

	/* data */
	read_data(&D, in, o.pairs, o.classes != 0);
	K = o.classes;
	if (K < 0) {
		int64_t mx = -1;
		for (int64_t i = 0; i < D.n; i++)
			mx = D.y[i] > mx ? D.y[i] : mx;
		if (mx < 1 || mx >= 1000000)
			errx(1, "%s: labels y run to %lld; --classes auto needs "
			    "2 to 1000000 classes", in, (long long)mx);
		K = (int)mx + 1;
	}
	for (int64_t i = 0; K > 0 && i < D.n; i++)
		if (D.y[i] < 0 || D.y[i] >= K)
			errx(1, "%s: y[%lld] = %lld is outside 0..%d", in,
			    (long long)i, (long long)D.y[i], K - 1);
	if (o.source != NULL) {
		read_data(&S, o.source, 0, 0);
		if (S.d != D.d)
			errx(1, "%s: rows of %zu elements, the data has %zu",
			    o.source, S.d, D.d);
	}
	int64_t ntrain_data = D.n;
	uint64_t hash = data_hash(&D);
	if (o.val != NULL) {
		read_data(&V, o.val, o.pairs, K > 0);
		if (V.d != D.d || V.ndim != D.ndim ||
		    memcmp(V.shape, D.shape, (size_t)D.ndim * sizeof *D.shape))
			errx(1, "%s: the samples do not have the shape of %s",
			    o.val, in);
		for (int64_t i = 0; K > 0 && i < V.n; i++)
			if (V.y[i] < 0 || V.y[i] >= K)
				errx(1, "%s: y[%lld] = %lld is outside 0..%d",
				    o.val, (long long)i, (long long)V.y[i], K - 1);
		join(&D, &V);
		nval = V.n;
		if ((rows = malloc((size_t)ntrain_data * sizeof *rows)) == NULL ||
		    (vrows = malloc((size_t)nval * sizeof *vrows)) == NULL)
			err(1, NULL);
		for (int64_t i = 0; i < ntrain_data; i++)
			rows[i] = i;
		for (int64_t i = 0; i < nval; i++)
			vrows[i] = ntrain_data + i;
		nrows = ntrain_data;
	} else if (o.val_frac > 0) {
		if (dm_train_split(D.n, o.val_frac, o.com.seed, &rows, &nrows,
		    &vrows, &nval) == -1)
			errx(1, "%s: --val-frac: %s", in, dm_errstr());
	} else {
		if ((rows = malloc((size_t)D.n * sizeof *rows)) == NULL)
			err(1, NULL);
		for (int64_t i = 0; i < D.n; i++)
			rows[i] = i;
		nrows = D.n;
	}

	/* the model */
	if (o.arch == DM_ARCH_MLP && D.ndim != 1)
		errx(1, "%s: mlp takes vectors [N, d]; the data is [N, %d "
		    "dims] (use --arch unet for images)", in, D.ndim);
	if (o.arch == DM_ARCH_UNET && D.ndim != 3)
		errx(1, "%s: unet takes images [N, C, H, W]; the samples have "
		    "%d dimensions", in, D.ndim);
	dm_model_config_defaults(&cfg, o.arch, D.ndim, D.shape);
	if (o.t.objective == DM_OBJECTIVE_CLASSIFIER)
		cfg.head = DM_HEAD_CLASSIFIER;
	else if (o.t.objective == DM_OBJECTIVE_CONSISTENCY) {
		cfg.pred = DM_PRED_X0;
		cfg.cm = 1;
	} else
		cfg.pred = (enum dm_pred)o.t.objective;
	snprintf(cfg.schedule, sizeof cfg.schedule, "%s", canon);
	cfg.classes = K;
	if (o.arch_opts != NULL && dm_model_config_parse(&cfg, o.arch_opts) == -1)
		errx(2, "--arch-opts: %s", dm_errstr());
	if ((m = dm_model_new(&cfg, o.com.seed)) == NULL)
		errx(1, "%s", dm_errstr());
	if (base != NULL) {
		dm_model_free(m);
		m = base;
	}
	if (dm_model_config_format(&m->cfg, cfgtext, sizeof cfgtext) == -1)
		errx(1, "%s", dm_errstr());
	uint64_t init_hash = 0;
	if (o.init != NULL) {
		struct dm_model *im;
		if (dm_model_load(&im, o.init) == -1)
			errx(1, "%s: %s", o.init, dm_errstr());
		if (im->nparams != m->nparams || im->cfg.arch != m->cfg.arch)
			errx(1, "%s: the model does not match the architecture "
			    "being trained", o.init);
		memcpy(m->params, im->params, m->nparams * sizeof(float));
		init_hash = fnv(UINT64_C(0xcbf29ce484222325), m->params,
		    m->nparams * sizeof(float));
		dm_model_free(im);
	}

	/* everything that changes the result, for --resume */
	if (dm_train_opts_format(&o.t, topts, sizeof topts) == -1)
		errx(1, "%s", dm_errstr());
	if (base != NULL) {
		size_t k = strlen(topts);
		init_hash = dm_lora_model_hash(base);
		if ((size_t)snprintf(topts + k, sizeof topts - k, ",lora=%d,"
		    "lora-alpha=%.17g,lora-targets=%s", o.lora, o.lora_alpha,
		    o.lora_targets ? o.lora_targets :
		    dm_lora_default_targets(base)) >= sizeof topts - k)
			errx(2, "--lora-targets: too long");
	}
	uint64_t shash = S.x0 ? data_hash(&S) : 0;
	size_t fplen = strlen(topts) + strlen(cfgtext) + strlen(canon) + 512;
	if ((fp = malloc(fplen)) == NULL)
		err(1, NULL);
	snprintf(fp, fplen, "%s;arch=%s;config=%s;schedule=%s;classes=%d;"
	    "d=%zu;data=%016llx:%lld;pairs=%d;source=%016llx;val=%lld:%s:%.17g;"
	    "init=%016llx", topts, dm_arch_name(o.arch), cfgtext, canon, K, D.d,
	    (unsigned long long)hash, (long long)ntrain_data, o.pairs,
	    (unsigned long long)shash, (long long)nval, o.val ? "file" : "frac",
	    o.val_frac, (unsigned long long)init_hash);

	td.n = ntrain_data + (o.val != NULL ? nval : 0);
	td.d = D.d;
	td.x0 = D.x0;
	td.x1 = D.x1;
	td.src = S.x0;
	td.nsrc = S.n;
	td.y = K > 0 ? D.y : NULL;
	td.rows = rows;
	td.nrows = nrows;
	if ((tr = dm_trainer_new(m, &o.t, &td)) == NULL)
		errx(1, "%s: %s", in, dm_errstr());
	if (base != NULL) {
		if ((lora = dm_lora_new(m, o.lora_targets, o.lora, o.lora_alpha,
		    o.com.seed)) == NULL)
			errx(1, "%s: --lora: %s", o.base, dm_errstr());
		if (dm_trainer_set_lora(tr, lora) == -1)
			errx(1, "%s", dm_errstr());
		if (!o.com.quiet)
			fprintf(stderr, "dm-train: LoRA rank %d on %d layers: "
			    "%zu of %zu parameters trainable (%.2f%%)\n", o.lora,
			    lora->nlayer, lora->n, m->nparams, 100.0 *
			    (double)lora->n / (double)m->nparams);
	}
	if (o.resume != NULL) {
		struct dm_file *cf;
		if (dm_file_read(&cf, o.resume) == -1)
			errx(1, "%s: %s", o.resume, dm_errstr());
		if (dm_trainer_restore(tr, fp, cf) == -1)
			errx(1, "%s: %s", o.resume, dm_errstr());
		dm_file_free(cf);
	}

	/* checkpoints */
	if (o.ckpt != NULL)
		ckpt = o.ckpt;
	else if (o.com.output != NULL && strcmp(o.com.output, "-") != 0) {
		snprintf(ckbuf, sizeof ckbuf, "%s.ckpt", o.com.output);
		ckpt = ckbuf;
	} else
		ckpt = "dm-train.ckpt";
	if (o.ckpt_every < 0)
		o.ckpt_every = o.ckpt != NULL ? 1000 : 0;

	/* the log */
	FILE *log = NULL;
	if (o.com.log != NULL) {
		log = fopen(o.com.log, o.resume ? "a" : "w");
		if (log == NULL)
			err(1, "%s", o.com.log);
		if (ftell(log) == 0)
			fprintf(log, "step\tloss\t%slr\tgrad_norm\tseconds\n",
			    nval > 0 ? "val_loss\t" : "");
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct dm_progress pr;
	double t0 = dm_now(), lsum = 0, vloss = NAN;
	int64_t lcount = 0, first = tr->step;
	int64_t end = o.until > 0 ? o.until : o.t.steps;
	char extra[64];

	struct dm_file *mf = NULL;
	int rc = 0;

	dm_progress_start(&pr, "step", o.t.steps, o.com.quiet);
	while (tr->step < end) {
		if (stop_signal) {
			dm_progress_end(&pr);
			write_checkpoint(tr, fp, ckpt);
			fprintf(stderr, "dm-train: interrupted at step %lld; "
			    "checkpoint %s (continue with --resume)\n",
			    (long long)tr->step, ckpt);
			rc = 130;
			goto done;
		}
		if (dm_trainer_step(tr) == -1) {
			dm_progress_end(&pr);
			errx(1, "%s; stopped, nothing written", dm_errstr());
		}
		lsum += tr->loss;
		lcount++;
		if (tr->step % o.val_every == 0 || tr->step == o.t.steps) {
			if (nval > 0 && dm_trainer_eval(tr, vrows, nval, &vloss) == -1)
				errx(1, "step %lld: %s; stopped, nothing written",
				    (long long)tr->step, dm_errstr());
			if (log != NULL) {
				fprintf(log, "%lld\t%.6g\t", (long long)tr->step,
				    lsum / (double)lcount);
				if (nval > 0)
					fprintf(log, "%.6g\t", vloss);
				fprintf(log, "%.6g\t%.6g\t%.3f\n", tr->lr, tr->gnorm,
				    dm_now() - t0);
				fflush(log);
			}
			lsum = 0;
			lcount = 0;
		}
		if (o.ckpt_every > 0 && tr->step % o.ckpt_every == 0 &&
		    tr->step < o.t.steps)
			write_checkpoint(tr, fp, ckpt);
		snprintf(extra, sizeof extra, "loss %.4g", tr->loss_ema);
		dm_progress_update(&pr, tr->step, extra);
	}
	dm_progress_end(&pr);
	if (log != NULL && fclose(log) == EOF)
		err(1, "%s", o.com.log);
	double secs = dm_now() - t0;
	if (tr->step < o.t.steps) {	/* --until */
		write_checkpoint(tr, fp, ckpt);
		if (!o.com.quiet)
			fprintf(stderr, "dm-train: stopped at step %lld; "
			    "checkpoint %s\n", (long long)tr->step, ckpt);
		goto done;
	}

	/* the model file: EMA weights and what training did */
	char buf[64];
	mf = dm_file_new();
	if (mf == NULL || (lora != NULL ? dm_lora_to_file(lora, tr->ema, m,
	    mf) : dm_model_to_file(m, tr->ema, mf)) == -1)
		errx(1, "%s", dm_errstr());
	snprintf(buf, sizeof buf, "%lld", (long long)tr->step);
	dm_file_meta_set(mf, "dm.train.steps", buf);
	dm_file_meta_set(mf, "dm.train.objective",
	    dm_objective_name(o.t.objective));
	snprintf(buf, sizeof buf, "%.6g", tr->loss_ema);
	dm_file_meta_set(mf, "dm.train.loss", buf);
	if (nval > 0) {
		snprintf(buf, sizeof buf, "%.6g", vloss);
		dm_file_meta_set(mf, "dm.train.val_loss", buf);
	}
	if (dm_file_meta_set(mf, "dm.train.options", topts) == -1)
		errx(1, "%s", dm_errstr());
	const char *out = o.com.output ? o.com.output : "-";
	if (dm_file_write(mf, out, 0) == -1)
		errx(1, "%s: %s", out, dm_errstr());
	if (!o.com.quiet) {
		fprintf(stderr, "dm-train: %lld steps in %.1f s (%.1f/s), loss "
		    "%.4g", (long long)(tr->step - first), secs,
		    (double)(tr->step - first) / (secs > 0 ? secs : 1),
		    tr->loss_ema);
		if (nval > 0)
			fprintf(stderr, ", val %.4g", vloss);
		fprintf(stderr, ", %s %s\n", lora != NULL ? "adapter" :
		    o.t.objective == DM_OBJECTIVE_CLASSIFIER ? "classifier" :
		    "model",
		    strcmp(out, "-") ? out : "to stdout");
	}
done:
	dm_file_free(mf);
	dm_trainer_free(tr);
	if (lora != NULL)
		dm_lora_detach(lora, m);
	dm_lora_free(lora);
	dm_model_free(m);
	dm_file_free(D.f);
	dm_file_free(V.f);
	dm_file_free(S.f);
	if (o.val != NULL) {
		free(D.x0);
		free(D.x1);
		free(D.y);
	}
	free(rows);
	free(vrows);
	free(fp);
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	return rc;
}
