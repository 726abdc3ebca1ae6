/* exp_resnet20 — ResNet-20 (He et al. 2016, CIFAR version, option-A shortcuts) on Fashion-MNIST,
 * in FP32 and, with --q_method, quantized (DDQ or a baseline) from the FP32 checkpoint.
 *
 * Task: 10-class Fashion-MNIST, 28×28 grey images normalised with the dataset mean and std.
 * Augmentation: random crops with 2 pixels of zero padding and horizontal flips (clothes are
 * left-right symmetric). Model: nn/resnet.h, 0.27 M parameters, 30.8 MMAC per 28×28 image.
 * FP32: SGD, momentum 0.9 (Nesterov), batch 128, weight decay 5e-4 (not on BN/bias), label
 * smoothing 0.1, learning rate 0.1 with one warm-up epoch then cosine decay to 0, 30 epochs
 * (~50 min on two cores). Expected: ≥ 93% top-1 on the test set (the project's target; the measured
 * figure is in README.md with the command that produced it).
 * Quantized (--q_method=ddq|lsq|pact|minmax, --q_wbits, --q_abits): fine-tuning from the FP32
 * checkpoint for --epochs (default 8) at lr 0.01, cosine; first and last layer at 8 bits.
 * By default (--q_method=none) only the FP32 model is trained.
 * Also trains on CIFAR-10 (--dataset=cifar10 --data_dir=DIR --crop_pad=4).
 */
#include <stdio.h>

#include "experiments/qpipeline.h"
#include "nn/resnet.h"

static const TrainConfig defaults = {  // the quantized fine-tuning; FP32 differs in epochs and lr
    .dataset = "fashion-mnist",
    .data_dir = DATASET_DEFAULT_DIR,
    .out_dir = "runs/resnet20-q",
    .epochs = 8,
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

static Model *build(void *ctx, const LayerFactory *f, uint64_t seed, const Dataset *d) {
    ResNetConfig rc = {.depth = *(int *)ctx, .in_channels = d->c, .in_size = d->h, .num_classes = d->num_classes};
    return resnet_new(&rc, f, seed);
}

int main(int argc, char **argv) {
    TrainConfig cfg = defaults;
    QPipelineConfig p = {.fp32_epochs = 30, .fp32_lr = 0.1f, .fp32_warmup = 1};
    QuantConfig q = quant_config_defaults;  // with --q_method: the values of exp_mobilenetv2.c (docs/ddq.md)
    snprintf(q.method, sizeof q.method, "none");
    int depth = 20;
    Option extra[TRAIN_MAX_OPTIONS] = {opt_int("depth", &depth, "ResNet depth 6n+2 (20, 32, 44, 56)", 8, 1000)};
    int n = 1 + qpipeline_options(&p, &q, extra + 1);
    Experiment x;
    experiment_setup(&x, &cfg, extra, n, argc, argv, "Train a CIFAR-style ResNet in FP32; optionally quantize it.");
    qpipeline_check(&x, &cfg, &p, &q);
    experiment_load_data(&x, &cfg);
    QPipelineResult r;
    qpipeline_run(&x, &cfg, &p, &q, build, &depth, &r);
    qpipeline_result_line(&x, &q, &r);
    experiment_free(&x);
    return 0;
}
