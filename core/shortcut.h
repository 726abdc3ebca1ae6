/* shortcut.h — ResNet "option A" identity shortcut: subsample, then zero-pad channels.
 *
 *     x (N, H, W, C)  ->  y (N, OH, OW, OC),  OH = ceil(H / s), OW = ceil(W / s), OC >= C
 *     y[n][oh][ow][c] = x[n][oh·s][ow·s][c − lo]  for lo <= c < lo + C,  else 0
 *     lo = (OC − C) / 2   (PyTorch's F.pad(x[:, :, ::s, ::s], (0,0,0,0, p/2, p/2)))
 */
#ifndef DQ_SHORTCUT_H
#define DQ_SHORTCUT_H

#include "tape.h"

Tensor *op_shortcut_pad(Tape *t, Tensor *x, int stride, int out_channels);

#endif
