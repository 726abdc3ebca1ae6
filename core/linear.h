/* linear.h — matrix multiply and fully connected layer.
 *
 * Shapes:   x (N, IN)    weight (IN, OUT)    bias (OUT) or NULL    y (N, OUT)
 *     matmul:  y = a · b                 a (M, K), b (K, N) -> (M, N)
 *     linear:  y[n][o] = bias[o] + Σ_i x[n][i] · weight[i][o]
 * The weight is stored input-major (IN, OUT) so the forward is one GEMM without transposes,
 * like the convolution weight (KH, KW, C_in, C_out).
 */
#ifndef DQ_LINEAR_H
#define DQ_LINEAR_H

#include "tape.h"

Tensor *op_matmul(Tape *t, Tensor *a, Tensor *b);
Tensor *op_linear(Tape *t, Tensor *x, Tensor *weight, Tensor *bias);

/* Kernels. N rows, IN inputs, OUT outputs. Backward accumulates; dx/dw/db may be NULL. */
void linear_forward_ref(float *y, const float *x, const float *w, const float *b, int N, int IN,
                        int OUT);
void linear_forward_fast(float *y, const float *x, const float *w, const float *b, int N, int IN,
                         int OUT);
void linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int N, int IN, int OUT);
void linear_backward_fast(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int N, int IN, int OUT);

#endif
