/* dm-reflow — straighten and distil flows and diffusion models: reflow
 * pairs and rounds, one-step distillation, progressive distillation and
 * consistency distillation, with a TSV report of transport cost,
 * straightness and sample quality.  The manual is dm-reflow(1); the
 * mathematics is SPEC.md §8 and the library side lib/reflow.c and
 * lib/consistency.c. */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#if __has_include("dm_ot.h")
#include "dm_ot.h"
#define HAVE_OT 1
#else
#define HAVE_OT 0
#endif

enum {
	OPT_ARCH_OPTS = DM_OPT_FIRST_TOOL,
	OPT_BATCH,
	OPT_CM,
	OPT_EMA,
	OPT_EVAL_N,
	OPT_EVAL_SAMPLER,
	OPT_EVAL_STEPS,
	OPT_FRESH,
	OPT_FROM,
	OPT_HELDOUT,
	OPT_LR,
	OPT_PAIRS,
	OPT_ROUNDS,
	OPT_SAMPLER,
	OPT_SOURCE,
	OPT_STEPS,
	OPT_TEACHER,
	OPT_TO,
	OPT_TRAIN_STEPS
};

#define MAX_EVAL 8

struct opts {
	struct dm_common com;
	const char *cmd;
	const char *arch_opts, *heldout, *pairs, *source, *teacher;
	const char *cm;
	struct dm_sampler_opts so;       /* the ODE solver for pairs */
	enum dm_sampler eval_sampler;
	int eval_sampler_set;            /* --eval-sampler given */
	int64_t n, eval_n, train_steps;
	int batch, rounds, fresh, from, to;
	int eval_steps[MAX_EVAL], neval;
	double lr, ema;
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-reflow pairs [-q] [-n N] [--sampler S] [--steps K] "
	    "[--source FILE] [-o PAIRS] MODEL\n"
	    "       dm-reflow train [-q] [--rounds K] [--fresh] [--pairs FILE] "
	    "[training and\n"
	    "                 evaluation options] -o MODEL MODEL\n"
	    "       dm-reflow distill [-q] [--pairs FILE] [training and "
	    "evaluation options]\n"
	    "                 -o MODEL MODEL\n"
	    "       dm-reflow progressive [-q] --from N [--to M] [training "
	    "options] -o MODEL\n"
	    "                 TEACHER DATA\n"
	    "       dm-reflow consistency [-q] --teacher MODEL [--cm "
	    "improved|original]\n"
	    "                 [--arch-opts K=V,...] [training options] -o MODEL "
	    "DATA\n"
	    "       dm-reflow eval [-q] [evaluation options] MODEL...\n"
	    "training:   [--batch B] [--ema D] [--lr LR] [--seed N] "
	    "[--threads N]\n"
	    "            [--train-steps N] [-n N] [--sampler S] [--steps K] "
	    "[--source FILE]\n"
	    "evaluation: [--eval-n N] [--eval-sampler S] [--eval-steps "
	    "1,2,4,16]\n"
	    "            [--heldout FILE]\n");
}

static void
usage_error(const char *msg)
{
	if (msg != NULL)
		warnx("%s", msg);
	usage(stderr);
	exit(2);
}

static void
parse_steps_list(struct opts *o, const char *a)
{
	double v[MAX_EVAL];
	int n;

	if (dm_parse_doubles(a, v, MAX_EVAL, &n) == -1 || n < 1)
		errx(2, "--eval-steps: '%s' is not a list of step counts", a);
	for (int i = 0; i < n; i++) {
		if (!(v[i] >= 1 && v[i] <= 100000 && v[i] == floor(v[i])))
			errx(2, "--eval-steps: '%s' is not a list of step "
			    "counts (1 to 100000)", a);
		o->eval_steps[i] = (int)v[i];
	}
	o->neval = n;
}

static void
parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"arch-opts", required_argument, NULL, OPT_ARCH_OPTS},
		{"batch", required_argument, NULL, OPT_BATCH},
		{"cm", required_argument, NULL, OPT_CM},
		{"ema", required_argument, NULL, OPT_EMA},
		{"eval-n", required_argument, NULL, OPT_EVAL_N},
		{"eval-sampler", required_argument, NULL, OPT_EVAL_SAMPLER},
		{"eval-steps", required_argument, NULL, OPT_EVAL_STEPS},
		{"fresh", no_argument, NULL, OPT_FRESH},
		{"from", required_argument, NULL, OPT_FROM},
		{"help", no_argument, NULL, 'h'},
		{"heldout", required_argument, NULL, OPT_HELDOUT},
		{"lr", required_argument, NULL, OPT_LR},
		{"output", required_argument, NULL, 'o'},
		{"pairs", required_argument, NULL, OPT_PAIRS},
		{"quiet", no_argument, NULL, 'q'},
		{"rounds", required_argument, NULL, OPT_ROUNDS},
		{"sampler", required_argument, NULL, OPT_SAMPLER},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"steps", required_argument, NULL, OPT_STEPS},
		{"teacher", required_argument, NULL, OPT_TEACHER},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"to", required_argument, NULL, OPT_TO},
		{"train-steps", required_argument, NULL, OPT_TRAIN_STEPS},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int ch, r;

	memset(o, 0, sizeof *o);
	dm_common_init(&o->com);
	dm_sampler_opts_defaults(&o->so);
	o->so.kind = DM_SAMPLER_RK4;
	o->so.steps = 16;
	o->eval_sampler = DM_SAMPLER_EULER;
	o->n = 10000;
	o->eval_n = 2000;
	o->train_steps = 2000;
	o->batch = 256;
	o->rounds = 1;
	o->to = 1;
	o->lr = 2e-3;
	o->ema = 0.999;
	o->eval_steps[0] = 1;
	o->eval_steps[1] = 2;
	o->eval_steps[2] = 4;
	o->eval_steps[3] = 16;
	o->neval = 4;
	if (argc < 2)
		usage_error("no command");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		exit(0);
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("dm-reflow (dm toolkit) %s\n", DM_VERSION);
		exit(0);
	}
	o->cmd = argv[1];
	if (strcmp(o->cmd, "pairs") && strcmp(o->cmd, "train") &&
	    strcmp(o->cmd, "distill") && strcmp(o->cmd, "progressive") &&
	    strcmp(o->cmd, "consistency") && strcmp(o->cmd, "eval"))
		errx(2, "'%s' is not a command (pairs, train, distill, "
		    "progressive, consistency, eval)", o->cmd);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "hn:o:qV", longopts, NULL)) != -1) {
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
			printf("dm-reflow (dm toolkit) %s\n", DM_VERSION);
			exit(0);
		case 'n':
			if (dm_parse_int64(a, 1, INT64_C(1) << 32, &o->n) == -1)
				errx(2, "-n: %s", dm_errstr());
			break;
		case OPT_ARCH_OPTS:
			o->arch_opts = a;
			break;
		case OPT_BATCH:
			if (dm_parse_int(a, 1, 1 << 20, &o->batch) == -1)
				errx(2, "--batch: %s", dm_errstr());
			break;
		case OPT_CM:
			if (strcmp(a, "improved") && strcmp(a, "original"))
				errx(2, "--cm: '%s' is not improved or original", a);
			o->cm = a;
			break;
		case OPT_EMA:
			if (dm_parse_double(a, 0, 0.999999, &o->ema) == -1)
				errx(2, "--ema: %s", dm_errstr());
			break;
		case OPT_EVAL_N:
			if (dm_parse_int64(a, 2, INT64_C(1) << 24, &o->eval_n) == -1)
				errx(2, "--eval-n: %s", dm_errstr());
			break;
		case OPT_EVAL_SAMPLER:
			if (dm_sampler_parse(a, &o->eval_sampler) == -1 ||
			    o->eval_sampler == DM_SAMPLER_ADAPTIVE)
				errx(2, "--eval-sampler: '%s' is not a fixed-step "
				    "sampler", a);
			o->eval_sampler_set = 1;
			break;
		case OPT_EVAL_STEPS:
			parse_steps_list(o, a);
			break;
		case OPT_FRESH:
			o->fresh = 1;
			break;
		case OPT_FROM:
			if (dm_parse_int(a, 1, 1 << 20, &o->from) == -1)
				errx(2, "--from: %s", dm_errstr());
			break;
		case OPT_HELDOUT:
			o->heldout = a;
			break;
		case OPT_LR:
			if (dm_parse_double(a, 1e-12, 10, &o->lr) == -1)
				errx(2, "--lr: %s", dm_errstr());
			break;
		case OPT_PAIRS:
			o->pairs = a;
			break;
		case OPT_ROUNDS:
			if (dm_parse_int(a, 0, 100, &o->rounds) == -1)
				errx(2, "--rounds: %s", dm_errstr());
			if (o->rounds == 0)
				errx(2, "--rounds: 0 rounds do nothing (1 or more)");
			break;
		case OPT_SAMPLER:
			if (dm_sampler_parse(a, &o->so.kind) == -1)
				errx(2, "--sampler: %s", dm_errstr());
			if (dm_sampler_is_stochastic(o->so.kind) ||
			    o->so.kind == DM_SAMPLER_CONSISTENCY)
				errx(2, "--sampler: '%s' does not solve the ODE "
				    "(pairs need a deterministic solver)", a);
			break;
		case OPT_SOURCE:
			o->source = a;
			break;
		case OPT_STEPS:
			if (dm_parse_int(a, 1, 100000, &o->so.steps) == -1)
				errx(2, "--steps: %s", dm_errstr());
			break;
		case OPT_TEACHER:
			o->teacher = a;
			break;
		case OPT_TO:
			if (dm_parse_int(a, 1, 1 << 20, &o->to) == -1)
				errx(2, "--to: %s", dm_errstr());
			break;
		case OPT_TRAIN_STEPS:
			if (dm_parse_int64(a, 1, INT64_C(1) << 40,
			    &o->train_steps) == -1)
				errx(2, "--train-steps: %s", dm_errstr());
			break;
		default:
			usage_error(NULL);
		}
	}
	o->so.seed = o->com.seed;
	/* progressive students learn DDIM steps: evaluate them so */
	if (strcmp(o->cmd, "progressive") == 0 && !o->eval_sampler_set)
		o->eval_sampler = DM_SAMPLER_DDIM;
}

static struct dm_model *
load_model(const char *path)
{
	struct dm_model *m;

	if (dm_model_load(&m, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (m->cfg.head != DM_HEAD_FIELD)
		errx(1, "%s: a classifier is not a denoiser", path);
	if (m->cfg.classes != 0)
		errx(1, "%s: dm-reflow takes unconditional models", path);
	return m;
}

/* Rows of tensor `name` of a file as F32, checked against d (0 = any). */
static float *
load_rows(const char *path, const char *name, size_t *d, int64_t *n,
    struct dm_file **keep)
{
	struct dm_tensor *t;

	if (dm_file_read(keep, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (dm_file_get(*keep, name) == NULL)
		errx(1, "%s: no tensor '%s'", path, name);
	if ((t = dm_file_get_f32(*keep, name)) == NULL)
		errx(1, "%s: %s", path, dm_errstr());
	if (t->ndim < 2 || t->shape[0] < 1)
		errx(1, "%s: %s is not [N, ...] with N >= 1", path, name);
	size_t dd = dm_tensor_numel(t) / (size_t)t->shape[0];
	if (*d != 0 && dd != *d)
		errx(1, "%s: %s has rows of %zu elements; the model takes %zu",
		    path, name, dd, *d);
	if (dm_data_check_finite(t) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	*d = dd;
	*n = t->shape[0];
	return t->data;
}

/* n source points: N(0, I) per row from (seed, i), or rows of the source
 * file in the order of a seeded permutation (cycled). */
static float *
make_x1(const struct opts *o, size_t d, int64_t n, uint64_t seed)
{
	float *x1 = malloc((size_t)n * d * sizeof *x1);

	if (x1 == NULL)
		err(1, NULL);
	if (o->source == NULL) {
		for (int64_t i = 0; i < n; i += 4096) {
			int B = (int)(n - i < 4096 ? n - i : 4096);
			dm_sample_noise(x1 + (size_t)i * d, B, d, seed, i);
		}
		return x1;
	}
	struct dm_file *f;
	int64_t ns;
	size_t dd = d;
	const float *src = load_rows(o->source, "x", &dd, &ns, &f);
	int64_t *perm = malloc((size_t)ns * sizeof *perm);
	if (perm == NULL)
		err(1, NULL);
	dm_train_epoch_perm(perm, ns, seed, 0);
	for (int64_t i = 0; i < n; i++)
		memcpy(x1 + (size_t)i * d, src + (size_t)perm[i % ns] * d,
		    d * sizeof *x1);
	free(perm);
	dm_file_free(f);
	return x1;
}

static void
write_pairs(const char *path, const struct dm_model *m, const float *x0,
    const float *x1, int64_t n)
{
	struct dm_file *f = dm_file_new();
	int64_t shape[5] = {n};
	int nd = m->cfg.ndim + 1;

	if (f == NULL)
		errx(1, "%s", dm_errstr());
	memcpy(shape + 1, m->cfg.shape, (size_t)m->cfg.ndim * sizeof *shape);
	for (int k = 0; k < 2; k++) {
		struct dm_tensor *t = dm_tensor_new(nd, shape);
		if (t == NULL)
			errx(1, "%s", dm_errstr());
		memcpy(t->data, k ? x1 : x0, t->nbytes);
		if (dm_tensor_set_name(t, k ? "x1" : "x0") == -1 ||
		    dm_file_add(f, t) == -1)
			errx(1, "%s", dm_errstr());
	}
	if (dm_file_meta_set(f, "dm.kind", "pairs") == -1)
		errx(1, "%s", dm_errstr());
	if (dm_file_write(f, path ? path : "-", 0) == -1)
		errx(1, "%s: %s", path ? path : "stdout", dm_errstr());
	dm_file_free(f);
}

/* x0 = Flow(x1) with the pairs solver. */
static void
solve(const struct opts *o, struct dm_model *m, const float *x1, float *x0,
    int64_t n)
{
	struct dm_denoiser D;

	dm_model_denoiser(&D, m);
	if (dm_reflow_pairs(&D, &o->so, x1, x0, n, 1024) == -1)
		errx(1, "pairs: %s", dm_errstr());
}

/* Train `m` (in place) for o->train_steps; its EMA weights are the
 * result.  pd_teacher/cm_teacher select a distillation mode. */
static void
train(const struct opts *o, struct dm_model *m, struct dm_train_opts *to,
    const float *x0, const float *x1, int64_t n, struct dm_model *pd_teacher,
    int pd_N, struct dm_model *cm_teacher, const char *what)
{
	struct dm_train_data td;
	struct dm_trainer *tr;
	struct dm_progress pr;
	int64_t *rows = malloc((size_t)n * sizeof *rows);

	if (rows == NULL)
		err(1, NULL);
	for (int64_t i = 0; i < n; i++)
		rows[i] = i;
	memset(&td, 0, sizeof td);
	td.n = n;
	td.d = dm_model_in_size(m);
	td.x0 = x0;
	td.x1 = x1;
	td.rows = rows;
	td.nrows = n;
	to->steps = o->train_steps;
	to->batch = o->batch;
	to->lr = o->lr;
	to->ema = o->ema;
	to->seed = o->com.seed;
	if ((tr = dm_trainer_new(m, to, &td)) == NULL)
		errx(1, "%s: %s", what, dm_errstr());
	if (pd_teacher != NULL && dm_pd_set_teacher(tr, pd_teacher, pd_N) == -1)
		errx(1, "%s: %s", what, dm_errstr());
	if (cm_teacher != NULL && dm_cm_set_teacher(tr, cm_teacher) == -1)
		errx(1, "%s: %s", what, dm_errstr());
	dm_progress_start(&pr, "step", to->steps, o->com.quiet);
	while (tr->step < to->steps) {
		if (dm_trainer_step(tr) == -1) {
			dm_progress_end(&pr);
			errx(1, "%s: %s; stopped, nothing written", what,
			    dm_errstr());
		}
		char extra[64];
		snprintf(extra, sizeof extra, "loss %.4g", tr->loss_ema);
		dm_progress_update(&pr, tr->step, extra);
	}
	dm_progress_end(&pr);
	memcpy(m->params, tr->ema, m->nparams * sizeof(float));
	dm_trainer_free(tr);
	free(rows);
}

/* Held-out data for the quality columns, or NULL. */
struct heldout {
	struct dm_file *f;
	const float *x;
	int64_t n;
};

static void
print_header(const struct opts *o)
{
	printf("model\tcost\tstraightness");
	for (int i = 0; i < o->neval; i++)
		printf("\tdiv@%d", o->eval_steps[i]);
	printf("\n");
}

/* One report row: cost and straightness along the pairs solver's
 * trajectories (flows; "-" for consistency models), and the Sinkhorn
 * divergence of eval samples to held-out data at each step count. */
static void
report(const struct opts *o, const char *name, struct dm_model *m,
    const struct heldout *H)
{
	struct dm_denoiser D;
	size_t d = dm_model_in_size(m);
	float *x1 = make_x1(o, d, o->eval_n, o->com.seed + 1);
	float *x = malloc((size_t)o->eval_n * d * sizeof *x);
	double cost, S;

	if (x == NULL)
		err(1, NULL);
	dm_model_denoiser(&D, m);
	printf("%s", name);
	if (m->cfg.cm)
		printf("\t-\t-");
	else {
		if (dm_reflow_straightness(&D, &o->so, x1, o->eval_n, 1024, NULL,
		    &cost, &S) == -1)
			errx(1, "%s: %s", name, dm_errstr());
		printf("\t%.5g\t%.5g", cost, S);
	}
	for (int i = 0; i < o->neval; i++) {
		struct dm_sampler_opts so;
		dm_sampler_opts_defaults(&so);
		so.kind = m->cfg.cm ? DM_SAMPLER_CONSISTENCY : o->eval_sampler;
		so.eta = 0;
		so.steps = o->eval_steps[i];
		so.seed = o->com.seed + 1;
		memcpy(x, x1, (size_t)o->eval_n * d * sizeof *x);
		for (int64_t r = 0; r < o->eval_n; r += 1024) {
			int B = (int)(o->eval_n - r < 1024 ? o->eval_n - r : 1024);
			int64_t nfe;
			if (dm_sample_run(&D, &so, x + (size_t)r * d, B, r, &nfe)
			    == -1)
				errx(1, "%s: %s", name, dm_errstr());
		}
#if HAVE_OT
		if (H != NULL) {
			struct dm_ot_opts oo;
			double div;
			int rc;
			dm_ot_opts_defaults(&oo);
			oo.tol = 1e-2;	/* dm-reflow(1): "div@k" */
			rc = dm_ot_divergence(x, o->eval_n, H->x, H->n, (int)d,
			    &oo, &div);
			if (rc == -1)
				errx(1, "%s: divergence: %s", name, dm_errstr());
			if (rc == 1)
				warnx("%s: divergence at %d steps: Sinkhorn did "
				    "not converge", name, o->eval_steps[i]);
			printf("\t%.5g", div);
			continue;
		}
#endif
		(void)H;
		printf("\t-");
	}
	printf("\n");
	fflush(stdout);
	free(x);
	free(x1);
}

static struct heldout *
open_heldout(const struct opts *o, struct heldout *H, size_t d)
{
	if (o->heldout == NULL)
		return NULL;
	if (!HAVE_OT)
		errx(1, "--heldout: this build has no Sinkhorn divergence "
		    "(dm_ot.h)");
	H->x = load_rows(o->heldout, "x", &d, &H->n, &H->f);
	return H;
}

/* "fm.st" + round 2 -> "fm-r2.st". */
static void
round_path(char *buf, size_t n, const char *out, int k)
{
	const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');

	if (dot == NULL || (slash != NULL && dot < slash))
		snprintf(buf, n, "%s-r%d", out, k);
	else
		snprintf(buf, n, "%.*s-r%d%s", (int)(dot - out), out, k, dot);
}

static void
save(const char *path, const struct dm_model *m, const char *what)
{
	if (dm_model_save(m, NULL, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (what != NULL)
		fprintf(stderr, "dm-reflow: %s %s\n", what, path);
}

static int
need_file_output(const struct opts *o)
{
	if (o->com.output == NULL || strcmp(o->com.output, "-") == 0)
		errx(2, "%s: -o FILE is required (the report goes to standard "
		    "output)", o->cmd);
	return 0;
}

/* The pairs of --pairs, checked against the model's row size d. */
static void
read_pairs(const struct opts *o, size_t d, float **x0, float **x1, int64_t *n)
{
	struct dm_file *f0, *f1;
	size_t d0 = d, d1 = d, nb;
	int64_t n1;
	const float *a = load_rows(o->pairs, "x0", &d0, n, &f0);
	const float *b = load_rows(o->pairs, "x1", &d1, &n1, &f1);
	const struct dm_tensor *t0 = dm_file_get(f0, "x0");
	const struct dm_tensor *t1 = dm_file_get(f1, "x1");

	if (n1 != *n || t0->ndim != t1->ndim ||
	    memcmp(t0->shape, t1->shape, (size_t)t0->ndim * sizeof *t0->shape))
		errx(1, "%s: x0 and x1 differ in row count or shape", o->pairs);
	nb = (size_t)*n * d * sizeof(float);
	if ((*x0 = malloc(nb)) == NULL || (*x1 = malloc(nb)) == NULL)
		err(1, NULL);
	memcpy(*x0, a, nb);
	memcpy(*x1, b, nb);
	dm_file_free(f0);
	dm_file_free(f1);
}

/* Pairs for a round: solved with m (the --pairs of the first round are
 * read before, by read_pairs). */
static void
get_pairs(const struct opts *o, struct dm_model *m, float **x0, float **x1,
    int64_t *n)
{
	size_t d = dm_model_in_size(m);

	*n = o->n;
	*x1 = make_x1(o, d, o->n, o->com.seed);
	if ((*x0 = malloc((size_t)o->n * d * sizeof **x0)) == NULL)
		err(1, NULL);
	solve(o, m, *x1, *x0, o->n);
}

static struct dm_model *
clone_model(const struct dm_model *m, int fresh, uint64_t seed)
{
	struct dm_model *c = dm_model_new(&m->cfg, seed);

	if (c == NULL)
		errx(1, "%s", dm_errstr());
	if (!fresh)
		memcpy(c->params, m->params, m->nparams * sizeof(float));
	return c;
}

static void
cmd_pairs(const struct opts *o, const char *path)
{
	struct dm_model *m = load_model(path);
	float *x0, *x1;
	int64_t n;

	if (dm_check_binary_output(o->com.output) == -1)
		errx(1, "%s", dm_errstr());
	get_pairs(o, m, &x0, &x1, &n);
	write_pairs(o->com.output, m, x0, x1, n);
	free(x0);
	free(x1);
	dm_model_free(m);
}

/* train and distill: `rounds` rounds on pairs of the previous model. */
static void
cmd_train(const struct opts *o, const char *path, int distill)
{
	struct dm_model *m = load_model(path);
	struct heldout Hs, *H;
	char buf[4096];

	need_file_output(o);
	if (m->cfg.arch == DM_ARCH_GMM)
		errx(1, "%s: a gmm has no network to train; reflow starts from a "
		    "trained flow", path);
	if (m->cfg.cm)
		errx(1, "%s: a consistency model is not a flow", path);
	float *x0 = NULL, *x1 = NULL;
	int64_t n;
	if (o->pairs != NULL)
		read_pairs(o, dm_model_in_size(m), &x0, &x1, &n);
	H = open_heldout(o, &Hs, dm_model_in_size(m));
	print_header(o);
	report(o, distill ? "input" : "1-rectified", m, H);
	for (int k = 1; k <= (distill ? 1 : o->rounds); k++) {
		struct dm_train_opts to;
		if (x0 == NULL)
			get_pairs(o, m, &x0, &x1, &n);
		struct dm_model *s = clone_model(m, o->fresh, o->com.seed);
		dm_train_opts_defaults(&to);
		to.objective = (enum dm_objective)m->cfg.pred;
		if (distill) {
			to.tsampling = DM_TSAMPLING_FIXED;
			to.t_fixed = 1;
		}
		train(o, s, &to, x0, x1, n, NULL, 0, NULL, distill ? "distill" :
		    "reflow");
		free(x0);
		free(x1);
		x0 = x1 = NULL;
		dm_model_free(m);
		m = s;
		if (distill)
			snprintf(buf, sizeof buf, "%s", o->com.output);
		else
			round_path(buf, sizeof buf, o->com.output, k + 1);
		char name[64];
		snprintf(name, sizeof name, distill ? "distilled" :
		    "%d-rectified", k + 1);
		report(o, name, m, H);
		if (!distill)
			save(buf, m, o->com.quiet ? NULL : "round model");
	}
	save(o->com.output, m, NULL);
	if (H != NULL)
		dm_file_free(H->f);
	dm_model_free(m);
}

static void
cmd_progressive(const struct opts *o, const char *tpath, const char *dpath)
{
	struct dm_model *t = load_model(tpath);
	struct heldout Hs, *H;
	struct dm_file *f;
	size_t d = dm_model_in_size(t);
	int64_t n;
	const float *x;

	need_file_output(o);
	if (o->from < 2)
		errx(2, "progressive: --from N (the teacher's DDIM steps, 2 or "
		    "more) is required");
	for (int N = o->from; N > o->to; N /= 2)
		if (N % 2 != 0)
			errx(2, "progressive: halving %d steps down to %d meets "
			    "the odd count %d", o->from, o->to, N);
	if (o->to >= o->from)
		errx(2, "progressive: --to %d is not below --from %d", o->to,
		    o->from);
	if (t->cfg.arch == DM_ARCH_GMM)
		errx(1, "%s: the student copies the teacher's network; a gmm "
		    "has none", tpath);
	if (t->cfg.cm)
		errx(1, "%s: a consistency model is not a DDIM teacher", tpath);
	x = load_rows(dpath, "x", &d, &n, &f);
	H = open_heldout(o, &Hs, d);
	print_header(o);
	for (int N = o->from; N > o->to; N /= 2) {
		struct dm_train_opts to;
		struct dm_model *s = clone_model(t, 0, o->com.seed);
		dm_train_opts_defaults(&to);
		to.objective = (enum dm_objective)t->cfg.pred;
		train(o, s, &to, x, NULL, n, t, N / 2, NULL, "progressive");
		dm_model_free(t);
		t = s;
		char name[64];
		snprintf(name, sizeof name, "progressive-%d", N / 2);
		report(o, name, t, H);
	}
	save(o->com.output, t, NULL);
	if (H != NULL)
		dm_file_free(H->f);
	dm_file_free(f);
	dm_model_free(t);
}

static void
cmd_consistency(const struct opts *o, const char *dpath)
{
	struct dm_model *t, *s;
	struct dm_model_config cfg;
	struct heldout Hs, *H;
	struct dm_train_opts to;
	struct dm_file *f;
	size_t d;
	int64_t n;
	const float *x;

	need_file_output(o);
	if (o->teacher == NULL)
		errx(2, "consistency: --teacher MODEL is required");
	t = load_model(o->teacher);
	d = dm_model_in_size(t);
	x = load_rows(dpath, "x", &d, &n, &f);
	dm_model_config_defaults(&cfg, t->cfg.ndim == 3 ? DM_ARCH_UNET :
	    DM_ARCH_MLP, t->cfg.ndim, t->cfg.shape);
	if (t->cfg.arch != DM_ARCH_GMM)
		cfg = t->cfg;
	cfg.pred = DM_PRED_X0;
	cfg.cm = 1;
	cfg.classes = 0;
	snprintf(cfg.schedule, sizeof cfg.schedule, "edm");
	if (o->arch_opts != NULL && dm_model_config_parse(&cfg, o->arch_opts)
	    == -1)
		errx(2, "--arch-opts: %s", dm_errstr());
	if ((s = dm_model_new(&cfg, o->com.seed)) == NULL)
		errx(1, "%s", dm_errstr());
	H = open_heldout(o, &Hs, d);
	dm_train_opts_defaults(&to);
	to.objective = DM_OBJECTIVE_CONSISTENCY;
	if (o->cm != NULL)
		dm_cm_opts_preset(&to.cm, strcmp(o->cm, "improved") == 0);
	train(o, s, &to, x, NULL, n, NULL, 0, t, "consistency");
	print_header(o);
	report(o, "consistency-distilled", s, H);
	save(o->com.output, s, NULL);
	if (H != NULL)
		dm_file_free(H->f);
	dm_file_free(f);
	dm_model_free(s);
	dm_model_free(t);
}

int
main(int argc, char **argv)
{
	struct opts o;
	int nargs;

	dm_tool_init(argv);
	parse_opts(&o, argc, argv);
	dm_threads_set(o.com.threads);
	nargs = argc - optind;
	if (strcmp(o.cmd, "eval") == 0) {
		struct heldout Hs, *H = NULL;
		if (nargs < 1)
			usage_error("eval: no model");
		print_header(&o);
		for (int i = optind; i < argc; i++) {
			struct dm_model *m = load_model(argv[i]);
			if (i == optind)
				H = open_heldout(&o, &Hs, dm_model_in_size(m));
			report(&o, argv[i], m, H);
			dm_model_free(m);
		}
		if (H != NULL)
			dm_file_free(H->f);
	} else if (strcmp(o.cmd, "progressive") == 0) {
		if (nargs != 2)
			usage_error("progressive: TEACHER DATA");
		cmd_progressive(&o, argv[optind], argv[optind + 1]);
	} else if (strcmp(o.cmd, "consistency") == 0) {
		if (nargs != 1)
			usage_error("consistency: one data file");
		cmd_consistency(&o, argv[optind]);
	} else {
		if (nargs != 1)
			usage_error("one model file");
		if (strcmp(o.cmd, "pairs") == 0)
			cmd_pairs(&o, argv[optind]);
		else
			cmd_train(&o, argv[optind], strcmp(o.cmd, "distill") == 0);
	}
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
