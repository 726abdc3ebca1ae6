/* hawq.h — Hessian-aware bit allocation in the manner of HAWQ-V2/V3 (Dong et al. 2020; Yao et
 * al. 2021): a layer whose loss surface is sharp gets more bits.
 *
 *   Tr(H_l)   the trace of the loss Hessian's diagonal block of layer l's weights, by
 *             Hutchinson's estimator E[rᵀ H r] over Rademacher vectors r (entries ±1). The tape is
 *             first-order, so H·v is a central difference of gradients,
 *                 H v ≈ (g(w + ε v) − g(w − ε v)) / 2ε,
 *             all layers probed at once with v_l = rms(w_l)·r_l (each layer perturbed by the same
 *             relative ε): r_lᵀ (Hv)_l / rms(w_l) estimates Tr(H_ll), the cross-layer terms having
 *             mean 0. Those terms are most of the estimate's variance on a deep network, so by
 *             default they are cancelled exactly: each Rademacher draw r is probed P times (P = the
 *             layers rounded up to a power of 2), layer l's signs in probe j multiplied by h_jl, the
 *             entry of a P×P Hadamard matrix. Layers l and k meet with the factor h_jl·h_jk, whose
 *             sum over the group is 0 for l ≠ k, so the group's mean is r_lᵀ H_ll r_l for every layer
 *             at once — what probing the layers one at a time would give (MQBench's per-layer
 *             traces), for 2P gradients instead of 2n. The loss is the mean cross-entropy over a fixed set of training images with
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

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

/* Fills every w[i]->grad with the gradient of the loss at the current w[i]->data. */
typedef void (*HawqGradFn)(void *ctx);

typedef struct HawqTraces {
    double *trace;  // (n) mean of the samples
    double *se;     // (n) its standard error (0 with one sample)
} HawqTraces;

/* The probes of one draw: layerwise, n rounded up to a power of 2; else 1. */
int hawq_group_size(int n, bool layerwise);

/* Hutchinson over n weight tensors: `draws` Rademacher draws from seed, each probed
 * hawq_group_size(n, layerwise) times (layerwise: the cross-layer terms cancelled), relative step
 * eps. Calls grad 2·draws·group times; restores every w[i]->data to its value on entry (bit for
 * bit). trace and se (the standard error over the draws): caller's arrays of n. */
void hawq_traces(Tensor *const *w, int n, HawqGradFn grad, void *ctx, int draws, bool layerwise, float eps,
                 uint64_t seed, HawqTraces out);

/* Ω_l(b) for b = b_min … b_max into omega (row of b_max − b_min + 1), for a weight tensor w of
 * `channels` LSQ steps (1: per tensor) and trace t. */
void hawq_omega(const Tensor *w, int channels, double trace, int b_min, int b_max, double *omega);

#endif
