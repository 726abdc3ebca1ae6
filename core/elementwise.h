/* elementwise.h — sums and scalings of whole tensors.
 *     add:   y = a + b        (same shape; residual connections)
 *     scale: y = s·x          (s a constant, not learned)
 */
#ifndef DQ_ELEMENTWISE_H
#define DQ_ELEMENTWISE_H

#include "tape.h"

Tensor *op_add(Tape *t, Tensor *a, Tensor *b);
Tensor *op_scale(Tape *t, Tensor *x, float s);

#endif
