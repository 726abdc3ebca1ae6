/* weighted.h — float convolution and linear layers, and the float LayerFactory.
 *
 * Shapes follow core: conv weight (KH, KW, in/groups, out), linear weight (in, out), bias (out).
 * Initialisation (as torchvision's MobileNetV2 / ResNet): conv weights Kaiming-normal with
 * fan_out = out·KH·KW, std = sqrt(2 / fan_out); linear weights normal(0, 0.01); biases 0.
 * The helpers below are shared with quantized layers (quant/), which wrap the same parameters.
 */
#ifndef DQ_WEIGHTED_H
#define DQ_WEIGHTED_H

#include "core/conv2d.h"
#include "layer.h"

/* The float factory: conv2d / linear layers exactly as the spec says. */
extern const LayerFactory nn_float_factory;

/* Register "<name>.weight" (and "<name>.bias") for a spec; fatal on an impossible spec. */
void weighted_register(ParamSlab *slab, const LayerSpec *spec, Tensor **weight, Tensor **bias);
void weighted_init(const LayerSpec *spec, Tensor *weight, Tensor *bias, Rng *rng);
Conv2dArgs spec_conv_args(const LayerSpec *spec);
/* MACs per image of a weighted layer producing `y` (batch N = y->shape[0]). */
long long spec_macs(const LayerSpec *spec, const Tensor *y);
/* A float layer of nn_float_factory: its spec and parameters (bias NULL without one); false for
 * any other layer. */
bool weighted_float_params(const Layer *l, const LayerSpec **spec, const Tensor **weight, const Tensor **bias);
/* LayerOps.info of every weighted layer (float or quantized): LAYER_WEIGHTED. */
void weighted_info(const Layer *l, LayerInfo *out);

#endif
