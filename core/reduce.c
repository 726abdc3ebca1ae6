/* reduce.c — sum and mean. */
#include "reduce.h"

static void reduce_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = scale · Σ x   =>   dx += scale · dy
    float g = r->out->grad[0] * *(const float *)r->saved, *dx = tape_grad(t, r->in[0]);
    for (size_t i = 0; i < r->in[0]->numel; i++) dx[i] += g;
}

static const TapeOp SUM_OP = {"sum", reduce_backward_op};
static const TapeOp MEAN_OP = {"mean", reduce_backward_op};

static Tensor *reduce(Tape *t, const TapeOp *op, Tensor *x, float scale) {
    double s = 0;
    for (size_t i = 0; i < x->numel; i++) s += x->data[i];
    Tensor *y = tensor_new(t->arena, 1, (const int[]){1});
    y->data[0] = (float)(s * scale);
    TapeRecord *r = tape_push(t, op, y, 1, &x);
    if (r) {
        float *sp = arena_alloc(t->arena, sizeof *sp);
        *sp = scale;
        r->saved = sp;
    }
    return y;
}

Tensor *op_sum(Tape *t, Tensor *x) { return reduce(t, &SUM_OP, x, 1.0f); }

Tensor *op_mean(Tape *t, Tensor *x) { return reduce(t, &MEAN_OP, x, 1.0f / (float)x->numel); }
