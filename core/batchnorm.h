/* batchnorm.h — batch normalisation over every dim but the last (channels), with an optional
 * fused activation (none, ReLU, ReLU6) applied to its output.
 *
 * Shapes: x (N, H, W, C) or (N, C); gamma, beta (C); y like x. R = numel / C rows per channel.
 *   training:  μ = mean_R(x),  σ² = mean_R((x − μ)²)            (biased, used to normalise)
 *              y = act(γ·(x − μ)/sqrt(σ² + eps) + β)
 *              running_mean ← (1 − m)·running_mean + m·μ
 *              running_var  ← (1 − m)·running_var  + m·σ²·R/(R − 1)   (unbiased, as PyTorch)
 *   eval:      the same with μ, σ² replaced by the running averages.
 *   frozen:    in training too, as eval: the running averages normalise and do not move, and
 *              the gradient has no terms through μ and σ² (--q_bn_freeze).
 * The mode comes from tape->training and args.frozen. Statistics accumulate in double. Fusing the activation
 * keeps one tensor (and its gradient) per layer instead of two: the activation's derivative is
 * read off the output y (see act_grad_mask).
 */
#ifndef DQ_BATCHNORM_H
#define DQ_BATCHNORM_H

#include "activation.h"
#include "tape.h"

typedef struct BatchNormArgs {
    float *running_mean;  // (C); updated in training mode, read in eval mode
    float *running_var;   // (C)
    float momentum;       // m above; 0.1 is PyTorch's default
    float eps;            // 1e-5 is PyTorch's default
    ActKind act;          // fused activation (ACT_NONE by default)
    bool frozen;          // training mode normalises with the running statistics, as eval does
} BatchNormArgs;

Tensor *op_batchnorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, BatchNormArgs args);

/* What the backward kernels read and write. */
typedef struct BnGrad {
    float *dx, *dgamma, *dbeta;   // accumulated into; each may be NULL
    bool dx_overwrite;            // fast kernel: store into dx instead (see tape_grad_overwrite)
    const float *dy;              // (R, C) gradient of the output
    const float *y;               // (R, C) the output, for the activation's mask
    ActKind act;
    const float *x;               // (R, C) the input
    const float *mean, *invstd;   // (C) statistics the forward used
    const float *gamma;           // (C)
    size_t R;
    int C;
    bool batch_stats;             // mean/invstd came from this batch (training): adds the
                                  // terms through μ and σ²
} BnGrad;

/* Kernels. The training forward gets the batch mean and variance from batchnorm_stats_*. */
void batchnorm_stats_ref(float *mean, float *var, const float *x, size_t R, int C);
void batchnorm_stats_fast(float *mean, float *var, const float *x, size_t R, int C);
void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, size_t R, int C, ActKind act);
/* The output pass as a ChannelAffine: scale = γ·invstd, shift = β − μ·scale. */
void batchnorm_affine(float *scale, float *shift, const float *mean, const float *invstd, const float *gamma,
                      const float *beta, int C);
/* Evaluation mode's statistics: μ = running mean, invstd = 1/sqrt(running var + eps). */
void batchnorm_eval_stats(float *mean, float *invstd, const float *running_mean, const float *running_var,
                          float eps, int C);
void batchnorm_backward_ref(const BnGrad *g);
void batchnorm_backward_fast(const BnGrad *g);

#endif
