/* test_lora.c — adapters: neutral start, the gradient chain against finite
 * differences, the conv delta against its definition, merge/unmerge,
 * files in three namings, SVD extraction against Eckart-Young, frozen
 * base in training, bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "gradcheck.h"
#include "test.h"

static struct dm_model *
tiny_mlp(uint64_t seed)
{
	struct dm_model_config c;
	int64_t shape[1] = {3};
	struct dm_model *m;

	dm_model_config_defaults(&c, DM_ARCH_MLP, 1, shape);
	c.width = 8;
	c.depth = 2;
	c.temb = 4;
	c.pred = DM_PRED_FLOW;
	snprintf(c.schedule, sizeof c.schedule, "rf");
	if ((m = dm_model_new(&c, seed)) == NULL)
		return NULL;
	/* no zero-initialized output layer: every path carries gradient */
	dm_rng_normal(m->params, m->nparams, seed, 99, 0);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] *= 0.4f;
	return m;
}

static struct dm_model *
tiny_unet(uint64_t seed)
{
	struct dm_model_config c;
	int64_t shape[3] = {1, 8, 8};
	struct dm_model *m;

	dm_model_config_defaults(&c, DM_ARCH_UNET, 3, shape);
	c.ch = 8;
	c.nlevels = 2;
	c.mult[0] = 1;
	c.mult[1] = 2;
	c.groups = 4;
	c.heads = 2;
	c.attn = 1;
	c.temb = 8;
	if ((m = dm_model_new(&c, seed)) == NULL)
		return NULL;
	dm_rng_normal(m->params, m->nparams, seed, 99, 0);
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] *= 0.2f;
	return m;
}

static void
randomize_b(struct dm_lora *l, uint64_t seed, float scale)
{
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_lora_layer *L = &l->layer[i];
		size_t nb = (size_t)L->out * (size_t)L->rank;
		dm_rng_normal(l->w + L->b, nb, seed, (uint64_t)i, 0);
		for (size_t k = 0; k < nb; k++)
			l->w[L->b + k] *= scale;
	}
}

DM_TEST(lora_new_is_neutral)
{
	struct dm_model *m = tiny_mlp(1);
	float *before = malloc(m->nparams * sizeof *before);
	struct dm_lora *l;

	memcpy(before, m->params, m->nparams * sizeof *before);
	l = dm_lora_new(m, NULL, 2, 4, 7);
	CHECK(l != NULL);
	if (l == NULL)
		goto done;
	/* blocks.{0,1}.{fc1,emb,fc2}: 6 layers of 8 x 8, rank 2 */
	CHECK_EQ_INT(l->nlayer, 6);
	CHECK_EQ_INT(dm_lora_numel(l), 6 * (2 * 8 + 8 * 2));
	CHECK_STR(l->layer[0].name, "blocks.0.fc1");
	CHECK_OK(dm_lora_merge(m, l, 1));
	CHECK(memcmp(before, m->params, m->nparams * sizeof *before) == 0);
	/* A is not zero: the adapter is trainable */
	double a2 = 0;
	for (size_t k = 0; k < (size_t)2 * 8; k++)
		a2 += l->w[l->layer[0].a + k] * l->w[l->layer[0].a + k];
	CHECK(a2 > 0);
	dm_lora_free(l);
done:
	free(before);
	dm_model_free(m);
}

DM_TEST(lora_targets)
{
	struct dm_model *m = tiny_mlp(1), *u = tiny_unet(1);
	struct dm_lora *l;

	CHECK(dm_lora_match("blocks.*.fc1,output", "output"));
	CHECK(!dm_lora_match("blocks.*.fc1", "blocks.0.fc2"));
	l = dm_lora_new(m, "blocks.*.fc1,output", 1, 1, 0);
	CHECK(l != NULL && l->nlayer == 3);
	if (l)
		CHECK_STR(l->layer[2].name, "output");
	dm_lora_free(l);
	l = dm_lora_new(u, NULL, 2, 2, 0);
	CHECK(l != NULL);
	for (int i = 0; l && i < l->nlayer; i++)
		CHECK(strncmp(l->layer[i].name, "down.", 5) == 0 ||
		    strncmp(l->layer[i].name, "mid.", 4) == 0 ||
		    strncmp(l->layer[i].name, "up.", 3) == 0);
	dm_lora_free(l);
	CHECK(dm_lora_new(m, "nothing*", 1, 1, 0) == NULL);
	CHECK(strstr(dm_errstr(), "matches") != NULL);
	CHECK(dm_lora_new(m, NULL, 0, 1, 0) == NULL);
	CHECK(strstr(dm_errstr(), "at least 1") != NULL);
	CHECK(dm_lora_new(m, NULL, 9, 1, 0) == NULL);
	CHECK(strstr(dm_errstr(), "larger than") != NULL);
	CHECK(dm_lora_new(m, "output", 4, 1, 0) == NULL);  /* output is 3 x 8 */
	dm_model_free(m);
	dm_model_free(u);
}

/* Conv delta against dW[o, i, :, :] = s (alpha/r) sum_j B[o, j] A[j, i, :, :]. */
DM_TEST(lora_conv_delta)
{
	struct dm_model *u = tiny_unet(2);
	struct dm_lora *l = dm_lora_new(u, "down.0.res.0.conv1", 3, 6, 1);

	CHECK(l != NULL && l->nlayer == 1);
	if (l == NULL || l->nlayer != 1)
		goto done;
	randomize_b(l, 3, 1);
	const struct dm_lora_layer *L = &l->layer[0];
	const struct dm_param *p = &u->param[L->param];
	CHECK_EQ_INT(p->ndim, 4);
	int64_t co = p->shape[0], ci = p->shape[1], kk = p->shape[2] *
	    p->shape[3];
	CHECK_EQ_INT(L->in, ci * kk);
	float *w0 = malloc(p->numel * sizeof *w0);
	memcpy(w0, u->params + p->offset, p->numel * sizeof *w0);
	CHECK_OK(dm_lora_merge(u, l, 0.5));
	double worst = 0;
	for (int64_t o = 0; o < co; o++)
		for (int64_t i = 0; i < ci; i++)
			for (int64_t q = 0; q < kk; q++) {
				double d = 0;
				for (int j = 0; j < 3; j++)
					d += (double)l->w[L->b + (size_t)(o * 3 + j)] *
					    l->w[L->a + (size_t)((j * ci + i) * kk + q)];
				d *= 0.5 * 6 / 3;
				size_t k = (size_t)((o * ci + i) * kk + q);
				double got = (double)u->params[p->offset + k] - w0[k];
				worst = fmax(worst, fabs(got - d));
			}
	CHECK_MSG(worst < 1e-5, "conv delta off by %g", worst);
	free(w0);
done:
	dm_lora_free(l);
	dm_model_free(u);
}

struct gctx {
	struct dm_model *m;
	struct dm_lora *l;
	float *x, *t, *out;
	int B;
};

static void
gfwd(void *p)
{
	struct gctx *c = p;

	dm_lora_apply(c->l, c->m, NULL);
	dm_model_forward(c->m, c->out, c->x, c->t, NULL, c->B, 1);
}

static void
grad_case(struct dm_model *m, const char *targets, int r, double h,
    double tol)
{
	struct gctx c = {.m = m, .B = 3};
	size_t din = dm_model_in_size(m), dout = dm_model_out_size(m);
	struct dm_lora *l = dm_lora_new(m, targets, r, 2 * r, 5);
	float *rr;

	CHECK(l != NULL);
	if (l == NULL)
		return;
	randomize_b(l, 6, 0.3f);
	c.l = l;
	c.x = malloc((size_t)c.B * din * sizeof *c.x);
	c.out = malloc((size_t)c.B * dout * sizeof *c.out);
	rr = malloc((size_t)c.B * dout * sizeof *rr);
	float t[3] = {0.2f, 0.5f, 0.9f};
	c.t = t;
	dm_rng_normal(c.x, (size_t)c.B * din, 1, 1, 0);
	dm_rng_normal(rr, (size_t)c.B * dout, 1, 2, 0);
	CHECK_OK(dm_lora_attach(l, m));
	gfwd(&c);
	dm_model_zero_grad(m);
	CHECK_OK(dm_model_backward(m, NULL, rr));
	dm_lora_backward(l, m);
	float *g = malloc(l->n * sizeof *g);
	memcpy(g, l->g, l->n * sizeof *g);
	double gn = 0;
	for (size_t k = 0; k < l->n; k++)
		gn += (double)g[k] * g[k];
	CHECK(gn > 0);
	gradcheck("lora factors", l->w, g, l->n, gfwd, &c, c.out, rr,
	    (size_t)c.B * dout, h, tol);
	dm_lora_detach(l, m);
	free(g);
	free(rr);
	free(c.x);
	free(c.out);
	dm_lora_free(l);
}

DM_TEST(lora_grad_mlp)
{
	struct dm_model *m = tiny_mlp(3);
	float *w0 = malloc(m->nparams * sizeof *w0);

	memcpy(w0, m->params, m->nparams * sizeof *w0);
	grad_case(m, "blocks.*,output", 2, 1e-2, 3e-3);
	/* detach restores the base bit for bit */
	CHECK(memcmp(w0, m->params, m->nparams * sizeof *w0) == 0);
	free(w0);
	dm_model_free(m);
}

DM_TEST(lora_grad_unet)
{
	struct dm_model *u = tiny_unet(4);

	grad_case(u, "down.0.res.0.conv1,mid.attn.qkv,up.*.skip", 2, 1e-2,
	    3e-3);
	dm_model_free(u);
}

DM_TEST(lora_merge_unmerge_file)
{
	struct dm_model *m = tiny_mlp(5);
	struct dm_lora *l = dm_lora_new(m, NULL, 3, 1.5, 2), *l2 = NULL;
	struct dm_file *f = dm_file_new();
	float *w0 = malloc(m->nparams * sizeof *w0);
	uint64_t h = dm_lora_model_hash(m);

	memcpy(w0, m->params, m->nparams * sizeof *w0);
	randomize_b(l, 9, 1);
	CHECK_OK(dm_lora_to_file(l, NULL, m, f));
	CHECK_STR(dm_file_meta(f, "dm.kind"), "adapter");
	CHECK_OK(dm_file_write(f, dm_test_path("a.st"), 0));
	CHECK_OK(dm_lora_load(&l2, dm_test_path("a.st"), m));
	CHECK(l2 != NULL && l2->n == l->n && l2->base_hash == h);
	if (l2 != NULL && l2->n == l->n) {
		CHECK(memcmp(l2->w, l->w, l->n * sizeof *l->w) == 0);
		CHECK_NEAR(l2->layer[0].alpha, 1.5, 0);
		CHECK_OK(dm_lora_check_base(l2, h));
		CHECK_FAILS(dm_lora_check_base(l2, h ^ 1), "another base");
	}
	CHECK_OK(dm_lora_merge(m, l, 0.7));
	CHECK(dm_lora_model_hash(m) != h);
	CHECK_OK(dm_lora_merge(m, l, -0.7));
	double worst = 0, big = 0;
	for (size_t k = 0; k < m->nparams; k++) {
		worst = fmax(worst, fabs((double)m->params[k] - w0[k]));
		big = fmax(big, fabs(w0[k]));
	}
	CHECK_MSG(worst <= 1e-6 * big, "unmerge off by %g", worst);
	dm_lora_free(l2);
	dm_lora_free(l);
	dm_file_free(f);
	free(w0);
	dm_model_free(m);
}

static void
put(struct dm_file *f, const char *name, int nd, const int64_t *shape,
    const float *src)
{
	struct dm_tensor *t = dm_tensor_new(nd, shape);

	memcpy(t->data, src, dm_tensor_numel(t) * sizeof(float));
	dm_tensor_set_name(t, name);
	dm_file_add(f, t);
}

/* The same factors named kohya's and PEFT's way give the same merge; a
 * kohya conv up-projection [out, r, 1, 1] is read. */
DM_TEST(lora_ecosystem_names)
{
	struct dm_model *m = tiny_mlp(6), *m2 = tiny_mlp(6), *m3 = tiny_mlp(6);
	float A[2 * 8], Bm[8 * 2], alpha = 4;
	int64_t sa[2] = {2, 8}, sb[2] = {8, 2};
	struct dm_file *k = dm_file_new(), *p = dm_file_new();
	struct dm_lora *lk = NULL, *lp = NULL;

	dm_rng_normal(A, 16, 1, 1, 0);
	dm_rng_normal(Bm, 16, 1, 2, 0);
	put(k, "lora_unet_blocks_1_fc2.lora_down.weight", 2, sa, A);
	put(k, "lora_unet_blocks_1_fc2.lora_up.weight", 2, sb, Bm);
	put(k, "lora_unet_blocks_1_fc2.alpha", 0, sa, &alpha);
	put(p, "base_model.model.blocks.1.fc2.lora_A.weight", 2, sa, A);
	put(p, "base_model.model.blocks.1.fc2.lora_B.weight", 2, sb, Bm);
	CHECK_OK(dm_lora_from_file(&lk, k, m));
	CHECK_OK(dm_lora_from_file(&lp, p, m));
	if (lk == NULL || lp == NULL)
		goto done;
	CHECK_EQ_INT(lk->nlayer, 1);
	CHECK_STR(lk->layer[0].name, "blocks.1.fc2");
	CHECK_STR(lp->layer[0].name, "blocks.1.fc2");
	CHECK_NEAR(lk->layer[0].alpha, 4, 0);
	CHECK_NEAR(lp->layer[0].alpha, 2, 0);	/* PEFT without alpha: rank */
	CHECK_OK(dm_lora_merge(m2, lk, 1));
	CHECK_OK(dm_lora_merge(m3, lp, 2));	/* same dW: scale 2/2 * 2 */
	/* brute force: W + (4/2) B A */
	const struct dm_param *w = NULL;
	for (int i = 0; i < m->nparam; i++)
		if (strcmp(m->param[i].name, "blocks.1.fc2.weight") == 0)
			w = &m->param[i];
	CHECK(w != NULL);
	double worst = 0;
	for (int o = 0; w && o < 8; o++)
		for (int i = 0; i < 8; i++) {
			double d = 2 * ((double)Bm[o * 2] * A[i] +
			    (double)Bm[o * 2 + 1] * A[8 + i]);
			size_t q = w->offset + (size_t)(o * 8 + i);
			worst = fmax(worst, fabs(m2->params[q] - m->params[q] - d));
			worst = fmax(worst, fabs(m3->params[q] - m->params[q] - d));
		}
	CHECK_MSG(worst < 1e-5, "kohya/PEFT merge off by %g", worst);
done:
	dm_lora_free(lk);
	dm_lora_free(lp);
	dm_file_free(k);
	dm_file_free(p);
	dm_model_free(m);
	dm_model_free(m2);
	dm_model_free(m3);
}

DM_TEST(lora_bad_files)
{
	struct dm_model *m = tiny_mlp(7), *u = tiny_unet(7);
	struct dm_lora *l = NULL;
	float z[64] = {0};
	int64_t sa[2] = {2, 8}, sb[2] = {8, 2}, s0[2] = {0, 8}, sw[2] = {8, 3};
	struct dm_file *f;

	f = dm_file_new();
	put(f, "blocks.0.fc1.lora_A.weight", 2, sa, z);
	CHECK_FAILS(dm_lora_from_file(&l, f, m), "missing");
	dm_file_free(f);

	f = dm_file_new();
	put(f, "blocks.0.fc1.lora_A.weight", 2, sa, z);
	put(f, "blocks.0.fc1.lora_B.weight", 2, sw, z);
	CHECK_FAILS(dm_lora_from_file(&l, f, m), "do not fit");
	dm_file_free(f);

	f = dm_file_new();
	put(f, "blocks.0.fc1.lora_A.weight", 2, s0, z);
	put(f, "blocks.0.fc1.lora_B.weight", 2, sb, z);
	CHECK_FAILS(dm_lora_from_file(&l, f, m), "rank 0");
	dm_file_free(f);

	f = dm_file_new();
	put(f, "lora_te_text_model_q.lora_down.weight", 2, sa, z);
	CHECK_FAILS(dm_lora_from_file(&l, f, m), "names no");
	dm_file_free(f);

	/* an mlp adapter on a unet */
	struct dm_lora *a = dm_lora_new(m, NULL, 2, 2, 0);
	f = dm_file_new();
	CHECK_OK(dm_lora_to_file(a, NULL, m, f));
	CHECK_FAILS(dm_lora_from_file(&l, f, u), "arch");
	dm_file_meta_unset(f, "dm.arch");
	CHECK_FAILS(dm_lora_from_file(&l, f, u), "names no");
	dm_file_free(f);
	dm_lora_free(a);
	CHECK(l == NULL);
	dm_model_free(m);
	dm_model_free(u);
}

/* Q [n, k] with orthonormal columns (modified Gram-Schmidt in double). */
static void
orthonormal(double *Q, int n, int k, uint64_t seed)
{
	float *g = malloc((size_t)n * k * sizeof *g);

	dm_rng_normal(g, (size_t)n * k, seed, 0, 0);
	for (int j = 0; j < k; j++) {
		for (int i = 0; i < n; i++)
			Q[i * k + j] = g[i * k + j];
		for (int p = 0; p < j; p++) {
			double d = 0;
			for (int i = 0; i < n; i++)
				d += Q[i * k + p] * Q[i * k + j];
			for (int i = 0; i < n; i++)
				Q[i * k + j] -= d * Q[i * k + p];
		}
		double nn = 0;
		for (int i = 0; i < n; i++)
			nn += Q[i * k + j] * Q[i * k + j];
		for (int i = 0; i < n; i++)
			Q[i * k + j] /= sqrt(nn);
	}
	free(g);
}

/* A delta U diag(s) V^T with known singular values: rank r keeps the
 * r largest, the error is the tail (Eckart-Young), full rank is exact. */
DM_TEST(lora_svd_eckart_young)
{
	struct dm_model *m = tiny_mlp(8);
	float *delta = calloc(m->nparams, sizeof *delta);
	double U[8 * 8], V[8 * 8], s[8] = {5, 3, 2, 1, 0.5, 0.25, 0.1, 0.05};
	const struct dm_param *w = NULL;
	double err2[64], norm2[64];

	for (int i = 0; i < m->nparam; i++)
		if (strcmp(m->param[i].name, "blocks.0.emb.weight") == 0)
			w = &m->param[i];
	CHECK(w != NULL);
	if (w == NULL)
		goto done;
	orthonormal(U, 8, 8, 1);
	orthonormal(V, 8, 8, 2);
	for (int o = 0; o < 8; o++)
		for (int i = 0; i < 8; i++) {
			double d = 0;
			for (int j = 0; j < 8; j++)
				d += U[o * 8 + j] * s[j] * V[i * 8 + j];
			delta[w->offset + (size_t)(o * 8 + i)] = (float)d;
		}
	for (int r = 1; r <= 8; r++) {
		struct dm_lora *l = dm_lora_from_delta(m, delta, NULL, r, err2,
		    norm2);
		CHECK(l != NULL && l->nlayer == 1);
		if (l == NULL)
			continue;
		double tail = 0, all = 0;
		for (int j = 0; j < 8; j++) {
			all += s[j] * s[j];
			if (j >= r)
				tail += s[j] * s[j];
		}
		CHECK_NEAR(norm2[0], all, 1e-5 * all);
		CHECK_MSG(fabs(err2[0] - tail) <= 1e-5 * all, "rank %d: error^2 "
		    "%g, tail of sigma^2 %g", r, err2[0], tail);
		dm_lora_free(l);
	}
	/* a zero delta everywhere: nothing to extract */
	memset(delta, 0, m->nparams * sizeof *delta);
	CHECK(dm_lora_from_delta(m, delta, NULL, 2, NULL, NULL) == NULL);
done:
	free(delta);
	dm_model_free(m);
}

/* Training with an adapter: the loss falls, only the factors move and
 * the base comes back bit for bit. */
DM_TEST(lora_train_frozen_base)
{
	struct dm_model *m = tiny_mlp(9);
	struct dm_train_opts o;
	int64_t n = 256, *rows = malloc((size_t)n * sizeof *rows);
	float *x = malloc((size_t)n * 3 * sizeof *x);
	float *w0 = malloc(m->nparams * sizeof *w0);
	struct dm_lora *l = dm_lora_new(m, NULL, 2, 2, 1);

	memcpy(w0, m->params, m->nparams * sizeof *w0);
	dm_rng_normal(x, (size_t)n * 3, 3, 3, 0);
	for (int64_t i = 0; i < n; i++) {
		rows[i] = i;
		x[i * 3] = 0.3f * x[i * 3] + 2;
	}
	dm_train_opts_defaults(&o);
	o.objective = DM_OBJECTIVE_FLOW;
	o.steps = 60;
	o.batch = 64;
	o.warmup = 5;
	o.lr = 1e-2;
	struct dm_train_data td = {.n = n, .d = 3, .x0 = x, .rows = rows,
	    .nrows = n};
	struct dm_trainer *tr = dm_trainer_new(m, &o, &td);
	CHECK(tr != NULL && l != NULL);
	if (tr == NULL || l == NULL)
		goto done;
	float *f0 = malloc(l->n * sizeof *f0);
	memcpy(f0, l->w, l->n * sizeof *f0);
	CHECK_OK(dm_trainer_set_lora(tr, l));
	double first = 0;
	for (int s = 0; s < 60; s++) {
		CHECK_OK(dm_trainer_step(tr));
		if (s == 0)
			first = tr->loss;
	}
	CHECK_MSG(tr->loss_ema < first, "loss %g -> %g", first, tr->loss_ema);
	CHECK(memcmp(f0, l->w, l->n * sizeof *f0) != 0);
	/* weights outside the adapted layers never moved */
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		int adapted = 0;
		for (int k = 0; k < l->nlayer; k++)
			adapted |= l->layer[k].param == i;
		if (!adapted)
			CHECK_MSG(memcmp(w0 + p->offset, m->params + p->offset,
			    p->numel * sizeof *w0) == 0, "%s moved", p->name);
	}
	dm_lora_detach(l, m);
	CHECK(memcmp(w0, m->params, m->nparams * sizeof *w0) == 0);
	free(f0);
done:
	dm_trainer_free(tr);
	dm_lora_free(l);
	free(rows);
	free(x);
	free(w0);
	dm_model_free(m);
}
