/* control.c — per-step driver of quantized fine-tuning and DDQ's budget (see control.h). */
#include "control.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

static bool is_ddq(const QuantContext *qc) { return qc->method == QUANT_DDQ; }
static bool bitops(const QuantContext *qc) { return qc->budget == BUDGET_BITOPS; }

static void phase_one(Quantizer *q, void *ctx) {
    if (ddq_is(q)) ddq_set_phase(q, *(const DdqPhase *)ctx);
}

/* The phase of every DDQ quantizer. */
static void set_phase(QuantRun *r, DdqPhase phase) {
    r->phase = phase;
    quant_each(r->qc, phase_one, &phase);
}

QuantBudget quant_budget(const QuantContext *qc) {
    QuantBudget b = {0};
    for (int i = 0; i < qc->n_layers; i++) {
        const QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        int bw = l->wq->ops->bits(l->wq), ba = l->aq->ops->bits(l->aq);
        b.mem_w += (double)l->wq->elems * quantizer_bits_stored(l->wq), b.n_w += (double)l->wq->elems;
        b.mem_a += (double)l->aq->elems * ba, b.n_a += (double)l->aq->elems;
        b.bitops += (double)l->base.macs * bw * ba, b.macs += (double)l->base.macs;
    }
    b.mean_w = b.n_w > 0 ? b.mem_w / b.n_w : 0;
    b.mean_a = b.n_a > 0 ? b.mem_a / b.n_a : 0;
    return b;
}

void quant_trace_csv_header(FILE *f) {
    fprintf(f, "step,phase,lambda_w,lambda_a,mean_w_bits,mean_a_bits,target_w,target_a\n");
}

void quant_trace_csv_row(FILE *f, const QuantTraceRow *w) {
    fprintf(f, "%lld,%lld,%.6g,%.6g,%.4f,%.4f,%.3f,%.3f\n", w->step, w->phase, w->lambda_w, w->lambda_a, w->mean_w,
            w->mean_a, w->target_w, w->target_a);
}

void quant_run_free(QuantRun *r) {
    if (!r) return;
    dq_free(r->trace_rows);
    r->trace_rows = NULL;
    r->n_trace = r->cap_trace = 0;
}

void quant_run_init(QuantRun *r, QuantContext *qc, long long total_steps, float lr_peak) {
    memset(r, 0, sizeof *r);
    r->qc = qc;
    r->total_steps = total_steps > 0 ? total_steps : 1;
    r->lr_peak = lr_peak > 0 ? lr_peak : 1;
    set_phase(r, DDQ_PHASE_WARMUP);
}

/* Budget targets in effect (variant ramp: from 8 bits to the target over half the joint phase). */
static void targets(const QuantRun *r, double *tw, double *ta) {
    const QuantConfig *c = &r->qc->cfg;
    *tw = c->w_bits, *ta = c->a_bits;
    if (!c->ramp) return;
    double t = (double)r->step / r->total_steps, u = (t - c->phase_warmup) / (0.5 * c->phase_joint);
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    *tw = 8 - (8 - *tw) * u, *ta = 8 - (8 - *ta) * u;
}

/* The next price from the budget's error e = Mem/ζ − 1 (integ: pi's integral term). */
static double update_lambda(const QuantContext *qc, double lambda, double *integ, double mem, double zeta) {
    const QuantConfig *c = &qc->cfg;
    double e = mem / zeta - 1;
    if (qc->lambda == LAMBDA_HINGE) return e > 0 ? c->hinge : 0;
    if (qc->lambda == LAMBDA_PI) {
        e = fmin(e, 1);  // at most 100% over: a budget under 4 bits starts with W4's price, not a kick of kp·3
        if (c->int_band <= 0 || fabs(e) < c->int_band) *integ += c->eta * e;  // no wind-up far from the budget
        double l = *integ + c->kp * e, mx = c->price_max;
        return mx > 0 ? fmin(mx, fmax(-mx, l)) : l;
    }
    lambda += c->eta * e;
    return lambda > 0 ? lambda : 0;
}

static void set_prices(QuantRun *r, const QuantBudget *b, double tw, double ta) {
    QuantContext *qc = r->qc;
    double zeta_w = tw * b->n_w, zeta_a = ta * b->n_a, zeta_ops = tw * ta * b->macs;
    for (int i = 0; i < qc->n_layers; i++) {
        QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        double pw, pa;
        if (bitops(qc)) {
            pw = r->lambda_w * (double)l->base.macs * l->aq->ops->bits(l->aq) / zeta_ops;
            pa = r->lambda_w * (double)l->base.macs * l->wq->ops->bits(l->wq) / zeta_ops;
        } else {
            pw = r->lambda_w * (double)l->wq->elems / zeta_w;
            pa = r->lambda_a * (double)l->aq->elems / zeta_a;
        }
        ddq_set_price(l->wq, (float)pw);
        ddq_set_price(l->aq, (float)pa);
    }
}

/* What one bit of quantizer q adds to its budget's sum. */
static double bit_cost(const QuantContext *qc, const QuantLayer *l, const Quantizer *q) {
    if (bitops(qc)) {
        const Quantizer *other = q == l->wq ? l->aq : l->wq;
        return (double)l->base.macs * other->ops->bits(other);
    }
    return (double)q->elems;
}

/* The settling window (the last --ddq_settle of the joint phase): a gate may flip only if the
 * flip brings its budget's sum closer to the target (|Mem − ζ| falls), so the bits cannot wander
 * off the budget while the joint phase ends; elsewhere nothing is held. */
static void hold_flips(QuantRun *r, const QuantBudget *b, double tw, double ta, bool settling) {
    QuantContext *qc = r->qc;
    for (int i = 0; i < qc->n_layers; i++) {
        QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        for (int k = 0; k < 2; k++) {
            Quantizer *q = k ? l->aq : l->wq;
            double dev = bitops(qc) ? b->bitops - tw * ta * b->macs : k ? b->mem_a - ta * b->n_a : b->mem_w - tw * b->n_w;
            double cost = bit_cost(qc, l, q);
            ddq_hold_flips(q, settling && !(dev > cost / 2), settling && !(dev < -cost / 2));
        }
    }
}

/* One pass of the guarantee over the quantizers of one sum (role, or both for bitops). */
static double guarantee(QuantRun *r, int role, double zeta, double *mem_out) {
    QuantContext *qc = r->qc;
    int m_max = DDQ_K - qc->cfg.ddq.b_min;
    double moved = 0, norm = 0;
    for (int i = 0; i < qc->n_layers; i++) {  // moved bits per element (bitops: per MAC)
        QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        if (bitops(qc)) norm += (double)l->base.macs;
        else norm += (double)(role == QROLE_WEIGHT ? l->wq->elems : l->aq->elems);
    }
    for (int direction = 0; direction < 2; direction++) {  // 0: merge while over, 1: un-merge while it fits
        for (;;) {
            QuantBudget b = quant_budget(qc);
            double mem = bitops(qc) ? b.bitops : role == QROLE_WEIGHT ? b.mem_w : b.mem_a;
            if (direction == 0 && mem <= zeta) break;
            Quantizer *best = NULL;
            double best_score = 0, best_cost = 0;
            for (int i = 0; i < qc->n_layers; i++) {
                QuantLayer *l = qc->layers[i];
                if (l->wq->pinned) continue;
                for (int k = 0; k < 2; k++) {
                    Quantizer *q = k ? l->aq : l->wq;
                    if (!bitops(qc) && (int)q->role != role) continue;
                    DdqState s = ddq_state(q);
                    double cost = bit_cost(qc, l, q);
                    if (direction == 0 && s.merged >= m_max) continue;
                    if (direction == 1 && (s.merged == 0 || mem + cost > zeta)) continue;
                    // merge where a bit costs least accuracy per unit of budget; un-merge where
                    // it buys most
                    double score = direction == 0 ? s.ema_down_pos / cost : s.ema_up_neg / cost;
                    bool better = !best || (direction == 0 ? score < best_score : score > best_score);
                    if (better) best = q, best_score = score, best_cost = cost;
                }
            }
            if (!best) break;  // nothing can move: the budget is as close as it gets
            DdqState s = ddq_state(best);
            ddq_set_merged(best, s.merged + (direction == 0 ? 1 : -1));
            moved += (direction == 0 ? -1 : 1) * best_cost;
        }
    }
    QuantBudget b = quant_budget(qc);
    *mem_out = bitops(qc) ? b.bitops : role == QROLE_WEIGHT ? b.mem_w : b.mem_a;
    return norm > 0 ? moved / norm : 0;
}

void quant_run_guarantee(QuantRun *r) {
    if (!is_ddq(r->qc)) return;
    QuantBudget b = quant_budget(r->qc);
    double mem;
    if (bitops(r->qc)) {
        r->moved_w = guarantee(r, -1, r->qc->cfg.w_bits * r->qc->cfg.a_bits * b.macs, &mem);
    } else {
        r->moved_w = guarantee(r, QROLE_WEIGHT, r->qc->cfg.w_bits * b.n_w, &mem);
        r->moved_a = guarantee(r, QROLE_ACTIVATION, r->qc->cfg.a_bits * b.n_a, &mem);
    }
}

/* ------------------------------------------------------------------ the step */
static void step_one(Quantizer *q, void *ctx) {
    if (q->ops->step) q->ops->step(q, *(float *)ctx);
}

void quant_run_step(QuantRun *r, float lr) {
    QuantContext *qc = r->qc;
    r->step++;
    if (is_ddq(qc)) {
        const QuantConfig *c = &qc->cfg;
        double t = (double)r->step / r->total_steps;
        DdqPhase phase = t < c->phase_warmup ? DDQ_PHASE_WARMUP
                       : t < c->phase_warmup + c->phase_joint ? DDQ_PHASE_JOINT : DDQ_PHASE_FROZEN;
        if (phase == DDQ_PHASE_FROZEN && r->phase != DDQ_PHASE_FROZEN) quant_run_guarantee(r);
        if (phase != r->phase) set_phase(r, phase);
        double tw, ta;
        targets(r, &tw, &ta);
        QuantBudget b = quant_budget(qc);
        if (phase == DDQ_PHASE_JOINT) {
            if (bitops(qc)) r->lambda_w = update_lambda(qc, r->lambda_w, &r->integ_w, b.bitops, tw * ta * b.macs);
            else {
                r->lambda_w = update_lambda(qc, r->lambda_w, &r->integ_w, b.mem_w, tw * b.n_w);
                r->lambda_a = update_lambda(qc, r->lambda_a, &r->integ_a, b.mem_a, ta * b.n_a);
            }
        }
        set_prices(r, &b, tw, ta);
        hold_flips(r, &b, tw, ta, phase == DDQ_PHASE_JOINT && t >= c->phase_warmup + c->phase_joint * (1 - c->settle));
        if (r->n_trace == r->cap_trace) {
            r->cap_trace = r->cap_trace ? 2 * r->cap_trace : 1024;
            r->trace_rows = dq_realloc(r->trace_rows, (size_t)r->cap_trace * sizeof *r->trace_rows);
        }
        QuantTraceRow *row = &r->trace_rows[r->n_trace++];
        *row = (QuantTraceRow){.step = r->step, .phase = phase, .lambda_w = r->lambda_w, .lambda_a = r->lambda_a,
                               .mean_w = b.mean_w, .mean_a = b.mean_a, .target_w = tw, .target_a = ta};
        if (r->trace) {
            quant_trace_csv_row(r->trace, row);
            fflush(r->trace);  // a kill loses no row the checkpoint holds (it is rewritten from them on resume)
        }
    }
    float rel = lr / r->lr_peak;  // level learning rates follow the schedule
    quant_each(qc, step_one, &rel);
}

/* ------------------------------------------------------------------ calibration */
static void begin_one(Quantizer *q, void *ctx) {
    q->bypass = false;
    q->calibrating = q->role == QROLE_ACTIVATION;
}

static void weights_through(Quantizer *q, void *ctx) { q->bypass = q->role == QROLE_WEIGHT; }

static void end_one(Quantizer *q, void *ctx) {
    q->calibrating = false, q->bypass = false;
    if (q->role == QROLE_ACTIVATION && q->ops->finish_calibration) q->ops->finish_calibration(q);
}

void quant_calibrate_begin(QuantContext *qc) { quant_each(qc, begin_one, NULL); }

void quant_calibrate_begin_fp32_weights(QuantContext *qc) {
    quant_each(qc, begin_one, NULL);
    quant_each(qc, weights_through, NULL);
}
void quant_calibrate_end(QuantContext *qc) { quant_each(qc, end_one, NULL); }

/* ------------------------------------------------------------------ state */
#define RUN_STATE_VERSION 3  // 2: the trace rows follow the quantizers; 3: pi's integral terms

static void save_one(Quantizer *q, void *ctx) {
    QBytes *b = ctx;
    uint32_t len = (uint32_t)strlen(q->name);
    qbytes_put(b, &len, sizeof len);
    qbytes_put(b, q->name, len);
    long long e[2] = {q->elems, q->macs};
    qbytes_put(b, e, sizeof e);
    q->ops->save(q, b);
}

void quant_run_save(const QuantRun *r, QBytes *b) {
    int head[3] = {RUN_STATE_VERSION, (int)r->phase, r->qc->n_layers};
    qbytes_put(b, head, sizeof head);
    long long steps[2] = {r->step, r->total_steps};
    qbytes_put(b, steps, sizeof steps);
    double d[6] = {r->lambda_w, r->lambda_a, r->moved_w, r->moved_a, r->integ_w, r->integ_a};
    qbytes_put(b, d, sizeof d);
    quant_each(r->qc, save_one, b);
    uint64_t rows = (uint64_t)r->n_trace;
    qbytes_put(b, &rows, sizeof rows);
    if (rows) qbytes_put(b, r->trace_rows, (size_t)rows * sizeof *r->trace_rows);
}

/* One quantizer's record: its name must be the model's quantizer at this position. */
static bool load_one(Quantizer *q, QBytes *b, char *err, size_t es) {
    uint32_t len;
    char name[sizeof q->name] = {0};
    long long e[2];
    if (!qbytes_get(b, &len, sizeof len) || len >= sizeof name || !qbytes_get(b, name, len) || !qbytes_get(b, e, sizeof e)) {
        snprintf(err, es, "quantization state: the record of quantizer '%s' is truncated or malformed", q->name);
        return false;
    }
    if (strcmp(name, q->name) != 0) {
        snprintf(err, es, "quantizer '%.80s' in the file, '%s' in the model", name, q->name);
        return false;
    }
    if (e[0] < 0 || e[0] > (1LL << 40) || e[1] < 0 || e[1] > (1LL << 50)) {
        snprintf(err, es, "quantizer '%s': %lld elements and %lld MACs", q->name, e[0], e[1]);
        return false;
    }
    if (!q->ops->load(q, b, err, es)) return false;
    if (q->role == QROLE_ACTIVATION && !q->calibrated) {  // calibration precedes every checkpoint
        snprintf(err, es, "quantizer '%s': an activation quantizer that was never calibrated", q->name);
        return false;
    }
    q->elems = e[0], q->macs = e[1];
    q->bypass = false;
    return true;
}

bool quant_run_load(QuantRun *r, QBytes *b, char *err, size_t es) {
    int head[3];
    long long steps[2];
    double d[6];
    if (!qbytes_get(b, head, sizeof head) || !qbytes_get(b, steps, sizeof steps) || !qbytes_get(b, d, sizeof d)) {
        snprintf(err, es, "quantization state is truncated");
        return false;
    }
    if (head[0] != RUN_STATE_VERSION || head[2] != r->qc->n_layers) {
        snprintf(err, es, "quantization state version %d for %d layers; expected version %d, %d layers", head[0], head[2],
                 RUN_STATE_VERSION, r->qc->n_layers);
        return false;
    }
    // The run this state resumes has the same length (the trainer checks the options that fix it):
    // a step past its end, or a λ that is not a price, was not written by a run.
    if (head[1] < DDQ_PHASE_WARMUP || head[1] > DDQ_PHASE_FROZEN || steps[1] != r->total_steps || steps[0] < 0 ||
        steps[0] > steps[1]) {
        snprintf(err, es, "quantization state: phase %d, step %lld of %lld; this run has %lld steps", head[1], steps[0],
                 steps[1], r->total_steps);
        return false;
    }
    bool signed_price = r->qc->lambda == LAMBDA_PI;
    for (int k = 0; k < 6; k++)
        if (!isfinite(d[k]) || (k < 2 && d[k] < 0 && !signed_price) || (k >= 4 && d[k] != 0 && !signed_price) ||
            fabs(d[k]) > 1e30) {
            snprintf(err, es, "quantization state: bad bit price or moved bits (%g)", d[k]);
            return false;
        }
    for (int i = 0; i < r->qc->n_layers; i++)
        if (!load_one(r->qc->layers[i]->wq, b, err, es)) return false;
    for (int i = 0; i < r->qc->n_layers; i++)
        if (!load_one(r->qc->layers[i]->aq, b, err, es)) return false;
    uint64_t rows;
    if (!qbytes_get(b, &rows, sizeof rows) || rows > (uint64_t)steps[0] || b->len - b->pos != rows * sizeof *r->trace_rows) {
        snprintf(err, es, "quantization state: the trace does not match the step count or has trailing bytes");
        return false;
    }
    QuantTraceRow *tr = dq_malloc((size_t)(rows ? rows : 1) * sizeof *tr);
    qbytes_get(b, tr, (size_t)rows * sizeof *tr);
    for (uint64_t k = 0; k < rows; k++)
        if (tr[k].step != (long long)(k + 1) + (steps[0] - (long long)rows)) {
            snprintf(err, es, "quantization state: trace row %llu has step %lld", (unsigned long long)k, tr[k].step);
            dq_free(tr);
            return false;
        }
    dq_free(r->trace_rows);
    r->trace_rows = tr, r->n_trace = (long long)rows, r->cap_trace = (long long)(rows ? rows : 1);
    r->step = steps[0];
    r->lambda_w = d[0], r->lambda_a = d[1], r->moved_w = d[2], r->moved_a = d[3];
    r->integ_w = d[4], r->integ_a = d[5];
    set_phase(r, (DdqPhase)head[1]);
    return true;
}
