/* haq.h — bit allocation by reinforcement learning in the manner of HAQ (Wang et al., CVPR 2019).
 *
 *   episode   the agent (ddpg.h) walks the unpinned layers in order; at layer l it sees a state
 *             — index, depthwise?, linear?, in and out channels, kernel, stride, log feature-map
 *             size, log weights, its previous action, each scaled to [0, 1] over the layers —
 *             and answers a ∈ [0, 1], bits = round(1.5 + 7·a) clipped to 2 … 8. Exploration: a
 *             normal around μ(s) truncated to [0, 1], σ 0.5 decaying ×0.99 per episode after
 *             --haq_warmup episodes of uniformly random actions.
 *   budget    HAQ's enforcement: while the allocation exceeds the budget, lower the layers' bits
 *             one at a time, first layer to last, pass after pass. Resource --haq_resource:
 *             size (Σ N_l·b_l ≤ q_wbits·Σ N_l, the comparison's budget) or latency (a bit-serial
 *             accelerator's cost model, Σ MACs_l·b_l·b_a ≤ q_wbits·b_a·Σ MACs_l; activations at
 *             q_abits everywhere, so b_a cancels).
 *   reward    the quantized model (weights at the episode's bits, activations at q_abits, LSQ)
 *             fine-tuned --haq_ft_steps SGD steps on the first three quarters of the allocator's
 *             images, then R = 0.1·(accuracy − FP32 accuracy) on the last quarter (held out).
 *             Every transition of the episode is stored with R less a moving average of past
 *             rewards (factor 0.5); the agent takes one update per transition after the warm-up.
 *   result    the allocation of the episode with the best reward. Every parameter and quantizer
 *             is restored afterwards: the pipeline calibrates and fine-tunes as for any allocator.
 */
#ifndef DQ_HAQ_H
#define DQ_HAQ_H

#include "alloc.h"

bool haq_search(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, uint64_t seed, QuantAlloc *a,
                char *err, size_t err_size);

/* HAQ's budget enforcement on bits[0..n) (cost[l]: the resource one bit of layer l uses): lowers
 * bits one layer at a time, first to last, pass after pass, until Σ cost·bits ≤ budget or every
 * layer is at b_min. Returns whether the budget is met. */
bool haq_enforce(int *bits, const double *cost, int n, double budget, int b_min);

#endif
