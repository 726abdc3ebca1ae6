/* ddq.c — the DDQ quantizer: fine grid, merged bits, nearest-coarse forward, level gradients,
 * frontier (or product-rule) gate signals, gate updates. See ddq.h and docs/ddq.md.
 *
 * Legend: K = 8 bits of fine index, m merged bits, B = 2^m fine levels per block, b = K − m
 * bits, nc = 2^b coarse values, j a block (bin) index, i a fine index, e an element.
 */
#include "ddq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* The forward's bin search. Up to DDQ_REG_MAX levels (AVX-512): a binary search over thresholds
 * held in registers. Otherwise a table over the thresholds' span: x falls in one of n_buckets
 * equal buckets, which gives the number of thresholds below the bucket; then the few thresholds
 * inside it are compared. The bucket width follows the smallest gap between thresholds (up to
 * DDQ_MAX_BUCKETS), so a bucket rarely holds more than one. */
#define DDQ_MIN_BUCKETS 1024
#define DDQ_MAX_BUCKETS 16384

enum { REG_THRESH, REG_COARSE, REG_PAIR, REG_MID, REG_LO, REG_HI, REG_TABLES };
#define DDQ_REG_MAX 64  // levels up to which the AVX-512 kernels look tables up in registers

typedef struct Ddq {
    Quantizer base;
    const DdqConfig *cfg;
    Tensor *fine;                 // (256) fine levels, slab parameter (PARAM_EXTERNAL)
    float vel[DDQ_FINE];          // momentum (or Adam first moment) of the fine levels
    float vel2[DDQ_FINE];         // Adam second moment
    long long adam_t;
    int m;                        // merged bits
    int zero_index;               // fine index pinned at 0, or −1
    float coarse[DDQ_FINE];       // v_j, nc of them
    float thresh[DDQ_FINE + 1];   // nc − 1 decision thresholds, then +inf twice
    float child_mid[DDQ_FINE];    // per block: threshold between its two half-blocks (m > 0)
    float child_lo[DDQ_FINE], child_hi[DDQ_FINE];  // their values (v at m − 1)
    float pair[DDQ_FINE];         // per block: the value of its pair at m + 1 bits merged
    int nc;
    float reg[REG_TABLES][DDQ_REG_MAX];  // nc <= 64: thresh, coarse, pair, child_mid/lo/hi padded
                                  // (+inf thresholds) for the AVX-512 kernels' permute lookups
    uint8_t *bucket;              // (n_buckets + 4) thresholds in the buckets below k; bucket[n] =
                                  // nc − 1 ends the last one; +3 more for 4-byte gathers
    int n_buckets, cap_buckets;
    bool one_per_bucket;          // no bucket holds two thresholds: one compare finds the bin
    float bucket_lo, bucket_scale;
    float gate_merge, gate_unmerge;
    double ema_down, ema_up, ema_down_pos, ema_up_neg;
    double sig_down, sig_up;
    float gate[DDQ_K];            // product-rule variant: one gate per bit (positive = merged)
    double ema_gate[DDQ_K], sig_gate[DDQ_K];
    int flips;
    float price;
    float step;                   // fine step d at initialisation (the gap's unit)
    QSamples samples;             // calibration data (activations)
    int channels;                 // per-channel weights: C scales (1: per tensor)
    float *scale;                 // (C) s_c, NULL per tensor
} Ddq;

static const QuantizerOps DDQ_OPS;

bool ddq_is(const Quantizer *q) { return q->ops == &DDQ_OPS; }

/* ------------------------------------------------------------------ tables */
/* Coarse values at m merged bits: block means, the block holding zero_index exactly 0. */
static int table_at(const Ddq *d, int m, float *out) {
    int B = 1 << m, nc = DDQ_FINE >> m;
    const float *q = d->fine->data;
    for (int j = 0; j < nc; j++) {
        double s = 0;
        for (int i = j * B; i < (j + 1) * B; i++) s += q[i];
        out[j] = (float)(s / B);
    }
    if (d->cfg->pin_zero && d->zero_index >= 0) out[d->zero_index >> m] = 0;
    return nc;
}

int ddq_coarse_at(const Quantizer *q, int m, float *out) { return table_at((const Ddq *)q, m, out); }

/* Bin of x: the number of thresholds below x (binary search over nc − 1 sorted thresholds). */
static inline int bin_of(const float *thresh, int nc, float x) {
    int lo = 0, hi = nc - 1;  // answer in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (x >= thresh[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void build_buckets(Ddq *d);

static void rebuild(Ddq *d) {
    d->nc = table_at(d, d->m, d->coarse);
    int B = 1 << d->m;
    const float *q = d->fine->data;
    for (int j = 0; j + 1 < d->nc; j++)
        d->thresh[j] = d->cfg->fine_forward ? 0.5f * (q[(j + 1) * B - 1] + q[(j + 1) * B])
                                            : 0.5f * (d->coarse[j] + d->coarse[j + 1]);
    d->thresh[d->nc - 1] = d->thresh[d->nc] = INFINITY;  // sentinels for bin_fast
    if (d->m > 0) {
        float lower[DDQ_FINE];
        table_at(d, d->m - 1, lower);
        int H = B / 2;  // half a block: the children's boundary
        for (int j = 0; j < d->nc; j++) {
            d->child_lo[j] = lower[2 * j], d->child_hi[j] = lower[2 * j + 1];
            d->child_mid[j] = d->cfg->fine_forward ? 0.5f * (q[j * B + H - 1] + q[j * B + H])
                                                   : 0.5f * (lower[2 * j] + lower[2 * j + 1]);
        }
    }
    if (d->m < DDQ_K) {
        float upper[DDQ_FINE];
        table_at(d, d->m + 1, upper);
        for (int j = 0; j < d->nc; j++) d->pair[j] = upper[j / 2];
    }
    for (int j = 0; j < DDQ_REG_MAX && d->nc <= DDQ_REG_MAX; j++) {
        bool in = j < d->nc;
        d->reg[REG_THRESH][j] = j < d->nc - 1 ? d->thresh[j] : INFINITY;
        d->reg[REG_COARSE][j] = in ? d->coarse[j] : 0;
        d->reg[REG_PAIR][j] = in && d->m < DDQ_K ? d->pair[j] : 0;
        d->reg[REG_MID][j] = in && d->m > 0 ? d->child_mid[j] : 0;
        d->reg[REG_LO][j] = in && d->m > 0 ? d->child_lo[j] : 0;
        d->reg[REG_HI][j] = in && d->m > 0 ? d->child_hi[j] : 0;
    }
    build_buckets(d);
}

/* What the bucket search reads, copied out of the quantizer: held in locals, it stays in
 * registers across the byte stores of the bins (which may alias anything, the quantizer too). */
typedef struct BucketSearch {
    float lo, scale, top;   // bucket_lo, bucket_scale, n_buckets − 1
    int last;               // nc − 1
    const uint8_t *bucket;
    const float *thresh;
} BucketSearch;

static inline BucketSearch search_of(const Ddq *d) {
    return (BucketSearch){d->bucket_lo, d->bucket_scale, (float)(d->n_buckets - 1), d->nc - 1, d->bucket, d->thresh};
}

/* The bucket of x: the same float arithmetic everywhere (scalar and vector), so it is monotone in
 * x and the table below is exact. NaN -> bucket 0. */
static inline int bucket_of(const BucketSearch *s, float x) {
    float u = (x - s->lo) * s->scale;
    u = u > 0 ? u : 0;  // NaN -> 0; written as max and min so that no branch depends on the data
    u = u < s->top ? u : s->top;
    return (int)u;
}

/* bucket[k] = the number of thresholds whose own bucket is below k: all of them are below any x
 * in bucket k (bucket_of is monotone), all thresholds of later buckets above it, so the bin of x
 * is bucket[k] plus the thresholds of its own bucket that are <= x. */
static void build_buckets(Ddq *d) {
    int nt = d->nc - 1;  // thresholds
    float lo = d->coarse[0], hi = d->coarse[d->nc - 1];
    float gap = hi - lo;
    for (int j = 0; j + 1 < nt; j++) gap = fminf(gap, d->thresh[j + 1] - d->thresh[j]);
    int n = DDQ_MIN_BUCKETS;
    while (n < DDQ_MAX_BUCKETS && gap > 0 && (hi - lo) / n >= gap) n *= 2;
    if (!(hi > lo)) hi = lo + 1e-6f;
    if (n > d->cap_buckets) {
        dq_free(d->bucket);
        d->bucket = dq_calloc((size_t)n + 4, 1);
        d->cap_buckets = n;
    }
    d->n_buckets = n;
    d->bucket_lo = lo, d->bucket_scale = (float)n / (hi - lo);
    BucketSearch bs = search_of(d);
    int j = 0, most = 0;  // one merge-like pass: buckets and thresholds both ascend
    for (int k = 0; k < n; k++) {
        int first = j;
        while (j < nt && bucket_of(&bs, d->thresh[j]) < k) j++;
        d->bucket[k] = (uint8_t)j;
        if (k > 0 && j - first > most) most = j - first;  // thresholds of bucket k − 1
    }
    if (nt - j > most) most = nt - j;  // the last bucket's
    d->bucket[n] = (uint8_t)nt;  // the end of the last bucket
    d->one_per_bucket = most <= 1;
}

/* The bin of x: bucket[k] plus the thresholds of bucket k that are <= x (those of later buckets
 * are all above x). Two compares when the bucket holds at most two (they are independent, so the
 * common case has no branches; a threshold past the bucket is above x anyway), a binary search
 * over the bucket's thresholds when levels crowd. thresh[nc − 1] and thresh[nc] are +inf. */
static inline int bin_fast(const BucketSearch *s, float x) {
    int k = bucket_of(s, x), b = s->bucket[k], end = s->bucket[k + 1];
    if (end - b <= 2) {
        b += (x >= s->thresh[b]) + (x >= s->thresh[b + 1]);
        return b < s->last ? b : s->last;  // x = +inf passes the +inf sentinels too
    }
    while (b < end) {
        int mid = (b + end) >> 1;
        if (x >= s->thresh[mid]) b = mid + 1;
        else end = mid;
    }
    return b;
}

/* Keep coarse values at least gap apart, moving whole blocks away from the pinned one. */
static void project(Ddq *d) {
    int B = 1 << d->m, nc = DDQ_FINE >> d->m;
    float v[DDQ_FINE], gap = d->cfg->gap * d->step, *q = d->fine->data;
    table_at(d, d->m, v);
    int anchor = d->cfg->pin_zero && d->zero_index >= 0 ? d->zero_index >> d->m : 0;
    for (int j = anchor + 1; j < nc; j++)
        if (v[j] < v[j - 1] + gap) {
            float shift = v[j - 1] + gap - v[j];
            for (int i = j * B; i < (j + 1) * B; i++) q[i] += shift;
            v[j] += shift;
        }
    for (int j = anchor - 1; j >= 0; j--)
        if (v[j] > v[j + 1] - gap) {
            float shift = v[j + 1] - gap - v[j];
            for (int i = j * B; i < (j + 1) * B; i++) q[i] += shift;
            v[j] += shift;
        }
}

/* ------------------------------------------------------------------ initialisation */
/* Uniform fine grid from lo to hi with one level exactly 0 (when lo < 0 < hi, or lo = 0). */
static void init_grid(Ddq *d, float lo, float hi) {
    if (!(hi > lo)) hi = lo + 1e-3f;
    float *q = d->fine->data;
    if (d->base.is_signed) {
        float step = (hi - lo) / (DDQ_FINE - 1);
        int i0 = (int)lroundf(-lo / step);
        if (i0 < 0) i0 = 0;
        if (i0 > DDQ_FINE - 1) i0 = DDQ_FINE - 1;
        for (int i = 0; i < DDQ_FINE; i++) q[i] = step * (float)(i - i0);
        d->zero_index = i0, d->step = step;
    } else {
        float step = hi / (DDQ_FINE - 1);
        for (int i = 0; i < DDQ_FINE; i++) q[i] = step * (float)i;
        d->zero_index = 0, d->step = step;
    }
    if (!d->cfg->pin_zero) d->zero_index = -1;
    memset(d->vel, 0, sizeof d->vel);
    memset(d->vel2, 0, sizeof d->vel2);
    d->base.calibrated = true;
    rebuild(d);
}

static void init_from_weights(Ddq *d, const Tensor *w) {
    float mx = 0;
    if (d->scale) {  // per channel: the levels see w / max|w_c|, so the range is ±1
        for (int c = 0; c < d->channels; c++) d->scale[c] = 0;
        for (size_t i = 0; i < w->numel; i++) {
            float *s = &d->scale[i % (size_t)d->channels];
            *s = fmaxf(*s, fabsf(w->data[i]));
        }
        for (int c = 0; c < d->channels; c++)
            if (d->scale[c] == 0) d->scale[c] = 1e-3f;
        mx = 1;
    }
    for (size_t i = 0; i < w->numel && !d->scale; i++) mx = fmaxf(mx, fabsf(w->data[i]));
    if (mx == 0) mx = 1e-3f;
    // d·(i − 128): 128 steps below zero, 127 above, the largest |w| on the short side
    init_grid(d, -mx * 128.0f / 127.0f, mx);
}

static void ddq_observe(Quantizer *q, const Tensor *x) { qsamples_add(&((Ddq *)q)->samples, x); }

static void ddq_finish_calibration(Quantizer *q) {
    Ddq *d = (Ddq *)q;
    if (d->samples.n == 0) return;  // weights initialise on their first forward
    float p = d->cfg->percentile, lo = quant_percentile(d->samples.v, d->samples.n, 100 - p);
    float hi = quant_percentile(d->samples.v, d->samples.n, p);
    if (!q->is_signed) lo = 0;
    else if (lo >= 0) lo = -(hi - lo) / 255.0f;  // signed data that happened to be >= 0: keep 0 inside
    init_grid(d, lo, hi);
    qsamples_free(&d->samples);
}

/* ------------------------------------------------------------------ forward / backward */
typedef struct DdqSaved {
    Ddq *d;
    uint8_t *bins;  // (numel) bin of each element
} DdqSaved;

typedef struct Toggled Toggled;

typedef struct DdqJob {
    Ddq *d;
    const float *x, *dy;
    float *y, *dx;
    uint8_t *bins;
    size_t n;
    int chunks;
    const Toggled *toggled;  // product-rule variant: outputs with one gate flipped
    bool signals;            // gate signals wanted (joint phase)
    bool dx_overwrite;       // dx is fresh: store instead of add
    bool levels;             // the level gradients' histogram is wanted
} DdqJob;

static size_t chunk_begin(const DdqJob *j, int c) { return j->n * (size_t)c / (size_t)j->chunks; }

#if defined(__AVX512F__)
/* table[b] for a padded table of 32 entries (two registers) or 64 (four: bit 5 picks the pair). */
static inline __m512 lookup(const float *table, __m512i b, bool wide) {
    __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(table), b, _mm512_loadu_ps(table + 16));
    if (!wide) return lo;
    __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(table + 32), b, _mm512_loadu_ps(table + 48));
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(b, _mm512_set1_epi32(32)), lo, hi);
}

/* Up to 64 coarse values (6 bits or fewer, where a run spends most of its steps): a branch-free
 * binary search over the thresholds with register permutes finds 16 bins at a time: b = the
 * number of thresholds <= x, as bin_of (a NaN compares false: bin 0; nc is a power of 2 and the
 * padding +inf, so b stops at nc − 1). */
static size_t forward_avx512_small(const Ddq *d, const float *x, float *y, uint8_t *bins, size_t e, size_t e1) {
    bool wide = d->nc > 32;
    int top = 1;  // the first step: half the table
    while (2 * top < d->nc) top *= 2;
    for (; e + 16 <= e1; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e);
        __m512i b = _mm512_setzero_si512();
        for (int s = top; s; s >>= 1) {
            __m512i probe = _mm512_add_epi32(b, _mm512_set1_epi32(s - 1));
            __mmask16 ge = _mm512_cmp_ps_mask(xv, lookup(d->reg[REG_THRESH], probe, wide), _CMP_GE_OQ);
            b = _mm512_mask_add_epi32(b, ge, b, _mm512_set1_epi32(s));
        }
        _mm512_storeu_ps(y + e, lookup(d->reg[REG_COARSE], b, wide));
        _mm_storeu_si128((__m128i *)(void *)(bins + e), _mm512_cvtepi32_epi8(b));
    }
    return e;
}

/* 16 elements at a time; above DDQ_REG_MAX levels, bin_fast with gathers: the same bucket
 * arithmetic as bucket_of (max(u, 0) maps NaN to 0, as its test does), so the same bins.
 * Returns where it stopped. */
static size_t forward_avx512(const Ddq *d, const float *x, float *y, uint8_t *bins, size_t e, size_t e1) {
    if (d->nc <= DDQ_REG_MAX) return forward_avx512_small(d, x, y, bins, e, e1);
    const __m512 lo = _mm512_set1_ps(d->bucket_lo), scale = _mm512_set1_ps(d->bucket_scale);
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps((float)(d->n_buckets - 1));
    const __m512i byte = _mm512_set1_epi32(0xff), one = _mm512_set1_epi32(1), last = _mm512_set1_epi32(d->nc - 1);
    for (; e + 16 <= e1; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e);
        __m512 u = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_sub_ps(xv, lo), scale), zero), top);
        __m512i b = _mm512_and_si512(_mm512_i32gather_epi32(_mm512_cvttps_epi32(u), (const void *)d->bucket, 1), byte);
        if (d->one_per_bucket) {  // the bucket's threshold, if it has one, or a later one
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, _mm512_i32gather_ps(b, d->thresh, 4), _CMP_GE_OQ), b, one);
            b = _mm512_min_epi32(b, last);  // x = +inf passes the +inf sentinel
        } else {
            __m512 t0 = _mm512_i32gather_ps(b, d->thresh, 4), t1 = _mm512_i32gather_ps(_mm512_add_epi32(b, one), d->thresh, 4);
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, t0, _CMP_GE_OQ), b, one);
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, t1, _CMP_GE_OQ), b, one);
            b = _mm512_min_epi32(b, last);  // x = +inf passes the +inf sentinels too
            __mmask16 more = _mm512_cmp_ps_mask(xv, _mm512_i32gather_ps(b, d->thresh, 4), _CMP_GE_OQ);
            if (more) {  // lanes in a crowded bucket: search them one by one
                int lanes[16];
                BucketSearch bs = search_of(d);
                _mm512_storeu_si512(lanes, b);
                for (int l = 0; l < 16; l++)
                    if (more >> l & 1) lanes[l] = bin_fast(&bs, x[e + l]);
                b = _mm512_loadu_si512(lanes);
            }
        }
        _mm512_storeu_ps(y + e, _mm512_i32gather_ps(b, d->coarse, 4));
        _mm_storeu_si128((__m128i *)(void *)(bins + e), _mm512_cvtepi32_epi8(b));
    }
    return e;
}
#endif

static void forward_task(void *ctx, int begin, int end, int tid) {
    const DdqJob *j = ctx;
    const Ddq *d = j->d;
    size_t e0 = chunk_begin(j, begin), e1 = chunk_begin(j, end);
    const float *restrict x = j->x;
    float *restrict y = j->y;
    uint8_t *restrict bins = j->bins;
    if (d->scale) {  // per-channel weights: y = s_c·Q(x / s_c)
        for (size_t e = e0; e < e1; e++) {
            float s = d->scale[e % (size_t)d->channels];
            int b = bin_of(d->thresh, d->nc, x[e] / s);
            bins[e] = (uint8_t)b;
            y[e] = s * d->coarse[b];
        }
        return;
    }
    if (ops_use_ref_kernels) {  // the specification: a binary search over the thresholds
        for (size_t e = e0; e < e1; e++) bins[e] = (uint8_t)bin_of(d->thresh, d->nc, x[e]), y[e] = d->coarse[bins[e]];
        return;
    }
#if defined(__AVX512F__)
    e0 = forward_avx512(d, x, y, bins, e0, e1);
#endif
    BucketSearch bs = search_of(d);
    const float *coarse = d->coarse;
    for (size_t e = e0; e < e1; e++) {
        int b = bin_fast(&bs, x[e]);
        bins[e] = (uint8_t)b;
        y[e] = coarse[b];
    }
}

/* Per-thread accumulators: h (the level gradients' histogram), Σx and count (α), nc each; the
 * K product-rule signals; the two frontier signals c_down and c_up. The generic loop keeps them
 * in COPIES interleaved copies (element e adds to copy e % COPIES), so runs of elements in the
 * same bin do not wait on each other's read-modify-write. */
enum { ACC_H, ACC_SX, ACC_N, ACC_TABLES };
#define ACC_GATES (ACC_TABLES * DDQ_FINE)
#define ACC_DOWN (ACC_GATES + DDQ_K)
#define ACC_UP (ACC_DOWN + 1)
#define ACC_DOUBLES (ACC_UP + 1)
#define COPIES 4

static double *accumulators(int tid) {
    return (double *)(void *)threads_scratch(tid, THREADS_SLOT_KERNEL, 2 * COPIES * ACC_DOUBLES);
}

/* Product rule: v[k][i] = output for fine index i with gate k flipped (K tables). */
struct Toggled {
    float v[DDQ_K][DDQ_FINE];
};

/* One element's share of the frontier signals: c_down = Σ g·(pair(bin) − v_bin) for merging one
 * more bit, c_up = Σ g·(child(x) − v_bin) for un-merging the last (x in the levels' units). */
static inline void element_signals(const Ddq *d, float x, float g, int b, double *acc) {
    if (d->m < DDQ_K) acc[ACC_DOWN] += (double)g * (d->pair[b] - d->coarse[b]);
    if (d->m > 0) acc[ACC_UP] += (double)g * ((x >= d->child_mid[b] ? d->child_hi[b] : d->child_lo[b]) - d->coarse[b]);
}

/* The plain loop: every variant (per-channel scales, α, product rule), any number of levels. */
static void backward_generic(const DdqJob *j, size_t e0, size_t e1, double *all) {
    const Ddq *d = j->d;
    float lo = d->coarse[0], hi = d->coarse[d->nc - 1];
    const Toggled *tg = j->toggled;
    bool alpha = d->cfg->alpha != 0;
    if (d->scale) {  // per-channel weights: the same estimators on x / s_c, level gradients times s_c
        for (size_t e = e0; e < e1; e++) {
            double *acc = all + (e % COPIES) * ACC_DOUBLES;
            float s = d->scale[e % (size_t)d->channels], x = j->x[e] / s, g = j->dy[e];
            int b = j->bins[e];
            float pass = (x >= lo && x <= hi) ? g : 0.0f;
            if (j->dx) j->dx[e] = j->dx_overwrite ? pass : j->dx[e] + pass;
            acc[ACC_H * DDQ_FINE + b] += g * s;
            if (j->signals) element_signals(d, x, g * s, b, acc);
            if (alpha) acc[ACC_SX * DDQ_FINE + b] += x, acc[ACC_N * DDQ_FINE + b] += 1;
        }
        return;  // (the product-rule variant is per tensor only)
    }
    // Blocks of BLOCK elements: the vectorised straight-through loop first, then the histogram
    // loop over the same block while its x and dy are still in L1.
    enum { BLOCK = 1024 };
    for (size_t b0 = e0; b0 < e1; b0 += BLOCK) {
        size_t b1 = b0 + BLOCK < e1 ? b0 + BLOCK : e1;
        if (j->dx) {  // clipped straight-through
            const float *restrict x = j->x, *restrict dy = j->dy;
            float *restrict dx = j->dx;
            if (j->dx_overwrite)
                for (size_t e = b0; e < b1; e++) dx[e] = (x[e] >= lo && x[e] <= hi) ? dy[e] : 0.0f;
            else
                for (size_t e = b0; e < b1; e++) dx[e] += (x[e] >= lo && x[e] <= hi) ? dy[e] : 0.0f;
        }
        for (size_t e = b0; e < b1; e++) {
            double *acc = all + (e % COPIES) * ACC_DOUBLES;
            float x = j->x[e], g = j->dy[e];
            int b = j->bins[e];
            acc[ACC_H * DDQ_FINE + b] += g;
            if (j->signals) element_signals(d, x, g, b, acc);
            if (alpha) acc[ACC_SX * DDQ_FINE + b] += x, acc[ACC_N * DDQ_FINE + b] += 1;
            if (tg) {  // the full 8-bit index: nearest fine level
                const float *q = d->fine->data;
                int l = 0, r = DDQ_FINE - 1;
                while (l < r) {
                    int mid = (l + r) >> 1;
                    if (x >= 0.5f * (q[mid] + q[mid + 1])) l = mid + 1;
                    else r = mid;
                }
                for (int k = 0; k < DDQ_K; k++) acc[ACC_GATES + k] += (double)g * (tg->v[k][l] - d->coarse[b]);
            }
        }
    }
}

#if defined(__AVX512F__)
/* h over one block. Up to 16 bins: one register of per-lane sums per bin, a masked add for each
 * (NB is a constant, so the loop unrolls and the sums stay in registers). More bins: float sums
 * in four copies (no store-to-load chains between neighbours in one bin). Either way the block's
 * float sums are added to the double totals once. */
static inline __attribute__((always_inline)) void histogram_regs(const uint8_t *bins, const float *g, size_t n,
                                                                 int nc, double *h, const int NB) {
    __m512 acc[16];
    for (int k = 0; k < NB; k++) acc[k] = _mm512_setzero_ps();
    size_t e = 0;
    for (; e + 16 <= n; e += 16) {
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(bins + e)));
        __m512 gv = _mm512_loadu_ps(g + e);
        for (int k = 0; k < NB; k++)
            acc[k] = _mm512_mask_add_ps(acc[k], _mm512_cmpeq_epi32_mask(b, _mm512_set1_epi32(k)), acc[k], gv);
    }
    for (int k = 0; k < nc; k++) h[k] += (double)_mm512_reduce_add_ps(acc[k]);
    for (; e < n; e++) h[bins[e]] += g[e];
}

static void histogram_copies(const uint8_t *bins, const float *g, size_t n, int nc, double *h);

static void histogram_block(const uint8_t *bins, const float *g, size_t n, int nc, double *h) {
    if (nc <= 4) histogram_regs(bins, g, n, nc, h, 4);
    else if (nc <= 8) histogram_regs(bins, g, n, nc, h, 8);
    else if (nc <= 16) histogram_regs(bins, g, n, nc, h, 16);
    else histogram_copies(bins, g, n, nc, h);
}

static void histogram_copies(const uint8_t *bins, const float *g, size_t n, int nc, double *h) {
    float c[4][DDQ_REG_MAX] = {{0}};
    size_t e = 0;
    for (; e + 4 <= n; e += 4) {
        c[0][bins[e]] += g[e], c[1][bins[e + 1]] += g[e + 1];
        c[2][bins[e + 2]] += g[e + 2], c[3][bins[e + 3]] += g[e + 3];
    }
    for (; e < n; e++) c[0][bins[e]] += g[e];
    for (int k = 0; k < nc; k++) h[k] += (double)c[0][k] + (double)c[1][k] + (double)c[2][k] + (double)c[3][k];
}

/* The common case — per tensor, at most 64 coarse values, no α, no product rule — 16 elements
 * at a time: the straight-through dx and both signals in registers (tables looked up by
 * permutes), then the block's histogram. Same estimators as backward_generic; float sums per
 * block of 1024, so the last digits differ from it. */
static void backward_avx512_small(const DdqJob *j, size_t e0, size_t e1, double *acc) {
    const Ddq *d = j->d;
    const __m512 lo = _mm512_set1_ps(d->coarse[0]), hi = _mm512_set1_ps(d->coarse[d->nc - 1]);
    bool down = j->signals && d->m < DDQ_K, up = j->signals && d->m > 0, wide = d->nc > 32;
    enum { BLOCK = 1024 };
    for (size_t b0 = e0; b0 < e1; b0 += BLOCK) {
        size_t b1 = b0 + BLOCK < e1 ? b0 + BLOCK : e1, e = b0;
        __m512 sd = _mm512_setzero_ps(), su = _mm512_setzero_ps();
        for (; e + 16 <= b1; e += 16) {
            __m512 x = _mm512_loadu_ps(j->x + e), g = _mm512_loadu_ps(j->dy + e);
            if (j->dx) {
                __mmask16 in = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(x, hi, _CMP_LE_OQ);
                __m512 pass = _mm512_maskz_mov_ps(in, g);
                if (!j->dx_overwrite) pass = _mm512_add_ps(pass, _mm512_loadu_ps(j->dx + e));
                _mm512_storeu_ps(j->dx + e, pass);
            }
            if (!down && !up) continue;
            __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(j->bins + e)));
            __m512 v = lookup(d->reg[REG_COARSE], b, wide);
            if (down) sd = _mm512_fmadd_ps(g, _mm512_sub_ps(lookup(d->reg[REG_PAIR], b, wide), v), sd);
            if (up) {
                __mmask16 upper = _mm512_cmp_ps_mask(x, lookup(d->reg[REG_MID], b, wide), _CMP_GE_OQ);
                __m512 child = _mm512_mask_blend_ps(upper, lookup(d->reg[REG_LO], b, wide), lookup(d->reg[REG_HI], b, wide));
                su = _mm512_fmadd_ps(g, _mm512_sub_ps(child, v), su);
            }
        }
        acc[ACC_DOWN] += (double)_mm512_reduce_add_ps(sd), acc[ACC_UP] += (double)_mm512_reduce_add_ps(su);
        for (; e < b1; e++) {  // the block's tail
            float x = j->x[e], g = j->dy[e], pass = (x >= d->coarse[0] && x <= d->coarse[d->nc - 1]) ? g : 0.0f;
            if (j->dx) j->dx[e] = j->dx_overwrite ? pass : j->dx[e] + pass;
            if (j->signals) element_signals(d, x, g, j->bins[e], acc);
        }
        if (j->levels) histogram_block(j->bins + b0, j->dy + b0, b1 - b0, d->nc, acc + ACC_H * DDQ_FINE);
    }
}
#endif

static void backward_task(void *ctx, int begin, int end, int tid) {
    const DdqJob *j = ctx;
    double *all = accumulators(tid);
    memset(all, 0, COPIES * ACC_DOUBLES * sizeof(double));
    size_t e0 = chunk_begin(j, begin), e1 = chunk_begin(j, end);
#if defined(__AVX512F__)
    const Ddq *d = j->d;
    if (!ops_use_ref_kernels && d->nc <= DDQ_REG_MAX && !d->scale && d->cfg->alpha == 0 && !j->toggled)
        backward_avx512_small(j, e0, e1, all);
    else
#endif
        backward_generic(j, e0, e1, all);
    for (int c = 1; c < COPIES; c++)  // fold the copies into the first, in order
        for (int k = 0; k < ACC_DOUBLES; k++) all[k] += all[c * ACC_DOUBLES + k];
}

/* Output for fine index i under an arbitrary merged-bit set `mask` (bit k set = merged):
 * the mean of the fine levels that agree with i on every kept bit (pinned block: 0). */
static float value_under(const Ddq *d, int mask, int i) {
    const float *q = d->fine->data;
    if (d->cfg->pin_zero && d->zero_index >= 0 && ((i ^ d->zero_index) & ~mask & (DDQ_FINE - 1)) == 0) return 0;
    double s = 0;
    int n = 0;
    for (int k = 0; k < DDQ_FINE; k++)
        if (((k ^ i) & ~mask & (DDQ_FINE - 1)) == 0) s += q[k], n++;
    return (float)(s / n);
}

static void ddq_backward_op(Tape *t, TapeRecord *r) {
    const DdqSaved *s = r->saved;
    Ddq *d = s->d;
    Tensor *x = r->in[0], *fine = r->in[1];
    bool overwrite;
    float *dx = tape_grad_overwrite(t, x, &overwrite);
    bool signals = !d->cfg->gates_frozen && !d->base.pinned;
    bool levels = fine->requires_grad && fine->grad;
    DdqJob job = {d, x->data, r->out->grad, NULL, dx, s->bins, x->numel, threads_count(), NULL, signals, overwrite, levels};
    if (d->cfg->product_rule && signals) {  // tables of the K single-gate toggles around the current set
        Toggled *tg = arena_alloc(t->arena, sizeof *tg);
        int mask = (1 << d->m) - 1;
        for (int k = 0; k < DDQ_K; k++)
            for (int i = 0; i < DDQ_FINE; i++) tg->v[k][i] = value_under(d, mask ^ (1 << k), i);
        job.toggled = tg;
    }
    parallel_for(job.chunks, backward_task, &job);
    double tot[ACC_DOUBLES] = {0};
    for (int c = 0; c < job.chunks; c++) {  // combine in thread order
        if (!parallel_has_work(job.chunks, c)) continue;
        const double *a = accumulators(c);
        for (int k = 0; k < ACC_DOUBLES; k++) tot[k] += a[k];
    }
    const double *h = tot + ACC_H * DDQ_FINE, *sx = tot + ACC_SX * DDQ_FINE, *cnt = tot + ACC_N * DDQ_FINE;
    // Gate signals: first-order changes of L from merging one more / un-merging the last bit.
    if (signals) d->sig_down += tot[ACC_DOWN], d->sig_up += tot[ACC_UP];
    for (int k = 0; k < DDQ_K; k++) d->sig_gate[k] += tot[ACC_GATES + k];
    // Level gradients: h_j scaled per quantizer (+ α·∂mean((x_q − x)²)/∂v_j), given to every fine
    // level of block j so the block moves rigidly; the pinned block gets none.
    if (!levels) return;
    double scale = 1.0 / sqrt((double)d->base.elems * (double)(d->nc - 1 > 0 ? d->nc - 1 : 1));
    int B = 1 << d->m, pinned = d->cfg->pin_zero && d->zero_index >= 0 ? d->zero_index >> d->m : -1;
    double n = (double)x->numel;
    for (int j = 0; j < d->nc; j++) {
        if (j == pinned) continue;
        double g = h[j] * scale;
        if (d->cfg->alpha != 0) g += d->cfg->alpha * 2.0 / n * (cnt[j] * d->coarse[j] - sx[j]);
        for (int i = j * B; i < (j + 1) * B; i++) fine->grad[i] += (float)g;
    }
}

static const TapeOp DDQ_OP = {"ddq_quantize", ddq_backward_op};

static Tensor *ddq_forward(Quantizer *q, Tape *t, Tensor *x) {
    Ddq *d = (Ddq *)q;
    if (!q->calibrated) {
        if (q->role != QROLE_WEIGHT)
            DQ_FATAL_HINT("run the calibration batches before training (quant_calibrate)",
                          "%s: activation quantizer used before calibration", q->name);
        init_from_weights(d, x);
    }
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    uint8_t *bins = arena_alloc(t->arena, x->numel);
    DdqJob job = {d, x->data, NULL, y->data, NULL, bins, x->numel, threads_count(), NULL, false, false};
    parallel_for(job.chunks, forward_task, &job);
    TapeRecord *r = tape_push(t, &DDQ_OP, y, 2, (Tensor *[]){x, d->fine});
    if (r) {
        DdqSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (DdqSaved){d, bins};
        r->saved = s;
    }
    return y;
}

/* ------------------------------------------------------------------ per-step updates */
static void update_levels(Ddq *d, float lr) {
    float rate = (d->base.role == QROLE_WEIGHT ? d->cfg->lr_levels_w : d->cfg->lr_levels_a) * lr;
    float *q = d->fine->data, *g = d->fine->grad;
    if (d->cfg->adam) {  // Adam (β 0.9, 0.999), no weight decay
        d->adam_t++;
        double c1 = 1 - pow(0.9, (double)d->adam_t), c2 = 1 - pow(0.999, (double)d->adam_t);
        for (int i = 0; i < DDQ_FINE; i++) {
            d->vel[i] = 0.9f * d->vel[i] + 0.1f * g[i];
            d->vel2[i] = 0.999f * d->vel2[i] + 0.001f * g[i] * g[i];
            q[i] -= rate * (float)(d->vel[i] / c1 / (sqrt(d->vel2[i] / c2) + 1e-8));
        }
    } else {
        for (int i = 0; i < DDQ_FINE; i++) {
            d->vel[i] = d->cfg->momentum * d->vel[i] + g[i];
            q[i] -= rate * d->vel[i];
        }
    }
    if (d->zero_index >= 0) q[d->zero_index] = 0;  // the pin is exact
    project(d);
}

static void set_merged(Ddq *d, int m) {
    d->m = m;
    project(d);  // the new blocks must be ordered too
    rebuild(d);
}

static void frontier_gates(Ddq *d) {
    double a = d->cfg->ema;
    int m_max = DDQ_K - d->cfg->b_min;
    d->ema_down = a * d->ema_down + (1 - a) * d->sig_down;
    d->ema_up = a * d->ema_up + (1 - a) * d->sig_up;
    d->ema_down_pos = a * d->ema_down_pos + (1 - a) * fmax(d->sig_down, 0);
    d->ema_up_neg = a * d->ema_up_neg + (1 - a) * fmax(-d->sig_up, 0);
    // Positive gate = merged. Merge when the price of a bit outweighs the smoothed cost of
    // merging; un-merge when the smoothed gain of un-merging outweighs the price.
    if (d->m < m_max) d->gate_merge -= d->cfg->lr_gate * (float)(d->ema_down - d->price);
    if (d->m > 0) d->gate_unmerge += d->cfg->lr_gate * (float)(d->ema_up + d->price);
    d->gate_merge = fminf(1, fmaxf(-1, d->gate_merge));
    d->gate_unmerge = fminf(1, fmaxf(-1, d->gate_unmerge));
    if (d->m < m_max && d->gate_merge > 0) {
        set_merged(d, d->m + 1);
        d->ema_up = -d->ema_down, d->ema_down = 0;  // the bit just merged is now the one to un-merge
        d->gate_merge = -0.5f, d->gate_unmerge = 0.5f, d->flips++;
    } else if (d->m > 0 && d->gate_unmerge < 0) {
        set_merged(d, d->m - 1);
        d->ema_down = -d->ema_up, d->ema_up = 0;
        d->gate_merge = -0.5f, d->gate_unmerge = 0.5f, d->flips++;
    }
}

/* Variant: every gate gets its own signal and update; the quantizer uses the leading run of
 * merged gates from the least significant bit (nested, so monotone), which can jump bits. */
static void product_rule_gates(Ddq *d) {
    double a = d->cfg->ema;
    for (int k = 0; k < DDQ_K; k++) {
        d->ema_gate[k] = a * d->ema_gate[k] + (1 - a) * d->sig_gate[k];
        bool merged = k < d->m;
        // toggling a merged gate un-merges it: its signal is the change from un-merging
        d->gate[k] += merged ? d->cfg->lr_gate * (float)(d->ema_gate[k] + d->price)
                             : -d->cfg->lr_gate * (float)(d->ema_gate[k] - d->price);
        d->gate[k] = fminf(1, fmaxf(-1, d->gate[k]));
        d->sig_gate[k] = 0;
    }
    int m = 0;
    while (m < DDQ_K - d->cfg->b_min && d->gate[m] > 0) m++;
    if (m != d->m) {
        d->flips++;
        set_merged(d, m);
    }
}

static void ddq_step(Quantizer *q, float lr) {
    Ddq *d = (Ddq *)q;
    if (!q->calibrated) return;
    if (!d->cfg->levels_frozen && d->fine->grad) update_levels(d, lr);
    if (!d->cfg->gates_frozen && !q->pinned) {
        if (d->cfg->product_rule) product_rule_gates(d);
        else frontier_gates(d);
    }
    d->sig_down = d->sig_up = 0;
    rebuild(d);
}

/* ------------------------------------------------------------------ read-outs and state */
static int ddq_bits(const Quantizer *q) { return DDQ_K - ((const Ddq *)q)->m; }

static int ddq_levels(const Quantizer *q, float *out) {
    const Ddq *d = (const Ddq *)q;
    memcpy(out, d->coarse, (size_t)d->nc * sizeof(float));
    return d->nc;
}

static void ddq_describe(const Quantizer *q, char *buf, size_t size) {
    const Ddq *d = (const Ddq *)q;
    snprintf(buf, size, "ddq %d bits, levels [%.4g, %.4g], %d bit changes", DDQ_K - d->m, d->coarse[0],
             d->coarse[d->nc - 1], d->flips);
}

#define DDQ_STATE_VERSION 1

static void ddq_save(const Quantizer *q, QBytes *b) {
    const Ddq *d = (const Ddq *)q;
    int head[5] = {DDQ_STATE_VERSION, d->m, d->zero_index, d->flips, q->calibrated};
    qbytes_put(b, head, sizeof head);
    float f[4] = {d->gate_merge, d->gate_unmerge, d->price, d->step};
    qbytes_put(b, f, sizeof f);
    double e[4] = {d->ema_down, d->ema_up, d->ema_down_pos, d->ema_up_neg};
    qbytes_put(b, e, sizeof e);
    qbytes_put(b, d->vel, sizeof d->vel);
    qbytes_put(b, d->vel2, sizeof d->vel2);
    qbytes_put(b, &d->adam_t, sizeof d->adam_t);
    qbytes_put(b, d->gate, sizeof d->gate);
    qbytes_put(b, d->ema_gate, sizeof d->ema_gate);
    if (d->scale) qbytes_put(b, d->scale, (size_t)d->channels * sizeof(float));
}

static void ddq_load(Quantizer *q, QBytes *b) {
    Ddq *d = (Ddq *)q;
    int head[5];
    qbytes_get(b, head, sizeof head);
    if (head[0] != DDQ_STATE_VERSION || head[1] < 0 || head[1] > DDQ_K || head[2] < -1 || head[2] >= DDQ_FINE)
        DQ_FATAL_FILE(b->path ? b->path : "checkpoint", "%s: bad DDQ state (version %d, m %d)", q->name, head[0], head[1]);
    d->m = head[1], d->zero_index = head[2], d->flips = head[3], q->calibrated = head[4] != 0;
    float f[4];
    qbytes_get(b, f, sizeof f);
    d->gate_merge = f[0], d->gate_unmerge = f[1], d->price = f[2], d->step = f[3];
    double e[4];
    qbytes_get(b, e, sizeof e);
    d->ema_down = e[0], d->ema_up = e[1], d->ema_down_pos = e[2], d->ema_up_neg = e[3];
    qbytes_get(b, d->vel, sizeof d->vel);
    qbytes_get(b, d->vel2, sizeof d->vel2);
    qbytes_get(b, &d->adam_t, sizeof d->adam_t);
    qbytes_get(b, d->gate, sizeof d->gate);
    qbytes_get(b, d->ema_gate, sizeof d->ema_gate);
    if (d->scale) qbytes_get(b, d->scale, (size_t)d->channels * sizeof(float));
    if (q->calibrated) rebuild(d);
}

static void ddq_free(Quantizer *q) {
    qsamples_free(&((Ddq *)q)->samples);
    dq_free(((Ddq *)q)->bucket);
    dq_free(((Ddq *)q)->scale);
    dq_free(q);
}

static const QuantizerOps DDQ_OPS = {"ddq", ddq_forward, ddq_observe, ddq_finish_calibration, ddq_step,
                                     ddq_bits, ddq_levels, ddq_describe, ddq_save, ddq_load, ddq_free};

Quantizer *ddq_new(ParamSlab *slab, const char *name, QuantRole role, bool is_signed, bool pinned,
                   long long elems, int channels, const DdqConfig *cfg) {
    if (cfg->b_min < 1 || cfg->b_min > DDQ_K) DQ_FATAL("ddq: minimum bits %d must be in 1..%d", cfg->b_min, DDQ_K);
    if (cfg->init_bits < cfg->b_min || cfg->init_bits > DDQ_K)
        DQ_FATAL("ddq: initial bits %d must be in %d..%d", cfg->init_bits, cfg->b_min, DDQ_K);
    Ddq *d = dq_calloc(1, sizeof *d);
    quantizer_init_base(&d->base, &DDQ_OPS, name, role, is_signed, pinned, elems);
    d->cfg = cfg;
    char pname[96];
    snprintf(pname, sizeof pname, "%s.levels", name);
    d->fine = slab_add(slab, pname, 1, (const int[]){DDQ_FINE}, PARAM_EXTERNAL | PARAM_NO_DECAY);
    d->m = pinned ? 0 : DDQ_K - cfg->init_bits;
    d->channels = role == QROLE_WEIGHT && channels > 1 ? channels : 1;
    if (d->channels > 1) d->scale = dq_calloc((size_t)d->channels, sizeof(float));
    d->gate_merge = -0.5f, d->gate_unmerge = 0.5f;
    for (int k = 0; k < DDQ_K; k++) d->gate[k] = k < d->m ? 0.5f : -0.5f;
    d->zero_index = -1;
    return &d->base;
}

/* ------------------------------------------------------------------ controls */
DdqState ddq_state(const Quantizer *q) {
    const Ddq *d = (const Ddq *)q;
    DQ_CHECK(ddq_is(q));
    return (DdqState){DDQ_K - d->m, d->m, d->nc, d->coarse, d->fine->data, d->ema_down, d->ema_up,
                      d->ema_down_pos, d->ema_up_neg, d->sig_down, d->sig_up, d->gate_merge,
                      d->gate_unmerge, d->flips, d->price};
}

void ddq_set_price(Quantizer *q, float price) { ((Ddq *)q)->price = price; }

void ddq_set_merged(Quantizer *q, int m) {
    Ddq *d = (Ddq *)q;
    DQ_CHECK(m >= 0 && m <= DDQ_K);
    if (d->base.calibrated) set_merged(d, m);
    else d->m = m;
}

void ddq_set_fine(Quantizer *q, const float *fine, int zero_index) {
    Ddq *d = (Ddq *)q;
    memcpy(d->fine->data, fine, sizeof(float) * DDQ_FINE);
    d->zero_index = d->cfg->pin_zero ? zero_index : -1;
    d->step = fabsf(fine[1] - fine[0]);
    d->base.calibrated = true;
    rebuild(d);
}
