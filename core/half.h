/* half.h — IEEE 754 binary16 ("fp16"), for emulating half-precision training on a CPU: values
 * are stored as float and rounded to the nearest half (ties to even) where a half-precision
 * engine would store them, which reproduces its underflow and overflow exactly.
 *
 *   binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits
 *   largest finite 65504; smallest normal 2^−14 ≈ 6.1e−5; smallest subnormal 2^−24 ≈ 6.0e−8
 *   a float of magnitude ≥ 65520 rounds to infinity, ≤ 2^−25 (exactly: ties to even) to zero
 *
 * The scalar conversions are exact and portable; half_round uses the F16C instructions when the
 * build targets them (same results: the test compares both on every half and on boundary floats).
 */
#ifndef DQ_HALF_H
#define DQ_HALF_H

#include <stddef.h>
#include <stdint.h>

#define HALF_MAX 65504.0f
#define HALF_MIN_NORMAL 6.103515625e-05f      // 2^−14
#define HALF_MIN_SUBNORMAL 5.9604644775390625e-08f  // 2^−24

uint16_t half_from_float(float f);  /* round to nearest, ties to even; NaN stays NaN */
float half_to_float(uint16_t h);    /* exact */

/* What rounding a block did: values that were finite and nonzero and became 0 (underflow),
 * and finite values that became ±inf (overflow). */
typedef struct HalfCounts {
    size_t underflow, overflow;
} HalfCounts;

/* Rounds x[0..n) to the nearest half in place (as float); adds what happened to *c (may be NULL). */
void half_round(float *x, size_t n, HalfCounts *c);
/* The same with the scalar conversions only (the reference the fast path is tested against). */
void half_round_ref(float *x, size_t n, HalfCounts *c);

#endif
