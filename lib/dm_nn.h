/* dm_nn.h — neural-network layers, each a forward/backward pair side by
 * side (STYLE.md): outputs first, raw float pointers, dimensions last,
 * shapes in the comment.  Forward fills the caches backward reads;
 * backward ADDS into the gradient buffers (dw, db, and din when it is not
 * NULL: din may be NULL when the input needs no gradient), so one zero-grad
 * per step is the rule.  Images are NCHW, row-major.  Threading: OpenMP
 * loops and OpenBLAS, with results independent of the thread count up to
 * BLAS summation order. */
#ifndef DM_NN_H
#define DM_NN_H

#include <stddef.h>
#include <stdint.h>

/* Linear: in (n, din), w (dout, din) [PyTorch layout], b (dout) or NULL
 * -> out (n, dout) = in w^T + b.  cblas_sgemm. */
void dm_linear_forward(float *out, const float *in, const float *w,
    const float *b, int n, int din, int dout);
void dm_linear_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int n, int din_dim, int dout_dim);

/* Elementwise activations on n values; backward reads the forward input. */
void dm_silu_forward(float *out, const float *in, size_t n);
void dm_silu_backward(float *din, const float *dout, const float *in, size_t n);
void dm_gelu_forward(float *out, const float *in, size_t n);   /* exact erf form */
void dm_gelu_backward(float *din, const float *dout, const float *in, size_t n);
void dm_relu_forward(float *out, const float *in, size_t n);
void dm_relu_backward(float *din, const float *dout, const float *in, size_t n);

/* LayerNorm over the last dimension: in (n, C), w, b (C) -> out (n, C);
 * caches mean, rstd (n). */
void dm_layernorm_forward(float *out, float *mean, float *rstd,
    const float *in, const float *w, const float *b, int n, int C, float eps);
void dm_layernorm_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, const float *mean, const float *rstd,
    int n, int C);

/* GroupNorm: in (B, C, HW) in G groups of C/G channels, w, b (C) ->
 * out (B, C, HW); caches mean, rstd (B, G). */
void dm_groupnorm_forward(float *out, float *mean, float *rstd,
    const float *in, const float *w, const float *b, int B, int C, int HW,
    int G, float eps);
void dm_groupnorm_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, const float *mean, const float *rstd,
    int B, int C, int HW, int G);
/* GroupNorm then SiLU in one pass: norm (or NULL: not kept) gets the
 * GroupNorm output n, out = SiLU(n), bit for bit the two layers apart.
 * out may be in when norm is NULL.  Backward: din += the input gradient of
 * both from dout = d out and the kept norm; dw, db as GroupNorm's; dnorm
 * (B, C, HW) is scratch that gets the gradient of n. */
void dm_groupnorm_silu_forward(float *norm, float *out, float *mean,
    float *rstd, const float *in, const float *w, const float *b, int B,
    int C, int HW, int G, float eps);
void dm_groupnorm_silu_backward(float *din, float *dw, float *db,
    float *dnorm, const float *dout, const float *norm, const float *in, const float *w,
    const float *mean, const float *rstd, int B, int C, int HW, int G);

/* 2-D convolution, square kernel k (1 or 3), stride s (1 or 2), zero
 * padding k/2: in (B, Cin, H, W), w (Cout, Cin, k, k) [PyTorch layout],
 * b (Cout) or NULL -> out (B, Cout, Ho, Wo), Ho = (H + 2(k/2) - k)/s + 1.
 * work: scratch of dm_conv2d_work_size() floats (reused, never freed
 * here). */
size_t dm_conv2d_work_size(int B, int Cin, int H, int W, int Cout, int k,
    int s);
void dm_conv2d_forward(float *out, const float *in, const float *w,
    const float *b, int B, int Cin, int H, int W, int Cout, int k, int s,
    float *work);
void dm_conv2d_backward(float *din, float *dw, float *db, const float *dout,
    const float *in, const float *w, int B, int Cin, int H, int W, int Cout,
    int k, int s, float *work);

/* Nearest-neighbour upsampling by 2: in (B, C, H, W) -> out (B, C, 2H, 2W). */
void dm_upsample2_forward(float *out, const float *in, int B, int C, int H,
    int W);
void dm_upsample2_backward(float *din, const float *dout, int B, int C, int H,
    int W);

/* Channel concatenation: a (B, Ca, HW), b (B, Cb, HW) -> out (B, Ca+Cb, HW). */
void dm_concat_forward(float *out, const float *a, const float *b, int B,
    int Ca, int Cb, int HW);
void dm_concat_backward(float *da, float *db, const float *dout, int B, int Ca,
    int Cb, int HW);

/* Sinusoidal time embedding (no parameters): t (B) -> out (B, dim), dim
 * even: out[:, i] = cos(scale t f_i), out[:, dim/2 + i] = sin(scale t f_i),
 * f_i = exp(-log(10000) i / (dim/2)), i < dim/2 (the DDPM/diffusers
 * "flip_sin_to_cos" order); scale is 1000 for t in [0, 1]. */
void dm_timestep_embedding(float *out, const float *t, int B, int dim,
    float scale);
/* The same as columns: embedding b in column b of outT (dim, ld). */
void dm_timestep_embedding_cols(float *outT, size_t ld, const float *t,
    int B, int dim, float scale);

/* Embedding lookup: y (B) indices in [0, K), table (K, dim) -> out (B, dim).
 * Class conditioning uses K = classes + 1, index `classes` being the null
 * class of classifier-free guidance. */
void dm_embedding_forward(float *out, const int64_t *y, const float *table,
    int B, int dim);
void dm_embedding_backward(float *dtable, const float *dout, const int64_t *y,
    int B, int dim);

/* Multi-head self-attention core: qkv (B, T, 3C) holding q, k, v in that
 * order along the last axis, NH heads of C/NH -> out (B, T, C) =
 * softmax(q k^T / sqrt(C/NH)) v per head; caches att (B, NH, T, T) (the
 * softmax probabilities).  The projections around it are dm_linear. */
void dm_attention_forward(float *out, float *att, const float *qkv, int B,
    int T, int C, int NH);
void dm_attention_backward(float *dqkv, const float *dout, const float *qkv,
    const float *att, int B, int T, int C, int NH, float *work);
size_t dm_attention_work_size(int B, int T, int C, int NH);

/* Dropout with probability p (inverted scaling 1/(1-p)); the keep mask is a
 * pure function of (seed, stream, index of the element), drawn from Philox,
 * and stored as bytes in mask (n) for backward. */
void dm_dropout_forward(float *out, uint8_t *mask, const float *in, size_t n,
    float p, uint64_t seed, uint64_t stream);
void dm_dropout_backward(float *din, const float *dout, const uint8_t *mask,
    size_t n, float p);

#endif
