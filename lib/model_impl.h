/* model_impl.h — what model.c shares with the networks (mlp.c, unet.c):
 * parameter registration, and the activation arenas.  Not installed. */
#ifndef DM_MODEL_IMPL_H
#define DM_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "dm_model.h"

/* How a registered parameter starts. */
enum dm_init {
	DM_INIT_FAN,      /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default */
	DM_INIT_ZERO,
	DM_INIT_ONE,
	DM_INIT_NORMAL    /* N(0, 1), embeddings */
};

/* Parameters are registered in module order while a network is built; the
 * flat array is allocated afterwards.  Errors are sticky: check pb->err
 * once at the end. */
struct dm_pbuild {
	int n, cap, err;
	struct dm_param *param;
	enum dm_init *init;
	int64_t *fan_in;
	size_t total;            /* floats */
};
/* Register one tensor; returns its offset in floats. */
size_t dm_pbuild_add(struct dm_pbuild *pb, enum dm_init init, int64_t fan_in,
    int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* name.weight [dout, din] and name.bias [dout]. */
void dm_pbuild_linear(struct dm_pbuild *pb, size_t *w, size_t *b, int din,
    int dout, int zero, const char *name);
/* name.weight [cout, cin, k, k] and name.bias [cout]. */
void dm_pbuild_conv(struct dm_pbuild *pb, size_t *w, size_t *b, int cin,
    int cout, int k, int zero, const char *name);
/* name.weight = 1, name.bias = 0, both [C]. */
void dm_pbuild_norm(struct dm_pbuild *pb, size_t *w, size_t *b, int C,
    const char *name);

/* Activations: one arena of B_cap samples and, for backward, a mirror of
 * the same layout holding the gradients, so the gradient of the buffer at
 * act + k is grad + k.  Every network state starts with this struct. */
struct dm_acts {
	float *act, *grad;       /* [cap * per_sample] each (grad lazily) */
	size_t per_sample;       /* floats per sample */
	size_t used;             /* layout cursor, floats */
	int cap;                 /* samples reserved */
	float *work;             /* conv / attention scratch */
	size_t work_n;
	int64_t *y;              /* [cap] labels of the last forward */
	float *tbuf, *obuf;      /* [cap], [cap * out]: dm_model_denoise */
	int B;                   /* batch of the last forward */
	int trained;             /* last forward had train = 1 */
	int dropping;            /* ... and applied dropout */
	int view_row;            /* a view of rows from this one on (mlp.c) */
};

/* Layout pass: with a->act NULL it only counts per_sample; otherwise it
 * returns the buffer of n floats per sample (n * cap floats), from row
 * a->view_row on. */
float *dm_acts_take(struct dm_acts *a, size_t n);
static inline float *
dm_acts_grad(const struct dm_acts *a, const float *p)
{
	return a->grad + (p - a->act);
}

/* The networks.  build: validate the config, register parameters and
 * create m->impl.  layout: assign every activation buffer with
 * dm_acts_take (called twice, see above); work: scratch floats for B. */
int dm_mlp_build(struct dm_model *m, struct dm_pbuild *pb);
void dm_mlp_layout(struct dm_model *m);
size_t dm_mlp_work(const struct dm_model *m, int B);
int dm_mlp_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train);
void dm_mlp_backward(struct dm_model *m, float *dx, const float *dout);
void dm_mlp_free(struct dm_model *m);
/* Compute the time path for the cnt times t (at most
 * DM_MLP_PREPARE_MAX, replacing the previous ones; none for cnt 0);
 * inference forwards at these times on batches of at most 4 rows then
 * skip it, until the next call or a training forward.  0, or -1 with
 * reason (out of memory). */
#define DM_MLP_PREPARE_MAX 256
int dm_mlp_prepare(struct dm_model *m, const float *t, int cnt);
/* The input of the last linear layer in the last forward, (B, *dim). */
const float *dm_mlp_features(const struct dm_model *m, size_t *dim);

int dm_unet_build(struct dm_model *m, struct dm_pbuild *pb);
void dm_unet_layout(struct dm_model *m);
size_t dm_unet_work(const struct dm_model *m, int B);
int dm_unet_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train);
void dm_unet_backward(struct dm_model *m, float *dx, const float *dout);
void dm_unet_free(struct dm_model *m);
/* Classifier head only (else NULL): the pooled vector, (B, *dim). */
const float *dm_unet_features(const struct dm_model *m, size_t *dim);

/* Shared pieces of both networks. */
/* out (B, C, HW) += e (B, C) broadcast over HW, and its backward
 * de (B, C) += sum over HW of dout. */
void dm_bias_add_forward(float *out, const float *e, int B, int C, int HW);
void dm_bias_add_backward(float *de, const float *dout, int B, int C, int HW);
/* y (B) checked against [0, classes] and copied to a->y (NULL: the null
 * class); -1 with reason. */
int dm_model_labels(struct dm_model *m, const int64_t *y, int B);
/* Dropout for layer `layer` of the current training step. */
void dm_model_dropout(struct dm_model *m, float *out, uint8_t *mask,
    const float *in, size_t n, int layer);

#define DM_P(m, off) ((m)->params + (off))
#define DM_G(m, off) ((m)->grads + (off))

#endif
