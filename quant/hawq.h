/* hawq.h — Hessian-aware bit allocation in the manner of HAWQ-V2/V3 (Dong et al. 2020; Yao et
 * al. 2021): a layer whose loss surface is sharp gets more bits.
 *
 *   Tr(H_l)   the trace of the loss Hessian's diagonal block of layer l's weights, by
 *             Hutchinson's estimator E[rᵀ H r] over Rademacher vectors r (entries ±1). The tape is
 *             first-order, so H·v is a central difference of gradients,
 *                 H v ≈ (g(w + ε v) − g(w − ε v)) / 2ε,
 *             all layers probed at once with v_l = rms(w_l)·r_l (each layer perturbed by the same
 *             relative ε): r_lᵀ (Hv)_l / rms(w_l) estimates Tr(H_ll), the cross-layer terms having
 *             mean 0. The loss is the mean cross-entropy over a fixed set of training images with
 *             the model in evaluation mode (BatchNorm's running statistics, no dropout), the
 *             quantizers passing values through: the FP32 network's Hessian.
 *   Ω_l(b)    = Tr(H_l)/N_l · ‖Q_b(W_l) − W_l‖², Q_b LSQ's quantizer at the step it starts from
 *             (the perturbation the fine-tuning begins with; HAWQ used uniform min/max), N_l the
 *             layer's weights.
 *   bits      argmin Σ_l Ω_l(b_l) under Σ_l N_l·b_l ≤ target·Σ_l N_l over the unpinned layers,
 *             exactly (knapsack.h); then LSQ fine-tunes at those bits.
 */
#ifndef DQ_HAWQ_H
#define DQ_HAWQ_H

#include <stdint.h>

#include "core/tensor.h"

/* Fills every w[i]->grad with the gradient of the loss at the current w[i]->data. */
typedef void (*HawqGradFn)(void *ctx);

typedef struct HawqTraces {
    double *trace;  // (n) mean of the samples
    double *se;     // (n) its standard error (0 with one sample)
} HawqTraces;

/* Hutchinson over n weight tensors: `samples` Rademacher probes from seed, relative step eps.
 * Calls grad 2·samples times; restores every w[i]->data to its value on entry (bit for bit).
 * trace and se: caller's arrays of n. */
void hawq_traces(Tensor *const *w, int n, HawqGradFn grad, void *ctx, int samples, float eps, uint64_t seed,
                 HawqTraces out);

/* Ω_l(b) for b = b_min … b_max into omega (row of b_max − b_min + 1), for a weight tensor w of
 * `channels` LSQ steps (1: per tensor) and trace t. */
void hawq_omega(const Tensor *w, int channels, double trace, int b_min, int b_max, double *omega);

#endif
