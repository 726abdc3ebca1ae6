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

#include "core/error.h"
#include "core/igemm.h"
#include "core/threads.h"
#include "intmodel.h"

typedef struct Buffers {
    void **t;          // per tensor: uint8 (codes) or int32 (FIX); t[0] the float input
} Buffers;

static size_t tensor_elems(const ITensor *t, int n) { return (size_t)n * t->h * t->w * t->c; }

/* ------------------------------------------------------------------ thresholds */
/* How many of the n ascending thresholds thr[] are <= v (a binary search). */
static inline int count_le_i32(const int32_t *thr, int n, int64_t v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (thr[mid] <= v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static inline int count_le_f32(const float *thr, int n, float v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (v >= thr[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void quant_input(const IQuant *q, const float *x, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(q->k[count_le_f32(q->thresh, q->n - 1, x[i])] + q->zero);
}

static void quant_fix(const IQuant *q, const int32_t *x, int frac, uint8_t *out, size_t n) {
    int32_t thr[255];
    for (int j = 0; j < q->n - 1; j++) {  // x·2^-frac >= t  ⟺  x >= ceil(t·2^frac)
        double v = ceil(ldexp(q->thresh[j], frac));
        thr[j] = v <= -2147483648.0 ? INT32_MIN : v >= 2147483647.0 ? INT32_MAX : (int32_t)v;
    }
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(q->k[count_le_i32(thr, q->n - 1, x[i])] + q->zero);
}

/* ------------------------------------------------------------------ epilogue */
static inline int32_t to_fix(double v, int frac) {
    double f = nearbyint(ldexp(v, frac));
    return f >= 2147483647.0 ? INT32_MAX : f <= -2147483647.0 ? -INT32_MAX : (int32_t)f;
}

static inline double activate(ActKind act, double y) {
    if (act == ACT_NONE) return y;
    y = y > 0 ? y : 0;
    return act == ACT_RELU6 && y > 6 ? 6 : y;
}

/* One output row of OC sums (zero-corrected) to its destination. */
static void epilogue_row(const IConv *cv, const int32_t *acc, void *dst, size_t at, int frac) {
    int OC = cv->cout, nt = cv->out.n - 1;
    switch (cv->epi) {
    case IEPI_CODES: {
        uint8_t *o = (uint8_t *)dst + at;
        for (int c = 0; c < OC; c++) {
            int64_t v = (int64_t)cv->sign[c] * acc[c];
            o[c] = (uint8_t)(cv->out.k[count_le_i32(cv->thr + (size_t)c * nt, nt, v)] + cv->out.zero);
        }
        break;
    }
    case IEPI_FIX: {
        int32_t *o = (int32_t *)dst + at;
        for (int c = 0; c < OC; c++) o[c] = to_fix(activate(cv->act, (double)cv->a[c] * acc[c] + cv->b[c]), frac);
        break;
    }
    case IEPI_LOGITS: {
        float *o = (float *)dst + at;
        for (int c = 0; c < OC; c++) o[c] = (float)activate(cv->act, (double)cv->a[c] * acc[c] + cv->b[c]);
        break;
    }
    }
}

/* ------------------------------------------------------------------ convolution */
typedef struct ConvRun {
    const IConv *cv;
    const uint8_t *x;
    void *y;
    int N, H, W, C, OH, OW;
    int frac;          // FIX output: its fraction bits
} ConvRun;

/* The reference: the equation, one output pixel at a time. */
static void conv_ref(const ConvRun *r) {
    const IConv *cv = r->cv;
    int OC = cv->cout, ICg = cv->cin / cv->groups, OCg = OC / cv->groups;
    int32_t *acc = dq_malloc((size_t)OC * sizeof(int32_t));
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
                                s += (u - cv->in_zero) * cv->w[(((size_t)kh * cv->kw + kw) * ICg + i) * OC + oc];
                            }
                        }
                    acc[oc] = s;
                }
                epilogue_row(cv, acc, r->y, (((size_t)n * r->OH + oh) * r->OW + ow) * OC, r->frac);
            }
    dq_free(acc);
}

/* Fast dense / pointwise / linear: rows of im2col bytes (K padded to 4) through igemm. */
enum { ROWS = 64 };

static size_t im2col_stride(const IConv *cv) { return (size_t)(cv->kh * cv->kw * cv->cin + 3) / 4 * 4; }

static void dense_rows(void *ctx, int begin, int end, int tid) {
    const ConvRun *r = ctx;
    const IConv *cv = r->cv;
    int K = cv->kh * cv->kw * cv->cin, OC = cv->cout, P = r->OH * r->OW, M = r->N * P;
    size_t lda = im2col_stride(cv), col_words = ROWS * lda / 4 + 16;  // 4 bytes a word; 16 words of slack
    float *scratch = threads_scratch(tid, THREADS_SLOT_INT_COLUMNS, col_words + (size_t)OC * ROWS);
    uint8_t *col = (uint8_t *)scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + col_words);
    for (int blk = begin; blk < end; blk++) {
        int m0 = blk * ROWS, m1 = m0 + ROWS < M ? m0 + ROWS : M;
        for (int m = m0; m < m1; m++) {
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
        igemm_serial(m1 - m0, OC, K, col, (int)lda, cv->packed, acc, OC);
        for (int m = m0; m < m1; m++) {
            int32_t *a = acc + (size_t)(m - m0) * OC;
            for (int c = 0; c < OC; c++) a[c] -= cv->in_zero * cv->wsum[c];
            epilogue_row(cv, a, r->y, (size_t)m * OC, r->frac);
        }
    }
}

/* Fast depthwise (G = C = OC): the taps of each output pixel, C channels along the vector. */
static void depthwise_rows(void *ctx, int begin, int end, int tid) {
    const ConvRun *r = ctx;
    const IConv *cv = r->cv;
    int C = cv->cout;
    int32_t *acc = (int32_t *)(void *)threads_scratch(tid, THREADS_SLOT_INT_COLUMNS, (size_t)C);
    for (int row = begin; row < end; row++) {  // row = n·OH + oh
        int n = row / r->OH, oh = row % r->OH;
        for (int ow = 0; ow < r->OW; ow++) {
            for (int c = 0; c < C; c++) acc[c] = -cv->in_zero * cv->wsum[c];  // padding included: see below
            for (int kh = 0; kh < cv->kh; kh++) {
                int ih = oh * cv->stride - cv->pad + kh;
                for (int kw = 0; kw < cv->kw; kw++) {
                    int iw = ow * cv->stride - cv->pad + kw;
                    const int8_t *w = cv->w + (size_t)(kh * cv->kw + kw) * C;
                    if (ih < 0 || ih >= r->H || iw < 0 || iw >= r->W) {  // the zero byte
                        for (int c = 0; c < C; c++) acc[c] += cv->in_zero * w[c];
                        continue;
                    }
                    const uint8_t *x = r->x + (((size_t)n * r->H + ih) * r->W + iw) * C;
                    for (int c = 0; c < C; c++) acc[c] += x[c] * w[c];
                }
            }
            epilogue_row(cv, acc, r->y, ((size_t)row * r->OW + ow) * C, r->frac);
        }
    }
}

static void conv_run(const IConv *cv, const ITensor *in, const ITensor *out, const uint8_t *x, void *y, int N,
                     bool ref) {
    ConvRun r = {.cv = cv, .x = x, .y = y, .N = N, .H = in->h, .W = in->w, .C = in->c, .OH = out->h, .OW = out->w,
                 .frac = out->frac};
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

static void gap_fix(const int32_t *x, int32_t *y, int N, int HW, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            int64_t s = 0;
            for (int p = 0; p < HW; p++) s += x[((size_t)n * HW + p) * C + c];
            y[(size_t)n * C + c] = (int32_t)llround((double)s / HW);
        }
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

static void runner_init(Runner *r, const IntModel *im, const float *x, int n, float *logits, bool ref) {
    *r = (Runner){.im = im, .logits = logits, .n = n, .ref = ref};
    r->buf = dq_calloc((size_t)im->n_tensors, sizeof *r->buf);
    r->buf[0] = (void *)(uintptr_t)x;
    for (int t = 1; t < im->n_tensors; t++) {
        size_t e = tensor_elems(&im->tensors[t], n);
        r->buf[t] = dq_malloc(im->tensors[t].kind == ITENSOR_CODES ? e : e * sizeof(int32_t));
    }
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
        const ITensor *in = &im->tensors[op->in], *out = &im->tensors[op->out];
        switch (op->kind) {
        case IOP_QUANT_INPUT: quant_input(&op->q, buf[0], buf[op->out], tensor_elems(in, n)); break;
        case IOP_QUANT_FIX: quant_fix(&op->q, buf[op->in], in->frac, buf[op->out], tensor_elems(in, n)); break;
        case IOP_CONV:
            conv_run(&op->conv, in, out, buf[op->in], r->next == im->logits ? (void *)r->logits : buf[op->out], n, r->ref);
            break;
        case IOP_ADD:
            add_fix(buf[op->in], in->frac, buf[op->in2], im->tensors[op->in2].frac, buf[op->out], out->frac,
                    tensor_elems(out, n), op->relu);
            break;
        case IOP_GAP: gap_fix(buf[op->in], buf[op->out], n, in->h * in->w, in->c); break;
        case IOP_MAXPOOL: maxpool_fix(buf[op->in], buf[op->out], in, out, op->pool, n); break;
        case IOP_SHORTCUT: shortcut_fix(buf[op->in], buf[op->out], in, out, op->stride, n); break;
        }
    }
}

void intmodel_forward(const IntModel *im, const float *x, int n, float *logits, bool ref) {
    Runner r;
    runner_init(&r, im, x, n, logits, ref);
    runner_until(&r, im->n_ops);
    runner_free(&r);
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
    t.no_grad = true, t.training = false;
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
        if (op->kind == IOP_QUANT_INPUT || op->kind == IOP_QUANT_FIX) fprintf(f, "  %d levels", op->q.n);
        fputc('\n', f);
    }
}
