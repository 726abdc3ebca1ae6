/* qpipeline.c — FP32 → quantized fine-tuning → report (see qpipeline.h). */
#include "qpipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/threads.h"
#include "data/loader.h"
#include "nn/weighted.h"
#include "quant/control.h"
#include "train/svg.h"
#include "train/text.h"

int qpipeline_options(QPipelineConfig *p, QuantConfig *q, Option *o) {
    int n = 0;
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
    const char *ckpt_path;
} QHooks;

static void hook_step(void *ctx, int epoch, int batch, float lr) { quant_run_step(((QHooks *)ctx)->run, lr); }

static void hook_save(void *ctx, Checkpoint *c) {
    QBytes b = {0};
    quant_run_save(((QHooks *)ctx)->run, &b);
    ckpt_add(c, "QUNT", b.p, b.len);
    dq_free(b.p);
}

static void hook_load(void *ctx, const Checkpoint *c) {
    const CkptSection *s = ckpt_require(c, "QUNT", 0);
    QBytes b = {(uint8_t *)(uintptr_t)s->data, s->size, s->size, 0, c->path};
    quant_run_load(((QHooks *)ctx)->run, &b);
}

/* ------------------------------------------------------------------ calibration */
static void calibrate(Model *m, QuantContext *qc, const Dataset *train, int batches, int batch_size, int seed) {
    LoaderConfig lc = {.batch_size = batch_size, .shuffle = true, .seed = (uint64_t)seed + 77, .prefetch = true};
    Loader *ld = loader_new(train, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    t.training = false;  // the FP32 model's BatchNorm statistics
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

/* ------------------------------------------------------------------ pictures */
static void write_text(const Text *t, const char *dir, const char *file) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (!text_save(t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
}

static void write_csv(const QuantLayerInfo *rows, int n, const char *dir) {
    Text t;
    text_init(&t);
    text_printf(&t, "layer,kind,pinned,params,macs,w_bits,a_bits,w_level_lo,w_level_hi,distinct_w_levels,weight_bytes\n");
    for (int i = 0; i < n; i++) {
        const QuantLayerInfo *r = &rows[i];
        text_printf(&t, "%s,%s,%d,%lld,%lld,%d,%d,%.6g,%.6g,%d,%.1f\n", r->name, r->kind, r->pinned, r->params,
                    r->macs, r->w_bits, r->a_bits, r->w_lo, r->w_hi, r->w_levels, r->w_bytes);
    }
    write_text(&t, dir, "layers.csv");
    text_free(&t);
}

static void write_bits_svg(const QuantLayerInfo *rows, int n, const char *dir, const char *title) {
    double *w = dq_malloc(2 * (size_t)n * sizeof(double)), *a = w + n;
    const char **labels = dq_malloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) w[i] = rows[i].w_bits, a[i] = rows[i].a_bits, labels[i] = rows[i].name;
    Text t;
    text_init(&t);
    int width = 140 + 14 * n;
    svg_begin(&t, width, 640);
    svg_text(&t, width / 2.0, 22, "middle", 15, title);
    svg_bar_chart(&t, (SvgAxes){70, 50, width - 100, 180, "weight bits per layer", NULL, "bits", 0, 0, 0, 8.5}, w, n, NULL, 0, "#1f77b4");
    svg_bar_chart(&t, (SvgAxes){70, 290, width - 100, 180, "activation bits per layer", NULL, "bits", 0, 0, 0, 8.5}, a, n, labels, 1, "#ff7f0e");
    svg_end(&t);
    write_text(&t, dir, "bits.svg");
    text_free(&t);
    dq_free(w);
    dq_free(labels);
}

/* A grid of panels: each layer's FP32-valued weight histogram, its levels as red lines. */
static void write_levels_svg(const QuantLayerInfo *rows, int n, const char *dir) {
    int cols = 6, pw = 230, ph = 140, rowsn = (n + cols - 1) / cols;
    Text t;
    text_init(&t);
    svg_begin(&t, cols * pw + 20, rowsn * ph + 40);
    svg_text(&t, (cols * pw + 20) / 2.0, 22, "middle", 15, "weight histograms (grey) and quantization levels (red)");
    for (int i = 0; i < n; i++) {
        const QuantLayer *l = rows[i].layer;
        double x0 = 10 + (i % cols) * pw, y0 = 40 + (i / cols) * ph, w = pw - 20, h = ph - 40;
        float lv[256];
        int nl = l->wq->ops->levels(l->wq, lv);
        const float *data = l->weight->data;
        size_t nw = l->weight->numel;
        float lo = lv[0], hi = lv[nl - 1];
        for (size_t k = 0; k < nw; k++) lo = fminf(lo, data[k]), hi = fmaxf(hi, data[k]);
        if (!(hi > lo)) hi = lo + 1e-6f;
        int bins[60] = {0}, most = 1;
        for (size_t k = 0; k < nw; k++) {
            int b = (int)((data[k] - lo) / (hi - lo) * 59.999f);
            if (++bins[b] > most) most = bins[b];
        }
        text_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", x0, y0, w, h);
        double opacity = nl <= 16 ? 1.0 : 16.0 / nl;  // 256 lines at 8 bits would hide the histogram
        for (int k = 0; k < nl; k++) {
            double px = x0 + (lv[k] - lo) / (hi - lo) * w;
            text_printf(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"1\" stroke-opacity=\"%.2f\"/>\n",
                        px, y0, px, y0 + h, opacity);
        }
        for (int b = 0; b < 60; b++) {
            double bh = sqrt((double)bins[b] / most) * h;  // square root: tails stay visible
            text_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#888\" fill-opacity=\"0.55\"/>\n",
                        x0 + b * w / 60, y0 + h - bh, w / 60, bh);
        }
        char label[128];
        snprintf(label, sizeof label, "%s  %d bit", rows[i].name, rows[i].w_bits);
        svg_text(&t, x0 + w / 2, y0 + h + 14, "middle", 10, label);
    }
    svg_end(&t);
    write_text(&t, dir, "levels.svg");
    text_free(&t);
}

/* quant_summary.json: every option of the experiment and the comparison's numbers. */
static void write_json(const Experiment *x, const QPipelineResult *r, const char *dir) {
    Text t;
    text_init(&t);
    text_printf(&t, "{\n  \"experiment\": ");
    text_json_string(&t, x->prog);
    text_printf(&t, ",\n  \"model\": ");
    text_json_string(&t, r->model);
    text_printf(&t, ",\n  \"options\": {");
    for (int i = 0; i < x->n_opts; i++) {
        char v[OPT_STRLEN];
        options_value_str(&x->opts[i], v, sizeof v);
        text_printf(&t, "%s\n    ", i ? "," : "");
        text_json_string(&t, x->opts[i].key);
        text_printf(&t, ": ");
        text_json_string(&t, v);
    }
    text_printf(&t, "\n  },\n  \"fp32_acc\": %.6f,\n  \"quantized_acc\": %.6f,\n  \"mean_w_bits\": %.4f,\n"
                    "  \"mean_a_bits\": %.4f,\n  \"weight_kb\": %.2f,\n  \"fp32_weight_kb\": %.2f,\n"
                    "  \"fp32_epoch_s\": %.1f,\n  \"quantized_epoch_s\": %.1f,\n  \"bits_moved_w\": %.4f,\n"
                    "  \"bits_moved_a\": %.4f\n}\n",
                r->fp32_acc, r->q_acc, r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb,
                r->summary.fp32_weight_kb, r->fp32_epoch_s, r->q_epoch_s, r->moved_w, r->moved_a);
    write_text(&t, dir, "quant_summary.json");
    text_free(&t);
}

/* ------------------------------------------------------------------ the pipeline */
void qpipeline_run(Experiment *x, TrainConfig *cfg, const QPipelineConfig *p, const QuantConfig *qcfg,
                   QBuildFn build, void *build_ctx, QPipelineResult *out) {
    memset(out, 0, sizeof *out);
    quant_config_check(qcfg, x->prog);
    // 1. FP32 (trained, or reused by the trainer's resume when finished)
    TrainConfig fc = *cfg;
    if (p->fp32_seed) fc.seed = p->fp32_seed;
    Model *fm = build(build_ctx, &nn_float_factory, (uint64_t)fc.seed, &x->train);
    snprintf(out->model, sizeof out->model, "%s", fm->name);
    fc.epochs = p->fp32_epochs, fc.lr = p->fp32_lr, fc.warmup = p->fp32_warmup, fc.resume = true, fc.stop_after = 0;
    if (fc.warmup > fc.epochs) fc.warmup = (float)fc.epochs;
    char dir[1024];
    if (p->fp32_dir[0]) snprintf(dir, sizeof dir, "%s", p->fp32_dir);
    else snprintf(dir, sizeof dir, "runs/fp32-%s-%s-e%d-seed%d", fm->name, cfg->dataset, p->fp32_epochs, fc.seed);
    if (strlen(dir) >= sizeof fc.out_dir) DQ_FATAL_FILE(x->prog, "FP32 directory name too long: %s", dir);
    strcpy(fc.out_dir, dir);
    printf("== FP32 %s (%s)\n", fm->name, fc.out_dir);
    TrainResult fr;
    train_model(fm, &fc, &x->train, &x->test, NULL, x->prog, &fr);
    out->fp32_acc = fr.final_acc;
    epoch_stats(&fr, &out->fp32_img_s, &out->fp32_epoch_s);
    train_result_free(&fr);
    model_free(fm);
    if (!strcmp(qcfg->method, "none")) {
        out->q_acc = out->fp32_acc;
        return;
    }

    // 2. the quantized model with the FP32 parameters
    QuantContext *qc = quant_context_new(qcfg);
    LayerFactory qf = quant_factory(qc);
    Model *m = build(build_ctx, &qf, (uint64_t)cfg->seed, &x->train);
    char ckpath[4096];
    snprintf(ckpath, sizeof ckpath, "%s/checkpoint.bin", fc.out_dir);
    Checkpoint ck;
    if (!ckpt_load(&ck, ckpath)) DQ_FATAL_FILE(ckpath, "the FP32 checkpoint is missing");
    int copied = ckpt_read_slab_by_name(&ck, &m->slab);
    ckpt_free(&ck);
    printf("== %s: %d FP32 tensors copied into %d quantized layers\n", qcfg->method, copied, qc->n_layers);

    // 3. calibration, 4. fine-tuning
    threads_init(cfg->threads);
    calibrate(m, qc, &x->train, qcfg->calib_batches, cfg->batch_size, cfg->seed);
    LoaderConfig probe = {.batch_size = cfg->batch_size, .drop_last = true, .subset = cfg->subset};
    Loader *ld = loader_new(&x->train, &probe);
    long long steps = (long long)loader_batches(ld) * cfg->epochs;
    loader_free(ld);
    QuantRun run;
    quant_run_init(&run, qc, steps, cfg->lr);
    char trace[4096];
    char err[512];
    if (!fileio_make_dirs(cfg->out_dir, err, sizeof err)) DQ_FATAL_FILE(cfg->out_dir, "%s", err);
    snprintf(trace, sizeof trace, "%s/ddq_trace.csv", cfg->out_dir);
    if (!strcmp(qcfg->method, "ddq")) {
        run.trace = fopen(trace, cfg->resume ? "a" : "w");
        if (!run.trace) DQ_FATAL_FILE(trace, "cannot write");
        if (!cfg->resume) fprintf(run.trace, "step,phase,lambda_w,lambda_a,mean_w_bits,mean_a_bits,target_w,target_a\n");
    }
    QHooks qh = {&run, ckpath};
    TrainHooks hooks = {.ctx = &qh, .after_step = hook_step, .save = hook_save, .load = hook_load};
    printf("== %s fine-tuning W%gA%g (%s)\n", qcfg->method, qcfg->w_bits, qcfg->a_bits, cfg->out_dir);
    TrainResult qr;
    train_model(m, cfg, &x->train, &x->test, &hooks, x->prog, &qr);
    if (run.trace) fclose(run.trace);
    out->q_acc = qr.final_acc;
    epoch_stats(&qr, &out->q_img_s, &out->q_epoch_s);
    out->moved_w = run.moved_w, out->moved_a = run.moved_a;
    train_result_free(&qr);

    // 5. report
    QuantLayerInfo *rows = dq_calloc((size_t)qc->n_layers, sizeof *rows);
    int n = quant_report(qc, rows, qc->n_layers);
    out->summary = quant_summary(rows, n, qc);
    printf("\nper-layer quantization (%s):\n\n", qcfg->method);
    quant_report_print(stdout, rows, n);
    write_csv(rows, n, cfg->out_dir);
    char title[512];
    snprintf(title, sizeof title, "%s %s: mean W %.2f / A %.2f bits", m->name, qcfg->method, out->summary.mean_w_bits,
             out->summary.mean_a_bits);
    write_bits_svg(rows, n, cfg->out_dir, title);
    write_levels_svg(rows, n, cfg->out_dir);
    printf("\n| | top-1 | mean W bits | mean A bits | weight KB |\n|---|---|---|---|---|\n");
    printf("| FP32 | %.2f%% | 32 | 32 | %.1f |\n", 100 * out->fp32_acc, out->summary.fp32_weight_kb);
    printf("| %s | %.2f%% | %.2f | %.2f | %.1f |\n", qcfg->method, 100 * out->q_acc, out->summary.mean_w_bits,
           out->summary.mean_a_bits, out->summary.weight_kb);
    if (!strcmp(qcfg->method, "ddq"))
        printf("\nfinal budget guarantee moved %+.3f mean weight bits and %+.3f mean activation bits%s\n", out->moved_w,
               out->moved_a, fabs(out->moved_w) > 0.1 || fabs(out->moved_a) > 0.1 ? " (more than 0.1: the joint phase did not settle)" : "");
    write_json(x, out, cfg->out_dir);
    printf("files: %s/{log.csv,curves.svg,layers.csv,bits.svg,levels.svg,ddq_trace.csv,quant_summary.json}\n", cfg->out_dir);
    dq_free(rows);
    model_free(m);
    quant_context_free(qc);
}

void qpipeline_result_line(const Experiment *x, const QuantConfig *q, const QPipelineResult *r) {
    if (!strcmp(q->method, "none")) {  // FP32 only: no quantized fields to report
        printf("RESULT exp=%s model=%s method=none fp32_acc=%.4f fp32_epoch_s=%.1f\n", x->prog, r->model,
               r->fp32_acc, r->fp32_epoch_s);
        fflush(stdout);
        return;
    }
    printf("RESULT exp=%s model=%s method=%s w_budget=%g a_budget=%g fp32_acc=%.4f q_acc=%.4f delta=%.4f "
           "w_bits=%.3f a_bits=%.3f weight_kb=%.1f fp32_weight_kb=%.1f fp32_epoch_s=%.1f q_epoch_s=%.1f "
           "step_ratio=%.3f moved_w=%.3f moved_a=%.3f\n",
           x->prog, r->model, q->method, q->w_bits, q->a_bits, r->fp32_acc, r->q_acc, r->q_acc - r->fp32_acc,
           r->summary.mean_w_bits, r->summary.mean_a_bits, r->summary.weight_kb, r->summary.fp32_weight_kb,
           r->fp32_epoch_s, r->q_epoch_s, r->fp32_img_s > 0 && r->q_img_s > 0 ? r->fp32_img_s / r->q_img_s : 0,
           r->moved_w, r->moved_a);
    fflush(stdout);
}
