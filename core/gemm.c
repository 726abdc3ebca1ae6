/* gemm.c — reference and blocked, vectorised, threaded SGEMM.
 *
 * Legend: M, N, K as in gemm.h. MR×NR is the register tile of the micro-kernel; a packed A
 * micro-panel is MR rows × kc (stored k-major: MR floats per k), a packed B micro-panel is
 * kc × NR (NR floats per k). Loops, outer to inner (BLIS order):
 *     jc over N by NC  →  pc over K by KC (pack B)  →  ic over M by MC (pack A)
 *         →  jr over the B micro-panels  →  ir over the A micro-panels  →  micro-kernel
 * Edge tiles are computed in full on zero-padded panels and only the valid part is written.
 */
#include "gemm.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "simd.h"
#include "threads.h"

void gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = beta == 0 ? (float)sum : beta * *c + (float)sum;
        }
}

/* ------------------------------------------------------------------ micro-kernel geometry */
#if defined(__AVX512F__)
#define MR 12
#elif defined(__AVX2__) || defined(__AVX__)
#define MR 6
#elif defined(__aarch64__)
#define MR 8
#else
#define MR 6
#endif
#define NR (2 * VL)
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC (MR * 10)
#endif
#ifndef NC
#define NC 3072
#endif
#ifndef DIRECT_A_MAX_N
#define DIRECT_A_MAX_N 160  // read A in place (no packing) when C has at most this many columns
#endif

typedef float vh __attribute__((vector_size(VL / 2 * sizeof(float))));  // half vector
typedef float vhu __attribute__((vector_size(VL / 2 * sizeof(float)), aligned(sizeof(float))));

const char *gemm_kernel_name(void) {
    static char name[64];
    snprintf(name, sizeof name, "%s MR=%d NR=%d", SIMD_ISA, MR, NR);
    return name;
}

/* Store an accumulated MR×NR tile into C (ldc): rows [0, mr), columns [0, nr); beta as in gemm.h.
 * Whole vectors are stored directly; a partial last vector goes through a small buffer. */
static inline __attribute__((always_inline)) void store_row(float *c, vf acc, int n, float beta) {
    if (n == VL) {
        vfu *cv = (vfu *)c;
        *cv = beta == 0 ? acc : (beta == 1 ? *cv + acc : beta * *cv + acc);
        return;
    }
    float tmp[VL] __attribute__((aligned(64)));
    *(vf *)tmp = acc;
    for (int j = 0; j < n; j++) c[j] = beta == 0 ? tmp[j] : beta * c[j] + tmp[j];
}

/* The micro-kernel: C[mr×nr] = beta·C + A·Bpanel, with NV vectors per row (NV = 2: the full
 * MR×NR tile; NV = 1: an edge tile at most VL wide, half the work). The k loop runs over
 * `taps` runs of kc steps; run t reads A from a + off[t] (plain GEMMs: one run at offset 0;
 * implicit-GEMM convolutions: one run per kernel tap).
 * PACKED: A is an (kc, MR) micro-panel; otherwise A is MR rows of a row-major matrix (lda).
 * b: the packed (taps·kc, NR) micro-panel. */
static inline __attribute__((always_inline)) void kernel_body(int NV, bool PACKED, int taps,
                                                              const size_t *off, int kc,
                                                              const float *restrict a, int lda,
                                                              const float *restrict b, float *c,
                                                              int ldc, float beta, int mr, int nr) {
    vf acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = (vf){0};
    for (int t = 0; t < taps; t++) {
        const float *at = a + off[t];
        for (int k = 0; k < kc; k++) {
            vf b0 = *(const vf *)b, b1 = NV == 2 ? *(const vf *)(b + VL) : (vf){0};
#pragma GCC unroll 16
            for (int i = 0; i < MR; i++) {
                vf ai = vf_set1(PACKED ? at[i] : at[(size_t)i * lda]);
                acc0[i] += ai * b0;
                if (NV == 2) acc1[i] += ai * b1;
            }
            at += PACKED ? MR : 1;
            b += NR;
        }
    }
    if (mr == MR && nr == NV * VL) {  // full tile: straight stores, no per-row tests
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            store_row(c + (size_t)i * ldc, acc0[i], VL, beta);
            if (NV == 2) store_row(c + (size_t)i * ldc + VL, acc1[i], VL, beta);
        }
        return;
    }
    int n0 = nr < VL ? nr : VL;
    for (int i = 0; i < mr; i++) {
        store_row(c + (size_t)i * ldc, acc0[i], n0, beta);
        if (NV == 2 && nr > VL) store_row(c + (size_t)i * ldc + VL, acc1[i], nr - VL, beta);
    }
}

/* Edge tile VL < nr <= 1.5·VL (N = 24 on AVX-512): one full and one half vector per row, so
 * the unused quarter of the tile costs nothing (a half-width FMA is half the work). */
static void kernel_one_and_half(int kc, const float *restrict a, const float *restrict b, float *c,
                                int ldc, float beta, int mr, int nr) {
    vf acc0[MR];
    vh acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc0[i] = (vf){0}, acc1[i] = (vh){0};
    for (int k = 0; k < kc; k++) {
        vf b0 = *(const vf *)b;
        vh b1 = *(const vh *)(b + VL);
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            acc0[i] += (a[i] - (vf){0}) * b0;
            acc1[i] += (a[i] - (vh){0}) * b1;
        }
        a += MR;
        b += NR;
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        store_row(ci, acc0[i], VL, beta);
        if (nr == VL + VL / 2) {
            vhu *cv = (vhu *)(ci + VL);
            *cv = beta == 0 ? acc1[i] : (beta == 1 ? *cv + acc1[i] : beta * *cv + acc1[i]);
        } else {
            float tmp[VL / 2];
            memcpy(tmp, &acc1[i], sizeof tmp);
            for (int j = 0; j < nr - VL; j++) ci[VL + j] = beta == 0 ? tmp[j] : beta * ci[VL + j] + tmp[j];
        }
    }
}

static const size_t NO_OFFSET[1] = {0};

static void micro_kernel(int kc, const float *a, const float *b, float *c, int ldc, float beta,
                         int mr, int nr) {
    if (nr > VL + VL / 2) kernel_body(2, true, 1, NO_OFFSET, kc, a, 0, b, c, ldc, beta, mr, nr);
    else if (nr > VL) kernel_one_and_half(kc, a, b, c, ldc, beta, mr, nr);
    else kernel_body(1, true, 1, NO_OFFSET, kc, a, 0, b, c, ldc, beta, mr, nr);
}

/* The same on MR rows of a row-major A read in place (no packing), in `taps` runs. */
static void micro_kernel_direct(int taps, const size_t *off, int kc, const float *a, int lda,
                                const float *b, float *c, int ldc, float beta, int mr, int nr) {
    if (nr > VL) kernel_body(2, false, taps, off, kc, a, lda, b, c, ldc, beta, mr, nr);
    else kernel_body(1, false, taps, off, kc, a, lda, b, c, ldc, beta, mr, nr);
}

/* ------------------------------------------------------------------ packing */
/* A block rows [0, mc) × k [0, kc) of op(A) (already offset) into MR-row micro-panels. */
static void pack_a(bool trans, int mc, int kc, const float *A, int lda, float *restrict dst) {
    for (int i0 = 0; i0 < mc; i0 += MR) {
        int mr = mc - i0 < MR ? mc - i0 : MR;
        if (!trans && mr == MR) {
            const float *rows[MR];
            for (int i = 0; i < MR; i++) rows[i] = A + (size_t)(i0 + i) * lda;
            for (int k = 0; k < kc; k++)
#pragma GCC unroll 16
                for (int i = 0; i < MR; i++) dst[k * MR + i] = rows[i][k];
        } else if (!trans) {
            for (int i = 0; i < mr; i++) {
                const float *src = A + (size_t)(i0 + i) * lda;
                for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
            }
        } else {
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)k * lda + i0;
                for (int i = 0; i < mr; i++) dst[k * MR + i] = src[i];
            }
        }
        for (int i = mr; i < MR; i++)
            for (int k = 0; k < kc; k++) dst[k * MR + i] = 0;
        dst += (size_t)MR * kc;
    }
}

/* B panel k [0, kc) × cols [0, nc) of op(B) (already offset) into NR-column micro-panels. */
static void pack_b(bool trans, int kc, int nc, const float *B, int ldb, float *restrict dst) {
    for (int j0 = 0; j0 < nc; j0 += NR) {
        int nr = nc - j0 < NR ? nc - j0 : NR;
        if (!trans) {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)k * ldb + j0;
                float *d = dst + (size_t)k * NR;
                if (nr == NR) memcpy(d, src, NR * sizeof(float));
                else {
                    for (int j = 0; j < nr; j++) d[j] = src[j];
                    for (int j = nr; j < NR; j++) d[j] = 0;
                }
            }
        } else {
            for (int j = 0; j < nr; j++) {
                const float *src = B + (size_t)(j0 + j) * ldb;
                for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[k];
            }
            for (int j = nr; j < NR; j++)
                for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = 0;
        }
        dst += (size_t)NR * kc;
    }
}

/* ------------------------------------------------------------------ Aᵀ·B for thin outputs */
/* C = beta·C + Aᵀ·B with A (K, M) and B (K, N) read in place (no packing) for small M and N and
 * long K — weight gradients: Xᵀ·dY over a batch of pixels. Packing would copy as much as the
 * micro-kernel computes. Each tile is MR rows × NV vectors: per k, MR values of A's row k
 * broadcast (rows past mr read a valid element and are dropped), NV vectors of B's row k — the
 * same products summed in the same order as the packed kernel, in the same K blocks. */
#ifndef THIN_MAX
#define THIN_MAX 128  // M and N at most this
#endif

static inline __attribute__((always_inline)) void gather_tile(int NV, int kc, const float *restrict a,
                                                              const size_t *base, const size_t *off,
                                                              const float *restrict b, int ldb, float *c, int ldc,
                                                              float beta, int mr) {
    vf acc0[MR], acc1[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = (vf){0};
    for (int k = 0; k < kc; k++) {
        const float *ak = a + base[k];
        vf b0 = vf_load(b), b1 = NV == 2 ? vf_load(b + VL) : (vf){0};
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vf ai = vf_set1(ak[off[i]]);
            acc0[i] += ai * b0;
            if (NV == 2) acc1[i] += ai * b1;
        }
        b += ldb;
    }
    for (int i = 0; i < mr; i++) {
        store_row(c + (size_t)i * ldc, acc0[i], VL, beta);
        if (NV == 2) store_row(c + (size_t)i * ldc + VL, acc1[i], VL, beta);
    }
}

void gemm_gather_tile(int kc, const float *A, const size_t *base, const size_t *off, int mr, const float *B, int ldb,
                      int N, float beta, float *C, int ldc) {
    DQ_CHECK(mr >= 1 && mr <= MR && N % VL == 0);
    int jr = 0;
    for (; jr + 2 * VL <= N; jr += 2 * VL) gather_tile(2, kc, A, base, off, B + jr, ldb, C + jr, ldc, beta, mr);
    if (jr < N) gather_tile(1, kc, A, base, off, B + jr, ldb, C + jr, ldc, beta, mr);
}

static bool thin_enabled = true;

bool gemm_use_thin(bool on) {
    bool was = thin_enabled;
    thin_enabled = on;
    return was;
}

static bool thin_ok(bool ta, bool tb, int M, int N) {
    return thin_enabled && ta && !tb && N % VL == 0 && M <= THIN_MAX && N <= THIN_MAX;
}

static void gemm_thin(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                      float *C, int ldc) {
    size_t base[KC], off[MR];  // A's row k of the block; tile row i's column
    for (int pc = 0; pc < K; pc += KC) {
        int kc = K - pc < KC ? K - pc : KC;
        float b_scale = pc == 0 ? beta : 1.0f;  // beta applies once, on the first K block
        for (int k = 0; k < kc; k++) base[k] = (size_t)(pc + k) * lda;
        for (int ir = 0; ir < M; ir += MR) {
            int mr = M - ir < MR ? M - ir : MR;
            for (int i = 0; i < MR; i++) off[i] = (size_t)ir + (size_t)(i < mr ? i : 0);
            gemm_gather_tile(kc, A, base, off, mr, B + (size_t)pc * ldb, ldb, N, b_scale, C + (size_t)ir * ldc, ldc);
        }
    }
}

/* ------------------------------------------------------------------ serial blocked GEMM */
static void gemm_blocked(int tid, bool ta, bool tb, int M, int N, int K, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta·C
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float *c = &C[(size_t)i * ldc + j];
                *c = beta == 0 ? 0 : beta * *c;
            }
        return;
    }
    if (thin_ok(ta, tb, M, N)) {
        gemm_thin(M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int nc_max = N < NC ? (N + NR - 1) / NR * NR : NC;
    int kc_max = K < KC ? K : KC;
    int mc_max = M < MC ? (M + MR - 1) / MR * MR : MC;
    float *pa = threads_scratch(tid, THREADS_SLOT_GEMM_PACK_A, (size_t)mc_max * kc_max);
    float *pb = threads_scratch(tid, THREADS_SLOT_GEMM_PACK_B, (size_t)nc_max * kc_max);
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K; pc += KC) {
            int kc = K - pc < KC ? K - pc : KC;
            float b_scale = pc == 0 ? beta : 1.0f;  // beta applies once, on the first K block
            const float *Bp = tb ? B + (size_t)jc * ldb + pc : B + (size_t)pc * ldb + jc;
            pack_b(tb, kc, nc, Bp, ldb, pb);
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                const float *Ap = ta ? A + (size_t)pc * lda + ic : A + (size_t)ic * lda + pc;
                // With few columns the GEMM does little work per element of A, and packing A
                // would cost more than it saves: full MR-row strips read A in place.
                int direct = (!ta && nc <= DIRECT_A_MAX_N) ? mc / MR * MR : 0;
                if (direct < mc) pack_a(ta, mc - direct, kc, ta ? Ap + direct : Ap + (size_t)direct * lda, lda, pa);
                // Row-panel outer: each MR-row strip of C is finished left to right, so C is
                // written as a stream (this matters when K is short and C traffic dominates).
                for (int ir = 0; ir < mc; ir += MR) {
                    int mr = mc - ir < MR ? mc - ir : MR;
                    for (int jr = 0; jr < nc; jr += NR) {
                        int nr = nc - jr < NR ? nc - jr : NR;
                        float *c = C + (size_t)(ic + ir) * ldc + jc + jr;
                        if (ir < direct)
                            micro_kernel_direct(1, NO_OFFSET, kc, Ap + (size_t)ir * lda, lda,
                                                pb + (size_t)jr * kc, c, ldc, b_scale, MR, nr);
                        else micro_kernel(kc, pa + (size_t)(ir - direct) * kc, pb + (size_t)jr * kc, c, ldc, b_scale, mr, nr);
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ implicit-GEMM convolution */
int gemm_tile_rows(void) { return MR; }

int gemm_k_block(void) { return KC; }

size_t gemm_packed_b_floats(int K, int N) { return (size_t)K * ((N + NR - 1) / NR * NR); }

void gemm_pack_b(int K, int N, const float *B, int ldb, float *packed) {
    pack_b(false, K, N, B, ldb, packed);
}

bool gemm_conv_taps_ok(int taps, int cin) { return taps * cin <= KC || KC % cin == 0; }

void gemm_conv_rows(int rows, int N, int taps, const size_t *off, int cin, const float *A, int lda,
                    const float *Bpacked, float beta, float *C, int ldc) {
    DQ_CHECK(rows >= 1 && rows <= MR && gemm_conv_taps_ok(taps, cin));
    int K = taps * cin, group = K <= KC ? taps : KC / cin;  // taps per K block of the GEMM
    for (int jr = 0; jr < N; jr += NR)
        for (int t0 = 0; t0 < taps; t0 += group)  // as gemm: each K block summed apart, then added
            micro_kernel_direct(taps - t0 < group ? taps - t0 : group, off + t0, cin, A, lda,
                                Bpacked + (size_t)jr * K + (size_t)t0 * cin * NR, C + jr, ldc, t0 ? 1.0f : beta,
                                rows, N - jr < NR ? N - jr : NR);
}

void gemm_serial(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_blocked(threads_current_tid(), trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* ------------------------------------------------------------------ threading */
typedef enum { SPLIT_M, SPLIT_N, SPLIT_K } GemmSplit;

typedef struct GemmJob {
    bool ta, tb;
    int M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C, beta;
    GemmSplit split;
    int unit;       // rows (SPLIT_M) or columns (SPLIT_N) per work item; K per item for SPLIT_K
    float *partial; // SPLIT_K: T partial C blocks of M×N
} GemmJob;

static void gemm_task(void *ctx, int begin, int end, int tid) {
    const GemmJob *j = ctx;
    if (j->split == SPLIT_M) {
        int m0 = begin * j->unit, m1 = end * j->unit < j->M ? end * j->unit : j->M;
        const float *A = j->ta ? j->A + m0 : j->A + (size_t)m0 * j->lda;
        gemm_blocked(tid, j->ta, j->tb, m1 - m0, j->N, j->K, A, j->lda, j->B, j->ldb, j->beta,
                     j->C + (size_t)m0 * j->ldc, j->ldc);
    } else if (j->split == SPLIT_N) {
        int n0 = begin * j->unit, n1 = end * j->unit < j->N ? end * j->unit : j->N;
        const float *B = j->tb ? j->B + (size_t)n0 * j->ldb : j->B + n0;
        gemm_blocked(tid, j->ta, j->tb, j->M, n1 - n0, j->K, j->A, j->lda, B, j->ldb, j->beta,
                     j->C + n0, j->ldc);
    } else {  // SPLIT_K: item t computes the partial product over its K range
        int k0 = begin * j->unit, k1 = end * j->unit < j->K ? end * j->unit : j->K;
        const float *A = j->ta ? j->A + (size_t)k0 * j->lda : j->A + k0;
        const float *B = j->tb ? j->B + k0 : j->B + (size_t)k0 * j->ldb;
        gemm_blocked(tid, j->ta, j->tb, j->M, j->N, k1 - k0, A, j->lda, B, j->ldb, 0.0f,
                     j->partial + (size_t)tid * j->M * j->N, j->N);
    }
}

void gemm(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
          int ldb, float beta, float *C, int ldc) {
    DQ_CHECK(M >= 0 && N >= 0 && K >= 0);
    int T = threads_count();
    double flops = 2.0 * M * N * K;
    if (T == 1 || flops < 2e5) {
        gemm_serial(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    GemmJob job = {.ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .A = A,
                   .B = B, .C = C, .beta = beta, .split = SPLIT_M, .unit = MR};
    int m_items = (M + MR - 1) / MR, n_items = (N + NR - 1) / NR;
    int items;
    if (m_items >= 4 * T && m_items >= n_items) {
        job.split = SPLIT_M;
        items = m_items;
    } else if (n_items >= 4 * T) {
        job.split = SPLIT_N;
        job.unit = NR;
        items = n_items;
    } else if (K >= 8 * (M > N ? M : N) && K >= 256 * T) {
        // Both output dims are small and K is long (weight gradients): T partial products,
        // summed in thread order below so the result depends only on T.
        job.split = SPLIT_K;
        job.unit = (K + T - 1) / T;
        items = T;
        float *p0 = threads_scratch(0, THREADS_SLOT_GEMM_SPLIT_K, dq_mul_size((size_t)T, (size_t)M * N));
        job.partial = p0;
        parallel_for(items, gemm_task, &job);
        for (int i = 0; i < M; i++)
            for (int jj = 0; jj < N; jj++) {
                float s = 0;
                for (int t = 0; t < T; t++) s += p0[(size_t)t * M * N + (size_t)i * N + jj];
                float *c = &C[(size_t)i * ldc + jj];
                *c = beta == 0 ? s : beta * *c + s;
            }
        return;
    } else if (m_items >= n_items) {
        job.split = SPLIT_M;
        items = m_items;
    } else {
        job.split = SPLIT_N;
        job.unit = NR;
        items = n_items;
    }
    parallel_for(items, gemm_task, &job);
}
