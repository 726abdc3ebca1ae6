/* bnrecal.c — BatchNorm statistics re-estimated after a quantized run (see bnrecal.h). */
#include "bnrecal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/loader.h"

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
        b->s = realloc(b->s, (size_t)b->cap * sizeof *b->s);
        if (!b->s) DQ_FATAL("out of memory");
    }
    size_t c = info.mean->numel;
    BnStats *s = &b->s[b->n++];
    *s = (BnStats){.layer = l, .mean = malloc(c * sizeof(float)), .var = malloc(c * sizeof(float))};
    if (!s->mean || !s->var) DQ_FATAL("out of memory");
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
 * or not); returns how many ran. */
static int reestimate(Model *m, QuantContext *qc, const Dataset *train, const TrainConfig *cfg, int batches, bool augment) {
    LoaderConfig lc = {.batch_size = cfg->batch_size, .shuffle = true, .seed = (uint64_t)cfg->seed + 177, .prefetch = true,
                       .crop_pad = augment ? cfg->crop_pad : 0, .hflip = augment && cfg->hflip};
    Loader *ld = loader_new(train, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = true;
    quant_set_bypass(qc, false);
    loader_start_epoch(ld, 0);
    Batch b;
    int done = 0;
    for (; done < batches && loader_next(ld, &b); done++) {
        tape_reset(&t);
        model_forward(m, &t, &b.x);
    }
    arena_free(&a);
    loader_free(ld);
    return done;
}

double bn_recalibrate(Model *m, QuantContext *qc, const Dataset *train, const Dataset *test, const TrainConfig *cfg,
                      int batches, double acc_before, const char *csv_path) {
    BnList kept = {0};
    layer_visit(m->net, keep_bn, &kept);
    int done = reestimate(m, qc, train, cfg, batches, true);
    EvalResult aug = evaluate(m, test, cfg->eval_batch, cfg->test_subset);
    reestimate(m, qc, train, cfg, batches, false);
    EvalResult ev = evaluate(m, test, cfg->eval_batch, cfg->test_subset);
    printf("\nBatchNorm statistics re-estimated on %d training batches with the quantizers on (top-1 with the trained "
           "statistics %.2f%%):\n  on images augmented as in training: %.2f%% (what training's statistics describe: "
           "a gain here means they were stale)\n  on un-augmented images, as the test images are: %.2f%% (a gain here "
           "beyond the first: augmentation shifts the statistics)\n",
           done, 100 * acc_before, 100 * aug.acc, 100 * ev.acc);
    for (int i = 0; i < kept.n; i++) measure(&kept.s[i]);
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
    for (int i = 0; i < kept.n; i++) free(kept.s[i].mean), free(kept.s[i].var);
    free(kept.s);
    return ev.acc;
}
