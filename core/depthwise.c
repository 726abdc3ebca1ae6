/* depthwise.c — fast depthwise convolution (G = C = OC, weight (KH, KW, 1, C)).
 *
 * Channels-last makes every tap a contiguous run of C multiply-adds, which the compiler
 * vectorises: y[n][oh][ow][:] += x[n][ih][iw][:] * w[kh][kw][:]. The forward runs over output
 * rows in parallel. The backward runs over images in parallel (images own disjoint slices of
 * dx); dw and db are per-thread partial sums combined in thread order.
 * Legend as in conv2d.c.
 */
#include <string.h>

#include "conv2d.h"
#include "threads.h"

typedef struct DwJob {
    const ConvGeom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx;
    bool want_dw, want_db;
} DwJob;

static void forward_rows(void *ctx, int begin, int end, int tid) {
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C;
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / g->OH, oh = row % g->OH;
        for (int ow = 0; ow < g->OW; ow++) {
            float *restrict yp = j->y + ((size_t)row * g->OW + ow) * C;
            if (j->b) memcpy(yp, j->b, (size_t)C * sizeof(float));
            else memset(yp, 0, (size_t)C * sizeof(float));
            for (int kh = 0; kh < g->KH; kh++) {
                int ih = oh * g->stride - g->pad + kh;
                if (ih < 0 || ih >= g->H) continue;
                for (int kw = 0; kw < g->KW; kw++) {
                    int iw = ow * g->stride - g->pad + kw;
                    if (iw < 0 || iw >= g->W) continue;
                    const float *restrict xp = j->x + (((size_t)n * g->H + ih) * g->W + iw) * C;
                    const float *restrict wp = j->w + (size_t)(kh * g->KW + kw) * C;
                    for (int c = 0; c < C; c++) yp[c] += xp[c] * wp[c];
                }
            }
        }
    }
}

void depthwise_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g) {
    DwJob job = {.g = g, .x = x, .w = w, .b = b, .y = y};
    parallel_for(g->N * g->OH, forward_rows, &job);
}

static size_t partial_floats(const ConvGeom *g) { return (size_t)(g->KH * g->KW + 1) * g->C; }

static void backward_images(void *ctx, int begin, int end, int tid) {
    // forward: y[n][oh][ow][c] = b[c] + Σ_{kh,kw} x[n][ih][iw][c] · w[kh][kw][c]
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C;
    float *pdw = threads_scratch(tid, THREADS_SLOT_KERNEL, partial_floats(g));
    float *pdb = pdw + (size_t)g->KH * g->KW * C;
    memset(pdw, 0, partial_floats(g) * sizeof(float));
    for (int n = begin; n < end; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const float *restrict d = j->dy + (((size_t)n * g->OH + oh) * g->OW + ow) * C;
                if (j->want_db)
                    for (int c = 0; c < C; c++) pdb[c] += d[c];
                for (int kh = 0; kh < g->KH; kh++) {
                    int ih = oh * g->stride - g->pad + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    for (int kw = 0; kw < g->KW; kw++) {
                        int iw = ow * g->stride - g->pad + kw;
                        if (iw < 0 || iw >= g->W) continue;
                        size_t xo = (((size_t)n * g->H + ih) * g->W + iw) * C;
                        size_t wo = (size_t)(kh * g->KW + kw) * C;
                        if (j->dx) {
                            float *restrict dxp = j->dx + xo;
                            const float *restrict wp = j->w + wo;
                            for (int c = 0; c < C; c++) dxp[c] += d[c] * wp[c];
                        }
                        if (j->want_dw) {
                            float *restrict dwp = pdw + wo;
                            const float *restrict xp = j->x + xo;
                            for (int c = 0; c < C; c++) dwp[c] += d[c] * xp[c];
                        }
                    }
                }
            }
}

void depthwise_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const ConvGeom *g) {
    DwJob job = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .want_dw = dw != NULL, .want_db = db != NULL};
    parallel_for(g->N, backward_images, &job);
    size_t nw = (size_t)g->KH * g->KW * g->C;
    for (int t = 0; t < threads_count(); t++) {
        if (!parallel_has_work(g->N, t)) continue;
        const float *p = threads_scratch(t, THREADS_SLOT_KERNEL, partial_floats(g));
        if (dw)
            for (size_t i = 0; i < nw; i++) dw[i] += p[i];
        if (db)
            for (int c = 0; c < g->C; c++) db[c] += p[nw + c];
    }
}
