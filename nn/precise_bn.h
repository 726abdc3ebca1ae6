/* precise_bn.h — BatchNorm's population statistics as the plain average of many batches' statistics
 * ("precise BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021), instead of the running
 * average a training step keeps.
 *
 * A training step moves each running statistic 10% of the way to the batch's (momentum 0.1), so
 * what a network ends with is mostly its last ten or twenty batches. A low-bit network can be very
 * sensitive to that: the same W2A2 weights scored 62–81% with statistics from different windows
 * (docs/results.md). Averaging N batches with equal weights shrinks that noise by about √(N/10).
 *
 *     PreciseBn p;
 *     precise_bn_begin(&p, m->net);          // every BatchNorm layer below net
 *     for each batch: model_forward in training mode, then precise_bn_add(&p);
 *     precise_bn_end(&p);                    // running statistics := the averages; momenta restored
 *
 * Between begin and end each BatchNorm runs with momentum 1 and unfrozen, so its running
 * statistics after a training forward are that batch's mean and unbiased variance; add
 * accumulates them in double.
 */
#ifndef DQ_PRECISE_BN_H
#define DQ_PRECISE_BN_H

#include "layer.h"

typedef struct PreciseBn {
    Layer **layers;     // (n) the BatchNorm layers, in model order
    float *momentum;    // (n) their momenta, restored by end
    bool *frozen;       // (n) whether each was frozen (batchnorm_set_frozen), restored by end
    double *sum;        // Σ over batches of mean, then of variance, layer after layer (2·channels each)
    int n, cap, batches;
} PreciseBn;

void precise_bn_begin(PreciseBn *p, Layer *net);
/* After each training-mode forward: that batch's statistics join the averages. */
void precise_bn_add(PreciseBn *p);
/* The averages become the running statistics (left as they are if no batch was added); momenta
 * restored, memory freed. Returns how many batches were averaged. */
int precise_bn_end(PreciseBn *p);

#endif
