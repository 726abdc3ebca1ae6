/* logs.c — log.csv, curves.svg and summary.json of a training run (see logs.h). */
#include "logs.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/svg.h"
#include "core/text.h"

void logs_path(char *buf, size_t n, const TrainConfig *c, const char *file) {
    if (snprintf(buf, n, "%s/%s", c->out_dir, file) >= (int)n) DQ_FATAL("--out_dir is too long");
}

static void save_text(const Text *t, const char *path) {
    char err[512];
    if (!text_save(t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
}

void logs_write_csv(const TrainConfig *c, const EpochLog *h, int n) {
    Text t;
    text_init(&t);
    text_printf(&t, "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,img_per_s\n");
    for (int i = 0; i < n; i++)
        text_printf(&t, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.2f,%.1f\n", h[i].epoch, h[i].lr, h[i].train_loss,
                    h[i].train_acc, h[i].test_loss, h[i].test_acc, h[i].seconds, h[i].img_per_s);
    char path[4096];
    logs_path(path, sizeof path, c, "log.csv");
    save_text(&t, path);
    text_free(&t);
}

void logs_write_svg(const TrainConfig *c, const char *title, const EpochLog *h, int n) {
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
    SvgSeries loss[2] = {{.label = "train loss", .x = x, .y = trl, .n = n, .color = "#1f77b4",
                          .dashed = false}, {.label = "test loss", .x = x, .y = tel, .n = n, .color = "#d62728",
                          .dashed = true}};
    SvgSeries acc[2] = {{.label = "train acc %", .x = x, .y = tra, .n = n, .color = "#1f77b4",
                         .dashed = false}, {.label = "test acc %", .x = x, .y = tea, .n = n, .color = "#d62728",
                         .dashed = true}};
    svg_line_chart(&t, (SvgAxes){.x = 70, .y = 60, .w = 370, .h = 300, .title = "loss", .xlabel = "epoch",
                                 .ylabel = "cross-entropy"}, loss, 2);
    svg_line_chart(&t, (SvgAxes){.x = 560, .y = 60, .w = 370, .h = 300, .title = "accuracy", .xlabel = "epoch",
                                 .ylabel = "top-1 %"}, acc, 2);
    svg_end(&t);
    char path[4096];
    logs_path(path, sizeof path, c, "curves.svg");
    save_text(&t, path);
    text_free(&t);
    dq_free(x);
}

void logs_write_json(const TrainConfig *c, const Model *m, const TrainResult *r) {
    Text t;
    text_init(&t);
    Option opts[TRAIN_MAX_OPTIONS];
    TrainConfig copy = *c;  // the table points into a config; this one is only read
    int n = train_config_options(&copy, opts);
    text_printf(&t, "{\n  \"model\": ");
    text_json_string(&t, m->name);
    text_printf(&t, ",\n  \"params\": %zu,\n  \"macs_per_image\": %lld,\n  \"config\": ", m->n_params, m->macs);
    options_write_json(&t, opts, n, "  ");
    text_printf(&t, ",\n  \"epochs\": %d,\n  \"final_test_acc\": %.6f,\n  \"best_test_acc\": %.6f,\n"
                    "  \"final_test_loss\": %.6f,\n  \"train_seconds\": %.1f,\n  \"train_img_per_s\": %.1f,\n"
                    "  \"max_rss_mb\": %ld,\n  \"resumed_from_epoch\": %d\n}\n",
                r->n_epochs, r->final_acc, r->best_acc, r->final_loss, r->seconds, r->img_per_s,
                r->max_rss_mb, r->resumed_from);
    char path[4096];
    logs_path(path, sizeof path, c, "summary.json");
    save_text(&t, path);
    text_free(&t);
}

