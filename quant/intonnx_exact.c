/* intonnx_exact.c — the exact half of the ONNX export (intonnx_walk.h): where the fused QDQ unit
 * cannot step where the engine does, ConvInteger and the engine's thresholds as a ladder; and the
 * fixed-point tensors as the engine's own integers in double.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "intonnx_walk.h"

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
    int K[255];             // level j + 1 starts at index K[j] (0: always, LEVEL_NEVER: never)
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
        if (!qw_thresh_kind(q, act, j)) {
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
        int kind = qw_thresh_kind(q, act, j);
        l->K[j] = kind < 0 ? 0 : kind > 0 ? LEVEL_NEVER : (int)nearbyint((q->thresh[j] - lo) / l->step) + 1;
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
    qw_node_begin(w, "Add", layer, value, cn, v), onnx_node_end(&w->g);
    if (int32_in) {
        char f[32];
        qw_node_begin(w, "Cast", layer, v, NULL, f), onnx_attr_int(&w->g, "to", elem), onnx_node_end(&w->g);
        strcpy(v, f);
    }
    qw_op(w, "Mul", layer, v, mn, v), qw_op(w, "Add", layer, v, en, v);
    char clipped[32], idx[32];
    onnx_value(&w->g, clipped);
    onnx_node_begin(&w->g, "Clip", layer, ONNX_NAMES(v, lo, hi), ONNX_NAMES(clipped));
    onnx_node_end(&w->g);
    qw_op(w, "Floor", layer, clipped, NULL, clipped);
    qw_cast_int32(w, clipped, layer, idx);
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Gather", layer, ONNX_NAMES(t, idx), ONNX_NAMES(out));
    onnx_node_end(&w->g);
}

/* Op i's int32 sums into the fresh value acc: ConvInteger of the input codes and the weights; a
 * multipoint layer's points each as one, times their multipliers (int32, per channel), added —
 * the engine's Σ_p pmul·(Σ k_x·q_p), the same integers. */
void qw_integer_sums(QWalk *w, int i, const bool *zeroed, char *acc) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const ITensor *in = &w->im->tensors[op->in];
    int O = cv->cout, kh, kw, icg;
    char tag[96], xz[112];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(xz, sizeof xz, "%s.input_zero", tag);
    onnx_init(&w->g, xz, ONNX_UINT8, NULL, 0, &(uint8_t){(uint8_t)w->quant[op->in]->zero}, 1);
    for (int p = 0; p < cv->points; p++) {
        int8_t *wt = qw_point_weights(w, cv, in, zeroed, p, &kh, &kw, &icg);
        char wn[128], sums[32];
        snprintf(wn, sizeof wn, cv->points > 1 ? "%s.weight_point%d" : "%s.weight", tag, p);
        long long wdims[4] = {O, icg, kh, kw};
        onnx_init(&w->g, wn, ONNX_INT8, wdims, 4, wt, (size_t)O * icg * kh * kw);
        dq_free(wt);
        w->st.integer_convs++;
        onnx_value(&w->g, sums);
        onnx_node_begin(&w->g, "ConvInteger", op->name, ONNX_NAMES(w->name[op->in], wn, xz), ONNX_NAMES(sums));
        qw_conv_attrs(&w->g, cv, in, kh, kw);
        onnx_node_end(&w->g);
        if (cv->points == 1) {
            strcpy(acc, sums);
            return;
        }
        char mn[128];
        long long mdims[4] = {1, O, 1, 1};
        snprintf(mn, sizeof mn, "%s.multiplier_point%d", tag, p);
        onnx_init(&w->g, mn, ONNX_INT32, mdims, 4, cv->pmul + (size_t)p * O, (size_t)O * sizeof(int32_t));
        qw_op(w, "Mul", op->name, sums, mn, sums);
        if (p == 0) strcpy(acc, sums);
        else qw_op(w, "Add", op->name, acc, sums, acc);
    }
}

/* A codes epilogue the fused unit cannot give exactly: ConvInteger, then the ladder. */
void qw_conv_integer(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const IQuant *q = &cv->out;
    int nt = q->n - 1, O = cv->cout;
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
    char tag[96], acc[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    qw_integer_sums(w, i, zeroed, acc);
    ladder_nodes(w, acc, true, &l, q, C, M, E, O, tag, op->name, w->name[op->out]);
    dq_free(C), dq_free(M), dq_free(E), dq_free(zeroed);
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
        qw_op(w, "Add", layer, v, half, v), qw_op(w, "Floor", layer, v, NULL, v);
        return;
    }
    char sign[32];
    qw_node_begin(w, "Sign", layer, v, NULL, sign), onnx_node_end(&w->g);
    qw_node_begin(w, "Abs", layer, v, NULL, mag), onnx_node_end(&w->g);
    qw_op(w, "Add", layer, mag, half, mag), qw_op(w, "Floor", layer, mag, NULL, mag);
    qw_node_begin(w, "Mul", layer, mag, sign, v), onnx_node_end(&w->g);
}

/* A fixed-point epilogue: ConvInteger, then the engine's arithmetic in double. */
void qw_conv_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    int O = cv->cout;
    double *ma = dq_malloc((size_t)O * sizeof(double));
    for (int o = 0; o < O; o++) ma[o] = fabs(cv->fix_a[o]);  // the weights of a < 0 are negated
    char tag[96], mn[112], en[112], v[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    long long cdims[4] = {1, O, 1, 1};
    const_double(w, mn, tag, "fix_multiplier", cdims, 4, ma, (size_t)O);
    const_double(w, en, tag, "fix_addend", cdims, 4, cv->fix_b, (size_t)O);
    dq_free(ma);
    qw_integer_sums(w, i, NULL, v);
    char fl[32];
    qw_node_begin(w, "Cast", op->name, v, NULL, fl), onnx_attr_int(&w->g, "to", ONNX_DOUBLE), onnx_node_end(&w->g);
    qw_op(w, "Mul", op->name, fl, mn, fl), qw_op(w, "Add", op->name, fl, en, fl);
    if (cv->act == ACT_RELU) qw_op(w, "Relu", op->name, fl, NULL, fl);
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

/* Operand k of a residual sum brought from fraction `from` to `to`: times 2^(to − from), or
 * divided by 2^(from − to) rounded half up, as the engine's shift. Its initializers are named for
 * the operand (both may need the same shift; an initializer name must be unique). */
static void rescale_fix(QWalk *w, char *v, int k, int from, int to, const char *tag, const char *layer) {
    if (from == to) return;
    char f[112], half[112], what[32];
    snprintf(what, sizeof what, "operand%d_shift", k);
    const_double(w, f, tag, what, NULL, 0, &(double){ldexp(1, to - from)}, 1);
    qw_op(w, "Mul", layer, v, f, v);
    if (to > from) return;
    snprintf(what, sizeof what, "operand%d_half", k);
    const_double(w, half, tag, what, NULL, 0, (const double[]){0.5}, 1);
    qw_op(w, "Add", layer, v, half, v), qw_op(w, "Floor", layer, v, NULL, v);
}

void qw_add_fix(QWalk *w, int i) {
    const IOp *op = &w->im->ops[i];
    const ITensor *t = w->im->tensors;
    char tag[96], a[32], b[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    strcpy(a, w->name[op->in]), strcpy(b, w->name[op->in2]);
    rescale_fix(w, a, 0, t[op->in].frac, t[op->out].frac, tag, op->name);
    rescale_fix(w, b, 1, t[op->in2].frac, t[op->out].frac, tag, op->name);
    qw_op(w, "Add", op->name, a, b, a);
    if (op->relu) qw_op(w, "Relu", op->name, a, NULL, a);
    strcpy(w->name[op->out], a);
}

/* The mean over H·W: ReduceSum (exact), Div, rounded half away from zero. */
void qw_gap_fix(QWalk *w, int i) {
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
    qw_op(w, "Div", op->name, v, hw, v);
    round_away(w, v, false, tag, op->name);
    strcpy(w->name[op->out], v);
}

/* A fixed-point tensor to codes: the ladder on the engine's integer thresholds, in double. */
void qw_quant_fix(QWalk *w, int i) {
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

