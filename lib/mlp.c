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
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_cli.h"
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

/* The time path's result for given t, as dm_mlp_prepare computed it:
 * per entry the depth blocks' emb(SiLU(e)) with their biases. */
struct mlp_tcache {
	int cap, n, hint;
	float *key;              /* [cap] */
	float *val;              /* [cap][depth][W] */
	float *work;             /* [T + 4W][cap to 16]: prepare's columns */
};

struct mlp {
	struct dm_acts a;        /* first: model.c's view */
	int d, W, T, K, depth, dout, cond;
	size_t t0w, t0b, t2w, t2b, cls, inw, inb, onw, onb, ow, ob;
	struct mlp_block *blk;
	float *x, *ts, *e0, *e1, *e, *ce, *se, *h0, *on, *omean, *orstd, *os;
	struct mlp_tcache tc;
	struct dm_team *team;    /* small batches, see small_forward */
	float *priv;             /* per helper: LayerNorm rows, mean, rstd */
	float *tiles;            /* large batches: per thread, see tile_rows */
	int tiles_n;             /* threads the area holds */
	float *tproj;            /* [depth][W]: the blocks' time projections */
	struct mlp_part *part;   /* training on large batches: see split_forward */
	int nparts;              /* parts allocated */
	int split;               /* parts of the last forward, 0: not split */
	int is_view;             /* a part's view of its rows */
};

/* A part of a split training batch: a shallow copy of the model whose
 * state is a view of the part's rows of the activations (their buffers
 * laid out from row r0 on), with gradients of its own past part 0. */
struct mlp_part {
	struct dm_model m;
	struct mlp n;
	struct mlp_block *blk;
	float *grads;
	int r0, rows;
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

/* h[lo, hi) += bias + hprev (either may be NULL). */
static DM_CLONES void
row_resid(float *restrict h, const float *restrict hprev,
    const float *restrict bias, int lo, int hi)
{
	if (hprev != NULL && bias != NULL) {
		#pragma omp simd
		for (int k = lo; k < hi; k++)
			h[k] += bias[k] + hprev[k];
	} else if (bias != NULL) {
		#pragma omp simd
		for (int k = lo; k < hi; k++)
			h[k] += bias[k];
	}
}

/* One row of h (W): ln = LayerNorm(h) with its mean and rstd (two passes
 * in double, as dm_layernorm_forward), s = SiLU(ln). */
static DM_CLONES void
row_norm_silu(const float *restrict h, float *restrict ln, float *restrict s,
    float *mean, float *rstd, const float *restrict nw,
    const float *restrict nb, int W)
{
	double sum = 0, var = 0, m;

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

/* One row of h (W): h += bias + hprev, then row_norm_silu. */
static void
row_resid_norm_silu(float *restrict h, const float *restrict hprev,
    const float *restrict bias, float *restrict ln, float *restrict s,
    float *mean, float *rstd, const float *restrict nw,
    const float *restrict nb, int W)
{
	row_resid(h, hprev, bias, 0, W);
	row_norm_silu(h, ln, s, mean, rstd, nw, nb, W);
}

/* u[lo, hi) += b1 + add, s = SiLU(u) there. */
static DM_CLONES void
row_bias_silu(float *restrict u, float *restrict s, const float *restrict b1,
    const float *restrict add, int lo, int hi)
{
	#pragma omp simd
	for (int k = lo; k < hi; k++) {
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

/* The time path of `rows` rows into the given buffers: ts (rows, T), e0,
 * e1, e and the embedding se (rows, W) each; the class rows are added
 * from the table.  SiLU row by row: this also runs on a tile's thread. */
static void
time_path(struct dm_model *m, const float *t, const int64_t *y, int rows,
    float *ts, float *e0, float *e1, float *e, float *se)
{
	struct mlp *n = m->impl;
	size_t W = (size_t)n->W;

	dm_timestep_embedding(ts, t, rows, n->T, 1000);
	linear(e0, ts, DM_P(m, n->t0w), DM_P(m, n->t0b), rows, n->T, n->W);
	for (int r = 0; r < rows; r++)
		dm_silu_forward(e1 + r * W, e0 + r * W, W);
	linear(e, e1, DM_P(m, n->t2w), DM_P(m, n->t2b), rows, n->W, n->W);
	if (n->cond)
		for (int r = 0; r < rows; r++) {
			const float *ce = DM_P(m, n->cls) + (size_t)y[r] * W;
			for (size_t k = 0; k < W; k++)
				e[r * W + k] += ce[k];
		}
	for (int r = 0; r < rows; r++)
		dm_silu_forward(se + r * W, e + r * W, W);
}

/* The time embedding se (rows, W) of the first `rows` rows. */
static void
time_embed(struct dm_model *m, const float *t, const int64_t *y, int rows)
{
	struct mlp *n = m->impl;

	time_path(m, t, y, rows, n->ts, n->e0, n->e1, n->e, n->se);
}

/* Entry of the time cache holding t, or NULL. */
static const float *
tcache_find(struct mlp *n, float t)
{
	struct mlp_tcache *c = &n->tc;

	for (int k = 0, i = c->hint; k < c->n; k++, i = i + 1 < c->n ? i + 1 : 0)
		if (c->key[i] == t) {
			c->hint = i + 1 < c->n ? i + 1 : 0;
			return c->val + (size_t)i * n->depth * n->W;
		}
	return NULL;
}

struct prep_job {
	struct dm_model *m;
	const float *t;
	int n;
};

/* Member me's columns of the cache, each column one t: the time path of
 * forward with the layers as dm_linear_cols_serial, in the work area of
 * (T + 4 W) rows of ld floats: ts, e0, e1, e, se, the blocks' outputs
 * reusing e0 and e1.  The columns are split among the members in units
 * of 16 (the kernel's lanes); nothing is shared, so no member waits. */
static void
prep_cols(void *arg, int me)
{
	struct prep_job *j = arg;
	struct dm_model *m = j->m;
	struct mlp *n = m->impl;
	int W = n->W, T = n->T, nm = dm_team_size(n->team);
	size_t ld = (size_t)(j->n + 15) / 16 * 16;
	int units = (int)(ld / 16);
	int c0 = units * me / nm * 16, c1 = units * (me + 1) / nm * 16;
	float *ts = n->tc.work, *e0 = ts + (size_t)T * ld;
	float *e1 = e0 + (size_t)W * ld, *e = e1 + (size_t)W * ld;
	float *se = e + (size_t)W * ld;

	if (c1 <= c0)
		return;
	/* the padding columns repeat the last t */
	for (int c = c0; c < c1; c++)
		dm_timestep_embedding_cols(ts + c, ld, j->t + (c < j->n ? c :
		    j->n - 1), 1, T, 1000);
	dm_linear_cols_serial(e0, ts, ld, c0, c1, DM_P(m, n->t0w),
	    DM_P(m, n->t0b), T, W);
	for (int k = 0; k < W; k++)
		dm_silu_forward(e1 + k * ld + c0, e0 + k * ld + c0,
		    (size_t)(c1 - c0));
	dm_linear_cols_serial(e, e1, ld, c0, c1, DM_P(m, n->t2w),
	    DM_P(m, n->t2b), W, W);
	for (int k = 0; k < W; k++)
		dm_silu_forward(se + k * ld + c0, e + k * ld + c0,
		    (size_t)(c1 - c0));
	for (int i = 0; i < n->depth; i++) {
		float *o = i % 2 ? e1 : e0;
		dm_linear_cols_serial(o, se, ld, c0, c1, DM_P(m, n->blk[i].ew),
		    DM_P(m, n->blk[i].eb), W, W);
		int cend = c1 < j->n ? c1 : j->n;
		for (int c = c0; c < cend; c++) {
			float *v = n->tc.val + ((size_t)c * n->depth + i) * W;
			for (int k = 0; k < W; k++)
				v[k] = o[(size_t)k * ld + c];
		}
	}
}

/* The team for small batches: as many members as threads, at most one
 * per 64 outputs of a layer.  Kept while the count stays. */
static struct dm_team *
team_get(struct mlp *n)
{
	int want = dm_threads_get();

	if (want > n->W / 64)
		want = n->W / 64;
	if (want < 2)
		want = 1;
	if (dm_team_size(n->team) != want) {
		dm_team_free(n->team);
		free(n->priv);
		n->priv = NULL;
		n->team = want > 1 ? dm_team_new(want) : NULL;
		if (n->team != NULL) {
			size_t per = MLP_SERIAL_ROWS * (2 * (size_t)n->W + 2);
			n->priv = dm_malloc((size_t)(want - 1) * per *
			    sizeof(float));
			if (n->priv == NULL) {
				dm_team_free(n->team);
				n->team = NULL;
			}
		}
	}
	return n->team;
}

int
dm_mlp_prepare(struct dm_model *m, const float *t, int cnt)
{
	struct mlp *n = m->impl;
	struct mlp_tcache *c = &n->tc;

	c->n = 0;	/* an earlier hint ends here */
	if (n->cond || n->depth == 0 || cnt < 1)
		return 0;
	if (cnt > DM_MLP_PREPARE_MAX)
		cnt = DM_MLP_PREPARE_MAX;
	if (cnt > c->cap) {
		size_t W = (size_t)n->W;
		float *key = dm_malloc((size_t)cnt * sizeof *key);
		float *val = dm_malloc((size_t)cnt * n->depth * W * sizeof *val);
		size_t ld = (size_t)(cnt + 15) / 16 * 16;
		float *work = dm_malloc(ld * (n->T + 4 * W) *
		    sizeof *work);
		if (key == NULL || val == NULL || work == NULL) {
			free(key);
			free(val);
			free(work);
			return -1;
		}
		free(c->key);
		free(c->val);
		free(c->work);
		c->key = key, c->val = val, c->work = work, c->cap = cnt;
	}
	memcpy(c->key, t, (size_t)cnt * sizeof *t);
	c->n = cnt;
	c->hint = 0;
	struct prep_job j = {m, t, cnt};
	dm_team_run(team_get(n), prep_cols, &j);
	return 0;
}

/* Batches of at most MLP_SERIAL_ROWS rows at inference: every layer's
 * outputs are split among the team's members in slices of multiples of
 * 16 (whole cache lines), so each core reads its slice of the weights
 * from its own cache; the members meet twice per block.  Each member
 * computes the LayerNorms of whole rows itself (member 0 into the model's
 * buffers, which dm_mlp_features reads); the others into n->priv.  The
 * arithmetic of every output is that of the serial forward. */
struct small_job {
	struct dm_model *m;
	float *out;
	int B;
	const float *te;         /* cache entry, or NULL: blk[i].e */
	size_t astride;          /* between the rows of blk[i].e */
	int trows;               /* te NULL: rows of the time path */
};

/* Member me's slice [lo, hi) of the time path of forward's first trows
 * rows, n->ts (and n->ce) given: e0, e1, e, se, and the blocks'
 * projections blk[i].e, each layer sliced like the data path's. */
static void
small_time(struct dm_model *m, int trows, int lo, int hi)
{
	struct mlp *n = m->impl;
	size_t W = (size_t)n->W;

	dm_linear_rows_serial(n->e0 + lo, W, n->ts, DM_P(m, n->t0w) + (size_t)lo *
	    n->T, DM_P(m, n->t0b) + lo, trows, n->T, hi - lo);
	for (int r = 0; r < trows; r++)
		dm_silu_forward(n->e1 + r * W + lo, n->e0 + r * W + lo,
		    (size_t)(hi - lo));
	dm_team_barrier(n->team);
	dm_linear_rows_serial(n->e + lo, W, n->e1, DM_P(m, n->t2w) + (size_t)lo *
	    W, DM_P(m, n->t2b) + lo, trows, n->W, hi - lo);
	for (int r = 0; r < trows; r++) {
		float *e = n->e + r * W;
		if (n->cond)
			for (int k = lo; k < hi; k++)
				e[k] += n->ce[r * W + k];
		dm_silu_forward(n->se + r * W + lo, e + lo, (size_t)(hi - lo));
	}
	dm_team_barrier(n->team);
	/* each member reads only its own slice of the projections */
	for (int i = 0; i < n->depth; i++)
		dm_linear_rows_serial(n->blk[i].e + lo, W, n->se,
		    DM_P(m, n->blk[i].ew) + (size_t)lo * W,
		    DM_P(m, n->blk[i].eb) + lo, trows, n->W, hi - lo);
}

static void
small_rows(void *arg, int me)
{
	struct small_job *j = arg;
	struct dm_model *m = j->m;
	struct mlp *n = m->impl;
	struct dm_team *T = n->team;
	int W = n->W, B = j->B, nm = dm_team_size(T);
	int lo = (W / 16 * me / nm) * 16, hi = (W / 16 * (me + 1) / nm) * 16;
	float *ln = NULL, *s = NULL, *mean = NULL, *rstd = NULL;

	if (me == nm - 1)
		hi = W;
	if (me > 0) {
		size_t per = MLP_SERIAL_ROWS * (2 * (size_t)W + 2);
		ln = n->priv + (size_t)(me - 1) * per;
		s = ln + MLP_SERIAL_ROWS * (size_t)W;
		mean = s + MLP_SERIAL_ROWS * (size_t)W;
		rstd = mean + MLP_SERIAL_ROWS;
	}
	if (j->te == NULL && n->depth > 0)
		small_time(m, j->trows, lo, hi);
	dm_linear_rows_serial(n->h0 + lo, (size_t)W, n->x,
	    DM_P(m, n->inw) + (size_t)lo * n->d, NULL, B, n->d, hi - lo);
	for (int r = 0; r < B; r++)
		row_resid(n->h0 + (size_t)r * W, NULL, DM_P(m, n->inb), lo, hi);
	dm_team_barrier(T);
	float *h = n->h0;
	for (int i = 0; i <= n->depth; i++) {
		struct mlp_block *b = &n->blk[i < n->depth ? i : 0];
		const float *nw, *nb;
		if (i < n->depth)
			nw = DM_P(m, b->nw), nb = DM_P(m, b->nb);
		else
			nw = DM_P(m, n->onw), nb = DM_P(m, n->onb);
		if (me == 0) {
			if (i < n->depth)
				ln = b->ln, s = b->s1, mean = b->mean,
				    rstd = b->rstd;
			else
				ln = n->on, s = n->os, mean = n->omean,
				    rstd = n->orstd;
		}
		for (int r = 0; r < B; r++)
			row_norm_silu(h + (size_t)r * W, ln + (size_t)r * W,
			    s + (size_t)r * W, mean + r, rstd + r, nw, nb, W);
		if (i == n->depth)
			break;
		const float *add = j->te ? j->te + (size_t)i * W : b->e;
		size_t astride = j->te ? 0 : j->astride;
		dm_linear_rows_serial(b->u + lo, (size_t)W, s,
		    DM_P(m, b->f1w) + (size_t)lo * W, NULL, B, W, hi - lo);
		for (int r = 0; r < B; r++)
			row_bias_silu(b->u + (size_t)r * W, b->s2 + (size_t)r * W,
			    DM_P(m, b->f1b), add + (size_t)r * astride, lo, hi);
		dm_team_barrier(T);
		dm_linear_rows_serial(b->h + lo, (size_t)W, b->s2,
		    DM_P(m, b->f2w) + (size_t)lo * W, NULL, B, W, hi - lo);
		for (int r = 0; r < B; r++)
			row_resid(b->h + (size_t)r * W, h + (size_t)r * W,
			    DM_P(m, b->f2b), lo, hi);
		dm_team_barrier(T);
		h = b->h;
	}
	/* the output layer's few outputs, sliced like the others */
	int olo = (n->dout / 4 * me / nm) * 4, ohi = (n->dout / 4 * (me + 1) /
	    nm) * 4;
	if (me == nm - 1)
		ohi = n->dout;
	if (ohi > olo)
		dm_linear_rows_serial(j->out + olo, (size_t)n->dout, s,
		    DM_P(m, n->ow) + (size_t)olo * W, DM_P(m, n->ob) + olo, B, W,
		    ohi - olo);
}

static void
small_forward(struct dm_model *m, float *out, const float *t,
    const int64_t *y, int B)
{
	struct mlp *n = m->impl;
	struct small_job j = {m, out, B, NULL, 0, 0};

	if (!n->cond && same_t(t, B) && n->depth > 0)
		j.te = tcache_find(n, t[0]);
	if (j.te == NULL && n->depth > 0) {
		j.trows = !n->cond && same_t(t, B) ? 1 : B;
		dm_timestep_embedding(n->ts, t, j.trows, n->T, 1000);
		if (n->cond)
			dm_embedding_forward(n->ce, y, DM_P(m, n->cls), j.trows,
			    n->W);
		j.astride = j.trows > 1 ? (size_t)n->W : 0;
	}
	dm_team_run(team_get(n), small_rows, &j);
}

/* Large batches at inference go through the network MLP_TILE rows at a
 * time, every tile on one thread from the input to the output with
 * single-threaded products (OpenBLAS runs on the calling thread inside a
 * parallel region), so that a tile's activations stay in that core's
 * cache between the products and the passes between them, and the
 * threads never wait for each other.  Per thread the area holds the
 * tile's buffers (tile_floats). */
#define MLP_TILE 128

static size_t
tile_floats(const struct mlp *n)
{
	return (size_t)MLP_TILE * (n->T + 10 * (size_t)n->W + 2);
}

struct tile_job {
	struct dm_model *m;
	float *out;
	const float *x, *t;
	const int64_t *y;
	int B;
	const float *te;         /* one t: blk[i].e (with bias), else NULL */
};

/* Rows [r0, r0 + rows) on the calling thread, in the area ws; the input
 * of the output layer goes to the model's buffer n->os. */
static void
tile_rows(const struct tile_job *j, float *ws, int r0, int rows)
{
	struct dm_model *m = j->m;
	struct mlp *n = m->impl;
	size_t W = (size_t)n->W, TW = MLP_TILE * W;
	float *h = ws, *hn = h + TW, *ln = hn + TW, *s = ln + TW, *u = s + TW;
	float *s2 = u + TW, *se = s2 + TW, *e0 = se + TW, *e1 = e0 + TW;
	float *e = e1 + TW, *ts = e + TW, *mean = ts + MLP_TILE * (size_t)n->T;
	float *rstd = mean + MLP_TILE;

	if (j->te == NULL)	/* the time path of these rows */
		time_path(m, j->t + r0, j->y ? j->y + r0 : NULL, rows, ts, e0, e1,
		    e, se);
	matmul(h, j->x + (size_t)r0 * n->d, DM_P(m, n->inw), rows, n->d, n->W,
	    0);
	const float *hprev = NULL, *hbias = DM_P(m, n->inb);
	for (int i = 0; i <= n->depth; i++) {
		const struct mlp_block *b = &n->blk[i < n->depth ? i : 0];
		const float *nw = i < n->depth ? DM_P(m, b->nw) : DM_P(m, n->onw);
		const float *nb = i < n->depth ? DM_P(m, b->nb) : DM_P(m, n->onb);
		if (i == n->depth)	/* where dm_mlp_features looks */
			s = n->os + (size_t)r0 * W;
		for (int r = 0; r < rows; r++)
			row_resid_norm_silu(h + r * W, hprev ? hprev + r * W : NULL,
			    hbias, ln + r * W, s + r * W, mean + r, rstd + r, nw,
			    nb, n->W);
		if (i == n->depth)
			break;
		const float *add = j->te ? j->te + i * W : DM_P(m, b->eb);
		matmul(u, s, DM_P(m, b->f1w), rows, n->W, n->W, 0);
		if (j->te == NULL)
			matmul(u, se, DM_P(m, b->ew), rows, n->W, n->W, 1);
		for (int r = 0; r < rows; r++)
			row_bias_silu(u + r * W, s2 + r * W, DM_P(m, b->f1b), add, 0,
			    n->W);
		matmul(hn, s2, DM_P(m, b->f2w), rows, n->W, n->W, 0);
		float *tmp = h;
		hprev = h;
		h = hn;
		hn = tmp;
		hbias = DM_P(m, b->f2b);
	}
	dm_linear_forward(j->out + (size_t)r0 * n->dout, s, DM_P(m, n->ow),
	    DM_P(m, n->ob), rows, n->W, n->dout);
}

/* 0, or -1 when the tiles' area cannot be had (the caller then takes the
 * whole-batch path). */
static int
tile_forward(struct dm_model *m, float *out, const float *x, const float *t,
    const int64_t *y, int B, int one_t)
{
	struct mlp *n = m->impl;
	int nt = dm_threads_get(), ntile = (B + MLP_TILE - 1) / MLP_TILE;
	struct tile_job j = {m, out, x, t, y, B, NULL};

	if (nt > ntile)
		nt = ntile;
	if (n->tproj == NULL && (n->tproj = dm_malloc(((size_t)n->depth + 1) *
	    n->W * sizeof *n->tproj)) == NULL) {
		dm_clearerr();
		return -1;
	}
	if (n->tiles_n < nt) {
		float *a = dm_malloc((size_t)nt * tile_floats(n) * sizeof *a);
		if (a == NULL) {
			dm_clearerr();
			return -1;
		}
		free(n->tiles);
		n->tiles = a;
		n->tiles_n = nt;
	}
	if (one_t && n->depth > 0) {
		/* the blocks' projections of the one time embedding */
		time_embed(m, t, y, 1);
		for (int i = 0; i < n->depth; i++)
			linear(n->tproj + (size_t)i * n->W, n->se,
			    DM_P(m, n->blk[i].ew), DM_P(m, n->blk[i].eb), 1, n->W,
			    n->W);
		j.te = n->tproj;
	}
	#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
	for (int k = 0; k < ntile; k++) {
		int r0 = k * MLP_TILE;
		tile_rows(&j, n->tiles + (size_t)omp_get_thread_num() *
		    tile_floats(n), r0, B - r0 < MLP_TILE ? B - r0 : MLP_TILE);
	}
	return 0;
}

/* Training on large batches is split into parts of at least
 * MLP_SPLIT_MIN rows, one per thread: each part runs forward and backward
 * on its rows with single-threaded products and passes, its weight
 * gradients in a buffer of its own, added up in part order at the end.
 * The threads meet twice per step instead of at every layer, and each
 * keeps its rows' activations in its own cache.  The sums over the batch
 * (the weight gradients) are then in another order than unsplit: equal to
 * float rounding, and the same for the same thread count.  Not with
 * dropout (its masks are numbered over the whole batch). */
#define MLP_SPLIT_MIN 128

static int
split_parts(const struct dm_model *m, int B)
{
	int np = dm_threads_get();

	if (m->cfg.dropout > 0 || B < 2 * MLP_SPLIT_MIN)
		return 1;
	if (np > B / MLP_SPLIT_MIN)
		np = B / MLP_SPLIT_MIN;
	return np;
}

/* The np parts' views of B rows; -1 when out of memory (reason cleared:
 * the caller goes on unsplit). */
static int
split_setup(struct dm_model *m, int B, int np)
{
	struct mlp *n = m->impl;

	if (n->nparts < np) {
		struct mlp_part *pt = dm_calloc((size_t)np, sizeof *pt);
		if (pt == NULL)
			goto oom;
		for (int p = 0; p < n->nparts; p++)
			pt[p] = n->part[p];
		for (int p = n->nparts; p < np; p++) {
			pt[p].blk = dm_malloc((size_t)(n->depth ? n->depth : 1) *
			    sizeof *pt[p].blk);
			pt[p].grads = p ? dm_calloc(m->nparams, sizeof(float)) :
			    NULL;
			if (pt[p].blk == NULL || (p && pt[p].grads == NULL)) {
				for (int q = n->nparts; q <= p; q++) {
					free(pt[q].blk);
					free(pt[q].grads);
				}
				free(pt);
				goto oom;
			}
		}
		free(n->part);
		n->part = pt;
		n->nparts = np;
	}
	for (int p = 0; p < np; p++) {
		struct mlp_part *q = &n->part[p];
		q->r0 = (int)((int64_t)B * p / np);
		q->rows = (int)((int64_t)B * (p + 1) / np) - q->r0;
		q->m = *m;
		q->m.impl = &q->n;
		q->n = *n;
		memcpy(q->blk, n->blk, (size_t)n->depth * sizeof *q->blk);
		q->n.blk = q->blk;
		q->n.team = NULL, q->n.priv = NULL, q->n.tiles = NULL;
		q->n.tproj = NULL, q->n.part = NULL, q->n.nparts = 0;
		memset(&q->n.tc, 0, sizeof q->n.tc);
		q->n.split = 0;
		q->n.is_view = 1;
		q->n.a.used = 0;
		q->n.a.view_row = q->r0;
		q->n.a.y = n->a.y + q->r0;
		q->n.a.B = q->rows;
		dm_mlp_layout(&q->m);
	}
	return 0;
oom:
	dm_clearerr();
	return -1;
}

static void
split_forward(struct dm_model *m, float *out, const float *x, const float *t,
    const int64_t *y, int np)
{
	struct mlp *n = m->impl;

	#pragma omp parallel for num_threads(np) schedule(static, 1)
	for (int p = 0; p < np; p++) {
		struct mlp_part *q = &n->part[p];
		dm_mlp_forward(&q->m, out + (size_t)q->r0 * n->dout, x +
		    (size_t)q->r0 * n->d, t + q->r0, y ? y + q->r0 : NULL,
		    q->rows, 1);
	}
	n->split = np;
}

/* a += b, and b = 0 for the next step (a part's gradients are zero
 * whenever it starts a backward: from their allocation, then from here) */
static DM_CLONES void
add_range(float *restrict a, float *restrict b, size_t lo, size_t hi)
{
	#pragma omp simd
	for (size_t i = lo; i < hi; i++) {
		a[i] += b[i];
		b[i] = 0;
	}
}

static void
split_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct mlp *n = m->impl;
	int np = n->split;

	#pragma omp parallel for num_threads(np) schedule(static, 1)
	for (int p = 0; p < np; p++) {
		struct mlp_part *q = &n->part[p];
		q->n.a.grad = n->a.grad;
		q->n.a.trained = 1;
		q->m.grads = p ? q->grads : m->grads;
		dm_mlp_backward(&q->m, dx ? dx + (size_t)q->r0 * n->d : NULL,
		    dout + (size_t)q->r0 * n->dout);
	}
	for (int p = 1; p < np; p++)
		DM_NN_RANGES(m->nparams, add_range(m->grads, n->part[p].grads,
		    lo, hi));
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

	if (train)	/* the weights are about to change: drop the hint */
		n->tc.n = 0;
	n->split = 0;
	if (train && !n->is_view) {
		int np = split_parts(m, B);
		if (np > 1 && split_setup(m, B, np) == 0) {
			split_forward(m, out, x, t, y, np);
			return 0;
		}
	}
	memcpy(n->x, x, (size_t)B * n->d * sizeof(float));
	if (!train && B <= MLP_SERIAL_ROWS) {
		small_forward(m, out, t, y, B);
		return 0;
	}
	if (!train && B >= 2 * MLP_TILE && tile_forward(m, out, x, t, y, B,
	    !n->cond && same_t(t, B)) == 0)
		return 0;
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
		    b->s2 + (size_t)r * W, b1, add + (size_t)r * astride, 0, W));
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

/* Every activation gradient is set by its first (for most, its only)
 * contribution, so the buffers need no zeroing (model.c skips it for
 * the mlp): the residual stream's gradient is copied, then the block's
 * LayerNorm adds to it; se's is set by the last block and added to by
 * the others. */
void
dm_mlp_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct mlp *n = m->impl;
	struct dm_acts *a = &n->a;
	int B = a->B;
	size_t BW = (size_t)B * n->W;
	float *dh;

	if (n->split > 1) {
		split_backward(m, dx, dout);
		return;
	}

	dm_linear_backward_set(dm_acts_grad(a, n->os), DM_G(m, n->ow),
	    DM_G(m, n->ob), dout, n->os, DM_P(m, n->ow), B, n->W, n->dout);
	dm_silu_backward_set(dm_acts_grad(a, n->on), dm_acts_grad(a, n->os),
	    n->on, BW);
	const float *hlast = n->depth ? n->blk[n->depth - 1].h : n->h0;
	dm_layernorm_backward_set(dm_acts_grad(a, hlast), DM_G(m, n->onw),
	    DM_G(m, n->onb), dm_acts_grad(a, n->on), hlast, DM_P(m, n->onw),
	    n->omean, n->orstd, B, n->W);
	for (int i = n->depth - 1; i >= 0; i--) {
		struct mlp_block *b = &n->blk[i];
		const float *hin = i ? n->blk[i - 1].h : n->h0;
		float *dhin = dm_acts_grad(a, hin);
		dh = dm_acts_grad(a, b->h);
		memcpy(dhin, dh, BW * sizeof *dhin);
		const float *f2in = a->dropping ? b->dr : b->s2;
		dm_linear_backward_set(dm_acts_grad(a, f2in), DM_G(m, b->f2w),
		    DM_G(m, b->f2b), dh, f2in, DM_P(m, b->f2w), B, n->W, n->W);
		if (a->dropping)
			dm_dropout_backward_set(dm_acts_grad(a, b->s2),
			    dm_acts_grad(a, b->dr), b->mask, BW,
			    m->cfg.dropout);
		dm_silu_backward_set(dm_acts_grad(a, b->u),
		    dm_acts_grad(a, b->s2), b->u, BW);
		float *du = dm_acts_grad(a, b->u);
		(i == n->depth - 1 ? dm_linear_backward_set :
		    dm_linear_backward)(dm_acts_grad(a, n->se), DM_G(m, b->ew),
		    DM_G(m, b->eb), du, n->se, DM_P(m, b->ew), B, n->W, n->W);
		dm_linear_backward_set(dm_acts_grad(a, b->s1), DM_G(m, b->f1w),
		    DM_G(m, b->f1b), du, b->s1, DM_P(m, b->f1w), B, n->W, n->W);
		dm_silu_backward_set(dm_acts_grad(a, b->ln),
		    dm_acts_grad(a, b->s1), b->ln, BW);
		dm_layernorm_backward(dhin, DM_G(m, b->nw), DM_G(m, b->nb),
		    dm_acts_grad(a, b->ln), hin, DM_P(m, b->nw), b->mean,
		    b->rstd, B, n->W);
	}
	dm_linear_backward_set(dx ? dm_acts_grad(a, n->x) : NULL,
	    DM_G(m, n->inw), DM_G(m, n->inb), dm_acts_grad(a, n->h0), n->x,
	    DM_P(m, n->inw), B, n->d, n->W);
	if (dx != NULL)
		memcpy(dx, dm_acts_grad(a, n->x), (size_t)B * n->d * sizeof(float));
	/* without blocks the time path does not reach the output: its
	 * parameters get no gradient */
	if (n->depth == 0)
		return;
	dm_silu_backward_set(dm_acts_grad(a, n->e), dm_acts_grad(a, n->se),
	    n->e, BW);
	if (n->cond)
		dm_embedding_backward(DM_G(m, n->cls), dm_acts_grad(a, n->e),
		    a->y, B, n->W);
	dm_linear_backward_set(dm_acts_grad(a, n->e1), DM_G(m, n->t2w),
	    DM_G(m, n->t2b), dm_acts_grad(a, n->e), n->e1, DM_P(m, n->t2w), B,
	    n->W, n->W);
	dm_silu_backward_set(dm_acts_grad(a, n->e0), dm_acts_grad(a, n->e1),
	    n->e0, BW);
	dm_linear_backward(NULL, DM_G(m, n->t0w), DM_G(m, n->t0b),
	    dm_acts_grad(a, n->e0), n->ts, DM_P(m, n->t0w), B, n->T, n->W);
}

void
dm_mlp_free(struct dm_model *m)
{
	struct mlp *n = m->impl;

	if (n == NULL)
		return;
	dm_team_free(n->team);
	free(n->priv);
	free(n->tiles);
	free(n->tproj);
	for (int p = 0; p < n->nparts; p++) {
		free(n->part[p].blk);
		free(n->part[p].grads);
	}
	free(n->part);
	free(n->tc.key);
	free(n->tc.val);
	free(n->tc.work);
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
