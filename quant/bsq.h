/* bsq.h — a layer's weights as trainable bit planes, in the manner of BSQ (Yang et al., ICLR
 * 2021): precision falls where a group-lasso regulariser empties a whole plane.
 *
 *   representation  W = step · Σ_b (P_b − M_b) · 2^b,  b = 0 … n−1,  step = s / (2^n − 1),
 *                   P_b, M_b ∈ [0, 2] the positive and negative planes (binary after each
 *                   re-quantization; continuous, with room for carries, in between), s the scale
 *                   (max |W| when the layer is first decomposed).
 *   forward         W_q = step · round(Σ_b (P_b − M_b) · 2^b): the n-bit uniform quantization;
 *                   the rounding passes gradients straight through, so
 *                   ∂L/∂P_b = step·2^b·∂L/∂W_q and ∂L/∂M_b = −step·2^b·∂L/∂W_q.
 *   regulariser     α·w_l·Σ_b ‖[P_b; M_b]‖₂ with w_l = N_l·n_l / Σ N (BSQ's memory-aware weight:
 *                   a big, many-bit layer pays most), applied as the group lasso's proximal step
 *                   after each gradient step, [P_b; M_b] ← max(0, 1 − lr·α·w_l/‖·‖)·[P_b; M_b]:
 *                   an exact zero, which a subgradient step never reaches.
 *   re-quantization the planes' value rounded to an integer code (clipped to n bits) and
 *                   decomposed into binary planes again; then an all-zero most significant plane
 *                   is dropped (n − 1 bits, the step kept: the range shrinks) and an all-zero
 *                   least significant one too (n − 1 bits, codes halved, the step doubled: the
 *                   range kept), repeatedly, down to b_min bits. A zero plane in the middle stays.
 */
#ifndef DQ_BSQ_H
#define DQ_BSQ_H

#include <stddef.h>

#define BSQ_MAX_BITS 8

typedef struct BsqLayer {
    size_t n;      // weights
    int bits;      // the current precision
    float step;    // the value of one code unit
    float *pos;    // (BSQ_MAX_BITS × n) P_b at pos[b·n + i], b = 0 the least significant
    float *neg;    // M_b, likewise
} BsqLayer;

/* Decomposes w (n values) at `bits` bits, scale max |w| (an all-zero w: step 1). */
void bsq_init(BsqLayer *L, const float *w, size_t n, int bits);
void bsq_free(BsqLayer *L);

/* W_q into w (n values). */
void bsq_weight(const BsqLayer *L, float *w);
/* ‖[P_b; M_b]‖₂. */
double bsq_plane_norm(const BsqLayer *L, int b);

/* One step: planes −= lr·(straight-through gradient of grad_w), clipped to [0, 2], then the
 * proximal step of the group lasso with threshold `shrink` (= lr·α·w_l; 0: none). */
void bsq_step(BsqLayer *L, const float *grad_w, float lr, float shrink);

/* Re-quantization with precision adjustment (see the top); returns the bits. */
int bsq_requantize(BsqLayer *L, int b_min);

#endif
