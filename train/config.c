/* config.c — the shared option table. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "data/dataset.h"

int train_config_options(TrainConfig *c, Option *o) {
    int n = 0;
    o[n++] = opt_choice("dataset", c->dataset, "dataset", DATASET_NAMES);
    o[n++] = opt_role(opt_string("data_dir", c->data_dir, "directory with the dataset files"), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_string("out_dir", c->out_dir, "where logs, plots and checkpoints go"), OPT_INCIDENTAL);
    o[n++] = opt_int("epochs", &c->epochs, "training epochs", 1, 100000);
    o[n++] = opt_int("batch_size", &c->batch_size, "examples per step", 1, 65536);
    o[n++] = opt_float("lr", &c->lr, "peak learning rate", 0, 100);
    o[n++] = opt_float("lr_min", &c->lr_min, "final learning rate of the cosine schedule", 0, 100);
    o[n++] = opt_choice("schedule", c->schedule, "learning-rate schedule", "const|step|cosine");
    o[n++] = opt_float("warmup", &c->warmup, "linear warm-up length in epochs", 0, 100000);
    o[n++] = opt_float("step_epochs", &c->step_epochs, "step schedule: epochs between decays", 0.001, 100000);
    o[n++] = opt_float("step_gamma", &c->step_gamma, "step schedule: decay factor", 0, 1);
    o[n++] = opt_float("momentum", &c->momentum, "SGD momentum", 0, 0.9999);
    o[n++] = opt_bool("nesterov", &c->nesterov, "Nesterov momentum");
    o[n++] = opt_float("weight_decay", &c->weight_decay, "L2 weight decay", 0, 1);
    o[n++] = opt_bool("decay_all", &c->decay_all, "also decay BatchNorm parameters and biases");
    o[n++] = opt_float("label_smoothing", &c->label_smoothing, "label smoothing epsilon", 0, 0.999);
    o[n++] = opt_int("crop_pad", &c->crop_pad, "random-crop padding in pixels (0: off)", 0, 64);
    o[n++] = opt_bool("hflip", &c->hflip, "random horizontal flips");
    o[n++] = opt_int("subset", &c->subset, "train on the first N examples (0: all)", 0, 1e9);
    o[n++] = opt_int("test_subset", &c->test_subset, "evaluate on the first N test examples (0: all)", 0, 1e9);
    o[n++] = opt_role(opt_int("eval_batch", &c->eval_batch, "batch size for evaluation", 1, 65536), OPT_INCIDENTAL);
    o[n++] = opt_int("seed", &c->seed, "seed of initialisation, shuffling, augmentation, dropout", 0, 2147483647);
    o[n++] = opt_role(opt_int("threads", &c->threads, "worker threads (0: all cores)", 0, 256), OPT_EXECUTION);
    o[n++] = opt_role(opt_bool("resume", &c->resume, "continue from out_dir/checkpoint.bin if present"), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_int("stop_after", &c->stop_after, "stop after N epochs of this run; --resume continues (0: no stop)", 0, 100000), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_int("stop_after_steps", &c->stop_after_steps, "stop after N steps of this run, with a checkpoint; --resume continues (0: no stop)", 0, 2e9), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_int("checkpoint_every", &c->checkpoint_every, "also checkpoint every N steps, mid-epoch (0: epoch ends only)", 0, 1e9), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_bool("extend", &c->extend, "with --resume: allow more --epochs than the checkpoint's run"), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_bool("prefetch", &c->prefetch, "prepare batches on a background thread"), OPT_INCIDENTAL);
    o[n++] = opt_role(opt_bool("progress", &c->progress, "show progress during epochs"), OPT_INCIDENTAL);
    o[n++] = opt_choice("half", c->half, "emulated half-precision training: activation gradients rounded to fp16 (all: activations too)", "off|grads|all");
    o[n++] = opt_choice("loss_scale", c->loss_scale, "loss scaling with --half (dynamic: halve on overflow, double after a window; adaptive: per layer)", "none|static|dynamic|adaptive");
    o[n++] = opt_float("loss_scale_init", &c->loss_scale_init, "static: the loss scale; dynamic: the first one", 1e-6, 1e30);
    o[n++] = opt_int("loss_scale_window", &c->loss_scale_window, "dynamic: clean steps before the scale doubles", 1, 1e9);
    return n;
}

bool train_config_validate(const TrainConfig *c, char *err, size_t es) {
    if (c->lr_min > c->lr) snprintf(err, es, "--lr_min=%g exceeds --lr=%g", c->lr_min, c->lr);
    else if (c->warmup > c->epochs) snprintf(err, es, "--warmup=%g is longer than --epochs=%d", c->warmup, c->epochs);
    else if (!c->out_dir[0]) snprintf(err, es, "--out_dir must not be empty");
    else if (strcmp(c->half, "grads") && strcmp(c->half, "all") && c->loss_scale[0] && strcmp(c->loss_scale, "none"))
        snprintf(err, es, "--loss_scale=%s has no effect without --half=grads or --half=all", c->loss_scale);
    else if (c->loss_scale_init != 65536 && (!c->loss_scale[0] || !strcmp(c->loss_scale, "none")))
        snprintf(err, es, "--loss_scale_init=%g has no effect with --loss_scale=none", c->loss_scale_init);
    else return true;
    return false;
}

void train_config_check(const TrainConfig *c, const char *prog) {
    char err[512];
    if (!train_config_validate(c, err, sizeof err)) DQ_FATAL_FILE(prog, "%s", err);
}
