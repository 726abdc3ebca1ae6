/* haq.c — HAQ's search: episodes of a DDPG agent choosing bits layer by layer, the budget
 * enforced, a short fine-tune, a held-out reward (see haq.h). */
#include "haq.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "baselines.h"
#include "core/clock.h"
#include "core/error.h"
#include "control.h"
#include "core/tape.h"
#include "ddpg.h"

#define HAQ_STATE 10
#define HAQ_BMIN 2
#define HAQ_BMAX 8

bool haq_enforce(int *bits, const double *cost, int n, double budget, int b_min) {
    double used = 0;
    for (int l = 0; l < n; l++) used += cost[l] * bits[l];
    double tol = 1e-9 * fabs(budget);
    while (used > budget + tol) {
        bool lowered = false;
        for (int l = 0; l < n && used > budget + tol; l++)
            if (bits[l] > b_min) bits[l]--, used -= cost[l], lowered = true;
        if (!lowered) return false;
    }
    return true;
}

static int bits_of(double a) {  // HAQ: round(b_min − 0.5 + a·(b_max − b_min + 1))
    long b = lround(HAQ_BMIN - 0.5 + a * (HAQ_BMAX - HAQ_BMIN + 1));
    return b < HAQ_BMIN ? HAQ_BMIN : b > HAQ_BMAX ? HAQ_BMAX : (int)b;
}

static double action_of(int bits) { return (bits - (HAQ_BMIN - 0.5)) / (HAQ_BMAX - HAQ_BMIN + 1); }

/* The layers' states (L × HAQ_STATE), every feature but the previous action (last, filled per
 * step) scaled to [0, 1] over the layers. */
static void layer_states(const QuantContext *qc, const int *idx, int L, double *st) {
    for (int p = 0; p < L; p++) {
        const QuantLayer *l = qc->layers[idx[p]];
        double n = (double)l->weight->numel, *f = st + (size_t)p * HAQ_STATE;
        f[0] = p, f[1] = l->spec.kind == SPEC_DEPTHWISE, f[2] = l->spec.kind == SPEC_LINEAR;
        f[3] = l->spec.in, f[4] = l->spec.out, f[5] = l->spec.kernel, f[6] = l->spec.stride;
        f[7] = log(fmax(1, (double)l->base.macs / n)), f[8] = log(n), f[9] = 0;  // feature-map size, weights
    }
    for (int j = 0; j < HAQ_STATE - 1; j++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int p = 0; p < L; p++) lo = fmin(lo, st[(size_t)p * HAQ_STATE + j]), hi = fmax(hi, st[(size_t)p * HAQ_STATE + j]);
        for (int p = 0; p < L; p++) st[(size_t)p * HAQ_STATE + j] = hi > lo ? (st[(size_t)p * HAQ_STATE + j] - lo) / (hi - lo) : 0;
    }
}

typedef struct Env {
    Model *m;
    QuantContext *qc;
    const AllocBatch *train, *held;
    int n_train, n_held;
    float *snapshot;  // the parameters every episode starts from (activations calibrated)
    Tape tape;
    long step;        // fine-tuning steps so far (the next batch)
} Env;

static double held_out_accuracy(Env *e) {
    long right = 0, total = 0;
    e->tape.no_grad = true;
    for (int b = 0; b < e->n_held; b++) {
        tape_reset(&e->tape);
        const Tensor *y = model_forward(e->m, &e->tape, e->held[b].x);
        int N = y->shape[0], K = y->shape[1];
        for (int i = 0; i < N; i++) {
            int arg = 0;
            for (int k = 1; k < K; k++) arg = y->data[(size_t)i * K + k] > y->data[(size_t)i * K + arg] ? k : arg;
            right += arg == e->held[b].labels[i], total++;
        }
    }
    e->tape.no_grad = false;
    return (double)right / (double)total;
}

/* The held-out accuracy of the model with the unpinned layers idx at bits, after the short
 * fine-tune from the snapshot. */
static double episode_accuracy(Env *e, const int *idx, const int *bits, int L) {
    const QuantConfig *c = &e->qc->cfg;
    ParamSlab *slab = &e->m->slab;
    memcpy(slab->data, e->snapshot, slab->numel * sizeof(float));
    for (int p = 0; p < L; p++) {
        Quantizer *wq = e->qc->layers[idx[p]]->wq;
        baseline_uncalibrate(wq);  // its step re-initialises from the weights at the new bits
        baseline_set_bits(wq, bits[p]);
    }
    for (int s = 0; s < c->haq_ft_steps; s++) {
        quant_alloc_loss_grad(e->m, &e->tape, &e->train[e->step++ % e->n_train], 1);
        for (size_t k = 0; k < slab->numel; k++) slab->data[k] -= c->haq_ft_lr * slab->grad[k];
    }
    return held_out_accuracy(e);
}

static double truncated_normal(Rng *rng, double mean, double sigma) {  // in [0, 1]
    for (int tries = 0; tries < 100; tries++) {
        double a = mean + sigma * rng_normal(rng);
        if (a >= 0 && a <= 1) return a;
    }
    return fmin(1, fmax(0, mean));
}

static void uncalibrate_one(Quantizer *q, void *ctx) { baseline_uncalibrate(q); }

bool haq_search(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, uint64_t seed, QuantAlloc *a,
                char *err, size_t es) {
    const QuantConfig *c = &qc->cfg;
    if (n_batches < 2) return dq_fail(err, es, "haq needs at least two batches of images (one held out): raise --alloc_images");
    int n = qc->n_layers, L = 0, *idx = dq_malloc((size_t)n * sizeof *idx);
    for (int i = 0; i < n; i++)
        if (!qc->layers[i]->wq->pinned) idx[L++] = i;
    if (L == 0) {
        dq_free(idx);
        return dq_fail(err, es, "no unpinned layer to allocate bits to");
    }
    bool latency = !strcmp(c->haq_resource, "latency");
    double *cost = dq_malloc((size_t)L * sizeof *cost), budget = 0, *st = dq_malloc((size_t)L * HAQ_STATE * sizeof *st);
    for (int p = 0; p < L; p++) {
        const QuantLayer *l = qc->layers[idx[p]];
        cost[p] = latency ? (double)l->base.macs : (double)l->weight->numel;  // × b_a, the same for every layer
        budget += c->w_bits * cost[p];
    }
    layer_states(qc, idx, L, st);
    ParamSlab *slab = &m->slab;
    float *fp32 = dq_malloc(slab->numel * sizeof *fp32);
    memcpy(fp32, slab->data, slab->numel * sizeof *fp32);
    Arena arena;
    arena_init(&arena, 1 << 24, 0);
    int n_held = n_batches / 4 > 0 ? n_batches / 4 : 1;
    Env e = {.m = m, .qc = qc, .train = batches, .n_train = n_batches - n_held, .held = batches + n_batches - n_held,
             .n_held = n_held};
    tape_init(&e.tape, &arena);
    e.tape.training = false;  // BatchNorm's running statistics throughout
    double acc_fp32 = held_out_accuracy(&e);  // (the quantizers are bypassed on entry)
    quant_calibrate_begin_fp32_weights(qc);  // the activations' ranges, once: every episode shares them
    e.tape.no_grad = true;
    for (int b = 0; b < e.n_train && b < 4; b++) tape_reset(&e.tape), model_forward(m, &e.tape, batches[b].x);
    e.tape.no_grad = false;
    quant_calibrate_end(qc);
    e.snapshot = dq_malloc(slab->numel * sizeof *e.snapshot);
    memcpy(e.snapshot, slab->data, slab->numel * sizeof *e.snapshot);

    DdpgConfig dc = {.state_dim = HAQ_STATE, .hidden = 64, .lr_actor = 1e-4, .lr_critic = 1e-3, .batch = 64, .capacity = 4096};
    Ddpg agent;
    ddpg_init(&agent, &dc, seed);
    Rng rng;
    rng_seed(&rng, seed, rng_stream(RNG_STREAM_ALLOC, 2000));
    int *bits = dq_malloc((size_t)L * sizeof *bits);
    double *actions = dq_malloc((size_t)L * sizeof *actions), sigma = 0.5, baseline = NAN, best = -INFINITY;
    for (int ep = 0; ep < c->haq_episodes; ep++) {
        double t0 = clock_seconds(), prev = 0;
        bool warm = ep < c->haq_warmup;
        for (int p = 0; p < L; p++) {
            double *s = st + (size_t)p * HAQ_STATE;
            s[HAQ_STATE - 1] = prev;
            actions[p] = warm ? rng_uniform(&rng) : truncated_normal(&rng, ddpg_act(&agent, s), sigma);
            bits[p] = bits_of(actions[p]), prev = actions[p];
        }
        DQ_CHECK(haq_enforce(bits, cost, L, budget, HAQ_BMIN));  // q_wbits ≥ 2: all at 2 bits fits
        double acc = episode_accuracy(&e, idx, bits, L), R = 0.1 * (acc - acc_fp32);
        baseline = isnan(baseline) ? R : baseline;
        for (int p = 0; p < L; p++) {  // the state as the agent saw it, the action as enforced
            double *s = st + (size_t)p * HAQ_STATE;
            s[HAQ_STATE - 1] = p ? actions[p - 1] : 0;
            ddpg_observe(&agent, s, action_of(bits[p]), R - baseline);
        }
        baseline += 0.5 * (R - baseline);
        if (!warm) {
            for (int p = 0; p < L; p++) ddpg_update(&agent);
            sigma *= 0.99;
        }
        double used = 0, size = 0;
        for (int p = 0; p < L; p++) used += (double)qc->layers[idx[p]]->weight->numel * bits[p], size += (double)qc->layers[idx[p]]->weight->numel;
        if (R > best) {
            best = R, a->param = acc;
            for (int p = 0; p < L; p++) a->bits[idx[p]] = bits[p];
        }
        printf("   haq episode %d/%d%s: mean weight bits %.3f, held-out accuracy %.2f%% (FP32 %.2f%%)%s (%.1f s)\n", ep + 1,
               c->haq_episodes, warm ? " (random)" : "", used / size, 100 * acc, 100 * acc_fp32, R >= best ? ", best so far" : "",
               clock_seconds() - t0);
        fflush(stdout);
    }
    double prev = 0;  // the trained policy's own choice, layer by layer, as each layer's score
    for (int p = 0; p < L; p++) {
        double *s = st + (size_t)p * HAQ_STATE;
        s[HAQ_STATE - 1] = prev;
        a->score[idx[p]] = prev = ddpg_act(&agent, s);
    }
    memcpy(slab->data, fp32, slab->numel * sizeof *fp32);  // as found: FP32 weights, nothing calibrated
    quant_each(qc, uncalibrate_one, NULL);
    quant_set_bypass(qc, true);
    ddpg_free(&agent);
    arena_free(&arena);
    dq_free(idx), dq_free(cost), dq_free(st), dq_free(fp32), dq_free(e.snapshot), dq_free(bits), dq_free(actions);
    return true;
}
