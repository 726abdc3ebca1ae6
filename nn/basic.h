/* basic.h — parameter-light layers: batch norm, activations, pooling, dropout, flatten,
 * the option-A shortcut. Each wraps one core op (see core/ops.h for the equations). */
#ifndef DQ_BASIC_H
#define DQ_BASIC_H

#include "core/activation.h"
#include "core/pool.h"
#include "layer.h"

/* BatchNorm over channels, followed by a fused activation (ACT_NONE for none): gamma/beta
 * parameters (no weight decay), running mean/var buffers; initialised to 1, 0, 0, 1. */
Layer *batchnorm_layer_new(ParamSlab *slab, const char *name, int channels, float momentum, float eps,
                           ActKind act);
/* Sets a BatchNorm layer's momentum (running ← (1 − m)·running + m·batch); returns the old one. */
float batchnorm_set_momentum(Layer *bn, float momentum);
/* Frozen: in training too the layer normalises with its running statistics, which stop moving
 * (core/batchnorm.h); returns the old setting. */
bool batchnorm_set_frozen(Layer *bn, bool frozen);
Layer *relu_layer_new(void);
Layer *relu6_layer_new(void);
Layer *maxpool_layer_new(Pool2dArgs args);
Layer *avgpool_layer_new(Pool2dArgs args);
Layer *global_avgpool_layer_new(void);
Layer *flatten_layer_new(void);
/* Dropout with probability p drawing from *rng (owned by the model, reseeded per epoch). */
Layer *dropout_layer_new(float p, Rng *rng);
Layer *shortcut_pad_layer_new(int stride, int out_channels);

#endif
