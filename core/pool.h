/* pool.h — max, average and global average pooling over (N, H, W, C).
 *
 *     maxpool2d: y[n][oh][ow][c] = max over the k×k window at (oh·s − p, ow·s − p), padding
 *                ignored; the gradient goes to the first maximum in window order.
 *     avgpool2d: the window sum divided by k·k (padding counts as zeros, PyTorch's default
 *                count_include_pad=True).
 *     global_avgpool: y (N, C) = mean over H·W.
 *     OH = (H + 2p − k)/s + 1, likewise OW; p <= k/2 (as PyTorch requires).
 */
#ifndef DQ_POOL_H
#define DQ_POOL_H

#include "tape.h"

typedef struct Pool2dArgs {
    int kernel;  // window k×k, k >= 1
    int stride;  // >= 1
    int pad;     // 0 <= pad <= kernel/2
} Pool2dArgs;

Tensor *op_maxpool2d(Tape *t, Tensor *x, Pool2dArgs args);
Tensor *op_avgpool2d(Tape *t, Tensor *x, Pool2dArgs args);
Tensor *op_global_avgpool(Tape *t, Tensor *x);

#endif
