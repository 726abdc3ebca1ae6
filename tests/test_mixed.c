/* test_mixed.c — emulated half-precision training: the tape's gradient hook (each gradient once,
 * complete, in backward order), the seeded backward, underflow without a loss scale and none
 * with one, each loss-scaling policy on synthetic gradients, the scale in a checkpoint; adaptive
 * scaling's factor against its formula and bounds, its scale table, and a residual block whose
 * gradients it brings through half precision (branch and shortcut meeting at different scales).
 * --half=all's value hook: every layer's output rounded to half in training and evaluation.
 * (A half-precision run resuming bit for bit is in test_train.c.) */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/slab.h"
#include "helpers.h"
#include "nn/lenet.h"
#include "nn/weighted.h"
#include "train/mixed.h"

typedef struct Seen {
    int n, k[16];
    const char *op[16];
    float first[16];
} Seen;

static void remember(void *ctx, const TapeRecord *r, int k) {
    Seen *s = ctx;
    s->k[s->n] = k, s->op[s->n] = r->op->name, s->first[s->n] = r->out->grad[0];
    s->n++;
}

Test(mixed, hook_sees_each_complete_gradient_once_in_backward_order, .init = test_setup, .fini = test_teardown) {
    // y = relu(x·w); loss = Σ (y + y): y's gradient is complete (2, from both uses of the add) when
    // its producer's turn comes
    Tensor *x = rand_param(2, (const int[]){2, 3}, 0.5f, 1), *w = rand_param(2, (const int[]){3, 4}, 0.5f, 1);
    Tensor *y = op_relu(&T, op_linear(&T, x, w, NULL));
    Seen s = {0};
    T.grad_hook = remember, T.grad_hook_ctx = &s;
    tape_backward_seeded(&T, op_sum(&T, op_add(&T, y, y)), 4);
    T.grad_hook = NULL;
    const char *want[] = {"sum", "add", "relu", "linear"};
    cr_assert_eq(s.n, 4);
    for (int i = 0; i < 4; i++) cr_assert(s.k[i] == i && !strcmp(s.op[i], want[i]), "%d: %s at %d", i, s.op[i], s.k[i]);
    cr_assert_eq(s.first[0], 4, "the seed");
    cr_assert_eq(s.first[2], 8, "relu's output gradient: both uses, seeded 4");
    for (size_t i = 0; i < w->numel; i++) {  // the seed scales every gradient exactly (a power of 2)
        double want_w = 0;
        int r = (int)i / 4;  // w is (3, 4): ∂/∂w[r][c] = 8·Σ_n x[n][r] (all pre-activations positive)
        for (int n = 0; n < 2; n++) want_w += 8.0 * x->data[n * 3 + r];
        cr_assert_float_eq(w->grad[i], want_w, 1e-5);
    }
}

/* A gradient too small for half precision: loss = 1e-9·Σ x·w. */
static void tiny_step(Mixed *mx, Tensor *x, Tensor *w) {
    x->grad = w->grad = NULL;  // fresh gradients (the tape zeroes them on first use)
    mixed_attach(mx, &T);
    mixed_backward(mx, &T, op_scale(&T, op_sum(&T, op_linear(&T, x, w, NULL)), 1e-9f));
    T.grad_hook = NULL;
}

static ParamSlab slab_of(Tensor *w) {  // a view for mixed_unscale
    return (ParamSlab){.data = w->data, .grad = w->grad, .numel = w->numel};
}

Test(mixed, without_a_scale_small_gradients_underflow_with_one_they_survive, .init = test_setup, .fini = test_teardown) {
    Tensor *x = rand_param(2, (const int[]){4, 3}, 0.5f, 1), *w = rand_param(2, (const int[]){3, 2}, -1, 1);
    TrainConfig c = {.half = "grads", .loss_scale = "none", .loss_scale_init = 65536, .loss_scale_window = 10};
    Mixed mx;
    mixed_init(&mx, &c);
    tiny_step(&mx, x, w);
    ParamSlab s = slab_of(w);
    cr_assert(mixed_unscale(&mx, &s));
    for (size_t i = 0; i < w->numel; i++) cr_assert_eq(w->grad[i], 0, "1e−9 underflows in half: nothing reaches w");
    cr_assert(mx.pos[1].underflow > 0 && mx.pos[1].underflow == mx.pos[1].values, "counted: %llu of %llu",
              mx.pos[1].underflow, mx.pos[1].values);
    strcpy(c.loss_scale, "static"), c.loss_scale_init = 1 << 20;  // 1e−9 · 2^20 ≈ 1e−3: fine in half
    mixed_init(&mx, &c);
    tiny_step(&mx, x, w);
    s = slab_of(w);
    cr_assert(mixed_unscale(&mx, &s));
    for (size_t i = 0; i < w->numel; i++) {
        double want = 0;
        for (int n = 0; n < 4; n++) want += 1e-9 * x->data[n * 3 + (int)i / 2];
        cr_assert(fabs(w->grad[i] - want) <= 1e-3 * fabs(want), "scaled: %g vs %g", w->grad[i], want);
    }
    cr_assert_eq(mx.pos[1].underflow, 0);
}

Test(mixed, each_policy_on_synthetic_gradients, .init = test_setup, .fini = test_teardown) {
    float g[3];
    ParamSlab s = {.data = g, .grad = g, .numel = 3};
#define SET(a, b, c) (g[0] = (a), g[1] = (b), g[2] = (c))
    Mixed mx;
    // none: scale 1, an overflowed step skipped
    mixed_init(&mx, &(TrainConfig){.half = "grads", .loss_scale = "none", .loss_scale_init = 8, .loss_scale_window = 3});
    cr_assert_eq(mx.scale, 1);
    SET(1, INFINITY, 0);
    cr_assert(!mixed_unscale(&mx, &s));
    cr_assert_eq(mx.scale, 1);
    // static: divides by S, keeps S through an overflow
    mixed_init(&mx, &(TrainConfig){.half = "grads", .loss_scale = "static", .loss_scale_init = 8, .loss_scale_window = 3});
    SET(16, -4, 0);
    cr_assert(mixed_unscale(&mx, &s));
    cr_assert(g[0] == 2 && g[1] == -0.5f && g[2] == 0);
    SET(1, NAN, 0);
    cr_assert(!mixed_unscale(&mx, &s));
    cr_assert_eq(mx.scale, 8);
    // dynamic: halves at an overflow, doubles after `window` clean steps in a row, and an overflow
    // restarts the count
    mixed_init(&mx, &(TrainConfig){.half = "grads", .loss_scale = "dynamic", .loss_scale_init = 8, .loss_scale_window = 3});
    SET(INFINITY, 0, 0);
    cr_assert(!mixed_unscale(&mx, &s));
    cr_assert_eq(mx.scale, 4);
    for (int i = 0; i < 2; i++) {
        SET(1, 1, 1);
        cr_assert(mixed_unscale(&mx, &s));
    }
    cr_assert_eq(mx.scale, 4, "two clean steps: not yet");
    SET(INFINITY, 0, 0);
    cr_assert(!mixed_unscale(&mx, &s));
    cr_assert_eq(mx.scale, 2);
    for (int i = 0; i < 3; i++) {
        SET(1, 1, 1);
        cr_assert(mixed_unscale(&mx, &s));
    }
    cr_assert_eq(mx.scale, 4, "three clean steps in a row: doubled");
    cr_assert(mx.steps == 7 && mx.skipped == 2, "%lld steps, %lld skipped", mx.steps, mx.skipped);
    // the state survives a checkpoint; a bad one is refused
    Checkpoint ck;
    ckpt_init(&ck);
    mx.clean = 2;
    mixed_save(&mx, &ck);
    Mixed back;
    mixed_init(&back, &(TrainConfig){.half = "grads", .loss_scale = "dynamic", .loss_scale_init = 8, .loss_scale_window = 3});
    char err[256];
    cr_assert(mixed_load(&back, &ck, err, sizeof err), "%s", err);  // (the writer's section, read as a reader would)
    cr_assert(back.scale == 4 && back.clean == 2);
    float bad[2] = {-1, 0};
    memcpy(ck.sections[0].owned, bad, sizeof bad);
    cr_assert(!mixed_load(&back, &ck, err, sizeof err) && strstr(err, "bad loss-scale state"), "%s", err);
    ckpt_free(&ck);
}

/* ------------------------------------------------------------------ adaptive loss scaling */
static void fill_pm(float *x, size_t n, float v) {  // ±v alternating: mean 0, variance v²
    for (size_t i = 0; i < n; i++) x[i] = i % 2 ? -v : v;
}

Test(als, factor_follows_the_formula_and_its_bounds) {
    float dy[64], w[64];
    fill_pm(w, 64, 0.5f);
    long fan_in = 8;
    // σ = g·0.5·sqrt(8/2) = g; α_uf = 2^−24/(t·g) with t ≈ 1.2533e−3
    fill_pm(dy, 64, 1e-4f);  // α_uf ≈ 0.48: under 1, so 1
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 1);
    fill_pm(dy, 64, 1e-5f);  // α_uf ≈ 4.76 → 4
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 4);
    fill_pm(dy, 64, 1e-7f);  // α_uf ≈ 476: capped at 16 per layer
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 16);
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 256), 4, "1024 in all: 256 already taken, 4 left");
    fill_pm(dy, 64, 1e4f);  // overflow bound: 65504/8/(1e4·0.5) ≈ 1.6 → 1
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 1);
    fill_pm(dy, 64, 1e5f);  // ≈ 0.16 → 1/8: scaled down before it overflows
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 0.125);
    memset(dy, 0, sizeof dy);
    cr_assert_eq(als_factor(dy, 64, w, 64, fan_in, 1), 1, "nothing flows");
}

/* The statistics run in 32 lanes and a tail: one element anywhere, lane 0, a middle lane, the last
 * full block, the tail, must count in the sums (α_uf ≈ 4.76 → 4) and in the maximum (the overflow
 * bound → 1/8); dropped, nothing would flow (1). */
Test(als, factor_counts_every_element_of_an_awkward_length) {
    enum { N = 3 * 32 + 7 };
    float dy[N], w[64];
    fill_pm(w, 64, 0.5f);
    int at[] = {0, 40, 95, 96, N - 1};
    for (int t = 0; t < 5; t++) {
        memset(dy, 0, sizeof dy);
        dy[at[t]] = 1e-5f * sqrtf((float)N);  // E[dy²] = 1e−10, as ±1e−5 everywhere
        cr_assert_eq(als_factor(dy, N, w, 64, 8, 1), 4, "one element at %d", at[t]);
        dy[at[t]] = 1e5f;
        cr_assert_eq(als_factor(dy, N, w, 64, 8, 1), 0.125, "one large element at %d", at[t]);
    }
}

Test(als, scale_table_sets_finds_grows_and_clears) {
    AlsScales m = {0};
    static int keys[5000];
    cr_assert_eq(als_scale_of(&m, &keys[0]), 0);
    for (int i = 0; i < 5000; i++) als_scale_set(&m, &keys[i], i + 1);
    als_scale_set(&m, &keys[7], 99);
    for (int i = 0; i < 5000; i++) cr_assert_eq(als_scale_of(&m, &keys[i]), i == 7 ? 99 : i + 1);
    cr_assert_eq(m.n, 5000);
    als_scales_clear(&m);
    cr_assert_eq(als_scale_of(&m, &keys[3]), 0);
    als_scales_free(&m);
}

/* A residual block whose gradients are too small for half precision at scale 1:
 * h = x·w1; out = h·w2 + 10⁻³·h; loss = 10⁻⁴·Σ out, weights of ±0.02: h's gradient (≈ 6e−6
 * from the branch, 1e−7 from the shortcut) is subnormal in half. Adaptive scaling gives the branch its own
 * factors, rescales h's buffer where branch and shortcut meet, and unscales each parameter by the
 * scale its gradient carried: the result equals the float gradients to half precision, and
 * without it the gradients are lost. */
static void residual_grads(ParamSlab *s, Tensor *x, Tensor *w1, Tensor *w2, Mixed *mx) {
    tape_reset(&T);
    slab_zero_grad(s);
    Tensor *h = op_linear(&T, x, w1, NULL);
    Tensor *branch = op_linear(&T, h, w2, NULL), *shortcut = op_scale(&T, h, 1e-3f);
    Tensor *loss = op_scale(&T, op_sum(&T, op_add(&T, branch, shortcut)), 1e-4f);
    if (mx) {
        mixed_attach(mx, &T);
        mixed_backward(mx, &T, loss);
        T.grad_hook = NULL;
        cr_assert(mixed_unscale(mx, s));
    } else {
        tape_backward(&T, loss);
    }
}

Test(als, residual_gradients_survive_half_precision, .init = test_setup, .fini = test_teardown) {
    ParamSlab s;
    slab_init(&s);
    Tensor *x = slab_add(&s, "x", 2, (const int[]){8, 16}, 0), *w1 = slab_add(&s, "w1", 2, (const int[]){16, 16}, 0);
    Tensor *w2 = slab_add(&s, "w2", 2, (const int[]){16, 16}, 0);
    slab_finalize(&s);
    Rng rng;
    rng_seed(&rng, 31, rng_stream(RNG_STREAM_FREE, 0));
    for (size_t i = 0; i < s.numel; i++) s.data[i] = (i < x->numel ? 1.0f : 0.02f) * (2 * rng_uniform(&rng) - 1);
    residual_grads(&s, x, w1, w2, NULL);
    float *want = dq_malloc(s.numel * sizeof *want);
    memcpy(want, s.grad, s.numel * sizeof *want);
    for (int adaptive = 0; adaptive < 2; adaptive++) {
        Mixed *mx = dq_malloc(sizeof *mx);
        TrainConfig c = {.half = "grads", .loss_scale = "none", .loss_scale_init = 1, .loss_scale_window = 10};
        if (adaptive) strcpy(c.loss_scale, "adaptive");
        mixed_init(mx, &c);
        residual_grads(&s, x, w1, w2, mx);
        size_t lost = 0, off = 0;
        for (int p = 0; p < s.n_params; p++) {  // against the tensor's mean |gradient|: cancellation leaves a few
            const Param *q = &s.params[p];       // elements relatively far off even at half precision
            double typical = 0;
            for (size_t i = 0; i < q->tensor->numel; i++) typical += fabs(want[q->offset + i]) / (double)q->tensor->numel;
            for (size_t i = q->offset; i < q->offset + q->tensor->numel; i++) {
                lost += s.grad[i] == 0 && want[i] != 0;
                off += fabs((double)s.grad[i] - want[i]) > 2e-3 * (fabs(want[i]) + typical);
            }
        }
        if (adaptive) {
            cr_assert_eq(off, 0, "adaptive: %zu of %zu gradients differ from float's beyond half precision", off, s.numel);
            double s_w2 = als_scale_of(&mx->scales, w2), s_w1 = als_scale_of(&mx->scales, w1);
            cr_assert(s_w2 > 1 && s_w1 > s_w2, "the branch's factors, then the first layer's on top: %g, %g", s_w2, s_w1);
        } else {
            cr_assert(off > s.numel / 4, "at scale 1 half precision loses them: %zu of %zu off (%zu zero)", off, s.numel, lost);
        }
        mixed_free(mx);
        dq_free(mx);
    }
    dq_free(want);
    slab_free(&s);
}

/* Every value of t is a half-precision value (rounding it again changes nothing). */
static size_t not_half(const Tensor *t) {
    size_t bad = 0;
    for (size_t i = 0; i < t->numel; i++) bad += half_to_float(half_from_float(t->data[i])) != t->data[i];
    return bad;
}

typedef struct Outputs {
    void (*hook)(void *, Tensor *);  // the hook mixed_attach set (NULL: none)
    void *ctx;
    int n;
    size_t off;  // values off the half grid among the layers' outputs, after the hook
} Outputs;

static void after_hook(void *ctx, Tensor *y) {
    Outputs *o = ctx;
    if (o->hook) o->hook(o->ctx, y);
    o->n++;
    o->off += not_half(y);
}

/* --half=all: what every layer returns is on the half grid, in a training forward and in an
 * evaluation one, and the rounding is counted; --half=grads leaves the values in float. */
Test(mixed, half_all_rounds_every_layer_output, .init = test_setup, .fini = test_teardown) {
    LeNetConfig lc = {.in_channels = 1, .in_size = 8, .num_classes = 4, .dropout = 0};
    Model *m = lenet_new(&lc, &nn_float_factory, 3);
    Arena keep;  // the input outlives the tape's resets
    arena_init(&keep, 1 << 12, 0);
    Tensor *x = tensor_new4(&keep, 6, 8, 8, 1);
    rng_fill_uniform(&R, x->data, x->numel, -1, 1);
    for (int all = 0; all < 2; all++) {
        Mixed mx;
        TrainConfig c = {.loss_scale = "none", .loss_scale_init = 1, .loss_scale_window = 10};
        strcpy(c.half, all ? "all" : "grads");
        mixed_init(&mx, &c);
        for (int eval = 0; eval < 2; eval++) {
            tape_reset(&T);
            T.training = !eval, T.no_grad = eval;
            if (eval) mixed_attach_eval(&mx, &T);
            else mixed_attach(&mx, &T);
            Outputs o = {.hook = T.value_hook, .ctx = T.value_hook_ctx};
            cr_assert(all ? o.hook != NULL : o.hook == NULL, "half=%s: value hook %s", all ? "all" : "grads", o.hook ? "set" : "unset");
            T.value_hook = after_hook, T.value_hook_ctx = &o;
            Tensor *logits = model_forward(m, &T, x);
            T.value_hook = NULL, T.grad_hook = NULL;
            cr_assert(o.n >= 6, "%d layer outputs seen", o.n);
            cr_assert(all ? o.off == 0 && not_half(logits) == 0 : o.off > 0, "half=%s %s: %zu values off the half grid over %d outputs",
                      all ? "all" : "grads", eval ? "evaluation" : "training", o.off, o.n);
        }
        cr_assert(all ? mx.act.values > 0 && mx.act.visits >= 12 : mx.act.values == 0, "half=%s: %llu activations counted",
                  all ? "all" : "grads", mx.act.values);
        mixed_free(&mx);
    }
    T.training = true, T.no_grad = false;
    model_free(m);
    arena_free(&keep);
}
