/* knapsack.c — exact multiple-choice knapsack for bit allocation (see knapsack.h). */
#include "knapsack.h"

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

static long long gcd_ll(long long a, long long b) {
    while (b) {
        long long t = a % b;
        a = b, b = t;
    }
    return a;
}

bool knapsack_allocate(int n, const long long *size, int b_min, int b_max, const double *cost, long long budget,
                       size_t max_table, int *bits_out, char *err, size_t es) {
    DQ_CHECK(n > 0 && b_min >= 0 && b_max >= b_min && b_max - b_min < 256);
    int choices = b_max - b_min + 1;
    long long floor_sum = 0, g = 0;
    for (int l = 0; l < n; l++) {
        DQ_CHECK(size[l] > 0);
        floor_sum += size[l] * b_min, g = gcd_ll(size[l], g);
    }
    if (budget < floor_sum) {
        snprintf(err, es, "the budget (%lld) is below every layer at %d bits (%lld)", budget, b_min, floor_sum);
        return false;
    }
    // The extra bits above b_min, in units of g: layer l's e extra bits weigh e·size_l/g units.
    long long cap = (budget - floor_sum) / g, most = 0;
    for (int l = 0; l < n; l++) most += size[l] / g * (choices - 1);
    if (cap > most) cap = most;  // more budget than every layer at b_max can use
    size_t width = (size_t)cap + 1;
    if (width > max_table / (size_t)n) {
        snprintf(err, es, "the allocation table needs %zu × %zu bytes (more than %zu)", (size_t)n, width, max_table);
        return false;
    }
    // best[c]: the least cost of the layers so far with at most c units of extra bits
    double *best = dq_malloc(width * sizeof *best), *next = dq_malloc(width * sizeof *next);
    uint8_t *pick = dq_malloc((size_t)n * width);  // pick[l·width + c]: layer l's extra bits at c
    for (size_t c = 0; c < width; c++) best[c] = 0;
    for (int l = 0; l < n; l++) {
        long long w = size[l] / g;
        const double *cl = cost + (size_t)l * (size_t)choices;
        for (size_t c = 0; c < width; c++) {
            double v = best[c] + cl[0];
            int e_best = 0;
            for (int e = 1; e < choices && (long long)c >= e * w; e++) {
                double t = best[c - (size_t)(e * w)] + cl[e];
                if (t < v) v = t, e_best = e;
            }
            next[c] = v, pick[(size_t)l * width + c] = (uint8_t)e_best;
        }
        double *t = best;
        best = next, next = t;
    }
    size_t c = width - 1;
    for (int l = n - 1; l >= 0; l--) {
        int e = pick[(size_t)l * width + c];
        bits_out[l] = b_min + e;
        c -= (size_t)(e * (size[l] / g));
    }
    dq_free(best), dq_free(next), dq_free(pick);
    return true;
}
