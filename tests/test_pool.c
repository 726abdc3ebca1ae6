/* test_pool.c — max, average and global average pooling: hand cases, gradchecks, errors. */
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "helpers.h"

static Tensor *iota4(int n, int h, int w, int c) {
    Tensor *x = tensor_new4(&test_arena, n, h, w, c);
    for (size_t i = 0; i < x->numel; i++) x->data[i] = (float)i;
    return x;
}

Test(pool, maxpool_hand_computed, .init = test_setup, .fini = test_teardown) {
    // 4x4 image 0..15, 2x2 windows stride 2 -> 5 7 13 15
    Tensor *x = iota4(1, 4, 4, 1);
    x->requires_grad = true;
    Tensor *y = op_maxpool2d(&T, x, (Pool2dArgs){.kernel = 2, .stride = 2, .pad = 0});
    assert_close(y->data, (float[]){5, 7, 13, 15}, 4, 0, 0, "maxpool 2x2/2");
    Tensor *s = op_sum(&T, y);
    tape_backward(&T, s);
    float want[16] = {0};
    want[5] = want[7] = want[13] = want[15] = 1;
    assert_close(x->grad, want, 16, 0, 0, "maxpool gradient goes to the maxima");
}

Test(pool, maxpool_padding_is_ignored, .init = test_setup, .fini = test_teardown) {
    Tensor *x = tensor_new4(&test_arena, 1, 2, 2, 1);
    tensor_fill(x, -3);  // all negative: padding must not win as a zero
    Tensor *y = op_maxpool2d(&T, x, (Pool2dArgs){.kernel = 3, .stride = 1, .pad = 1});
    assert_close(y->data, (float[]){-3, -3, -3, -3}, 4, 0, 0, "maxpool 3x3/1 pad 1");
}

Test(pool, avgpool_counts_padding, .init = test_setup, .fini = test_teardown) {
    Tensor *x = tensor_new4(&test_arena, 1, 2, 2, 1);
    tensor_fill(x, 9);
    Tensor *y = op_avgpool2d(&T, x, (Pool2dArgs){.kernel = 3, .stride = 1, .pad = 1});
    assert_close(y->data, (float[]){4, 4, 4, 4}, 4, 0, 0, "avgpool 3x3 pad 1: 4 of 9 taps inside");
    Tensor *y2 = op_avgpool2d(&T, iota4(1, 4, 4, 1), (Pool2dArgs){.kernel = 2, .stride = 2, .pad = 0});
    assert_close(y2->data, (float[]){2.5f, 4.5f, 10.5f, 12.5f}, 4, 0, 0, "avgpool 2x2/2");
}

Test(pool, global_avgpool_hand_computed, .init = test_setup, .fini = test_teardown) {
    Tensor *y = op_global_avgpool(&T, iota4(2, 2, 2, 2));
    // image 0: channel 0 = 0,2,4,6 -> 3; channel 1 -> 4; image 1: 11, 12
    assert_close(y->data, (float[]){3, 4, 11, 12}, 4, 0, 0, "global average");
    cr_assert_eq(y->ndim, 2);
}

typedef struct PoolCtx {
    int kind;  // 0 max, 1 avg, 2 global
    Pool2dArgs a;
} PoolCtx;

static Tensor *pool_fn(Tape *t, Tensor **in, void *ctx) {
    PoolCtx *c = ctx;
    if (c->kind == 0) return op_maxpool2d(t, in[0], c->a);
    if (c->kind == 1) return op_avgpool2d(t, in[0], c->a);
    return op_global_avgpool(t, in[0]);
}

Test(pool, gradchecks, .init = test_setup, .fini = test_teardown) {
    // Distinct, well separated values so no max is within eps of another.
    Tensor *x = rand_param(4, (const int[]){2, 5, 6, 3}, 0, 1);
    int *perm = arena_alloc(&test_arena, x->numel * sizeof(int));
    for (size_t i = 0; i < x->numel; i++) perm[i] = (int)i;
    rng_shuffle(&R, perm, x->numel);
    for (size_t i = 0; i < x->numel; i++) x->data[i] = 0.1f * (float)perm[i];
    PoolCtx max_cases[] = {{0, {2, 2, 0}}, {0, {3, 2, 1}}};
    assert_gradcheck(pool_fn, &max_cases[0], &x, 1, 1e-2, false, "maxpool 2/2");
    assert_gradcheck(pool_fn, &max_cases[1], &x, 1, 1e-2, false, "maxpool 3/2 pad 1");
    Tensor *u = rand_param(4, (const int[]){2, 5, 6, 3}, -1, 1);
    PoolCtx avg_cases[] = {{1, {3, 1, 1}}, {1, {2, 2, 0}}, {2, {1, 1, 0}}};
    assert_gradcheck(pool_fn, &avg_cases[0], &u, 1, 1e-2, false, "avgpool 3/1 pad 1");
    assert_gradcheck(pool_fn, &avg_cases[1], &u, 1, 1e-2, false, "avgpool 2/2");
    assert_gradcheck(pool_fn, &avg_cases[2], &u, 1, 1e-2, false, "global avg");
}

static void bad_pool(void *ctx) {
    op_maxpool2d(&T, tensor_new4(&test_arena, 1, 4, 4, 1), *(Pool2dArgs *)ctx);
}

Test(pool, rejects_bad_arguments, .init = test_setup, .fini = test_teardown) {
    Pool2dArgs big = {.kernel = 5, .stride = 1, .pad = 0}, pad = {2, 1, 2}, stride = {2, 0, 0};
    cr_assert(strstr(expect_fatal(bad_pool, &big), "does not fit") != NULL);
    cr_assert(strstr(expect_fatal(bad_pool, &pad), "pad <= kernel/2") != NULL);
    cr_assert(strstr(expect_fatal(bad_pool, &stride), "stride >= 1") != NULL);
}
