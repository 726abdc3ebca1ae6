/* test_train.c — SGD and schedules by hand, overfitting one batch, exact resume, and a clear
 * stop on divergence. Runs on tiny synthetic data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/fileio.h"
#include "helpers.h"

#include <criterion/redirect.h>
#include "nn/lenet.h"
#include "nn/weighted.h"
#include "train/sgd.h"
#include "train/trainer.h"

Test(sgd, matches_the_formula) {
    ParamSlab s;
    slab_init(&s);
    Tensor *w = slab_add(&s, "w", 1, (const int[]){2}, 0);
    Tensor *b = slab_add(&s, "b", 1, (const int[]){1}, PARAM_NO_DECAY);
    Tensor *f = slab_add(&s, "f", 1, (const int[]){1}, PARAM_FROZEN);
    slab_finalize(&s);
    w->data[0] = 1, w->data[1] = -2, b->data[0] = 3, f->data[0] = 4;
    for (size_t i = 0; i < s.numel; i++) s.grad[i] = 0.5f;
    Sgd o;
    sgd_init(&o, &(SgdConfig){.momentum = 0.9f, .weight_decay = 0.1f}, &s);
    sgd_step(&o, &s, 0.1f);  // v = g + wd·w; w -= lr·v
    cr_assert_float_eq(w->data[0], 1 - 0.1f * (0.5f + 0.1f), 1e-6);
    cr_assert_float_eq(b->data[0], 3 - 0.1f * 0.5f, 1e-6, "no decay on PARAM_NO_DECAY");
    cr_assert_float_eq(f->data[0], 4, 0, "frozen");
    sgd_step(&o, &s, 0.1f);  // v = 0.9·v + g + wd·w
    float v1 = 0.6f, w1 = 1 - 0.06f, v2 = 0.9f * v1 + 0.5f + 0.1f * w1;
    cr_assert_float_eq(w->data[0], w1 - 0.1f * v2, 1e-6);
    sgd_free(&o);
    // Nesterov: w -= lr·(g + μ·v)
    w->data[0] = 1;
    sgd_init(&o, &(SgdConfig){.momentum = 0.9f, .nesterov = true}, &s);
    sgd_step(&o, &s, 0.1f);
    cr_assert_float_eq(w->data[0], 1 - 0.1f * (0.5f + 0.9f * 0.5f), 1e-6);
    sgd_free(&o);
    slab_free(&s);
}

Test(sgd, schedules) {
    Schedule c = {.kind = SCHED_COSINE, .lr = 0.1f, .lr_min = 0.0f, .warmup = 1, .epochs = 11, .step_epochs = 0,
                  .gamma = 0};
    cr_assert_float_eq(schedule_lr(&c, 0.5), 0.05f, 1e-7, "warm-up is linear");
    cr_assert_float_eq(schedule_lr(&c, 1), 0.1f, 1e-7);
    cr_assert_float_eq(schedule_lr(&c, 6), 0.05f, 1e-7, "cosine halfway");
    cr_assert_float_eq(schedule_lr(&c, 11), 0, 1e-7);
    Schedule s = {.kind = SCHED_STEP, .lr = 0.1f, .lr_min = 0, .warmup = 0, .epochs = 30, .step_epochs = 10,
                  .gamma = 0.1f};
    cr_assert_float_eq(schedule_lr(&s, 9.99), 0.1f, 1e-7);
    cr_assert_float_eq(schedule_lr(&s, 25), 0.001f, 1e-8);
}

/* 64 random 8×8 images whose label is the brightest quadrant (learnable), as a Dataset. */
static Dataset synthetic(int n, uint64_t seed) {
    uint8_t *img = dq_malloc((size_t)n * 64), *lab = dq_malloc((size_t)n);
    Rng r;
    rng_seed(&r, seed, 0);
    for (int i = 0; i < n; i++) {
        int q = (int)rng_below(&r, 4);
        for (int p = 0; p < 64; p++) {
            int y = p / 8, x = p % 8, pq = (y >= 4) * 2 + (x >= 4);
            img[(size_t)i * 64 + p] = (uint8_t)(rng_below(&r, 100) + (pq == q ? 120 : 0));
        }
        lab[i] = (uint8_t)q;
    }
    Dataset d;
    dataset_from_memory(&d, "synthetic", n, 8, 8, 1, 4, img, lab);
    return d;
}

static char dir[64];

static void setup(void) {
    test_setup();
    cr_redirect_stdout();
    cr_redirect_stderr();
    snprintf(dir, sizeof dir, "/tmp/ddqc_train_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    test_teardown();
}

static TrainConfig small_config(const char *sub) {
    TrainConfig c = {.dataset = "synthetic", .epochs = 4, .batch_size = 16, .lr = 0.05f, .schedule = "cosine",
                     .warmup = 0.5f, .momentum = 0.9f, .weight_decay = 1e-4f, .crop_pad = 1, .hflip = true,
                     .eval_batch = 32, .seed = 5, .threads = 2, .prefetch = true};
    snprintf(c.out_dir, sizeof c.out_dir, "%s/%s", dir, sub);
    return c;
}

static Model *small_model(void) {
    LeNetConfig lc = {.in_channels = 1, .in_size = 8, .num_classes = 4, .dropout = 0.1f};
    return lenet_new(&lc, &nn_float_factory, 11);
}

Test(train, resume_gives_the_same_bits, .init = setup, .fini = teardown) {
    Dataset tr = synthetic(64, 1), te = synthetic(32, 2);
    TrainResult r;
    Model *a = small_model();
    TrainConfig ca = small_config("straight");
    train_model(a, &ca, NULL, &tr, &te, NULL, "test", &r);
    train_result_free(&r);

    Model *b = small_model();
    TrainConfig cb = small_config("interrupted");
    cb.stop_after = 2;
    train_model(b, &cb, NULL, &tr, &te, NULL, "test", &r);
    cr_assert_eq(r.n_epochs, 2);
    train_result_free(&r);
    model_free(b);
    b = small_model();  // a fresh process would start from a fresh model
    cb.stop_after = 0;
    cb.resume = true;
    train_model(b, &cb, NULL, &tr, &te, NULL, "test", &r);
    cr_assert_eq(r.resumed_from, 2);
    cr_assert_eq(r.n_epochs, 4);
    assert_bits_equal(b->slab.data, a->slab.data, a->slab.numel, "parameters and BN statistics after 4 epochs");
    train_result_free(&r);
    char path[128];
    snprintf(path, sizeof path, "%s/interrupted/curves.svg", dir);
    cr_assert(access(path, F_OK) == 0, "the plot is written");
    snprintf(path, sizeof path, "%s/interrupted/log.csv", dir);
    FILE *f = fopen(path, "r");
    int lines = 0;
    for (int ch; (ch = fgetc(f)) != EOF;) lines += ch == '\n';
    fclose(f);
    cr_assert_eq(lines, 5, "header + 4 epochs, history carried over by the checkpoint");
    model_free(a);
    model_free(b);
    dataset_free(&tr);
    dataset_free(&te);
}

Test(train, overfits_one_batch, .init = setup, .fini = teardown) {
    Dataset tr = synthetic(16, 3);
    Model *m = small_model();
    Sgd o;
    sgd_init(&o, &(SgdConfig){.momentum = 0.9f}, &m->slab);
    Tensor *x = tensor_new4(&test_arena, 16, 8, 8, 1);
    int labels[16];
    for (int i = 0; i < 16 * 64; i++) x->data[i] = tr.images[i] / 255.0f - 0.5f;
    for (int i = 0; i < 16; i++) labels[i] = tr.labels[i];
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    float first = 0, last = 0;
    for (int step = 0; step < 150; step++) {
        tape_reset(&t);
        slab_zero_grad(&m->slab);
        Tensor *L = op_softmax_cross_entropy(&t, model_forward(m, &t, x), labels, 0);
        tape_backward(&t, L);
        sgd_step(&o, &m->slab, 0.02f);
        if (step == 0) first = L->data[0];
        last = L->data[0];
    }
    cr_assert(last < 0.05f * first, "loss %g -> %g: a batch of 16 should be memorised", first, last);
    arena_free(&a);
    sgd_free(&o);
    model_free(m);
    dataset_free(&tr);
}

/* A run that must stop with a fatal error (expect_fatal catches it). */
static void run_to_fatal(TrainConfig c) {
    Dataset tr = synthetic(64, 1);
    TrainResult r;
    train_model(small_model(), &c, NULL, &tr, &tr, NULL, "test", &r);
}

static void diverge(void *ctx) {
    TrainConfig c = small_config("nan");
    c.lr = 1e6f;
    c.warmup = 0;
    run_to_fatal(c);
}

static char *read_file(const char *sub, const char *file) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    return read_text_file(path);
}

/* A run stopped in the middle of an epoch (a checkpoint there) and resumed ends with the bits of an
 * uninterrupted one, and its log is the same rows; so does a run that kept periodic checkpoints. */
Test(train, a_run_stopped_mid_epoch_resumes_to_the_same_bits, .init = setup, .fini = teardown) {
    Dataset tr = synthetic(64, 1), te = synthetic(32, 2);
    TrainResult r;
    Model *a = small_model();
    TrainConfig ca = small_config("straight");
    train_model(a, &ca, NULL, &tr, &te, NULL, "test", &r);
    train_result_free(&r);
    // 4 batches per epoch: stop after step 6 (epoch 2, batch 2), then 5 steps later (epoch 3, batch 3)
    int stops[3] = {6, 5, 0};
    Model *b = NULL;
    TrainConfig cb = small_config("stopped");
    cb.checkpoint_every = 3;
    for (int k = 0; k < 3; k++) {
        model_free(b);
        b = small_model();  // each run a fresh process would start from a fresh model
        cb.resume = k > 0, cb.stop_after_steps = stops[k];
        train_model(b, &cb, NULL, &tr, &te, NULL, "test", &r);
        cr_assert_eq(r.finished, k == 2, "run %d", k);
        train_result_free(&r);
    }
    assert_bits_equal(b->slab.data, a->slab.data, a->slab.numel, "parameters after stops mid-epoch and resumes");
    char *la = read_file("straight", "log.csv"), *lb = read_file("stopped", "log.csv");
    // columns 2..6 (lr, losses, accuracies) must agree; seconds and images/s differ by timing
    char *pa = la, *pb = lb;
    for (int line = 0; line < 5; line++) {
        char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
        cr_assert(ea && eb, "log.csv has %d lines", line);
        const char *ca6 = pa, *cb6 = pb;
        for (int col = 0; col < 6; col++) ca6 = strchr(ca6, ',') + 1, cb6 = strchr(cb6, ',') + 1;
        cr_assert(ca6 - pa == cb6 - pb && !strncmp(pa, pb, (size_t)(ca6 - pa)), "log.csv line %d: %.*s vs %.*s", line,
                  (int)(ea - pa), pa, (int)(eb - pb), pb);
        pa = ea + 1, pb = eb + 1;
    }
    cr_assert_eq(*pa, 0);
    cr_assert_eq(*pb, 0);
    dq_free(la), dq_free(lb);
    model_free(a);
    model_free(b);
    dataset_free(&tr);
    dataset_free(&te);
}

/* Emulated half precision with a dynamic loss scale that starts too high (it overflows, halves,
 * doubles again after 3 clean steps): stopped mid-epoch and resumed, the same bits — the scale is
 * in the checkpoint; half.csv has every epoch. */
Test(train, a_half_precision_run_resumes_to_the_same_bits, .init = setup, .fini = teardown) {
    Dataset tr = synthetic(64, 1), te = synthetic(32, 2);
    TrainResult r;
    TrainConfig ca = small_config("half-straight");
    strcpy(ca.half, "grads"), strcpy(ca.loss_scale, "dynamic");
    ca.loss_scale_init = 1 << 24, ca.loss_scale_window = 3;
    Model *a = small_model();
    train_model(a, &ca, NULL, &tr, &te, NULL, "test", &r);
    train_result_free(&r);
    TrainConfig cb = ca;
    snprintf(cb.out_dir, sizeof cb.out_dir, "%s/half-stopped", dir);
    int stops[2] = {7, 0};
    Model *b = NULL;
    for (int k = 0; k < 2; k++) {
        model_free(b);
        b = small_model();
        cb.resume = k > 0, cb.stop_after_steps = stops[k];
        train_model(b, &cb, NULL, &tr, &te, NULL, "test", &r);
        train_result_free(&r);
    }
    assert_bits_equal(b->slab.data, a->slab.data, a->slab.numel, "parameters after a stop and a resume");
    char *csv = read_file("half-straight", "half.csv");
    const char *header = "epoch,position,op,values,underflow,overflow,log2_scale\n";
    cr_assert(!strncmp(csv, header, strlen(header)), "header: %.60s", csv);
    cr_assert(strstr(csv, "\n4,1,") != NULL, "a row of epoch 4");
    dq_free(csv);
    model_free(a);
    model_free(b);
    dataset_free(&tr);
    dataset_free(&te);
}

static TrainConfig changed;
static const char *changed_extra;

static void resume_changed(void *ctx) {
    Dataset tr = synthetic(64, 1);
    TrainResult r;
    train_model(small_model(), &changed, changed_extra, &tr, &tr, NULL, "test", &r);
}

Test(train, a_resume_that_changes_the_run_is_refused, .init = setup, .fini = teardown) {
    Dataset tr = synthetic(64, 1);
    TrainConfig c = small_config("first");
    c.stop_after = 1;
    TrainResult r;
    train_model(small_model(), &c, "width=0.5\n", &tr, &tr, NULL, "test", &r);
    train_result_free(&r);
    c.stop_after = 0, c.resume = true;
    struct {
        void (*change)(TrainConfig *);
        const char *extra, *expect;
    } cases[] = {
        {NULL, "width=0.25\n", "--width=0.25 (checkpoint: 0.5)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        changed = c, changed_extra = cases[i].extra;
        const char *m = expect_fatal(resume_changed, NULL);
        cr_assert(strstr(m, "cannot resume") && strstr(m, cases[i].expect), "case %zu: got %s", i, m);
    }
    changed = c, changed.lr = 0.1f, changed.threads = 1, changed.batch_size = 8, changed.epochs = 6;
    changed_extra = "width=0.5\n";
    const char *m = expect_fatal(resume_changed, NULL);
    const char *want[] = {"--lr=0.1 (checkpoint: 0.05)", "--threads=1 (checkpoint: 2)", "--batch_size=8 (checkpoint: 16)",
                          "--epochs=6 (checkpoint: 4)"};
    for (int k = 0; k < 4; k++) cr_assert(strstr(m, want[k]) != NULL, "'%s' not named in: %s", want[k], m);
    // More epochs, said explicitly, continue the run.
    changed = c, changed.epochs = 5, changed.extend = true;
    Model *x = small_model();
    train_model(x, &changed, "width=0.5\n", &tr, &tr, NULL, "test", &r);
    cr_assert(r.finished && r.n_epochs == 5 && r.resumed_from == 1);
    train_result_free(&r);
    model_free(x);
    dataset_free(&tr);
}

static void into_a_file(void *ctx) { run_to_fatal(small_config("a-file")); }

Test(train, an_unwritable_out_dir_is_found_before_training, .init = setup, .fini = teardown) {
    char path[128];
    snprintf(path, sizeof path, "%s/a-file", dir);
    FILE *f = fopen(path, "w");  // the directory's name is taken by a file (root may write anywhere else)
    fclose(f);
    const char *m = expect_fatal(into_a_file, NULL);
    cr_assert(strstr(m, "cannot write in this directory") != NULL, "got: %s", m);
    cr_assert(strstr(m, "epoch") == NULL, "before any epoch: %s", m);
}

Test(train, stops_on_divergence_with_a_message, .init = setup, .fini = teardown) {
    const char *m = expect_fatal(diverge, NULL);
    cr_assert(strstr(m, "test: error: training diverged") != NULL && strstr(m, "hint: lower --lr") != NULL, "got: %s", m);
}
