/* exp_lenet — a LeNet-style CNN on Fashion-MNIST: the framework's smallest complete run.
 *
 * Task: 10-class Fashion-MNIST (60 000 training / 10 000 test images, 28×28 grey), normalised
 * with the dataset mean and std; augmentation: random crops with 2 pixels of padding.
 * Model: conv5×5(16)-BN-ReLU-maxpool, conv5×5(32)-BN-ReLU-maxpool, FC 128-ReLU, dropout 0.25,
 * FC 10 (nn/lenet.h; 0.22 M parameters, 3.0 MMAC per image).
 * Optimiser: SGD, momentum 0.9 (Nesterov), batch 128, weight decay 5e-4 (not on BN/bias),
 * learning rate 0.05 with one warm-up epoch then cosine decay to 0, 6 epochs.
 * Expected: about 91% top-1 on the test set in about a minute on two cores (README).
 */
#include <stdio.h>

#include "nn/lenet.h"
#include "nn/weighted.h"
#include "train/experiment.h"
#include "train/runid.h"

static const TrainConfig defaults = {
    .dataset = "fashion-mnist",
    .data_dir = DATASET_DEFAULT_DIR,
    .out_dir = "runs/lenet",
    .epochs = 6,
    .batch_size = 128,
    .lr = 0.05f,
    .schedule = "cosine",
    .warmup = 1,
    .step_epochs = 2, .step_gamma = 0.1f,  // used only with --schedule=step
    .momentum = 0.9f,
    .nesterov = true,
    .weight_decay = 5e-4f,
    .crop_pad = 2,                          // small shifts; no flips for this baseline
    .eval_batch = 250,
    .seed = 1,
    .prefetch = true,
    .progress = true,
    .half = "off",
    .loss_scale = "none",
    .loss_scale_init = 65536,
    .loss_scale_window = 2000,
};

int main(int argc, char **argv) {
    TrainConfig cfg = defaults;
    float dropout = 0.25f;
    Option extra[] = {opt_float("dropout", &dropout, "dropout before the last layer", 0, 0.99)};
    Experiment x;
    experiment_setup(&x, &cfg, extra, 1, argc, argv, "Train a LeNet-style CNN (FP32).");
    experiment_load_data(&x, &cfg);
    LeNetConfig lc = {.in_channels = x.train.c, .in_size = x.train.h, .num_classes = x.train.num_classes,
                      .dropout = dropout};
    Model *m = lenet_new(&lc, &nn_float_factory, (uint64_t)cfg.seed);
    char desc[256];
    model_describe(m, desc, sizeof desc);
    printf("model %s\n", desc);
    TrainResult r;
    Text id;  // what decides this run beyond the shared options: the dropout
    text_init(&id);
    runid_append(&id, x.opts + x.n_train_opts, x.n_opts - x.n_train_opts, NULL);
    train_model(m, &cfg, id.s, &x.train, &x.test, NULL, x.prog, &r);
    text_free(&id);
    experiment_result(&x, m, &r, NULL);
    train_result_free(&r);
    model_free(m);
    experiment_free(&x);
    return 0;
}
