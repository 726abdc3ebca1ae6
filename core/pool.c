/* pool.c — pooling kernels (channels-last; inner loops run over C) and graph ops.
 * Legend: N batch, H W input, OH OW output, C channels, k window, s stride, p padding. */
#include "pool.h"

#include <float.h>
#include <string.h>

#include "error.h"

typedef struct PoolGeom {
    int N, H, W, C, OH, OW;
    Pool2dArgs a;
} PoolGeom;

static PoolGeom pool_geom(const char *op, const Tensor *x, Pool2dArgs a) {
    char sx[64];
    if (x->ndim != 4) DQ_FATAL("%s: input %s must be (N, H, W, C)", op, tensor_shape_str(x, sx, sizeof sx));
    if (a.kernel < 1 || a.stride < 1 || a.pad < 0 || a.pad > a.kernel / 2)
        DQ_FATAL("%s: kernel %d, stride %d, pad %d: need kernel, stride >= 1 and 0 <= pad <= kernel/2",
                 op, a.kernel, a.stride, a.pad);
    PoolGeom g = {.N = x->shape[0], .H = x->shape[1], .W = x->shape[2], .C = x->shape[3], .OH = 0, .OW = 0, .a = a};
    if (a.kernel > g.H + 2 * a.pad || a.kernel > g.W + 2 * a.pad)
        DQ_FATAL("%s: %dx%d window does not fit a %dx%d input", op, a.kernel, a.kernel, g.H, g.W);
    g.OH = (g.H + 2 * a.pad - a.kernel) / a.stride + 1;
    g.OW = (g.W + 2 * a.pad - a.kernel) / a.stride + 1;
    return g;
}

/* ------------------------------------------------------------------ max */
typedef struct MaxSaved {
    PoolGeom g;
    int *argmax;  // (N, OH, OW, C): flat index into x of the chosen element
} MaxSaved;

static void maxpool_backward_op(Tape *t, TapeRecord *r) {
    // forward: y[o] = x[argmax[o]]
    const MaxSaved *s = r->saved;
    float *dx = tape_grad(t, r->in[0]);
    const float *dy = r->out->grad;
    for (size_t o = 0; o < r->out->numel; o++) dx[s->argmax[o]] += dy[o];
}

static const TapeOp MAXPOOL_OP = {"maxpool2d", maxpool_backward_op};

Tensor *op_maxpool2d(Tape *t, Tensor *x, Pool2dArgs a) {
    PoolGeom g = pool_geom("maxpool2d", x, a);
    Tensor *y = tensor_new4(t->arena, g.N, g.OH, g.OW, g.C);
    int *argmax = arena_alloc(t->arena, dq_mul_size(y->numel, sizeof(int)));
    float *best = arena_floats(t->arena, (size_t)g.C);
    for (int n = 0; n < g.N; n++)
        for (int oh = 0; oh < g.OH; oh++)
            for (int ow = 0; ow < g.OW; ow++) {
                size_t o = (((size_t)n * g.OH + oh) * g.OW + ow) * g.C;
                for (int c = 0; c < g.C; c++) best[c] = -FLT_MAX, argmax[o + c] = -1;
                for (int kh = 0; kh < a.kernel; kh++) {
                    int ih = oh * a.stride - a.pad + kh;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int kw = 0; kw < a.kernel; kw++) {
                        int iw = ow * a.stride - a.pad + kw;
                        if (iw < 0 || iw >= g.W) continue;
                        size_t i = (((size_t)n * g.H + ih) * g.W + iw) * g.C;
                        for (int c = 0; c < g.C; c++)
                            if (x->data[i + c] > best[c] || argmax[o + c] < 0) {
                                best[c] = x->data[i + c];
                                argmax[o + c] = (int)(i + c);
                            }
                    }
                }
                memcpy(y->data + o, best, (size_t)g.C * sizeof(float));
            }
    TapeRecord *r = tape_push(t, &MAXPOOL_OP, y, 1, &x);
    if (r) {
        MaxSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (MaxSaved){g, argmax};
        r->saved = s;
    }
    return y;
}

/* ------------------------------------------------------------------ average */
static void avgpool_backward_op(Tape *t, TapeRecord *r) {
    // forward: y[n][oh][ow][c] = Σ_window x / k²
    const PoolGeom *g = r->saved;
    float *dx = tape_grad(t, r->in[0]);
    const float *dy = r->out->grad;
    float inv = 1.0f / (float)(g->a.kernel * g->a.kernel);
    for (int n = 0; n < g->N; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const float *d = dy + (((size_t)n * g->OH + oh) * g->OW + ow) * g->C;
                for (int kh = 0; kh < g->a.kernel; kh++) {
                    int ih = oh * g->a.stride - g->a.pad + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    for (int kw = 0; kw < g->a.kernel; kw++) {
                        int iw = ow * g->a.stride - g->a.pad + kw;
                        if (iw < 0 || iw >= g->W) continue;
                        float *p = dx + (((size_t)n * g->H + ih) * g->W + iw) * g->C;
                        for (int c = 0; c < g->C; c++) p[c] += d[c] * inv;
                    }
                }
            }
}

static const TapeOp AVGPOOL_OP = {"avgpool2d", avgpool_backward_op};

Tensor *op_avgpool2d(Tape *t, Tensor *x, Pool2dArgs a) {
    PoolGeom g = pool_geom("avgpool2d", x, a);
    Tensor *y = tensor_zeros(t->arena, 4, (const int[]){g.N, g.OH, g.OW, g.C});
    float inv = 1.0f / (float)(a.kernel * a.kernel);
    for (int n = 0; n < g.N; n++)
        for (int oh = 0; oh < g.OH; oh++)
            for (int ow = 0; ow < g.OW; ow++) {
                float *o = y->data + (((size_t)n * g.OH + oh) * g.OW + ow) * g.C;
                for (int kh = 0; kh < a.kernel; kh++) {
                    int ih = oh * a.stride - a.pad + kh;
                    if (ih < 0 || ih >= g.H) continue;
                    for (int kw = 0; kw < a.kernel; kw++) {
                        int iw = ow * a.stride - a.pad + kw;
                        if (iw < 0 || iw >= g.W) continue;
                        const float *p = x->data + (((size_t)n * g.H + ih) * g.W + iw) * g.C;
                        for (int c = 0; c < g.C; c++) o[c] += p[c];
                    }
                }
                for (int c = 0; c < g.C; c++) o[c] *= inv;
            }
    TapeRecord *r = tape_push(t, &AVGPOOL_OP, y, 1, &x);
    if (r) {
        PoolGeom *s = arena_alloc(t->arena, sizeof *s);
        *s = g;
        r->saved = s;
    }
    return y;
}

/* ------------------------------------------------------------------ global average */
static void global_avgpool_backward_op(Tape *t, TapeRecord *r) {
    // forward: y[n][c] = Σ_{h,w} x[n][h][w][c] / (H·W)
    Tensor *x = r->in[0];
    int N = x->shape[0], P = x->shape[1] * x->shape[2], C = x->shape[3];
    float *dx = tape_grad(t, x), inv = 1.0f / (float)P;
    const float *dy = r->out->grad;
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++) {
            float *d = dx + ((size_t)n * P + p) * C;
            for (int c = 0; c < C; c++) d[c] += dy[(size_t)n * C + c] * inv;
        }
}

static const TapeOp GLOBAL_AVGPOOL_OP = {"global_avgpool", global_avgpool_backward_op};

Tensor *op_global_avgpool(Tape *t, Tensor *x) {
    char sx[64];
    if (x->ndim != 4) DQ_FATAL("global_avgpool: input %s must be (N, H, W, C)", tensor_shape_str(x, sx, sizeof sx));
    int N = x->shape[0], P = x->shape[1] * x->shape[2], C = x->shape[3];
    Tensor *y = tensor_zeros(t->arena, 2, (const int[]){N, C});
    for (int n = 0; n < N; n++) {
        float *o = y->data + (size_t)n * C;
        for (int p = 0; p < P; p++) {
            const float *s = x->data + ((size_t)n * P + p) * C;
            for (int c = 0; c < C; c++) o[c] += s[c];
        }
        for (int c = 0; c < C; c++) o[c] /= (float)P;
    }
    tape_push(t, &GLOBAL_AVGPOOL_OP, y, 1, &x);
    return y;
}
