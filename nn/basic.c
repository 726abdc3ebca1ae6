/* basic.c — batch norm, activations, pooling, dropout, flatten and shortcut layers. */
#include "basic.h"

#include <stdio.h>

#include "core/error.h"
#include "core/ops.h"

/* ------------------------------------------------------------------ batch norm */
typedef struct BnLayer {
    Layer base;
    Tensor *gamma, *beta;       // (C) parameters
    Tensor *mean, *var;         // (C) running statistics (PARAM_BUFFER)
    float momentum, eps;
    ActKind act;                // fused activation
    bool frozen;                // training normalises with the running statistics (batchnorm_set_frozen)
} BnLayer;

static Tensor *bn_forward(Layer *l, Tape *t, Tensor *x) {
    BnLayer *b = (BnLayer *)l;
    return op_batchnorm(t, x, b->gamma, b->beta,
                        (BatchNormArgs){.running_mean = b->mean->data, .running_var = b->var->data,
                                        .momentum = b->momentum, .eps = b->eps, .act = b->act, .frozen = b->frozen});
}

static void bn_init(Layer *l, Rng *rng) {
    BnLayer *b = (BnLayer *)l;
    tensor_fill(b->gamma, 1);
    tensor_fill(b->beta, 0);
    tensor_fill(b->mean, 0);
    tensor_fill(b->var, 1);
}

static void bn_info(const Layer *l, LayerInfo *i) {
    const BnLayer *b = (const BnLayer *)l;
    *i = (LayerInfo){.kind = LAYER_BATCHNORM, .act = b->act, .gamma = b->gamma, .beta = b->beta, .mean = b->mean,
                     .var = b->var, .eps = b->eps};
}

static const LayerOps BN_OPS[3] = {{.kind = "batchnorm", .forward = bn_forward, .init = bn_init, .info = bn_info},
                                   {.kind = "batchnorm+relu", .forward = bn_forward, .init = bn_init, .info = bn_info},
                                   {.kind = "batchnorm+relu6", .forward = bn_forward, .init = bn_init, .info = bn_info}};

Layer *batchnorm_layer_new(ParamSlab *slab, const char *name, int C, float momentum, float eps, ActKind act) {
    BnLayer *b = dq_calloc(1, sizeof *b);
    b->base.ops = &BN_OPS[act];
    b->act = act;
    layer_set_name(&b->base, name);
    b->momentum = momentum;
    b->eps = eps;
    char pname[96];
    const char *suffix[4] = {"gamma", "beta", "running_mean", "running_var"};
    Tensor **slot[4] = {&b->gamma, &b->beta, &b->mean, &b->var};
    for (int i = 0; i < 4; i++) {
        snprintf(pname, sizeof pname, "%s.%s", name, suffix[i]);
        *slot[i] = slab_add(slab, pname, 1, &C, i < 2 ? PARAM_NO_DECAY : PARAM_BUFFER);
    }
    return &b->base;
}

static BnLayer *as_bn(Layer *l, const char *who) {
    if (l->ops != &BN_OPS[0] && l->ops != &BN_OPS[1] && l->ops != &BN_OPS[2])
        DQ_FATAL("%s: %s is not a BatchNorm layer", who, l->name);
    return (BnLayer *)l;
}

bool batchnorm_set_frozen(Layer *l, bool frozen) {
    BnLayer *b = as_bn(l, "batchnorm_set_frozen");
    bool old = b->frozen;
    b->frozen = frozen;
    return old;
}

float batchnorm_set_momentum(Layer *l, float momentum) {
    BnLayer *b = as_bn(l, "batchnorm_set_momentum");
    if (!(momentum >= 0 && momentum <= 1)) DQ_FATAL("batchnorm_set_momentum: momentum %g must be in [0, 1]", momentum);
    float old = b->momentum;
    b->momentum = momentum;
    return old;
}

/* ------------------------------------------------------------------ stateless wrappers */
typedef struct SimpleLayer {
    Layer base;
    Pool2dArgs pool;  // pooling layers
    float p;          // dropout probability
    Rng *rng;         // dropout
    int stride, out;  // shortcut
} SimpleLayer;

static Tensor *relu_fwd(Layer *l, Tape *t, Tensor *x) { return op_relu(t, x); }
static Tensor *relu6_fwd(Layer *l, Tape *t, Tensor *x) { return op_relu6(t, x); }
static Tensor *maxpool_fwd(Layer *l, Tape *t, Tensor *x) { return op_maxpool2d(t, x, ((SimpleLayer *)l)->pool); }
static Tensor *avgpool_fwd(Layer *l, Tape *t, Tensor *x) { return op_avgpool2d(t, x, ((SimpleLayer *)l)->pool); }
static Tensor *gap_fwd(Layer *l, Tape *t, Tensor *x) { return op_global_avgpool(t, x); }
static Tensor *flatten_fwd(Layer *l, Tape *t, Tensor *x) { return op_flatten(t, x); }
static Tensor *dropout_fwd(Layer *l, Tape *t, Tensor *x) {
    SimpleLayer *s = (SimpleLayer *)l;
    return op_dropout(t, x, s->p, s->rng);
}
static Tensor *shortcut_fwd(Layer *l, Tape *t, Tensor *x) {
    SimpleLayer *s = (SimpleLayer *)l;
    return op_shortcut_pad(t, x, s->stride, s->out);
}

static void simple_info(const Layer *l, LayerInfo *i);

static const LayerOps RELU_OPS = {.kind = "relu", .forward = relu_fwd, .info = simple_info};
static const LayerOps RELU6_OPS = {.kind = "relu6", .forward = relu6_fwd, .info = simple_info};
static const LayerOps MAXPOOL_OPS = {.kind = "maxpool2d", .forward = maxpool_fwd, .info = simple_info};
static const LayerOps AVGPOOL_OPS = {.kind = "avgpool2d", .forward = avgpool_fwd, .info = simple_info};
static const LayerOps GAP_OPS = {.kind = "global_avgpool", .forward = gap_fwd, .info = simple_info};
static const LayerOps FLATTEN_OPS = {.kind = "flatten", .forward = flatten_fwd, .info = simple_info};
static const LayerOps DROPOUT_OPS = {.kind = "dropout", .forward = dropout_fwd, .info = simple_info};
static const LayerOps SHORTCUT_OPS = {.kind = "shortcut_pad", .forward = shortcut_fwd, .info = simple_info};

static void simple_info(const Layer *l, LayerInfo *i) {
    const SimpleLayer *s = (const SimpleLayer *)l;
    const LayerOps *o = l->ops;
    *i = (LayerInfo){.kind = o == &RELU_OPS || o == &RELU6_OPS ? LAYER_ACTIVATION
                           : o == &MAXPOOL_OPS                 ? LAYER_MAXPOOL
                           : o == &AVGPOOL_OPS                 ? LAYER_AVGPOOL
                           : o == &GAP_OPS                     ? LAYER_GLOBAL_AVGPOOL
                           : o == &FLATTEN_OPS                 ? LAYER_FLATTEN
                           : o == &DROPOUT_OPS                 ? LAYER_DROPOUT
                                                               : LAYER_SHORTCUT_PAD,
                     .act = o == &RELU6_OPS ? ACT_RELU6 : ACT_RELU, .pool = s->pool, .stride = s->stride, .out = s->out};
}

static SimpleLayer *simple_new(const LayerOps *ops) {
    SimpleLayer *s = dq_calloc(1, sizeof *s);
    s->base.ops = ops;
    layer_set_name(&s->base, ops->kind);
    return s;
}

Layer *relu_layer_new(void) { return &simple_new(&RELU_OPS)->base; }
Layer *relu6_layer_new(void) { return &simple_new(&RELU6_OPS)->base; }
Layer *global_avgpool_layer_new(void) { return &simple_new(&GAP_OPS)->base; }
Layer *flatten_layer_new(void) { return &simple_new(&FLATTEN_OPS)->base; }

Layer *maxpool_layer_new(Pool2dArgs args) {
    SimpleLayer *s = simple_new(&MAXPOOL_OPS);
    s->pool = args;
    return &s->base;
}

Layer *avgpool_layer_new(Pool2dArgs args) {
    SimpleLayer *s = simple_new(&AVGPOOL_OPS);
    s->pool = args;
    return &s->base;
}

Layer *dropout_layer_new(float p, Rng *rng) {
    if (!(p >= 0 && p < 1)) DQ_FATAL("dropout: probability %g must be in [0, 1)", p);
    SimpleLayer *s = simple_new(&DROPOUT_OPS);
    s->p = p;
    s->rng = rng;
    return &s->base;
}

Layer *shortcut_pad_layer_new(int stride, int out_channels) {
    SimpleLayer *s = simple_new(&SHORTCUT_OPS);
    s->stride = stride;
    s->out = out_channels;
    return &s->base;
}
