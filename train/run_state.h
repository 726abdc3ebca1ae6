/* run_state.h — what a checkpoint holds of the trainer, and its reader.
 *
 * Sections (beside the parameters "PARM" and the hooks' own):
 *     TRST  position: epochs done, batches done of the next epoch (checkpoints between epochs,
 *           --checkpoint_every), the batches per epoch, the seed, that epoch's running loss,
 *           correct/seen counts and seconds, and the dropout stream where it stopped
 *     HIST  one row per finished epoch (EpochLog)
 *     OPTS  the run's identity (runid.h)
 *     VELO  the optimizer's velocity
 * Files of the first version have "META" (epochs, seed) instead of TRST and no OPTS; they are
 * read as a run stopped at an epoch boundary whose options were not recorded.
 * run_state_parse is the non-exiting, fully checked reader (the fuzzers call it).
 */
#ifndef DQ_RUN_STATE_H
#define DQ_RUN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "core/rng.h"

typedef struct EpochLog {
    int epoch;                 // 1-based
    double lr;                 // at the end of the epoch
    double train_loss, train_acc;
    double test_loss, test_acc;
    double seconds;            // training time of this epoch (without evaluation)
    double img_per_s;          // training throughput
} EpochLog;

typedef struct RunState {
    int epoch;                 // epochs finished
    int batch;                 // batches done of epoch `epoch` (0: at an epoch boundary)
    int batches;               // batches per epoch of the run that wrote it
    uint64_t seed;
    double loss_sum;           // the partial epoch: Σ loss·n, correct and seen examples, seconds
    long long correct, seen;
    double seconds;
    Rng dropout;               // where the partial epoch left the dropout stream
    EpochLog *history;         // epoch rows (run_state_parse allocates; run_state_free)
    const char *identity;      // the OPTS text (into the checkpoint) or NULL for old files
    size_t identity_len;
} RunState;

void run_state_save(Checkpoint *c, const RunState *s, const char *identity, const float *velocity, size_t numel);
/* Every field checked: sizes, the position against the history, finite numbers, epoch numbers
 * 1..epoch in order, the velocity section of `numel` floats. */
bool run_state_parse(const Checkpoint *c, size_t numel, RunState *s, char *err, size_t err_size);
void run_state_free(RunState *s);

#endif
