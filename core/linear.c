/* linear.c — matmul and linear: reference loops, GEMM-based fast kernels, graph ops.
 * Legend: N rows (batch), IN input features, OUT output features. */
#include "linear.h"

#include "error.h"
#include "gemm.h"
#include "ops.h"

void linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N, int IN,
                        int OUT) {
    // y (N, OUT) = x (N, IN) · w (IN, OUT) + b (OUT)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < IN; i++) s += (double)x[(size_t)n * IN + i] * w[(size_t)i * OUT + o];
            y[(size_t)n * OUT + o] = (float)s;
        }
}

void linear_forward_fast(float *y, const float *x, const float *w, const float *b, int N, int IN,
                         int OUT) {
    gemm(false, false, N, OUT, IN, x, IN, w, OUT, 0.0f, y, OUT);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) y[(size_t)n * OUT + o] += b[o];
}

void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int IN, int OUT) {
    // forward: y[n][o] = b[o] + Σ_i x[n][i] w[i][o]
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            float g = dy[(size_t)n * OUT + o];
            if (db) db[o] += g;
            for (int i = 0; i < IN; i++) {
                if (dx) dx[(size_t)n * IN + i] += g * w[(size_t)i * OUT + o];
                if (dw) dw[(size_t)i * OUT + o] += g * x[(size_t)n * IN + i];
            }
        }
}

void linear_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int N, int IN, int OUT) {
    // forward: y = x·w + b   =>   dx += dy·wᵀ,  dw += xᵀ·dy,  db += Σ_n dy
    if (dx) gemm(false, true, N, IN, OUT, dy, OUT, w, OUT, 1.0f, dx, IN);
    if (dw) gemm(true, false, IN, OUT, N, x, IN, dy, OUT, 1.0f, dw, OUT);
    if (db)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) db[o] += dy[(size_t)n * OUT + o];
}

/* ------------------------------------------------------------------ graph ops */
static void linear_backward_op(Tape *t, TapeRecord *r) {
    Tensor *x = r->in[0], *w = r->in[1], *b = r->in[2], *y = r->out;
    int N = x->shape[0], IN = x->shape[1], OUT = w->shape[1];
    float *dx = tape_grad_of(t, x), *dw = tape_grad_of(t, w), *db = tape_grad_of(t, b);
    if (r->ref) linear_backward_ref(dx, dw, db, y->grad, x->data, w->data, N, IN, OUT);
    else linear_backward_fast(dx, dw, db, y->grad, x->data, w->data, N, IN, OUT);
}

static const TapeOp LINEAR_OP = {"linear", linear_backward_op};
static const TapeOp MATMUL_OP = {"matmul", linear_backward_op};

static Tensor *linear_common(Tape *t, const TapeOp *op, Tensor *x, Tensor *w, Tensor *b) {
    char sx[64], sw[64];
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[0])
        DQ_FATAL("%s: input %s and weight %s do not multiply (need (N, K) and (K, M))", op->name,
                 tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
    if (b && (b->numel != (size_t)w->shape[1]))
        DQ_FATAL("%s: bias has %zu elements, weight has %d outputs", op->name, b->numel, w->shape[1]);
    int N = x->shape[0], IN = x->shape[1], OUT = w->shape[1];
    Tensor *y = tensor_new2(t->arena, N, OUT);
    if (t->ref_kernels) linear_forward_ref(y->data, x->data, w->data, b ? b->data : NULL, N, IN, OUT);
    else linear_forward_fast(y->data, x->data, w->data, b ? b->data : NULL, N, IN, OUT);
    tape_push(t, op, y, 3, (Tensor *[]){x, w, b});
    return y;
}

Tensor *op_matmul(Tape *t, Tensor *a, Tensor *b) { return linear_common(t, &MATMUL_OP, a, b, NULL); }

Tensor *op_linear(Tape *t, Tensor *x, Tensor *weight, Tensor *bias) {
    return linear_common(t, &LINEAR_OP, x, weight, bias);
}
