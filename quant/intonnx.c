/* intonnx.c — an integer program (intmodel.h) as an ONNX graph (nn/onnx.h writes it); docs/onnx.md.
 *
 * Codes tensors are uint8 (k + zero). A convolution's unit is the one ONNX Runtime fuses into an
 * integer convolution (QLinearConv):
 *
 *     codes ─DequantizeLinear(s_x, zero)─┐
 *     int8 weights ─DequantizeLinear(s_w[c], axis 0)─ Conv ─ QuantizeLinear(s_y, zero_y) ─ table or Clip
 *     int32 bias B_c ─DequantizeLinear(s_x·s_w[c], axis 0)─┘
 *
 * ONNX Runtime computes the fine byte f = rne((acc + B_c)·M_c) + zero_y, M_c = s_x·s_w[c]/s_y, with
 * acc the exact Σ k_x·w (a channel with a < 0 has its weights negated). The engine's code steps at
 * integer thresholds thr[c][j] on acc; the export looks for the M_c and B_c per channel that put
 * every step of f across the fine byte K[j] where the (shared) table starts level j + 1 exactly at
 * thr[c][j], and checks the result in ONNX Runtime's float arithmetic (IntOnnxStats counts the
 * thresholds that hold). The table — uint8 entries, Cast to int32 then Gather — becomes a uint8
 * Clip where the levels are consecutive codes. With an integer bias and one multiplier per
 * channel that is rarely exact everywhere: the exact export (the default) keeps the unit only
 * where it is and writes the others as intonnx_exact.c does; the fused one (--onnx_fused, for
 * speed) keeps it everywhere, and keeps fixed-point tensors as float values, which is what ONNX
 * Runtime runs fastest. The image (and, fused, a residual sum) is quantized by an Add (half a fine
 * step where that helps, plus a sliver so that a value on a threshold rounds up as the engine's ≥
 * does) and QuantizeLinear — twice, half a step apart, where one grid cannot place every threshold.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "intonnx_walk.h"


/* Where a QuantizeLinear's fine bytes go: f = clamp(rne(v/scale) + zero, lo, hi), and the tensor
 * then holds the code of level #{j : f >= K[j]} (K[j] = 0: always reached, LEVEL_NEVER: never). */
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
int qw_thresh_kind(const IQuant *q, ActKind act, int j) {
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
            if (!qw_thresh_kind(q, act, j)) lo = fmin(lo, q->thresh[j]), hi = fmax(hi, q->thresh[j]);
        double s = which <= 2 ? q->scale : which == 3 ? q->scale / 2.0 : (hi - lo) / 250;
        if (!(s > 0) || !isfinite(s)) s = q->scale;
        f->scale = (float)s, f->shift = which == 2 || which == 3 ? 0.5 : 0;
        // the boundary nearest threshold t is the half-integer floor(t/scale + shift) + ½: K = that + ½ + zero
        double ulo = lo > hi ? 0 : floor(lo / f->scale + f->shift), uhi = lo > hi ? 0 : floor(hi / f->scale + f->shift);
        double zlo = fmax(0, -ulo), zhi = fmin(255, 254 - uhi);
        if (zlo > zhi) return false;
        f->zero = (int)floor((zlo + zhi) / 2);
        for (int j = 0; j < nt; j++) {
            int kind = qw_thresh_kind(q, act, j);
            f->K[j] = kind < 0 ? 0 : kind > 0 ? LEVEL_NEVER : (int)floor(q->thresh[j] / f->scale + f->shift) + 1 + f->zero;
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

void qw_cast_int32(QWalk *w, const char *v, const char *layer, char *out) {
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Cast", layer, ONNX_NAMES(v), ONNX_NAMES(out));
    onnx_attr_int(&w->g, "to", ONNX_INT32);
    onnx_node_end(&w->g);
}

/* The convolution's weights in ONNX's layout (O, Cin/G, KH, KW), negated where a < 0, zero where
 * zeroed (may be NULL); kh, kw, icg out. */
int8_t *qw_weights(QWalk *w, const IConv *cv, const ITensor *in, const bool *zeroed, int *kh, int *kw, int *icg) {
    return qw_point_weights(w, cv, in, zeroed, 0, kh, kw, icg);
}

int8_t *qw_point_weights(QWalk *w, const IConv *cv, const ITensor *in, const bool *zeroed, int p, int *kh, int *kw,
                         int *icg) {
    const int8_t *wp = cv->w + (size_t)p * intconv_weights(cv);
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
                    int v = zeroed && zeroed[o] ? 0 : s * wp[(((size_t)y * *kw + x) * *icg + c) * O + o];
                    w->st.clamped += v > 127;
                    wt[(size_t)o * per + ((size_t)c * *kh + y) * *kw + x] = (int8_t)(v > 127 ? 127 : v);
                }
    }
    return wt;
}

void qw_conv_attrs(OnnxGraph *g, const IConv *cv, const ITensor *in, int kh, int kw) {
    onnx_window_attrs(g, kh, kw, cv->stride, cv->pad);
    onnx_attr_int(g, "group", cv->cin != in->c ? 1 : cv->groups);
}

/* One node, a or a and b in, a fresh value out (the caller adds attributes and ends it). */
void qw_node_begin(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *out) {
    onnx_value(&w->g, out);
    if (b) onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(a, b), ONNX_NAMES(out));
    else onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(a), ONNX_NAMES(out));
}

/* One node, ended; v becomes its output. */
void qw_op(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *v) {
    char out[32];
    qw_node_begin(w, opname, layer, a, b, out), onnx_node_end(&w->g);
    strcpy(v, out);
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
    qw_cast_int32(w, fine, layer, idx);
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

/* One convolution: DQ of its input codes, its weights and bias, Conv, and the epilogue's
 * quantization (or the float value, with the activation and a float bias) — ONNX Runtime's fused
 * unit; a codes epilogue it cannot give exactly goes to qw_conv_integer unless w->fused. A linear
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
        qw_conv_fix(w, i);
        return true;
    }
    if (cv->points > 1) {  // (the export refused fused and logits ones up front)
        qw_conv_integer(w, i);
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
            qw_conv_integer(w, i);
            return true;
        }
        w->st.thresholds += all, w->st.exact += exact, w->st.channels += O, w->st.channels_exact += whole;
        w->st.fused_convs++;
    }
    for (int o = 0; o < O; o++) {
        if (!codes) sw[o] = fabsf(cv->a[o]) / qin->scale, sb[o] = cv->b[o];
        else sb[o] = qin->scale * sw[o];
    }
    int8_t *wt = qw_weights(w, cv, in, zeroed, &kh, &kw, &icg);
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
    qw_conv_attrs(&w->g, cv, in, kh, kw);
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
    char raised[2][32], fine[2][32], idx[2][32], sum[32], r[128], tag2[128];
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
        qw_cast_int32(w, fine[i], layer, idx[i]);
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
    for (int i = 0; i < im->n_ops; i++)  // multipoint: exactly (ConvInteger per point), not as the fused unit
        if (im->ops[i].kind == IOP_CONV && im->ops[i].conv.points > 1 && (fused || im->ops[i].conv.epi == IEPI_LOGITS))
            return dq_fail(err, err_size, "%s: a multipoint layer (%d weight points per channel) has no %s ONNX export "
                           "(the exact export, without --onnx_fused, has one)", im->ops[i].name, im->ops[i].conv.points,
                           fused ? "fused" : "logits");
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
                qw_quant_fix(&w, i);
                break;
            }
            quantize_input(&w, w.name[op->in], &op->q, op->kind == IOP_QUANT_INPUT, tag, op->name, w.name[op->out]);
            w.quant[op->out] = &op->q;
            break;
        case IOP_CONV: ok = conv(&w, i, err, err_size); break;
        case IOP_ADD:
            if (!fused) {
                qw_add_fix(&w, i);
                break;
            }
            onnx_value(&w.g, w.name[op->out]);
            onnx_node_begin(&w.g, "Add", op->name, ONNX_NAMES(w.name[op->in], w.name[op->in2]), ONNX_NAMES(w.name[op->out]));
            onnx_node_end(&w.g);
            if (op->relu) onnx_activation(&w.g, ACT_RELU, op->name, w.name[op->out]);
            break;
        case IOP_GAP:
            if (!fused) {
                qw_gap_fix(&w, i);
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
    w.st.fused = fused;
    if (st) *st = w.st;
    dq_free(w.quant), dq_free(w.name);
    onnx_graph_free(&w.g);
    return ok;
}
