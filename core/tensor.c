/* tensor.c — shape bookkeeping for Tensor. */
#include "tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

size_t tensor_numel_of(int ndim, const int *shape) {
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS)
        DQ_FATAL("tensor: %d dims requested, 1..%d supported", ndim, TENSOR_MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) DQ_FATAL("tensor: dim %d has size %d, must be >= 1", i, shape[i]);
        n = dq_mul_size(n, (size_t)shape[i]);
    }
    if (n > SIZE_MAX / sizeof(float)) DQ_FATAL("tensor: %zu elements overflow a byte count", n);
    return n;
}

Tensor tensor_view(float *data, int ndim, const int *shape) {
    Tensor t = {.data = data, .grad = NULL, .ndim = ndim, .numel = tensor_numel_of(ndim, shape)};
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) t.shape[i] = i < ndim ? shape[i] : 1;
    return t;
}

Tensor *tensor_new(Arena *a, int ndim, const int *shape) {
    Tensor *t = arena_alloc(a, sizeof *t);
    *t = tensor_view(NULL, ndim, shape);
    t->data = arena_floats(a, t->numel);
    return t;
}

Tensor *tensor_zeros(Arena *a, int ndim, const int *shape) {
    Tensor *t = tensor_new(a, ndim, shape);
    memset(t->data, 0, t->numel * sizeof(float));
    return t;
}

Tensor *tensor_new4(Arena *a, int n, int h, int w, int c) {
    return tensor_new(a, 4, (const int[]){n, h, w, c});
}

Tensor *tensor_new2(Arena *a, int n, int c) { return tensor_new(a, 2, (const int[]){n, c}); }

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tensor_shape_str(const Tensor *t, char *buf, size_t size) {
    size_t off = 0;
    off += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < t->ndim && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, i ? ", %d" : "%d", t->shape[i]);
    if (off < size) snprintf(buf + off, size - off, ")");
    return buf;
}

void tensor_fill(Tensor *t, float value) {
    for (size_t i = 0; i < t->numel; i++) t->data[i] = value;
}

void tensor_copy(Tensor *dst, const Tensor *src) {
    if (dst->numel != src->numel) {
        char a[64], b[64];
        DQ_FATAL("tensor_copy: shapes %s and %s differ", tensor_shape_str(dst, a, sizeof a),
                 tensor_shape_str(src, b, sizeof b));
    }
    memcpy(dst->data, src->data, src->numel * sizeof(float));
}
