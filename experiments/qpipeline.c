/* qpipeline.c — FP32 → quantized fine-tuning → report (see qpipeline.h). */
#include "qpipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/threads.h"
#include "data/loader.h"
#include "nn/basic.h"
#include "nn/onnx.h"
#include "nn/weighted.h"
#include "quant/control.h"
#include "quant/mpquant.h"
#include "core/text.h"
#include "bnrecal.h"
#include "flips.h"
#include "inteval.h"
#include "train/runid.h"

int qpipeline_options(QPipelineConfig *p, QuantConfig *q, Option *o) {
    int n = 0;
    p->q_defaults = *q;
    o[n++] = opt_int("fp32_epochs", &p->fp32_epochs, "FP32 training epochs", 1, 100000);
    o[n++] = opt_float("fp32_lr", &p->fp32_lr, "FP32 peak learning rate", 0, 100);
    o[n++] = opt_float("fp32_warmup", &p->fp32_warmup, "FP32 warm-up epochs", 0, 100000);
    o[n++] = opt_role(opt_string("fp32_dir", p->fp32_dir, "FP32 run directory, reused when finished (empty: derived)"), OPT_INCIDENTAL);
    o[n++] = opt_int("fp32_seed", &p->fp32_seed, "seed of the FP32 model (0: --seed); fine-tune seeds share one FP32 model", 0, 1 << 30);
    o[n++] = opt_role(opt_bool("export_onnx", &p->export_onnx,
                               "write the FP32 model as out_dir/fp32.onnx and the quantized one as ONNX QDQ, out_dir/model.onnx, each "
                               "with a .check file for scripts/onnx_check.js"),
                      OPT_INCIDENTAL);
    return n + quant_config_options(q, o + n);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median training throughput and seconds per epoch of a run. */
static void epoch_stats(const TrainResult *r, double *img_s, double *epoch_s) {
    *img_s = *epoch_s = 0;
    int n = r->n_epochs;
    if (n == 0) return;
    double *v = dq_malloc(2 * (size_t)n * sizeof(double)), *w = v + n;
    for (int i = 0; i < n; i++) v[i] = r->history[i].img_per_s, w[i] = r->history[i].seconds;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    qsort(w, (size_t)n, sizeof *w, cmp_double);
    *img_s = v[n / 2], *epoch_s = w[n / 2];
    dq_free(v);
}

/* ------------------------------------------------------------------ fine-tuning hooks */
typedef struct QHooks {
    QuantRun *run;
    char trace_path[4096];   // ddq_trace.csv, or "" for the other methods
    const QuantAlloc *alloc; // --q_alloc's bits (checked against a resumed checkpoint's), or NULL
    char flips_path[4096];   // --q_flips: flips.csv, or ""
    Flips *flips;
    Layer *net;              // --q_bn_freeze: its BatchNorm layers freeze after step freeze_at
    long long freeze_at;     // (-1: never)
    bool frozen;
} QHooks;

static void freeze_bn(Layer *l, void *ctx) {
    (void)ctx;
    if (layer_info(l).kind == LAYER_BATCHNORM) batchnorm_set_frozen(l, true);
}

/* From step freeze_at on (a resumed run past it too: the checkpoint holds the frozen statistics). */
static void maybe_freeze_bn(QHooks *h) {
    if (h->frozen || h->freeze_at < 0 || h->run->step < h->freeze_at) return;
    layer_visit(h->net, freeze_bn, NULL);
    h->frozen = true;
    printf("   BatchNorm statistics frozen from step %lld of %lld (--q_bn_freeze=%g)\n", h->run->step, h->run->total_steps,
           h->run->qc->cfg.bn_freeze);
}

static void hook_step(void *ctx, int epoch, int batch, float lr) {
    QHooks *h = ctx;
    quant_run_step(h->run, lr);
    if (h->flips) flips_step(h->flips, h->run->step);
    maybe_freeze_bn(h);
}

static void hook_save(void *ctx, Checkpoint *c) {
    QHooks *h = ctx;
    QBytes b = {0};
    quant_run_save(h->run, &b);
    ckpt_add(c, "QUNT", b.p, b.len);
    dq_free(b.p);
    if (h->alloc) {
        Text t;
        text_init(&t);
        quant_alloc_save(h->run->qc, h->alloc, &t);
        ckpt_add(c, "ALOC", t.s, t.len);
        text_free(&t);
    }
}

static bool hook_load(void *ctx, const Checkpoint *c, char *err, size_t es) {
    QHooks *h = ctx;
    const CkptSection *s;
    if (!ckpt_section(c, "QUNT", 0, &s, err, es)) return false;
    QBytes b = qbytes_view(s->data, s->size);
    if (!quant_run_load(h->run, &b, err, es)) return false;
    if (!h->alloc) return true;
    if (!ckpt_section(c, "ALOC", 0, &s, err, es)) return false;
    return quant_alloc_matches(h->run->qc, h->alloc, s->data, s->size, err, es);
}

/* ddq_trace.csv starts as exactly the rows the run holds (none when fresh, the checkpoint's when
 * resumed: a killed run's extra rows go), then grows a flushed row per step. */
static void hook_start(void *ctx, bool resumed) {
    QHooks *h = ctx;
    char err[4300];
    if (h->flips_path[0] && !(h->flips = flips_open(h->run->qc, h->flips_path, err, sizeof err))) DQ_FATAL("%s", err);
    maybe_freeze_bn(h);
    if (!h->trace_path[0]) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", h->trace_path);
    FILE *f = fopen(tmp, "w");
    if (!f) DQ_FATAL_FILE(tmp, "cannot write");
    quant_trace_csv_header(f);
    for (long long i = 0; i < h->run->n_trace; i++) quant_trace_csv_row(f, &h->run->trace_rows[i]);
    if (fclose(f) != 0 || rename(tmp, h->trace_path) != 0) DQ_FATAL_FILE(h->trace_path, "cannot write");
    h->run->trace = fopen(h->trace_path, "a");
    if (!h->run->trace) DQ_FATAL_FILE(h->trace_path, "cannot append");
}

/* ------------------------------------------------------------------ steps */
static bool quant_relevant(const char *key, const void *cfg) { return quant_config_has_effect(cfg, key); }

/* The extra identity of a quantized phase: the experiment's own options that take effect under
 * the quantization config q (an LSQ run's identity has no --ddq_* keys). */
static void identity_quant(const Experiment *x, const QuantConfig *q, Text *t) {
    runid_append_relevant(t, x->opts + x->n_train_opts, x->n_opts - x->n_train_opts, quant_relevant, q);
}

/* The FP32 phase's extra identity: the experiment's own options without the pipeline's fp32_*
 * (their values are in the FP32 run's config) and without every key of QuantConfig's own list,
 * so one FP32 model serves every method and variant, today's and any option added later (a list
 * of prefixes here once missed --lsq_step_grad, and every FP32 checkpoint written before it was
 * refused). */
void qpipeline_fp32_identity(const Option *opts, int n, Text *t) {
    QuantConfig q = quant_config_defaults;
    Option qo[QUANT_MAX_OPTIONS];
    int nq = quant_config_options(&q, qo);
    const char *skip[QUANT_MAX_OPTIONS + 2] = {"fp32_"};
    for (int i = 0; i < nq; i++) skip[1 + i] = qo[i].key;
    skip[1 + nq] = NULL;
    runid_append(t, opts, n, skip);
}

/* 1. FP32: train, or reuse the finished run in its directory; fc gets the FP32 run's config. */
static void train_fp32(Experiment *x, const TrainConfig *cfg, const QPipelineConfig *p, QBuildFn build, void *build_ctx,
                       QPipelineResult *out, TrainConfig *fc) {
    *fc = *cfg;
    if (p->fp32_seed) fc->seed = p->fp32_seed;
    Model *fm = build(build_ctx, &nn_float_factory, (uint64_t)fc->seed, &x->train);
    snprintf(out->model, sizeof out->model, "%s", fm->name);
    fc->epochs = p->fp32_epochs, fc->lr = p->fp32_lr, fc->warmup = p->fp32_warmup, fc->resume = true, fc->stop_after = 0;
    if (fc->warmup > fc->epochs) fc->warmup = (float)fc->epochs;
    char dir[1024];
    if (p->fp32_dir[0]) snprintf(dir, sizeof dir, "%s", p->fp32_dir);
    else if (!strcmp(cfg->half, "grads"))  // a run of its own, beside the float one
        snprintf(dir, sizeof dir, "runs/fp32-%s-%s-e%d-seed%d-half-%s", fm->name, cfg->dataset, p->fp32_epochs, fc->seed,
                 cfg->loss_scale);
    else if (!strcmp(cfg->half, "all"))
        snprintf(dir, sizeof dir, "runs/fp32-%s-%s-e%d-seed%d-half-all-%s", fm->name, cfg->dataset, p->fp32_epochs, fc->seed,
                 cfg->loss_scale);
    else snprintf(dir, sizeof dir, "runs/fp32-%s-%s-e%d-seed%d", fm->name, cfg->dataset, p->fp32_epochs, fc->seed);
    if (strlen(dir) >= sizeof fc->out_dir) DQ_FATAL_FILE(x->prog, "FP32 directory name too long: %s", dir);
    strcpy(fc->out_dir, dir);
    printf("== FP32 %s (%s)\n", fm->name, fc->out_dir);
    Text id;
    text_init(&id);
    qpipeline_fp32_identity(x->opts + x->n_train_opts, x->n_opts - x->n_train_opts, &id);
    TrainResult fr;
    train_model(fm, fc, id.s, &x->train, &x->test, NULL, x->prog, &fr);
    if (!fr.finished) DQ_FATAL_FILE(x->prog, "the FP32 run in %s did not finish", fc->out_dir);
    out->fp32_acc = fr.final_acc;
    epoch_stats(&fr, &out->fp32_img_s, &out->fp32_epoch_s);
    text_free(&id);
    train_result_free(&fr);
    model_free(fm);
}

/* 2. The quantized model with the FP32 parameters and BatchNorm statistics, copied by name. */
static Model *quantized_from_fp32(Experiment *x, const TrainConfig *cfg, const TrainConfig *fc, QuantContext *qc,
                                  QBuildFn build, void *build_ctx) {
    LayerFactory qf = quant_factory(qc);
    Model *m = build(build_ctx, &qf, (uint64_t)cfg->seed, &x->train);
    char ckpath[4096];
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.bin", fc->out_dir);
    Checkpoint ck;
    if (!ckpt_load(&ck, ckpath)) DQ_FATAL_FILE(ckpath, "the FP32 checkpoint is missing");
    int copied = ckpt_read_slab_by_name(&ck, &m->slab);
    ckpt_free(&ck);
    printf("== %s: %d FP32 tensors copied into %d quantized layers\n", quant_method_name(qc->method), copied, qc->n_layers);
    return m;
}

/* The finished FP32 model again (its evaluation speed goes beside the integer engine's). */
static Model *fp32_model(Experiment *x, const TrainConfig *fc, QBuildFn build, void *build_ctx) {
    Model *fm = build(build_ctx, &nn_float_factory, (uint64_t)fc->seed, &x->train);
    char ckpath[4096];
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.bin", fc->out_dir);
    Checkpoint ck;
    if (!ckpt_load(&ck, ckpath)) DQ_FATAL_FILE(ckpath, "the FP32 checkpoint is missing");
    ckpt_read_slab(&ck, &fm->slab);
    ckpt_free(&ck);
    return fm;
}

/* --export_onnx: the FP32 model as ONNX, and the first test images with our logits beside it. */
static void export_onnx_fp32(Experiment *x, const TrainConfig *cfg, const TrainConfig *fc, QBuildFn build, void *build_ctx) {
    char path[4096], check[4200], err[512];
    if (!fileio_make_dirs(cfg->out_dir, err, sizeof err)) DQ_FATAL_FILE(cfg->out_dir, "%s", err);
    snprintf(path, sizeof path, "%s/fp32.onnx", cfg->out_dir);
    snprintf(check, sizeof check, "%s.check", path);
    Model *m = fp32_model(x, fc, build, build_ctx);
    size_t bytes;
    if (!onnx_export_float(m, path, &bytes, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    int n = x->test.n < ONNX_CHECK_IMAGES ? x->test.n : ONNX_CHECK_IMAGES;
    float *xs = dq_malloc((size_t)n * m->in_h * m->in_w * m->in_c * sizeof(float));
    float *logits = dq_malloc((size_t)n * m->num_classes * sizeof(float));
    float_logits_on(m, &x->test, cfg->eval_batch, n, xs, logits);
    const float *sets[1] = {logits};
    if (!onnx_save_check(check, xs, n, m->in_h, m->in_w, m->in_c, sets, 1, m->num_classes, err, sizeof err))
        DQ_FATAL_FILE(check, "%s", err);
    printf("== ONNX: %s (%.1f KB) and %s (the first %d test images, our FP32 logits); check it with\n"
           "   node scripts/onnx_check.js %s %s fp32\n",
           path, bytes / 1024.0, check, n, path, check);
    dq_free(xs), dq_free(logits);
    model_free(m);
}

/* 3. Calibrate the activation quantizers on a few training batches (evaluation mode: the FP32
 * model's BatchNorm statistics). */
static void calibrate(Experiment *x, Model *m, QuantContext *qc, const Dataset *train, int batches, int batch_size, int seed) {
    LoaderConfig lc = {.batch_size = batch_size, .shuffle = true, .seed = (uint64_t)seed + 77, .prefetch = true};
    Loader *ld = loader_new(train, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.compact = true;  // the observers and taps copy what they keep
    t.training = false;
    bool mp = qc->method == QUANT_MULTIPOINT;
    if (mp) {  // the weights' points need their layers' float inputs: weights pass through meanwhile
        quant_calibrate_begin_fp32_weights(qc);
        mpq_calibrate_begin(qc);
    } else {
        quant_calibrate_begin(qc);
    }
    loader_start_epoch(ld, 0);
    Batch b;
    for (int i = 0; i < batches && loader_next(ld, &b); i++) {
        tape_reset(&t);
        model_forward(m, &t, &b.x);
    }
    quant_calibrate_end(qc);
    if (mp) {
        char err[512];
        printf("== multipoint: %.2f points per output channel on average, %d-bit points\n", qc->cfg.mp_points, (int)qc->cfg.w_bits);
        if (!mpq_calibrate_end(qc, qc->cfg.mp_points, err, sizeof err)) DQ_FATAL_FILE(x->prog, "--q_method=multipoint: %s", err);
    }
    arena_free(&a);
    loader_free(ld);
}

/* 2b. --q_alloc: the allocator measures the FP32 network on a fixed, seeded set of training
 * images (no augmentation) and picks each layer's weight bits; alloc.csv lists them. */
static void allocate(Experiment *x, const TrainConfig *cfg, QuantContext *qc, Model *m, QuantAlloc *a) {
    int n_img = quant_alloc_images(&qc->cfg) < x->train.n ? quant_alloc_images(&qc->cfg) : x->train.n;
    int bs = cfg->batch_size < n_img ? cfg->batch_size : n_img;
    if (quant_alloc_of(&qc->cfg) == ALLOC_OMPQ) bs = n_img;  // its Gram matrices need every image in one batch
    int nb = (n_img + bs - 1) / bs;
    LoaderConfig lc = {.batch_size = bs, .shuffle = true, .seed = (uint64_t)cfg->seed + 91, .subset = 0};
    Loader *ld = loader_new(&x->train, &lc);
    Arena store;
    arena_init(&store, 1 << 20, 0);
    AllocBatch *batches = dq_malloc((size_t)nb * sizeof *batches);
    loader_start_epoch(ld, 0);
    Batch b;
    int got = 0;
    while (got < nb && loader_next(ld, &b)) {  // copies: the loader reuses its buffers
        int k = b.n < n_img - got * bs ? b.n : n_img - got * bs;
        Tensor *t = tensor_new4(&store, k, b.x.shape[1], b.x.shape[2], b.x.shape[3]);
        memcpy(t->data, b.x.data, t->numel * sizeof(float));
        int *lab = arena_alloc(&store, (size_t)k * sizeof *lab);
        memcpy(lab, b.labels, (size_t)k * sizeof *lab);
        batches[got++] = (AllocBatch){.x = t, .labels = lab};
    }
    loader_free(ld);
    printf("== %s allocation of W%g on %d training images...\n", qc->cfg.alloc, qc->cfg.w_bits, n_img);
    fflush(stdout);
    char err[512];
    if (!quant_alloc_search(m, qc, batches, got, (uint64_t)cfg->seed, a, err, sizeof err))
        DQ_FATAL_FILE(x->prog, "--q_alloc=%s: %s", qc->cfg.alloc, err);
    quant_alloc_apply(qc, a);
    printf("   %.1f s; mean weight bits %.3f (budget %g); bits per layer:", a->seconds, a->mean_bits, qc->cfg.w_bits);
    for (int i = 0; i < a->n; i++) printf(" %d", a->bits[i]);
    printf("\n");
    if (a->kind == ALLOC_BSQ) printf("   bsq: strength %.4g chosen\n", a->param);
    if (a->kind == ALLOC_HAQ) printf("   haq: the best episode's allocation (held-out accuracy %.2f%%)\n", 100 * a->param);
    if (a->kind == ALLOC_HAWQ) {  // how far to trust the traces
        double rel[1024];
        int k = 0, negative = 0;
        for (int i = 0; i < a->n && k < 1024; i++)
            if (!qc->layers[i]->wq->pinned) {
                rel[k++] = a->score[i] != 0 ? fabs(a->score_se[i] / a->score[i]) : INFINITY;
                negative += a->score[i] < 0;
            }
        qsort(rel, (size_t)k, sizeof *rel, cmp_double);
        if (qc->cfg.hawq_samples > 1)
            printf("   Hessian traces: median standard error %.0f%% of the trace, %d of %d negative (counted as 0)%s\n",
                   k ? 100 * rel[k / 2] : 0.0, negative, k, k && rel[k / 2] > 0.25 ? "; more --hawq_samples would sharpen them" : "");
        else
            printf("   Hessian traces: one draw (no standard error), %d of %d negative (counted as 0)\n", negative, k);
    }
    if (!fileio_make_dirs(cfg->out_dir, err, sizeof err)) DQ_FATAL_FILE(cfg->out_dir, "%s", err);
    char path[4200];
    snprintf(path, sizeof path, "%s/alloc.csv", cfg->out_dir);
    Text csv;
    text_init(&csv);
    quant_alloc_write_csv(qc, a, &csv);
    if (!text_save(&csv, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    text_free(&csv);
    dq_free(batches);
    arena_free(&store);
}

/* 2'. A resumed run takes its allocation from its checkpoint instead of searching again (the
 * identity check that follows refuses a checkpoint of other options); false: no checkpoint. */
static bool restore_allocation(const TrainConfig *cfg, QuantContext *qc, QuantAlloc *a) {
    if (!cfg->resume) return false;
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", cfg->out_dir);
    Checkpoint ck;
    ckpt_init(&ck);
    if (!ckpt_load(&ck, path)) return false;
    const CkptSection *s = ckpt_find(&ck, "ALOC");
    if (!s) DQ_FATAL_FILE(path, "the checkpoint has no bit allocation, but --q_alloc=%s asks for one", qc->cfg.alloc);
    if (!quant_alloc_parse(qc, s->data, s->size, a, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    ckpt_free(&ck);
    quant_alloc_apply(qc, a);
    printf("== %s allocation of W%g taken from %s (no search): mean weight bits %.3f\n", qc->cfg.alloc, qc->cfg.w_bits, path,
           a->mean_bits);
    return true;
}

/* 4. Fine-tune with the quantizers; QuantRun drives DDQ's gates, levels and prices per step. */
static bool fine_tune(Experiment *x, TrainConfig *cfg, QuantContext *qc, Model *m, const QuantAlloc *alloc,
                      QPipelineResult *out) {
    LoaderConfig probe = {.batch_size = cfg->batch_size, .drop_last = true, .subset = cfg->subset};
    Loader *ld = loader_new(&x->train, &probe);
    long long steps = (long long)loader_batches(ld) * cfg->epochs;
    loader_free(ld);
    QuantRun run;
    quant_run_init(&run, qc, steps, cfg->lr);
    float f = qc->cfg.bn_freeze;
    QHooks qh = {.run = &run, .alloc = alloc, .net = m->net, .freeze_at = f > 0 ? steps - (long long)llround(f * (double)steps) : -1};
    if (qc->method == QUANT_DDQ) snprintf(qh.trace_path, sizeof qh.trace_path, "%s/ddq_trace.csv", cfg->out_dir);
    if (qc->cfg.flips) snprintf(qh.flips_path, sizeof qh.flips_path, "%s/flips.csv", cfg->out_dir);
    TrainHooks hooks = {.ctx = &qh, .start = hook_start, .after_step = hook_step, .save = hook_save, .load = hook_load};
    printf("== %s fine-tuning W%gA%g (%s)\n", quant_method_name(qc->method), qc->cfg.w_bits, qc->cfg.a_bits, cfg->out_dir);
    Text id;
    text_init(&id);
    identity_quant(x, &qc->cfg, &id);
    TrainResult qr;
    train_model(m, cfg, id.s, &x->train, &x->test, &hooks, x->prog, &qr);
    if (run.trace) fclose(run.trace);
    flips_close(qh.flips, 50);
    out->q_acc = qr.final_acc;
    epoch_stats(&qr, &out->q_img_s, &out->q_epoch_s);
    out->moved_w = run.moved_w, out->moved_a = run.moved_a;
    bool finished = qr.finished;
    text_free(&id);
    train_result_free(&qr);
    quant_run_free(&run);
    return finished;
}

/* 4'. Post-training (--q_ptq, multipoint): the calibrated model evaluated as it is. */
static bool post_training(Experiment *x, TrainConfig *cfg, QuantContext *qc, Model *m, QPipelineResult *out) {
    char err[512];
    if (!fileio_make_dirs(cfg->out_dir, err, sizeof err)) DQ_FATAL_FILE(cfg->out_dir, "%s", err);
    printf("== %s post-training W%gA%g (%s): no fine-tuning\n", quant_method_name(qc->method), qc->cfg.w_bits, qc->cfg.a_bits,
           cfg->out_dir);
    quant_set_bypass(qc, false);
    EvalResult ev = evaluate(m, &x->test, cfg->eval_batch, cfg->test_subset);
    out->q_acc = ev.acc;
    printf("post-training top-1 %.2f%% (FP32 %.2f%%)\n", 100 * ev.acc, 100 * out->fp32_acc);
    return true;
}

/* quant_summary.json: every option of the experiment and the comparison's numbers. */
static void write_json(const Experiment *x, const QPipelineResult *r, const char *dir) {
    Text t;
    text_init(&t);
    text_printf(&t, "{\n  \"experiment\": ");
    text_json_string(&t, x->prog);
    text_printf(&t, ",\n  \"model\": ");
    text_json_string(&t, r->model);
    text_printf(&t, ",\n  \"options\": ");
    options_write_json(&t, x->opts, x->n_opts, "  ");
    text_printf(&t, ",\n  \"fp32_acc\": %.6f,\n  \"quantized_acc\": %.6f,\n  \"mean_w_bits\": %.4f,\n"
                    "  \"mean_a_bits\": %.4f,\n  \"weight_kb\": %.2f,\n  \"fp32_weight_kb\": %.2f,\n"
                    "  \"fp32_epoch_s\": %.1f,\n  \"quantized_epoch_s\": %.1f,\n  \"bits_moved_w\": %.4f,\n"
                    "  \"bits_moved_a\": %.4f",
                r->fp32_acc, r->q_acc, r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb,
                r->summary.fp32_weight_kb, r->fp32_epoch_s, r->q_epoch_s, r->moved_w, r->moved_a);
    if (r->int_ok)
        text_printf(&t, ",\n  \"integer_acc\": %.6f,\n  \"integer_top1_agreement\": %.6f,\n  \"integer_codes_alone\": %.6f,\n"
                        "  \"integer_codes_chained\": %.6f,\n  \"dqm_bytes\": %zu,\n  \"dqm_weight_bytes\": %zu,\n"
                        "  \"dqm_table_bytes\": %zu,\n  \"integer_eval_img_s\": %.1f,\n  \"fake_quant_eval_img_s\": %.1f,\n"
                        "  \"fp32_eval_img_s\": %.1f",
                    r->int_acc, r->int_agree, r->int_codes_alone, r->int_codes_chain, r->dqm.file, r->dqm.weights,
                    r->dqm.tables, r->int_img_s, r->fq_img_s, r->fp32_eval_img_s);
    text_printf(&t, "\n}\n");
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/quant_summary.json", dir);
    if (!text_save(&t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    text_free(&t);
}

#define INT_AGREEMENT_IMAGES 1000  // code agreement runs the program twice and the fake-quant model once


/* 6. The integer model: built, written to model.dqm, read back, and what the file holds evaluated
 * by the integer engine beside the FP32 model (fp32) and the fake-quant one (m); the per-layer
 * code agreement goes into rows (layers.csv). */
static void integer_model(Experiment *x, const TrainConfig *cfg, QuantContext *qc, Model *m, Model *fp32,
                          QuantLayerInfo *rows, int n, bool onnx, QPipelineResult *out) {
    IntModel im;
    if (!intmodel_from(m, qc, &im, out->int_why, sizeof out->int_why)) {
        printf("\ninteger engine: this model has no integer form: %s\n", out->int_why);
        return;
    }
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/model.dqm", cfg->out_dir);
    if (!intmodel_save(&im, path, NULL, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    intmodel_free(&im);
    if (!intmodel_load(&im, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);  // what the file holds
    out->dqm = intmodel_size(&im);
    printf("\n== integer engine: %s (%.1f KB), %d ops, evaluated on %d threads, batch %d\n", path,
           out->dqm.file / 1024.0, im.n_ops, threads_count(), cfg->eval_batch);
    int n_test = cfg->test_subset > 0 && cfg->test_subset < x->test.n ? cfg->test_subset : x->test.n;
    int *pi = dq_malloc((size_t)n_test * sizeof(int)), *pq = dq_malloc((size_t)n_test * sizeof(int));
    EvalSpeed ie = int_evaluate(&im, &x->test, cfg->eval_batch, n_test, false, pi);
    EvalSpeed fq = float_evaluate(m, &x->test, cfg->eval_batch, n_test, pq);
    EvalSpeed fe = float_evaluate(fp32, &x->test, cfg->eval_batch, n_test, NULL);
    long long same = 0;
    for (int i = 0; i < n_test; i++) same += pi[i] == pq[i];
    dq_free(pi), dq_free(pq);
    IntAgreement ag;  // the codes, on the first INT_AGREEMENT_IMAGES test images
    intagreement_init(&ag, &im);
    int_agreement_on(&im, m, qc, &x->test, cfg->eval_batch, n_test < INT_AGREEMENT_IMAGES ? n_test : INT_AGREEMENT_IMAGES, &ag);
    long long alone = 0, chain = 0, total = 0;
    for (int i = 0; i < im.n_ops; i++) alone += ag.alone[i], chain += ag.chain[i], total += ag.total[i];
    for (int r = 0; r < n; r++)
        for (int i = 0; i < im.n_ops; i++)
            if (im.ops[i].kind == IOP_CONV && ag.total[i] && !strcmp(im.ops[i].name, rows[r].name))
                rows[r].int_alone = (double)ag.alone[i] / ag.total[i], rows[r].int_chain = (double)ag.chain[i] / ag.total[i];
    out->int_ok = true;
    out->int_acc = ie.acc, out->int_img_s = ie.img_s, out->fq_img_s = fq.img_s, out->fp32_eval_img_s = fe.img_s;
    out->int_agree = n_test ? (double)same / n_test : 0;
    out->int_codes_alone = total ? (double)alone / total : 0, out->int_codes_chain = total ? (double)chain / total : 0;
    intagreement_free(&ag);
    if (onnx) {  // --export_onnx: model.onnx, with the integer and fake-quant logits of test images
        snprintf(path, sizeof path, "%s/model.onnx", cfg->out_dir);
        export_onnx_checked(&im, m, &x->test, cfg->eval_batch, path, false);
    }
    intmodel_free(&im);
}

/* 5. Report: the per-layer table (printed and as files), FP32 against quantized, the JSON. */
static void report(Experiment *x, const TrainConfig *cfg, QuantContext *qc, Model *m, Model *fp32, bool onnx,
                   QPipelineResult *out) {
    QuantLayerInfo *rows = dq_calloc((size_t)qc->n_layers, sizeof *rows);
    int n = quant_report(qc, rows, qc->n_layers);
    const char *method = quant_method_name(qc->method);
    out->summary = quant_summary(rows, n, qc);
    integer_model(x, cfg, qc, m, fp32, rows, n, onnx, out);
    printf("\nper-layer quantization (%s):\n\n", method);
    quant_report_print(stdout, rows, n);
    quant_report_write_csv(rows, n, cfg->out_dir);
    char title[512];
    snprintf(title, sizeof title, "%s %s: mean W %.2f / A %.2f bits", m->name, method, out->summary.mean_w_bits,
             out->summary.mean_a_bits);
    quant_report_write_bits_svg(rows, n, cfg->out_dir, title);
    quant_report_write_levels_svg(rows, n, cfg->out_dir);
    printf("\n| | top-1 | mean W bits | mean A bits | weight KB | eval img/s |\n|---|---|---|---|---|---|\n");
    char fp32_speed[32] = "", fq_speed[32] = "";  // measured beside the integer engine only
    if (out->int_ok) snprintf(fp32_speed, sizeof fp32_speed, "%.0f", out->fp32_eval_img_s);
    if (out->int_ok) snprintf(fq_speed, sizeof fq_speed, "%.0f", out->fq_img_s);
    printf("| FP32 | %.2f%% | 32 | 32 | %.1f | %s |\n", 100 * out->fp32_acc, out->summary.fp32_weight_kb, fp32_speed);
    printf("| %s (fake-quant) | %.2f%% | %.2f | %.2f | %.1f | %s |\n", method, 100 * out->q_acc, out->summary.mean_w_bits,
           out->summary.mean_a_bits, out->summary.weight_kb, fq_speed);
    if (out->int_ok) {
        printf("| %s integer (model.dqm) | %.2f%% | %.2f | %.2f | %.1f (file) | %.0f |\n", method, 100 * out->int_acc,
               out->summary.mean_w_bits, out->summary.mean_a_bits, out->dqm.file / 1024.0, out->int_img_s);
        printf("\ninteger vs fake-quant: top-1 agrees on %.2f%% of the test images; activation codes agree %.4f%% "
               "layer by layer, %.4f%% chained (first %d test images; per layer in layers.csv)\n",
               100 * out->int_agree, 100 * out->int_codes_alone, 100 * out->int_codes_chain, INT_AGREEMENT_IMAGES);
        printf("model.dqm: %.1f KB = weight codes %.1f KB + weight tables %.1f KB + scales, thresholds and structure "
               "%.1f KB (the table's weight KB: %.1f); integer evaluation at %.2fx FP32's images/s\n",
               out->dqm.file / 1024.0, out->dqm.weights / 1024.0, out->dqm.tables / 1024.0,
               (out->dqm.file - out->dqm.weights - out->dqm.tables) / 1024.0, out->summary.weight_kb,
               out->fp32_eval_img_s > 0 ? out->int_img_s / out->fp32_eval_img_s : 0);
    }
    if (qc->method == QUANT_DDQ)
        printf("\nfinal budget guarantee moved %+.3f mean weight bits and %+.3f mean activation bits%s\n", out->moved_w,
               out->moved_a, fabs(out->moved_w) > 0.1 || fabs(out->moved_a) > 0.1 ? " (more than 0.1: the joint phase did not settle)" : "");
    write_json(x, out, cfg->out_dir);
    printf("files: %s/{log.csv,curves.svg,layers.csv,bits.svg,levels.svg,%s%squant_summary.json}\n", cfg->out_dir,
           qc->method == QUANT_DDQ ? "ddq_trace.csv," : "", out->int_ok ? "model.dqm," : "");
    dq_free(rows);
}

/* ------------------------------------------------------------------ the pipeline */
void qpipeline_check(const Experiment *x, const TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *q) {
    quant_config_check(q, p->q_defaults.method[0] ? &p->q_defaults : NULL, x->prog);
    char err[512];
    if ((!strcmp(cfg->half, "grads") || !strcmp(cfg->half, "all")) && quant_method_of(q) != QUANT_NONE)
        DQ_FATAL_FILE(x->prog, "--half=%s emulates half-precision training of the FP32 model: add --q_method=none", cfg->half);
    if (quant_method_of(q) != QUANT_NONE && !fileio_check_writable_dir(cfg->out_dir, err, sizeof err))
        DQ_FATAL_FILE(cfg->out_dir, "cannot write in this directory (--out_dir): %s", err);
}

void qpipeline_run(Experiment *x, TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *qcfg,
                   QBuildFn build, void *build_ctx, QPipelineResult *out) {
    memset(out, 0, sizeof *out);
    qpipeline_check(x, cfg, p, qcfg);  // before hours of FP32 training
    QuantMethod method = quant_method_of(qcfg);
    out->method = method;
    TrainConfig fc;
    train_fp32(x, cfg, p, build, build_ctx, out, &fc);
    if (p->export_onnx) export_onnx_fp32(x, cfg, &fc, build, build_ctx);
    if (method == QUANT_NONE) {
        out->q_acc = out->fp32_acc, out->finished = true;
        return;
    }
    QuantContext *qc = quant_context_new(qcfg);
    Model *m = quantized_from_fp32(x, cfg, &fc, qc, build, build_ctx);
    threads_init(cfg->threads);
    QuantAlloc alloc = {0};
    if (quant_alloc_of(qcfg) != ALLOC_NONE && !restore_allocation(cfg, qc, &alloc)) allocate(x, cfg, qc, m, &alloc);
    out->alloc_s = alloc.seconds;
    calibrate(x, m, qc, &x->train, qcfg->calib_batches, cfg->batch_size, cfg->seed);
    out->finished = qcfg->ptq || method == QUANT_MULTIPOINT ? post_training(x, cfg, qc, m, out)
                                                            : fine_tune(x, cfg, qc, m, alloc.bits ? &alloc : NULL, out);
    if (out->finished) {
        Model *fp32 = fp32_model(x, &fc, build, build_ctx);
        report(x, cfg, qc, m, fp32, p->export_onnx, out);
        model_free(fp32);
        if (qcfg->bn_recal > 0) {
            char csv[4200];
            snprintf(csv, sizeof csv, "%s/bn_recal.csv", cfg->out_dir);
            out->bn_recal_acc = bn_recalibrate(m, qc, &x->train, &x->test, cfg, qcfg->bn_recal, out->q_acc, csv);
        }
    }
    quant_alloc_free(&alloc);
    model_free(m);
    quant_context_free(qc);
}

void qpipeline_result_line(const Experiment *x, const QuantConfig *q, const QPipelineResult *r) {
    if (!r->finished) {  // a partial run has no result to report
        printf("no RESULT line: the fine-tuning stopped before its last epoch (--resume continues it)\n");
        return;
    }
    if (r->method == QUANT_NONE) {  // FP32 only: no quantized fields to report
        printf("RESULT exp=%s model=%s method=none fp32_acc=%.4f fp32_epoch_s=%.1f\n", x->prog, r->model,
               r->fp32_acc, r->fp32_epoch_s);
        fflush(stdout);
        return;
    }
    printf("RESULT exp=%s model=%s method=%s w_budget=%g a_budget=%g fp32_acc=%.4f q_acc=%.4f delta=%.4f "
           "w_bits=%.3f a_bits=%.3f weight_kb=%.1f fp32_weight_kb=%.1f fp32_epoch_s=%.1f q_epoch_s=%.1f "
           "step_ratio=%.3f moved_w=%.3f moved_a=%.3f",
           x->prog, r->model, quant_method_name(r->method), q->w_bits, q->a_bits, r->fp32_acc, r->q_acc,
           r->q_acc - r->fp32_acc, r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb,
           r->summary.fp32_weight_kb, r->fp32_epoch_s, r->q_epoch_s,
           r->fp32_img_s > 0 && r->q_img_s > 0 ? r->fp32_img_s / r->q_img_s : 0, r->moved_w, r->moved_a);
    if (strcmp(q->alloc, "none") != 0) {  // (a resumed run's allocation came from its checkpoint: no time to show)
        printf(" alloc=%s", q->alloc);
        if (r->alloc_s > 0) printf(" alloc_s=%.1f", r->alloc_s);
    }
    if (r->bn_recal_acc > 0) printf(" bn_recal_acc=%.4f", r->bn_recal_acc);
    if (r->int_ok)
        printf(" int_acc=%.4f int_top1_agree=%.4f int_codes_alone=%.6f int_codes_chained=%.6f dqm_kb=%.1f "
               "int_img_s=%.0f fp32_eval_img_s=%.0f int_speedup=%.2f",
               r->int_acc, r->int_agree, r->int_codes_alone, r->int_codes_chain, r->dqm.file / 1024.0, r->int_img_s,
               r->fp32_eval_img_s, r->fp32_eval_img_s > 0 ? r->int_img_s / r->fp32_eval_img_s : 0);
    printf("\n");
    fflush(stdout);
}
