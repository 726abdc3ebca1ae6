/* builder.h — small helpers shared by the model builders: a weighted layer from the factory
 * followed by BatchNorm and an activation, with its LayerSpec filled in. */
#ifndef DQ_BUILDER_H
#define DQ_BUILDER_H

#include "core/activation.h"
#include "model.h"

typedef struct ConvDesc {
    const char *name;
    int in, out, kernel, stride, groups;
    ActKind act;     // fused into the BatchNorm
    bool first, last, signed_input;
} ConvDesc;

/* conv (pad = kernel/2, no bias) + BN with the activation fused, appended to seq. */
void builder_conv_bn_act(Model *m, Layer *seq, const LayerFactory *f, const ConvDesc *d);
/* A weighted layer straight from the factory. */
Layer *builder_weighted(Model *m, const LayerFactory *f, const LayerSpec *spec);

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

#endif
