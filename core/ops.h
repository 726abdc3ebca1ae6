/* ops.h — every differentiable op of core, in one include.
 *
 * Each op is a pair: a graph function op_<name>(Tape *, inputs…, args) that checks shapes (fatal
 * on a caller's mistake), allocates its output from the tape's arena, runs the forward kernel and
 * records itself; and a static backward that accumulates into input gradients. The kernels
 * themselves are plain functions on float buffers, <name>_forward_ref / _fast and
 * <name>_backward_ref / _fast, so tests can compare fast against reference.
 *
 * Setting ops_use_ref_kernels (or the environment variable DQ_REF_KERNELS=1, read by
 * ops_init_from_env) makes every op use its reference kernels: slow, but the specification.
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

extern bool ops_use_ref_kernels;
void ops_init_from_env(void);

#endif
