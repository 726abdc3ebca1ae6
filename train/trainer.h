/* trainer.h — the training and evaluation loops.
 *
 * train_model runs cfg->epochs epochs of SGD on `train`, evaluating on `test` after each, and
 * writes into cfg->out_dir:
 *     log.csv         one row per epoch (epoch, lr, losses, accuracies, seconds, images/s)
 *     curves.svg      loss and accuracy curves, rewritten every epoch
 *     checkpoint.bin  parameters, BN statistics, momentum, history (atomic, every epoch)
 *     summary.json    the configuration and the final numbers
 * Every random choice of epoch e depends only on (seed, e), so --resume from the checkpoint of
 * epoch e gives the same result as an uninterrupted run. A non-finite loss stops training
 * with a message naming the epoch and the last good checkpoint.
 *
 * Hooks let a quantization method act at epoch and step boundaries and store its own state in
 * the checkpoint, without the trainer knowing about it.
 */
#ifndef DQ_TRAINER_H
#define DQ_TRAINER_H

#include "checkpoint.h"
#include "config.h"
#include "data/dataset.h"
#include "nn/model.h"

typedef struct EpochLog {
    int epoch;                 // 1-based
    double lr;                 // at the end of the epoch
    double train_loss, train_acc;
    double test_loss, test_acc;
    double seconds;            // training time of this epoch (without evaluation)
    double img_per_s;          // training throughput
} EpochLog;

typedef struct TrainHooks {
    void *ctx;
    void (*epoch_begin)(void *ctx, int epoch);            // 0-based epoch about to run
    void (*after_step)(void *ctx, int epoch, int batch, float lr);  // after the optimizer step
    void (*epoch_end)(void *ctx, int epoch);              // before the evaluation
    void (*save)(void *ctx, Checkpoint *c);               // add sections
    void (*load)(void *ctx, const Checkpoint *c);         // read them back
} TrainHooks;

typedef struct TrainResult {
    EpochLog *history;         // n_epochs rows (dq_free)
    int n_epochs;
    double final_acc, best_acc, final_loss;
    double seconds;            // total training time, this process (evaluation excluded)
    double img_per_s;          // median training throughput over epochs
    long max_rss_mb;
    int resumed_from;          // epochs loaded from a checkpoint (0: fresh)
} TrainResult;

typedef struct EvalResult {
    double loss, acc;          // mean loss, top-1 accuracy in [0, 1]
    int n;
} EvalResult;

void train_model(Model *m, const TrainConfig *cfg, const Dataset *train, const Dataset *test,
                 const TrainHooks *hooks, const char *prog, TrainResult *out);
EvalResult evaluate(Model *m, const Dataset *d, int batch_size, int subset);
void train_result_free(TrainResult *r);
long train_max_rss_mb(void);

#endif
