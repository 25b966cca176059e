/* mlp.c — the `mlp` network for vectors x of dimension d.
 *
 * With W = width, T = temb, K = classes, names as in the equivalent
 * PyTorch module (scripts/torch_mlp.py), every norm a LayerNorm with
 * eps 1e-5 over the last axis:
 *
 *   s    = sinusoidal(t, T), scale 1000        (dm_timestep_embedding)
 *   e    = time_embed.2(SiLU(time_embed.0(s)))  Linear(T, W), Linear(W, W)
 *   e   += class_embed.weight[y]                [K + 1, W], only if K > 0 and
 *                                               the head is a field; y = K is
 *                                               the null class
 *   se   = SiLU(e)
 *   h    = input(x)                             Linear(d, W)
 *   for i < depth, with p = "blocks.i":
 *     u  = p.fc1(SiLU(p.norm(h))) + p.emb(se)   Linear(W, W) each
 *     h  = h + p.fc2(Dropout(SiLU(u)))          Linear(W, W)
 *   out  = output(SiLU(out_norm(h)))            Linear(W, d), zero at the
 *                                               start (the first prediction
 *                                               is 0); the classifier head
 *                                               has Linear(W, K) (logits)
 *
 * Initialization: linear weights and biases U(+-1/sqrt(fan_in)), norms 1
 * and 0, the class table N(0, 1), `output` zero. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_nn.h"
#include "model_impl.h"
#include "nn_internal.h"

#define LN_EPS 1e-5f

/* Batches of at most this many rows skip BLAS (nn_serial.c): at batch 1
 * a forward is a chain of matrix-vector products, each cheaper than an
 * sgemm call's packing and thread start. */
#define MLP_SERIAL_ROWS 4

struct mlp_block {
	size_t nw, nb, f1w, f1b, ew, eb, f2w, f2b;
	float *ln, *mean, *rstd, *s1, *u, *e, *s2, *dr, *h;
	uint8_t *mask;
};

struct mlp {
	struct dm_acts a;        /* first: model.c's view */
	int d, W, T, K, depth, dout, cond;
	size_t t0w, t0b, t2w, t2b, cls, inw, inb, onw, onb, ow, ob;
	struct mlp_block *blk;
	float *x, *ts, *e0, *e1, *e, *ce, *se, *h0, *on, *omean, *orstd, *os;
};

int
dm_mlp_build(struct dm_model *m, struct dm_pbuild *pb)
{
	const struct dm_model_config *c = &m->cfg;
	struct mlp *n;
	char name[64];

	if (c->ndim != 1)
		return dm_seterr("model: mlp needs vectors (data shape [d]), "
		    "not %d dimensions", c->ndim);
	if (c->width < 1 || c->width > 65536 || c->depth < 0 ||
	    c->depth > 1000)
		return dm_seterr("model: mlp width %d, depth %d out of range",
		    c->width, c->depth);
	if (c->temb < 2 || c->temb % 2 != 0 || c->temb > 65536)
		return dm_seterr("model: temb %d is not an even number in "
		    "[2, 65536]", c->temb);
	if (c->shape[0] > 65536)
		return dm_seterr("model: mlp input dimension %lld is over 65536",
		    (long long)c->shape[0]);
	if ((n = dm_calloc(1, sizeof *n)) == NULL)
		return -1;
	m->impl = n;
	n->d = (int)c->shape[0];
	n->W = c->width;
	n->T = c->temb;
	n->K = c->classes;
	n->depth = c->depth;
	n->cond = c->classes > 0 && c->head == DM_HEAD_FIELD;
	n->dout = c->head == DM_HEAD_CLASSIFIER ? c->classes : n->d;
	if ((n->blk = dm_calloc(n->depth ? n->depth : 1, sizeof *n->blk)) == NULL)
		return -1;

	dm_pbuild_linear(pb, &n->t0w, &n->t0b, n->T, n->W, 0, "time_embed.0");
	dm_pbuild_linear(pb, &n->t2w, &n->t2b, n->W, n->W, 0, "time_embed.2");
	if (n->cond) {
		int64_t s[2] = {n->K + 1, n->W};
		n->cls = dm_pbuild_add(pb, DM_INIT_NORMAL, 0, 2, s,
		    "class_embed.weight");
	}
	dm_pbuild_linear(pb, &n->inw, &n->inb, n->d, n->W, 0, "input");
	for (int i = 0; i < n->depth; i++) {
		struct mlp_block *b = &n->blk[i];
		snprintf(name, sizeof name, "blocks.%d.norm", i);
		dm_pbuild_norm(pb, &b->nw, &b->nb, n->W, name);
		snprintf(name, sizeof name, "blocks.%d.fc1", i);
		dm_pbuild_linear(pb, &b->f1w, &b->f1b, n->W, n->W, 0, name);
		snprintf(name, sizeof name, "blocks.%d.emb", i);
		dm_pbuild_linear(pb, &b->ew, &b->eb, n->W, n->W, 0, name);
		snprintf(name, sizeof name, "blocks.%d.fc2", i);
		dm_pbuild_linear(pb, &b->f2w, &b->f2b, n->W, n->W, 0, name);
	}
	dm_pbuild_norm(pb, &n->onw, &n->onb, n->W, "out_norm");
	dm_pbuild_linear(pb, &n->ow, &n->ob, n->W, n->dout, 1, "output");
	return 0;
}

void
dm_mlp_layout(struct dm_model *m)
{
	struct mlp *n = m->impl;
	struct dm_acts *a = &n->a;
	size_t W = (size_t)n->W;

	n->x = dm_acts_take(a, (size_t)n->d);
	n->ts = dm_acts_take(a, (size_t)n->T);
	n->e0 = dm_acts_take(a, W);
	n->e1 = dm_acts_take(a, W);
	n->e = dm_acts_take(a, W);
	n->ce = n->cond ? dm_acts_take(a, W) : NULL;
	n->se = dm_acts_take(a, W);
	n->h0 = dm_acts_take(a, W);
	for (int i = 0; i < n->depth; i++) {
		struct mlp_block *b = &n->blk[i];
		b->ln = dm_acts_take(a, W);
		b->mean = dm_acts_take(a, 1);
		b->rstd = dm_acts_take(a, 1);
		b->s1 = dm_acts_take(a, W);
		b->u = dm_acts_take(a, W);
		b->e = dm_acts_take(a, W);
		b->s2 = dm_acts_take(a, W);
		b->dr = dm_acts_take(a, W);
		b->mask = (uint8_t *)dm_acts_take(a, (W + 3) / 4);
		b->h = dm_acts_take(a, W);
	}
	n->on = dm_acts_take(a, W);
	n->omean = dm_acts_take(a, 1);
	n->orstd = dm_acts_take(a, 1);
	n->os = dm_acts_take(a, W);
}

size_t
dm_mlp_work(const struct dm_model *m, int B)
{
	(void)m;
	(void)B;
	return 1;
}

static void
linear(float *out, const float *in, const float *w, const float *b, int n,
    int din, int dout)
{
	if (n <= MLP_SERIAL_ROWS)
		dm_linear_forward_serial(out, in, w, b, n, din, dout);
	else
		dm_linear_forward(out, in, w, b, n, din, dout);
}

/* out (n, dout) = in w^T, or += with acc (BLAS only): the products
 * without their bias, which the pass after them adds. */
static void
matmul(float *out, const float *in, const float *w, int n, int din,
    int dout, int acc)
{
	if (n <= MLP_SERIAL_ROWS && !acc)
		dm_linear_forward_serial(out, in, w, NULL, n, din, dout);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dout,
		    din, 1.0f, in, din, w, din, acc ? 1.0f : 0.0f, out, dout);
}

static inline float
silu(float x)
{
	return x / (1.0f + dm_nn_exp(-x));
}

/* The passes between the products, row by row while a row is in cache;
 * across threads when the batch is large. */
#define MLP_ROWS(n, W, call) do {                                         \
	if ((size_t)(n) * (size_t)(W) >= DM_NN_PAR_MIN) {                 \
		_Pragma("omp parallel for schedule(static)")              \
		for (int r = 0; r < (n); r++)                             \
			call;                                             \
	} else                                                            \
		for (int r = 0; r < (n); r++)                             \
			call;                                             \
} while (0)

/* One row of h (W): h += bias + hprev (either may be NULL), then
 * ln = LayerNorm(h) with its mean and rstd (two passes in double, as
 * dm_layernorm_forward), s = SiLU(ln). */
static void
row_resid_norm_silu(float *restrict h, const float *restrict hprev,
    const float *restrict bias, float *restrict ln, float *restrict s,
    float *mean, float *rstd, const float *restrict nw,
    const float *restrict nb, int W)
{
	double sum = 0, var = 0, m;

	if (hprev != NULL && bias != NULL) {
		#pragma omp simd
		for (int k = 0; k < W; k++)
			h[k] += bias[k] + hprev[k];
	} else if (bias != NULL) {
		#pragma omp simd
		for (int k = 0; k < W; k++)
			h[k] += bias[k];
	}
	#pragma omp simd reduction(+:sum)
	for (int k = 0; k < W; k++)
		sum += h[k];
	m = sum / W;
	#pragma omp simd reduction(+:var)
	for (int k = 0; k < W; k++) {
		double d = h[k] - m;
		var += d * d;
	}
	float fm = (float)m, rs = (float)(1.0 / sqrt(var / W + LN_EPS));
	*mean = fm;
	*rstd = rs;
	#pragma omp simd
	for (int k = 0; k < W; k++) {
		float y = (h[k] - fm) * rs * nw[k] + nb[k];
		ln[k] = y;
		s[k] = silu(y);
	}
}

/* One row of u (W): u += b1 + add, s = SiLU(u). */
static void
row_bias_silu(float *restrict u, float *restrict s, const float *restrict b1,
    const float *restrict add, int W)
{
	#pragma omp simd
	for (int k = 0; k < W; k++) {
		float x = u[k] + (b1[k] + add[k]);
		u[k] = x;
		s[k] = silu(x);
	}
}

/* 1 when every row has the same t: sampling, where the time embedding
 * and each block's projection of it are one row for the whole batch. */
static int
same_t(const float *t, int B)
{
	for (int i = 1; i < B; i++)
		if (t[i] != t[0])
			return 0;
	return 1;
}

/* The time embedding se (rows, W) of the first `rows` rows. */
static void
time_embed(struct dm_model *m, const float *t, const int64_t *y, int rows)
{
	struct mlp *n = m->impl;
	size_t BW = (size_t)rows * n->W;

	dm_timestep_embedding(n->ts, t, rows, n->T, 1000);
	linear(n->e0, n->ts, DM_P(m, n->t0w), DM_P(m, n->t0b), rows, n->T,
	    n->W);
	dm_silu_forward(n->e1, n->e0, BW);
	linear(n->e, n->e1, DM_P(m, n->t2w), DM_P(m, n->t2b), rows, n->W,
	    n->W);
	if (n->cond) {
		dm_embedding_forward(n->ce, y, DM_P(m, n->cls), rows,
		    n->W);
		for (size_t i = 0; i < BW; i++)
			n->e[i] += n->ce[i];
	}
	dm_silu_forward(n->se, n->e, BW);
}

/*
 * Forward.  Every product but the small ones runs without its bias; the
 * pass after it adds the bias, the residual or the time projection, and
 * goes on to the next LayerNorm and SiLU on the same row.  With one t
 * for the batch (and no class), the time path runs on one row.  Batches
 * of at most MLP_SERIAL_ROWS rows run on the calling thread.
 */
int
dm_mlp_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train)
{
	struct mlp *n = m->impl;
	int W = n->W, one_t = !train && !n->cond && B > 1 && same_t(t, B);
	size_t BW = (size_t)B * W;

	memcpy(n->x, x, (size_t)B * n->d * sizeof(float));
	time_embed(m, t, y, one_t ? 1 : B);
	matmul(n->h0, n->x, DM_P(m, n->inw), B, n->d, W, 0);
	float *h = n->h0, *hprev = NULL;
	const float *hbias = DM_P(m, n->inb);
	for (int i = 0; i <= n->depth; i++) {
		float *ln, *s, *mean, *rstd;
		const float *nw, *nb;
		if (i < n->depth) {
			struct mlp_block *b = &n->blk[i];
			ln = b->ln, s = b->s1, mean = b->mean, rstd = b->rstd;
			nw = DM_P(m, b->nw), nb = DM_P(m, b->nb);
		} else {
			ln = n->on, s = n->os, mean = n->omean, rstd = n->orstd;
			nw = DM_P(m, n->onw), nb = DM_P(m, n->onb);
		}
		MLP_ROWS(B, W, row_resid_norm_silu(h + (size_t)r * W,
		    hprev ? hprev + (size_t)r * W : NULL, hbias,
		    ln + (size_t)r * W, s + (size_t)r * W, mean + r, rstd + r,
		    nw, nb, W));
		if (i == n->depth)
			break;
		struct mlp_block *b = &n->blk[i];
		const float *add = DM_P(m, b->eb);
		size_t astride = 0;
		matmul(b->u, b->s1, DM_P(m, b->f1w), B, W, W, 0);
		if (one_t || B <= MLP_SERIAL_ROWS) {
			/* the projection of the time embedding, with its bias */
			linear(b->e, n->se, DM_P(m, b->ew), DM_P(m, b->eb),
			    one_t ? 1 : B, W, W);
			add = b->e;
			astride = one_t ? 0 : (size_t)W;
		} else
			matmul(b->u, n->se, DM_P(m, b->ew), B, W, W, 1);
		const float *b1 = DM_P(m, b->f1b);
		MLP_ROWS(B, W, row_bias_silu(b->u + (size_t)r * W,
		    b->s2 + (size_t)r * W, b1, add + (size_t)r * astride, W));
		const float *f2in = b->s2;
		if (n->a.dropping) {
			dm_model_dropout(m, b->dr, b->mask, b->s2, BW, i);
			f2in = b->dr;
		}
		matmul(b->h, f2in, DM_P(m, b->f2w), B, W, W, 0);
		hprev = h;
		h = b->h;
		hbias = DM_P(m, b->f2b);
	}
	linear(out, n->os, DM_P(m, n->ow), DM_P(m, n->ob), B, W, n->dout);
	return 0;
}

/* The gradient buffers are zero on entry (model.c); every layer adds. */
void
dm_mlp_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct mlp *n = m->impl;
	struct dm_acts *a = &n->a;
	int B = a->B;
	size_t BW = (size_t)B * n->W;
	float *dh;

	dm_linear_backward(dm_acts_grad(a, n->os), DM_G(m, n->ow),
	    DM_G(m, n->ob), dout, n->os, DM_P(m, n->ow), B, n->W, n->dout);
	dm_silu_backward(dm_acts_grad(a, n->on), dm_acts_grad(a, n->os), n->on,
	    BW);
	const float *hlast = n->depth ? n->blk[n->depth - 1].h : n->h0;
	dm_layernorm_backward(dm_acts_grad(a, hlast), DM_G(m, n->onw),
	    DM_G(m, n->onb), dm_acts_grad(a, n->on), hlast, DM_P(m, n->onw),
	    n->omean, n->orstd, B, n->W);
	for (int i = n->depth - 1; i >= 0; i--) {
		struct mlp_block *b = &n->blk[i];
		const float *hin = i ? n->blk[i - 1].h : n->h0;
		float *dhin = dm_acts_grad(a, hin);
		dh = dm_acts_grad(a, b->h);
		for (size_t k = 0; k < BW; k++)
			dhin[k] += dh[k];
		const float *f2in = a->dropping ? b->dr : b->s2;
		dm_linear_backward(dm_acts_grad(a, f2in), DM_G(m, b->f2w),
		    DM_G(m, b->f2b), dh, f2in, DM_P(m, b->f2w), B, n->W, n->W);
		if (a->dropping)
			dm_dropout_backward(dm_acts_grad(a, b->s2),
			    dm_acts_grad(a, b->dr), b->mask, BW,
			    m->cfg.dropout);
		dm_silu_backward(dm_acts_grad(a, b->u), dm_acts_grad(a, b->s2),
		    b->u, BW);
		float *du = dm_acts_grad(a, b->u);
		dm_linear_backward(dm_acts_grad(a, n->se), DM_G(m, b->ew),
		    DM_G(m, b->eb), du, n->se, DM_P(m, b->ew), B, n->W, n->W);
		dm_linear_backward(dm_acts_grad(a, b->s1), DM_G(m, b->f1w),
		    DM_G(m, b->f1b), du, b->s1, DM_P(m, b->f1w), B, n->W, n->W);
		dm_silu_backward(dm_acts_grad(a, b->ln), dm_acts_grad(a, b->s1),
		    b->ln, BW);
		dm_layernorm_backward(dhin, DM_G(m, b->nw), DM_G(m, b->nb),
		    dm_acts_grad(a, b->ln), hin, DM_P(m, b->nw), b->mean,
		    b->rstd, B, n->W);
	}
	dm_linear_backward(dx ? dm_acts_grad(a, n->x) : NULL, DM_G(m, n->inw),
	    DM_G(m, n->inb), dm_acts_grad(a, n->h0), n->x, DM_P(m, n->inw), B,
	    n->d, n->W);
	if (dx != NULL)
		memcpy(dx, dm_acts_grad(a, n->x), (size_t)B * n->d * sizeof(float));
	dm_silu_backward(dm_acts_grad(a, n->e), dm_acts_grad(a, n->se), n->e,
	    BW);
	if (n->cond)
		dm_embedding_backward(DM_G(m, n->cls), dm_acts_grad(a, n->e),
		    a->y, B, n->W);
	dm_linear_backward(dm_acts_grad(a, n->e1), DM_G(m, n->t2w),
	    DM_G(m, n->t2b), dm_acts_grad(a, n->e), n->e1, DM_P(m, n->t2w), B,
	    n->W, n->W);
	dm_silu_backward(dm_acts_grad(a, n->e0), dm_acts_grad(a, n->e1), n->e0,
	    BW);
	dm_linear_backward(NULL, DM_G(m, n->t0w), DM_G(m, n->t0b),
	    dm_acts_grad(a, n->e0), n->ts, DM_P(m, n->t0w), B, n->T, n->W);
}

void
dm_mlp_free(struct dm_model *m)
{
	struct mlp *n = m->impl;

	if (n == NULL)
		return;
	free(n->blk);
	free(n);
	m->impl = NULL;
}

/* The output layer's input SiLU(out_norm(h)) (B, width) of the last
 * forward. */
const float *
dm_mlp_features(const struct dm_model *m, size_t *dim)
{
	const struct mlp *n = m->impl;

	*dim = (size_t)n->W;
	return n->os;
}
