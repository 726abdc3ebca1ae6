/* flips.c — weights changing level between steps (see flips.h). */
#include "flips.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct LayerFlips {
    const QuantLayer *l;
    int *index;                  // each weight's level index at the last step (-1: none yet)
    long long *per_step;         // flips of each of the last FLIPS_RING steps (a ring)
} LayerFlips;

struct Flips {
    const QuantContext *qc;
    FILE *f;
    LayerFlips *layers;
    int n;
    long long steps;             // counted so far
    Arena arena;                 // the quantized weights of one layer at a time
    Tape tape;
};

#define FLIPS_RING 4096

Flips *flips_open(const QuantContext *qc, const char *path, char *err, size_t es) {
    FILE *f = fopen(path, "w");
    if (!f) return dq_fail(err, es, "%s: cannot write", path), NULL;
    fprintf(f, "step,layer,bits,groups,weights,flips\n");
    Flips *fl = dq_calloc(1, sizeof *fl);
    fl->qc = qc, fl->f = f, fl->n = qc->n_layers;
    arena_init(&fl->arena, 1 << 20, 0);
    tape_init(&fl->tape, &fl->arena);
    fl->tape.no_grad = true, fl->tape.training = false;
    fl->layers = dq_calloc((size_t)fl->n, sizeof *fl->layers);
    for (int i = 0; i < fl->n; i++) {
        LayerFlips *lf = &fl->layers[i];
        lf->l = qc->layers[i];
        lf->index = dq_malloc(lf->l->weight->numel * sizeof *lf->index);
        for (size_t j = 0; j < lf->l->weight->numel; j++) lf->index[j] = -1;
        lf->per_step = dq_calloc(FLIPS_RING, sizeof *lf->per_step);
    }
    return fl;
}

/* The index of the level nearest v among n ascending levels. */
static int nearest(const float *lv, int n, float v) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v > 0.5f * (lv[mid] + lv[mid + 1])) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void flips_step(Flips *fl, long long step) {
    float levels[256];
    for (int i = 0; i < fl->n; i++) {
        LayerFlips *lf = &fl->layers[i];
        tape_reset(&fl->tape);
        Tensor *wq = quantizer_forward(lf->l->wq, &fl->tape, lf->l->weight);
        int nl = lf->l->wq->ops->levels(lf->l->wq, levels);
        long long flips = 0;
        for (size_t j = 0; j < wq->numel; j++) {
            int k = nearest(levels, nl, wq->data[j]);
            flips += lf->index[j] >= 0 && lf->index[j] != k;
            lf->index[j] = k;
        }
        if (fl->steps == 0) continue;  // the first step has nothing to compare with
        lf->per_step[fl->steps % FLIPS_RING] = flips;
        fprintf(fl->f, "%lld,%s,%d,%d,%zu,%lld\n", step, lf->l->base.name, lf->l->wq->ops->bits(lf->l->wq), lf->l->spec.groups,
                wq->numel, flips);
    }
    fl->steps++;
}

void flips_close(Flips *fl, long long tail) {
    if (!fl) return;
    long long counted = fl->steps > 1 ? fl->steps - 1 : 0;
    if (tail > counted) tail = counted;
    if (tail > FLIPS_RING) tail = FLIPS_RING;
    if (tail > 0) {
        double by_bits[9][2] = {{0}}, worst = -1;
        const QuantLayer *worst_l = NULL;
        for (int i = 0; i < fl->n; i++) {
            LayerFlips *lf = &fl->layers[i];
            long long s = 0;
            for (long long k = 0; k < tail; k++) s += lf->per_step[(fl->steps - 1 - k) % FLIPS_RING];
            double share = (double)s / ((double)tail * (double)lf->l->weight->numel);
            int b = lf->l->wq->ops->bits(lf->l->wq);
            if (b >= 1 && b <= 8) by_bits[b][0] += (double)s, by_bits[b][1] += (double)tail * (double)lf->l->weight->numel;
            if (share > worst) worst = share, worst_l = lf->l;
        }
        printf("weights changing level per step over the last %lld steps:", tail);
        for (int b = 1; b <= 8; b++)
            if (by_bits[b][1] > 0) printf(" %d-bit layers %.4f%%", b, 100 * by_bits[b][0] / by_bits[b][1]);
        printf("; most: %s (%d bits, %.3f%%)\n", worst_l->base.name, worst_l->wq->ops->bits(worst_l->wq), 100 * worst);
    }
    if (fclose(fl->f) != 0) fprintf(stderr, "flips.csv: warning: write failed\n");
    for (int i = 0; i < fl->n; i++) dq_free(fl->layers[i].index), dq_free(fl->layers[i].per_step);
    dq_free(fl->layers);
    arena_free(&fl->arena);
    dq_free(fl);
}
