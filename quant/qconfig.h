/* qconfig.h — every quantization option of an experiment in one struct, and its option table
 * (the same --key=value parser as the training options). Defaults follow docs/ddq.md. */
#ifndef DQ_QCONFIG_H
#define DQ_QCONFIG_H

#include "baselines.h"
#include "ddq.h"
#include "core/options.h"

/* The option strings, parsed once (quant_config_check / quant_context_new). */
typedef enum { QUANT_NONE, QUANT_DDQ, QUANT_LSQ, QUANT_PACT, QUANT_MINMAX, QUANT_MULTIPOINT } QuantMethod;
typedef enum { BUDGET_ELEMENTS, BUDGET_BITOPS } QuantBudgetKind;
typedef enum { LAMBDA_DUAL, LAMBDA_HINGE, LAMBDA_PI } QuantLambdaKind;

typedef struct QuantConfig {
    char method[OPT_STRLEN];    // ddq | lsq | pact | minmax | none
    float w_bits, a_bits;       // fixed-bit methods: bits; DDQ: the budget in mean bits
    int pin_bits;               // first and last layer: fixed bits (8), outside the budget
    bool per_channel;           // per-output-channel weight quantizers (every method)
    float percentile;           // activation calibration range: [100 − p, p] percentiles (every method)
    DdqConfig ddq;              // DDQ's own options (ddq.h); its percentile comes from the field above
    BaselineConfig base;        // the baselines' options (baselines.h); percentile likewise, lsq_bin_grad from lsq_step_grad
    char lsq_step_grad[OPT_STRLEN];  // esser (LSQ's step gradient) | bins (without −v/s: DDQ's level gradient)
    char budget[OPT_STRLEN];    // elements (Σ N·b per kind) | bitops (Σ MACs·b_w·b_a)
    char lambda[OPT_STRLEN];    // dual (dual ascent) | pi (two-sided, proportional + integral) | hinge
    float eta;                  // dual ascent step (pi: the integral's step)
    float kp;                   // pi: the price's proportional gain on Mem/ζ − 1
    float price_max;            // pi: |λ| at most this (0: unbounded)
    float int_band;             // pi: the integral moves only while |Mem/ζ − 1| < this (0: always)
    float hinge;                // hinge variant: λ while over budget
    bool ramp;                  // ramp the target from 8 bits over the first half of the joint phase
    bool fixed_abits;           // DDQ learns weight bits only: activations stay at a_bits
    float settle;               // the last fraction of the joint phase in which a gate may only flip toward the budget
    float phase_warmup;         // fraction of fine-tuning with gates and levels frozen
    float phase_joint;          // fraction with gates, levels and weights learned; then frozen
    int calib_batches;          // activation calibration batches
    bool ptq;                   // post-training: calibrate, evaluate, no fine-tuning
    bool flips;                 // diagnostic: weights changing level per step, in flips.csv
    int bn_recal;               // diagnostic: BatchNorm statistics re-estimated on N batches after the run
    float bn_freeze;            // the last fraction of the fine-tune with BatchNorm statistics frozen (0: none)
    float mp_points;            // multipoint: mean points per output channel
    char alloc[OPT_STRLEN];     // mixed-precision allocation before a fixed-bit fine-tune: none | hawq | ompq | bsq | haq (alloc.h)
    int alloc_images;           // hawq, ompq: training images the allocator measures on
    int alloc_train_images;     // bsq, haq: training images the allocator trains on
    int hawq_samples;           // hawq: Hutchinson draws (hawq.h)
    bool hawq_layerwise;        // hawq: the cross-layer terms cancelled (hawq.h)
    bool hawq_frozen;           // hawq: activation pieces frozen at the FP32 weights while probing
    float hawq_eps;             // hawq: relative step of the gradient differences
    float ompq_beta;            // ompq: θ = exp(−β·Σ ORM)
    float bsq_alpha;            // bsq: the regulariser strength the search starts from
    float bsq_lr;               // bsq: the bit planes' learning rate
    int bsq_steps;              // bsq: training steps per strength tried
    int bsq_requant;            // bsq: steps between re-quantizations
    int bsq_trials;             // bsq: strengths tried (bisection towards the budget)
    int haq_episodes;           // haq: episodes of the search
    int haq_warmup;             // haq: episodes of random actions first
    int haq_ft_steps;           // haq: fine-tuning steps before each reward
    float haq_ft_lr;            // haq: their learning rate
    char haq_resource[OPT_STRLEN];  // haq: size | latency
} QuantConfig;

extern const QuantConfig quant_config_defaults;

#define QUANT_MAX_OPTIONS 80

/* Writes the options (keys prefixed "q_" for the shared ones, "ddq_" for DDQ's) into out, at
 * most QUANT_MAX_OPTIONS; returns how many. */
int quant_config_options(QuantConfig *c, Option *out);
/* Checks the combination; false with the reason in err. With `defaults` (the values the options
 * started from, before the command line), an option the chosen method does not implement is
 * refused when it differs from them (--ddq_gap with --q_method=lsq, any --q_* with
 * --q_method=none), never silently ignored; NULL skips that check. */
bool quant_config_validate(const QuantConfig *c, const QuantConfig *defaults, char *err, size_t err_size);
/* Whether the option named key takes effect under c (the ones validate refuses away from their
 * default: --ddq_* outside DDQ, --hawq_* without --q_alloc=hawq, …); true for keys not in the
 * quantization config. A run's identity leaves out the options without effect. */
bool quant_config_has_effect(const QuantConfig *c, const char *key);
/* The same, fatal "<prog>: error: …" on a bad one. */
void quant_config_check(const QuantConfig *c, const QuantConfig *defaults, const char *prog);

QuantMethod quant_method_of(const QuantConfig *c);
QuantBudgetKind quant_budget_of(const QuantConfig *c);
QuantLambdaKind quant_lambda_of(const QuantConfig *c);
const char *quant_method_name(QuantMethod m);

#endif
