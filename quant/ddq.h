/* ddq.h — Differentiable Dynamic Quantization (Zhang et al., ICML 2021), our formulation
 * (docs/ddq.md has the method and every choice in words).
 *
 * A DDQ quantizer keeps a fine grid of 2^K = 256 levels q[0..255] (a slab parameter) and m
 * merged bits: the fine grid falls into 2^b blocks of 2^m consecutive levels (b = K − m bits),
 * and block j has the coarse value v_j = mean of its fine levels — or exactly 0 for the block
 * holding the fine level pinned at real 0. Forward: x -> the nearest coarse value, thresholds at
 * the midpoints of adjacent v_j, values outside [v_0, v_last] clamped (the learned range); only
 * the 2^b − 1 thresholds are searched.
 *
 * Gradient estimators (named, as the tests check them):
 *   input:   clipped straight-through — dx = dy inside [v_0, v_last], 0 outside;
 *   levels:  dL/dv_j = h_j = Σ dy over the elements in bin j, scaled per quantizer by
 *            1/sqrt(N·(2^b − 1)); a block moves rigidly (every fine level gets its block's
 *            gradient), the pinned block not at all; after each update the coarse values are
 *            projected to v_{j+1} − v_j >= gap, shifting whole blocks outward from the pin;
 *   gates:   frontier finite differences of the forward, c_down = Σ_j h_j·(v^(b−1)(j) − v_j) for
 *            merging one more bit and c_up = Σ_e dy_e·(child(e) − v_bin(e)) for un-merging the
 *            last, smoothed by an EMA; gate updates and λ live in step() and ddq_control.h.
 * Variants (DdqConfig): fine-level forward, unpinned zero, product-rule gates, Adam on levels,
 * gradient correction α, init bits.
 */
#ifndef DQ_DDQ_H
#define DQ_DDQ_H

#include "quantizer.h"

#define DDQ_K 8
#define DDQ_FINE (1 << DDQ_K)

typedef struct DdqConfig {
    int b_min;              // fewest bits a quantizer may reach (2)
    int init_bits;          // bits at the start (8: all gates keep)
    float gap;              // minimum distance between coarse values, in fine steps (0.5)
    float ema;              // EMA factor of the gate signals (0.98: ~50 steps)
    float lr_gate;          // gate step size per unit of (signal − price)
    bool gate_anneal;       // the gate step follows the learning-rate schedule (× lr / peak lr)
    float lr_levels_w;      // level learning rates at the peak of the schedule, weights …
    float lr_levels_a;      // … and activations (their raw gradients are ~25x smaller)
    float momentum;         // SGD momentum for the levels
    float percentile;       // activation calibration: [100 − p, p] percentiles (99.9)
    bool pin_zero;          // the block holding 0 is exactly 0 (default) …
    bool fine_forward;      // variant: decision points at fine-level midpoints on block edges
    bool product_rule;      // variant: signals for all K gates; bits = leading merged gates
    bool adam;              // variant: Adam on the levels
    float alpha;            // variant: gradient correction α·∂mean((x_q − x)²)/∂v (0: off)
    bool esser_grad;        // variant: LSQ's in-bin term in the level gradient — an element inside the
                            // range adds dy·(v_j − x)/v_j to its level, not dy (docs/ddq.md §3)
    bool snap_grid;         // at the freeze, put the levels on the integer engine's grid (ddq_snap)
    bool init_lsq;          // variant: unpinned ranges from LSQ's initial step at init_bits (a coarse
                            // step of 2·mean|x|/sqrt(Q_P)), not min/max (weights) and percentiles
    bool init_centered;     // variant: unpinned coarse values at init_bits start on LSQ's level set,
                            // {−2^(b−1) … 2^(b−1)−1}·s (unsigned {0 … 2^b−1}·s): the fine grid shifted
                            // so that the pinned block is centred on 0 (with the off-centre merge
                            // it is not; the centred merge then changes nothing at init_bits)
    bool merge_centered;    // at every bitwidth the levels are translated so that the pinned block's
                            // mean is 0 (the default; false: its value is 0 and the others stay)
} DdqConfig;

/* What learns when (the controller sets it, control.h): warm-up — neither levels nor gates;
 * joint — both; frozen — levels only, the bits stay. A new quantizer is in the joint phase. */
typedef enum { DDQ_PHASE_WARMUP, DDQ_PHASE_JOINT, DDQ_PHASE_FROZEN } DdqPhase;

/* A new quantizer; its fine grid "name.levels" is registered in slab. elems = N of the data.
 * Pinned quantizers stay at 8 bits. channels > 1 (weights only): per-output-channel scaling —
 * channel c (the last weight dim) is divided by s_c = max|w_c| before the shared levels and
 * multiplied back after: y = s_c·Q(w/s_c), dw = dy where w/s_c is inside the range,
 * dv_j = Σ dy·s_c over bin j. The scales are fixed when the weights initialise the quantizer. */
Quantizer *ddq_new(ParamSlab *slab, const char *name, QuantRole role, bool is_signed, bool pinned,
                   long long elems, int channels, const DdqConfig *cfg);
bool ddq_is(const Quantizer *q);

/* Read-outs and controls used by the controller, the reports and the tests. */
typedef struct DdqState {
    int bits, merged;           // b, m
    int n_coarse;               // 2^b
    const float *coarse;        // v_0..v_{2^b−1}
    const float *fine;          // q_0..q_255
    double ema_down, ema_up;    // smoothed frontier signals
    double ema_down_pos, ema_up_neg;  // EMA(max(c_down, 0)), EMA(max(−c_up, 0))
    double sig_down, sig_up;    // the signals accumulated since the last step
    float gate_merge, gate_unmerge;
    int flips;                  // bit changes so far
    float price;                // λ·N/ζ in effect
    DdqPhase phase;
} DdqState;

DdqState ddq_state(const Quantizer *q);
void ddq_set_price(Quantizer *q, float price);
/* Hold back merges and/or un-merges of the frontier gates (the gates keep integrating; a held
 * flip happens once released). Product-rule gates ignore it. */
void ddq_hold_flips(Quantizer *q, bool no_merge, bool no_unmerge);
void ddq_set_phase(Quantizer *q, DdqPhase phase);
/* Snap to the integer grid the engine runs on (intmodel.h), from now on: the coarse values become
 * s·k, k an integer in a window of 256 (activations, zero point free) or [−128, 127] (weights, in
 * units of the channel scale), s fixed now from the current range (the finest grid that holds it).
 * The fine levels keep learning underneath — the forward uses their snapped coarse values, as
 * quantization-aware training uses quantized weights over float ones — so the frozen phase stays
 * on the grid and the integer model computes exactly what was trained. Called at the freeze when
 * DdqConfig.snap_grid is set; idempotent. */
void ddq_snap(Quantizer *q);
/* The grid step (0: not snapped). */
float ddq_snap_step(const Quantizer *q);
/* Force m merged bits (final budget guarantee, tests); rebuilds the coarse values. */
void ddq_set_merged(Quantizer *q, int m);
/* Replace the fine grid (tests). */
void ddq_set_fine(Quantizer *q, const float *fine, int zero_index);
/* The coarse value table at m merged bits for the current fine grid (tests, signals). */
int ddq_coarse_at(const Quantizer *q, int m, float *out);

#endif
