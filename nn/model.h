/* model.h — a network: its layers, its parameter slab, its dropout RNG, its input geometry.
 *
 * Builders (mobilenetv2.h, resnet.h, lenet.h) create a Model, add layers whose parameters go to
 * m->slab, then call model_finish, which allocates the slab, initialises every layer from the
 * seed and measures multiply-accumulates per image with one batch-1 forward.
 */
#ifndef DQ_MODEL_H
#define DQ_MODEL_H

#include <stdint.h>

#include "layer.h"

typedef struct Model {
    char name[64];        // "mobilenetv2-w1.0-s1x3"
    ParamSlab slab;       // parameters and BN running statistics
    Layer *net;           // the root container
    Rng dropout_rng;      // used by dropout layers; the trainer reseeds it every epoch
    int in_c, in_h, in_w; // expected input (N, in_h, in_w, in_c)
    int num_classes;
    long long macs;       // multiply-accumulates per image (weighted layers)
    size_t n_params;      // trainable parameters (buffers excluded)
} Model;

Model *model_new(const char *name, int in_c, int in_h, int in_w, int num_classes);
void model_finish(Model *m, uint64_t seed);
void model_free(Model *m); /* accepts NULL */
/* logits (N, num_classes); fatal if x is not (N, in_h, in_w, in_c). */
Tensor *model_forward(Model *m, Tape *t, Tensor *x);
/* One line: "mobilenetv2-w1.0-s1x3: 2.24 M parameters, 296.5 MMAC/image, 158 layers" */
void model_describe(const Model *m, char *buf, size_t size);

#endif
