/* intfile.c — the integer model file (.dqm): what the integer engine needs and nothing else.
 *
 * Layout (little-endian; every count checked against the bytes that remain before use):
 *     "DDQMODEL"  u32 version  u32 in_h in_w in_c classes  u32 n_tensors n_ops logits
 *     n_tensors × { u8 kind  u8 frac  u32 h w c }                       (tensor 0: the float input)
 *     n_ops × op
 *     u32 CRC-32 of every byte before it
 * op:    u8 kind  u8 relu  u16 name length  name  u32 in in2 out
 *        QUANT_INPUT, QUANT_FIX: quant
 *        MAXPOOL: u32 kernel stride pad          SHORTCUT: u32 stride
 *        CONV: u32 kh kw stride pad groups cin cout  u8 wbits act epi shared  u8 points (version 2)
 *              u32 in_zero in_kmax
 *              the tables: 2^wbits int8 per channel (one row when shared; none at 8 bits, where
 *              code = value + 128), points > 1: i32 pmul[points][cout], the codes packed at
 *              wbits (LSB first): point 0's, then each later point's in the channels whose
 *              multiplier is not 0, f32 a[cout] b[cout],
 *              CODES: quant
 * Version 1 (no points byte: one point each) is still read.
 * quant: u16 n  u8 zero  f32 scale  i16 k[n]  f32 thresh[n − 1]
 * What the kernels use besides (expanded int8 weights, their packed GEMM layout, the integer
 * thresholds) is derived at load by the code that derives it at export, so the two agree.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"
#include "core/fileio.h"
#include "intmodel.h"

#define DQM_MAGIC "DDQMODEL"
#define DQM_VERSION 2

/* ------------------------------------------------------------------ writing */
typedef struct Out {
    uint8_t *p;
    size_t n, cap;
} Out;

static void put(Out *o, const void *src, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 4096;
        o->p = dq_realloc(o->p, o->cap);
    }
    memcpy(o->p + o->n, src, n);
    o->n += n;
}

static void put_u8(Out *o, unsigned v) { put(o, &(uint8_t){(uint8_t)v}, 1); }

static void put_u16(Out *o, unsigned v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(o, b, 2);
}

static void put_u32(Out *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}

static void put_f32(Out *o, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(o, v);
}

static void put_quant(Out *o, const IQuant *q) {
    put_u16(o, (unsigned)q->n);
    put_u8(o, (unsigned)q->zero);
    put_f32(o, q->scale);
    for (int j = 0; j < q->n; j++) put_u16(o, (uint16_t)q->k[j]);
    for (int j = 0; j + 1 < q->n; j++) put_f32(o, q->thresh[j]);
}

/* Codes of every point. */
static size_t conv_weights_count(const IConv *cv) { return (size_t)(cv->points > 1 ? cv->points : 1) * intconv_weights(cv); }

/* Whether code i (of conv_weights_count) is in the file: every code of point 0, a later point's
 * only in the channels whose multiplier is not 0 (the others are 0 × anything). */
static bool code_stored(const IConv *cv, size_t i) {
    size_t nw = intconv_weights(cv), p = i / nw;
    return p == 0 || cv->pmul[p * (size_t)cv->cout + i % (size_t)cv->cout] != 0;
}

static size_t stored_codes(const IConv *cv) {
    size_t n = 0, all = conv_weights_count(cv);
    if (cv->points <= 1) return all;
    for (size_t i = 0; i < all; i++) n += code_stored(cv, i);
    return n;
}

static void put_conv(Out *o, const IConv *cv, uint32_t version) {
    uint32_t dims[7] = {(uint32_t)cv->kh, (uint32_t)cv->kw, (uint32_t)cv->stride, (uint32_t)cv->pad,
                        (uint32_t)cv->groups, (uint32_t)cv->cin, (uint32_t)cv->cout};
    for (int i = 0; i < 7; i++) put_u32(o, dims[i]);
    put_u8(o, (unsigned)cv->wbits), put_u8(o, (unsigned)cv->act), put_u8(o, (unsigned)cv->epi), put_u8(o, cv->shared_table);
    if (version >= 2) put_u8(o, (unsigned)(cv->points > 1 ? cv->points : 1));
    put_u32(o, (uint32_t)cv->in_zero), put_u32(o, (uint32_t)cv->in_kmax);
    if (cv->wbits < 8) put(o, cv->wtable, (size_t)(cv->shared_table ? 1 : cv->cout) << cv->wbits);
    for (size_t i = 0; cv->points > 1 && i < (size_t)cv->points * cv->cout; i++) put_u32(o, (uint32_t)cv->pmul[i]);
    size_t nw = conv_weights_count(cv), nbytes = (stored_codes(cv) * (size_t)cv->wbits + 7) / 8, k = 0;
    uint8_t *packed = dq_calloc(nbytes ? nbytes : 1, 1);
    for (size_t i = 0; i < nw; i++) {  // the k-th stored code at bit k·wbits
        if (!code_stored(cv, i)) continue;
        for (int b = 0; b < cv->wbits; b++) {
            size_t bit = k * (size_t)cv->wbits + (size_t)b;
            if (cv->wcodes[i] >> b & 1) packed[bit / 8] |= (uint8_t)(1u << (bit % 8));
        }
        k++;
    }
    put(o, packed, nbytes);
    dq_free(packed);
    for (int c = 0; c < cv->cout; c++) put_f32(o, cv->a[c]);
    for (int c = 0; c < cv->cout; c++) put_f32(o, cv->b[c]);
    if (cv->epi == IEPI_CODES) put_quant(o, &cv->out);
}

static void serialize_version(const IntModel *im, Out *o, uint32_t version) {
    put(o, DQM_MAGIC, 8);
    put_u32(o, version);
    uint32_t head[7] = {(uint32_t)im->in_h, (uint32_t)im->in_w, (uint32_t)im->in_c, (uint32_t)im->num_classes,
                        (uint32_t)im->n_tensors, (uint32_t)im->n_ops, (uint32_t)im->logits};
    for (int i = 0; i < 7; i++) put_u32(o, head[i]);
    for (int t = 0; t < im->n_tensors; t++) {
        const ITensor *x = &im->tensors[t];
        put_u8(o, x->kind), put_u8(o, (unsigned)x->frac);
        put_u32(o, (uint32_t)x->h), put_u32(o, (uint32_t)x->w), put_u32(o, (uint32_t)x->c);
    }
    for (int i = 0; i < im->n_ops; i++) {
        const IOp *op = &im->ops[i];
        size_t len = strlen(op->name);
        put_u8(o, op->kind), put_u8(o, op->relu), put_u16(o, (unsigned)len);
        put(o, op->name, len);
        put_u32(o, (uint32_t)op->in), put_u32(o, (uint32_t)op->in2), put_u32(o, (uint32_t)op->out);
        switch (op->kind) {
        case IOP_QUANT_INPUT:
        case IOP_QUANT_FIX: put_quant(o, &op->q); break;
        case IOP_MAXPOOL:
            put_u32(o, (uint32_t)op->pool.kernel), put_u32(o, (uint32_t)op->pool.stride), put_u32(o, (uint32_t)op->pool.pad);
            break;
        case IOP_SHORTCUT: put_u32(o, (uint32_t)op->stride); break;
        case IOP_CONV: put_conv(o, &op->conv, version); break;
        default: break;
        }
    }
    put_u32(o, crc32_update(0, o->p, o->n));
}

static void serialize(const IntModel *im, Out *o) { serialize_version(im, o, DQM_VERSION); }

bool intmodel_encode_version(const IntModel *im, uint32_t version, uint8_t **bytes, size_t *n) {
    for (int i = 0; i < im->n_ops && version < 2; i++)
        if (im->ops[i].kind == IOP_CONV && im->ops[i].conv.points > 1) return false;
    if (version < 1 || version > DQM_VERSION) return false;
    Out o = {0};
    serialize_version(im, &o, version);
    *bytes = o.p, *n = o.n;
    return true;
}

bool intmodel_save(const IntModel *im, const char *path, size_t *bytes, char *err, size_t err_size) {
    Out o = {0};
    serialize(im, &o);
    const void *parts[1] = {o.p};
    size_t sizes[1] = {o.n};
    bool ok = fileio_write_atomic(path, parts, sizes, 1, err, err_size);
    if (bytes) *bytes = o.n;
    dq_free(o.p);
    return ok;
}

/* ------------------------------------------------------------------ reading */
typedef struct In {
    const uint8_t *p, *end;
    const char *bad;  // the first problem
} In;

static bool take(In *in, void *dst, size_t n, const char *what) {
    if (in->bad) return false;
    if ((size_t)(in->end - in->p) < n) {
        in->bad = what;
        return false;
    }
    if (dst) memcpy(dst, in->p, n);
    in->p += n;
    return true;
}

static uint32_t get_u32(In *in, const char *what) {
    uint8_t b[4] = {0};
    take(in, b, 4, what);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static unsigned get_u16(In *in, const char *what) {
    uint8_t b[2] = {0};
    take(in, b, 2, what);
    return (unsigned)b[0] | (unsigned)b[1] << 8;
}

static unsigned get_u8(In *in, const char *what) {
    uint8_t b = 0;
    take(in, &b, 1, what);
    return b;
}

static float get_f32(In *in, const char *what) {
    uint32_t v = get_u32(in, what);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* A small count read from the file: at most max (callers bound what a count may allocate). */
static int get_count(In *in, uint32_t max, const char *what) {
    uint32_t v = get_u32(in, "truncated header");
    if (!in->bad && v > max) in->bad = what;
    return in->bad ? 0 : (int)v;
}

static void get_quant(In *in, IQuant *q) {
    memset(q, 0, sizeof *q);
    q->n = (int)get_u16(in, "truncated quantizer");
    q->zero = (int)get_u8(in, "truncated quantizer");
    q->scale = get_f32(in, "truncated quantizer");
    if (in->bad) return;
    if (q->n < 2 || q->n > 256) {
        in->bad = "a quantizer with fewer than 2 or more than 256 levels";
        return;
    }
    if (!(q->scale > 0 && isfinite(q->scale))) in->bad = "a quantizer scale that is not a positive number";
    for (int j = 0; j < q->n; j++) {
        q->k[j] = (int16_t)get_u16(in, "truncated quantizer");
        if (!in->bad && (q->k[j] + q->zero < 0 || q->k[j] + q->zero > 255)) in->bad = "a level outside its code byte";
    }
    for (int j = 0; j + 1 < q->n; j++) {
        q->thresh[j] = get_f32(in, "truncated quantizer");
        if (!in->bad && (isnan(q->thresh[j]) || (j > 0 && q->thresh[j] < q->thresh[j - 1])))
            in->bad = "quantizer thresholds not ascending";
    }
}

/* Everything a conv's shapes must satisfy before any buffer is sized from them. */
static const char *conv_shape_problem(const IConv *cv) {
    if (cv->kh < 1 || cv->kw < 1 || cv->kh > 64 || cv->kw > 64) return "a kernel size outside 1..64";
    if (cv->stride < 1 || cv->stride > 64 || cv->pad < 0 || cv->pad > 64) return "a stride or padding outside its range";
    if (cv->groups < 1 || cv->cin < 1 || cv->cout < 1 || cv->cin % cv->groups || cv->cout % cv->groups)
        return "groups that do not divide the channels";
    if (cv->wbits < 1 || cv->wbits > 8) return "weight bits outside 1..8";
    if (cv->act > ACT_RELU6 || cv->epi > IEPI_LOGITS) return "an unknown activation or epilogue";
    if (cv->in_zero < 0 || cv->in_zero > 255 || cv->in_kmax < 0 || cv->in_kmax > 255) return "an input zero point outside 0..255";
    return NULL;
}

/* A multipoint layer's sums stay below 2^31 (the bound conv_points chose its multipliers by):
 * 255·Σ_p |pmul|·Σ|value| per channel. */
static const char *points_problem(const IConv *cv) {
    size_t nw = intconv_weights(cv), per = nw / (size_t)cv->cout;
    for (int c = 0; c < cv->cout; c++) {
        double bound = 0;
        for (int p = 0; p < cv->points; p++) {
            double sum = 0;
            for (size_t i = 0; i < per; i++) sum += abs(intconv_table(cv, c)[cv->wcodes[(size_t)p * nw + i * cv->cout + c]]);
            bound += fabs((double)cv->pmul[(size_t)p * cv->cout + c]) * sum;
        }
        if (255 * bound >= 2147483647.0) return "multipoint multipliers whose sums would overflow 32 bits";
    }
    return NULL;
}

static void get_conv(In *in, IConv *cv, uint32_t version) {
    int *dims[7] = {&cv->kh, &cv->kw, &cv->stride, &cv->pad, &cv->groups, &cv->cin, &cv->cout};
    for (int i = 0; i < 7; i++) *dims[i] = (int)get_count(in, 1u << 20, "a convolution dimension over 2^20");
    cv->wbits = (int)get_u8(in, "truncated convolution");
    cv->act = (ActKind)get_u8(in, "truncated convolution");
    cv->epi = (IEpilogue)get_u8(in, "truncated convolution");
    cv->shared_table = get_u8(in, "truncated convolution") != 0;
    cv->points = version >= 2 ? (int)get_u8(in, "truncated convolution") : 1;
    if (!in->bad && (cv->points < 1 || cv->points > ICONV_MAX_POINTS)) in->bad = "weight points outside 1..8";
    cv->in_zero = (int)get_u32(in, "truncated convolution");
    cv->in_kmax = (int)get_u32(in, "truncated convolution");
    if (in->bad) return;
    const char *shape = conv_shape_problem(cv);
    if (shape) {
        in->bad = shape;
        return;
    }
    size_t nw = conv_weights_count(cv), T = (size_t)1 << cv->wbits;
    if (nw > ((size_t)1 << 31) / 8) {
        in->bad = "a layer with more than 2^28 weights";
        return;
    }
    size_t rows = cv->shared_table ? 1 : (size_t)cv->cout, muls = cv->points > 1 ? (size_t)cv->points * cv->cout : 0;
    // the bytes this conv must still hold, before anything is allocated from its counts (the
    // codes: at least point 0's)
    size_t need = (cv->wbits < 8 ? rows * T : 0) + 4 * muls + (nw / (size_t)cv->points * (size_t)cv->wbits + 7) / 8 +
                  8 * (size_t)cv->cout;
    if ((size_t)(in->end - in->p) < need) {
        in->bad = "truncated convolution weights";
        return;
    }
    if (cv->wbits < 8) {
        cv->wtable = dq_malloc(rows * T);
        take(in, cv->wtable, rows * T, "truncated weight tables");
    } else {  // the identity: code = value + 128
        cv->shared_table = true;
        cv->wtable = dq_malloc(256);
        for (int u = 0; u < 256; u++) cv->wtable[u] = (int8_t)(u - 128);
    }
    if (muls) {
        cv->pmul = dq_malloc(muls * sizeof *cv->pmul);
        for (size_t i = 0; i < muls; i++) cv->pmul[i] = (int32_t)get_u32(in, "truncated point multipliers");
    }
    size_t packed = (stored_codes(cv) * (size_t)cv->wbits + 7) / 8, k = 0;
    if (!in->bad && (size_t)(in->end - in->p) < packed + 8 * (size_t)cv->cout) in->bad = "truncated weight codes";
    cv->wcodes = dq_calloc(nw ? nw : 1, 1);  // a code not stored: 0 (its multiplier is)
    const uint8_t *bits = in->p;
    for (size_t i = 0; i < nw && !in->bad; i++) {
        if (!code_stored(cv, i)) continue;
        unsigned code = 0;
        for (int b = 0; b < cv->wbits; b++) {
            size_t bit = k * (size_t)cv->wbits + (size_t)b;
            code |= (unsigned)(bits[bit / 8] >> (bit % 8) & 1) << b;
        }
        cv->wcodes[i] = (uint8_t)code, k++;
    }
    take(in, NULL, packed, "truncated weight codes");
    if (muls && !in->bad) in->bad = points_problem(cv);
    cv->a = dq_malloc((size_t)cv->cout * sizeof(float));
    cv->b = dq_malloc((size_t)cv->cout * sizeof(float));
    for (int c = 0; c < cv->cout; c++) cv->a[c] = get_f32(in, "truncated scales");
    for (int c = 0; c < cv->cout; c++) cv->b[c] = get_f32(in, "truncated biases");
    for (int c = 0; c < cv->cout && !in->bad; c++)
        if (!isfinite(cv->a[c]) || !isfinite(cv->b[c])) in->bad = "a scale or bias that is not finite";
    if (cv->epi == IEPI_CODES) get_quant(in, &cv->out);
}

/* The program's structure: tensors exist, each written once by an op before any op reads it, and
 * shapes follow from the ops (so the kernels never index outside a buffer). */
static const char *graph_problem(const IntModel *im) {
    const ITensor *t0 = &im->tensors[0];
    if (t0->h != im->in_h || t0->w != im->in_w || t0->c != im->in_c) return "the input tensor is not the input's shape";
    bool *written = dq_calloc((size_t)im->n_tensors, 1);
    written[0] = true;
    const char *bad = NULL;
    for (int i = 0; i < im->n_ops && !bad; i++) {
        const IOp *op = &im->ops[i];
        bool two = op->kind == IOP_ADD;
        if (op->in < 0 || op->in >= im->n_tensors || op->out <= 0 || op->out >= im->n_tensors ||
            (two && (op->in2 < 0 || op->in2 >= im->n_tensors))) {
            bad = "an op names a tensor that does not exist";
            break;
        }
        if (!written[op->in] || (two && !written[op->in2])) bad = "an op reads a tensor before it is written";
        else if (written[op->out]) bad = "a tensor is written twice";
        if (bad) break;
        written[op->out] = true;
        const ITensor *x = &im->tensors[op->in], *y = &im->tensors[op->out];
        bool in_codes = x->kind == ITENSOR_CODES && op->in != 0, in_fix = x->kind == ITENSOR_FIX && op->in != 0;
        bool same_frac = y->frac == x->frac;  // pooling and shortcuts move values, not their units
        switch (op->kind) {
        case IOP_QUANT_INPUT:
            if (op->in != 0 || y->kind != ITENSOR_CODES || y->h != x->h || y->w != x->w || y->c != x->c)
                bad = "a bad input quantization";
            break;
        case IOP_QUANT_FIX:
            if (!in_fix || y->kind != ITENSOR_CODES || y->h != x->h || y->w != x->w || y->c != x->c)
                bad = "a bad fixed-point quantization";
            break;
        case IOP_ADD: {
            const ITensor *z = &im->tensors[op->in2];
            if (!in_fix || z->kind != ITENSOR_FIX || op->in2 == 0 || y->kind != ITENSOR_FIX || x->h != y->h || z->h != y->h ||
                x->w != y->w || z->w != y->w || x->c != y->c || z->c != y->c)
                bad = "a residual sum whose shapes disagree";
            break;
        }
        case IOP_GAP:
            if (!in_fix || !same_frac || y->kind != ITENSOR_FIX || y->h != 1 || y->w != 1 || y->c != x->c)
                bad = "a bad global pooling";
            break;
        case IOP_MAXPOOL: {
            Pool2dArgs p = op->pool;
            if (!in_fix || !same_frac || y->kind != ITENSOR_FIX || p.kernel < 1 || p.stride < 1 || p.pad < 0 || p.pad >= p.kernel ||
                x->h + 2 * p.pad < p.kernel || x->w + 2 * p.pad < p.kernel ||
                y->h != (x->h + 2 * p.pad - p.kernel) / p.stride + 1 || y->w != (x->w + 2 * p.pad - p.kernel) / p.stride + 1 ||
                y->c != x->c)
                bad = "a bad max pooling";
            break;
        }
        case IOP_SHORTCUT:
            if (!in_fix || !same_frac || y->kind != ITENSOR_FIX || op->stride < 1 || y->h != (x->h + op->stride - 1) / op->stride ||
                y->w != (x->w + op->stride - 1) / op->stride || y->c < x->c)
                bad = "a bad shortcut";
            break;
        case IOP_CONV: {
            const IConv *cv = &op->conv;
            bool flat = cv->kh == 1 && cv->kw == 1 && x->h * x->w * x->c == cv->cin && (x->h != 1 || x->w != 1);
            int H = flat ? 1 : x->h, W = flat ? 1 : x->w;
            if (!in_codes) bad = "a convolution whose input is not codes";
            else if (!flat && x->c != cv->cin) bad = "a convolution whose input channels do not match";
            else if (H + 2 * cv->pad < cv->kh || W + 2 * cv->pad < cv->kw) bad = "a kernel larger than its padded input";
            else if (y->h != (H + 2 * cv->pad - cv->kh) / cv->stride + 1 || y->w != (W + 2 * cv->pad - cv->kw) / cv->stride + 1 ||
                     y->c != cv->cout)
                bad = "a convolution whose output shape does not follow";
            else if ((cv->epi == IEPI_CODES) != (y->kind == ITENSOR_CODES)) bad = "an epilogue that does not match its tensor";
            else if ((cv->epi == IEPI_LOGITS) != (i == im->logits)) bad = "logits from the wrong op";
            break;
        }
        default: bad = "an unknown op";
        }
    }
    if (!bad && (im->logits < 0 || im->logits >= im->n_ops || im->ops[im->logits].kind != IOP_CONV ||
                 im->ops[im->logits].conv.cout != im->num_classes || im->tensors[im->ops[im->logits].out].h != 1 ||
                 im->tensors[im->ops[im->logits].out].w != 1))
        bad = "the logits op does not give one score per class";
    dq_free(written);
    return bad;
}

bool intmodel_parse(IntModel *im, const uint8_t *file, size_t n, char *err, size_t err_size) {
    memset(im, 0, sizeof *im);
    if (n < 12 || memcmp(file, DQM_MAGIC, 8) != 0) return dq_fail(err, err_size, "not an integer model file (bad magic)");
    In in = {.p = file + 8, .end = file + n - 4};
    uint32_t version = get_u32(&in, "truncated header");
    if (version < 1 || version > DQM_VERSION)
        return dq_fail(err, err_size, "integer model file version %u, this build reads versions 1 to %d", version, DQM_VERSION);
    uint8_t tail[4];
    memcpy(tail, file + n - 4, 4);
    uint32_t crc = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    if (crc32_update(0, file, n - 4) != crc) return dq_fail(err, err_size, "checksum mismatch (the file is damaged)");
    im->in_h = get_count(&in, 1 << 16, "an input size over 65536");
    im->in_w = get_count(&in, 1 << 16, "an input size over 65536");
    im->in_c = get_count(&in, 1 << 16, "an input size over 65536");
    im->num_classes = get_count(&in, 1 << 20, "more than 2^20 classes");
    int nt = get_count(&in, 1 << 16, "more than 65536 tensors"), no = get_count(&in, 1 << 16, "more than 65536 ops");
    im->logits = get_count(&in, 1 << 16, "a logits index out of range");
    if (!in.bad && (im->in_h < 1 || im->in_w < 1 || im->in_c < 1 || im->num_classes < 1 || nt < 2 || no < 1))
        in.bad = "an empty input, class list or program";
    if (!in.bad && (size_t)(in.end - in.p) < (size_t)nt * 14 + (size_t)no * 16) in.bad = "truncated: fewer bytes than its counts";
    if (in.bad) return dq_fail(err, err_size, "%s", in.bad);
    im->tensors = dq_calloc((size_t)nt, sizeof *im->tensors);
    im->ops = dq_calloc((size_t)no, sizeof *im->ops);
    im->n_tensors = im->cap_tensors = nt;
    for (int t = 0; t < nt && !in.bad; t++) {
        ITensor *x = &im->tensors[t];
        x->kind = (ITensorKind)get_u8(&in, "truncated tensors");
        x->frac = (int)get_u8(&in, "truncated tensors");
        x->h = get_count(&in, 1 << 16, "a tensor size over 65536");
        x->w = get_count(&in, 1 << 16, "a tensor size over 65536");
        x->c = get_count(&in, 1 << 20, "a tensor with more than 2^20 channels");
        if (!in.bad && (x->kind > ITENSOR_FIX || x->frac > 30 || x->h < 1 || x->w < 1 || x->c < 1 ||
                        (double)x->h * x->w * x->c > (double)(1 << 24)))
            in.bad = "a tensor with an impossible kind, fraction or size";
    }
    for (int i = 0; i < no && !in.bad; i++) {
        IOp *op = &im->ops[i];
        im->n_ops = i + 1;  // what intmodel_free must release
        op->kind = (IOpKind)get_u8(&in, "truncated ops");
        op->relu = get_u8(&in, "truncated ops") != 0;
        unsigned len = get_u16(&in, "truncated ops");
        if (!in.bad && len >= sizeof op->name) in.bad = "an op name longer than 63 bytes";
        take(&in, op->name, len, "truncated ops");
        op->in = (int)get_u32(&in, "truncated ops"), op->in2 = (int)get_u32(&in, "truncated ops");
        op->out = (int)get_u32(&in, "truncated ops");
        switch (op->kind) {
        case IOP_QUANT_INPUT:
        case IOP_QUANT_FIX: get_quant(&in, &op->q); break;
        case IOP_MAXPOOL:
            op->pool.kernel = get_count(&in, 64, "a pooling window over 64");
            op->pool.stride = get_count(&in, 64, "a pooling stride over 64");
            op->pool.pad = get_count(&in, 64, "a pooling pad over 64");
            break;
        case IOP_SHORTCUT: op->stride = get_count(&in, 64, "a shortcut stride over 64"); break;
        case IOP_CONV: get_conv(&in, &op->conv, version); break;
        case IOP_ADD:
        case IOP_GAP: break;
        default: in.bad = "an unknown op kind";
        }
    }
    if (!in.bad && in.p != in.end) in.bad = "bytes left over after the last op (sizes do not match)";
    const char *bad = in.bad ? in.bad : graph_problem(im);
    if (bad) {
        intmodel_free(im);
        return dq_fail(err, err_size, "%s", bad);
    }
    intmodel_finish(im);
    return true;
}

bool intmodel_load(IntModel *im, const char *path, char *err, size_t err_size) {
    size_t n;
    uint8_t *file = fileio_read_all(path, &n, err, err_size);
    if (!file) return false;
    bool ok = intmodel_parse(im, file, n, err, err_size);
    dq_free(file);
    return ok;
}

IntModelSize intmodel_size(const IntModel *im) {
    IntModelSize s = {0};
    Out o = {0};
    serialize(im, &o);
    s.file = o.n;
    dq_free(o.p);
    for (int i = 0; i < im->n_ops; i++) {
        const IConv *cv = &im->ops[i].conv;
        if (im->ops[i].kind != IOP_CONV) continue;
        s.weights += (stored_codes(cv) * (size_t)cv->wbits + 7) / 8;
        if (cv->wbits < 8) s.tables += (size_t)(cv->shared_table ? 1 : cv->cout) << cv->wbits;
    }
    return s;
}

bool intmodel_check(const IntModel *im, char *err, size_t err_size) {
    Out o = {0};
    serialize(im, &o);
    IntModel back;
    bool ok = intmodel_parse(&back, o.p, o.n, err, err_size);
    if (ok) intmodel_free(&back);
    dq_free(o.p);
    return ok;
}
