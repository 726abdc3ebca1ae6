/* conv_wgrad.c — a dense convolution's weight gradient from the padded input (conv_wgrad.h).
 *
 * Legend as conv2d.c; P = OH·OW pixels per image, Kc = KH·KW·C weight rows, row k = (tap, c)
 * with tap = k / C. A tile (gemm_gather_tile) is gemm_tile_rows() weight rows × the output
 * channels; per pixel it broadcasts one input value per row (xp at the pixel's base + the row's
 * offset) into the pixel's dy vectors. */
#include "conv_wgrad.h"

#include <string.h>

#include "gemm.h"
#include "simd.h"
#include "threads.h"

#define WG_MAX_MR 16  // gemm_tile_rows() is at most this
#define WG_MAX_TAPS 64

bool conv_wgrad_ok(const ConvGeom *g) {
    return g->groups == 1 && g->OC % VL == 0 && g->KH * g->KW <= WG_MAX_TAPS;
}

typedef struct WgradJob {
    const ConvGeom *g;
    const float *xp, *dy;
    int Hp, Wp, rows;
    bool want_dw, want_db;
} WgradJob;

/* The thread's scratch: partial dw (Kc, OC) and db (OC), then (64 bytes on) the chunk's pixel bases. */
static size_t partial_floats(const ConvGeom *g) { return ((size_t)g->Kc * g->OC + g->OC + 15) / 16 * 16; }

static float *partial(int tid, const WgradJob *j) {
    size_t bases = (size_t)j->rows * sizeof(size_t) / sizeof(float);
    return threads_scratch(tid, THREADS_SLOT_CONV_WGRAD, partial_floats(j->g) + bases);
}

static void wgrad_images(void *ctx, int begin, int end, int tid) {
    const WgradJob *j = ctx;
    const ConvGeom *g = j->g;
    int P = g->OH * g->OW, OC = g->OC, C = g->C, kblock = gemm_k_block();
    float *pdw = partial(tid, j), *pdb = pdw + (size_t)g->Kc * OC;
    size_t *base = (size_t *)(void *)(pdw + partial_floats(g));
    memset(pdw, 0, ((size_t)g->Kc * OC + OC) * sizeof(float));
    size_t aoff[WG_MAX_MR];
    int MR = gemm_tile_rows();
    for (int n = begin; n < end; n++)
        for (int r0 = 0; r0 < P; r0 += j->rows) {
            int r1 = r0 + j->rows < P ? r0 + j->rows : P;
            for (int r = r0; r < r1; r++) {
                int oh = r / g->OW, ow = r % g->OW;
                base[r - r0] = (((size_t)n * j->Hp + (size_t)oh * g->stride) * j->Wp + (size_t)ow * g->stride) * C;
            }
            const float *dy = j->dy + ((size_t)n * P + r0) * OC;
            for (int k0 = r0; j->want_dw && k0 < r1; k0 += kblock) {  // the GEMM's K blocks of the chunk
                int npix = r1 - k0 < kblock ? r1 - k0 : kblock;
                for (int w0 = 0; w0 < g->Kc; w0 += MR) {  // a tile: weight rows (tap, c) × dw's columns
                    int mr = g->Kc - w0 < MR ? g->Kc - w0 : MR;
                    for (int i = 0; i < MR; i++) {
                        int k = w0 + (i < mr ? i : 0), t = k / C;
                        aoff[i] = ((size_t)(t / g->KW) * j->Wp + (size_t)(t % g->KW)) * C + (size_t)(k % C);
                    }
                    gemm_gather_tile(npix, j->xp, base + (k0 - r0), aoff, mr, dy + (size_t)(k0 - r0) * OC, OC, OC, 1.0f,
                                     pdw + (size_t)w0 * OC, OC);
                }
            }
            if (j->want_db)
                for (int m = 0; m < r1 - r0; m++)
                    for (int oc = 0; oc < OC; oc++) pdb[oc] += dy[(size_t)m * OC + oc];
        }
}

void conv_wgrad(float *dw, float *db, const float *dy, const float *xp, int Hp, int Wp, const ConvGeom *g,
                int rows) {
    WgradJob job = {.g = g, .xp = xp, .dy = dy, .Hp = Hp, .Wp = Wp, .rows = rows, .want_dw = dw != NULL,
                    .want_db = db != NULL};
    parallel_for(g->N, wgrad_images, &job);
    size_t nw = (size_t)g->Kc * g->OC;
    for (int t = 0; t < threads_count(); t++) {  // partials in thread order
        if (!parallel_has_work(g->N, t)) continue;
        const float *pdw = partial(t, &job);
        if (dw)
            for (size_t k = 0; k < nw; k++) dw[k] += pdw[k];
        if (db)
            for (int oc = 0; oc < g->OC; oc++) db[oc] += pdw[nw + oc];
    }
}
