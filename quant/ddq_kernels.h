/* ddq_kernels.h — DDQ's per-element kernels, internal to quant/ddq.c.
 *
 * The forward (each element to its nearest coarse value, its bin saved as one byte) and the
 * backward of the default case (clipped straight-through dx, the histogram of dy per bin that
 * the level gradients need, the two frontier gate signals), in plain C and with AVX-512 and
 * AVX2 paths chosen at build time. They read DdqTables, which ddq.c fills after every change of
 * levels or bits and ddq_tables_finish completes (register copies of the small tables, the
 * bucket table of the search). With `ref` (the tape's ref_kernels) the forward is the plain
 * binary search and ddq.c runs its generic backward: the specification that tests/test_ddq.c
 * compares these kernels against.
 */
#ifndef DQ_DDQ_KERNELS_H
#define DQ_DDQ_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddq.h"

enum { REG_THRESH, REG_COARSE, REG_PAIR, REG_MID, REG_LO, REG_HI, REG_TABLES };
#define DDQ_REG_MAX 64  // levels up to which the vector kernels keep the tables in registers

typedef struct DdqTables {
    int nc, m;                    // coarse values (2^b), merged bits
    float coarse[DDQ_FINE];       // v_j
    float thresh[DDQ_FINE + 1];   // nc − 1 decision thresholds, then +inf twice
    float child_mid[DDQ_FINE];    // per block: threshold between its two half-blocks (m > 0)
    float child_lo[DDQ_FINE], child_hi[DDQ_FINE];  // their values (v at m − 1)
    float pair[DDQ_FINE];         // per block: the value of its pair at m + 1 bits merged
    // filled by ddq_tables_finish:
    float reg[REG_TABLES][DDQ_REG_MAX];  // nc <= 64: the tables above padded (+inf thresholds)
    uint8_t *bucket;              // (n_buckets + 4) thresholds in the buckets below k; bucket[n] =
                                  // nc − 1 ends the last one; +3 more for 4-byte gathers
    int n_buckets, cap_buckets;
    bool one_per_bucket;          // no bucket holds two thresholds: one compare finds the bin
    float bucket_lo, bucket_scale;
} DdqTables;

/* --ddq_merge_centered: a level set one bit coarser or finer than the current one (the level set
 * after a gate flip) and, per bin of the current one, the levels of that set its elements can go
 * to — up to three, c0..c2 split at t0 ≤ t1 — or `wide` when more. Filled by ddq.c's rebuild. */
typedef struct DdqNear {
    int n;                        // levels (0: none)
    float v[DDQ_FINE], thresh[DDQ_FINE];
    float c0[DDQ_FINE], c1[DDQ_FINE], c2[DDQ_FINE], t0[DDQ_FINE], t1[DDQ_FINE];
    bool wide[DDQ_FINE];
    uint64_t wide_low;            // bit b: wide[b], for the bins below 64 (the vector kernel's)
} DdqNear;

/* The nearest level of t to x, searched from level k: a flip moves the levels by about half a
 * step, so k (the block's pair or first child) is at most a level or two away. */
static inline float ddq_nearest_from(const DdqNear *t, float x, int k) {
    while (k > 0 && x < t->thresh[k - 1]) k--;
    while (k < t->n - 1 && x >= t->thresh[k]) k++;
    return t->v[k];
}

/* The value an element x of bin b takes in t's level set: ddq_nearest_from's, without its loops. */
static inline float ddq_flip_value(const DdqNear *t, float x, int b, int start) {
    if (t->wide[b]) return ddq_nearest_from(t, x, start);
    return x >= t->t1[b] ? t->c2[b] : x >= t->t0[b] ? t->c1[b] : t->c0[b];
}

/* After coarse, thresh, child_* and pair are set for nc and m. */
void ddq_tables_finish(DdqTables *t);
void ddq_tables_free(DdqTables *t);

/* The bin of x: the number of thresholds <= x, by binary search (the reference; NaN -> 0). */
int ddq_bin_of(const float *thresh, int nc, float x);

/* y[e] = coarse[bin(x[e])], bins[e] = bin(x[e]) for e in [e0, e1) (per-tensor levels); ref: by
 * ddq_bin_of. */
void ddq_forward_kernel(const DdqTables *t, bool ref, const float *x, float *y, uint8_t *bins, size_t e0, size_t e1);

/* The default backward over [e0, e1) — per-tensor levels, no α, no product rule: dx = dy inside
 * [v_0, v_last] (stored, or added unless dx_overwrite; dx NULL: none), h[j] += Σ dy over bin j
 * (when h), sig[0] += c_down and sig[1] += c_up (when sig) — with near (--ddq_merge_centered) the
 * exact ones of ddq_centred_signals instead. False when this build has no vector path for nc
 * levels, or for ref: the caller then runs its generic loop. */
typedef struct DdqBackward {
    const float *x, *dy;
    const uint8_t *bins;
    float *dx;
    bool dx_overwrite;
    double *h, *sig;
    const DdqNear *near_down, *near_up;  // both or neither
} DdqBackward;
bool ddq_backward_kernel(const DdqTables *t, bool ref, const DdqBackward *a, size_t e0, size_t e1);

/* One element's share of the frontier signals: c_down += g·(pair(bin) − v_bin) for merging one
 * more bit, c_up += g·(child(x) − v_bin) for un-merging the last. */
static inline void ddq_element_signals(const DdqTables *t, float x, float g, int b, double *down, double *up) {
    if (t->m < DDQ_K) *down += (double)g * (t->pair[b] - t->coarse[b]);
    if (t->m > 0) *up += (double)g * ((x >= t->child_mid[b] ? t->child_hi[b] : t->child_lo[b]) - t->coarse[b]);
}

/* --ddq_merge_centered: a flip also translates every level (by about half a step), so the pair
 * and children are not the element's new value; the nearest value of the level set after the
 * flip is, exactly: c_down += g·(near_down(x) − v_bin), c_up += g·(near_up(x) − v_bin). */
static inline void ddq_centred_signals(const DdqTables *t, const DdqNear *dn, const DdqNear *up, float x, float g,
                                       int b, double *down, double *upsum) {
    float v = t->coarse[b];
    if (dn->n) *down += (double)g * (ddq_flip_value(dn, x, b, b >> 1) - v);
    if (up->n) *upsum += (double)g * (ddq_flip_value(up, x, b, 2 * b) - v);
}

#endif
