/* quantizer.h — the one interface every quantizer implements (DDQ and the baselines).
 *
 * A quantizer turns a tensor into its fake-quantized copy: forward builds the output and records
 * its own backward on the tape (each names its gradient estimator in its header). Quantized
 * layers (qlayer.h) own two: one for their weight, one for their input activation. Learnable
 * quantizer parameters (levels, step sizes, clipping values) live in the model's ParamSlab, so
 * checkpoints carry them; the rest of the state (bits, gates, statistics) is saved through
 * save/load. Everything a method needs per step (gate updates, projections) runs in step().
 *
 * Roles and data: a weight quantizer sees the same tensor every step and initialises from it;
 * an activation quantizer calibrates on a few batches (calibrate) before training starts.
 */
#ifndef DQ_QUANTIZER_H
#define DQ_QUANTIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/slab.h"
#include "core/tape.h"

typedef struct Quantizer Quantizer;

/* A growing byte buffer for quantizer state (save) and a cursor over one (load). */
typedef struct QBytes {
    uint8_t *p;
    size_t len, cap, pos;
} QBytes;

void qbytes_put(QBytes *b, const void *src, size_t n);
/* False (and nothing copied) when fewer than n bytes are left. */
bool qbytes_get(QBytes *b, void *dst, size_t n);
/* A reader over n bytes someone else owns. */
QBytes qbytes_view(const uint8_t *data, size_t n);

typedef struct QuantizerOps {
    const char *kind;                                          // "ddq", "lsq", "pact", …
    Tensor *(*forward)(Quantizer *q, Tape *t, Tensor *x);
    void (*observe)(Quantizer *q, const Tensor *x);            // calibration data (may be NULL)
    void (*finish_calibration)(Quantizer *q);                  // after the observations
    void (*step)(Quantizer *q, float lr);                      // after each optimizer step
    int (*bits)(const Quantizer *q);
    /* Storage bits per weight when that is not bits (multipoint: several points and their scales);
     * optional. */
    double (*bits_stored)(const Quantizer *q);
    /* Distinct values the quantizer can output now, into out (up to 256); returns how many. */
    int (*levels)(const Quantizer *q, float *out);
    /* The quantizer as a step function, for the integer engine (activations, per tensor): n levels
     * ascending into levels, the n − 1 thresholds between them into thresh, so that the output for
     * x is levels[#{j : x >= thresh[j]}]. Returns n (at most 256), or 0 when it is not one. */
    int (*grid)(const Quantizer *q, float *levels, float *thresh);
    void (*describe)(const Quantizer *q, char *buf, size_t size);
    void (*save)(const Quantizer *q, QBytes *b);
    /* Restore what save wrote, every field checked (a crafted file must not make a later step
     * misbehave); false with the reason in err. Runs after the slab is loaded. */
    bool (*load)(Quantizer *q, QBytes *b, char *err, size_t err_size);
    void (*free)(Quantizer *q);
} QuantizerOps;

typedef enum { QROLE_WEIGHT, QROLE_ACTIVATION } QuantRole;

struct Quantizer {
    const QuantizerOps *ops;
    char name[80];          // "features.3.dw.wq"
    QuantRole role;
    bool is_signed;         // the data can be negative
    bool pinned;            // first/last layer: fixed bits, outside the budget
    bool bypass;            // forward passes data through unchanged (new quantizers, FP32 eval)
    bool calibrating;       // forward passes data through unchanged and observes it
    bool calibrated;
    long long elems;        // N: elements per sample (weights: all of them)
    long long macs;         // multiply-accumulates per image of the layer it serves
};

Tensor *quantizer_forward(Quantizer *q, Tape *t, Tensor *x);
void quantizer_free(Quantizer *q); /* accepts NULL */
/* Storage bits per weight: bits_stored if the quantizer has it, else bits. */
double quantizer_bits_stored(const Quantizer *q);

/* New quantizers start in bypass (a model's shape-measuring forward must not quantize). */
void quantizer_init_base(Quantizer *q, const QuantizerOps *ops, const char *name, QuantRole role,
                         bool is_signed, bool pinned, long long elems);

/* Calibration data: a strided sample of up to 64 Ki values of every observed batch. */
typedef struct QSamples {
    float *v;
    size_t n, cap;
} QSamples;

void qsamples_add(QSamples *s, const Tensor *x);
void qsamples_free(QSamples *s);

/* Percentile p in [0, 100] of n values (copies and sorts). */
float quant_percentile(const float *x, size_t n, double p);

#endif
