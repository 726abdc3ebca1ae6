/* reshape.c — views sharing data; the gradient is passed through unchanged. */
#include "reshape.h"

#include "error.h"

static void reshape_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = x viewed with another shape
    float *dx = tape_grad(t, r->in[0]);
    const float *dy = r->out->grad;
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += dy[i];
}

static const TapeOp RESHAPE_OP = {"reshape", reshape_backward_op};

Tensor *op_reshape(Tape *t, Tensor *x, int ndim, const int *shape) {
    Tensor *y = arena_alloc(t->arena, sizeof *y);
    *y = tensor_view(x->data, ndim, shape);
    if (y->numel != x->numel) {
        char sx[64], sy[64];
        DQ_FATAL("reshape: %s has %zu elements, %s has %zu", tensor_shape_str(x, sx, sizeof sx),
                 x->numel, tensor_shape_str(y, sy, sizeof sy), y->numel);
    }
    tape_push(t, &RESHAPE_OP, y, 1, &x);
    return y;
}

Tensor *op_flatten(Tape *t, Tensor *x) {
    int n = x->shape[0];
    return op_reshape(t, x, 2, (const int[]){n, (int)(x->numel / (size_t)n)});
}
