/* rng.c — PCG32 and reproducible derived distributions.
 * This file is compiled with -ffp-contract=off (see Makefile): no fused multiply-adds may change
 * the rounding of rng_log or rng_normal from one machine to another. */
#include "rng.h"

#include <math.h>

#include "error.h"

uint64_t rng_stream(RngStreamKind kind, uint64_t index) {
    DQ_CHECK(kind >= 0 && kind < RNG_STREAM_KINDS && index < ((uint64_t)1 << 48));
    return (uint64_t)kind << 48 | index;
}

void rng_seed(Rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1) | 1u;
    r->has_spare = false;
    r->spare = 0;
    rng_u32(r);
    r->state += seed;
    rng_u32(r);
}

uint32_t rng_u32(Rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float rng_uniform(Rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float rng_uniform_range(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

uint32_t rng_below(Rng *r, uint32_t n) {
    DQ_CHECK(n >= 1);
    uint64_t m = (uint64_t)rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* ln(x) = e·ln2 + 2·atanh(s), with x = m·2^e, m in [sqrt(1/2), sqrt(2)), s = (m−1)/(m+1).
 * |s| <= 0.1716, so the odd series to s^21 is exact to double rounding. */
double rng_log(double x) {
    DQ_CHECK(x > 0);
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2;
        e -= 1;
    }
    double s = (m - 1) / (m + 1), z = s * s;
    double p = 1.0 / 21;
    for (int k = 19; k >= 1; k -= 2) p = 1.0 / k + z * p;
    return e * 0.69314718055994530942 + 2 * s * p;
}

static double uniform_pm1(Rng *r) {  // (-1, 1) from 53 bits
    uint64_t hi = rng_u32(r);  // two statements: argument evaluation order is unspecified
    uint64_t lo = rng_u32(r);
    uint64_t bits = (hi << 21) ^ (lo >> 11);
    return (double)bits * (2.0 / 9007199254740992.0) - 1.0;
}

double rng_normal(Rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u, v, s;
    do {
        u = uniform_pm1(r);
        v = uniform_pm1(r);
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * rng_log(s) / s);  // sqrt is correctly rounded (IEEE 754)
    r->spare = v * f;
    r->has_spare = true;
    return u * f;
}

void rng_shuffle(Rng *r, int *a, size_t n) {
    DQ_CHECK(n <= UINT32_MAX);
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(r, (uint32_t)i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void rng_fill_uniform(Rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = rng_uniform_range(r, lo, hi);
}

void rng_fill_normal(Rng *r, float *x, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)rng_normal(r);
}
