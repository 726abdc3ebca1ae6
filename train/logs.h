/* logs.h — the files a training run keeps in its directory, rewritten whole (atomically) from the
 * history after every epoch, so they always match the last checkpoint:
 *     log.csv      one row per epoch       curves.svg   loss and accuracy curves
 *     summary.json the configuration and the final numbers
 */
#ifndef DQ_LOGS_H
#define DQ_LOGS_H

#include "config.h"
#include "nn/model.h"
#include "run_state.h"
#include "trainer.h"

void logs_write_csv(const TrainConfig *c, const EpochLog *h, int n);
void logs_write_svg(const TrainConfig *c, const char *title, const EpochLog *h, int n);
void logs_write_json(const TrainConfig *c, const Model *m, const TrainResult *r);
/* "<out_dir>/<file>" into buf; fatal if it does not fit. */
void logs_path(char *buf, size_t n, const TrainConfig *c, const char *file);

#endif
