/* test_gemm.c — the fast GEMM against the reference on awkward shapes, transposes, betas,
 * leading dimensions and thread counts. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "helpers.h"

typedef struct GemmCase {
    int M, N, K;
    bool ta, tb;
    float beta;
    int pad;      // extra columns in each leading dimension
    int threads;
} GemmCase;

static void run_case(const GemmCase *c) {
    threads_init(c->threads);
    int rows_a = c->ta ? c->K : c->M, cols_a = c->ta ? c->M : c->K;
    int rows_b = c->tb ? c->N : c->K, cols_b = c->tb ? c->K : c->N;
    int lda = cols_a + c->pad, ldb = cols_b + c->pad, ldc = c->N + c->pad;
    size_t na = (size_t)rows_a * lda, nb = (size_t)rows_b * ldb, nc = (size_t)c->M * ldc;
    float *A = dq_malloc((na + 1) * sizeof(float)), *B = dq_malloc((nb + 1) * sizeof(float));
    float *C = dq_malloc((nc + 1) * sizeof(float)), *Cref = dq_malloc((nc + 1) * sizeof(float));
    rng_fill_uniform(&R, A, na, -1, 1);
    rng_fill_uniform(&R, B, nb, -1, 1);
    rng_fill_uniform(&R, C, nc, -1, 1);
    memcpy(Cref, C, nc * sizeof(float));
    gemm(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, c->beta, C, ldc);
    gemm_ref(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, c->beta, Cref, ldc);
    char what[160];
    snprintf(what, sizeof what, "gemm M=%d N=%d K=%d ta=%d tb=%d beta=%g pad=%d threads=%d", c->M,
             c->N, c->K, c->ta, c->tb, c->beta, c->pad, c->threads);
    assert_close(C, Cref, nc, 1e-5, 1e-5 * sqrt((double)c->K + 1), what);
    dq_free(A);
    dq_free(B);
    dq_free(C);
    dq_free(Cref);
    threads_shutdown();
}

ParameterizedTestParameters(gemm, matches_reference) {
    static GemmCase cases[] = {
        {.M = 1, .N = 1, .K = 1, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 1},
        {.M = 7, .N = 5, .K = 3, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 1},
        {.M = 13, .N = 33, .K = 17, .ta = false, .tb = false, .beta = 1, .pad = 3, .threads = 1},
        {.M = 12, .N = 32, .K = 256, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 1},
        {.M = 25, .N = 65, .K = 257, .ta = true, .tb = false, .beta = 0, .pad = 1, .threads = 2},
        {.M = 37, .N = 19, .K = 300, .ta = false, .tb = true, .beta = 1, .pad = 0, .threads = 2},
        {.M = 64, .N = 48, .K = 31, .ta = true, .tb = true, .beta = 0.5f, .pad = 2, .threads = 3},
        {.M = 130, .N = 70, .K = 520, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 2},
        {.M = 3, .N = 200, .K = 1000, .ta = true, .tb = false, .beta = 1, .pad = 0, .threads = 2},
        {.M = 5, .N = 7, .K = 4096, .ta = true, .tb = false, .beta = 1, .pad = 0, .threads = 2},
        {.M = 300, .N = 24, .K = 144, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 2},
        {.M = 300, .N = 144, .K = 24, .ta = false, .tb = false, .beta = 0, .pad = 5, .threads = 2},
        {.M = 96, .N = 3072 + 40, .K = 9, .ta = false, .tb = false, .beta = 0, .pad = 0, .threads = 2},
        {.M = 1, .N = 513, .K = 77, .ta = false, .tb = true, .beta = 0, .pad = 0, .threads = 2},
        {.M = 511, .N = 1, .K = 77, .ta = true, .tb = false, .beta = 1, .pad = 0, .threads = 2},
        {.M = 49, .N = 50, .K = 51, .ta = true, .tb = true, .beta = 1, .pad = 7, .threads = 1},
        {.M = 25, .N = 48, .K = 700, .ta = true, .tb = false, .beta = 1, .pad = 3, .threads = 2},  // thin
        {.M = 96, .N = 16, .K = 3000, .ta = true, .tb = false, .beta = 0, .pad = 0, .threads = 2}, // thin
    };
    return cr_make_param_array(GemmCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(GemmCase *c, gemm, matches_reference, .init = test_setup, .fini = test_teardown) {
    run_case(c);
}

Test(gemm, beta_zero_ignores_nan_in_c, .init = test_setup, .fini = test_teardown) {
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4];
    for (int i = 0; i < 4; i++) C[i] = NAN;
    gemm(false, false, 2, 2, 3, A, 3, B, 2, 0.0f, C, 2);
    // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11]
    float want[4] = {4, 5, 10, 11};
    assert_close(C, want, 4, 0, 0, "hand-computed 2x3 · 3x2");
}

Test(gemm, k_zero_scales_c, .init = test_setup, .fini = test_teardown) {
    float C[4] = {1, 2, 3, 4}, A[1] = {0}, B[1] = {0};
    gemm(false, false, 2, 2, 0, A, 1, B, 2, 0.5f, C, 2);
    float want[4] = {0.5f, 1, 1.5f, 2};
    assert_close(C, want, 4, 0, 0, "K = 0");
}

Test(gemm, same_bits_for_same_thread_count, .init = test_setup, .fini = test_teardown) {
    int M = 40, N = 30, K = 5000;  // K-split path: partial sums combined in thread order
    float *A = dq_malloc((size_t)K * M * sizeof(float)), *B = dq_malloc((size_t)K * N * sizeof(float));
    float *C1 = dq_calloc((size_t)M * N, sizeof(float)), *C2 = dq_calloc((size_t)M * N, sizeof(float));
    rng_fill_uniform(&R, A, (size_t)K * M, -1, 1);
    rng_fill_uniform(&R, B, (size_t)K * N, -1, 1);
    threads_init(2);
    gemm(true, false, M, N, K, A, M, B, N, 0.0f, C1, N);
    gemm(true, false, M, N, K, A, M, B, N, 0.0f, C2, N);
    threads_shutdown();
    assert_bits_equal(C1, C2, (size_t)M * N, "two runs with 2 threads");
    dq_free(A);
    dq_free(B);
    dq_free(C1);
    dq_free(C2);
}

/* Aᵀ·B read in place for small outputs sums the packed kernel's products in its order and K
 * blocks: the same bits, whichever way gemm splits the work (rows, columns, K). */
Test(gemm, thin_same_bits_as_packed, .init = test_setup, .fini = test_teardown) {
    static const GemmCase cases[] = {
        {.M = 96, .N = 16, .K = 5000, .ta = true, .beta = 1, .threads = 2},    // split over rows
        {.M = 16, .N = 96, .K = 5000, .ta = true, .beta = 1, .threads = 2},    // split over K
        {.M = 5, .N = 32, .K = 300, .ta = true, .beta = 0, .threads = 1},      // a partial row tile
        {.M = 128, .N = 128, .K = 700, .ta = true, .beta = 0.5f, .pad = 3, .threads = 3},
        {.M = 37, .N = 48, .K = 257, .ta = true, .beta = 0, .pad = 1, .threads = 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const GemmCase *c = &cases[i];
        threads_init(c->threads);
        int lda = c->M + c->pad, ldb = c->N + c->pad, ldc = c->N + c->pad;
        size_t na = (size_t)c->K * lda, nb = (size_t)c->K * ldb, nc = (size_t)c->M * ldc;
        float *A = dq_malloc(na * sizeof(float)), *B = dq_malloc(nb * sizeof(float));
        float *C[2] = {dq_malloc(nc * sizeof(float)), dq_malloc(nc * sizeof(float))};
        rng_fill_uniform(&R, A, na, -1, 1);
        rng_fill_uniform(&R, B, nb, -1, 1);
        rng_fill_uniform(&R, C[0], nc, -1, 1);
        memcpy(C[1], C[0], nc * sizeof(float));
        for (int k = 0; k < 2; k++) {
            gemm_use_thin(k == 0);
            gemm(true, false, c->M, c->N, c->K, A, lda, B, ldb, c->beta, C[k], ldc);
        }
        gemm_use_thin(true);
        char what[120];
        snprintf(what, sizeof what, "thin vs packed: M=%d N=%d K=%d beta=%g threads=%d", c->M, c->N, c->K, c->beta,
                 c->threads);
        assert_bits_equal(C[0], C[1], nc, what);
        dq_free(A), dq_free(B), dq_free(C[0]), dq_free(C[1]);
        threads_shutdown();
    }
}

Test(gemm, kernel_name_is_reported) {
    cr_assert(strstr(gemm_kernel_name(), "MR=") != NULL);
}
