/* bench_sample.c — sampler speed with the default `mlp` (width 256, depth
 * 3, temb 64, d = 2, a flow model on the rf schedule), against the
 * machine's sgemm rate measured in the same run.
 *
 *   bench_sample [-t THREADS] [-n POINTS] [-s STEPS] [-k BATCH1_STEPS]
 *
 * TSV lines:
 *   sample  batch-1 euler  NFE/s, µs per step, of which model forward µs
 *   sample  N x S euler    wall s, GFLOP/s, fraction of the sgemm bound,
 *                          and the time split sampler vs model forward
 *   sgemm   the rates the bound is taken from
 * The sgemm-bound time is the model's matmul FLOPs per evaluation (2 x
 * rows x weights of every linear layer on the data path; the time path,
 * time_embed.* and the blocks' emb layers, is computed once per batch
 * when the rows share t, as a sampler's do) at the best sgemm rate measured
 * (a 1024^2 square and the model's own N x 256 x 256 layer shape).  Rerun
 * on an idle machine for figures that mean anything. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm.h"
#include "dm_sample.h"

static double
sgemm_rate(int M, int K, int N)
{
	float *a = malloc((size_t)M * K * 4), *b = malloc((size_t)K * N * 4);
	float *c = malloc((size_t)M * N * 4);
	double best = 0;

	if (a == NULL || b == NULL || c == NULL)
		exit(1);
	dm_rng_normal(a, (size_t)M * K, 1, 0, 0);
	dm_rng_normal(b, (size_t)K * N, 2, 0, 0);
	for (int rep = 0; rep < 8; rep++) {
		double t0 = dm_now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K,
		    1.0f, a, K, b, K, 0.0f, c, N);
		double gf = 2.0 * M * (double)K * N / (dm_now() - t0) / 1e9;
		if (gf > best)
			best = gf;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

struct ctx {
	struct dm_model *m;
	double fwd;          /* seconds inside dm_model_denoise */
};

static int
den(void *p, float *x0, float *eps, const float *x, const double *t, int B,
    int64_t first)
{
	struct ctx *c = p;
	double t0 = dm_now();

	(void)first;
	int r = dm_model_denoise(c->m, x0, eps, x, t[0], NULL, B);
	c->fwd += dm_now() - t0;
	return r;
}

/* The sampler's hint of the coming times; its time counts as the
 * model's. */
static int
prep(void *p, const double *t, int n)
{
	struct ctx *c = p;
	double t0 = dm_now();
	int r = dm_model_prepare(c->m, t, n);
	c->fwd += dm_now() - t0;
	return r;
}

/* Matmul FLOPs of one evaluation of one row of a batch whose rows share
 * t: the time path (time_embed.*, blocks.*.emb.*) is once per batch. */
static double
model_flops(const struct dm_model *m)
{
	double f = 0;

	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		size_t n = strlen(p->name);
		if (p->ndim == 2 && n > 7 && strcmp(p->name + n - 7, ".weight") == 0 &&
		    strncmp(p->name, "class_embed", 11) != 0 &&
		    strncmp(p->name, "time_embed.", 11) != 0 &&
		    strstr(p->name, ".emb.") == NULL)
			f += 2.0 * (double)p->numel;
	}
	return f;
}

/* Seconds for one matrix-vector product with every linear weight of the
 * model (cblas_sgemv): a batch-1 forward made of BLAS calls, for
 * reference. */
static double
gemv_time(const struct dm_model *m)
{
	float in[4096], out[4096];
	double best = 1e9;

	dm_rng_normal(in, 4096, 5, 0, 0);
	for (int rep = 0; rep < 2000; rep++) {
		double t0 = dm_now();
		for (int i = 0; i < m->nparam; i++) {
			const struct dm_param *p = &m->param[i];
			size_t n = strlen(p->name);
			if (p->ndim != 2 || n < 8 || strcmp(p->name + n - 7,
			    ".weight") != 0 || p->shape[1] > 4096 ||
			    p->shape[0] > 4096)
				continue;
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)p->shape[0],
			    (int)p->shape[1], 1.0f, m->params + p->offset,
			    (int)p->shape[1], in, 1, 0.0f, out, 1);
		}
		double w = dm_now() - t0;
		if (w < best)
			best = w;
	}
	return best;
}

/* One timed run of the sampler; returns wall seconds. */
static double
run(struct ctx *c, struct dm_denoiser *D, int B, int steps, float *x)
{
	struct dm_sampler_opts o;
	int64_t nfe;

	dm_sampler_opts_defaults(&o);
	o.kind = DM_SAMPLER_EULER;
	o.steps = steps;
	dm_sample_noise(x, B, D->d, 0, 0);
	c->fwd = 0;
	double t0 = dm_now();
	if (dm_sample_run(D, &o, x, B, 0, &nfe) == -1) {
		fprintf(stderr, "bench_sample: %s\n", dm_errstr());
		exit(1);
	}
	return dm_now() - t0;
}

int
main(int argc, char **argv)
{
	struct dm_model_config cfg;
	int64_t shape[1] = {2};
	int threads = 0, npts = 10000, steps = 100, k1 = 20000, ch;

	while ((ch = getopt(argc, argv, "t:n:s:k:")) != -1) {
		switch (ch) {
		case 't': threads = atoi(optarg); break;
		case 'n': npts = atoi(optarg); break;
		case 's': steps = atoi(optarg); break;
		case 'k': k1 = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_sample [-t THREADS] [-n POINTS] "
			    "[-s STEPS] [-k BATCH1_STEPS]\n");
			return 2;
		}
	}
	if (npts < 1 || steps < 1 || k1 < 1)
		return 2;
	dm_threads_set(threads);
	dm_model_config_defaults(&cfg, DM_ARCH_MLP, 1, shape);
	cfg.pred = DM_PRED_FLOW;
	snprintf(cfg.schedule, sizeof cfg.schedule, "rf");
	struct dm_model *m = dm_model_new(&cfg, 1);
	if (m == NULL) {
		fprintf(stderr, "bench_sample: %s\n", dm_errstr());
		return 1;
	}
	/* a non-zero output layer, so the samples move as a trained model's */
	for (int i = 0; i < m->nparam; i++)
		if (strncmp(m->param[i].name, "output.", 7) == 0)
			dm_rng_uniform(m->params + m->param[i].offset,
			    m->param[i].numel, 3, 0, 0);
	struct ctx c = {m, 0};
	struct dm_denoiser D = {den, &c, 2, &m->sched, prep};
	float *x = malloc((size_t)npts * 2 * sizeof *x);
	double flops = model_flops(m);

	/* batch 1: best of 3 */
	double best1 = 1e9, fwd1 = 0;
	run(&c, &D, 1, 200, x);
	for (int r = 0; r < 3; r++) {
		double w = run(&c, &D, 1, k1, x);
		if (w < best1) {
			best1 = w;
			fwd1 = c.fwd;
		}
	}
	printf("sample\tbatch-1 euler\tmlp w256 d3\t%.0f NFE/s\t%.2f us/step\t"
	    "forward %.2f us (%.0f%%)\t%d threads\n", k1 / best1, best1 / k1 * 1e6,
	    fwd1 / k1 * 1e6, 100 * fwd1 / best1, dm_threads_get());
	double gv = gemv_time(m);
	printf("sgemv\tevery weight once\t%.2f us\t%.0f NFE/s with one "
	    "cblas_sgemv per layer\n", gv * 1e6, 1 / gv);

	/* N points x S steps: best of 2 */
	double bestn = 1e9, fwdn = 0;
	for (int r = 0; r < 2; r++) {
		double w = run(&c, &D, npts, steps, x);
		if (w < bestn) {
			bestn = w;
			fwdn = c.fwd;
		}
	}
	double r1 = sgemm_rate(1024, 1024, 1024);
	double r2 = sgemm_rate(npts, 256, 256);
	double peak = r1 > r2 ? r1 : r2;
	double gf = flops * npts * steps / bestn / 1e9;
	printf("sgemm\t1024^3\t%.1f GFLOP/s\t%d x 256 x 256\t%.1f GFLOP/s\n", r1,
	    npts, r2);
	printf("sample\t%d x %d euler\tmlp w256 d3\t%.3f s\t%.1f GFLOP/s\t"
	    "%.0f%% of sgemm bound (%.3f s)\tforward %.3f s, sampler %.3f s\n",
	    npts, steps, bestn, gf, 100 * gf / peak, flops * npts * steps / peak /
	    1e9, fwdn, bestn - fwdn);
	free(x);
	dm_model_free(m);
	return 0;
}
