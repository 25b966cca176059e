/* dm-lora-merge — merge low-rank adapters into a model, take them out
 * again, re-factor a merge into one adapter, or extract an adapter from a
 * fine-tuned model by truncated SVD.  The manual is dm-lora-merge(1); the
 * mathematics is SPEC.md §9 and the code lib/lora.c. */
#include <err.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

enum {
	OPT_EXTRACT = DM_OPT_FIRST_TOOL,
	OPT_LORA_TARGETS,
	OPT_SVD_RANK,
	OPT_TUNED,
	OPT_UNMERGE
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: dm-lora-merge [-fhqV] [--unmerge | --svd-rank R] [-o OUT] "
	    "BASE ADAPTER[:W]...\n"
	    "       dm-lora-merge [-fq] --extract R --tuned TUNED "
	    "[--lora-targets P,...]\n"
	    "                     [-o ADAPTER] BASE\n");
}

static void
usage_error(const char *msg)
{
	if (msg != NULL)
		warnx("%s", msg);
	usage(stderr);
	exit(2);
}

struct opts {
	struct dm_common com;
	int force, unmerge, svd_rank, extract;
	const char *tuned, *targets;
};

static void
parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"extract", required_argument, NULL, OPT_EXTRACT},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{"lora-targets", required_argument, NULL, OPT_LORA_TARGETS},
		{"output", required_argument, NULL, 'o'},
		{"quiet", no_argument, NULL, 'q'},
		{"svd-rank", required_argument, NULL, OPT_SVD_RANK},
		{"threads", required_argument, NULL, DM_OPT_THREADS},
		{"tuned", required_argument, NULL, OPT_TUNED},
		{"unmerge", no_argument, NULL, OPT_UNMERGE},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int ch, r;

	memset(o, 0, sizeof *o);
	dm_common_init(&o->com);
	while ((ch = getopt_long(argc, argv, "fho:qV", longopts, NULL)) != -1) {
		if ((r = dm_common_option(&o->com, ch, optarg)) == 1)
			continue;
		if (r == -1)
			errx(2, "%s", dm_errstr());
		switch (ch) {
		case 'f':
			o->force = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("dm-lora-merge (dm toolkit) %s\n", DM_VERSION);
			exit(0);
		case OPT_EXTRACT:
			if (dm_parse_int(optarg, 1, 1 << 20, &o->extract) == -1)
				errx(2, "--extract: %s", dm_errstr());
			break;
		case OPT_LORA_TARGETS:
			o->targets = optarg;
			break;
		case OPT_SVD_RANK:
			if (dm_parse_int(optarg, 1, 1 << 20, &o->svd_rank) == -1)
				errx(2, "--svd-rank: %s", dm_errstr());
			break;
		case OPT_TUNED:
			o->tuned = optarg;
			break;
		case OPT_UNMERGE:
			o->unmerge = 1;
			break;
		default:
			usage_error(NULL);
		}
	}
	if (o->extract > 0) {
		if (o->tuned == NULL)
			usage_error("--extract needs --tuned TUNED");
		if (argc - optind != 1)
			usage_error("--extract takes one BASE and no adapters");
		if (o->unmerge || o->svd_rank > 0)
			usage_error("--extract excludes --unmerge and --svd-rank");
	} else {
		if (o->tuned != NULL || o->targets != NULL)
			usage_error("--tuned and --lora-targets go with --extract");
		if (argc - optind < 2)
			usage_error("a BASE model and at least one ADAPTER");
		if (o->unmerge && o->svd_rank > 0)
			usage_error("--unmerge and --svd-rank exclude each other");
	}
}

static struct dm_model *
load_model(const char *path, struct dm_file **keep)
{
	struct dm_model *m;

	if (dm_file_read(keep, path) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (dm_model_from_file(&m, *keep) == -1)
		errx(1, "%s: %s", path, dm_errstr());
	if (m->cfg.arch == DM_ARCH_GMM)
		errx(1, "%s: a gmm model has no layers to adapt", path);
	return m;
}

/* Relative errors of a factorization, one TSV row per layer and a total. */
static void
report(const struct dm_lora *l, const double *err2, const double *norm2)
{
	double e = 0, n = 0;

	fprintf(stderr, "layer\trank\trel_error\n");
	for (int i = 0; i < l->nlayer; i++) {
		fprintf(stderr, "%s\t%d\t%.6g\n", l->layer[i].name,
		    l->layer[i].rank, norm2[i] > 0 ? sqrt(err2[i] / norm2[i]) :
		    0);
		e += err2[i];
		n += norm2[i];
	}
	fprintf(stderr, "total\t%d\t%.6g\n", l->rank, n > 0 ? sqrt(e / n) : 0);
}

static void
write_adapter(const struct dm_lora *l, const struct dm_model *m,
    const char *out)
{
	struct dm_file *f = dm_file_new();

	if (f == NULL || dm_lora_to_file(l, NULL, m, f) == -1 ||
	    dm_file_write(f, out, 0) == -1)
		errx(1, "%s: %s", out, dm_errstr());
	dm_file_free(f);
}

static int
extract(const struct opts *o, const char *bpath, const char *out)
{
	struct dm_file *bf, *tf;
	struct dm_model *b = load_model(bpath, &bf);
	struct dm_model *t = load_model(o->tuned, &tf);
	char cb[4096], ct[4096];
	double *err2, *norm2, other = 0, other_n = 0;
	float *delta;
	struct dm_lora *l;

	if (dm_model_config_format(&b->cfg, cb, sizeof cb) == -1 ||
	    dm_model_config_format(&t->cfg, ct, sizeof ct) == -1)
		errx(1, "%s", dm_errstr());
	if (b->cfg.arch != t->cfg.arch || strcmp(cb, ct) != 0 ||
	    b->nparams != t->nparams)
		errx(1, "%s: not the architecture of %s", o->tuned, bpath);
	if ((delta = malloc(b->nparams * sizeof *delta)) == NULL ||
	    (err2 = calloc((size_t)b->nparam + 1, sizeof *err2)) == NULL ||
	    (norm2 = calloc((size_t)b->nparam + 1, sizeof *norm2)) == NULL)
		err(1, NULL);
	for (size_t k = 0; k < b->nparams; k++)
		delta[k] = t->params[k] - b->params[k];
	if ((l = dm_lora_from_delta(b, delta, o->targets, o->extract, err2,
	    norm2)) == NULL)
		errx(1, "%s: %s", o->tuned, dm_errstr());
	/* what an adapter cannot carry: biases, norms, untargeted layers */
	for (int i = 0; i < b->nparam; i++) {
		const struct dm_param *p = &b->param[i];
		int adapted = 0;
		for (int k = 0; k < l->nlayer; k++)
			adapted |= l->layer[k].param == i;
		if (adapted)
			continue;
		for (size_t k = 0; k < p->numel; k++) {
			double d = delta[p->offset + k];
			other += d * d;
			other_n += (double)b->params[p->offset + k] *
			    b->params[p->offset + k];
		}
	}
	write_adapter(l, b, out);
	if (!o->com.quiet) {
		report(l, err2, norm2);
		if (other > 0)
			fprintf(stderr, "dm-lora-merge: warning: weights outside "
			    "the adapted layers differ too (relative %.3g); the "
			    "adapter leaves them out\n", other_n > 0 ?
			    sqrt(other / other_n) : 1);
	}
	free(delta);
	free(err2);
	free(norm2);
	dm_lora_free(l);
	dm_model_free(b);
	dm_model_free(t);
	dm_file_free(bf);
	dm_file_free(tf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct dm_file *bf, *of;
	struct dm_model *m;
	const char *bpath, *out, *v;
	uint64_t hash;
	float *sum = NULL;
	char buf[32];

	dm_tool_init(argv);
	parse_opts(&o, argc, argv);
	out = o.com.output ? o.com.output : "-";
	if (dm_check_binary_output(out) == -1)
		errx(1, "%s", dm_errstr());
	dm_threads_set(o.com.threads);
	bpath = argv[optind];
	if (o.extract > 0)
		return extract(&o, bpath, out);

	m = load_model(bpath, &bf);
	/* a merged model remembers its base, for --unmerge */
	hash = dm_lora_model_hash(m);
	if ((v = dm_file_meta(bf, "dm.lora.base")) != NULL) {
		char *end;
		uint64_t h = strtoull(v, &end, 16);
		if (*v != '\0' && *end == '\0')
			hash = h;
	}
	if (o.svd_rank > 0 && (sum = calloc(m->nparams ? m->nparams : 1,
	    sizeof *sum)) == NULL)
		err(1, NULL);
	for (int k = optind + 1; k < argc; k++) {
		char *path = argv[k], *colon = strrchr(path, ':');
		double w = 1;
		struct dm_lora *l;
		if (colon && colon != path && dm_parse_double(colon + 1, -1e6,
		    1e6, &w) == 0)
			*colon = '\0';
		if (dm_lora_load(&l, path, m) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		if (!o.force && dm_lora_check_base(l, hash) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		if (sum != NULL) {
			/* the sum of the weighted deltas, not of the factors */
			for (int i = 0; i < l->nlayer; i++)
				dm_lora_delta(l, NULL, i, w, sum +
				    m->param[l->layer[i].param].offset);
		} else if (dm_lora_merge(m, l, o.unmerge ? -w : w) == -1)
			errx(1, "%s: %s", path, dm_errstr());
		dm_lora_free(l);
	}
	if (sum != NULL) {
		double *err2, *norm2;
		struct dm_lora *l;
		if ((err2 = calloc((size_t)m->nparam + 1, sizeof *err2)) == NULL ||
		    (norm2 = calloc((size_t)m->nparam + 1, sizeof *norm2)) == NULL)
			err(1, NULL);
		if ((l = dm_lora_from_delta(m, sum, NULL, o.svd_rank, err2,
		    norm2)) == NULL)
			errx(1, "--svd-rank: %s", dm_errstr());
		l->base_hash = hash;
		write_adapter(l, m, out);
		if (!o.com.quiet)
			report(l, err2, norm2);
		dm_lora_free(l);
		free(err2);
		free(norm2);
		free(sum);
	} else {
		if ((of = dm_file_new()) == NULL ||
		    dm_model_to_file(m, NULL, of) == -1)
			errx(1, "%s", dm_errstr());
		snprintf(buf, sizeof buf, "%016llx", (unsigned long long)hash);
		if (!o.unmerge && dm_file_meta_set(of, "dm.lora.base", buf) == -1)
			errx(1, "%s", dm_errstr());
		if (dm_file_write(of, out, 0) == -1)
			errx(1, "%s: %s", out, dm_errstr());
		dm_file_free(of);
	}
	dm_model_free(m);
	dm_file_free(bf);
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	return 0;
}
