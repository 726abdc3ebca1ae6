/* clock.h — wall-clock seconds from a monotonic clock, for timing (never for results). */
#ifndef DQ_CLOCK_H
#define DQ_CLOCK_H

double clock_seconds(void);

/* The core's cycles per second, from chains of dependent adds (one per cycle): the fastest of 20
 * short chains, so that a chain preempted or sharing its core only reads slower. 0 where the
 * architecture is not known (x86-64 and ARM64 are). For benchmarks' peak columns. */
double clock_core_hz(void);

#endif
