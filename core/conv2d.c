/* conv2d.c — reference convolution, im2col+GEMM and 1×1 fast paths, the graph op.
 *
 * Legend: N batch, H W input height/width, C input channels, OC output channels, KH KW kernel,
 * OH OW output height/width, G groups, ICg = C/G, OCg = OC/G, Kc = KH·KW·ICg,
 * M = N·OH·OW output pixels (rows of the im2col matrix). All tensors channels-last.
 */
#include "conv2d.h"

#include <string.h>

#include "conv_wgrad.h"
#include "depthwise.h"
#include "error.h"
#include "gemm.h"
#include "simd.h"
#include "ops.h"
#include "threads.h"

ConvGeom conv2d_geom(const Tensor *x, const Tensor *w, const Tensor *b, Conv2dArgs a) {
    char sx[64], sw[64];
    if (x->ndim != 4) DQ_FATAL("conv2d: input %s must be (N, H, W, C)", tensor_shape_str(x, sx, sizeof sx));
    if (w->ndim != 4) DQ_FATAL("conv2d: weight %s must be (KH, KW, C/groups, OC)", tensor_shape_str(w, sw, sizeof sw));
    if (a.stride < 1 || a.pad < 0 || a.groups < 1)
        DQ_FATAL("conv2d: stride %d, pad %d, groups %d: need stride >= 1, pad >= 0, groups >= 1",
                 a.stride, a.pad, a.groups);
    ConvGeom g = {.N = x->shape[0], .H = x->shape[1], .W = x->shape[2], .C = x->shape[3],
                  .KH = w->shape[0], .KW = w->shape[1], .OC = w->shape[3],
                  .stride = a.stride, .pad = a.pad, .groups = a.groups};
    if (g.C % g.groups || g.OC % g.groups)
        DQ_FATAL("conv2d: %d groups do not divide %d input and %d output channels", g.groups, g.C, g.OC);
    g.ICg = g.C / g.groups;
    g.OCg = g.OC / g.groups;
    if (w->shape[2] != g.ICg)
        DQ_FATAL("conv2d: input has %d channels (%d per group), weight %s expects %d per group", g.C,
                 g.ICg, tensor_shape_str(w, sw, sizeof sw), w->shape[2]);
    if (g.KH > g.H + 2 * g.pad || g.KW > g.W + 2 * g.pad)
        DQ_FATAL("conv2d: %dx%d kernel does not fit a %dx%d input with padding %d", g.KH, g.KW, g.H,
                 g.W, g.pad);
    if (b && b->numel != (size_t)g.OC)
        DQ_FATAL("conv2d: bias has %zu elements, weight has %d output channels", b->numel, g.OC);
    g.OH = (g.H + 2 * g.pad - g.KH) / g.stride + 1;
    g.OW = (g.W + 2 * g.pad - g.KW) / g.stride + 1;
    g.Kc = g.KH * g.KW * g.ICg;
    (void)tensor_numel_of(4, (const int[]){g.N, g.OH, g.OW, g.OC});  // overflow check
    return g;
}

/* ------------------------------------------------------------------ reference */
void conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, const ConvGeom *g) {
    for (int n = 0; n < g->N; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++)
                for (int oc = 0; oc < g->OC; oc++) {
                    int grp = oc / g->OCg;
                    double s = b ? b[oc] : 0;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            const float *xp = x + (((size_t)n * g->H + ih) * g->W + iw) * g->C + grp * g->ICg;
                            const float *wp = w + ((size_t)(kh * g->KW + kw) * g->ICg) * g->OC + oc;
                            for (int i = 0; i < g->ICg; i++) s += (double)xp[i] * wp[(size_t)i * g->OC];
                        }
                    y[(((size_t)n * g->OH + oh) * g->OW + ow) * g->OC + oc] = (float)s;
                }
}

void conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, const ConvGeom *g) {
    // forward: y[n][oh][ow][oc] = b[oc] + Σ x[n][ih][iw][grp·ICg+i] · w[kh][kw][i][oc]
    for (int n = 0; n < g->N; n++)
        for (int oh = 0; oh < g->OH; oh++)
            for (int ow = 0; ow < g->OW; ow++)
                for (int oc = 0; oc < g->OC; oc++) {
                    int grp = oc / g->OCg;
                    float d = dy[(((size_t)n * g->OH + oh) * g->OW + ow) * g->OC + oc];
                    if (db) db[oc] += d;
                    for (int kh = 0; kh < g->KH; kh++)
                        for (int kw = 0; kw < g->KW; kw++) {
                            int ih = oh * g->stride - g->pad + kh, iw = ow * g->stride - g->pad + kw;
                            if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                            size_t xo = (((size_t)n * g->H + ih) * g->W + iw) * g->C + grp * g->ICg;
                            size_t wo = ((size_t)(kh * g->KW + kw) * g->ICg) * g->OC + oc;
                            for (int i = 0; i < g->ICg; i++) {
                                if (dx) dx[xo + i] += d * w[wo + (size_t)i * g->OC];
                                if (dw) dw[wo + (size_t)i * g->OC] += d * x[xo + i];
                            }
                        }
                }
}

/* ------------------------------------------------------------------ im2col */
/* n floats, n small (a pixel's channels): whole vectors inline, not a library call per pixel. */
static inline void copy_span(float *restrict dst, const float *restrict src, int n) {
    int i = 0;
    for (; i + VL <= n; i += VL) vf_store(dst + i, vf_load(src + i));
    for (; i < n; i++) dst[i] = src[i];
}

/* col (m1−m0, Kc): rows m0..m1 of the im2col matrix of group grp. */
static void im2col(float *restrict col, const float *restrict x, const ConvGeom *g, int grp,
                   int m0, int m1) {
    int P = g->OH * g->OW;
    size_t span = (size_t)g->ICg * sizeof(float);
    for (int m = m0; m < m1; m++) {
        int n = m / P, r = m % P, oh = r / g->OW, ow = r % g->OW;
        float *dst = col + (size_t)(m - m0) * g->Kc;
        for (int kh = 0; kh < g->KH; kh++) {
            int ih = oh * g->stride - g->pad + kh;
            for (int kw = 0; kw < g->KW; kw++, dst += g->ICg) {
                int iw = ow * g->stride - g->pad + kw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) memset(dst, 0, span);
                else copy_span(dst, x + (((size_t)n * g->H + ih) * g->W + iw) * g->C + grp * g->ICg, g->ICg);
            }
        }
    }
}

/* dx += col2im(dcol): the adjoint of im2col for rows m0..m1 of group grp. */
static void col2im_add(float *restrict dx, const float *restrict dcol, const ConvGeom *g, int grp,
                       int m0, int m1) {
    int P = g->OH * g->OW;
    for (int m = m0; m < m1; m++) {
        int n = m / P, r = m % P, oh = r / g->OW, ow = r % g->OW;
        const float *src = dcol + (size_t)(m - m0) * g->Kc;
        for (int kh = 0; kh < g->KH; kh++) {
            int ih = oh * g->stride - g->pad + kh;
            for (int kw = 0; kw < g->KW; kw++, src += g->ICg) {
                int iw = ow * g->stride - g->pad + kw;
                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                float *d = dx + (((size_t)n * g->H + ih) * g->W + iw) * g->C + grp * g->ICg;
                for (int i = 0; i < g->ICg; i++) d[i] += src[i];
            }
        }
    }
}

/* Rows per im2col chunk: about 256 KiB of columns, so a chunk stays in L2 while the GEMM eats it. */
static int chunk_rows(const ConvGeom *g) {
    int rows = 65536 / g->Kc;
    return rows < 16 ? 16 : rows;
}

static bool is_pointwise(const ConvGeom *g) {
    return g->KH == 1 && g->KW == 1 && g->stride == 1 && g->pad == 0 && g->groups == 1;
}

static bool is_depthwise(const ConvGeom *g) { return g->groups == g->C && g->OC == g->C; }

static void add_bias_rows(float *y, const float *b, size_t rows, int OC) {
    for (size_t m = 0; m < rows; m++)
        for (int oc = 0; oc < OC; oc++) y[m * OC + oc] += b[oc];
}

/* ------------------------------------------------------------------ fast forward */
typedef struct ConvJob {
    const ConvGeom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx;
    float beta;       // forward: y = beta·y + conv(x)
    const ChannelAffine *after;  // forward: applied to each finished chunk (NULL: none)
    bool want_dw, want_db;
    int rows;         // rows per chunk
} ConvJob;

static void conv_im2col_forward(float *y, const float *x, const float *w, const float *b,
                                const ConvGeom *g, float beta, const ChannelAffine *after);

/* Forward over chunks [begin, end) of `rows` output pixels: im2col then GEMM, per group.
 * Each output element is one GEMM dot product in fixed order: independent of the thread count. */
static void forward_chunks(void *ctx, int begin, int end, int tid) {
    const ConvJob *j = ctx;
    const ConvGeom *g = j->g;
    int M = g->N * g->OH * g->OW;
    float *col = threads_scratch(tid, THREADS_SLOT_CONV_COLUMNS, (size_t)j->rows * g->Kc);
    for (int c = begin; c < end; c++) {
        int m0 = c * j->rows, m1 = m0 + j->rows < M ? m0 + j->rows : M;
        for (int grp = 0; grp < g->groups; grp++) {
            im2col(col, j->x, g, grp, m0, m1);
            gemm_serial(false, false, m1 - m0, g->OCg, g->Kc, col, g->Kc, j->w + grp * g->OCg,
                        g->OC, j->beta, j->y + (size_t)m0 * g->OC + grp * g->OCg, g->OC);
        }
        float *y = j->y + (size_t)m0 * g->OC;
        if (j->b) add_bias_rows(y, j->b, (size_t)(m1 - m0), g->OC);
        if (j->after) channel_affine_rows(y, y, j->after, (size_t)(m1 - m0), g->OC);
    }
}

/* ------------------------------------------------------------------ implicit GEMM */
/* Thin layers spend more time building im2col rows (KH·KW short copies per pixel) than in the
 * GEMM. Instead the input is zero-padded once (xp: N images of Hp × Wp pixels) and GEMM tiles read
 * their A rows from it directly, one offset per tap (gemm_conv_rows; the sums are gemm's, so the
 * bits are im2col's):
 *   rows (when they are two tiles or more): each run of output pixels along a row, A read at
 *       stride s·C;
 *   strips (stride 1, otherwise): in an image, output pixel (oh, ow) reads the padded pixels from
 *       q = oh·Wp + ow on, so the image is one strip of rows q; the Wp − OW rows per image row that
 *       are not outputs are computed in a tile buffer and dropped. */
#define IMPLICIT_MAX_TAPS 49
#define IMPLICIT_MAX_C 32

typedef struct ImplicitJob {
    const ConvGeom *g;
    const float *x, *b;
    float *xp;                      // (N, Hp, Wp, C) zero-padded input, plus slack
    const float *wp;                // packed weights
    float *y, beta;
    const ChannelAffine *after;     // applied to each finished output row (NULL: none)
    int Hp, Wp, tiles;              // tiles: strip tiles per image
    size_t off[IMPLICIT_MAX_TAPS];  // tap (kh, kw) -> (kh·Wp + kw)·C
} ImplicitJob;

static bool implicit_enabled = true;

bool conv2d_use_implicit(bool on) {
    bool was = implicit_enabled;
    implicit_enabled = on;
    return was;
}

static bool implicit_common(const ConvGeom *g) {
    return implicit_enabled && g->groups == 1 && g->C <= IMPLICIT_MAX_C && g->KH * g->KW <= IMPLICIT_MAX_TAPS &&
           gemm_conv_taps_ok(g->KH * g->KW, g->C);
}

static bool implicit_rows_ok(const ConvGeom *g) {  // rows of two tiles or more waste little
    return implicit_common(g) && g->C <= 32 && g->OW >= 2 * gemm_tile_rows();
}

static bool implicit_strips_ok(const ConvGeom *g) {  // at most a quarter of the strip dropped
    return implicit_common(g) && g->stride == 1 && 4 * (2 * g->pad + g->W - g->OW) <= g->W + 2 * g->pad;
}

static bool implicit_ok(const ConvGeom *g) { return implicit_rows_ok(g) || implicit_strips_ok(g); }

static void pad_rows(void *ctx, int begin, int end, int tid) {
    const ImplicitJob *j = ctx;
    const ConvGeom *g = j->g;
    size_t rowlen = (size_t)j->Wp * g->C;
    for (int r = begin; r < end; r++) {  // r = n·Hp + hp
        int n = r / j->Hp, h = r % j->Hp - g->pad;
        float *dst = j->xp + (size_t)r * rowlen;
        if (h < 0 || h >= g->H) {
            memset(dst, 0, rowlen * sizeof(float));
            continue;
        }
        size_t side = (size_t)g->pad * g->C;
        memset(dst, 0, side * sizeof(float));
        memcpy(dst + side, j->x + ((size_t)n * g->H + h) * g->W * g->C, (size_t)g->W * g->C * sizeof(float));
        memset(dst + side + (size_t)g->W * g->C, 0, side * sizeof(float));
    }
}

static void implicit_rows(void *ctx, int begin, int end, int tid) {
    const ImplicitJob *j = ctx;
    const ConvGeom *g = j->g;
    int tile = gemm_tile_rows(), s = g->stride;
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / g->OH, oh = row % g->OH;
        const float *a = j->xp + ((size_t)n * j->Hp + (size_t)oh * s) * j->Wp * g->C;
        float *y = j->y + (size_t)row * g->OW * g->OC;
        for (int ow0 = 0; ow0 < g->OW; ow0 += tile) {
            int rows = g->OW - ow0 < tile ? g->OW - ow0 : tile;
            gemm_conv_rows(rows, g->OC, g->KH * g->KW, j->off, g->C, a + (size_t)ow0 * s * g->C, s * g->C,
                           j->wp, j->beta, y + (size_t)ow0 * g->OC, g->OC);
        }
        if (j->b) add_bias_rows(y, j->b, (size_t)g->OW, g->OC);
        if (j->after) channel_affine_rows(y, y, j->after, (size_t)g->OW, g->OC);
    }
}

static void implicit_strips(void *ctx, int begin, int end, int tid) {
    const ImplicitJob *j = ctx;
    const ConvGeom *g = j->g;
    int tile = gemm_tile_rows(), OC = g->OC, Q = (g->OH - 1) * j->Wp + g->OW;  // strip rows per image
    float *buf = threads_scratch(tid, THREADS_SLOT_CONV_COLUMNS, (size_t)tile * OC);
    for (int item = begin; item < end; item++) {  // item = n·tiles + tile index
        int n = item / j->tiles, q0 = item % j->tiles * tile, rows = Q - q0 < tile ? Q - q0 : tile;
        float *y = j->y + (size_t)n * g->OH * g->OW * OC;
        if (j->beta != 0)  // accumulate onto y: its rows go into the tile first
            for (int r = 0; r < rows; r++)
                if ((q0 + r) % j->Wp < g->OW)
                    memcpy(buf + (size_t)r * OC, y + ((size_t)((q0 + r) / j->Wp) * g->OW + (q0 + r) % j->Wp) * OC,
                           (size_t)OC * sizeof(float));
        gemm_conv_rows(rows, OC, g->KH * g->KW, j->off, g->C, j->xp + ((size_t)n * j->Hp * j->Wp + q0) * g->C, g->C,
                       j->wp, j->beta, buf, OC);
        for (int r = 0; r < rows; r++) {
            int oh = (q0 + r) / j->Wp, ow = (q0 + r) % j->Wp;
            if (ow >= g->OW) continue;
            float *yr = y + ((size_t)oh * g->OW + ow) * OC;
            memcpy(yr, buf + (size_t)r * OC, (size_t)OC * sizeof(float));
            if (j->b) add_bias_rows(yr, j->b, 1, OC);
            if (j->after) channel_affine_rows(yr, yr, j->after, 1, OC);
        }
    }
}

/* x zero-padded by g->pad (thread 0's scratch), plus zeroed slack for the garbage rows of a last tile. */
static float *padded_input(ImplicitJob *job, const float *x, const ConvGeom *g) {
    job->g = g;
    job->x = x;
    job->Hp = g->H + 2 * g->pad;
    job->Wp = g->W + 2 * g->pad;
    size_t body = (size_t)g->N * job->Hp * job->Wp * g->C;
    size_t slack = (size_t)gemm_tile_rows() * g->stride * g->C + (size_t)g->C;
    job->xp = threads_scratch(0, THREADS_SLOT_CONV_PADDED_INPUT, body + slack);
    memset(job->xp + body, 0, slack * sizeof(float));
    parallel_for(g->N * job->Hp, pad_rows, job);
    return job->xp;
}

static void conv_implicit_forward(float *y, const float *x, const float *w, const float *b,
                                  const ConvGeom *g, float beta, const ChannelAffine *after) {
    ImplicitJob job = {.b = b, .y = y, .beta = beta, .after = after};
    padded_input(&job, x, g);
    float *wp = threads_scratch(0, THREADS_SLOT_CONV_PACKED_W, gemm_packed_b_floats(g->Kc, g->OC));
    gemm_pack_b(g->Kc, g->OC, w, g->OC, wp);
    job.wp = wp;
    for (int kh = 0; kh < g->KH; kh++)
        for (int kw = 0; kw < g->KW; kw++) job.off[kh * g->KW + kw] = ((size_t)kh * job.Wp + kw) * g->C;
    if (!implicit_rows_ok(g)) {  // then strips
        int tile = gemm_tile_rows();
        job.tiles = ((g->OH - 1) * job.Wp + g->OW + tile - 1) / tile;
        parallel_for(g->N * job.tiles, implicit_strips, &job);
    } else {
        parallel_for(g->N * g->OH, implicit_rows, &job);
    }
}

/* y = after(beta·y + conv(x, w) + b) by im2col chunks, in parallel over chunks (or implicitly). */
static void conv_im2col_forward(float *y, const float *x, const float *w, const float *b,
                                const ConvGeom *g, float beta, const ChannelAffine *after) {
    if (implicit_ok(g)) {
        conv_implicit_forward(y, x, w, b, g, beta, after);
        return;
    }
    size_t M = (size_t)g->N * g->OH * g->OW;
    ConvJob job = {.g = g, .x = x, .w = w, .b = b, .y = y, .beta = beta, .after = after, .rows = chunk_rows(g)};
    parallel_for((int)((M + (size_t)job.rows - 1) / (size_t)job.rows), forward_chunks, &job);
}

/* A 1×1 convolution followed by an epilogue: GEMMs of chunks of rows, each finished (bias,
 * epilogue) while it is in cache. Each output is the same dot product as in the one big GEMM
 * (which splits rows or columns, never K, for this many rows): the same bits as gemm() then the
 * epilogue as a separate pass. */
typedef struct PointwiseJob {
    const ConvGeom *g;
    const float *x, *w, *b;
    float *y;
    const ChannelAffine *after;
    int rows;
} PointwiseJob;

static void pointwise_chunks(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const PointwiseJob *j = ctx;
    const ConvGeom *g = j->g;
    size_t M = (size_t)g->N * g->OH * g->OW;
    for (int c = begin; c < end; c++) {
        size_t m0 = (size_t)c * j->rows, m1 = m0 + (size_t)j->rows < M ? m0 + (size_t)j->rows : M;
        float *y = j->y + m0 * g->OC;
        gemm_serial(false, false, (int)(m1 - m0), g->OC, g->C, j->x + m0 * g->C, g->C, j->w, g->OC, 0.0f, y, g->OC);
        if (j->b) add_bias_rows(y, j->b, m1 - m0, g->OC);
        channel_affine_rows(y, y, j->after, m1 - m0, g->OC);
    }
}

static void pointwise_forward(float *y, const float *x, const float *w, const float *b, const ConvGeom *g,
                              const ChannelAffine *after) {
    size_t M = (size_t)g->N * g->OH * g->OW;
    int tile = gemm_tile_rows(), rows = (32768 / (g->OC + g->C) + tile - 1) / tile * tile;  // ~128 KiB of x and y
    if (rows < 4 * tile) rows = 4 * tile;
    if (after && M >= (size_t)rows * 2 * threads_count()) {
        PointwiseJob job = {.g = g, .x = x, .w = w, .b = b, .y = y, .after = after, .rows = rows};
        parallel_for((int)((M + (size_t)rows - 1) / (size_t)rows), pointwise_chunks, &job);
        return;
    }
    gemm(false, false, (int)M, g->OC, g->C, x, g->C, w, g->OC, 0.0f, y, g->OC);
    if (b) add_bias_rows(y, b, M, g->OC);
    if (after) channel_affine_rows(y, y, after, M, g->OC);
}

void conv2d_forward_fused(float *y, const float *x, const float *w, const float *b, const ConvGeom *g,
                          const ChannelAffine *after) {
    if (is_pointwise(g)) pointwise_forward(y, x, w, b, g, after);  // x is already the (M, C) matrix
    else if (is_depthwise(g)) depthwise_forward_fast(y, x, w, b, g, after);
    else conv_im2col_forward(y, x, w, b, g, 0.0f, after);
}

void conv2d_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g) {
    conv2d_forward_fused(y, x, w, b, g, NULL);
}

/* ------------------------------------------------------------------ fast backward */
/* Per-thread scratch layout for the general backward: col, dcol (rows·Kc each), then the
 * thread's partial dwᵀ (OC·Kc: output channel major, so the GEMM's wide side is Kc) and db (OC). */
static size_t backward_scratch_floats(const ConvGeom *g, int rows) {
    return 2 * (size_t)rows * g->Kc + (size_t)g->Kc * g->OC + (size_t)g->OC;
}

/* Backward over images [begin, end): images own disjoint slices of dx, so col2im needs no
 * locking; dw and db go to this thread's partial sums, combined in thread order afterwards. */
static void backward_images(void *ctx, int begin, int end, int tid) {
    const ConvJob *j = ctx;
    const ConvGeom *g = j->g;
    int P = g->OH * g->OW;
    float *col = threads_scratch(tid, THREADS_SLOT_CONV_BACKWARD, backward_scratch_floats(g, j->rows));
    float *dcol = col + (size_t)j->rows * g->Kc;
    float *pdw = dcol + (size_t)j->rows * g->Kc, *pdb = pdw + (size_t)g->Kc * g->OC;
    memset(pdw, 0, ((size_t)g->Kc * g->OC + g->OC) * sizeof(float));
    for (int n = begin; n < end; n++)
        for (int r0 = 0; r0 < P; r0 += j->rows) {
            int m0 = n * P + r0, m1 = m0 + (P - r0 < j->rows ? P - r0 : j->rows);
            const float *dy = j->dy + (size_t)m0 * g->OC;
            for (int grp = 0; grp < g->groups; grp++) {
                const float *dyg = dy + grp * g->OCg;
                im2col(col, j->x, g, grp, m0, m1);
                if (j->want_dw)  // dwᵀ (OCg, Kc) += dyᵀ · col
                    gemm_serial(true, false, g->OCg, g->Kc, m1 - m0, dyg, g->OC, col, g->Kc, 1.0f,
                                pdw + (size_t)grp * g->OCg * g->Kc, g->Kc);
                if (j->dx) {     // dcol (rows, Kc) = dy · wᵀ, then scatter-add into dx
                    gemm_serial(false, true, m1 - m0, g->Kc, g->OCg, dyg, g->OC, j->w + grp * g->OCg,
                                g->OC, 0.0f, dcol, g->Kc);
                    col2im_add(j->dx, dcol, g, grp, m0, m1);
                }
            }
            if (j->want_db)
                for (int m = 0; m < m1 - m0; m++)
                    for (int oc = 0; oc < g->OC; oc++) pdb[oc] += dy[(size_t)m * g->OC + oc];
        }
}

/* Stride 1, one group, square kernel: dx is the "full" correlation of dy with the kernel turned
 * by 180° and its channel axes swapped, i.e. a forward convolution
 *     dx = conv(dy, w'),  w'[kh][kw][oc][c] = w[KH−1−kh][KW−1−kw][c][oc],  pad' = K − 1 − pad
 * which writes each dx element once instead of scattering KH·KW columns into it. */
static bool dx_as_convolution(const ConvGeom *g) {
    return g->stride == 1 && g->groups == 1 && g->KH == g->KW && g->pad <= g->KH - 1;
}

static void dx_by_convolution(float *dx, const float *dy, const float *w, const ConvGeom *g, bool overwrite) {
    float *wf = threads_scratch(0, THREADS_SLOT_CONV_FLIPPED, (size_t)g->KH * g->KW * g->C * g->OC);
    for (int kh = 0; kh < g->KH; kh++)
        for (int kw = 0; kw < g->KW; kw++)
            for (int c = 0; c < g->C; c++)
                for (int oc = 0; oc < g->OC; oc++)
                    wf[(((size_t)kh * g->KW + kw) * g->OC + oc) * g->C + c] =
                        w[(((size_t)(g->KH - 1 - kh) * g->KW + (g->KW - 1 - kw)) * g->C + c) * g->OC + oc];
    ConvGeom t = *g;  // input dy (N, OH, OW, OC) -> output dx (N, H, W, C)
    t.H = g->OH, t.W = g->OW, t.C = g->OC, t.OC = g->C, t.OH = g->H, t.OW = g->W;
    t.pad = g->KH - 1 - g->pad;
    t.ICg = t.C, t.OCg = t.OC, t.Kc = g->KH * g->KW * t.C;
    conv_im2col_forward(dx, dy, wf, NULL, &t, overwrite ? 0.0f : 1.0f, NULL);
}

void conv2d_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const ConvGeom *g, bool dx_overwrite) {
    // forward: y = im2col(x) · w + b   =>   dw += im2col(x)ᵀ·dy,  dx += col2im(dy·wᵀ),  db += Σ dy
    int M = g->N * g->OH * g->OW;
    if (is_pointwise(g)) {
        if (dx) gemm(false, true, M, g->C, g->OC, dy, g->OC, w, g->OC, dx_overwrite ? 0.0f : 1.0f, dx, g->C);
        if (dw) gemm(true, false, g->C, g->OC, M, x, g->C, dy, g->OC, 1.0f, dw, g->OC);
        if (db)
            for (size_t m = 0; m < (size_t)M; m++)
                for (int oc = 0; oc < g->OC; oc++) db[oc] += dy[m * g->OC + oc];
        return;
    }
    if (is_depthwise(g)) {
        depthwise_backward_fast(dx, dw, db, dy, x, w, g, dx_overwrite);
        return;
    }
    ConvJob job = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .want_dw = dw != NULL,
                   .want_db = db != NULL, .rows = chunk_rows(g)};
    if (dx && dx_as_convolution(g)) {
        dx_by_convolution(dx, dy, w, g, dx_overwrite);
        job.dx = NULL;
    } else if (dx && dx_overwrite) {
        memset(dx, 0, (size_t)g->N * g->H * g->W * g->C * sizeof(float));
    }
    if (job.rows > g->OH * g->OW) job.rows = g->OH * g->OW;
    if ((dw || db) && implicit_enabled && conv_wgrad_ok(g)) {  // dw, db straight from the padded input; dx below if left
        ImplicitJob pad = {0};
        padded_input(&pad, x, g);
        conv_wgrad(dw, db, dy, pad.xp, pad.Hp, pad.Wp, g, job.rows);
        job.want_dw = job.want_db = false;
        dw = db = NULL;
    }
    if (!job.dx && !dw && !db) return;
    parallel_for(g->N, backward_images, &job);
    // Combine the per-thread partial sums in thread order (deterministic for a thread count).
    size_t nw = (size_t)g->Kc * g->OC;
    for (int t = 0; t < threads_count(); t++) {
        if (!parallel_has_work(g->N, t)) continue;
        float *pdw = threads_scratch(t, THREADS_SLOT_CONV_BACKWARD, backward_scratch_floats(g, job.rows)) +
                     2 * (size_t)job.rows * g->Kc;
        if (dw)  // pdw is (OC, Kc) with group blocks; dw is (Kc, OC)
            for (int grp = 0; grp < g->groups; grp++)
                for (int o = 0; o < g->OCg; o++)
                    for (int k = 0; k < g->Kc; k++)
                        dw[(size_t)k * g->OC + grp * g->OCg + o] += pdw[((size_t)grp * g->OCg + o) * g->Kc + k];
        if (db)
            for (int oc = 0; oc < g->OC; oc++) db[oc] += pdw[nw + oc];
    }
}

/* ------------------------------------------------------------------ graph op */
typedef struct ConvSaved {
    ConvGeom geom;
} ConvSaved;

static void conv2d_backward_op(Tape *t, TapeRecord *r) {
    Tensor *x = r->in[0], *w = r->in[1], *b = r->in[2];
    const ConvGeom *g = &((ConvSaved *)r->saved)->geom;
    float *dw = tape_grad_of(t, w), *db = tape_grad_of(t, b);
    if (r->ref) {
        conv2d_backward_ref(tape_grad_of(t, x), dw, db, r->out->grad, x->data, w->data, g);
        return;
    }
    bool overwrite;
    float *dx = tape_grad_overwrite(t, x, &overwrite);
    conv2d_backward_fast(dx, dw, db, r->out->grad, x->data, w->data, g, overwrite);
}

/* 2 flops per multiply-add: forward once, backward once for dX and once for dW where wanted. */
static void conv2d_cost(const TapeRecord *r, TapeCost *c) {
    const ConvGeom *g = &((const ConvSaved *)r->saved)->geom;
    double macs = (double)g->N * g->OH * g->OW * g->OC * g->Kc;
    c->flops[0] = 2 * macs;
    c->flops[1] = 2 * macs * (r->in[0]->requires_grad + r->in[1]->requires_grad);
}

static const TapeOp CONV2D_OP = {.name = "conv2d", .backward = conv2d_backward_op, .cost = conv2d_cost};
static const TapeOp POINTWISE_OP = {.name = "conv2d 1x1", .backward = conv2d_backward_op, .cost = conv2d_cost};
static const TapeOp DEPTHWISE_OP = {.name = "conv2d depthwise", .backward = conv2d_backward_op, .cost = conv2d_cost};

Tensor *op_conv2d_affine(Tape *t, Tensor *x, Tensor *weight, Tensor *bias, Conv2dArgs args,
                         const ChannelAffine *after) {
    if (tape_wants(t, 3, (Tensor *[]){x, weight, bias}))
        DQ_FATAL("conv2d+affine: evaluation only (no_grad, or no input requiring a gradient)");
    ConvGeom g = conv2d_geom(x, weight, bias, args);
    Tensor *y = tensor_new4(t->arena, g.N, g.OH, g.OW, g.OC);
    const float *b = bias ? bias->data : NULL;
    if (t->ref_kernels) {
        conv2d_forward_ref(y->data, x->data, weight->data, b, &g);
        channel_affine_rows(y->data, y->data, after, y->numel / (size_t)g.OC, g.OC);
    } else {
        conv2d_forward_fused(y->data, x->data, weight->data, b, &g, after);
    }
    return y;
}

Tensor *op_conv2d(Tape *t, Tensor *x, Tensor *weight, Tensor *bias, Conv2dArgs args) {
    ConvGeom g = conv2d_geom(x, weight, bias, args);
    Tensor *y = tensor_new4(t->arena, g.N, g.OH, g.OW, g.OC);
    const float *b = bias ? bias->data : NULL;
    if (t->ref_kernels) conv2d_forward_ref(y->data, x->data, weight->data, b, &g);
    else conv2d_forward_fast(y->data, x->data, weight->data, b, &g);
    const TapeOp *op = is_pointwise(&g) ? &POINTWISE_OP : is_depthwise(&g) ? &DEPTHWISE_OP : &CONV2D_OP;
    TapeRecord *r = tape_push(t, op, y, 3, (Tensor *[]){x, weight, bias});
    if (r) {
        ConvSaved *s = arena_alloc(t->arena, sizeof *s);
        s->geom = g;
        r->saved = s;
    }
    return y;
}
