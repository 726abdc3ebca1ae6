/* qconfig.c — quantization options: defaults, table, validation. */
#include "qconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

const QuantConfig quant_config_defaults = {
    .method = "ddq",
    .w_bits = 4, .a_bits = 4,
    .pin_bits = 8,
    .ddq = {.b_min = 2, .init_bits = 8, .gap = 0.5f, .ema = 0.98f, .lr_gate = 20.0f,
            .lr_levels_w = 0.01f, .lr_levels_a = 0.25f, .momentum = 0.9f, .pin_zero = true, .merge_centered = true},
    .percentile = 99.9f,
    .lsq_step_grad = "esser",
    .budget = "elements",
    .lambda = "pi",
    .eta = 0.0005f,
    .kp = 0.2f,
    .price_max = 0,
    .int_band = 0,
    .hinge = 0.25f,
    .phase_warmup = 0.1f,
    .phase_joint = 0.5f,
    .settle = 0.1f,
    .calib_batches = 4,
    .alloc = "none",
    .mp_points = 1.25f,
    .alloc_images = 256,
    .alloc_train_images = 4096,
    .hawq_samples = 2,
    .hawq_layerwise = true,
    .hawq_frozen = true,
    .hawq_eps = 1e-3f,
    .ompq_beta = 1,
    .bsq_alpha = 0.1f,
    .bsq_lr = 50,
    .bsq_steps = 100,
    .bsq_requant = 20,
    .bsq_trials = 6,
    .haq_episodes = 60,
    .haq_warmup = 20,
    .haq_ft_steps = 16,
    .haq_ft_lr = 0.01f,
    .haq_resource = "size",
};

int quant_config_options(QuantConfig *c, Option *o) {
    int n = 0;
    o[n++] = opt_choice("q_method", c->method, "quantization method (multipoint: post-training)", "ddq|lsq|pact|minmax|multipoint|none");
    o[n++] = opt_bool("q_ptq", &c->ptq, "post-training: calibrate and evaluate, no fine-tuning (multipoint always)");
    o[n++] = opt_role(opt_bool("q_flips", &c->flips, "diagnostic: count the weights that change level at every fine-tuning step (out_dir/flips.csv)"), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_int("q_bn_recal", &c->bn_recal, "diagnostic: after the run, set BatchNorm statistics to the average of N training batches (augmented, then not) and evaluate again (0: off)", 0, 100000), OPT_INCIDENTAL);
    o[n++] = opt_float("q_bn_freeze", &c->bn_freeze, "the last fraction of the fine-tune with BatchNorm statistics frozen: every BatchNorm normalises with its running statistics, which stop moving, so the weights adapt to the statistics the test uses (0: off)", 0, 0.99);
    o[n++] = opt_float("mp_points", &c->mp_points, "multipoint: points per output channel on average (at least 1 each)", 1, 8);
    o[n++] = opt_float("q_wbits", &c->w_bits, "weight bits (DDQ: mean-bit budget)", 1, 8);
    o[n++] = opt_float("q_abits", &c->a_bits, "activation bits (DDQ: mean-bit budget)", 1, 8);
    o[n++] = opt_int("q_pin_bits", &c->pin_bits, "bits of the first and last layer", 1, 8);
    o[n++] = opt_bool("q_per_channel", &c->per_channel, "per-output-channel weight quantizers");
    o[n++] = opt_int("q_calib_batches", &c->calib_batches, "activation calibration batches", 1, 1000);
    o[n++] = opt_float("q_percentile", &c->percentile, "calibration range percentile", 50, 100);
    o[n++] = opt_choice("lsq_step_grad", c->lsq_step_grad, "variant: LSQ's step gradient inside the range: esser (round(v/s) − v/s, Esser et al.) or bins (round(v/s): the bins held fixed, as DDQ's level gradient)", "esser|bins");
    o[n++] = opt_choice("q_alloc", c->alloc, "mixed-precision bits per layer before fine-tuning (--q_wbits: the mean)", "none|hawq|ompq|bsq|haq");
    o[n++] = opt_int("alloc_images", &c->alloc_images, "hawq, ompq: training images the allocator measures on", 1, 1 << 20);
    o[n++] = opt_int("alloc_train_images", &c->alloc_train_images, "bsq, haq: training images the allocator trains on (haq holds out a quarter)", 2, 1 << 20);
    o[n++] = opt_int("hawq_samples", &c->hawq_samples, "hawq: Hutchinson draws of the Hessian traces (layerwise: 2P gradient passes each, P = layers rounded up to a power of 2; else 2)", 1, 100000);
    o[n++] = opt_bool("hawq_layerwise", &c->hawq_layerwise, "hawq: cancel the cross-layer terms of the traces with Hadamard signs (false: plain Hutchinson, all layers at once, as before 2026-12-01)");
    o[n++] = opt_bool("hawq_frozen", &c->hawq_frozen, "hawq: keep every ReLU/ReLU6 on its piece at the FP32 weights while probing: the Hessian autograd would give (false: the differences cross kinks, as before 2026-12-01)");
    o[n++] = opt_float("hawq_eps", &c->hawq_eps, "hawq: relative step of the Hessian-vector differences", 1e-7, 1);
    o[n++] = opt_float("ompq_beta", &c->ompq_beta, "ompq: importance exp(-beta * sum of orthogonality)", 0, 1e6);
    o[n++] = opt_float("bsq_alpha", &c->bsq_alpha, "bsq: regulariser strength to start the search from", 1e-9, 1e9);
    o[n++] = opt_float("bsq_lr", &c->bsq_lr, "bsq: learning rate of the bit planes", 1e-9, 1e9);
    o[n++] = opt_int("bsq_steps", &c->bsq_steps, "bsq: steps of bit-plane training per strength tried", 1, 1000000);
    o[n++] = opt_int("bsq_requant", &c->bsq_requant, "bsq: steps between re-quantizations", 1, 1000000);
    o[n++] = opt_int("bsq_trials", &c->bsq_trials, "bsq: strengths tried to land on the budget (1: --bsq_alpha alone)", 1, 100);
    o[n++] = opt_int("haq_episodes", &c->haq_episodes, "haq: episodes of the search (one allocation each)", 1, 100000);
    o[n++] = opt_int("haq_warmup", &c->haq_warmup, "haq: first episodes with random actions", 0, 100000);
    o[n++] = opt_int("haq_ft_steps", &c->haq_ft_steps, "haq: fine-tuning steps before each episode's reward", 0, 100000);
    o[n++] = opt_float("haq_ft_lr", &c->haq_ft_lr, "haq: learning rate of that fine-tune", 0, 10);
    o[n++] = opt_choice("haq_resource", c->haq_resource, "haq: what the budget limits (latency: a bit-serial cost model)", "size|latency");
    o[n++] = opt_int("ddq_bmin", &c->ddq.b_min, "fewest bits a layer may reach", 1, 8);
    o[n++] = opt_int("ddq_init_bits", &c->ddq.init_bits, "bits at the start (variant: the target)", 1, 8);
    o[n++] = opt_bool("ddq_init_lsq", &c->ddq.init_lsq, "variant: ranges from LSQ's initial step at --ddq_init_bits, not min/max and percentiles");
    o[n++] = opt_bool("ddq_init_centered", &c->ddq.init_centered, "variant: levels at --ddq_init_bits start on LSQ's level set (the block holding 0 centred on it)");
    o[n++] = opt_bool("ddq_merge_centered", &c->ddq.merge_centered, "every merged level set translated so the block holding 0 is centred on it (LSQ's set from a uniform grid); false: 0 pinned as its block's first level, off centre below 8 bits (the method as first built)");
    o[n++] = opt_float("ddq_gap", &c->ddq.gap, "minimum gap between levels, in initial fine steps", 0, 100);
    o[n++] = opt_float("ddq_ema", &c->ddq.ema, "EMA factor of the gate signals", 0, 0.99999);
    o[n++] = opt_float("ddq_lr_gate", &c->ddq.lr_gate, "gate step per unit of (signal − price)", 0, 1e9);
    o[n++] = opt_bool("ddq_gate_anneal", &c->ddq.gate_anneal, "the gate step follows the learning-rate schedule");
    o[n++] = opt_float("ddq_lr_levels_w", &c->ddq.lr_levels_w, "weight level learning rate (at peak lr)", 0, 1e6);
    o[n++] = opt_float("ddq_lr_levels_a", &c->ddq.lr_levels_a, "activation level learning rate (at peak lr)", 0, 1e6);
    o[n++] = opt_bool("ddq_pin_zero", &c->ddq.pin_zero, "pin the level holding 0 to exactly 0");
    o[n++] = opt_bool("ddq_fine_forward", &c->ddq.fine_forward, "variant: fine-level forward semantics");
    o[n++] = opt_bool("ddq_product_rule", &c->ddq.product_rule, "variant: product-rule gates (all K)");
    o[n++] = opt_bool("ddq_adam", &c->ddq.adam, "variant: Adam on the levels");
    o[n++] = opt_float("ddq_alpha", &c->ddq.alpha, "variant: gradient correction alpha (0: off)", 0, 1e6);
    o[n++] = opt_bool("ddq_esser_grad", &c->ddq.esser_grad, "variant: LSQ's in-bin term in the level gradients: an element inside the range gives its level dy·(v − x)/v, not dy (LSQ's round(x/s) − x/s, level by level)");
    o[n++] = opt_bool("ddq_snap_grid", &c->ddq.snap_grid, "at the freeze, put the levels on the integer grid (model.dqm exact)");
    o[n++] = opt_choice("ddq_budget", c->budget, "what the budget counts", "elements|bitops");
    o[n++] = opt_choice("ddq_lambda", c->lambda, "how the bit price is set", "dual|pi|hinge");
    o[n++] = opt_float("ddq_eta", &c->eta, "dual ascent step of lambda (pi: of its integral)", 0, 1e3);
    o[n++] = opt_float("ddq_kp", &c->kp, "pi: proportional gain of lambda on Mem/budget - 1", 0, 1e3);
    o[n++] = opt_float("ddq_price_max", &c->price_max, "pi: |lambda| at most this (0: unbounded)", 0, 1e3);
    o[n++] = opt_float("ddq_int_band", &c->int_band, "pi: the integral moves only while |Mem/budget - 1| < this (0: always)", 0, 1e3);
    o[n++] = opt_float("ddq_hinge", &c->hinge, "hinge variant: lambda while over budget", 0, 1e6);
    o[n++] = opt_bool("ddq_ramp", &c->ramp, "variant: ramp the budget from 8 bits (first half of joint)");
    o[n++] = opt_bool("ddq_fixed_abits", &c->fixed_abits, "learn weight bits only: activations stay at --q_abits");
    o[n++] = opt_float("ddq_settle", &c->settle, "last fraction of the joint phase: gates flip only toward the budget", 0, 1);
    o[n++] = opt_float("ddq_warmup", &c->phase_warmup, "fraction of fine-tuning before gates and levels learn", 0, 1);
    o[n++] = opt_float("ddq_joint", &c->phase_joint, "fraction with gates learning (then frozen)", 0, 1);
    DQ_CHECK(n <= QUANT_MAX_OPTIONS);  // (a new option past the bound: raise it)
    return n;
}

static const char *const METHOD_NAMES[] = {"none", "ddq", "lsq", "pact", "minmax", "multipoint"};

const char *quant_method_name(QuantMethod m) { return m >= 0 && m <= QUANT_MULTIPOINT ? METHOD_NAMES[m] : "?"; }

QuantMethod quant_method_of(const QuantConfig *c) {
    for (int m = 0; m <= QUANT_MULTIPOINT; m++)
        if (!strcmp(c->method, METHOD_NAMES[m])) return (QuantMethod)m;
    DQ_FATAL("unknown quantization method '%s'", c->method);
}

QuantBudgetKind quant_budget_of(const QuantConfig *c) {
    if (!strcmp(c->budget, "elements")) return BUDGET_ELEMENTS;
    if (!strcmp(c->budget, "bitops")) return BUDGET_BITOPS;
    DQ_FATAL("unknown DDQ budget '%s'", c->budget);
}

QuantLambdaKind quant_lambda_of(const QuantConfig *c) {
    if (!strcmp(c->lambda, "dual")) return LAMBDA_DUAL;
    if (!strcmp(c->lambda, "hinge")) return LAMBDA_HINGE;
    if (!strcmp(c->lambda, "pi")) return LAMBDA_PI;
    DQ_FATAL("unknown DDQ price rule '%s'", c->lambda);
}

static bool in_list(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; (p = strstr(p, v)) != NULL; p += n)
        if ((p == choices || p[-1] == '|') && (p[n] == 0 || p[n] == '|')) return true;
    return false;
}

/* Options that only some methods read: refused elsewhere unless left at their default. */
static const char *unused_option(const QuantConfig *c, const char *k) {
    QuantMethod m = quant_method_of(c);
    if (m == QUANT_NONE && strcmp(k, "q_method") != 0) return "--q_method=none (no quantization)";
    if (m != QUANT_DDQ && !strncmp(k, "ddq_", 4)) return "every --q_method but ddq";
    if (m != QUANT_MULTIPOINT && !strncmp(k, "mp_", 3)) return "every --q_method but multipoint";
    if ((m == QUANT_DDQ || m == QUANT_MULTIPOINT) && !strcmp(k, "q_ptq"))
        return m == QUANT_DDQ ? "--q_method=ddq (its bits are learned in training)" : "--q_method=multipoint (always post-training)";
    if (!strcmp(k, "q_bn_freeze") && (c->ptq || m == QUANT_MULTIPOINT)) return "post-training quantization (no fine-tune)";
    if (!strcmp(k, "q_bn_freeze") && c->bn_freeze == 0) return "--q_bn_freeze=0";  // off: not part of the identity
    bool alloc = strcmp(c->alloc, "none") != 0;
    static const char *const own[][3] = {  // an allocator's own options
        {"hawq_", "hawq", "--q_alloc other than hawq"}, {"ompq_", "ompq", "--q_alloc other than ompq"},
        {"bsq_", "bsq", "--q_alloc other than bsq"}, {"haq_", "haq", "--q_alloc other than haq"}};
    bool trains = !strcmp(c->alloc, "bsq") || !strcmp(c->alloc, "haq");
    if (!strcmp(k, "alloc_images") && (!alloc || trains)) return alloc ? "--q_alloc=bsq or haq (see --alloc_train_images)" : "--q_alloc=none";
    if (!strcmp(k, "alloc_train_images") && !trains) return alloc ? "--q_alloc=hawq or ompq (see --alloc_images)" : "--q_alloc=none";
    for (size_t j = 0; j < sizeof own / sizeof *own; j++)
        if (!strncmp(k, own[j][0], strlen(own[j][0])) && strcmp(c->alloc, own[j][1])) return alloc ? own[j][2] : "--q_alloc=none";
    if (!strcmp(k, "lsq_step_grad") && m != QUANT_LSQ) return "every --q_method but lsq";
    if (!strcmp(k, "lsq_step_grad") && !strcmp(c->lsq_step_grad, "esser")) return "--lsq_step_grad=esser";  // the default: not part of the identity
    if (m == QUANT_LSQ && !strcmp(k, "q_percentile")) return "--q_method=lsq (its step starts at 2·mean|x|/sqrt(Q_P))";
    if (m == QUANT_DDQ && !strcmp(k, "ddq_hinge") && quant_lambda_of(c) != LAMBDA_HINGE) return "--ddq_lambda other than hinge";
    if (m == QUANT_DDQ && !strcmp(k, "ddq_eta") && quant_lambda_of(c) == LAMBDA_HINGE) return "--ddq_lambda=hinge";
    if (m == QUANT_DDQ && (!strcmp(k, "ddq_kp") || !strcmp(k, "ddq_price_max") || !strcmp(k, "ddq_int_band")) &&
        quant_lambda_of(c) != LAMBDA_PI)
        return "--ddq_lambda other than pi";
    return NULL;
}

bool quant_config_has_effect(const QuantConfig *c, const char *key) {
    QuantConfig copy = *c;
    Option o[QUANT_MAX_OPTIONS];
    int n = quant_config_options(&copy, o);
    for (int i = 0; i < n; i++)
        if (!strcmp(o[i].key, key)) return unused_option(c, key) == NULL;
    return true;  // not one of ours
}

bool quant_config_validate(const QuantConfig *c, const QuantConfig *defaults, char *err, size_t es) {
    if (!in_list("ddq|lsq|pact|minmax|multipoint|none", c->method))
        return dq_fail(err, es, "--q_method=%s: unknown method", c->method);
    if (!in_list("none|hawq|ompq|bsq|haq", c->alloc)) return dq_fail(err, es, "--q_alloc=%s: unknown allocator", c->alloc);
    bool alloc = strcmp(c->alloc, "none") != 0;
    if (alloc && quant_method_of(c) != QUANT_LSQ)
        return dq_fail(err, es, "--q_alloc=%s allocates bits for an LSQ fine-tune: add --q_method=lsq", c->alloc);
    if (!in_list("esser|bins", c->lsq_step_grad)) return dq_fail(err, es, "--lsq_step_grad=%s: unknown", c->lsq_step_grad);
    if (!in_list("elements|bitops", c->budget) || !in_list("dual|pi|hinge", c->lambda))
        return dq_fail(err, es, "--ddq_budget=%s / --ddq_lambda=%s: unknown", c->budget, c->lambda);
    QuantConfig mine = *c, dflt = defaults ? *defaults : quant_config_defaults;
    Option om[QUANT_MAX_OPTIONS], od[QUANT_MAX_OPTIONS];
    int n = quant_config_options(&mine, om);
    DQ_CHECK(n <= QUANT_MAX_OPTIONS && quant_config_options(&dflt, od) == n);
    for (int i = 0; defaults && i < n; i++) {
        char a[OPT_STRLEN], b[OPT_STRLEN];
        options_value_str(&om[i], a, sizeof a);
        options_value_str(&od[i], b, sizeof b);
        const char *where = strcmp(a, b) ? unused_option(c, om[i].key) : NULL;
        if (where)
            return dq_fail(err, es, "--%s=%s has no effect with %s: leave it out (default %s)", om[i].key, a, where, b);
    }
    bool ddq = quant_method_of(c) == QUANT_DDQ;
    if (ddq && (c->w_bits < c->ddq.b_min || c->a_bits < c->ddq.b_min))
        return dq_fail(err, es, "the budget (%g/%g bits) is below --ddq_bmin=%d", c->w_bits, c->a_bits, c->ddq.b_min);
    if (!ddq && ((!alloc && c->w_bits != (int)c->w_bits) || c->a_bits != (int)c->a_bits))
        return dq_fail(err, es, "--q_method=%s needs whole bits (got %g/%g); fractional budgets are DDQ's and --q_alloc's (weights)",
                       c->method, c->w_bits, c->a_bits);
    if (alloc && c->w_bits < 2)
        return dq_fail(err, es, "--q_alloc=%s gives every layer 2 to 8 bits: --q_wbits=%g is below 2", c->alloc, c->w_bits);
    if (c->phase_warmup + c->phase_joint > 1)
        return dq_fail(err, es, "--ddq_warmup=%g plus --ddq_joint=%g exceed 1", c->phase_warmup, c->phase_joint);
    if (ddq && c->fixed_abits && c->a_bits != (int)c->a_bits)
        return dq_fail(err, es, "--ddq_fixed_abits keeps activations at --q_abits: whole bits, got %g", c->a_bits);
    if (c->ddq.merge_centered && (!c->ddq.pin_zero || c->ddq.fine_forward || c->ddq.product_rule))
        return dq_fail(err, es, "--ddq_pin_zero=false, --ddq_fine_forward and --ddq_product_rule need --ddq_merge_centered=false "
                                "(the centred merge, the default, needs the pinned zero, the nearest-value forward and frontier gates)");
    if (c->ddq.init_bits < c->ddq.b_min)
        return dq_fail(err, es, "--ddq_init_bits=%d is below --ddq_bmin=%d", c->ddq.init_bits, c->ddq.b_min);
    return true;
}

void quant_config_check(const QuantConfig *c, const QuantConfig *defaults, const char *prog) {
    char err[512];
    if (!quant_config_validate(c, defaults, err, sizeof err)) DQ_FATAL_FILE(prog, "%s", err);
}
