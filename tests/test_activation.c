/* test_activation.c — relu, relu6, dropout. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "helpers.h"

Test(activation, relu_and_relu6_values, .init = test_setup, .fini = test_teardown) {
    Tensor *x = tensor_new2(&test_arena, 1, 5);
    memcpy(x->data, (float[]){-2, -0.0f, 0.5f, 6, 7.5f}, sizeof(float[5]));
    assert_close(op_relu(&T, x)->data, (float[]){0, 0, 0.5f, 6, 7.5f}, 5, 0, 0, "relu");
    assert_close(op_relu6(&T, x)->data, (float[]){0, 0, 0.5f, 6, 6}, 5, 0, 0, "relu6");
}

/* Inputs kept at least 0.1 away from the kinks at 0 and 6. */
static Tensor *away_from_kinks(int n) {
    Tensor *x = rand_param(2, (const int[]){n, 7}, 0, 1);
    for (size_t i = 0; i < x->numel; i++) {
        float u = x->data[i];
        x->data[i] = u < 0.33f ? -0.1f - 3 * u : (u < 0.66f ? 0.1f + 15 * (u - 0.33f) : 6.1f + u);
    }
    return x;
}

static Tensor *relu_fn(Tape *t, Tensor **in, void *ctx) { return op_relu(t, in[0]); }
static Tensor *relu6_fn(Tape *t, Tensor **in, void *ctx) { return op_relu6(t, in[0]); }

Test(activation, gradchecks, .init = test_setup, .fini = test_teardown) {
    Tensor *x = away_from_kinks(6);
    assert_gradcheck(relu_fn, NULL, &x, 1, 1e-3, false, "relu");
    assert_gradcheck(relu6_fn, NULL, &x, 1, 1e-3, false, "relu6");
}

typedef struct DropCtx {
    float p;
    uint64_t seed;
} DropCtx;

static Tensor *dropout_fn(Tape *t, Tensor **in, void *ctx) {
    DropCtx *c = ctx;
    Rng r;
    rng_seed(&r, c->seed, 3);  // the same mask on every evaluation
    return op_dropout(t, in[0], c->p, &r);
}

Test(activation, dropout_gradcheck_and_statistics, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(2, (const int[]){4, 8}, -1, 1);
    DropCtx c = {0.3f, 99};
    assert_gradcheck(dropout_fn, &c, &x, 1, 1e-3, true, "dropout");
    Tensor *big = tensor_new2(&test_arena, 200, 500);
    tensor_fill(big, 1);
    Tensor *y = op_dropout(&T, big, 0.3f, &R);
    size_t kept = 0;
    for (size_t i = 0; i < y->numel; i++) {
        cr_assert(y->data[i] == 0 || fabsf(y->data[i] - 1 / 0.7f) < 1e-6f);
        kept += y->data[i] != 0;
    }
    double frac = (double)kept / (double)y->numel;
    cr_assert(fabs(frac - 0.7) < 0.01, "kept fraction %.4f, expected 0.7", frac);
}

Test(activation, dropout_is_identity_in_eval_mode, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_tensor(2, (const int[]){3, 3}, -1, 1);
    T.training = false;
    cr_assert_eq(op_dropout(&T, x, 0.5f, &R), x);
}

static void bad_dropout(void *ctx) { op_dropout(&T, tensor_new2(&test_arena, 2, 2), 1.0f, &R); }

Test(activation, dropout_rejects_p_one, .init = test_setup, .fini = test_teardown) {
    cr_assert(strstr(expect_fatal(bad_dropout, NULL), "dropout: probability 1") != NULL);
}

/* ------------------------------------------------------------------ frozen patterns */
/* An input on all three pieces of ReLU6, and the same input moved across the kinks. */
static const float PIECES[6] = {-2, -0.01f, 0.01f, 3, 5.99f, 7};
static const float MOVED[6] = {1, 0.5f, -0.5f, -3, 6.5f, 5};

Test(activation, a_recorded_pattern_is_kept_when_the_input_crosses_the_kinks, .init = test_setup, .fini = test_teardown) {
    Tensor *x = tensor_new2(&test_arena, 2, 3), *moved = tensor_new2(&test_arena, 2, 3);
    memcpy(x->data, PIECES, sizeof PIECES), memcpy(moved->data, MOVED, sizeof MOVED);
    ActPattern p = {0};
    T.pattern = &p;
    act_pattern_rewind(&p);
    Tensor *y6 = op_relu6(&T, x), *y = op_relu(&T, x);
    assert_close(y6->data, (float[]){0, 0, 0.01f, 3, 5.99f, 6}, 6, 0, 0, "recording: relu6's values");
    assert_close(y->data, (float[]){0, 0, 0.01f, 3, 5.99f, 7}, 6, 0, 0, "recording: relu's values");
    cr_assert_eq(p.count, 2);
    p.replay = true;
    act_pattern_rewind(&p);
    y6 = op_relu6(&T, moved), y = op_relu(&T, moved);
    assert_close(y6->data, (float[]){0, 0, -0.5f, -3, 6.5f, 6}, 6, 0, 0, "replay: relu6 keeps each element's piece");
    assert_close(y->data, (float[]){0, 0, -0.5f, -3, 6.5f, 5}, 6, 0, 0, "replay: relu keeps each element's piece");
    cr_assert_eq(p.count, 2, "a replay records nothing");
    T.pattern = NULL;
    act_pattern_free(&p);
}

/* A batchnorm with ReLU6 fused, then a residual add with ReLU: with a pattern, both activations go
 * through op_act_pattern; recording gives the fused ops' values. */
static Tensor *bn_add_fn(Tape *t, Tensor **in, void *ctx) {
    t->pattern = ctx;  // the checker runs its own tapes
    if (ctx) act_pattern_rewind(ctx);
    Tensor *y = op_batchnorm(t, in[0], in[1], in[2], (BatchNormArgs){.momentum = 0.1f, .eps = 1e-5f, .act = ACT_RELU6});
    return op_add_act(t, y, in[0], ACT_RELU);
}

Test(activation, fused_activations_record_the_fused_values_and_gradcheck_on_a_replay, .init = test_setup, .fini = test_teardown) {
    Tensor *in[3] = {rand_param(2, (const int[]){16, 3}, -4, 4), rand_param(1, (const int[]){3}, 0.5f, 3),
                     rand_param(1, (const int[]){3}, -1, 1)};
    Tensor *want = bn_add_fn(&T, in, NULL);
    ActPattern p = {0};
    Tensor *got = bn_add_fn(&T, in, &p);
    assert_close(got->data, want->data, want->numel, 1e-6, 1e-6, "recorded = fused");
    cr_assert_eq(p.count, 2);
    p.replay = true;
    // steps of 0.01 across kinks or not, nothing skipped: the replayed function is smooth
    GradcheckOptions o = {.training = true, .eps = 1e-2, .floor = 1e-2};
    assert_gradcheck_with(bn_add_fn, &p, in, 3, 2e-2, &o, "batchnorm+relu6, add+relu, pattern replayed");
    T.pattern = NULL;
    act_pattern_free(&p);
}

static void replay_other_shape(void *ctx) {
    ActPattern *p = ctx;
    T.pattern = p;
    act_pattern_rewind(p);
    op_relu(&T, tensor_new2(&test_arena, 2, 2));
}

Test(activation, a_replay_on_other_shapes_is_refused, .init = test_setup, .fini = test_teardown) {
    ActPattern p = {0};
    T.pattern = &p;
    op_relu(&T, tensor_new2(&test_arena, 2, 3));
    p.replay = true;
    T.pattern = NULL;
    const char *m = expect_fatal(replay_other_shape, &p);
    cr_assert(strstr(m, "activation pattern: activation 0 of the forward has 4 elements") != NULL, "got: %s", m);
    T.pattern = NULL;
    act_pattern_free(&p);
}
