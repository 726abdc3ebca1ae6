/* mixed.h — half-precision training, emulated on a CPU, and the loss scaling that makes it work.
 *
 * With --half=grads every activation gradient is rounded to IEEE binary16 (core/half.h) where a
 * half-precision engine would store it: when it is complete, at the op boundary, before the op
 * that produced the activation reads it (a tape hook). The loss and its own gradient (the scale)
 * stay float, as in mixed-precision training. Arithmetic inside an op stays float, and
 * so do the parameters' gradients and the update (fp32 "master" weights), so what the emulation
 * reproduces is fp16's range: gradients under 2^−25 become 0 (underflow), over 65504 infinite.
 * --half=all also rounds the activations — every layer's output as the layer returns it (a tape
 * value hook), in training and evaluation, so what the next layer reads and what backward saved
 * are half values; the images enter in float and the loss stays float. Their underflow and
 * overflow are counted apart (position −1, op "activations", in half.csv).
 *
 * Loss scaling multiplies the loss's gradient by S, so every gradient is S times larger while it
 * is stored in half precision, then divides the parameters' gradients by S in float before the
 * step. A step whose unscaled gradients are not all finite is skipped (every policy):
 *   none      S = 1
 *   static    S = --loss_scale_init
 *   dynamic   starts at --loss_scale_init; halves at a skipped step, doubles after
 *             --loss_scale_window clean steps in a row (PyTorch's GradScaler, NVIDIA's recipe)
 *   adaptive  --loss_scale_init at the loss, then every convolution and linear layer multiplies the gradient it
 *             passes down by its own power-of-two factor from the gradient's and the weights'
 *             statistics (als.h); each parameter's gradient is divided by the scale it carries
 *
 * Measured per epoch, per tape position (the k-th record visited in backward — the same op of
 * the same layer every step): the share of gradient values that underflowed (finite and nonzero
 * in float, zero in half) and overflowed, and the mean log2 of the scale the gradient carried,
 * written to half.csv; the skipped steps and the loss scale in the epoch line.
 */
#ifndef DQ_MIXED_H
#define DQ_MIXED_H

#include <stdbool.h>
#include <stddef.h>

#include "als.h"
#include "checkpoint.h"
#include "config.h"
#include "core/slab.h"
#include "core/tape.h"
#include "core/text.h"

typedef enum { LOSS_SCALE_NONE, LOSS_SCALE_STATIC, LOSS_SCALE_DYNAMIC, LOSS_SCALE_ADAPTIVE } LossScaleKind;

#define MIXED_MAX_POSITIONS 2048

typedef struct MixedPosition {
    const char *op;                  // the record's op name
    unsigned long long values, underflow, overflow;
    double log2_scale_sum;           // Σ over steps of log2(the scale its gradient carried)
    long long visits;
} MixedPosition;

typedef struct Mixed {
    bool on;                         // --half=grads or all
    bool values;                     // --half=all: activations too
    MixedPosition act;               // their counts this epoch
    LossScaleKind kind;
    float scale;                     // S in effect
    int window, clean;               // dynamic: clean steps wanted before doubling, and so far
    long long steps, skipped;        // this epoch
    int n_pos;
    MixedPosition pos[MIXED_MAX_POSITIONS];
    AlsScales scales;                // adaptive: the scale each gradient carries in this backward
} Mixed;

/* From the configuration (an empty --half or --loss_scale means off / none). */
void mixed_init(Mixed *mx, const TrainConfig *c);
void mixed_free(Mixed *mx);
/* Sets the tape's gradient hook (when on) and value hook (--half=all); evaluation tapes get the
 * value hook alone (mixed_attach_eval). */
void mixed_attach(Mixed *mx, Tape *t);
void mixed_attach_eval(Mixed *mx, Tape *t);
/* Backward with the loss's gradient seeded at the scale (1 when off). */
void mixed_backward(Mixed *mx, Tape *t, Tensor *loss);
/* Divides the parameters' gradients by the scale; false when one is not finite: skip the step
 * (dynamic: the scale halves). Also counts the step and moves the dynamic scale. */
bool mixed_unscale(Mixed *mx, ParamSlab *s);
/* Appends this epoch's rows to csv ("epoch,position,op,values,underflow,overflow,log2_scale"; a header
 * first when header is set), then clears the counts. */
void mixed_epoch_csv(Mixed *mx, int epoch, bool header, Text *csv);
/* The scale state in a checkpoint (section "MIXP"), and back: false with the reason on a bad one. */
void mixed_save(const Mixed *mx, Checkpoint *c);
bool mixed_load(Mixed *mx, const Checkpoint *c, char *err, size_t err_size);

#endif
