/* mpquant.h — multipoint post-training quantization on a model (--q_method=multipoint): each
 * weight quantizer holds its layer's multipoint approximation (multipoint.h), computed once from
 * the FP32 weights and the second moment of the layer's inputs over the calibration batches;
 * activations use min/max quantizers calibrated as usual. No fine-tuning follows.
 *
 * Inputs' second moment C (fan_in × fan_in): pointwise and linear layers over the input vectors,
 * convolutions over the k×k×c_in patches in the weights' order (kernel row, column, channel),
 * depthwise layers one k×k matrix per channel. At most MPQ_PATCHES patches per batch and layer,
 * taken at a fixed stride, enter it (the cost stays small; the sample is the same every run).
 */
#ifndef DQ_MPQUANT_H
#define DQ_MPQUANT_H

#include "qlayer.h"

#define MPQ_PATCHES 1024

/* A weight quantizer for the multipoint method: passes nothing through until mpq_calibrate_end
 * has set its approximation. */
Quantizer *mpq_new(const char *name, bool pinned, int bits, long long elems);
bool mpq_is(const Quantizer *q);
/* Mean points per output channel of the approximation (0 before it is set). */
double mpq_points(const Quantizer *q);
/* The points themselves (multipoint.h's mp_allocate_points layout, MP_MAX_POINTS planes): returns
 * the most points a channel has (0 before calibration). */
int mpq_layer_points(const Quantizer *q, const float **scales, const int8_t **codes);

/* Adds the second moments of layer s's inputs x (a batch) into C — n × n, or one n × n per
 * channel for a depthwise layer (mpq_depthwise) — at most MPQ_PATCHES patches at a fixed stride;
 * returns how many patches entered. */
long long mpq_add_moments(const LayerSpec *s, const Tensor *x, double *C, size_t n);
bool mpq_depthwise(const LayerSpec *s);

/* Around the calibration forwards: start collecting every quantized layer's input moments (a
 * tap on the context), then build each layer's points — `avg_points` per output channel on
 * average, at least one each (the pinned layers: one point at their bits) — and free the
 * collection. False with the reason in err (a layer shape the method does not handle). */
void mpq_calibrate_begin(QuantContext *qc);
bool mpq_calibrate_end(QuantContext *qc, double avg_points, char *err, size_t err_size);

#endif
