/* half.c — binary16 conversions and rounding (see half.h). */
#include "half.h"

#include <math.h>
#include <string.h>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

uint16_t half_from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));  // inf; NaN stays quiet NaN
    int e = (int)exp - 127 + 15;  // the half's biased exponent
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {  // a subnormal half (or zero): m·2^−24 with m = full·2^(e−14)
        if (e < -10) return (uint16_t)sign;  // under 2^−25: rounds to zero
        uint32_t full = man | 0x800000u, shift = (uint32_t)(14 - e);
        uint32_t m = full >> shift, rem = full & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (m & 1))) m++;  // a carry into the exponent is right
        return (uint16_t)(sign | m);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;  // may carry up to the exponent, or to inf
    return (uint16_t)h;
}

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, x;
    if (exp == 0x1f) {
        x = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {  // zero or subnormal: exact in float
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static void count(float before, float after, HalfCounts *c) {
    if (!c || !isfinite(before)) return;
    c->underflow += before != 0 && after == 0;
    c->overflow += isinf(after) != 0;  // (isinf may return −1 for −inf)
}

void half_round_ref(float *x, size_t n, HalfCounts *c) {
    for (size_t i = 0; i < n; i++) {
        float r = half_to_float(half_from_float(x[i]));
        count(x[i], r, c);
        x[i] = r;
    }
}

void half_round(float *x, size_t n, HalfCounts *c) {
    size_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    const __m256 zero = _mm256_setzero_ps(), inf = _mm256_set1_ps(INFINITY), sign = _mm256_set1_ps(-0.0f);
    size_t under = 0, over = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (c) {  // count()'s tests as lane masks: finite before (NaN compares false), then 0 or ±inf after
            __m256 finite = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), inf, _CMP_LT_OQ);
            __m256 lost = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_NEQ_OQ), _mm256_cmp_ps(r, zero, _CMP_EQ_OQ));
            __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(sign, r), inf, _CMP_EQ_OQ);
            under += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_and_ps(finite, lost)));
            over += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_and_ps(finite, big)));
        }
        _mm256_storeu_ps(x + i, r);
    }
    if (c) c->underflow += under, c->overflow += over;
#endif
    half_round_ref(x + i, n - i, c);
}
