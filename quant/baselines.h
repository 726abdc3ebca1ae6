/* baselines.h — the fixed-bit quantizers DDQ is compared against (LSQ: Esser et al. 2020; LSQ+:
 * Bhalgat et al. 2020; PACT: Choi et al. 2018; DoReFa: Zhou et al. 2016).
 * All share the Quantizer interface; each names its gradient estimator:
 *
 *   minmax  uniform round-to-nearest over the range [min, max] (weights: ±max|w| of the current
 *           weights; activations: running min/max, momentum 0.9, unsigned data from 0), zero
 *           exact; straight-through estimator inside the range, zero outside.
 *   dorefa  weights only: w_q = 2·quant_b(tanh(w)/(2·max|tanh(w)|) + ½) − 1, times max|w| at
 *           initialisation (ours: keeps a fine-tuned layer's scale); STE through the rounding,
 *           max|tanh(w)| treated as a constant: dw = dy·(1 − tanh²w)/max|tanh w|·max|w|₀.
 *   pact    activations only: y = clip(x, 0, α) rounded to 2^b − 1 steps of α/(2^b − 1); STE
 *           for 0 <= x < α, dα = dy where x >= α; α learned with weight decay. Unsigned only —
 *           signed inputs lose their negative half, which the comparison is meant to show.
 *   lsq     v̂ = round(clip(v/s, −Q_N, Q_P))·s (Esser et al. 2020); dv = dy inside, ds = dy·
 *           (round(v/s) − v/s) inside, −Q_N below, Q_P above, scaled by 1/sqrt(N·Q_P); s starts
 *           at 2·mean|v|/sqrt(Q_P). Signed activations get the LSQ+ offset β: v̂ = q(v − β) + β,
 *           dβ = dy where clipped. Variant lsq_bin_grad: ds = dy·round(v/s) inside, without
 *           Esser et al.'s −v/s: the bins held fixed, as DDQ's level gradient (docs/ddq.md §3).
 * channels > 1 (weights): one range / step per output channel (the last weight dim).
 */
#ifndef DQ_BASELINES_H
#define DQ_BASELINES_H

#include "quantizer.h"

typedef enum { BASE_MINMAX, BASE_DOREFA, BASE_PACT, BASE_LSQ } BaselineKind;

typedef struct BaselineConfig {
    float percentile;   // calibration percentile for activation ranges (QuantConfig.percentile)
    bool lsq_bin_grad;  // variant: LSQ's ds = dy·round(v/s) inside, the bins held fixed (DDQ's level gradient)
} BaselineConfig;

/* channels: the weight's output channels (last dim) for per-channel weights, 1 per tensor
 * (activations: always 1). */
Quantizer *baseline_new(BaselineKind kind, ParamSlab *slab, const char *name, QuantRole role,
                        bool is_signed, bool pinned, int bits, long long elems, int channels,
                        const BaselineConfig *cfg);
bool baseline_is(const Quantizer *q);
/* A mixed-precision allocation sets an unpinned quantizer's bits before its first use
 * (calibration or first forward). */
void baseline_set_bits(Quantizer *q, int bits);
/* Forgets the calibration (an allocator trying one allocation after another): a weight quantizer
 * re-initialises its step from its weights at the next forward, an activation quantizer must be
 * calibrated again. */
void baseline_uncalibrate(Quantizer *q);
/* ‖Q(w) − w‖² for LSQ weights (signed) at `bits` with the step LSQ starts from, one step per
 * channel (elements i ≡ c mod channels): the perturbation a fine-tuning at those bits starts with. */
double baseline_lsq_init_error(const float *w, size_t n, int channels, int bits);
/* Learnable parameters for tests: LSQ step (and offset), PACT α. NULL when absent. */
Tensor *baseline_param(const Quantizer *q, int which);

#endif
