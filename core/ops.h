/* ops.h — every differentiable op of core, in one include.
 *
 * Each op is a pair: a graph function op_<name>(Tape *, inputs…, args) that checks shapes (fatal
 * on a caller's mistake), allocates its output from the tape's arena, runs the forward kernel and
 * records itself; and a static backward that accumulates into input gradients. The kernels
 * themselves are plain functions on float buffers, <name>_forward_ref / _fast and
 * <name>_backward_ref / _fast, so tests can compare fast against reference.
 *
 * A tape with ref_kernels set (tape.h; DQ_REF_KERNELS=1 in the environment sets it for every new
 * tape) runs every op on its reference kernels: slow, but the specification.
 */
#ifndef DQ_OPS_H
#define DQ_OPS_H

#include <stdbool.h>

#include "activation.h"
#include "batchnorm.h"
#include "conv2d.h"
#include "elementwise.h"
#include "linear.h"
#include "loss.h"
#include "pool.h"
#include "reduce.h"
#include "reshape.h"
#include "shortcut.h"


#endif
