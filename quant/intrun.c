/* intrun.c — running the integer program (see intmodel.h): reference kernels written like the
 * equations, and fast ones (im2col + igemm for dense, pointwise and linear layers, a direct
 * channel-vectorised loop for depthwise) that give the same int32 sums, hence the same codes.
 *
 * Legend: N images, H W C the input, OH OW OC the output, KH KW the kernel, G groups,
 * ICg = C/G input channels per group; u an input byte (code value k plus the quantizer's zero).
 *     acc[n][oh][ow][oc] = Σ_{kh,kw,i} (u[n][oh·s−p+kh][ow·s−p+kw][g·ICg+i] − zero) · w[kh][kw][i][oc]
 * Padding reads the byte `zero` (the value 0).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/igemm.h"
#include "core/threads.h"
#include "intmodel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__SSSE3__)
#include <tmmintrin.h>
#endif

typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

/* 16 int32 from p into the vector v (a macro: a 64-byte vector is no function argument or result
 * without AVX-512, whose calling convention differs). */
#define LOAD_I32X16(v, p) memcpy(&(v), (p), sizeof(i32x16))
typedef int8_t i8x16 __attribute__((vector_size(16)));
/* 16 bytes at p, unsigned or signed, widened into the 16 int32 lanes of v (GCC's own conversion
 * of a byte vector is built lane by lane: the AVX-512 instruction where there is one). */
#if defined(__AVX512F__)
#define WIDEN_X16(v, p, cvt, bytes_t)                                                                                  \
    do {                                                                                                               \
        __m512i w_ = cvt(_mm_loadu_si128((const __m128i *)(const void *)(p)));                                      \
        memcpy(&(v), &w_, 64);                                                                                         \
    } while (0)
#else
#define WIDEN_X16(v, p, cvt, bytes_t)                                                                                  \
    do {                                                                                                               \
        bytes_t b_;                                                                                                    \
        memcpy(&b_, (p), 16);                                                                                          \
        (v) = __builtin_convertvector(b_, i32x16);                                                                     \
    } while (0)
#endif
#define WIDEN_U8X16(v, p) WIDEN_X16(v, p, _mm512_cvtepu8_epi32, u8x16)
#define WIDEN_I8X16(v, p) WIDEN_X16(v, p, _mm512_cvtepi8_epi32, i8x16)

/* table[idx[i]] for 16 bytes (idx < 16): one pshufb where there is one. */
static inline u8x16 lookup16(u8x16 table, u8x16 idx) {
    u8x16 r;
#if defined(__SSSE3__)
    __m128i t, i;
    memcpy(&t, &table, 16);
    memcpy(&i, &idx, 16);
    t = _mm_shuffle_epi8(t, i);
    memcpy(&r, &t, 16);
#else
    for (int j = 0; j < 16; j++) r[j] = table[idx[j] & 15];
#endif
    return r;
}

typedef struct Buffers {
    void **t;          // per tensor: uint8 (codes) or int32 (FIX); t[0] the float input
} Buffers;

static size_t tensor_elems(const ITensor *t, int n) { return (size_t)n * t->h * t->w * t->c; }

/* ------------------------------------------------------------------ thresholds */
/* How many of the n ascending thresholds thr[] are <= v (a binary search). */
static inline int count_le_f32(const float *thr, int n, float v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (v >= thr[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The code of v among q's thresholds: the table's guess from y (v's value, approximately), then
 * exact comparisons of v with the thresholds thr (ascending) either way. Exact whatever the guess. */
static inline int settle(const IQuant *q, float y, int64_t v, const int32_t *thr, int nt) {
    float f = (y - q->lut_lo) * q->lut_inv;
    int code = f <= 0 || f != f ? 0 : f >= IQUANT_LUT ? nt : q->lut[(int)f];
    while (code < nt && thr[code] <= v) code++;
    while (code > 0 && thr[code - 1] > v) code--;
    return code;
}

#if defined(__AVX512F__)
/* settle() for 16 values at once: the table's guess by a gather, then exact comparisons with the
 * thresholds (gathered at thr_base + off + code: off per lane) until no lane moves; the bytes k + zero. */
static inline __m128i settle16(const IQuant *q, __m512 y, __m512i v, const int32_t *thr_base, __m512i off, int nt) {
    __m512 f = _mm512_mul_ps(_mm512_sub_ps(y, _mm512_set1_ps(q->lut_lo)), _mm512_set1_ps(q->lut_inv));
    __mmask16 low = _mm512_cmp_ps_mask(f, _mm512_setzero_ps(), _CMP_NLT_UQ) ^ 0xFFFF;  // f < 0 or NaN
    __mmask16 high = _mm512_cmp_ps_mask(f, _mm512_set1_ps((float)IQUANT_LUT), _CMP_GE_OQ);
    __m512i idx = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(f, _mm512_setzero_ps()), _mm512_set1_ps(IQUANT_LUT - 1)));
    __m512i code = _mm512_and_si512(_mm512_i32gather_epi32(idx, (const void *)q->lut, 1), _mm512_set1_epi32(0xFF));
    code = _mm512_mask_mov_epi32(code, low, _mm512_setzero_si512());
    code = _mm512_mask_mov_epi32(code, high, _mm512_set1_epi32(nt));
    __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(nt);
    for (;;) {
        __m512i at = _mm512_add_epi32(off, code);
        __mmask16 can_up = _mm512_cmplt_epi32_mask(code, top), can_down = _mm512_cmpgt_epi32_mask(code, _mm512_setzero_si512());
        __m512i t_up = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), can_up, at, thr_base, 4);
        __m512i t_down = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), can_down, _mm512_sub_epi32(at, one), thr_base, 4);
        __mmask16 up = can_up & _mm512_cmple_epi32_mask(t_up, v), down = can_down & _mm512_cmpgt_epi32_mask(t_down, v);
        if (!(up | down)) break;
        code = _mm512_mask_add_epi32(code, up, code, one);
        code = _mm512_mask_sub_epi32(code, down, code, one);
    }
    __m512i k = _mm512_i32gather_epi32(code, (const void *)q->k, 2);  // int16 in the low half
    k = _mm512_srai_epi32(_mm512_slli_epi32(k, 16), 16);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(k, _mm512_set1_epi32(q->zero)));
}
#endif

/* Codes by the line (intaffine.h) for n values v = s·x (s NULL: 1), value i on channel i's line
 * and thresholds (per) or all on line 0 and thr's one row, written as bytes to out. A line that is
 * not exact is settled by two comparisons. */
static void affine_bytes(const IAffine *a, const int32_t *x, const int32_t *s, bool per, const int32_t *thr, int nt,
                         uint8_t *out, size_t n) {
    size_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__)
    if (a->f32) {  // the same steps in float, 16 lanes
        __m512 m = _mm512_set1_ps(a->mf[0]), e = _mm512_set1_ps(a->ef[0]), lo = _mm512_set1_ps(a->lof[0]), hi = _mm512_set1_ps(a->hif[0]);
        __m512i kstep = _mm512_set1_epi32(a->kstep), kbase = _mm512_set1_epi32(a->kbase), one = _mm512_set1_epi32(1);
        __m512i top = _mm512_set1_epi32(nt), lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        __m512i row = per ? _mm512_mullo_epi32(lane, top) : _mm512_setzero_si512();
        __m128i t;
        memcpy(&t, a->bytes16, 16);
#if defined(__AVX512VBMI__)
        __m512i t0 = _mm512_loadu_si512((const void *)a->bytes256), t1 = _mm512_loadu_si512((const void *)(a->bytes256 + 64));
        __m512i t2 = _mm512_loadu_si512((const void *)(a->bytes256 + 128)), t3 = _mm512_loadu_si512((const void *)(a->bytes256 + 192));
#endif
        for (; i < n; i += 16) {
            __mmask16 k = n - i < 16 ? (__mmask16)((1u << (n - i)) - 1) : 0xFFFF;
            __m512i v = _mm512_maskz_loadu_epi32(k, x + i);
            if (s) v = _mm512_mullo_epi32(v, _mm512_maskz_loadu_epi32(k, s + i));
            if (per) {
                m = _mm512_maskz_loadu_ps(k, a->mf + i), e = _mm512_maskz_loadu_ps(k, a->ef + i);
                lo = _mm512_maskz_loadu_ps(k, a->lof + i), hi = _mm512_maskz_loadu_ps(k, a->hif + i);
            }
            __m512 f = _mm512_roundscale_ps(_mm512_fmadd_ps(_mm512_cvtepi32_ps(v), m, e), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            __m512i code = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(f, lo), hi));
            if (!a->exact) {  // intaffine_settle, 16 lanes
                const int32_t *base = thr + (per ? i * (size_t)nt : 0);
                __m512i at = _mm512_add_epi32(row, code);
                __mmask16 can_up = k & _mm512_cmplt_epi32_mask(code, top), can_down = k & _mm512_cmpgt_epi32_mask(code, _mm512_setzero_si512());
                __m512i t_up = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), can_up, at, base, 4);
                __mmask16 up = can_up & _mm512_cmple_epi32_mask(t_up, v), down = 0;
                if (!a->below) {
                    __m512i t_down = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), can_down, _mm512_sub_epi32(at, one), base, 4);
                    down = can_down & ~up & _mm512_cmpgt_epi32_mask(t_down, v);
                }
                code = _mm512_mask_sub_epi32(_mm512_mask_add_epi32(code, up, code, one), down, code, one);
            }
            __m128i b;
            if (a->stepped) b = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_mullo_epi32(code, kstep), kbase));
            else if (nt < 16) b = _mm_shuffle_epi8(t, _mm512_cvtepi32_epi8(code));
            else {
#if defined(__AVX512VBMI__)
                __m512i idx = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(code));
                __m512i low = _mm512_permutex2var_epi8(t0, idx, t1), high = _mm512_permutex2var_epi8(t2, idx, t3);
                b = _mm512_castsi512_si128(_mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high));
#else
                b = _mm512_cvtepi32_epi8(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, code, a->bytes, 4));
#endif
            }
            _mm_mask_storeu_epi8(out + i, k, b);
        }
        return;
    }
#endif
#if defined(__AVX512F__) && defined(__AVX512VL__)
    __m512d m = _mm512_set1_pd(a->m[0]), e = _mm512_set1_pd(a->e[0]), lo = _mm512_set1_pd(a->lo[0]), hi = _mm512_set1_pd(a->hi[0]);
    __m256i kstep = _mm256_set1_epi32(a->kstep), kbase = _mm256_set1_epi32(a->kbase), one = _mm256_set1_epi32(1);
    __m256i top = _mm256_set1_epi32(nt), row = per ? _mm256_setr_epi32(0, nt, 2 * nt, 3 * nt, 4 * nt, 5 * nt, 6 * nt, 7 * nt)
                                                   : _mm256_setzero_si256();
    __m128i t;
    memcpy(&t, a->bytes16, 16);
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
    // more than 16 uneven levels: the code's byte from four 64-byte tables by two vpermi2b
    __m512i t0 = _mm512_loadu_si512((const void *)a->bytes256), t1 = _mm512_loadu_si512((const void *)(a->bytes256 + 64));
    __m512i t2 = _mm512_loadu_si512((const void *)(a->bytes256 + 128)), t3 = _mm512_loadu_si512((const void *)(a->bytes256 + 192));
#endif
    for (; i < n; i += 8) {
        __mmask8 k = n - i < 8 ? (__mmask8)((1u << (n - i)) - 1) : 0xFF;  // the tail: masked loads
        __m256i v = _mm256_maskz_loadu_epi32(k, x + i);
        if (s) v = _mm256_mullo_epi32(v, _mm256_maskz_loadu_epi32(k, s + i));
        if (per) {
            m = _mm512_maskz_loadu_pd(k, a->m + i), e = _mm512_maskz_loadu_pd(k, a->e + i);
            lo = _mm512_maskz_loadu_pd(k, a->lo + i), hi = _mm512_maskz_loadu_pd(k, a->hi + i);
        }
        __m512d f = _mm512_fmadd_pd(_mm512_cvtepi32_pd(v), m, e);
        f = _mm512_roundscale_pd(f, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m256i code = _mm512_cvttpd_epi32(_mm512_min_pd(_mm512_max_pd(f, lo), hi));
        if (!a->exact) {  // intaffine_settle, 8 lanes: the thresholds above and below by gathers
            const int32_t *base = thr + (per ? i * (size_t)nt : 0);
            __m256i at = _mm256_add_epi32(row, code);
            __mmask8 can_up = k & _mm256_cmplt_epi32_mask(code, top), can_down = k & _mm256_cmpgt_epi32_mask(code, _mm256_setzero_si256());
            __m256i t_up = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), can_up, at, base, 4);
            __mmask8 up = can_up & _mm256_cmple_epi32_mask(t_up, v), down = 0;
            if (!a->below) {
                __m256i t_down = _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), can_down, _mm256_sub_epi32(at, one), base, 4);
                down = can_down & ~up & _mm256_cmpgt_epi32_mask(t_down, v);
            }
            code = _mm256_mask_sub_epi32(_mm256_mask_add_epi32(code, up, code, one), down, code, one);
        }
        __m128i b;
        if (a->stepped) b = _mm256_cvtepi32_epi8(_mm256_add_epi32(_mm256_mullo_epi32(code, kstep), kbase));
        else if (nt < 16) b = _mm_shuffle_epi8(t, _mm256_cvtepi32_epi8(code));
        else {
#if defined(__AVX512VBMI__) && defined(__AVX512BW__)
            __m512i idx = _mm512_castsi128_si512(_mm256_cvtepi32_epi8(code));
            __m512i low = _mm512_permutex2var_epi8(t0, idx, t1), high = _mm512_permutex2var_epi8(t2, idx, t3);
            b = _mm512_castsi512_si128(_mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high));  // bit 7: 128..255
#else
            b = _mm256_cvtepi32_epi8(_mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), k, code, a->bytes, 4));
#endif
        }
        if (n - i >= 8) memcpy(out + i, &b, 8);  // a constant size: one store, not a byte loop
        else memcpy(out + i, &b, n - i);
    }
#endif
    for (; i < n; i++) {
        size_t c = per ? i : 0;
        int32_t v = s ? s[i] * x[i] : x[i];
        int code = intaffine_code(v, a->m[c], a->e[c], a->lo[c], a->hi[c]);
        if (!a->exact) code = intaffine_settle(code, v, thr + c * (size_t)nt, nt);
        out[i] = (uint8_t)(a->stepped ? code * a->kstep + a->kbase : a->bytes[code]);
    }
}

/* The 16-entry byte table of a quantizer with ≤ 16 levels (k + zero; past the last level, the last). */
static u8x16 byte_table(const IQuant *q) {
    u8x16 table;
    int nt = q->n - 1;
    for (int j = 0; j < 16; j++) table[j] = (uint8_t)(q->k[j < nt ? j : nt] + q->zero);
    return table;
}

static void quant_input(const IQuant *q, const float *x, uint8_t *out, size_t n) {
    int nt = q->n - 1;
    for (size_t i = 0; i < n; i++) {
        float v = x[i], f = (v - q->lut_lo) * q->lut_inv;
        int code = f <= 0 || f != f ? 0 : f >= IQUANT_LUT ? nt : q->lut[(int)f];
        while (code < nt && q->thresh[code] <= v) code++;
        while (code > 0 && q->thresh[code - 1] > v) code--;
        out[i] = (uint8_t)(q->k[code] + q->zero);
    }
}

static void quant_fix(const IOp *op, const int32_t *x, int frac, uint8_t *out, size_t n) {
    const IQuant *q = &op->q;
    const int32_t *thr = op->fix_thr;
    int nt = q->n - 1;
    size_t i = 0;
    if (op->fix_aff.ok && (op->fix_aff.exact || nt > 15)) {  // by the line (a near line with ≤ 16 codes: counting is quicker than its two gathers)
        affine_bytes(&op->fix_aff, x, NULL, false, thr, nt, out, n);
        return;
    }
    if (nt <= 15) {  // ≤ 16 codes: count the thresholds reached, 16 values at a time
        u8x16 table = byte_table(q);
        for (; i + 16 <= n; i += 16) {
            i32x16 v, count = {0};
            LOAD_I32X16(v, x + i);
            for (int j = 0; j < nt; j++) count -= (i32x16)(v >= thr[j]);
            u8x16 codes = lookup16(table, __builtin_convertvector(count, u8x16));
            memcpy(out + i, &codes, 16);
        }
    }
    float unit = ldexpf(1, -frac);
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_loadu_si512((const void *)(x + i));
        __m128i b = settle16(q, _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(unit)), v, thr, _mm512_setzero_si512(), nt);
        _mm_storeu_si128((__m128i *)(void *)(out + i), b);
    }
#endif
    for (; i < n; i++) out[i] = (uint8_t)(q->k[settle(q, (float)x[i] * unit, x[i], thr, nt)] + q->zero);
}

/* ------------------------------------------------------------------ epilogue */
/* v rounded half away from zero, saturated to ±(2^31 − 1) (no libm call in the inner loop). */
static inline int32_t round_sat(double v) {
    if (v >= 2147483647.0) return INT32_MAX;
    if (v <= -2147483647.0) return -INT32_MAX;
    return (int32_t)(v >= 0 ? v + 0.5 : v - 0.5);
}

static inline double activate(ActKind act, double y, double six) {
    if (act == ACT_NONE) return y;
    y = y > 0 ? y : 0;
    return act == ACT_RELU6 && y > six ? six : y;
}

/* One output row of OC sums (zero-corrected) to its destination. */
/* Whether a codes epilogue takes its line (a near line with ≤ 16 codes does not: counting is
 * quicker than its two gathers, measured 1.5× on the main model). */
static bool by_line(const IConv *cv) { return cv->aff.ok && (cv->aff.exact || cv->out.n > 16); }

/* ≤ 16 codes (a 16-byte table): the thresholds reached counted 16 channels at a time, for rows
 * outputs of OC sums; a channel block's thresholds are loaded once for all the rows. Past OC the
 * lanes read slack (sums, signs, thresholds: 16 more) and are dropped. Inlined per nt, so that
 * the common counts unroll with their thresholds in registers. */
static inline __attribute__((always_inline)) void count_rows_nt(const IConv *cv, const int32_t *acc, int rows, uint8_t *o,
                                                                int nt) {
    int OC = cv->cout;
    u8x16 table = byte_table(&cv->out);
    for (int c = 0; c < OC; c += 16) {
        i32x16 t[15], s;
        for (int j = 0; j < nt; j++) LOAD_I32X16(t[j], cv->thr_t + (size_t)j * OC + c);
        LOAD_I32X16(s, cv->sign + c);
        for (int r = 0; r < rows; r++) {
            i32x16 v, count = {0};
            LOAD_I32X16(v, acc + (size_t)r * OC + c);
            v *= s;
            for (int j = 0; j < nt; j++) count -= (i32x16)(v >= t[j]);
            u8x16 codes = lookup16(table, __builtin_convertvector(count, u8x16));
            uint8_t *d = o + (size_t)r * OC + c;
            if (OC - c >= 16) memcpy(d, &codes, 16);  // a constant size: one store, not a byte loop
            else memcpy(d, &codes, (size_t)(OC - c));
        }
    }
}

static void count_rows(const IConv *cv, const int32_t *acc, int rows, uint8_t *o) {
    switch (cv->out.n - 1) {
    case 15: count_rows_nt(cv, acc, rows, o, 15); break;  // 4, 3, 2 bits
    case 7: count_rows_nt(cv, acc, rows, o, 7); break;
    case 3: count_rows_nt(cv, acc, rows, o, 3); break;
    default: count_rows_nt(cv, acc, rows, o, cv->out.n - 1); break;
    }
}

/* One output row of OC sums (zero-corrected) to its destination: the epilogues epilogue_block
 * has no block form for (codes settled from the table's guess, fixed point without AVX-512,
 * logits). */
static void epilogue_row(const IConv *cv, const int32_t *acc, void *dst, size_t at) {
    int OC = cv->cout, nt = cv->out.n - 1;
    switch (cv->epi) {
    case IEPI_CODES: {
        uint8_t *o = (uint8_t *)dst + at;
        const IQuant *q = &cv->out;
        int c = 0;
#if defined(__AVX512F__)
        if (nt > 15) {
            __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            __m512 lo = _mm512_setzero_ps(), six = _mm512_set1_ps(cv->act == ACT_RELU6 ? 6.0f : INFINITY);
            for (; c + 16 <= OC; c += 16) {
                __m512i a = _mm512_loadu_si512((const void *)(acc + c));
                __m512 y = _mm512_fmadd_ps(_mm512_loadu_ps(cv->a + c), _mm512_cvtepi32_ps(a), _mm512_loadu_ps(cv->b + c));
                if (cv->act != ACT_NONE) y = _mm512_min_ps(_mm512_max_ps(y, lo), six);
                __m512i v = _mm512_mullo_epi32(a, _mm512_loadu_si512((const void *)(cv->sign + c)));
                __m512i off = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(c)), _mm512_set1_epi32(nt));
                _mm_storeu_si128((__m128i *)(void *)(o + c), settle16(q, y, v, cv->thr, off, nt));
            }
        }
#endif
        for (; c < OC; c++) {
            float y = cv->a[c] * (float)acc[c] + cv->b[c];
            y = cv->act == ACT_NONE ? y : y < 0 ? 0 : cv->act == ACT_RELU6 && y > 6 ? 6 : y;
            int code = settle(q, y, (int64_t)cv->sign[c] * acc[c], cv->thr + (size_t)c * nt, nt);
            o[c] = (uint8_t)(q->k[code] + q->zero);
        }
        break;
    }
    case IEPI_FIX: {
        int32_t *o = (int32_t *)dst + at;
        for (int c = 0; c < OC; c++) o[c] = round_sat(activate(cv->act, fma(cv->fix_a[c], acc[c], cv->fix_b[c]), cv->fix_hi));
        break;
    }
    case IEPI_LOGITS: {
        float *o = (float *)dst + at;
        for (int c = 0; c < OC; c++) o[c] = (float)activate(cv->act, (double)cv->a[c] * acc[c] + cv->b[c], 6);
        break;
    }
    }
}

/* The reference epilogue, as the definitions read: a code is the number of the channel's integer
 * thresholds that s·acc reaches, counted one by one; a FIX value is act(a·acc + b)·2^frac rounded
 * half away from zero. */
static void epilogue_ref(const IConv *cv, const int32_t *acc, void *dst, size_t at) {
    int nt = cv->out.n - 1;
    for (int c = 0; c < cv->cout; c++) {
        if (cv->epi == IEPI_CODES) {
            int64_t v = (int64_t)cv->sign[c] * acc[c];
            int code = 0;
            for (int j = 0; j < nt; j++) code += v >= cv->thr[(size_t)c * nt + j];
            ((uint8_t *)dst)[at + c] = (uint8_t)(cv->out.k[code] + cv->out.zero);
        } else if (cv->epi == IEPI_FIX) {
            double y = activate(cv->act, fma(cv->a[c], acc[c], cv->b[c]), 6) * (cv->fix_hi / 6);  // fix_hi = 6·2^frac
            double r = y >= 0 ? floor(y + 0.5) : -floor(-y + 0.5);
            ((int32_t *)dst)[at + c] = r >= 2147483647.0 ? INT32_MAX : r <= -2147483647.0 ? -INT32_MAX : (int32_t)r;
        } else {
            ((float *)dst)[at + c] = (float)activate(cv->act, (double)cv->a[c] * acc[c] + cv->b[c], 6);
        }
    }
}

static void quant_input_ref(const IQuant *q, const float *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int code = 0;
        for (int j = 0; j < q->n - 1; j++) code += x[i] >= q->thresh[j];
        out[i] = (uint8_t)(q->k[code] + q->zero);
    }
}

static void quant_fix_ref(const IQuant *q, const int32_t *thr, const int32_t *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int code = 0;
        for (int j = 0; j < q->n - 1; j++) code += x[i] >= thr[j];
        out[i] = (uint8_t)(q->k[code] + q->zero);
    }
}

typedef struct QuantRun {
    const IOp *op;
    const ITensor *in;
    const void *x;
    uint8_t *y;
} QuantRun;

/* The fast quantization of images [begin, end) (elementwise: any split gives the same bytes). */
static void quant_images(void *ctx, int begin, int end, int tid) {
    const QuantRun *r = ctx;
    size_t per = tensor_elems(r->in, 1), at = per * (size_t)begin, e = per * (size_t)(end - begin);
    if (r->op->kind == IOP_QUANT_INPUT) quant_input(&r->op->q, (const float *)r->x + at, r->y + at, e);
    else quant_fix(r->op, (const int32_t *)r->x + at, r->in->frac, r->y + at, e);
}

void intquant_forward(const IOp *op, const ITensor *in, const void *x, uint8_t *y, int n, bool ref) {
    size_t e = tensor_elems(in, n);
    if (!ref) {
        QuantRun r = {.op = op, .in = in, .x = x, .y = y};
        parallel_for(n, quant_images, &r);
    } else if (op->kind == IOP_QUANT_INPUT) {
        quant_input_ref(&op->q, x, y, e);
    } else {
        quant_fix_ref(&op->q, op->fix_thr, x, y, e);
    }
}

/* ------------------------------------------------------------------ convolution */
typedef struct ConvRun {
    const IConv *cv;
    const uint8_t *x;
    void *y;
    int N, H, W, C, OH, OW;
} ConvRun;

/* The reference: the equation, one output pixel at a time. */
static void conv_ref(const ConvRun *r) {
    const IConv *cv = r->cv;
    int OC = cv->cout, ICg = cv->cin / cv->groups, OCg = OC / cv->groups;
    int32_t *acc = dq_malloc(((size_t)OC + 16) * sizeof(int32_t));  // 16: the vector epilogue's overreach
    for (int n = 0; n < r->N; n++)
        for (int oh = 0; oh < r->OH; oh++)
            for (int ow = 0; ow < r->OW; ow++) {
                for (int oc = 0; oc < OC; oc++) {
                    int g = oc / OCg;
                    int32_t s = 0;
                    for (int kh = 0; kh < cv->kh; kh++)
                        for (int kw = 0; kw < cv->kw; kw++) {
                            int ih = oh * cv->stride - cv->pad + kh, iw = ow * cv->stride - cv->pad + kw;
                            if (ih < 0 || ih >= r->H || iw < 0 || iw >= r->W) continue;  // reads the zero
                            for (int i = 0; i < ICg; i++) {
                                int u = r->x[(((size_t)n * r->H + ih) * r->W + iw) * r->C + g * ICg + i];
                                size_t wi = (((size_t)kh * cv->kw + kw) * ICg + i) * OC + oc;
                                s += (u - cv->in_zero) * (cv->wide ? cv->wide[wi] : cv->w[wi]);
                            }
                        }
                    acc[oc] = s;
                }
                epilogue_ref(cv, acc, r->y, (((size_t)n * r->OH + oh) * r->OW + ow) * OC);
            }
    dq_free(acc);
}

enum { ROWS = 64 };  // output pixels per block of the fast kernels

#if defined(__AVX512F__) && defined(__AVX512VL__)
/* The fixed-point epilogue of rows outputs, 8 channels at a time with their a, b loaded once:
 * the same operations as epilogue_row's (fma, the activation's clamp, half away from zero,
 * saturation), so the same values. */
static void fix_rows(const IConv *cv, const int32_t *acc, int rows, int32_t *o) {
    int OC = cv->cout;
    __m512d zero = _mm512_setzero_pd(), half = _mm512_set1_pd(0.5), top = _mm512_set1_pd(2147483647.0);
    __m512d hi = _mm512_set1_pd(cv->act == ACT_RELU6 ? cv->fix_hi : INFINITY);
    for (int c = 0; c < OC; c += 8) {
        __mmask8 k = OC - c < 8 ? (__mmask8)((1u << (OC - c)) - 1) : 0xFF;
        __m512d a = _mm512_maskz_loadu_pd(k, cv->fix_a + c), b = _mm512_maskz_loadu_pd(k, cv->fix_b + c);
        for (int r = 0; r < rows; r++) {
            __m512d y = _mm512_fmadd_pd(a, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(k, acc + (size_t)r * OC + c)), b);
            if (cv->act != ACT_NONE) y = _mm512_min_pd(_mm512_max_pd(y, zero), hi);
            __mmask8 neg = _mm512_cmp_pd_mask(y, zero, _CMP_LT_OQ);
            __m512d m = _mm512_roundscale_pd(_mm512_add_pd(_mm512_abs_pd(y), half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            m = _mm512_min_pd(m, top);  // saturate at ±(2^31 − 1), as round_sat
            m = _mm512_mask_sub_pd(m, neg, zero, m);
            _mm256_mask_storeu_epi32(o + (size_t)r * OC + c, k, _mm512_cvttpd_epi32(m));
        }
    }
}
#endif

/* The epilogue of rows outputs (sums zero-corrected, row-major, rows × OC) from output row row0,
 * the way chosen once for the block. */
static void epilogue_block(const IConv *cv, const int32_t *acc, int rows, void *dst, size_t row0) {
    int OC = cv->cout;
    if (cv->epi == IEPI_CODES && by_line(cv)) {
        uint8_t *o = (uint8_t *)dst + row0 * OC;
        for (int r = 0; r < rows; r++)
            affine_bytes(&cv->aff, acc + (size_t)r * OC, cv->sign, true, cv->thr, cv->out.n - 1, o + (size_t)r * OC, (size_t)OC);
    } else if (cv->epi == IEPI_CODES && cv->out.n <= 16) {
        count_rows(cv, acc, rows, (uint8_t *)dst + row0 * OC);
#if defined(__AVX512F__) && defined(__AVX512VL__)
    } else if (cv->epi == IEPI_FIX) {
        fix_rows(cv, acc, rows, (int32_t *)dst + row0 * OC);
#endif
    } else {
        for (int r = 0; r < rows; r++) epilogue_row(cv, acc + (size_t)r * OC, dst, (row0 + (size_t)r) * OC);
    }
}

/* Fast dense / pointwise / linear: rows of im2col bytes (K padded to 4) through igemm; a 1×1
 * stride-1 convolution whose channels are a multiple of 4 reads its input rows as they are. */
static size_t im2col_stride(const IConv *cv) { return (size_t)(cv->kh * cv->kw * cv->cin + 3) / 4 * 4; }

static bool direct_rows(const IConv *cv) {
    return cv->kh == 1 && cv->kw == 1 && cv->stride == 1 && cv->pad == 0 && cv->cin % 4 == 0;
}

/* A multipoint layer's sums (intmodel.h): part holds the GEMM's rows of Cout + extra columns —
 * point 0 in every channel, then the later points where channels have them; acc gets Σ_p pmul·sums_p,
 * the input zero's correction included (each row while it is in cache). */
static void add_points(const IConv *cv, const int32_t *part, int rows, int32_t *acc) {
    int OC = cv->cout, N = OC + cv->extra, zero = cv->in_zero;
    for (int m = 0; m < rows; m++) {
        const int32_t *pr = part + (size_t)m * N;
        int32_t *ar = acc + (size_t)m * OC;
        for (int c = 0; c < OC; c++) ar[c] = cv->pmul[c] * pr[c];
        for (int j = 0; j < cv->extra; j++) ar[cv->xchan[j]] += cv->xmul[j] * pr[OC + j];
        if (zero)
            for (int c = 0; c < OC; c++) ar[c] -= zero * cv->wsum[c];
    }
}

static void dense_rows(void *ctx, int begin, int end, int tid) {
    const ConvRun *r = ctx;
    const IConv *cv = r->cv;
    int K = cv->kh * cv->kw * cv->cin, OC = cv->cout, P = r->OH * r->OW, M = r->N * P;
    bool direct = direct_rows(cv);
    size_t lda = direct ? (size_t)cv->cin : im2col_stride(cv), col_words = direct ? 0 : ROWS * lda / 4 + 16;
    size_t acc_words = (size_t)OC * ROWS + 16, part_words = cv->points > 1 ? (size_t)(OC + cv->extra) * ROWS : 0;
    float *scratch = threads_scratch(tid, THREADS_SLOT_INT_COLUMNS, col_words + acc_words + part_words);
    uint8_t *col = (uint8_t *)scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + col_words), *part = (int32_t *)(void *)(scratch + col_words + acc_words);
    for (int blk = begin; blk < end; blk++) {
        int m0 = blk * ROWS, m1 = m0 + ROWS < M ? m0 + ROWS : M;
        const uint8_t *a = direct ? r->x + (size_t)m0 * lda : col;
        for (int m = m0; m < m1 && !direct; m++) {
            int n = m / P, rem = m % P, oh = rem / r->OW, ow = rem % r->OW;
            uint8_t *d = col + (size_t)(m - m0) * lda;
            for (int kh = 0; kh < cv->kh; kh++)
                for (int kw = 0; kw < cv->kw; kw++, d += cv->cin) {
                    int ih = oh * cv->stride - cv->pad + kh, iw = ow * cv->stride - cv->pad + kw;
                    if (ih < 0 || ih >= r->H || iw < 0 || iw >= r->W) memset(d, cv->in_zero, (size_t)cv->cin);
                    else memcpy(d, r->x + (((size_t)n * r->H + ih) * r->W + iw) * r->C, (size_t)cv->cin);
                }
            memset(col + (size_t)(m - m0) * lda + K, 0, lda - (size_t)K);
        }
        if (cv->points > 1) {
            igemm_serial(m1 - m0, OC + cv->extra, K, a, (int)lda, cv->packed, part, OC + cv->extra);
            add_points(cv, part, m1 - m0, acc);
        } else {
            igemm_serial(m1 - m0, OC, K, a, (int)lda, cv->packed, acc, OC);
            for (int m = 0; m < m1 - m0 && cv->in_zero; m++)  // (after a ReLU the zero is 0: nothing to correct)
                for (int c = 0; c < OC; c++) acc[(size_t)m * OC + c] -= cv->in_zero * cv->wsum[c];
        }
        epilogue_block(cv, acc, m1 - m0, r->y, (size_t)m0);
    }
}

/* Tap i of a depthwise layer: its int8 weight, or a multipoint layer's 32-bit sum of points. */
static inline int32_t dw_tap(const IConv *cv, size_t i) { return cv->wide ? cv->wide[i] : cv->w[i]; }
#define LOAD_TAPS(v, cv, i)                                                                                           \
    do {                                                                                                               \
        if ((cv)->wide) LOAD_I32X16(v, (cv)->wide + (i));                                                              \
        else WIDEN_I8X16(v, (cv)->w + (i));                                                                            \
    } while (0)

/* Fast depthwise (G = C = OC): a block of up to ROWS pixels of one output row at a time, each tap
 * added over the whole block — acc[ow][c] += (u − zero)·w[c], channels along the vector — so the
 * padding (value 0) is simply left out. */
static void depthwise_rows(void *ctx, int begin, int end, int tid) {
    const ConvRun *r = ctx;
    const IConv *cv = r->cv;
    int C = cv->cout, S = cv->stride, zero = cv->in_zero;
    int32_t *block = (int32_t *)(void *)threads_scratch(tid, THREADS_SLOT_INT_COLUMNS, (size_t)C * ROWS + 16);
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / r->OH, oh = row % r->OH;
        for (int ow0 = 0; ow0 < r->OW; ow0 += ROWS) {
            int ow1 = ow0 + ROWS < r->OW ? ow0 + ROWS : r->OW;
            memset(block, 0, (size_t)(ow1 - ow0) * C * sizeof(int32_t));
            for (int kh = 0; kh < cv->kh; kh++) {
                int ih = oh * S - cv->pad + kh;
                if (ih < 0 || ih >= r->H) continue;
                const uint8_t *xrow = r->x + ((size_t)n * r->H + ih) * r->W * C;
                // outputs whose three input columns are all inside: the kernel row's taps together
                int in_lo = ow0, in_hi = ow1;
                if (cv->kw == 3) {
                    while (in_lo < in_hi && in_lo * S - cv->pad < 0) in_lo++;
                    while (in_hi > in_lo && (in_hi - 1) * S - cv->pad + 2 >= r->W) in_hi--;
                    size_t w0 = (size_t)(kh * 3) * C, w1 = w0 + C, w2 = w1 + C;
                    int c = 0;
                    for (; c + 16 <= C; c += 16) {  // 16 channels at a time, their taps kept for the row
                        i32x16 k0, k1, k2, zk, a, x0, x1, x2;
                        LOAD_TAPS(k0, cv, w0 + c);
                        LOAD_TAPS(k1, cv, w1 + c);
                        LOAD_TAPS(k2, cv, w2 + c);
                        zk = zero * (k0 + k1 + k2);  // Σ (u − zero)·k = Σ u·k − zero·Σ k
                        for (int ow = in_lo; ow < in_hi; ow++) {
                            const uint8_t *x = xrow + (size_t)(ow * S - cv->pad) * C + c;
                            int32_t *acc = block + (size_t)(ow - ow0) * C + c;
                            LOAD_I32X16(a, acc);
                            WIDEN_U8X16(x0, x);
                            WIDEN_U8X16(x1, x + C);
                            WIDEN_U8X16(x2, x + 2 * C);
                            a += x0 * k0 + x1 * k1 + x2 * k2 - zk;
                            memcpy(acc, &a, sizeof a);
                        }
                    }
                    for (int ow = in_lo; ow < in_hi && c < C; ow++) {  // the channels past the last 16
                        const uint8_t *x = xrow + (size_t)(ow * S - cv->pad) * C;
                        int32_t *acc = block + (size_t)(ow - ow0) * C;
                        for (int cc = c; cc < C; cc++)
                            acc[cc] += (x[cc] - zero) * dw_tap(cv, w0 + cc) + (x[C + cc] - zero) * dw_tap(cv, w1 + cc) +
                                       (x[2 * C + cc] - zero) * dw_tap(cv, w2 + cc);
                    }
                } else {
                    in_lo = in_hi = ow0;
                }
                for (int kw = 0; kw < cv->kw; kw++) {  // the rest, tap by tap
                    size_t w = (size_t)(kh * cv->kw + kw) * C;
                    // the outputs whose input column iw = ow·S − pad + kw is inside [0, W)
                    int lo = ow0, hi = ow1;
                    while (lo < hi && lo * S - cv->pad + kw < 0) lo++;
                    while (hi > lo && (hi - 1) * S - cv->pad + kw >= r->W) hi--;
                    for (int ow = lo; ow < hi; ow++) {
                        if (ow >= in_lo && ow < in_hi) continue;  // done above
                        const uint8_t *x = xrow + (size_t)(ow * S - cv->pad + kw) * C;
                        int32_t *acc = block + (size_t)(ow - ow0) * C;
                        int c = 0;
                        for (; c + 16 <= C; c += 16) {
                            i32x16 a, u, k;
                            LOAD_I32X16(a, acc + c);
                            WIDEN_U8X16(u, x + c);
                            LOAD_TAPS(k, cv, w + c);
                            a += (u - zero) * k;
                            memcpy(acc + c, &a, sizeof a);
                        }
                        for (; c < C; c++) acc[c] += (x[c] - zero) * dw_tap(cv, w + c);
                    }
                }
            }
            epilogue_block(cv, block, ow1 - ow0, r->y, (size_t)row * r->OW + (size_t)ow0);
        }
    }
}

void intconv_forward(const IConv *cv, const ITensor *in, const ITensor *out, const uint8_t *x, void *y, int N, bool ref) {
    ConvRun r = {.cv = cv, .x = x, .y = y, .N = N, .H = in->h, .W = in->w, .C = in->c, .OH = out->h, .OW = out->w};
    if (cv->kh == 1 && cv->kw == 1 && in->c != cv->cin)  // a linear layer on a flattened input
        r.H = r.W = 1, r.C = cv->cin;
    if (ref) conv_ref(&r);
    else if (cv->groups == 1) parallel_for((N * r.OH * r.OW + ROWS - 1) / ROWS, dense_rows, &r);
    else if (cv->groups == cv->cin && cv->cin == cv->cout) parallel_for(N * r.OH, depthwise_rows, &r);
    else conv_ref(&r);
}

/* ------------------------------------------------------------------ the other ops */
/* v·2^(to − from), rounded half up when it drops bits. */
static inline int64_t rescale(int64_t v, int from, int to) {
    if (to >= from) return v * ((int64_t)1 << (to - from));
    int s = from - to;
    return (v + ((int64_t)1 << (s - 1))) >> s;
}

static void add_fix(const int32_t *a, int fa, const int32_t *b, int fb, int32_t *y, int fy, size_t n, bool relu) {
    for (size_t i = 0; i < n; i++) {
        int64_t s = rescale(a[i], fa, fy) + rescale(b[i], fb, fy);
        if (relu && s < 0) s = 0;
        y[i] = s > INT32_MAX ? INT32_MAX : s < -INT32_MAX ? -INT32_MAX : (int32_t)s;
    }
}

/* The mean over H·W, rounded half away from zero (sums of at most 2^16 pixels of 31 bits: int64). */
static void gap_fix(const int32_t *x, int32_t *y, int N, int HW, int C) {
    int64_t *s = dq_malloc((size_t)C * sizeof(int64_t));
    for (int n = 0; n < N; n++) {
        memset(s, 0, (size_t)C * sizeof(int64_t));
        for (int p = 0; p < HW; p++)  // pixel by pixel: the channels along the vector
            for (int c = 0; c < C; c++) s[c] += x[((size_t)n * HW + p) * C + c];
        for (int c = 0; c < C; c++) y[(size_t)n * C + c] = (int32_t)(s[c] >= 0 ? (s[c] + HW / 2) / HW : -((-s[c] + HW / 2) / HW));
    }
    dq_free(s);
}

static void maxpool_fix(const int32_t *x, int32_t *y, const ITensor *in, const ITensor *out, Pool2dArgs p, int N) {
    int C = in->c;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < out->h; oh++)
            for (int ow = 0; ow < out->w; ow++)
                for (int c = 0; c < C; c++) {
                    int32_t m = INT32_MIN;
                    for (int kh = 0; kh < p.kernel; kh++)
                        for (int kw = 0; kw < p.kernel; kw++) {
                            int ih = oh * p.stride - p.pad + kh, iw = ow * p.stride - p.pad + kw;
                            if (ih < 0 || ih >= in->h || iw < 0 || iw >= in->w) continue;
                            int32_t v = x[(((size_t)n * in->h + ih) * in->w + iw) * C + c];
                            m = v > m ? v : m;
                        }
                    y[(((size_t)n * out->h + oh) * out->w + ow) * C + c] = m;
                }
}

static void shortcut_fix(const int32_t *x, int32_t *y, const ITensor *in, const ITensor *out, int s, int N) {
    int lo = (out->c - in->c) / 2;
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < out->h; oh++)
            for (int ow = 0; ow < out->w; ow++) {
                int32_t *d = y + (((size_t)n * out->h + oh) * out->w + ow) * out->c;
                const int32_t *src = x + (((size_t)n * in->h + oh * s) * in->w + ow * s) * in->c;
                for (int c = 0; c < out->c; c++) d[c] = c >= lo && c < lo + in->c ? src[c - lo] : 0;
            }
}

/* ------------------------------------------------------------------ the program */
/* The program in steps: buffers for every tensor, ops run up to a given one (the agreement check
 * stops before each quantized layer to compare, and to substitute, its input codes). */
typedef struct Runner {
    const IntModel *im;
    void **buf;        // per tensor; buf[0] the float input
    float *logits;
    int n, next;       // images; the next op to run
    bool ref;
} Runner;

static void **new_buffers(const IntModel *im, int n) {
    void **buf = dq_calloc((size_t)im->n_tensors, sizeof *buf);
    for (int t = 1; t < im->n_tensors; t++) {
        size_t e = tensor_elems(&im->tensors[t], n);
        buf[t] = dq_malloc(im->tensors[t].kind == ITENSOR_CODES ? e : e * sizeof(int32_t));
    }
    return buf;
}

static void runner_init(Runner *r, const IntModel *im, const float *x, int n, float *logits, bool ref) {
    *r = (Runner){.im = im, .logits = logits, .n = n, .ref = ref};
    r->buf = new_buffers(im, n);
    r->buf[0] = (void *)(uintptr_t)x;
}

static void runner_free(Runner *r) {
    for (int t = 1; t < r->im->n_tensors; t++) dq_free(r->buf[t]);
    dq_free(r->buf);
}

/* Runs ops [next, end). */
static void runner_until(Runner *r, int end) {
    const IntModel *im = r->im;
    void **buf = r->buf;
    int n = r->n;
    for (; r->next < end; r->next++) {
        const IOp *op = &im->ops[r->next];
        double t0 = im->op_seconds ? clock_seconds() : 0;
        const ITensor *in = &im->tensors[op->in], *out = &im->tensors[op->out];
        switch (op->kind) {
        case IOP_QUANT_INPUT:
        case IOP_QUANT_FIX: intquant_forward(op, in, buf[op->in], buf[op->out], n, r->ref); break;
        case IOP_CONV:
            intconv_forward(&op->conv, in, out, buf[op->in], r->next == im->logits ? (void *)r->logits : buf[op->out], n,
                            r->ref);
            break;
        case IOP_ADD:
            add_fix(buf[op->in], in->frac, buf[op->in2], im->tensors[op->in2].frac, buf[op->out], out->frac,
                    tensor_elems(out, n), op->relu);
            break;
        case IOP_GAP: gap_fix(buf[op->in], buf[op->out], n, in->h * in->w, in->c); break;
        case IOP_MAXPOOL: maxpool_fix(buf[op->in], buf[op->out], in, out, op->pool, n); break;
        case IOP_SHORTCUT: shortcut_fix(buf[op->in], buf[op->out], in, out, op->stride, n); break;
        }
        if (im->op_seconds) im->op_seconds[r->next] += clock_seconds() - t0;
    }
}

/* The buffers of each part of a batch: one part per thread when the batch is split by images. */
struct IntWork {
    int n, parts;      // images the buffers were made for; parts of the batch
    void ***buf;       // (parts) per tensor
};

void intmodel_release_work(IntModel *im) {
    struct IntWork *w = im->work;
    if (!w) return;
    for (int p = 0; p < w->parts; p++) {
        for (int t = 1; t < im->n_tensors; t++) dq_free(w->buf[p][t]);
        dq_free(w->buf[p]);
    }
    dq_free(w->buf);
    dq_free(w);
    im->work = NULL;
}

typedef struct Parts {
    IntModel *im;
    const float *x;
    float *logits;
    int n, parts;
    bool ref;
} Parts;

/* Parts [begin, end) of the batch, each its images [n·p/P, n·(p+1)/P) through the whole program
 * on its own buffers (the kernels' parallel_for inside runs serially on this thread). */
static void run_parts(void *ctx, int begin, int end, int tid) {
    const Parts *pt = ctx;
    const IntModel *im = pt->im;
    size_t in_elems = (size_t)im->in_h * im->in_w * im->in_c;
    for (int p = begin; p < end; p++) {
        int first = (int)((long long)pt->n * p / pt->parts), last = (int)((long long)pt->n * (p + 1) / pt->parts);
        Runner r = {.im = im, .buf = im->work->buf[p], .logits = pt->logits + (size_t)first * im->num_classes,
                    .n = last - first, .ref = pt->ref};
        r.buf[0] = (void *)(uintptr_t)(pt->x + (size_t)first * in_elems);
        runner_until(&r, im->n_ops);
    }
}

/* A batch of at least 4 images per thread is split by images, one part per thread, with no
 * synchronisation between the ops; a smaller one (and a profiled run, whose op times are one
 * thread's) runs op after op, each op split across the threads. Every image's integers are the
 * same either way. */
void intmodel_forward(IntModel *im, const float *x, int n, float *logits, bool ref) {
    int T = threads_count(), parts = T > 1 && n >= 4 * T && !im->op_seconds ? T : 1;
    struct IntWork *w = im->work;
    if (w && (w->parts != parts || w->n < n)) intmodel_release_work(im);
    if (!im->work) {
        w = im->work = dq_malloc(sizeof *w);
        w->n = n, w->parts = parts;
        w->buf = dq_calloc((size_t)parts, sizeof *w->buf);
        for (int p = 0; p < parts; p++) w->buf[p] = new_buffers(im, (n + parts - 1) / parts);
    }
    Parts pt = {.im = im, .x = x, .logits = logits, .n = n, .parts = parts, .ref = ref};
    if (parts == 1) run_parts(&pt, 0, 1, 0);
    else parallel_for(parts, run_parts, &pt);
}

/* ------------------------------------------------------------------ agreement with fake-quant */
typedef struct Taps {
    const IntModel *im;
    Runner chain;      // the program as it runs
    Runner forced;     // the program fed the fake-quant codes at every quantized layer
    IntAgreement *out;
} Taps;

/* The record of the quantizer that made op i's input codes. */
static const IQuant *input_quant(const IntModel *im, int i) {
    for (int j = i - 1; j >= 0; j--) {
        const IOp *p = &im->ops[j];
        if (p->out == im->ops[i].in) return p->kind == IOP_CONV ? &p->conv.out : &p->q;
    }
    return NULL;
}

/* The fake-quant layer saw xq (levels); the integer op of the same name gets bytes k + zero.
 * Compared as codes: the level's index through the quantizer's thresholds, as k + zero. */
static void tap(void *ctx, const QuantLayer *l, const Tensor *xq) {
    Taps *t = ctx;
    const IntModel *im = t->im;
    int i = t->forced.next;
    while (i < im->n_ops && !(im->ops[i].kind == IOP_CONV && strcmp(im->ops[i].name, l->base.name) == 0)) i++;
    if (i == im->n_ops) return;  // not in the program (cannot happen for a program built from this model)
    runner_until(&t->forced, i);
    const IQuant *q = input_quant(im, i);
    float levels[256], thresh[255];
    int nl = l->aq->ops->grid(l->aq, levels, thresh);
    const IOp *op = &im->ops[i];
    uint8_t *forced = t->forced.buf[op->in];
    const uint8_t *chain = t->chain.buf[op->in];
    long long alone = 0, same = 0;
    for (size_t e = 0; e < xq->numel; e++) {
        uint8_t u = (uint8_t)(q->k[count_le_f32(thresh, nl - 1, xq->data[e])] + q->zero);
        alone += forced[e] == u, same += chain[e] == u;
        forced[e] = u;  // from here on, the fake-quant codes
    }
    t->out->alone[i] += alone, t->out->chain[i] += same, t->out->total[i] += (long long)xq->numel;
}

void intmodel_agreement(const IntModel *im, Model *m, QuantContext *qc, const float *x, int n, IntAgreement *out) {
    float *logits = dq_malloc(2 * (size_t)n * im->num_classes * sizeof(float));
    Taps taps = {.im = im, .out = out};
    runner_init(&taps.chain, im, x, n, logits, false);
    runner_until(&taps.chain, im->n_ops);
    runner_init(&taps.forced, im, x, n, logits + (size_t)n * im->num_classes, false);
    qc->tap = tap, qc->tap_ctx = &taps;
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.compact = true, t.training = false;  // the tap reads each layer's values as they come
    Tensor xt = tensor_view((float *)(uintptr_t)x, 4, (const int[]){n, im->in_h, im->in_w, im->in_c});
    Tensor *y = model_forward(m, &t, &xt);
    qc->tap = NULL, qc->tap_ctx = NULL;
    for (int i = 0; i < n; i++) {  // top-1 of the fake-quant logits against the program's
        const float *f = y->data + (size_t)i * im->num_classes, *g = logits + (size_t)i * im->num_classes;
        int a_ = 0, b = 0;
        for (int k = 1; k < im->num_classes; k++) a_ = f[k] > f[a_] ? k : a_, b = g[k] > g[b] ? k : b;
        out->top1_agree += a_ == b;
    }
    out->images += n;
    arena_free(&a);
    runner_free(&taps.chain);
    runner_free(&taps.forced);
    dq_free(logits);
}

void intagreement_init(IntAgreement *a, const IntModel *im) {
    *a = (IntAgreement){.n_ops = im->n_ops};
    a->alone = dq_calloc((size_t)im->n_ops, sizeof *a->alone);
    a->chain = dq_calloc((size_t)im->n_ops, sizeof *a->chain);
    a->total = dq_calloc((size_t)im->n_ops, sizeof *a->total);
}

void intagreement_free(IntAgreement *a) {
    dq_free(a->alone), dq_free(a->chain), dq_free(a->total);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ a listing */
void intmodel_print(const IntModel *im, FILE *f) {
    static const char *kinds[] = {"quant-input", "conv", "quant-fix", "add", "gap", "maxpool", "shortcut"};
    static const char *epis[] = {"codes", "fix", "logits"};
    for (int i = 0; i < im->n_ops; i++) {
        const IOp *op = &im->ops[i];
        const ITensor *o = &im->tensors[op->out];
        fprintf(f, "%3d %-12s %-28s t%d -> t%d (%dx%dx%d ", i, kinds[op->kind], op->name, op->in, op->out, o->h, o->w, o->c);
        if (o->kind == ITENSOR_CODES) fprintf(f, "codes)");
        else fprintf(f, "fix 2^-%d)", o->frac);
        if (op->kind == IOP_CONV)
            fprintf(f, "  %dx%d/%d g%d w%db -> %s %d levels", op->conv.kh, op->conv.kw, op->conv.stride, op->conv.groups,
                    op->conv.wbits, epis[op->conv.epi], op->conv.epi == IEPI_CODES ? op->conv.out.n : 0);
        if (op->kind == IOP_CONV && op->conv.points > 1) fprintf(f, ", %d points", op->conv.points);
        if (op->kind == IOP_QUANT_INPUT || op->kind == IOP_QUANT_FIX) fprintf(f, "  %d levels", op->q.n);
        const IAffine *a = op->kind == IOP_CONV ? &op->conv.aff : op->kind == IOP_QUANT_FIX ? &op->fix_aff : NULL;
        if (a && a->ok)
            fprintf(f, " (by a line in %s%s)", a->f32 ? "float" : "double",
                    a->exact ? "" : a->below ? ", then 1 comparison" : ", then 2 comparisons");
        fputc('\n', f);
    }
}
