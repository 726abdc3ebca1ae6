/* test_runid.c — run identities: a difference is named, threads may differ for a finished run,
 * and an option added after a checkpoint was written matches its absence only at the value the
 * older run had in effect. */
#include <string.h>

#include "helpers.h"
#include "quant/qconfig.h"
#include "train/runid.h"

static bool same(const char *stored, const char *current, bool continues, char *diff, size_t n) {
    RunIdCheck how = {.continues = continues};
    return runid_compare(stored, strlen(stored), current, &how, diff, n);
}

Test(runid, differences_are_named) {
    char diff[256];
    cr_assert(same("lr=0.1\nepochs=3\n", "lr=0.1\nepochs=3\n", true, diff, sizeof diff));
    cr_assert(!same("lr=0.1\nepochs=3\n", "lr=0.2\nepochs=3\n", true, diff, sizeof diff));
    cr_assert(strstr(diff, "--lr=0.2 (checkpoint: 0.1)"), "%s", diff);
    cr_assert(!same("lr=0.1\n", "lr=0.1\nmomentum=0.9\n", true, diff, sizeof diff), "a key only the new run has");
    cr_assert(strstr(diff, "--momentum=0.9 (checkpoint: unset)"), "%s", diff);
}

Test(runid, threads_may_differ_only_for_a_finished_run) {
    char diff[256];
    cr_assert(same("threads=2\n", "threads=4\n", false, diff, sizeof diff));
    cr_assert(!same("threads=2\n", "threads=4\n", true, diff, sizeof diff));
}

Test(runid, an_option_added_later_matches_its_absence_at_the_old_behaviour) {
    char diff[256];
    cr_assert(same("lr=0.1\n", "lr=0.1\nddq_snap_grid=false\n", true, diff, sizeof diff), "%s", diff);
    cr_assert(!same("lr=0.1\n", "lr=0.1\nddq_snap_grid=true\n", true, diff, sizeof diff));
    cr_assert(strstr(diff, "--ddq_snap_grid=true (checkpoint: unset)"), "%s", diff);
}

/* The allocator options added in issue 14: a fine-tune checkpoint from before them (no such keys)
 * resumes under today's defaults — the identity of the defaults with those lines removed matches. */
Test(runid, allocator_options_added_later_match_at_their_defaults) {
    QuantConfig c = quant_config_defaults;
    Option o[QUANT_MAX_OPTIONS];
    int n = quant_config_options(&c, o);
    Text now, before;
    text_init(&now), text_init(&before);
    runid_append(&now, o, n, NULL);
    const char *added[] = {"alloc_train_images=", "bsq_", "haq_"};
    for (const char *line = now.s; *line;) {
        const char *end = strchr(line, '\n');
        bool keep = true;
        for (int k = 0; k < 3; k++) keep &= strncmp(line, added[k], strlen(added[k])) != 0;
        if (keep) text_printf(&before, "%.*s\n", (int)(end - line), line);
        line = end + 1;
    }
    cr_assert(before.len < now.len, "the keys are in today's identity");
    char diff[512];
    RunIdCheck how = {.continues = true};
    cr_assert(runid_compare(before.s, before.len, now.s, &how, diff, sizeof diff), "%s", diff);
    c.bsq_steps = 7;  // but not at another value
    n = quant_config_options(&c, o);
    text_free(&now), text_init(&now);
    runid_append(&now, o, n, NULL);
    cr_assert(!runid_compare(before.s, before.len, now.s, &how, diff, sizeof diff));
    cr_assert(strstr(diff, "--bsq_steps=7 (checkpoint: unset)"), "%s", diff);
    text_free(&now), text_free(&before);
}

static bool quant_relevant(const char *key, const void *cfg) { return quant_config_has_effect(cfg, key); }

static void identity_of_config(QuantConfig c, bool relevant_only, Text *t) {
    Option o[QUANT_MAX_OPTIONS];
    int n = quant_config_options(&c, o);
    text_init(t);
    if (relevant_only) runid_append_relevant(t, o, n, quant_relevant, &c);
    else runid_append(t, o, n, NULL);
}

/* An LSQ run's identity leaves DDQ's options out, so an LSQ checkpoint written when a DDQ default
 * was different still resumes; a DDQ run with a different DDQ option is still refused. */
Test(runid, options_without_effect_are_left_out_and_ignored) {
    QuantConfig lsq = quant_config_defaults, old = quant_config_defaults;
    snprintf(lsq.method, sizeof lsq.method, "lsq");
    snprintf(old.method, sizeof old.method, "lsq");
    old.settle = 0.2f;
    Text now, stored;
    identity_of_config(lsq, true, &now);
    identity_of_config(old, false, &stored);  // an older checkpoint: every option, ddq_settle=0.2
    cr_assert(!strstr(now.s, "ddq_"), "%s", now.s);
    cr_assert(strstr(now.s, "q_method=lsq\n") && strstr(stored.s, "ddq_settle=0.2\n"), "%s", stored.s);
    char diff[512];
    RunIdCheck how = {.continues = true};
    cr_assert(runid_compare(stored.s, stored.len, now.s, &how, diff, sizeof diff), "%s", diff);
    text_free(&now), text_free(&stored);

    QuantConfig ddq = quant_config_defaults, ddq_old = quant_config_defaults;
    ddq_old.settle = 0.2f;
    identity_of_config(ddq, true, &now);
    identity_of_config(ddq_old, true, &stored);
    cr_assert(!runid_compare(stored.s, stored.len, now.s, &how, diff, sizeof diff));
    cr_assert(strstr(diff, "--ddq_settle=0.1 (checkpoint: 0.2)"), "%s", diff);
    cr_assert(!strstr(now.s, "bsq_") && !strstr(now.s, "hawq_"), "no allocator: its options are left out");
    text_free(&now), text_free(&stored);
}
