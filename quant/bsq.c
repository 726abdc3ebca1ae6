/* bsq.c — bit-plane weights, their straight-through step, the group lasso and the
 * re-quantization that drops empty planes (see bsq.h). */
#include "bsq.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

/* Writes integer codes (|code| < 2^bits) into binary planes: the sign picks P or M. */
static void decompose(BsqLayer *L, const long *code) {
    size_t n = L->n;
    memset(L->pos, 0, BSQ_MAX_BITS * n * sizeof *L->pos);
    memset(L->neg, 0, BSQ_MAX_BITS * n * sizeof *L->neg);
    for (size_t i = 0; i < n; i++) {
        long c = code[i] < 0 ? -code[i] : code[i];
        float *plane = code[i] < 0 ? L->neg : L->pos;
        for (int b = 0; b < L->bits; b++) plane[(size_t)b * n + i] = (float)((c >> b) & 1);
    }
}

/* Σ_b (P_b − M_b)·2^b of weight i. */
static double planes_value(const BsqLayer *L, size_t i) {
    double v = 0;
    for (int b = L->bits - 1; b >= 0; b--) v = 2 * v + ((double)L->pos[(size_t)b * L->n + i] - L->neg[(size_t)b * L->n + i]);
    return v;
}

void bsq_init(BsqLayer *L, const float *w, size_t n, int bits) {
    DQ_CHECK(bits >= 1 && bits <= BSQ_MAX_BITS && n > 0);
    L->n = n, L->bits = bits;
    float s = 0;
    for (size_t i = 0; i < n; i++) s = fmaxf(s, fabsf(w[i]));
    long top = (1L << bits) - 1;
    L->step = s > 0 ? s / (float)top : 1.0f;
    L->pos = dq_malloc(BSQ_MAX_BITS * n * sizeof *L->pos);
    L->neg = dq_malloc(BSQ_MAX_BITS * n * sizeof *L->neg);
    long *code = dq_malloc(n * sizeof *code);
    for (size_t i = 0; i < n; i++) {
        long c = lround(w[i] / L->step);
        code[i] = c > top ? top : c < -top ? -top : c;
    }
    decompose(L, code);
    dq_free(code);
}

void bsq_free(BsqLayer *L) {
    if (!L) return;
    dq_free(L->pos), dq_free(L->neg);
    memset(L, 0, sizeof *L);
}

void bsq_weight(const BsqLayer *L, float *w) {
    for (size_t i = 0; i < L->n; i++) w[i] = L->step * (float)round(planes_value(L, i));
}

double bsq_plane_norm(const BsqLayer *L, int b) {
    const float *p = L->pos + (size_t)b * L->n, *m = L->neg + (size_t)b * L->n;
    double ss = 0;
    for (size_t i = 0; i < L->n; i++) ss += (double)p[i] * p[i] + (double)m[i] * m[i];
    return sqrt(ss);
}

static float clip02(float v) { return v < 0 ? 0 : v > 2 ? 2 : v; }

void bsq_step(BsqLayer *L, const float *grad_w, float lr, float shrink) {
    size_t n = L->n;
    for (int b = 0; b < L->bits; b++) {
        float *p = L->pos + (size_t)b * n, *m = L->neg + (size_t)b * n;
        float k = lr * L->step * (float)(1L << b);  // the straight-through gradient's factor
        for (size_t i = 0; i < n; i++) p[i] = clip02(p[i] - k * grad_w[i]), m[i] = clip02(m[i] + k * grad_w[i]);
        if (shrink <= 0) continue;
        double norm = bsq_plane_norm(L, b);
        float keep = norm > shrink ? (float)(1 - shrink / norm) : 0;
        for (size_t i = 0; i < n; i++) p[i] *= keep, m[i] *= keep;
    }
}

/* True when plane b is zero for every weight. */
static bool plane_empty(const BsqLayer *L, int b) {
    const float *p = L->pos + (size_t)b * L->n, *m = L->neg + (size_t)b * L->n;
    for (size_t i = 0; i < L->n; i++)
        if (p[i] != 0 || m[i] != 0) return false;
    return true;
}

int bsq_requantize(BsqLayer *L, int b_min) {
    size_t n = L->n;
    long top = (1L << L->bits) - 1, *code = dq_malloc(n * sizeof *code);
    for (size_t i = 0; i < n; i++) {
        long c = lround(planes_value(L, i));
        code[i] = c > top ? top : c < -top ? -top : c;
    }
    decompose(L, code);
    while (L->bits > b_min) {
        if (plane_empty(L, L->bits - 1)) {  // the top plane: the range shrinks, the step stays
            L->bits--;
        } else if (plane_empty(L, 0)) {  // the bottom plane: codes halve (exactly), the step doubles
            for (size_t i = 0; i < n; i++) code[i] /= 2;
            L->bits--, L->step *= 2;
            decompose(L, code);
        } else {
            break;
        }
    }
    dq_free(code);
    return L->bits;
}
