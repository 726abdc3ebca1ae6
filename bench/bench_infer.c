/* bench_infer.c — the integer engine against our own FP32 evaluation, side by side in one run:
 *
 *   1. evaluation images/s of MobileNetV2 w0.5 s1x2 (28×28×1, the main model) and w1.0 s1x3
 *      (32×32×3), FP32 (eval-mode forward) and integer (the .dqm program of the same network
 *      quantized with DDQ at 4 bits, levels snapped), batch 64 and 1; FP32 and integer timings
 *      alternate rep by rep and each cell is the median;
 *   2. the int8 GEMM (igemm, uint8 × int8 → int32) on MobileNetV2's pointwise shapes, GOP/s
 *      (2 per multiply-add) beside the int8 peak of the cores: 2 `vpdpbusd` per cycle, each 64
 *      multiply-adds on 512 bits (32 on AVX-VNNI's 256), at the clock measured beside each shape
 *      by chains of dependent adds (one per cycle; the fastest of 20, before and after).
 *
 *   build/release/bench/bench_infer [--reps=9] [--threads=2] [--budget=0.3 (seconds per rep)]
 * Prints Markdown tables and RESULT lines. Random weights and inputs: speed does not depend on
 * them (the kernels are branch-free in the data except the threshold settling, which is exact
 * whatever the guess), and the model's bits are set, not learned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/igemm.h"
#include "core/options.h"
#include "core/threads.h"
#include "nn/mobilenetv2.h"
#include "nn/onnx.h"
#include "nn/weighted.h"
#include "quant/control.h"
#include "quant/intmodel.h"
#include "quant/mpquant.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ------------------------------------------------------------------ models */
typedef struct Net {
    const char *name;
    MobileNetV2Config cfg;
} Net;

static char method[OPT_STRLEN] = "ddq";

static void settle_bits(Quantizer *q, void *ctx) {
    (void)ctx;
    if (!ddq_is(q) || q->pinned) return;
    ddq_set_merged(q, 4);  // 4 bits
    ddq_snap(q);
}

/* n random images (uniform in [−2, 2]) in arena a, from seed and stream: the inputs of a timing. */
static Tensor *random_images(Arena *a, int n, int h, int w, int c, uint64_t seed, int stream) {
    Tensor *x = tensor_new4(a, n, h, w, c);
    Rng r;
    rng_seed(&r, seed, rng_stream(RNG_STREAM_FREE, stream));
    rng_fill_uniform(&r, x->data, x->numel, -2, 2);
    return x;
}

/* The network quantized with `how` (BatchNorm statistics and ranges from random batches) as an
 * integer program: DDQ's unpinned quantizers merged to 4 bits and snapped to the integer grid;
 * LSQ at 4 bits; min/max at 8 bits ("plain int8"); multipoint with mp_points 4-bit points per
 * channel, activations at 8 bits. */
static void integer_how(const MobileNetV2Config *mc, IntModel *im, const char *how, double mp_points) {
    QuantConfig qcfg = quant_config_defaults;
    strcpy(qcfg.method, how);
    if (!strcmp(how, "minmax")) qcfg.w_bits = qcfg.a_bits = 8;
    if (mp_points) qcfg.w_bits = 4, qcfg.a_bits = 8;
    QuantContext *qc = quant_context_new(&qcfg);
    LayerFactory f = quant_factory(qc);
    Model *m = mobilenetv2_new(mc, &f, 1);
    Arena a, keep;  // the tape's, and the input's (which outlives the tape's resets)
    arena_init(&a, 1 << 24, 0);
    arena_init(&keep, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    Tensor *x = random_images(&keep, 32, mc->in_size, mc->in_size, mc->in_channels, 5, 0);
    for (int i = 0; i < 4; i++) {
        t.training = true;
        tape_reset(&t);
        model_forward(m, &t, x);
    }
    t.training = false;
    if (mp_points) quant_calibrate_begin_fp32_weights(qc), mpq_calibrate_begin(qc);
    else quant_calibrate_begin(qc);
    tape_reset(&t);
    model_forward(m, &t, x);
    quant_calibrate_end(qc);
    char err[256];
    if (mp_points && !mpq_calibrate_end(qc, mp_points, err, sizeof err)) DQ_FATAL("bench_infer: %s", err);
    quant_each(qc, settle_bits, NULL);
    if (!intmodel_from(m, qc, im, err, sizeof err)) DQ_FATAL("bench_infer: %s", err);
    arena_free(&a);
    arena_free(&keep);
    model_free(m);
    quant_context_free(qc);
}

static void integer_of(const MobileNetV2Config *mc, IntModel *im) { integer_how(mc, im, method, 0); }

/* Images per second of n-image forward passes, timed for about `budget` seconds. */
static double fp32_rate(Model *m, Tape *t, Tensor *x, double budget) {
    int iters = 0;
    double t0 = clock_seconds(), el;
    do {
        tape_reset(t);
        model_forward(m, t, x);
        iters++;
    } while ((el = clock_seconds() - t0) < budget);
    return iters * (double)x->shape[0] / el;
}

static double int_rate(IntModel *im, const float *x, int n, float *logits, double budget) {
    int iters = 0;
    double t0 = clock_seconds(), el;
    do {
        intmodel_forward(im, x, n, logits, false);
        iters++;
    } while ((el = clock_seconds() - t0) < budget);
    return iters * (double)n / el;
}

static const char *save_dir = "";

#define ONNX_IMAGES 256  // the check files' random images (4 batches of 64)

/* The two models as ONNX — float, and the integer program as the fused QDQ units ONNX Runtime
 * runs fastest (--onnx_fused) — with check files of random images and our logits, for
 * scripts/bench_vs_ort.sh. */
static void save_onnx(Model *fm, IntModel *im, const char *name) {
    char path[1200], check[1300], err[512];
    int n = ONNX_IMAGES, classes = fm->num_classes;
    Arena a, keep;
    arena_init(&a, 1 << 24, 0);
    arena_init(&keep, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = false;
    Tensor *x = random_images(&keep, n, fm->in_h, fm->in_w, fm->in_c, 11, 3);
    float *lf = dq_malloc((size_t)n * classes * sizeof(float)), *li = dq_malloc((size_t)n * classes * sizeof(float));
    Tensor *y = model_forward(fm, &t, x);
    memcpy(lf, y->data, (size_t)n * classes * sizeof(float));
    intmodel_forward(im, x->data, n, li, false);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s-%s.onnx", save_dir, name, k ? "int8" : "fp32");
        snprintf(check, sizeof check, "%s.check", path);
        bool ok = k ? intmodel_export_onnx(im, path, true, NULL, err, sizeof err)
                    : onnx_export_float(fm, path, NULL, err, sizeof err);
        const float *sets[1] = {k ? li : lf};
        if (!ok || !onnx_save_check(check, x->data, n, fm->in_h, fm->in_w, fm->in_c, sets, 1, classes, err, sizeof err))
            DQ_FATAL_FILE(path, "%s", err);
    }
    dq_free(lf), dq_free(li);
    arena_free(&a), arena_free(&keep);
}

static void bench_net(const Net *net, int reps, double budget, int threads) {
    Model *fm = mobilenetv2_new(&net->cfg, &nn_float_factory, 1);
    IntModel im;
    integer_of(&net->cfg, &im);
    if (save_dir[0]) {  // for exp_infer --profile and scripts/bench_vs_ort.sh
        char path[1200], err[256];
        snprintf(path, sizeof path, "%s/%s.dqm", save_dir, fm->name);
        if (!intmodel_save(&im, path, NULL, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
        save_onnx(fm, &im, fm->name);
    }
    IntModelSize size = intmodel_size(&im);
    int batches[2] = {64, 1};
    for (int bi = 0; bi < 2; bi++) {
        int n = batches[bi];
        Arena a, keep;
        arena_init(&a, 1 << 24, 0);
        arena_init(&keep, 1 << 20, 0);
        Tape t;
        tape_init(&t, &a);
        t.no_grad = true, t.training = false;
        Tensor *x = random_images(&keep, n, net->cfg.in_size, net->cfg.in_size, net->cfg.in_channels, 9, 1);
        float *logits = dq_malloc((size_t)n * net->cfg.num_classes * sizeof(float));
        fp32_rate(fm, &t, x, budget / 3), int_rate(&im, x->data, n, logits, budget / 3);  // warm-up
        double *f = dq_malloc(2 * (size_t)reps * sizeof(double)), *g = f + reps;
        for (int k = 0; k < reps; k++) {  // alternating, so that a slow moment hits both
            f[k] = fp32_rate(fm, &t, x, budget);
            g[k] = int_rate(&im, x->data, n, logits, budget);
        }
        double fr = median(f, reps), ir = median(g, reps);
        printf("| %s | %d | %d | %.0f | %.0f | %.2fx | %.1f |\n", net->name, n, threads, fr, ir, ir / fr, size.file / 1024.0);
        fprintf(stderr, "RESULT bench=infer model=%s batch=%d threads=%d fp32_img_s=%.0f int_img_s=%.0f ratio=%.3f dqm_kb=%.1f\n",
                net->name, n, threads, fr, ir, ir / fr, size.file / 1024.0);
        dq_free(f), dq_free(logits);
        arena_free(&a);
        arena_free(&keep);
    }
    intmodel_free(&im);
    model_free(fm);
}

/* ------------------------------------------------------------------ multipoint */
/* Multipoint programs (4-bit points, 1 to 2 per channel on average, A8) against plain int8 (min/max
 * W8A8: one int8 weight each), integer images/s of the main model at batch 64, all timed in turn
 * rep by rep; each cell the median, the ratio against plain int8's median. */
static void bench_multipoint(const Net *net, int reps, double budget, int threads) {
    static const double points[] = {0, 1, 1.25, 1.5, 2};  // 0: plain int8
    enum { K = sizeof points / sizeof *points };
    IntModel im[K];
    int gemms[K];  // int8 GEMM passes over the dense layers' channels, in units of one pass each
    double dense[K];
    for (int k = 0; k < K; k++) {
        integer_how(&net->cfg, &im[k], points[k] ? "multipoint" : "minmax", points[k]);
        long long all = 0, run = 0;
        for (int i = 0; i < im[k].n_ops; i++) {
            const IConv *cv = &im[k].ops[i].conv;
            if (im[k].ops[i].kind != IOP_CONV || cv->groups != 1) continue;
            all += cv->cout, run += cv->cout;
            run += cv->extra;
        }
        dense[k] = (double)run / (double)all, gemms[k] = 0;
        for (int i = 0; i < im[k].n_ops; i++)
            if (im[k].ops[i].kind == IOP_CONV && im[k].ops[i].conv.points > gemms[k]) gemms[k] = im[k].ops[i].conv.points;
    }
    int n = 64;
    Arena keep;
    arena_init(&keep, 1 << 20, 0);
    Tensor *x = random_images(&keep, n, net->cfg.in_size, net->cfg.in_size, net->cfg.in_channels, 9, 1);
    float *logits = dq_malloc((size_t)n * net->cfg.num_classes * sizeof(float));
    double *v = dq_malloc((size_t)K * reps * sizeof(double));
    for (int k = 0; k < K; k++) int_rate(&im[k], x->data, n, logits, budget / 3);  // warm-up
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < K; k++) v[(size_t)k * reps + r] = int_rate(&im[k], x->data, n, logits, budget);
    printf("\nMultipoint in the integer engine (%s, batch %d, %d threads; 4-bit points, A8) against plain int8 (min/max W8A8), "
           "images/s, medians of %d:\n\n", net->name, n, threads, reps);
    printf("| program | points per channel | dense GEMM work (channel passes / channels) | most points in a layer | "
           "integer img/s | / plain int8 | .dqm KB |\n|---|---|---|---|---|---|---|\n");
    double plain = 0;
    for (int k = 0; k < K; k++) {
        double rate = median(v + (size_t)k * reps, reps);
        if (k == 0) plain = rate;
        IntModelSize size = intmodel_size(&im[k]);
        char pts[16] = "1";
        if (points[k]) snprintf(pts, sizeof pts, "%.2f", points[k]);
        printf("| %s | %s | %.2f | %d | %.0f | %.2fx | %.1f |\n", points[k] ? "multipoint W4A8" : "plain int8 (min/max W8A8)", pts,
               dense[k], gemms[k], rate, rate / plain, size.file / 1024.0);
        fprintf(stderr, "RESULT bench=multipoint model=%s points=%.2f threads=%d int_img_s=%.0f ratio_plain=%.3f dense_work=%.3f dqm_kb=%.1f\n",
                net->name, points[k], threads, rate, rate / plain, dense[k], size.file / 1024.0);
        intmodel_free(&im[k]);
    }
    dq_free(v), dq_free(logits);
    arena_free(&keep);
}

/* ------------------------------------------------------------------ the int8 GEMM */
typedef struct GemmShape {
    const char *name;
    int M, N, K;
} GemmShape;

static void bench_igemm(int reps, double budget, int threads) {
    // MobileNetV2 w1.0 on 32×32 (s1x3), batch 64: the pointwise layers' M = 64·H·W, K → N
    static const GemmShape shapes[] = {
        {"expand 16->96 @32x32", 64 * 32 * 32, 96, 16},   {"project 96->24 @32x32", 64 * 32 * 32, 24, 96},
        {"expand 24->144 @32x32", 64 * 32 * 32, 144, 24}, {"expand 32->192 @16x16", 64 * 16 * 16, 192, 32},
        {"project 192->32 @16x16", 64 * 16 * 16, 32, 192}, {"expand 64->384 @8x8", 64 * 8 * 8, 384, 64},
        {"project 384->64 @8x8", 64 * 8 * 8, 64, 384},    {"expand 96->576 @8x8", 64 * 8 * 8, 576, 96},
        {"expand 160->960 @4x4", 64 * 4 * 4, 960, 160},   {"last 320->1280 @4x4", 64 * 4 * 4, 1280, 320},
    };
    const char *kern = igemm_kernel_name();
    double macs_per_cycle = !strcmp(kern, "avx512-vnni") ? 2 * 64 : !strcmp(kern, "avx-vnni") ? 2 * 32 : 0;
    // the clock is read beside each shape: on a shared machine it moves (1.8 to 3.3 GHz seen
    // within minutes), and a peak from another moment would be another machine's
    printf("\nint8 GEMM (%s, %d threads; peak %s at the clock measured just before and after the shape):\n\n", kern,
           threads, macs_per_cycle > 0 ? "2 dot-product instructions per cycle per core" : "none: no VNNI in this build");
    printf("| shape | M | N | K | GOP/s | GHz | of peak |\n|---|---|---|---|---|---|---|\n");
    Rng r;
    rng_seed(&r, 3, rng_stream(RNG_STREAM_FREE, 2));
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const GemmShape *g = &shapes[s];
        int lda = (g->K + 3) / 4 * 4;
        uint8_t *A = dq_malloc((size_t)g->M * lda);
        int8_t *B = dq_malloc((size_t)g->K * g->N), *P = dq_malloc(igemm_packed_bytes(g->K, g->N));
        int32_t *C = dq_malloc((size_t)g->M * g->N * sizeof(int32_t));
        for (size_t i = 0; i < (size_t)g->M * lda; i++) A[i] = (uint8_t)rng_below(&r, 256);
        for (size_t i = 0; i < (size_t)g->K * g->N; i++) B[i] = (int8_t)((int)rng_below(&r, 256) - 128);
        igemm_pack_b(g->K, g->N, B, P);
        double *v = dq_malloc((size_t)reps * sizeof(double)), hz = clock_core_hz();
        for (int k = 0; k < reps; k++) {
            int iters = 0;
            double t0 = clock_seconds(), el;
            do {
                igemm(g->M, g->N, g->K, A, lda, P, C, g->N);
                iters++;
            } while ((el = clock_seconds() - t0) < budget / 4);
            v[k] = 2.0 * g->M * g->N * g->K * iters / el / 1e9;
        }
        double gops = median(v, reps), after = clock_core_hz();
        hz = after > hz ? after : hz;
        double peak = 2 * macs_per_cycle * hz * threads / 1e9;
        char share[32] = "";
        if (peak > 0) snprintf(share, sizeof share, "%.0f%%", 100 * gops / peak);
        printf("| %s | %d | %d | %d | %.0f | %.2f | %s |\n", g->name, g->M, g->N, g->K, gops, hz / 1e9, share);
        fprintf(stderr, "RESULT bench=igemm shape=%s M=%d N=%d K=%d threads=%d gops=%.1f peak_gops=%.1f\n", g->name, g->M,
                g->N, g->K, threads, gops, peak);
        dq_free(A), dq_free(B), dq_free(P), dq_free(C), dq_free(v);
    }
}

int main(int argc, char **argv) {
    int reps = 9, threads = 2;
    float budget = 0.3f;
    char save[OPT_STRLEN] = "";
    bool gemm = true, multipoint = true;
    Option opts[] = {
        opt_int("reps", &reps, "timed repetitions per cell (median)", 1, 1000),
        opt_int("threads", &threads, "threads", 1, 256),
        opt_float("budget", &budget, "seconds per timed repetition", 0.01, 100),
        opt_string("save", save, "directory to write the benchmarked models into (.dqm, and ONNX with check files)"),
        opt_choice("method", method, "quantization of the integer models (4 bits)", "ddq|lsq"),
        opt_bool("gemm", &gemm, "also the int8 GEMM against its peak"),
        opt_bool("multipoint", &multipoint, "also multipoint programs against plain int8"),
    };
    save_dir = save;
    options_parse(opts, (int)(sizeof opts / sizeof *opts), argc, argv, "Integer engine against FP32 evaluation; the int8 GEMM against its peak.");
    threads_init(threads);
    static const Net nets[] = {
        {"mobilenetv2-w0.5-s1x2 28x28x1", {.width = 0.5f, .variant = MNV2_S1X2, .in_channels = 1, .in_size = 28, .num_classes = 10}},
        {"mobilenetv2-w1.0-s1x3 32x32x3", {.width = 1.0f, .variant = MNV2_S1X3, .in_channels = 3, .in_size = 32, .num_classes = 10}},
    };
    printf("Evaluation, FP32 forward against the integer program (%s W4A4%s), images/s, medians of %d:\n\n",
           !strcmp(method, "ddq") ? "DDQ" : "LSQ", !strcmp(method, "ddq") ? ", levels snapped" : "", reps);
    printf("| model | batch | threads | FP32 img/s | integer img/s | integer / FP32 | .dqm KB |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 2; i++) bench_net(&nets[i], reps, budget, threads);
    if (multipoint) bench_multipoint(&nets[0], reps, budget, threads);
    if (gemm) bench_igemm(reps, budget, threads);
    threads_shutdown();
    return 0;
}
