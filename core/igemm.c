/* igemm.c — uint8 × int8 → int32 matrix multiply: the reference loop and the packed kernel.
 *
 * Legend: M, N, K as in igemm.h; KG = ceil(K/4) groups of 4 k; MR rows × NR columns is the
 * register tile. Packed B: for each panel of NR columns, KG groups of NR × 4 bytes, lane j of a
 * group holding B[4g..4g+3][j] — one 512-bit (or 256-bit) load feeds `vpdpbusd` for 16 (8)
 * columns, and the 4 bytes of A[i][4g..4g+3] are broadcast to every lane.
 */
#include "igemm.h"

#include <string.h>

#include "error.h"
#include "threads.h"

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define IG_AVX512 1
#define NR 32
#define MR 8
#elif defined(__AVX2__) && defined(__AVXVNNI__)
#include <immintrin.h>
#define IG_AVX 1
#define NR 16
#define MR 6
#else
#define NR 16
#define MR 4
#endif

const char *igemm_kernel_name(void) {
#if defined(IG_AVX512)
    return "avx512-vnni";
#elif defined(IG_AVX)
    return "avx-vnni";
#else
    return "scalar";
#endif
}

int igemm_nr(void) { return NR; }

void igemm_ref(int M, int N, int K, const uint8_t *A, int lda, const int8_t *B, int32_t *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)A[(size_t)i * lda + k] * B[(size_t)k * N + j];
            C[(size_t)i * ldc + j] = s;
        }
}

size_t igemm_packed_bytes(int K, int N) {
    size_t groups = (size_t)(K + 3) / 4, cols = (size_t)(N + NR - 1) / NR * NR;
    return dq_mul_size(groups * 4, cols);
}

void igemm_pack_b(int K, int N, const int8_t *B, int8_t *packed) {
    int KG = (K + 3) / 4;
    for (int j0 = 0; j0 < N; j0 += NR)
        for (int g = 0; g < KG; g++)
            for (int j = 0; j < NR; j++)
                for (int q = 0; q < 4; q++) {
                    int k = 4 * g + q, col = j0 + j;
                    *packed++ = k < K && col < N ? B[(size_t)k * N + col] : 0;
                }
}

static inline int32_t load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* C rows [i0, i0 + mr) × panel columns [j0, j0 + nr) = A rows · packed panel (KG groups). */
static void tile(int mr, int nr, int KG, const uint8_t *A, int lda, const int8_t *panel, int32_t *C, int ldc) {
#if defined(IG_AVX512)
    if (mr == MR) {
        __m512i acc[MR][2];
        for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
        for (int g = 0; g < KG; g++) {
            __m512i b0 = _mm512_loadu_si512(panel + (size_t)g * NR * 4), b1 = _mm512_loadu_si512(panel + (size_t)g * NR * 4 + 64);
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) {
                __m512i a = _mm512_set1_epi32(load4(A + (size_t)r * lda + 4 * g));
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
            }
        }
        if (nr == NR) {
            for (int r = 0; r < MR; r++) {
                _mm512_storeu_si512(C + (size_t)r * ldc, acc[r][0]);
                _mm512_storeu_si512(C + (size_t)r * ldc + 16, acc[r][1]);
            }
        } else {
            __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffff : (1u << nr) - 1);
            __mmask16 m1 = (__mmask16)(nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
            for (int r = 0; r < MR; r++) {
                _mm512_mask_storeu_epi32(C + (size_t)r * ldc, m0, acc[r][0]);
                _mm512_mask_storeu_epi32(C + (size_t)r * ldc + 16, m1, acc[r][1]);
            }
        }
        return;
    }
#elif defined(IG_AVX)
    if (mr == MR) {
        __m256i acc[MR][2];
        for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
        for (int g = 0; g < KG; g++) {
            __m256i b0 = _mm256_loadu_si256((const __m256i *)(panel + (size_t)g * NR * 4));
            __m256i b1 = _mm256_loadu_si256((const __m256i *)(panel + (size_t)g * NR * 4 + 32));
            for (int r = 0; r < MR; r++) {
                __m256i a = _mm256_set1_epi32(load4(A + (size_t)r * lda + 4 * g));
                acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], a, b0);
                acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], a, b1);
            }
        }
        for (int r = 0; r < MR; r++) {
            int32_t tmp[16];
            _mm256_storeu_si256((__m256i *)tmp, acc[r][0]);
            _mm256_storeu_si256((__m256i *)(tmp + 8), acc[r][1]);
            memcpy(C + (size_t)r * ldc, tmp, (size_t)nr * sizeof(int32_t));
        }
        return;
    }
#endif
    // Portable: the same packed layout, one row at a time (also the edge rows of the vector paths).
    for (int r = 0; r < mr; r++) {
        int32_t acc[NR] = {0};
        const uint8_t *a = A + (size_t)r * lda;
        for (int g = 0; g < KG; g++) {
            const int8_t *b = panel + (size_t)g * NR * 4;
            uint8_t a0 = a[4 * g], a1 = a[4 * g + 1], a2 = a[4 * g + 2], a3 = a[4 * g + 3];
            for (int j = 0; j < NR; j++)
                acc[j] += a0 * b[4 * j] + a1 * b[4 * j + 1] + a2 * b[4 * j + 2] + a3 * b[4 * j + 3];
        }
        memcpy(C + (size_t)r * ldc, acc, (size_t)nr * sizeof(int32_t));
    }
}

void igemm_serial(int M, int N, int K, const uint8_t *A, int lda, const int8_t *Bpacked, int32_t *C, int ldc) {
    int KG = (K + 3) / 4;
    for (int i0 = 0; i0 < M; i0 += MR) {
        int mr = M - i0 < MR ? M - i0 : MR;
        for (int j0 = 0; j0 < N; j0 += NR) {
            int nr = N - j0 < NR ? N - j0 : NR;
            tile(mr, nr, KG, A + (size_t)i0 * lda, lda, Bpacked + (size_t)j0 * KG * 4, C + (size_t)i0 * ldc + j0, ldc);
        }
    }
}

typedef struct IgemmJob {
    int M, N, K, lda, ldc, rows;  // rows per item (a multiple of MR)
    const uint8_t *A;
    const int8_t *B;
    int32_t *C;
} IgemmJob;

static void igemm_task(void *ctx, int begin, int end, int tid) {
    const IgemmJob *j = ctx;
    int i0 = begin * j->rows, i1 = end * j->rows < j->M ? end * j->rows : j->M;
    igemm_serial(i1 - i0, j->N, j->K, j->A + (size_t)i0 * j->lda, j->lda, j->B, j->C + (size_t)i0 * j->ldc, j->ldc);
}

void igemm(int M, int N, int K, const uint8_t *A, int lda, const int8_t *Bpacked, int32_t *C, int ldc) {
    DQ_CHECK(M >= 0 && N >= 0 && K >= 0);
    IgemmJob job = {.M = M, .N = N, .K = K, .lda = lda, .ldc = ldc, .rows = 4 * MR, .A = A, .B = Bpacked, .C = C};
    if ((double)M * N * K < 2e5 || threads_count() == 1) {
        igemm_serial(M, N, K, A, lda, Bpacked, C, ldc);
        return;
    }
    parallel_for((M + job.rows - 1) / job.rows, igemm_task, &job);
}
