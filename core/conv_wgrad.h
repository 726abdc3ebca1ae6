/* conv_wgrad.h — the weight gradient of a dense convolution (groups 1) read straight from its
 * zero-padded input, without im2col:
 *     dw[kh][kw][c][oc] += Σ_pixels xp[n][oh·s + kh][ow·s + kw][c] · dy[n][oh][ow][oc]
 * Each tile of MR weight rows (tap, channel) × whole vectors of output channels sums the pixels in
 * the order of conv2d.c's im2col + GEMM path: images of a thread's range in turn, their pixels in
 * chunks of `rows`, each chunk in K blocks of the GEMM, a block's sum added to the thread's partial
 * — and the partials are added in thread order. So the bits are that path's. db likewise. */
#ifndef DQ_CONV_WGRAD_H
#define DQ_CONV_WGRAD_H

#include <stdbool.h>

#include "conv_geom.h"

/* Whether conv_wgrad handles this convolution: groups 1, output channels whole vectors. */
bool conv_wgrad_ok(const ConvGeom *g);
/* xp (N, Hp, Wp, C): x zero-padded by g->pad on every side; rows: pixels per chunk (as the
 * im2col path's). dw, db (each may be NULL) are accumulated into. */
void conv_wgrad(float *dw, float *db, const float *dy, const float *xp, int Hp, int Wp, const ConvGeom *g,
                int rows);

#endif
