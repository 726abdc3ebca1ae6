/* test_precise_bn.c — BatchNorm statistics averaged over batches (nn/precise_bn.h): the plain
 * average of each batch's mean and unbiased variance, in every BatchNorm of a model, with the
 * layers' momenta given back. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "helpers.h"
#include "nn/basic.h"
#include "nn/builder.h"
#include "nn/container.h"
#include "nn/model.h"
#include "nn/precise_bn.h"
#include "nn/weighted.h"

enum { N = 5, HW = 3, C = 3, BATCHES = 4 };

/* input → BatchNorm "a" → BatchNorm "b" (its input is a's normalised output) → pooling → linear */
static Model *two_bn_model(void) {
    Model *m = model_new("bn", C, HW, HW, 2);
    Layer *net = m->net = sequential_new("net");
    sequential_add(net, batchnorm_layer_new(&m->slab, "a", C, 0.1f, 1e-5f, ACT_NONE));
    sequential_add(net, batchnorm_layer_new(&m->slab, "b", C, 0.1f, 1e-5f, ACT_NONE));
    sequential_add(net, global_avgpool_layer_new());
    sequential_add(net, builder_weighted(m, &nn_float_factory, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc",
                                                                            .in = C, .out = 2, .bias = true}));
    model_finish(m, 3);
    return m;
}

static const float *stat(Model *m, const char *name) { return slab_find(&m->slab, name)->tensor->data; }

Test(precise_bn, running_statistics_are_the_average_of_the_batches, .init = test_setup, .fini = test_teardown) {
    Model *m = two_bn_model();
    double mean[C] = {0}, var[C] = {0};
    PreciseBn p;
    precise_bn_begin(&p, m->net);
    cr_assert_eq(p.n, 2, "BatchNorm layers found: %d", p.n);
    for (int b = 0; b < BATCHES; b++) {
        tape_reset(&T);  // it resets the arena too: before the batch is made
        // each batch its own offset and spread per channel, so a running average would differ
        Tensor *x = rand_tensor(4, (const int[]){N, HW, HW, C}, -1, 1);
        for (size_t i = 0; i < x->numel; i++) x->data[i] = x->data[i] * (1 + b) + (float)(b * b) - (float)(i % C);
        for (int c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int r = 0; r < N * HW * HW; r++) s += x->data[r * C + c];
            s /= N * HW * HW;
            for (int r = 0; r < N * HW * HW; r++) q += (x->data[r * C + c] - s) * (x->data[r * C + c] - s);
            mean[c] += s / BATCHES, var[c] += q / (N * HW * HW - 1) / BATCHES;
        }
        model_forward(m, &T, x);
        precise_bn_add(&p);
    }
    cr_assert_eq(precise_bn_end(&p), BATCHES);
    const float *am = stat(m, "a.running_mean"), *av = stat(m, "a.running_var");
    const float *bm = stat(m, "b.running_mean"), *bv = stat(m, "b.running_var");
    for (int c = 0; c < C; c++) {
        cr_assert(fabs(am[c] - mean[c]) <= 1e-5 * (1 + fabs(mean[c])), "channel %d: mean %g, want %g", c, am[c], mean[c]);
        cr_assert(fabs(av[c] - var[c]) <= 1e-5 * var[c], "channel %d: variance %g, want %g", c, av[c], var[c]);
        // b sees a's output, normalised by each batch's own statistics: mean 0, variance n/(n − 1)·v/(v + ε)
        cr_assert(fabs(bm[c]) < 1e-5 && fabs(bv[c] - (double)(N * HW * HW) / (N * HW * HW - 1)) < 1e-3,
                  "channel %d of b: %g, %g", c, bm[c], bv[c]);
    }
    // the momenta are back: one more training forward moves a's mean a tenth of the way
    tape_reset(&T);
    Tensor *x = rand_tensor(4, (const int[]){N, HW, HW, C}, 5, 6);
    float before = am[0];
    double s = 0;
    for (int r = 0; r < N * HW * HW; r++) s += x->data[r * C];
    s /= N * HW * HW;
    model_forward(m, &T, x);
    cr_assert_float_eq(am[0], 0.9 * before + 0.1 * s, 1e-5, "after: %g, want %g", am[0], 0.9 * before + 0.1 * s);
    model_free(m);
}

Test(precise_bn, no_batch_changes_nothing, .init = test_setup, .fini = test_teardown) {
    Model *m = two_bn_model();
    float *keep = copy_floats(m->slab.data, m->slab.numel);
    PreciseBn p;
    precise_bn_begin(&p, m->net);
    cr_assert_eq(precise_bn_end(&p), 0);
    assert_bits_equal(m->slab.data, keep, m->slab.numel, "statistics with no batch");
    dq_free(keep);
    model_free(m);
}

static void not_a_batchnorm(void *ctx) { batchnorm_set_momentum(ctx, 0.5f); }

Test(precise_bn, only_batchnorm_has_a_momentum, .init = test_setup_quiet, .fini = test_teardown) {
    Layer *pool = global_avgpool_layer_new();
    cr_assert(strstr(expect_fatal(not_a_batchnorm, pool), "not a BatchNorm layer"));
    layer_free(pool);
}

typedef struct Named {
    const char *name;
    Layer *found;
} Named;

static void find_named(Layer *l, void *ctx) {
    Named *n = ctx;
    if (!strcmp(l->name, n->name)) n->found = l;
}

static Layer *layer_named(Model *m, const char *name) {
    Named n = {.name = name};
    layer_visit(m->net, find_named, &n);
    cr_assert_not_null(n.found, "no layer %s", name);
    return n.found;
}

/* A frozen layer (--q_bn_freeze) would not take the batches' statistics: begin unfreezes it, end
 * freezes it again with the averages in place. */
Test(precise_bn, frozen_layers_are_re_estimated_and_stay_frozen, .init = test_setup, .fini = test_teardown) {
    Model *m = two_bn_model();
    Layer *a = layer_named(m, "a");
    batchnorm_set_frozen(a, true);
    const float *am = stat(m, "a.running_mean");
    PreciseBn p;
    precise_bn_begin(&p, m->net);
    tape_reset(&T);
    Tensor *x = rand_tensor(4, (const int[]){N, HW, HW, C}, 3, 4);
    double s = 0;
    for (int r = 0; r < N * HW * HW; r++) s += x->data[r * C];
    s /= N * HW * HW;
    model_forward(m, &T, x);
    precise_bn_add(&p);
    cr_assert_eq(precise_bn_end(&p), 1);
    cr_assert_float_eq(am[0], s, 1e-5, "the frozen layer's mean %g, the batch's %g", am[0], s);
    cr_assert(batchnorm_set_frozen(a, true), "end must leave the layer frozen, as it found it");
    cr_assert(!batchnorm_set_frozen(layer_named(m, "b"), false), "and the other one unfrozen");
    tape_reset(&T);  // frozen again: a training forward leaves its statistics alone
    float before = am[0];
    model_forward(m, &T, rand_tensor(4, (const int[]){N, HW, HW, C}, 7, 8));
    cr_assert_eq(am[0], before);
    model_free(m);
}
