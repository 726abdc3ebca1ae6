/* activation.c — relu, relu6, dropout. Single loops the compiler vectorises; no _fast twin. */
#include "activation.h"

#include <math.h>

#include "error.h"

void relu_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void relu_backward(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    // forward: y = max(x, 0)
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0;
}

/* act(v·s + h): the one expression both loops below compile (so in place or not, the same bits). */
static inline float affine_act(float v, float s, float h, float hi, bool act) {
    v = v * s + h;
    if (!act) return v;
    v = v > 0 ? v : 0;
    return v < hi ? v : hi;
}

void channel_affine_rows(float *y, const float *x, const ChannelAffine *a, size_t R, int C) {
    const float *restrict sc = a->scale, *restrict sh = a->shift;
    float hi = a->act == ACT_RELU6 ? 6.0f : INFINITY;
    bool act = a->act != ACT_NONE;
    for (size_t r = 0; r < R; r++) {
        float *restrict yr = y + r * C;
        if (x == y && act)
            for (int c = 0; c < C; c++) yr[c] = affine_act(yr[c], sc[c], sh[c], hi, true);
        else if (x == y)
            for (int c = 0; c < C; c++) yr[c] = affine_act(yr[c], sc[c], sh[c], hi, false);
        else {
            const float *restrict xr = x + r * C;
            if (act)
                for (int c = 0; c < C; c++) yr[c] = affine_act(xr[c], sc[c], sh[c], hi, true);
            else
                for (int c = 0; c < C; c++) yr[c] = affine_act(xr[c], sc[c], sh[c], hi, false);
        }
    }
}

void relu6_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? (x[i] < 6 ? x[i] : 6) : 0;
}

void relu6_backward(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    // forward: y = min(max(x, 0), 6)
    for (size_t i = 0; i < n; i++) dx[i] += (x[i] > 0 && x[i] < 6) ? dy[i] : 0;
}

static void relu_backward_op(Tape *t, TapeRecord *r) {
    relu_backward(tape_grad(t, r->in[0]), r->out->grad, r->in[0]->data, r->out->numel);
}

static void relu6_backward_op(Tape *t, TapeRecord *r) {
    relu6_backward(tape_grad(t, r->in[0]), r->out->grad, r->in[0]->data, r->out->numel);
}

static const TapeOp RELU_OP = {"relu", relu_backward_op};
static const TapeOp RELU6_OP = {"relu6", relu6_backward_op};

Tensor *op_relu(Tape *t, Tensor *x) {
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    relu_forward(y->data, x->data, x->numel);
    tape_push(t, &RELU_OP, y, 1, &x);
    return y;
}

Tensor *op_relu6(Tape *t, Tensor *x) {
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    relu6_forward(y->data, x->data, x->numel);
    tape_push(t, &RELU6_OP, y, 1, &x);
    return y;
}

static void dropout_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = x·m
    const float *m = r->saved, *dy = r->out->grad;
    float *dx = tape_grad(t, r->in[0]);
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += dy[i] * m[i];
}

static const TapeOp DROPOUT_OP = {"dropout", dropout_backward_op};

Tensor *op_dropout(Tape *t, Tensor *x, float p, Rng *rng) {
    if (!(p >= 0 && p < 1)) DQ_FATAL("dropout: probability %g must be in [0, 1)", p);
    if (!t->training || p == 0) return x;
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    float *m = arena_floats(t->arena, x->numel), keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < x->numel; i++) {
        m[i] = rng_uniform(rng) >= p ? keep : 0.0f;
        y->data[i] = x->data[i] * m[i];
    }
    TapeRecord *r = tape_push(t, &DROPOUT_OP, y, 1, &x);
    if (r) r->saved = m;
    return y;
}
