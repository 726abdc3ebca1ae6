/* test_pipeline.c — the quantization experiment end to end on tiny synthetic data: FP32 training,
 * reuse of the finished FP32 run, DDQ fine-tuning that meets its budget, the report files, and
 * a fine-tuning run resumed from its checkpoint that ends with the same bits, a second fine-tuning
 * seed from the same FP32 model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "experiments/qpipeline.h"
#include "helpers.h"
#include "train/checkpoint.h"
#include "nn/mobilenetv2.h"

#include <criterion/redirect.h>

static char dir[64];

static void setup(void) {
    test_setup();
    if (!getenv("SHOW")) cr_redirect_stdout(), cr_redirect_stderr();  // SHOW=1: see the runs' output
    snprintf(dir, sizeof dir, "/tmp/ddqc_pipe_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    test_teardown();
}

/* 96 random 8×8 images labelled by their brightest quadrant. */
static Dataset synthetic(int n, uint64_t seed) {
    uint8_t *img = dq_malloc((size_t)n * 64), *lab = dq_malloc((size_t)n);
    Rng r;
    rng_seed(&r, seed, 0);
    for (int i = 0; i < n; i++) {
        int q = (int)rng_below(&r, 4);
        for (int p = 0; p < 64; p++) {
            int pq = (p / 8 >= 4) * 2 + (p % 8 >= 4);
            img[(size_t)i * 64 + p] = (uint8_t)(rng_below(&r, 100) + (pq == q ? 120 : 0));
        }
        lab[i] = (uint8_t)q;
    }
    Dataset d;
    dataset_from_memory(&d, "synthetic", n, 8, 8, 1, 4, img, lab);
    return d;
}

static Model *build(void *ctx, const LayerFactory *f, uint64_t seed, const Dataset *d) {
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = d->c, .in_size = d->h,
                            .num_classes = d->num_classes, .dropout = 0};
    return mobilenetv2_new(&mc, f, seed);
}

static TrainConfig config(const char *sub) {
    TrainConfig c = {.dataset = "synthetic", .epochs = 2, .batch_size = 16, .lr = 0.01f, .schedule = "cosine",
                     .momentum = 0.9f, .weight_decay = 1e-4f, .eval_batch = 32, .seed = 3, .threads = 2, .prefetch = true};
    snprintf(c.out_dir, sizeof c.out_dir, "%s/%s", dir, sub);
    return c;
}

/* The synthetic task (96 training images, n_test test images) and a pipeline whose FP32 phase
 * trains fp32_epochs at lr into dir/fp32. */
static void synthetic_pipeline(Experiment *x, QPipelineConfig *p, int n_test, int fp32_epochs, float lr) {
    *x = (Experiment){.prog = "test"};
    x->train = synthetic(96, 1), x->test = synthetic(n_test, 2);
    *p = (QPipelineConfig){.fp32_epochs = fp32_epochs, .fp32_lr = lr};
    snprintf(p->fp32_dir, sizeof p->fp32_dir, "%s/fp32", dir);
}

static bool exists(const char *sub, const char *file) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, file);
    return access(p, F_OK) == 0;
}

Test(pipeline, fp32_then_ddq_meets_its_budget_and_resumes, .init = setup, .fini = teardown) {
    Experiment x;
    QPipelineConfig p;
    synthetic_pipeline(&x, &p, 48, 2, 0.05f);
    QuantConfig q = quant_config_defaults;
    q.w_bits = 3, q.a_bits = 5, q.calib_batches = 2;
    // 12 steps from 8 bits to 3: too short for any price to act (the final guarantee does the
    // work), so this test of the pipeline keeps the price its thresholds were set with, dual
    // ascent without a settling window. Under the PI price the toy's runs diverge in some builds
    // even with its error capped at 1: the third run below (seed 4, lr 0.005) in the clang
    // sanitizer build (features.0.weight non-finite; window of a fifth) and in the portable build
    // (a BatchNorm running variance non-finite; window of a tenth). A price that merges 5 bits in
    // six steps may expose a fragile backward while levels collapse; recorded in issue 13's note,
    // not explained. The real runs (MobileNetV2, 2 and 8 epochs) are finite.
    strcpy(q.lambda, "dual"), q.eta = 0.003f, q.settle = 0;
    // For the same reason it keeps the merge it was tuned with, the off-centre one, which passes
    // in every build. This toy's fine-tune blows up under either merge (its FP32 model is at
    // chance in evaluation, 18.75% on 4 classes), and the centred default only moved where it
    // breaks: in the clang sanitizer build a BatchNorm running variance went non-finite at lr 0.01
    // (the run stopped with its message), and at 0.005 two activation levels near 2e4 became equal
    // in float and the integer engine refused the model ("thresholds not ascending"). Measured
    // (gcc, centred, lr 0.01, 2026-12-01): at the first step the largest level gradient is 1e-3
    // in the classifier and grows block by block to 459 in features.0 (BatchNorm over 64 values
    // a channel, batch variances down to 2e-4), so one step moves features.0's levels by 4.5
    // against a range of 1.8 and the next moves features.2.expand's by 438; momentum carries them
    // on to ±1500, and from the third step the weight quantizers of features.0–7 get no gradient
    // at all. With the level rates a tenth the levels reach ±20, frozen ±1.6. A real run's levels
    // stay within ±1 (MobileNetV2, layers.csv).
    q.ddq.merge_centered = false;
    TrainConfig c = config("ddq");
    QPipelineResult r;
    qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
    cr_assert(r.summary.mean_w_bits <= 3 + 1e-9 && r.summary.mean_w_bits > 2.5, "mean weight bits %g", r.summary.mean_w_bits);
    cr_assert(r.summary.mean_a_bits <= 5 + 1e-9 && r.summary.mean_a_bits > 4.5, "mean activation bits %g", r.summary.mean_a_bits);
    cr_assert(r.summary.weight_kb < r.summary.fp32_weight_kb / 4);
    const char *files[] = {"log.csv", "curves.svg", "layers.csv", "bits.svg", "levels.svg", "ddq_trace.csv",
                           "checkpoint.bin", "summary.json", "quant_summary.json", "model.dqm"};
    for (int i = 0; i < 10; i++) cr_assert(exists("ddq", files[i]), "missing %s", files[i]);
    // the integer model: written, read back, evaluated; here the levels are off the integer grid
    // (no --ddq_snap_grid), so agreement is high, not total: how high depends on how far this toy's
    // learned levels fall from the grid, which moves with the build's float arithmetic (codes
    // measured 0.928 in the AVX2 build, above 0.95 in the AVX-512 one; top-1 0.896 — 43 of the 48
    // images — in the gcc sanitizer build after the depthwise kernels changed its rounding; a
    // broken engine is far below)
    cr_assert(r.int_ok, "no integer model: %s", r.int_why);
    cr_assert(r.int_agree >= 0.85 && r.int_codes_alone >= 0.9, "integer vs fake-quant: top-1 %.3f, codes %.4f",
              r.int_agree, r.int_codes_alone);
    cr_assert(r.dqm.weights > 0 && r.dqm.file > r.dqm.weights && r.int_img_s > 0 && r.fp32_eval_img_s > 0);
    cr_assert(exists("fp32", "checkpoint.bin"));

    // The same fine-tuning interrupted after one epoch and resumed: same accuracy, same bits.
    TrainConfig c2 = config("ddq-resumed");
    c2.stop_after = 1;
    QPipelineResult r1, r2;
    qpipeline_run(&x, &c2, &p, &q, build, NULL, &r1);  // reuses the FP32 run
    c2.stop_after = 0, c2.resume = true;
    qpipeline_run(&x, &c2, &p, &q, build, NULL, &r2);
    cr_assert_float_eq(r2.q_acc, r.q_acc, 1e-12, "resumed %g vs straight %g", r2.q_acc, r.q_acc);
    cr_assert_float_eq(r2.summary.mean_w_bits, r.summary.mean_w_bits, 1e-12);
    cr_assert_float_eq(r2.summary.mean_a_bits, r.summary.mean_a_bits, 1e-12);

    // Another fine-tuning seed from the same FP32 model (--fp32_seed): the finished FP32 run is
    // reused as it is, not rejected for its seed or trained again.
    TrainConfig c3 = config("ddq-seed4");
    c3.seed = 4, p.fp32_seed = c.seed;
    c3.lr = 0.005f;  // this toy fine-tune sits near divergence at 0.01 in some builds (clang's sanitizer one)
    QPipelineResult r3;
    qpipeline_run(&x, &c3, &p, &q, build, NULL, &r3);
    cr_assert_float_eq(r3.fp32_acc, r.fp32_acc, 1e-12, "FP32 %g vs %g", r3.fp32_acc, r.fp32_acc);
    cr_assert(exists("ddq-seed4", "quant_summary.json"));
    experiment_free(&x);
}

/* The text of <dir>/<sub>/<file> (dq_free). */
static char *slurp(const char *sub, const char *file) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, file);
    return read_text_file(p);
}

/* Every baseline: the bits it was asked for in every unpinned layer (8 in the pinned ones), no
 * more distinct weight values than its bits allow, and a model that learned the task (4 classes,
 * 240 test images: chance is 25% ± 3%): measured 97–100% for each in release and sanitizer
 * builds. The test once asserted only 0 <= accuracy <= 1. */
Test(pipeline, baselines_run_through_the_same_plumbing, .init = setup, .fini = teardown) {
    Experiment x;
    QPipelineConfig p;
    synthetic_pipeline(&x, &p, 240, 10, 0.1f);
    const char *methods[] = {"lsq", "pact", "minmax"};
    for (int i = 0; i < 3; i++) {
        QuantConfig q = quant_config_defaults;
        snprintf(q.method, sizeof q.method, "%s", methods[i]);
        q.calib_batches = 1, q.w_bits = 4, q.a_bits = 4;
        q.bn_recal = i == 0 ? 3 : 0;  // the diagnostic, once
        TrainConfig c = config(methods[i]);
        c.epochs = 6;  // PACT needs them: 35–83% after 2 epochs depending on the build, 70–99% after 4
        QPipelineResult r;
        qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
        cr_assert(r.finished);
        cr_assert_float_eq(r.summary.mean_w_bits, 4, 1e-9, "%s: %g weight bits", methods[i], r.summary.mean_w_bits);
        cr_assert_float_eq(r.summary.mean_a_bits, 4, 1e-9, "%s: %g activation bits", methods[i], r.summary.mean_a_bits);
        cr_assert(r.fp32_acc > 0.9 && r.q_acc > 0.8, "%s: FP32 %.3f, quantized %.3f on a 4-class task", methods[i],
                  r.fp32_acc, r.q_acc);
        cr_assert(i == 0 ? r.bn_recal_acc > 0.5 : r.bn_recal_acc == 0, "%s: re-estimated BatchNorm: %.3f", methods[i], r.bn_recal_acc);
        // every method deploys: its integer model computes the fake-quant model's codes up to float
        // rounding (uniform levels sit on the integer grid) and PACT's pinned 8-bit DoReFa weights
        // (256 odd multiples of 1/255, which int8 cannot hold). Codes are the exact check (measured
        // 99.95-100% layer by layer); top-1 on this 4-class toy, whose decisions after a 2-epoch
        // fine-tune are close, moves with the compiler: measured 98.8-100% with gcc, 93.3% for PACT
        // with clang (codes 99.999%). A broken engine sits near chance (25%).
        cr_assert(r.int_ok, "%s: no integer model: %s", methods[i], r.int_why);
        cr_assert(r.int_agree >= 0.9 && r.int_codes_alone >= 0.999, "%s: integer vs fake-quant: top-1 %.3f, codes %.5f",
                  methods[i], r.int_agree, r.int_codes_alone);
        char *csv = slurp(methods[i], "layers.csv"), *line = strchr(csv, '\n') + 1;
        int rows = 0;
        for (; *line; line = strchr(line, '\n') + 1, rows++) {
            char name[128], kind[32];
            int pinned, wb, ab, distinct;
            long long params, macs;
            cr_assert_eq(sscanf(line, "%127[^,],%31[^,],%d,%lld,%lld,%d,%d,%*[^,],%*[^,],%d", name, kind, &pinned,
                                &params, &macs, &wb, &ab, &distinct), 8, "%s: layers.csv line %s", methods[i], line);
            cr_assert(wb == (pinned ? 8 : 4) && ab == (pinned ? 8 : 4), "%s %s: W%d A%d", methods[i], name, wb, ab);
            cr_assert(distinct >= 2 && distinct <= 1 << wb, "%s %s: %d distinct weights at %d bits", methods[i], name,
                      distinct, wb);
            // the last four fields: the weight levels next to 0, the activation's two above 0; LSQ's
            // weight grid is k·s, so the first two are ∓s (its activations may be offset: LSQ+'s β)
            const char *f = line;
            for (int k = 0; k < 13; k++) f = strchr(f, ',') + 1;
            double below, above, a1, a2;
            cr_assert_eq(sscanf(f, "%lf,%lf,%lf,%lf", &below, &above, &a1, &a2), 4, "%s: the levels of line %s", methods[i], line);
            cr_assert(below < 0 && above > 0 && a1 > 0 && a2 > a1, "%s %s: %g %g %g %g", methods[i], name, below, above, a1, a2);
            if (!strcmp(methods[i], "lsq"))
                cr_assert(fabs(above + below) <= 1e-4 * above, "lsq %s: levels next to 0 %g, %g", name, below, above);
        }
        cr_assert(rows > 10, "%s: %d layers in layers.csv", methods[i], rows);
        dq_free(csv);
        if (i == 0) {  // --q_bn_recal's trace: a row per quantized layer, shares in [0, 1]; the first
                       // layer's inputs (the same images) cannot change
            char *tr = slurp(methods[i], "bn_recal_trace.csv"), *l = strchr(tr, '\n') + 1;
            const char *head = "layer,values,differ_all,rel_l1_all,differ_first,rel_l1_first\n";
            cr_assert(!strncmp(tr, head, strlen(head)), "bn_recal_trace.csv header: %.80s", tr);
            int trows = 0;
            for (; *l; l = strchr(l, '\n') + 1, trows++) {
                long long values;
                double d[4];
                cr_assert_eq(sscanf(l, "%*[^,],%lld,%lf,%lf,%lf,%lf", &values, &d[0], &d[1], &d[2], &d[3]), 5, "trace line %s", l);
                cr_assert(values > 0 && d[0] >= 0 && d[0] <= 1 && d[2] >= 0 && d[2] <= 1, "trace line %s", l);
                if (trows == 0) cr_assert(d[0] == 0 && d[2] == 0, "the first layer's inputs changed: %s", l);
            }
            cr_assert_eq(trows, rows, "trace rows %d, layers %d", trows, rows);
            dq_free(tr);
        }
    }
    experiment_free(&x);
}

/* The parameter section (weights, quantizers, BatchNorm statistics) of <dir>/<sub>/checkpoint.bin. */
static uint8_t *params_of(const char *sub, size_t *n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/checkpoint.bin", dir, sub);
    Checkpoint ck;
    ckpt_init(&ck);
    cr_assert(ckpt_load(&ck, path), "no %s", path);
    const CkptSection *s = ckpt_require(&ck, "PARM", 0);
    uint8_t *b = dq_malloc(s->size);
    memcpy(b, s->data, s->size);
    *n = s->size;
    ckpt_free(&ck);
    return b;
}

/* --q_bn_freeze: a run stopped after the freeze and resumed (its checkpoint holds the frozen
 * statistics; the resumed run must freeze them again before its first step) ends with the
 * parameters of the uninterrupted run, bit for bit; without the freeze they differ. */
Test(pipeline, bn_freeze_resumes_past_the_freeze, .init = setup, .fini = teardown) {
    Experiment x;
    QPipelineConfig p;
    synthetic_pipeline(&x, &p, 48, 1, 0.05f);
    QuantConfig q = quant_config_defaults;
    strcpy(q.method, "lsq");
    q.calib_batches = 1, q.bn_freeze = 0.5f;  // 12 steps (6 batches × 2 epochs): frozen after step 6
    QPipelineResult r;
    const char *subs[3] = {"straight", "resumed", "unfrozen"};
    size_t n[3];
    uint8_t *params[3];
    for (int k = 0; k < 3; k++) {
        TrainConfig c = config(subs[k]);
        q.bn_freeze = k == 2 ? 0 : 0.5f;
        if (k == 1) {
            c.stop_after_steps = 9;
            qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
            cr_assert(!r.finished);
            c.stop_after_steps = 0, c.resume = true;
        }
        qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
        cr_assert(r.finished);
        params[k] = params_of(subs[k], &n[k]);
    }
    cr_assert(n[0] == n[1] && !memcmp(params[0], params[1], n[0]), "resumed past the freeze: other parameters");
    cr_assert(n[0] == n[2] && memcmp(params[0], params[2], n[0]), "the freeze changed nothing");
    for (int k = 0; k < 3; k++) dq_free(params[k]);
    experiment_free(&x);
}

/* ddq_trace.csv always matches the checkpoint a run resumes from: rows written after the last
 * checkpoint by a killed run are cut, rows lost with the file come back from the checkpoint, and
 * a --resume that finds no checkpoint starts the file with its header. Each ends as the trace of
 * an uninterrupted run, byte for byte. */
Test(pipeline, the_ddq_trace_matches_the_checkpoint, .init = setup, .fini = teardown) {
    Experiment x;
    QPipelineConfig p;
    synthetic_pipeline(&x, &p, 48, 1, 0.05f);
    QuantConfig q = quant_config_defaults;
    q.calib_batches = 1;
    QPipelineResult r;
    TrainConfig c = config("straight");
    qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
    char *want = slurp("straight", "ddq_trace.csv");
    cr_assert(!strncmp(want, "step,phase,", 11), "the header comes first");
    const char *subs[3] = {"killed", "lost", "fresh"};
    for (int k = 0; k < 3; k++) {
        c = config(subs[k]);
        if (k < 2) {  // 6 batches per epoch: stop at step 4 of epoch 1, mid-epoch
            c.stop_after_steps = 10;
            qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
            cr_assert(!r.finished);
            char path[256];
            snprintf(path, sizeof path, "%s/%s/ddq_trace.csv", dir, subs[k]);
            FILE *f = fopen(path, k == 0 ? "a" : "w");  // killed: rows past the checkpoint; lost: an empty file
            if (k == 0) fprintf(f, "11,1,0,0,4,4,4,4\n12,1,0,0,4,4,4,4\n");
            fclose(f);
        }
        c.stop_after_steps = 0, c.resume = true;
        qpipeline_run(&x, &c, &p, &q, build, NULL, &r);
        cr_assert(r.finished);
        char *got = slurp(subs[k], "ddq_trace.csv");
        cr_assert_str_eq(got, want, "%s: the trace differs from the uninterrupted run's", subs[k]);
        dq_free(got);
    }
    dq_free(want);
    experiment_free(&x);
}

static Experiment into_a_file_x;

static void pipeline_into_a_file(void *ctx) {
    QPipelineConfig p = {.fp32_epochs = 1, .fp32_lr = 0.05f};
    snprintf(p.fp32_dir, sizeof p.fp32_dir, "%s/fp32-never", dir);
    QuantConfig q = quant_config_defaults;
    TrainConfig c = config("taken");
    QPipelineResult r;
    qpipeline_run(&into_a_file_x, &c, &p, &q, build, NULL, &r);
}

/* A fine-tuning --out_dir that cannot be written is found before the FP32 run trains (it was
 * found after it, when the fine-tuning began). */
Test(pipeline, an_unwritable_out_dir_is_found_before_the_fp32_run, .init = setup, .fini = teardown) {
    into_a_file_x = (Experiment){.prog = "test"};
    into_a_file_x.train = synthetic(32, 1), into_a_file_x.test = synthetic(16, 2);
    char path[128];
    snprintf(path, sizeof path, "%s/taken", dir);
    FILE *f = fopen(path, "w");  // the directory's name is taken by a file
    fclose(f);
    const char *m = expect_fatal(pipeline_into_a_file, NULL);
    cr_assert(strstr(m, "cannot write in this directory") != NULL, "got: %s", m);
    snprintf(path, sizeof path, "%s/fp32-never", dir);
    cr_assert(access(path, F_OK) != 0, "the FP32 run did not start");
    experiment_free(&into_a_file_x);
}

/* One FP32 model serves every method and variant: the FP32 phase's identity holds the
 * experiment's own options and none of quantization's, whatever their values (--lsq_step_grad
 * once entered it, and every FP32 checkpoint written before it was refused). */
Test(pipeline, fp32_identity_leaves_every_quantization_option_out) {
    QPipelineConfig p = {.fp32_epochs = 4};
    QuantConfig q = quant_config_defaults;
    strcpy(q.method, "lsq"), strcpy(q.lsq_step_grad, "bins"), q.ddq.esser_grad = true, q.bn_freeze = 0.5f;
    int width = 7;
    Option o[QUANT_MAX_OPTIONS + 32];
    o[0] = opt_int("width", &width, "an experiment's own option", 1, 100);
    int n = 1 + qpipeline_options(&p, &q, o + 1);
    Text t;
    text_init(&t);
    qpipeline_fp32_identity(o, n, &t);
    cr_assert(strstr(t.s, "width=7\n") == t.s && strlen(t.s) == strlen("width=7\n"), "identity: %s", t.s);
    text_free(&t);
}
