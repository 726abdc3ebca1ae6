/* intmodel.c — building the integer program from a quantized model (see intmodel.h).
 *
 * The walk carries the value flowing through the network as one of
 *   INPUT  the float image (only before the first layer),
 *   ACC    the int32 sums of a convolution whose epilogue is not decided yet (its affine map and
 *          activation still absorb BatchNorm and ReLU layers that follow),
 *   FIX    a fixed-point tensor,
 *   CODES  the input codes of a quantized layer.
 * A quantized layer asks for CODES of its input quantizer: an ACC gets a thresholds epilogue,
 * a FIX an IOP_QUANT_FIX, the INPUT an IOP_QUANT_INPUT. Pooling, residual sums and the end of a
 * residual body ask for FIX: an ACC then gets a fixed-point epilogue.
 */
#include "intmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/igemm.h"
#include "mpquant.h"
#include "nn/weighted.h"

typedef enum { V_INPUT, V_ACC, V_FIX, V_CODES } VKind;

typedef struct Val {
    VKind kind;
    int tensor;   // FIX, CODES, INPUT: the tensor; ACC: the conv's output tensor (kind set later)
    int op;       // ACC: the IOP_CONV that produced it
    int h, w, c;
    double bound; // FIX: no value exceeds it in magnitude
} Val;

typedef struct Walk {
    IntModel *im;
    const QuantContext *qc;
    char *err;
    size_t err_size;
    bool failed;
} Walk;

/* The first failure's reason: "<name>: <what>". */
static bool fail(Walk *w, const char *what, const char *name) {
    if (!w->failed) snprintf(w->err, w->err_size, "%s: %s", name, what);
    w->failed = true;
    return false;
}

/* FIX tensors: the most fraction bits with which `bound` still fits int32 with a bit to spare. */
static int frac_for(double bound) {
    if (!(bound > 0)) return 30;
    int f = (int)floor(30 - log2(bound));
    return f < 0 ? 0 : f > 30 ? 30 : f;
}

static int new_tensor(IntModel *im, ITensorKind kind, int h, int wd, int c) {
    if (im->n_tensors == im->cap_tensors) {
        im->cap_tensors = im->cap_tensors ? 2 * im->cap_tensors : 32;
        im->tensors = dq_realloc(im->tensors, (size_t)im->cap_tensors * sizeof *im->tensors);
    }
    im->tensors[im->n_tensors] = (ITensor){.kind = kind, .h = h, .w = wd, .c = c};
    return im->n_tensors++;
}

static IOp *new_op(IntModel *im, IOpKind kind, const char *name) {
    if (im->n_ops == im->cap_ops) {
        im->cap_ops = im->cap_ops ? 2 * im->cap_ops : 32;
        im->ops = dq_realloc(im->ops, (size_t)im->cap_ops * sizeof *im->ops);
    }
    IOp *op = &im->ops[im->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    snprintf(op->name, sizeof op->name, "%s", name);
    return op;
}

/* ------------------------------------------------------------------ quantizers */
/* The integer grid for values v[0..n) (0 among them or not): the scale s with every k = v/s an
 * integer that fits the codes — weights int8 ([−128, 127], zero point 0); activations any 256
 * consecutive integers around 0 (uint8 with a zero point, so that a ReLU output uses all 256 and
 * a range like [−d, 254·d] sits exactly). Preferred: the coarsest scale on which every value sits
 * exactly — the smallest gap between values divided by the smallest integer that does it (a
 * uniform quantizer's own step: its codes are then consecutive, which an ONNX export needs no
 * level table for) — over the finest that fits, which snaps each value by at most s/2. */
static bool sits_on(const float *v, int n, double s) {
    for (int j = 0; j < n; j++) {
        double k = v[j] / s;
        if (fabs(k - nearbyint(k)) > 1e-3) return false;
    }
    return true;
}

/* The scale s' closest to the values on the integer grid of s (least squares over k = round(v/s)):
 * an exact grid found from float differences is off by their rounding; this puts it back. */
static float refined(const float *v, int n, double s) {
    double vk = 0, kk = 0;
    for (int j = 0; j < n; j++) {
        double k = nearbyint(v[j] / s);
        vk += v[j] * k, kk += k * k;
    }
    return (float)(kk > 0 ? vk / kk : s);
}

static float grid_scale(const float *v, int n, bool weights) {
    float lo = 0, hi = 0;
    for (int j = 0; j < n; j++) lo = fminf(lo, v[j]), hi = fmaxf(hi, v[j]);
    double fit = weights ? fmax(-lo / 128.0, hi / 127.0) : (hi - lo) / 255.0;  // the finest that fits
    if (!(fit > 0)) return 1.0f;
    double gap = INFINITY;  // the smallest gap between distinct values, and its integer fractions
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (v[j] > v[i]) gap = fmin(gap, (double)v[j] - v[i]);
    for (int div = 1; isfinite(gap) && gap / div >= fit * (1 - 1e-6); div++)
        if (sits_on(v, n, gap / div)) return refined(v, n, gap / div);
    return sits_on(v, n, fit) ? refined(v, n, fit) : (float)fit;
}

/* The quantizer's grid and its integer values: k = round(level / scale), stored as k + zero. */
static bool iquant_of(const Quantizer *q, IQuant *out) {
    float levels[256], thresh[255];
    int n = q->ops->grid ? q->ops->grid(q, levels, thresh) : 0;
    if (n < 2) return false;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->scale = grid_scale(levels, n, false);
    long zero = lround(-fminf(levels[0], 0) / out->scale);
    out->zero = (int)(zero > 255 ? 255 : zero);
    for (int j = 0; j < n; j++) {
        long k = lroundf(levels[j] / out->scale);
        out->k[j] = (int16_t)(k < -out->zero ? -out->zero : k > 255 - out->zero ? 255 - out->zero : k);
    }
    memcpy(out->thresh, thresh, (size_t)(n - 1) * sizeof(float));
    return true;
}

/* ------------------------------------------------------------------ the epilogues */
/* Integer threshold on s·acc equivalent to act(a·acc + b) >= t (see intmodel.h); s = sign of a. */
static int32_t acc_threshold(double a, double b, ActKind act, double t) {
    double lo = act == ACT_NONE ? -INFINITY : 0, hi = act == ACT_RELU6 ? 6 : INFINITY;
    if (t <= lo) return INT32_MIN;            // always reached
    if (t > hi) return INT32_MAX;             // never
    if (a == 0) return b >= t ? INT32_MIN : INT32_MAX;
    double v = a > 0 ? ceil((t - b) / a) : -floor((t - b) / a);  // a·acc + b >= t  ⟺  s·acc >= v
    return v <= -2147483647.0 ? INT32_MIN + 1 : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
}

/* The integer thresholds of a codes epilogue, from its affine map, activation and quantizer. */
static void epilogue_thresholds(IConv *cv) {
    const IQuant *q = &cv->out;
    int nt = q->n - 1;
    cv->thr = dq_malloc(dq_mul_size((size_t)cv->cout, (size_t)(nt ? nt : 1)) * sizeof(int32_t));
    cv->sign = dq_calloc((size_t)cv->cout + 16, sizeof(int32_t));  // 16: slack for the vector kernels
    for (int c = 0; c < cv->cout; c++) {
        cv->sign[c] = cv->a[c] < 0 ? -1 : 1;
        for (int j = 0; j < nt; j++)
            cv->thr[(size_t)c * nt + j] = acc_threshold(cv->a[c], cv->b[c], cv->act, q->thresh[j]);
    }
    if (nt <= 15) {  // the vector kernels' layout: threshold j of every channel together
        cv->thr_t = dq_calloc(dq_mul_size((size_t)cv->cout, (size_t)(nt ? nt : 1)) + 16, sizeof(int32_t));
        for (int c = 0; c < cv->cout; c++)
            for (int j = 0; j < nt; j++) cv->thr_t[(size_t)j * cv->cout + c] = cv->thr[(size_t)c * nt + j];
    }
}

/* ------------------------------------------------------------------ values */
/* The largest |act(a·acc + b)| the conv can produce: |a|·Σ|w|·max|k| + |b| per channel. */
static double conv_bound(const IConv *cv) {
    size_t per = intconv_weights(cv) / (size_t)cv->cout;
    double bound = 0;
    for (int c = 0; c < cv->cout; c++) {
        double sw = 0;
        for (size_t i = 0; i < per; i++) sw += fabs((double)intconv_weight(cv, i * cv->cout + c));
        double y = fabs((double)cv->a[c]) * sw * cv->in_kmax + fabs((double)cv->b[c]);
        if (cv->act == ACT_RELU6 && y > 6) y = 6;
        bound = fmax(bound, y);
    }
    return bound;
}

static Val need_fix(Walk *w, Val v, const char *name) {
    IntModel *im = w->im;
    if (v.kind == V_FIX) return v;
    if (v.kind != V_ACC) {
        fail(w, "the integer engine needs a layer's output here, not its input", name);
        return v;
    }
    IConv *cv = &im->ops[v.op].conv;
    cv->epi = IEPI_FIX;
    double bound = conv_bound(cv);
    im->tensors[v.tensor].kind = ITENSOR_FIX;
    im->tensors[v.tensor].frac = frac_for(bound);
    return (Val){.kind = V_FIX, .tensor = v.tensor, .h = v.h, .w = v.w, .c = v.c, .bound = bound};
}

static Val need_codes(Walk *w, Val v, const Quantizer *q, const char *name) {
    IntModel *im = w->im;
    IQuant iq;
    if (!iquant_of(q, &iq)) {
        fail(w, "its input quantizer has no integer form (per-channel or uncalibrated)", name);
        return v;
    }
    if (v.kind == V_ACC) {
        im->ops[v.op].conv.epi = IEPI_CODES;
        im->ops[v.op].conv.out = iq;
        im->tensors[v.tensor].kind = ITENSOR_CODES;
        return (Val){.kind = V_CODES, .tensor = v.tensor, .h = v.h, .w = v.w, .c = v.c};
    }
    if (v.kind == V_CODES) {
        fail(w, "codes of one quantizer feed another", name);
        return v;
    }
    IOp *op = new_op(im, v.kind == V_INPUT ? IOP_QUANT_INPUT : IOP_QUANT_FIX, name);
    op->q = iq;
    op->in = v.tensor;
    op->out = new_tensor(im, ITENSOR_CODES, v.h, v.w, v.c);
    return (Val){.kind = V_CODES, .tensor = op->out, .h = v.h, .w = v.w, .c = v.c};
}

/* ------------------------------------------------------------------ layers */
/* Weights: the fake-quant values, snapped per output channel to int8, stored as codes into a
 * table of int8 values: 8-bit weights index the identity (code = k + 128); fewer bits index the
 * channel's distinct values in ascending order (the last repeated to fill 2^bits), one table for
 * the layer when every channel's is the same (levels on a grid shared through channel scales). */
static int k_of(float v, float scale) {
    long k = lroundf(v / scale);
    return k < -128 ? -128 : k > 127 ? 127 : (int)k;
}

static bool conv_weights(Walk *w, const QuantLayer *l, IConv *cv, float *wscale) {
    Arena a;
    arena_init(&a, 1 << 16, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = false;
    Tensor *wq = quantizer_forward(l->wq, &t, l->weight);
    int C = cv->cout, T = 1 << cv->wbits;
    size_t per = wq->numel / (size_t)C;
    cv->wcodes = dq_malloc(wq->numel);
    cv->wtable = dq_calloc((size_t)C * T, 1);
    float levels[256], vals[256];
    int nl = l->wq->ops->levels(l->wq, levels);  // the whole tensor's levels (per-tensor quantizers)
    float wl = grid_scale(levels, nl, true);
    bool on_layer[256] = {0};
    int n_layer = 0;  // distinct integer levels on the layer's grid
    for (int j = 0; j < nl; j++) n_layer += !on_layer[k_of(levels[j], wl) + 128], on_layer[k_of(levels[j], wl) + 128] = true;
    bool ok = true;
    for (int c = 0; c < C && ok; c++) {
        int nv = 0;  // the channel's distinct values
        for (size_t i = 0; i < per && nv < 256; i++) {
            float v = wq->data[i * C + c];
            int j = 0;
            while (j < nv && vals[j] != v) j++;
            if (j == nv) vals[nv++] = v;
        }
        // the layer's grid when the channel sits on it: every channel then indexes one table of all
        // the levels; otherwise the channel's own grid and its own values
        bool layer = sits_on(vals, nv, wl) && n_layer <= T;
        wscale[c] = layer ? wl : grid_scale(vals, nv, true);
        bool used[256] = {0};
        if (layer)
            for (int j = 0; j < nl; j++) used[k_of(levels[j], wl) + 128] = true;
        else
            for (size_t i = 0; i < per; i++) used[k_of(wq->data[i * C + c], wscale[c]) + 128] = true;
        int8_t *tab = cv->wtable + (size_t)c * T;
        uint8_t code_of[256] = {0};
        int n = 0;
        for (int u = 0; u < 256; u++) {
            if (!used[u] && cv->wbits < 8) continue;
            if (n == T) {
                ok = fail(w, "a channel has more distinct weights than its bits allow", l->base.name);
                break;
            }
            code_of[u] = (uint8_t)n, tab[n++] = (int8_t)(u - 128);
        }
        for (int j = n; j < T && n > 0; j++) tab[j] = tab[n - 1];
        for (size_t i = 0; i < per && ok; i++) cv->wcodes[i * C + c] = code_of[k_of(wq->data[i * C + c], wscale[c]) + 128];
    }
    cv->shared_table = true;
    for (int c = 1; c < C && cv->shared_table; c++) cv->shared_table = !memcmp(cv->wtable, cv->wtable + (size_t)c * T, (size_t)T);
    arena_free(&a);
    return ok;
}

/* Multipoint weights (mpquant.h) keep their points: point p's codes q ∈ [−2^(b−1), 2^(b−1))
 * stored as q + 2^(b−1), one table of values for the layer. With one point per channel the
 * point's scale is the channel's; with more, the channel's unit u = |a_0|/2^S and the integer
 * multipliers pmul = round(a_p/u), S the largest (≤ POINT_SHIFT_MAX) that keeps
 * 255·Σ_p |pmul|·Σ|q_p| below 2^31: every partial sum of every kernel then fits in int32
 * (intmodel_check holds a file to the same bound). */
#define POINT_SHIFT_MAX 20

static bool conv_points(Walk *w, const QuantLayer *l, IConv *cv, float *wscale) {
    const float *scales;
    const int8_t *codes;
    int P = mpq_layer_points(l->wq, &scales, &codes), C = cv->cout, T = 1 << cv->wbits, half = T / 2;
    if (P < 1 || P > ICONV_MAX_POINTS) return fail(w, "multipoint weights without points (not calibrated)", l->base.name);
    size_t nw = intconv_weights(cv), per = nw / (size_t)C;
    cv->points = P;
    cv->wcodes = dq_malloc((size_t)P * nw);
    for (size_t i = 0; i < (size_t)P * nw; i++) cv->wcodes[i] = (uint8_t)(codes[i] + half);
    cv->wtable = dq_malloc((size_t)T);
    for (int j = 0; j < T; j++) cv->wtable[j] = (int8_t)(j - half);
    cv->shared_table = true;
    if (P == 1) {
        for (int c = 0; c < C; c++) wscale[c] = scales[c];
        return true;
    }
    cv->pmul = dq_calloc((size_t)P * C, sizeof *cv->pmul);
    for (int c = 0; c < C; c++) {
        double sum_q[ICONV_MAX_POINTS] = {0}, a0 = fabs((double)scales[c]);
        for (int p = 0; p < P; p++)
            for (size_t i = 0; i < per; i++) sum_q[p] += abs(codes[(size_t)p * nw + i * C + c]);
        wscale[c] = 0;
        if (a0 == 0) continue;  // an all-zero channel: its multipliers stay 0
        for (int S = POINT_SHIFT_MAX; S >= 0 && !wscale[c]; S--) {
            float u = (float)ldexp(a0, -S);  // the unit as the epilogue has it
            double bound = 0;
            for (int p = 0; p < P; p++) bound += fabs(round(scales[(size_t)p * C + c] / (double)u)) * sum_q[p];
            if (255 * bound < 2147483647.0) wscale[c] = u;
        }
        if (!wscale[c]) return fail(w, "a multipoint channel's sums do not fit in 32 bits", l->base.name);
        for (int p = 0; p < P; p++) cv->pmul[(size_t)p * C + c] = (int32_t)round(scales[(size_t)p * C + c] / (double)wscale[c]);
    }
    return true;
}

static Val lower_quant_layer(Walk *w, const QuantLayer *l, Val in) {
    IntModel *im = w->im;
    const LayerSpec *s = &l->spec;
    Val x = need_codes(w, in, l->aq, l->base.name);
    if (w->failed) return x;
    bool linear = s->kind == SPEC_LINEAR;
    if (linear && (x.h != 1 || x.w != 1)) x.c = x.h * x.w * x.c, x.h = x.w = 1;  // flattened
    IOp *op = new_op(im, IOP_CONV, l->base.name);
    IConv *cv = &op->conv;
    *cv = (IConv){.kh = linear ? 1 : s->kernel, .kw = linear ? 1 : s->kernel, .stride = linear ? 1 : s->stride,
                  .pad = linear ? 0 : s->pad, .groups = linear ? 1 : s->groups, .cin = s->in, .cout = s->out,
                  .wbits = l->wq->ops->bits(l->wq), .points = 1, .act = ACT_NONE};
    if (x.c != cv->cin) {
        fail(w, "input channels do not match the layer", l->base.name);
        return x;
    }
    const IOp *qop = NULL;  // the input quantizer as resolved above
    for (int i = im->n_ops - 2; i >= 0 && !qop; i--)
        if ((im->ops[i].kind == IOP_CONV && im->ops[i].out == x.tensor) ||
            ((im->ops[i].kind == IOP_QUANT_INPUT || im->ops[i].kind == IOP_QUANT_FIX) && im->ops[i].out == x.tensor))
            qop = &im->ops[i];
    const IQuant *iq = qop->kind == IOP_CONV ? &qop->conv.out : &qop->q;
    cv->in_zero = iq->zero;
    for (int j = 0; j < iq->n; j++) cv->in_kmax = abs(iq->k[j]) > cv->in_kmax ? abs(iq->k[j]) : cv->in_kmax;
    float *wscale = dq_malloc((size_t)cv->cout * sizeof(float));
    if (!(mpq_is(l->wq) ? conv_points(w, l, cv, wscale) : conv_weights(w, l, cv, wscale))) {
        dq_free(wscale);
        return x;
    }
    cv->a = dq_malloc((size_t)cv->cout * sizeof(float));
    cv->b = dq_malloc((size_t)cv->cout * sizeof(float));
    for (int c = 0; c < cv->cout; c++) cv->a[c] = iq->scale * wscale[c], cv->b[c] = l->bias ? l->bias->data[c] : 0;
    dq_free(wscale);
    op->in = x.tensor;
    int oh = (x.h + 2 * cv->pad - cv->kh) / cv->stride + 1, ow = (x.w + 2 * cv->pad - cv->kw) / cv->stride + 1;
    op->out = new_tensor(im, ITENSOR_FIX, oh, ow, cv->cout);  // kind decided by the epilogue
    return (Val){.kind = V_ACC, .tensor = op->out, .op = im->n_ops - 1, .h = oh, .w = ow, .c = cv->cout};
}

static Val lower(Walk *w, Layer *l, Val v);

static Val lower_residual(Walk *w, Layer *l, Val in, bool relu_after) {
    Layer **kids;
    int n = l->ops->children(l, &kids);
    Val x = need_fix(w, in, l->name);
    Val body = need_fix(w, lower(w, kids[0], x), l->name);
    Val sc = n > 1 ? need_fix(w, lower(w, kids[1], x), l->name) : x;
    if (w->failed) return body;
    if (body.h != sc.h || body.w != sc.w || body.c != sc.c) {
        fail(w, "the residual branches disagree in shape", l->name);
        return body;
    }
    IOp *op = new_op(w->im, IOP_ADD, l->name);
    op->in = body.tensor, op->in2 = sc.tensor, op->relu = relu_after;
    op->out = new_tensor(w->im, ITENSOR_FIX, body.h, body.w, body.c);
    w->im->tensors[op->out].frac = frac_for(body.bound + sc.bound);
    return (Val){.kind = V_FIX, .tensor = op->out, .h = body.h, .w = body.w, .c = body.c, .bound = body.bound + sc.bound};
}

static Val lower(Walk *w, Layer *l, Val v) {
    if (w->failed) return v;
    IntModel *im = w->im;
    if (quant_layer_is(l)) return lower_quant_layer(w, (const QuantLayer *)l, v);
    LayerInfo info = layer_info(l);
    switch (info.kind) {
    case LAYER_SEQUENTIAL: {
        Layer **kids;
        int n = l->ops->children(l, &kids);
        for (int i = 0; i < n && !w->failed; i++) v = lower(w, kids[i], v);
        return v;
    }
    case LAYER_RESIDUAL: return lower_residual(w, l, v, info.relu_after);
    case LAYER_BATCHNORM: {
        if (v.kind != V_ACC || im->ops[v.op].conv.act != ACT_NONE) {
            fail(w, "BatchNorm that does not follow a quantized layer", l->name);
            return v;
        }
        IConv *cv = &im->ops[v.op].conv;
        for (int c = 0; c < cv->cout; c++) {  // γ·(a·acc + b − μ)/σ + β
            double g = info.gamma->data[c] / sqrt((double)info.var->data[c] + info.eps);
            cv->a[c] = (float)(cv->a[c] * g);
            cv->b[c] = (float)((cv->b[c] - info.mean->data[c]) * g + info.beta->data[c]);
        }
        cv->act = info.act;
        return v;
    }
    case LAYER_ACTIVATION:
        if (v.kind != V_ACC) {
            fail(w, "an activation the integer engine cannot place", l->name);
            return v;
        }
        im->ops[v.op].conv.act = im->ops[v.op].conv.act == ACT_RELU6 || info.act == ACT_RELU6 ? ACT_RELU6 : ACT_RELU;
        return v;
    case LAYER_DROPOUT:
    case LAYER_FLATTEN: return v;  // identity in evaluation; channels-last flattening keeps the order
    case LAYER_GLOBAL_AVGPOOL:
    case LAYER_MAXPOOL:
    case LAYER_SHORTCUT_PAD: {
        Val x = need_fix(w, v, l->name);
        if (w->failed) return x;
        IOp *op = new_op(im, info.kind == LAYER_GLOBAL_AVGPOOL ? IOP_GAP : info.kind == LAYER_MAXPOOL ? IOP_MAXPOOL
                                                                                                        : IOP_SHORTCUT,
                         l->name);
        op->in = x.tensor, op->pool = info.pool, op->stride = info.stride;
        int h = 1, wd = 1, c = x.c;
        if (info.kind == LAYER_MAXPOOL)
            h = (x.h + 2 * info.pool.pad - info.pool.kernel) / info.pool.stride + 1,
            wd = (x.w + 2 * info.pool.pad - info.pool.kernel) / info.pool.stride + 1;
        if (info.kind == LAYER_SHORTCUT_PAD) h = (x.h + info.stride - 1) / info.stride, wd = (x.w + info.stride - 1) / info.stride, c = info.out;
        op->out = new_tensor(im, ITENSOR_FIX, h, wd, c);
        im->tensors[op->out].frac = im->tensors[x.tensor].frac;
        return (Val){.kind = V_FIX, .tensor = op->out, .h = h, .w = wd, .c = c, .bound = x.bound};
    }
    default: fail(w, "a layer the integer engine does not know", l->name); return v;
    }
}

/* ------------------------------------------------------------------ weights for the kernels */
static void finish_conv(IConv *cv) {
    if (cv->epi == IEPI_CODES) epilogue_thresholds(cv);
    if (cv->points < 1) cv->points = 1;
    size_t nw = intconv_weights(cv);
    cv->w = dq_malloc((size_t)cv->points * nw);
    for (size_t i = 0; i < (size_t)cv->points * nw; i++) {
        int c = (int)(i % (size_t)cv->cout);
        cv->w[i] = intconv_table(cv, c)[cv->wcodes[i]];
    }
    if (cv->points > 1) {
        cv->wide = dq_malloc(nw * sizeof *cv->wide);
        for (size_t i = 0; i < nw; i++) cv->wide[i] = (int32_t)intconv_weight(cv, i);  // fits: the bound of conv_points
    }
    cv->wsum = dq_calloc((size_t)cv->cout, sizeof(int32_t));
    for (size_t i = 0; i < nw; i++) cv->wsum[i % (size_t)cv->cout] += cv->wide ? cv->wide[i] : cv->w[i];
    if (cv->groups == 1) {  // dense, pointwise, linear: igemm's packed B (K = KH·KW·Cin, N = Cout + extra)
        int K = cv->kh * cv->kw * cv->cin, OC = cv->cout;
        cv->extra = 0;
        if (cv->points > 1) {  // the later points' columns: only where a channel has the point
            cv->xchan = dq_malloc((size_t)(cv->points - 1) * OC * sizeof *cv->xchan);
            cv->xmul = dq_malloc((size_t)(cv->points - 1) * OC * sizeof *cv->xmul);
            for (int p = 1; p < cv->points; p++)
                for (int c = 0; c < OC; c++)
                    if (cv->pmul[(size_t)p * OC + c])
                        cv->xchan[cv->extra] = p * OC + c, cv->xmul[cv->extra++] = cv->pmul[(size_t)p * OC + c];
        }
        int N = OC + cv->extra;
        int8_t *B = cv->extra ? dq_malloc((size_t)K * N) : cv->w;
        for (int k = 0; k < K && cv->extra; k++) {
            memcpy(B + (size_t)k * N, cv->w + (size_t)k * OC, (size_t)OC);
            for (int j = 0; j < cv->extra; j++) {  // point p's weight k of channel c
                int p = cv->xchan[j] / OC, c = cv->xchan[j] % OC;
                B[(size_t)k * N + OC + j] = cv->w[(size_t)p * nw + (size_t)k * OC + c];
            }
        }
        for (int j = 0; j < cv->extra; j++) cv->xchan[j] %= OC;
        cv->packed = dq_malloc(igemm_packed_bytes(K, N));
        igemm_pack_b(K, N, B, cv->packed);
        if (B != cv->w) dq_free(B);
    }
}

/* The first-guess table of a quantizer: over [t_0, t_{n−2}], how many thresholds lie below each
 * bucket's lower edge. */
static void iquant_lut(IQuant *q) {
    int nt = q->n - 1;
    float lo = q->thresh[0], hi = q->thresh[nt - 1];
    q->lut_lo = lo;
    q->lut_inv = hi > lo && isfinite(hi - lo) ? (float)(IQUANT_LUT / ((double)hi - lo)) : 0;
    for (int b = 0, j = 0; b < IQUANT_LUT; b++) {
        double edge = lo + b / (double)q->lut_inv;
        while (q->lut_inv > 0 && j < nt && q->thresh[j] <= edge) j++;
        q->lut[b] = (uint8_t)(q->lut_inv > 0 ? j : 0);
    }
}

/* x·2^-frac >= t  ⟺  x >= ceil(t·2^frac): the thresholds of a quantizer on a FIX tensor. */
static void fix_thresholds(const IQuant *q, int frac, int32_t *thr) {
    for (int j = 0; j < q->n - 1; j++) {
        double v = ceil(ldexp(q->thresh[j], frac));
        thr[j] = v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
    }
}

void intmodel_finish(IntModel *im) {
    for (int i = 0; i < im->n_ops; i++) {
        IOp *op = &im->ops[i];
        if (op->kind == IOP_QUANT_INPUT || op->kind == IOP_QUANT_FIX) iquant_lut(&op->q);
        if (op->kind == IOP_QUANT_FIX) {
            fix_thresholds(&op->q, im->tensors[op->in].frac, op->fix_thr);
            // a saturated FIX value (INT32_MAX) reaches a threshold INT32_MAX, which the line
            // treats as never reached: no line then
            int nt = op->q.n - 1;
            if (op->fix_thr[nt - 1] != INT32_MAX) intaffine_fit(&op->fix_aff, op->fix_thr, 1, nt, op->q.k, op->q.zero);
        }
        if (op->kind != IOP_CONV) continue;
        IConv *cv = &op->conv;
        finish_conv(cv);
        if (cv->epi == IEPI_CODES) {
            iquant_lut(&cv->out);
            intaffine_fit(&cv->aff, cv->thr, cv->cout, cv->out.n - 1, cv->out.k, cv->out.zero);
        }
        if (cv->epi == IEPI_FIX) {
            double unit = ldexp(1, im->tensors[op->out].frac);
            cv->fix_a = dq_malloc((size_t)cv->cout * sizeof(double));
            cv->fix_b = dq_malloc((size_t)cv->cout * sizeof(double));
            for (int c = 0; c < cv->cout; c++) cv->fix_a[c] = cv->a[c] * unit, cv->fix_b[c] = cv->b[c] * unit;
            cv->fix_hi = 6 * unit;
        }
    }
}

bool intmodel_from(const Model *m, const QuantContext *qc, IntModel *im, char *err, size_t err_size) {
    memset(im, 0, sizeof *im);
    im->in_h = m->in_h, im->in_w = m->in_w, im->in_c = m->in_c, im->num_classes = m->num_classes;
    Walk w = {.im = im, .qc = qc, .err = err, .err_size = err_size};
    new_tensor(im, ITENSOR_FIX, m->in_h, m->in_w, m->in_c);  // 0: the float input
    Val v = lower(&w, m->net, (Val){.kind = V_INPUT, .tensor = 0, .h = m->in_h, .w = m->in_w, .c = m->in_c});
    if (!w.failed && v.kind != V_ACC) fail(&w, "the network does not end in a quantized layer", m->name);
    if (!w.failed && v.c != m->num_classes) fail(&w, "the last layer's outputs are not the classes", m->name);
    if (w.failed) {
        intmodel_free(im);
        return false;
    }
    im->ops[v.op].conv.epi = IEPI_LOGITS;
    im->logits = v.op;
    intmodel_finish(im);
    // what the file reader would refuse (a diverged model's non-finite scales or disordered
    // thresholds) is refused here, with the reader's reason, so that a saved program always loads
    char why[256];
    if (!intmodel_check(im, why, sizeof why)) {
        snprintf(err, err_size, "%s: %s", m->name, why);
        intmodel_free(im);
        return false;
    }
    return true;
}

void intmodel_free(IntModel *im) {
    if (!im) return;
    for (int i = 0; i < im->n_ops; i++) {
        IConv *cv = &im->ops[i].conv;
        intaffine_free(&cv->aff);
        intaffine_free(&im->ops[i].fix_aff);
        dq_free(cv->wcodes), dq_free(cv->wtable), dq_free(cv->w), dq_free(cv->wsum), dq_free(cv->a);
        dq_free(cv->b), dq_free(cv->thr), dq_free(cv->sign), dq_free(cv->thr_t), dq_free(cv->packed), dq_free(cv->fix_a), dq_free(cv->fix_b);
        dq_free(cv->pmul), dq_free(cv->wide);
        dq_free(cv->xchan), dq_free(cv->xmul);
    }
    intmodel_release_work(im);
    dq_free(im->ops);
    dq_free(im->tensors);
    dq_free(im->op_seconds);
    memset(im, 0, sizeof *im);
}
