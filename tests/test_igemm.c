/* test_igemm.c — the packed uint8 × int8 kernel against the triple loop on awkward shapes (edges
 * of the register tile in both directions, K not a multiple of 4, one row, one column), the
 * extreme values (255 × −128 sums), and the same bits on 1, 2 and 3 threads. */
#include <string.h>

#include "core/error.h"
#include "core/igemm.h"
#include "core/threads.h"
#include "helpers.h"

typedef struct IgCase {
    int M, N, K, threads;
} IgCase;

ParameterizedTestParameters(igemm, matches_reference) {
    static IgCase cases[] = {
        {.M = 1, .N = 1, .K = 1, .threads = 1},
        {.M = 7, .N = 5, .K = 3, .threads = 1},
        {.M = 9, .N = 33, .K = 17, .threads = 2},
        {.M = 64, .N = 48, .K = 144, .threads = 2},
        {.M = 130, .N = 17, .K = 27, .threads = 3},
        {.M = 3, .N = 200, .K = 1000, .threads = 2},
        {.M = 1000, .N = 24, .K = 9, .threads = 2},
        {.M = 257, .N = 96, .K = 16, .threads = 2},
    };
    return cr_make_param_array(IgCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(IgCase *c, igemm, matches_reference, .init = test_setup, .fini = test_teardown) {
    threads_init(c->threads);
    int lda = (c->K + 3) / 4 * 4 + 4;  // rows padded (the kernel reads whole groups of 4)
    uint8_t *A = dq_malloc((size_t)c->M * lda);
    int8_t *B = dq_malloc((size_t)c->K * c->N), *P = dq_malloc(igemm_packed_bytes(c->K, c->N));
    int32_t *want = dq_malloc((size_t)c->M * c->N * sizeof(int32_t)), *got = dq_malloc((size_t)c->M * c->N * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)c->M * lda; i++) A[i] = (uint8_t)rng_u32(&R);  // padding too: it must not count
    for (size_t i = 0; i < (size_t)c->K * c->N; i++) B[i] = (int8_t)rng_u32(&R);
    if (c->M > 2) memset(A, 255, (size_t)c->K), memset(B, -128, (size_t)c->N);  // the extremes
    igemm_ref(c->M, c->N, c->K, A, lda, B, want, c->N);
    igemm_pack_b(c->K, c->N, B, P);
    igemm(c->M, c->N, c->K, A, lda, P, got, c->N);
    for (size_t i = 0; i < (size_t)c->M * c->N; i++)
        cr_assert_eq(got[i], want[i], "M=%d N=%d K=%d: C[%zu] = %d, reference %d (%s)", c->M, c->N, c->K, i, got[i],
                     want[i], igemm_kernel_name());
    dq_free(A), dq_free(B), dq_free(P), dq_free(want), dq_free(got);
    threads_shutdown();
}
