/* exp_infer — run a saved integer model (model.dqm, written by every quantized run) on a dataset's
 * test split with the integer engine, and report accuracy and images per second.
 *
 *     ./exp_infer --model=runs/mobilenetv2-ddq/model.dqm
 *     ./exp_infer --model=m.dqm --dataset=cifar10 --data_dir=/data/cifar10 --threads=2 --batch=1
 *     ./exp_infer --model=m.dqm --list          the program, one op per line
 *     ./exp_infer --model=m.dqm --export_onnx=m.onnx   as ONNX QDQ, with check data for
 *                                                       scripts/onnx_check.js
 *
 * Speed is the forward passes alone (the loader's work is outside the clock), the median of
 * --repeat passes over the set. A damaged or mismatched model file is "<file>: error: …", exit 1.
 * Ends with a machine-readable line:
 *     RESULT exp=exp_infer model=… dataset=… images=… acc=… img_s=… threads=… batch=… kernels=…
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/options.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "inteval.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    char model[OPT_STRLEN] = "", dataset[OPT_STRLEN] = "fashion-mnist", data_dir[OPT_STRLEN] = DATASET_DEFAULT_DIR;
    char kernels[OPT_STRLEN] = "fast", onnx[OPT_STRLEN] = "";
    int threads = 0, batch = 128, subset = 0, repeat = 3;
    bool list = false, profile = false, onnx_fused = false;
    Option opts[] = {
        opt_string("model", model, "the integer model file (.dqm) to run"),
        opt_choice("dataset", dataset, "dataset whose test split to run on", DATASET_NAMES),
        opt_string("data_dir", data_dir, "directory with the dataset's files"),
        opt_int("threads", &threads, "threads (0: one per core)", 0, 1024),
        opt_int("batch", &batch, "images per forward pass", 1, 65536),
        opt_int("subset", &subset, "the first N test images (0: all)", 0, 1 << 30),
        opt_int("repeat", &repeat, "timed passes over the set (the median is reported)", 1, 1000),
        opt_choice("kernels", kernels, "fast kernels, or the plain reference ones", "fast|ref"),
        opt_bool("list", &list, "print the program (one op per line) and exit"),
        opt_bool("profile", &profile, "print the time spent in each op (summed over the passes)"),
        opt_string("export_onnx", onnx, "write the model as ONNX QDQ to this file (and FILE.check: the first "
                                        "1000 test images, our integer logits) and exit"),
        opt_bool("onnx_fused", &onnx_fused, "with --export_onnx: every convolution as the unit ONNX Runtime fuses "
                                            "into QLinearConv, even where that is not exact (for speed)"),
    };
    int n_opts = (int)(sizeof opts / sizeof *opts);
    setvbuf(stdout, NULL, _IOLBF, 0);
    options_parse(opts, n_opts, argc, argv,
                  "Run an integer model (.dqm) on a dataset's test split: accuracy and images/s.");
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    if (!model[0]) DQ_FATAL_FILE(prog, "--model=FILE is required (a quantized run writes <out_dir>/model.dqm)");
    IntModel im;
    char err[512];
    if (!intmodel_load(&im, model, err, sizeof err)) DQ_FATAL_FILE(model, "%s", err);
    IntModelSize size = intmodel_size(&im);
    printf("model %s: %d ops, %dx%dx%d -> %d classes, %.1f KB (weight codes %.1f KB, tables %.1f KB)\n", model, im.n_ops,
           im.in_h, im.in_w, im.in_c, im.num_classes, size.file / 1024.0, size.weights / 1024.0, size.tables / 1024.0);
    if (list) {
        intmodel_print(&im, stdout);
        intmodel_free(&im);
        return 0;
    }
    Dataset test;
    dataset_load(&test, dataset, data_dir, SPLIT_TEST);
    if (test.h != im.in_h || test.w != im.in_w || test.c != im.in_c || test.num_classes != im.num_classes)
        DQ_FATAL_FILE(model, "the model takes %dx%dx%d images into %d classes; %s has %dx%dx%d and %d", im.in_h, im.in_w,
                      im.in_c, im.num_classes, dataset, test.h, test.w, test.c, test.num_classes);
    threads_init(threads);
    if (onnx[0]) {
        export_onnx_checked(&im, NULL, &test, batch, onnx, onnx_fused);
        intmodel_free(&im), dataset_free(&test);
        threads_shutdown();
        return 0;
    }
    bool ref = !strcmp(kernels, "ref");
    if (profile) im.op_seconds = dq_calloc((size_t)im.n_ops, sizeof(double));
    double *speeds = dq_malloc((size_t)repeat * sizeof(double)), acc = 0;
    long long n = 0;
    for (int r = 0; r < repeat; r++) {
        EvalSpeed e = int_evaluate(&im, &test, batch, subset, ref, NULL);
        speeds[r] = e.img_s, acc = e.acc, n = e.n;
        printf("pass %d/%d: top-1 %.2f%%, %.0f images/s\n", r + 1, repeat, 100 * e.acc, e.img_s);
    }
    qsort(speeds, (size_t)repeat, sizeof *speeds, cmp_double);
    if (profile) {
        double total = 0;
        for (int i = 0; i < im.n_ops; i++) total += im.op_seconds[i];
        printf("\n| op | kind | layer | output | seconds | share |\n|---|---|---|---|---|---|\n");
        static const char *kinds[] = {"quant-input", "conv", "quant-fix", "add", "gap", "maxpool", "shortcut"};
        for (int i = 0; i < im.n_ops; i++) {
            const ITensor *o = &im.tensors[im.ops[i].out];
            printf("| %d | %s | %s | %dx%dx%d | %.3f | %.1f%% |\n", i, kinds[im.ops[i].kind], im.ops[i].name, o->h, o->w,
                   o->c, im.op_seconds[i], 100 * im.op_seconds[i] / total);
        }
        printf("\n");
    }
    printf("RESULT exp=%s model=%s dataset=%s images=%lld acc=%.4f img_s=%.0f threads=%d batch=%d kernels=%s\n", prog,
           model, dataset, n, acc, speeds[repeat / 2], threads_count(), batch, kernels);
    dq_free(speeds);
    dataset_free(&test);
    intmodel_free(&im);
    threads_shutdown();
    return 0;
}
