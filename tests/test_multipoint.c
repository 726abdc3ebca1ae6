/* test_multipoint.c — multipoint quantization: the single best point against brute force on tiny
 * cases, the greedy error falling with every point, and points spent where the output error is. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "helpers.h"
#include "quant/multipoint.h"

/* min over all codes q ∈ [−2^(b−1), 2^(b−1) − 1]^n and all a of ‖r − a·q‖² (a = ⟨r,q⟩/⟨q,q⟩). */
static double brute_force(const float *r, int n, int bits) {
    int lo = -(1 << (bits - 1)), span = 1 << bits, q[8];
    long combos = 1;
    double best = INFINITY;
    for (int i = 0; i < n; i++) combos *= span;
    for (long c = 0; c < combos; c++) {
        long x = c;
        double rq = 0, qq = 0, rr = 0;
        for (int i = 0; i < n; i++, x /= span) q[i] = lo + (int)(x % span), rq += (double)r[i] * q[i], qq += (double)q[i] * q[i];
        for (int i = 0; i < n; i++) rr += (double)r[i] * r[i];
        double e = qq > 0 ? rr - rq * rq / qq : rr;
        best = fmin(best, e);
    }
    return best;
}

Test(multipoint, one_point_is_the_brute_force_optimum, .init = test_setup, .fini = test_teardown) {
    Rng rng;
    rng_seed(&rng, 41, rng_stream(RNG_STREAM_FREE, 0));
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + (int)rng_below(&rng, 4), bits = 2 + (int)rng_below(&rng, 2);
        float r[4], a;
        int8_t q[4];
        for (int i = 0; i < n; i++) r[i] = 2 * rng_uniform(&rng) - 1;
        if (trial % 5 == 0) r[0] = 0;  // zeros, and one dominant value
        if (trial % 7 == 0) r[n - 1] *= 20;
        double e = mp_fit_point(r, (size_t)n, bits, &a, q), want = brute_force(r, n, bits);
        double scale = 0;
        for (int i = 0; i < n; i++) scale += (double)r[i] * r[i];
        cr_assert(fabs(e - want) <= 1e-6 * scale + 1e-12, "trial %d (n %d, %d bits): %g, brute force %g", trial, n, bits, e, want);
        for (int i = 0; i < n; i++) cr_assert(q[i] >= -(1 << (bits - 1)) && q[i] <= (1 << (bits - 1)) - 1);
    }
}

Test(multipoint, greedy_error_falls_with_every_point, .init = test_setup, .fini = test_teardown) {
    Rng rng;
    rng_seed(&rng, 42, rng_stream(RNG_STREAM_FREE, 0));
    float w[97], approx[97];
    double err[6], norm = 0;
    for (int i = 0; i < 97; i++) w[i] = (float)rng_normal(&rng), norm += (double)w[i] * w[i];
    mp_approximate(w, 97, 3, 6, approx, err);
    for (int p = 0; p < 6; p++) cr_assert(err[p] < (p ? err[p - 1] : norm), "point %d: %g after %g", p + 1, err[p], p ? err[p - 1] : norm);
    cr_assert(err[5] < 1e-3 * norm, "six 3-bit points come close: %g of %g", err[5], norm);
    double e = 0;
    for (int i = 0; i < 97; i++) e += ((double)w[i] - approx[i]) * ((double)w[i] - approx[i]);
    cr_assert(fabs(e - err[5]) <= 1e-9 * norm, "the approximation is the sum of the points");
}

Test(multipoint, points_go_where_the_output_error_is, .init = test_setup, .fini = test_teardown) {
    // 4 channels of 16 weights laid out as a (16, 4) matrix (channel c at column c), C = identity
    // except channel 2's inputs, 100× larger: its output error dominates, it gets the extra points
    int k = 4;
    size_t n = 16;
    float w[64], approx[64], one[64];
    Rng rng;
    rng_seed(&rng, 43, rng_stream(RNG_STREAM_FREE, 0));
    for (int i = 0; i < 64; i++) w[i] = (float)rng_normal(&rng);
    double *C = dq_calloc((size_t)k * n * n, sizeof *C);
    for (int c = 0; c < k; c++)
        for (size_t i = 0; i < n; i++) C[(size_t)c * n * n + i * n + i] = c == 2 ? 100 : 1;
    int points[4], base[4];
    mp_allocate(w, k, n, 1, (size_t)k, C, n * n, 2, k, one, base);
    for (int c = 0; c < k; c++) cr_assert_eq(base[c], 1);
    mp_allocate(w, k, n, 1, (size_t)k, C, n * n, 2, k + 3, approx, points);
    cr_assert_eq(points[0] + points[1] + points[2] + points[3], k + 3, "the whole budget");
    cr_assert(points[2] >= 3, "the channel whose output error is 100x: %d %d %d %d", points[0], points[1], points[2], points[3]);
    for (int c = 0; c < k; c++) {  // no channel's output error grew, the heavy one's fell
        double e1 = 0, e2 = 0;
        for (size_t i = 0; i < n; i++) {
            double d1 = w[i * k + c] - one[i * k + c], d2 = w[i * k + c] - approx[i * k + c];
            e1 += d1 * d1 * (c == 2 ? 100 : 1), e2 += d2 * d2 * (c == 2 ? 100 : 1);
        }
        cr_assert(e2 <= e1 + 1e-9, "channel %d: %g after %g", c, e2, e1);
        if (c == 2) cr_assert(e2 < 0.5 * e1);
    }
    dq_free(C);
}
