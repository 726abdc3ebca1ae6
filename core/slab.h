/* slab.h — one block for all parameters of a model and one for their gradients.
 *
 * Layers register their parameters with slab_add (name, shape, flags) while the model is being
 * built; slab_finalize then allocates `data` and `grad` as two contiguous blocks and points every
 * parameter Tensor into them, in registration order. Zeroing all gradients is one memset, the
 * optimizer is one loop over the block, and a checkpoint is the block after a header.
 * The slab owns the parameter Tensor structs; their addresses are stable.
 */
#ifndef DQ_SLAB_H
#define DQ_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

enum {
    PARAM_NO_DECAY = 1u << 0,  // exclude from weight decay when the optimizer is asked to (BN, bias)
    PARAM_FROZEN = 1u << 1,    // the optimizer leaves it unchanged
    PARAM_BUFFER = 1u << 2,    // state, not a parameter (BN running statistics): no gradient,
                               // never updated by the optimizer, saved in checkpoints
    PARAM_EXTERNAL = 1u << 3,  // has a gradient, but its owner updates it with its own rule
                               // (DDQ levels); the optimizer skips it
};

typedef struct Param {
    char name[64];   // "features.3.conv1.weight"
    Tensor *tensor;  // view into the slab's data/grad blocks
    size_t offset;   // first element within the blocks
    unsigned flags;  // PARAM_* bits
} Param;

typedef struct ParamSlab {
    Param *params;   // n_params entries in registration order
    int n_params;
    int cap_params;
    float *data;     // numel floats (after finalize)
    float *grad;     // numel floats (after finalize), zeroed
    size_t numel;    // total parameter count
    bool finalized;
} ParamSlab;

void slab_init(ParamSlab *s);
void slab_free(ParamSlab *s); /* accepts NULL */
/* Register a parameter; its data is zeroed at finalize. Fatal after finalize. */
Tensor *slab_add(ParamSlab *s, const char *name, int ndim, const int *shape, unsigned flags);
void slab_finalize(ParamSlab *s);
void slab_zero_grad(ParamSlab *s);
const Param *slab_find(const ParamSlab *s, const char *name); /* NULL when absent */

#endif
