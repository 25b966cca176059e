/* dm-sinkhorn — entropic optimal transport between two point clouds:
 * transport cost, W_p, the entropic value and the Sinkhorn divergence as
 * a TSV line, and optionally the plan, the barycentric map and a
 * pairing.  The manual is dm-sinkhorn(1); the mathematics is SPEC.md §7
 * (lib/ot.c). */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_ot.h"

enum {
	OPT_BLUR = DM_OPT_FIRST_TOOL,
	OPT_DIVERGENCE,
	OPT_EPS,
	OPT_EPS_REL,
	OPT_EXACT,
	OPT_MAP,
	OPT_MAX_ITER,
	OPT_PAIRING,
	OPT_PAIRING_MODE,
	OPT_PLAN,
	OPT_SCALING,
	OPT_TOL,
	OPT_WEIGHTS_X,
	OPT_WEIGHTS_Y
};

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dm-sinkhorn [-hVv] [-p 1|2] [--blur B | --eps E | "
	    "--eps-rel R] [--divergence]\n"
	    "                   [--exact] [--map FILE] [--max-iter N] [--pairing FILE] "
	    "[--pairing-mode argmax|sample]\n"
	    "                   [--plan FILE] [--scaling S] [--seed N] "
	    "[--threads N] [--tol T]\n"
	    "                   [--weights-x FILE] [--weights-y FILE] X Y\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

/* The tensor a data file holds: the one named x, or the only one. */
static struct dm_tensor *
file_tensor(struct dm_file *f, const char *path)
{
	struct dm_tensor *t = dm_file_get(f, "x");

	if (t == NULL && f->ntensors == 1)
		t = f->tensors[0];
	if (t == NULL)
		errx(1, "%s: no tensor 'x' and %d tensors (expected one)", path,
		    f->ntensors);
	if (!dm_dtype_is_float(t->dtype) && t->dtype != DM_DTYPE_I64 &&
	    t->dtype != DM_DTYPE_I32 && t->dtype != DM_DTYPE_I16 &&
	    t->dtype != DM_DTYPE_I8 && t->dtype != DM_DTYPE_U8)
		errx(1, "%s: %s is %s, not numbers", path, t->name,
		    dm_dtype_name(t->dtype));
	if ((t = dm_file_get_f32(f, t->name)) == NULL)
		errx(1, "%s: %s", path, dm_errstr());
	if (dm_data_check_finite(t) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	return t;
}

/* Points [N, ...] (a 1-D tensor is N points on a line): rows and size. */
static const float *
read_points(const char *path, struct dm_file **keep, int64_t *n, size_t *d)
{
	struct dm_tensor *t;

	if (dm_file_read(keep, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	t = file_tensor(*keep, path);
	if (t->ndim < 1 || t->shape[0] < 1)
		errx(1, "%s: %s has no points", path, t->name);
	*n = t->shape[0];
	*d = dm_tensor_numel(t) / (size_t)*n;
	if (*d < 1)
		errx(1, "%s: %s has points of 0 coordinates", path, t->name);
	if (*d > INT32_MAX)
		errx(1, "%s: %s has points of %zu coordinates (too many)", path,
		    t->name, *d);
	return t->data;
}

/* Weights: n non-negative numbers (the checks of mass are the library's). */
static double *
read_weights(const char *path, int64_t n, const char *which)
{
	struct dm_file *f;
	struct dm_tensor *t;
	double *w;

	if (dm_file_read(&f, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	t = file_tensor(f, path);
	if (dm_tensor_numel(t) != (size_t)n)
		errx(1, "%s: %zu weights for the %lld points of %s", path,
		    dm_tensor_numel(t), (long long)n, which);
	if ((w = malloc((size_t)n * sizeof *w)) == NULL)
		err(1, NULL);
	for (int64_t i = 0; i < n; i++) {
		w[i] = ((const float *)t->data)[i];
		if (w[i] < 0)
			errx(1, "%s: weight %lld is %g (weights must be >= 0)",
			    path, (long long)i, w[i]);
	}
	dm_file_free(f);
	return w;
}

static void
write_one(const char *path, const char *name, enum dm_dtype dt, int ndim,
    const int64_t *shape, const void *data, const char *kind)
{
	struct dm_file *f = dm_file_new();
	struct dm_tensor *t;

	if (f == NULL || (t = dm_tensor_new_dtype(dt, ndim, shape)) == NULL)
		errx(1, "%s", dm_errstr());
	memcpy(t->data, data, t->nbytes);
	if (dm_tensor_set_name(t, name) == -1 || dm_file_add(f, t) == -1 ||
	    (kind != NULL && dm_file_meta_set(f, "dm.kind", kind) == -1))
		errx(1, "%s", dm_errstr());
	if (dm_file_write(f, path, 0) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	dm_file_free(f);
}

struct opts {
	struct dm_ot_opts ot;
	struct dm_common com;
	const char *wx, *wy, *plan, *map, *pairing;
	int divergence, exact, verbose, sample;
};

static void
parse(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"blur", required_argument, NULL, OPT_BLUR},
		{"divergence", no_argument, NULL, OPT_DIVERGENCE},
		{"eps", required_argument, NULL, OPT_EPS},
		{"eps-rel", required_argument, NULL, OPT_EPS_REL},
		{"exact", no_argument, NULL, OPT_EXACT},
		{"help", no_argument, NULL, 'h'},
		{"map", required_argument, NULL, OPT_MAP},
		{"max-iter", required_argument, NULL, OPT_MAX_ITER},
		{"pairing", required_argument, NULL, OPT_PAIRING},
		{"pairing-mode", required_argument, NULL, OPT_PAIRING_MODE},
		{"plan", required_argument, NULL, OPT_PLAN},
		{"scaling", required_argument, NULL, OPT_SCALING},
		{"seed", required_argument, NULL, DM_OPT_SEED},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"tol", required_argument, NULL, OPT_TOL},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"weights-x", required_argument, NULL, OPT_WEIGHTS_X},
		{"weights-y", required_argument, NULL, OPT_WEIGHTS_Y},
		{NULL, 0, NULL, 0}
	};
	int ch, given = 0, tol_given = 0;

	memset(o, 0, sizeof *o);
	dm_ot_opts_defaults(&o->ot);
	dm_common_init(&o->com);
	while ((ch = getopt_long(argc, argv, "hp:Vv", longopts, NULL)) != -1) {
		int r = dm_common_option(&o->com, ch, optarg);
		if (r == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		switch (ch) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'p':
			if (dm_parse_int(optarg, 1, 2, &o->ot.p) == -1) {
				warnx("-p: %s", dm_errstr());
				usage_error();
			}
			break;
		case 'V':
			printf("dm-sinkhorn (dm toolkit) %s\n", DM_VERSION);
			exit(0);
		case 'v':
			o->verbose = 1;
			break;
		case OPT_BLUR:
		case OPT_EPS:
		case OPT_EPS_REL: {
			double v;
			const char *nm = ch == OPT_BLUR ? "--blur" :
			    ch == OPT_EPS ? "--eps" : "--eps-rel";
			if (dm_parse_double(optarg, 0, HUGE_VAL, &v) == -1) {
				warnx("%s: %s", nm, dm_errstr());
				usage_error();
			}
			if (!(v > 0)) {
				warnx("%s: epsilon must be > 0", nm);
				usage_error();
			}
			*(ch == OPT_BLUR ? &o->ot.blur : ch == OPT_EPS ?
			    &o->ot.eps : &o->ot.eps_rel) = v;
			given++;
			break;
		}
		case OPT_DIVERGENCE:
			o->divergence = 1;
			break;
		case OPT_EXACT:
			o->exact = 1;
			break;
		case OPT_MAP:
			o->map = optarg;
			break;
		case OPT_MAX_ITER:
			if (dm_parse_int64(optarg, 1, INT64_MAX, &o->ot.max_iter)
			    == -1) {
				warnx("--max-iter: %s", dm_errstr());
				usage_error();
			}
			break;
		case OPT_PAIRING:
			o->pairing = optarg;
			break;
		case OPT_PAIRING_MODE:
			if (strcmp(optarg, "argmax") == 0)
				o->sample = 0;
			else if (strcmp(optarg, "sample") == 0)
				o->sample = 1;
			else {
				warnx("--pairing-mode: '%s' is not argmax or "
				    "sample", optarg);
				usage_error();
			}
			break;
		case OPT_PLAN:
			o->plan = optarg;
			break;
		case OPT_SCALING:
			if (dm_parse_double(optarg, 0, 1, &o->ot.scaling) == -1 ||
			    o->ot.scaling <= 0 || o->ot.scaling >= 1) {
				warnx("--scaling: '%s' is not in (0, 1)", optarg);
				usage_error();
			}
			break;
		case OPT_TOL:
			if (dm_parse_double(optarg, 0, HUGE_VAL, &o->ot.tol) ==
			    -1 || o->ot.tol <= 0) {
				warnx("--tol: '%s' is not a number > 0", optarg);
				usage_error();
			}
			tol_given = 1;
			break;
		case OPT_WEIGHTS_X:
			o->wx = optarg;
			break;
		case OPT_WEIGHTS_Y:
			o->wy = optarg;
			break;
		default:
			usage_error();
		}
	}
	if (given > 1) {
		warnx("give one of --blur, --eps and --eps-rel");
		usage_error();
	}
	if (o->exact && (given > 0 || o->divergence || o->sample ||
	    o->wx != NULL || o->wy != NULL)) {
		warnx("--exact solves the assignment problem (uniform weights, "
		    "no epsilon): not with --blur, --eps, --eps-rel, "
		    "--divergence, --pairing-mode sample or weights");
		usage_error();
	}
	if (argc - optind != 2) {
		warnx(argc - optind < 2 ? "need two point clouds X and Y" :
		    "too many operands");
		usage_error();
	}
	if (strcmp(argv[optind], "-") == 0 && strcmp(argv[optind + 1], "-")
	    == 0) {
		warnx("X and Y cannot both be standard input");
		usage_error();
	}
	o->ot.threads = o->com.threads;
	/* the divergence is read from dual objectives, whose error is of
	 * the second order in the marginal error */
	if (o->divergence && !tol_given)
		o->ot.tol = 1e-3;
}

static void
report(const struct opts *o, const struct dm_ot_result *r, double div,
    int64_t n, int64_t m, size_t d, double secs)
{
	if (!o->verbose) {
		printf("cost\tw\tentropic%s\titerations\tmarginal_error\t"
		    "converged\n", o->divergence ? "\tdivergence" : "");
		printf("%.10g\t%.10g\t%.10g", r->cost, r->w, r->entropic);
		if (o->divergence)
			printf("\t%.10g", div);
		printf("\t%lld\t%.3g\t%d\n", (long long)r->iterations,
		    r->marginal_error, r->converged);
		return;
	}
	printf("points          n %lld, m %lld, d %zu\n", (long long)n,
	    (long long)m, d);
	printf("cost            |x - y|^%d\n", o->ot.p);
	printf("epsilon         %.6g", r->eps);
	if (o->exact)
		printf(" (--exact: the assignment problem)\n");
	else if (o->ot.eps > 0)
		printf(" (--eps)\n");
	else if (o->ot.eps_rel > 0)
		printf(" (--eps-rel %g x the largest cost)\n", o->ot.eps_rel);
	else
		printf(" (blur %g ^ %d)\n", o->ot.blur > 0 ? o->ot.blur : 0.05,
		    o->ot.p);
	printf("transport cost  %.10g\n", r->cost);
	printf("W_%d             %.10g\n", o->ot.p, r->w);
	printf("entropic value  %.10g\n", r->entropic);
	if (o->divergence)
		printf("divergence      %.10g\n", div);
	printf("iterations      %lld\n", (long long)r->iterations);
	printf("marginal error  %.3g (tolerance %g)\n", r->marginal_error,
	    o->ot.tol);
	printf("converged       %s\n", r->converged ? "yes" : "no");
	printf("time            %.3f s\n", secs);
}

/* --exact: the optimal assignment of n points to n points; its plan has
 * 1/n at (i, perm[i]), its map sends x_i to y_perm[i]. */
static void
exact(const struct opts *o, const float *x, int64_t n, const float *y,
    int64_t m, size_t d, double t0)
{
	struct dm_ot_result r = {0};
	int64_t *perm;

	if (n != m)
		errx(1, "--exact: the assignment problem needs as many points "
		    "in X as in Y (%lld and %lld)", (long long)n, (long long)m);
	if ((perm = malloc((size_t)n * sizeof *perm)) == NULL)
		err(1, NULL);
	if (dm_ot_assign(x, y, n, (int)d, o->ot.p, perm, &r.cost) == -1)
		errx(1, "--exact: %s", dm_errstr());
	r.w = pow(r.cost, 1.0 / o->ot.p);
	r.entropic = r.cost;
	r.converged = 1;
	if (o->plan != NULL) {
		size_t nm;
		double *plan;
		if (dm_mul_size((size_t)n, (size_t)n, &nm) == -1 ||
		    (plan = dm_calloc(nm, sizeof *plan)) == NULL)
			errx(1, "--plan: %s", dm_errstr());
		for (int64_t i = 0; i < n; i++)
			plan[(size_t)i * (size_t)n + (size_t)perm[i]] =
			    1.0 / (double)n;
		write_one(o->plan, "plan", DM_DTYPE_F64, 2, (int64_t[]){n, n},
		    plan, "plan");
		free(plan);
	}
	if (o->map != NULL) {
		float *map;
		if ((map = dm_calloc((size_t)n * d, sizeof *map)) == NULL)
			errx(1, "--map: %s", dm_errstr());
		for (int64_t i = 0; i < n; i++)
			memcpy(map + (size_t)i * d, y + (size_t)perm[i] * d,
			    d * sizeof *map);
		write_one(o->map, "x", DM_DTYPE_F32, 2,
		    (int64_t[]){n, (int64_t)d}, map, "data");
		free(map);
	}
	if (o->pairing != NULL)
		write_one(o->pairing, "pairing", DM_DTYPE_I64, 1,
		    (int64_t[]){n}, perm, NULL);
	free(perm);
	report(o, &r, 0, n, m, d, dm_now() - t0);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct dm_file *fx = NULL, *fy = NULL;
	struct dm_ot_result r, rr[3];
	const float *x, *y;
	double *a = NULL, *b = NULL, *f, *g, div = 0;
	int64_t n, m;
	size_t d, dy;
	int rc;

	dm_tool_init(argv);
	parse(&o, argc, argv);
	dm_threads_set(o.com.threads);
	double t0 = dm_now();
	const char *px = argv[optind], *py = argv[optind + 1];
	x = read_points(px, &fx, &n, &d);
	y = read_points(py, &fy, &m, &dy);
	if (d != dy)
		errx(1, "%s: points of %zu coordinates, %s: %zu (they must "
		    "agree)", px, d, py, dy);
	if (o.wx != NULL)
		a = read_weights(o.wx, n, "X");
	if (o.wy != NULL)
		b = read_weights(o.wy, m, "Y");
	if (o.exact) {
		exact(&o, x, n, y, m, d, t0);
		dm_file_free(fx);
		dm_file_free(fy);
		return 0;
	}
	f = malloc((size_t)n * sizeof *f);
	g = malloc((size_t)m * sizeof *g);
	if (f == NULL || g == NULL)
		err(1, NULL);
	if (o.divergence) {
		rc = dm_ot_divergence_full(x, a, n, y, b, m, (int)d, &o.ot,
		    &div, rr, f, g);
		r = rr[0];
		r.iterations = rr[0].iterations + rr[1].iterations +
		    rr[2].iterations;
		for (int k = 1; k < 3; k++)
			r.marginal_error = fmax(r.marginal_error,
			    rr[k].marginal_error);
		r.converged = rr[0].converged && rr[1].converged &&
		    rr[2].converged;
	} else
		rc = dm_ot_sinkhorn(x, a, n, y, b, m, (int)d, &o.ot, &r, f, g);
	if (rc == -1)
		errx(1, "%s", dm_errstr());
	if (o.plan != NULL || o.map != NULL || o.pairing != NULL) {
		double *plan = NULL;
		float *map = NULL;
		int64_t *pair = NULL;
		size_t nm;
		if (o.plan != NULL && (dm_mul_size((size_t)n, (size_t)m, &nm)
		    == -1 || (plan = dm_calloc(nm, sizeof *plan)) == NULL))
			errx(1, "--plan: %s", dm_errstr());
		if (o.map != NULL && (map = dm_calloc((size_t)n * d,
		    sizeof *map)) == NULL)
			errx(1, "--map: %s", dm_errstr());
		if (o.pairing != NULL && (pair = dm_calloc((size_t)n,
		    sizeof *pair)) == NULL)
			errx(1, "--pairing: %s", dm_errstr());
		/* the library samples for a seed != 0 */
		if (dm_ot_plan(x, a, n, y, b, m, (int)d, o.ot.p, r.eps, f, g,
		    plan, map, pair, o.sample ? o.com.seed + 1 : 0) == -1)
			errx(1, "%s", dm_errstr());
		if (plan != NULL)
			write_one(o.plan, "plan", DM_DTYPE_F64, 2,
			    (int64_t[]){n, m}, plan, "plan");
		if (map != NULL)
			write_one(o.map, "x", DM_DTYPE_F32, 2,
			    (int64_t[]){n, (int64_t)d}, map, "data");
		if (pair != NULL)
			write_one(o.pairing, "pairing", DM_DTYPE_I64, 1,
			    (int64_t[]){n}, pair, NULL);
		free(plan);
		free(map);
		free(pair);
	}
	report(&o, &r, div, n, m, d, dm_now() - t0);
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	if (!r.converged)
		warnx("not converged: marginal error %.3g > %g after %lld "
		    "iterations (--max-iter)", r.marginal_error, o.ot.tol,
		    (long long)r.iterations);
	free(a);
	free(b);
	free(f);
	free(g);
	dm_file_free(fx);
	dm_file_free(fy);
	return r.converged ? 0 : 3;
}
