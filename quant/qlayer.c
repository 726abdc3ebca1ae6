/* qlayer.c — the quantized layer and its factory. */
#include "qlayer.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "mpquant.h"
#include "nn/weighted.h"

static Tensor *qlayer_forward(Layer *l, Tape *t, Tensor *x) {
    QuantLayer *q = (QuantLayer *)l;
    q->aq->elems = (long long)(x->numel / (size_t)x->shape[0]);
    Tensor *xq = quantizer_forward(q->aq, t, x);
    if (q->qc->tap) q->qc->tap(q->qc->tap_ctx, q, xq);
    Tensor *wq = quantizer_forward(q->wq, t, q->weight);
    Tensor *y = q->spec.kind == SPEC_LINEAR ? op_linear(t, xq, wq, q->bias)
                                            : op_conv2d(t, xq, wq, q->bias, spec_conv_args(&q->spec));
    l->macs = spec_macs(&q->spec, y);
    q->aq->macs = q->wq->macs = l->macs;
    if (q->qc->tap_out) q->qc->tap_out(q->qc->tap_out_ctx, q, y);
    return y;
}

static void qlayer_init(Layer *l, Rng *rng) {
    QuantLayer *q = (QuantLayer *)l;
    weighted_init(&q->spec, q->weight, q->bias, rng);
}

static void qlayer_free(Layer *l) {
    QuantLayer *q = (QuantLayer *)l;
    quantizer_free(q->wq);
    quantizer_free(q->aq);
    dq_free(q);
}

static const LayerOps QCONV_OPS = {.kind = "qconv2d", .forward = qlayer_forward, .init = qlayer_init,
                                   .free = qlayer_free, .info = weighted_info};
static const LayerOps QLINEAR_OPS = {.kind = "qlinear", .forward = qlayer_forward, .init = qlayer_init,
                                     .free = qlayer_free, .info = weighted_info};

bool quant_layer_is(const Layer *l) { return l->ops == &QCONV_OPS || l->ops == &QLINEAR_OPS; }

static Quantizer *make_quantizer(QuantContext *qc, ParamSlab *slab, const LayerSpec *s, QuantRole role) {
    const QuantConfig *c = &qc->cfg;
    char name[96];
    snprintf(name, sizeof name, "%s.%s", s->name, role == QROLE_WEIGHT ? "wq" : "aq");
    bool pinned = s->first || s->last, is_signed = role == QROLE_WEIGHT || s->signed_input;
    int bits = pinned ? c->pin_bits : (int)(role == QROLE_WEIGHT ? c->w_bits : c->a_bits);
    long long weights = s->kind == SPEC_LINEAR ? (long long)s->in * s->out
                                               : (long long)s->kernel * s->kernel * (s->in / s->groups) * s->out;
    long long elems = role == QROLE_WEIGHT ? weights : 0;  // activations: set by the first forward
    int channels = c->per_channel && role == QROLE_WEIGHT ? s->out : 1;
    switch (qc->method) {
    case QUANT_DDQ:
        return ddq_new(slab, name, role, is_signed, pinned, elems, channels,
                       role == QROLE_ACTIVATION ? &qc->ddq_act : &qc->cfg.ddq);
    case QUANT_LSQ: return baseline_new(BASE_LSQ, slab, name, role, is_signed, pinned, bits, elems, channels, &qc->cfg.base);
    case QUANT_MINMAX: return baseline_new(BASE_MINMAX, slab, name, role, is_signed, pinned, bits, elems, channels, &qc->cfg.base);
    case QUANT_PACT:  // DoReFa weights, PACT activations
        return baseline_new(role == QROLE_WEIGHT ? BASE_DOREFA : BASE_PACT, slab, name, role, is_signed, pinned, bits,
                            elems, channels, &qc->cfg.base);
    case QUANT_MULTIPOINT:  // weights: the sum of their points; activations: calibrated min/max
        if (role == QROLE_WEIGHT) return mpq_new(name, pinned, bits, elems);
        return baseline_new(BASE_MINMAX, slab, name, role, is_signed, pinned, bits, elems, 1, &qc->cfg.base);
    case QUANT_NONE: break;
    }
    DQ_CHECK(!"a quantizer for --q_method=none");
    return NULL;
}

static Layer *quant_make(const LayerFactory *f, ParamSlab *slab, const LayerSpec *spec) {
    QuantContext *qc = f->ctx;
    if (qc->method == QUANT_NONE) return nn_float_factory.make(&nn_float_factory, slab, spec);
    QuantLayer *q = dq_calloc(1, sizeof *q);
    q->base.ops = spec->kind == SPEC_LINEAR ? &QLINEAR_OPS : &QCONV_OPS;
    layer_set_name(&q->base, spec->name);
    q->spec = *spec;
    q->spec.name = q->base.name;
    q->qc = qc;
    weighted_register(slab, &q->spec, &q->weight, &q->bias);
    q->wq = make_quantizer(qc, slab, &q->spec, QROLE_WEIGHT);
    q->aq = make_quantizer(qc, slab, &q->spec, QROLE_ACTIVATION);
    if (qc->n_layers == qc->cap_layers) {
        qc->cap_layers = qc->cap_layers ? 2 * qc->cap_layers : 64;
        qc->layers = dq_realloc(qc->layers, (size_t)qc->cap_layers * sizeof *qc->layers);
    }
    qc->layers[qc->n_layers++] = q;
    return &q->base;
}

QuantContext *quant_context_new(const QuantConfig *cfg) {
    char err[512];
    if (!quant_config_validate(cfg, NULL, err, sizeof err)) DQ_FATAL("quant_context_new: %s", err);
    QuantContext *qc = dq_calloc(1, sizeof *qc);
    qc->cfg = *cfg;
    qc->cfg.ddq.percentile = qc->cfg.base.percentile = cfg->percentile;  // one option, every method
    qc->cfg.base.lsq_bin_grad = !strcmp(cfg->lsq_step_grad, "bins");
    qc->ddq_act = qc->cfg.ddq;
    if (cfg->fixed_abits) qc->ddq_act.init_bits = (int)cfg->a_bits, qc->ddq_act.lr_gate = 0;
    qc->method = quant_method_of(cfg);
    qc->budget = quant_budget_of(cfg);
    qc->lambda = quant_lambda_of(cfg);
    return qc;
}

void quant_context_free(QuantContext *qc) {
    if (!qc) return;
    dq_free(qc->layers);
    dq_free(qc);
}

LayerFactory quant_factory(QuantContext *qc) { return (LayerFactory){quant_make, qc}; }

void quant_each(QuantContext *qc, void (*fn)(Quantizer *q, void *ctx), void *ctx) {
    for (int i = 0; i < qc->n_layers; i++) fn(qc->layers[i]->wq, ctx);
    for (int i = 0; i < qc->n_layers; i++) fn(qc->layers[i]->aq, ctx);
}

static void set_bypass(Quantizer *q, void *ctx) { q->bypass = *(bool *)ctx; }

void quant_set_bypass(QuantContext *qc, bool bypass) { quant_each(qc, set_bypass, &bypass); }
