/* test_models.c — the model builders against the PyTorch reference (parameter and MAC counts
 * from bench/torch_reference.py), forward shapes, layer and model gradchecks. */
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"
#include "helpers.h"
#include "nn/basic.h"
#include "nn/builder.h"
#include "nn/container.h"
#include "nn/lenet.h"
#include "nn/mobilenetv2.h"
#include "nn/resnet.h"
#include "nn/weighted.h"

typedef struct RefCount {
    float width;
    Mnv2Variant variant;
    int in_c, size;
    long long params, macs;  // torch_reference.py: count_macs and sum(p.numel())
} RefCount;

Test(models, mobilenetv2_matches_reference_counts) {
    RefCount ref[] = {
        {.width = 1.0f, .variant = MNV2_S1X3, .in_c = 3, .size = 32, .params = 2236682, .macs = 296473088},
        {.width = 1.0f, .variant = MNV2_S1X3, .in_c = 1, .size = 28, .params = 2236106, .macs = 226538624},
        {.width = 1.0f, .variant = MNV2_S1X2, .in_c = 3, .size = 32, .params = 2236682, .macs = 87976448},
        {.width = 1.0f, .variant = MNV2_S1X2, .in_c = 1, .size = 28, .params = 2236106, .macs = 72938624},
        {.width = 0.5f, .variant = MNV2_S1X3, .in_c = 3, .size = 32, .params = 700490, .macs = 87998976},
        {.width = 0.5f, .variant = MNV2_S1X3, .in_c = 1, .size = 28, .params = 700202, .macs = 67151424},
        {.width = 0.5f, .variant = MNV2_S1X2, .in_c = 3, .size = 32, .params = 700490, .macs = 27969024},
        {.width = 0.5f, .variant = MNV2_S1X2, .in_c = 1, .size = 28, .params = 700202, .macs = 23111712},
    };
    for (size_t i = 0; i < sizeof ref / sizeof *ref; i++) {
        MobileNetV2Config c = {.width = ref[i].width, .variant = ref[i].variant, .in_channels = ref[i].in_c,
                               .in_size = ref[i].size, .num_classes = 10, .dropout = 0.2f};
        Model *m = mobilenetv2_new(&c, &nn_float_factory, 1);
        cr_assert_eq((long long)m->n_params, ref[i].params, "%s %dx%dx%d params", m->name, ref[i].size, ref[i].size, ref[i].in_c);
        cr_assert_eq(m->macs, ref[i].macs, "%s %dx%dx%d MACs", m->name, ref[i].size, ref[i].size, ref[i].in_c);
        model_free(m);
    }
}

Test(models, resnet20_matches_reference_counts) {
    long long ref[2][4] = {{3, 32, 269722, 40551040}, {1, 28, 269434, 30821248}};
    for (int i = 0; i < 2; i++) {
        ResNetConfig c = {.depth = 20, .in_channels = (int)ref[i][0], .in_size = (int)ref[i][1], .num_classes = 10};
        Model *m = resnet_new(&c, &nn_float_factory, 1);
        cr_assert_eq((long long)m->n_params, ref[i][2]);
        cr_assert_eq(m->macs, ref[i][3]);
        model_free(m);
    }
}

Test(models, forward_shapes_and_divisible, .init = test_setup, .fini = test_teardown) {
    cr_assert_eq(mobilenetv2_divisible(32 * 0.5f), 16);
    cr_assert_eq(mobilenetv2_divisible(24 * 0.35f), 8);
    cr_assert_eq(mobilenetv2_divisible(1280 * 1.0f), 1280);
    LeNetConfig lc = {.in_channels = 1, .in_size = 28, .num_classes = 10, .dropout = 0.25f};
    Model *m = lenet_new(&lc, &nn_float_factory, 1);
    Tensor *x = rand_tensor(4, (const int[]){3, 28, 28, 1}, -1, 1);
    Tensor *y = model_forward(m, &T, x);
    cr_assert(y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 10);
    model_free(m);
}

static void wrong_input(void *ctx) {
    Model *m = ctx;
    model_forward(m, &T, rand_tensor(4, (const int[]){2, 32, 32, 3}, 0, 1));
}

Test(models, rejects_wrong_input_shape, .init = test_setup_quiet, .fini = test_teardown) {
    LeNetConfig lc = {.in_channels = 1, .in_size = 28, .num_classes = 10, .dropout = 0};
    Model *m = lenet_new(&lc, &nn_float_factory, 1);
    const char *msg = expect_fatal(wrong_input, m);
    cr_assert(strstr(msg, "model lenet: input (2, 32, 32, 3), expected (N, 28, 28, 1)") != NULL, "got: %s", msg);
    model_free(m);
}

/* Gradcheck of a whole model: the model's parameters are the inputs of the check. */
typedef struct ModelCtx {
    Model *m;
    Tensor *x;
} ModelCtx;

static Tensor *model_fn(Tape *t, Tensor **in, void *ctx) {
    ModelCtx *c = ctx;
    return model_forward(c->m, t, c->x);
}

/* Parameters to check: `names` (NULL-terminated) or, when NULL, every eighth parameter. */
static void gradcheck_model(Model *m, int batch, const char *const *names, const char *what) {
    Tensor *x = rand_tensor(4, (const int[]){batch, m->in_h, m->in_w, m->in_c}, -1, 1);
    ModelCtx ctx = {m, x};
    Tensor *ins[8];
    int n = 0;
    for (int i = 0; names && names[i]; i++) {
        const Param *p = slab_find(&m->slab, names[i]);
        cr_assert_not_null(p, "no parameter %s", names[i]);
        ins[n++] = p->tensor;
    }
    for (int i = 0; !names && i < m->slab.n_params && n < 8; i += m->slab.n_params / 8 + 1)
        if (!(m->slab.params[i].flags & PARAM_BUFFER)) ins[n++] = m->slab.params[i].tensor;
    // A whole ReLU network is piecewise linear with thousands of units: any perturbation moves
    // some of them across their kink, so central differences drift by a few percent with eps
    // (measured over 60 seeds of resnet8: worst 5.6% at eps 5e-4 with probes whose one-sided
    // slopes differ by more than 5% skipped). The tolerance is 10%: a wrong term is far larger,
    // and the ops and blocks are checked tightly on their own.
    GradcheckOptions o = {.training = true, .probes = 8, .eps = 5e-4, .floor = 1e-2, .skip_kinks = true,
                          .kink_tol = 0.05};
    GradcheckResult r = gradcheck(model_fn, &ctx, ins, n, &o);
    cr_assert(r.checked >= 2 * r.skipped, "%s: %d probes on kinks, %d checked", what, r.skipped, r.checked);
    cr_assert(r.max_err < 0.1, "%s: error %.3g at input %d [%zu]: %g vs %g (%d checked, %d kinks skipped)",
              what, r.max_err, r.input, r.index, r.analytic, r.numeric, r.checked, r.skipped);
}

/* Finite differences through a deep ReLU6 network cross many kinks at once (each perturbation
 * moves thousands of units downstream), so the whole-network check covers the layers near the
 * output; the earlier layers are covered by the op and block checks, and by
 * tests/test_determinism.c (fast vs reference kernels on a whole network). */
Test(models, gradcheck_tiny_models, .init = test_setup, .fini = test_teardown) {
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4,
                            .dropout = 0};
    Model *m = mobilenetv2_new(&mc, &nn_float_factory, 2);
    const char *tail[] = {"classifier.weight", "classifier.bias", "features.18.weight",
                          "features.18.bn.gamma", "features.17.project.weight", "features.17.dw.bn.beta", NULL};
    gradcheck_model(m, 4, tail, "mobilenetv2 w0.25 8x8, last layers");
    model_free(m);
    ResNetConfig rc = {.depth = 8, .in_channels = 2, .in_size = 8, .num_classes = 3};
    m = resnet_new(&rc, &nn_float_factory, 3);
    gradcheck_model(m, 3, NULL, "resnet8 8x8");
    model_free(m);
    LeNetConfig lc = {.in_channels = 1, .in_size = 8, .num_classes = 3, .dropout = 0};
    m = lenet_new(&lc, &nn_float_factory, 4);
    gradcheck_model(m, 3, NULL, "lenet 8x8");
    model_free(m);
}

/* One inverted residual block (expand, depthwise, project, identity) between a stem and a head:
 * the MobileNetV2 unit, every parameter checked. */
Test(models, gradcheck_inverted_residual_block, .init = test_setup, .fini = test_teardown) {
    Model *m = model_new("block", 1, 6, 6, 3);
    Layer *net = m->net = sequential_new("block");
    builder_conv_bn_act(m, net, &nn_float_factory, &(ConvDesc){.name = "stem", .in = 1, .out = 4, .kernel = 3,
                                                               .stride = 1, .groups = 1, .act = ACT_RELU6});
    Layer *body = sequential_new("b");
    builder_conv_bn_act(m, body, &nn_float_factory, &(ConvDesc){.name = "b.expand", .in = 4, .out = 12, .kernel = 1,
                                                                .stride = 1, .groups = 1, .act = ACT_RELU6});
    builder_conv_bn_act(m, body, &nn_float_factory, &(ConvDesc){.name = "b.dw", .in = 12, .out = 12, .kernel = 3,
                                                                .stride = 1, .groups = 12, .act = ACT_RELU6});
    builder_conv_bn_act(m, body, &nn_float_factory, &(ConvDesc){.name = "b.project", .in = 12, .out = 4, .kernel = 1,
                                                                .stride = 1, .groups = 1, .act = ACT_NONE});
    sequential_add(net, residual_new("b", body, NULL, false));
    builder_conv_bn_act(m, net, &nn_float_factory, &(ConvDesc){.name = "down", .in = 4, .out = 8, .kernel = 3,
                                                               .stride = 2, .groups = 4, .act = ACT_RELU6});
    sequential_add(net, global_avgpool_layer_new());
    sequential_add(net, builder_weighted(m, &nn_float_factory, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc",
                                                                            .in = 8, .out = 3, .bias = true}));
    model_finish(m, 5);
    const char *all[] = {"stem.weight", "b.expand.weight", "b.dw.weight", "b.dw.bn.gamma",
                         "b.project.weight", "b.project.bn.beta", "down.weight", "fc.weight", NULL};
    gradcheck_model(m, 4, all, "inverted residual block");
    model_free(m);
}

Test(models, seeded_initialisation, .init = test_setup, .fini = test_teardown) {
    LeNetConfig lc = {.in_channels = 1, .in_size = 28, .num_classes = 10, .dropout = 0};
    Model *a = lenet_new(&lc, &nn_float_factory, 7), *b = lenet_new(&lc, &nn_float_factory, 7);
    Model *c = lenet_new(&lc, &nn_float_factory, 8);
    assert_bits_equal(a->slab.data, b->slab.data, a->slab.numel, "same seed");
    cr_assert(memcmp(a->slab.data, c->slab.data, a->slab.numel * sizeof(float)) != 0, "other seed");
    const Param *g = slab_find(&a->slab, "conv1.bn.gamma"), *v = slab_find(&a->slab, "conv1.bn.running_var");
    cr_assert(g && v && g->tensor->data[0] == 1 && v->tensor->data[3] == 1 && (v->flags & PARAM_BUFFER));
    model_free(a);
    model_free(b);
    model_free(c);
}

/* Evaluation folds each BatchNorm into the convolution before it (nn/container.c): the logits
 * must be those of the unfused graph to the bit. The unfused graph is the same evaluation with
 * recording on (then nothing is fused). BatchNorm parameters and statistics are made non-trivial. */
static void assert_fused_eval_same_bits(Model *m, int batch, const char *what) {
    for (int i = 0; i < m->slab.n_params; i++) {
        const Param *p = &m->slab.params[i];
        size_t len = strlen(p->name);
        bool var = len > 12 && strcmp(p->name + len - 12, "running_var") == 0;
        if (strstr(p->name, ".bn.")) rng_fill_uniform(&R, p->tensor->data, p->tensor->numel, var ? 0.2f : -0.5f, 1.5f);
    }
    Tensor *x = rand_tensor(4, (const int[]){batch, m->in_h, m->in_w, m->in_c}, -1, 1);
    T.training = false;
    T.no_grad = true;
    size_t u0 = T.arena->used;
    Tensor *fused = model_forward(m, &T, x);
    size_t u1 = T.arena->used;
    T.no_grad = false;
    Tensor *plain = model_forward(m, &T, x);
    cr_assert(plain->requires_grad, "%s: the reference forward must record (and so not fuse)", what);
    // fusing keeps one tensor per conv+BatchNorm pair instead of two
    cr_assert(u1 - u0 < (T.arena->used - u1) * 2 / 3, "%s: the fused forward allocated %zu bytes, the plain one %zu",
              what, u1 - u0, T.arena->used - u1);
    assert_bits_equal(fused->data, plain->data, fused->numel, what);
}

/* check on a small MobileNetV2 and ResNet-8 (and LeNet, which has no BatchNorm to fuse). */
static void on_small_models(void (*check)(Model *m, int batch, const char *what), bool lenet) {
    threads_init(2);
    MobileNetV2Config mc = {.width = 0.5f, .variant = MNV2_S1X2, .in_channels = 1, .in_size = 28, .num_classes = 10};
    Model *m = mobilenetv2_new(&mc, &nn_float_factory, 3);
    check(m, 8, "mobilenetv2 w0.5 s1x2");
    model_free(m);
    ResNetConfig rc = {.depth = 8, .in_channels = 3, .in_size = 16, .num_classes = 10};
    m = resnet_new(&rc, &nn_float_factory, 3);
    check(m, 5, "resnet-8");
    model_free(m);
    if (lenet) {
        LeNetConfig lc = {.in_channels = 1, .in_size = 28, .num_classes = 10};
        m = lenet_new(&lc, &nn_float_factory, 3);
        check(m, 5, "lenet");
        model_free(m);
    }
    threads_shutdown();
}

Test(models, evaluation_fuses_batchnorm_to_the_same_bits, .init = test_setup, .fini = test_teardown) {
    on_small_models(assert_fused_eval_same_bits, false);
}

/* An evaluation with t->compact gives back each layer's intermediates as soon as the next layer
 * has its output: the same logits to the bit, from a fraction of the memory. */
static void assert_compact_eval_same_bits(Model *m, int batch, const char *what) {
    Tensor *x = rand_tensor(4, (const int[]){batch, m->in_h, m->in_w, m->in_c}, -1, 1);
    T.training = false;
    T.no_grad = true;
    size_t p0 = T.arena->peak, u0 = T.arena->used;
    Tensor *all = model_forward(m, &T, x);
    size_t kept_all = T.arena->used - u0;
    cr_assert(T.arena->peak > p0 || kept_all > 0);
    T.compact = true;
    size_t u1 = T.arena->used;
    Tensor *few = model_forward(m, &T, x);
    size_t kept_few = T.arena->used - u1;
    T.compact = false;
    assert_bits_equal(few->data, all->data, all->numel, what);
    cr_assert(kept_few * 10 < kept_all, "%s: the compact forward kept %zu bytes, the plain one %zu", what, kept_few,
              kept_all);
    T.no_grad = false;
}

Test(models, a_compact_evaluation_gives_the_same_bits_from_less_memory, .init = test_setup, .fini = test_teardown) {
    on_small_models(assert_compact_eval_same_bits, true);
}
