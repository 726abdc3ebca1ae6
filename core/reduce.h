/* reduce.h — whole-tensor reductions to a scalar (shape (1)).
 *     sum:  y = Σ_i x[i]          mean: y = Σ_i x[i] / numel       (accumulated in double)
 */
#ifndef DQ_REDUCE_H
#define DQ_REDUCE_H

#include "tape.h"

Tensor *op_sum(Tape *t, Tensor *x);
Tensor *op_mean(Tape *t, Tensor *x);

#endif
