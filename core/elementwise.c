/* elementwise.c — add and scale. */
#include "elementwise.h"

#include <string.h>

static void add_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = a + b
    const float *dy = r->out->grad;
    for (int k = 0; k < 2; k++) {
        bool overwrite;
        float *d = tape_grad_overwrite(t, r->in[k], &overwrite);
        if (d && overwrite) memcpy(d, dy, r->out->numel * sizeof(float));
        else if (d)
            for (size_t i = 0; i < r->out->numel; i++) d[i] += dy[i];
    }
}

static const TapeOp ADD_OP = {"add", add_backward_op};

Tensor *op_add(Tape *t, Tensor *a, Tensor *b) {
    tape_check_same_shape("add", a, b);
    Tensor *y = tensor_new(t->arena, a->ndim, a->shape);
    const float *restrict pa = a->data, *restrict pb = b->data;
    float *restrict py = y->data;
    for (size_t i = 0; i < a->numel; i++) py[i] = pa[i] + pb[i];
    tape_push(t, &ADD_OP, y, 2, (Tensor *[]){a, b});
    return y;
}

static void scale_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = s·x
    float s = *(const float *)r->saved, *dx = tape_grad(t, r->in[0]);
    const float *dy = r->out->grad;
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += s * dy[i];
}

static const TapeOp SCALE_OP = {"scale", scale_backward_op};

Tensor *op_scale(Tape *t, Tensor *x, float s) {
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    for (size_t i = 0; i < x->numel; i++) y->data[i] = s * x->data[i];
    TapeRecord *r = tape_push(t, &SCALE_OP, y, 1, &x);
    if (r) {
        float *sp = arena_alloc(t->arena, sizeof *sp);
        *sp = s;
        r->saved = sp;
    }
    return y;
}
