/* alloc.c — mixed-precision allocation before fine-tuning (see alloc.h). */
#include "alloc.h"

#include <math.h>
#include <string.h>

#include "baselines.h"
#include "bsq.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/loss.h"
#include "core/tape.h"
#include "haq.h"
#include "hawq.h"
#include "knapsack.h"
#include "ompq.h"

#define ALLOC_MAX_BITS 8
#define ALLOC_TABLE_BYTES ((size_t)1 << 30)  // the knapsack's choice table

static const char *const ALLOC_NAMES[] = {"none", "hawq", "ompq", "bsq", "haq"};

QuantAllocKind quant_alloc_of(const QuantConfig *c) {
    for (int k = 0; k <= ALLOC_HAQ; k++)
        if (!strcmp(c->alloc, ALLOC_NAMES[k])) return (QuantAllocKind)k;
    DQ_FATAL("unknown allocator '%s'", c->alloc);
}

const char *quant_alloc_name(QuantAllocKind k) { return k >= 0 && k <= ALLOC_HAQ ? ALLOC_NAMES[k] : "?"; }

int quant_alloc_images(const QuantConfig *c) {
    QuantAllocKind k = quant_alloc_of(c);
    return k == ALLOC_BSQ || k == ALLOC_HAQ ? c->alloc_train_images : c->alloc_images;  // training on them, or measuring
}

/* ------------------------------------------------------------------ the loss's gradient */
typedef struct GradCtx {
    Model *m;
    const AllocBatch *batches;
    int n_batches;
    Tape tape;
} GradCtx;

void quant_alloc_loss_grad(Model *m, Tape *t, const AllocBatch *batches, int n_batches) {
    slab_zero_grad(&m->slab);
    for (int b = 0; b < n_batches; b++) {
        tape_reset(t);
        Tensor *logits = model_forward(m, t, batches[b].x);
        tape_backward(t, op_softmax_cross_entropy(t, logits, batches[b].labels, 0));
    }
    float inv = 1.0f / (float)n_batches;
    for (size_t k = 0; k < m->slab.numel; k++) m->slab.grad[k] *= inv;
}

static void model_grad(void *ctx) {
    GradCtx *g = ctx;
    if (g->tape.pattern) act_pattern_rewind(g->tape.pattern);
    quant_alloc_loss_grad(g->m, &g->tape, g->batches, g->n_batches);
}

/* The exact allocation over layers idx[0..L) (unpinned) with cost rows of bits 2 … 8: a->bits. */
static bool allocate_knapsack(const QuantContext *qc, const int *idx, int L, const double *cost, QuantAlloc *a,
                              char *err, size_t es) {
    if (L == 0) {
        snprintf(err, es, "no unpinned layer to allocate bits to");
        return false;
    }
    long long *size = dq_malloc((size_t)L * sizeof *size), total = 0;
    int *pick = dq_malloc((size_t)L * sizeof *pick);
    for (int p = 0; p < L; p++) size[p] = (long long)qc->layers[idx[p]]->weight->numel, total += size[p];
    long long budget = (long long)floor((double)qc->cfg.w_bits * (double)total + 1e-6);
    bool ok = knapsack_allocate(L, size, 2, ALLOC_MAX_BITS, cost, budget, ALLOC_TABLE_BYTES, pick, err, es);
    for (int p = 0; ok && p < L; p++) a->bits[idx[p]] = pick[p];
    dq_free(size), dq_free(pick);
    return ok;
}

/* ------------------------------------------------------------------ HAWQ */
static bool search_hawq(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, uint64_t seed,
                        QuantAlloc *a, char *err, size_t es) {
    const QuantConfig *c = &qc->cfg;
    int n = qc->n_layers, b_min = 2;
    Tensor **w = dq_malloc((size_t)n * sizeof *w);
    for (int i = 0; i < n; i++) w[i] = qc->layers[i]->weight;
    Arena arena;
    arena_init(&arena, 1 << 24, 0);
    GradCtx g = {.m = m, .batches = batches, .n_batches = n_batches};
    tape_init(&g.tape, &arena);
    g.tape.training = false;
    ActPattern pattern = {0};
    if (c->hawq_frozen) {  // every activation's piece at the FP32 weights, kept while probing
        g.tape.pattern = &pattern;
        model_grad(&g);
        pattern.replay = true;
    }
    hawq_traces(w, n, model_grad, &g, c->hawq_samples, c->hawq_layerwise, c->hawq_eps, seed,
                (HawqTraces){.trace = a->score, .se = a->score_se});
    act_pattern_free(&pattern);
    arena_free(&arena);
    // the knapsack over the unpinned layers; a negative trace estimate (noise, or a saddle) counts as 0
    int *idx = dq_malloc((size_t)n * sizeof *idx), L = 0;
    double *cost = dq_malloc((size_t)n * (ALLOC_MAX_BITS - b_min + 1) * sizeof *cost);
    for (int i = 0; i < n; i++) {
        QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        int channels = c->per_channel ? l->weight->shape[l->weight->ndim - 1] : 1;
        double *row = cost + (size_t)L * (ALLOC_MAX_BITS - b_min + 1);
        hawq_omega(l->weight, channels, fmax(a->score[i], 0), b_min, ALLOC_MAX_BITS, row);
        for (int b = b_min; b <= ALLOC_MAX_BITS; b++) a->cost[(size_t)i * ALLOC_MAX_BITS + (b - 1)] = row[b - b_min];
        idx[L++] = i;
    }
    bool ok = allocate_knapsack(qc, idx, L, cost, a, err, es);
    dq_free(w), dq_free(idx), dq_free(cost);
    return ok;
}

/* ------------------------------------------------------------------ OMPQ */
typedef struct GramCtx {
    const QuantContext *qc;
    int n;            // images
    double **K;       // per layer: its centred Gram (n × n), NULL for pinned layers
    double *norm;
} GramCtx;

static void gram_tap(void *ctx, const QuantLayer *l, const Tensor *y) {
    GramCtx *g = ctx;
    int i = 0;
    while (g->qc->layers[i] != l) i++;
    if (!g->K[i]) return;
    DQ_CHECK(y->shape[0] == g->n);
    g->norm[i] = ompq_centred_gram(y->data, g->n, (long long)(y->numel / (size_t)g->n), g->K[i]);
}

static bool search_ompq(Model *m, QuantContext *qc, const AllocBatch *batch, QuantAlloc *a, char *err, size_t es) {
    int n = qc->n_layers, N = batch->x->shape[0];
    GramCtx g = {.qc = qc, .n = N, .K = dq_calloc((size_t)n, sizeof *g.K), .norm = dq_calloc((size_t)n, sizeof *g.norm)};
    int *idx = dq_malloc((size_t)n * sizeof *idx), L = 0;  // the unpinned layers, in order
    for (int i = 0; i < n; i++)
        if (!qc->layers[i]->wq->pinned) g.K[i] = dq_malloc((size_t)N * N * sizeof(double)), idx[L++] = i;
    Arena arena;
    arena_init(&arena, 1 << 24, 0);
    Tape t;
    tape_init(&t, &arena);
    t.training = false, t.no_grad = true, t.compact = true;  // gram_tap reads each output as it comes
    qc->tap_out = gram_tap, qc->tap_out_ctx = &g;
    model_forward(m, &t, batch->x);
    qc->tap_out = NULL, qc->tap_out_ctx = NULL;
    arena_free(&arena);
    double *orm = dq_malloc((size_t)L * L * sizeof *orm), *theta = dq_malloc((size_t)L * sizeof *theta);
    double *c = dq_malloc((size_t)L * sizeof *c);
    for (int p = 0; p < L; p++)
        for (int q = 0; q < L; q++)
            orm[(size_t)p * L + q] = ompq_orm(g.K[idx[p]], g.norm[idx[p]], g.K[idx[q]], g.norm[idx[q]], N);
    ompq_importance(orm, L, qc->cfg.ompq_beta, theta, c);
    double *cost = dq_malloc((size_t)L * (ALLOC_MAX_BITS - 1) * sizeof *cost);
    for (int p = 0; p < L; p++) {
        a->score[idx[p]] = theta[p];
        for (int b = 2; b <= ALLOC_MAX_BITS; b++)  // the linear program's objective, to be minimised
            cost[(size_t)p * (ALLOC_MAX_BITS - 1) + (b - 2)] = a->cost[(size_t)idx[p] * ALLOC_MAX_BITS + (b - 1)] = -c[p] * b;
    }
    bool ok = allocate_knapsack(qc, idx, L, cost, a, err, es);
    for (int i = 0; i < n; i++) dq_free(g.K[i]);
    dq_free(g.K), dq_free(g.norm), dq_free(idx), dq_free(orm), dq_free(theta), dq_free(c), dq_free(cost);
    return ok;
}

/* ------------------------------------------------------------------ BSQ */
static double mean_bits(const QuantContext *qc, const int *bits) {  // over the unpinned layers
    double nb = 0, nn = 0;
    for (int i = 0; i < qc->n_layers; i++)
        if (!qc->layers[i]->wq->pinned) nb += (double)qc->layers[i]->weight->numel * bits[i], nn += (double)qc->layers[i]->weight->numel;
    return nn > 0 ? nb / nn : 0;
}

/* One BSQ training from the FP32 weights at strength alpha: steps of bit-plane SGD on the
 * batches in turn, each followed by the group lasso's proximal step, re-quantizing every
 * --bsq_requant steps and at the end (printing the mean bits on the current line). Writes the
 * unpinned layers' bits; restores the weights. */
static void bsq_train(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, double alpha, int *bits) {
    const QuantConfig *c = &qc->cfg;
    int n = qc->n_layers;
    BsqLayer *L = dq_calloc((size_t)n, sizeof *L);
    float **w0 = dq_calloc((size_t)n, sizeof *w0);
    double total = 0;  // unpinned weights
    for (int i = 0; i < n; i++) {
        Tensor *w = qc->layers[i]->weight;
        if (qc->layers[i]->wq->pinned) continue;
        w0[i] = dq_malloc(w->numel * sizeof(float));
        memcpy(w0[i], w->data, w->numel * sizeof(float));
        bsq_init(&L[i], w->data, w->numel, ALLOC_MAX_BITS);
        total += (double)w->numel;
    }
    Arena arena;
    arena_init(&arena, 1 << 24, 0);
    GradCtx g = {.m = m, .n_batches = 1};
    tape_init(&g.tape, &arena);
    g.tape.training = false;
    for (int s = 0; s < c->bsq_steps; s++) {
        for (int i = 0; i < n; i++)
            if (w0[i]) bsq_weight(&L[i], qc->layers[i]->weight->data);
        g.batches = &batches[s % n_batches];
        model_grad(&g);
        bool requant = (s + 1) % c->bsq_requant == 0 || s + 1 == c->bsq_steps;
        for (int i = 0; i < n; i++) {
            if (!w0[i]) continue;
            double share = (double)L[i].n * L[i].bits / total;  // BSQ's memory-aware weight of the layer
            bsq_step(&L[i], qc->layers[i]->weight->grad, c->bsq_lr, (float)(c->bsq_lr * alpha * share));
            if (requant) bits[i] = bsq_requantize(&L[i], 2);
        }
        if (requant) printf(" %.2f", mean_bits(qc, bits)), fflush(stdout);
    }
    arena_free(&arena);
    for (int i = 0; i < n; i++) {
        if (!w0[i]) continue;
        bits[i] = L[i].bits;
        memcpy(qc->layers[i]->weight->data, w0[i], L[i].n * sizeof(float));
        bsq_free(&L[i]), dq_free(w0[i]);
    }
    dq_free(L), dq_free(w0);
}

/* BSQ's one hyperparameter swept to the budget: the strength is multiplied or divided by 4 until
 * the budget is bracketed, then bisected geometrically; the allocation kept is the trial with the
 * most mean bits within the budget. */
static bool search_bsq(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, QuantAlloc *a, char *err,
                       size_t es) {
    const QuantConfig *c = &qc->cfg;
    int n = qc->n_layers, *bits = dq_malloc((size_t)n * sizeof *bits);
    double alpha = c->bsq_alpha, over = NAN, within = NAN, best = -1, last = 0, tried = alpha;
    for (int t = 0; t < c->bsq_trials; t++) {
        double t0 = clock_seconds();
        memcpy(bits, a->bits, (size_t)n * sizeof *bits);
        printf("   bsq strength %.4g, mean weight bits at each re-quantization:", alpha);
        bsq_train(m, qc, batches, n_batches, alpha, bits);
        tried = alpha, last = mean_bits(qc, bits);
        bool fits = last <= c->w_bits + 1e-9;
        printf("%s (%.0f s)\n", fits ? "" : ", over the budget", clock_seconds() - t0);
        fflush(stdout);
        if (fits && last > best) best = last, a->param = alpha, memcpy(a->bits, bits, (size_t)n * sizeof *bits);
        if (fits) within = alpha;
        else over = alpha;
        alpha = isnan(within) ? alpha * 4 : isnan(over) ? alpha / 4 : sqrt(over * within);
    }
    dq_free(bits);
    if (best < 0)
        return dq_fail(err, es, "no strength tried reached the budget (the last, %g, left %.3f mean bits): raise --bsq_alpha or --bsq_trials",
                       tried, last);
    return true;
}

/* ------------------------------------------------------------------ common */
/* a for qc's layers at their current bits, nothing measured yet. */
static void alloc_init(QuantAlloc *a, const QuantContext *qc) {
    int n = qc->n_layers;
    memset(a, 0, sizeof *a);
    a->kind = quant_alloc_of(&qc->cfg);
    a->n = n;
    a->bits = dq_malloc((size_t)n * sizeof *a->bits);
    a->score = dq_malloc((size_t)n * sizeof *a->score);
    a->score_se = dq_calloc((size_t)n, sizeof *a->score_se);
    a->cost = dq_malloc((size_t)n * ALLOC_MAX_BITS * sizeof *a->cost);
    for (size_t i = 0; i < (size_t)n * ALLOC_MAX_BITS; i++) a->cost[i] = NAN;
    for (int i = 0; i < n; i++) a->bits[i] = qc->layers[i]->wq->ops->bits(qc->layers[i]->wq), a->score[i] = NAN;
}

static void alloc_mean_bits(QuantAlloc *a, const QuantContext *qc) {
    double nb = 0, nn = 0;
    for (int i = 0; i < a->n; i++) {
        const QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) a->score[i] = NAN;
        else nb += (double)l->weight->numel * a->bits[i], nn += (double)l->weight->numel;
    }
    a->mean_bits = nn > 0 ? nb / nn : 0;
}

bool quant_alloc_parse(const QuantContext *qc, const void *data, size_t size, QuantAlloc *a, char *err, size_t es) {
    alloc_init(a, qc);
    const char *p = data, *end = p + size;
    for (int i = 0; i < a->n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *name = qc->layers[i]->base.name;
        size_t nlen = strlen(name);
        int b = 0;
        bool ok = nl && (size_t)(nl - p) > nlen + 1 && !memcmp(p, name, nlen) && p[nlen] == ' ';
        for (const char *d = p + nlen + 1; ok && d < nl; d++) ok = *d >= '0' && *d <= '9' && (b = 10 * b + (*d - '0')) <= 8;
        if (!ok || b < 1) {
            quant_alloc_free(a);
            return dq_fail(err, es, "the checkpoint's bit allocation does not fit this model (layer %d, %s)", i, name);
        }
        a->bits[i] = b, p = nl + 1;
    }
    if (p != end) {
        quant_alloc_free(a);
        return dq_fail(err, es, "the checkpoint's bit allocation has more layers than this model (%d)", a->n);
    }
    alloc_mean_bits(a, qc);
    return true;
}

bool quant_alloc_search(Model *m, QuantContext *qc, const AllocBatch *batches, int n_batches, uint64_t seed,
                        QuantAlloc *a, char *err, size_t es) {
    alloc_init(a, qc);
    double t0 = clock_seconds();
    quant_set_bypass(qc, true);  // the FP32 network
    bool ok = a->kind == ALLOC_HAWQ   ? search_hawq(m, qc, batches, n_batches, seed, a, err, es)
            : a->kind == ALLOC_OMPQ ? search_ompq(m, qc, &batches[0], a, err, es)
            : a->kind == ALLOC_BSQ  ? search_bsq(m, qc, batches, n_batches, a, err, es)
            : a->kind == ALLOC_HAQ  ? haq_search(m, qc, batches, n_batches, seed, a, err, es)
                                    : true;
    quant_set_bypass(qc, false);
    a->seconds = clock_seconds() - t0;
    alloc_mean_bits(a, qc);
    return ok;
}

void quant_alloc_apply(QuantContext *qc, const QuantAlloc *a) {
    DQ_CHECK(a->n == qc->n_layers);
    for (int i = 0; i < a->n; i++)
        if (!qc->layers[i]->wq->pinned) baseline_set_bits(qc->layers[i]->wq, a->bits[i]);
}

void quant_alloc_free(QuantAlloc *a) {
    if (!a) return;
    dq_free(a->bits), dq_free(a->score), dq_free(a->score_se), dq_free(a->cost);
    memset(a, 0, sizeof *a);
}

void quant_alloc_write_csv(const QuantContext *qc, const QuantAlloc *a, Text *f) {
    text_printf(f, "layer,pinned,params,bits,score,score_se");
    for (int b = 2; b <= ALLOC_MAX_BITS; b++) text_printf(f, ",cost_%d", b);
    text_printf(f, "\n");
    for (int i = 0; i < a->n; i++) {
        const QuantLayer *l = qc->layers[i];
        text_printf(f, "%s,%d,%zu,%d,%.6g,%.3g", l->base.name, (int)l->wq->pinned, l->weight->numel, a->bits[i], a->score[i],
                a->score_se[i]);
        for (int b = 2; b <= ALLOC_MAX_BITS; b++) text_printf(f, ",%.6g", a->cost[(size_t)i * ALLOC_MAX_BITS + (b - 1)]);
        text_printf(f, "\n");
    }
}

void quant_alloc_save(const QuantContext *qc, const QuantAlloc *a, Text *out) {
    for (int i = 0; i < a->n; i++) text_printf(out, "%s %d\n", qc->layers[i]->base.name, a->bits[i]);
}

bool quant_alloc_matches(const QuantContext *qc, const QuantAlloc *a, const void *data, size_t size, char *err,
                         size_t es) {
    Text t;
    text_init(&t);
    quant_alloc_save(qc, a, &t);
    bool same = size == t.len && memcmp(data, t.s, size) == 0;
    if (!same) {
        size_t k = 0;  // the first line that differs
        while (k < size && k < t.len && ((const char *)data)[k] == t.s[k]) k++;
        while (k > 0 && t.s[k - 1] != '\n') k--;
        const char *nl = k < t.len ? strchr(t.s + k, '\n') : NULL;
        snprintf(err, es, "the checkpoint fine-tunes another bit allocation than this run computed (here: %.*s)",
                 nl ? (int)(nl - (t.s + k)) : 0, t.s + k);
    }
    text_free(&t);
    return same;
}
