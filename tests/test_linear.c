/* test_linear.c — matmul and linear: hand case, fast vs reference, gradchecks, shape errors. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"
#include "helpers.h"

Test(linear, hand_computed, .init = test_setup, .fini = test_teardown) {
    // x = [1 2; 3 4], w = [1 0 -1; 2 1 0], b = [0.5 0 1]
    Tensor *x = tensor_new2(&test_arena, 2, 2), *w = tensor_new2(&test_arena, 2, 3);
    Tensor *b = tensor_new(&test_arena, 1, (const int[]){3});
    memcpy(x->data, (float[]){1, 2, 3, 4}, sizeof(float[4]));
    memcpy(w->data, (float[]){1, 0, -1, 2, 1, 0}, sizeof(float[6]));
    memcpy(b->data, (float[]){0.5f, 0, 1}, sizeof(float[3]));
    Tensor *y = op_linear(&T, x, w, b);
    float want[6] = {5.5f, 2, 0, 11.5f, 4, -2};
    assert_close(y->data, want, 6, 0, 0, "linear 2x2 · 2x3 + b");
    Tensor *m = op_matmul(&T, x, w);
    float want_m[6] = {5, 2, -1, 11, 4, -3};
    assert_close(m->data, want_m, 6, 0, 0, "matmul");
}

typedef struct LinCase {
    int N, IN, OUT, threads;
} LinCase;

ParameterizedTestParameters(linear, fast_matches_reference) {
    static LinCase cases[] = {
        {.N = 1, .IN = 1, .OUT = 1, .threads = 1},
        {.N = 3, .IN = 17, .OUT = 5, .threads = 1},
        {.N = 64, .IN = 1280, .OUT = 10, .threads = 2},
        {.N = 7, .IN = 33, .OUT = 129, .threads = 2},
        {.N = 130, .IN = 9, .OUT = 3, .threads = 3},
    };
    return cr_make_param_array(LinCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(LinCase *c, linear, fast_matches_reference, .init = test_setup, .fini = test_teardown) {
    threads_init(c->threads);
    Tensor *x = rand_tensor(2, (const int[]){c->N, c->IN}, -1, 1);
    Tensor *w = rand_tensor(2, (const int[]){c->IN, c->OUT}, -1, 1);
    Tensor *b = rand_tensor(1, (const int[]){c->OUT}, -1, 1);
    Tensor *dy = rand_tensor(2, (const int[]){c->N, c->OUT}, -1, 1);
    size_t ny = (size_t)c->N * c->OUT;
    float *yr = arena_floats(&test_arena, ny), *yf = arena_floats(&test_arena, ny);
    linear_forward_ref(yr, x->data, w->data, b->data, c->N, c->IN, c->OUT);
    linear_forward_fast(yf, x->data, w->data, b->data, c->N, c->IN, c->OUT);
    char what[96];
    snprintf(what, sizeof what, "linear N=%d IN=%d OUT=%d", c->N, c->IN, c->OUT);
    assert_close(yf, yr, ny, 1e-5, 1e-5, what);
    float *dxr = arena_floats_zero(&test_arena, x->numel), *dxf = arena_floats_zero(&test_arena, x->numel);
    float *dwr = arena_floats_zero(&test_arena, w->numel), *dwf = arena_floats_zero(&test_arena, w->numel);
    float *dbr = arena_floats_zero(&test_arena, b->numel), *dbf = arena_floats_zero(&test_arena, b->numel);
    linear_backward_ref(dxr, dwr, dbr, dy->data, x->data, w->data, c->N, c->IN, c->OUT);
    linear_backward_fast(dxf, dwf, dbf, dy->data, x->data, w->data, c->N, c->IN, c->OUT);
    assert_close(dxf, dxr, x->numel, 1e-5, 1e-5, "dx");
    assert_close(dwf, dwr, w->numel, 1e-4, 1e-4, "dw");
    assert_close(dbf, dbr, b->numel, 1e-4, 1e-4, "db");
    threads_shutdown();
}

static Tensor *linear_fn(Tape *t, Tensor **in, void *ctx) { return op_linear(t, in[0], in[1], in[2]); }
static Tensor *matmul_fn(Tape *t, Tensor **in, void *ctx) { return op_matmul(t, in[0], in[1]); }

Test(linear, gradcheck, .init = test_setup, .fini = test_teardown) {
    int shapes[][3] = {{3, 5, 4}, {1, 7, 2}, {6, 2, 9}};
    for (int s = 0; s < 3; s++) {
        Tensor *x = rand_param(2, (const int[]){shapes[s][0], shapes[s][1]}, -1, 1);
        Tensor *w = rand_param(2, (const int[]){shapes[s][1], shapes[s][2]}, -1, 1);
        Tensor *b = rand_param(1, (const int[]){shapes[s][2]}, -1, 1);
        assert_gradcheck(linear_fn, NULL, (Tensor *[]){x, w, b}, 3, 1e-2, false, "linear");
        assert_gradcheck(matmul_fn, NULL, (Tensor *[]){x, w}, 2, 1e-2, false, "matmul");
    }
}

static void bad_linear(void *ctx) {
    Tensor *x = tensor_new2(&test_arena, 4, 8), *w = tensor_new2(&test_arena, 9, 3);
    op_linear(&T, x, w, NULL);
}

Test(linear, rejects_shape_mismatch, .init = test_setup, .fini = test_teardown) {
    const char *m = expect_fatal(bad_linear, NULL);
    cr_assert(strstr(m, "linear: input (4, 8) and weight (9, 3) do not multiply") != NULL, "got: %s", m);
}

Test(linear, mismatch_exits_with_status_1, .init = test_setup_quiet, .fini = test_teardown, .exit_code = 1) {
    bad_linear(NULL);
}
