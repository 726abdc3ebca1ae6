/* depthwise.h — depthwise convolution: one filter per channel (G = C = OC, weight (KH, KW, 1, C)).
 *
 *     y[n][oh][ow][c] = b[c] + Σ_{kh,kw} x[n][oh·s − p + kh][ow·s − p + kw][c] · w[kh][kw][c]
 * taps outside the input read zeros. The reference kernels are that line and its derivatives;
 * the fast ones keep a block of channels in registers per output pixel (depthwise.c). conv2d.c
 * dispatches here when G = C = OC; this unit calls nothing of conv2d's.
 */
#ifndef DQ_DEPTHWISE_H
#define DQ_DEPTHWISE_H

#include <stdbool.h>

#include "activation.h"
#include "conv_geom.h"

/* x (N, H, W, C)   w (KH, KW, 1, C)   b (C) or NULL   y (N, OH, OW, C) */
void depthwise_forward_ref(float *y, const float *x, const float *w, const float *b, const ConvGeom *g);
/* The fast forward applies `after` (NULL: nothing) to each output row as it is finished. */
void depthwise_forward_fast(float *y, const float *x, const float *w, const float *b, const ConvGeom *g,
                            const ChannelAffine *after);
/* Accumulate into dx (N, H, W, C), dw (KH, KW, 1, C), db (C); each may be NULL. The fast kernel
 * stores into dx instead when dx_overwrite is set. */
void depthwise_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                            const ConvGeom *g);
void depthwise_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                             const ConvGeom *g, bool dx_overwrite);

#endif
