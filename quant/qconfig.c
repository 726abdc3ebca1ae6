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
    o[n++] = (Option){"q_method", OPT_CHOICE, c->method, "quantization method", 0, 0, "ddq|lsq|pact|minmax|none"};
    o[n++] = (Option){"q_wbits", OPT_FLOAT, &c->w_bits, "weight bits (DDQ: mean-bit budget)", 1, 8};
    o[n++] = (Option){"q_abits", OPT_FLOAT, &c->a_bits, "activation bits (DDQ: mean-bit budget)", 1, 8};
    o[n++] = (Option){"q_pin_bits", OPT_INT, &c->pin_bits, "bits of the first and last layer", 1, 8};
    o[n++] = (Option){"q_per_channel", OPT_BOOL, &c->per_channel, "per-output-channel weight quantizers"};
    o[n++] = (Option){"q_calib_batches", OPT_INT, &c->calib_batches, "activation calibration batches", 1, 1000};
    o[n++] = (Option){"q_percentile", OPT_FLOAT, &c->ddq.percentile, "calibration range percentile", 50, 100};
    o[n++] = (Option){"ddq_bmin", OPT_INT, &c->ddq.b_min, "fewest bits a layer may reach", 1, 8};
    o[n++] = (Option){"ddq_init_bits", OPT_INT, &c->ddq.init_bits, "bits at the start (variant: the target)", 1, 8};
    o[n++] = (Option){"ddq_gap", OPT_FLOAT, &c->ddq.gap, "minimum gap between levels, in initial fine steps", 0, 100};
    o[n++] = (Option){"ddq_ema", OPT_FLOAT, &c->ddq.ema, "EMA factor of the gate signals", 0, 0.99999};
    o[n++] = (Option){"ddq_lr_gate", OPT_FLOAT, &c->ddq.lr_gate, "gate step per unit of (signal − price)", 0, 1e9};
    o[n++] = (Option){"ddq_lr_levels_w", OPT_FLOAT, &c->ddq.lr_levels_w, "weight level learning rate (at peak lr)", 0, 1e6};
    o[n++] = (Option){"ddq_lr_levels_a", OPT_FLOAT, &c->ddq.lr_levels_a, "activation level learning rate (at peak lr)", 0, 1e6};
    o[n++] = (Option){"ddq_pin_zero", OPT_BOOL, &c->ddq.pin_zero, "pin the level holding 0 to exactly 0"};
    o[n++] = (Option){"ddq_fine_forward", OPT_BOOL, &c->ddq.fine_forward, "variant: fine-level forward semantics"};
    o[n++] = (Option){"ddq_product_rule", OPT_BOOL, &c->ddq.product_rule, "variant: product-rule gates (all K)"};
    o[n++] = (Option){"ddq_adam", OPT_BOOL, &c->ddq.adam, "variant: Adam on the levels"};
    o[n++] = (Option){"ddq_alpha", OPT_FLOAT, &c->ddq.alpha, "variant: gradient correction alpha (0: off)", 0, 1e6};
    o[n++] = (Option){"ddq_budget", OPT_CHOICE, c->budget, "what the budget counts", 0, 0, "elements|bitops"};
    o[n++] = (Option){"ddq_lambda", OPT_CHOICE, c->lambda, "how the bit price is set", 0, 0, "dual|hinge"};
    o[n++] = (Option){"ddq_eta", OPT_FLOAT, &c->eta, "dual ascent step of lambda", 0, 1e3};
    o[n++] = (Option){"ddq_hinge", OPT_FLOAT, &c->hinge, "hinge variant: lambda while over budget", 0, 1e6};
    o[n++] = (Option){"ddq_ramp", OPT_BOOL, &c->ramp, "variant: ramp the budget from 8 bits (first half of joint)"};
    o[n++] = (Option){"ddq_warmup", OPT_FLOAT, &c->phase_warmup, "fraction of fine-tuning before gates and levels learn", 0, 1};
    o[n++] = (Option){"ddq_joint", OPT_FLOAT, &c->phase_joint, "fraction with gates learning (then frozen)", 0, 1};
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
