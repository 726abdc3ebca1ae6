/* lenet.c — the LeNet-style builder (see lenet.h). */
#include "lenet.h"

#include "basic.h"
#include "builder.h"
#include "container.h"
#include "core/error.h"

Model *lenet_new(const LeNetConfig *c, const LayerFactory *f, uint64_t seed) {
    if (c->in_size < 4 || c->in_size % 4)
        DQ_FATAL("lenet: input size %d must be a multiple of 4", c->in_size);
    Model *m = model_new("lenet", c->in_channels, c->in_size, c->in_size, c->num_classes);
    Layer *net = m->net = sequential_new("lenet");
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "conv1", .in = c->in_channels, .out = 16, .kernel = 5,
                                               .stride = 1, .groups = 1, .act = ACT_RELU, .first = true,
                                               .signed_input = true});
    sequential_add(net, maxpool_layer_new((Pool2dArgs){.kernel = 2, .stride = 2, .pad = 0}));
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "conv2", .in = 16, .out = 32, .kernel = 5, .stride = 1,
                                               .groups = 1, .act = ACT_RELU});
    sequential_add(net, maxpool_layer_new((Pool2dArgs){.kernel = 2, .stride = 2, .pad = 0}));
    sequential_add(net, flatten_layer_new());
    int flat = 32 * (c->in_size / 4) * (c->in_size / 4);
    sequential_add(net, builder_weighted(m, f, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc1", .in = flat,
                                                            .out = 128, .bias = true}));
    sequential_add(net, relu_layer_new());
    if (c->dropout > 0) sequential_add(net, dropout_layer_new(c->dropout, &m->dropout_rng));
    sequential_add(net, builder_weighted(m, f, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc2", .in = 128,
                                                              .out = c->num_classes, .bias = true, .last = true}));
    model_finish(m, seed);
    return m;
}
