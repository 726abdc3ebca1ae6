/* batchnorm.h — batch normalisation over every dim but the last (channels).
 *
 * Shapes: x (N, H, W, C) or (N, C); gamma, beta (C); y like x. R = numel / C rows per channel.
 *   training:  μ = mean_R(x),  σ² = mean_R((x − μ)²)            (biased, used to normalise)
 *              y = γ·(x − μ)/sqrt(σ² + eps) + β
 *              running_mean ← (1 − m)·running_mean + m·μ
 *              running_var  ← (1 − m)·running_var  + m·σ²·R/(R − 1)   (unbiased, as PyTorch)
 *   eval:      the same with μ, σ² replaced by the running averages.
 * The mode comes from tape->training. Statistics accumulate in double.
 */
#ifndef DQ_BATCHNORM_H
#define DQ_BATCHNORM_H

#include "tape.h"

typedef struct BatchNormArgs {
    float *running_mean;  // (C); updated in training mode, read in eval mode
    float *running_var;   // (C)
    float momentum;       // m above; 0.1 is PyTorch's default
    float eps;            // 1e-5 is PyTorch's default
} BatchNormArgs;

Tensor *op_batchnorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, BatchNormArgs args);

/* Kernels. Training forward writes the batch mean and 1/sqrt(var + eps) to mean/invstd (C).
 * The eval forward takes mean/invstd precomputed from the running averages. */
void batchnorm_stats_ref(float *mean, float *var, const float *x, size_t R, int C);
void batchnorm_stats_fast(float *mean, float *var, const float *x, size_t R, int C);
void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, size_t R, int C);
/* Backward accumulates; dx/dgamma/dbeta may be NULL. `batch_stats` is true when mean/invstd came
 * from this batch (training), which adds the terms through μ and σ². */
void batchnorm_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy,
                            const float *x, const float *mean, const float *invstd,
                            const float *gamma, size_t R, int C, bool batch_stats);
void batchnorm_backward_fast(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *mean, const float *invstd,
                             const float *gamma, size_t R, int C, bool batch_stats);

#endif
