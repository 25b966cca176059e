/* unet.c — the `unet` network for images x of shape [C, H, W] (NCHW).
 *
 * With L = nlevels, c_l = ch * mult[l], H_l = H / 2^l, E = 4 ch, T = temb,
 * K = classes, G = groups; every GroupNorm has G groups and eps 1e-5, every
 * conv is 3x3 with padding 1 unless said otherwise; names as in the
 * equivalent PyTorch module:
 *
 *   e    = time_embed.2(SiLU(time_embed.0(sinusoidal(t, T))))
 *                                    Linear(T, E), Linear(E, E); scale 1000
 *   e   += class_embed.weight[y]     [K + 1, E] (field head with K > 0;
 *                                    y = K is the null class)
 *   se   = SiLU(e)
 *   h    = conv_in(x)                C -> c_0
 *   down: for l < L: for j < nres: h = down.l.res.j(h), kept as skip (l, j);
 *         for l < L - 1: h = down.l.down(h), conv stride 2 (c_l -> c_l)
 *   mid:  h = mid.res1(h); [h = mid.attn(h)]; h = mid.res2(h)
 *   up:   for l = L-1 .. 0: for j < nres:
 *           h = up.l.res.j(concat(h, skip (l, nres-1-j)))   channels
 *               (h's + c_l) -> c_l;
 *         for l > 0: h = up.l.up(upsample2_nearest(h))      c_l -> c_l
 *   out  = conv_out(SiLU(out_norm(h)))   c_0 -> C, zero at the start
 *
 * The classifier head skips the up path: out = head(mean over H, W of
 * SiLU(out_norm(h after mid))), Linear(c_{L-1}, K).
 *
 * ResBlock P (cin -> cout):
 *   a = P.conv1(SiLU(P.norm1(x))) + P.emb(se)   (per channel; Linear(E, cout))
 *   a = P.conv2(Dropout(SiLU(P.norm2(a))))      conv2 zero at the start
 *   out = a + (cin == cout ? x : P.skip(x))     skip: 1x1 conv
 * Attention block mid.attn on C channels, T = H_{L-1} W_{L-1} tokens:
 *   n = mid.attn.norm(x) as tokens (B, T, C);
 *   out = x + mid.attn.proj(attention(mid.attn.qkv(n)))   (as channels)
 *   qkv Linear(C, 3C) giving q, k, v; heads of C / heads; proj Linear(C, C)
 *   zero at the start.
 *
 * H and W must be divisible by 2^(L-1).  Initialization: conv and linear
 * weights and biases U(+-1/sqrt(fan_in)), norms 1 and 0, class table
 * N(0, 1), zeros where said. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_nn.h"
#include "model_impl.h"

#define GN_EPS 1e-5f

struct resblock {
	int cin, cout, H, W, skip, id;
	size_t n1w, n1b, c1w, c1b, ew, eb, n2w, n2b, c2w, c2b, skw, skb;
	const float *in;
	float *n1, *m1, *r1, *s1, *h1, *e, *n2, *m2, *r2, *s2, *dr, *sk, *out;
	uint8_t *mask;
};

/* Inference (forward with train = 0) keeps nothing for backward: the
 * large values live in an allocation of their own, made at the first
 * inference of a batch size (so neither the gradients' mirror of the
 * arena nor a training run carries it), with these sizes per sample, each
 * buffer reused as soon as its value is dead (the small ones, norms'
 * statistics, embeddings and attention, are the training layout's):
 *   s1, s2  a ResBlock's two SiLU(GroupNorm) values (s1 also its 1x1
 *           skip branch, the output norm and the attention's tokens)
 *   cat     the concatenation of an up block's input
 *   p, q    the running value h (blocks, down, up and mid convs), in turn
 *   skip    every down block's output, alive until its up block
 * so that its memory is a few images per sample instead of every layer's
 * values. */
struct eval {
	size_t s1, s2, cat, p, q, skip;
	float *base;             /* [cap (s1 + ... + skip)] */
	int cap;
};

struct unet {
	struct dm_acts a;        /* first: model.c's view */
	int C, H, W, L, nres, E, T, K, G, NH, cond, attn, classifier;
	int c[DM_UNET_MAX_LEVELS], hl[DM_UNET_MAX_LEVELS], wl[DM_UNET_MAX_LEVELS];
	size_t t0w, t0b, t2w, t2b, cls, ciw, cib;
	size_t dw[DM_UNET_MAX_LEVELS], db[DM_UNET_MAX_LEVELS];
	size_t uw[DM_UNET_MAX_LEVELS], ub[DM_UNET_MAX_LEVELS];
	size_t anw, anb, qw, qb, pw, pb, onw, onb, ow, ob;
	struct resblock *down, *up, mid1, mid2;
	float *x, *ts, *e0, *e1, *e, *ce, *se, *hin;
	float *dconv[DM_UNET_MAX_LEVELS], *uup[DM_UNET_MAX_LEVELS];
	float *uconv[DM_UNET_MAX_LEVELS], **cat;
	float *an, *am, *ar, *tok, *qkv, *att, *ao, *pr, *aout;
	float *on, *om, *orr, *os, *pool;
	struct eval ev;
	float **evskip;          /* [L nres]: the down blocks' outputs */
};

/* Registration with the GroupNorm divisibility check. */
static int
gn_check(const struct unet *n, int C, const char *name)
{
	if (C % n->G != 0)
		return dm_seterr("model: unet: %d groups do not divide the %d "
		    "channels of %s", n->G, C, name);
	return 0;
}

static int
res_build(struct unet *n, struct dm_pbuild *pb, struct resblock *r, int cin,
    int cout, int l, int id, const char *prefix)
{
	char name[96];

	r->cin = cin;
	r->cout = cout;
	r->H = n->hl[l];
	r->W = n->wl[l];
	r->skip = cin != cout;
	r->id = id;
	snprintf(name, sizeof name, "%s.norm1", prefix);
	if (gn_check(n, cin, name) == -1)
		return -1;
	dm_pbuild_norm(pb, &r->n1w, &r->n1b, cin, name);
	snprintf(name, sizeof name, "%s.conv1", prefix);
	dm_pbuild_conv(pb, &r->c1w, &r->c1b, cin, cout, 3, 0, name);
	snprintf(name, sizeof name, "%s.emb", prefix);
	dm_pbuild_linear(pb, &r->ew, &r->eb, n->E, cout, 0, name);
	snprintf(name, sizeof name, "%s.norm2", prefix);
	if (gn_check(n, cout, name) == -1)
		return -1;
	dm_pbuild_norm(pb, &r->n2w, &r->n2b, cout, name);
	snprintf(name, sizeof name, "%s.conv2", prefix);
	dm_pbuild_conv(pb, &r->c2w, &r->c2b, cout, cout, 3, 1, name);
	if (r->skip) {
		snprintf(name, sizeof name, "%s.skip", prefix);
		dm_pbuild_conv(pb, &r->skw, &r->skb, cin, cout, 1, 0, name);
	}
	return 0;
}

static int
check_config(const struct dm_model_config *c)
{
	if (c->ndim != 3)
		return dm_seterr("model: unet needs images (data shape [C, H, "
		    "W]), not %d dimensions", c->ndim);
	if (c->nlevels < 1 || c->nlevels > DM_UNET_MAX_LEVELS)
		return dm_seterr("model: unet: %d levels (1 to %d)", c->nlevels,
		    DM_UNET_MAX_LEVELS);
	if (c->ch < 1 || c->ch > 4096 || c->nres < 1 || c->nres > 100 ||
	    c->heads < 1 || c->groups < 1)
		return dm_seterr("model: unet: ch %d, nres %d, heads %d, groups "
		    "%d out of range", c->ch, c->nres, c->heads, c->groups);
	if (c->temb < 2 || c->temb % 2 != 0 || c->temb > 65536)
		return dm_seterr("model: temb %d is not an even number in "
		    "[2, 65536]", c->temb);
	for (int l = 0; l < c->nlevels; l++)
		if (c->mult[l] < 1 || c->mult[l] > 64 ||
		    (int64_t)c->ch * c->mult[l] > 16384)
			return dm_seterr("model: unet: channel multiplier %d "
			    "out of range", c->mult[l]);
	int64_t f = (int64_t)1 << (c->nlevels - 1);
	if (c->shape[1] % f != 0 || c->shape[2] % f != 0)
		return dm_seterr("model: unet with %d levels needs H and W "
		    "divisible by %lld, not %lldx%lld (use fewer levels: "
		    "mult=...)", c->nlevels, (long long)f,
		    (long long)c->shape[1], (long long)c->shape[2]);
	if (c->shape[0] > 4096)
		return dm_seterr("model: unet: %lld channels (at most 4096)",
		    (long long)c->shape[0]);
	int64_t hw = c->shape[1] * c->shape[2];
	for (int l = 0; l < c->nlevels; l++) {
		/* the widest buffer: concat of two levels' channels */
		int64_t cl = 3 * (int64_t)c->ch * c->mult[l];
		if (hw > (INT64_C(1) << 26) || cl * hw > (INT64_C(1) << 28))
			return dm_seterr("model: unet: image too large for the "
			    "network (%lld x %lld at level %d)", (long long)cl,
			    (long long)hw, l);
		hw /= 4;
	}
	if (c->attn) {
		int64_t cl = (int64_t)c->ch * c->mult[c->nlevels - 1];
		hw = (c->shape[1] / f) * (c->shape[2] / f);
		if (cl % c->heads != 0)
			return dm_seterr("model: unet: %d heads do not divide %lld "
			    "channels", c->heads, (long long)cl);
		if (hw * hw * c->heads > (INT64_C(1) << 28))
			return dm_seterr("model: unet: attention over %lld "
			    "tokens is too large (use more levels)",
			    (long long)hw);
	}
	return 0;
}

int
dm_unet_build(struct dm_model *m, struct dm_pbuild *pb)
{
	const struct dm_model_config *c = &m->cfg;
	struct unet *n;
	char name[96];
	int cur;

	if (check_config(c) == -1)
		return -1;
	if ((n = dm_calloc(1, sizeof *n)) == NULL)
		return -1;
	m->impl = n;
	n->C = (int)c->shape[0];
	n->H = (int)c->shape[1];
	n->W = (int)c->shape[2];
	n->L = c->nlevels;
	n->nres = c->nres;
	n->E = 4 * c->ch;
	n->T = c->temb;
	n->K = c->classes;
	n->G = c->groups;
	n->NH = c->heads;
	n->attn = c->attn;
	n->classifier = c->head == DM_HEAD_CLASSIFIER;
	n->cond = n->K > 0 && !n->classifier;
	for (int l = 0; l < n->L; l++) {
		n->c[l] = c->ch * c->mult[l];
		n->hl[l] = n->H >> l;
		n->wl[l] = n->W >> l;
	}
	size_t nb = (size_t)n->L * n->nres;
	if ((n->down = dm_calloc(nb, sizeof *n->down)) == NULL ||
	    (n->up = dm_calloc(nb, sizeof *n->up)) == NULL ||
	    (n->cat = dm_calloc(nb, sizeof *n->cat)) == NULL ||
	    (n->evskip = dm_calloc(nb, sizeof *n->evskip)) == NULL)
		return -1;

	dm_pbuild_linear(pb, &n->t0w, &n->t0b, n->T, n->E, 0, "time_embed.0");
	dm_pbuild_linear(pb, &n->t2w, &n->t2b, n->E, n->E, 0, "time_embed.2");
	if (n->cond) {
		int64_t s[2] = {n->K + 1, n->E};
		n->cls = dm_pbuild_add(pb, DM_INIT_NORMAL, 0, 2, s,
		    "class_embed.weight");
	}
	dm_pbuild_conv(pb, &n->ciw, &n->cib, n->C, c->ch, 3, 0, "conv_in");
	cur = c->ch;
	for (int l = 0; l < n->L; l++) {
		for (int j = 0; j < n->nres; j++) {
			snprintf(name, sizeof name, "down.%d.res.%d", l, j);
			if (res_build(n, pb, &n->down[l * n->nres + j], cur,
			    n->c[l], l, l * n->nres + j, name) == -1)
				return -1;
			cur = n->c[l];
		}
		if (l < n->L - 1) {
			snprintf(name, sizeof name, "down.%d.down", l);
			dm_pbuild_conv(pb, &n->dw[l], &n->db[l], cur, cur, 3, 0,
			    name);
		}
	}
	if (res_build(n, pb, &n->mid1, cur, cur, n->L - 1, 1000,
	    "mid.res1") == -1)
		return -1;
	if (n->attn) {
		if (gn_check(n, cur, "mid.attn.norm") == -1)
			return -1;
		dm_pbuild_norm(pb, &n->anw, &n->anb, cur, "mid.attn.norm");
		dm_pbuild_linear(pb, &n->qw, &n->qb, cur, 3 * cur, 0,
		    "mid.attn.qkv");
		dm_pbuild_linear(pb, &n->pw, &n->pb, cur, cur, 1,
		    "mid.attn.proj");
	}
	if (res_build(n, pb, &n->mid2, cur, cur, n->L - 1, 1001,
	    "mid.res2") == -1)
		return -1;
	if (n->classifier) {
		if (gn_check(n, cur, "out_norm") == -1)
			return -1;
		dm_pbuild_norm(pb, &n->onw, &n->onb, cur, "out_norm");
		dm_pbuild_linear(pb, &n->ow, &n->ob, cur, n->K, 1, "head");
		return 0;
	}
	for (int l = n->L - 1; l >= 0; l--) {
		for (int j = 0; j < n->nres; j++) {
			snprintf(name, sizeof name, "up.%d.res.%d", l, j);
			if (res_build(n, pb, &n->up[l * n->nres + j],
			    cur + n->c[l], n->c[l], l, 2000 + l * n->nres + j,
			    name) == -1)
				return -1;
			cur = n->c[l];
		}
		if (l > 0) {
			snprintf(name, sizeof name, "up.%d.up", l);
			dm_pbuild_conv(pb, &n->uw[l], &n->ub[l], cur, cur, 3, 0,
			    name);
		}
	}
	if (gn_check(n, cur, "out_norm") == -1)
		return -1;
	dm_pbuild_norm(pb, &n->onw, &n->onb, cur, "out_norm");
	dm_pbuild_conv(pb, &n->ow, &n->ob, cur, n->C, 3, 1, "conv_out");
	return 0;
}

static void
res_layout(struct unet *n, struct resblock *r)
{
	struct dm_acts *a = &n->a;
	size_t hw = (size_t)r->H * r->W, in = r->cin * hw, out = r->cout * hw;
	size_t G = (size_t)n->G;

	r->n1 = dm_acts_take(a, in);
	r->m1 = dm_acts_take(a, G);
	r->r1 = dm_acts_take(a, G);
	r->s1 = dm_acts_take(a, in);
	r->h1 = dm_acts_take(a, out);
	r->e = dm_acts_take(a, (size_t)r->cout);
	r->n2 = dm_acts_take(a, out);
	r->m2 = dm_acts_take(a, G);
	r->r2 = dm_acts_take(a, G);
	r->s2 = dm_acts_take(a, out);
	r->dr = dm_acts_take(a, out);
	r->mask = (uint8_t *)dm_acts_take(a, (out + 3) / 4);
	r->sk = r->skip ? dm_acts_take(a, out) : NULL;
	r->out = dm_acts_take(a, out);
}

static size_t
max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

static void
eval_block(struct eval *e, const struct resblock *r)
{
	size_t hw = (size_t)r->H * r->W;

	e->s1 = max_sz(e->s1, (size_t)max_sz(r->cin, r->cout) * hw);
	e->s2 = max_sz(e->s2, (size_t)r->cout * hw);
}

/* The inference region: sizes (struct eval) and its place in the arena. */
static void
eval_layout(struct unet *n, int ch)
{
	struct eval *e = &n->ev;
	int nr = n->nres, top = n->L - 1;
	size_t hwt = (size_t)n->hl[top] * n->wl[top];

	e->s1 = e->s2 = e->cat = e->skip = 0;
	e->p = (size_t)ch * n->H * n->W;
	for (int l = 0; l < n->L; l++) {
		size_t hw = (size_t)n->hl[l] * n->wl[l];
		for (int j = 0; j < nr; j++) {
			const struct resblock *r = &n->down[l * nr + j];
			eval_block(e, r);
			e->skip += (size_t)r->cout * hw;
			if (n->classifier)
				continue;
			r = &n->up[l * nr + j];
			eval_block(e, r);
			e->cat = max_sz(e->cat, (size_t)r->cin * hw);
			e->p = max_sz(e->p, (size_t)r->cout * hw);
		}
		if (l < top)
			e->p = max_sz(e->p, (size_t)n->c[l] * hw / 4);
		if (l > 0 && !n->classifier)
			e->p = max_sz(e->p, (size_t)n->c[l] * hw * 4);
	}
	eval_block(e, &n->mid1);
	eval_block(e, &n->mid2);
	e->p = max_sz(e->p, (size_t)n->c[top] * hwt);
	e->q = e->p;
}

/* Room for inference on batches of B. */
static int
eval_reserve(struct unet *n, int B)
{
	struct eval *e = &n->ev;
	size_t per = e->s1 + e->s2 + e->cat + e->p + e->q + e->skip, total;
	float *p;

	if (B <= e->cap)
		return 0;
	if (dm_mul_size(per, (size_t)B, &total) == -1 ||
	    dm_mul_size(total, sizeof(float), &total) == -1)
		return dm_errctx("model: batch of %d: ", B);
	if ((p = dm_malloc(total)) == NULL)
		return -1;
	free(e->base);
	e->base = p;
	e->cap = B;
	return 0;
}

void
dm_unet_layout(struct dm_model *m)
{
	struct unet *n = m->impl;
	struct dm_acts *a = &n->a;
	size_t hw0 = (size_t)n->H * n->W;
	int nr = n->nres, top = n->L - 1;
	size_t C = (size_t)n->c[top], T = (size_t)n->hl[top] * n->wl[top];

	n->x = dm_acts_take(a, (size_t)n->C * hw0);
	n->ts = dm_acts_take(a, (size_t)n->T);
	n->e0 = dm_acts_take(a, (size_t)n->E);
	n->e1 = dm_acts_take(a, (size_t)n->E);
	n->e = dm_acts_take(a, (size_t)n->E);
	n->ce = n->cond ? dm_acts_take(a, (size_t)n->E) : NULL;
	n->se = dm_acts_take(a, (size_t)n->E);
	n->hin = dm_acts_take(a, (size_t)m->cfg.ch * hw0);
	for (int l = 0; l < n->L; l++) {
		for (int j = 0; j < nr; j++)
			res_layout(n, &n->down[l * nr + j]);
		if (l < top)
			n->dconv[l] = dm_acts_take(a,
			    (size_t)n->c[l] * n->hl[l + 1] * n->wl[l + 1]);
	}
	res_layout(n, &n->mid1);
	if (n->attn) {
		n->an = dm_acts_take(a, C * T);
		n->am = dm_acts_take(a, (size_t)n->G);
		n->ar = dm_acts_take(a, (size_t)n->G);
		n->tok = dm_acts_take(a, C * T);
		n->qkv = dm_acts_take(a, 3 * C * T);
		n->att = dm_acts_take(a, (size_t)n->NH * T * T);
		n->ao = dm_acts_take(a, C * T);
		n->pr = dm_acts_take(a, C * T);
		n->aout = dm_acts_take(a, C * T);
	}
	res_layout(n, &n->mid2);
	if (n->classifier) {
		n->on = dm_acts_take(a, C * T);
		n->om = dm_acts_take(a, (size_t)n->G);
		n->orr = dm_acts_take(a, (size_t)n->G);
		n->os = dm_acts_take(a, C * T);
		n->pool = dm_acts_take(a, C);
		eval_layout(n, m->cfg.ch);
		return;
	}
	for (int l = top; l >= 0; l--) {
		for (int j = 0; j < nr; j++) {
			struct resblock *r = &n->up[l * nr + j];
			n->cat[l * nr + j] = dm_acts_take(a,
			    (size_t)r->cin * r->H * r->W);
			res_layout(n, r);
		}
		if (l > 0) {
			size_t s = (size_t)n->c[l] * n->hl[l - 1] * n->wl[l - 1];
			n->uup[l] = dm_acts_take(a, s);
			n->uconv[l] = dm_acts_take(a, s);
		}
	}
	n->on = dm_acts_take(a, (size_t)n->c[0] * hw0);
	n->om = dm_acts_take(a, (size_t)n->G);
	n->orr = dm_acts_take(a, (size_t)n->G);
	n->os = dm_acts_take(a, (size_t)n->c[0] * hw0);
	eval_layout(n, m->cfg.ch);
}

static size_t
res_work(const struct resblock *r, int B)
{
	size_t w = dm_conv2d_work_size(B, r->cin, r->H, r->W, r->cout, 3, 1);

	w = max_sz(w, dm_conv2d_work_size(B, r->cout, r->H, r->W, r->cout, 3,
	    1));
	if (r->skip)
		w = max_sz(w, dm_conv2d_work_size(B, r->cin, r->H, r->W,
		    r->cout, 1, 1));
	return w;
}

size_t
dm_unet_work(const struct dm_model *m, int B)
{
	const struct unet *n = m->impl;
	int nr = n->nres, top = n->L - 1;
	size_t w = dm_conv2d_work_size(B, n->C, n->H, n->W, m->cfg.ch, 3, 1);

	for (int l = 0; l < n->L; l++) {
		for (int j = 0; j < nr; j++) {
			w = max_sz(w, res_work(&n->down[l * nr + j], B));
			if (!n->classifier)
				w = max_sz(w, res_work(&n->up[l * nr + j], B));
		}
		if (l < top)
			w = max_sz(w, dm_conv2d_work_size(B, n->c[l], n->hl[l],
			    n->wl[l], n->c[l], 3, 2));
		if (l > 0 && !n->classifier)
			w = max_sz(w, dm_conv2d_work_size(B, n->c[l],
			    n->hl[l - 1], n->wl[l - 1], n->c[l], 3, 1));
	}
	w = max_sz(w, res_work(&n->mid1, B));
	w = max_sz(w, res_work(&n->mid2, B));
	if (n->attn)
		w = max_sz(w, dm_attention_work_size(B,
		    n->hl[top] * n->wl[top], n->c[top], n->NH));
	if (!n->classifier)
		w = max_sz(w, dm_conv2d_work_size(B, n->c[0], n->H, n->W, n->C,
		    3, 1));
	return w ? w : 1;
}

/* out += in, or the 1x1 skip convolution of in (computed into sk) */
static void
res_residual(struct dm_model *m, const struct resblock *r, float *out,
    const float *in, float *sk, int B)
{
	size_t nout = (size_t)B * r->cout * r->H * r->W;

	if (r->skip) {
		dm_conv2d_forward(sk, in, DM_P(m, r->skw), DM_P(m, r->skb), B,
		    r->cin, r->H, r->W, r->cout, 1, 1, ((struct unet *)m->impl)->a.work);
		in = sk;
	}
	for (size_t i = 0; i < nout; i++)
		out[i] += in[i];
}

static void
res_forward(struct dm_model *m, struct resblock *r, const float *in, int B)
{
	struct unet *n = m->impl;
	int hw = r->H * r->W;
	size_t nout = (size_t)B * r->cout * hw;
	float *work = n->a.work;

	r->in = in;
	dm_groupnorm_silu_forward(r->n1, r->s1, r->m1, r->r1, in,
	    DM_P(m, r->n1w), DM_P(m, r->n1b), B, r->cin, hw, n->G, GN_EPS);
	dm_conv2d_forward(r->h1, r->s1, DM_P(m, r->c1w), DM_P(m, r->c1b), B,
	    r->cin, r->H, r->W, r->cout, 3, 1, work);
	dm_linear_forward(r->e, n->se, DM_P(m, r->ew), DM_P(m, r->eb), B, n->E,
	    r->cout);
	dm_bias_add_forward(r->h1, r->e, B, r->cout, hw);
	dm_groupnorm_silu_forward(r->n2, r->s2, r->m2, r->r2, r->h1,
	    DM_P(m, r->n2w), DM_P(m, r->n2b), B, r->cout, hw, n->G, GN_EPS);
	const float *c2in = r->s2;
	if (n->a.dropping) {
		dm_model_dropout(m, r->dr, r->mask, r->s2, nout, r->id);
		c2in = r->dr;
	}
	dm_conv2d_forward(r->out, c2in, DM_P(m, r->c2w), DM_P(m, r->c2b), B,
	    r->cout, r->H, r->W, r->cout, 3, 1, work);
	res_residual(m, r, r->out, in, r->sk, B);
}

/* Inference: out = the block of in, with the values of the first branch in
 * s1 then s2 (see struct eval); out must be neither. */
static void
res_eval(struct dm_model *m, struct resblock *r, float *out, const float *in,
    float *s1, float *s2, int B)
{
	struct unet *n = m->impl;
	int hw = r->H * r->W;
	float *work = n->a.work;

	dm_groupnorm_silu_forward(NULL, s1, r->m1, r->r1, in, DM_P(m, r->n1w),
	    DM_P(m, r->n1b), B, r->cin, hw, n->G, GN_EPS);
	dm_conv2d_forward(s2, s1, DM_P(m, r->c1w), DM_P(m, r->c1b), B, r->cin,
	    r->H, r->W, r->cout, 3, 1, work);
	dm_linear_forward(r->e, n->se, DM_P(m, r->ew), DM_P(m, r->eb), B, n->E,
	    r->cout);
	dm_bias_add_forward(s2, r->e, B, r->cout, hw);
	dm_groupnorm_silu_forward(NULL, s2, r->m2, r->r2, s2, DM_P(m, r->n2w),
	    DM_P(m, r->n2b), B, r->cout, hw, n->G, GN_EPS);
	dm_conv2d_forward(out, s2, DM_P(m, r->c2w), DM_P(m, r->c2b), B,
	    r->cout, r->H, r->W, r->cout, 3, 1, work);
	res_residual(m, r, out, in, s1, B);
}

static void
res_backward(struct dm_model *m, struct resblock *r, int B)
{
	struct unet *n = m->impl;
	struct dm_acts *a = &n->a;
	int hw = r->H * r->W;
	size_t nout = (size_t)B * r->cout * hw;
	float *work = a->work, *dout = dm_acts_grad(a, r->out);
	float *din = dm_acts_grad(a, r->in);

	if (r->skip)
		dm_conv2d_backward(din, DM_G(m, r->skw), DM_G(m, r->skb), dout,
		    r->in, DM_P(m, r->skw), B, r->cin, r->H, r->W, r->cout, 1, 1,
		    work);
	else
		for (size_t i = 0; i < nout; i++)
			din[i] += dout[i];
	const float *c2in = a->dropping ? r->dr : r->s2;
	dm_conv2d_backward(dm_acts_grad(a, c2in), DM_G(m, r->c2w),
	    DM_G(m, r->c2b), dout, c2in, DM_P(m, r->c2w), B, r->cout, r->H,
	    r->W, r->cout, 3, 1, work);
	if (a->dropping)
		dm_dropout_backward(dm_acts_grad(a, r->s2),
		    dm_acts_grad(a, r->dr), r->mask, nout, m->cfg.dropout);
	float *dh1 = dm_acts_grad(a, r->h1);
	dm_groupnorm_silu_backward(dh1, DM_G(m, r->n2w), DM_G(m, r->n2b),
	    dm_acts_grad(a, r->n2), dm_acts_grad(a, r->s2), r->n2, r->h1,
	    DM_P(m, r->n2w), r->m2, r->r2, B, r->cout, hw, n->G);
	dm_bias_add_backward(dm_acts_grad(a, r->e), dh1, B, r->cout, hw);
	dm_linear_backward(dm_acts_grad(a, n->se), DM_G(m, r->ew),
	    DM_G(m, r->eb), dm_acts_grad(a, r->e), n->se, DM_P(m, r->ew), B,
	    n->E, r->cout);
	dm_conv2d_backward(dm_acts_grad(a, r->s1), DM_G(m, r->c1w),
	    DM_G(m, r->c1b), dh1, r->s1, DM_P(m, r->c1w), B, r->cin, r->H,
	    r->W, r->cout, 3, 1, work);
	dm_groupnorm_silu_backward(din, DM_G(m, r->n1w), DM_G(m, r->n1b),
	    dm_acts_grad(a, r->n1), dm_acts_grad(a, r->s1), r->n1, r->in,
	    DM_P(m, r->n1w), r->m1, r->r1, B, r->cin, hw, n->G);
}

/* (B, C, T) <-> (B, T, C) */
static void
to_tokens(float *out, const float *in, int B, int C, int T)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < T; t++)
				out[((size_t)b * T + t) * C + c] =
				    in[((size_t)b * C + c) * T + t];
}

static void
from_tokens_add(float *out, const float *in, int B, int C, int T)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++)
			for (int t = 0; t < T; t++)
				out[((size_t)b * C + c) * T + t] +=
				    in[((size_t)b * T + t) * C + c];
}

static void
attn_forward(struct dm_model *m, const float *in, int B)
{
	struct unet *n = m->impl;
	int top = n->L - 1, C = n->c[top], T = n->hl[top] * n->wl[top];

	dm_groupnorm_forward(n->an, n->am, n->ar, in, DM_P(m, n->anw),
	    DM_P(m, n->anb), B, C, T, n->G, GN_EPS);
	to_tokens(n->tok, n->an, B, C, T);
	dm_linear_forward(n->qkv, n->tok, DM_P(m, n->qw), DM_P(m, n->qb), B * T,
	    C, 3 * C);
	dm_attention_forward(n->ao, n->att, n->qkv, B, T, C, n->NH);
	dm_linear_forward(n->pr, n->ao, DM_P(m, n->pw), DM_P(m, n->pb), B * T,
	    C, C);
	memcpy(n->aout, in, (size_t)B * C * T * sizeof(float));
	from_tokens_add(n->aout, n->pr, B, C, T);
}

static void
attn_backward(struct dm_model *m, const float *in, int B)
{
	struct unet *n = m->impl;
	struct dm_acts *a = &n->a;
	int top = n->L - 1, C = n->c[top], T = n->hl[top] * n->wl[top];
	float *dout = dm_acts_grad(a, n->aout), *din = dm_acts_grad(a, in);
	size_t N = (size_t)B * C * T;

	for (size_t i = 0; i < N; i++)
		din[i] += dout[i];
	to_tokens(dm_acts_grad(a, n->pr), dout, B, C, T);
	dm_linear_backward(dm_acts_grad(a, n->ao), DM_G(m, n->pw),
	    DM_G(m, n->pb), dm_acts_grad(a, n->pr), n->ao, DM_P(m, n->pw),
	    B * T, C, C);
	dm_attention_backward(dm_acts_grad(a, n->qkv), dm_acts_grad(a, n->ao),
	    n->qkv, n->att, B, T, C, n->NH, a->work);
	dm_linear_backward(dm_acts_grad(a, n->tok), DM_G(m, n->qw),
	    DM_G(m, n->qb), dm_acts_grad(a, n->qkv), n->tok, DM_P(m, n->qw),
	    B * T, C, 3 * C);
	from_tokens_add(dm_acts_grad(a, n->an), dm_acts_grad(a, n->tok), B, C,
	    T);
	dm_groupnorm_backward(din, DM_G(m, n->anw), DM_G(m, n->anb),
	    dm_acts_grad(a, n->an), in, DM_P(m, n->anw), n->am, n->ar, B, C, T,
	    n->G);
}

/* e and se = SiLU(e) from t (and y) */
static void
embed_forward(struct dm_model *m, const float *t, const int64_t *y, int B)
{
	struct unet *n = m->impl;
	size_t BE = (size_t)B * n->E;

	dm_timestep_embedding(n->ts, t, B, n->T, 1000);
	dm_linear_forward(n->e0, n->ts, DM_P(m, n->t0w), DM_P(m, n->t0b), B,
	    n->T, n->E);
	dm_silu_forward(n->e1, n->e0, BE);
	dm_linear_forward(n->e, n->e1, DM_P(m, n->t2w), DM_P(m, n->t2b), B,
	    n->E, n->E);
	if (n->cond) {
		dm_embedding_forward(n->ce, y, DM_P(m, n->cls), B, n->E);
		for (size_t i = 0; i < BE; i++)
			n->e[i] += n->ce[i];
	}
	dm_silu_forward(n->se, n->e, BE);
}

/* The classifier head from os = SiLU(out_norm(h)) (B, C, T): pool, then
 * the linear head. */
static void
head_forward(struct dm_model *m, float *out, const float *os, int B)
{
	struct unet *n = m->impl;
	int top = n->L - 1, C = n->c[top], T = n->hl[top] * n->wl[top];

	for (size_t i = 0; i < (size_t)B * C; i++) {
		float s = 0;
		for (int k = 0; k < T; k++)
			s += os[i * T + k];
		n->pool[i] = s / (float)T;
	}
	dm_linear_forward(out, n->pool, DM_P(m, n->ow), DM_P(m, n->ob), B, C,
	    n->K);
}

/* Inference: the same values as the training forward (bit for bit), in
 * the buffers of struct eval. */
static int
unet_eval(struct dm_model *m, float *out, const float *x, int B)
{
	struct unet *n = m->impl;
	struct eval *e = &n->ev;

	if (eval_reserve(n, B) == -1)
		return -1;
	size_t cap = (size_t)e->cap;
	float *s1 = e->base, *s2 = s1 + e->s1 * cap, *cat = s2 + e->s2 * cap;
	float *p = cat + e->cat * cap, *q = p + e->p * cap, *sk = q + e->q * cap;
	float *work = n->a.work, *o;
	int nr = n->nres, top = n->L - 1, cur = n->c[top];
	const float *h;

	dm_conv2d_forward(p, x, DM_P(m, n->ciw), DM_P(m, n->cib), B, n->C,
	    n->H, n->W, m->cfg.ch, 3, 1, work);
	h = p;
	for (int l = 0; l < n->L; l++) {
		for (int j = 0; j < nr; j++) {
			struct resblock *r = &n->down[l * nr + j];
			n->evskip[l * nr + j] = sk;
			res_eval(m, r, sk, h, s1, s2, B);
			h = sk;
			sk += (size_t)r->cout * r->H * r->W * cap;
		}
		if (l < top) {
			dm_conv2d_forward(p, h, DM_P(m, n->dw[l]),
			    DM_P(m, n->db[l]), B, n->c[l], n->hl[l], n->wl[l],
			    n->c[l], 3, 2, work);
			h = p;
		}
	}
	o = h == p ? q : p;
	res_eval(m, &n->mid1, o, h, s1, s2, B);
	h = o;
	if (n->attn) {
		attn_forward(m, h, B);
		h = n->aout;
	}
	o = h == p ? q : p;
	res_eval(m, &n->mid2, o, h, s1, s2, B);
	h = o;
	if (n->classifier) {
		int T = n->hl[top] * n->wl[top];
		dm_groupnorm_silu_forward(NULL, s1, n->om, n->orr, h,
		    DM_P(m, n->onw), DM_P(m, n->onb), B, cur, T, n->G, GN_EPS);
		head_forward(m, out, s1, B);
		return 0;
	}
	for (int l = top; l >= 0; l--) {
		int hw = n->hl[l] * n->wl[l];
		for (int j = 0; j < nr; j++) {
			dm_concat_forward(cat, h, n->evskip[l * nr + nr - 1 - j],
			    B, cur, n->c[l], hw);
			res_eval(m, &n->up[l * nr + j], p, cat, s1, s2, B);
			h = p;
			cur = n->c[l];
		}
		if (l > 0) {
			dm_upsample2_forward(q, h, B, cur, n->hl[l], n->wl[l]);
			dm_conv2d_forward(p, q, DM_P(m, n->uw[l]),
			    DM_P(m, n->ub[l]), B, cur, n->hl[l - 1],
			    n->wl[l - 1], cur, 3, 1, work);
			h = p;
		}
	}
	dm_groupnorm_silu_forward(NULL, s1, n->om, n->orr, h, DM_P(m, n->onw),
	    DM_P(m, n->onb), B, n->c[0], n->H * n->W, n->G, GN_EPS);
	dm_conv2d_forward(out, s1, DM_P(m, n->ow), DM_P(m, n->ob), B, n->c[0],
	    n->H, n->W, n->C, 3, 1, work);
	return 0;
}

int
dm_unet_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train)
{
	struct unet *n = m->impl;
	int nr = n->nres, top = n->L - 1;
	const float *h;

	if ((int64_t)B * n->H * n->W > INT_MAX)
		return dm_seterr("model: batch of %d too large for %dx%d images",
		    B, n->H, n->W);
	embed_forward(m, t, y, B);
	if (!train)
		return unet_eval(m, out, x, B);
	memcpy(n->x, x, (size_t)B * n->C * n->H * n->W * sizeof(float));
	dm_conv2d_forward(n->hin, n->x, DM_P(m, n->ciw), DM_P(m, n->cib), B,
	    n->C, n->H, n->W, m->cfg.ch, 3, 1, n->a.work);
	h = n->hin;
	for (int l = 0; l < n->L; l++) {
		for (int j = 0; j < nr; j++) {
			res_forward(m, &n->down[l * nr + j], h, B);
			h = n->down[l * nr + j].out;
		}
		if (l < top) {
			dm_conv2d_forward(n->dconv[l], h, DM_P(m, n->dw[l]),
			    DM_P(m, n->db[l]), B, n->c[l], n->hl[l], n->wl[l],
			    n->c[l], 3, 2, n->a.work);
			h = n->dconv[l];
		}
	}
	res_forward(m, &n->mid1, h, B);
	h = n->mid1.out;
	if (n->attn) {
		attn_forward(m, h, B);
		h = n->aout;
	}
	res_forward(m, &n->mid2, h, B);
	h = n->mid2.out;
	if (n->classifier) {
		int C = n->c[top], T = n->hl[top] * n->wl[top];
		dm_groupnorm_forward(n->on, n->om, n->orr, h, DM_P(m, n->onw),
		    DM_P(m, n->onb), B, C, T, n->G, GN_EPS);
		dm_silu_forward(n->os, n->on, (size_t)B * C * T);
		head_forward(m, out, n->os, B);
		return 0;
	}
	int cur = n->c[top];
	for (int l = top; l >= 0; l--) {
		int hw = n->hl[l] * n->wl[l];
		for (int j = 0; j < nr; j++) {
			struct resblock *r = &n->up[l * nr + j];
			const float *skip = n->down[l * nr + nr - 1 - j].out;
			dm_concat_forward(n->cat[l * nr + j], h, skip, B, cur,
			    n->c[l], hw);
			res_forward(m, r, n->cat[l * nr + j], B);
			h = r->out;
			cur = n->c[l];
		}
		if (l > 0) {
			dm_upsample2_forward(n->uup[l], h, B, cur, n->hl[l],
			    n->wl[l]);
			dm_conv2d_forward(n->uconv[l], n->uup[l], DM_P(m, n->uw[l]),
			    DM_P(m, n->ub[l]), B, cur, n->hl[l - 1], n->wl[l - 1],
			    cur, 3, 1, n->a.work);
			h = n->uconv[l];
		}
	}
	dm_groupnorm_silu_forward(n->on, n->os, n->om, n->orr, h,
	    DM_P(m, n->onw), DM_P(m, n->onb), B, n->c[0], n->H * n->W, n->G,
	    GN_EPS);
	dm_conv2d_forward(out, n->os, DM_P(m, n->ow), DM_P(m, n->ob), B,
	    n->c[0], n->H, n->W, n->C, 3, 1, n->a.work);
	return 0;
}

void
dm_unet_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct unet *n = m->impl;
	struct dm_acts *a = &n->a;
	int B = a->B, nr = n->nres, top = n->L - 1;
	size_t BE = (size_t)B * n->E;
	const float *h;

	if (n->classifier) {
		int C = n->c[top], T = n->hl[top] * n->wl[top];
		float *dpool = dm_acts_grad(a, n->pool);
		float *dos = dm_acts_grad(a, n->os);
		dm_linear_backward(dpool, DM_G(m, n->ow), DM_G(m, n->ob), dout,
		    n->pool, DM_P(m, n->ow), B, C, n->K);
		for (size_t i = 0; i < (size_t)B * C; i++)
			for (int k = 0; k < T; k++)
				dos[i * T + k] += dpool[i] / (float)T;
		dm_silu_backward(dm_acts_grad(a, n->on), dos, n->on,
		    (size_t)B * C * T);
		dm_groupnorm_backward(dm_acts_grad(a, n->mid2.out),
		    DM_G(m, n->onw), DM_G(m, n->onb), dm_acts_grad(a, n->on),
		    n->mid2.out, DM_P(m, n->onw), n->om, n->orr, B, C, T, n->G);
	} else {
		/* h is the input of the output layers: the last up block's or
		 * up conv's output */
		h = n->up[nr - 1].out;
		dm_conv2d_backward(dm_acts_grad(a, n->os), DM_G(m, n->ow),
		    DM_G(m, n->ob), dout, n->os, DM_P(m, n->ow), B, n->c[0],
		    n->H, n->W, n->C, 3, 1, a->work);
		dm_groupnorm_silu_backward(dm_acts_grad(a, h), DM_G(m, n->onw),
		    DM_G(m, n->onb), dm_acts_grad(a, n->on),
		    dm_acts_grad(a, n->os), n->on, h, DM_P(m, n->onw), n->om,
		    n->orr, B, n->c[0], n->H * n->W, n->G);
		for (int l = 0; l <= top; l++) {
			int cur = n->c[l];
			if (l > 0) {
				/* up conv: input uup[l] at level l - 1, from
				 * the last block of level l */
				const float *src = n->up[l * nr + nr - 1].out;
				dm_conv2d_backward(dm_acts_grad(a, n->uup[l]),
				    DM_G(m, n->uw[l]), DM_G(m, n->ub[l]),
				    dm_acts_grad(a, n->uconv[l]), n->uup[l],
				    DM_P(m, n->uw[l]), B, cur, n->hl[l - 1],
				    n->wl[l - 1], cur, 3, 1, a->work);
				dm_upsample2_backward(dm_acts_grad(a, src),
				    dm_acts_grad(a, n->uup[l]), B, cur,
				    n->hl[l], n->wl[l]);
			}
			for (int j = nr - 1; j >= 0; j--) {
				struct resblock *r = &n->up[l * nr + j];
				int prev = r->cin - n->c[l];
				const float *hin = j > 0 ?
				    n->up[l * nr + j - 1].out :
				    l == top ? n->mid2.out : n->uconv[l + 1];
				const float *skip =
				    n->down[l * nr + nr - 1 - j].out;
				res_backward(m, r, B);
				dm_concat_backward(dm_acts_grad(a, hin),
				    dm_acts_grad(a, skip),
				    dm_acts_grad(a, n->cat[l * nr + j]), B, prev,
				    n->c[l], n->hl[l] * n->wl[l]);
			}
		}
	}
	res_backward(m, &n->mid2, B);
	if (n->attn)
		attn_backward(m, n->mid1.out, B);
	res_backward(m, &n->mid1, B);
	for (int l = top; l >= 0; l--) {
		if (l < top) {
			const float *src = n->down[l * nr + nr - 1].out;
			dm_conv2d_backward(dm_acts_grad(a, src), DM_G(m, n->dw[l]),
			    DM_G(m, n->db[l]), dm_acts_grad(a, n->dconv[l]), src,
			    DM_P(m, n->dw[l]), B, n->c[l], n->hl[l], n->wl[l],
			    n->c[l], 3, 2, a->work);
		}
		for (int j = nr - 1; j >= 0; j--)
			res_backward(m, &n->down[l * nr + j], B);
	}
	dm_conv2d_backward(dx ? dm_acts_grad(a, n->x) : NULL, DM_G(m, n->ciw),
	    DM_G(m, n->cib), dm_acts_grad(a, n->hin), n->x, DM_P(m, n->ciw), B,
	    n->C, n->H, n->W, m->cfg.ch, 3, 1, a->work);
	if (dx != NULL)
		memcpy(dx, dm_acts_grad(a, n->x),
		    (size_t)B * n->C * n->H * n->W * sizeof(float));
	dm_silu_backward(dm_acts_grad(a, n->e), dm_acts_grad(a, n->se), n->e,
	    BE);
	if (n->cond)
		dm_embedding_backward(DM_G(m, n->cls), dm_acts_grad(a, n->e),
		    a->y, B, n->E);
	dm_linear_backward(dm_acts_grad(a, n->e1), DM_G(m, n->t2w),
	    DM_G(m, n->t2b), dm_acts_grad(a, n->e), n->e1, DM_P(m, n->t2w), B,
	    n->E, n->E);
	dm_silu_backward(dm_acts_grad(a, n->e0), dm_acts_grad(a, n->e1), n->e0,
	    BE);
	dm_linear_backward(NULL, DM_G(m, n->t0w), DM_G(m, n->t0b),
	    dm_acts_grad(a, n->e0), n->ts, DM_P(m, n->t0w), B, n->T, n->E);
}

void
dm_unet_free(struct dm_model *m)
{
	struct unet *n = m->impl;

	if (n == NULL)
		return;
	free(n->down);
	free(n->up);
	free(n->cat);
	free(n->evskip);
	free(n->ev.base);
	free(n);
	m->impl = NULL;
}

/* The classifier head's input, the pooled vector (B, c_{L-1}) of the last
 * forward; NULL for a field head. */
const float *
dm_unet_features(const struct dm_model *m, size_t *dim)
{
	const struct unet *n = m->impl;

	if (!n->classifier)
		return NULL;
	*dim = (size_t)n->c[n->L - 1];
	return n->pool;
}
