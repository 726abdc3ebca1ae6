/* layer.h — the one small interface every layer implements.
 *
 * A layer is a struct whose first member is `Layer base`, plus a pointer to a static LayerOps
 * table: forward (building on core ops), init (fill its parameters once the model's slab is
 * allocated), free, and — for containers — its children. Parameters are not owned by layers:
 * each layer registers its tensors in the model's ParamSlab at construction (under its name) and
 * keeps pointers to them. Float layers know nothing of quantization; quantized layers (quant/)
 * implement the same interface and are handed to the model builders through a LayerFactory.
 */
#ifndef DQ_LAYER_H
#define DQ_LAYER_H

#include <stdbool.h>

#include "core/rng.h"
#include "core/slab.h"
#include "core/tape.h"

#include "core/activation.h"
#include "core/pool.h"

typedef struct Layer Layer;

/* What a layer computes, for tools that translate a network (the integer engine's export):
 * its kind and the few fields that kind needs. Weighted layers say so; their parameters are read
 * by whoever made them (quant/ for quantized layers, nn/weighted.h for float ones). */
typedef enum {
    LAYER_OTHER,          // nothing a translator knows
    LAYER_SEQUENTIAL,     // children in order (ops->children)
    LAYER_RESIDUAL,       // children: body, shortcut (identity when absent); relu_after
    LAYER_WEIGHTED,       // a convolution or linear layer from a LayerFactory
    LAYER_BATCHNORM,      // gamma, beta, mean, var, eps; act fused after it
    LAYER_ACTIVATION,     // act
    LAYER_MAXPOOL,        // pool
    LAYER_AVGPOOL,        // pool
    LAYER_GLOBAL_AVGPOOL,
    LAYER_FLATTEN,
    LAYER_DROPOUT,        // identity outside training
    LAYER_SHORTCUT_PAD,   // stride, out: option-A shortcut (core/shortcut.h)
} LayerKind;

typedef struct LayerInfo {
    LayerKind kind;
    ActKind act;                        // batchnorm (fused), activation
    const Tensor *gamma, *beta;         // batchnorm: (C) parameters …
    const Tensor *mean, *var;           // … and running statistics
    float eps;
    Pool2dArgs pool;                    // max / average pooling
    int stride, out;                    // shortcut_pad
    bool relu_after;                    // residual: ReLU after the sum
} LayerInfo;

typedef struct LayerOps {
    const char *kind;                                    // "conv2d", "batchnorm", "sequential", …
    Tensor *(*forward)(Layer *l, Tape *t, Tensor *x);
    void (*init)(Layer *l, Rng *rng);                    // may be NULL (no parameters)
    void (*free)(Layer *l);                              // frees l itself; may be NULL (plain free)
    int (*children)(Layer *l, Layer ***out);             // containers only; NULL otherwise
    void (*info)(const Layer *l, LayerInfo *out);        // what it computes; NULL: LAYER_OTHER
    // Optional, evaluation only: forward followed by a per-channel affine map and activation,
    // fused (containers fold an evaluation-mode BatchNorm into the convolution before it).
    Tensor *(*forward_affine)(Layer *l, Tape *t, Tensor *x, const ChannelAffine *after);
} LayerOps;

struct Layer {
    const LayerOps *ops;
    char name[64];     // dotted path in the model: "features.3.conv.1"
    long long macs;    // multiply-accumulates per image of the last forward (weighted layers)
};

Tensor *layer_forward(Layer *l, Tape *t, Tensor *x);
/* The layer's LayerInfo (kind LAYER_OTHER when it gives none). */
LayerInfo layer_info(const Layer *l);
void layer_init(Layer *l, Rng *rng);   /* recursive */
void layer_free(Layer *l);             /* recursive; accepts NULL */
/* Call fn on l and, depth first, on every descendant. */
void layer_visit(Layer *l, void (*fn)(Layer *l, void *ctx), void *ctx);
/* Copy a formatted name into l->name (fatal if it does not fit). */
void layer_set_name(Layer *l, const char *name);

/* ------------------------------------------------------------------ factory
 * What a model builder asks for when it needs a weighted layer. The builder says what the layer
 * is; the factory decides how it is implemented (float here, quantized in quant/). */
typedef enum {
    SPEC_CONV,       // dense convolution (groups 1)
    SPEC_DEPTHWISE,  // groups = in = out channels
    SPEC_POINTWISE,  // 1×1, groups 1
    SPEC_GROUPED,    // any other grouped convolution
    SPEC_LINEAR,     // fully connected
} SpecKind;

typedef struct LayerSpec {
    SpecKind kind;
    const char *name;
    int in, out;              // channels / features
    int kernel, stride, pad, groups;
    bool bias;
    bool first, last;         // the model's first / last weighted layer (pinned by quantizers)
    bool signed_input;        // the input can be negative (not right after a ReLU)
} LayerSpec;

typedef struct LayerFactory {
    Layer *(*make)(const struct LayerFactory *f, ParamSlab *slab, const LayerSpec *spec);
    void *ctx;                // the factory's own state
} LayerFactory;

const char *spec_kind_name(SpecKind kind);
/* SPEC_CONV / DEPTHWISE / POINTWISE / GROUPED from the convolution's shape. */
SpecKind spec_conv_kind(int in, int out, int kernel, int groups);

#endif
