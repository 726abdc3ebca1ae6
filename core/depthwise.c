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
    const ChannelAffine *after;  // forward: applied to each finished output row (NULL: none)
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

/* One output pixel by the general path: its valid taps, then sum_of_products. */
static void forward_pixel(const DwJob *j, int n, int oh, int ow) {
    const ConvGeom *g = j->g;
    const float *xs[MAX_TAPS], *ws[MAX_TAPS];
    int taps = 0, C = g->C;
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
    sum_of_products(j->y + (((size_t)n * g->OH + oh) * g->OW + ow) * C, j->b, xs, ws, taps, C);
}

/* DW_BLOCK adjacent outputs of a row, 3×3 kernel, stride s (1 or 2), every tap inside the image
 * horizontally, rows kh0..kh1−1 inside it vertically; one vector of channels at a time with its 9
 * weights in registers, each input vector loaded once for the outputs that read it. Each output
 * sums its taps in forward_pixel's order (bias, then kh, then kw): the same result to the bit. */
#define DW_BLOCK 4
static inline __attribute__((always_inline)) void forward_block3(const DwJob *j, int n, int oh, int ow0, int kh0,
                                                                 int kh1, const int s) {
    const ConvGeom *g = j->g;
    int C = g->C;
    const float *xrow[3];
    for (int kh = kh0; kh < kh1; kh++)
        xrow[kh] = j->x + (((size_t)n * g->H + oh * s - g->pad + kh) * g->W + (size_t)(ow0 * s - g->pad)) * C;
    float *y = j->y + (((size_t)n * g->OH + oh) * g->OW + ow0) * C;
    for (int c = 0; c < C; c += VL) {
        vf acc[DW_BLOCK], wv[9];
        for (int o = 0; o < DW_BLOCK; o++) acc[o] = j->b ? vf_load(j->b + c) : (vf){0};
        for (int t = 0; t < 9; t++) wv[t] = vf_load(j->w + (size_t)t * C + c);
        for (int kh = kh0; kh < kh1; kh++) {
            vf xv[(DW_BLOCK - 1) * 2 + 3];
            for (int i = 0; i < (DW_BLOCK - 1) * s + 3; i++) xv[i] = vf_load(xrow[kh] + (size_t)i * C + c);
            for (int kw = 0; kw < 3; kw++)
                for (int o = 0; o < DW_BLOCK; o++) acc[o] += xv[o * s + kw] * wv[kh * 3 + kw];
        }
        for (int o = 0; o < DW_BLOCK; o++) vf_store(y + (size_t)o * C + c, acc[o]);
    }
}

static void forward_rows(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int s = g->stride, p = g->pad;
    // the blocked path: 3×3, stride 1 or 2, whole vectors of channels; outputs ow in [lo, hi) have
    // every horizontal tap inside the image
    bool blocked = g->KH == 3 && g->KW == 3 && (s == 1 || s == 2) && g->C % VL == 0;
    int lo = (p + s - 1) / s, hi = g->W - 3 + p >= 0 ? (g->W - 3 + p) / s + 1 : 0;
    hi = hi < g->OW ? hi : g->OW;
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / g->OH, oh = row % g->OH, ow = 0;
        if (blocked) {
            int kh0 = 0, kh1 = 3;
            while (oh * s - p + kh0 < 0) kh0++;
            while (kh1 > kh0 && oh * s - p + kh1 - 1 >= g->H) kh1--;
            for (; ow < lo; ow++) forward_pixel(j, n, oh, ow);
            for (; ow + DW_BLOCK <= hi; ow += DW_BLOCK)
                if (s == 1) forward_block3(j, n, oh, ow, kh0, kh1, 1);
                else forward_block3(j, n, oh, ow, kh0, kh1, 2);
        }
        for (; ow < g->OW; ow++) forward_pixel(j, n, oh, ow);
        if (j->after) {
            float *y = j->y + (size_t)row * g->OW * g->C;
            channel_affine_rows(y, y, j->after, (size_t)g->OW, g->C);
        }
    }
}

void depthwise_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g,
                            const ChannelAffine *after) {
    if (g->KH * g->KW > MAX_TAPS) {
        depthwise_forward_ref(y, x, w, b, g);
        if (after) channel_affine_rows(y, y, after, (size_t)g->N * g->OH * g->OW, g->C);
        return;
    }
    DwJob job = {.g = g, .x = x, .w = w, .b = b, .y = y, .after = after};
    parallel_for(g->N * g->OH, forward_rows, &job);
}

/* dx of one input pixel by the general path: the taps that read it, then sum_of_products. */
static void dx_pixel(const DwJob *j, int n, int ih, int iw) {
    const ConvGeom *g = j->g;
    int C = g->C, s = g->stride, taps = 0;
    const float *ds[MAX_TAPS], *ws[MAX_TAPS];
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
    float *d = j->dx + (((size_t)n * g->H + ih) * g->W + iw) * C;
    sum_of_products(d, j->dx_overwrite ? NULL : d, ds, ws, taps, C);
}

/* dx of DW_BLOCK adjacent input pixels, 3×3 stride 1, every horizontal tap inside the output,
 * output rows of kh0..kh1−1 inside it: as forward_block3 (weights in registers, each dy vector
 * loaded once), each pixel summing its taps in dx_pixel's order. */
static void dx_block3(const DwJob *j, int n, int ih, int iw0, int kh0, int kh1) {
    const ConvGeom *g = j->g;
    int C = g->C;
    float *d = j->dx + (((size_t)n * g->H + ih) * g->W + iw0) * C;
    for (int c = 0; c < C; c += VL) {
        vf acc[DW_BLOCK], wv[9];
        for (int o = 0; o < DW_BLOCK; o++) acc[o] = j->dx_overwrite ? (vf){0} : vf_load(d + (size_t)o * C + c);
        for (int t = 0; t < 9; t++) wv[t] = vf_load(j->w + (size_t)t * C + c);
        for (int kh = kh0; kh < kh1; kh++) {
            const float *dyr = j->dy + (((size_t)n * g->OH + ih + g->pad - kh) * g->OW + (size_t)(iw0 + g->pad - 2)) * C + c;
            vf dv[DW_BLOCK + 2];
            for (int i = 0; i < DW_BLOCK + 2; i++) dv[i] = vf_load(dyr + (size_t)i * C);
            for (int kw = 0; kw < 3; kw++)
                for (int o = 0; o < DW_BLOCK; o++) acc[o] += dv[o + 2 - kw] * wv[kh * 3 + kw];
        }
        for (int o = 0; o < DW_BLOCK; o++) vf_store(d + (size_t)o * C + c, acc[o]);
    }
}

/* dx over input rows [begin, end) (row = n·H + ih), gathering the taps that read each pixel. */
static void dx_rows(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int p = g->pad;
    // the blocked path: 3×3 stride 1, whole vectors; pixels iw in [lo, hi) are read by all 3 columns
    bool blocked = g->KH == 3 && g->KW == 3 && g->stride == 1 && g->C % VL == 0;
    int lo = 2 - p > 0 ? 2 - p : 0, hi = g->OW - p < g->W ? g->OW - p : g->W;
    for (int row = begin; row < end; row++) {
        int n = row / g->H, ih = row % g->H, iw = 0;
        if (blocked) {
            int kh0 = 0, kh1 = 3;  // output row oh = ih + p − kh inside [0, OH)
            while (ih + p - kh0 >= g->OH) kh0++;
            while (kh1 > kh0 && ih + p - (kh1 - 1) < 0) kh1--;
            for (; iw < lo; iw++) dx_pixel(j, n, ih, iw);
            for (; iw + DW_BLOCK <= hi; iw += DW_BLOCK) dx_block3(j, n, ih, iw, kh0, kh1);
        }
        for (; iw < g->W; iw++) dx_pixel(j, n, ih, iw);
    }
}

static size_t partial_floats(const ConvGeom *g) { return (size_t)(g->KH * g->KW + 1) * g->C; }

/* dw and db of images [begin, end), 3×3, whole vectors of channels: image by image (its x and dy
 * stay in cache), one vector of channels at a time with its 9 (and db's) sums in registers —
 * kept in pdw/pdb between images — over the pixels in the order of the general loop below, so
 * each sum adds the same terms in the same order: the same result to the bit. */
static void dw_images3(const DwJob *j, int begin, int end, float *pdw, float *pdb) {
    const ConvGeom *g = j->g;
    int C = g->C;
    for (int n = begin; n < end; n++)
        for (int c = 0; c < C; c += VL) {
            vf acc[9], accb = vf_load(pdb + c);
            for (int t = 0; t < 9; t++) acc[t] = vf_load(pdw + (size_t)t * C + c);
            for (int oh = 0; oh < g->OH; oh++) {
                int ih0 = oh * g->stride - g->pad;
                bool rows_in = ih0 >= 0 && ih0 + 2 < g->H;
                for (int ow = 0; ow < g->OW; ow++) {
                    vf d = vf_load(j->dy + (((size_t)n * g->OH + oh) * g->OW + ow) * C + c);
                    if (j->want_db) accb += d;
                    if (!j->want_dw) continue;
                    int iw0 = ow * g->stride - g->pad;
                    // fully unrolled, so the 9 sums stay in registers; taps outside are skipped
                    if (rows_in && iw0 >= 0 && iw0 + 2 < g->W) {
                        const float *x0 = j->x + (((size_t)n * g->H + ih0) * g->W + iw0) * C + c;
#pragma GCC unroll 3
                        for (int kh = 0; kh < 3; kh++)
#pragma GCC unroll 3
                            for (int kw = 0; kw < 3; kw++)
                                acc[kh * 3 + kw] += d * vf_load(x0 + ((size_t)kh * g->W + kw) * C);
                        continue;
                    }
#pragma GCC unroll 3
                    for (int kh = 0; kh < 3; kh++) {
                        int ih = ih0 + kh;
#pragma GCC unroll 3
                        for (int kw = 0; kw < 3; kw++) {
                            int iw = iw0 + kw;
                            if (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W)
                                acc[kh * 3 + kw] += d * vf_load(j->x + (((size_t)n * g->H + ih) * g->W + iw) * C + c);
                        }
                    }
                }
            }
            for (int t = 0; t < 9; t++) vf_store(pdw + (size_t)t * C + c, acc[t]);
            vf_store(pdb + c, accb);
        }
}

static void dw_images(void *ctx, int begin, int end, int tid) {
    // forward: y[n][oh][ow][c] = b[c] + Σ_{kh,kw} x[n][ih][iw][c] · w[kh][kw][c]
    const DwJob *j = ctx;
    const ConvGeom *g = j->g;
    int C = g->C;
    float *pdw = threads_scratch(tid, THREADS_SLOT_DEPTHWISE_PARTIAL, partial_floats(g));
    float *pdb = pdw + (size_t)g->KH * g->KW * C;
    memset(pdw, 0, partial_floats(g) * sizeof(float));
    if (g->KH == 3 && g->KW == 3 && C % VL == 0) {
        dw_images3(j, begin, end, pdw, pdb);
        return;
    }
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
