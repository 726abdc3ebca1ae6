/* ddq_kernels.c — DDQ's per-element kernels (see ddq_kernels.h). */
#include "ddq_kernels.h"

#include <math.h>

#include "core/error.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define DDQ_VECTOR 1  // a vector path below
#include <immintrin.h>
#endif

/* The forward's bin search. Up to DDQ_REG_MAX levels (32 with AVX2): a binary search over
 * thresholds held in registers. Otherwise a table over the thresholds' span: x falls in one of
 * n_buckets equal buckets, which gives the number of thresholds below the bucket; then the few
 * thresholds inside it are compared. The bucket width follows the smallest gap between
 * thresholds (up to DDQ_MAX_BUCKETS), so a bucket rarely holds more than one. */
#define DDQ_MIN_BUCKETS 1024
#define DDQ_MAX_BUCKETS 16384

int ddq_bin_of(const float *thresh, int nc, float x) {
    int lo = 0, hi = nc - 1;  // answer in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (x >= thresh[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------ the bucket search */
/* What the bucket search reads, copied out of the tables: held in locals, it stays in
 * registers across the byte stores of the bins (which may alias anything, the tables too). */
typedef struct BucketSearch {
    float lo, scale, top;   // bucket_lo, bucket_scale, n_buckets − 1
    int last;               // nc − 1
    const uint8_t *bucket;
    const float *thresh;
} BucketSearch;

static inline BucketSearch search_of(const DdqTables *t) {
    return (BucketSearch){.lo = t->bucket_lo, .scale = t->bucket_scale, .top = (float)(t->n_buckets - 1),
                          .last = t->nc - 1, .bucket = t->bucket, .thresh = t->thresh};
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
static void build_buckets(DdqTables *t) {
    int nt = t->nc - 1;  // thresholds
    float lo = t->coarse[0], hi = t->coarse[t->nc - 1];
    float gap = hi - lo;
    for (int j = 0; j + 1 < nt; j++) gap = fminf(gap, t->thresh[j + 1] - t->thresh[j]);
    int n = DDQ_MIN_BUCKETS;
    while (n < DDQ_MAX_BUCKETS && gap > 0 && (hi - lo) / n >= gap) n *= 2;
    if (!(hi > lo)) hi = lo + 1e-6f;
    if (n > t->cap_buckets) {
        dq_free(t->bucket);
        t->bucket = dq_calloc((size_t)n + 4, 1);
        t->cap_buckets = n;
    }
    t->n_buckets = n;
    t->bucket_lo = lo, t->bucket_scale = (float)n / (hi - lo);
    BucketSearch bs = search_of(t);
    int j = 0, most = 0;  // one merge-like pass: buckets and thresholds both ascend
    for (int k = 0; k < n; k++) {
        int first = j;
        while (j < nt && bucket_of(&bs, t->thresh[j]) < k) j++;
        t->bucket[k] = (uint8_t)j;
        if (k > 0 && j - first > most) most = j - first;  // thresholds of bucket k − 1
    }
    if (nt - j > most) most = nt - j;  // the last bucket's
    t->bucket[n] = (uint8_t)nt;  // the end of the last bucket
    t->one_per_bucket = most <= 1;
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

void ddq_tables_finish(DdqTables *t) {
    for (int j = 0; j < DDQ_REG_MAX && t->nc <= DDQ_REG_MAX; j++) {
        bool in = j < t->nc;
        t->reg[REG_THRESH][j] = j < t->nc - 1 ? t->thresh[j] : INFINITY;
        t->reg[REG_COARSE][j] = in ? t->coarse[j] : 0;
        t->reg[REG_PAIR][j] = in && t->m < DDQ_K ? t->pair[j] : 0;
        t->reg[REG_MID][j] = in && t->m > 0 ? t->child_mid[j] : 0;
        t->reg[REG_LO][j] = in && t->m > 0 ? t->child_lo[j] : 0;
        t->reg[REG_HI][j] = in && t->m > 0 ? t->child_hi[j] : 0;
    }
    build_buckets(t);
}

void ddq_tables_free(DdqTables *t) {
    dq_free(t->bucket);
    t->bucket = NULL, t->cap_buckets = 0;
}

#if defined(DDQ_VECTOR)
/* h over one block with float sums in four copies (no store-to-load chains between neighbours in
 * one bin), added to the double totals once. */
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

/* The first step of the register search: half the table (nc is a power of 2, and with +inf
 * padding the search stops at nc − 1). */
static int first_step(int nc) {
    int top = 1;
    while (2 * top < nc) top *= 2;
    return top;
}

/* Elements are taken in blocks of BLOCK by the backward kernels: float sums within a block,
 * double across blocks. */
enum { BLOCK = 1024 };
#endif

#if defined(__AVX512F__)
/* ------------------------------------------------------------------ AVX-512, 16 elements */
#define VEC_LEVELS DDQ_REG_MAX

/* table[b] for a padded table of 32 entries (two registers) or 64 (four: bit 5 picks the pair). */
static inline __m512 lookup(const float *table, __m512i b, bool wide) {
    __m512 lo = _mm512_permutex2var_ps(_mm512_loadu_ps(table), b, _mm512_loadu_ps(table + 16));
    if (!wide) return lo;
    __m512 hi = _mm512_permutex2var_ps(_mm512_loadu_ps(table + 32), b, _mm512_loadu_ps(table + 48));
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(b, _mm512_set1_epi32(32)), lo, hi);
}

/* Up to 64 coarse values: a branch-free binary search with register permutes, b = the number of
 * thresholds <= x, as ddq_bin_of (a NaN compares false: bin 0). */
static size_t forward_small(const DdqTables *t, const float *x, float *y, uint8_t *bins, size_t e, size_t e1) {
    bool wide = t->nc > 32;
    int top = first_step(t->nc);
    for (; e + 16 <= e1; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e);
        __m512i b = _mm512_setzero_si512();
        for (int s = top; s; s >>= 1) {
            __m512i probe = _mm512_add_epi32(b, _mm512_set1_epi32(s - 1));
            __mmask16 ge = _mm512_cmp_ps_mask(xv, lookup(t->reg[REG_THRESH], probe, wide), _CMP_GE_OQ);
            b = _mm512_mask_add_epi32(b, ge, b, _mm512_set1_epi32(s));
        }
        _mm512_storeu_ps(y + e, lookup(t->reg[REG_COARSE], b, wide));
        _mm_storeu_si128((__m128i *)(void *)(bins + e), _mm512_cvtepi32_epi8(b));
    }
    return e;
}

/* More levels: bin_fast with gathers — the same bucket arithmetic as bucket_of (max(u, 0) maps
 * NaN to 0, as its test does), so the same bins. Returns where it stopped. */
static size_t forward_vector(const DdqTables *t, const float *x, float *y, uint8_t *bins, size_t e, size_t e1) {
    if (t->nc <= DDQ_REG_MAX) return forward_small(t, x, y, bins, e, e1);
    const __m512 lo = _mm512_set1_ps(t->bucket_lo), scale = _mm512_set1_ps(t->bucket_scale);
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps((float)(t->n_buckets - 1));
    const __m512i byte = _mm512_set1_epi32(0xff), one = _mm512_set1_epi32(1), last = _mm512_set1_epi32(t->nc - 1);
    for (; e + 16 <= e1; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e);
        __m512 u = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_sub_ps(xv, lo), scale), zero), top);
        __m512i b = _mm512_and_si512(_mm512_i32gather_epi32(_mm512_cvttps_epi32(u), (const void *)t->bucket, 1), byte);
        if (t->one_per_bucket) {  // the bucket's threshold, if it has one, or a later one
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, _mm512_i32gather_ps(b, t->thresh, 4), _CMP_GE_OQ), b, one);
            b = _mm512_min_epi32(b, last);  // x = +inf passes the +inf sentinel
        } else {
            __m512 t0 = _mm512_i32gather_ps(b, t->thresh, 4), t1 = _mm512_i32gather_ps(_mm512_add_epi32(b, one), t->thresh, 4);
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, t0, _CMP_GE_OQ), b, one);
            b = _mm512_mask_add_epi32(b, _mm512_cmp_ps_mask(xv, t1, _CMP_GE_OQ), b, one);
            b = _mm512_min_epi32(b, last);  // x = +inf passes the +inf sentinels too
            __mmask16 more = _mm512_cmp_ps_mask(xv, _mm512_i32gather_ps(b, t->thresh, 4), _CMP_GE_OQ);
            if (more) {  // lanes in a crowded bucket: search them one by one
                int lanes[16];
                BucketSearch bs = search_of(t);
                _mm512_storeu_si512(lanes, b);
                for (int l = 0; l < 16; l++)
                    if (more >> l & 1) lanes[l] = bin_fast(&bs, x[e + l]);
                b = _mm512_loadu_si512(lanes);
            }
        }
        _mm512_storeu_ps(y + e, _mm512_i32gather_ps(b, t->coarse, 4));
        _mm_storeu_si128((__m128i *)(void *)(bins + e), _mm512_cvtepi32_epi8(b));
    }
    return e;
}

/* h over one block, up to 16 bins: one register of per-lane sums per bin, a masked add for each
 * (NB is a constant, so the loop unrolls and the sums stay in registers). */
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

static void histogram_block(const uint8_t *bins, const float *g, size_t n, int nc, double *h) {
    if (nc <= 4) histogram_regs(bins, g, n, nc, h, 4);
    else if (nc <= 8) histogram_regs(bins, g, n, nc, h, 8);
    else if (nc <= 16) histogram_regs(bins, g, n, nc, h, 16);
    else histogram_copies(bins, g, n, nc, h);
}

/* The centred signals' value after a flip (ddq_flip_value) of 16 elements in bins that are not
 * wide: c0, c1 from t0 on, c2 from t1 on. */
static inline __m512 flip_values(const DdqNear *n, __m512 x, __m512i b, bool wide) {
    __m512 c = lookup(n->c0, b, wide);
    c = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lookup(n->t0, b, wide), _CMP_GE_OQ), c, lookup(n->c1, b, wide));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lookup(n->t1, b, wide), _CMP_GE_OQ), c, lookup(n->c2, b, wide));
}

/* The lanes whose bin is wide in n (bit b of n->wide_low; a shift by 32 or more gives 0). */
static inline __mmask16 wide_lanes(const DdqNear *n, __m512i b) {
    __m512i lo = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)n->wide_low), b);
    __m512i hi = _mm512_srlv_epi32(_mm512_set1_epi32((int)(uint32_t)(n->wide_low >> 32)), _mm512_sub_epi32(b, _mm512_set1_epi32(32)));
    return _mm512_test_epi32_mask(_mm512_or_si512(lo, hi), _mm512_set1_epi32(1));
}

/* One block of 16-element steps: dx, and the signals by register lookups (centred: lanes in wide
 * bins one by one, in double). Returns where it stopped. */
static size_t backward_steps(const DdqTables *t, const DdqBackward *a, size_t e, size_t b1, bool down, bool up) {
    const __m512 lo = _mm512_set1_ps(t->coarse[0]), hi = _mm512_set1_ps(t->coarse[t->nc - 1]);
    bool wide = t->nc > 32;
    const DdqNear *nd = a->near_down, *nu = a->near_up;
    bool centred = nd != NULL, any_wide = centred && (nd->wide_low | nu->wide_low);
    double wd = 0, wu = 0;  // the wide lanes' shares
    __m512 sd = _mm512_setzero_ps(), su = _mm512_setzero_ps();
    for (; e + 16 <= b1; e += 16) {
        __m512 x = _mm512_loadu_ps(a->x + e), g = _mm512_loadu_ps(a->dy + e);
        if (a->dx) {
            __mmask16 in = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(x, hi, _CMP_LE_OQ);
            __m512 pass = _mm512_maskz_mov_ps(in, g);
            if (!a->dx_overwrite) pass = _mm512_add_ps(pass, _mm512_loadu_ps(a->dx + e));
            _mm512_storeu_ps(a->dx + e, pass);
        }
        if (!down && !up) continue;
        __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(a->bins + e)));
        __m512 v = lookup(t->reg[REG_COARSE], b, wide);
        if (centred) {
            __mmask16 wl = any_wide ? wide_lanes(nd, b) | wide_lanes(nu, b) : 0;
            if (down) sd = _mm512_mask3_fmadd_ps(g, _mm512_sub_ps(flip_values(nd, x, b, wide), v), sd, (__mmask16)~wl);
            if (up) su = _mm512_mask3_fmadd_ps(g, _mm512_sub_ps(flip_values(nu, x, b, wide), v), su, (__mmask16)~wl);
            for (int l = 0; wl; l++, wl >>= 1)
                if (wl & 1) ddq_centred_signals(t, nd, nu, a->x[e + l], a->dy[e + l], a->bins[e + l], &wd, &wu);
            continue;
        }
        if (down) sd = _mm512_fmadd_ps(g, _mm512_sub_ps(lookup(t->reg[REG_PAIR], b, wide), v), sd);
        if (up) {
            __mmask16 upper = _mm512_cmp_ps_mask(x, lookup(t->reg[REG_MID], b, wide), _CMP_GE_OQ);
            __m512 child = _mm512_mask_blend_ps(upper, lookup(t->reg[REG_LO], b, wide), lookup(t->reg[REG_HI], b, wide));
            su = _mm512_fmadd_ps(g, _mm512_sub_ps(child, v), su);
        }
    }
    if (a->sig) a->sig[0] += (double)_mm512_reduce_add_ps(sd) + wd, a->sig[1] += (double)_mm512_reduce_add_ps(su) + wu;
    return e;
}
#define CENTRED_IN_STEPS 1  // backward_steps computes the centred signals too

#elif defined(__AVX2__) && defined(__FMA__)
/* ------------------------------------------------------------------ AVX2, 8 elements */
#define VEC_LEVELS 32

/* table[b] for a padded table of 8, 16 or 32 entries: one permute per 8 entries, then blends on
 * bits 3 and 4 of b (moved to the sign bit, which blendv reads). */
static inline __m256 lookup(const float *table, __m256i b, int regs) {
    __m256 r = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table), b);
    if (regs == 1) return r;
    __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(b, 28));
    r = _mm256_blendv_ps(r, _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8), b), bit3);
    if (regs == 2) return r;
    __m256 s = _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 16), b),
                                _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 24), b), bit3);
    return _mm256_blendv_ps(r, s, _mm256_castsi256_ps(_mm256_slli_epi32(b, 27)));
}

static inline int regs_for(int nc) { return nc <= 8 ? 1 : nc <= 16 ? 2 : 4; }

static inline void store_bins8(uint8_t *bins, __m256i b) {  // the low byte of each 32-bit lane
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i p = _mm256_shuffle_epi8(b, pick);
    __m128i lo8 = _mm_unpacklo_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    _mm_storel_epi64((__m128i *)(void *)bins, lo8);
}

static inline __m256i load_bins8(const uint8_t *bins) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)bins));
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Up to 32 coarse values: the binary search of the AVX-512 path with 8-lane permutes. */
static size_t forward_vector(const DdqTables *t, const float *x, float *y, uint8_t *bins, size_t e, size_t e1) {
    if (t->nc > VEC_LEVELS) return e;
    int regs = regs_for(t->nc), top = first_step(t->nc);
    for (; e + 8 <= e1; e += 8) {
        __m256 xv = _mm256_loadu_ps(x + e);
        __m256i b = _mm256_setzero_si256();
        for (int s = top; s; s >>= 1) {
            __m256i probe = _mm256_add_epi32(b, _mm256_set1_epi32(s - 1));
            __m256 ge = _mm256_cmp_ps(xv, lookup(t->reg[REG_THRESH], probe, regs), _CMP_GE_OQ);
            b = _mm256_add_epi32(b, _mm256_and_si256(_mm256_castps_si256(ge), _mm256_set1_epi32(s)));
        }
        _mm256_storeu_ps(y + e, lookup(t->reg[REG_COARSE], b, regs));
        store_bins8(bins + e, b);
    }
    return e;
}

/* h over one block, up to 8 bins in registers (AVX2 has 16 of them), else four scalar copies. */
static inline __attribute__((always_inline)) void histogram_regs(const uint8_t *bins, const float *g, size_t n,
                                                                 int nc, double *h, const int NB) {
    __m256 acc[8];
    for (int k = 0; k < NB; k++) acc[k] = _mm256_setzero_ps();
    size_t e = 0;
    for (; e + 8 <= n; e += 8) {
        __m256i b = load_bins8(bins + e);
        __m256 gv = _mm256_loadu_ps(g + e);
        for (int k = 0; k < NB; k++)
            acc[k] = _mm256_add_ps(acc[k], _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(b, _mm256_set1_epi32(k))), gv));
    }
    for (int k = 0; k < nc; k++) h[k] += (double)hsum8(acc[k]);
    for (; e < n; e++) h[bins[e]] += g[e];
}

static void histogram_block(const uint8_t *bins, const float *g, size_t n, int nc, double *h) {
    if (nc <= 4) histogram_regs(bins, g, n, nc, h, 4);
    else if (nc <= 8) histogram_regs(bins, g, n, nc, h, 8);
    else histogram_copies(bins, g, n, nc, h);
}

static size_t backward_steps(const DdqTables *t, const DdqBackward *a, size_t e, size_t b1, bool down, bool up) {
    const __m256 lo = _mm256_set1_ps(t->coarse[0]), hi = _mm256_set1_ps(t->coarse[t->nc - 1]);
    int regs = regs_for(t->nc);
    __m256 sd = _mm256_setzero_ps(), su = _mm256_setzero_ps();
    for (; e + 8 <= b1; e += 8) {
        __m256 x = _mm256_loadu_ps(a->x + e), g = _mm256_loadu_ps(a->dy + e);
        if (a->dx) {
            __m256 in = _mm256_and_ps(_mm256_cmp_ps(x, lo, _CMP_GE_OQ), _mm256_cmp_ps(x, hi, _CMP_LE_OQ));
            __m256 pass = _mm256_and_ps(in, g);
            if (!a->dx_overwrite) pass = _mm256_add_ps(pass, _mm256_loadu_ps(a->dx + e));
            _mm256_storeu_ps(a->dx + e, pass);
        }
        if (!down && !up) continue;
        __m256i b = load_bins8(a->bins + e);
        __m256 v = lookup(t->reg[REG_COARSE], b, regs);
        if (down) sd = _mm256_fmadd_ps(g, _mm256_sub_ps(lookup(t->reg[REG_PAIR], b, regs), v), sd);
        if (up) {
            __m256 upper = _mm256_cmp_ps(x, lookup(t->reg[REG_MID], b, regs), _CMP_GE_OQ);
            __m256 child = _mm256_blendv_ps(lookup(t->reg[REG_LO], b, regs), lookup(t->reg[REG_HI], b, regs), upper);
            su = _mm256_fmadd_ps(g, _mm256_sub_ps(child, v), su);
        }
    }
    if (a->sig) a->sig[0] += (double)hsum8(sd), a->sig[1] += (double)hsum8(su);
    return e;
}
#define CENTRED_IN_STEPS 0  // the centred signals: a plain pass after backward_steps
#endif

/* ------------------------------------------------------------------ entry points */
void ddq_forward_kernel(const DdqTables *t, bool ref, const float *restrict x, float *restrict y,
                        uint8_t *restrict bins, size_t e0, size_t e1) {
    if (ref) {  // the specification: a binary search over the thresholds
        for (size_t e = e0; e < e1; e++) bins[e] = (uint8_t)ddq_bin_of(t->thresh, t->nc, x[e]), y[e] = t->coarse[bins[e]];
        return;
    }
#if defined(DDQ_VECTOR)
    e0 = forward_vector(t, x, y, bins, e0, e1);
#endif
    BucketSearch bs = search_of(t);
    const float *coarse = t->coarse;
    for (size_t e = e0; e < e1; e++) {
        int b = bin_fast(&bs, x[e]);
        bins[e] = (uint8_t)b;
        y[e] = coarse[b];
    }
}

bool ddq_backward_kernel(const DdqTables *t, bool ref, const DdqBackward *a, size_t e0, size_t e1) {
#if defined(DDQ_VECTOR)
    if (ref || t->nc > VEC_LEVELS) return false;
    bool down = a->sig && t->m < DDQ_K, up = a->sig && t->m > 0;
    const DdqNear *nd = a->near_down, *nu = a->near_up;
    bool centred = a->sig && nd, plain_pass = centred && !CENTRED_IN_STEPS;
    for (size_t b0 = e0; b0 < e1; b0 += BLOCK) {
        size_t b1 = b0 + BLOCK < e1 ? b0 + BLOCK : e1;
        size_t e = backward_steps(t, a, b0, b1, down && !plain_pass, up && !plain_pass);
        if (plain_pass) {  // summed in locals: the bins are bytes and may alias a sum kept in memory
            double sd = 0, su = 0;
            for (size_t k = b0; k < e; k++) ddq_centred_signals(t, nd, nu, a->x[k], a->dy[k], a->bins[k], &sd, &su);
            a->sig[0] += sd, a->sig[1] += su;
        }
        for (; e < b1; e++) {  // the block's tail
            float x = a->x[e], g = a->dy[e], pass = (x >= t->coarse[0] && x <= t->coarse[t->nc - 1]) ? g : 0.0f;
            if (a->dx) a->dx[e] = a->dx_overwrite ? pass : a->dx[e] + pass;
            if (centred) ddq_centred_signals(t, nd, nu, x, g, a->bins[e], &a->sig[0], &a->sig[1]);
            else if (a->sig) ddq_element_signals(t, x, g, a->bins[e], &a->sig[0], &a->sig[1]);
        }
        if (a->h) histogram_block(a->bins + b0, a->dy + b0, b1 - b0, t->nc, a->h);
    }
    return true;
#else
    (void)t, (void)ref, (void)a, (void)e0, (void)e1;
    return false;
#endif
}
