/* dm_model.h — models: the networks `mlp` and `unet` and the exact `gmm`
 * (DESIGN.md "Models"), behind one interface that training and sampling
 * use.  Parameters live in one flat float array with named views laid out
 * like the equivalent PyTorch module (linear [out, in], conv [out, in, k, k]);
 * gradients share that layout, so optimizers are flat loops. */
#ifndef DM_MODEL_H
#define DM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dm_gmm.h"
#include "dm_io.h"
#include "dm_predict.h"
#include "dm_schedule.h"

enum dm_arch { DM_ARCH_MLP, DM_ARCH_UNET, DM_ARCH_GMM, DM_ARCH_COUNT };
const char *dm_arch_name(enum dm_arch a);
int dm_arch_parse(const char *name, enum dm_arch *out);

/* What the network's output is: a field of the data's shape (denoisers,
 * flows) or class logits (the time-conditioned classifier p(y | x_t, t)). */
enum dm_head { DM_HEAD_FIELD, DM_HEAD_CLASSIFIER };

#define DM_UNET_MAX_LEVELS 5

struct dm_model_config {
	enum dm_arch arch;
	enum dm_head head;
	enum dm_pred pred;           /* what a FIELD head predicts */
	char schedule[256];          /* schedule text (dm_schedule_from_string) */
	int ndim;                    /* data shape without the batch axis */
	int64_t shape[4];            /* mlp: [d]; unet: [C, H, W] */
	int classes;                 /* 0 = unconditional; else labels 0..classes-1
	                              * plus the null class `classes` */
	float dropout;
	/* mlp */
	int width, depth;            /* hidden width, residual blocks */
	int temb;                    /* sinusoidal time-embedding size */
	/* unet */
	int ch;                      /* base channels */
	int nlevels;                 /* resolutions */
	int mult[DM_UNET_MAX_LEVELS];/* channel multiplier per level */
	int nres;                    /* ResBlocks per level */
	int attn;                    /* self-attention at the lowest resolution */
	int heads;                   /* attention heads */
	int groups;                  /* GroupNorm groups */
	/* consistency parameterisation (SPEC §8), any arch: the output is
	 * f = c_skip x_ve + c_out F(c_in x_ve, t) with x_ve = x / alpha_t,
	 * sigma = sigma_t / alpha_t, so f(x, sigma_min) = x exactly */
	int cm;                      /* 1 = on (config "cm=1") */
	double sigma_data;           /* sigma_d: 0.5 */
};

/* Defaults for an arch and data shape (mlp: width 256, depth 3, temb 64;
 * unet: ch 32, mult 1,2,4 (or fewer levels for small images), nres 1,
 * attn on, heads 4, groups 8). */
void dm_model_config_defaults(struct dm_model_config *c, enum dm_arch arch,
    int ndim, const int64_t *shape);
/* "width=512,depth=4" style overrides (dm-train --arch-opts); -1 on errors. */
int dm_model_config_parse(struct dm_model_config *c, const char *text);
/* The config as "key=value,..." text (metadata dm.config). */
int dm_model_config_format(const struct dm_model_config *c, char *buf,
    size_t n);

/* A named view into the flat parameter array. */
struct dm_param {
	char name[96];               /* PyTorch-style dotted name */
	int ndim;
	int64_t shape[4];
	size_t offset, numel;        /* in floats */
};

struct dm_model {
	struct dm_model_config cfg;
	struct dm_schedule sched;    /* initialized from cfg.schedule */
	int nparam;                  /* named tensors */
	struct dm_param *param;
	size_t nparams;              /* floats */
	float *params;               /* [nparams] */
	float *grads;                /* [nparams], allocated on first use */
	int batch_cap;               /* activations reserved for this batch */
	void *impl;                  /* per-arch state: activations, caches */
	struct dm_gmm gmm;           /* arch gmm */
	uint64_t dropout_seed;       /* dropout masks: (seed, step, element) */
	uint64_t dropout_step;
	float *cm_buf;               /* cm: input, gradient, coefficients */
	int cm_cap;
};

/* A new model with parameters initialized like PyTorch's defaults
 * (uniform +-1/sqrt(fan_in) for linear and conv) from seed; output layers
 * start at zero where the architecture calls for it. */
struct dm_model *dm_model_new(const struct dm_model_config *cfg,
    uint64_t seed);
void dm_model_free(struct dm_model *m);
/* Elements of one sample of the output (field: prod(shape); classifier:
 * classes). */
size_t dm_model_out_size(const struct dm_model *m);
size_t dm_model_in_size(const struct dm_model *m);

/* Forward on a batch: x (B, in), t (B) in [0, 1], y (B) labels in
 * [0, classes] or NULL (= null class) -> out (B, out).  train = 1 applies
 * dropout and keeps the caches backward needs.  Reserves activations for
 * B on first use (grows, never shrinks). */
int dm_model_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train);
/* Backward of the last forward (train = 1): adds d loss/d params into
 * m->grads; dx (B, in) receives d loss/d x when not NULL (classifier
 * guidance, SDS). */
int dm_model_backward(struct dm_model *m, float *dx, const float *dout);
void dm_model_zero_grad(struct dm_model *m);
/* A classifier's penultimate features: the vector its last linear layer
 * reads (unet: the pooled channels; mlp: the last hidden layer).  Size per
 * sample, 0 for models without them (field-head unet, gmm). */
size_t dm_model_feature_size(const struct dm_model *m);
/* Forward (train = 0) with logits into out (B, out) and the features into
 * feat (B, dm_model_feature_size). */
int dm_model_features(struct dm_model *m, float *feat, float *out,
    const float *x, const float *t, const int64_t *y, int B);

/* Files: a model file holds the weights (named tensors) and metadata
 * dm.kind=model, dm.arch, dm.config, dm.prediction, dm.schedule, dm.shape,
 * dm.classes, dm.version.  `weights` (nparams floats) is what is written
 * (e.g. EMA weights); NULL writes m->params. */
int dm_model_to_file(const struct dm_model *m, const float *weights,
    struct dm_file *f);
int dm_model_from_file(struct dm_model **out, const struct dm_file *f);
int dm_model_load(struct dm_model **out, const char *path);
int dm_model_save(const struct dm_model *m, const float *weights,
    const char *path);

/* A hint before evaluations at the n times t (as dm_model_denoise takes
 * them): a network may compute what depends on t alone for all of them
 * at once (the mlp's time path, for batches of up to 4 rows without
 * classes: 256 times at most), replacing what an earlier hint computed.
 * The hint holds until the next one (n = 0: none) or a training forward;
 * the weights must not change meanwhile.  With the hint the results
 * agree with those without it to float rounding (the products are summed
 * in another order); they do not depend on the number of threads either
 * way.  0, or -1 with reason. */
int dm_model_prepare(struct dm_model *m, const double *t, int n);

/* (x0_hat, eps_hat) at time t for a batch, whatever the prediction kind
 * (t is clamped to the schedule's [t_min, t_max]); the samplers' entry. */
int dm_model_denoise(struct dm_model *m, float *x0, float *eps, const float *x,
    double t, const int64_t *y, int B);

/* Classifiers for classifier guidance (lib/guide.c): a network with the
 * classifier head, or a gmm with classes (exact).  grad (B, d) receives
 * d/dx log p(y | x_t, t), logp (B, may be NULL) the value; labels y in
 * 0 .. classes - 1; t is clamped to the classifier's [t_min, t_max]. */
int dm_model_is_classifier(const struct dm_model *m);
int dm_model_class_grad(struct dm_model *m, float *grad, double *logp,
    const float *x, double t, const int64_t *y, int B);
/* Classifier guidance (SPEC §6) on a denoiser's (x0_hat, eps_hat) at the
 * schedule point p: eps -= scale sigma grad, and x0 moves with it so that
 * x = alpha x0 + sigma eps still holds. */
int dm_model_classifier_guidance(struct dm_model *clf, double scale,
    const struct dm_sched_point *p, float *x0, float *eps, const float *x,
    const int64_t *y, int B);
/* The consistency parameterisation's coefficients at VE noise level sigma
 * (Song et al. 2023): c_skip = sigma_d^2 / ((sigma - sigma_min)^2 +
 * sigma_d^2), c_out = sigma_d (sigma - sigma_min) / sqrt(sigma_d^2 +
 * sigma^2), c_in = 1 / sqrt(sigma^2 + sigma_d^2). */
void dm_cm_coeffs(double sigma, double sigma_min, double sigma_d,
    double *c_skip, double *c_out, double *c_in);
/* sigma_min of a model's schedule: sigma_t / alpha_t at t_min. */
double dm_cm_sigma_min(const struct dm_schedule *s);

#endif
