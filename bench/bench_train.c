/* bench_train.c — training and evaluation throughput of the model builders on random data,
 * the same protocol as bench/torch_reference.py: a training step is forward + backward + SGD
 * momentum step; evaluation is an eval-mode forward. Each timing is the median step time over at
 * least --min_iters steps and --budget seconds, after 2 warm-up steps. Every configuration (model,
 * batch, threads) runs in a process of its own, so its "max RSS" is its own peak, not the
 * largest one timed before it.
 *
 *   build/release/bench/bench_train [--model=all|mnv2|resnet20] [--width=1.0] [--variant=s1x3]
 *       [--batch=0 (64 and 128)] [--threads=0 (1 and 2)] [--budget=8] [--input=cifar|fmnist]
 * Prints a Markdown table and one RESULT line per configuration (on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"
#include "nn/mobilenetv2.h"
#include "nn/onnx.h"
#include "nn/resnet.h"
#include "nn/weighted.h"
#include "core/options.h"
#include "train/sgd.h"
#include "train/trainer.h"
#include "quant/control.h"
#include "quant/ddq.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ the machine's peaks */
#if defined(__AVX512F__)
#define FP32_LANES 16
#elif defined(__AVX2__) || defined(__AVX__)
#define FP32_LANES 8
#else
#define FP32_LANES 4
#endif

/* FP32 flops per cycle per core assumed for the peak: two FMA pipes of the build's vector width
 * (Zen 5, recent Intel; Zen 4 splits a 512-bit FMA in two, so its true peak is half this). */
#define FLOPS_PER_CYCLE (2 * FP32_LANES * 2)

typedef struct CopyJob {
    float *dst;
    const float *src;
    size_t n;
    int chunks;
} CopyJob;

static void copy_task(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const CopyJob *j = ctx;
    size_t a = j->n * (size_t)begin / (size_t)j->chunks, b = j->n * (size_t)end / (size_t)j->chunks;
    memcpy(j->dst + a, j->src + a, (b - a) * sizeof(float));
}

/* Memory bandwidth, GB/s of bytes read plus written: the fastest of 5 parallel copies of 256 MB. */
static double copy_gbs(void) {
    size_t n = (size_t)64 << 20;
    float *src = dq_malloc(n * sizeof(float)), *dst = dq_malloc(n * sizeof(float));
    memset(src, 1, n * sizeof(float)), memset(dst, 0, n * sizeof(float));
    CopyJob job = {.dst = dst, .src = src, .n = n, .chunks = threads_count()};
    double best = 0;
    for (int k = 0; k < 5; k++) {
        double t0 = clock_seconds();
        parallel_for(job.chunks, copy_task, &job);
        double gbs = 2.0 * n * sizeof(float) / (clock_seconds() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    dq_free(src), dq_free(dst);
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct Bench {
    Model *m;
    Tape *t;
    Tensor *x;
    int *labels;
    Sgd *opt;
    QuantRun *run;  // quantized models: the per-step quantizer updates belong to the step
    double run_s;   // --profile: time in quant_run_step (outside the tape's per-op profile)
} Bench;

static void train_step(Bench *b) {
    tape_reset(b->t);
    b->t->training = true;
    b->t->no_grad = false;
    slab_zero_grad(&b->m->slab);
    Tensor *L = op_softmax_cross_entropy(b->t, model_forward(b->m, b->t, b->x), b->labels, 0);
    tape_backward(b->t, L);
    sgd_step(b->opt, &b->m->slab, 0.01f);
    double t0 = now();
    if (b->run) quant_run_step(b->run, 0.01f);
    b->run_s += now() - t0;
}

static void eval_step(Bench *b) {
    tape_reset(b->t);
    b->t->training = false;
    b->t->no_grad = true;
    model_forward(b->m, b->t, b->x);
}

static double median_time(void (*step)(Bench *), Bench *b, int min_iters, double budget, int *iters) {
    for (int i = 0; i < 2; i++) step(b);
    double ts[400], start = now();
    int n = 0;
    while (n < 400 && (n < min_iters || now() - start < budget)) {
        double t0 = now();
        step(b);
        ts[n++] = now() - t0;
    }
    qsort(ts, (size_t)n, sizeof *ts, cmp_double);
    *iters = n;
    return ts[n / 2];
}

typedef struct Config {
    const char *model;
    float width;
    Mnv2Variant variant;
} Config;

/* DDQ's cost depends on the bits (2^b − 1 thresholds to search): time it where a run spends its
 * steps, at the budget, or at the 8 bits a run starts from. */
static void set_bits(Quantizer *q, void *ctx) {
    if (ddq_is(q) && !q->pinned) ddq_set_merged(q, DDQ_K - *(const int *)ctx);
}

/* What one configuration is timed with. */
typedef struct Run {
    Config cfg;
    int batch, threads, min_iters, ddq_bits;
    float budget;
    bool cifar, profile, eval_only, centred;
    const char *quant, *phase, *onnx_dir;
} Run;

/* The float model as ONNX (DIR/<model>.onnx) with a check file of the timed batch and our logits,
 * for ONNX Runtime's evaluation speed on the same model (scripts/bench_eval_vs_ort.sh). */
static void save_onnx(Model *m, Tape *t, Tensor *x, const char *dir) {
    char path[1200], check[1300], err[512];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, m->name);
    snprintf(check, sizeof check, "%s.check", path);
    tape_reset(t);
    t->training = false, t->no_grad = true;
    const float *logits[1] = {model_forward(m, t, x)->data};
    if (!onnx_export_float(m, path, NULL, err, sizeof err) ||
        !onnx_save_check(check, x->data, x->shape[0], m->in_h, m->in_w, m->in_c, logits, 1, m->num_classes, err, sizeof err))
        DQ_FATAL_FILE(path, "%s", err);
    tape_reset(t);
}

/* One configuration, start to end: build, time, print its row and RESULT line. */
static void run_one(const Run *u) {
    Model *m;
    QuantConfig qcfg = quant_config_defaults;
    snprintf(qcfg.method, sizeof qcfg.method, "%s", u->quant);
    qcfg.ddq.merge_centered = u->centred;
    bool quantized = strcmp(u->quant, "none") != 0;
    QuantContext *qc = quant_context_new(&qcfg);
    LayerFactory qf = quant_factory(qc);
    const LayerFactory *f = quantized ? &qf : &nn_float_factory;
    if (!strcmp(u->cfg.model, "mnv2")) {
        MobileNetV2Config mc = {.width = u->cfg.width, .variant = u->cfg.variant, .in_channels = u->cifar ? 3 : 1,
                                .in_size = u->cifar ? 32 : 28, .num_classes = 10, .dropout = 0.2f};
        m = mobilenetv2_new(&mc, f, 1);
    } else {
        ResNetConfig rc = {.depth = 20, .in_channels = u->cifar ? 3 : 1, .in_size = u->cifar ? 32 : 28, .num_classes = 10};
        m = resnet_new(&rc, f, 1);
    }
    int B = u->batch;
    threads_init(u->threads);
    Arena a;
    arena_init(&a, 1 << 26, 0);
    Tape t;
    tape_init(&t, &a);
    Arena in;
    arena_init(&in, 1 << 20, 0);
    Rng r;
    rng_seed(&r, 1, 0);
    Tensor *x = tensor_new4(&in, B, m->in_h, m->in_w, m->in_c);
    rng_fill_normal(&r, x->data, x->numel, 0, 1);
    int *labels = arena_alloc(&in, (size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) labels[i] = (int)rng_below(&r, 10);
    Sgd opt;
    sgd_init(&opt, &(SgdConfig){.momentum = 0.9f, .weight_decay = 5e-4f}, &m->slab);
    QuantRun run;
    Bench b = {.m = m, .t = &t, .x = x, .labels = labels, .opt = &opt};
    if (quantized) {  // calibrate on the batch, then sit in the chosen phase
        // in training mode: BatchNorm normalises by the batch's statistics, as the timed steps do —
        // the untrained model's running statistics (0, 1) gave activation ranges near 1e-4 that the
        // first steps then tore apart (collapsed, crowded DDQ levels: not a run's quantizers)
        quant_calibrate_begin(qc);
        t.no_grad = true, t.training = true;
        model_forward(m, &t, x);
        quant_calibrate_end(qc);
        int bits = u->ddq_bits;
        quant_each(qc, set_bits, &bits);
        quant_run_init(&run, qc, 1000000, 0.01f);
        run.step = !strcmp(u->phase, "joint") ? 300000 : 900000;
        b.run = &run;
    }
    if (u->onnx_dir[0]) {
        if (quantized) DQ_FATAL("bench_train: --onnx_dir writes float models only (--quant=none)");
        save_onnx(m, &t, x, u->onnx_dir);
    }
    int it_train = 0, it_eval;
    TapeProfile prof = {0};
    if (u->profile) {  // a separate pass: timing every op perturbs the step time a little
        for (int i = 0; i < 2; i++) train_step(&b);
        t.profile = &prof;
        b.run_s = 0;
        for (int i = 0; i < u->min_iters; i++) train_step(&b);
        t.profile = NULL;
        double hz = clock_core_hz(), peak = u->threads * hz * FLOPS_PER_CYCLE / 1e9, mem = copy_gbs();
        printf("\nprofile of %s, batch %d, %d threads (ms per training step; rates beside the peaks: %.0f GFLOP/s = "
               "%d threads x %.2f GHz x %d flops/cycle, %.1f GB/s = a parallel 256 MB copy, read + written):\n\n",
               m->name, B, u->threads, peak, u->threads, hz / 1e9, FLOPS_PER_CYCLE, mem);
        tape_profile_print(&prof, u->min_iters, peak, mem);
        if (b.run) printf("\nquantizer updates (quant_run_step: levels, gates, prices): %.1f ms/step\n", 1e3 * b.run_s / u->min_iters);
        printf("\n");
    }
    double tt = u->eval_only ? 0 : median_time(train_step, &b, u->min_iters, u->budget, &it_train);
    double te = median_time(eval_step, &b, u->min_iters, u->budget / 2, &it_eval);
    double tr_ips = tt > 0 ? B / tt : 0, ev_ips = B / te;
    double gflops = tt > 0 ? 3.0 * 2.0 * (double)m->macs * B / tt / 1e9 : 0;
    long rss = train_max_rss_mb();
    printf("| %s%s%s | %.1f | %d | %d | %.1f | %.1f | %.1f | %ld |\n", m->name, quantized ? " " : "",
           quantized ? u->quant : "", (double)m->macs / 1e6, B, u->threads, tr_ips, gflops, ev_ips, rss);
    fflush(stdout);
    fprintf(stderr, "RESULT bench=train model=%s quant=%s phase=%s ddq_bits=%d mmacs=%.2f batch=%d threads=%d train_img_s=%.2f "
                    "train_ms_step=%.1f train_iters=%d train_gflops=%.2f eval_img_s=%.2f eval_iters=%d rss_mb=%ld\n",
            m->name, u->quant, u->phase, u->ddq_bits, (double)m->macs / 1e6, B, u->threads, tr_ips, 1e3 * tt, it_train,
            gflops, ev_ips, it_eval, rss);
    fflush(stderr);
    if (quantized) quant_run_free(&run);
    sgd_free(&opt);
    arena_free(&a);
    arena_free(&in);
    model_free(m);
    quant_context_free(qc);
    threads_shutdown();
}

int main(int argc, char **argv) {
    char model[OPT_STRLEN] = "all", variant[OPT_STRLEN] = "s1x3", input[OPT_STRLEN] = "cifar";
    float width = 0, budget = 8;
    int batch = 0, threads = 0, min_iters = 5, ddq_bits = 4;
    bool profile = false, eval_only = false, centred = quant_config_defaults.ddq.merge_centered;
    char onnx_dir[OPT_STRLEN] = "";
    char quant[OPT_STRLEN] = "none", phase[OPT_STRLEN] = "joint";
    Option opts[] = {
        opt_choice("model", model, "models to time", "all|mnv2|resnet20"),
        opt_float("width", &width, "MobileNetV2 width (0: 1.0 and 0.5)", 0, 4),
        opt_choice("variant", variant, "MobileNetV2 CIFAR variant", "s1x3|s1x2|both"),
        opt_choice("input", input, "32x32x3 or 28x28x1", "cifar|fmnist"),
        opt_int("batch", &batch, "batch size (0: 64 and 128)", 0, 4096),
        opt_int("threads", &threads, "threads (0: 1 and 2)", 0, 256),
        opt_float("budget", &budget, "seconds of timed steps per measurement", 0, 600),
        opt_int("min_iters", &min_iters, "at least this many timed steps", 1, 400),
        opt_bool("profile", &profile, "print the time per op kind of the training steps"),
        opt_bool("eval_only", &eval_only, "time evaluation only (train columns 0)"),
        opt_string("onnx_dir", onnx_dir, "write each float model as DIR/<model>.onnx + .check (the timed batch)"),
        opt_choice("quant", quant, "quantize the model (W4A4) with this method", "none|ddq|lsq|pact|minmax"),
        opt_choice("phase", phase, "DDQ phase to time", "joint|frozen"),
        opt_int("ddq_bits", &ddq_bits, "bits of every unpinned DDQ quantizer while timed (8: a run's start)", 2, 8),
        opt_bool("ddq_merge_centered", &centred, "DDQ's merged grids centred on the pinned zero, as in a run (false: the off-centre merge of DDQ as first built)"),
    };
    options_parse(opts, sizeof opts / sizeof *opts, argc, argv, "Training/eval throughput of the models.");
    Config cfgs[8];
    int nc = 0;
    bool all = !strcmp(model, "all");
    if (all || !strcmp(model, "mnv2")) {
        float widths[2] = {1.0f, 0.5f};
        for (int w = 0; w < 2; w++) {
            if (width > 0 && w > 0) break;
            float wv = width > 0 ? width : widths[w];
            if (!strcmp(variant, "both") || !strcmp(variant, "s1x3")) cfgs[nc++] = (Config){.model = "mnv2",
                                                                                            .width = wv,
                                                                                            .variant = MNV2_S1X3};
            if (!strcmp(variant, "both") || !strcmp(variant, "s1x2")) cfgs[nc++] = (Config){.model = "mnv2",
                                                                                            .width = wv,
                                                                                            .variant = MNV2_S1X2};
        }
    }
    if (all || !strcmp(model, "resnet20")) cfgs[nc++] = (Config){.model = "resnet20", .width = 0, .variant = 0};
    int batches[2] = {batch ? batch : 64, 128}, nb = batch ? 1 : 2;
    int thr[2] = {threads ? threads : 1, 2}, nt = threads ? 1 : 2;
    printf("| model | MMAC/img | batch | threads | train img/s | train GFLOP/s | eval img/s | max RSS MB |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    int failed = 0;
    for (int c = 0; c < nc; c++)
        for (int bi = 0; bi < nb; bi++)
            for (int ti = 0; ti < nt; ti++) {
                Run u = {.cfg = cfgs[c], .batch = batches[bi], .threads = thr[ti], .min_iters = min_iters,
                         .ddq_bits = ddq_bits, .budget = budget, .cifar = !strcmp(input, "cifar"), .profile = profile,
                         .eval_only = eval_only, .centred = centred, .quant = quant, .phase = phase, .onnx_dir = onnx_dir};
                pid_t pid = fork();  // its own process: its own peak memory
                if (pid < 0) DQ_FATAL("bench_train: cannot fork");
                if (pid == 0) {
                    run_one(&u);
                    _exit(0);
                }
                int status;
                if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
            }
    if (failed) fprintf(stderr, "bench_train: error: %d configuration(s) failed\n", failed);
    return failed ? 1 : 0;
}
