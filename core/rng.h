/* rng.h — a seedable generator that gives the same numbers on every machine.
 *
 * PCG32 (O'Neill 2014, "PCG-XSH-RR 64/32"): a 64-bit linear congruential state advanced by
 *     state = state * 6364136223846793005 + inc        (inc odd, chosen by the stream)
 * and a 32-bit output: xorshift the high bits, then rotate by the top 5 bits. Only integer
 * arithmetic, so the stream is identical everywhere.
 *
 * Derived numbers are made exactly reproducible too:
 *   uniform  — the top 24 bits of one output scaled by 2^-24, in [0, 1);
 *   below(n) — unbiased integer in [0, n) by rejection (Lemire's multiply-shift);
 *   normal   — Marsaglia's polar method in double with our own log (rng.c), compiled without
 *              FMA contraction, so no libm difference can change a bit.
 */
#ifndef DQ_RNG_H
#define DQ_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Streams: every consumer of random numbers draws from its own PCG stream, named here, so two
 * consumers given the same seed never see the same numbers. A stream id is the kind in the top
 * 16 bits and an index (an epoch, …) in the low 48: ids of different kinds never meet. */
typedef enum {
    RNG_STREAM_FREE,        // tests, benchmarks and synthetic data (index: anything)
    RNG_STREAM_INIT,        // weight initialisation (index 0)
    RNG_STREAM_SHUFFLE,     // the order of the examples in an epoch (index: epoch)
    RNG_STREAM_AUGMENT,     // crops and flips of an epoch (index: epoch)
    RNG_STREAM_DROPOUT,     // dropout masks of an epoch (index: epoch)
    RNG_STREAM_GRADCHECK,   // the gradient checker's positions and output weights (index 0)
    RNG_STREAM_ALLOC,       // mixed-precision allocators: probe vectors, searches (index: sample)
    RNG_STREAM_KINDS
} RngStreamKind;

uint64_t rng_stream(RngStreamKind kind, uint64_t index);

typedef struct Rng {
    uint64_t state;      // LCG state
    uint64_t inc;        // stream increment (odd)
    bool has_spare;      // the polar method makes normals in pairs
    double spare;        // the second one
} Rng;

void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *r);
float rng_uniform(Rng *r);                       /* [0, 1) */
float rng_uniform_range(Rng *r, float lo, float hi);
uint32_t rng_below(Rng *r, uint32_t n);          /* [0, n), n >= 1 */
double rng_normal(Rng *r);                       /* mean 0, std 1 */
void rng_shuffle(Rng *r, int *a, size_t n);      /* Fisher–Yates */
void rng_fill_uniform(Rng *r, float *x, size_t n, float lo, float hi);
void rng_fill_normal(Rng *r, float *x, size_t n, float mean, float std);
/* The log used by rng_normal, exposed for its test. x > 0. */
double rng_log(double x);

#endif
