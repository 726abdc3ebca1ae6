/* mobilenetv2.h — MobileNetV2 (Sandler et al. 2018) for small images.
 *
 * torchvision's network: a 3×3 stem conv (32·w channels), 17 inverted-residual blocks with the
 * (expansion t, channels c, repeats n, stride s) table below, a 1×1 conv to 1280·max(1, w)
 * channels, global average pooling, dropout 0.2 and a linear classifier. Channel counts are
 * rounded to multiples of 8 (torchvision's _make_divisible). A block is
 *     [1×1 expand conv, BN, ReLU6]  (when t > 1)
 *     3×3 depthwise conv (stride s), BN, ReLU6
 *     1×1 project conv, BN            (linear bottleneck: no activation)
 * plus the identity when stride is 1 and input and output channels agree.
 *     t  c   n s        CIFAR variants change the strides:
 *     1  16  1 1          s1x3: stem 1, c=24 stage 1, c=32 stage 1   (32×32 input keeps 32×32
 *     6  24  2 2                until the c=64 stage; bench/torch_reference.py's default)
 *     6  32  3 2          s1x2: stem 1, c=24 stage 1                (kuangliu/pytorch-cifar)
 *     6  64  4 2          imagenet: torchvision's strides (stem 2)
 *     6  96  3 1
 *     6 160  3 2
 *     6 320  1 1
 * All convolutions have no bias. Layer names follow the block structure:
 * "features.0" (stem), "features.3.expand", "features.3.dw", "features.3.project",
 * "features.18" (last 1×1), "classifier".
 */
#ifndef DQ_MOBILENETV2_H
#define DQ_MOBILENETV2_H

#include "model.h"

typedef enum { MNV2_S1X3, MNV2_S1X2, MNV2_IMAGENET } Mnv2Variant;

typedef struct MobileNetV2Config {
    float width;        // width multiplier (1.0, 0.5, …)
    Mnv2Variant variant;
    int in_channels;    // 1 (MNIST-like) or 3 (CIFAR)
    int in_size;        // input height = width
    int num_classes;
    float dropout;      // before the classifier (torchvision: 0.2)
} MobileNetV2Config;

Model *mobilenetv2_new(const MobileNetV2Config *cfg, const LayerFactory *factory, uint64_t seed);
/* "s1x3" / "s1x2" / "imagenet" -> variant; returns false if unknown. */
bool mobilenetv2_parse_variant(const char *s, Mnv2Variant *out);
const char *mobilenetv2_variant_name(Mnv2Variant v);
/* torchvision's _make_divisible(v, 8). */
int mobilenetv2_divisible(float v);

#endif
