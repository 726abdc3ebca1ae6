/* test_half.c — binary16 against its definition: every one of the 2^16 halves, the midpoints
 * between neighbours (ties to even), the boundary floats (subnormals, the smallest and largest
 * halves, overflow to infinity), NaN; the fast rounding path against the scalar one. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"
#include "core/rng.h"
#include "helpers.h"

static void setup(void) { test_setup_quiet(); }
static void teardown(void) { test_teardown(); }

/* The value of half bits h from the definition: (−1)^s · 2^(e−15) · (1 + m/1024), or for e = 0
 * (−1)^s · 2^−14 · m/1024, in double. */
static double half_value(unsigned h) {
    unsigned s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m / 1024.0, -14) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1 + m / 1024.0, (int)e - 15);
    return s ? -v : v;
}

static bool is_nan_half(unsigned h) { return ((h >> 10) & 31) == 31 && (h & 1023); }

Test(half, every_half_converts_exactly_both_ways, .init = setup, .fini = teardown) {
    for (unsigned h = 0; h < 65536; h++) {
        float f = half_to_float((uint16_t)h);
        if (is_nan_half(h)) {
            cr_assert(isnan(f), "0x%04x is NaN", h);
            cr_assert(is_nan_half(half_from_float(f)), "NaN stays NaN");
            continue;
        }
        cr_assert_eq((double)f, half_value(h), "0x%04x: %a, defined %a", h, (double)f, half_value(h));
        cr_assert_eq(half_from_float(f), h, "0x%04x back: 0x%04x", h, half_from_float(f));
        cr_assert_eq(signbit(f) != 0, (h >> 15) != 0, "the sign of 0x%04x (−0 included)", h);
    }
}

Test(half, midpoints_round_to_even_and_neighbours_to_nearest, .init = setup, .fini = teardown) {
    for (unsigned h = 0; h < 0x7bff; h++) {  // every pair of adjacent finite positive halves
        double lo = half_value(h), hi = half_value(h + 1), mid = (lo + hi) / 2;
        float fm = (float)mid;  // exact: a half's midpoint needs 12 significant bits
        cr_assert_eq((double)fm, mid);
        unsigned even = (h & 1) ? h + 1 : h;
        cr_assert_eq(half_from_float(fm), even, "midpoint of 0x%04x and 0x%04x", h, h + 1);
        cr_assert_eq(half_from_float(-fm), even | 0x8000, "and its negative");
        cr_assert_eq(half_from_float(nextafterf(fm, 0)), h, "just under the midpoint of 0x%04x", h);
        cr_assert_eq(half_from_float(nextafterf(fm, INFINITY)), h + 1, "just over the midpoint of 0x%04x", h);
    }
}

Test(half, boundaries_overflow_underflow_and_subnormals, .init = setup, .fini = teardown) {
    cr_assert_eq(half_to_float(half_from_float(HALF_MAX)), HALF_MAX);
    cr_assert_eq(half_from_float(65519.99f), 0x7bff, "under 65520: the largest half");
    cr_assert_eq(half_from_float(65520.0f), 0x7c00, "65520 is the midpoint to 2^16: ties to even, infinity");
    cr_assert_eq(half_from_float(-1e9f), 0xfc00);
    cr_assert_eq(half_from_float(INFINITY), 0x7c00);
    cr_assert_eq(half_from_float(HALF_MIN_NORMAL), 0x0400);
    cr_assert_eq(half_from_float(nextafterf(HALF_MIN_NORMAL, 0)), 0x0400, "rounds up to the smallest normal");
    cr_assert_eq(half_from_float(HALF_MIN_SUBNORMAL), 0x0001);
    cr_assert_eq(half_from_float(ldexpf(1, -25)), 0x0000, "2^−25: the tie goes to even, zero");
    cr_assert_eq(half_from_float(nextafterf(ldexpf(1, -25), 1)), 0x0001, "just over: the smallest subnormal");
    cr_assert_eq(half_from_float(ldexpf(3, -26)), 0x0001, "0.75 of the smallest subnormal rounds up");
    cr_assert_eq(half_from_float(ldexpf(3, -25)), 0x0002, "1.5 of it: a tie, to even 2");
    cr_assert_eq(half_from_float(1e-30f), 0x0000);
    cr_assert_eq(half_from_float(-1e-30f), 0x8000, "negative underflow keeps the sign");
    cr_assert_eq(half_from_float(ldexpf(1, -130)), 0x0000, "a float subnormal");
    cr_assert(isnan(half_to_float(half_from_float(NAN))));
    float x[6] = {1e-8f, -2e-8f, 7e4f, -1e5f, 1.0f, 0.0f};
    HalfCounts c = {0};
    half_round_ref(x, 6, &c);
    cr_assert_eq(c.underflow, 2, "1e−8 and −2e−8 (under 2^−25 ≈ 2.98e−8) underflow");
    cr_assert_eq(c.overflow, 2);
    cr_assert_eq(x[4], 1.0f);
    cr_assert(x[0] == 0 && signbit(x[1]) && isinf(x[2]) && x[3] < 0 && isinf(x[3]));
}

Test(half, fast_rounding_equals_the_scalar_reference, .init = setup, .fini = teardown) {
    Rng rng;
    rng_seed(&rng, 21, rng_stream(RNG_STREAM_FREE, 0));
    size_t n = 100003;  // not a multiple of the vector width
    float *a = dq_malloc(n * sizeof *a), *b = dq_malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = rng_u32(&rng);  // every float pattern: subnormals, huge, NaN, ±inf
        if (i % 3 == 0) bits = (bits & 0x807fffffu) | ((uint32_t)(100 + rng_below(&rng, 60)) << 23);  // near the half range
        memcpy(&a[i], &bits, sizeof bits);
    }
    const float special[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-30f, -1e-30f, 7e4f, -7e4f};
    for (size_t k = 0; k < sizeof special / sizeof *special; k++) a[1000 + 7 * k] = special[k];  // counted or not
    memcpy(b, a, n * sizeof *a);
    HalfCounts ca = {0}, cb = {0};
    half_round(a, n, &ca);
    half_round_ref(b, n, &cb);
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&a[i], &b[i], sizeof *a) == 0 || (isnan(a[i]) && isnan(b[i])), "value %zu: %a vs %a", i,
                  (double)a[i], (double)b[i]);
    cr_assert_eq(ca.underflow, cb.underflow);
    cr_assert_eq(ca.overflow, cb.overflow);
    cr_assert(cb.underflow > 0 && cb.overflow > 0, "the case covers both");
    dq_free(a), dq_free(b);
}
