/* exp_mobilenetv2 — MobileNetV2 on Fashion-MNIST, trained in FP32 and quantized with DDQ to a
 * mixed 4-bit budget; the project's main experiment.
 *
 * Task: 10-class Fashion-MNIST (60 000 / 10 000 images, 28×28 grey), normalised with the
 * dataset mean and std; augmentation: random crops with 2 pixels of padding, horizontal flips.
 * Model: MobileNetV2 (nn/mobilenetv2.h) width 0.5, CIFAR variant "s1x2" (stem and first
 * stride-2 stage at stride 1): 0.70 M parameters, 23.1 MMAC per image — compact, where the DDQ
 * paper says mixed precision matters most, and small enough for a 20-minute run. Dropout 0.2.
 * FP32: SGD, momentum 0.9 (Nesterov), batch 128, weight decay 5e-4 (not on BN/bias), label
 * smoothing 0.1, lr 0.1, one warm-up epoch, cosine to 0. Reused when it has already been run.
 * Quantization: DDQ (docs/ddq.md) on every convolution and the classifier, weights and input
 * activations, depthwise included; first and last layer pinned at 8 bits; mixed-precision budget
 * of 4 mean bits for weights and 4 for activations (W4A4) with dual-ascent prices; phases 10%
 * warm-up, 50% joint, 40% frozen with the budget guaranteed; fine-tuning lr 0.01, cosine.
 * Presets: default — 4 FP32 epochs + 2 DDQ epochs, about 20 minutes on two cores;
 *          full    — 30 FP32 epochs + 8 DDQ epochs, the schedule of docs/results.md.
 * Every --q_... and --ddq_... option switches the method or a variant (--q_method=lsq, pact, …).
 * Expected (the project's target, full preset): DDQ W4A4 within 0.3 points of FP32; the measured
 * figures are in docs/results.md with the commands that produced them.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "experiments/qpipeline.h"
#include "nn/mobilenetv2.h"

static const TrainConfig defaults = {  // the DDQ fine-tuning; the FP32 phase differs in epochs and lr
    .dataset = "fashion-mnist",
    .data_dir = DATASET_DEFAULT_DIR,
    .out_dir = "runs/mobilenetv2-ddq",
    .epochs = 2,
    .batch_size = 128,
    .lr = 0.01f,
    .schedule = "cosine",
    .step_epochs = 10, .step_gamma = 0.1f,  // used only with --schedule=step
    .momentum = 0.9f,
    .nesterov = true,
    .weight_decay = 5e-4f,
    .label_smoothing = 0.1f,
    .crop_pad = 2,
    .hflip = true,
    .eval_batch = 250,
    .seed = 1,
    .prefetch = true,
    .progress = true,
    .half = "off",
    .loss_scale = "none",
    .loss_scale_init = 65536,
    .loss_scale_window = 2000,
};

typedef struct ModelCfg {
    float width, dropout;
    char variant[OPT_STRLEN];
} ModelCfg;

static Model *build(void *ctx, const LayerFactory *f, uint64_t seed, const Dataset *d) {
    const ModelCfg *c = ctx;
    Mnv2Variant v;
    if (!mobilenetv2_parse_variant(c->variant, &v)) DQ_FATAL("unknown MobileNetV2 variant '%s'", c->variant);
    MobileNetV2Config mc = {.width = c->width, .variant = v, .in_channels = d->c, .in_size = d->h,
                            .num_classes = d->num_classes, .dropout = c->dropout};
    return mobilenetv2_new(&mc, f, seed);
}

/* --preset=full changes the defaults before the other flags are read (they still override). */
static void apply_preset(int argc, char **argv, TrainConfig *cfg, QPipelineConfig *p) {
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--preset=", 9) != 0) continue;
        const char *v = argv[i] + 9;
        if (!strcmp(v, "full")) cfg->epochs = 8, p->fp32_epochs = 30, strcpy(cfg->out_dir, "runs/mobilenetv2-ddq-full");
        else if (strcmp(v, "default") != 0) DQ_FATAL_FILE("exp_mobilenetv2", "--preset=%s: must be default or full", v);
    }
}

int main(int argc, char **argv) {
    TrainConfig cfg = defaults;
    QPipelineConfig p = {.fp32_epochs = 4, .fp32_lr = 0.1f, .fp32_warmup = 1};
    // What decides the quantized result, stated here (docs/ddq.md explains each choice; they are
    // also the library's defaults, quant/qconfig.c):
    QuantConfig q = quant_config_defaults;
    q.w_bits = 4, q.a_bits = 4;                            // the budget: mean bits of weights and activations
    q.pin_bits = 8;                                        // first and last layer, outside the budget
    q.ddq.init_bits = 8, q.ddq.b_min = 2;                  // every layer starts at 8 bits, none goes below 2
    q.ddq.lr_gate = 20.0f, q.ddq.ema = 0.98f;              // gate step per unit of (signal − price); signal EMA
    q.ddq.lr_levels_w = 0.01f, q.ddq.lr_levels_a = 0.25f;  // level learning rates at the peak lr
    q.ddq.gap = 0.5f;                                      // levels stay half an initial fine step apart
    strcpy(q.lambda, "pi");                                // bit prices: proportional + integral, both signs
    q.kp = 0.2f, q.eta = 0.0005f;                          // λ = I + kp·e, I ← I + η·e, e = Mem/ζ − 1
    q.settle = 0.1f;                                       // last tenth of the joint phase: flips only toward the budget
    q.phase_warmup = 0.1f, q.phase_joint = 0.5f;           // 10% warm-up, 50% joint, then gates frozen
    q.calib_batches = 4, q.percentile = 99.9f;             // activation ranges from 4 batches, 99.9th percentile
    ModelCfg mc = {.width = 0.5f, .dropout = 0.2f, .variant = "s1x2"};
    char preset[OPT_STRLEN] = "default";
    apply_preset(argc, argv, &cfg, &p);
    Option extra[TRAIN_MAX_OPTIONS] = {
        opt_role(opt_choice("preset", preset, "default (~20 min) or full (the results schedule)", "default|full"), OPT_INCIDENTAL),
        opt_float("width", &mc.width, "MobileNetV2 width multiplier", 0.05, 4),
        opt_choice("variant", mc.variant, "strides for small images (nn/mobilenetv2.h)", "s1x2|s1x3|imagenet"),
        opt_float("dropout", &mc.dropout, "dropout before the classifier", 0, 0.99),
    };
    int n = 4 + qpipeline_options(&p, &q, extra + 4);
    Experiment x;
    experiment_setup(&x, &cfg, extra, n, argc, argv,
                     "Train MobileNetV2 in FP32 (or reuse it), quantize with DDQ (or a baseline), compare.");
    qpipeline_check(&x, &cfg, &p, &q);
    experiment_load_data(&x, &cfg);
    QPipelineResult r;
    qpipeline_run(&x, &cfg, &p, &q, build, &mc, &r);
    qpipeline_result_line(&x, &q, &r);
    experiment_free(&x);
    return 0;
}
