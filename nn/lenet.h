/* lenet.h — a LeNet-style CNN for teaching and fast smoke tests.
 *
 *     conv5×5 (16, pad 2) + BN + ReLU + maxpool 2
 *     conv5×5 (32, pad 2) + BN + ReLU + maxpool 2
 *     flatten, linear (128) + ReLU, dropout, linear (classes)
 * About 3 MMAC per 28×28 image: trains on Fashion-MNIST in about a minute on two cores.
 */
#ifndef DQ_LENET_H
#define DQ_LENET_H

#include "model.h"

typedef struct LeNetConfig {
    int in_channels, in_size, num_classes;
    float dropout;
} LeNetConfig;

Model *lenet_new(const LeNetConfig *cfg, const LayerFactory *factory, uint64_t seed);

#endif
