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
        {1, 1, 1, false, false, 0, 0, 1},       {7, 5, 3, false, false, 0, 0, 1},
        {13, 33, 17, false, false, 1, 3, 1},    {12, 32, 256, false, false, 0, 0, 1},
        {25, 65, 257, true, false, 0, 1, 2},    {37, 19, 300, false, true, 1, 0, 2},
        {64, 48, 31, true, true, 0.5f, 2, 3},   {130, 70, 520, false, false, 0, 0, 2},
        {3, 200, 1000, true, false, 1, 0, 2},   {5, 7, 4096, true, false, 1, 0, 2},
        {300, 24, 144, false, false, 0, 0, 2},  {300, 144, 24, false, false, 0, 5, 2},
        {96, 3072 + 40, 9, false, false, 0, 0, 2}, {1, 513, 77, false, true, 0, 0, 2},
        {511, 1, 77, true, false, 1, 0, 2},     {49, 50, 51, true, true, 1, 7, 1},
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

Test(gemm, kernel_name_is_reported) {
    cr_assert(strstr(gemm_kernel_name(), "MR=") != NULL);
}
