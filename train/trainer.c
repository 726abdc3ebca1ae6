/* trainer.c — epochs, steps, evaluation, progress, logs, checkpoints, resume. */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/threads.h"
#include "data/loader.h"
#include "sgd.h"
#include "svg.h"
#include "text.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

long train_max_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int count_correct(const Tensor *logits, const int *labels) {
    int N = logits->shape[0], K = logits->shape[1], ok = 0;
    for (int n = 0; n < N; n++) ok += argmax(logits->data + (size_t)n * K, K) == labels[n];
    return ok;
}

EvalResult evaluate(Model *m, const Dataset *d, int batch_size, int subset) {
    LoaderConfig lc = {.batch_size = batch_size, .subset = subset, .prefetch = true};
    Loader *ld = loader_new(d, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    t.training = false;
    loader_start_epoch(ld, 0);
    Batch b;
    double loss = 0;
    long correct = 0, n = 0;
    while (loader_next(ld, &b)) {
        tape_reset(&t);
        Tensor *logits = model_forward(m, &t, &b.x);
        Tensor *L = op_softmax_cross_entropy(&t, logits, b.labels, 0);
        loss += (double)L->data[0] * b.n;
        correct += count_correct(logits, b.labels);
        n += b.n;
    }
    arena_free(&a);
    loader_free(ld);
    return (EvalResult){loss / (double)n, (double)correct / (double)n, (int)n};
}

/* ------------------------------------------------------------------ progress */
typedef struct Progress {
    bool tty, on;
    double start, last;
    int epoch, epochs, batches;
} Progress;

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void progress_update(Progress *p, int batch, double loss, double acc, long images) {
    double t = now();
    bool last = batch == p->batches;
    if (!p->on) return;
    if (p->tty ? (t - p->last < 0.2 && !last) : (t - p->last < 30 && !last)) return;
    p->last = t;
    double el = t - p->start, rate = images / (el > 0 ? el : 1e-9);
    double eta = el / batch * (p->batches - batch);
    char eta_s[32];
    fmt_time(eta_s, sizeof eta_s, eta);
    if (p->tty) {
        int width = 24, filled = width * batch / p->batches;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
        bar[width] = 0;
        fprintf(stderr, "\r  epoch %d/%d [%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s   ",
                p->epoch, p->epochs, bar, batch, p->batches, loss, 100 * acc, rate, eta_s);
        if (last) fprintf(stderr, "\r%120s\r", "");
    } else if (!last) {
        fprintf(stderr, "  epoch %d/%d batch %d/%d loss %.4f acc %.2f%% %.0f img/s ETA %s\n", p->epoch,
                p->epochs, batch, p->batches, loss, 100 * acc, rate, eta_s);
    }
    fflush(stderr);
}

/* ------------------------------------------------------------------ outputs */
static void path_in(char *buf, size_t n, const TrainConfig *c, const char *file) {
    if (snprintf(buf, n, "%s/%s", c->out_dir, file) >= (int)n) DQ_FATAL("--out_dir is too long");
}

static void save_text(const Text *t, const char *path) {
    char err[512];
    if (!text_save(t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
}

static void write_csv(const TrainConfig *c, const EpochLog *h, int n) {
    Text t;
    text_init(&t);
    text_printf(&t, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,img_per_s\n");
    for (int i = 0; i < n; i++)
        text_printf(&t, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.2f,%.1f\n", h[i].epoch, h[i].lr, h[i].train_loss,
                    h[i].train_acc, h[i].test_loss, h[i].test_acc, h[i].seconds, h[i].img_per_s);
    char path[4096];
    path_in(path, sizeof path, c, "log.csv");
    save_text(&t, path);
    text_free(&t);
}

static void write_svg(const TrainConfig *c, const char *title, const EpochLog *h, int n) {
    double *x = dq_malloc(5 * (size_t)(n + 1) * sizeof(double));
    double *trl = x + n + 1, *tel = trl + n + 1, *tra = tel + n + 1, *tea = tra + n + 1;
    for (int i = 0; i < n; i++) {
        x[i] = h[i].epoch, trl[i] = h[i].train_loss, tel[i] = h[i].test_loss;
        tra[i] = 100 * h[i].train_acc, tea[i] = 100 * h[i].test_acc;
    }
    Text t;
    text_init(&t);
    svg_begin(&t, 960, 420);
    svg_text(&t, 480, 22, "middle", 15, title);
    SvgSeries loss[2] = {{"train loss", x, trl, n, "#1f77b4", false}, {"test loss", x, tel, n, "#d62728", true}};
    SvgSeries acc[2] = {{"train acc %", x, tra, n, "#1f77b4", false}, {"test acc %", x, tea, n, "#d62728", true}};
    svg_line_chart(&t, (SvgAxes){70, 60, 370, 300, "loss", "epoch", "cross-entropy"}, loss, 2);
    svg_line_chart(&t, (SvgAxes){560, 60, 370, 300, "accuracy", "epoch", "top-1 %"}, acc, 2);
    svg_end(&t);
    char path[4096];
    path_in(path, sizeof path, c, "curves.svg");
    save_text(&t, path);
    text_free(&t);
    dq_free(x);
}

static void write_json(const TrainConfig *c, const Model *m, const TrainResult *r) {
    Text t;
    text_init(&t);
    Option opts[TRAIN_MAX_OPTIONS];
    TrainConfig copy = *c;  // the table points into a config; this one is only read
    int n = train_config_options(&copy, opts);
    text_printf(&t, "{\n  \"model\": ");
    text_json_string(&t, m->name);
    text_printf(&t, ",\n  \"params\": %zu,\n  \"macs_per_image\": %lld,\n  \"config\": {", m->n_params, m->macs);
    for (int i = 0; i < n; i++) {
        char v[OPT_STRLEN];
        options_value_str(&opts[i], v, sizeof v);
        text_printf(&t, "%s\n    ", i ? "," : "");
        text_json_string(&t, opts[i].key);
        text_printf(&t, ": ");
        text_json_string(&t, v);
    }
    text_printf(&t, "\n  },\n  \"epochs\": %d,\n  \"final_test_acc\": %.6f,\n  \"best_test_acc\": %.6f,\n"
                    "  \"final_test_loss\": %.6f,\n  \"train_seconds\": %.1f,\n  \"train_img_per_s\": %.1f,\n"
                    "  \"max_rss_mb\": %ld,\n  \"resumed_from_epoch\": %d\n}\n",
                r->n_epochs, r->final_acc, r->best_acc, r->final_loss, r->seconds, r->img_per_s,
                r->max_rss_mb, r->resumed_from);
    char path[4096];
    path_in(path, sizeof path, c, "summary.json");
    save_text(&t, path);
    text_free(&t);
}

/* ------------------------------------------------------------------ checkpoints */
#define HIST_FIELDS 8

static void save_checkpoint(const TrainConfig *c, Model *m, const Sgd *opt, const EpochLog *h,
                            int n, const TrainHooks *hooks) {
    Checkpoint ck;
    ckpt_init(&ck);
    ckpt_add_slab(&ck, &m->slab);
    ckpt_add(&ck, "VELO", opt->velocity, opt->numel * sizeof(float));
    uint64_t meta[2] = {(uint64_t)n, (uint64_t)c->seed};
    ckpt_add(&ck, "META", meta, sizeof meta);
    double *rows = dq_malloc((size_t)(n ? n : 1) * HIST_FIELDS * sizeof(double));
    for (int i = 0; i < n; i++) {
        double r[HIST_FIELDS] = {h[i].epoch, h[i].lr, h[i].train_loss, h[i].train_acc,
                                 h[i].test_loss, h[i].test_acc, h[i].seconds, h[i].img_per_s};
        memcpy(rows + (size_t)i * HIST_FIELDS, r, sizeof r);
    }
    ckpt_add(&ck, "HIST", rows, (size_t)n * HIST_FIELDS * sizeof(double));
    dq_free(rows);
    if (hooks && hooks->save) hooks->save(hooks->ctx, &ck);
    char path[4096];
    path_in(path, sizeof path, c, "checkpoint.bin");
    ckpt_save(&ck, path);
    ckpt_free(&ck);
}

/* Returns epochs done (0 when there is no checkpoint). */
static int load_checkpoint(const TrainConfig *c, Model *m, Sgd *opt, EpochLog *h, const TrainHooks *hooks) {
    char path[4096];
    path_in(path, sizeof path, c, "checkpoint.bin");
    Checkpoint ck;
    if (!ckpt_load(&ck, path)) return 0;
    ckpt_read_slab(&ck, &m->slab);
    memcpy(opt->velocity, ckpt_require(&ck, "VELO", opt->numel * sizeof(float))->data, opt->numel * sizeof(float));
    uint64_t meta[2];
    memcpy(meta, ckpt_require(&ck, "META", sizeof meta)->data, sizeof meta);
    if (meta[1] != (uint64_t)c->seed)
        DQ_FATAL_FILE(path, "written with --seed=%llu, this run has --seed=%d (use the same seed to resume)",
                      (unsigned long long)meta[1], c->seed);
    int n = (int)meta[0];
    if (n < 0 || n > c->epochs) DQ_FATAL_FILE(path, "holds %d epochs, this run has --epochs=%d", n, c->epochs);
    const CkptSection *hs = ckpt_require(&ck, "HIST", (size_t)n * HIST_FIELDS * sizeof(double));
    for (int i = 0; i < n; i++) {
        double r[HIST_FIELDS];
        memcpy(r, hs->data + (size_t)i * HIST_FIELDS * sizeof(double), sizeof r);
        h[i] = (EpochLog){(int)r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]};
    }
    if (hooks && hooks->load) hooks->load(hooks->ctx, &ck);
    ckpt_free(&ck);
    return n;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ the loop */
void train_model(Model *m, const TrainConfig *c, const Dataset *train, const Dataset *test,
                 const TrainHooks *hooks, const char *prog, TrainResult *out) {
    char err[512], ckpath[4096];
    if (!fileio_make_dirs(c->out_dir, err, sizeof err)) DQ_FATAL_FILE(c->out_dir, "%s", err);
    path_in(ckpath, sizeof ckpath, c, "checkpoint.bin");
    threads_init(c->threads);
    ScheduleKind kind;
    if (!schedule_parse(c->schedule, &kind)) DQ_FATAL_FILE(prog, "unknown schedule '%s'", c->schedule);
    Schedule sched = {kind, c->lr, c->lr_min, c->warmup, (float)c->epochs, c->step_epochs, c->step_gamma};
    Sgd opt;
    sgd_init(&opt, &(SgdConfig){c->momentum, c->weight_decay, c->nesterov, c->decay_all}, &m->slab);
    memset(out, 0, sizeof *out);
    out->history = dq_calloc((size_t)(c->epochs > 0 ? c->epochs : 1), sizeof(EpochLog));
    int start = c->resume ? load_checkpoint(c, m, &opt, out->history, hooks) : 0;
    out->resumed_from = start;
    if (c->resume && start > 0) printf("resumed from %s after epoch %d\n", ckpath, start);
    else if (c->resume) printf("no checkpoint in %s: starting from scratch\n", c->out_dir);

    LoaderConfig lc = {.batch_size = c->batch_size, .shuffle = true, .drop_last = true,
                       .crop_pad = c->crop_pad, .hflip = c->hflip, .subset = c->subset,
                       .seed = (uint64_t)c->seed, .prefetch = c->prefetch};
    Loader *ld = loader_new(train, &lc);
    Arena arena;
    arena_init(&arena, 1 << 26, 0);
    Tape t;
    tape_init(&t, &arena);
    int nb = loader_batches(ld);
    Progress p = {.tty = isatty(2), .on = c->progress, .epochs = c->epochs, .batches = nb};
    int end = c->stop_after > 0 && start + c->stop_after < c->epochs ? start + c->stop_after : c->epochs;
    for (int e = start; e < end; e++) {
        if (hooks && hooks->epoch_begin) hooks->epoch_begin(hooks->ctx, e);
        rng_seed(&m->dropout_rng, (uint64_t)c->seed, rng_stream(RNG_STREAM_DROPOUT, (uint64_t)e));
        loader_start_epoch(ld, e);
        p.epoch = e + 1, p.start = p.last = now();
        double loss_sum = 0, lr = 0;
        long correct = 0, seen = 0;
        Batch b;
        t.training = true;
        while (loader_next(ld, &b)) {
            lr = schedule_lr(&sched, e + (double)b.index / nb);
            tape_reset(&t);
            slab_zero_grad(&m->slab);
            Tensor *logits = model_forward(m, &t, &b.x);
            Tensor *L = op_softmax_cross_entropy(&t, logits, b.labels, c->label_smoothing);
            float loss = L->data[0];
            if (!isfinite(loss))
                DQ_FATAL_FILE(prog, "training diverged: the loss is %g at epoch %d, batch %d (lr %g)\n"
                              "hint: lower --lr; the last good checkpoint (%d epochs) is %s",
                              loss, e + 1, b.index + 1, lr, e, e > 0 ? ckpath : "(none yet)");
            tape_backward(&t, L);
            sgd_step(&opt, &m->slab, lr);
            if (hooks && hooks->after_step) hooks->after_step(hooks->ctx, e, b.index, lr);
            loss_sum += (double)loss * b.n;
            correct += count_correct(logits, b.labels);
            seen += b.n;
            progress_update(&p, b.index + 1, loss_sum / seen, (double)correct / seen, seen);
        }
        double secs = now() - p.start;
        if (!all_finite(m->slab.data, m->slab.numel))
            DQ_FATAL_FILE(prog, "training diverged: non-finite parameters after epoch %d\n"
                          "hint: lower --lr; the last good checkpoint (%d epochs) is %s", e + 1, e, ckpath);
        if (hooks && hooks->epoch_end) hooks->epoch_end(hooks->ctx, e);
        EvalResult ev = evaluate(m, test, c->eval_batch, c->test_subset);
        EpochLog *row = &out->history[e];
        *row = (EpochLog){e + 1, lr, loss_sum / seen, (double)correct / seen, ev.loss, ev.acc, secs, seen / secs};
        printf("epoch %3d/%d  lr %.4g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  %.0f img/s\n",
               e + 1, c->epochs, lr, row->train_loss, 100 * row->train_acc, row->test_loss,
               100 * row->test_acc, secs, row->img_per_s);
        fflush(stdout);
        out->seconds += secs;
        write_csv(c, out->history, e + 1);
        write_svg(c, m->name, out->history, e + 1);
        save_checkpoint(c, m, &opt, out->history, e + 1, hooks);
    }
    if (end < c->epochs) printf("stopped after epoch %d of %d (--stop_after); continue with --resume\n", end, c->epochs);
    out->n_epochs = end;
    for (int i = 0; i < end; i++) out->best_acc = fmax(out->best_acc, out->history[i].test_acc);
    if (end > 0) {
        out->final_acc = out->history[end - 1].test_acc;
        out->final_loss = out->history[end - 1].test_loss;
        double *rates = dq_malloc((size_t)end * sizeof(double));
        for (int i = 0; i < end; i++) rates[i] = out->history[i].img_per_s;
        qsort(rates, (size_t)end, sizeof *rates, cmp_double);
        out->img_per_s = rates[end / 2];
        dq_free(rates);
    }
    out->max_rss_mb = train_max_rss_mb();
    write_json(c, m, out);
    arena_free(&arena);
    loader_free(ld);
    sgd_free(&opt);
}

void train_result_free(TrainResult *r) {
    if (!r) return;
    dq_free(r->history);
    r->history = NULL;
}
