/* text.h — a growable text buffer (for CSV, JSON and SVG written atomically). */
#ifndef DQ_TEXT_H
#define DQ_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct Text Text;
struct Text {
    char *s;      // NUL-terminated
    size_t len, cap;
};

void text_init(Text *t);
void text_free(Text *t);
void text_printf(Text *t, const char *fmt, ...) DQ_PRINTF(2, 3);
/* JSON string literal with escapes. */
void text_json_string(Text *t, const char *s);
/* Atomically replace path with the text; false + reason in err. */
bool text_save(const Text *t, const char *path, char *err, size_t err_size);

#endif
