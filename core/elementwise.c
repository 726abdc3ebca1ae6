/* elementwise.c — add and scale. */
#include "elementwise.h"

#include <string.h>

static void add_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = act(a + b)   =>   da += dy·act'(y), db likewise
    ActKind act = *(const ActKind *)r->saved;
    const float *dy = r->out->grad, *y = r->out->data;
    for (int k = 0; k < 2; k++) {
        bool overwrite;
        float *d = tape_grad_overwrite(t, r->in[k], &overwrite);
        if (!d) continue;
        size_t n = r->out->numel;
        if (act == ACT_NONE && overwrite) memcpy(d, dy, n * sizeof(float));
        else if (act == ACT_NONE)
            for (size_t i = 0; i < n; i++) d[i] += dy[i];
        else if (overwrite)
            for (size_t i = 0; i < n; i++) d[i] = dy[i] * act_grad_mask(act, y[i]);
        else
            for (size_t i = 0; i < n; i++) d[i] += dy[i] * act_grad_mask(act, y[i]);
    }
}

/* Memory traffic: forward reads a and b and writes y; backward reads dy (and y, for the mask) and
 * adds it into both gradients (read and write each). */
static void add_cost(const TapeRecord *r, TapeCost *c) {
    double n = (double)r->out->numel;
    c->bytes[0] = 4 * 3 * n;
    c->bytes[1] = 4 * 6 * n;
}

static const TapeOp ADD_OP[3] = {{.name = "add", .backward = add_backward_op, .cost = add_cost},
                                 {.name = "add+relu", .backward = add_backward_op, .cost = add_cost},
                                 {.name = "add+relu6", .backward = add_backward_op, .cost = add_cost}};

Tensor *op_add_act(Tape *t, Tensor *a, Tensor *b, ActKind act) {
    tape_check_same_shape("add", a, b);
    Tensor *y = tensor_new(t->arena, a->ndim, a->shape);
    const float *restrict pa = a->data, *restrict pb = b->data;
    float *restrict py = y->data;
    if (act == ACT_NONE)
        for (size_t i = 0; i < a->numel; i++) py[i] = pa[i] + pb[i];
    else
        for (size_t i = 0; i < a->numel; i++) py[i] = act_apply(act, pa[i] + pb[i]);
    TapeRecord *r = tape_push(t, &ADD_OP[act], y, 2, (Tensor *[]){a, b});
    if (r) {
        ActKind *k = arena_alloc(t->arena, sizeof *k);
        *k = act;
        r->saved = k;
    }
    return y;
}

Tensor *op_add(Tape *t, Tensor *a, Tensor *b) { return op_add_act(t, a, b, ACT_NONE); }

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
