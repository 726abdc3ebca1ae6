/* config.c — the shared option table. */
#include "config.h"

#include <string.h>

#include "core/error.h"
#include "data/dataset.h"

int train_config_options(TrainConfig *c, Option *o) {
    int n = 0;
    o[n++] = (Option){"dataset", OPT_CHOICE, c->dataset, "dataset", 0, 0, DATASET_NAMES};
    o[n++] = (Option){"data_dir", OPT_STRING, c->data_dir, "directory with the dataset files"};
    o[n++] = (Option){"out_dir", OPT_STRING, c->out_dir, "where logs, plots and checkpoints go"};
    o[n++] = (Option){"epochs", OPT_INT, &c->epochs, "training epochs", 0, 100000};
    o[n++] = (Option){"batch_size", OPT_INT, &c->batch_size, "examples per step", 1, 65536};
    o[n++] = (Option){"lr", OPT_FLOAT, &c->lr, "peak learning rate", 0, 100};
    o[n++] = (Option){"lr_min", OPT_FLOAT, &c->lr_min, "final learning rate of the cosine schedule", 0, 100};
    o[n++] = (Option){"schedule", OPT_CHOICE, c->schedule, "learning-rate schedule", 0, 0, "const|step|cosine"};
    o[n++] = (Option){"warmup", OPT_FLOAT, &c->warmup, "linear warm-up length in epochs", 0, 100000};
    o[n++] = (Option){"step_epochs", OPT_FLOAT, &c->step_epochs, "step schedule: epochs between decays", 0.001, 100000};
    o[n++] = (Option){"step_gamma", OPT_FLOAT, &c->step_gamma, "step schedule: decay factor", 0, 1};
    o[n++] = (Option){"momentum", OPT_FLOAT, &c->momentum, "SGD momentum", 0, 0.9999};
    o[n++] = (Option){"nesterov", OPT_BOOL, &c->nesterov, "Nesterov momentum"};
    o[n++] = (Option){"weight_decay", OPT_FLOAT, &c->weight_decay, "L2 weight decay", 0, 1};
    o[n++] = (Option){"decay_all", OPT_BOOL, &c->decay_all, "also decay BatchNorm parameters and biases"};
    o[n++] = (Option){"label_smoothing", OPT_FLOAT, &c->label_smoothing, "label smoothing epsilon", 0, 0.999};
    o[n++] = (Option){"crop_pad", OPT_INT, &c->crop_pad, "random-crop padding in pixels (0: off)", 0, 64};
    o[n++] = (Option){"hflip", OPT_BOOL, &c->hflip, "random horizontal flips"};
    o[n++] = (Option){"subset", OPT_INT, &c->subset, "train on the first N examples (0: all)", 0, 1e9};
    o[n++] = (Option){"test_subset", OPT_INT, &c->test_subset, "evaluate on the first N test examples (0: all)", 0, 1e9};
    o[n++] = (Option){"eval_batch", OPT_INT, &c->eval_batch, "batch size for evaluation", 1, 65536};
    o[n++] = (Option){"seed", OPT_INT, &c->seed, "seed of initialisation, shuffling, augmentation, dropout", 0, 2147483647};
    o[n++] = (Option){"threads", OPT_INT, &c->threads, "worker threads (0: all cores)", 0, 256};
    o[n++] = (Option){"resume", OPT_BOOL, &c->resume, "continue from out_dir/checkpoint.bin if present"};
    o[n++] = (Option){"stop_after", OPT_INT, &c->stop_after, "stop after N epochs of this run; --resume continues (0: no stop)", 0, 100000};
    o[n++] = (Option){"prefetch", OPT_BOOL, &c->prefetch, "prepare batches on a background thread"};
    o[n++] = (Option){"progress", OPT_BOOL, &c->progress, "show progress during epochs"};
    return n;
}

void train_config_check(const TrainConfig *c, const char *prog) {
    if (c->lr_min > c->lr) DQ_FATAL_FILE(prog, "--lr_min=%g exceeds --lr=%g", c->lr_min, c->lr);
    if (c->warmup > c->epochs) DQ_FATAL_FILE(prog, "--warmup=%g is longer than --epochs=%d", c->warmup, c->epochs);
    if (!c->out_dir[0]) DQ_FATAL_FILE(prog, "--out_dir must not be empty");
}
