/* qpipeline.c — FP32 → quantized fine-tuning → report (see qpipeline.h). */
#include "qpipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/threads.h"
#include "data/loader.h"
#include "nn/weighted.h"
#include "quant/control.h"
#include "core/text.h"
#include "train/runid.h"

int qpipeline_options(QPipelineConfig *p, QuantConfig *q, Option *o) {
    int n = 0;
    p->q_defaults = *q;
    o[n++] = opt_int("fp32_epochs", &p->fp32_epochs, "FP32 training epochs", 1, 100000);
    o[n++] = opt_float("fp32_lr", &p->fp32_lr, "FP32 peak learning rate", 0, 100);
    o[n++] = opt_float("fp32_warmup", &p->fp32_warmup, "FP32 warm-up epochs", 0, 100000);
    o[n++] = opt_role(opt_string("fp32_dir", p->fp32_dir, "FP32 run directory, reused when finished (empty: derived)"), OPT_INCIDENTAL);
    o[n++] = opt_int("fp32_seed", &p->fp32_seed, "seed of the FP32 model (0: --seed); fine-tune seeds share one FP32 model", 0, 1 << 30);
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
} QHooks;

static void hook_step(void *ctx, int epoch, int batch, float lr) { quant_run_step(((QHooks *)ctx)->run, lr); }

static void hook_save(void *ctx, Checkpoint *c) {
    QBytes b = {0};
    quant_run_save(((QHooks *)ctx)->run, &b);
    ckpt_add(c, "QUNT", b.p, b.len);
    dq_free(b.p);
}

static bool hook_load(void *ctx, const Checkpoint *c, char *err, size_t es) {
    const CkptSection *s;
    if (!ckpt_section(c, "QUNT", 0, &s, err, es)) return false;
    QBytes b = qbytes_view(s->data, s->size);
    return quant_run_load(((QHooks *)ctx)->run, &b, err, es);
}

/* ddq_trace.csv starts as exactly the rows the run holds (none when fresh, the checkpoint's when
 * resumed: a killed run's extra rows go), then grows a flushed row per step. */
static void hook_start(void *ctx, bool resumed) {
    QHooks *h = ctx;
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
/* The extra identity of a phase: the experiment's own options (beyond the shared training ones)
 * that decide it, without the keys starting with one of skip. */
static void identity_extra(const Experiment *x, const char *const *skip, Text *t) {
    runid_append(t, x->opts + x->n_train_opts, x->n_opts - x->n_train_opts, skip);
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
    else snprintf(dir, sizeof dir, "runs/fp32-%s-%s-e%d-seed%d", fm->name, cfg->dataset, p->fp32_epochs, fc->seed);
    if (strlen(dir) >= sizeof fc->out_dir) DQ_FATAL_FILE(x->prog, "FP32 directory name too long: %s", dir);
    strcpy(fc->out_dir, dir);
    printf("== FP32 %s (%s)\n", fm->name, fc->out_dir);
    static const char *const not_fp32[] = {"q_", "ddq_", "fp32_", NULL};  // the fp32_* values are in fc
    Text id;
    text_init(&id);
    identity_extra(x, not_fp32, &id);
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

/* 3. Calibrate the activation quantizers on a few training batches (evaluation mode: the FP32
 * model's BatchNorm statistics). */
static void calibrate(Model *m, QuantContext *qc, const Dataset *train, int batches, int batch_size, int seed) {
    LoaderConfig lc = {.batch_size = batch_size, .shuffle = true, .seed = (uint64_t)seed + 77, .prefetch = true};
    Loader *ld = loader_new(train, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    t.training = false;
    quant_calibrate_begin(qc);
    loader_start_epoch(ld, 0);
    Batch b;
    for (int i = 0; i < batches && loader_next(ld, &b); i++) {
        tape_reset(&t);
        model_forward(m, &t, &b.x);
    }
    quant_calibrate_end(qc);
    arena_free(&a);
    loader_free(ld);
}

/* 4. Fine-tune with the quantizers; QuantRun drives DDQ's gates, levels and prices per step. */
static bool fine_tune(Experiment *x, TrainConfig *cfg, QuantContext *qc, Model *m,
                      QPipelineResult *out) {
    LoaderConfig probe = {.batch_size = cfg->batch_size, .drop_last = true, .subset = cfg->subset};
    Loader *ld = loader_new(&x->train, &probe);
    long long steps = (long long)loader_batches(ld) * cfg->epochs;
    loader_free(ld);
    QuantRun run;
    quant_run_init(&run, qc, steps, cfg->lr);
    QHooks qh = {.run = &run};
    if (qc->method == QUANT_DDQ) snprintf(qh.trace_path, sizeof qh.trace_path, "%s/ddq_trace.csv", cfg->out_dir);
    TrainHooks hooks = {.ctx = &qh, .start = hook_start, .after_step = hook_step, .save = hook_save, .load = hook_load};
    printf("== %s fine-tuning W%gA%g (%s)\n", quant_method_name(qc->method), qc->cfg.w_bits, qc->cfg.a_bits, cfg->out_dir);
    Text id;
    text_init(&id);
    identity_extra(x, NULL, &id);
    TrainResult qr;
    train_model(m, cfg, id.s, &x->train, &x->test, &hooks, x->prog, &qr);
    if (run.trace) fclose(run.trace);
    out->q_acc = qr.final_acc;
    epoch_stats(&qr, &out->q_img_s, &out->q_epoch_s);
    out->moved_w = run.moved_w, out->moved_a = run.moved_a;
    bool finished = qr.finished;
    text_free(&id);
    train_result_free(&qr);
    quant_run_free(&run);
    return finished;
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
                    "  \"bits_moved_a\": %.4f\n}\n",
                r->fp32_acc, r->q_acc, r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb,
                r->summary.fp32_weight_kb, r->fp32_epoch_s, r->q_epoch_s, r->moved_w, r->moved_a);
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/quant_summary.json", dir);
    if (!text_save(&t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    text_free(&t);
}

/* 5. Report: the per-layer table (printed and as files), FP32 against quantized, the JSON. */
static void report(const Experiment *x, const TrainConfig *cfg, const QuantContext *qc, const Model *m, QPipelineResult *out) {
    QuantLayerInfo *rows = dq_calloc((size_t)qc->n_layers, sizeof *rows);
    int n = quant_report(qc, rows, qc->n_layers);
    const char *method = quant_method_name(qc->method);
    out->summary = quant_summary(rows, n, qc);
    printf("\nper-layer quantization (%s):\n\n", method);
    quant_report_print(stdout, rows, n);
    quant_report_write_csv(rows, n, cfg->out_dir);
    char title[512];
    snprintf(title, sizeof title, "%s %s: mean W %.2f / A %.2f bits", m->name, method, out->summary.mean_w_bits,
             out->summary.mean_a_bits);
    quant_report_write_bits_svg(rows, n, cfg->out_dir, title);
    quant_report_write_levels_svg(rows, n, cfg->out_dir);
    printf("\n| | top-1 | mean W bits | mean A bits | weight KB |\n|---|---|---|---|---|\n");
    printf("| FP32 | %.2f%% | 32 | 32 | %.1f |\n", 100 * out->fp32_acc, out->summary.fp32_weight_kb);
    printf("| %s | %.2f%% | %.2f | %.2f | %.1f |\n", method, 100 * out->q_acc, out->summary.mean_w_bits,
           out->summary.mean_a_bits, out->summary.weight_kb);
    if (qc->method == QUANT_DDQ)
        printf("\nfinal budget guarantee moved %+.3f mean weight bits and %+.3f mean activation bits%s\n", out->moved_w,
               out->moved_a, fabs(out->moved_w) > 0.1 || fabs(out->moved_a) > 0.1 ? " (more than 0.1: the joint phase did not settle)" : "");
    write_json(x, out, cfg->out_dir);
    printf("files: %s/{log.csv,curves.svg,layers.csv,bits.svg,levels.svg,%squant_summary.json}\n", cfg->out_dir,
           qc->method == QUANT_DDQ ? "ddq_trace.csv," : "");
    dq_free(rows);
}

/* ------------------------------------------------------------------ the pipeline */
void qpipeline_check(const Experiment *x, const TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *q) {
    quant_config_check(q, p->q_defaults.method[0] ? &p->q_defaults : NULL, x->prog);
    char err[512];
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
    if (method == QUANT_NONE) {
        out->q_acc = out->fp32_acc, out->finished = true;
        return;
    }
    QuantContext *qc = quant_context_new(qcfg);
    Model *m = quantized_from_fp32(x, cfg, &fc, qc, build, build_ctx);
    threads_init(cfg->threads);
    calibrate(m, qc, &x->train, qcfg->calib_batches, cfg->batch_size, cfg->seed);
    out->finished = fine_tune(x, cfg, qc, m, out);
    if (out->finished) report(x, cfg, qc, m, out);
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
           "step_ratio=%.3f moved_w=%.3f moved_a=%.3f\n",
           x->prog, r->model, quant_method_name(r->method), q->w_bits, q->a_bits, r->fp32_acc, r->q_acc,
           r->q_acc - r->fp32_acc, r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb,
           r->summary.fp32_weight_kb, r->fp32_epoch_s, r->q_epoch_s,
           r->fp32_img_s > 0 && r->q_img_s > 0 ? r->fp32_img_s / r->q_img_s : 0, r->moved_w, r->moved_a);
    fflush(stdout);
}
