/* test_tape.c — the autograd engine: residual branches without hand ordering, accumulation,
 * no-grad mode, record names, arena reuse across steps, and misuse errors. */
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/slab.h"
#include "helpers.h"

Test(tape, diamond_and_reuse_accumulate, .init = test_setup, .fini = test_teardown) {
    // b = 2x; c = b + x; d = c + b; loss = Σ d  =>  d = 5x, dloss/dx = 5
    Tensor *x = rand_param(2, (const int[]){3, 4}, -1, 1);
    Tensor *b = op_scale(&T, x, 2), *c = op_add(&T, b, x), *d = op_add(&T, c, b);
    tape_backward(&T, op_sum(&T, d));
    for (size_t i = 0; i < x->numel; i++) cr_assert_float_eq(x->grad[i], 5, 1e-6);
    cr_assert_eq(T.n_records, 0, "backward consumes the records");
    // The same tensor on both sides of an add: y = x + x, dy/dx = 2.
    x->grad = NULL;
    tape_backward(&T, op_sum(&T, op_add(&T, x, x)));
    for (size_t i = 0; i < x->numel; i++) cr_assert_float_eq(x->grad[i], 2, 0);
}

typedef struct NetCtx {
    Tensor *w1, *w2, *g, *b;
    float *rm, *rv;
} NetCtx;

/* A residual block: y = relu(bn(conv(x, w1))) ; out = conv(y, w2) + x ; pool ; linear-free head. */
static Tensor *residual_net(Tape *t, Tensor **in, void *ctx) {
    Tensor *x = in[0], *w1 = in[1], *w2 = in[2], *g = in[3], *b = in[4];
    NetCtx *c = ctx;
    Tensor *h = op_conv2d(t, x, w1, NULL, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1});
    h = op_relu(t, op_batchnorm(t, h, g, b, (BatchNormArgs){.running_mean = c->rm, .running_var = c->rv,
                                                            .momentum = 0.1f, .eps = 1e-5f}));
    h = op_add(t, op_conv2d(t, h, w2, NULL, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1}), x);
    return op_global_avgpool(t, h);
}

Test(tape, gradcheck_residual_network, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(4, (const int[]){2, 4, 4, 3}, -1, 1);
    Tensor *w1 = rand_param(4, (const int[]){3, 3, 3, 3}, -0.5f, 0.5f);
    Tensor *w2 = rand_param(4, (const int[]){3, 3, 3, 3}, -0.5f, 0.5f);
    Tensor *g = rand_param(1, (const int[]){3}, 0.5f, 1.5f), *b = rand_param(1, (const int[]){3}, -0.2f, 0.2f);
    NetCtx ctx = {.rm = arena_floats_zero(&test_arena, 3), .rv = arena_floats_zero(&test_arena, 3)};
    GradcheckOptions o = {.training = true, .probes = 20, .eps = 1e-3};
    GradcheckResult r = gradcheck(residual_net, &ctx, (Tensor *[]){x, w1, w2, g, b}, 5, &o);
    // relu kinks can sit within eps of a probe; allow a little more than for single ops
    cr_assert(r.max_err < 3e-2, "residual net: error %.3g at input %d [%zu]: %g vs %g", r.max_err,
              r.input, r.index, r.analytic, r.numeric);
}

Test(tape, records_named_ops_in_order, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(2, (const int[]){2, 3}, -1, 1);
    Tensor *w = rand_param(2, (const int[]){3, 4}, -1, 1);
    op_sum(&T, op_relu(&T, op_linear(&T, x, w, NULL)));
    const char *want[] = {"sum", "relu", "linear"};
    int i = 0;
    for (TapeRecord *r = T.last; r; r = r->prev, i++) cr_assert_str_eq(r->op->name, want[i]);
    cr_assert_eq(i, 3);
    cr_assert_eq(T.n_records, 3);
}

Test(tape, no_grad_records_nothing, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(2, (const int[]){2, 3}, -1, 1);
    T.no_grad = true;
    Tensor *y = op_relu(&T, op_scale(&T, x, 2));
    cr_assert_eq(T.n_records, 0);
    cr_assert(!y->requires_grad);
    T.no_grad = false;
    Tensor *c = rand_tensor(2, (const int[]){2, 3}, -1, 1);  // constants need no record either
    cr_assert(!op_relu(&T, c)->requires_grad);
    cr_assert_eq(T.n_records, 0);
}

Test(tape, parameter_gradients_accumulate_across_steps, .init = test_setup, .fini = test_teardown) {
    ParamSlab s;
    slab_init(&s);
    Tensor *w = slab_add(&s, "w", 2, (const int[]){3, 2}, 0);
    slab_finalize(&s);
    rng_fill_uniform(&R, w->data, w->numel, -1, 1);
    float xdata[12];  // outside the arena: tape_reset releases the arena every step
    rng_fill_uniform(&R, xdata, 12, -1, 1);
    Tensor xv = tensor_view(xdata, 2, (const int[]){4, 3}), *x = &xv;
    for (int step = 0; step < 2; step++) {
        tape_reset(&T);
        tape_backward(&T, op_sum(&T, op_matmul(&T, x, w)));
    }
    for (int i = 0; i < 3; i++) {
        float col = 0;
        for (int n = 0; n < 4; n++) col += x->data[n * 3 + i];
        cr_assert_float_eq(w->grad[i * 2], 2 * col, 1e-5, "two steps without zero_grad add up");
    }
    slab_zero_grad(&s);
    cr_assert_float_eq(w->grad[0], 0, 0);
    slab_free(&s);
}

Test(tape, arena_stops_growing_after_first_step, .init = test_setup, .fini = test_teardown) {
    Arena a;
    arena_init(&a, 4096, 0);  // far too small: the first step must spill
    Tape t;
    tape_init(&t, &a);
    Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 3}, -1, 1);
    Tensor *w = rand_param(4, (const int[]){3, 3, 3, 8}, -1, 1);
    Tensor *g = rand_param(1, (const int[]){8}, 1, 1), *b = rand_param(1, (const int[]){8}, 0, 0);
    size_t mallocs[3];
    for (int step = 0; step < 3; step++) {
        tape_reset(&t);
        Tensor *h = op_batchnorm(&t, op_conv2d(&t, x, w, NULL, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1}), g, b,
                                 (BatchNormArgs){.running_mean = NULL, .running_var = NULL, .momentum = 0.1f,
                                                 .eps = 1e-5f});
        tape_backward(&t, op_mean(&t, op_relu(&t, h)));
        mallocs[step] = a.n_mallocs;
    }
    cr_assert(mallocs[0] > 1, "the first step should have spilled");
    cr_assert_eq(mallocs[2], mallocs[1], "no arena allocation after the consolidating reset");
    arena_free(&a);
}

static void backward_non_scalar(void *ctx) {
    Tensor *x = rand_param(2, (const int[]){2, 2}, -1, 1);
    tape_backward(&T, op_relu(&T, x));
}

static void backward_constant(void *ctx) {
    tape_backward(&T, op_sum(&T, rand_tensor(2, (const int[]){2, 2}, -1, 1)));
}

Test(tape, misuse_is_reported, .init = test_setup, .fini = test_teardown) {
    cr_assert(strstr(expect_fatal(backward_non_scalar, NULL), "loss has 4 elements") != NULL);
    const char *m = expect_fatal(backward_constant, NULL);
    cr_assert(strstr(m, "does not depend on anything") != NULL && strstr(m, "hint:") != NULL, "got: %s", m);
}

/* One batchnorm op's input gradient, the forward on reference (ref_fwd) or fast kernels, the
 * tape's switch set to ref_bwd before backward. */
static void bn_grads(bool ref_fwd, bool ref_bwd, float *dx) {
    enum { ROWS = 200, C = 24 };
    Rng r;
    rng_seed(&r, 5, 0);
    Tensor *x = rand_param(2, (const int[]){ROWS, C}, -1, 1), *g = rand_param(1, (const int[]){C}, 0.5f, 1.5f);
    Tensor *b = rand_param(1, (const int[]){C}, -1, 1);
    rng_fill_uniform(&r, x->data, x->numel, -3, 5);  // the test Rng R filled them differently each call
    rng_fill_uniform(&r, g->data, C, 0.5f, 1.5f);
    rng_fill_uniform(&r, b->data, C, -1, 1);
    float rm[C] = {0}, rv[C] = {0};
    T.ref_kernels = ref_fwd;
    Tensor *y = op_batchnorm(&T, x, g, b, (BatchNormArgs){.running_mean = rm, .running_var = rv, .momentum = 0.1f,
                                                          .eps = 1e-5f});
    T.ref_kernels = ref_bwd;
    float *dy = arena_floats(&test_arena, y->numel);
    rng_fill_uniform(&r, dy, y->numel, -1, 1);
    tape_backward_from(&T, y, dy);
    memcpy(dx, x->grad, x->numel * sizeof(float));
    T.ref_kernels = false;
}

Test(tape, each_record_keeps_its_kernel_choice, .init = test_setup, .fini = test_teardown) {
    static float dx[4][200 * 24];
    bn_grads(true, true, dx[0]);    // reference throughout
    bn_grads(false, false, dx[1]);  // fast throughout
    bn_grads(true, false, dx[2]);   // the switch flipped between forward and backward …
    bn_grads(false, true, dx[3]);
    cr_assert(memcmp(dx[0], dx[1], sizeof dx[0]) != 0, "the two kinds of kernel must be told apart");
    assert_bits_equal(dx[2], dx[0], 200 * 24, "… and backward follows the forward's reference kernels");
    assert_bits_equal(dx[3], dx[1], 200 * 24, "… or its fast kernels");
}
