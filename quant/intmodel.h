/* intmodel.h — a quantized model as an integer program: what the integer engine runs.
 *
 * intmodel_from builds one from a trained quantized Model (any method): it walks the layers and
 * emits a short list of integer ops. Every quantized layer's input becomes codes (uint8), its
 * weights int8 values on a per-output-channel grid, its product an exact int32 sum. What follows
 * a product (the layer's scale, BatchNorm, ReLU/ReLU6) is folded into one per-channel affine map
 * y = a·acc + b and an activation, and then either
 *   - counted against the next quantizer's thresholds — "requantization by thresholds": each
 *     threshold t becomes an integer threshold on acc, so the next codes come out exact for
 *     learned, non-uniform levels as for uniform ones; or
 *   - kept as a fixed-point value (int32, 2^-16 units: "FIX") where a value is used twice or
 *     pooled: the residual streams, global pooling, max pooling; the next quantizer then counts
 *     its thresholds on that.
 * The classifier's sums become float logits at the very end.
 *
 * Multipoint layers (w ≈ Σ_p a_p·q_p per output channel, quant/multipoint.h) keep their points:
 * one plane of b-bit codes per point and an integer multiplier per point and channel, a_p ≈
 * u_c·pmul[p][c], so the product is still one exact integer sum, acc = Σ_p pmul·(Σ k_x·q_p).
 * The dense kernels compute it with int8 GEMMs — point 0 over every channel, each later point
 * over the channels that have it, side by side as extra columns of one GEMM — multipoint's
 * hardware story; the depthwise kernel multiplies in 32-bit lanes anyway and
 * takes the points' sum Σ_p pmul·q_p as its weight: the same integers.
 *
 * Approximations (measured by intmodel_compare): a quantizer's levels are snapped to an integer
 * grid (activations: max|level|/127 or /255 per tensor; weights: max|w|/127 per output channel),
 * exact when the levels already sit on it; a multipoint channel's scales are rounded to integer
 * multiples of its unit u_c = |a_0|/2^S (S ≤ 20, the largest that keeps every sum below 2^31:
 * relative error ≤ 2^-(S+1) on a_0); FIX values are rounded to 2^-16 and saturate at
 * ±32768.
 *
 *     (N, H, W, C) everywhere, channels-last; a "code" tensor stores k + zero as uint8, where k is
 *     the level's integer value and zero the quantizer's zero point (0 after a ReLU).
 */
#ifndef DQ_INTMODEL_H
#define DQ_INTMODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "intaffine.h"
#include "nn/model.h"
#include "qlayer.h"


typedef enum { ITENSOR_CODES, ITENSOR_FIX } ITensorKind;

typedef struct ITensor {
    ITensorKind kind;
    int h, w, c;               // per image
    int frac;                  // FIX: values are int32 multiples of 2^-frac
} ITensor;

#define IQUANT_LUT 1024

/* A quantizer as the engine sees it: the integer value of each code and the thresholds. */
typedef struct IQuant {
    int n;                     // levels (codes 0..n−1)
    float scale;               // level ≈ scale · k
    int zero;                  // stored byte = k + zero; k in [−zero, 255 − zero]
    int16_t k[256 + 2];        // integer value of each code (+2: slack for 32-bit gathers)
    float thresh[255];         // decision thresholds (float, as the fake-quant quantizer has them)
    // derived (intmodel_finish): the kernels' first guess of a code, the number of thresholds
    // below each of IQUANT_LUT buckets of y from lut_lo; exact comparisons then settle it
    float lut_lo, lut_inv;
    uint8_t lut[IQUANT_LUT + 4];  // +4: slack for 32-bit gathers
} IQuant;

typedef enum {
    IOP_QUANT_INPUT,   // float image → codes of q
    IOP_CONV,          // codes → int32 sums → epilogue
    IOP_QUANT_FIX,     // FIX → codes of q
    IOP_ADD,           // FIX + FIX → FIX (ReLU after when relu)
    IOP_GAP,           // FIX → FIX mean over H, W
    IOP_MAXPOOL,       // FIX → FIX
    IOP_SHORTCUT,      // FIX → FIX: option-A shortcut (subsample, zero-pad channels)
} IOpKind;

typedef enum {
    IEPI_CODES,        // thresholds → codes of the next quantizer
    IEPI_FIX,          // fixed point
    IEPI_LOGITS,       // float y = a·acc + b (the classifier)
} IEpilogue;

#define ICONV_MAX_POINTS 8

typedef struct IConv {
    int kh, kw, stride, pad, groups;
    int cin, cout;
    int wbits;                 // the weights' bits: codes packed at this width in the file
    int points;                // weight points per channel: 1, or multipoint's several (below)
    uint8_t *wcodes;           // (points, KH, KW, Cin/G, Cout) codes, one per byte in memory
    int8_t *wtable;            // (Cout, 2^wbits) int8 value of each weight code (rows equal: shared)
    bool shared_table;         // every channel's row is the same (the file stores one)
    int32_t *pmul;             // points > 1: (points, Cout) the integer multiplier of each point's
                               // values, 0 where a channel has fewer: the weight is Σ_p pmul·w_p
    int8_t *w;                 // (points, KH, KW, Cin/G, Cout) int8 weights (expanded from the two above)
    int32_t *wide;             // points > 1: (KH, KW, Cin/G, Cout) Σ_p pmul·w_p, the weight (derived)
    int extra;                 // points > 1, dense: the later points' columns in packed (derived):
    int *xchan;                // (extra) each one's channel
    int32_t *xmul;             // (extra) and multiplier
    int32_t *wsum;             // (Cout) Σ w over the receptive field: the input zero's correction
    int in_zero;               // zero of the input codes
    int in_kmax;               // max |k| of the input codes (for the output's bound)
    float *a, *b;              // (Cout) y = a·acc + b, acc the exact Σ k_x·w
    ActKind act;               // then this activation
    IEpilogue epi;
    IQuant out;                // IEPI_CODES: the next quantizer
    int32_t *thr;              // IEPI_CODES: (Cout, out.n − 1) integer thresholds on s·acc
    int32_t *sign;             // IEPI_CODES: (Cout) s = +1, or −1 where a < 0
    int32_t *thr_t;            // IEPI_CODES with ≤ 15 thresholds: thr transposed, (out.n − 1, Cout) (derived)
    IAffine aff;               // IEPI_CODES: the codes by arithmetic, where exact (derived)
    int8_t *packed;            // fast kernels: weights in igemm's layout (dense, pointwise, linear);
                               // multipoint: point 0's Cout columns, then the `extra` ones
    double *fix_a, *fix_b;     // IEPI_FIX: a, b times 2^frac of the output (derived)
    double fix_hi;             // IEPI_FIX: ReLU6's 6 times 2^frac
} IConv;

/* Channel c's weight table. */
static inline const int8_t *intconv_table(const IConv *cv, int c) {
    return cv->wtable + (cv->shared_table ? 0 : (size_t)c << cv->wbits);
}

/* Weights per point: KH·KW·Cin/G·Cout. */
static inline size_t intconv_weights(const IConv *cv) {
    return (size_t)cv->kh * cv->kw * (cv->cin / cv->groups) * cv->cout;
}

/* The integer weight i (the layout of one point's codes) from the codes: Σ_p pmul·table[code]. */
static inline int64_t intconv_weight(const IConv *cv, size_t i) {
    int c = (int)(i % (size_t)cv->cout);
    if (cv->points <= 1) return intconv_table(cv, c)[cv->wcodes[i]];
    size_t nw = intconv_weights(cv);
    int64_t v = 0;
    for (int p = 0; p < cv->points; p++) v += (int64_t)cv->pmul[(size_t)p * cv->cout + c] * intconv_table(cv, c)[cv->wcodes[p * nw + i]];
    return v;
}

typedef struct IOp {
    IOpKind kind;
    int in, in2, out;          // tensor indices (in2: IOP_ADD's second operand)
    IConv conv;                // IOP_CONV
    IQuant q;                  // IOP_QUANT_INPUT, IOP_QUANT_FIX
    Pool2dArgs pool;           // IOP_MAXPOOL
    int stride;                // IOP_SHORTCUT
    bool relu;                 // IOP_ADD
    char name[64];             // the layer it comes from
    int32_t fix_thr[255];      // IOP_QUANT_FIX: q's thresholds on the FIX input (derived)
    IAffine fix_aff;           // IOP_QUANT_FIX: its codes by arithmetic, where exact (derived)
} IOp;

typedef struct IntModel {
    int in_h, in_w, in_c, num_classes;
    IOp *ops;
    int n_ops, cap_ops;
    ITensor *tensors;          // tensor 0 is the float input (kind ignored)
    int n_tensors, cap_tensors;
    int logits;                // the op whose epilogue gives the logits
    struct IntWork *work;      // intmodel_forward's buffers, kept between calls (not thread-safe)
    double *op_seconds;        // (n_ops) time in each op, summed, when set (dq_calloc it to profile)
} IntModel;

/* The integer program of a quantized model whose quantizers are calibrated. False with the
 * reason (a layer or a quantizer the engine cannot express) in err. */
bool intmodel_from(const Model *m, const QuantContext *qc, IntModel *out, char *err, size_t err_size);
void intmodel_free(IntModel *im);

/* One line per op: kind, layer, tensors, shapes and bits (a listing for users and debugging). */
void intmodel_print(const IntModel *im, FILE *f);

/* The kernels' forms of a program read from a file or just built: expanded int8 weights, their
 * packed GEMM layout, the input zero's correction, the integer thresholds of codes epilogues. */
void intmodel_finish(IntModel *im);
/* Frees the buffers intmodel_forward keeps (intmodel_free does it too). */
void intmodel_release_work(IntModel *im);

/* The model file (.dqm; layout in intfile.c), written atomically; bytes: its size. */
bool intmodel_save(const IntModel *im, const char *path, size_t *bytes, char *err, size_t err_size);
/* Read back, every count and shape checked before use; false with the reason in err (never a
 * crash on a damaged file). parse: the same on bytes in memory. */
bool intmodel_load(IntModel *im, const char *path, char *err, size_t err_size);
bool intmodel_parse(IntModel *im, const uint8_t *file, size_t n, char *err, size_t err_size);
/* The file's bytes at an older version (1: no multipoint layers; false where the version cannot
 * hold the program), for tests and converters; dq_free them. */
bool intmodel_encode_version(const IntModel *im, uint32_t version, uint8_t **bytes, size_t *n);
/* Would its file be read back? (intmodel_from ends with it: a program it returns always loads.) */
bool intmodel_check(const IntModel *im, char *err, size_t err_size);

typedef struct IntModelSize {
    size_t file;       // bytes of the .dqm
    size_t weights;    // of which packed weight codes
    size_t tables;     // of which weight tables
} IntModelSize;
IntModelSize intmodel_size(const IntModel *im);

/* The program as ONNX (intonnx.c; docs/onnx.md). Exact (fused false): each codes epilogue as
 * the QDQ unit ONNX Runtime fuses into QLinearConv where that steps exactly where the engine does,
 * else ConvInteger and the engine's thresholds as a ladder and a level table; fixed-point tensors
 * as double tensors of the engine's integers. Fused: every convolution as the QDQ unit (uint8
 * activations, int8 per-channel weights, int32 biases, a level table where the levels are not
 * consecutive codes), fixed-point tensors in float — what ONNX Runtime runs fastest, not exact.
 * False with the reason in err. */
typedef struct IntOnnxStats {
    size_t bytes;              // the file
    bool fused;                // the fused export (the fixed-point tensors then float: fix_* count
                               // thresholds against ONNX Runtime's float values)
    long long clamped;         // int8 −128 weights of channels with a < 0, set to 127 when negated
    int tables;                // quantizers given a level table (levels not the fine bytes)
    long long thresholds, exact;  // codes epilogues: thresholds over all channels; of which ONNX
                               // Runtime's float requantization steps across exactly where we do
    int channels, channels_exact; // their channels; of which every threshold exact
    int fused_convs, integer_convs;  // codes epilogues as the fused unit (QLinearConv); as
                               // ConvInteger and the exact ladder (where the fused unit is not exact)
    int input_thresholds, input_exact;  // the image's quantizer: thresholds; of which ONNX Runtime
                               // steps across within a sliver (2^-13 fine steps) below ours
    int fix_thresholds, fix_exact;  // fixed-point tensors' quantizers: thresholds; of which exact
    double fix_moved_max;      // the largest distance between an inexact one and ours (a value)
} IntOnnxStats;
bool intmodel_export_onnx(const IntModel *im, const char *path, bool fused, IntOnnxStats *st, char *err, size_t err_size);

/* Run on x (N, H, W, C) floats, normalised as for the float model; logits (N, classes) out.
 * ref: the plain reference kernels. The tensors' buffers stay with im for the next call of the
 * same or a smaller batch (one call at a time per model). */
void intmodel_forward(IntModel *im, const float *x, int n, float *logits, bool ref);

/* One convolution of a finished program on codes x (N, in) into y (uint8 codes, int32 FIX or float
 * logits, as its epilogue says): the kernels' entry for tests and benchmarks. */
void intconv_forward(const IConv *cv, const ITensor *in, const ITensor *out, const uint8_t *x, void *y, int n, bool ref);

/* One quantization op (IOP_QUANT_INPUT: floats, IOP_QUANT_FIX: int32) of a finished program. */
void intquant_forward(const IOp *op, const ITensor *in, const void *x, uint8_t *y, int n, bool ref);

/* Agreement with the fake-quant model, per IOP_CONV op (arrays of n_ops), summed over calls:
 *   alone  the op's input codes agree when every earlier quantized layer got the fake-quant codes
 *          (each layer's own exactness: float rounding in the fake-quant path and the snapped
 *          levels are all that remain);
 *   chain  they agree when the program runs on its own (differences compound layer to layer);
 * and how many images' top-1 agree. */
typedef struct IntAgreement {
    int n_ops;
    long long *alone, *chain, *total;
    long long top1_agree, images;
} IntAgreement;

void intagreement_init(IntAgreement *a, const IntModel *im);
void intagreement_free(IntAgreement *a);

/* Runs both on x (N, H, W, C) and adds to a. qc must be m's quantizers (their layers are tapped). */
void intmodel_agreement(const IntModel *im, Model *m, QuantContext *qc, const float *x, int n, IntAgreement *a);

#endif
