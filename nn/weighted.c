/* weighted.c — float conv2d / linear layers and the float factory. */
#include "weighted.h"

#include <math.h>
#include <stdio.h>

#include "core/error.h"
#include "core/ops.h"

typedef struct WeightedLayer {
    Layer base;
    LayerSpec spec;   // copy; spec.name points at base.name
    Tensor *weight;   // (KH, KW, in/groups, out) or (in, out)
    Tensor *bias;     // (out) or NULL
} WeightedLayer;

static void check_spec(const LayerSpec *s) {
    if (s->in < 1 || s->out < 1)
        DQ_FATAL("%s: %d inputs and %d outputs: both must be >= 1", s->name, s->in, s->out);
    if (s->kind == SPEC_LINEAR) return;
    if (s->kernel < 1 || s->stride < 1 || s->pad < 0 || s->groups < 1 || s->in % s->groups ||
        s->out % s->groups)
        DQ_FATAL("%s: kernel %d, stride %d, pad %d, groups %d do not make a convolution of %d -> %d "
                 "channels", s->name, s->kernel, s->stride, s->pad, s->groups, s->in, s->out);
}

void weighted_register(ParamSlab *slab, const LayerSpec *s, Tensor **weight, Tensor **bias) {
    check_spec(s);
    char name[96];
    snprintf(name, sizeof name, "%s.weight", s->name);
    if (s->kind == SPEC_LINEAR) *weight = slab_add(slab, name, 2, (const int[]){s->in, s->out}, 0);
    else *weight = slab_add(slab, name, 4, (const int[]){s->kernel, s->kernel, s->in / s->groups, s->out}, 0);
    *bias = NULL;
    if (s->bias) {
        snprintf(name, sizeof name, "%s.bias", s->name);
        *bias = slab_add(slab, name, 1, (const int[]){s->out}, PARAM_NO_DECAY);
    }
}

void weighted_init(const LayerSpec *s, Tensor *w, Tensor *b, Rng *rng) {
    float std = s->kind == SPEC_LINEAR ? 0.01f : sqrtf(2.0f / (float)(s->out * s->kernel * s->kernel));
    rng_fill_normal(rng, w->data, w->numel, 0, std);
    if (b) tensor_fill(b, 0);
}

Conv2dArgs spec_conv_args(const LayerSpec *s) { return (Conv2dArgs){.stride = s->stride, .pad = s->pad,
                                                                    .groups = s->groups}; }

long long spec_macs(const LayerSpec *s, const Tensor *y) {
    long long per_out = s->kind == SPEC_LINEAR ? s->in : (long long)s->kernel * s->kernel * (s->in / s->groups);
    return (long long)(y->numel / (size_t)y->shape[0]) * per_out;
}

static Tensor *weighted_forward(Layer *l, Tape *t, Tensor *x) {
    WeightedLayer *w = (WeightedLayer *)l;
    Tensor *y = w->spec.kind == SPEC_LINEAR ? op_linear(t, x, w->weight, w->bias)
                                            : op_conv2d(t, x, w->weight, w->bias, spec_conv_args(&w->spec));
    l->macs = spec_macs(&w->spec, y);
    return y;
}

static Tensor *weighted_forward_affine(Layer *l, Tape *t, Tensor *x, const ChannelAffine *after) {
    WeightedLayer *w = (WeightedLayer *)l;
    Tensor *y = op_conv2d_affine(t, x, w->weight, w->bias, spec_conv_args(&w->spec), after);
    l->macs = spec_macs(&w->spec, y);
    return y;
}

static void weighted_init_op(Layer *l, Rng *rng) {
    WeightedLayer *w = (WeightedLayer *)l;
    weighted_init(&w->spec, w->weight, w->bias, rng);
}

void weighted_info(const Layer *l, LayerInfo *i) { *i = (LayerInfo){.kind = LAYER_WEIGHTED}; }

static const LayerOps CONV_OPS = {.kind = "conv2d", .forward = weighted_forward, .init = weighted_init_op,
                                  .info = weighted_info, .forward_affine = weighted_forward_affine};
static const LayerOps LINEAR_OPS = {.kind = "linear", .forward = weighted_forward, .init = weighted_init_op,
                                    .info = weighted_info};

static Layer *float_make(const LayerFactory *f, ParamSlab *slab, const LayerSpec *spec) {
    WeightedLayer *w = dq_calloc(1, sizeof *w);
    w->base.ops = spec->kind == SPEC_LINEAR ? &LINEAR_OPS : &CONV_OPS;
    layer_set_name(&w->base, spec->name);
    w->spec = *spec;
    w->spec.name = w->base.name;
    weighted_register(slab, &w->spec, &w->weight, &w->bias);
    return &w->base;
}

const LayerFactory nn_float_factory = {float_make, NULL};

bool weighted_float_params(const Layer *l, const LayerSpec **spec, const Tensor **weight, const Tensor **bias) {
    if (l->ops != &CONV_OPS && l->ops != &LINEAR_OPS) return false;
    const WeightedLayer *w = (const WeightedLayer *)l;
    *spec = &w->spec, *weight = w->weight, *bias = w->bias;
    return true;
}
