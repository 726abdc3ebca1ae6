/* depthwise.c — depthwise convolution (G = C = OC, weight (KH, KW, 1, C)): the reference loops and
 * the fast kernels (see depthwise.h).
 *
 * Channels-last makes every tap a contiguous run of C channels. Each output pixel is computed
 * with its accumulators in registers, a block of up to 4 vectors of channels at a time:
 *     y[n][oh][ow][c] = b[c] + Σ_taps x[n][ih][iw][c] · w[kh][kw][c]
 * The input gradient is gathered the same way (each input pixel sums the taps that read it),
 * so it needs no scatter and no locking and runs over input rows in parallel:
 *     dx[n][ih][iw][c] += Σ_{taps with oh·s − p + kh = ih, ow·s − p + kw = iw} dy[n][oh][ow][c] · w[kh][kw][c]
 * dw and db are per-thread partial sums over images, combined in thread order.
 * Kernels with more than MAX_TAPS taps fall back to the reference kernel.
 * Legend as in conv_geom.h.
 */
#include "depthwise.h"

#include <string.h>

#include "simd.h"
#include "threads.h"

#define MAX_TAPS 64

/* ------------------------------------------------------------------ reference */
void depthwise_forward_ref(float *y, const float *x, const float *w, const float *b, const ConvGeom *g) {
    int C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++)
                for (int c = 0; c < C; c++) {
                    double s = b ? b[c] : 0;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            s += (double)x[(((size_t)n * g->H + ih) * g->W + iw) * C + c] * w[(size_t)(kh * g->KW + kw) * C + c];
                        }
                    y[(((size_t)n * g->OH + oh) * g->OW + ow) * C + c] = (float)s;
                }
}

void depthwise_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                            const ConvGeom *g) {
    // forward: y[n][oh][ow][c] = b[c] + Σ_{kh,kw} x[n][ih][iw][c] · w[kh][kw][c]
    int C = g->C;
    for (int n = 0; n < g->N; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++)
                for (int c = 0; c < C; c++) {
                    float d = dy[(((size_t)n * g->OH + oh) * g->OW + ow) * C + c];
                    if (db) db[c] += d;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            size_t xi = (((size_t)n * g->H + ih) * g->W + iw) * C + c, wi = (size_t)(kh * g->KW + kw) * C + c;
                            if (dx) dx[xi] += d * w[wi];
                            if (dw) dw[wi] += d * x[xi];
                        }
                }
}

/* ------------------------------------------------------------------ fast */

typedef struct DwJob {
    const ConvGeom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx;
    bool want_dw, want_db, dx_overwrite;
} DwJob;

/* out[c] = (init ? init[c] : 0) + Σ_t a[t][c] · b[t][c]  for c in [0, C). */
static void sum_of_products(float *restrict out, const float *init, const float *const *a,
                            const float *const *b, int taps, int C) {
    int c = 0;
    for (; c + 4 * VL <= C; c += 4 * VL) {
        vf acc[4];
        for (int v = 0; v < 4; v++) acc[v] = init ? vf_load(init + c + v * VL) : (vf){0};
        for (int t = 0; t < taps; t++)
            for (int v = 0; v < 4; v++) acc[v] += vf_load(a[t] + c + v * VL) * vf_load(b[t] + c + v * VL);
        for (int v = 0; v < 4; v++) vf_store(out + c + v * VL, acc[v]);
    }
    for (; c + VL <= C; c += VL) {
        vf acc = init ? vf_load(init + c) : (vf){0};
        for (int t = 0; t < taps; t++) acc += vf_load(a[t] + c) * vf_load(b[t] + c);
        vf_store(out + c, acc);
    }
    for (; c < C; c++) {
        float acc = init ? init[c] : 0;
        for (int t = 0; t < taps; t++) acc += a[t][c] * b[t][c];
        out[c] = acc;
    }
}

static void forward_rows(void *ctx, int begin, int end, int tid) {
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C;
    const float *xs[MAX_TAPS], *ws[MAX_TAPS];
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / g->OH, oh = row % g->OH;
        for (int ow = 0; ow < g->OW; ow++) {
            int taps = 0;
            for (int kh = 0; kh < g->KH; kh++) {
                int ih = oh * g->stride - g->pad + kh;
                if (ih < 0 || ih >= g->H) continue;
                for (int kw = 0; kw < g->KW; kw++) {
                    int iw = ow * g->stride - g->pad + kw;
                    if (iw < 0 || iw >= g->W) continue;
                    xs[taps] = j->x + (((size_t)n * g->H + ih) * g->W + iw) * C;
                    ws[taps++] = j->w + (size_t)(kh * g->KW + kw) * C;
                }
            }
            sum_of_products(j->y + ((size_t)row * g->OW + ow) * C, j->b, xs, ws, taps, C);
        }
    }
}

void depthwise_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g) {
    if (g->KH * g->KW > MAX_TAPS) {
        depthwise_forward_ref(y, x, w, b, g);
        return;
    }
    DwJob job = {.g = g, .x = x, .w = w, .b = b, .y = y};
    parallel_for(g->N * g->OH, forward_rows, &job);
}

/* dx over input rows [begin, end) (row = n·H + ih), gathering the taps that read each pixel. */
static void dx_rows(void *ctx, int begin, int end, int tid) {
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C, s = g->stride;
    const float *ds[MAX_TAPS], *ws[MAX_TAPS];
    for (int row = begin; row < end; row++) {
        int n = row / g->H, ih = row % g->H;
        for (int iw = 0; iw < g->W; iw++) {
            int taps = 0;
            for (int kh = 0; kh < g->KH; kh++) {
                int a = ih + g->pad - kh;  // = oh·s
                if (a < 0 || a % s || a / s >= g->OH) continue;
                for (int kw = 0; kw < g->KW; kw++) {
                    int b = iw + g->pad - kw;
                    if (b < 0 || b % s || b / s >= g->OW) continue;
                    ds[taps] = j->dy + (((size_t)n * g->OH + a / s) * g->OW + b / s) * C;
                    ws[taps++] = j->w + (size_t)(kh * g->KW + kw) * C;
                }
            }
            float *d = j->dx + ((size_t)row * g->W + iw) * C;
            sum_of_products(d, j->dx_overwrite ? NULL : d, ds, ws, taps, C);
        }
    }
}

static size_t partial_floats(const ConvGeom *g) { return (size_t)(g->KH * g->KW + 1) * g->C; }

static void dw_images(void *ctx, int begin, int end, int tid) {
    // forward: y[n][oh][ow][c] = b[c] + Σ_{kh,kw} x[n][ih][iw][c] · w[kh][kw][c]
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C;
    float *pdw = threads_scratch(tid, THREADS_SLOT_DEPTHWISE_PARTIAL, partial_floats(g));
    float *pdb = pdw + (size_t)g->KH * g->KW * C;
    memset(pdw, 0, partial_floats(g) * sizeof(float));
    for (int n = begin; n < end; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++) {
                const float *restrict d = j->dy + (((size_t)n * g->OH + oh) * g->OW + ow) * C;
                if (j->want_db)
                    for (int c = 0; c < C; c++) pdb[c] += d[c];
                if (!j->want_dw) continue;
                for (int kh = 0; kh < g->KH; kh++) {
                    int ih = oh * g->stride - g->pad + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    for (int kw = 0; kw < g->KW; kw++) {
                        int iw = ow * g->stride - g->pad + kw;
                        if (iw < 0 || iw >= g->W) continue;
                        float *restrict dwp = pdw + (size_t)(kh * g->KW + kw) * C;
                        const float *restrict xp = j->x + (((size_t)n * g->H + ih) * g->W + iw) * C;
                        for (int c = 0; c < C; c++) dwp[c] += d[c] * xp[c];
                    }
                }
            }
}

void depthwise_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const ConvGeom *g, bool dx_overwrite) {
    if (g->KH * g->KW > MAX_TAPS) {
        if (dx && dx_overwrite) memset(dx, 0, (size_t)g->N * g->H * g->W * g->C * sizeof(float));
        depthwise_backward_ref(dx, dw, db, dy, x, w, g);
        return;
    }
    DwJob job = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .want_dw = dw != NULL,
                 .want_db = db != NULL, .dx_overwrite = dx_overwrite};
    if (dx) parallel_for(g->N * g->H, dx_rows, &job);
    if (!dw && !db) return;
    parallel_for(g->N, dw_images, &job);
    size_t nw = (size_t)g->KH * g->KW * g->C;
    for (int t = 0; t < threads_count(); t++) {
        if (!parallel_has_work(g->N, t)) continue;
        const float *p = threads_scratch(t, THREADS_SLOT_DEPTHWISE_PARTIAL, partial_floats(g));
        if (dw)
            for (size_t i = 0; i < nw; i++) dw[i] += p[i];
        if (db)
            for (int c = 0; c < g->C; c++) db[c] += p[nw + c];
    }
}
