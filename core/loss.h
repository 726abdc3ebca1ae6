/* loss.h — fused softmax cross-entropy, optionally with label smoothing.
 *
 *     logits (N, K), labels[N] in [0, K)  ->  scalar
 *     p = softmax(logits) computed as exp(z − max z) / Σ exp(z − max z)   (never overflows)
 *     target t = (1 − ε)·onehot(label) + ε/K
 *     loss = (1/N) Σ_n Σ_k −t[n][k] · log p[n][k]
 *     d loss / d logits[n][k] = (p[n][k] − t[n][k]) / N
 * A label outside [0, K) is a fatal error naming the row and the value.
 */
#ifndef DQ_LOSS_H
#define DQ_LOSS_H

#include "tape.h"

Tensor *op_softmax_cross_entropy(Tape *t, Tensor *logits, const int *labels, float smoothing);

/* Kernel: writes probs (N, K) and returns the mean loss. */
double softmax_cross_entropy_forward(float *probs, const float *logits, const int *labels, int N,
                                     int K, float smoothing);

#endif
