/* test_options.c — the shared --key=value parser: values, booleans, choices, and every kind of
 * bad flag rejected with a message naming it. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "helpers.h"
#include "core/options.h"

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
    opts[0] = (Option){"n", OPT_INT, &cfg.n, "count", 1, 10};
    opts[1] = (Option){"lr", OPT_FLOAT, &cfg.lr, "rate", 0, 1};
    opts[2] = (Option){"flag", OPT_BOOL, &cfg.flag, "switch"};
    opts[3] = (Option){"name", OPT_STRING, cfg.name, "text"};
    opts[4] = (Option){"schedule", OPT_CHOICE, cfg.sched, "kind", 0, 0, "step|cosine"};
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
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *m = expect_fatal(cases[i].fn, NULL);
        cr_assert(strstr(m, cases[i].expect) != NULL, "case %zu: got '%s'", i, m);
    }
}

Test(options, unknown_flag_exits_nonzero, .init = setup, .fini = test_teardown, .exit_code = 1) {
    p_unknown(NULL);
}

Test(options, help_exits_zero_and_lists_defaults, .init = setup, .fini = test_teardown, .exit_code = 0) {
    cr_redirect_stdout();
    parse("--help", NULL);
}
