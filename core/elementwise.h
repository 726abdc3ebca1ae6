/* elementwise.h — sums and scalings of whole tensors.
 *     add:     y = a + b          (same shape; residual connections)
 *     add_act: y = act(a + b)     (ResNet's block output: the ReLU fused, its mask read off y)
 *     scale:   y = s·x            (s a constant, not learned)
 */
#ifndef DQ_ELEMENTWISE_H
#define DQ_ELEMENTWISE_H

#include "activation.h"
#include "tape.h"

Tensor *op_add(Tape *t, Tensor *a, Tensor *b);
Tensor *op_add_act(Tape *t, Tensor *a, Tensor *b, ActKind act);
Tensor *op_scale(Tape *t, Tensor *x, float s);

#endif
