/* sgd.c — the optimizer loop and the schedules. */
#include "sgd.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

void sgd_init(Sgd *s, const SgdConfig *cfg, const ParamSlab *slab) {
    DQ_CHECK(slab->finalized);
    s->cfg = *cfg;
    s->numel = slab->numel;
    s->velocity = dq_calloc(slab->numel, sizeof(float));
}

void sgd_free(Sgd *s) {
    if (!s) return;
    dq_free(s->velocity);
    s->velocity = NULL;
}

void sgd_step(Sgd *s, ParamSlab *slab, float lr) {
    DQ_CHECK(s->numel == slab->numel);
    float mu = s->cfg.momentum;
    for (int p = 0; p < slab->n_params; p++) {
        const Param *pr = &slab->params[p];
        if (pr->flags & (PARAM_FROZEN | PARAM_BUFFER | PARAM_EXTERNAL)) continue;
        float wd = (pr->flags & PARAM_NO_DECAY) && !s->cfg.decay_all ? 0.0f : s->cfg.weight_decay;
        float *restrict w = slab->data + pr->offset, *restrict v = s->velocity + pr->offset;
        const float *restrict g = slab->grad + pr->offset;
        size_t n = pr->tensor->numel;
        if (s->cfg.nesterov)
            for (size_t i = 0; i < n; i++) {
                float gi = g[i] + wd * w[i];
                v[i] = mu * v[i] + gi;
                w[i] -= lr * (gi + mu * v[i]);
            }
        else
            for (size_t i = 0; i < n; i++) {
                v[i] = mu * v[i] + g[i] + wd * w[i];
                w[i] -= lr * v[i];
            }
    }
}

float schedule_lr(const Schedule *s, double t) {
    if (s->warmup > 0 && t < s->warmup) return (float)(s->lr * t / s->warmup);
    double u = t - s->warmup, span = s->epochs - s->warmup;
    switch (s->kind) {
    case SCHED_STEP: return (float)(s->lr * pow(s->gamma, floor(u / s->step_epochs)));
    case SCHED_COSINE:
        if (span <= 0) return s->lr;
        if (u > span) u = span;
        return (float)(s->lr_min + (s->lr - s->lr_min) * 0.5 * (1 + cos(3.14159265358979323846 * u / span)));
    default: return s->lr;
    }
}

bool schedule_parse(const char *name, ScheduleKind *out) {
    if (!strcmp(name, "const")) *out = SCHED_CONST;
    else if (!strcmp(name, "step")) *out = SCHED_STEP;
    else if (!strcmp(name, "cosine")) *out = SCHED_COSINE;
    else return false;
    return true;
}
