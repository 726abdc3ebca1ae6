/* test_loss.c — softmax cross-entropy: hand values, smoothing, stability, gradient, bad labels. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "helpers.h"

Test(loss, hand_computed, .init = test_setup, .fini = test_teardown) {
    // Row 0: logits (0, 0) label 1 -> log 2. Row 1: logits (ln 3, 0) label 0 -> −log(3/4).
    Tensor *z = tensor_new2(&test_arena, 2, 2);
    memcpy(z->data, (float[]){0, 0, logf(3), 0}, sizeof(float[4]));
    z->requires_grad = true;
    Tensor *L = op_softmax_cross_entropy(&T, z, (const int[]){1, 0}, 0);
    double want = (log(2.0) - log(0.75)) / 2;
    cr_assert_float_eq(L->data[0], (float)want, 1e-6);
    tape_backward(&T, L);
    // d/dz = (p − onehot)/N
    assert_close(z->grad, (float[]){0.25f, -0.25f, -0.125f, 0.125f}, 4, 1e-5, 1e-6, "dlogits");
}

Test(loss, label_smoothing_value, .init = test_setup, .fini = test_teardown) {
    // Uniform logits over K = 4: every log p = −log 4 whatever the target.
    Tensor *z = tensor_new2(&test_arena, 1, 4);
    tensor_fill(z, 0.3f);
    Tensor *L = op_softmax_cross_entropy(&T, z, (const int[]){2}, 0.1f);
    cr_assert_float_eq(L->data[0], (float)log(4.0), 1e-6);
    // Confident correct prediction: loss with smoothing ε is larger than without.
    z->data[2] = 10;
    float plain = op_softmax_cross_entropy(&T, z, (const int[]){2}, 0)->data[0];
    float smooth = op_softmax_cross_entropy(&T, z, (const int[]){2}, 0.1f)->data[0];
    cr_assert(smooth > plain + 0.5f, "smoothing %g vs plain %g", smooth, plain);
}

Test(loss, stable_for_huge_logits, .init = test_setup, .fini = test_teardown) {
    Tensor *z = tensor_new2(&test_arena, 1, 3);
    memcpy(z->data, (float[]){1000, -1000, 999}, sizeof(float[3]));
    Tensor *L = op_softmax_cross_entropy(&T, z, (const int[]){2}, 0);
    cr_assert(isfinite(L->data[0]));
    cr_assert_float_eq(L->data[0], (float)log1p(exp(1.0)), 1e-5);
}

typedef struct CeCtx {
    const int *labels;
    float smoothing;
} CeCtx;

static Tensor *ce_fn(Tape *t, Tensor **in, void *ctx) {
    CeCtx *c = ctx;
    return op_softmax_cross_entropy(t, in[0], c->labels, c->smoothing);
}

Test(loss, gradcheck, .init = test_setup, .fini = test_teardown) {
    Tensor *z = rand_param(2, (const int[]){5, 7}, -3, 3);
    CeCtx plain = {(const int[]){0, 6, 3, 3, 1}, 0}, smooth = {(const int[]){2, 2, 5, 0, 6}, 0.2f};
    assert_gradcheck(ce_fn, &plain, &z, 1, 1e-2, false, "cross-entropy");
    assert_gradcheck(ce_fn, &smooth, &z, 1, 1e-2, false, "cross-entropy, smoothing 0.2");
}

static void bad_label(void *ctx) {
    op_softmax_cross_entropy(&T, tensor_new2(&test_arena, 3, 10), (const int[]){1, 10, 2}, 0);
}

Test(loss, rejects_label_out_of_range, .init = test_setup, .fini = test_teardown) {
    const char *m = expect_fatal(bad_label, NULL);
    cr_assert(strstr(m, "label 10 at row 1 is outside [0, 10)") != NULL, "got: %s", m);
}

Test(loss, bad_label_exits_with_status_1, .init = test_setup_quiet, .fini = test_teardown, .exit_code = 1) {
    bad_label(NULL);
}
