/* dm-noise — the forward process x_t = alpha_t x0 + sigma_t eps on a data
 * file, one-shot or step by step.  The manual is dm-noise(1); the
 * mathematics is SPEC.md §1–§3 (lib/noise.c). */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dm.h"

enum {
	OPT_CHAIN = DM_OPT_FIRST_TOOL,
	OPT_SCHEDULE,
	OPT_SWEEP,
	OPT_T_FILE,
	OPT_T_UNIFORM,
	OPT_WITH_EPS
};

enum tmode { T_NONE, T_FIXED, T_UNIFORM, T_FILE, T_SWEEP };

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dm-noise [-hqV] [--chain] [-o FILE] [--schedule SPEC] "
	    "[--seed N]\n"
	    "                [--threads N] [--with-eps]\n"
	    "                -t T | --t-uniform | --t-file FILE[:NAME] | "
	    "--sweep K  FILE\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

/* NaN or Inf in x: "x: row 12 has NaN" (rows counted from 0). */
static int
check_finite(const float *x, int64_t n, size_t d)
{
	for (int64_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			if (!isfinite(x[(size_t)i * d + j]))
				return dm_seterr("x: row %lld has %s", (long long)i,
				    isnan(x[(size_t)i * d + j]) ? "NaN" : "Inf");
	return 0;
}

/* --t-file FILE[:NAME]: a name after the last ':' unless FILE itself exists. */
static float *
read_t_file(const char *arg, int64_t n)
{
	struct dm_file *f = NULL;
	struct dm_tensor *t;
	struct stat st;
	char *path = dm_strdup(arg), *c;
	const char *name = "t";
	float *out = NULL;

	if (path == NULL)
		return NULL;
	if (stat(path, &st) == -1 && (c = strrchr(path, ':')) != NULL &&
	    strchr(c, '/') == NULL) {
		*c = '\0';
		name = c + 1;
	}
	if (dm_file_read(&f, path) == -1) {
		dm_errctx("%s: ", path);
		goto done;
	}
	if ((t = dm_file_get_f32(f, name)) == NULL) {
		dm_errctx("%s: ", path);
		goto done;
	}
	if (dm_tensor_numel(t) != (size_t)n) {
		dm_seterr("%s: %s has %zu elements, the data %lld rows", path,
		    name, dm_tensor_numel(t), (long long)n);
		goto done;
	}
	for (int64_t i = 0; i < n; i++) {
		float v = ((float *)t->data)[i];
		if (!(v >= 0 && v <= 1)) {
			dm_seterr("%s: %s[%lld] = %g is outside [0, 1]", path,
			    name, (long long)i, v);
			goto done;
		}
	}
	if ((out = dm_malloc((size_t)n * sizeof *out)) != NULL)
		memcpy(out, t->data, (size_t)n * sizeof *out);
done:
	dm_file_free(f);
	free(path);
	return out;
}

static struct dm_tensor *
new_named(const char *name, int ndim, const int64_t *shape)
{
	struct dm_tensor *t = dm_tensor_new(ndim, shape);

	if (t != NULL && dm_tensor_set_name(t, name) == -1) {
		dm_tensor_free(t);
		return NULL;
	}
	return t;
}

static void
add_or_die(struct dm_file *f, struct dm_tensor *t)
{
	if (t == NULL || dm_file_add(f, t) == -1)
		errx(1, "%s", dm_errstr());
}

/* One noising of x0 at t (per sample or one value) into xt. */
static void
noise(const struct dm_schedule *s, int chain, const float *t, int per_sample,
    const float *x0, const float *eps, float *xt, int64_t n, size_t d,
    uint64_t seed)
{
	if (!chain) {
		dm_noise_forward(s, t, per_sample, x0, eps, xt, n, d);
		return;
	}
	int64_t m = per_sample ? n : 1;
	int *steps = malloc((size_t)(m > 0 ? m : 1) * sizeof *steps);
	if (steps == NULL)
		err(1, NULL);
	for (int64_t i = 0; i < m; i++)
		if (dm_noise_chain_step(s, t[i], &steps[i]) == -1)
			errx(1, "--chain: %s", dm_errstr());
	if (dm_noise_chain(s, steps, per_sample, x0, xt, n, d, seed, 0) == -1)
		errx(1, "%s", dm_errstr());
	free(steps);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"chain", no_argument, NULL, OPT_CHAIN},
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"schedule", required_argument, NULL, OPT_SCHEDULE},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"sweep", required_argument, NULL, OPT_SWEEP},
		{"t-file", required_argument, NULL, OPT_T_FILE},
		{"t-uniform", no_argument, NULL, OPT_T_UNIFORM},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"version", no_argument, NULL, 'V'},
		{"with-eps", no_argument, NULL, OPT_WITH_EPS},
		{NULL, 0, NULL, 0}
	};
	struct dm_common com;
	struct dm_schedule s;
	struct dm_file *f = NULL;
	struct dm_tensor *xin;
	enum tmode mode = T_NONE;
	const char *spec = "linear", *tfile = NULL, *in;
	char canon[512], note[768];
	double t_fixed = 0;
	int chain = 0, with_eps = 0, sweep = 0, ch;

	dm_tool_init(argv);
	dm_common_init(&com);
	while ((ch = getopt_long(argc, argv, "ho:qt:V", longopts, NULL)) != -1) {
		int r = dm_common_option(&com, ch, optarg);
		if (r == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		enum tmode m = T_NONE;
		switch (ch) {
		case 'h':
			usage(stdout);
			return 0;
		case 't':
			if (dm_parse_double(optarg, 0, 1, &t_fixed) == -1)
				errx(2, "-t: %s", dm_errstr());
			m = T_FIXED;
			break;
		case 'V':
			printf("dm-noise (dm toolkit) %s\n", DM_VERSION);
			return 0;
		case OPT_CHAIN:
			chain = 1;
			break;
		case OPT_SCHEDULE:
			spec = optarg;
			break;
		case OPT_SWEEP:
			if (dm_parse_int(optarg, 1, 100000, &sweep) == -1)
				errx(2, "--sweep: %s", dm_errstr());
			m = T_SWEEP;
			break;
		case OPT_T_FILE:
			tfile = optarg;
			m = T_FILE;
			break;
		case OPT_T_UNIFORM:
			m = T_UNIFORM;
			break;
		case OPT_WITH_EPS:
			with_eps = 1;
			break;
		default:
			usage_error();
		}
		if (m != T_NONE) {
			if (mode != T_NONE && mode != m) {
				warnx("-t, --t-uniform, --t-file and --sweep "
				    "exclude each other");
				usage_error();
			}
			mode = m;
		}
	}
	if (argc - optind != 1) {
		warnx(argc - optind ? "one data file only" : "no data file");
		usage_error();
	}
	if (mode == T_NONE) {
		warnx("say when: -t T, --t-uniform, --t-file FILE or --sweep K");
		usage_error();
	}
	in = argv[optind];
	if (dm_schedule_from_string(&s, spec) == -1)
		errx(2, "--schedule: %s", dm_errstr());
	if (dm_schedule_to_string(&s, canon, sizeof canon) == -1)
		errx(1, "%s", dm_errstr());
	if (chain && with_eps && mode == T_SWEEP) {
		warnx("--with-eps: a chain's sweep has no single eps per sample");
		usage_error();
	}
	if (chain && (mode == T_FIXED || mode == T_SWEEP)) {
		int step, k;
		for (k = 0; k <= (mode == T_SWEEP ? sweep : 0); k++)
			if (dm_noise_chain_step(&s, mode == T_FIXED ? (float)t_fixed :
			    (float)((double)k / sweep), &step) == -1)
				errx(2, "--chain: %s", dm_errstr());
	}
	if (dm_check_binary_output(com.output) == -1)
		errx(1, "%s", dm_errstr());
	dm_threads_set(com.threads);

	if (dm_file_read(&f, in) == -1)
		errx(1, "%s: %s", in, dm_errstr());
	if ((xin = dm_file_get_f32(f, "x")) == NULL)
		errx(1, "%s: %s", in, dm_errstr());
	if (xin->ndim < 1)
		errx(1, "%s: x is a scalar (need [N, ...])", in);
	int64_t n = xin->shape[0];
	size_t d = n > 0 ? dm_tensor_numel(xin) / (size_t)n : 0;
	const float *x0 = xin->data;
	if (check_finite(x0, n, d) == -1)
		errx(1, "%s: %s", in, dm_errstr());

	/* the times */
	float *t = NULL;
	int64_t nt = mode == T_FIXED ? 1 : mode == T_SWEEP ? sweep + 1 : n;
	if (mode == T_FILE) {
		if ((t = read_t_file(tfile, n)) == NULL)
			errx(1, "--t-file: %s", dm_errstr());
	} else {
		if ((t = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *t)) == NULL)
			err(1, NULL);
		if (mode == T_FIXED)
			t[0] = (float)t_fixed;
		else if (mode == T_SWEEP)
			for (int k = 0; k <= sweep; k++)
				t[k] = (float)((double)k / sweep);
		else {
			dm_noise_draw_t(t, n, com.seed, 0);
			if (chain) {	/* a step uniform on 1..T */
				int T = dm_noise_chain_T(&s);
				for (int64_t i = 0; i < n; i++) {
					double j = floor((double)t[i] * T) + 1;
					t[i] = (float)(fmin(j, T) / T);
				}
			}
		}
	}

	/* the noise and the noised copies */
	int per_sample = mode == T_UNIFORM || mode == T_FILE;
	int64_t shape[DM_MAX_DIMS];
	struct dm_tensor *xt, *eps = NULL, *tt = NULL;
	memcpy(shape, xin->shape, sizeof shape);
	if ((eps = new_named("eps", xin->ndim, shape)) == NULL)
		errx(1, "%s", dm_errstr());
	if (!chain)
		dm_noise_draw_eps(eps->data, n, d, com.seed, 0);
	if (mode == T_SWEEP) {
		if (xin->ndim + 1 > DM_MAX_DIMS)
			errx(1, "%s: x has too many dimensions for a sweep", in);
		shape[0] = sweep + 1;
		memcpy(shape + 1, xin->shape, (size_t)xin->ndim * sizeof *shape);
		if ((xt = new_named("x", xin->ndim + 1, shape)) == NULL)
			errx(1, "%s", dm_errstr());
		for (int k = 0; k <= sweep; k++)
			noise(&s, chain, t + k, 0, x0, eps->data,
			    (float *)xt->data + (size_t)k * n * d, n, d, com.seed);
		int64_t tshape[1] = {sweep + 1};
		if ((tt = new_named("t", 1, tshape)) == NULL)
			errx(1, "%s", dm_errstr());
	} else {
		if ((xt = new_named("x", xin->ndim, xin->shape)) == NULL)
			errx(1, "%s", dm_errstr());
		noise(&s, chain, t, per_sample, x0, eps->data, xt->data, n, d,
		    com.seed);
		if (with_eps) {
			int64_t tshape[1] = {n};
			if ((tt = new_named("t", 1, tshape)) == NULL)
				errx(1, "%s", dm_errstr());
		}
	}
	if (tt != NULL)
		for (int64_t i = 0; i < tt->shape[0]; i++)
			((float *)tt->data)[i] = t[per_sample ? i : mode == T_SWEEP ?
			    i : 0];
	if (chain && with_eps) {
		/* the chain's x_t as alpha x0 + sigma eps: eps = (x_t - alpha x0)/sigma */
		for (int64_t i = 0; i < n; i++) {
			struct dm_sched_point p;
			dm_schedule_at(&s, t[per_sample ? i : 0], &p);
			for (size_t j = 0; j < d; j++) {
				size_t k = (size_t)i * d + j;
				((float *)eps->data)[k] = p.sigma > 0 ? (float)((
				    ((float *)xt->data)[k] - p.alpha * x0[k]) /
				    p.sigma) : 0;
			}
		}
	}

	/* the output: x replaced, eps and t as asked, the rest passed on */
	dm_file_remove(f, "eps");
	dm_file_remove(f, "t");
	add_or_die(f, xt);	/* frees the input x */
	if (with_eps)
		add_or_die(f, eps);
	else
		dm_tensor_free(eps);
	if (tt != NULL)
		add_or_die(f, tt);
	if (mode == T_FIXED)
		snprintf(note, sizeof note, "t=%.9g", t_fixed);
	else if (mode == T_SWEEP)
		snprintf(note, sizeof note, "sweep=%d", sweep);
	else if (mode == T_UNIFORM)
		snprintf(note, sizeof note, "t=uniform");
	else
		snprintf(note, sizeof note, "t=file");
	size_t len = strlen(note);
	snprintf(note + len, sizeof note - len, " schedule=%s seed=%llu%s", canon,
	    (unsigned long long)com.seed, chain ? " chain" : "");
	if (dm_file_meta_set(f, "dm.kind", mode == T_SWEEP ? "trajectory" :
	    "data") == -1 || dm_file_meta_set(f, "dm.noise", note) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1)
		errx(1, "%s", dm_errstr());
	if (dm_file_write(f, com.output ? com.output : "-", 0) == -1)
		errx(1, "%s: %s", com.output && strcmp(com.output, "-") ?
		    com.output : "stdout", dm_errstr());
	free(t);
	dm_file_free(f);
	dm_schedule_free(&s);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
