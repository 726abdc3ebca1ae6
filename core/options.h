/* options.h — one table-driven --key=value parser for every experiment.
 *
 * An experiment lists its options in a table (key, type, pointer to the field of its config,
 * help text, allowed range or choices), built with the opt_* constructors, and calls
 * options_parse. Every field is a flag; --help prints every option with its default and exits 0;
 * an unknown key, a malformed value, an out-of-range number or a value outside the choices prints
 * "<prog>: error: …" and exits 1.
 *     --lr=0.1   --schedule=cosine   --nesterov (same as --nesterov=true)   --nesterov=false
 * Numbers are read exactly as written: no leading blanks, the whole value must parse, and a FLOAT
 * must be representable as a normal float (1e-50 is refused, not trained with as 0).
 *
 * options_parse_args is the non-exiting core (tests, fuzzers, library users): it returns a status
 * and, on an error, the message without the "<prog>: error: " prefix.
 */
#ifndef DQ_OPTIONS_H
#define DQ_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define OPT_STRLEN 256

typedef enum { OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_STRING, OPT_CHOICE } OptType;

/* What an option is to a run (checkpoints store the options that define a run and refuse a
 * --resume that changes them; see train/runid.h). */
typedef enum {
    OPT_DEFINES_RUN,  // changes what is computed (default)
    OPT_EXECUTION,    // changes the bits, not the method (threads): a finished run may be reused
    OPT_INCIDENTAL,   // where files go, how verbose, when to stop: never part of a run's identity
} OptRole;

typedef struct Option {
    const char *key;      // without the leading dashes
    OptType type;
    void *target;         // int*, float*, bool*, or char[OPT_STRLEN] for STRING / CHOICE
    const char *help;
    double min, max;      // numbers: accepted range (ignored when min >= max)
    const char *choices;  // CHOICE: "step|cosine|const"
    OptRole role;
} Option;

Option opt_int(const char *key, int *target, const char *help, double min, double max);
Option opt_float(const char *key, float *target, const char *help, double min, double max);
Option opt_bool(const char *key, bool *target, const char *help);
Option opt_string(const char *key, char *target, const char *help);
Option opt_choice(const char *key, char *target, const char *help, const char *choices);
/* o with its role set. */
Option opt_role(Option o, OptRole role);

typedef enum { OPTIONS_OK, OPTIONS_HELP, OPTIONS_ERROR } OptionsStatus;

/* Parse argv[1..] into the targets. OPTIONS_HELP when --help / -h is among them (nothing after
 * it is read); OPTIONS_ERROR with the reason in err. Never exits, never prints. */
OptionsStatus options_parse_args(const Option *opts, int n, int argc, char *const *argv, char *err,
                                 size_t err_size);
/* The command-line wrapper: usage on --help (exit 0), "<prog>: error: …" on a bad flag (exit 1).
 * prog is argv[0] without directories; about is printed atop --help. */
void options_parse(const Option *opts, int n, int argc, char **argv, const char *about);
void options_usage(const Option *opts, int n, const char *prog, const char *about, FILE *f);
/* "key=value" lines of the resolved configuration, one per option, prefixed by `prefix`. */
void options_print(const Option *opts, int n, FILE *f, const char *prefix);
/* The value of one option as text (for logs and JSON). */
void options_value_str(const Option *o, char *buf, size_t size);
/* {"key": "value", …} of every option, as JSON (string values), into t. */
struct Text;
void options_write_json(struct Text *t, const Option *opts, int n, const char *indent);
/* The option with this key, or NULL. */
const Option *options_find(const Option *opts, int n, const char *key);

#endif
