/* als.c — the adaptive loss scale of one layer, and the per-tensor scales (see als.h). */
#include "als.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

/* √2·erfinv(10⁻³) by the series erfinv(x) = (√π/2)(x + πx³/12 + …), exact to 1e−13 here. */
static const double ALS_T = 1.2533141373155003e-3 * (1 + 3.14159265358979323846e-6 / 12);

/* The mean, variance and largest magnitude of n floats, in 32 independent lanes: one running sum
 * would chain every add on the one before (3.5 ns per element); 32 lanes let the compiler keep
 * them in vector registers (0.15 ns, Zen 5). Double sums, so the order changes only the last bits. */
enum { MV_LANES = 32 };
static void mean_and_var(const float *x, size_t n, double *mean, double *var, double *absmax) {
    double s[MV_LANES] = {0}, s2[MV_LANES] = {0};
    float mx[MV_LANES] = {0};
    size_t i = 0;
    for (; i + MV_LANES <= n; i += MV_LANES)
        for (int k = 0; k < MV_LANES; k++) {
            double v = x[i + k];
            float a = fabsf(x[i + k]);
            s[k] += v, s2[k] += v * v, mx[k] = a > mx[k] ? a : mx[k];  // (a NaN leaves the max alone)
        }
    for (size_t k = 0; k < n - i; k++) {
        double v = x[i + k];
        float a = fabsf(x[i + k]);
        s[k] += v, s2[k] += v * v, mx[k] = a > mx[k] ? a : mx[k];
    }
    double st = 0, s2t = 0, m = 0;
    for (int k = 0; k < MV_LANES; k++) st += s[k], s2t += s2[k], m = fmax(m, mx[k]);
    *mean = st / (double)n, *var = fmax(0, s2t / (double)n - *mean * *mean), *absmax = m;
}

double als_factor(const float *dy, size_t n_dy, const float *w, size_t n_w, long fan_in, double s) {
    double mg, vg, maxg, mw, vw, maxw;
    mean_and_var(dy, n_dy, &mg, &vg, &maxg);
    mean_and_var(w, n_w, &mw, &vw, &maxw);
    double sigma = sqrt((vg + mg * mg) * (vw + mw * mw)) * sqrt(0.5 * (double)fan_in);
    if (!(sigma > 0) || !(maxg * maxw > 0)) return 1;  // nothing flows: leave the scale alone
    double a = fmax(ALS_U_MIN / (ALS_T * sigma), 1);
    a = fmin(a, ALS_U_MAX / (double)fan_in / (maxg * maxw));
    a = fmin(a, ALS_LAYER_MAX);
    a = fmin(a, ALS_TOTAL_MAX / s);
    return exp2(floor(log2(a)));
}

/* ------------------------------------------------------------------ the table */
static size_t slot_of(const AlsScales *m, const void *key) {
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (size_t)(m->cap - 1);
}

void als_scales_clear(AlsScales *m) {
    if (m->key) memset(m->key, 0, (size_t)m->cap * sizeof *m->key);
    m->n = 0;
}

void als_scales_free(AlsScales *m) {
    dq_free(m->key), dq_free(m->scale);
    memset(m, 0, sizeof *m);
}

double als_scale_of(const AlsScales *m, const void *key) {
    if (!m->cap) return 0;
    for (size_t i = slot_of(m, key);; i = (i + 1) & (size_t)(m->cap - 1)) {
        if (!m->key[i]) return 0;
        if (m->key[i] == key) return m->scale[i];
    }
}

void als_scale_set(AlsScales *m, const void *key, double scale) {
    if (2 * (m->n + 1) > m->cap) {  // grow (and rehash) at half full
        AlsScales big = {.cap = m->cap ? 2 * m->cap : 1024};
        big.key = dq_calloc((size_t)big.cap, sizeof *big.key);
        big.scale = dq_malloc((size_t)big.cap * sizeof *big.scale);
        for (int i = 0; i < m->cap; i++)
            if (m->key[i]) als_scale_set(&big, m->key[i], m->scale[i]);
        als_scales_free(m);
        *m = big;
    }
    size_t i = slot_of(m, key);
    while (m->key[i] && m->key[i] != key) i = (i + 1) & (size_t)(m->cap - 1);
    if (!m->key[i]) m->key[i] = key, m->n++;
    m->scale[i] = scale;
}
