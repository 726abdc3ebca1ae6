/* options.h — one table-driven --key=value parser for every experiment.
 *
 * An experiment lists its options in a table (key, type, pointer to the field of its config,
 * help text, allowed range or choices) and calls options_parse. Every field is a flag; --help
 * prints every option with its default and exits 0; an unknown key, a malformed value, an
 * out-of-range number or a value outside the choices prints "<prog>: error: …" and exits 1.
 *     --lr=0.1   --schedule=cosine   --nesterov (same as --nesterov=true)   --nesterov=false
 */
#ifndef DQ_OPTIONS_H
#define DQ_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#define OPT_STRLEN 256

typedef enum { OPT_INT, OPT_FLOAT, OPT_BOOL, OPT_STRING, OPT_CHOICE } OptType;

typedef struct Option {
    const char *key;      // without the leading dashes
    OptType type;
    void *target;         // int*, float*, bool*, or char[OPT_STRLEN] for STRING / CHOICE
    const char *help;
    double min, max;      // numbers: accepted range (ignored when min >= max)
    const char *choices;  // CHOICE: "step|cosine|const"
} Option;

/* Parse argv[1..]; prog is the program name used in messages; about is printed atop --help. */
void options_parse(const Option *opts, int n, int argc, char **argv, const char *about);
/* "key=value" lines of the resolved configuration, one per option, prefixed by `prefix`. */
void options_print(const Option *opts, int n, FILE *f, const char *prefix);
/* The value of one option as text (for logs and JSON). */
void options_value_str(const Option *o, char *buf, size_t size);

#endif
