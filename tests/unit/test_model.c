/* test_model.c — the networks behind dm_model.h: parameter layout and
 * initialization, whole-network gradients, determinism, files, the gmm
 * arch and dm_model_denoise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dm_model.h"
#include "gradcheck.h"
#include "test.h"

static void
mlp_config(struct dm_model_config *c, int d, int classes)
{
	int64_t shape[1] = {d};

	dm_model_config_defaults(c, DM_ARCH_MLP, 1, shape);
	c->width = 8;
	c->depth = 2;
	c->temb = 4;
	c->classes = classes;
}

static void
unet_config(struct dm_model_config *c, int classes)
{
	int64_t shape[3] = {1, 8, 8};

	dm_model_config_defaults(c, DM_ARCH_UNET, 3, shape);
	c->ch = 8;
	c->nlevels = 2;
	c->mult[0] = 1;
	c->mult[1] = 2;
	c->groups = 4;
	c->heads = 2;
	c->attn = 1;
	c->temb = 8;
	c->classes = classes;
}

static const struct dm_param *
find_param(const struct dm_model *m, const char *name)
{
	for (int i = 0; i < m->nparam; i++)
		if (strcmp(m->param[i].name, name) == 0)
			return &m->param[i];
	return NULL;
}

static void
fill_normal(float *p, size_t n, uint64_t seed, float scale)
{
	dm_rng_normal(p, n, seed, 99, 0);
	for (size_t i = 0; i < n; i++)
		p[i] *= scale;
}

DM_TEST(model_config_text_round_trip)
{
	struct dm_model_config c, d;
	int64_t img[3] = {1, 28, 28}, small[3] = {3, 8, 8}, vec[1] = {2};
	char buf[512];

	dm_model_config_defaults(&c, DM_ARCH_MLP, 1, vec);
	CHECK_EQ_INT(c.width, 256);
	CHECK_EQ_INT(c.depth, 3);
	CHECK_EQ_INT(c.temb, 64);
	CHECK_OK(dm_model_config_parse(&c, "width=512,depth=4,dropout=0.1"));
	CHECK_EQ_INT(c.width, 512);
	CHECK_EQ_INT(c.depth, 4);
	CHECK_OK(dm_model_config_format(&c, buf, sizeof buf));
	CHECK_STR(buf, "width=512,depth=4,temb=64,dropout=0.100000001,"
	    "head=field");
	dm_model_config_defaults(&d, DM_ARCH_MLP, 1, vec);
	CHECK_OK(dm_model_config_parse(&d, buf));
	CHECK_EQ_INT(d.width, 512);
	CHECK(d.dropout == c.dropout);
	CHECK_FAILS(dm_model_config_parse(&d, "widht=3"), "unknown model option");
	CHECK_FAILS(dm_model_config_parse(&d, "width=3x"), "width");
	CHECK_FAILS(dm_model_config_parse(&d, "depth"), "no '=value'");

	dm_model_config_defaults(&c, DM_ARCH_UNET, 3, img);
	CHECK_EQ_INT(c.nlevels, 3);
	CHECK_EQ_INT(c.mult[2], 4);
	CHECK_OK(dm_model_config_parse(&c, "ch=16,mult=1,2,nres=2,head=classifier"));
	CHECK_EQ_INT(c.nlevels, 2);
	CHECK_EQ_INT(c.nres, 2);
	CHECK_EQ_INT(c.head, DM_HEAD_CLASSIFIER);
	CHECK_OK(dm_model_config_format(&c, buf, sizeof buf));
	CHECK_STR(buf, "ch=16,mult=1,2,nres=2,attn=1,heads=4,groups=8,temb=32,"
	    "dropout=0,head=classifier");
	CHECK_FAILS(dm_model_config_format(&c, buf, 10), "does not fit");
	dm_model_config_defaults(&c, DM_ARCH_UNET, 3, small);
	CHECK_EQ_INT(c.nlevels, 2);     /* 8 -> 4: the lowest stays >= 4 */
}

DM_TEST(model_mlp_layout_and_init)
{
	struct dm_model_config c;
	struct dm_model *m, *m2;
	const struct dm_param *p;

	mlp_config(&c, 2, 3);
	m = dm_model_new(&c, 7);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	/* time 4*8+8 + 8*8+8, classes 4*8, input 2*8+8, per block
	 * 2*8 + 3*(8*8+8), out_norm 16, output 8*2+2 */
	CHECK_EQ_INT(m->nparams, 112 + 32 + 24 + 2 * 232 + 16 + 18);
	CHECK_EQ_INT(m->nparam, 4 + 1 + 2 + 2 * 8 + 2 + 2);
	CHECK_STR(m->param[0].name, "time_embed.0.weight");
	p = find_param(m, "blocks.1.fc1.weight");
	CHECK(p != NULL && p->ndim == 2 && p->shape[0] == 8 && p->shape[1] == 8);
	p = find_param(m, "class_embed.weight");
	CHECK(p != NULL && p->shape[0] == 4 && p->shape[1] == 8);
	CHECK(find_param(m, "output.bias") != NULL);
	CHECK(find_param(m, "blocks.0.norm.weight") != NULL);
	/* the first weight is uniform draw k of (seed, INIT stream 0) scaled
	 * to +-1/sqrt(fan_in) = +-1/2 */
	float u[32];
	dm_rng_uniform(u, 32, 7, dm_noise_stream(DM_NOISE_INIT, 0), 0);
	for (int k = 0; k < 32; k++)
		CHECK_NEAR(m->params[k], (2 * u[k] - 1) * 0.5, 1e-7);
	p = find_param(m, "input.weight");   /* fan_in 2 */
	float mx = 0;
	for (size_t k = 0; k < p->numel; k++)
		mx = fmaxf(mx, fabsf(m->params[p->offset + k]));
	CHECK(mx <= 1 / sqrtf(2) && mx > 0.3f);
	p = find_param(m, "output.weight");
	for (size_t k = 0; k < p->numel; k++)
		CHECK(m->params[p->offset + k] == 0);
	p = find_param(m, "blocks.1.norm.weight");
	CHECK(m->params[p->offset] == 1 && m->params[p->offset + 7] == 1);
	/* reproducible from the seed, different for another */
	m2 = dm_model_new(&c, 7);
	CHECK(memcmp(m->params, m2->params, m->nparams * sizeof(float)) == 0);
	dm_model_free(m2);
	m2 = dm_model_new(&c, 8);
	CHECK(memcmp(m->params, m2->params, m->nparams * sizeof(float)) != 0);
	dm_model_free(m2);

	/* zero output layer: the prediction is 0 before training */
	float x[6] = {1, -2, 0.5f, 3, -1, 0}, t[3] = {0.1f, 0.5f, 0.9f}, out[6];
	int64_t y[3] = {0, 3, 2};
	CHECK_EQ_INT(dm_model_out_size(m), 2);
	CHECK_OK(dm_model_forward(m, out, x, t, y, 3, 0));
	for (int k = 0; k < 6; k++)
		CHECK(out[k] == 0);
	y[1] = 4;
	CHECK_FAILS(dm_model_forward(m, out, x, t, y, 3, 0), "out of range");
	CHECK_FAILS(dm_model_backward(m, NULL, out), "train = 1");
	dm_model_free(m);

	c.ndim = 3;
	c.shape[1] = c.shape[2] = 4;
	CHECK(dm_model_new(&c, 0) == NULL);
	CHECK(strstr(dm_errstr(), "vectors") != NULL);
}

DM_TEST(model_unet_layout)
{
	struct dm_model_config c;
	struct dm_model *m;
	int64_t img[3] = {1, 28, 28}, odd[3] = {1, 30, 30};

	dm_model_config_defaults(&c, DM_ARCH_UNET, 3, img);
	m = dm_model_new(&c, 0);
	CHECK(m != NULL);
	if (m == NULL)
		return;
	/* the benchmark configuration: about 2.0 M parameters */
	CHECK_MSG(m->nparams > 1900000 && m->nparams < 2100000,
	    "unet 28x28: %zu parameters", m->nparams);
	CHECK(find_param(m, "down.0.res.0.norm1.weight") != NULL);
	CHECK(find_param(m, "down.1.res.0.skip.weight") != NULL);
	CHECK(find_param(m, "down.0.down.weight") != NULL);
	CHECK(find_param(m, "down.2.down.weight") == NULL);
	CHECK(find_param(m, "mid.attn.qkv.weight") != NULL);
	CHECK(find_param(m, "up.2.res.0.conv1.weight") != NULL);
	CHECK(find_param(m, "up.1.up.weight") != NULL);
	CHECK(find_param(m, "up.0.up.weight") == NULL);
	const struct dm_param *p = find_param(m, "up.1.res.0.conv1.weight");
	/* in: 128 (from level 2) + 64 (skip) channels */
	CHECK(p != NULL && p->ndim == 4 && p->shape[0] == 64 &&
	    p->shape[1] == 192 && p->shape[2] == 3 && p->shape[3] == 3);
	p = find_param(m, "conv_out.weight");
	CHECK(p != NULL && p->shape[0] == 1 && p->shape[1] == 32);
	for (size_t k = 0; p != NULL && k < p->numel; k++)
		CHECK(m->params[p->offset + k] == 0);
	dm_model_free(m);

	c.shape[1] = odd[1];
	c.shape[2] = odd[2];
	CHECK(dm_model_new(&c, 0) == NULL);
	CHECK_MSG(strstr(dm_errstr(), "divisible by 4") != NULL, "%s",
	    dm_errstr());
	unet_config(&c, 0);
	c.groups = 3;
	CHECK(dm_model_new(&c, 0) == NULL);
	CHECK_MSG(strstr(dm_errstr(), "groups") != NULL, "%s", dm_errstr());
}

/* Whole-network gradient checks. */
struct gctx {
	struct dm_model *m;
	float *x, *t, *out;
	int64_t *y;
	int B;
};

static void
gfwd(void *p)
{
	struct gctx *g = p;

	g->m->dropout_step = 5;  /* the same dropout masks every time */
	if (dm_model_forward(g->m, g->out, g->x, g->t, g->y, g->B, 1) == -1)
		CHECK_MSG(0, "forward: %s", dm_errstr());
}

static void
gradcheck_model(const struct dm_model_config *c, int B, double tol)
{
	struct dm_model *m = dm_model_new(c, 3);
	struct gctx g;
	size_t nin, nout;
	float *r, *dx;
	/* thousands of small forwards: one thread avoids OpenMP spin-waits
	 * on a loaded machine (results do not depend on it) */
	int threads = dm_threads_get();

	CHECK(m != NULL);
	if (m == NULL)
		return;
	m->dropout_seed = 11;
	nin = dm_model_in_size(m) * B;
	nout = dm_model_out_size(m) * B;
	g.m = m;
	g.B = B;
	g.x = malloc(nin * sizeof(float));
	g.t = malloc(B * sizeof(float));
	g.out = malloc(nout * sizeof(float));
	g.y = malloc(B * sizeof(int64_t));
	r = malloc(nout * sizeof(float));
	dx = malloc(nin * sizeof(float));
	fill_normal(g.x, nin, 1, 1);
	fill_normal(r, nout, 2, 1);
	for (int i = 0; i < B; i++) {
		g.t[i] = (float)(i + 0.5) / B;
		g.y[i] = i % (c->classes + 1);
	}
	/* move every parameter off its initial value (zero layers too) */
	float *noise = malloc(m->nparams * sizeof(float));
	fill_normal(noise, m->nparams, 4, 0.2f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	free(noise);

	dm_threads_set(1);
	/* a first backward of another output gradient leaves its values in
	 * the activation gradients: the next must not depend on them */
	gfwd(&g);
	float *r0 = malloc(nout * sizeof(float));
	fill_normal(r0, nout, 5, 3);
	CHECK_OK(dm_model_backward(m, dx, r0));
	free(r0);
	gfwd(&g);
	dm_model_zero_grad(m);
	CHECK_OK(dm_model_backward(m, dx, r));
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		gradcheck(p->name, m->params + p->offset, m->grads + p->offset,
		    p->numel, gfwd, &g, g.out, r, nout, 1e-2, tol);
	}
	gradcheck("x", g.x, dx, nin, gfwd, &g, g.out, r, nout, 1e-2, tol);
	dm_threads_set(threads);
	free(g.x);
	free(g.t);
	free(g.out);
	free(g.y);
	free(r);
	free(dx);
	dm_model_free(m);
}

DM_TEST(model_mlp_gradients)
{
	struct dm_model_config c;

	mlp_config(&c, 3, 3);
	gradcheck_model(&c, 4, 2e-2);
	/* batches past the serial path (mlp.c): BLAS and the fused passes */
	gradcheck_model(&c, 7, 2e-2);
	c.dropout = 0.3f;
	gradcheck_model(&c, 4, 2e-2);
	gradcheck_model(&c, 9, 2e-2);
	c.dropout = 0;
	c.classes = 0;
	c.depth = 1;
	gradcheck_model(&c, 3, 2e-2);
	c.depth = 0;	/* no blocks: the time path does not reach the output */
	gradcheck_model(&c, 3, 2e-2);
	c.depth = 1;
	c.classes = 4;
	c.head = DM_HEAD_CLASSIFIER;
	gradcheck_model(&c, 3, 2e-2);
}

DM_TEST(model_unet_gradients)
{
	struct dm_model_config c;

	unet_config(&c, 3);
	gradcheck_model(&c, 2, 2e-2);
	unet_config(&c, 0);
	c.attn = 0;
	c.nres = 2;
	c.dropout = 0.2f;
	c.shape[0] = 2;
	c.shape[2] = 4;
	gradcheck_model(&c, 2, 2e-2);
	unet_config(&c, 3);
	c.head = DM_HEAD_CLASSIFIER;
	gradcheck_model(&c, 2, 2e-2);
}

/* A new model (seed 5) with N(0, 0.1^2) noise of seed `seed` added to
 * every parameter, so no layer is zero; NULL (and a failed check) if it
 * cannot be made. */
static struct dm_model *
perturbed_model(const struct dm_model_config *c, uint64_t seed)
{
	struct dm_model *m = dm_model_new(c, 5);

	CHECK(m != NULL);
	if (m == NULL)
		return NULL;
	float *noise = malloc(m->nparams * sizeof(float));
	fill_normal(noise, m->nparams, seed, 0.1f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	free(noise);
	return m;
}

/* Inference (train = 0) runs in buffers of its own, reused as values die:
 * its output is the training forward's bit for bit, at batches that grow
 * the buffers and that fit in them, before and after a training step. */
static void
check_eval_matches_train(const struct dm_model_config *c)
{
	struct dm_model *m = dm_model_new(c, 7);
	enum { B = 3 };
	size_t nin, nout;

	CHECK(m != NULL);
	if (m == NULL)
		return;
	nin = dm_model_in_size(m) * B;
	nout = dm_model_out_size(m) * B;
	float *x = malloc(nin * sizeof *x), *t = malloc(B * sizeof *t);
	float *o1 = malloc(nout * sizeof *o1), *o2 = malloc(nout * sizeof *o2);
	float *r = malloc(nout * sizeof *r), *noise = malloc(m->nparams * 4);
	int64_t y[B];

	fill_normal(x, nin, 1, 1);
	fill_normal(r, nout, 2, 1);
	fill_normal(noise, m->nparams, 4, 0.2f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	for (int i = 0; i < B; i++) {
		t[i] = (float)(i + 0.5) / B;
		y[i] = i % (c->classes + 1);
	}
	for (int i = 0; i < 3; i++) {
		int b = i == 0 ? 1 : i == 1 ? B : 2;	/* grow, then within */
		size_t n = dm_model_out_size(m) * b;
		CHECK_OK(dm_model_forward(m, o2, x, t, y, b, 0));
		CHECK_OK(dm_model_forward(m, o1, x, t, y, b, 1));
		dm_model_zero_grad(m);
		CHECK_OK(dm_model_backward(m, NULL, r));
		CHECK_MSG(memcmp(o1, o2, n * sizeof *o1) == 0,
		    "eval and train forwards differ (batch %d)", b);
		CHECK_OK(dm_model_forward(m, o2, x, t, y, b, 0));
		CHECK_MSG(memcmp(o1, o2, n * sizeof *o1) == 0,
		    "eval after train differs (batch %d)", b);
	}
	free(x); free(t); free(o1); free(o2); free(r); free(noise);
	dm_model_free(m);
}

/* An mlp on vectors of d, depth 2, its weights moved off their start
 * (where the output layer is zero) by N(0, 0.05^2); NULL after a failed
 * check. */
static struct dm_model *
mlp_jittered(int64_t d, int width, int classes, uint64_t seed)
{
	struct dm_model_config c;
	struct dm_model *m;

	dm_model_config_defaults(&c, DM_ARCH_MLP, 1, &d);
	c.width = width;
	c.depth = 2;
	c.classes = classes;
	m = dm_model_new(&c, seed);
	CHECK(m != NULL);
	if (m == NULL)
		return NULL;
	float *noise = malloc(m->nparams * sizeof *noise);
	fill_normal(noise, m->nparams, seed + 1, 0.05f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	free(noise);
	return m;
}

/* Inference on at most 4 rows of a wide mlp runs split across a team of
 * threads: its output is the training forward's bit for bit on 1 and 2
 * threads, with and without classes.  dm_model_prepare's precomputed
 * time path (rows as columns) agrees with the time path computed per call
 * to float rounding, bit for bit across thread counts; a hint for other
 * times, an empty one and a training forward each bring back the per-call
 * path. */
DM_TEST(model_mlp_small_batches)
{
	for (int classes = 0; classes <= 2; classes += 2) {
		struct dm_model *m = mlp_jittered(3, 256, classes, 9);
		if (m == NULL)
			return;
		float x[12], tf[4], o1[12], o2[12], o3[12];
		int64_t y[4] = {0, 1, classes, 1};
		fill_normal(x, 12, 7, 1);
		for (int same = 0; same < 2; same++) {
			for (int i = 0; i < 4; i++)
				tf[i] = same ? 0.37f : 0.2f * (float)i + 0.1f;
			for (int B = 1; B <= 4; B++) {
				size_t n = (size_t)B * 3 * sizeof *o1;
				dm_threads_set(1);
				CHECK_OK(dm_model_forward(m, o1, x, tf,
				    classes ? y : NULL, B, 0));
				dm_threads_set(2);
				CHECK_OK(dm_model_forward(m, o2, x, tf,
				    classes ? y : NULL, B, 0));
				CHECK_OK(dm_model_forward(m, o3, x, tf,
				    classes ? y : NULL, B, 1));
				CHECK_MSG(memcmp(o1, o2, n) == 0 &&
				    memcmp(o1, o3, n) == 0, "classes %d, batch %d: "
				    "1 thread, 2 threads, training forward differ",
				    classes, B);
			}
		}
		double tt[3] = {0.9, 0.37, 0.1}, other[2] = {0.5, 0.6};
		float d1[12], d2[12], d3[12], e[12];
		double big = 0, dif = 0;
		CHECK_OK(dm_model_denoise(m, d1, e, x, tt[1], NULL, 4));
		dm_threads_set(1);
		CHECK_OK(dm_model_prepare(m, tt, 3));
		CHECK_OK(dm_model_denoise(m, d3, e, x, tt[1], NULL, 4));
		dm_threads_set(2);
		CHECK_OK(dm_model_prepare(m, tt, 3));
		CHECK_OK(dm_model_denoise(m, d2, e, x, tt[1], NULL, 4));
		CHECK_MSG(memcmp(d2, d3, sizeof d2) == 0, "classes %d: prepared "
		    "time path differs between 1 and 2 threads", classes);
		for (int i = 0; i < 12; i++) {
			big = fmax(big, fabs(d1[i]));
			dif = fmax(dif, fabs(d1[i] - d2[i]));
		}
		CHECK_MSG(dif <= 1e-5 * (1 + big), "classes %d: prepared and "
		    "per-call time paths differ by %g", classes, dif);
		if (classes)	/* nothing to prepare: the same path */
			CHECK(memcmp(d1, d2, sizeof d1) == 0);
		CHECK_OK(dm_model_prepare(m, other, 2));
		CHECK_OK(dm_model_denoise(m, d2, e, x, tt[1], NULL, 4));
		CHECK(memcmp(d1, d2, sizeof d1) == 0);
		/* withdrawn by n = 0 and by a training forward */
		for (int w = 0; w < 2; w++) {
			CHECK_OK(dm_model_prepare(m, tt, 3));
			if (w == 0)
				CHECK_OK(dm_model_prepare(m, NULL, 0));
			else
				CHECK_OK(dm_model_forward(m, o1, x, tf,
				    classes ? y : NULL, 2, 1));
			CHECK_OK(dm_model_denoise(m, d2, e, x, tt[1], NULL, 4));
			CHECK_MSG(memcmp(d1, d2, sizeof d1) == 0, "hint not "
			    "withdrawn (%s)", w ? "training forward" : "n = 0");
		}
		dm_threads_set(0);
		dm_model_free(m);
	}
}

/* Large batches at inference go through the mlp in tiles, one tile per
 * thread: the same outputs as the training forward over the whole batch
 * (to float rounding: the products are other calls), with one t for all
 * rows or one per row, with and without classes, and a last tile short;
 * the same features as batches of 3. */
DM_TEST(model_mlp_tiles)
{
	enum { B = 300 };

	for (int q = 0; q < 4; q++) {
		int classes = q & 1 ? 3 : 0, one_t = q & 2;
		struct dm_model *m = mlp_jittered(5, 64, classes, 4);
		if (m == NULL)
			return;
		float *x = malloc(B * 5 * sizeof *x), t[B];
		float *o1 = malloc(B * 5 * sizeof *o1), *o2 = malloc(B * 5 *
		    sizeof *o2);
		int64_t y[B];
		fill_normal(x, B * 5, 9, 1);
		for (int i = 0; i < B; i++) {
			t[i] = one_t ? 0.3f : (float)(i % 17) / 17;
			y[i] = (i / 7) % (classes + 1);	/* not periodic in a tile */
		}
		double big = 0, dif = 0;
		for (int th = 1; th <= 2; th++) {
			dm_threads_set(th);
			CHECK_OK(dm_model_forward(m, o1, x, t, classes ? y : NULL,
			    B, 0));
			CHECK_OK(dm_model_forward(m, o2, x, t, classes ? y : NULL,
			    B, 1));
			for (int i = 0; i < B * 5; i++) {
				big = fmax(big, fabs(o2[i]));
				dif = fmax(dif, fabs(o1[i] - o2[i]));
			}
		}
		CHECK_MSG(big > 0.1 && dif <= 1e-5 * big, "classes %d, one t %d: "
		    "tiles and whole batch differ by %g (outputs up to %g)",
		    classes, one_t != 0, dif, big);
		/* the features (the output layer's input) of the tiles, against
		 * those of batches of 3 */
		size_t nf = dm_model_feature_size(m);
		float *f1 = malloc(B * nf * sizeof *f1), *f2 = malloc(B * nf *
		    sizeof *f2);
		for (int i = 0; i < B * 5; i++)	/* other values in the buffers */
			x[i] = -x[i];
		CHECK_OK(dm_model_forward(m, o1, x, t, classes ? y : NULL, B, 1));
		for (int i = 0; i < B * 5; i++)
			x[i] = -x[i];
		CHECK_OK(dm_model_features(m, f1, o1, x, t, classes ? y : NULL,
		    B));
		for (int r = 0; r < B; r += 3)
			CHECK_OK(dm_model_features(m, f2 + r * nf, o2, x + r * 5,
			    t + r, classes ? y + r : NULL, 3));
		big = dif = 0;
		for (size_t i = 0; i < B * nf; i++) {
			big = fmax(big, fabs(f2[i]));
			dif = fmax(dif, fabs(f1[i] - f2[i]));
		}
		CHECK_MSG(big > 0.1 && dif <= 1e-5 * big, "classes %d, one t %d: "
		    "features of tiles and small batches differ by %g", classes,
		    one_t != 0, dif);
		dm_threads_set(0);
		free(f1); free(f2);
		free(x); free(o1); free(o2);
		dm_model_free(m);
	}
}

/* Training forwards and backwards on large batches are split into parts
 * of rows, one per thread: outputs, input gradients and the weight
 * gradients (summed over the parts) are those of the unsplit batch to
 * float rounding, gradients accumulate into what m->grads held, and the
 * same thread count gives the same bits. */
DM_TEST(model_mlp_split_training)
{
	enum { B = 600 };

	for (int classes = 0; classes <= 3; classes += 3) {
		struct dm_model *m = mlp_jittered(5, 64, classes, 12);
		if (m == NULL)
			return;
		size_t np = m->nparams;
		float *x = malloc(B * 5 * sizeof *x), t[B];
		float *o[3], *dx[3], *g[3], *dout = malloc(B * 5 * sizeof *dout);
		int64_t y[B];
		fill_normal(x, B * 5, 13, 1);
		fill_normal(dout, B * 5, 14, 1);
		for (int i = 0; i < B; i++) {
			t[i] = (float)((i * 37) % 101) / 101;
			y[i] = (int64_t)(((uint32_t)i * 2654435761u) >> 20) %
			    (classes + 1);	/* no period in the parts */
		}
		/* 1 thread (one part), 3 threads (three parts), 3 again */
		for (int r = 0; r < 3; r++) {
			o[r] = malloc(B * 5 * sizeof *o[r]);
			dx[r] = malloc(B * 5 * sizeof *dx[r]);
			g[r] = malloc(np * sizeof *g[r]);
			dm_threads_set(r ? 3 : 1);
			dm_model_zero_grad(m);
			for (size_t i = 0; i < np; i++)	/* accumulates onto this */
				m->grads[i] = 0.25f;
			CHECK_OK(dm_model_forward(m, o[r], x, t, classes ? y : NULL,
			    B, 1));
			CHECK_OK(dm_model_backward(m, dx[r], dout));
			memcpy(g[r], m->grads, np * sizeof *g[r]);
		}
		dm_threads_set(0);
		CHECK(memcmp(o[1], o[2], B * 5 * sizeof(float)) == 0 &&
		    memcmp(dx[1], dx[2], B * 5 * sizeof(float)) == 0 &&
		    memcmp(g[1], g[2], np * sizeof(float)) == 0);
		double eo = 0, ex = 0, eg = 0, mo = 0, mx = 0, mg = 0;
		for (int i = 0; i < B * 5; i++) {
			eo = fmax(eo, fabs(o[0][i] - o[1][i]));
			mo = fmax(mo, fabs(o[0][i]));
			ex = fmax(ex, fabs(dx[0][i] - dx[1][i]));
			mx = fmax(mx, fabs(dx[0][i]));
		}
		for (size_t i = 0; i < np; i++) {
			eg = fmax(eg, fabs(g[0][i] - g[1][i]));
			mg = fmax(mg, fabs(g[0][i] - 0.25f));
		}
		CHECK_MSG(mo > 0.1 && mx > 0 && mg > 1, "classes %d: trivial "
		    "outputs or gradients (%g %g %g)", classes, mo, mx, mg);
		CHECK_MSG(eo <= 1e-5 * mo && ex <= 1e-5 * mx && eg <= 1e-5 * mg,
		    "classes %d: split and unsplit differ: outputs %g, dx %g, "
		    "weight gradients %g (of %g)", classes, eo, ex, eg, mg);
		for (int r = 0; r < 3; r++) {
			free(o[r]);
			free(dx[r]);
			free(g[r]);
		}
		free(x);
		free(dout);
		dm_model_free(m);
	}
}

DM_TEST(model_unet_eval)
{
	struct dm_model_config c;

	unet_config(&c, 3);
	check_eval_matches_train(&c);
	unet_config(&c, 0);
	c.attn = 0;
	c.nres = 2;
	c.shape[0] = 3;
	c.shape[1] = 12;
	c.shape[2] = 4;
	c.nlevels = 3;
	c.mult[0] = 2;
	c.mult[1] = 1;
	c.mult[2] = 3;
	c.groups = 2;
	check_eval_matches_train(&c);
	unet_config(&c, 3);
	c.head = DM_HEAD_CLASSIFIER;
	check_eval_matches_train(&c);
	unet_config(&c, 0);
	c.nlevels = 1;
	check_eval_matches_train(&c);
}

/* Row i's output depends on row i only (eval), and the same input gives
 * the same output. */
static void
check_rows_independent(const struct dm_model_config *c)
{
	struct dm_model *m = perturbed_model(c, 6);
	enum { B = 5 };
	size_t nin, nout;

	if (m == NULL)
		return;
	nin = dm_model_in_size(m);
	nout = dm_model_out_size(m);
	float *x = malloc(B * nin * sizeof(float));
	float *o1 = malloc(B * nout * sizeof(float));
	float *o2 = malloc(B * nout * sizeof(float));
	float *o3 = malloc(nout * sizeof(float));
	float t[B] = {0.1f, 0.3f, 0.5f, 0.7f, 0.9f};
	int64_t y[B] = {0, 1, 2, 3, 1};
	const int64_t *yp = c->classes ? y : NULL;
	fill_normal(x, B * nin, 7, 1);
	CHECK_OK(dm_model_forward(m, o1, x, t, yp, B, 0));
	CHECK_OK(dm_model_forward(m, o2, x, t, yp, B, 0));
	CHECK(memcmp(o1, o2, B * nout * sizeof(float)) == 0);
	double dmax = 0, omax = 0;
	for (int i = 0; i < B; i++) {
		CHECK_OK(dm_model_forward(m, o3, x + i * nin, t + i,
		    yp ? y + i : NULL, 1, 0));
		for (size_t k = 0; k < nout; k++) {
			dmax = fmax(dmax, fabs(o3[k] - o1[i * nout + k]));
			omax = fmax(omax, fabs(o1[i * nout + k]));
		}
	}
	CHECK_MSG(dmax <= 1e-5 * fmax(1, omax), "row outputs differ by %g", dmax);
	CHECK(omax > 0);
	/* the same rows in another order */
	float *xr = malloc(B * nin * sizeof(float));
	for (int i = 0; i < B; i++)
		memcpy(xr + i * nin, x + (B - 1 - i) * nin, nin * sizeof(float));
	float tr[B];
	int64_t yr[B];
	for (int i = 0; i < B; i++) {
		tr[i] = t[B - 1 - i];
		yr[i] = y[B - 1 - i];
	}
	CHECK_OK(dm_model_forward(m, o2, xr, tr, yp ? yr : NULL, B, 0));
	dmax = 0;
	for (int i = 0; i < B; i++)
		for (size_t k = 0; k < nout; k++)
			dmax = fmax(dmax, fabs(o2[i * nout + k] -
			    o1[(B - 1 - i) * nout + k]));
	CHECK_MSG(dmax <= 1e-5 * fmax(1, omax), "reordered rows differ by %g",
	    dmax);
	free(x);
	free(xr);
	free(o1);
	free(o2);
	free(o3);
	dm_model_free(m);
}

/* One t for the whole batch (sampling): the mlp runs its time path on
 * one row; every row must equal the same row alone, and the batch with
 * one row's t nudged (the full path). */
static void
check_one_t(const struct dm_model_config *c, int B)
{
	struct dm_model *m = perturbed_model(c, 8);
	size_t nin, nout;

	if (m == NULL)
		return;
	nin = dm_model_in_size(m);
	nout = dm_model_out_size(m);
	float *x = malloc(B * nin * sizeof(float));
	float *o1 = malloc(B * nout * sizeof(float));
	float *o2 = malloc(B * nout * sizeof(float));
	float *o3 = malloc(nout * sizeof(float));
	float *t = malloc(B * sizeof(float));
	fill_normal(x, B * nin, 9, 1);
	for (int i = 0; i < B; i++)
		t[i] = 0.37f;
	CHECK_OK(dm_model_forward(m, o1, x, t, NULL, B, 0));
	t[B - 1] = 0.3700001f;
	CHECK_OK(dm_model_forward(m, o2, x, t, NULL, B, 0));
	double dmax = 0, d2 = 0, omax = 0;
	for (int i = 0; i < B; i++) {
		CHECK_OK(dm_model_forward(m, o3, x + i * nin, t, NULL, 1, 0));
		for (size_t k = 0; k < nout; k++) {
			dmax = fmax(dmax, fabs(o3[k] - o1[i * nout + k]));
			if (i < B - 1)
				d2 = fmax(d2, fabs(o3[k] - o2[i * nout + k]));
			omax = fmax(omax, fabs(o1[i * nout + k]));
		}
	}
	CHECK_MSG(dmax <= 1e-5 * fmax(1, omax), "one t, B %d: rows differ "
	    "by %g", B, dmax);
	CHECK_MSG(d2 <= 1e-5 * fmax(1, omax), "B %d: rows differ by %g", B,
	    d2);
	CHECK(omax > 0);
	free(x); free(o1); free(o2); free(o3); free(t);
	dm_model_free(m);
}

DM_TEST(model_mlp_one_t)
{
	struct dm_model_config c;

	mlp_config(&c, 3, 0);
	check_one_t(&c, 2);
	check_one_t(&c, 9);
	c.width = 37;
	c.depth = 3;
	check_one_t(&c, 13);
	c.depth = 0;
	check_one_t(&c, 6);
}

DM_TEST(model_rows_independent)
{
	struct dm_model_config c;

	mlp_config(&c, 3, 3);
	c.dropout = 0.5f;   /* eval: no dropout */
	check_rows_independent(&c);
	unet_config(&c, 3);
	check_rows_independent(&c);
}

static void
check_file_round_trip(const struct dm_model_config *c, const char *name)
{
	struct dm_model *m = dm_model_new(c, 9), *m2 = NULL;
	struct dm_file *f = NULL;
	enum { B = 3 };

	CHECK(m != NULL);
	if (m == NULL)
		return;
	float *noise = malloc(m->nparams * sizeof(float));
	fill_normal(noise, m->nparams, 6, 0.1f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	free(noise);
	size_t nin = dm_model_in_size(m), nout = dm_model_out_size(m);
	float *x = malloc(B * nin * sizeof(float));
	float *o1 = malloc(B * nout * sizeof(float));
	float *o2 = malloc(B * nout * sizeof(float));
	float t[B] = {0.2f, 0.4f, 0.8f};
	fill_normal(x, B * nin, 7, 1);
	CHECK_OK(dm_model_forward(m, o1, x, t, NULL, B, 0));
	const char *path = dm_test_path(name);
	CHECK_OK(dm_model_save(m, NULL, path));
	CHECK_OK(dm_model_load(&m2, path));
	if (m2 != NULL) {
		CHECK_EQ_INT(m2->nparams, m->nparams);
		CHECK(memcmp(&m2->cfg.mult, &m->cfg.mult, sizeof m->cfg.mult) == 0);
		CHECK_EQ_INT(m2->cfg.pred, m->cfg.pred);
		CHECK_EQ_INT(m2->cfg.classes, m->cfg.classes);
		CHECK(memcmp(m2->params, m->params, m->nparams * sizeof(float)) == 0);
		CHECK_OK(dm_model_forward(m2, o2, x, t, NULL, B, 0));
		CHECK(memcmp(o1, o2, B * nout * sizeof(float)) == 0);
		dm_model_free(m2);
	}
	CHECK_OK(dm_file_read(&f, path));
	if (f != NULL) {
		char buf[512];
		CHECK_STR(dm_file_meta(f, "dm.kind"), "model");
		CHECK_STR(dm_file_meta(f, "dm.arch"), dm_arch_name(c->arch));
		CHECK_OK(dm_model_config_format(c, buf, sizeof buf));
		CHECK_STR(dm_file_meta(f, "dm.config"), buf);
		CHECK_STR(dm_file_meta(f, "dm.prediction"), dm_pred_name(c->pred));
		CHECK_STR(dm_file_meta(f, "dm.version"), dm_version());
		CHECK_OK(dm_schedule_to_string(&m->sched, buf, sizeof buf));
		CHECK_STR(dm_file_meta(f, "dm.schedule"), buf);
		snprintf(buf, sizeof buf, "%d", c->classes);
		CHECK_STR(dm_file_meta(f, "dm.classes"), buf);
		dm_file_free(f);
	}
	free(x);
	free(o1);
	free(o2);
	dm_model_free(m);
}

DM_TEST(model_file_round_trip)
{
	struct dm_model_config c;
	struct dm_file *f;
	struct dm_model *m;

	mlp_config(&c, 2, 3);
	c.pred = DM_PRED_V;
	snprintf(c.schedule, sizeof c.schedule, "cosine:T=500");
	check_file_round_trip(&c, "mlp.st");
	unet_config(&c, 0);
	c.pred = DM_PRED_FLOW;
	snprintf(c.schedule, sizeof c.schedule, "rf");
	check_file_round_trip(&c, "unet.st");

	/* metadata by hand */
	mlp_config(&c, 2, 0);
	m = dm_model_new(&c, 1);
	f = dm_file_new();
	CHECK_OK(dm_model_to_file(m, NULL, f));
	CHECK_STR(dm_file_meta(f, "dm.shape"), "[2]");
	CHECK_STR(dm_file_meta(f, "dm.config"),
	    "width=8,depth=2,temb=4,dropout=0,head=field");
	CHECK_STR(dm_file_meta(f, "dm.schedule"), "linear:T=1000,"
	    "beta_min=0.0001,beta_max=0.02,t_min=0.001,t_max=1");
	dm_file_free(f);
	dm_model_free(m);
}

DM_TEST(model_load_refuses_mismatch)
{
	struct dm_model_config c;
	struct dm_model *m, *m2 = NULL;
	struct dm_file *f;
	struct dm_tensor *t;

	mlp_config(&c, 2, 0);
	m = dm_model_new(&c, 1);
	f = dm_file_new();
	CHECK_OK(dm_model_to_file(m, NULL, f));
	int64_t bad[2] = {8, 7};
	t = dm_tensor_new(2, bad);
	dm_tensor_set_name(t, "blocks.0.fc1.weight");
	CHECK_OK(dm_file_add(f, t));
	CHECK_FAILS(dm_model_from_file(&m2, f), "model: tensor "
	    "'blocks.0.fc1.weight' has shape [8, 7] but the mlp config needs "
	    "[8, 8]");
	CHECK(m2 == NULL);
	CHECK_OK(dm_file_remove(f, "blocks.0.fc1.weight"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "tensor 'blocks.0.fc1.weight' "
	    "is missing");
	dm_file_free(f);

	f = dm_file_new();
	CHECK_OK(dm_model_to_file(m, NULL, f));
	CHECK_OK(dm_file_meta_set(f, "dm.config", "width=8,depth=3,temb=4"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "'blocks.2.norm.weight' is "
	    "missing");
	CHECK_OK(dm_file_meta_set(f, "dm.config", "width=9,depth=2,temb=4"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "needs [9, 4]");
	CHECK_OK(dm_file_meta_set(f, "dm.config", "width=8,depth=2,temb=4"));
	CHECK_OK(dm_file_meta_set(f, "dm.kind", "data"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "not a model");
	CHECK_OK(dm_file_meta_set(f, "dm.kind", "model"));
	CHECK_OK(dm_file_meta_set(f, "dm.arch", "resnet"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "unknown architecture");
	CHECK_OK(dm_file_meta_unset(f, "dm.arch"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "dm.arch is missing");
	CHECK_OK(dm_file_meta_set(f, "dm.arch", "mlp"));
	CHECK_OK(dm_file_meta_set(f, "dm.shape", "[2, x]"));
	CHECK_FAILS(dm_model_from_file(&m2, f), "dm.shape");
	CHECK_OK(dm_file_meta_set(f, "dm.shape", "[2]"));
	/* NaN weights are refused; F64 weights are converted */
	t = dm_file_get(f, "output.bias");
	((float *)t->data)[1] = NAN;
	CHECK_FAILS(dm_model_from_file(&m2, f), "NaN");
	((float *)t->data)[1] = 0.25f;
	CHECK_OK(dm_tensor_convert(t, DM_DTYPE_F64));
	CHECK_OK(dm_model_from_file(&m2, f));
	if (m2 != NULL) {
		const struct dm_param *p = find_param(m2, "output.bias");
		CHECK(m2->params[p->offset + 1] == 0.25f);
		dm_model_free(m2);
	}
	dm_file_free(f);
	dm_model_free(m);
}

DM_TEST(model_gmm_denoise)
{
	struct dm_gmm g;
	struct dm_file *f = dm_file_new();
	struct dm_model *m = NULL;
	double *w = malloc(2 * sizeof *w), *mu = malloc(4 * sizeof *mu);
	double *cov = calloc(8, sizeof *cov);
	float x[6] = {0.3f, -1, 2, 0.5f, -0.7f, 0.1f}, x0[6], eps[6], ref[6];

	w[0] = 0.3; w[1] = 0.7;
	mu[0] = -1; mu[1] = 0; mu[2] = 2; mu[3] = 1;
	cov[0] = 0.5; cov[3] = 0.2; cov[4] = 1; cov[5] = 0.3; cov[6] = 0.3;
	cov[7] = 1;
	CHECK_OK(dm_gmm_init(&g, 2, 2, w, mu, cov));
	CHECK_OK(dm_gmm_to_file(&g, f, "vp"));
	CHECK_OK(dm_model_from_file(&m, f));
	if (m != NULL) {
		CHECK_EQ_INT(m->cfg.arch, DM_ARCH_GMM);
		CHECK_EQ_INT(dm_model_in_size(m), 2);
		CHECK_OK(dm_model_denoise(m, x0, eps, x, 0.6, NULL, 3));
		double a = dm_schedule_alpha(&m->sched, 0.6);
		double s = dm_schedule_sigma(&m->sched, 0.6);
		CHECK_OK(dm_gmm_x0(&g, a, s, x, ref, 3));
		for (int i = 0; i < 6; i++) {
			CHECK(x0[i] == ref[i]);
			CHECK_NEAR(eps[i], (x[i] - a * ref[i]) / s, 1e-5);
		}
		CHECK_OK(dm_model_denoise(m, NULL, eps, x, 0.6, NULL, 3));
		CHECK_NEAR(eps[4], (x[4] - a * ref[4]) / s, 1e-5);
		CHECK_FAILS(dm_model_forward(m, x0, x, x, NULL, 3, 0), "gmm");
		/* and through a file */
		const char *path = dm_test_path("gmm.st");
		struct dm_model *m2 = NULL;
		CHECK_OK(dm_model_save(m, NULL, path));
		CHECK_OK(dm_model_load(&m2, path));
		if (m2 != NULL) {
			CHECK_OK(dm_model_denoise(m2, x0, NULL, x, 0.6, NULL, 3));
			for (int i = 0; i < 6; i++)
				CHECK(x0[i] == ref[i]);
			dm_model_free(m2);
		}
		dm_model_free(m);
	}
	dm_gmm_free(&g);
	dm_file_free(f);
}

/* With zero output weights the network outputs its output bias c, so
 * dm_model_denoise must give SPEC §4's conversion of c. */
DM_TEST(model_denoise_prediction_kinds)
{
	struct dm_model_config c;
	float x[4] = {0.5f, -1.5f, 2, 0.25f}, x0[4], eps[4];
	const float cb[2] = {0.3f, -0.8f};
	const double tt = 0.37;

	for (int k = 0; k < DM_PRED_COUNT; k++) {
		mlp_config(&c, 2, 0);
		c.pred = (enum dm_pred)k;
		snprintf(c.schedule, sizeof c.schedule, k == DM_PRED_FLOW ?
		    "rf" : "cosine");
		struct dm_model *m = dm_model_new(&c, 1);
		const struct dm_param *p = find_param(m, "output.bias");
		m->params[p->offset] = cb[0];
		m->params[p->offset + 1] = cb[1];
		CHECK_OK(dm_model_denoise(m, x0, eps, x, tt, NULL, 2));
		struct dm_sched_point sp;
		dm_schedule_at(&m->sched, tt, &sp);
		double a = sp.alpha, s = sp.sigma;
		for (int i = 0; i < 4; i++) {
			double o = cb[i % 2], xe, ee;
			switch (k) {
			case DM_PRED_EPS: ee = o; xe = (x[i] - s * o) / a; break;
			case DM_PRED_X0: xe = o; ee = (x[i] - a * o) / s; break;
			case DM_PRED_V:
				xe = (a * x[i] - s * o) / (a * a + s * s);
				ee = (s * x[i] + a * o) / (a * a + s * s);
				break;
			case DM_PRED_FLOW:   /* rf: x = (1-t) x0 + t eps, u = eps - x0 */
				xe = x[i] - tt * o;
				ee = x[i] + (1 - tt) * o;
				break;
			default: ee = -s * o; xe = (x[i] - s * ee) / a; break;
			}
			CHECK_NEAR(x0[i], xe, 1e-5);
			CHECK_NEAR(eps[i], ee, 1e-5);
		}
		dm_model_free(m);
	}
	mlp_config(&c, 2, 3);
	c.head = DM_HEAD_CLASSIFIER;
	struct dm_model *m = dm_model_new(&c, 1);
	CHECK_FAILS(dm_model_denoise(m, x0, eps, x, tt, NULL, 2), "classifier");
	dm_model_free(m);
}

/* Batches grow the activations; a smaller batch after a larger one reuses
 * them. */
DM_TEST(model_batch_growth)
{
	struct dm_model_config c;
	struct dm_model *m;
	float x[16 * 2], t[16], o[16 * 2], o1[2];

	mlp_config(&c, 2, 0);
	m = dm_model_new(&c, 2);
	m->params[find_param(m, "output.bias")->offset] = 1;
	fill_normal(x, 32, 3, 1);
	for (int i = 0; i < 16; i++)
		t[i] = 0.05f * i;
	CHECK_OK(dm_model_forward(m, o1, x + 6, t + 3, NULL, 1, 0));
	CHECK_EQ_INT(m->batch_cap, 1);
	CHECK_OK(dm_model_forward(m, o, x, t, NULL, 16, 1));
	CHECK_EQ_INT(m->batch_cap, 16);
	CHECK_OK(dm_model_forward(m, o, x, t, NULL, 4, 0));
	CHECK_EQ_INT(m->batch_cap, 16);
	CHECK_NEAR(o[6], o1[0], 1e-6);
	CHECK_NEAR(o[7], o1[1], 1e-6);
	CHECK_FAILS(dm_model_forward(m, o, x, t, NULL, 0, 0), "batch");
	dm_model_free(m);
}

/* Not a test of its own: with DM_MODEL_EXPORT=DIR it writes DIR/mlp.st
 * and DIR/io.st (x, t, y, out) for scripts/torch_mlp.py. */
DM_TEST(model_export_for_torch)
{
	const char *dir = getenv("DM_MODEL_EXPORT");
	struct dm_model_config c;
	struct dm_model *m;
	enum { B = 64, D = 2 };
	char path[512];

	if (dir == NULL)
		return;
	mlp_config(&c, D, 10);
	c.width = 256;
	c.depth = 3;
	c.temb = 64;
	m = dm_model_new(&c, 42);
	float *noise = malloc(m->nparams * sizeof(float));
	fill_normal(noise, m->nparams, 43, 0.05f);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] += noise[i];
	free(noise);
	snprintf(path, sizeof path, "%s/mlp.st", dir);
	CHECK_OK(dm_model_save(m, NULL, path));

	struct dm_file *f = dm_file_new();
	int64_t sx[2] = {B, D}, sb[1] = {B};
	struct dm_tensor *x = dm_tensor_new(2, sx), *t = dm_tensor_new(1, sb);
	struct dm_tensor *o = dm_tensor_new(2, sx);
	struct dm_tensor *y = dm_tensor_new_dtype(DM_DTYPE_I64, 1, sb);
	fill_normal(x->data, B * D, 44, 1.5f);
	for (int i = 0; i < B; i++) {
		((float *)t->data)[i] = (float)i / (B - 1);
		((int64_t *)y->data)[i] = i % 11;
	}
	CHECK_OK(dm_model_forward(m, o->data, x->data, t->data, y->data, B, 0));
	dm_tensor_set_name(x, "x");
	dm_tensor_set_name(t, "t");
	dm_tensor_set_name(y, "y");
	dm_tensor_set_name(o, "out");
	dm_file_add(f, x);
	dm_file_add(f, t);
	dm_file_add(f, y);
	dm_file_add(f, o);
	snprintf(path, sizeof path, "%s/io.st", dir);
	CHECK_OK(dm_file_write(f, path, 0));
	dm_file_free(f);
	dm_model_free(m);
}
