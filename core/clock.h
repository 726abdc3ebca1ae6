/* clock.h — wall-clock seconds from a monotonic clock, for timing (never for results). */
#ifndef DQ_CLOCK_H
#define DQ_CLOCK_H

double clock_seconds(void);

#endif
