/* test_elementwise.c — add, scale, sum, mean, reshape, flatten. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "helpers.h"

Test(elementwise, values, .init = test_setup, .fini = test_teardown) {
    Tensor *a = tensor_new2(&test_arena, 1, 3), *b = tensor_new2(&test_arena, 1, 3);
    memcpy(a->data, (float[]){1, 2, 3}, sizeof(float[3]));
    memcpy(b->data, (float[]){10, 20, 30}, sizeof(float[3]));
    assert_close(op_add(&T, a, b)->data, (float[]){11, 22, 33}, 3, 0, 0, "add");
    assert_close(op_scale(&T, a, -2)->data, (float[]){-2, -4, -6}, 3, 0, 0, "scale");
    cr_assert_float_eq(op_sum(&T, b)->data[0], 60, 0);
    cr_assert_float_eq(op_mean(&T, b)->data[0], 20, 1e-6);
    Tensor *r = op_reshape(&T, op_add(&T, a, b), 2, (const int[]){3, 1});
    cr_assert_eq(r->shape[0], 3);
    cr_assert_float_eq(r->data[2], 33, 0);
    Tensor *f = op_flatten(&T, tensor_new4(&test_arena, 2, 3, 4, 5));
    cr_assert(f->ndim == 2 && f->shape[0] == 2 && f->shape[1] == 60);
}

static Tensor *add_fn(Tape *t, Tensor **in, void *ctx) { return op_add(t, in[0], in[1]); }
static Tensor *add_relu_fn(Tape *t, Tensor **in, void *ctx) { return op_add_act(t, in[0], in[1], ACT_RELU); }
static Tensor *add_relu6_fn(Tape *t, Tensor **in, void *ctx) { return op_add_act(t, in[0], in[1], ACT_RELU6); }
static Tensor *scale_fn(Tape *t, Tensor **in, void *ctx) { return op_scale(t, in[0], 0.7f); }
static Tensor *sum_fn(Tape *t, Tensor **in, void *ctx) { return op_sum(t, in[0]); }
static Tensor *mean_fn(Tape *t, Tensor **in, void *ctx) { return op_mean(t, in[0]); }
static Tensor *reshape_fn(Tape *t, Tensor **in, void *ctx) {
    return op_scale(t, op_reshape(t, in[0], 1, (const int[]){(int)in[0]->numel}), 1.5f);
}

Test(elementwise, gradchecks, .init = test_setup, .fini = test_teardown) {
    Tensor *a = rand_param(4, (const int[]){2, 3, 2, 2}, -1, 1), *b = rand_param(4, (const int[]){2, 3, 2, 2}, -1, 1);
    assert_gradcheck(add_fn, NULL, (Tensor *[]){a, b}, 2, 1e-3, false, "add");
    assert_gradcheck(scale_fn, NULL, &a, 1, 1e-3, false, "scale");
    // a + b kept at least 0.1 away from the kinks at 0 and 6
    for (size_t i = 0; i < a->numel; i++) {
        float s = a->data[i] + b->data[i];
        if (fabsf(s) < 0.1f || fabsf(s - 6) < 0.1f) a->data[i] += 0.3f;
    }
    assert_gradcheck(add_relu_fn, NULL, (Tensor *[]){a, b}, 2, 1e-3, false, "add+relu");
    for (size_t i = 0; i < a->numel; i++) a->data[i] *= 5;  // reach past 6 too
    for (size_t i = 0; i < a->numel; i++) {
        float s = a->data[i] + b->data[i];
        if (fabsf(s) < 0.1f || fabsf(s - 6) < 0.1f) a->data[i] += 0.3f;
    }
    assert_gradcheck(add_relu6_fn, NULL, (Tensor *[]){a, b}, 2, 1e-3, false, "add+relu6");
    assert_gradcheck(sum_fn, NULL, &a, 1, 1e-3, false, "sum");
    assert_gradcheck(mean_fn, NULL, &a, 1, 1e-3, false, "mean");
    assert_gradcheck(reshape_fn, NULL, &a, 1, 1e-3, false, "reshape");
}

static void bad_add(void *ctx) { op_add(&T, tensor_new2(&test_arena, 2, 3), tensor_new2(&test_arena, 3, 2)); }
static void bad_reshape(void *ctx) { op_reshape(&T, tensor_new2(&test_arena, 2, 3), 1, (const int[]){5}); }

Test(elementwise, rejects_shape_mismatch, .init = test_setup, .fini = test_teardown) {
    cr_assert(strstr(expect_fatal(bad_add, NULL), "add: shapes (2, 3) and (3, 2) differ") != NULL);
    cr_assert(strstr(expect_fatal(bad_reshape, NULL), "reshape: (2, 3) has 6 elements, (5) has 5") != NULL);
}
