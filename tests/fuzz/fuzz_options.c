/* fuzz_options.c — the command line of exp_mobilenetv2 (every shared, pipeline, quantization and
 * model option) through the non-exiting parser and both validators. Arguments are the input's
 * newline-separated lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/qpipeline.h"
#include "train/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX_ARGS = 32 };
    char *text = malloc(size + 1), *argv[MAX_ARGS + 1] = {"exp"};
    memcpy(text, data, size);
    text[size] = 0;
    int argc = 1;
    for (char *p = text; argc < MAX_ARGS && p <= text + size;) {
        char *nl = memchr(p, '\n', (size_t)(text + size - p));
        if (nl) *nl = 0;
        argv[argc++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    TrainConfig cfg = {.dataset = "fashion-mnist", .out_dir = "runs/x", .epochs = 2, .batch_size = 128, .lr = 0.01f,
                       .schedule = "cosine", .seed = 1};
    QPipelineConfig p = {.fp32_epochs = 4, .fp32_lr = 0.1f, .fp32_warmup = 1};
    QuantConfig q = quant_config_defaults;
    float width = 0.5f, dropout = 0.2f;
    char variant[OPT_STRLEN] = "s1x2";
    Option o[TRAIN_MAX_OPTIONS];
    int n = train_config_options(&cfg, o);
    o[n++] = opt_float("width", &width, "width", 0.05, 4);
    o[n++] = opt_choice("variant", variant, "variant", "s1x2|s1x3|imagenet");
    o[n++] = opt_float("dropout", &dropout, "dropout", 0, 0.99);
    n += qpipeline_options(&p, &q, o + n);
    char err[1024];
    if (options_parse_args(o, n, argc, argv, err, sizeof err) == OPTIONS_OK) {
        train_config_validate(&cfg, err, sizeof err);
        quant_config_validate(&q, &quant_config_defaults, err, sizeof err);
    }
    free(text);
    return 0;
}
