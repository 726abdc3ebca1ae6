/* builder.c — conv + BN + activation, the unit every model here is made of. */
#include "builder.h"

#include <stdio.h>

#include "basic.h"
#include "container.h"
#include "core/error.h"

Layer *builder_weighted(Model *m, const LayerFactory *f, const LayerSpec *spec) {
    Layer *l = f->make(f, &m->slab, spec);
    if (!l) DQ_FATAL("%s: the layer factory returned nothing", spec->name);
    return l;
}

void builder_conv_bn_act(Model *m, Layer *seq, const LayerFactory *f, const ConvDesc *d) {
    LayerSpec spec = {
        .kind = spec_conv_kind(d->in, d->out, d->kernel, d->groups),
        .name = d->name, .in = d->in, .out = d->out, .kernel = d->kernel, .stride = d->stride,
        .pad = d->kernel / 2, .groups = d->groups, .bias = false,
        .first = d->first, .last = d->last, .signed_input = d->signed_input,
    };
    sequential_add(seq, builder_weighted(m, f, &spec));
    char bn[96];
    snprintf(bn, sizeof bn, "%s.bn", d->name);
    sequential_add(seq, batchnorm_layer_new(&m->slab, bn, d->out, BN_MOMENTUM, BN_EPS, d->act));
}
