/* loss.c — softmax cross-entropy. Legend: N rows, K classes. */
#include "loss.h"

#include <math.h>

#include "error.h"

double softmax_cross_entropy_forward(float *probs, const float *logits, const int *labels, int N,
                                     int K, float smoothing) {
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        float *p = probs + (size_t)n * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
        double log_sum = log(sum);
        double row = 0;
        for (int k = 0; k < K; k++) {
            double logp = (double)z[k] - zmax - log_sum;
            double target = smoothing / K + (k == labels[n] ? 1.0 - smoothing : 0.0);
            row -= target * logp;
            p[k] = (float)exp(logp);
        }
        total += row;
    }
    return total / N;
}

typedef struct CeSaved {
    float *probs;       // (N, K)
    const int *labels;  // (N), copied into the arena
    float smoothing;
} CeSaved;

static void ce_backward_op(Tape *t, TapeRecord *r) {
    // forward: loss = mean_n Σ_k −t·log softmax(z)   =>   dz = dloss · (p − t) / N
    const CeSaved *s = r->saved;
    Tensor *z = r->in[0];
    int N = z->shape[0], K = z->shape[1];
    float g = r->out->grad[0] / (float)N, *dz = tape_grad(t, z);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float target = s->smoothing / (float)K + (k == s->labels[n] ? 1.0f - s->smoothing : 0.0f);
            dz[(size_t)n * K + k] += g * (s->probs[(size_t)n * K + k] - target);
        }
}

static const TapeOp CE_OP = {"softmax_cross_entropy", ce_backward_op};

Tensor *op_softmax_cross_entropy(Tape *t, Tensor *logits, const int *labels, float smoothing) {
    char sz[64];
    if (logits->ndim != 2)
        DQ_FATAL("softmax_cross_entropy: logits %s must be (N, K)", tensor_shape_str(logits, sz, sizeof sz));
    if (!(smoothing >= 0 && smoothing < 1))
        DQ_FATAL("softmax_cross_entropy: label smoothing %g must be in [0, 1)", smoothing);
    int N = logits->shape[0], K = logits->shape[1];
    for (int n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= K)
            DQ_FATAL("softmax_cross_entropy: label %d at row %d is outside [0, %d)", labels[n], n, K);
    float *probs = arena_floats(t->arena, logits->numel);
    Tensor *loss = tensor_new(t->arena, 1, (const int[]){1});
    loss->data[0] = (float)softmax_cross_entropy_forward(probs, logits->data, labels, N, K, smoothing);
    TapeRecord *r = tape_push(t, &CE_OP, loss, 1, &logits);
    if (r) {
        CeSaved *s = arena_alloc(t->arena, sizeof *s);
        int *copy = arena_alloc(t->arena, dq_mul_size((size_t)N, sizeof(int)));
        for (int n = 0; n < N; n++) copy[n] = labels[n];
        *s = (CeSaved){.probs = probs, .labels = copy, .smoothing = smoothing};
        r->saved = s;
    }
    return loss;
}
