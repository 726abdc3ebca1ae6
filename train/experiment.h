/* experiment.h — the few steps every experiment main() shares: parse the shared and the
 * experiment's own options, print the resolved configuration, load the data, print the
 * machine-readable RESULT line. */
#ifndef DQ_EXPERIMENT_H
#define DQ_EXPERIMENT_H

#include "config.h"
#include "data/dataset.h"
#include "trainer.h"

typedef struct Experiment {
    const char *prog;                  // argv[0] without directories
    Option opts[TRAIN_MAX_OPTIONS];    // shared + experiment options
    int n_opts;
    int n_train_opts;                  // the first n_train_opts are the shared training options
    Dataset train, test;
} Experiment;

/* Shared options of cfg, then the extra ones; parses argv; prints "config key=value" lines. */
void experiment_setup(Experiment *x, TrainConfig *cfg, const Option *extra, int n_extra, int argc,
                      char **argv, const char *about);
/* Loads cfg->dataset from cfg->data_dir (train and test splits) into x->train / x->test. */
void experiment_load_data(Experiment *x, const TrainConfig *cfg);
void experiment_free(Experiment *x);
/* RESULT exp=… model=… params=… mmacs=… epochs=… test_acc=… best_acc=… train_s=… img_s=… rss_mb=… */
void experiment_result(const Experiment *x, const Model *m, const TrainResult *r, const char *extra);

#endif
