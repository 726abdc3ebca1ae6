/* qconfig.c — quantization options: defaults, table, validation. */
#include "qconfig.h"

#include <string.h>

#include "core/error.h"

const QuantConfig quant_config_defaults = {
    .method = "ddq",
    .w_bits = 4, .a_bits = 4,
    .pin_bits = 8,
    .ddq = {.b_min = 2, .init_bits = 8, .gap = 0.5f, .ema = 0.98f, .lr_gate = 20.0f,
            .lr_levels_w = 0.01f, .lr_levels_a = 0.25f, .momentum = 0.9f, .percentile = 99.9f,
            .pin_zero = true},
    .base = {.percentile = 99.9f},
    .budget = "elements",
    .lambda = "dual",
    .eta = 0.003f,
    .hinge = 0.25f,
    .phase_warmup = 0.1f,
    .phase_joint = 0.5f,
    .calib_batches = 4,
};

int quant_config_options(QuantConfig *c, Option *o) {
    int n = 0;
    o[n++] = opt_choice("q_method", c->method, "quantization method", "ddq|lsq|pact|minmax|none");
    o[n++] = opt_float("q_wbits", &c->w_bits, "weight bits (DDQ: mean-bit budget)", 1, 8);
    o[n++] = opt_float("q_abits", &c->a_bits, "activation bits (DDQ: mean-bit budget)", 1, 8);
    o[n++] = opt_int("q_pin_bits", &c->pin_bits, "bits of the first and last layer", 1, 8);
    o[n++] = opt_bool("q_per_channel", &c->per_channel, "per-output-channel weight quantizers");
    o[n++] = opt_int("q_calib_batches", &c->calib_batches, "activation calibration batches", 1, 1000);
    o[n++] = opt_float("q_percentile", &c->ddq.percentile, "calibration range percentile", 50, 100);
    o[n++] = opt_int("ddq_bmin", &c->ddq.b_min, "fewest bits a layer may reach", 1, 8);
    o[n++] = opt_int("ddq_init_bits", &c->ddq.init_bits, "bits at the start (variant: the target)", 1, 8);
    o[n++] = opt_float("ddq_gap", &c->ddq.gap, "minimum gap between levels, in initial fine steps", 0, 100);
    o[n++] = opt_float("ddq_ema", &c->ddq.ema, "EMA factor of the gate signals", 0, 0.99999);
    o[n++] = opt_float("ddq_lr_gate", &c->ddq.lr_gate, "gate step per unit of (signal − price)", 0, 1e9);
    o[n++] = opt_float("ddq_lr_levels_w", &c->ddq.lr_levels_w, "weight level learning rate (at peak lr)", 0, 1e6);
    o[n++] = opt_float("ddq_lr_levels_a", &c->ddq.lr_levels_a, "activation level learning rate (at peak lr)", 0, 1e6);
    o[n++] = opt_bool("ddq_pin_zero", &c->ddq.pin_zero, "pin the level holding 0 to exactly 0");
    o[n++] = opt_bool("ddq_fine_forward", &c->ddq.fine_forward, "variant: fine-level forward semantics");
    o[n++] = opt_bool("ddq_product_rule", &c->ddq.product_rule, "variant: product-rule gates (all K)");
    o[n++] = opt_bool("ddq_adam", &c->ddq.adam, "variant: Adam on the levels");
    o[n++] = opt_float("ddq_alpha", &c->ddq.alpha, "variant: gradient correction alpha (0: off)", 0, 1e6);
    o[n++] = opt_choice("ddq_budget", c->budget, "what the budget counts", "elements|bitops");
    o[n++] = opt_choice("ddq_lambda", c->lambda, "how the bit price is set", "dual|hinge");
    o[n++] = opt_float("ddq_eta", &c->eta, "dual ascent step of lambda", 0, 1e3);
    o[n++] = opt_float("ddq_hinge", &c->hinge, "hinge variant: lambda while over budget", 0, 1e6);
    o[n++] = opt_bool("ddq_ramp", &c->ramp, "variant: ramp the budget from 8 bits (first half of joint)");
    o[n++] = opt_float("ddq_warmup", &c->phase_warmup, "fraction of fine-tuning before gates and levels learn", 0, 1);
    o[n++] = opt_float("ddq_joint", &c->phase_joint, "fraction with gates learning (then frozen)", 0, 1);
    return n;
}

void quant_config_check(const QuantConfig *c, const char *prog) {
    bool ddq = !strcmp(c->method, "ddq");
    if (ddq && (c->w_bits < c->ddq.b_min || c->a_bits < c->ddq.b_min))
        DQ_FATAL_FILE(prog, "the budget (%g/%g bits) is below --ddq_bmin=%d", c->w_bits, c->a_bits, c->ddq.b_min);
    if (!ddq && (c->w_bits != (int)c->w_bits || c->a_bits != (int)c->a_bits))
        DQ_FATAL_FILE(prog, "--q_method=%s needs whole bits (got %g/%g); fractional budgets are DDQ's",
                      c->method, c->w_bits, c->a_bits);
    if (c->phase_warmup + c->phase_joint > 1)
        DQ_FATAL_FILE(prog, "--ddq_warmup=%g plus --ddq_joint=%g exceed 1", c->phase_warmup, c->phase_joint);
    if (c->ddq.init_bits < c->ddq.b_min)
        DQ_FATAL_FILE(prog, "--ddq_init_bits=%d is below --ddq_bmin=%d", c->ddq.init_bits, c->ddq.b_min);
}
