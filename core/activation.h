/* activation.h — pointwise non-linearities and dropout. Any shape; y has x's shape.
 *     relu:    y = max(x, 0)                    dy/dx = 1 where x > 0
 *     relu6:   y = min(max(x, 0), 6)            dy/dx = 1 where 0 < x < 6
 *     dropout: y = x·m, m = 1/(1−p) with probability 1−p, else 0 (training only; identity in
 *              eval mode or for p = 0). The mask is drawn from the caller's Rng in element order.
 */
#ifndef DQ_ACTIVATION_H
#define DQ_ACTIVATION_H

#include <stdint.h>

#include "rng.h"
#include "tape.h"

/* Activations that other ops can fuse (BatchNorm), and their derivative from the OUTPUT y:
 *     none: 1     relu: y > 0     relu6: 0 < y < 6     (the same sets as for the input) */
typedef enum { ACT_NONE, ACT_RELU, ACT_RELU6 } ActKind;

static inline float act_apply(ActKind a, float v) {
    if (a == ACT_NONE) return v;
    v = v > 0 ? v : 0;
    return a == ACT_RELU6 && v > 6 ? 6 : v;
}

static inline float act_grad_mask(ActKind a, float y) {
    return a == ACT_NONE ? 1.0f : (y > 0 && (a == ACT_RELU || y < 6)) ? 1.0f : 0.0f;
}

/* A per-channel affine map and activation over rows of C channels:
 *     y[r][c] = act(x[r][c]·scale[c] + shift[c])
 * BatchNorm's output pass, and the same pass run as a convolution's epilogue in evaluation
 * (BatchNorm fused into the convolution before it): one function, so both give the same bits.
 * y may be x. */
typedef struct ChannelAffine {
    const float *scale, *shift;  // (C)
    ActKind act;
} ChannelAffine;

void channel_affine_rows(float *y, const float *x, const ChannelAffine *a, size_t R, int C);

Tensor *op_relu(Tape *t, Tensor *x);
Tensor *op_relu6(Tape *t, Tensor *x);

/* A frozen activation pattern: the piece of ReLU or ReLU6 each element is on (0: below 0, 1: the
 * linear piece, 2: at ReLU6's 6), for every activation of a forward, in the order they ran. While
 * a tape has one (t->pattern), every activation — op_relu, op_relu6, and the ones BatchNorm and
 * the residual add fuse — goes through op_act_pattern: recording, it applies the activation and
 * appends the pattern; replaying, it takes the next recorded pattern and keeps to it (element 1:
 * y = x, 0: y = 0, 2: y = 6; the gradient passes where 1). With a pattern replayed the network is
 * smooth in its weights, so differences of its gradients do not jump at the kinks: HAWQ's
 * Hessian-vector products (quant/hawq.h). The forwards must run the same ops on the same shapes. */
typedef struct ActPattern {
    bool replay;      // false: record
    uint8_t **codes;  // (count) per activation, its elements' pieces
    size_t *n;        // (count) elements
    int count, cap;
    int next;         // the activation the forward reaches next
} ActPattern;

/* Start a forward: the next activation is the first one (a recording starts over). */
void act_pattern_rewind(ActPattern *p);
void act_pattern_free(ActPattern *p);  // its buffers; accepts NULL
Tensor *op_act_pattern(Tape *t, Tensor *x, ActKind act);
Tensor *op_dropout(Tape *t, Tensor *x, float p, Rng *rng);

/* Kernels (n elements). Backward accumulates. */
void relu_forward(float *y, const float *x, size_t n);
void relu_backward(float *dx, const float *dy, const float *x, size_t n);
void relu6_forward(float *y, const float *x, size_t n);
void relu6_backward(float *dx, const float *dy, const float *x, size_t n);

#endif
