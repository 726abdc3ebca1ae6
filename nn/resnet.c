/* resnet.c — the CIFAR ResNet builder (see resnet.h). */
#include "resnet.h"

#include <stdio.h>

#include "basic.h"
#include "builder.h"
#include "container.h"
#include "core/error.h"

Model *resnet_new(const ResNetConfig *c, const LayerFactory *f, uint64_t seed) {
    if (c->depth < 8 || (c->depth - 2) % 6)
        DQ_FATAL("resnet: depth %d is not 6n + 2 (20, 32, 44, 56, …)", c->depth);
    int n = (c->depth - 2) / 6;
    char mname[64], name[64];
    snprintf(mname, sizeof mname, "resnet%d", c->depth);
    Model *m = model_new(mname, c->in_channels, c->in_size, c->in_size, c->num_classes);
    Layer *net = m->net = sequential_new(mname);
    builder_conv_bn_act(m, net, f, &(ConvDesc){.name = "stem", .in = c->in_channels, .out = 16, .kernel = 3,
                                               .stride = 1, .groups = 1, .act = ACT_RELU, .first = true,
                                               .signed_input = true});
    int in = 16;
    for (int stage = 0; stage < 3; stage++) {
        int out = 16 << stage;
        for (int b = 0; b < n; b++) {
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            snprintf(name, sizeof name, "layer%d.%d", stage + 1, b);
            Layer *body = sequential_new(name);
            char conv[80];
            snprintf(conv, sizeof conv, "%s.conv1", name);
            builder_conv_bn_act(m, body, f, &(ConvDesc){.name = conv, .in = in, .out = out, .kernel = 3,
                                                        .stride = stride, .groups = 1, .act = ACT_RELU});
            snprintf(conv, sizeof conv, "%s.conv2", name);
            builder_conv_bn_act(m, body, f, &(ConvDesc){.name = conv, .in = out, .out = out, .kernel = 3, .stride = 1,
                                                        .groups = 1, .act = ACT_NONE});
            Layer *shortcut = (stride != 1 || in != out) ? shortcut_pad_layer_new(stride, out) : NULL;
            sequential_add(net, residual_new(name, body, shortcut, true));
            in = out;
        }
    }
    sequential_add(net, global_avgpool_layer_new());
    LayerSpec fc = {.kind = SPEC_LINEAR, .name = "fc", .in = in, .out = c->num_classes, .bias = true, .last = true};
    sequential_add(net, builder_weighted(m, f, &fc));
    model_finish(m, seed);
    return m;
}
