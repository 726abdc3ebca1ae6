/* test_options.c — the shared --key=value parser: values, booleans, choices, and every kind of
 * bad flag rejected with a message naming it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "helpers.h"
#include "core/options.h"
#include "train/config.h"

#include <criterion/redirect.h>

typedef struct Cfg {
    int n;
    float lr;
    bool flag;
    char name[OPT_STRLEN], sched[OPT_STRLEN];
} Cfg;

static Cfg cfg;
static Option opts[5];

static void setup(void) {
    test_setup_quiet();
    cfg = (Cfg){.n = 3, .lr = 0.1f, .name = "a", .sched = "cosine"};
    opts[0] = opt_int("n", &cfg.n, "count", 1, 10);
    opts[1] = opt_float("lr", &cfg.lr, "rate", 0, 1);
    opts[2] = opt_bool("flag", &cfg.flag, "switch");
    opts[3] = opt_string("name", cfg.name, "text");
    opts[4] = opt_choice("schedule", cfg.sched, "kind", "step|cosine");
}

static void parse(const char *a, const char *b) {
    char prog[] = "prog", arg1[256], arg2[256];
    snprintf(arg1, sizeof arg1, "%s", a);
    snprintf(arg2, sizeof arg2, "%s", b ? b : "");
    char *argv[] = {prog, arg1, arg2, NULL};
    options_parse(opts, 5, b ? 3 : 2, argv, NULL);
}

Test(options, parses_every_type, .init = setup, .fini = test_teardown) {
    parse("--n=7", "--lr=0.25");
    cr_assert_eq(cfg.n, 7);
    cr_assert_float_eq(cfg.lr, 0.25f, 0);
    parse("--flag", "--name=hello world");
    cr_assert(cfg.flag);
    cr_assert_str_eq(cfg.name, "hello world");
    parse("--flag=false", "--schedule=step");
    cr_assert(!cfg.flag);
    cr_assert_str_eq(cfg.sched, "step");
}

static void p_unknown(void *c) { parse("--nope=1", NULL); }
static void p_int(void *c) { parse("--n=3x", NULL); }
static void p_range(void *c) { parse("--n=11", NULL); }
static void p_float(void *c) { parse("--lr=nan", NULL); }
static void p_choice(void *c) { parse("--schedule=linear", NULL); }
static void p_bool(void *c) { parse("--flag=maybe", NULL); }
static void p_missing(void *c) { parse("--n", NULL); }
static void p_positional(void *c) { parse("file.txt", NULL); }
static void p_underflow(void *c) { parse("--lr=1e-50", NULL); }
static void p_subnormal(void *c) { parse("--lr=1e-40", NULL); }
static void p_space_float(void *c) { parse("--lr= 0.5", NULL); }
static void p_space_int(void *c) { parse("--n= 3", NULL); }
static void p_hex_range(void *c) { parse("--lr=0x1p1", NULL); }

Test(options, rejects_bad_flags_with_a_clear_message, .init = setup, .fini = test_teardown) {
    struct {
        void (*fn)(void *);
        const char *expect;
    } cases[] = {
        {p_unknown, "prog: error: unknown option '--nope'"},
        {p_int, "--n=3x: not an integer"},
        {p_range, "--n=11: must be in [1, 10]"},
        {p_float, "--lr=nan: not a finite number"},
        {p_choice, "--schedule=linear: must be one of step|cosine"},
        {p_bool, "--flag=maybe: not a boolean"},
        {p_missing, "--n needs a value"},
        {p_positional, "unexpected argument 'file.txt'"},
        {p_underflow, "--lr=1e-50: not representable as a float"},
        {p_subnormal, "--lr=1e-40: not representable as a float"},
        {p_space_float, "--lr= 0.5: not a number"},
        {p_space_int, "--n= 3: not an integer"},
        {p_hex_range, "--lr=0x1p1: must be in [0, 1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *m = expect_fatal(cases[i].fn, NULL);
        cr_assert(strstr(m, cases[i].expect) != NULL, "case %zu: got '%s'", i, m);
    }
}

Test(options, unknown_flag_exits_nonzero, .init = setup, .fini = test_teardown, .exit_code = 1) {
    p_unknown(NULL);
}

Test(options, help_exits_zero, .init = setup, .fini = test_teardown, .exit_code = 0) {
    cr_redirect_stdout();
    parse("--help", NULL);
}

Test(options, help_lists_every_option_with_its_default, .init = setup, .fini = test_teardown) {
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    options_usage(opts, 5, "prog", "About it.", f);
    fclose(f);
    const char *want[] = {"usage: prog [--key=value ...]", "About it.", "--n=INT", "count [3]", "--lr=FLOAT", "rate [0.1]",
                          "--flag=BOOL", "switch [false]", "--name=TEXT", "text [a]", "--schedule=step|cosine",
                          "kind [cosine]", "--help"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_assert(strstr(buf, want[i]) != NULL, "'%s' not in:\n%s", want[i], buf);
}

Test(options, the_core_returns_errors_and_help_without_exiting, .init = setup, .fini = test_teardown) {
    char prog[] = "prog", a1[] = "--n=4", a2[] = "--lr=2", a3[] = "--help", err[256];
    char *bad[] = {prog, a1, a2, NULL}, *help[] = {prog, a3, a2, NULL};
    cr_assert_eq(options_parse_args(opts, 5, 3, bad, err, sizeof err), OPTIONS_ERROR);
    cr_assert_str_eq(err, "--lr=2: must be in [0, 1]");
    cr_assert_eq(cfg.n, 4, "the arguments before the bad one are applied");
    cr_assert_eq(options_parse_args(opts, 5, 3, help, err, sizeof err), OPTIONS_HELP);
    char *good[] = {prog, a1, NULL};
    cr_assert_eq(options_parse_args(opts, 5, 2, good, err, sizeof err), OPTIONS_OK);
}

Test(options, floats_print_as_the_shortest_exact_text, .init = setup, .fini = test_teardown) {
    char buf[64];
    cfg.lr = 0.1f;
    options_value_str(&opts[1], buf, sizeof buf);
    cr_assert_str_eq(buf, "0.1");
    cfg.lr = 0.1f + 1e-8f;  // the next float up: 6 digits would print it as 0.1
    options_value_str(&opts[1], buf, sizeof buf);
    cr_assert_float_eq(strtof(buf, NULL), cfg.lr, 0, "%s reads back as another float", buf);
}

Test(options, a_run_of_zero_epochs_is_refused, .init = setup, .fini = test_teardown) {
    // --epochs=0 once exited 0 with "RESULT … test_acc=0.0000", a result nothing measured.
    TrainConfig c = {.epochs = 3};
    Option o[TRAIN_MAX_OPTIONS];
    int n = train_config_options(&c, o);
    char prog[] = "prog", a1[] = "--epochs=0", err[256];
    char *argv[] = {prog, a1, NULL};
    cr_assert_eq(options_parse_args(o, n, 2, argv, err, sizeof err), OPTIONS_ERROR);
    cr_assert(strstr(err, "--epochs=0: must be in [1,") != NULL, "got: %s", err);
}
