/* tensor.h — the float32 tensor: a shape and a pointer, nothing more.
 *
 * Layout: contiguous, row-major, up to 4 dims. Image activations are channels-last,
 *     (N, H, W, C)   — batch, height, width, channels
 * so a 1x1 convolution is one GEMM of shape (M = N·H·W, K = C_in, N = C_out) and depthwise and
 * BatchNorm kernels vectorise over C. Feature vectors are (N, C). Convolution weights are
 * (KH, KW, C_in/groups, C_out), linear weights (C_in, C_out).
 *
 * Ownership: a Tensor never owns its memory. `data` and `grad` point into an Arena (activations,
 * valid until the arena is reset), a ParamSlab (parameters) or a caller's buffer. `grad` is NULL
 * until backward needs it (activations) or points into the slab (parameters).
 */
#ifndef DQ_TENSOR_H
#define DQ_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    float *data;                 // numel floats
    float *grad;                 // numel floats or NULL (see above)
    int ndim;                    // 1..TENSOR_MAX_DIMS
    int shape[TENSOR_MAX_DIMS];  // unused trailing dims are 1
    size_t numel;                // product of shape, overflow-checked
    bool requires_grad;          // backward computes a gradient for this tensor
} Tensor;

/* Product of dims; fatal on a dim < 1 or on overflow. */
size_t tensor_numel_of(int ndim, const int *shape);
/* A view of caller memory (data may be NULL for now and set later). */
Tensor tensor_view(float *data, int ndim, const int *shape);
/* Struct and data from the arena; data uninitialised / zeroed. */
Tensor *tensor_new(Arena *a, int ndim, const int *shape);
Tensor *tensor_zeros(Arena *a, int ndim, const int *shape);
Tensor *tensor_new4(Arena *a, int n, int h, int w, int c); /* (N, H, W, C) */
Tensor *tensor_new2(Arena *a, int n, int c);               /* (N, C) */

bool tensor_same_shape(const Tensor *a, const Tensor *b);
/* "(64, 32, 32, 3)" into buf; returns buf. */
const char *tensor_shape_str(const Tensor *t, char *buf, size_t size);
void tensor_fill(Tensor *t, float value);
void tensor_copy(Tensor *dst, const Tensor *src); /* same shape required */

#endif
