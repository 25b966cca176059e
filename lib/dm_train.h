/* dm_train.h — training (SPEC.md §5): objectives, t sampling, loss
 * weighting, AdamW with clipping, warm-up and cosine/constant LR, EMA,
 * data order, checkpoints.  dm-train(1) is the tool around it.
 *
 * Every random draw is a pure function of (seed, step, row), so a run
 * resumed from a checkpoint continues bit-identically.  With B the batch
 * size, "global row" r = step * B + j for row j of a step's batch:
 *   data order   epoch e's permutation of the training rows: Fisher-Yates
 *                with the generator of dm_noise_stream(DM_NOISE_OTHER, e);
 *                batch row j of step s is perm_e[p], p = (s B + j) mod n,
 *                e = (s B + j) / n;
 *   t            uniform/normal draw 0 of dm_noise_stream(DM_NOISE_TIME, r);
 *   eps          normal floats 0..d-1 of dm_noise_stream(DM_NOISE_EPS, r);
 *   label drop   uniform draw 0 of dm_noise_stream(DM_NOISE_TRAIN, r);
 *   source row   (--source) dm_rng_next_below from index 2 of the same;
 *   OT pairing   (coupling ot, a group of more than DM_COUPLING_EXACT_MAX
 *                rows) the seed of dm_ot_plan's draws: raw draws
 *                2^32 and 2^32 + 1 of dm_noise_stream(DM_NOISE_TRAIN, g0)
 *                (high and low word, then | 1), g0 the batch's first row;
 *   validation   rows use global rows 2^47 + i (fixed t and eps);
 *   split        --val-frac: the generator of dm_noise_stream(
 *                DM_NOISE_OTHER, 2^47) shuffles 0..N-1, the first
 *                ceil(F N) rows are held out. */
#ifndef DM_TRAIN_H
#define DM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dm_io.h"
#include "dm_model.h"
#include "dm_predict.h"
#include "dm_schedule.h"

/* The five field objectives share dm_pred's numbering. */
enum dm_objective {
	DM_OBJECTIVE_EPS = DM_PRED_EPS,
	DM_OBJECTIVE_X0 = DM_PRED_X0,
	DM_OBJECTIVE_V = DM_PRED_V,
	DM_OBJECTIVE_FLOW = DM_PRED_FLOW,
	DM_OBJECTIVE_SCORE = DM_PRED_SCORE,
	DM_OBJECTIVE_CLASSIFIER,
	DM_OBJECTIVE_CONSISTENCY,  /* consistency training (dm_reflow.h) */
	DM_OBJECTIVE_COUNT
};
const char *dm_objective_name(enum dm_objective o);
int dm_objective_parse(const char *name, enum dm_objective *out);

enum dm_tsampling {
	DM_TSAMPLING_UNIFORM,      /* t ~ U(0, 1) */
	DM_TSAMPLING_DISCRETE,     /* t = i / T, i ~ U{1..T} (T = 1000 if continuous) */
	DM_TSAMPLING_LOGIT_NORMAL, /* t = sigmoid(m + s z), z ~ N(0, 1) */
	DM_TSAMPLING_FIXED         /* t = t_fixed (one-step distillation) */
};
enum dm_weighting {
	DM_WEIGHTING_AUTO,         /* score: sigma^2, else uniform */
	DM_WEIGHTING_UNIFORM,      /* 1 on the objective's own MSE */
	DM_WEIGHTING_SIGMA2,       /* sigma^2 (denoising score matching) */
	DM_WEIGHTING_SNR,          /* x0-form weight SNR */
	DM_WEIGHTING_MIN_SNR,      /* x0-form weight min(SNR, gamma) */
	DM_WEIGHTING_TRUNC_SNR     /* x0-form weight max(SNR, 1) */
};
enum dm_lr_schedule { DM_LR_COSINE, DM_LR_CONSTANT };
/* How a flow-matching batch pairs its source rows (x1) with its data rows
 * (x0), SPEC.md §5. */
enum dm_coupling {
	DM_COUPLING_INDEPENDENT,   /* as drawn */
	DM_COUPLING_OT             /* minibatch optimal transport (OT-CFM) */
};

/* Consistency training (SPEC §8; Song et al. 2023, "original"; Song &
 * Dhariwal 2023, "improved"): the target network, the distance, how the
 * noise level index is drawn, and the discretization curriculum N(k). */
enum dm_cm_target { DM_CM_TARGET_SG, DM_CM_TARGET_EMA };
enum dm_cm_curriculum { DM_CM_DOUBLING, DM_CM_SQRT, DM_CM_FIXED };
struct dm_cm_opts {
	enum dm_cm_target target;    /* sg (improved) or ema (original) */
	double mu0;                  /* ema: mu(k) = exp(s0 ln mu0 / N(k)) */
	int huber;                   /* 1: pseudo-Huber, 0: L2 */
	double huber_c;              /* < 0: 0.00054 sqrt(d) */
	int lognormal;               /* 1: lognormal index draw, 0: uniform */
	double p_mean, p_std;        /* -1.1, 2.0 */
	enum dm_cm_curriculum curriculum;
	int s0, s1;                  /* N(k) from s0 + 1 to s1 + 1 */
	int weight;                  /* 1: lambda = 1 / (sigma_{n+1} - sigma_n) */
};

struct dm_train_opts {
	enum dm_objective objective;
	enum dm_tsampling tsampling;
	double ln_m, ln_s;           /* logit-normal: 0, 1 */
	enum dm_weighting weighting;
	double gamma;                /* min-snr: 5 */
	double cfg_drop;             /* label drop probability (conditional) */
	int64_t steps;               /* 3000 */
	int batch;                   /* 256 */
	double lr;                   /* 2e-3 */
	double beta1, beta2, adam_eps;  /* 0.9, 0.999, 1e-8 */
	double wd;                   /* decoupled weight decay: 0 */
	int64_t warmup;              /* linear warm-up steps: 100 */
	enum dm_lr_schedule lr_schedule;  /* cosine */
	double clip;                 /* global-norm clip, 0 = off: 1 */
	double ema;                  /* EMA decay: 0.999 */
	uint64_t seed;
	double t_fixed;              /* tsampling fixed: this t */
	enum dm_coupling coupling;   /* independent */
	struct dm_cm_opts cm;        /* objective consistency */
};
void dm_train_opts_defaults(struct dm_train_opts *o);
/* "uniform", "discrete", "logit-normal[:m,s]", "fixed:t". */
int dm_tsampling_parse(const char *s, struct dm_train_opts *o);
/* "uniform", "sigma2", "snr", "min-snr[:gamma]", "trunc-snr". */
int dm_weighting_parse(const char *s, struct dm_train_opts *o);
/* The options that change results as one canonical text. */
int dm_train_opts_format(const struct dm_train_opts *o, char *buf, size_t n);

/* One AdamW update (Loshchilov & Hutter) of n parameters, t = 1, 2, ...:
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *   p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr wd p. */
void dm_adamw_step(float *p, const float *g, float *m, float *v, size_t n,
    double lr, double b1, double b2, double eps, double wd, int64_t t);
/* The learning rate of update number step + 1 (step = 0, 1, ...): linear
 * warm-up lr (step + 1) / warmup for step < warmup, then constant or
 * lr (1 + cos(pi (step - warmup) / (steps - warmup))) / 2. */
double dm_lr_at(const struct dm_train_opts *o, int64_t step);
/* The global L2 norm of g, summed in double in a fixed order (chunks of
 * at least 16384 values in order, then the chunks), whatever the thread
 * count. */
double dm_grad_norm(const float *g, size_t n);
/* The factor clip / norm when clip > 0 and norm > clip (finite), else 1. */
double dm_grad_clip_scale(double norm, double clip);
/* The norm of g (dm_grad_norm); when clip > 0 and the norm exceeds it, g
 * is scaled so that its norm is clip. */
double dm_grad_clip(float *g, size_t n, double clip);
/* ema = decay ema + (1 - decay) p. */
void dm_ema_update(float *ema, const float *p, size_t n, double decay);
/* One fused update: g times gscale (the clipping factor), the AdamW
 * update of p, m, v, then ema = decay ema + (1 - decay) p (ema may be
 * NULL), and g set to 0 for the next step's gradients.  The same numbers
 * as dm_grad_clip, dm_adamw_step and dm_ema_update in turn, in one pass. */
struct dm_optim_step {
	double lr, beta1, beta2, eps, wd;
	int64_t t;          /* update number: 1, 2, ... */
	double gscale;      /* dm_grad_clip_scale */
	double ema;         /* the EMA decay of this update (dm_ema_decay) */
};
void dm_optim_fused(float *p, float *g, float *m, float *v, float *ema,
    size_t n, const struct dm_optim_step *s);
/* The decay of update `step` (0, 1, ...) for a set decay D:
 * min(D, (1 + step)/(10 + step)), so that the EMA of a short run is not
 * stuck near the initial weights (the num_updates warm-up of
 * TensorFlow's ExponentialMovingAverage). */
double dm_ema_decay(double D, int64_t step);

/* t of global row r (see the top of this file), clamped to the schedule's
 * [t_min, t_max]. */
double dm_train_draw_t(const struct dm_train_opts *o,
    const struct dm_schedule *s, uint64_t seed, uint64_t r);
/* The weight on the objective's squared error at p.  SNR-family weights
 * are defined on the x0 error and carried to each kind by the factor
 * c = |x0 error|^2 / |kind error|^2: x0 1, eps sigma^2/alpha^2,
 * v sigma^2/(alpha^2+sigma^2)^2, flow sigma^2/D^2 (D = alpha sigma' -
 * sigma alpha'), score sigma^4/alpha^2.  So min-SNR-gamma for eps is
 * min(SNR, gamma)/SNR, for v min(SNR, gamma)/(SNR + 1) when
 * alpha^2 + sigma^2 = 1 (Hang et al. 2023). */
double dm_train_weight(enum dm_weighting w, double gamma,
    enum dm_objective obj, const struct dm_sched_point *p);
/* Epoch e's order of 0..n-1 into perm (see the top of this file). */
void dm_train_epoch_perm(int64_t *perm, int64_t n, uint64_t seed,
    int64_t epoch);
/* Minibatch optimal transport coupling (Tong et al. 2023, "Improving and
 * generalizing flow-based generative models with minibatch optimal
 * transport"; Pooladian et al. 2023): the source rows x1 [B, d] are
 * re-paired with the data rows x0 [B, d] by optimal transport for the
 * cost ||x0_j - x1_k||^2, in place, so that x1 row j then goes with x0
 * row j.  With labels y (or NULL) rows pair only within their class: the
 * source rows a class gets are then still a sample of the source.  A
 * group of at most DM_COUPLING_EXACT_MAX rows is paired by the exact
 * assignment (dm_ot_assign: x1 is permuted); a larger one by entropic OT,
 * eps = DM_COUPLING_EPS_REL times the largest cost (dm_ot_sinkhorn),
 * each data row drawing its source row from its row of the plan
 * (dm_ot_plan with seed != 0, which must be given then; a source row may
 * be drawn twice, as in OT-CFM's sampler). */
#define DM_COUPLING_EXACT_MAX 1024
#define DM_COUPLING_EPS_REL 0.01
int dm_train_couple(float *x1, const float *x0, const int64_t *y, int B,
    size_t d, uint64_t seed);

/* --val-frac: rows 0..N-1 split into nval held-out rows and the rest. */
int dm_train_split(int64_t n, double frac, uint64_t seed, int64_t **train,
    int64_t *ntrain, int64_t **val, int64_t *nval);

/* The data a run trains on (borrowed, must outlive the trainer). */
struct dm_train_data {
	int64_t n;                   /* rows of x0 */
	size_t d;                    /* elements per row */
	const float *x0;             /* [n, d] data (t = 0 end) */
	const float *x1;             /* [n, d] paired source, or NULL */
	const float *src;            /* [nsrc, d] source set, or NULL */
	int64_t nsrc;
	const int64_t *y;            /* [n] labels or NULL */
	const int64_t *rows;         /* training rows (indices into x0) */
	int64_t nrows;
};

/* A training run: model (borrowed), optimizer state, EMA, step. */
struct dm_trainer {
	struct dm_train_opts o;
	struct dm_model *m;
	struct dm_train_data data;
	float *adam_m, *adam_v, *ema;   /* [nparams] each */
	int64_t step;                   /* updates done */
	double loss_ema;                /* of the training loss, decay 0.98 */
	double loss, gnorm, lr;         /* of the last step */
	/* the current epoch's permutation */
	int64_t *perm, perm_epoch;
	/* batch buffers */
	int cap;
	float *x0, *eps, *xt, *t, *tgt, *out, *dout, *w;
	double *rowloss;
	int64_t *y, *idx;             /* labels, data rows */
	struct dm_lora *lora;         /* borrowed: train only its factors */
	struct dm_cm_state *cm;         /* objective consistency */
	int grad_zero;                  /* the model's gradients are 0 */
};
/* Checks the data against the model and options; copies opts and data. */
struct dm_trainer *dm_trainer_new(struct dm_model *m,
    const struct dm_train_opts *o, const struct dm_train_data *data);
void dm_trainer_free(struct dm_trainer *tr);
/* Train only the factors of adapter l (dm_lora.h), the base weights
 * frozen: l is attached to the model, and the optimizer state, the EMA
 * and the checkpoints hold the factors instead of the weights.  Call
 * before the first step; dm_lora_detach(l, m) afterwards restores the
 * base weights. */
struct dm_lora;
int dm_trainer_set_lora(struct dm_trainer *tr, struct dm_lora *l);
/* One update.  NaN or Inf in the loss or the gradients: -1 with a reason
 * and nothing changed. */
int dm_trainer_step(struct dm_trainer *tr);
/* Mean loss of rows[0..n) with the EMA weights, each at its fixed t and
 * eps (validation). */
int dm_trainer_eval(struct dm_trainer *tr, const int64_t *rows, int64_t n,
    double *loss);
/* Checkpoints: dm.kind=checkpoint, dm.train.options = fingerprint (the
 * caller's canonical text of everything that changes results), the model's
 * dm.arch/dm.config, the step, and tensors train.params, train.adam_m,
 * train.adam_v, train.ema [nparams] and train.state F64 (loss EMA).
 * Restore refuses a file whose fingerprint or size differs. */
int dm_trainer_checkpoint(const struct dm_trainer *tr, const char *fingerprint,
    struct dm_file *f);
int dm_trainer_restore(struct dm_trainer *tr, const char *fingerprint,
    const struct dm_file *f);

/* The simplest sampler, for checks until dm-sample: x1 ~ N(0, I) (normal
 * floats 0..d-1 of dm_noise_stream(DM_NOISE_EPS, i)), then `steps` Euler
 * steps of the probability-flow ODE dx/dt = alpha' x0_hat + sigma' eps_hat
 * on the uniform grid t_k = 1 - k / steps (the model and the coefficients
 * are evaluated at t_k clamped to [t_min, t_max]).  Uses m->params.
 * out [n, d]; y NULL or labels [n]. */
int dm_train_quick_sample(struct dm_model *m, float *out, int64_t n,
    int steps, const int64_t *y, uint64_t seed);

#endif
