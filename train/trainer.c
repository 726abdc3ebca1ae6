/* trainer.c — epochs, steps, evaluation, progress, logs, checkpoints, resume. */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/text.h"
#include "core/threads.h"
#include "data/loader.h"
#include "logs.h"
#include "mixed.h"
#include "runid.h"
#include "sgd.h"

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

/* Evaluation, its activations rounded to half precision when mx asks for it (--half=all). */
static EvalResult evaluate_mixed(Model *m, const Dataset *d, int batch_size, int subset, Mixed *mx) {
    LoaderConfig lc = {.batch_size = batch_size, .subset = subset, .prefetch = true};
    Loader *ld = loader_new(d, &lc);
    Arena a;
    arena_init(&a, 1 << 24, 0);
    Tape t;
    tape_init(&t, &a);
    if (mx) mixed_attach_eval(mx, &t);
    t.no_grad = true, t.compact = true;
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
    return (EvalResult){.loss = loss / (double)n, .acc = (double)correct / (double)n, .n = (int)n};
}

EvalResult evaluate(Model *m, const Dataset *d, int batch_size, int subset) { return evaluate_mixed(m, d, batch_size, subset, NULL); }

/* ------------------------------------------------------------------ progress */
typedef struct Progress {
    bool tty, on;
    double start, last;
    int epoch, epochs, batches;
    int first;            // the batch this process started the epoch at (a resumed epoch: > 0)
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
    double eta = el / (batch - p->first > 0 ? batch - p->first : 1) * (p->batches - batch);
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

/* ------------------------------------------------------------------ checkpoints */
/* Everything a resume needs, at the position (epoch e finished epochs, batch b of the next). */
typedef struct Position {
    int epoch, batch;
    double loss_sum, seconds;
    long long correct, seen;
} Position;

static void save_checkpoint(const TrainConfig *c, Model *m, const Sgd *opt, const Mixed *mx, const EpochLog *h,
                            const Position *p, int batches, const char *identity, const TrainHooks *hooks) {
    Checkpoint ck;
    ckpt_init(&ck);
    ckpt_add_slab(&ck, &m->slab);
    RunState s = {.epoch = p->epoch, .batch = p->batch, .batches = batches, .seed = (uint64_t)c->seed,
                  .loss_sum = p->loss_sum, .correct = p->correct, .seen = p->seen, .seconds = p->seconds,
                  .dropout = m->dropout_rng, .history = (EpochLog *)(uintptr_t)h};
    run_state_save(&ck, &s, identity, opt->velocity, opt->numel);
    mixed_save(mx, &ck);
    if (hooks && hooks->save) hooks->save(hooks->ctx, &ck);
    char path[4096];
    logs_path(path, sizeof path, c, "checkpoint.bin");
    ckpt_save(&ck, path);
    ckpt_free(&ck);
}

/* The identity of this run: the shared options that define it, the resolved thread count, then
 * the caller's (the model's, the method's). */
static void identity_of(const TrainConfig *c, const char *extra, Text *t) {
    TrainConfig copy = *c;
    Option o[TRAIN_MAX_OPTIONS];
    int n = train_config_options(&copy, o);
    copy.threads = threads_count();  // 0 means "all cores": the count in effect is what decides the bits
    runid_append(t, o, n, NULL);
    if (extra) text_printf(t, "%s", extra);
}

/* Load the checkpoint if there is one; returns whether it did. Fatal on any problem with it. */
static bool load_checkpoint(const TrainConfig *c, Model *m, Sgd *opt, Mixed *mx, EpochLog *h, Position *p,
                            int batches, const char *identity, const TrainHooks *hooks) {
    char path[4096], err[2048];
    logs_path(path, sizeof path, c, "checkpoint.bin");
    Checkpoint ck;
    if (!ckpt_load(&ck, path)) return false;
    RunState s;
    if (!run_state_parse(&ck, opt->numel, &s, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    if (s.seed != (uint64_t)c->seed)
        DQ_FATAL_FILE(path, "written with --seed=%llu, this run has --seed=%d (use the same seed to resume)",
                      (unsigned long long)s.seed, c->seed);
    bool continues = s.epoch < c->epochs;
    if (s.identity) {
        RunIdCheck how = {.continues = continues, .extend = c->extend};
        if (!runid_compare(s.identity, s.identity_len, identity, &how, err, sizeof err))
            DQ_FATAL_FILE(path, "cannot resume: this run's options differ from the checkpoint's: %s\n"
                          "hint: resume with the checkpoint's options (--extend allows more --epochs), or use another --out_dir",
                          err);
    } else {
        printf("note: %s predates stored run options; they are not checked\n", path);
    }
    if (s.epoch > c->epochs)
        DQ_FATAL_FILE(path, "holds %d epochs, this run has --epochs=%d", s.epoch, c->epochs);
    if (s.batches && s.batches != batches)
        DQ_FATAL_FILE(path, "written with %d batches per epoch, this run has %d (another dataset or subset?)", s.batches, batches);
    if (s.seen != (long long)s.batch * c->batch_size)
        DQ_FATAL_FILE(path, "run state: %lld examples seen after %d batches of %d", s.seen, s.batch, c->batch_size);
    if (s.batch > 0 && s.epoch >= c->epochs) DQ_FATAL_FILE(path, "run state: a partial epoch after the last one");
    int copied;
    if (!ckpt_read_params(&ck, &m->slab, false, &copied, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    memcpy(opt->velocity, ckpt_find(&ck, "VELO")->data, opt->numel * sizeof(float));
    memcpy(h, s.history, (size_t)s.epoch * sizeof *h);
    *p = (Position){.epoch = s.epoch, .batch = s.batch, .loss_sum = s.loss_sum, .seconds = s.seconds,
                    .correct = s.correct, .seen = s.seen};
    if (s.batch > 0) m->dropout_rng = s.dropout;  // mid-epoch: the stream where it stopped
    if (!mixed_load(mx, &ck, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    if (hooks && hooks->load && !hooks->load(hooks->ctx, &ck, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    run_state_free(&s);
    ckpt_free(&ck);
    return true;
}

/* The first parameter holding a NaN or an infinity, or NULL when all are finite. */
static const char *first_non_finite(const ParamSlab *s) {
    for (int p = 0; p < s->n_params; p++) {
        const Tensor *t = s->params[p].tensor;
        for (size_t i = 0; i < t->numel; i++)
            if (!isfinite(t->data[i])) return s->params[p].name;
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* half.csv: this epoch's underflow and overflow per tape position, appended (a fresh file at epoch 1). */
static void write_half_csv(const TrainConfig *c, Mixed *mx, int epoch) {
    char path[4096], err[512];
    logs_path(path, sizeof path, c, "half.csv");
    Text t;
    text_init(&t);
    size_t n = 0;
    uint8_t *old = epoch > 1 ? fileio_read_all(path, &n, err, sizeof err) : NULL;  // (a lost file restarts)
    if (old) text_printf(&t, "%.*s", (int)n, (const char *)old);
    dq_free(old);
    mixed_epoch_csv(mx, epoch, t.len == 0, &t);
    if (!text_save(&t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    text_free(&t);
}

/* ------------------------------------------------------------------ signals */
/* Ctrl-C / SIGTERM: the step in progress finishes, a checkpoint is written, train_model returns. */
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) { stop_signal = sig; }

/* Fatal before any work unless dir exists (made) and a file can be created in it. */
static void check_writable(const char *dir) {
    char err[512];
    if (!fileio_check_writable_dir(dir, err, sizeof err)) DQ_FATAL_FILE(dir, "cannot write in this directory (--out_dir): %s", err);
}

/* ------------------------------------------------------------------ the loop */
void train_model(Model *m, const TrainConfig *c, const char *identity_extra, const Dataset *train, const Dataset *test,
                 const TrainHooks *hooks, const char *prog, TrainResult *out) {
    char ckpath[4096];
    check_writable(c->out_dir);
    logs_path(ckpath, sizeof ckpath, c, "checkpoint.bin");
    threads_init(c->threads);
    ScheduleKind kind;
    if (!schedule_parse(c->schedule, &kind)) DQ_FATAL_FILE(prog, "unknown schedule '%s'", c->schedule);
    Schedule sched = {.kind = kind, .lr = c->lr, .lr_min = c->lr_min, .warmup = c->warmup, .epochs = (float)c->epochs,
                      .step_epochs = c->step_epochs, .gamma = c->step_gamma};
    Sgd opt;
    sgd_init(&opt, &(SgdConfig){.momentum = c->momentum, .weight_decay = c->weight_decay, .nesterov = c->nesterov,
                                .decay_all = c->decay_all}, &m->slab);
    LoaderConfig lc = {.batch_size = c->batch_size, .shuffle = true, .drop_last = true,
                       .crop_pad = c->crop_pad, .hflip = c->hflip, .subset = c->subset,
                       .seed = (uint64_t)c->seed, .prefetch = c->prefetch};
    Loader *ld = loader_new(train, &lc);
    int nb = loader_batches(ld);
    Text identity;
    text_init(&identity);
    identity_of(c, identity_extra, &identity);

    memset(out, 0, sizeof *out);
    out->history = dq_calloc((size_t)c->epochs, sizeof(EpochLog));
    Position pos = {0};
    Mixed *mx = dq_malloc(sizeof *mx);  // half-precision emulation and its loss scale (off by default)
    mixed_init(mx, c);
    bool resumed = c->resume && load_checkpoint(c, m, &opt, mx, out->history, &pos, nb, identity.s, hooks);
    out->resumed_from = pos.epoch;
    if (resumed) printf("resumed from %s after epoch %d%s\n", ckpath, pos.epoch, pos.batch ? ", mid-epoch" : "");
    else if (c->resume) printf("no checkpoint in %s: starting from scratch\n", c->out_dir);
    if (resumed && pos.batch) printf("  (epoch %d continues at batch %d of %d)\n", pos.epoch + 1, pos.batch + 1, nb);
    if (hooks && hooks->start) hooks->start(hooks->ctx, resumed);

    Arena arena;
    arena_init(&arena, 1 << 26, 0);
    Tape t;
    tape_init(&t, &arena);
    mixed_attach(mx, &t);
    Progress p = {.tty = isatty(2), .on = c->progress, .epochs = c->epochs, .batches = nb};
    int start = pos.epoch;
    int end = c->stop_after > 0 && start + c->stop_after < c->epochs ? start + c->stop_after : c->epochs;
    stop_signal = 0;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    bool stopped = false;
    long long steps_here = 0;  // steps of this process (--stop_after_steps)
    for (int e = start; e < end && !stopped; e++) {
        if (pos.batch == 0) rng_seed(&m->dropout_rng, (uint64_t)c->seed, rng_stream(RNG_STREAM_DROPOUT, (uint64_t)e));
        loader_start_epoch_at(ld, e, pos.batch);
        p.epoch = e + 1, p.start = p.last = now(), p.first = pos.batch;
        double lr = 0, t0 = now(), secs_before = pos.seconds;
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
                              "hint: lower --lr; the last good checkpoint is %s",
                              loss, e + 1, b.index + 1, lr, e > 0 || c->checkpoint_every ? ckpath : "(none yet)");
            mixed_backward(mx, &t, L);
            if (mixed_unscale(mx, &m->slab)) sgd_step(&opt, &m->slab, lr);  // (skipped: a gradient overflowed in half)
            if (hooks && hooks->after_step) hooks->after_step(hooks->ctx, e, b.index, lr);
            pos.loss_sum += (double)loss * b.n;
            pos.correct += count_correct(logits, b.labels);
            pos.seen += b.n;
            pos.batch = b.index + 1;
            progress_update(&p, b.index + 1, pos.loss_sum / pos.seen, (double)pos.correct / pos.seen,
                            pos.seen - (long long)p.first * c->batch_size);
            long long step = (long long)e * nb + pos.batch;
            bool stop = stop_signal || (c->stop_after_steps > 0 && ++steps_here == c->stop_after_steps);
            bool periodic = c->checkpoint_every > 0 && step % c->checkpoint_every == 0;
            if (pos.batch < nb && (stop || periodic)) {
                const char *bad = first_non_finite(&m->slab);
                if (bad)
                    DQ_FATAL_FILE(prog, "training diverged: non-finite parameters (first: %s) at epoch %d, batch %d\n"
                                  "hint: lower --lr; the last good checkpoint is %s", bad, e + 1, pos.batch, ckpath);
                pos.seconds = secs_before + (now() - t0);
                save_checkpoint(c, m, &opt, mx, out->history, &pos, nb, identity.s, hooks);
            }
            if (stop && pos.batch < nb) {
                stopped = true;
                break;
            }
            if (stop) stopped = true;  // the epoch is complete: finish it, checkpoint below
        }
        if (pos.batch < nb) break;  // stopped mid-epoch (checkpoint written above)
        double secs = secs_before + (now() - t0);
        const char *bad = first_non_finite(&m->slab);
        if (bad)
            DQ_FATAL_FILE(prog, "training diverged: non-finite parameters (first: %s) after epoch %d\n"
                          "hint: lower --lr; the last good checkpoint (%d epochs) is %s", bad, e + 1, e, ckpath);
        EvalResult ev = evaluate_mixed(m, test, c->eval_batch, c->test_subset, mx);
        EpochLog *row = &out->history[e];
        *row = (EpochLog){.epoch = e + 1, .lr = lr, .train_loss = pos.loss_sum / pos.seen,
                          .train_acc = (double)pos.correct / pos.seen, .test_loss = ev.loss, .test_acc = ev.acc,
                          .seconds = secs, .img_per_s = pos.seen / secs};
        printf("epoch %3d/%d  lr %.4g  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1fs  %.0f img/s\n",
               e + 1, c->epochs, lr, row->train_loss, 100 * row->train_acc, row->test_loss,
               100 * row->test_acc, secs, row->img_per_s);
        if (mx->on) {
            printf("  half-precision gradients: loss scale %g, %lld of %lld steps skipped (a gradient overflowed)\n",
                   (double)mx->scale, mx->skipped, mx->steps);
            if (mx->values && mx->act.values)
                printf("  half-precision activations: %.3g%% underflowed, %.3g%% overflowed (training and test passes)\n",
                       100.0 * (double)mx->act.underflow / (double)mx->act.values, 100.0 * (double)mx->act.overflow / (double)mx->act.values);
            write_half_csv(c, mx, e + 1);
        }
        fflush(stdout);
        out->seconds += now() - t0;
        pos = (Position){.epoch = e + 1};
        logs_write_csv(c, out->history, e + 1);
        logs_write_svg(c, m->name, out->history, e + 1);
        save_checkpoint(c, m, &opt, mx, out->history, &pos, nb, identity.s, hooks);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int done = pos.epoch;
    out->finished = done == c->epochs;
    if (!out->finished)
        printf("stopped %s epoch %d of %d%s; continue with --resume\n", pos.batch ? "during" : "after",
               pos.batch ? done + 1 : done, c->epochs, stop_signal ? " (signal)" : "");
    out->n_epochs = done;
    for (int i = 0; i < done; i++) out->best_acc = fmax(out->best_acc, out->history[i].test_acc);
    if (done > 0) {
        out->final_acc = out->history[done - 1].test_acc;
        out->final_loss = out->history[done - 1].test_loss;
        double *rates = dq_malloc((size_t)done * sizeof(double));
        for (int i = 0; i < done; i++) rates[i] = out->history[i].img_per_s;
        qsort(rates, (size_t)done, sizeof *rates, cmp_double);
        out->img_per_s = rates[done / 2];
        dq_free(rates);
    }
    out->max_rss_mb = train_max_rss_mb();
    logs_write_json(c, m, out);
    mixed_free(mx);
    dq_free(mx);
    text_free(&identity);
    arena_free(&arena);
    loader_free(ld);
    sgd_free(&opt);
}

void train_result_free(TrainResult *r) {
    if (!r) return;
    dq_free(r->history);
    r->history = NULL;
}
