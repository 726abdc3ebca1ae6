/* mobilenetv2.c — the MobileNetV2 builder (see mobilenetv2.h for the architecture). */
#include "mobilenetv2.h"

#include <stdio.h>
#include <string.h>

#include "basic.h"
#include "builder.h"
#include "container.h"
#include "core/error.h"

int mobilenetv2_divisible(float v) {
    int d = 8, r = (int)(v + d / 2.0f) / d * d;
    if (r < d) r = d;
    if ((float)r < 0.9f * v) r += d;  // never round down by more than 10%
    return r;
}

bool mobilenetv2_parse_variant(const char *s, Mnv2Variant *out) {
    const char *names[] = {"s1x3", "s1x2", "imagenet"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (Mnv2Variant)i;
            return true;
        }
    return false;
}

const char *mobilenetv2_variant_name(Mnv2Variant v) {
    return v == MNV2_S1X3 ? "s1x3" : v == MNV2_S1X2 ? "s1x2" : "imagenet";
}

/* One inverted residual block appended to `features`. */
static void inverted_residual(Model *m, Layer *features, const LayerFactory *f, int index, int in,
                              int out, int stride, int t) {
    char name[64], part[96];
    snprintf(name, sizeof name, "features.%d", index);
    Layer *body = sequential_new(name);
    int hidden = (int)((float)in * (float)t + 0.5f);
    if (t != 1) {
        snprintf(part, sizeof part, "%s.expand", name);
        builder_conv_bn_act(m, body, f, &(ConvDesc){.name = part, .in = in, .out = hidden, .kernel = 1, .stride = 1,
                                                    .groups = 1, .act = ACT_RELU6, .signed_input = true});
    }
    snprintf(part, sizeof part, "%s.dw", name);
    // Without an expansion the depthwise conv reads the block input (signed).
    builder_conv_bn_act(m, body, f, &(ConvDesc){.name = part, .in = hidden, .out = hidden, .kernel = 3,
                                                .stride = stride, .groups = hidden, .act = ACT_RELU6,
                                                .signed_input = t == 1});
    snprintf(part, sizeof part, "%s.project", name);
    builder_conv_bn_act(m, body, f, &(ConvDesc){.name = part, .in = hidden, .out = out, .kernel = 1, .stride = 1,
                                                .groups = 1, .act = ACT_NONE});
    bool identity = stride == 1 && in == out;
    sequential_add(features, identity ? residual_new(name, body, NULL, false) : body);
}

Model *mobilenetv2_new(const MobileNetV2Config *c, const LayerFactory *f, uint64_t seed) {
    if (!(c->width > 0 && c->width <= 4)) DQ_FATAL("mobilenetv2: width %g must be in (0, 4]", c->width);
    if (c->in_size < 8) DQ_FATAL("mobilenetv2: input size %d is too small (>= 8)", c->in_size);
    char mname[64];
    snprintf(mname, sizeof mname, "mobilenetv2-w%.2g-%s", c->width, mobilenetv2_variant_name(c->variant));
    Model *m = model_new(mname, c->in_channels, c->in_size, c->in_size, c->num_classes);
    static const int setting[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                      {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int stem_stride = c->variant == MNV2_IMAGENET ? 2 : 1;
    int in = mobilenetv2_divisible(32 * c->width);
    int last = mobilenetv2_divisible(1280 * (c->width > 1 ? c->width : 1));
    Layer *net = m->net = sequential_new(mname);
    Layer *features = sequential_add(net, sequential_new("features"));
    builder_conv_bn_act(m, features, f, &(ConvDesc){.name = "features.0", .in = c->in_channels, .out = in,
                                                    .kernel = 3, .stride = stem_stride, .groups = 1, .act = ACT_RELU6,
                                                    .first = true, .signed_input = true});
    int index = 1;
    for (int s = 0; s < 7; s++) {
        int t = setting[s][0], out = mobilenetv2_divisible((float)setting[s][1] * c->width);
        int stride = setting[s][3];
        if (c->variant != MNV2_IMAGENET && (s == 1 || (s == 2 && c->variant == MNV2_S1X3))) stride = 1;
        for (int i = 0; i < setting[s][2]; i++, index++) {
            inverted_residual(m, features, f, index, in, out, i == 0 ? stride : 1, t);
            in = out;
        }
    }
    char name[32];
    snprintf(name, sizeof name, "features.%d", index);
    builder_conv_bn_act(m, features, f, &(ConvDesc){.name = name, .in = in, .out = last, .kernel = 1, .stride = 1,
                                                    .groups = 1, .act = ACT_RELU6, .signed_input = true});
    sequential_add(net, global_avgpool_layer_new());
    if (c->dropout > 0) sequential_add(net, dropout_layer_new(c->dropout, &m->dropout_rng));
    LayerSpec fc = {.kind = SPEC_LINEAR, .name = "classifier", .in = last, .out = c->num_classes,
                    .bias = true, .last = true};
    sequential_add(net, builder_weighted(m, f, &fc));
    model_finish(m, seed);
    return m;
}
