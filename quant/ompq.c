/* ompq.c — OMPQ's orthogonality metric and importance (see ompq.h). */
#include "ompq.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/gemm.h"

double ompq_centred_gram(const float *x, int n, long long d, double *K) {
    DQ_CHECK(n > 0 && d > 0 && d <= INT32_MAX);
    float *g = dq_malloc((size_t)n * n * sizeof *g);  // X Xᵀ by the float GEMM (the long sums are
    gemm(false, true, n, n, (int)d, x, (int)d, x, (int)d, 0, g, n);  // over d; ORM needs ~4 digits)
    for (size_t k = 0; k < (size_t)n * n; k++) K[k] = g[k];
    dq_free(g);
    double *row = dq_malloc((size_t)n * sizeof *row), all = 0;  // H K H: subtract row and column means
    for (int a = 0; a < n; a++) {
        double s = 0;
        for (int b = 0; b < n; b++) s += K[(size_t)a * n + b];
        row[a] = s / n, all += s;
    }
    all /= (double)n * n;
    double norm2 = 0;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            double v = K[(size_t)a * n + b] - row[a] - row[b] + all;
            K[(size_t)a * n + b] = v, norm2 += v * v;
        }
    dq_free(row);
    return sqrt(norm2);
}

double ompq_orm(const double *Ki, double norm_i, const double *Kj, double norm_j, int n) {
    if (!(norm_i > 0) || !(norm_j > 0)) return 0;
    double s = 0;
    for (size_t k = 0; k < (size_t)n * n; k++) s += Ki[k] * Kj[k];
    return s / (norm_i * norm_j);
}

void ompq_importance(const double *orm, int L, double beta, double *theta, double *c) {
    for (int l = 0; l < L; l++) {
        double g = 0;
        for (int j = 0; j < L; j++)
            if (j != l) g += orm[(size_t)l * L + j];
        theta[l] = exp(-beta * g);
    }
    double tail = 0;
    for (int l = L - 1; l >= 0; l--) {
        tail += theta[l];
        c[l] = tail / (L - l);
    }
}
