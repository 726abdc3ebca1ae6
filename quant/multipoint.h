/* multipoint.h — multipoint quantization (Liu, Ye, Zhou & Liu, "Post-training Quantization with
 * Multiple Points: Mixed Precision without Mixed Precision", AAAI 2021): a weight vector (one
 * output channel) is approximated by a sum of low-bit vectors, each with its own scale,
 *
 *     w ≈ Σ_i a_i·q_i          q_i ∈ {−2^(b−1), …, 2^(b−1) − 1}^n,  a_i ∈ ℝ
 *
 * built greedily: each new point is the best single point for what the previous ones left,
 * r ← r − a·q. Every point is one more b-bit GEMM at inference, so a channel with k points
 * behaves as if it had more precision — on hardware with one bit width. The points go where they
 * matter: a budget of points over a layer's channels is spent one at a time on the channel whose
 * error on the layer's *output* is largest, (w − ŵ)ᵀ·C·(w − ŵ) with C the second moment of the
 * channel's inputs over a calibration batch.
 */
#ifndef DQ_MULTIPOINT_H
#define DQ_MULTIPOINT_H

#include <stddef.h>
#include <stdint.h>

#define MP_MAX_POINTS 8

/* The best single point for r (n values) at `bits`: a and the codes q minimising ‖r − a·q‖².
 * For a given a the best codes are round(r/a) clipped to the range, and for given codes the best
 * a is ⟨r, q⟩/⟨q, q⟩; the search tries a grid of scales of both signs from max|r| down, refines
 * each by alternating the two, and keeps the best. Returns ‖r − a·q‖². */
double mp_fit_point(const float *r, size_t n, int bits, float *a, int8_t *q);

/* Greedy points for w: approx gets Σ of the first `points`, err (may be NULL) the squared error
 * ‖w − approx‖² after each point (points values). */
void mp_approximate(const float *w, size_t n, int bits, int points, float *approx, double *err);

/* A layer's points: k channels of n weights each (channel c's weights at w[c·stride + i·step],
 * i < n), C the n × n input second moment per channel (shared: C_stride 0; per channel, e.g.
 * depthwise: n·n apart). Every channel gets one point (budget ≥ k), then `budget − k` more go one at a time to
 * the channel whose output error is largest (up to MP_MAX_POINTS each). Writes the approximation
 * into approx (same layout as w) and the points per channel into points; the points themselves,
 * when asked for (the integer engine runs them): channel c's point p scale in scales[p·k + c] and
 * its codes in codes[p·plane + c·stride + i·step] (plane = the layout's size), 0 for a point the
 * channel does not have (both MP_MAX_POINTS planes long). */
void mp_allocate(const float *w, int k, size_t n, size_t stride, size_t step, const double *C, size_t C_stride,
                 int bits, int budget, float *approx, int *points);
void mp_allocate_points(const float *w, int k, size_t n, size_t stride, size_t step, const double *C, size_t C_stride,
                        int bits, int budget, float *approx, int *points, float *scales, int8_t *codes, size_t plane);

#endif
