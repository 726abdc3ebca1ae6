/* als.h — adaptive loss scaling (Zhao, Vogel, Ahmed & Luk: "Adaptive Loss Scaling for Mixed
 * Precision Training", 2019, published as "Reducing Underflow in Mixed Precision Training by
 * Gradient Scaling", IJCAI 2020), as we read the paper and its public code: instead of one loss
 * scale, each layer multiplies the gradient it passes down by its own factor, chosen from the
 * statistics of that gradient and of the layer's weights.
 *
 * For a layer y = x·W (a convolution or a linear layer) the backward computes dx = dy·Wᵀ, sums of
 * fan_in products dy·w. Treating dy's and W's elements as independent, one product has standard
 * deviation σ_p = sqrt((σ_dy² + μ_dy²)(σ_W² + μ_W²)), and a sum of fan_in of them behind a ReLU
 * (half of them zero) σ = σ_p·sqrt(fan_in/2). The factor
 *
 *     α_uf = u_min / (t·σ)        t = √2·erfinv(10⁻³): at most 0.1% of a N(0, σ) falls in (−u_min/α, u_min/α)
 *     α_of = (u_max / fan_in) / (max|dy|·max|W|)       no sum of fan_in products can overflow
 *     α    = 2^⌊log2 min(max(α_uf, 1), α_of, 16, 1024/s)⌋
 *
 * with u_min = 2^−24 and u_max = 65504 (binary16), s the product of the factors of the layers
 * after it (on top of the loss scale dy started with): at most ×16 per layer and 1024 in all, powers of two so
 * that scaling is exact. Other ops pass their gradient's scale on unchanged. Where gradients of
 * different scales meet (a residual branch and its shortcut), the buffer is rescaled to the
 * newest contribution's scale before it is added (exact: powers of two). Each parameter's
 * gradient carries the scale of the gradient it was computed from, and is divided by it before
 * the update.
 */
#ifndef DQ_ALS_H
#define DQ_ALS_H

#include <stddef.h>

#define ALS_U_MIN 5.9604644775390625e-08  // 2^−24, the smallest half
#define ALS_U_MAX 65504.0
#define ALS_LAYER_MAX 16.0                 // one layer's factor at most
#define ALS_TOTAL_MAX 1024.0               // the product along a path at most

/* The factor for a layer whose output gradient dy (n_dy values, scaled by s times the loss scale)
 * meets weights w (n_w values) of the given fan-in. */
double als_factor(const float *dy, size_t n_dy, const float *w, size_t n_w, long fan_in, double s);

/* The scale each tensor's gradient carries during one backward: a small open-addressing table
 * keyed by the tensor's address, cleared every step. */
typedef struct AlsScales {
    const void **key;
    double *scale;
    int cap, n;
} AlsScales;

void als_scales_clear(AlsScales *m);
void als_scales_free(AlsScales *m);
/* The scale of key, or 0 when it has none yet. */
double als_scale_of(const AlsScales *m, const void *key);
void als_scale_set(AlsScales *m, const void *key, double scale);

#endif
