/* bnrecal.c — BatchNorm statistics re-estimated after a quantized run (see bnrecal.h). */
#include "bnrecal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/loader.h"
#include "nn/precise_bn.h"

typedef struct BnStats {
    Layer *layer;
    float *mean, *var;  // the statistics the run kept (copies)
    double shift, scale;         // means over channels
    double shift_max, scale_max; // and the largest
} BnStats;

typedef struct BnList {
    BnStats *s;
    int n, cap;
} BnList;

static void keep_bn(Layer *l, void *ctx) {
    BnList *b = ctx;
    LayerInfo info = layer_info(l);
    if (info.kind != LAYER_BATCHNORM) return;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->s = dq_realloc(b->s, (size_t)b->cap * sizeof *b->s);
    }
    size_t c = info.mean->numel;
    BnStats *s = &b->s[b->n++];
    *s = (BnStats){.layer = l, .mean = dq_malloc(c * sizeof(float)), .var = dq_malloc(c * sizeof(float))};
    memcpy(s->mean, info.mean->data, c * sizeof(float));
    memcpy(s->var, info.var->data, c * sizeof(float));
}

/* How far the kept statistics were from the layer's current ones. */
static void measure(BnStats *s) {
    LayerInfo info = layer_info(s->layer);
    size_t c = info.mean->numel;
    double shift = 0, scale = 0;
    for (size_t i = 0; i < c; i++) {
        double v = info.var->data[i] + info.eps;
        double sh = fabs(s->mean[i] - info.mean->data[i]) / sqrt(v), sc = fabs(log((s->var[i] + info.eps) / v));
        shift += sh, scale += sc;
        s->shift_max = fmax(s->shift_max, sh), s->scale_max = fmax(s->scale_max, sc);
    }
    s->shift = shift / (double)c, s->scale = scale / (double)c;
}

static int by_moved(const void *a, const void *b) {
    const BnStats *x = a, *y = b;
    double mx = x->shift + x->scale, my = y->shift + y->scale;
    return (mx < my) - (mx > my);
}

/* Training-mode forwards of `batches` batches (augmented as training: crop_pad, hflip from cfg;
 * or not), their statistics averaged with equal weights (nn/precise_bn.h); returns how many ran. */
static int reestimate(Model *m, QuantContext *qc, const Dataset *train, const TrainConfig *cfg, int batches, bool augment) {
    LoaderConfig lc = {.batch_size = cfg->batch_size, .shuffle = true, .seed = (uint64_t)cfg->seed + 177, .prefetch = true,
                       .crop_pad = augment ? cfg->crop_pad : 0, .hflip = augment && cfg->hflip};
    Loader *ld = loader_new(train, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.compact = true, t.training = true;
    quant_set_bypass(qc, false);
    loader_start_epoch(ld, 0);
    Batch b;
    PreciseBn p;
    precise_bn_begin(&p, m->net);
    for (int i = 0; i < batches && loader_next(ld, &b); i++) {
        tape_reset(&t);
        model_forward(m, &t, &b.x);
        precise_bn_add(&p);
    }
    int done = precise_bn_end(&p);
    arena_free(&a);
    loader_free(ld);
    return done;
}

/* ------------------------------------------------------------------ the trace */
/* Where a change of statistics grows: the codes every quantized layer receives on the same test
 * images, with the re-estimated statistics (recorded) and then with others (compared). */
typedef struct Trace {
    QuantContext *qc;
    float **codes;              // (layers) recorded inputs
    size_t *n;
    bool compare;
    long long *differ, *values; // (layers) with `compare`: inputs that differ, of all
    double *dl1, *l1;           // Σ|Δ| and Σ|recorded|
} Trace;

static void trace_tap(void *ctx, const QuantLayer *l, const Tensor *xq) {
    Trace *tr = ctx;
    int i = 0;
    while (i < tr->qc->n_layers && tr->qc->layers[i] != l) i++;
    if (i == tr->qc->n_layers) return;
    if (!tr->compare) {
        tr->codes[i] = dq_realloc(tr->codes[i], xq->numel * sizeof(float));
        memcpy(tr->codes[i], xq->data, xq->numel * sizeof(float));
        tr->n[i] = xq->numel;
        return;
    }
    if (tr->n[i] != xq->numel) return;
    for (size_t k = 0; k < xq->numel; k++) {
        float a = tr->codes[i][k], b = xq->data[k];
        tr->differ[i] += a != b, tr->dl1[i] += fabs((double)a - b), tr->l1[i] += fabs((double)a);
    }
    tr->values[i] += (long long)xq->numel;
}

/* Swap the running statistics of BatchNorm layers [from, to) of kept with the model's. */
static void swap_stats(BnList *kept, int from, int to) {
    for (int i = from; i < to && i < kept->n; i++) {
        LayerInfo info = layer_info(kept->s[i].layer);
        size_t c = info.mean->numel;
        for (size_t k = 0; k < c; k++) {
            float mu = info.mean->data[k], v = info.var->data[k];
            info.mean->data[k] = kept->s[i].mean[k], info.var->data[k] = kept->s[i].var[k];
            kept->s[i].mean[k] = mu, kept->s[i].var[k] = v;
        }
    }
}

/* One evaluation forward of the first n test images; the top-1 of each into top. */
static void forward_images(Model *m, Tensor *x, int *top) {
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.compact = true, t.training = false;  // trace_tap copies what it keeps
    Tensor *y = model_forward(m, &t, x);
    int n = y->shape[0], k = y->shape[1];
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++) best = y->data[(size_t)i * k + j] > y->data[(size_t)i * k + best] ? j : best;
        top[i] = best;
    }
    arena_free(&a);
}

#define TRACE_IMAGES 256

/* The model holds the re-estimated statistics, kept the trained ones (in model order). Rows: each
 * quantized layer's inputs with the trained statistics everywhere, and with them in the first
 * BatchNorm layer only, against the re-estimated ones. */
static void trace(Model *m, QuantContext *qc, const Dataset *test, BnList *kept, const char *path) {
    LoaderConfig lc = {.batch_size = TRACE_IMAGES, .subset = TRACE_IMAGES};
    Loader *ld = loader_new(test, &lc);
    loader_start_epoch(ld, 0);
    Batch b;
    if (!loader_next(ld, &b)) DQ_FATAL("bn trace: no test images");
    int L = qc->n_layers, n = b.n, top0[TRACE_IMAGES], top[2][TRACE_IMAGES];
    Trace tr = {.qc = qc, .codes = dq_calloc((size_t)L, sizeof(float *)), .n = dq_calloc((size_t)L, sizeof(size_t))};
    long long *differ[2], *values[2];
    double *dl1[2], *l1[2];
    for (int k = 0; k < 2; k++)
        differ[k] = dq_calloc((size_t)L, sizeof(long long)), values[k] = dq_calloc((size_t)L, sizeof(long long)),
        dl1[k] = dq_calloc((size_t)L, sizeof(double)), l1[k] = dq_calloc((size_t)L, sizeof(double));
    qc->tap = trace_tap, qc->tap_ctx = &tr;
    forward_images(m, &b.x, top0);
    tr.compare = true;
    for (int k = 0; k < 2; k++) {  // k = 0: every BatchNorm's trained statistics; 1: the first one's only
        int to = k == 0 ? kept->n : 1;
        tr.differ = differ[k], tr.values = values[k], tr.dl1 = dl1[k], tr.l1 = l1[k];
        swap_stats(kept, 0, to);
        forward_images(m, &b.x, top[k]);
        swap_stats(kept, 0, to);  // back to the re-estimated ones
    }
    qc->tap = NULL, qc->tap_ctx = NULL;
    int changed[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n; i++) changed[k] += top[k][i] != top0[i];
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) DQ_FATAL_FILE(tmp, "cannot write");
    fprintf(f, "layer,values,differ_all,rel_l1_all,differ_first,rel_l1_first\n");
    for (int i = 0; i < L; i++) {
        if (!values[0][i]) continue;
        fprintf(f, "%s,%lld,%.6f,%.6f,%.6f,%.6f\n", qc->layers[i]->base.name, values[0][i], (double)differ[0][i] / values[0][i],
                l1[0][i] > 0 ? dl1[0][i] / l1[0][i] : 0, (double)differ[1][i] / values[1][i], l1[1][i] > 0 ? dl1[1][i] / l1[1][i] : 0);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) DQ_FATAL_FILE(path, "cannot write");
    printf("  trace on the first %d test images: the trained statistics everywhere change %d top-1 decisions, in the first "
           "BatchNorm layer (%s) alone %d; per quantized layer, the share of its input codes that change: %s\n",
           n, changed[0], kept->n ? kept->s[0].layer->name : "-", changed[1], path);
    for (int i = 0; i < L; i++) dq_free(tr.codes[i]);
    for (int k = 0; k < 2; k++) dq_free(differ[k]), dq_free(values[k]), dq_free(dl1[k]), dq_free(l1[k]);
    dq_free(tr.codes), dq_free(tr.n);
    loader_free(ld);
}

double bn_recalibrate(Model *m, QuantContext *qc, const Dataset *train, const Dataset *test, const TrainConfig *cfg,
                      int batches, double acc_before, const char *csv_path) {
    BnList kept = {0};
    layer_visit(m->net, keep_bn, &kept);
    int done = reestimate(m, qc, train, cfg, batches, true);
    EvalResult aug = evaluate(m, test, cfg->eval_batch, cfg->test_subset);
    reestimate(m, qc, train, cfg, batches, false);
    EvalResult ev = evaluate(m, test, cfg->eval_batch, cfg->test_subset);
    printf("\nBatchNorm statistics re-estimated as the average of %d training batches with the quantizers on (top-1 "
           "with the trained statistics, a running average: %.2f%%):\n  on images augmented as in training: %.2f%%\n"
           "  on un-augmented images, as the test images are: %.2f%% (kept for what follows)\n",
           done, 100 * acc_before, 100 * aug.acc, 100 * ev.acc);
    for (int i = 0; i < kept.n; i++) measure(&kept.s[i]);
    if (csv_path[0]) {
        char tpath[4200];
        snprintf(tpath, sizeof tpath, "%.*s_trace.csv", (int)(strlen(csv_path) > 4 ? strlen(csv_path) - 4 : strlen(csv_path)), csv_path);
        trace(m, qc, test, &kept, tpath);
    }
    if (csv_path[0]) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", csv_path);
        FILE *f = fopen(tmp, "w");
        if (!f) DQ_FATAL_FILE(tmp, "cannot write");
        fprintf(f, "layer,channels,shift,scale,shift_max,scale_max\n");
        for (int i = 0; i < kept.n; i++)
            fprintf(f, "%s,%zu,%.6f,%.6f,%.6f,%.6f\n", kept.s[i].layer->name, layer_info(kept.s[i].layer).mean->numel,
                    kept.s[i].shift, kept.s[i].scale, kept.s[i].shift_max, kept.s[i].scale_max);
        if (fclose(f) != 0 || rename(tmp, csv_path) != 0) DQ_FATAL_FILE(csv_path, "cannot write");
    }
    qsort(kept.s, (size_t)kept.n, sizeof *kept.s, by_moved);
    printf("  trained against un-augmented statistics, most different (mean over channels of |Δμ|/σ and |ln σ²_kept/σ²_new|):");
    for (int i = 0; i < kept.n && i < 3; i++)
        printf(" %s %.2f/%.2f%s", kept.s[i].layer->name, kept.s[i].shift, kept.s[i].scale, i + 1 < kept.n && i < 2 ? "," : "");
    printf("%s%s\n", csv_path[0] ? "; every layer in " : "", csv_path);
    for (int i = 0; i < kept.n; i++) dq_free(kept.s[i].mean), dq_free(kept.s[i].var);
    dq_free(kept.s);
    return ev.acc;
}
