/* trainer.h — the training and evaluation loops.
 *
 * train_model runs cfg->epochs epochs of SGD on `train`, evaluating on `test` after each, and
 * writes into cfg->out_dir (checked writable before any work):
 *     log.csv         one row per epoch (epoch, lr, losses, accuracies, seconds, images/s)
 *     curves.svg      loss and accuracy curves, rewritten every epoch
 *     checkpoint.bin  parameters, BN statistics, momentum, history, position, the run's options
 *                     (atomic: after every epoch, every --checkpoint_every steps, on a stop)
 *     summary.json    the configuration and the final numbers
 * Every random choice depends only on (seed, epoch) and the position in the epoch, and the
 * checkpoint keeps what a position needs (the dropout stream, the partial epoch's sums), so
 * --resume from any checkpoint gives the bits of an uninterrupted run. A resume whose options
 * differ from the checkpoint's run is refused, naming each difference (runid.h). A non-finite
 * loss stops training with a message naming the epoch and the last good checkpoint. Ctrl-C or
 * SIGTERM, --stop_after=N epochs or --stop_after_steps=N stop at a step boundary with a
 * checkpoint that --resume continues.
 *
 * Hooks let a quantization method act at step boundaries and store its own state in the
 * checkpoint, without the trainer knowing about it.
 */
#ifndef DQ_TRAINER_H
#define DQ_TRAINER_H

#include "checkpoint.h"
#include "config.h"
#include "data/dataset.h"
#include "nn/model.h"
#include "run_state.h"

typedef struct TrainHooks {
    void *ctx;
    /* Once, after the checkpoint (if any) is loaded and before the first step. */
    void (*start)(void *ctx, bool resumed);
    void (*after_step)(void *ctx, int epoch, int batch, float lr);  // after the optimizer step
    void (*save)(void *ctx, Checkpoint *c);                         // add sections
    bool (*load)(void *ctx, const Checkpoint *c, char *err, size_t err_size);  // read them, checked
} TrainHooks;

typedef struct TrainResult {
    EpochLog *history;         // n_epochs rows (dq_free)
    int n_epochs;
    bool finished;             // all cfg->epochs done (false: stopped by --stop_after or a signal)
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

/* identity: "key=value" lines of the options beyond cfg that decide the run (the model's, the
 * method's: runid_append), or NULL. */
void train_model(Model *m, const TrainConfig *cfg, const char *identity, const Dataset *train, const Dataset *test,
                 const TrainHooks *hooks, const char *prog, TrainResult *out);
EvalResult evaluate(Model *m, const Dataset *d, int batch_size, int subset);
void train_result_free(TrainResult *r);
long train_max_rss_mb(void);

#endif
