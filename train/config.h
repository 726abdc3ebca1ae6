/* config.h — the training options every experiment shares, as one struct and one option table.
 * An experiment keeps a `static const TrainConfig` of defaults, copies it, appends its own
 * model options to the table from train_config_options, and parses. */
#ifndef DQ_CONFIG_H
#define DQ_CONFIG_H

#include <stdbool.h>

#include "core/options.h"

typedef struct TrainConfig {
    char dataset[OPT_STRLEN];     // fashion-mnist | mnist | cifar10
    char data_dir[OPT_STRLEN];    // where its files are
    char out_dir[OPT_STRLEN];     // log.csv, curves.svg, checkpoint.bin, summary.json
    int epochs;
    int batch_size;
    float lr, lr_min;             // peak and final (cosine) learning rate
    char schedule[OPT_STRLEN];    // const | step | cosine
    float warmup;                 // linear warm-up, epochs
    float step_epochs, step_gamma;
    float momentum;
    bool nesterov;
    float weight_decay;
    bool decay_all;               // decay BN parameters and biases too
    float label_smoothing;
    int crop_pad;                 // random-crop padding (0: off)
    bool hflip;
    int subset;                   // train on the first N examples (0: all)
    int test_subset;              // evaluate on the first N test examples (0: all)
    int eval_batch;
    int seed;
    int threads;                  // 0: all cores
    bool resume;                  // continue from out_dir/checkpoint.bin if it exists
    int stop_after;               // stop after this many epochs in this run (0: run them all)
    int stop_after_steps;         // stop after this many steps in this run, with a checkpoint (0: never)
    int checkpoint_every;         // also checkpoint every N steps, mid-epoch (0: at epoch ends only)
    bool extend;                  // --resume may continue to more --epochs than the checkpoint's run
    bool prefetch;                // load batches on a background thread
    bool progress;                // progress bar / periodic lines during an epoch
    char half[OPT_STRLEN];        // off | grads: activation gradients rounded to fp16 | all: activations too (mixed.h); "" = off
    char loss_scale[OPT_STRLEN];  // none | static | dynamic; "" = none
    float loss_scale_init;        // static: the scale; dynamic: where it starts
    int loss_scale_window;        // dynamic: clean steps before the scale doubles
} TrainConfig;

#define TRAIN_MAX_OPTIONS 128

/* Writes the shared options (pointing into c) to out; returns how many. */
int train_config_options(TrainConfig *c, Option *out);
/* Checks the combination; false with the reason in err. */
bool train_config_validate(const TrainConfig *c, char *err, size_t err_size);
/* The same, fatal with the program name on a bad one. */
void train_config_check(const TrainConfig *c, const char *prog);

#endif
