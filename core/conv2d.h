/* conv2d.h — 2-D convolution with stride, zero padding and groups (depthwise included).
 *
 * Shapes:   x (N, H, W, C)    weight (KH, KW, C/G, OC)    bias (OC) or NULL    y (N, OH, OW, OC)
 *     OH = (H + 2·pad − KH) / stride + 1        (likewise OW)
 *     y[n][oh][ow][oc] = bias[oc] + Σ_{kh,kw,i} x[n][oh·s−p+kh][ow·s−p+kw][g·C/G + i]
 *                                                · weight[kh][kw][i][oc],   g = oc / (OC/G)
 * Depthwise is G = C = OC. The fast forward picks: a plain GEMM for 1×1 / stride 1 / pad 0 /
 * G = 1 (channels-last makes the input already the GEMM's A); the depthwise kernels of
 * depthwise.h; im2col in cache-sized row chunks + GEMM otherwise (per group when G > 1). The
 * reference kernels here are the general grouped loop, depthwise included.
 */
#ifndef DQ_CONV2D_H
#define DQ_CONV2D_H

#include "activation.h"
#include "conv_geom.h"
#include "tape.h"

typedef struct Conv2dArgs {
    int stride;  // >= 1, same along H and W
    int pad;     // >= 0 zeros on every side
    int groups;  // >= 1, divides C and OC
} Conv2dArgs;


Tensor *op_conv2d(Tape *t, Tensor *x, Tensor *weight, Tensor *bias, Conv2dArgs args);
/* The convolution followed by `after` (a per-channel affine map and activation), fused: each part
 * of y is finished while it is in cache. Evaluation only (records nothing; fatal if the tape
 * would record): BatchNorm in evaluation mode folded into the convolution before it, with the
 * bits of op_conv2d then op_batchnorm. */
Tensor *op_conv2d_affine(Tape *t, Tensor *x, Tensor *weight, Tensor *bias, Conv2dArgs args,
                         const ChannelAffine *after);

/* Fatal (naming the problem) unless the shapes and args make a valid convolution. */
ConvGeom conv2d_geom(const Tensor *x, const Tensor *weight, const Tensor *bias, Conv2dArgs args);

/* Kernels. Backward accumulates into dx, dw, db; each may be NULL. The fast backward
 * overwrites dx instead when dx_overwrite is set (dx holds garbage: see tape_grad_overwrite). */
void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, const ConvGeom *g);
void conv2d_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g);
/* The fast forward, then `after` (NULL: nothing) on every output — chunk by chunk, in cache. */
void conv2d_forward_fused(float *y, const float *x, const float *w, const float *b, const ConvGeom *g,
                          const ChannelAffine *after);
/* Whether the fast kernels may read the padded input in place instead of building im2col rows:
 * the implicit-GEMM forward and the weight gradient of conv_wgrad.h (on by default; their sums
 * are im2col's to the bit). Returns the previous setting. For tests and benchmarks. */
bool conv2d_use_implicit(bool on);
void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const ConvGeom *g);
void conv2d_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const ConvGeom *g, bool dx_overwrite);

#endif
