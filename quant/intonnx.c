/* intonnx.c — an integer program (intmodel.h) as an ONNX QDQ graph (nn/onnx.h writes it).
 *
 * Codes tensors are uint8 (k + zero); fixed-point tensors are float (their real values). Each
 * convolution is the unit ONNX Runtime fuses into an integer convolution:
 *
 *     codes ─DequantizeLinear(s_x, zero)─┐
 *     int8 weights ─DequantizeLinear(s_w[c], axis 0)─ Conv ─ QuantizeLinear(s_y, zero_y) ─ level table
 *     int32 bias B_c ─DequantizeLinear(s_x·s_w[c], axis 0)─┘
 *
 * ONNX Runtime computes the fine byte f = rne((acc + B_c)·M_c) + zero_y, M_c = s_x·s_w[c]/s_y, with
 * acc the exact Σ k_x·w (a channel with a < 0 has its weights negated). The engine's code steps
 * at integer thresholds thr[c][j] on acc; the export looks for the M_c and B_c per channel that put
 * every step of f across the fine byte K[j] where the (shared) table starts level j + 1 exactly
 * at thr[c][j], and checks the result in ONNX Runtime's float arithmetic (IntOnnxStats counts the
 * thresholds that hold). The table — 256 uint8 entries, Cast to int32 then Gather — is left out
 * where the fine bytes already are the codes' bytes (8-bit codes, evenly spaced levels). A float
 * tensor (the image, a residual sum) is quantized by an Add (half a fine step where that helps,
 * plus a sliver so a value on a threshold rounds up as the engine's ≥ does) and QuantizeLinear.
 * Residual adds, pooling and the option-A shortcut act on the float values; the classifier's
 * logits are its Conv's output.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "intmodel.h"
#include "nn/onnx.h"

typedef struct QWalk {
    OnnxGraph g;
    const IntModel *im;
    const IQuant **quant;   // (tensors) the quantizer of each codes tensor
    char (*name)[32];       // (tensors) the ONNX value holding it
    bool fused;             // every codes epilogue as the fused unit, exact or not
    IntOnnxStats st;
} QWalk;

/* Where a QuantizeLinear's fine bytes go: f = clamp(rne(v/scale) + zero, lo, hi), and the tensor
 * then holds the code of level #{j : f >= K[j]} (K[j] = 0: always reached, FINE_NEVER: never). */
typedef struct Fine {
    float scale;
    int zero, lo, hi;
    int K[255];
    bool table;             // the fine bytes are not the codes' bytes: a table maps them
    bool twice;             // float inputs: the table's index is the sum of two fine bytes, the
                            // second quantized half a step higher (so every half step is told apart)
    double shift;           // float inputs: the value is raised by shift·scale (plus a sliver) first
} Fine;

#define FINE_MARGIN 2e-3    // fine steps kept between a rounding boundary and the nearest acc value
#define FINE_SLIVER 0x1p-14 // fine steps a float input is raised by so that ties round up
#define FINE_NEVER (1 << 30) // K of a level never reached

static int fine_level(const Fine *f, int nt, int b) {
    int j = 0;
    while (j < nt && b >= f->K[j]) j++;
    return j;
}

/* Whether q's levels are consecutive integers k0, k0 + 1, …: then QuantizeLinear's bytes,
 * clamped to theirs, are the codes' bytes. */
static bool fine_is_codes(const IQuant *q) {
    for (int j = 1; j < q->n; j++)
        if (q->k[j] != q->k[0] + j) return false;
    return true;
}

/* Threshold j's kind under act: −1 always reached (at or below act's floor), +1 never (above its
 * ceiling), 0 a real step — as acc_threshold decides in intmodel.c. */
static int thresh_kind(const IQuant *q, ActKind act, int j) {
    if (act != ACT_NONE && q->thresh[j] <= 0) return -1;
    if (act == ACT_RELU6 && q->thresh[j] > 6) return 1;
    return 0;
}

/* Fine grid candidate `which` for q (false when there is none): 0 the codes' own bytes where the
 * levels are every byte; else a table over the quantizer's grid (1: plain, 2: half a step up), half
 * its grid raised a quarter (3), or 250 steps over the thresholds' span (4). */
static bool fine_candidate(const IQuant *q, ActKind act, int which, Fine *f) {
    int nt = q->n - 1;
    bool codes = fine_is_codes(q);
    if (codes != (which == 0)) return false;
    *f = (Fine){.table = !codes, .lo = 0, .hi = 255};
    if (codes) {  // clamped to the levels' bytes (and act's range: no Relu or Clip in float)
        f->scale = q->scale, f->zero = q->zero;
        for (int j = 0; j < nt; j++) f->K[j] = q->k[j + 1] + q->zero;
        f->lo = q->k[0] + q->zero, f->hi = q->k[nt] + q->zero;
        if (act != ACT_NONE) f->lo = f->lo > f->zero ? f->lo : f->zero;
        if (act == ACT_RELU6) f->hi = (int)fmin(f->hi, f->zero + nearbyintf(6 / f->scale));
    } else {
        double lo = INFINITY, hi = -INFINITY;
        for (int j = 0; j < nt; j++)
            if (!thresh_kind(q, act, j)) lo = fmin(lo, q->thresh[j]), hi = fmax(hi, q->thresh[j]);
        double s = which <= 2 ? q->scale : which == 3 ? q->scale / 2.0 : (hi - lo) / 250;
        if (!(s > 0) || !isfinite(s)) s = q->scale;
        f->scale = (float)s, f->shift = which == 2 ? 0.5 : which == 3 ? 0.5 : 0;
        // the boundary nearest threshold t is the half-integer floor(t/scale + shift) + ½: K = that + ½ + zero
        double ulo = lo > hi ? 0 : floor(lo / f->scale + f->shift), uhi = lo > hi ? 0 : floor(hi / f->scale + f->shift);
        double zlo = fmax(0, -ulo), zhi = fmin(255, 254 - uhi);
        if (zlo > zhi) return false;
        f->zero = (int)floor((zlo + zhi) / 2);
        for (int j = 0; j < nt; j++) {
            int kind = thresh_kind(q, act, j);
            f->K[j] = kind < 0 ? 0 : kind > 0 ? FINE_NEVER : (int)floor(q->thresh[j] / f->scale + f->shift) + 1 + f->zero;
        }
    }
    return true;
}

/* ONNX Runtime's fine byte for an int32 sum A (acc plus bias) at multiplier sx·sw/sy, all float. */
static int ort_requant(double A, float sx, float sw, const Fine *f) {
    float m = sx * sw / f->scale, v = (float)A * m;
    v = fmaxf(v, (float)(f->lo - f->zero)), v = fminf(v, (float)(f->hi - f->zero));
    return (int)nearbyintf(v) + f->zero;
}

/* How many of channel thr's nt thresholds ONNX Runtime steps across exactly with sw and B. */
static int channel_exact(const Fine *f, const int32_t *thr, int nt, float sx, float sw, double B) {
    int ok = 0;
    for (int j = 0; j < nt; j++) {
        if (thr[j] == INT32_MIN) ok += fine_level(f, nt, f->lo) > j;
        else if (thr[j] == INT32_MAX) ok += fine_level(f, nt, f->hi) <= j;
        else ok += fine_level(f, nt, ort_requant(thr[j] - 1 + B, sx, sw, f)) <= j &&
                   fine_level(f, nt, ort_requant(thr[j] + B, sx, sw, f)) > j;
    }
    return ok;
}

/* One channel's multiplier (as the weight scale sw) and bias B: for B near B0, the range of M > 0
 * with (thr − 1 + B)·M and (thr + B)·M either side of each boundary P = K − zero − ½ with a margin;
 * M nearest M0 within its middle half. Returns how many thresholds hold. A channel whose codes
 * never change gets its weights zeroed (*constant) and a bias that lands on its level. */
static int solve_channel(const Fine *f, const int32_t *thr, int nt, float sx, double M0, double B0, float *sw, int32_t *bias,
                         bool *constant) {
    int finite = 0, level = 0;
    for (int j = 0; j < nt; j++) finite += thr[j] != INT32_MIN && thr[j] != INT32_MAX, level += thr[j] == INT32_MIN;
    *constant = !finite;
    if (!finite) {  // f = B + zero at M = 1: any byte of the level will do
        *sw = f->scale / sx, *bias = 0;
        for (int b = f->lo; b <= f->hi; b++)
            if (fine_level(f, nt, b) == level) {
                *bias = b - f->zero;
                break;
            }
        return channel_exact(f, thr, nt, sx, *sw, *bias);
    }
    double b0 = nearbyint(fmax(-1e9, fmin(1e9, B0)));
    for (int r = 0; r <= 16; r++) {
        double B = b0 + (r % 2 ? (r + 1) / 2 : -r / 2), lo = 0, hi = INFINITY;
        for (int j = 0; j < nt && lo < hi; j++) {
            if (thr[j] == INT32_MIN || thr[j] == INT32_MAX) continue;
            double P = f->K[j] - f->zero - 0.5, below = thr[j] - 1 + B, at = thr[j] + B;
            // below·M <= P − margin, at·M >= P + margin
            if (below > 0) hi = fmin(hi, (P - FINE_MARGIN) / below);
            else if (below < 0) lo = fmax(lo, (P - FINE_MARGIN) / below);
            else if (P - FINE_MARGIN < 0) hi = -1;
            if (at > 0) lo = fmax(lo, (P + FINE_MARGIN) / at);
            else if (at < 0) hi = fmin(hi, (P + FINE_MARGIN) / at);
            else if (P + FINE_MARGIN > 0) hi = -1;
        }
        if (!(lo < hi)) continue;
        double M = isfinite(hi) ? fmin(fmax(M0, lo + (hi - lo) / 4), hi - (hi - lo) / 4) : fmax(M0, 2 * lo);
        float s = (float)(M * f->scale / sx);
        if (channel_exact(f, thr, nt, sx, s, B) == nt) {
            *sw = s, *bias = (int32_t)B;
            return nt;
        }
    }
    *sw = (float)(M0 * f->scale / sx), *bias = (int32_t)b0;
    return channel_exact(f, thr, nt, sx, *sw, b0);
}

/* value → QuantizeLinear on f's grid into out (a fresh name); `tag` names the initializers. */
static void fine_bytes(QWalk *w, const char *value, const Fine *f, const char *tag, const char *layer, char *out) {
    char s[112], z[112];
    snprintf(s, sizeof s, "%s.scale", tag), snprintf(z, sizeof z, "%s.zero", tag);
    onnx_init_float(&w->g, s, NULL, 0, &f->scale);
    uint8_t zero = (uint8_t)f->zero;
    onnx_init(&w->g, z, ONNX_UINT8, NULL, 0, &zero, 1);
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "QuantizeLinear", layer, ONNX_NAMES(value, s, z), ONNX_NAMES(out));
    onnx_node_end(&w->g);
}

/* The table from each index idx (int32: a fine byte, or two summed) to the byte of its level's
 * code, into out. */
static void level_table(QWalk *w, const char *idx, const IQuant *q, const Fine *f, const char *tag, const char *layer,
                        char *out) {
    w->st.tables++;
    int entries = f->twice ? 511 : 256;
    uint8_t table[511];
    for (int b = 0; b < entries; b++) table[b] = (uint8_t)(q->k[fine_level(f, q->n - 1, b)] + q->zero);
    char t[112];
    snprintf(t, sizeof t, "%s.levels", tag);
    long long dims[1] = {entries};
    onnx_init(&w->g, t, ONNX_UINT8, dims, 1, table, (size_t)entries);
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Gather", layer, ONNX_NAMES(t, idx), ONNX_NAMES(out));
    onnx_node_end(&w->g);
}

static void cast_int32(QWalk *w, const char *v, const char *layer, char *out) {
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Cast", layer, ONNX_NAMES(v), ONNX_NAMES(out));
    onnx_attr_int(&w->g, "to", ONNX_INT32);
    onnx_node_end(&w->g);
}

/* value → QuantizeLinear(f), then where f's bytes are not q's, the table to them; into out. */
static void quantize(QWalk *w, const char *value, const IQuant *q, const Fine *f, const char *tag, const char *layer,
                     char *out) {
    char fine[32], idx[32];
    fine_bytes(w, value, f, tag, layer, fine);
    if (!f->table && f->lo == 0 && f->hi == 255) {
        strcpy(out, fine);
        return;
    }
    if (!f->table) {  // the levels' bytes, and the activation's range
        char lo[112], hi[112];
        snprintf(lo, sizeof lo, "%s.lowest", tag), snprintf(hi, sizeof hi, "%s.highest", tag);
        onnx_init(&w->g, lo, ONNX_UINT8, NULL, 0, &(uint8_t){(uint8_t)f->lo}, 1);
        onnx_init(&w->g, hi, ONNX_UINT8, NULL, 0, &(uint8_t){(uint8_t)f->hi}, 1);
        onnx_value(&w->g, out);
        onnx_node_begin(&w->g, "Clip", layer, ONNX_NAMES(fine, lo, hi), ONNX_NAMES(out));
        onnx_node_end(&w->g);
        return;
    }
    cast_int32(w, fine, layer, idx);
    level_table(w, idx, q, f, tag, layer, out);
}

/* The fine grid a codes epilogue crosses most thresholds on exactly; each channel's weight scale
 * and bias into sw, bias (and zeroed[c] where its codes never change). Returns how many of the
 * layer's thresholds hold. */
static long long conv_fine(const IConv *cv, const IQuant *qin, Fine *best, float *sw, int32_t *bias, bool *zeroed,
                           int *whole) {
    const IQuant *q = &cv->out;
    int nt = q->n - 1;
    long long most = -1;
    for (int which = 0; which <= 4; which++) {
        Fine f;
        if (!fine_candidate(q, cv->act, which, &f)) continue;
        long long exact = 0;
        for (int o = 0; o < cv->cout; o++) {
            double a = fabs(cv->a[o]);
            exact += solve_channel(&f, cv->thr + (size_t)o * nt, nt, qin->scale, a / f.scale,
                                   a > 0 ? (cv->b[o] + f.shift * f.scale) / a : 0, &sw[o], &bias[o], &zeroed[o]);
        }
        if (exact > most) most = exact, *best = f;
        if (which == 0) break;  // the codes' own bytes: no table, whatever the others would give
    }
    long long exact = 0;
    *whole = 0;
    for (int o = 0; o < cv->cout; o++) {
        double a = fabs(cv->a[o]);
        int ex = solve_channel(best, cv->thr + (size_t)o * nt, nt, qin->scale, a / best->scale,
                               a > 0 ? (cv->b[o] + best->shift * best->scale) / a : 0, &sw[o], &bias[o], &zeroed[o]);
        exact += ex, *whole += ex == nt;
    }
    return exact;
}

/* ------------------------------------------------------------------ the exact epilogue */
/* Where the fused unit cannot step exactly where the engine does, the convolution is ConvInteger
 * (ONNX Runtime's integer convolution, int32 sums) and the epilogue is the engine's own in float:
 * idx = floor((acc + C_c)·M_c + E_c), clamped to a ladder of `entries` steps, then the table from
 * each step to the byte of its level. C_c is an integer (exact) that brings the sums near 0 so the
 * float arithmetic keeps its precision; M_c and E_c are free, so a threshold anywhere between two
 * accumulator values can be met. The ladder's step is half the quantizer's grid where every
 * threshold is a point of that (snapped levels), else 1/4000 of the thresholds' span. */
#define LADDER_MARGIN 5e-4  // ladder steps kept between a step and the nearest accumulator value (float's
                            // error at 512 steps: 2 roundings of 3e-5)

typedef struct Ladder {
    bool dbl;               // the arithmetic in double (a fixed-point tensor's integers), else float
    int entries;
    double step, base;      // value of index 1: base (the lowest finite threshold)
    int K[255];             // level j + 1 starts at index K[j] (0: always, FINE_NEVER: never)
} Ladder;

static int ladder_level(const Ladder *l, int nt, int idx) {
    int j = 0;
    while (j < nt && idx >= l->K[j]) j++;
    return j;
}

/* q's ladder: half its grid where every threshold is a point of that; else steps of 1/4000 of the
 * thresholds' span, or finer, down to 1/65000, where `finest` asks for it: a ladder off the
 * thresholds puts each up to half a step off, and a channel can absorb that where an accumulator
 * unit spans more steps than it has thresholds (the caller asks for twice as many). */
static void ladder_make(const IQuant *q, ActKind act, double finest, Ladder *l) {
    int nt = q->n - 1;
    double lo = INFINITY, hi = -INFINITY, half = q->scale / 2.0;
    bool aligned = true;
    for (int j = 0; j < nt; j++)
        if (!thresh_kind(q, act, j)) {
            double t = q->thresh[j];
            lo = fmin(lo, t), hi = fmax(hi, t);
            aligned &= fabs(t / half - nearbyint(t / half)) < 1e-3;
        }
    if (lo > hi) lo = hi = 0;
    l->dbl = false, l->base = lo;
    if (aligned && (hi - lo) / half < 4000) l->step = half;
    else if (hi > lo) l->step = fmin((hi - lo) / 4000, fmax((hi - lo) / 65000, finest));
    else l->step = half;
    int top = 1;
    for (int j = 0; j < nt; j++) {
        int kind = thresh_kind(q, act, j);
        l->K[j] = kind < 0 ? 0 : kind > 0 ? FINE_NEVER : (int)nearbyint((q->thresh[j] - lo) / l->step) + 1;
        if (!kind) top = l->K[j] > top ? l->K[j] : top;
    }
    l->entries = top + 1;
}

/* ONNX Runtime's ladder index for an accumulator value A (plus C): Cast, Mul, Add, Clip, Floor. */
static int ort_ladder(double A, double M, double E, const Ladder *l) {
    if (l->dbl) return (int)floor(fmin(fmax(A * M + E, 0.0), l->entries - 1.0));
    float v = (float)A * (float)M;
    v = v + (float)E;
    v = fminf(fmaxf(v, 0.0f), (float)(l->entries - 1));
    return (int)floorf(v);
}

static int ladder_exact(const Ladder *l, const int32_t *thr, int nt, double C, double M, double E) {
    int ok = 0;
    for (int j = 0; j < nt; j++) {
        if (thr[j] == INT32_MIN) ok += ladder_level(l, nt, 0) > j;
        else if (thr[j] == INT32_MAX) ok += ladder_level(l, nt, l->entries - 1) <= j;
        else ok += ladder_level(l, nt, ort_ladder(thr[j] - 1 + C, M, E, l)) <= j &&
                   ladder_level(l, nt, ort_ladder(thr[j] + C, M, E, l)) > j;
    }
    return ok;
}

/* One channel: C, M and E with (thr − 1 + C)·M + E below and (thr + C)·M + E at or above each
 * step K by the margin: for M near |a|/step, E in the middle of the range that allows. A channel
 * whose codes never change gets M = 0 and E on its level. Returns how many thresholds hold. */
static int ladder_channel(const Ladder *l, const int32_t *thr, int nt, double a, double b, int32_t *C, double *M, double *E) {
    int finite = 0, level = 0, first = -1;
    for (int j = 0; j < nt; j++) {
        bool fin = thr[j] != INT32_MIN && thr[j] != INT32_MAX;
        finite += fin, level += thr[j] == INT32_MIN;
        if (fin && first < 0) first = j;
    }
    if (!finite || !(a > 0)) {
        *C = 0, *M = 0, *E = 0;
        for (int idx = 0; idx < l->entries; idx++)
            if (ladder_level(l, nt, idx) == level) {
                *E = idx + 0.5;
                break;
            }
        return ladder_exact(l, thr, nt, 0, 0, *E);
    }
    *C = (int32_t)-thr[first];  // the sums near the lowest threshold are near 0
    double M0 = a / l->step, margin = l->dbl ? 1e-9 : LADDER_MARGIN;
    static const double tweak[] = {0, 1e-4, -1e-4, 1e-3, -1e-3, 1e-2, -1e-2};
    for (int t = 0; t < (int)(sizeof tweak / sizeof tweak[0]); t++) {
        double m = M0 * (1 + tweak[t]), lo = -INFINITY, hi = INFINITY;
        for (int j = 0; j < nt; j++) {
            if (thr[j] == INT32_MIN || thr[j] == INT32_MAX) continue;
            double at = (double)thr[j] + *C;
            lo = fmax(lo, l->K[j] - at * m + margin), hi = fmin(hi, l->K[j] - (at - 1) * m - margin);
        }
        if (lo > hi) continue;
        *M = l->dbl ? m : (float)m, *E = l->dbl ? (lo + hi) / 2 : (float)((lo + hi) / 2);
        int ok = ladder_exact(l, thr, nt, *C, *M, *E);
        if (ok == nt) return ok;
    }
    // nominal: the value a·acc + b on the ladder
    *M = M0, *E = (b - l->base) / l->step + 1 - M0 * *C;
    if (!l->dbl) *M = (float)*M, *E = (float)*E;
    return ladder_exact(l, thr, nt, *C, *M, *E);
}

/* The convolution's weights in ONNX's layout (O, Cin/G, KH, KW), negated where a < 0, zero where
 * zeroed (may be NULL); kh, kw, icg out. */
static int8_t *onnx_weights(QWalk *w, const IConv *cv, const ITensor *in, const bool *zeroed, int *kh, int *kw, int *icg) {
    bool flat = cv->cin != in->c;  // linear on (H, W, C) flattened channels last
    *kh = flat ? in->h : cv->kh, *kw = flat ? in->w : cv->kw, *icg = flat ? in->c : cv->cin / cv->groups;
    int O = cv->cout;
    size_t per = (size_t)*icg * *kh * *kw;
    int8_t *wt = dq_malloc((size_t)O * per);
    for (int o = 0; o < O; o++) {
        int s = cv->a[o] < 0 ? -1 : 1;
        // ours (KH, KW, Cin/G, Cout) (flat: (H·W·C, Cout), channels last) to OIHW
        for (int y = 0; y < *kh; y++)
            for (int x = 0; x < *kw; x++)
                for (int c = 0; c < *icg; c++) {
                    int v = zeroed && zeroed[o] ? 0 : s * cv->w[(((size_t)y * *kw + x) * *icg + c) * O + o];
                    w->st.clamped += v > 127;
                    wt[(size_t)o * per + ((size_t)c * *kh + y) * *kw + x] = (int8_t)(v > 127 ? 127 : v);
                }
    }
    return wt;
}

static void conv_attrs(OnnxGraph *g, const IConv *cv, const ITensor *in, int kh, int kw) {
    onnx_window_attrs(g, kh, kw, cv->stride, cv->pad);
    onnx_attr_int(g, "group", cv->cin != in->c ? 1 : cv->groups);
}

/* One node, a or a and b in, a fresh value out (the caller adds attributes and ends it). */
static void node1(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *out) {
    onnx_value(&w->g, out);
    if (b) onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(a, b), ONNX_NAMES(out));
    else onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(a), ONNX_NAMES(out));
}

/* One node, ended; v becomes its output. */
static void node2(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *v) {
    char out[32];
    node1(w, opname, layer, a, b, out), onnx_node_end(&w->g);
    strcpy(v, out);
}

/* The ladder's nodes on value (int32 sums; or, where l->dbl, a double tensor of integers): + C,
 * (Cast to float,) × M, + E, Clip to the ladder, Floor, Cast to int32, and the table to the codes'
 * bytes, into out; nch channels of constants (1: one for the whole tensor). */
static void ladder_nodes(QWalk *w, const char *value, bool int32_in, const Ladder *l, const IQuant *q, const int32_t *C,
                         const double *M, const double *E, int nch, const char *tag, const char *layer, char *out) {
    int nt = q->n - 1, elem = l->dbl ? ONNX_DOUBLE : ONNX_FLOAT;
    size_t size = l->dbl ? sizeof(double) : sizeof(float);
    long long cdims[4] = {1, nch, 1, 1};
    int nd = nch > 1 ? 4 : 0;
    char cn[112], mn[112], en[112], lo[112], hi[112], t[112], v[32];
    snprintf(cn, sizeof cn, "%s.offset", tag), snprintf(mn, sizeof mn, "%s.multiplier", tag);
    snprintf(en, sizeof en, "%s.addend", tag), snprintf(lo, sizeof lo, "%s.first", tag);
    snprintf(hi, sizeof hi, "%s.last", tag), snprintf(t, sizeof t, "%s.levels", tag);
    void *c = dq_malloc((size_t)nch * 8), *m = dq_malloc((size_t)nch * 8), *e = dq_malloc((size_t)nch * 8);
    for (int o = 0; o < nch; o++) {
        if (int32_in) ((int32_t *)c)[o] = C[o];
        else ((double *)c)[o] = C[o];
        if (l->dbl) ((double *)m)[o] = M[o], ((double *)e)[o] = E[o];
        else ((float *)m)[o] = (float)M[o], ((float *)e)[o] = (float)E[o];
    }
    onnx_init(&w->g, cn, int32_in ? ONNX_INT32 : ONNX_DOUBLE, cdims, nd, c, (size_t)nch * (int32_in ? 4 : 8));
    onnx_init(&w->g, mn, elem, cdims, nd, m, (size_t)nch * size);
    onnx_init(&w->g, en, elem, cdims, nd, e, (size_t)nch * size);
    double bounds[2] = {0, l->entries - 1};
    float fbounds[2] = {0, (float)(l->entries - 1)};
    onnx_init(&w->g, lo, elem, NULL, 0, l->dbl ? (void *)&bounds[0] : (void *)&fbounds[0], size);
    onnx_init(&w->g, hi, elem, NULL, 0, l->dbl ? (void *)&bounds[1] : (void *)&fbounds[1], size);
    dq_free(c), dq_free(m), dq_free(e);
    uint8_t *table = dq_malloc((size_t)l->entries);
    for (int b = 0; b < l->entries; b++) table[b] = (uint8_t)(q->k[ladder_level(l, nt, b)] + q->zero);
    onnx_init(&w->g, t, ONNX_UINT8, (const long long[]){l->entries}, 1, table, (size_t)l->entries);
    dq_free(table);
    w->st.tables++;
    node1(w, "Add", layer, value, cn, v), onnx_node_end(&w->g);
    if (int32_in) {
        char f[32];
        node1(w, "Cast", layer, v, NULL, f), onnx_attr_int(&w->g, "to", elem), onnx_node_end(&w->g);
        strcpy(v, f);
    }
    node2(w, "Mul", layer, v, mn, v), node2(w, "Add", layer, v, en, v);
    char clipped[32], idx[32];
    onnx_value(&w->g, clipped);
    onnx_node_begin(&w->g, "Clip", layer, ONNX_NAMES(v, lo, hi), ONNX_NAMES(clipped));
    onnx_node_end(&w->g);
    node2(w, "Floor", layer, clipped, NULL, clipped);
    cast_int32(w, clipped, layer, idx);
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Gather", layer, ONNX_NAMES(t, idx), ONNX_NAMES(out));
    onnx_node_end(&w->g);
}

/* A codes epilogue the fused unit cannot give exactly: ConvInteger, then the ladder. */
static void conv_integer(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const ITensor *in = &w->im->tensors[op->in];
    const IQuant *qin = w->quant[op->in], *q = &cv->out;
    int nt = q->n - 1, O = cv->cout, kh, kw, icg;
    Ladder l;
    double flattest = INFINITY;
    for (int o = 0; o < O; o++)
        if (cv->a[o] != 0) flattest = fmin(flattest, fabs(cv->a[o]));
    ladder_make(q, cv->act, isfinite(flattest) ? flattest / (2.0 * q->n) : 0, &l);
    l.dbl = true;
    int32_t *C = dq_malloc((size_t)O * sizeof(int32_t));
    double *M = dq_malloc((size_t)O * sizeof(double)), *E = dq_malloc((size_t)O * sizeof(double));
    bool *zeroed = dq_calloc((size_t)O, sizeof(bool));
    for (int o = 0; o < O; o++) {
        int ex = ladder_channel(&l, cv->thr + (size_t)o * nt, nt, fabs(cv->a[o]), cv->b[o], &C[o], &M[o], &E[o]);
        zeroed[o] = M[o] == 0;
        w->st.thresholds += nt, w->st.exact += ex, w->st.channels++, w->st.channels_exact += ex == nt;
    }
    int8_t *wt = onnx_weights(w, cv, in, zeroed, &kh, &kw, &icg);
    char tag[96], wn[112], xz[112], acc[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(wn, sizeof wn, "%s.weight", tag), snprintf(xz, sizeof xz, "%s.input_zero", tag);
    long long wdims[4] = {O, icg, kh, kw};
    onnx_init(&w->g, wn, ONNX_INT8, wdims, 4, wt, (size_t)O * icg * kh * kw);
    onnx_init(&w->g, xz, ONNX_UINT8, NULL, 0, &(uint8_t){(uint8_t)qin->zero}, 1);
    w->st.integer_convs++;
    onnx_value(&w->g, acc);
    onnx_node_begin(&w->g, "ConvInteger", op->name, ONNX_NAMES(w->name[op->in], wn, xz), ONNX_NAMES(acc));
    conv_attrs(&w->g, cv, in, kh, kw);
    onnx_node_end(&w->g);
    ladder_nodes(w, acc, true, &l, q, C, M, E, O, tag, op->name, w->name[op->out]);
    dq_free(wt), dq_free(C), dq_free(M), dq_free(E), dq_free(zeroed);
    w->quant[op->out] = q;
}

/* ------------------------------------------------------------------ the exact fixed point */
/* In the exact export a fixed-point tensor is a double tensor of the engine's own integers (units
 * of 2^-frac), computed as the engine computes them: ConvInteger's sums times fix_a plus fix_b,
 * the activation, rounded half away from zero; a residual sum's operands shifted to its fraction
 * (rounded half up); the pooled mean rounded half away from zero. Every value is an integer below
 * 2^31, so double holds it and each step exactly (fix_a·acc + fix_b in two roundings instead of
 * the engine's one fma: a difference only where that lands within 2^-21 of a half). Quantizing
 * one is the ladder on its integer thresholds, in double. */
static void const_double(QWalk *w, char *name, const char *tag, const char *what, const long long *dims, int nd,
                         const double *v, size_t n) {
    snprintf(name, 112, "%s.%s", tag, what);
    onnx_init(&w->g, name, ONNX_DOUBLE, dims, nd, v, n * sizeof(double));
}

/* v ← Sign(v)·Floor(|v| + ½), or Floor(v + ½) where v is known not negative. */
static void round_away(QWalk *w, char *v, bool nonneg, const char *tag, const char *layer) {
    char half[112], mag[32];
    const_double(w, half, tag, "half", NULL, 0, (const double[]){0.5}, 1);
    if (nonneg) {
        node2(w, "Add", layer, v, half, v), node2(w, "Floor", layer, v, NULL, v);
        return;
    }
    char sign[32];
    node1(w, "Sign", layer, v, NULL, sign), onnx_node_end(&w->g);
    node1(w, "Abs", layer, v, NULL, mag), onnx_node_end(&w->g);
    node2(w, "Add", layer, mag, half, mag), node2(w, "Floor", layer, mag, NULL, mag);
    node1(w, "Mul", layer, mag, sign, v), onnx_node_end(&w->g);
}

/* A fixed-point epilogue: ConvInteger, then the engine's arithmetic in double. */
static void conv_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const ITensor *in = &w->im->tensors[op->in];
    int O = cv->cout, kh, kw, icg;
    int8_t *wt = onnx_weights(w, cv, in, NULL, &kh, &kw, &icg);
    double *ma = dq_malloc((size_t)O * sizeof(double));
    for (int o = 0; o < O; o++) ma[o] = fabs(cv->fix_a[o]);  // the weights of a < 0 are negated
    char tag[96], wn[112], xz[112], mn[112], en[112], v[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(wn, sizeof wn, "%s.weight", tag), snprintf(xz, sizeof xz, "%s.input_zero", tag);
    long long wdims[4] = {O, icg, kh, kw}, cdims[4] = {1, O, 1, 1};
    onnx_init(&w->g, wn, ONNX_INT8, wdims, 4, wt, (size_t)O * icg * kh * kw);
    onnx_init(&w->g, xz, ONNX_UINT8, NULL, 0, &(uint8_t){(uint8_t)w->quant[op->in]->zero}, 1);
    const_double(w, mn, tag, "fix_multiplier", cdims, 4, ma, (size_t)O);
    const_double(w, en, tag, "fix_addend", cdims, 4, cv->fix_b, (size_t)O);
    dq_free(wt), dq_free(ma);
    w->st.integer_convs++;
    onnx_value(&w->g, v);
    onnx_node_begin(&w->g, "ConvInteger", op->name, ONNX_NAMES(w->name[op->in], wn, xz), ONNX_NAMES(v));
    conv_attrs(&w->g, cv, in, kh, kw);
    onnx_node_end(&w->g);
    char fl[32];
    node1(w, "Cast", op->name, v, NULL, fl), onnx_attr_int(&w->g, "to", ONNX_DOUBLE), onnx_node_end(&w->g);
    node2(w, "Mul", op->name, fl, mn, fl), node2(w, "Add", op->name, fl, en, fl);
    if (cv->act == ACT_RELU) node2(w, "Relu", op->name, fl, NULL, fl);
    if (cv->act == ACT_RELU6) {
        char lo[112], hi[112], y[32];
        const_double(w, lo, tag, "fix_low", NULL, 0, (const double[]){0}, 1);
        const_double(w, hi, tag, "fix_high", NULL, 0, &cv->fix_hi, 1);
        onnx_value(&w->g, y);
        onnx_node_begin(&w->g, "Clip", op->name, ONNX_NAMES(fl, lo, hi), ONNX_NAMES(y));
        onnx_node_end(&w->g);
        strcpy(fl, y);
    }
    round_away(w, fl, cv->act != ACT_NONE, tag, op->name);
    strcpy(w->name[op->out], fl);
}

/* One operand of a residual sum brought from fraction `from` to `to`: times 2^(to − from), or
 * divided by 2^(from − to) rounded half up, as the engine's shift. */
static void rescale_fix(QWalk *w, char *v, int from, int to, const char *tag, const char *layer) {
    if (from == to) return;
    char f[112], half[112];
    snprintf(f, sizeof f, "%s.shift_%d_%d", tag, from, to);
    onnx_init(&w->g, f, ONNX_DOUBLE, NULL, 0, &(double){ldexp(1, to - from)}, sizeof(double));
    node2(w, "Mul", layer, v, f, v);
    if (to > from) return;
    const_double(w, half, tag, "half", NULL, 0, (const double[]){0.5}, 1);
    node2(w, "Add", layer, v, half, v), node2(w, "Floor", layer, v, NULL, v);
}

static void add_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const ITensor *t = w->im->tensors;
    char tag[96], a[32], b[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    strcpy(a, w->name[op->in]), strcpy(b, w->name[op->in2]);
    rescale_fix(w, a, t[op->in].frac, t[op->out].frac, tag, op->name);
    rescale_fix(w, b, t[op->in2].frac, t[op->out].frac, tag, op->name);
    node2(w, "Add", op->name, a, b, a);
    if (op->relu) node2(w, "Relu", op->name, a, NULL, a);
    strcpy(w->name[op->out], a);
}

/* The mean over H·W: ReduceSum (exact), Div, rounded half away from zero. */
static void gap_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const ITensor *in = &w->im->tensors[op->in];
    char tag[96], axes[112], hw[112], v[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(axes, sizeof axes, "%s.axes", tag);
    onnx_init_int64(&w->g, axes, (const long long[]){2, 3}, 2);
    const_double(w, hw, tag, "pixels", NULL, 0, &(double){(double)in->h * in->w}, 1);
    onnx_value(&w->g, v);
    onnx_node_begin(&w->g, "ReduceSum", op->name, ONNX_NAMES(w->name[op->in], axes), ONNX_NAMES(v));
    onnx_attr_int(&w->g, "keepdims", 1);
    onnx_node_end(&w->g);
    node2(w, "Div", op->name, v, hw, v);
    round_away(w, v, false, tag, op->name);
    strcpy(w->name[op->out], v);
}

/* A fixed-point tensor to codes: the ladder on the engine's integer thresholds, in double. */
static void quant_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const IQuant *q = &op->q;
    int nt = q->n - 1;
    Ladder l;
    ladder_make(q, ACT_NONE, 1e-300, &l);  // as fine as it goes: a fixed-point unit is far finer
    l.dbl = true;
    int32_t C;
    double M, E;
    double unit = ldexp(1, -w->im->tensors[op->in].frac);
    int ex = ladder_channel(&l, op->fix_thr, nt, unit, 0, &C, &M, &E);
    w->st.fix_thresholds += nt, w->st.fix_exact += ex;
    for (int j = 0; j < nt && ex < nt; j++) {  // where the ladder steps instead: the least A above level j
        const int32_t T = op->fix_thr[j];
        if (T == INT32_MIN || T == INT32_MAX) continue;
        double lo = T - 1e10, hi = T + 1e10;
        while (hi - lo > 1) {
            double mid = floor((lo + hi) / 2);
            *(ladder_level(&l, nt, ort_ladder(mid + C, M, E, &l)) > j ? &hi : &lo) = mid;
        }
        w->st.fix_moved_max = fmax(w->st.fix_moved_max, fabs(hi - T) * unit);
    }
    char tag[96];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    ladder_nodes(w, w->name[op->in], false, &l, q, &C, &M, &E, 1, tag, op->name, w->name[op->out]);
    w->quant[op->out] = q;
}

/* One convolution: DQ of its input codes, its weights and bias, Conv, and the epilogue's
 * quantization (or the float value, with the activation and a float bias) — ONNX Runtime's fused
 * unit; a codes epilogue it cannot give exactly goes to conv_integer unless w->fused. A linear
 * layer on a flattened H×W×C input is the Conv whose kernel covers it. */
static bool conv(QWalk *w, int i, char *err, size_t err_size) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const ITensor *in = &w->im->tensors[op->in];
    const IQuant *qin = w->quant[op->in];
    if (!qin) {
        snprintf(err, err_size, "%s: the convolution's input has no quantizer", op->name);
        return false;
    }
    if (cv->epi == IEPI_FIX && !w->fused) {
        conv_fix(w, i);
        return true;
    }
    bool codes = cv->epi == IEPI_CODES;
    int O = cv->cout, kh, kw, icg;
    float *sw = dq_malloc((size_t)O * sizeof(float)), *sb = dq_malloc((size_t)O * sizeof(float));
    int32_t *bias = dq_calloc((size_t)O, sizeof(int32_t));
    bool *zeroed = dq_calloc((size_t)O, sizeof(bool));
    Fine fine;
    if (codes) {
        int whole;
        long long exact = conv_fine(cv, qin, &fine, sw, bias, zeroed, &whole), all = (long long)O * (cv->out.n - 1);
        if (exact < all && !w->fused) {
            dq_free(sw), dq_free(sb), dq_free(bias), dq_free(zeroed);
            conv_integer(w, i);
            return true;
        }
        w->st.thresholds += all, w->st.exact += exact, w->st.channels += O, w->st.channels_exact += whole;
        w->st.fused_convs++;
    }
    for (int o = 0; o < O; o++) {
        if (!codes) sw[o] = fabsf(cv->a[o]) / qin->scale, sb[o] = cv->b[o];
        else sb[o] = qin->scale * sw[o];
    }
    int8_t *wt = onnx_weights(w, cv, in, zeroed, &kh, &kw, &icg);
    char tag[96], wn[112], wsn[112], wzn[112], bn[112], bsn[112], bzn[112], x[32], wd[32], bd[32], y[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(wn, sizeof wn, "%s.weight", tag), snprintf(wsn, sizeof wsn, "%s.weight_scale", tag);
    snprintf(wzn, sizeof wzn, "%s.weight_zero", tag), snprintf(bn, sizeof bn, "%s.bias", tag);
    snprintf(bsn, sizeof bsn, "%s.bias_scale", tag), snprintf(bzn, sizeof bzn, "%s.bias_zero", tag);
    long long wdims[4] = {O, icg, kh, kw}, odims[1] = {O};
    onnx_init(&w->g, wn, ONNX_INT8, wdims, 4, wt, (size_t)O * icg * kh * kw);
    onnx_init_float(&w->g, wsn, odims, 1, sw);
    int8_t *wz = dq_calloc((size_t)O, 1);
    int32_t *bz = dq_calloc((size_t)O, sizeof(int32_t));
    onnx_init(&w->g, wzn, ONNX_INT8, odims, 1, wz, (size_t)O);
    if (codes) {  // an int32 bias in accumulator units, as ONNX Runtime's integer convolution takes it
        onnx_init(&w->g, bn, ONNX_INT32, odims, 1, bias, (size_t)O * sizeof(int32_t));
        onnx_init_float(&w->g, bsn, odims, 1, sb);
        onnx_init(&w->g, bzn, ONNX_INT32, odims, 1, bz, (size_t)O * sizeof(int32_t));
    } else onnx_init_float(&w->g, bn, odims, 1, sb);  // the float epilogue keeps b exactly
    dq_free(wt), dq_free(sw), dq_free(sb), dq_free(bias), dq_free(zeroed), dq_free(wz), dq_free(bz);
    char xs[112], xz[112];
    snprintf(xs, sizeof xs, "%s.input_scale", tag), snprintf(xz, sizeof xz, "%s.input_zero", tag);
    onnx_init_float(&w->g, xs, NULL, 0, &qin->scale);
    uint8_t zin = (uint8_t)qin->zero;
    onnx_init(&w->g, xz, ONNX_UINT8, NULL, 0, &zin, 1);
    onnx_value(&w->g, x), onnx_value(&w->g, wd), onnx_value(&w->g, y);
    onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(w->name[op->in], xs, xz), ONNX_NAMES(x));
    onnx_node_end(&w->g);
    onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(wn, wsn, wzn), ONNX_NAMES(wd));
    onnx_attr_int(&w->g, "axis", 0);
    onnx_node_end(&w->g);
    if (codes) {
        onnx_value(&w->g, bd);
        onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(bn, bsn, bzn), ONNX_NAMES(bd));
        onnx_attr_int(&w->g, "axis", 0);
        onnx_node_end(&w->g);
    }
    onnx_node_begin(&w->g, "Conv", op->name, ONNX_NAMES(x, wd, codes ? bd : bn), ONNX_NAMES(y));
    conv_attrs(&w->g, cv, in, kh, kw);
    onnx_node_end(&w->g);
    if (!codes) onnx_activation(&w->g, cv->act, op->name, y);  // else the table or the byte clamp holds it
    if (codes) {
        quantize(w, y, &cv->out, &fine, tag, op->name, w->name[op->out]);
        w->quant[op->out] = &cv->out;
    } else strcpy(w->name[op->out], y);
    return true;
}

/* A float value's fine byte in ONNX Runtime: (v + raise)/scale rounded, clamped, plus zero. */
static int ort_quantize(float v, float raise, const Fine *f) {
    float u = (v + raise) / f->scale;
    u = fmaxf(u, (float)(f->lo - f->zero)), u = fminf(u, (float)(f->hi - f->zero));
    return (int)nearbyintf(u) + f->zero;
}

/* What a float input is raised by before its QuantizeLinear (the second, half a step more). */
static float input_raise(const Fine *f, int second) { return (float)((f->shift + 0.5 * second + FINE_SLIVER) * f->scale); }

/* The table index ONNX Runtime computes for a float value. */
static int ort_index(float v, const Fine *f) {
    return ort_quantize(v, input_raise(f, 0), f) + (f->twice ? ort_quantize(v, input_raise(f, 1), f) : 0);
}

/* A float tensor (the image, a residual sum) to codes: raised by the grid's shift and a sliver so
 * that a value on a threshold rounds up (an Add), QuantizeLinear — twice, half a step apart, where
 * one grid cannot place every threshold — and the table. The grid is the candidate that puts most
 * thresholds within a sliver below their place (the table starts level j + 1 at the index a value
 * on threshold j gets). */
static void quantize_input(QWalk *w, const char *value, const IQuant *q, bool image, const char *tag, const char *layer,
                           char *out) {
    int nt = q->n - 1, most = -1;
    Fine best;
    for (int twice = 0; twice <= 1; twice++)
        for (int which = 0; which <= 4; which++) {
            Fine f;
            if (!fine_candidate(q, ACT_NONE, which, &f)) continue;
            if (twice) f.table = f.twice = true, f.lo = 0, f.hi = 255;
            if (f.table)
                for (int j = 0; j < nt; j++) f.K[j] = ort_index(q->thresh[j], &f);
            int exact = 0;
            for (int j = 0; j < nt; j++) {
                float t = q->thresh[j], below = (float)(t - 2 * FINE_SLIVER * f.scale);
                exact += fine_level(&f, nt, ort_index(t, &f)) > j && fine_level(&f, nt, ort_index(below, &f)) <= j;
            }
            if (exact > most) most = exact, best = f;
            if (which == 0 && (w->fused || exact == nt)) goto chosen;  // no table where it is exact or speed counts
        }
chosen:
    if (image) w->st.input_thresholds += nt, w->st.input_exact += most;
    else w->st.fix_thresholds += nt, w->st.fix_exact += most;
    char raised[2][32], fine[2][32], idx[2][32], sum[32], r[112], tag2[120];
    for (int i = 0; i <= best.twice; i++) {
        snprintf(r, sizeof r, "%s.raise%d", tag, i), snprintf(tag2, sizeof tag2, "%s.%d", tag, i);
        onnx_init_float(&w->g, r, NULL, 0, (const float[]){input_raise(&best, i)});
        onnx_value(&w->g, raised[i]);
        onnx_node_begin(&w->g, "Add", layer, ONNX_NAMES(value, r), ONNX_NAMES(raised[i]));
        onnx_node_end(&w->g);
        if (!best.twice) {
            quantize(w, raised[0], q, &best, tag, layer, out);
            return;
        }
        fine_bytes(w, raised[i], &best, tag2, layer, fine[i]);
        cast_int32(w, fine[i], layer, idx[i]);
    }
    onnx_value(&w->g, sum);
    onnx_node_begin(&w->g, "Add", layer, ONNX_NAMES(idx[0], idx[1]), ONNX_NAMES(sum));
    onnx_node_end(&w->g);
    level_table(w, sum, q, &best, tag, layer, out);
}

static void simple(QWalk *w, const char *opname, const char *layer, const char *in, char *out) {
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(in), ONNX_NAMES(out));
}

bool intmodel_export_onnx(const IntModel *im, const char *path, bool fused, IntOnnxStats *st, char *err, size_t err_size) {
    QWalk w = {.im = im, .fused = fused};
    onnx_graph_init(&w.g);
    w.quant = dq_calloc((size_t)im->n_tensors, sizeof *w.quant);
    w.name = dq_calloc((size_t)im->n_tensors, sizeof *w.name);
    onnx_value(&w.g, w.name[0]);
    onnx_node_begin(&w.g, "Transpose", "input_nchw", ONNX_NAMES("input"), ONNX_NAMES(w.name[0]));
    onnx_attr_ints(&w.g, "perm", (const long long[]){0, 3, 1, 2}, 4);
    onnx_node_end(&w.g);
    bool ok = true;
    for (int i = 0; i < im->n_ops && ok; i++) {
        const IOp *op = &im->ops[i];
        const ITensor *in = &im->tensors[op->in], *out = &im->tensors[op->out];
        char tag[96];
        snprintf(tag, sizeof tag, "%s_%d", op->name, i);
        switch (op->kind) {
        case IOP_QUANT_INPUT:
        case IOP_QUANT_FIX:
            if (!fused && op->kind == IOP_QUANT_FIX) {
                quant_fix(&w, i);
                break;
            }
            quantize_input(&w, w.name[op->in], &op->q, op->kind == IOP_QUANT_INPUT, tag, op->name, w.name[op->out]);
            w.quant[op->out] = &op->q;
            break;
        case IOP_CONV: ok = conv(&w, i, err, err_size); break;
        case IOP_ADD:
            if (!fused) {
                add_fix(&w, i);
                break;
            }
            onnx_value(&w.g, w.name[op->out]);
            onnx_node_begin(&w.g, "Add", op->name, ONNX_NAMES(w.name[op->in], w.name[op->in2]), ONNX_NAMES(w.name[op->out]));
            onnx_node_end(&w.g);
            if (op->relu) onnx_activation(&w.g, ACT_RELU, op->name, w.name[op->out]);
            break;
        case IOP_GAP:
            if (!fused) {
                gap_fix(&w, i);
                break;
            }
            simple(&w, "GlobalAveragePool", op->name, w.name[op->in], w.name[op->out]);
            onnx_node_end(&w.g);
            break;
        case IOP_MAXPOOL:
        case IOP_SHORTCUT: {
            char v[32];
            snprintf(v, sizeof v, "%s", w.name[op->in]);
            int lo = (out->c - in->c) / 2;
            if (op->kind == IOP_MAXPOOL) onnx_pool(&w.g, true, op->name, v, op->pool);
            else onnx_shortcut(&w.g, op->name, v, op->stride, lo, out->c - in->c - lo);
            snprintf(w.name[op->out], sizeof w.name[op->out], "%s", v);
            break;
        }
        }
    }
    if (ok) {  // the logits: (N, classes, 1, 1) from the classifier's Conv
        char flat[32];
        simple(&w, "Flatten", "logits", w.name[im->ops[im->logits].out], flat);
        onnx_node_end(&w.g);
        onnx_node_begin(&w.g, "Identity", "logits", ONNX_NAMES(flat), ONNX_NAMES("logits"));
        onnx_node_end(&w.g);
        ok = onnx_finish(&w.g, "ddqc-integer", im->in_h, im->in_w, im->in_c, im->num_classes, path, &w.st.bytes, err,
                         err_size);
    }
    if (st) *st = w.st;
    dq_free(w.quant), dq_free(w.name);
    onnx_graph_free(&w.g);
    return ok;
}
