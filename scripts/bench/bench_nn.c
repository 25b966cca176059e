/* bench_nn.c — speed of the heavy layers (convolution, attention) on the
 * unet's shapes, against the machine's sgemm rate measured in the same run.
 *
 *   bench_nn [-c] [-t THREADS] [B ...]
 *
 * B: batch sizes (default 64 1); THREADS: default the online CPUs.  -c
 * times by the CPU time of the calling thread instead of the wall clock:
 * with -t 1 that is a figure a busy machine does not disturb.
 *
 * TSV: layer, shape, batch, forward ms, backward ms, forward and backward
 * GFLOP/s, and each as a fraction of the sgemm rate. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dm.h"
#include "dm_nn.h"

static int use_cpu_clock;

static double
now(void)
{
	struct timespec ts;

	if (!use_cpu_clock)
		return dm_now();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
	for (int rep = 0; rep < 6; rep++) {
		double t0 = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
		    1.0f, a, n, b, n, 0.0f, c, n);
		double gf = 2.0 * n * (double)n * n / (now() - t0) / 1e9;
		if (gf > best)
			best = gf;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

static float *
buf(size_t n, uint64_t seed)
{
	float *x = malloc((n ? n : 1) * sizeof *x);

	if (x == NULL) {
		fprintf(stderr, "bench_nn: out of memory\n");
		exit(1);
	}
	dm_rng_normal(x, n, seed, 0, 0);
	return x;
}

struct conv_shape {
	int Cin, H, Cout, k, s;
};

/* Best time of repeated calls, about 0.3 s in all. */
#define TIMEIT(best, call) do {                                         \
	double t_end = now() + 0.3;                                  \
	(best) = 1e9;                                                   \
	for (int rep = 0; rep < 2 || (now() < t_end && rep < 1000); rep++) { \
		double t0 = now();                                   \
		call;                                                   \
		double dt = now() - t0;                              \
		if (dt < (best))                                        \
			(best) = dt;                                    \
	}                                                               \
} while (0)

static void
bench_conv(const struct conv_shape *c, int B, double peak)
{
	int Ho = (c->H + 2 * (c->k / 2) - c->k) / c->s + 1;
	size_t nin = (size_t)B * c->Cin * c->H * c->H;
	size_t nout = (size_t)B * c->Cout * Ho * Ho;
	size_t nw = (size_t)c->Cout * c->Cin * c->k * c->k;
	size_t nwork = dm_conv2d_work_size(B, c->Cin, c->H, c->H, c->Cout, c->k,
	    c->s);
	float *in = buf(nin, 1), *w = buf(nw, 2), *b = buf(c->Cout, 3);
	float *out = buf(nout, 4), *din = buf(nin, 5), *dw = buf(nw, 6);
	float *db = buf(c->Cout, 7), *work = buf(nwork, 8);
	double tf, tb;

	TIMEIT(tf, dm_conv2d_forward(out, in, w, b, B, c->Cin, c->H, c->H,
	    c->Cout, c->k, c->s, work));
	TIMEIT(tb, dm_conv2d_backward(din, dw, db, out, in, w, B, c->Cin,
	    c->H, c->H, c->Cout, c->k, c->s, work));
	/* forward: one multiply-add per weight and output pixel; backward
	 * twice that (dw and din) */
	double fl = 2.0 * B * (double)nw * Ho * Ho;
	double gf = fl / tf / 1e9, gb = 2 * fl / tb / 1e9;
	printf("conv%dx%d/s%d\t%d->%d @%dx%d\tB=%d\t%.3f ms\t%.3f ms\t"
	    "%.1f GF/s\t%.1f GF/s\t%.0f%%\t%.0f%%\n", c->k, c->k, c->s, c->Cin,
	    c->Cout, c->H, c->H, B, tf * 1e3, tb * 1e3, gf, gb,
	    100 * gf / peak, 100 * gb / peak);
	free(in); free(w); free(b); free(out); free(din); free(dw); free(db);
	free(work);
}

static void
bench_attention(int B, int T, int C, int NH, double peak)
{
	size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
	size_t na = (size_t)B * NH * T * T;
	float *qkv = buf(nq, 1), *out = buf(no, 2), *att = buf(na, 3);
	float *dq = buf(nq, 4), *work = buf(dm_attention_work_size(B, T, C, NH), 5);
	double tf, tb;

	TIMEIT(tf, dm_attention_forward(out, att, qkv, B, T, C, NH));
	TIMEIT(tb, dm_attention_backward(dq, out, qkv, att, B, T, C, NH, work));
	/* two (T, T, hs) products forward, four backward */
	double fl = 2.0 * 2 * B * (double)T * T * C;
	double gf = fl / tf / 1e9, gb = 2 * fl / tb / 1e9;
	printf("attention\tT=%d C=%d NH=%d\tB=%d\t%.3f ms\t%.3f ms\t"
	    "%.1f GF/s\t%.1f GF/s\t%.0f%%\t%.0f%%\n", T, C, NH, B, tf * 1e3,
	    tb * 1e3, gf, gb, 100 * gf / peak, 100 * gb / peak);
	free(qkv); free(out); free(att); free(dq); free(work);
}

int
main(int argc, char **argv)
{
	static const struct conv_shape shapes[] = {
		{1, 28, 32, 3, 1}, {32, 28, 32, 3, 1}, {32, 28, 32, 3, 2},
		{32, 14, 64, 3, 1}, {64, 14, 64, 3, 1}, {64, 14, 64, 3, 2},
		{64, 7, 128, 3, 1}, {128, 7, 128, 3, 1}, {256, 7, 128, 3, 1},
		{192, 14, 64, 3, 1}, {96, 28, 32, 3, 1}, {32, 28, 1, 3, 1},
		{96, 28, 32, 1, 1}, {32, 14, 64, 1, 1}, {256, 7, 128, 1, 1},
	};
	int batches[8] = {64, 1}, nb = 2, threads = 0, a = 1;

	if (argc > a && strcmp(argv[a], "-c") == 0) {
		use_cpu_clock = 1;
		a++;
	}
	if (argc > a + 1 && strcmp(argv[a], "-t") == 0) {
		threads = atoi(argv[a + 1]);
		a += 2;
	}
	if (argc > a) {
		nb = 0;
		for (int i = a; i < argc && nb < 8; i++)
			batches[nb++] = atoi(argv[i]);
	}
	dm_threads_set(threads);
	double peak = sgemm_rate(1024);
	printf("sgemm\t1024\t%d threads\t%.1f GFLOP/s\n", dm_threads_get(), peak);
	printf("layer\tshape\tbatch\tfwd\tbwd\tfwd rate\tbwd rate\tfwd/sgemm\t"
	    "bwd/sgemm\n");
	for (int i = 0; i < nb; i++) {
		if (batches[i] < 1)
			continue;
		for (size_t j = 0; j < sizeof shapes / sizeof shapes[0]; j++)
			bench_conv(&shapes[j], batches[i], peak);
		bench_attention(batches[i], 49, 128, 4, peak);
	}
	return 0;
}
