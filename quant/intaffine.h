/* intaffine.h — codes by arithmetic where the thresholds allow it, exactly.
 *
 * A codes epilogue's code is the number of its integer thresholds that v = s·acc reaches. Where
 * the next quantizer's levels are uniform (8-bit layers, min/max, LSQ, DDQ snapped to the grid)
 * those thresholds lie on a line, and the count is one multiply-add and a floor:
 *
 *     code(v) = clamp(floor(fma(v, m, e)), lo, hi)         (in double)
 *
 * Every step of it is monotone in v, so it equals the count everywhere as soon as it equals it at
 * each threshold t and at t − 1: intaffine_fit tries a line and checks exactly that, per channel.
 * Where no line is exact (learned levels with a kink at zero, thresholds rounded from float
 * levels finer than their own precision) a line within one code of the count everywhere (the
 * same check, off by at most one) still saves most of the work: one comparison with the
 * threshold above and one with the threshold below settle it — only the one above where the line
 * could be lowered to never exceed the count. The stored byte is then
 * code·kstep + kbase when the quantizer's integer values are evenly spaced, else a table lookup.
 *
 * The same line in float (intaffine_code_f: 16 lanes to a vector where double has 8) is taken
 * wherever it passes the same check as the double one: float's conversion of v, its fma and its
 * floor are monotone too, so the check at the thresholds proves it just as well.
 */
#ifndef DQ_INTAFFINE_H
#define DQ_INTAFFINE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct IAffine {
    bool ok;              // every channel's line is within one code: the kernels may use it
    bool exact;           // every channel's line is exact (no comparisons needed)
    bool below;           // every channel's line is exact or one below the count at most (one comparison)
    bool stepped;         // byte = code·kstep + kbase; otherwise bytes[code]
    int kstep, kbase;
    int32_t bytes[256];   // k + zero of each code
    uint8_t bytes16[16];  // the same as bytes (codes past the last: the last), for a 16-byte lookup
    uint8_t bytes256[256];  // the same as bytes, for byte permutes (vpermb) where there are many
    double *m, *e;        // (channels) the line per channel
    double *lo, *hi;      // (channels) the codes of thresholds always / never reached
    bool f32;             // the float line below passes the same check on every channel
    float *mf, *ef, *lof, *hif;  // (channels) m, e, lo, hi rounded to float
} IAffine;

/* The formula (the kernels' vector forms do the same operations in the same order). */
static inline int intaffine_code(int32_t v, double m, double e, double lo, double hi) {
    double f = floor(fma((double)v, m, e));
    return (int)(f < lo ? lo : f > hi ? hi : f);
}

/* The formula in float (the float kernels' operations, in their order). */
static inline int intaffine_code_f(int32_t v, float m, float e, float lo, float hi) {
    float f = floorf(fmaf((float)v, m, e));
    return (int)(f < lo ? lo : f > hi ? hi : f);
}

/* The count of the nt ascending thresholds thr that v reaches, from the line's code (within one). */
static inline int intaffine_settle(int code, int32_t v, const int32_t *thr, int nt) {
    if (code < nt && thr[code] <= v) return code + 1;
    if (code > 0 && thr[code - 1] > v) return code - 1;
    return code;
}

/* Fit and check the line of each of `channels` rows of nt ascending thresholds (thr, row-major;
 * INT32_MIN: always reached, INT32_MAX: never), and the bytes of the quantizer's integer values k
 * (n = nt + 1 of them) plus zero. a->ok false when any channel or the bytes do not fit. */
void intaffine_fit(IAffine *a, const int32_t *thr, int channels, int nt, const int16_t *k, int zero);
void intaffine_free(IAffine *a);

#endif
