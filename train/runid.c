/* runid.c — identity text and its comparison (see runid.h). */
#include "runid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static bool skipped(const char *key, const char *const *skip) {
    for (int i = 0; skip && skip[i]; i++)
        if (!strncmp(key, skip[i], strlen(skip[i]))) return true;
    return false;
}

static void append(Text *t, const Option *o) {
    char v[OPT_STRLEN];
    options_value_str(o, v, sizeof v);
    text_printf(t, "%s=%s\n", o->key, v);
}

void runid_append(Text *t, const Option *opts, int n, const char *const *skip) {
    for (int i = 0; i < n; i++)
        if (opts[i].role != OPT_INCIDENTAL && !skipped(opts[i].key, skip)) append(t, &opts[i]);
}

void runid_append_relevant(Text *t, const Option *opts, int n, RunIdRelevant relevant, const void *ctx) {
    for (int i = 0; i < n; i++)
        if (opts[i].role != OPT_INCIDENTAL && relevant(opts[i].key, ctx)) append(t, &opts[i]);
}

/* The value of key in "key=value\n" lines (len bytes), copied into out; false if absent. */
static bool lookup(const char *text, size_t len, const char *key, char *out, size_t size) {
    size_t klen = strlen(key);
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        if (ll > klen && !strncmp(line, key, klen) && line[klen] == '=') {
            size_t vl = ll - klen - 1 < size - 1 ? ll - klen - 1 : size - 1;
            memcpy(out, line + klen + 1, vl);
            out[vl] = 0;
            return true;
        }
        pos += ll + 1;
    }
    return false;
}

/* Each key of `text` (len bytes) in turn: fn(key, ctx); stops early when fn returns false. */
static void each_key(const char *text, size_t len, void (*fn)(const char *key, void *ctx), void *ctx) {
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos), *eq;
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        eq = memchr(line, '=', ll);
        char key[128];
        if (eq && (size_t)(eq - line) < sizeof key) {
            memcpy(key, line, (size_t)(eq - line));
            key[eq - line] = 0;
            fn(key, ctx);
        }
        pos += ll + 1;
    }
}

typedef struct Compare {
    const char *stored, *current;
    size_t stored_len, current_len;
    const RunIdCheck *how;
    Text diff;
    bool in_current_pass;  // second pass: keys only the current run has
} Compare;

/* Options added after checkpoints carried identities: a checkpoint without the key ran as if it
 * had this value, so that value matches its absence (older runs stay resumable and reusable). */
static const struct {
    const char *key, *before;
} ADDED_LATER[] = {
    {"ddq_snap_grid", "false"},
    {"alloc_train_images", "4096"}, {"bsq_alpha", "0.1"}, {"bsq_lr", "50"}, {"bsq_steps", "100"},
    {"bsq_requant", "20"}, {"bsq_trials", "6"}, {"haq_episodes", "60"}, {"haq_warmup", "20"},
    {"haq_ft_steps", "16"}, {"haq_ft_lr", "0.01"}, {"haq_resource", "size"},
    {"q_ptq", "false"}, {"mp_points", "1.25"}, {"ddq_init_lsq", "false"}, {"ddq_init_centered", "false"},
    {"ddq_merge_centered", "false"}, {"half", "off"}, {"loss_scale", "none"}, {"loss_scale_init", "65536"},
    {"loss_scale_window", "2000"},
};

static bool absent_means(const char *key, const char *value) {
    for (size_t i = 0; i < sizeof ADDED_LATER / sizeof *ADDED_LATER; i++)
        if (!strcmp(key, ADDED_LATER[i].key)) return !strcmp(value, ADDED_LATER[i].before);
    return false;
}

static void compare_key(const char *key, void *ctx) {
    Compare *c = ctx;
    char a[OPT_STRLEN] = "", b[OPT_STRLEN] = "";
    bool has_a = lookup(c->stored, c->stored_len, key, a, sizeof a);
    bool has_b = lookup(c->current, c->current_len, key, b, sizeof b);
    if (c->in_current_pass && has_a) return;  // compared in the first pass
    if (!has_b) return;  // the current run left it out: it has no effect on what this run computes
    if (has_a && has_b && !strcmp(a, b)) return;
    if (!has_a && has_b && absent_means(key, b)) return;
    if (!strcmp(key, "threads") && !c->how->continues) return;  // a finished run is only reused
    if (!strcmp(key, "epochs") && has_a && has_b && c->how->extend && atoi(b) > atoi(a)) return;
    text_printf(&c->diff, "%s--%s=%s (checkpoint: %s)", c->diff.len ? ", " : "", key, has_b ? b : "unset",
                has_a ? a : "unset");
}

bool runid_compare(const char *stored, size_t stored_len, const char *current, const RunIdCheck *how, char *diff,
                   size_t diff_size) {
    Compare c = {.stored = stored, .current = current, .stored_len = stored_len, .current_len = strlen(current),
                 .how = how};
    text_init(&c.diff);
    each_key(stored, stored_len, compare_key, &c);
    c.in_current_pass = true;
    each_key(current, c.current_len, compare_key, &c);
    bool same = c.diff.len == 0;
    if (!same) snprintf(diff, diff_size, "%s", c.diff.s);
    text_free(&c.diff);
    return same;
}
