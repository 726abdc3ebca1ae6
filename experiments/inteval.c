/* inteval.c — see inteval.h. */
#include "inteval.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "data/loader.h"
#include "nn/onnx.h"

static int argmax(const float *v, int n) {
    int best = 0;
    for (int k = 1; k < n; k++) best = v[k] > v[best] ? k : best;
    return best;
}

static Loader *eval_loader(const Dataset *d, int batch_size, int subset) {
    LoaderConfig lc = {.batch_size = batch_size, .subset = subset, .prefetch = true};
    Loader *ld = loader_new(d, &lc);
    loader_start_epoch(ld, 0);
    return ld;
}

static EvalSpeed finish(long long correct, long long n, double seconds) {
    return (EvalSpeed){.acc = n ? (double)correct / (double)n : 0, .n = n, .seconds = seconds,
                       .img_s = seconds > 0 ? (double)n / seconds : 0};
}

EvalSpeed int_evaluate(IntModel *im, const Dataset *d, int batch_size, int subset, bool ref, int *pred) {
    Loader *ld = eval_loader(d, batch_size, subset);
    float *logits = dq_malloc(dq_mul_size((size_t)batch_size, (size_t)im->num_classes) * sizeof(float));
    long long correct = 0, n = 0;
    double seconds = 0;
    Batch b;
    while (loader_next(ld, &b)) {
        double t0 = clock_seconds();
        intmodel_forward(im, b.x.data, b.n, logits, ref);
        seconds += clock_seconds() - t0;
        for (int i = 0; i < b.n; i++) {
            int k = argmax(logits + (size_t)i * im->num_classes, im->num_classes);
            correct += k == b.labels[i];
            if (pred) pred[n + i] = k;
        }
        n += b.n;
    }
    dq_free(logits);
    loader_free(ld);
    return finish(correct, n, seconds);
}

EvalSpeed float_evaluate(Model *m, const Dataset *d, int batch_size, int subset, int *pred) {
    Loader *ld = eval_loader(d, batch_size, subset);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.compact = true, t.training = false;
    long long correct = 0, n = 0;
    double seconds = 0;
    Batch b;
    while (loader_next(ld, &b)) {
        tape_reset(&t);
        double t0 = clock_seconds();
        Tensor *y = model_forward(m, &t, &b.x);
        seconds += clock_seconds() - t0;
        for (int i = 0; i < b.n; i++) {
            int k = argmax(y->data + (size_t)i * m->num_classes, m->num_classes);
            correct += k == b.labels[i];
            if (pred) pred[n + i] = k;
        }
        n += b.n;
    }
    arena_free(&a);
    loader_free(ld);
    return finish(correct, n, seconds);
}

void float_logits_on(Model *m, const Dataset *d, int batch_size, int n, float *x, float *logits) {
    Loader *ld = eval_loader(d, batch_size, n);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = false;
    size_t img = (size_t)m->in_h * m->in_w * m->in_c, done = 0;
    Batch b;
    while (loader_next(ld, &b)) {
        tape_reset(&t);
        Tensor *y = model_forward(m, &t, &b.x);
        if (x) memcpy(x + done * img, b.x.data, (size_t)b.n * img * sizeof(float));
        memcpy(logits + done * m->num_classes, y->data, (size_t)b.n * m->num_classes * sizeof(float));
        done += (size_t)b.n;
    }
    arena_free(&a);
    loader_free(ld);
}

void int_logits_on(IntModel *im, const Dataset *d, int batch_size, int n, float *x, float *logits) {
    Loader *ld = eval_loader(d, batch_size, n);
    size_t img = (size_t)im->in_h * im->in_w * im->in_c, done = 0;
    Batch b;
    while (loader_next(ld, &b)) {
        intmodel_forward(im, b.x.data, b.n, logits + done * im->num_classes, false);
        if (x) memcpy(x + done * img, b.x.data, (size_t)b.n * img * sizeof(float));
        done += (size_t)b.n;
    }
    loader_free(ld);
}

static void onnx_stats_line(const IntOnnxStats *st) {
    printf("   %d convolutions as QLinearConv units, %d as ConvInteger; ONNX Runtime steps where the engine does at %lld "
           "of %lld codes-epilogue thresholds (%d of %d channels whole), ",
           st->fused_convs, st->integer_convs, st->exact, st->thresholds, st->channels_exact, st->channels);
    if (st->fused) printf("fixed-point tensors in float");
    else printf("%d of %d fixed-point quantizer thresholds", st->fix_exact, st->fix_thresholds);
    if (!st->fused && st->fix_moved_max > 0) printf(" (the others within %.1e)", st->fix_moved_max);
    printf(", %d of %d of the image's (within a sliver); %d level tables", st->input_exact, st->input_thresholds, st->tables);
    if (st->clamped) printf("; %lld int8 weights of negated channels clamped from 128 to 127", st->clamped);
    printf("\n");
}

void export_onnx_checked(IntModel *im, Model *fq, const Dataset *test, int batch_size, const char *path, bool fused) {
    char err[512], check[4200];
    IntOnnxStats st;
    if (!intmodel_export_onnx(im, path, fused, &st, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    int n = test->n < ONNX_CHECK_IMAGES ? test->n : ONNX_CHECK_IMAGES;
    float *x = dq_malloc((size_t)n * im->in_h * im->in_w * im->in_c * sizeof(float));
    float *li = dq_malloc((size_t)n * im->num_classes * sizeof(float));
    float *lf = fq ? dq_malloc((size_t)n * im->num_classes * sizeof(float)) : NULL;
    int_logits_on(im, test, batch_size, n, x, li);
    if (fq) float_logits_on(fq, test, batch_size, n, NULL, lf);
    snprintf(check, sizeof check, "%s.check", path);
    const float *sets[2] = {li, lf};
    if (!onnx_save_check(check, x, n, im->in_h, im->in_w, im->in_c, sets, fq ? 2 : 1, im->num_classes, err, sizeof err))
        DQ_FATAL_FILE(check, "%s", err);
    printf("== ONNX QDQ: %s (%.1f KB) and %s (the first %d test images; the integer engine's%s logits); check it "
           "with\n   node scripts/onnx_check.js %s %s qdq\n",
           path, st.bytes / 1024.0, check, n, fq ? " and the fake-quant" : "", path, check);
    onnx_stats_line(&st);
    dq_free(x), dq_free(li), dq_free(lf);
}

void int_agreement_on(const IntModel *im, Model *m, QuantContext *qc, const Dataset *d, int batch_size, int subset,
                      IntAgreement *ag) {
    Loader *ld = eval_loader(d, batch_size, subset);
    Batch b;
    while (loader_next(ld, &b)) intmodel_agreement(im, m, qc, b.x.data, b.n, ag);
    loader_free(ld);
}
