/* options.c — parsing, validation and printing of --key=value options. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "text.h"

Option opt_int(const char *key, int *target, const char *help, double min, double max) {
    return (Option){.key = key, .type = OPT_INT, .target = target, .help = help, .min = min, .max = max};
}

Option opt_float(const char *key, float *target, const char *help, double min, double max) {
    return (Option){.key = key, .type = OPT_FLOAT, .target = target, .help = help, .min = min, .max = max};
}

Option opt_bool(const char *key, bool *target, const char *help) {
    return (Option){.key = key, .type = OPT_BOOL, .target = target, .help = help};
}

Option opt_string(const char *key, char *target, const char *help) {
    return (Option){.key = key, .type = OPT_STRING, .target = target, .help = help};
}

Option opt_choice(const char *key, char *target, const char *help, const char *choices) {
    return (Option){.key = key, .type = OPT_CHOICE, .target = target, .help = help, .choices = choices};
}

Option opt_role(Option o, OptRole role) {
    o.role = role;
    return o;
}

static const char *type_name(const Option *o) {
    static const char *names[] = {"INT", "FLOAT", "BOOL", "TEXT", "CHOICE"};
    return o->type == OPT_CHOICE ? o->choices : names[o->type];
}

/* Floats print as the shortest %g that reads back as the same float (0.1, not 0.100000001). */
void options_value_str(const Option *o, char *buf, size_t size) {
    switch (o->type) {
    case OPT_INT: snprintf(buf, size, "%d", *(int *)o->target); break;
    case OPT_FLOAT: {
        float v = *(float *)o->target;
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(buf, size, "%.*g", digits, v);
            if (strtof(buf, NULL) == v) break;
        }
        break;
    }
    case OPT_BOOL: snprintf(buf, size, "%s", *(bool *)o->target ? "true" : "false"); break;
    default: snprintf(buf, size, "%s", (char *)o->target); break;
    }
}

void options_usage(const Option *opts, int n, const char *prog, const char *about, FILE *f) {
    fprintf(f, "usage: %s [--key=value ...]\n", prog);
    if (about) fprintf(f, "%s\n", about);
    fprintf(f, "\noptions (default in brackets):\n");
    for (int i = 0; i < n; i++) {
        char val[OPT_STRLEN], head[128];
        options_value_str(&opts[i], val, sizeof val);
        snprintf(head, sizeof head, "--%s=%s", opts[i].key, type_name(&opts[i]));
        fprintf(f, "  %-34s %s [%s]\n", head, opts[i].help, val);
    }
    fprintf(f, "  %-34s %s\n", "--help", "print this help and exit");
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

static bool out_of_range(const Option *o, double x) { return o->min < o->max && (x < o->min || x > o->max); }

/* Stores v into o's target; false with the reason in err. */
static bool set_value(const Option *o, const char *v, char *err, size_t es) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_INT: {
        if (!*v || isspace((unsigned char)*v)) return dq_fail(err, es, "--%s=%s: not an integer (see --help)", o->key, v);
        long x = strtol(v, &end, 10);
        if (*end || errno || x < -2147483647L || x > 2147483647L)
            return dq_fail(err, es, "--%s=%s: not an integer (see --help)", o->key, v);
        if (out_of_range(o, (double)x)) return dq_fail(err, es, "--%s=%ld: must be in [%g, %g]", o->key, x, o->min, o->max);
        *(int *)o->target = (int)x;
        return true;
    }
    case OPT_FLOAT: {
        if (!*v || isspace((unsigned char)*v)) return dq_fail(err, es, "--%s=%s: not a number (see --help)", o->key, v);
        double x = strtod(v, &end);
        if (*end || !isfinite(x)) return dq_fail(err, es, "--%s=%s: not a finite number (see --help)", o->key, v);
        float f = (float)x;  // what the run will use: checked, not the double
        if (!isfinite(f) || (errno == ERANGE && x != 0) || (x != 0 && fabsf(f) < FLT_MIN))
            return dq_fail(err, es, "--%s=%s: not representable as a float (normal floats are %g to %g in magnitude)",
                        o->key, v, (double)FLT_MIN, (double)FLT_MAX);
        if (out_of_range(o, (double)f)) return dq_fail(err, es, "--%s=%s: must be in [%g, %g]", o->key, v, o->min, o->max);
        *(float *)o->target = f;
        return true;
    }
    case OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(bool *)o->target = true;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(bool *)o->target = false;
        else return dq_fail(err, es, "--%s=%s: not a boolean (true/false)", o->key, v);
        return true;
    case OPT_CHOICE:
        if (!in_choices(o->choices, v)) return dq_fail(err, es, "--%s=%s: must be one of %s", o->key, v, o->choices);
        /* fall through */
    case OPT_STRING:
        if (strlen(v) >= OPT_STRLEN) return dq_fail(err, es, "--%s: value longer than %d characters", o->key, OPT_STRLEN - 1);
        strcpy((char *)o->target, v);
        return true;
    }
    return dq_fail(err, es, "--%s: unknown option type", o->key);
}

void options_write_json(Text *t, const Option *opts, int n, const char *indent) {
    text_printf(t, "{");
    for (int i = 0; i < n; i++) {
        char v[OPT_STRLEN];
        options_value_str(&opts[i], v, sizeof v);
        text_printf(t, "%s\n%s  ", i ? "," : "", indent);
        text_json_string(t, opts[i].key);
        text_printf(t, ": ");
        text_json_string(t, v);
    }
    text_printf(t, "\n%s}", indent);
}

const Option *options_find(const Option *opts, int n, const char *key) {
    for (int k = 0; k < n; k++)
        if (!strcmp(opts[k].key, key)) return &opts[k];
    return NULL;
}

OptionsStatus options_parse_args(const Option *opts, int n, int argc, char *const *argv, char *err,
                                 size_t err_size) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return OPTIONS_HELP;
        if (strncmp(a, "--", 2) != 0) {
            dq_fail(err, err_size, "unexpected argument '%s': options are --key=value (see --help)", a);
            return OPTIONS_ERROR;
        }
        const char *key = a + 2, *eq = strchr(key, '=');
        size_t klen = eq ? (size_t)(eq - key) : strlen(key);
        const Option *o = NULL;
        for (int k = 0; k < n && !o; k++)
            if (strlen(opts[k].key) == klen && !strncmp(opts[k].key, key, klen)) o = &opts[k];
        if (!o) {
            dq_fail(err, err_size, "unknown option '--%.*s' (see --help)", (int)(klen < 200 ? klen : 200), key);
            return OPTIONS_ERROR;
        }
        if (!eq && o->type != OPT_BOOL) {
            dq_fail(err, err_size, "--%s needs a value: --%s=%s", o->key, o->key, type_name(o));
            return OPTIONS_ERROR;
        }
        if (!set_value(o, eq ? eq + 1 : "true", err, err_size)) return OPTIONS_ERROR;
    }
    return OPTIONS_OK;
}

void options_parse(const Option *opts, int n, int argc, char **argv, const char *about) {
    const char *prog = argc > 0 ? argv[0] : "program";
    const char *slash = strrchr(prog, '/');
    if (slash) prog = slash + 1;
    char err[1024];
    switch (options_parse_args(opts, n, argc, argv, err, sizeof err)) {
    case OPTIONS_OK: return;
    case OPTIONS_HELP:
        options_usage(opts, n, prog, about, stdout);
        exit(0);
    case OPTIONS_ERROR: DQ_FATAL_FILE(prog, "%s", err);
    }
}

void options_print(const Option *opts, int n, FILE *f, const char *prefix) {
    for (int i = 0; i < n; i++) {
        char val[OPT_STRLEN];
        options_value_str(&opts[i], val, sizeof val);
        fprintf(f, "%s%s=%s\n", prefix, opts[i].key, val);
    }
}
