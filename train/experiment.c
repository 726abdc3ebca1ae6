/* experiment.c — shared experiment plumbing. */
#include "experiment.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/ops.h"

void experiment_setup(Experiment *x, TrainConfig *cfg, const Option *extra, int n_extra, int argc,
                      char **argv, const char *about) {
    memset(x, 0, sizeof *x);
    setvbuf(stdout, NULL, _IOLBF, 0);  // logs redirected to a file show every line as it comes
    x->prog = argc > 0 ? argv[0] : "experiment";
    const char *slash = strrchr(x->prog, '/');
    if (slash) x->prog = slash + 1;
    x->n_opts = x->n_train_opts = train_config_options(cfg, x->opts);
    if (x->n_opts + n_extra > TRAIN_MAX_OPTIONS) DQ_FATAL("too many options");
    memcpy(x->opts + x->n_opts, extra, (size_t)n_extra * sizeof *extra);
    x->n_opts += n_extra;
    options_parse(x->opts, x->n_opts, argc, argv, about);
    train_config_check(cfg, x->prog);
    options_print(x->opts, x->n_opts, stdout, "config ");
    fflush(stdout);
}

void experiment_load_data(Experiment *x, const TrainConfig *cfg) {
    dataset_load(&x->train, cfg->dataset, cfg->data_dir, SPLIT_TRAIN);
    dataset_load(&x->test, cfg->dataset, cfg->data_dir, SPLIT_TEST);
    printf("data %s: %d train, %d test images of %dx%dx%d from %s\n", cfg->dataset, x->train.n,
           x->test.n, x->train.h, x->train.w, x->train.c, cfg->data_dir);
}

void experiment_free(Experiment *x) {
    dataset_free(&x->train);
    dataset_free(&x->test);
}

void experiment_result(const Experiment *x, const Model *m, const TrainResult *r, const char *extra) {
    if (!r->finished) {  // a partial run has no result to report
        printf("no RESULT line: the run stopped before its last epoch (--resume continues it)\n");
        return;
    }
    printf("RESULT exp=%s model=%s params=%zu mmacs=%.2f epochs=%d test_acc=%.4f best_acc=%.4f "
           "train_s=%.1f img_s=%.1f rss_mb=%ld%s%s\n",
           x->prog, m->name, m->n_params, (double)m->macs / 1e6, r->n_epochs, r->final_acc,
           r->best_acc, r->seconds, r->img_per_s, r->max_rss_mb, extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}
