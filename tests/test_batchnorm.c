/* test_batchnorm.c — batch statistics, running averages, eval mode, fast vs reference,
 * gradchecks in both modes. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"
#include "helpers.h"

Test(batchnorm, hand_computed_training_and_running_stats, .init = test_setup, .fini = test_teardown) {
    // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
    Tensor *x = tensor_new2(&test_arena, 4, 1);
    memcpy(x->data, (float[]){1, 2, 3, 4}, sizeof(float[4]));
    Tensor *g = tensor_new(&test_arena, 1, (const int[]){1}), *b = tensor_new(&test_arena, 1, (const int[]){1});
    g->data[0] = 2, b->data[0] = 1;
    float rm = 0, rv = 1;
    Tensor *y = op_batchnorm(&T, x, g, b, (BatchNormArgs){.running_mean = &rm, .running_var = &rv, .momentum = 0.1f,
                                                          .eps = 1e-5f});
    float inv = 1.0f / sqrtf(1.25f + 1e-5f);
    float want[4] = {2 * -1.5f * inv + 1, 2 * -0.5f * inv + 1, 2 * 0.5f * inv + 1, 2 * 1.5f * inv + 1};
    assert_close(y->data, want, 4, 1e-6, 1e-6, "training output");
    cr_assert_float_eq(rm, 0.25f, 1e-6);
    cr_assert_float_eq(rv, 0.9f + 0.1f * (5.0f / 3.0f), 1e-6);
    // Eval mode uses the running statistics.
    T.training = false;
    Tensor *ye = op_batchnorm(&T, x, g, b, (BatchNormArgs){.running_mean = &rm, .running_var = &rv, .momentum = 0.1f,
                                                           .eps = 1e-5f});
    float inv_e = 1.0f / sqrtf(rv + 1e-5f);
    cr_assert_float_eq(ye->data[0], 2 * (1 - rm) * inv_e + 1, 1e-5);
    cr_assert_float_eq(rm, 0.25f, 1e-6, "eval mode must not update running stats");
}

typedef struct BnCase {
    int R, C, threads;
    bool batch_stats;
    ActKind act;
} BnCase;

ParameterizedTestParameters(batchnorm, fast_matches_reference) {
    static BnCase cases[] = {
        {.R = 2, .C = 1, .threads = 1, .batch_stats = true, .act = ACT_NONE},
        {.R = 37, .C = 5, .threads = 2, .batch_stats = true, .act = ACT_RELU},
        {.R = 1000, .C = 24, .threads = 2, .batch_stats = true, .act = ACT_RELU6},
        {.R = 333, .C = 17, .threads = 3, .batch_stats = false, .act = ACT_RELU6},
        {.R = 64, .C = 144, .threads = 2, .batch_stats = true, .act = ACT_NONE},
        {.R = 50, .C = 8, .threads = 2, .batch_stats = false, .act = ACT_RELU},
    };
    return cr_make_param_array(BnCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(BnCase *c, batchnorm, fast_matches_reference, .init = test_setup, .fini = test_teardown) {
    threads_init(c->threads);
    size_t n = (size_t)c->R * c->C;
    Tensor *x = rand_tensor(2, (const int[]){c->R, c->C}, -2, 3);
    Tensor *dy = rand_tensor(2, (const int[]){c->R, c->C}, -1, 1);
    Tensor *g = rand_tensor(1, (const int[]){c->C}, 0.5f, 2);
    float *mr = arena_floats(&test_arena, c->C), *vr = arena_floats(&test_arena, c->C);
    float *mf = arena_floats(&test_arena, c->C), *vf = arena_floats(&test_arena, c->C);
    batchnorm_stats_ref(mr, vr, x->data, c->R, c->C);
    batchnorm_stats_fast(mf, vf, x->data, c->R, c->C);
    assert_close(mf, mr, c->C, 1e-5, 1e-6, "mean");
    assert_close(vf, vr, c->C, 1e-5, 1e-6, "var");
    float *inv = arena_floats(&test_arena, c->C);
    for (int i = 0; i < c->C; i++) inv[i] = 1.0f / sqrtf(vr[i] + 1e-5f);
    float *dxr = arena_floats_zero(&test_arena, n), *dxf = arena_floats_zero(&test_arena, n);
    float *dgr = arena_floats_zero(&test_arena, c->C), *dgf = arena_floats_zero(&test_arena, c->C);
    float *dbr = arena_floats_zero(&test_arena, c->C), *dbf = arena_floats_zero(&test_arena, c->C);
    // The forward output (with the activation) supplies the activation's mask.
    Tensor *b = rand_tensor(1, (const int[]){c->C}, -1, 1);
    float *y = arena_floats(&test_arena, n);
    batchnorm_apply(y, x->data, mr, inv, g->data, b->data, c->R, c->C, c->act);
    for (size_t i = 0; i < n; i++) {
        int ch = (int)(i % (size_t)c->C);
        float want = act_apply(c->act, g->data[ch] * (x->data[i] - mr[ch]) * inv[ch] + b->data[ch]);
        cr_assert_float_eq(y[i], want, 1e-5, "forward at %zu", i);
    }
    BnGrad gr = {.dx = dxr, .dgamma = dgr, .dbeta = dbr, .dx_overwrite = false, .dy = dy->data, .y = y, .act = c->act,
                 .x = x->data, .mean = mr, .invstd = inv, .gamma = g->data, .R = c->R, .C = c->C,
                 .batch_stats = c->batch_stats};
    BnGrad gf = {.dx = dxf, .dgamma = dgf, .dbeta = dbf, .dx_overwrite = false, .dy = dy->data, .y = y, .act = c->act,
                 .x = x->data, .mean = mr, .invstd = inv, .gamma = g->data, .R = c->R, .C = c->C,
                 .batch_stats = c->batch_stats};
    batchnorm_backward_ref(&gr);
    batchnorm_backward_fast(&gf);
    // Overwrite mode: garbage in, the reference's values (from zero) out.
    float *dxo = arena_floats(&test_arena, n);
    for (size_t i = 0; i < n; i++) dxo[i] = NAN;
    BnGrad go = gf;
    go.dx = dxo, go.dgamma = go.dbeta = NULL, go.dx_overwrite = true;
    batchnorm_backward_fast(&go);
    assert_close(dxo, dxr, n, 1e-4, 1e-5, "dx overwrite");
    assert_close(dxf, dxr, n, 1e-4, 1e-5, "dx");
    assert_close(dgf, dgr, c->C, 1e-4, 1e-4, "dgamma");
    assert_close(dbf, dbr, c->C, 1e-4, 1e-4, "dbeta");
    threads_shutdown();
}

typedef struct BnCtx {
    float *rm, *rv;
    ActKind act;
    bool frozen;
} BnCtx;

static Tensor *bn_fn(Tape *t, Tensor **in, void *ctx) {
    BnCtx *c = ctx;
    return op_batchnorm(t, in[0], in[1], in[2], (BatchNormArgs){.running_mean = c->rm, .running_var = c->rv,
                                                                .momentum = 0.1f, .eps = 1e-5f, .act = c->act,
                                                                .frozen = c->frozen});
}

/* Frozen (--q_bn_freeze): in training mode the layer is the evaluation-mode layer — the same
 * output from the running statistics, which do not move. */
Test(batchnorm, frozen_training_is_evaluation, .init = test_setup, .fini = test_teardown) {
    int C = 3;
    Tensor *x = rand_tensor(4, (const int[]){2, 3, 3, C}, -2, 2);
    Tensor *g = rand_tensor(1, &C, 0.5f, 1.5f), *b = rand_tensor(1, &C, -1, 1);
    BnCtx ctx = {.rm = arena_floats(&test_arena, C), .rv = arena_floats(&test_arena, C), .act = ACT_RELU6, .frozen = true};
    rng_fill_uniform(&R, ctx.rm, C, -0.5f, 0.5f);
    rng_fill_uniform(&R, ctx.rv, C, 0.5f, 2);
    float *rm = copy_floats(ctx.rm, C), *rv = copy_floats(ctx.rv, C);
    T.training = true;
    Tensor *yf = bn_fn(&T, (Tensor *[]){x, g, b}, &ctx);
    assert_close(ctx.rm, rm, C, 0, 0, "a frozen layer's running mean moved");
    assert_close(ctx.rv, rv, C, 0, 0, "a frozen layer's running variance moved");
    T.training = false, ctx.frozen = false;
    Tensor *ye = bn_fn(&T, (Tensor *[]){x, g, b}, &ctx);
    assert_close(yf->data, ye->data, x->numel, 0, 0, "frozen training output vs evaluation output");
    T.training = true;  // and unfrozen, training normalises by the batch again and moves the averages
    Tensor *yt = bn_fn(&T, (Tensor *[]){x, g, b}, &ctx);
    float d = 0;
    for (size_t i = 0; i < x->numel; i++) d = fmaxf(d, fabsf(yt->data[i] - ye->data[i]));
    cr_assert(d > 1e-2 && ctx.rm[0] != rm[0], "unfrozen: output differs by %g", d);
    dq_free(rm), dq_free(rv);
}

static void gradcheck_bn_act(int ndim, const int *shape, bool training, ActKind act, bool ref) {
    Tensor *x = rand_param(ndim, shape, -2, 2);
    int C = shape[ndim - 1];
    Tensor *g = rand_param(1, &C, 0.5f, 1.5f), *b = rand_param(1, &C, -1, 1);
    BnCtx ctx = {.rm = arena_floats(&test_arena, C), .rv = arena_floats(&test_arena, C), .act = act};
    rng_fill_uniform(&R, ctx.rm, C, -0.5f, 0.5f);
    rng_fill_uniform(&R, ctx.rv, C, 0.5f, 2);
    GradcheckOptions o = {.training = training, .probes = 30, .skip_kinks = act != ACT_NONE,
                          .eps = act != ACT_NONE ? 1e-3 : 1e-2, .floor = 1e-2, .ref_kernels = ref};
    GradcheckResult r = gradcheck(bn_fn, &ctx, (Tensor *[]){x, g, b}, 3, &o);
    cr_assert(r.max_err < 2e-2 && r.checked > 3 * r.skipped,
              "batchnorm %s act %d: error %.3g at input %d [%zu]: %g vs %g (%d checked, %d kinks)",
              training ? "training" : "eval", act, r.max_err, r.input, r.index, r.analytic, r.numeric,
              r.checked, r.skipped);
}

static void gradcheck_bn(int ndim, const int *shape, bool training) {
    gradcheck_bn_act(ndim, shape, training, ACT_NONE, false);
}

Test(batchnorm, gradcheck_fused_activations, .init = test_setup, .fini = test_teardown) {
    gradcheck_bn_act(4, (const int[]){2, 3, 3, 4}, true, ACT_RELU, false);
    gradcheck_bn_act(4, (const int[]){2, 3, 3, 4}, true, ACT_RELU6, false);
    gradcheck_bn_act(2, (const int[]){6, 5}, false, ACT_RELU6, false);
}

Test(batchnorm, gradcheck_training, .init = test_setup, .fini = test_teardown) {
    gradcheck_bn(4, (const int[]){2, 3, 3, 4}, true);
    gradcheck_bn(2, (const int[]){5, 3}, true);
}

Test(batchnorm, gradcheck_eval, .init = test_setup, .fini = test_teardown) {
    gradcheck_bn(4, (const int[]){2, 2, 3, 5}, false);
}

/* Frozen in training mode: the gradient has no terms through the batch statistics. */
Test(batchnorm, gradcheck_frozen_training, .init = test_setup, .fini = test_teardown) {
    int shape[4] = {2, 3, 2, 4}, C = 4;
    Tensor *x = rand_param(4, shape, -2, 2);
    Tensor *g = rand_param(1, &C, 0.5f, 1.5f), *b = rand_param(1, &C, -1, 1);
    BnCtx ctx = {.rm = arena_floats(&test_arena, C), .rv = arena_floats(&test_arena, C), .frozen = true};
    rng_fill_uniform(&R, ctx.rm, C, -0.5f, 0.5f);
    rng_fill_uniform(&R, ctx.rv, C, 0.5f, 2);
    GradcheckOptions o = {.training = true, .probes = 30, .eps = 1e-2, .floor = 1e-2};
    GradcheckResult r = gradcheck(bn_fn, &ctx, (Tensor *[]){x, g, b}, 3, &o);
    cr_assert(r.max_err < 2e-2 && r.checked > 0, "frozen batchnorm: error %.3g at input %d [%zu]: %g vs %g", r.max_err,
              r.input, r.index, r.analytic, r.numeric);
}

Test(batchnorm, gradcheck_reference_kernels, .init = test_setup, .fini = test_teardown) {
    gradcheck_bn_act(4, (const int[]){3, 2, 2, 3}, true, ACT_NONE, true);
}

static void bn_single_value(void *ctx) {
    Tensor *x = tensor_new2(&test_arena, 1, 3);
    Tensor *g = tensor_new(&test_arena, 1, (const int[]){3}), *b = tensor_new(&test_arena, 1, (const int[]){3});
    op_batchnorm(&T, x, g, b, (BatchNormArgs){.running_mean = NULL, .running_var = NULL, .momentum = 0.1f,
                                              .eps = 1e-5f});
}

Test(batchnorm, rejects_one_value_per_channel_in_training, .init = test_setup, .fini = test_teardown) {
    const char *m = expect_fatal(bn_single_value, NULL);
    cr_assert(strstr(m, "more than one value per channel") != NULL, "got: %s", m);
    cr_assert(strstr(m, "\nhint: ") != NULL, "a hint line is expected, got: %s", m);
}

static void bn_wrong_channels(void *ctx) {
    Tensor *x = tensor_new4(&test_arena, 2, 2, 2, 4);
    Tensor *g = tensor_new(&test_arena, 1, (const int[]){3}), *b = tensor_new(&test_arena, 1, (const int[]){3});
    op_batchnorm(&T, x, g, b, (BatchNormArgs){.running_mean = NULL, .running_var = NULL, .momentum = 0.1f,
                                              .eps = 1e-5f});
}

Test(batchnorm, rejects_channel_mismatch, .init = test_setup, .fini = test_teardown) {
    cr_assert(strstr(expect_fatal(bn_wrong_channels, NULL), "input has 4 channels") != NULL);
}
