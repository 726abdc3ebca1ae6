/* container.h — composition: a sequence of layers, and a residual connection.
 *     sequential: y = f_n(… f_2(f_1(x)))
 *     residual:   y = act(body(x) + shortcut(x)),  shortcut NULL = identity, act none or ReLU
 * Containers own their children (layer_free frees them). */
#ifndef DQ_CONTAINER_H
#define DQ_CONTAINER_H

#include "layer.h"

Layer *sequential_new(const char *name);
/* Append (takes ownership); returns the layer for chaining. */
Layer *sequential_add(Layer *seq, Layer *item);
int sequential_len(Layer *seq);

Layer *residual_new(const char *name, Layer *body, Layer *shortcut, bool relu_after);

#endif
