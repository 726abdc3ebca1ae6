/* resnet.h — ResNet-20 for small images (He et al. 2016, CIFAR version, "option A").
 *
 * 3×3 conv (16) + BN + ReLU, then three stages of n = 3 basic blocks with 16, 32, 64 channels
 * (the first block of stages 2 and 3 has stride 2), global average pooling and a linear layer.
 * A basic block is relu(BN(conv3×3(relu(BN(conv3×3(x))))) + shortcut(x)); the shortcut is the
 * identity, or — when the stride or the width changes — option A: take every other pixel and
 * zero-pad the new channels (no parameters). Convolutions have no bias; the linear layer has.
 * Names: "stem", "layer2.0.conv1", "layer2.0.conv2", …, "fc".
 */
#ifndef DQ_RESNET_H
#define DQ_RESNET_H

#include "model.h"

typedef struct ResNetConfig {
    int depth;          // 6n + 2; 20 for ResNet-20
    int in_channels, in_size, num_classes;
} ResNetConfig;

Model *resnet_new(const ResNetConfig *cfg, const LayerFactory *factory, uint64_t seed);

#endif
