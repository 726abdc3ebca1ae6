/* sgd.h — SGD with momentum (PyTorch's formulation) and learning-rate schedules.
 *
 *     g = grad + wd·w            (wd = 0 for PARAM_NO_DECAY parameters unless decay_all)
 *     v = μ·v + g
 *     w = w − lr·(g + μ·v)       Nesterov      w = w − lr·v   otherwise
 * PARAM_FROZEN, PARAM_BUFFER and PARAM_EXTERNAL entries are left alone. The velocity is one block parallel to
 * the slab (saved in checkpoints).
 *
 * Schedules are functions of training progress t = epoch + batch / batches_per_epoch:
 *     warm-up (t < W):  lr · t / W
 *     const:            lr
 *     step:             lr · gamma^floor((t − W) / step_epochs)
 *     cosine:           lr_min + (lr − lr_min) · (1 + cos(π (t − W) / (E − W))) / 2
 */
#ifndef DQ_SGD_H
#define DQ_SGD_H

#include <stdbool.h>

#include "core/slab.h"

typedef struct SgdConfig {
    float momentum;        // μ
    float weight_decay;    // wd
    bool nesterov;
    bool decay_all;        // also decay PARAM_NO_DECAY parameters (BN, biases)
} SgdConfig;

typedef struct Sgd {
    SgdConfig cfg;
    float *velocity;       // slab->numel floats
    size_t numel;
} Sgd;

void sgd_init(Sgd *s, const SgdConfig *cfg, const ParamSlab *slab);
void sgd_free(Sgd *s);
void sgd_step(Sgd *s, ParamSlab *slab, float lr);

typedef enum { SCHED_CONST, SCHED_STEP, SCHED_COSINE } ScheduleKind;

typedef struct Schedule {
    ScheduleKind kind;
    float lr, lr_min;      // peak and (cosine) final learning rate
    float warmup;          // W, epochs (may be fractional)
    float epochs;          // E, total epochs
    float step_epochs;     // step: epochs between decays
    float gamma;           // step: decay factor
} Schedule;

float schedule_lr(const Schedule *s, double t);
/* "const" / "step" / "cosine" */
bool schedule_parse(const char *name, ScheduleKind *out);

#endif
