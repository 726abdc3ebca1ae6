/* report.c — per-layer quantization table. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "core/error.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The index of the level nearest 0 (exactly 0 where a quantizer pins it). */
static int nearest_zero(const float *lv, int n) {
    int z = 0;
    for (int k = 1; k < n; k++)
        if (fabsf(lv[k]) < fabsf(lv[z])) z = k;
    return z;
}

int quant_report(const QuantContext *qc, QuantLayerInfo *out, int max) {
    int n = qc->n_layers < max ? qc->n_layers : max;
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    t.training = false;
    for (int i = 0; i < n; i++) {
        QuantLayer *l = qc->layers[i];
        QuantLayerInfo *r = &out[i];
        memset(r, 0, sizeof *r);
        r->layer = l, r->name = l->base.name, r->kind = spec_kind_name(l->spec.kind);
        r->int_alone = r->int_chain = -1;
        r->params = (long long)l->weight->numel + (l->bias ? (long long)l->bias->numel : 0);
        r->macs = l->base.macs;
        r->w_bits = l->wq->ops->bits(l->wq), r->a_bits = l->aq->ops->bits(l->aq);
        r->pinned = l->wq->pinned;
        float lv[256];
        int nl = l->wq->ops->levels(l->wq, lv);
        r->w_lo = lv[0], r->w_hi = lv[nl - 1];
        int z = nearest_zero(lv, nl);
        r->w_below0 = z > 0 ? lv[z - 1] : NAN, r->w_above0 = z + 1 < nl ? lv[z + 1] : NAN;
        nl = l->aq->ops->levels(l->aq, lv);
        z = nearest_zero(lv, nl);
        r->a_level1 = z + 1 < nl ? lv[z + 1] : NAN, r->a_level2 = z + 2 < nl ? lv[z + 2] : NAN;
        tape_reset(&t);
        bool bypass = l->wq->bypass;
        Tensor *wq = quantizer_forward(l->wq, &t, l->weight);
        l->wq->bypass = bypass;
        float *v = dq_malloc(wq->numel * sizeof(float));
        memcpy(v, wq->data, wq->numel * sizeof(float));
        qsort(v, wq->numel, sizeof *v, cmp_float);
        int distinct = wq->numel > 0;
        for (size_t k = 1; k < wq->numel; k++) distinct += v[k] != v[k - 1];
        dq_free(v);
        r->w_levels = distinct;
        r->w_bytes = (double)l->weight->numel * quantizer_bits_stored(l->wq) / 8 + (l->bias ? 4.0 * (double)l->bias->numel : 0);
    }
    arena_free(&a);
    return n;
}

QuantSummary quant_summary(const QuantLayerInfo *rows, int n, const QuantContext *qc) {
    QuantSummary s = {0};
    QuantBudget b = quant_budget(qc);
    s.mean_w_bits = b.mean_w, s.mean_a_bits = b.mean_a, s.layers = n;
    for (int i = 0; i < n; i++) {
        s.weight_kb += rows[i].w_bytes / 1024;
        s.fp32_weight_kb += (double)rows[i].params * 4 / 1024;
    }
    return s;
}

void quant_report_print(FILE *f, const QuantLayerInfo *rows, int n) {
    fprintf(f, "| layer | kind | params | MMAC | w bits | a bits | weight levels [lo, hi] | distinct | weight KB |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const QuantLayerInfo *r = &rows[i];
        fprintf(f, "| %s%s | %s | %lld | %.2f | %d | %d | [%.4g, %.4g] | %d | %.2f |\n", r->name,
                r->pinned ? " (pinned)" : "", r->kind, r->params, (double)r->macs / 1e6, r->w_bits,
                r->a_bits, r->w_lo, r->w_hi, r->w_levels, r->w_bytes / 1024);
    }
}
