/* intaffine.c — fitting and checking the line of a codes epilogue (see intaffine.h). */
#include "intaffine.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* How many of the nt ascending thresholds are <= v, for v one of them (t) or just below (t − 1):
 * the first index of t's run, or the first index past it. */
static int count_at(const int32_t *thr, int nt, int j, bool below) {
    if (below) {
        while (j > 0 && thr[j - 1] == thr[j]) j--;
        return j;
    }
    while (j + 1 < nt && thr[j + 1] == thr[j]) j++;
    return j + 1;
}

/* The line's check: count − formula lies in [low, high] at every finite threshold and just below
 * it (both monotone: then everywhere); in double, or in float (f32). */
static bool line_check(const int32_t *thr, int nt, int j0, int j1, double m, double e, double lo, double hi, int low, int high,
                       bool f32) {
    if (!isfinite(m) || !isfinite(e) || (f32 && (!isfinite((float)m) || !isfinite((float)e)))) return false;
    for (int j = j0; j < j1; j++) {
        int c1 = f32 ? intaffine_code_f(thr[j], (float)m, (float)e, (float)lo, (float)hi) : intaffine_code(thr[j], m, e, lo, hi);
        int c0 = f32 ? intaffine_code_f(thr[j] - 1, (float)m, (float)e, (float)lo, (float)hi)
                     : intaffine_code(thr[j] - 1, m, e, lo, hi);
        int d1 = count_at(thr, nt, j, false) - c1, d0 = count_at(thr, nt, j, true) - c0;
        if (d1 < low || d1 > high || d0 < low || d0 > high) return false;
    }
    return true;
}

static bool line_holds(const int32_t *thr, int nt, int j0, int j1, double m, double e, double lo, double hi, int low, int high) {
    return line_check(thr, nt, j0, j1, m, e, lo, hi, low, high, false);
}

/* Whether channel c's line rounded to float is as good as a's kernels need (exact, at most one
 * below, or within one); the float arrays filled either way. */
static bool float_holds(IAffine *a, const int32_t *thr, int nt, int c) {
    a->mf[c] = (float)a->m[c], a->ef[c] = (float)a->e[c], a->lof[c] = (float)a->lo[c], a->hif[c] = (float)a->hi[c];
    int j0 = (int)a->lo[c], j1 = (int)a->hi[c];
    if (j1 == j0) return true;  // a constant code: m = 0
    int low = a->exact || a->below ? 0 : -1, high = a->exact ? 0 : 1;
    return line_check(thr, nt, j0, j1, a->m[c], a->e[c], a->lo[c], a->hi[c], low, high, true);
}

/* A line within one code: the least-squares line through the crossings thr[j] − ½, lowered by
 * half a code if that keeps it never above the count (then one comparison settles it: *below),
 * else as it is if it is within one either way. */
static bool fit_near(const int32_t *thr, int nt, int j0, int j1, double *m, double *e, double lo, double hi, bool *below) {
    int L = j1 - j0;
    double D = 1, c0 = thr[j0] - 0.5;
    if (L > 1) {
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int j = j0; j < j1; j++) {
            double x = j - j0, y = thr[j] - 0.5;
            sx += x, sy += y, sxx += x * x, sxy += x * y;
        }
        D = (L * sxy - sx * sy) / (L * sxx - sx * sx);
        c0 = (sy - D * sx) / L;
    }
    if (!(D > 0)) return false;
    *m = 1 / D, *e = j0 + 1 - c0 / D;
    static const double shifts[] = {0.5, 0.25, 0.75, 0, 1};
    for (int t = 0; t < 5; t++)
        if (line_holds(thr, nt, j0, j1, *m, *e - shifts[t], lo, hi, 0, 1)) {
            *e -= shifts[t], *below = true;
            return true;
        }
    *below = false;
    return line_holds(thr, nt, j0, j1, *m, *e, lo, hi, -1, 1);
}

/* One channel: the codes step at the finite thresholds j0..j1−1, so a line c(j) = c0 + (j − j0)·D
 * must cross j + 1 in (thr[j] − 1, thr[j]]. Which slopes allow that follows from every pair
 * i < j (c(j) − c(i) = (j − i)·D between thr[j] − thr[i] ∓ 1); the line takes the middle slope,
 * then the middle of the offsets it allows, and is checked as the kernels compute it. */
static bool fit_channel(const int32_t *thr, int nt, double *m, double *e, double *lo, double *hi, bool *exact, bool *below) {
    int j0 = 0, j1 = nt;
    while (j0 < nt && thr[j0] == INT32_MIN) j0++;
    while (j1 > j0 && thr[j1 - 1] == INT32_MAX) j1--;
    *lo = j0, *hi = j1;
    *exact = *below = true;
    if (j1 == j0) {  // a constant code
        *m = 0, *e = j0;
        return true;
    }
    *exact = false;
    double dlo = 0, dhi = INFINITY;  // the slope, strictly between
    for (int i = j0; i < j1; i++)
        for (int j = i + 1; j < j1; j++) {
            double span = (double)thr[j] - thr[i];
            dlo = fmax(dlo, (span - 1) / (j - i)), dhi = fmin(dhi, (span + 1) / (j - i));
        }
    if (!(dlo < dhi)) return fit_near(thr, nt, j0, j1, m, e, *lo, *hi, below);
    double D = isfinite(dhi) ? (dlo + dhi) / 2 : 1, clo = -INFINITY, chi = INFINITY;
    for (int j = j0; j < j1; j++) {
        clo = fmax(clo, thr[j] - 1 - (j - j0) * D), chi = fmin(chi, thr[j] - (j - j0) * D);
    }
    double c0 = (clo + chi) / 2;
    // floor((v − c0)/D + j0 + 1) = floor(v·m + e)
    double mt = 1 / D, et = j0 + 1 - c0 / D;
    if (!line_holds(thr, nt, j0, j1, mt, et, *lo, *hi, 0, 0)) return fit_near(thr, nt, j0, j1, m, e, *lo, *hi, below);
    *m = mt, *e = et, *exact = true;
    return true;
}

void intaffine_fit(IAffine *a, const int32_t *thr, int channels, int nt, const int16_t *k, int zero) {
    intaffine_free(a);
    int levels = nt + 1;
    a->kstep = k[1] - k[0];
    a->kbase = k[0] + zero;
    a->stepped = true;
    for (int j = 0; j < levels; j++) {
        a->bytes[j] = k[j] + zero;
        if (j > 0 && k[j] - k[j - 1] != a->kstep) a->stepped = false;
    }
    for (int j = 0; j < 16; j++) a->bytes16[j] = (uint8_t)a->bytes[j < levels ? j : levels - 1];
    for (int j = 0; j < 256; j++) a->bytes256[j] = (uint8_t)a->bytes[j < levels ? j : levels - 1];
    size_t n = (size_t)channels;
    a->m = dq_calloc(n, sizeof(double)), a->e = dq_calloc(n, sizeof(double));
    a->lo = dq_calloc(n, sizeof(double)), a->hi = dq_calloc(n, sizeof(double));
    a->exact = a->below = true;
    for (int c = 0; c < channels; c++) {
        bool exact, below;
        if (!fit_channel(thr + (size_t)c * nt, nt, &a->m[c], &a->e[c], &a->lo[c], &a->hi[c], &exact, &below)) {
            intaffine_free(a);
            return;
        }
        a->exact &= exact, a->below &= exact || below;
    }
    a->ok = true;
    a->mf = dq_calloc(n, sizeof(float)), a->ef = dq_calloc(n, sizeof(float));
    a->lof = dq_calloc(n, sizeof(float)), a->hif = dq_calloc(n, sizeof(float));
    a->f32 = true;
    for (int c = 0; c < channels; c++) a->f32 &= float_holds(a, thr + (size_t)c * nt, nt, c);
}

void intaffine_free(IAffine *a) {
    dq_free(a->m), dq_free(a->e), dq_free(a->lo), dq_free(a->hi);
    dq_free(a->mf), dq_free(a->ef), dq_free(a->lof), dq_free(a->hif);
    memset(a, 0, sizeof *a);
}
