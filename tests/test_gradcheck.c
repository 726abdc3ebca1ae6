/* test_gradcheck.c — the checker itself: it finds a wrong gradient, passes a right one, and counts
 * the probes it skips on kinks and the ones it compares without losing either count. */
#include "core/ops.h"
#include "helpers.h"

static Tensor *relu_fn(Tape *t, Tensor **in, void *ctx) { return op_relu(t, in[0]); }

Test(gradcheck, counts_kinks_and_checked_probes_separately, .init = test_setup, .fini = test_teardown) {
    // ReLU at 4 points within eps of its kink (0), then 4 far from it. The kinks come first, so
    // the first compared probe records a new worst error after some probes were already skipped.
    Tensor *x = rand_param(1, (const int[]){8}, 0, 1);
    const float v[8] = {-0.004f, 0.003f, -0.001f, 0.002f, 0.5f, -0.7f, 0.9f, 1.3f};
    for (int i = 0; i < 8; i++) x->data[i] = v[i];
    GradcheckOptions o = {.eps = 1e-2, .probes = 8, .skip_kinks = true};
    GradcheckResult r = gradcheck(relu_fn, NULL, &x, 1, &o);
    cr_assert_eq(r.skipped, 4, "%d probes skipped as kinks, 4 straddle the kink", r.skipped);
    cr_assert_eq(r.checked, 4, "%d probes compared, 4 are away from the kink", r.checked);
    cr_assert(r.max_err < 1e-4, "relu's gradient is exact away from 0: error %g", r.max_err);
}

/* A deliberately wrong backward: y = 2x whose backward claims 3. */
static void wrong_backward(Tape *t, TapeRecord *r) {
    float *dx = tape_grad_of(t, r->in[0]);
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += 3 * r->out->grad[i];
}
static const TapeOp WRONG_OP = {.name = "wrong", .backward = wrong_backward};

static Tensor *wrong_fn(Tape *t, Tensor **in, void *ctx) {
    Tensor *y = tensor_new(t->arena, in[0]->ndim, in[0]->shape);
    for (size_t i = 0; i < y->numel; i++) y->data[i] = 2 * in[0]->data[i];
    tape_push(t, &WRONG_OP, y, 1, in);
    return y;
}

Test(gradcheck, finds_a_wrong_gradient_and_where, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(2, (const int[]){3, 5}, -1, 1);
    GradcheckResult r = gradcheck(wrong_fn, NULL, &x, 1, NULL);
    cr_assert_eq(r.checked, 15);
    cr_assert_eq(r.skipped, 0);
    cr_assert(r.max_err > 0.3, "analytic 3·r vs numeric 2·r: relative error 1/3, got %g", r.max_err);
    cr_assert(r.index < 15 && r.input == 0);
    cr_assert_float_eq(r.analytic / r.numeric, 1.5, 1e-3, "analytic %g, numeric %g", r.analytic, r.numeric);
}
