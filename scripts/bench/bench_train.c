/* bench_train.c — training and sampling speed of the mlp and unet models,
 * with the GEMM/convolution FLOPs they do, against the machine's sgemm rate
 * measured in the same process.  scripts/torch_bench.py runs the same
 * workloads in PyTorch; scripts/bench.sh prints the two side by side.
 *
 *   bench_train [-t THREADS] [-s SECONDS] WORKLOAD
 *
 * WORKLOAD (the defaults of dm-train otherwise: AdamW, clip 1, EMA 0.999):
 *   mlp256        flow matching, mlp 2 -> 3 x 256 (temb 64) -> 2, batch 1024
 *   mlp1024       the same at width 1024
 *   unet          eps objective (linear schedule), unet 1x28x28, ch 32,
 *                 mult 1,2,4, attention at 7x7, batch 64
 *   unet-nfe1     unet forward, batch 1 (sampling)
 *   unet-nfe256   unet forward, batch 256
 *   mlp-nfe1      mlp 256 forward, batch 1 (sampling)
 *
 * One TSV line: workload, rate, unit, GFLOP/s, the fraction of the sgemm
 * rate, sgemm GFLOP/s, peak RSS MiB, RSS MiB before the model was made,
 * parameters.  The rate is the best of several timing windows (a busy
 * machine only slows some of them).  FLOPs: 2 M N K per GEMM (linear,
 * convolution as im2col, the attention products); backward counts the
 * weight gradient of every layer and the input gradient of every layer but
 * the two whose input needs none (the first time-embedding linear and the
 * input layer). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dm.h"

static double
sgemm_rate(int n)
{
	size_t nn = (size_t)n * n;
	float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4);
	double best = 0;

	if (a == NULL || b == NULL || c == NULL)
		exit(1);
	dm_rng_normal(a, nn, 1, 0, 0);
	dm_rng_normal(b, nn, 2, 0, 0);
	for (int rep = 0; rep < 8; rep++) {
		double t0 = dm_now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
		    1.0f, a, n, b, n, 0.0f, c, n);
		double gf = 2.0 * n * (double)n * n / (dm_now() - t0) / 1e9;
		if (gf > best)
			best = gf;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

/* resident set now, MiB (VmRSS) */
static double
rss_mib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	double kib = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atof(line + 6);
	fclose(f);
	return kib / 1024;
}

static double
peak_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024.0;
}

/*
 * FLOPs of one sample's forward pass (fwd) and of the input gradients
 * that backward skips (skip): backward = 2 fwd - skip.
 */

static void
mlp_flops(const struct dm_model_config *c, double *fwd, double *skip)
{
	double W = c->width, T = c->temb, d = (double)c->shape[0];

	*fwd = 2 * (T * W + W * W + d * W + c->depth * 3 * W * W + W * d);
	*skip = 2 * (T * W + d * W);
}

/* one 3x3 or 1x1 convolution on an H x H input */
static double
conv_fl(double cin, double cout, int k, int s, int H)
{
	double Ho = H / s;

	return 2 * cin * cout * k * k * Ho * Ho;
}

static double
res_fl(double cin, double cout, int H, double E)
{
	double f = conv_fl(cin, cout, 3, 1, H) + conv_fl(cout, cout, 3, 1, H) +
	    2 * E * cout;

	if (cin != cout)
		f += conv_fl(cin, cout, 1, 1, H);
	return f;
}

static void
unet_flops(const struct dm_model_config *c, double *fwd, double *skip)
{
	int L = c->nlevels, H = (int)c->shape[1], C = (int)c->shape[0];
	double E = 4.0 * c->ch, f, cur = c->ch, cl[8];
	int hl[8];

	for (int l = 0; l < L; l++) {
		cl[l] = (double)c->ch * c->mult[l];
		hl[l] = H >> l;
	}
	f = 2 * (c->temb * E + E * E) + conv_fl(C, c->ch, 3, 1, H);
	*skip = 2 * c->temb * E + conv_fl(C, c->ch, 3, 1, H);
	for (int l = 0; l < L; l++) {
		for (int j = 0; j < c->nres; j++) {
			f += res_fl(cur, cl[l], hl[l], E);
			cur = cl[l];
		}
		if (l < L - 1)
			f += conv_fl(cur, cur, 3, 2, hl[l]);
	}
	double T = (double)hl[L - 1] * hl[L - 1];
	f += 2 * res_fl(cur, cur, hl[L - 1], E);
	if (c->attn)
		f += 2 * T * cur * 3 * cur + 2 * T * cur * cur +
		    2 * 2 * T * T * cur;
	for (int l = L - 1; l >= 0; l--) {
		for (int j = 0; j < c->nres; j++) {
			f += res_fl(cur + cl[l], cl[l], hl[l], E);
			cur = cl[l];
		}
		if (l > 0)
			f += conv_fl(cur, cur, 3, 1, hl[l - 1]);
	}
	f += conv_fl(cur, C, 3, 1, H);
	*fwd = f;
}

static void
die(const char *what)
{
	fprintf(stderr, "bench_train: %s: %s\n", what, dm_errstr());
	exit(1);
}

/* Calls fn(arg) repeatedly for about `secs` seconds in windows of at least
 * 3 calls and 0.25 s; returns the best calls per second of a window. */
static double
best_rate(void (*fn)(void *), void *arg, double secs)
{
	double end = dm_now() + secs, best = 0;

	do {
		double t0 = dm_now(), dt;
		int n = 0;
		do {
			fn(arg);
			n++;
			dt = dm_now() - t0;
		} while (n < 3 || dt < 0.25);
		if (n / dt > best)
			best = n / dt;
	} while (dm_now() < end);
	return best;
}

static void
train_step(void *arg)
{
	if (dm_trainer_step(arg) == -1)
		die("step");
}

struct fwd {
	struct dm_model *m;
	float *x, *t, *out;
	int B;
};

static void
forward(void *arg)
{
	struct fwd *f = arg;

	if (dm_model_forward(f->m, f->out, f->x, f->t, NULL, f->B, 0) == -1)
		die("forward");
}

int
main(int argc, char **argv)
{
	int threads = 0, opt;
	double secs = 3;
	const char *w;

	/* measure the tools as they run: threads that sleep at barriers
	 * (dm_tool_init), not spin */
	dm_tool_init(argv);
	while ((opt = getopt(argc, argv, "s:t:")) != -1) {
		if (opt == 't')
			threads = atoi(optarg);
		else if (opt == 's')
			secs = atof(optarg);
		else
			return 2;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: bench_train [-t THREADS] [-s SECONDS] "
		    "mlp256|mlp1024|unet|unet-nfe1|unet-nfe256|mlp-nfe1\n");
		return 2;
	}
	w = argv[optind];
	dm_threads_set(threads);
	double peak = sgemm_rate(1024);

	int unet = strncmp(w, "unet", 4) == 0, B, train = 1;
	int64_t mshape[1] = {2}, ushape[3] = {1, 28, 28};
	struct dm_model_config cfg;
	if (unet) {
		dm_model_config_defaults(&cfg, DM_ARCH_UNET, 3, ushape);
		cfg.pred = DM_PRED_EPS;
		snprintf(cfg.schedule, sizeof cfg.schedule, "linear");
		B = 64;
	} else {
		dm_model_config_defaults(&cfg, DM_ARCH_MLP, 1, mshape);
		cfg.pred = DM_PRED_FLOW;
		snprintf(cfg.schedule, sizeof cfg.schedule, "rf");
		B = 1024;
	}
	if (strcmp(w, "mlp1024") == 0)
		cfg.width = 1024;
	else if (strcmp(w, "unet-nfe1") == 0 || strcmp(w, "mlp-nfe1") == 0) {
		B = 1;
		train = 0;
	} else if (strcmp(w, "unet-nfe256") == 0) {
		B = 256;
		train = 0;
	} else if (strcmp(w, "mlp256") != 0 && strcmp(w, "unet") != 0) {
		fprintf(stderr, "bench_train: unknown workload '%s'\n", w);
		return 2;
	}
	double rss0 = rss_mib();
	struct dm_model *m = dm_model_new(&cfg, 1);
	if (m == NULL)
		die("model");
	size_t d = dm_model_in_size(m);
	double fwd, skip, rate;
	if (unet)
		unet_flops(&cfg, &fwd, &skip);
	else
		mlp_flops(&cfg, &fwd, &skip);

	if (train) {
		int64_t n = 4096;
		float *x = malloc((size_t)n * d * sizeof *x);
		int64_t *rows = malloc((size_t)n * sizeof *rows);
		if (x == NULL || rows == NULL)
			return 1;
		dm_rng_normal(x, (size_t)n * d, 5, 0, 0);
		for (int64_t i = 0; i < n; i++)
			rows[i] = i;
		struct dm_train_opts o;
		dm_train_opts_defaults(&o);
		o.objective = unet ? DM_OBJECTIVE_EPS : DM_OBJECTIVE_FLOW;
		o.batch = B;
		o.steps = 1000000;
		struct dm_train_data td = {.n = n, .d = d, .x0 = x, .rows = rows,
		    .nrows = n};
		struct dm_trainer *tr = dm_trainer_new(m, &o, &td);
		if (tr == NULL)
			die("trainer");
		for (int i = 0; i < 3; i++)
			train_step(tr);
		rate = best_rate(train_step, tr, secs);
		dm_trainer_free(tr);
		free(x);
		free(rows);
	} else {
		struct fwd f = {m, NULL, NULL, NULL, B};
		f.x = malloc((size_t)B * d * sizeof *f.x);
		f.out = malloc((size_t)B * d * sizeof *f.out);
		f.t = malloc((size_t)B * sizeof *f.t);
		if (f.x == NULL || f.out == NULL || f.t == NULL)
			return 1;
		dm_rng_normal(f.x, (size_t)B * d, 5, 0, 0);
		for (int i = 0; i < B; i++)
			f.t[i] = 0.5f;
		for (int i = 0; i < 3; i++)
			forward(&f);
		rate = best_rate(forward, &f, secs);
		free(f.x);
		free(f.out);
		free(f.t);
	}
	double per_call = train ? B * (3 * fwd - skip) : B * fwd;
	double gf = rate * per_call / 1e9;
	const char *unit = !train ? "NFE/s" : unet ? "images/s" : "steps/s";
	if (train && unet)
		rate *= B;	/* images per second */
	else if (!train)
		rate *= B;	/* sample-NFE per second */
	printf("%s\t%.6g\t%s\t%.2f\t%.3f\t%.1f\t%.1f\t%.1f\t%zu\n", w, rate,
	    unit, gf, gf / peak, peak, peak_mib(), rss0, m->nparams);
	dm_model_free(m);
	return 0;
}
