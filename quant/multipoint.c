/* multipoint.c — the best single low-bit point by an exact sweep over the scale, greedy points,
 * and the allocation of points by output error (see multipoint.h). */
#include "multipoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct Event {  // at scale a, element i's code grows by one step in magnitude
    double a;
    size_t i;
} Event;

static int by_scale_descending(const void *x, const void *y) {
    double a = ((const Event *)x)->a, b = ((const Event *)y)->a;
    return (a < b) - (a > b);
}

/* The best positive scale for t: sweeping a from +∞ down, each code changes one step at a time
 * (t_i/a crossing m + ½), and in each interval the best scale for that interval's codes is
 * S1/S2 with S1 = ⟨t, q⟩, S2 = ⟨q, q⟩, leaving ‖t‖² − S1²/S2. The best over all intervals is
 * the exact optimum (the optimal pair's codes are some interval's). Returns that error and
 * writes a ≥ 0 and the codes. */
static double sweep(const float *t, size_t n, int bits, double *a_out, int8_t *q) {
    int qp = (1 << (bits - 1)) - 1, qn = 1 << (bits - 1);
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) ne += t[i] > 0 ? (size_t)qp : t[i] < 0 ? (size_t)qn : 0;
    Event *ev = dq_malloc((ne ? ne : 1) * sizeof *ev);
    ne = 0;
    double tt = 0;
    for (size_t i = 0; i < n; i++) {
        tt += (double)t[i] * t[i];
        int steps = t[i] > 0 ? qp : t[i] < 0 ? qn : 0;
        for (int m = 0; m < steps; m++) ev[ne++] = (Event){.a = fabs((double)t[i]) / (m + 0.5), .i = i};
    }
    qsort(ev, ne, sizeof *ev, by_scale_descending);
    double s1 = 0, s2 = 0, best = tt, best_a = 0;
    size_t best_k = 0;  // events applied in the best interval
    int *code = dq_calloc(n, sizeof *code);
    for (size_t k = 0; k < ne; k++) {
        size_t i = ev[k].i;
        int d = t[i] > 0 ? 1 : -1;
        s1 += (double)t[i] * d, s2 += 2.0 * code[i] * d + 1;
        code[i] += d;
        if (s2 > 0 && s1 > 0 && tt - s1 * s1 / s2 < best) best = tt - s1 * s1 / s2, best_a = s1 / s2, best_k = k + 1;
    }
    memset(code, 0, n * sizeof *code);  // replay up to the best interval
    for (size_t k = 0; k < best_k; k++) code[ev[k].i] += t[ev[k].i] > 0 ? 1 : -1;
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)code[i];
    dq_free(ev), dq_free(code);
    *a_out = best_a;
    return fmax(best, 0);
}

double mp_fit_point(const float *r, size_t n, int bits, float *a, int8_t *q) {
    DQ_CHECK(bits >= 2 && bits <= 8);
    float *neg = dq_malloc(n * sizeof *neg);
    int8_t *qneg = dq_malloc(n);
    for (size_t i = 0; i < n; i++) neg[i] = -r[i];
    double ap, an, ep = sweep(r, n, bits, &ap, q), en = sweep(neg, n, bits, &an, qneg);
    if (en < ep) {  // r ≈ (−a)·q: the asymmetric range used the other way round
        memcpy(q, qneg, n);
        *a = (float)-an;
    } else {
        *a = (float)ap;
    }
    double e = 0;  // the error of the float scale actually returned
    for (size_t i = 0; i < n; i++) e += ((double)r[i] - (double)*a * q[i]) * ((double)r[i] - (double)*a * q[i]);
    dq_free(neg), dq_free(qneg);
    return e;
}

void mp_approximate(const float *w, size_t n, int bits, int points, float *approx, double *err) {
    float *r = dq_malloc(n * sizeof *r), a;
    int8_t *q = dq_malloc(n);
    memcpy(r, w, n * sizeof *r);
    memset(approx, 0, n * sizeof *approx);
    for (int p = 0; p < points; p++) {
        mp_fit_point(r, n, bits, &a, q);
        double e = 0;
        for (size_t i = 0; i < n; i++) {
            approx[i] += a * q[i];
            r[i] = w[i] - approx[i];
            e += (double)r[i] * r[i];
        }
        if (err) err[p] = e;
    }
    dq_free(r), dq_free(q);
}

/* dᵀ·C·d for the n-vector d. */
static double quad(const double *C, const float *d, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double row = 0;
        for (size_t j = 0; j < n; j++) row += C[i * n + j] * d[j];
        s += d[i] * row;
    }
    return s;
}

void mp_allocate(const float *w, int k, size_t n, size_t stride, size_t step, const double *C, size_t C_stride,
                 int bits, int budget, float *approx, int *points) {
    mp_allocate_points(w, k, n, stride, step, C, C_stride, bits, budget, approx, points, NULL, NULL, 0);
}

void mp_allocate_points(const float *w, int k, size_t n, size_t stride, size_t step, const double *C, size_t C_stride,
                        int bits, int budget, float *approx, int *points, float *scales, int8_t *codes, size_t plane) {
    DQ_CHECK(k > 0 && budget >= k);
    if (scales) memset(scales, 0, (size_t)MP_MAX_POINTS * k * sizeof *scales);
    if (codes) memset(codes, 0, MP_MAX_POINTS * plane);
    float *wc = dq_malloc((size_t)k * n * sizeof *wc), *ac = dq_calloc((size_t)k * n, sizeof *ac);
    float *r = dq_malloc(n * sizeof *r), a;
    double *e = dq_malloc((size_t)k * sizeof *e);
    int8_t *q = dq_malloc(n);
    for (int c = 0; c < k; c++) {
        for (size_t i = 0; i < n; i++) wc[(size_t)c * n + i] = w[(size_t)c * stride + i * step];
        points[c] = 0;
    }
    for (int round = 0; round < budget; round++) {
        int c = round < k ? round : -1;  // one point each first, then where the output error is largest
        if (c < 0) {
            double worst = 0;
            for (int j = 0; j < k; j++)
                if (points[j] < MP_MAX_POINTS && e[j] > worst) worst = e[j], c = j;
            if (c < 0) break;  // nothing left to gain
        }
        float *wj = wc + (size_t)c * n, *aj = ac + (size_t)c * n;
        for (size_t i = 0; i < n; i++) r[i] = wj[i] - aj[i];
        mp_fit_point(r, n, bits, &a, q);
        for (size_t i = 0; i < n; i++) aj[i] += a * q[i], r[i] = wj[i] - aj[i];
        if (scales) scales[(size_t)points[c] * k + c] = a;
        if (codes)
            for (size_t i = 0; i < n; i++) codes[(size_t)points[c] * plane + (size_t)c * stride + i * step] = q[i];
        points[c]++;
        e[c] = quad(C + (size_t)c * C_stride, r, n);
    }
    for (int c = 0; c < k; c++)
        for (size_t i = 0; i < n; i++) approx[(size_t)c * stride + i * step] = ac[(size_t)c * n + i];
    dq_free(wc), dq_free(ac), dq_free(r), dq_free(e), dq_free(q);
}
