/* options.c — parsing, validation and printing of --key=value options. */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *type_name(const Option *o) {
    static const char *names[] = {"INT", "FLOAT", "BOOL", "TEXT", "CHOICE"};
    return o->type == OPT_CHOICE ? o->choices : names[o->type];
}

void options_value_str(const Option *o, char *buf, size_t size) {
    switch (o->type) {
    case OPT_INT: snprintf(buf, size, "%d", *(int *)o->target); break;
    case OPT_FLOAT: snprintf(buf, size, "%g", *(float *)o->target); break;
    case OPT_BOOL: snprintf(buf, size, "%s", *(bool *)o->target ? "true" : "false"); break;
    default: snprintf(buf, size, "%s", (char *)o->target); break;
    }
}

static void usage(const Option *opts, int n, const char *prog, const char *about) {
    printf("usage: %s [--key=value ...]\n", prog);
    if (about) printf("%s\n", about);
    printf("\noptions (default in brackets):\n");
    for (int i = 0; i < n; i++) {
        char val[OPT_STRLEN], head[128];
        options_value_str(&opts[i], val, sizeof val);
        snprintf(head, sizeof head, "--%s=%s", opts[i].key, type_name(&opts[i]));
        printf("  %-34s %s [%s]\n", head, opts[i].help, val);
    }
    printf("  %-34s %s\n", "--help", "print this help and exit");
}

static bool in_choices(const char *choices, const char *v) {
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, v, n) == 0) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

static void set_value(const Option *o, const char *prog, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < -2147483647L || x > 2147483647L)
            DQ_FATAL_FILE(prog, "--%s=%s: not an integer (see --help)", o->key, v);
        if (o->min < o->max && (x < o->min || x > o->max))
            DQ_FATAL_FILE(prog, "--%s=%ld: must be in [%g, %g]", o->key, x, o->min, o->max);
        *(int *)o->target = (int)x;
        break;
    }
    case OPT_FLOAT: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x))
            DQ_FATAL_FILE(prog, "--%s=%s: not a finite number (see --help)", o->key, v);
        if (o->min < o->max && (x < o->min || x > o->max))
            DQ_FATAL_FILE(prog, "--%s=%g: must be in [%g, %g]", o->key, x, o->min, o->max);
        *(float *)o->target = (float)x;
        break;
    }
    case OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(bool *)o->target = true;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(bool *)o->target = false;
        else DQ_FATAL_FILE(prog, "--%s=%s: not a boolean (true/false)", o->key, v);
        break;
    case OPT_CHOICE:
        if (!in_choices(o->choices, v)) DQ_FATAL_FILE(prog, "--%s=%s: must be one of %s", o->key, v, o->choices);
        /* fall through */
    case OPT_STRING:
        if (strlen(v) >= OPT_STRLEN) DQ_FATAL_FILE(prog, "--%s: value longer than %d characters", o->key, OPT_STRLEN - 1);
        strcpy((char *)o->target, v);
        break;
    }
}

void options_parse(const Option *opts, int n, int argc, char **argv, const char *about) {
    const char *prog = argc > 0 ? argv[0] : "program";
    const char *slash = strrchr(prog, '/');
    if (slash) prog = slash + 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(opts, n, prog, about);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            DQ_FATAL_FILE(prog, "unexpected argument '%s': options are --key=value (see --help)", a);
        const char *key = a + 2, *eq = strchr(key, '=');
        size_t klen = eq ? (size_t)(eq - key) : strlen(key);
        const Option *o = NULL;
        for (int k = 0; k < n; k++)
            if (strlen(opts[k].key) == klen && !strncmp(opts[k].key, key, klen)) o = &opts[k];
        if (!o) DQ_FATAL_FILE(prog, "unknown option '--%.*s' (see --help)", (int)klen, key);
        if (!eq && o->type != OPT_BOOL) DQ_FATAL_FILE(prog, "--%s needs a value: --%s=%s", o->key, o->key, type_name(o));
        set_value(o, prog, eq ? eq + 1 : "true");
    }
}

void options_print(const Option *opts, int n, FILE *f, const char *prefix) {
    for (int i = 0; i < n; i++) {
        char val[OPT_STRLEN];
        options_value_str(&opts[i], val, sizeof val);
        fprintf(f, "%s%s=%s\n", prefix, opts[i].key, val);
    }
}
