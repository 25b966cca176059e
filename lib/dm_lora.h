/* dm_lora.h — low-rank adapters on linear and conv layers (SPEC.md §9).
 *
 * An adapted weight is W' = W + s (alpha / r) B A with A [r, in] and
 * B [out, r]; for a convolution [out, cin, k, k], "in" is cin k k: A is an
 * r-filter k x k convolution [r, cin, k, k] and B a 1 x 1 convolution
 * [out, r, 1, 1], whose composition is the weight delta
 * dW[o, i, :, :] = sum_j B[o, j] A[j, i, :, :].
 *
 * Adapters act on a model by changing its weights in memory: merging adds
 * s dW into m->params (the model holds its own copy of the weights, so
 * nothing on disk changes); training keeps a copy of the base weights and
 * rebuilds W' from it before every step.
 *
 * Adapter files (dm.kind=adapter): tensors <layer>.lora_A.weight,
 * <layer>.lora_B.weight and <layer>.alpha (a scalar) per adapted layer,
 * where <layer> is the base weight's name without ".weight"; metadata
 * dm.arch, dm.config, dm.lora.rank, dm.lora.alpha, dm.lora.targets and
 * dm.lora.base, the base model's hash (dm_lora_model_hash, 16 hex digits).
 * Also read: PEFT names (<prefix>.<layer>.lora_A.weight, .lora_B.weight;
 * alpha = rank unless the file says otherwise) and kohya names
 * (lora_unet_<layer with '.' -> '_'>.lora_down.weight, .lora_up.weight,
 * .alpha). */
#ifndef DM_LORA_H
#define DM_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "dm_io.h"
#include "dm_model.h"

struct dm_lora_layer {
	char name[96];           /* the base weight's name without ".weight" */
	int param;               /* index into m->param */
	int rank;
	int64_t out, in;         /* the weight as a matrix [out, in] */
	float alpha;
	size_t a, b;             /* offsets of A [rank, in], B [out, rank] */
};

struct dm_lora {
	int nlayer;
	struct dm_lora_layer *layer;   /* in the model's parameter order */
	size_t n;                /* floats of all factors */
	float *w;                /* [n] factors */
	float *g;                /* [n] gradients (attached adapters) */
	int rank;                /* nominal rank and alpha (metadata) */
	double alpha;
	char targets[512];       /* layer-name patterns, comma-separated */
	uint64_t base_hash;      /* 0 = unknown (ecosystem files) */
	float *base;             /* attached: the adapted base weights */
};

/* FNV-1a (64 bits) over the model's configuration text (dm.config), then,
 * for every parameter in order, its name with the terminating NUL and its
 * weights as little-endian F32 bytes. */
uint64_t dm_lora_model_hash(const struct dm_model *m);
/* Default targets: every linear and conv inside the residual blocks
 * (mlp "blocks.*"; unet "down.*,mid.*,up.*"). */
const char *dm_lora_default_targets(const struct dm_model *m);
/* Does layer `name` match one of the comma-separated fnmatch(3) patterns? */
int dm_lora_match(const char *patterns, const char *name);

/* A new adapter of rank r on every weight of m (2-D or 4-D, named
 * *.weight) whose layer name matches `targets` (NULL = default): A drawn
 * from U(-1/sqrt(in), 1/sqrt(in)) (seed), B = 0, so dW = 0.  -1 when no
 * layer matches or r is not in 1..min(out, in) of every adapted layer. */
struct dm_lora *dm_lora_new(const struct dm_model *m, const char *targets,
    int r, double alpha, uint64_t seed);
/* An empty adapter with the layers and ranks of `ranks` (per parameter of
 * m, 0 = not adapted): factors zero, alpha = rank. */
struct dm_lora *dm_lora_alloc(const struct dm_model *m, const int *ranks);
void dm_lora_free(struct dm_lora *l);
/* Trainable floats of l, and of the model. */
size_t dm_lora_numel(const struct dm_lora *l);

/* dw [out, in] += c (alpha / r) B A for layer i, factors from w (NULL:
 * l->w). */
void dm_lora_delta(const struct dm_lora *l, const float *w, int i, double c,
    float *dw);
/* m->params += s dW for every layer (s < 0 unmerges).  -1 if a layer does
 * not fit the model (nothing changed then). */
int dm_lora_merge(struct dm_model *m, const struct dm_lora *l, double s);
/* Refuse (-1 with reason) an adapter whose recorded base hash differs from
 * `hash`; an adapter without a recorded hash passes. */
int dm_lora_check_base(const struct dm_lora *l, uint64_t hash);

/* Training.  attach keeps a copy of the adapted base weights and
 * allocates l->g; apply sets W' = W + (alpha/r) B A (factors from w, NULL:
 * l->w) in m->params; backward turns the weight gradients the model left
 * in m->grads into l->g (overwritten):
 *   dL/dB = (alpha/r) dL/dW' A^T,  dL/dA = (alpha/r) B^T dL/dW';
 * detach puts the base weights back, bit for bit. */
int dm_lora_attach(struct dm_lora *l, struct dm_model *m);
void dm_lora_apply(const struct dm_lora *l, struct dm_model *m,
    const float *w);
void dm_lora_backward(struct dm_lora *l, const struct dm_model *m);
void dm_lora_detach(struct dm_lora *l, struct dm_model *m);

/* Files (see the top).  to_file writes factors w (NULL: l->w). */
int dm_lora_to_file(const struct dm_lora *l, const float *w,
    const struct dm_model *m, struct dm_file *f);
/* Reads own, PEFT and kohya names; every tensor must map onto a layer of
 * m with fitting shapes, and every layer needs both factors. */
int dm_lora_from_file(struct dm_lora **out, const struct dm_file *f,
    const struct dm_model *m);
int dm_lora_load(struct dm_lora **out, const char *path,
    const struct dm_model *m);

/* Truncated SVD (LAPACK sgesdd): an adapter of rank min(r, out, in) for
 * every weight of m matching `targets` (NULL: every 2-D and 4-D weight)
 * whose delta is not all zero; delta has m's flat layout [nparams].
 * B = U_r S_r^(1/2), A = S_r^(1/2) V_r^T, alpha = rank.  err2 and norm2,
 * when not NULL, receive per layer of the result ||dW - B A||_F^2 and
 * ||dW||_F^2 (in double, from the factors, not from the singular values),
 * arrays of m->nparam entries indexed like l->layer. */
struct dm_lora *dm_lora_from_delta(const struct dm_model *m,
    const float *delta, const char *targets, int r, double *err2,
    double *norm2);

#endif
