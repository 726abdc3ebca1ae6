/* intonnx.c — an integer program (intmodel.h) as an ONNX QDQ graph (nn/onnx.h writes it).
 *
 * Codes tensors are uint8 (k + zero); fixed-point tensors are float (their real values). Each
 * convolution is the unit ONNX Runtime fuses into an integer convolution:
 *
 *     codes ─DequantizeLinear(s_x, zero)─┐
 *     int8 weights ─DequantizeLinear(s_w[c] = |a_c|/s_x, axis 0)─ Conv ─ Relu/Clip ─ QuantizeLinear(s_y, zero_y)
 *     int32 bias round(b_c/|a_c|) ─DequantizeLinear(|a_c|, axis 0)─┘
 *
 * so that Conv computes a·acc + b as the engine does (a channel with a < 0 has its weights
 * negated; an int8 −128 there becomes 127, counted in *clamped). QuantizeLinear rounds to the
 * quantizer's fine grid (its scale); where the learned levels are not every point of that grid
 * from 0 to 255, a 256-entry uint8 table maps each fine byte to the byte of the level whose
 * thresholds hold its value (Cast to int32, then Gather). That is exact where a boundary between
 * two levels falls between grid points (an odd gap) and off by half a grid step of values where
 * it falls on one (an even gap): no grid with an integer zero point has both kinds of points as
 * its rounding boundaries, so DDQ's learned levels go to ONNX approximately (IntOnnxStats counts
 * them); evenly spaced levels (LSQ, min/max, PACT, 8 bits) go exactly. Residual adds, pooling and the
 * option-A shortcut act on the float values; the classifier's logits are its Conv's output.
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
    IntOnnxStats st;
} QWalk;

/* Whether Q's fine bytes already are the codes' bytes: levels k = every integer from −zero to
 * 255 − zero. */
static bool fine_is_codes(const IQuant *q) {
    if (q->n != 256) return false;
    for (int j = 0; j < 256; j++)
        if (q->k[j] + q->zero != j) return false;
    return true;
}

/* Whether rounding to the grid half a step up separates more of q's level boundaries: a boundary
 * between levels an even number of grid steps apart is a grid point, which rounding to the grid
 * cannot separate, and rounding half a step up can. */
static bool shift_pays(const IQuant *q) {
    int even = 0;
    for (int j = 0; j + 1 < q->n; j++) even += (q->k[j + 1] - q->k[j]) % 2 == 0;
    return 2 * even > q->n - 1;
}

/* value → QuantizeLinear(q) into out; unless q's levels are every byte, then a table from each
 * byte to the byte of the level holding its values, act applied (the caller leaves it out):
 * with `shift`, value was raised by half a grid step (bias or Add), so each byte b holds
 * ((b − zero − 1)·scale, (b − zero)·scale]; else ((b − zero − ½)·scale, (b − zero + ½)·scale].
 * `tag` names the initializers. */
static void quantize(QWalk *w, const char *value, const IQuant *q, ActKind act, bool shift, const char *tag,
                     const char *layer, char *out) {
    char s[112], z[112], fine[32];
    snprintf(s, sizeof s, "%s.scale", tag), snprintf(z, sizeof z, "%s.zero", tag);
    onnx_init_float(&w->g, s, NULL, 0, &q->scale);
    uint8_t zero = (uint8_t)q->zero;
    onnx_init(&w->g, z, ONNX_UINT8, NULL, 0, &zero, 1);
    onnx_value(&w->g, fine);
    onnx_node_begin(&w->g, "QuantizeLinear", layer, ONNX_NAMES(value, s, z), ONNX_NAMES(fine));
    onnx_node_end(&w->g);
    if (fine_is_codes(q)) {
        strcpy(out, fine);
        return;
    }
    w->st.tables++;
    for (int j = 0; j + 1 < q->n; j++)  // boundaries on the rounding's own boundaries are exact
        w->st.boundaries++, w->st.on_grid += ((q->k[j + 1] - q->k[j]) % 2 == 0) != shift;
    uint8_t table[256];
    for (int b = 0; b < 256; b++) {
        double v = (b - q->zero - (shift ? 0.5 : 0)) * (double)q->scale;
        v = act == ACT_NONE ? v : v < 0 ? 0 : act == ACT_RELU6 && v > 6 ? 6 : v;
        int code = 0;
        while (code < q->n - 1 && q->thresh[code] <= v) code++;
        table[b] = (uint8_t)(q->k[code] + q->zero);
    }
    char t[112], idx[32];
    snprintf(t, sizeof t, "%s.levels", tag);
    long long dims[1] = {256};
    onnx_init(&w->g, t, ONNX_UINT8, dims, 1, table, 256);
    onnx_value(&w->g, idx), onnx_value(&w->g, out);
    onnx_node_begin(&w->g, "Cast", layer, ONNX_NAMES(fine), ONNX_NAMES(idx));
    onnx_attr_int(&w->g, "to", ONNX_INT32);
    onnx_node_end(&w->g);
    onnx_node_begin(&w->g, "Gather", layer, ONNX_NAMES(t, idx), ONNX_NAMES(out));
    onnx_node_end(&w->g);
}

/* One convolution: DQ of its input codes, its weights and bias, Conv, the activation, and the
 * epilogue's quantization (or the float value). A linear layer on a flattened H×W×C input is the
 * Conv whose kernel covers it. */
static bool conv(QWalk *w, int i, char *err, size_t err_size) {
    const IOp *op = &w->im->ops[i];
    const IConv *cv = &op->conv;
    const ITensor *in = &w->im->tensors[op->in];
    const IQuant *qin = w->quant[op->in];
    if (!qin) {
        snprintf(err, err_size, "%s: the convolution's input has no quantizer", op->name);
        return false;
    }
    // a codes epilogue with a level table: its activation goes into the table, and the value is
    // raised by half a grid step through the bias where that separates more boundaries
    bool table = cv->epi == IEPI_CODES && !fine_is_codes(&cv->out);
    float shift = table && shift_pays(&cv->out) ? cv->out.scale / 2 : 0;
    bool flat = cv->cin != in->c;  // linear on (H, W, C) flattened channels last
    int kh = flat ? in->h : cv->kh, kw = flat ? in->w : cv->kw, icg = flat ? in->c : cv->cin / cv->groups;
    int O = cv->cout;
    size_t per = (size_t)icg * kh * kw;
    int8_t *wt = dq_malloc((size_t)O * per);
    float *sw = dq_malloc((size_t)O * sizeof(float)), *sb = dq_malloc((size_t)O * sizeof(float));
    int32_t *bias = dq_malloc((size_t)O * sizeof(int32_t));
    int8_t *wz = dq_calloc((size_t)O, 1);
    int32_t *bz = dq_calloc((size_t)O, sizeof(int32_t));
    for (int o = 0; o < O; o++) {
        float a = fabsf(cv->a[o]);
        int s = cv->a[o] < 0 ? -1 : 1;
        sw[o] = a / qin->scale, sb[o] = a;
        double bq = a > 0 ? (cv->b[o] + shift) / (double)a : 0;
        bias[o] = (int32_t)fmax(-2147483647.0, fmin(2147483647.0, nearbyint(bq)));
        if (cv->epi == IEPI_CODES) {  // the boundaries move by the rounding, in output steps
            double moved = fabs(bq - nearbyint(bq)) * a / cv->out.scale;
            w->st.bias_shift_mean += moved, w->st.channels++;
            w->st.bias_shift_max = fmax(w->st.bias_shift_max, moved);
        }
        // ours (KH, KW, Cin/G, Cout) (flat: (H·W·C, Cout), channels last) to OIHW
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int c = 0; c < icg; c++) {
                    int v = s * cv->w[(((size_t)y * kw + x) * icg + c) * O + o];
                    w->st.clamped += v > 127;
                    wt[(size_t)o * per + ((size_t)c * kh + y) * kw + x] = (int8_t)(v > 127 ? 127 : v);
                }
    }
    char tag[96], wn[112], wsn[112], wzn[112], bn[112], bsn[112], bzn[112], x[32], wd[32], bd[32], y[32];
    snprintf(tag, sizeof tag, "%s_%d", op->name, i);
    snprintf(wn, sizeof wn, "%s.weight", tag), snprintf(wsn, sizeof wsn, "%s.weight_scale", tag);
    snprintf(wzn, sizeof wzn, "%s.weight_zero", tag), snprintf(bn, sizeof bn, "%s.bias", tag);
    snprintf(bsn, sizeof bsn, "%s.bias_scale", tag), snprintf(bzn, sizeof bzn, "%s.bias_zero", tag);
    long long wdims[4] = {O, icg, kh, kw}, odims[1] = {O};
    onnx_init(&w->g, wn, ONNX_INT8, wdims, 4, wt, (size_t)O * per);
    onnx_init_float(&w->g, wsn, odims, 1, sw);
    onnx_init(&w->g, wzn, ONNX_INT8, odims, 1, wz, (size_t)O);
    onnx_init(&w->g, bn, ONNX_INT32, odims, 1, bias, (size_t)O * sizeof(int32_t));
    onnx_init_float(&w->g, bsn, odims, 1, sb);
    onnx_init(&w->g, bzn, ONNX_INT32, odims, 1, bz, (size_t)O * sizeof(int32_t));
    dq_free(wt), dq_free(sw), dq_free(sb), dq_free(bias), dq_free(wz), dq_free(bz);
    char xs[112], xz[112];
    snprintf(xs, sizeof xs, "%s.input_scale", tag), snprintf(xz, sizeof xz, "%s.input_zero", tag);
    onnx_init_float(&w->g, xs, NULL, 0, &qin->scale);
    uint8_t zin = (uint8_t)qin->zero;
    onnx_init(&w->g, xz, ONNX_UINT8, NULL, 0, &zin, 1);
    onnx_value(&w->g, x), onnx_value(&w->g, wd), onnx_value(&w->g, bd), onnx_value(&w->g, y);
    onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(w->name[op->in], xs, xz), ONNX_NAMES(x));
    onnx_node_end(&w->g);
    onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(wn, wsn, wzn), ONNX_NAMES(wd));
    onnx_attr_int(&w->g, "axis", 0);
    onnx_node_end(&w->g);
    onnx_node_begin(&w->g, "DequantizeLinear", op->name, ONNX_NAMES(bn, bsn, bzn), ONNX_NAMES(bd));
    onnx_attr_int(&w->g, "axis", 0);
    onnx_node_end(&w->g);
    onnx_node_begin(&w->g, "Conv", op->name, ONNX_NAMES(x, wd, bd), ONNX_NAMES(y));
    onnx_window_attrs(&w->g, kh, kw, cv->stride, cv->pad);
    onnx_attr_int(&w->g, "group", flat ? 1 : cv->groups);
    onnx_node_end(&w->g);
    if (!table) onnx_activation(&w->g, cv->act, op->name, y);
    if (cv->epi == IEPI_CODES) {
        quantize(w, y, &cv->out, table ? cv->act : ACT_NONE, shift > 0, tag, op->name, w->name[op->out]);
        w->quant[op->out] = &cv->out;
    } else strcpy(w->name[op->out], y);
    return true;
}

/* A float tensor (the image, a residual sum) to codes: raised by half a grid step first (an Add)
 * where that separates more of the levels' boundaries. */
static void quantize_input(QWalk *w, const char *value, const IQuant *q, const char *tag, const char *layer, char *out) {
    bool shift = !fine_is_codes(q) && shift_pays(q);
    char raised[32], half[112];
    if (shift) {
        snprintf(half, sizeof half, "%s.half_step", tag);
        onnx_init_float(&w->g, half, NULL, 0, (const float[]){q->scale / 2});
        onnx_value(&w->g, raised);
        onnx_node_begin(&w->g, "Add", layer, ONNX_NAMES(value, half), ONNX_NAMES(raised));
        onnx_node_end(&w->g);
    }
    quantize(w, shift ? raised : value, q, ACT_NONE, shift, tag, layer, out);
}

static void simple(QWalk *w, const char *opname, const char *layer, const char *in, char *out) {
    onnx_value(&w->g, out);
    onnx_node_begin(&w->g, opname, layer, ONNX_NAMES(in), ONNX_NAMES(out));
}

bool intmodel_export_onnx(const IntModel *im, const char *path, IntOnnxStats *st, char *err, size_t err_size) {
    QWalk w = {.im = im};
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
            quantize_input(&w, w.name[op->in], &op->q, tag, op->name, w.name[op->out]);
            w.quant[op->out] = &op->q;
            break;
        case IOP_CONV: ok = conv(&w, i, err, err_size); break;
        case IOP_ADD:
            onnx_value(&w.g, w.name[op->out]);
            onnx_node_begin(&w.g, "Add", op->name, ONNX_NAMES(w.name[op->in], w.name[op->in2]), ONNX_NAMES(w.name[op->out]));
            onnx_node_end(&w.g);
            if (op->relu) onnx_activation(&w.g, ACT_RELU, op->name, w.name[op->out]);
            break;
        case IOP_GAP:
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
    if (w.st.channels) w.st.bias_shift_mean /= w.st.channels;
    if (st) *st = w.st;
    dq_free(w.quant), dq_free(w.name);
    onnx_graph_free(&w.g);
    return ok;
}
