/* qlayer.h — quantized convolution / linear layers, the factory that makes them, and the
 * context that owns their quantizers.
 *
 * A quantized layer is the float layer's spec and parameters plus two quantizers:
 *     y = conv(aq(x), wq(weight)) + bias        (or linear)
 * The model builders receive quant_factory(ctx) instead of nn_float_factory; nn never learns
 * that quantization exists. The first and last weighted layers (spec.first / spec.last) are
 * pinned at cfg.pin_bits and kept out of every budget.
 *
 * The QuantContext lists every quantized layer in model order and drives what happens around
 * training: calibration, the per-step updates (DDQ's gates, levels and λ: control.h), state in
 * checkpoints.
 */
#ifndef DQ_QLAYER_H
#define DQ_QLAYER_H

#include "nn/layer.h"
#include "qconfig.h"
#include "quantizer.h"

typedef struct QuantLayer QuantLayer;
typedef struct QuantContext QuantContext;

struct QuantLayer {
    Layer base;
    LayerSpec spec;       // copy; spec.name points at base.name
    Tensor *weight, *bias;
    Quantizer *wq, *aq;   // weight and input-activation quantizers
    QuantContext *qc;     // the context it belongs to
};

struct QuantContext {
    QuantConfig cfg;      // owned copy: quantizers point at cfg.ddq / cfg.base
    DdqConfig ddq_act;    // DDQ's activation quantizers: cfg.ddq, or (--ddq_fixed_abits) started at
                          // the activation budget with still gates
    QuantMethod method;   // cfg's strings, parsed once
    QuantBudgetKind budget;
    QuantLambdaKind lambda;
    QuantLayer **layers;  // in model order
    int n_layers, cap_layers;
    struct DdqControl *ddq;  // DDQ's budget controller (control.h), NULL for other methods
    /* Optional: called by every quantized layer's forward with its quantized input (for checks
     * that compare what the layers saw, such as the integer engine's code agreement). */
    void (*tap)(void *ctx, const QuantLayer *l, const Tensor *xq);
    void *tap_ctx;
    /* Optional: called with every quantized layer's output (allocators that look at features). */
    void (*tap_out)(void *ctx, const QuantLayer *l, const Tensor *y);
    void *tap_out_ctx;
};

/* cfg must be valid (quant_config_validate): a bad one is an internal error here. */
QuantContext *quant_context_new(const QuantConfig *cfg);
void quant_context_free(QuantContext *qc); /* accepts NULL; the layers belong to the model */
LayerFactory quant_factory(QuantContext *qc);
bool quant_layer_is(const Layer *l);

/* Every quantizer: pass-through (bypass = true) or active. */
void quant_set_bypass(QuantContext *qc, bool bypass);
/* Call fn for every quantizer (weights then activations, layer by layer). */
void quant_each(QuantContext *qc, void (*fn)(Quantizer *q, void *ctx), void *ctx);

#endif
