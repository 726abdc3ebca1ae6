/* onnx.h — a float model as an ONNX file (opset 13), for running it where users run models.
 *
 * The graph takes the images as the data loaders give them, "input" (N, H, W, C) float, and
 * turns them to NCHW with one Transpose; it gives "logits" (N, classes). BatchNorm after a
 * convolution is folded into its weights and bias (in double), activations become Relu or
 * Clip(0, 6), residual blocks Add (then Relu where the block has one), global average pooling
 * GlobalAveragePool + Flatten, channels-last flattening Transpose + Flatten, the option-A
 * shortcut Slice + Pad, linear layers Gemm. Dropout is left out (evaluation).
 *
 * The file is written by hand in protobuf's wire format (core/protobuf.h) and atomically.
 * Field numbers are those of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto, TypeProto); onnx_field names the ones this project writes.
 */
#ifndef DQ_ONNX_H
#define DQ_ONNX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/protobuf.h"
#include "model.h"

enum {
    ONNX_OPSET = 13,
    ONNX_IR_VERSION = 7,
    // ModelProto
    ONNX_MODEL_IR_VERSION = 1, ONNX_MODEL_PRODUCER = 2, ONNX_MODEL_GRAPH = 7, ONNX_MODEL_OPSET = 8,
    // OperatorSetIdProto
    ONNX_OPSET_DOMAIN = 1, ONNX_OPSET_VERSION = 2,
    // GraphProto
    ONNX_GRAPH_NODE = 1, ONNX_GRAPH_NAME = 2, ONNX_GRAPH_INITIALIZER = 5, ONNX_GRAPH_INPUT = 11, ONNX_GRAPH_OUTPUT = 12,
    // NodeProto
    ONNX_NODE_INPUT = 1, ONNX_NODE_OUTPUT = 2, ONNX_NODE_NAME = 3, ONNX_NODE_OP = 4, ONNX_NODE_ATTRIBUTE = 5,
    // AttributeProto and its types
    ONNX_ATTR_NAME = 1, ONNX_ATTR_F = 2, ONNX_ATTR_I = 3, ONNX_ATTR_INTS = 8, ONNX_ATTR_TYPE = 20,
    ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_INTS_TYPE = 7,
    // TensorProto and its element types
    ONNX_TENSOR_DIMS = 1, ONNX_TENSOR_TYPE = 2, ONNX_TENSOR_NAME = 8, ONNX_TENSOR_RAW = 9,
    ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_DOUBLE = 11,
    // ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, its Dimension
    ONNX_VALUE_NAME = 1, ONNX_VALUE_TYPE = 2, ONNX_TYPE_TENSOR = 1, ONNX_TENSOR_ELEM = 1, ONNX_TENSOR_SHAPE = 2,
    ONNX_SHAPE_DIM = 1, ONNX_DIM_VALUE = 1, ONNX_DIM_PARAM = 2,
};

/* A NULL-terminated list of value names, for onnx_node_begin. */
#define ONNX_NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A graph being written: nodes and initializers in their own buffers, joined by onnx_finish. */
typedef struct OnnxGraph {
    Pb nodes, inits;
    int next;           // values t<next> are fresh
    int n_nodes;
    bool clip_bounds;   // the initializers "zero" and "six" (Clip's bounds) are written
} OnnxGraph;

void onnx_graph_init(OnnxGraph *g);
void onnx_graph_free(OnnxGraph *g);
/* A fresh value name ("t17") into name (32 bytes). */
void onnx_value(OnnxGraph *g, char *name);
/* A node: op, its name, inputs and outputs (NULL-terminated lists); attributes go between
 * onnx_node_begin and onnx_node_end. */
void onnx_node_begin(OnnxGraph *g, const char *op, const char *name, const char *const *in, const char *const *out);
void onnx_attr_int(OnnxGraph *g, const char *name, long long v);
void onnx_attr_ints(OnnxGraph *g, const char *name, const long long *v, int n);
void onnx_attr_float(OnnxGraph *g, const char *name, float v);
void onnx_node_end(OnnxGraph *g);
/* Initializers: dims (nd of them), then the elements, little-endian. */
void onnx_init(OnnxGraph *g, const char *name, int elem_type, const long long *dims, int nd, const void *data, size_t bytes);
void onnx_init_float(OnnxGraph *g, const char *name, const long long *dims, int nd, const float *v);
void onnx_init_int64(OnnxGraph *g, const char *name, const long long *v, int n);
/* Nodes both exports write; each replaces the value name in v (32 bytes) by its output's.
 * value → Relu, or Clip(0, 6) for ReLU6 (ACT_NONE: nothing). */
void onnx_activation(OnnxGraph *g, ActKind act, const char *layer, char *v);
/* Conv's or a pool's kernel_shape, strides and pads (square kernels, the same pad all round). */
void onnx_window_attrs(OnnxGraph *g, int kh, int kw, int stride, int pad);
/* The option-A shortcut: every stride-th pixel, lo zero channels before and hi after. */
void onnx_shortcut(OnnxGraph *g, const char *layer, char *v, int stride, int lo, int hi);
/* MaxPool, or AveragePool counting the padding (as core/pool.h). */
void onnx_pool(OnnxGraph *g, bool max, const char *layer, char *v, Pool2dArgs a);

/* The model file: the graph with input "input" (N, h, w, c) float and output "logits"
 * (N, classes), written atomically. False with the reason in err. */
bool onnx_finish(OnnxGraph *g, const char *graph_name, int h, int w, int c, int classes, const char *path, size_t *bytes,
                 char *err, size_t err_size);

/* The float model m (layers of nn_float_factory) to path; false with the reason in err (a layer
 * with no ONNX form). bytes: the file's size. */
bool onnx_export_float(const Model *m, const char *path, size_t *bytes, char *err, size_t err_size);

/* Inputs and reference logits for checking an exported model in another runtime
 * (scripts/onnx_check.js): "DDQCHK1" and a NUL, then int32 n, h, w, c, classes, sets; the n
 * images (n, h, w, c) float; then `sets` logits arrays (n, classes) float — ours, in the order the
 * script is told (FP32; or the integer engine's, then fake-quant's). Little-endian, atomically. */
bool onnx_save_check(const char *path, const float *x, int n, int h, int w, int c, const float *const *logits, int sets,
                     int classes, char *err, size_t err_size);

#endif
