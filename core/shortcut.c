/* shortcut.c — subsample + channel zero-padding (ResNet option A). */
#include "shortcut.h"

#include <string.h>

#include "error.h"

typedef struct ShortcutSaved {
    int stride, lo;
} ShortcutSaved;

static void shortcut_backward_op(Tape *t, TapeRecord *r) {
    // forward: y[n][oh][ow][lo + c] = x[n][oh·s][ow·s][c]
    const ShortcutSaved *s = r->saved;
    Tensor *x = r->in[0], *y = r->out;
    int N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int OH = y->shape[1], OW = y->shape[2], OC = y->shape[3];
    float *dx = tape_grad(t, x);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const float *dy = y->grad + (((size_t)n * OH + oh) * OW + ow) * OC + s->lo;
                float *d = dx + (((size_t)n * H + oh * s->stride) * W + ow * s->stride) * C;
                for (int c = 0; c < C; c++) d[c] += dy[c];
            }
}

static const TapeOp SHORTCUT_OP = {"shortcut_pad", shortcut_backward_op};

Tensor *op_shortcut_pad(Tape *t, Tensor *x, int stride, int OC) {
    char sx[64];
    if (x->ndim != 4) DQ_FATAL("shortcut_pad: input %s must be (N, H, W, C)", tensor_shape_str(x, sx, sizeof sx));
    int N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    if (stride < 1 || OC < C || (OC - C) % 2)
        DQ_FATAL("shortcut_pad: stride %d and %d -> %d channels: need stride >= 1 and an even "
                 "channel increase", stride, C, OC);
    int OH = (H + stride - 1) / stride, OW = (W + stride - 1) / stride, lo = (OC - C) / 2;
    Tensor *y = tensor_new4(t->arena, N, OH, OW, OC);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float *d = y->data + (((size_t)n * OH + oh) * OW + ow) * OC;
                const float *s = x->data + (((size_t)n * H + oh * stride) * W + ow * stride) * C;
                memset(d, 0, (size_t)lo * sizeof(float));
                memcpy(d + lo, s, (size_t)C * sizeof(float));
                memset(d + lo + C, 0, (size_t)(OC - C - lo) * sizeof(float));
            }
    TapeRecord *r = tape_push(t, &SHORTCUT_OP, y, 1, &x);
    if (r) {
        ShortcutSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (ShortcutSaved){stride, lo};
        r->saved = s;
    }
    return y;
}
