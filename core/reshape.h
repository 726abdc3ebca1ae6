/* reshape.h — new shapes for the same elements (views: no copy in forward).
 *     reshape: any shape with the same number of elements (row-major order kept)
 *     flatten: (N, …) -> (N, numel/N)
 */
#ifndef DQ_RESHAPE_H
#define DQ_RESHAPE_H

#include "tape.h"

Tensor *op_reshape(Tape *t, Tensor *x, int ndim, const int *shape);
Tensor *op_flatten(Tape *t, Tensor *x);

#endif
