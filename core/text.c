/* text.c — growable buffer with printf, JSON escaping and atomic save. */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>

#include "fileio.h"

void text_init(Text *t) {
    t->cap = 1024;
    t->len = 0;
    t->s = dq_malloc(t->cap);
    t->s[0] = 0;
}

void text_free(Text *t) {
    if (!t) return;
    dq_free(t->s);
    t->s = NULL;
    t->len = t->cap = 0;
}

void text_printf(Text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        DQ_CHECK(n >= 0);
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n) * 2;
        t->s = dq_realloc(t->s, t->cap);
    }
}

void text_json_string(Text *t, const char *s) {
    text_printf(t, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') text_printf(t, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) text_printf(t, "\\u%04x", (unsigned char)*s);
        else text_printf(t, "%c", *s);
    }
    text_printf(t, "\"");
}

bool text_save(const Text *t, const char *path, char *err, size_t err_size) {
    const void *parts[1] = {t->s};
    size_t sizes[1] = {t->len};
    return fileio_write_atomic(path, parts, sizes, 1, err, err_size);
}
