/* test_flips.c — --q_flips counts weights whose quantized level changes between steps: a weight
 * moved to another level counts once, in its own layer; levels that all move together (an LSQ
 * step scaled with its weights) count nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "experiments/flips.h"
#include "helpers.h"
#include "nn/mobilenetv2.h"
#include "quant/control.h"

static void setup(void) { test_setup_quiet(); }
static void teardown(void) { test_teardown(); }

/* The flips at `step` in the CSV: of `layer`, or of every layer when layer is NULL (−1: no row). */
static long long flips_at(const char *path, long long step, const char *layer) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[512], name[128];
    long long s, w, got, n = -1;
    int bits, groups;
    cr_assert_not_null(fgets(line, sizeof line, f));  // header
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lld,%127[^,],%d,%d,%lld,%lld", &s, name, &bits, &groups, &w, &got) == 6 && s == step &&
            (!layer || !strcmp(name, layer)))
            n = (n < 0 ? 0 : n) + got;
    fclose(f);
    return n;
}

Test(flips, a_moved_weight_counts_once_and_moving_levels_do_not, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    snprintf(c.method, sizeof c.method, "lsq");
    c.w_bits = 2;
    QuantContext *qc = quant_context_new(&c);
    LayerFactory fac = quant_factory(qc);
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4, .dropout = 0};
    Model *m = mobilenetv2_new(&mc, &fac, 3);
    quant_calibrate_begin(qc);
    T.no_grad = true, T.training = true;
    model_forward(m, &T, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
    quant_calibrate_end(qc);

    char path[] = "/tmp/ddqc_flips_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    char err[256];
    Flips *fl = flips_open(qc, path, err, sizeof err);
    cr_assert_not_null(fl, "%s", err);
    flips_step(fl, 1);  // the first step: nothing to compare with, no rows
    flips_step(fl, 2);  // nothing changed

    QuantLayer *l = qc->layers[1];  // a 2-bit depthwise layer
    Tensor *w = l->weight;
    float big = 0;
    for (size_t i = 0; i < w->numel; i++) big = fmaxf(big, fabsf(w->data[i]));
    w->data[5] = w->data[5] > 0 ? -10 * big : 10 * big;  // to the other end of the grid
    flips_step(fl, 3);

    char step_name[160];
    snprintf(step_name, sizeof step_name, "%s.wq.step", l->base.name);
    const Param *sp = slab_find(&m->slab, step_name);
    cr_assert_not_null(sp, "%s", step_name);
    Tensor *step = sp->tensor;
    for (size_t i = 0; i < w->numel; i++) w->data[i] *= 2;  // every level moves, no weight changes level
    for (size_t i = 0; i < step->numel; i++) step->data[i] *= 2;
    flips_step(fl, 4);
    flips_close(fl, 3);

    cr_assert_eq(flips_at(path, 1, l->base.name), -1, "no row for the first step");
    cr_assert_eq(flips_at(path, 2, NULL), 0);
    cr_assert_eq(flips_at(path, 3, l->base.name), 1);
    cr_assert_eq(flips_at(path, 3, NULL), 1, "only the moved weight, in its own layer");
    cr_assert_eq(flips_at(path, 4, l->base.name), 0, "levels scaled with their weights: no flip");
    unlink(path);
    model_free(m);
    quant_context_free(qc);
}
