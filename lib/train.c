/* train.c — the training loop of SPEC.md §5: batches, noising, targets,
 * weighted losses, the AdamW update, EMA, validation, checkpoints, and a
 * minimal Euler sampler for checks.  The draws are documented in
 * dm_train.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "dm_lora.h"
#include "dm_ot.h"
#include "dm_reflow.h"
#include "dm_rng.h"
#include "dm_train.h"

#define VAL_ROW0 (UINT64_C(1) << 47)   /* global rows of validation */
#define LOSS_EMA_DECAY 0.98

_Static_assert(sizeof(float) == 4, "F32 tensors are floats");

static int
is_field(const struct dm_trainer *tr)
{
	return tr->o.objective != DM_OBJECTIVE_CLASSIFIER;
}

static void
free_batch(struct dm_trainer *tr)
{
	free(tr->x0);
	free(tr->eps);
	free(tr->xt);
	free(tr->t);
	free(tr->tgt);
	free(tr->out);
	free(tr->dout);
	free(tr->w);
	free(tr->rowloss);
	free(tr->y);
	free(tr->idx);
}

static int
alloc_batch(struct dm_trainer *tr, int B)
{
	size_t d = tr->data.d, bd, bo, nout = dm_model_out_size(tr->m);

	if (dm_mul_size((size_t)B, d, &bd) == -1 ||
	    dm_mul_size((size_t)B, nout, &bo) == -1 ||
	    dm_mul_size(bd, sizeof(float), &bd) == -1 ||
	    dm_mul_size(bo, sizeof(float), &bo) == -1)
		return -1;
	tr->x0 = dm_malloc(bd);
	tr->eps = dm_malloc(bd);
	tr->xt = dm_malloc(bd);
	tr->tgt = dm_malloc(bo);
	tr->out = dm_malloc(bo);
	tr->dout = dm_malloc(bo);
	tr->t = dm_malloc((size_t)B * sizeof *tr->t);
	tr->w = dm_malloc((size_t)B * sizeof *tr->w);
	tr->rowloss = dm_malloc((size_t)B * sizeof *tr->rowloss);
	tr->y = dm_malloc((size_t)B * sizeof *tr->y);
	tr->idx = dm_malloc((size_t)B * sizeof *tr->idx);
	if (!tr->x0 || !tr->eps || !tr->xt || !tr->tgt || !tr->out ||
	    !tr->dout || !tr->t || !tr->w || !tr->rowloss || !tr->y || !tr->idx)
		return -1;
	tr->cap = B;
	return 0;
}

static int
check_data(const struct dm_model *m, const struct dm_train_opts *o,
    const struct dm_train_data *d)
{
	int K = m->cfg.classes;

	if (d->d != dm_model_in_size(m))
		return dm_seterr("data rows have %zu elements, the model takes %zu",
		    d->d, dm_model_in_size(m));
	if (d->n < 1 || d->nrows < 1)
		return dm_seterr("no rows to train on");
	for (int64_t i = 0; i < d->nrows; i++)
		if (d->rows[i] < 0 || d->rows[i] >= d->n)
			return dm_seterr("training row %lld out of range",
			    (long long)d->rows[i]);
	if (d->src != NULL && d->nsrc < 1)
		return dm_seterr("the source set is empty");
	if (o->coupling == DM_COUPLING_OT) {
		if (o->objective != DM_OBJECTIVE_FLOW)
			return dm_seterr("the OT coupling needs the flow "
			    "objective");
		if (d->x1 != NULL)
			return dm_seterr("the OT coupling pairs the rows itself; "
			    "these data are paired already");
		if (d->d > INT32_MAX)
			return dm_seterr("the OT coupling takes rows of at most "
			    "2^31 - 1 elements");
	}
	if (o->objective == DM_OBJECTIVE_CLASSIFIER) {
		if (m->cfg.head != DM_HEAD_CLASSIFIER || K < 2)
			return dm_seterr("the classifier objective needs a "
			    "classifier head with at least 2 classes");
		if (d->x1 != NULL || d->src != NULL)
			return dm_seterr("the classifier objective takes no "
			    "source");
	} else if (o->objective == DM_OBJECTIVE_CONSISTENCY) {
		if (m->cfg.head != DM_HEAD_FIELD || !m->cfg.cm ||
		    m->cfg.pred != DM_PRED_X0 || K > 0)
			return dm_seterr("the consistency objective needs an "
			    "unconditional x0 model with cm=1");
		if (d->x1 != NULL || d->src != NULL)
			return dm_seterr("the consistency objective takes no "
			    "source");
	} else if (m->cfg.head != DM_HEAD_FIELD ||
	    (int)m->cfg.pred != (int)o->objective)
		return dm_seterr("the model predicts %s, the objective is %s",
		    m->cfg.head == DM_HEAD_FIELD ? dm_pred_name(m->cfg.pred) :
		    "class logits", dm_objective_name(o->objective));
	if (K > 0) {
		if (d->y == NULL)
			return dm_seterr("a model with classes needs labels y");
		for (int64_t i = 0; i < d->n; i++)
			if (d->y[i] < 0 || d->y[i] >= K)
				return dm_seterr("y[%lld] = %lld is outside 0..%d",
				    (long long)i, (long long)d->y[i], K - 1);
	}
	if (!(o->lr > 0) || o->batch < 1 || o->steps < 0 || o->warmup < 0 ||
	    !(o->ema >= 0 && o->ema < 1) || !(o->clip >= 0) ||
	    !(o->wd >= 0) || !(o->cfg_drop >= 0 && o->cfg_drop <= 1))
		return dm_seterr("bad training options");
	return 0;
}

struct dm_trainer *
dm_trainer_new(struct dm_model *m, const struct dm_train_opts *o,
    const struct dm_train_data *data)
{
	struct dm_trainer *tr;
	size_t nb;

	if (check_data(m, o, data) == -1)
		return NULL;
	if (dm_mul_size(m->nparams, sizeof(float), &nb) == -1)
		return NULL;
	if ((tr = dm_calloc(1, sizeof *tr)) == NULL)
		return NULL;
	tr->o = *o;
	tr->m = m;
	tr->data = *data;
	tr->perm_epoch = -1;
	tr->adam_m = dm_calloc(m->nparams ? m->nparams : 1, sizeof(float));
	tr->adam_v = dm_calloc(m->nparams ? m->nparams : 1, sizeof(float));
	tr->ema = dm_malloc(nb ? nb : 1);
	tr->perm = dm_malloc((size_t)data->nrows * sizeof *tr->perm);
	if (!tr->adam_m || !tr->adam_v || !tr->ema || !tr->perm ||
	    alloc_batch(tr, o->batch) == -1) {
		dm_trainer_free(tr);
		return NULL;
	}
	memcpy(tr->ema, m->params, nb);
	return tr;
}

void
dm_trainer_free(struct dm_trainer *tr)
{
	if (tr == NULL)
		return;
	free_batch(tr);
	dm_distill_free(tr->cm);
	free(tr->adam_m);
	free(tr->adam_v);
	free(tr->ema);
	free(tr->perm);
	free(tr);
}

int
dm_trainer_set_lora(struct dm_trainer *tr, struct dm_lora *l)
{
	float *am, *av, *ema;

	if (tr->step != 0 || tr->lora != NULL)
		return dm_seterr("an adapter is set before the first step, once");
	am = dm_calloc(l->n ? l->n : 1, sizeof(float));
	av = dm_calloc(l->n ? l->n : 1, sizeof(float));
	ema = dm_malloc((l->n ? l->n : 1) * sizeof(float));
	if (am == NULL || av == NULL || ema == NULL ||
	    dm_lora_attach(l, tr->m) == -1) {
		free(am);
		free(av);
		free(ema);
		return -1;
	}
	memcpy(ema, l->w, l->n * sizeof(float));
	free(tr->adam_m);
	free(tr->adam_v);
	free(tr->ema);
	tr->adam_m = am;
	tr->adam_v = av;
	tr->ema = ema;
	tr->lora = l;
	return 0;
}

/* What the optimizer updates: the weights, or an adapter's factors. */
static float *
trainable(const struct dm_trainer *tr, float **grad, size_t *n)
{
	if (tr->lora != NULL) {
		if (grad != NULL)
			*grad = tr->lora->g;
		*n = tr->lora->n;
		return tr->lora->w;
	}
	if (grad != NULL)
		*grad = tr->m->grads;
	*n = tr->m->nparams;
	return tr->m->params;
}

/* Data index of global row g (training order). */
static int64_t
train_row(struct dm_trainer *tr, uint64_t g)
{
	int64_t n = tr->data.nrows, e = (int64_t)(g / (uint64_t)n);

	if (e != tr->perm_epoch) {
		dm_train_epoch_perm(tr->perm, n, tr->o.seed, e);
		tr->perm_epoch = e;
	}
	return tr->data.rows[tr->perm[g % (uint64_t)n]];
}

/* Rows j of group [lo, hi) of the order ord (the rows of one class):
 * x1 re-paired with x0 by OT (see dm_train_couple).  xs, ys [m, d] and
 * pair [m] are work. */
static int
couple_group(float *x1, const float *x0, const int *ord, int m, int d,
    uint64_t seed, float *xs, float *ys, int64_t *pair)
{
	for (int k = 0; k < m; k++) {
		memcpy(xs + (size_t)k * d, x0 + (size_t)ord[k] * d,
		    (size_t)d * sizeof *xs);
		memcpy(ys + (size_t)k * d, x1 + (size_t)ord[k] * d,
		    (size_t)d * sizeof *ys);
	}
	if (m <= DM_COUPLING_EXACT_MAX) {
		if (dm_ot_assign(xs, ys, m, d, 2, pair, NULL) == -1)
			return -1;
	} else {
		struct dm_ot_opts o;
		struct dm_ot_result r;
		double *f = dm_malloc((size_t)m * sizeof *f);
		double *g = dm_malloc((size_t)m * sizeof *g);
		int rc = -1;
		dm_ot_opts_defaults(&o);
		o.p = 2;
		o.eps_rel = DM_COUPLING_EPS_REL;
		o.threads = dm_threads_get();
		if (f != NULL && g != NULL &&
		    dm_ot_sinkhorn(xs, NULL, m, ys, NULL, m, d, &o, &r, f,
		    g) != -1)
			rc = dm_ot_plan(xs, NULL, m, ys, NULL, m, d, 2, r.eps, f,
			    g, NULL, NULL, pair, seed);
		free(f);
		free(g);
		if (rc == -1)
			return -1;
	}
	for (int k = 0; k < m; k++)
		memcpy(x1 + (size_t)ord[k] * d, ys + (size_t)pair[k] * d,
		    (size_t)d * sizeof *x1);
	return 0;
}

struct couple_key {
	int64_t y;
	int j;
};

static int
couple_cmp(const void *a, const void *b)
{
	const struct couple_key *p = a, *q = b;

	if (p->y != q->y)
		return (p->y > q->y) - (p->y < q->y);
	return (p->j > q->j) - (p->j < q->j);
}

int
dm_train_couple(float *x1, const float *x0, const int64_t *y, int B,
    size_t d, uint64_t seed)
{
	struct couple_key *key = NULL;
	float *xs, *ys;
	int64_t *pair;
	int *ord, rc = 0;

	if (B < 1 || d < 1 || d > INT32_MAX)
		return dm_seterr("OT coupling: bad batch (%d rows of %zu)", B, d);
	if (B > DM_COUPLING_EXACT_MAX && seed == 0)
		return dm_seterr("OT coupling: a batch above %d rows needs a "
		    "seed", DM_COUPLING_EXACT_MAX);
	xs = dm_malloc((size_t)B * d * sizeof *xs);
	ys = dm_malloc((size_t)B * d * sizeof *ys);
	pair = dm_malloc((size_t)B * sizeof *pair);
	ord = dm_malloc((size_t)B * sizeof *ord);
	if (xs == NULL || ys == NULL || pair == NULL || ord == NULL) {
		rc = -1;
		goto out;
	}
	for (int j = 0; j < B; j++)
		ord[j] = j;
	if (y != NULL) {
		/* rows by class, in row order within a class */
		if ((key = dm_malloc((size_t)B * sizeof *key)) == NULL) {
			rc = -1;
			goto out;
		}
		for (int j = 0; j < B; j++) {
			key[j].y = y[j];
			key[j].j = j;
		}
		qsort(key, (size_t)B, sizeof *key, couple_cmp);
		for (int j = 0; j < B; j++)
			ord[j] = key[j].j;
	}
	for (int lo = 0, hi; lo < B && rc == 0; lo = hi) {
		hi = lo + 1;
		while (hi < B && (y == NULL || y[ord[hi]] == y[ord[lo]]))
			hi++;
		rc = couple_group(x1, x0, ord + lo, hi - lo, (int)d, seed, xs,
		    ys, pair);
	}
out:
	free(key);
	free(xs);
	free(ys);
	free(pair);
	free(ord);
	return rc;
}

/* The seed of the OT pairing's draws for the batch from global row g0
 * (dm_train.h). */
static uint64_t
couple_seed(uint64_t seed, uint64_t g0)
{
	uint64_t s = dm_noise_stream(DM_NOISE_TRAIN, g0);

	return ((uint64_t)dm_rng_u32(seed, s, dm_noise_index(1, 0)) << 32 |
	    dm_rng_u32(seed, s, dm_noise_index(1, 1))) | 1;
}

/* Fill x0, eps, xt, t, w, y and the target for B rows: data row idx[j],
 * global row g0 + j; drop = label dropout on.  With the OT coupling the
 * source rows (eps) are re-paired with the data rows before x_t is made;
 * the pairing is a function of the batch, so it draws nothing that other
 * rows' draws depend on. */
static int
make_batch(struct dm_trainer *tr, int B, uint64_t g0, int drop)
{
	const struct dm_train_data *D = &tr->data;
	const struct dm_schedule *s = &tr->m->sched;
	size_t d = D->d;
	int K = tr->m->cfg.classes, field = is_field(tr);
	uint64_t seed = tr->o.seed;

	#pragma omp parallel for schedule(static)
	for (int j = 0; j < B; j++) {
		uint64_t g = g0 + (uint64_t)j;
		int64_t i = tr->idx[j];
		float *x0 = tr->x0 + (size_t)j * d, *eps = tr->eps + (size_t)j * d;

		memcpy(x0, D->x0 + (size_t)i * d, d * sizeof *x0);
		if (D->x1 != NULL)
			memcpy(eps, D->x1 + (size_t)i * d, d * sizeof *eps);
		else if (D->src != NULL) {
			struct dm_rng r;
			dm_rng_init(&r, seed, dm_noise_stream(DM_NOISE_TRAIN, g));
			r.index = 2;
			uint64_t k = dm_rng_next_below(&r, (uint64_t)D->nsrc);
			memcpy(eps, D->src + (size_t)k * d, d * sizeof *eps);
		} else
			dm_rng_normal(eps, d, seed,
			    dm_noise_stream(DM_NOISE_EPS, g), 0);
		tr->y[j] = D->y != NULL ? D->y[i] : 0;
	}
	if (tr->o.coupling == DM_COUPLING_OT &&
	    dm_train_couple(tr->eps, tr->x0, K > 0 && D->y != NULL ? tr->y :
	    NULL, B, d, couple_seed(seed, g0)) == -1)
		return -1;
	#pragma omp parallel for schedule(static)
	for (int j = 0; j < B; j++) {
		uint64_t g = g0 + (uint64_t)j;
		uint64_t tstream = dm_noise_stream(DM_NOISE_TRAIN, g);
		float *x0 = tr->x0 + (size_t)j * d, *eps = tr->eps + (size_t)j * d;
		float *xt = tr->xt + (size_t)j * d;
		struct dm_sched_point p;

		double t = dm_train_draw_t(&tr->o, s, seed, g);
		dm_schedule_at(s, t, &p);
		for (size_t k = 0; k < d; k++)
			xt[k] = (float)(p.alpha * x0[k] + p.sigma * eps[k]);
		tr->t[j] = (float)t;
		tr->w[j] = (float)dm_train_weight(tr->o.weighting, tr->o.gamma,
		    tr->o.objective, &p);
		if (field)
			dm_pred_from_x0_eps((enum dm_pred)tr->o.objective, &p, x0,
			    eps, tr->tgt + (size_t)j * d, d);
		if (field && K > 0 && drop && tr->o.cfg_drop > 0) {
			float u;
			dm_rng_uniform(&u, 1, seed, tstream, 0);
			if (u < tr->o.cfg_drop)
				tr->y[j] = K;	/* the null class */
		}
	}
	return 0;
}

/* Per-row losses of the forward output and, when dout is wanted, the
 * gradient of the batch mean. */
static void
row_losses(struct dm_trainer *tr, int B, int want_dout, double scale)
{
	size_t no = dm_model_out_size(tr->m);
	int field = is_field(tr);

	#pragma omp parallel for schedule(static)
	for (int j = 0; j < B; j++) {
		const float *o = tr->out + (size_t)j * no;
		float *g = tr->dout + (size_t)j * no;
		double l = 0;
		if (field) {
			const float *y = tr->tgt + (size_t)j * no;
			double w = tr->w[j];
			for (size_t k = 0; k < no; k++) {
				double e = (double)o[k] - y[k];
				l += e * e;
				if (want_dout)
					g[k] = (float)(2 * w * e * scale / (double)no);
			}
			l = w * l / (double)no;
		} else {
			double mx = o[0], z = 0;
			for (size_t k = 1; k < no; k++)
				mx = o[k] > mx ? o[k] : mx;
			for (size_t k = 0; k < no; k++)
				z += exp(o[k] - mx);
			l = mx + log(z) - o[tr->y[j]];
			if (want_dout)
				for (size_t k = 0; k < no; k++)
					g[k] = (float)((exp(o[k] - mx) / z -
					    ((int64_t)k == tr->y[j])) * scale);
		}
		tr->rowloss[j] = l;
	}
}

static const int64_t *
model_labels(const struct dm_trainer *tr)
{
	return is_field(tr) && tr->m->cfg.classes > 0 ? tr->y : NULL;
}

int
dm_trainer_step(struct dm_trainer *tr)
{
	struct dm_model *m = tr->m;
	int B = tr->o.batch;
	uint64_t g0 = (uint64_t)tr->step * (uint64_t)B;
	double loss = 0;

	if (tr->cm != NULL || tr->o.objective == DM_OBJECTIVE_CONSISTENCY)
		return dm_distill_step(tr);
	for (int j = 0; j < B; j++)
		tr->idx[j] = train_row(tr, g0 + (uint64_t)j);
	if (make_batch(tr, B, g0, 1) == -1)
		return dm_errctx("step %lld: ", (long long)tr->step + 1);
	m->dropout_seed = tr->o.seed;
	m->dropout_step = (uint64_t)tr->step;
	if (!tr->grad_zero || m->grads == NULL)
		dm_model_zero_grad(m);
	tr->grad_zero = 0;
	if (m->grads == NULL)
		return dm_seterr("the model has no gradient buffer");
	if (tr->lora != NULL)
		dm_lora_apply(tr->lora, m, NULL);
	if (dm_model_forward(m, tr->out, tr->xt, tr->t, model_labels(tr), B,
	    1) == -1)
		return -1;
	row_losses(tr, B, 1, 1.0 / B);
	for (int j = 0; j < B; j++)
		loss += tr->rowloss[j];
	loss /= B;
	if (!isfinite(loss))
		return dm_seterr("step %lld: the loss is %s", (long long)tr->step
		    + 1, isnan(loss) ? "NaN" : "Inf");
	if (dm_model_backward(m, NULL, tr->dout) == -1)
		return -1;
	if (tr->lora != NULL)
		dm_lora_backward(tr->lora, m);
	float *grad;
	size_t np;
	float *par = trainable(tr, &grad, &np);
	double gn = dm_grad_norm(grad, np);
	if (!isfinite(gn))
		return dm_seterr("step %lld: the gradients hold NaN or Inf",
		    (long long)tr->step + 1);
	double lr = dm_lr_at(&tr->o, tr->step);
	struct dm_optim_step os = {lr, tr->o.beta1, tr->o.beta2,
	    tr->o.adam_eps, tr->o.wd, tr->step + 1,
	    dm_grad_clip_scale(gn, tr->o.clip),
	    dm_ema_decay(tr->o.ema, tr->step)};
	/* also zeroes the gradients: the next step needs no pass for it */
	dm_optim_fused(par, grad, tr->adam_m, tr->adam_v, tr->ema, np, &os);
	tr->grad_zero = tr->lora == NULL;
	tr->loss_ema = tr->step == 0 ? loss :
	    LOSS_EMA_DECAY * tr->loss_ema + (1 - LOSS_EMA_DECAY) * loss;
	tr->loss = loss;
	tr->gnorm = gn;
	tr->lr = lr;
	tr->step++;
	return 0;
}

int
dm_trainer_eval(struct dm_trainer *tr, const int64_t *rows, int64_t n,
    double *loss)
{
	struct dm_model *m = tr->m;
	size_t nb = m->nparams * sizeof(float);
	float *keep;
	double sum = 0;
	int rc = 0;

	if (tr->cm != NULL || tr->o.objective == DM_OBJECTIVE_CONSISTENCY)
		return dm_seterr("no validation loss for distillation and "
		    "consistency training");
	if ((keep = dm_malloc(nb ? nb : 1)) == NULL)
		return -1;
	memcpy(keep, m->params, nb);
	if (tr->lora != NULL)
		dm_lora_apply(tr->lora, m, tr->ema);
	else
		memcpy(m->params, tr->ema, nb);
	for (int64_t i0 = 0; i0 < n && rc == 0; i0 += tr->cap) {
		int B = (int)(n - i0 < tr->cap ? n - i0 : tr->cap);
		for (int j = 0; j < B; j++) {
			if (rows[i0 + j] < 0 || rows[i0 + j] >= tr->data.n) {
				rc = dm_seterr("validation row out of range");
				break;
			}
			tr->idx[j] = rows[i0 + j];
		}
		if (rc == -1)
			break;
		rc = make_batch(tr, B, VAL_ROW0 + (uint64_t)i0, 0);
		if (rc == 0)
			rc = dm_model_forward(m, tr->out, tr->xt, tr->t,
			    model_labels(tr), B, 0);
		if (rc == 0) {
			row_losses(tr, B, 0, 0);
			for (int j = 0; j < B; j++)
				sum += tr->rowloss[j];
		}
	}
	memcpy(m->params, keep, nb);
	free(keep);
	if (rc == -1)
		return -1;
	*loss = n > 0 ? sum / (double)n : 0;
	if (!isfinite(*loss))
		return dm_seterr("the validation loss is %s",
		    isnan(*loss) ? "NaN" : "Inf");
	return 0;
}

static int
add_flat(struct dm_file *f, const char *name, const float *src, size_t n)
{
	int64_t shape[1] = {(int64_t)n};
	struct dm_tensor *t = dm_tensor_new(1, shape);

	if (t == NULL)
		return -1;
	memcpy(t->data, src, n * sizeof(float));
	if (dm_tensor_set_name(t, name) == -1 || dm_file_add(f, t) == -1) {
		dm_tensor_free(t);
		return -1;
	}
	return 0;
}

int
dm_trainer_checkpoint(const struct dm_trainer *tr, const char *fingerprint,
    struct dm_file *f)
{
	const struct dm_model *m = tr->m;
	char buf[64], cfg[4096];
	int64_t one[1] = {2};
	struct dm_tensor *st;

	snprintf(buf, sizeof buf, "%lld", (long long)tr->step);
	if (dm_model_config_format(&m->cfg, cfg, sizeof cfg) == -1)
		return -1;
	if (dm_file_meta_set(f, "dm.kind", "checkpoint") == -1 ||
	    dm_file_meta_set(f, "dm.arch", dm_arch_name(m->cfg.arch)) == -1 ||
	    dm_file_meta_set(f, "dm.config", cfg) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1 ||
	    dm_file_meta_set(f, "dm.train.options", fingerprint) == -1 ||
	    dm_file_meta_set(f, "dm.train.step", buf) == -1)
		return -1;
	snprintf(buf, sizeof buf, "%lld", (long long)tr->perm_epoch);
	if (dm_file_meta_set(f, "dm.train.epoch", buf) == -1)
		return -1;
	size_t np;
	const float *par = trainable(tr, NULL, &np);
	if (add_flat(f, "train.params", par, np) == -1 ||
	    add_flat(f, "train.adam_m", tr->adam_m, np) == -1 ||
	    add_flat(f, "train.adam_v", tr->adam_v, np) == -1 ||
	    add_flat(f, "train.ema", tr->ema, np) == -1)
		return -1;
	const float *cmt = dm_distill_target((struct dm_trainer *)tr);
	if (cmt != NULL && add_flat(f, "train.cm_target", cmt, m->nparams) == -1)
		return -1;
	if ((st = dm_tensor_new_dtype(DM_DTYPE_F64, 1, one)) == NULL)
		return -1;
	((double *)st->data)[0] = tr->loss_ema;
	((double *)st->data)[1] = tr->loss;
	if (dm_tensor_set_name(st, "train.state") == -1 ||
	    dm_file_add(f, st) == -1) {
		dm_tensor_free(st);
		return -1;
	}
	return 0;
}

static const float *
get_flat(const struct dm_file *f, const char *name, size_t n)
{
	struct dm_tensor *t = dm_file_get(f, name);

	if (t == NULL || t->dtype != DM_DTYPE_F32 || t->ndim != 1 ||
	    dm_tensor_numel(t) != n) {
		dm_seterr("checkpoint: %s is missing or not F32 [%zu]", name, n);
		return NULL;
	}
	return t->data;
}

int
dm_trainer_restore(struct dm_trainer *tr, const char *fingerprint,
    const struct dm_file *f)
{
	const char *kind = dm_file_meta(f, "dm.kind");
	const char *fp = dm_file_meta(f, "dm.train.options");
	const char *sstep = dm_file_meta(f, "dm.train.step");
	const float *p, *am, *av, *ema;
	struct dm_tensor *st;
	int64_t step;
	size_t n;
	float *dst = trainable(tr, NULL, &n);

	if (kind == NULL || strcmp(kind, "checkpoint") != 0)
		return dm_seterr("not a checkpoint (dm.kind is %s)",
		    kind ? kind : "missing");
	if (fp == NULL || strcmp(fp, fingerprint) != 0)
		return dm_seterr("the checkpoint was made with other options, "
		    "data or model configuration");
	if (sstep == NULL || dm_parse_int64(sstep, 0, tr->o.steps, &step) == -1)
		return dm_seterr("checkpoint: bad dm.train.step");
	if ((p = get_flat(f, "train.params", n)) == NULL ||
	    (am = get_flat(f, "train.adam_m", n)) == NULL ||
	    (av = get_flat(f, "train.adam_v", n)) == NULL ||
	    (ema = get_flat(f, "train.ema", n)) == NULL)
		return -1;
	st = dm_file_get(f, "train.state");
	if (st == NULL || st->dtype != DM_DTYPE_F64 || dm_tensor_numel(st) != 2)
		return dm_seterr("checkpoint: train.state is missing or not "
		    "F64 [2]");
	memcpy(dst, p, n * sizeof *p);
	memcpy(tr->adam_m, am, n * sizeof *am);
	memcpy(tr->adam_v, av, n * sizeof *av);
	memcpy(tr->ema, ema, n * sizeof *ema);
	float *cmt = dm_distill_target(tr);
	if (cmt != NULL) {
		const float *c = get_flat(f, "train.cm_target", n);
		if (c == NULL)
			return -1;
		memcpy(cmt, c, n * sizeof *c);
	}
	tr->loss_ema = ((double *)st->data)[0];
	tr->loss = ((double *)st->data)[1];
	tr->step = step;
	tr->perm_epoch = -1;
	return 0;
}

int
dm_train_quick_sample(struct dm_model *m, float *out, int64_t n, int steps,
    const int64_t *y, uint64_t seed)
{
	size_t d = dm_model_in_size(m), chunk = 1024, bd;
	float *x0 = NULL, *eps = NULL;
	int rc = 0;

	if (steps < 1 || n < 0 || m->cfg.head != DM_HEAD_FIELD)
		return dm_seterr("quick sample: bad arguments");
	if (dm_mul_size(chunk, d, &bd) == -1 ||
	    dm_mul_size(bd, sizeof(float), &bd) == -1)
		return -1;
	x0 = dm_malloc(bd);
	eps = dm_malloc(bd);
	if (x0 == NULL || eps == NULL) {
		free(x0);
		free(eps);
		return -1;
	}
	for (int64_t i0 = 0; i0 < n && rc == 0; i0 += (int64_t)chunk) {
		int B = (int)((size_t)(n - i0) < chunk ? n - i0 : (int64_t)chunk);
		float *x = out + (size_t)i0 * d;
		for (int j = 0; j < B; j++)
			dm_rng_normal(x + (size_t)j * d, d, seed,
			    dm_noise_stream(DM_NOISE_EPS, (uint64_t)(i0 + j)), 0);
		for (int k = 0; k < steps && rc == 0; k++) {
			double t = 1 - (double)k / steps, tn = 1 - (double)(k + 1) /
			    steps;
			struct dm_sched_point p;
			dm_schedule_at(&m->sched, dm_schedule_clamp(&m->sched, t), &p);
			rc = dm_model_denoise(m, x0, eps, x, t, y ? y + i0 : NULL, B);
			if (rc == -1)
				break;
			for (size_t e = 0; e < (size_t)B * d; e++)
				x[e] += (float)((tn - t) * (p.dalpha * x0[e] +
				    p.dsigma * eps[e]));
		}
	}
	free(x0);
	free(eps);
	return rc;
}
