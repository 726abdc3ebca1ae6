/* clock.c — see clock.h. */
#include "clock.h"

#include <time.h>

double clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double clock_core_hz(void) {
    double best = 0;
    for (int round = 0; round < 20; round++) {
        unsigned long long x = 1, iters = 20000000;
        double t0 = clock_seconds();
#if defined(__x86_64__)
        for (unsigned long long i = 0; i < iters; i++) __asm__ volatile("add $1, %0" : "+r"(x));
#elif defined(__aarch64__)
        for (unsigned long long i = 0; i < iters; i++) __asm__ volatile("add %0, %0, #1" : "+r"(x));
#else
        return 0;
#endif
        double t = clock_seconds() - t0;
        if (x > 0 && iters / t > best) best = iters / t;
    }
    return best;
}
