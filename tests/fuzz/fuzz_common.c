/* fuzz_common.c — the fuzzers' shared model (see fuzz_common.h). */
#include "fuzz_common.h"

#include <string.h>

#include "nn/basic.h"
#include "nn/builder.h"
#include "nn/container.h"

/* A 4×4×1 → 4-class network with one layer of each kind a checkpoint can carry: a pinned stem, a
 * depthwise and a pointwise convolution (unpinned: their bits move), a pinned classifier. Small,
 * so that the fuzzer's mutations land in the sections' structure, not in a sea of weights. */
Model *fuzz_tiny_net(const LayerFactory *f) {
    Model *m = model_new("fuzznet", 1, 4, 4, 4);
    Layer *net = m->net = sequential_new("fuzznet");
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "c1", .in = 1, .out = 4, .kernel = 3, .stride = 1, .groups = 1,
                                               .act = ACT_RELU, .first = true, .signed_input = true});
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "c2", .in = 4, .out = 4, .kernel = 3, .stride = 1, .groups = 4,
                                               .act = ACT_RELU6});
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "c3", .in = 4, .out = 8, .kernel = 1, .stride = 1, .groups = 1,
                                               .act = ACT_RELU});
    sequential_add(net, global_avgpool_layer_new());
    sequential_add(net, flatten_layer_new());
    sequential_add(net, builder_weighted(m, f, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc", .in = 8, .out = 4,
                                                              .bias = true, .last = true}));
    model_finish(m, 3);
    return m;
}

void fuzz_forward_random(Model *m, uint64_t seed) {
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = false;
    Tensor *x = tensor_new4(&a, 4, 4, 4, 1);
    Rng r;
    rng_seed(&r, seed, rng_stream(RNG_STREAM_FREE, 0));
    rng_fill_uniform(&r, x->data, x->numel, -1, 1);
    model_forward(m, &t, x);
    arena_free(&a);
}

void fuzz_model_init(FuzzModel *f) {
    memset(f, 0, sizeof *f);
    QuantConfig c = quant_config_defaults;
    f->qc = quant_context_new(&c);
    LayerFactory lf = quant_factory(f->qc);
    f->m = fuzz_tiny_net(&lf);
    quant_calibrate_begin(f->qc);
    fuzz_forward_random(f->m, 1);
    quant_calibrate_end(f->qc);
    quant_run_init(&f->run, f->qc, FUZZ_TOTAL_STEPS, 0.01f);
}

void fuzz_model_free(FuzzModel *f) {
    quant_run_free(&f->run);
    model_free(f->m);
    quant_context_free(f->qc);
}
