/* bench_core.c — throughput of libdm's core pieces, and the machine's sgemm
 * rate that every other figure is compared with.
 *
 *   bench_core sgemm [N]        GFLOP/s of cblas_sgemm on N x N (default 1024)
 *   bench_core rng [COUNT]      normal draws per second (Philox4x32-10)
 *   bench_core mkfile PATH MiB  write a safetensors file of F32 normals
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"

static int
bench_sgemm(int n)
{
	size_t nn = (size_t)n * (size_t)n;
	float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b);
	float *c = malloc(nn * sizeof *c);
	double best = 0;

	if (a == NULL || b == NULL || c == NULL)
		return 1;
	dm_rng_normal(a, nn, 1, 0, 0);
	dm_rng_normal(b, nn, 1, 1, 0);
	for (int rep = 0; rep < 5; rep++) {
		double t0 = dm_now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n,
		    1.0f, a, n, b, n, 0.0f, c, n);
		double dt = dm_now() - t0;
		double gf = 2.0 * n * (double)n * n / dt / 1e9;
		if (gf > best)
			best = gf;
	}
	printf("sgemm\t%d\t%d threads\t%.1f GFLOP/s\n", n, dm_threads_get(), best);
	free(a);
	free(b);
	free(c);
	return 0;
}

static int
bench_rng(size_t count)
{
	float *x = malloc(count * sizeof *x);
	double t0, dt;

	if (x == NULL)
		return 1;
	t0 = dm_now();
	dm_rng_normal(x, count, 7, 0, 0);
	dt = dm_now() - t0;
	printf("rng\tnormal\t1 thread\t%.1f M/s\n", count / dt / 1e6);
	free(x);
	return 0;
}

static int
mkfile(const char *path, size_t mib)
{
	int64_t shape[2] = {(int64_t)(mib << 20) / 4096, 1024};
	struct dm_file *f = dm_file_new();
	struct dm_tensor *t = dm_tensor_new(2, shape);

	if (f == NULL || t == NULL || dm_tensor_set_name(t, "x") == -1) {
		fprintf(stderr, "bench_core: %s\n", dm_errstr());
		return 1;
	}
	dm_rng_normal(t->data, dm_tensor_numel(t), 3, 0, 0);
	if (dm_file_add(f, t) == -1 || dm_file_meta_set(f, "dm.kind", "data") == -1 ||
	    dm_file_write(f, path, 0) == -1) {
		fprintf(stderr, "bench_core: %s: %s\n", path, dm_errstr());
		return 1;
	}
	dm_file_free(f);
	return 0;
}

int
main(int argc, char **argv)
{
	dm_threads_set(0);
	if (argc >= 2 && strcmp(argv[1], "sgemm") == 0)
		return bench_sgemm(argc > 2 ? atoi(argv[2]) : 1024);
	if (argc >= 2 && strcmp(argv[1], "rng") == 0)
		return bench_rng(argc > 2 ? (size_t)atol(argv[2]) : 50000000);
	if (argc == 4 && strcmp(argv[1], "mkfile") == 0)
		return mkfile(argv[2], (size_t)atol(argv[3]));
	fprintf(stderr, "usage: bench_core sgemm [N] | rng [COUNT] | mkfile PATH MiB\n");
	return 2;
}
