/* intonnx_walk.h — what the two halves of the ONNX export share (intonnx.c: the walk, the fused
 * QDQ unit, float inputs; intonnx_exact.c: the exact epilogues and fixed point). Internal to quant/. */
#ifndef DDQC_INTONNX_WALK_H
#define DDQC_INTONNX_WALK_H

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

#define LEVEL_NEVER (1 << 30)  // a table's start of a level that is never reached

/* Threshold j's kind under act: −1 always reached (at or below act's floor), +1 never (above its
 * ceiling), 0 a real step — as acc_threshold decides in intmodel.c. */
int qw_thresh_kind(const IQuant *q, ActKind act, int j);
/* One node, a (and b, unless NULL) in, a fresh value out; the caller adds attributes and ends it. */
void qw_node_begin(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *out);
/* One whole node, a (and b) in; v (which may be a) becomes its output. */
void qw_op(QWalk *w, const char *opname, const char *layer, const char *a, const char *b, char *v);
void qw_cast_int32(QWalk *w, const char *v, const char *layer, char *out);
/* The convolution's weights in ONNX's layout (O, Cin/G, KH, KW), negated where a < 0, zero where
 * zeroed (may be NULL); kh, kw, icg out. qw_point_weights: a multipoint layer's point p. */
int8_t *qw_weights(QWalk *w, const IConv *cv, const ITensor *in, const bool *zeroed, int *kh, int *kw, int *icg);
int8_t *qw_point_weights(QWalk *w, const IConv *cv, const ITensor *in, const bool *zeroed, int p, int *kh, int *kw,
                         int *icg);
void qw_conv_attrs(OnnxGraph *g, const IConv *cv, const ITensor *in, int kh, int kw);

/* intonnx_exact.c: op i of the program, exactly as the engine computes it. Its int32 sums: one
 * ConvInteger, or for a multipoint layer one per point, each times its multipliers, added. */
void qw_integer_sums(QWalk *w, int i, const bool *zeroed, char *acc);
void qw_conv_integer(QWalk *w, int i);  // a codes epilogue: ConvInteger, the ladder, the table
void qw_conv_fix(QWalk *w, int i);      // a fixed-point epilogue, in double
void qw_add_fix(QWalk *w, int i);       // a residual sum
void qw_gap_fix(QWalk *w, int i);       // the pooled mean
void qw_quant_fix(QWalk *w, int i);     // a fixed-point tensor to codes

#endif
