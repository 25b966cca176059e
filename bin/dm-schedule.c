/* dm-schedule — print a noise schedule, or a sampler's time grid, as TSV or
 * as a tensor file.  The manual is dm-schedule(1); the mathematics is
 * SPEC.md §1–§2 (lib/schedule.c). */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_GRID = DM_OPT_FIRST_TOOL,
	OPT_RHO,
	OPT_SHIFT,
	OPT_SPACING,
	OPT_STEPS
};

static const char *columns[] = {
	"t", "alpha", "sigma", "lambda", "snr", "alpha_bar", "beta", "dalpha",
	"dsigma"
};
#define NCOL (sizeof columns / sizeof columns[0])
#define GRID_NCOL 5	/* step, then t .. lambda */

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dm-schedule [-hqV] [-n N] [-o FILE] [SCHEDULE]\n"
	    "       dm-schedule --grid [--rho R] [--shift K] [--spacing SP] "
	    "[--steps N]\n"
	    "                   [-hqV] [-o FILE] [SCHEDULE]\n");
}

static void
usage_error(void)
{
	usage(stderr);
	exit(2);
}

/* One row of values at time t; row i of a discrete table gives beta_i. */
static void
row_values(const struct dm_schedule *s, double t, int step, double *v)
{
	struct dm_sched_point p;

	dm_schedule_at(s, t, &p);
	v[0] = p.t;
	v[1] = p.alpha;
	v[2] = p.sigma;
	v[3] = p.lambda;
	v[4] = p.alpha * p.alpha / (p.sigma * p.sigma);
	v[5] = p.alpha * p.alpha;
	if (step >= 0)	/* discrete step: beta_i (0 at the data end) */
		v[6] = step == 0 ? 0 : dm_schedule_beta(s, step);
	else if (dm_schedule_is_vp(s))	/* beta(t) = -d log abar / dt */
		v[6] = -2 * p.dalpha / p.alpha;
	else
		v[6] = NAN;
	v[7] = p.dalpha;
	v[8] = p.dsigma;
}

static int
write_tensors(const char *path, const char *spec, const char *const *names,
    int ncol, double *vals, int64_t nrow, const char *kind)
{
	struct dm_file *f = dm_file_new();

	if (f == NULL)
		return -1;
	for (int c = 0; c < ncol; c++) {
		struct dm_tensor *t = dm_tensor_new_dtype(DM_DTYPE_F64, 1, &nrow);
		if (t == NULL || dm_tensor_set_name(t, names[c]) == -1 ||
		    dm_file_add(f, t) == -1) {
			dm_tensor_free(t);
			dm_file_free(f);
			return -1;
		}
		for (int64_t r = 0; r < nrow; r++)
			((double *)t->data)[r] = vals[r * ncol + c];
	}
	int rc = dm_file_meta_set(f, "dm.kind", kind) == -1 ||
	    dm_file_meta_set(f, "dm.schedule", spec) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1 ||
	    dm_file_write(f, path, 0) == -1 ? -1 : 0;
	dm_file_free(f);
	return rc;
}

static void
print_tsv(const char *const *names, int ncol, const double *vals, int64_t nrow,
    int quiet, int first_is_int)
{
	if (!quiet)
		for (int c = 0; c < ncol; c++)
			printf("%s%c", names[c], c + 1 < ncol ? '\t' : '\n');
	for (int64_t r = 0; r < nrow; r++)
		for (int c = 0; c < ncol; c++) {
			double v = vals[r * ncol + c];
			if (c == 0 && first_is_int)
				printf("%.0f", v);
			else
				printf("%.12g", v);
			putchar(c + 1 < ncol ? '\t' : '\n');
		}
}

/* The table to a tensor file (-o) or as TSV on stdout; -1 on a failed write. */
static int
output(const struct dm_common *com, const char *canon, const char *const *names,
    int ncol, double *vals, int64_t nrow, int first_is_int)
{
	if (com->output != NULL)
		return write_tensors(com->output, canon, names, ncol, vals, nrow,
		    "schedule");
	print_tsv(names, ncol, vals, nrow, com->quiet, first_is_int);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"grid", no_argument, NULL, OPT_GRID},
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"points", required_argument, NULL, 'n'},
		{"quiet", no_argument, NULL, 'q'},
		{"rho", required_argument, NULL, OPT_RHO},
		{"shift", required_argument, NULL, OPT_SHIFT},
		{"spacing", required_argument, NULL, OPT_SPACING},
		{"steps", required_argument, NULL, OPT_STEPS},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	struct dm_common com;
	struct dm_schedule s;
	enum dm_spacing spacing = DM_SPACING_TRAILING;
	const char *spec = "linear";
	char canon[512];
	int grid = 0, steps = 10, npoints = 0, ch, rc;
	double param = 0, rho = 0, shift = 0;

	dm_common_init(&com);
	while ((ch = getopt_long(argc, argv, "hn:o:qV", longopts, NULL)) != -1) {
		int r = dm_common_option(&com, ch, optarg);
		if (r == 1)
			continue;
		if (r == -1) {
			warnx("%s", dm_errstr());
			usage_error();
		}
		switch (ch) {
		case 'h':
			usage(stdout);
			return 0;
		case 'n':
			if (dm_parse_int(optarg, 1, 10000000, &npoints) == -1) {
				warnx("-n: %s", dm_errstr());
				usage_error();
			}
			break;
		case 'V':
			printf("dm-schedule (dm toolkit) %s\n", DM_VERSION);
			return 0;
		case OPT_GRID:
			grid = 1;
			break;
		case OPT_RHO:
		case OPT_SHIFT:
			if (dm_parse_double(optarg, 1e-6, 1e6,
			    ch == OPT_RHO ? &rho : &shift) == -1) {
				warnx("--%s: %s", ch == OPT_RHO ? "rho" : "shift",
				    dm_errstr());
				usage_error();
			}
			break;
		case OPT_SPACING:
			if (dm_spacing_parse(optarg, &spacing) == -1) {
				warnx("--spacing: %s", dm_errstr());
				usage_error();
			}
			break;
		case OPT_STEPS:
			if (dm_parse_int(optarg, 1, 1000000, &steps) == -1) {
				warnx("--steps: %s", dm_errstr());
				usage_error();
			}
			break;
		default:
			usage_error();
		}
	}
	if (argc - optind > 1)
		usage_error();
	if (argc - optind == 1)
		spec = argv[optind];
	if (dm_schedule_from_string(&s, spec) == -1)
		errx(2, "%s", dm_errstr());
	if (dm_schedule_to_string(&s, canon, sizeof canon) == -1)
		errx(1, "%s", dm_errstr());
	if (com.output != NULL && dm_check_binary_output(com.output) == -1)
		errx(1, "%s", dm_errstr());
	param = spacing == DM_SPACING_KARRAS ? rho :
	    spacing == DM_SPACING_SHIFT ? shift : 0;

	if (grid) {
		static const char *gnames[GRID_NCOL] = {
			"step", "t", "alpha", "sigma", "lambda"
		};
		double *t = malloc(((size_t)steps + 1) * sizeof *t);
		double *vals = malloc(((size_t)steps + 1) * GRID_NCOL * sizeof *vals);
		if (t == NULL || vals == NULL)
			err(1, NULL);
		if (dm_schedule_grid(&s, steps, spacing, param, t) == -1) {
			free(t);
			free(vals);
			dm_schedule_free(&s);
			errx(1, "%s", dm_errstr());
		}
		for (int k = 0; k <= steps; k++) {
			double v[NCOL];
			row_values(&s, t[k], -1, v);
			vals[k * GRID_NCOL] = k;
			memcpy(vals + k * GRID_NCOL + 1, v, 4 * sizeof *v);
		}
		free(t);
		rc = output(&com, canon, gnames, GRID_NCOL, vals, steps + 1, 1);
		free(vals);
	} else {
		int discrete = s.kind == DM_SCHEDULE_LINEAR ||
		    s.kind == DM_SCHEDULE_COSINE;
		int n = npoints ? npoints : discrete ? s.T : 1000;
		double *vals = malloc(((size_t)n + 1) * NCOL * sizeof *vals);
		if (vals == NULL)
			err(1, NULL);
		for (int k = 0; k <= n; k++)
			row_values(&s, (double)k / n,
			    discrete && n == s.T ? k : -1, vals + (size_t)k * NCOL);
		rc = output(&com, canon, columns, NCOL, vals, n + 1, 0);
		free(vals);
	}
	dm_schedule_free(&s);
	if (rc == -1)
		errx(1, "%s: %s", com.output, dm_errstr());
	if (fflush(stdout) == EOF || ferror(stdout) || fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
