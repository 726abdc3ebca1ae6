/* error.c — fatal errors, invariant checks and the checked allocator. */
#include "error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static DQFatalHandler fatal_handler = NULL;

void dq_set_fatal_handler(DQFatalHandler handler) { fatal_handler = handler; }

static DQ_NORETURN void finish(const char *message, int exit_code) {
    if (fatal_handler) fatal_handler(message, exit_code);
    fprintf(stderr, "%s\n", message);
    fflush(stderr);
    exit(exit_code);
}

void dq_fatal(const char *file, int line, const char *hint, const char *fmt, ...) {
    char msg[2048];
    int n = snprintf(msg, sizeof msg, "%s:%d: error: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof msg) n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (hint && n >= 0 && (size_t)n < sizeof msg) snprintf(msg + n, sizeof msg - (size_t)n, "\nhint: %s", hint);
    finish(msg, 1);
}

void dq_fatal_file(const char *path, const char *fmt, ...) {
    char msg[2048];
    int n = snprintf(msg, sizeof msg, "%s: error: ", path);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof msg) vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    finish(msg, 1);
}

bool dq_fail(char *err, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

void dq_check_failed(const char *file, int line, const char *expr) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s:%d: error: internal check failed: %s", file, line, expr);
    finish(msg, 2);
}

void *dq_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) DQ_FATAL("out of memory allocating %zu bytes", bytes);
    return p;
}

void *dq_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) DQ_FATAL("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *dq_realloc(void *ptr, size_t bytes) {
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) DQ_FATAL("out of memory reallocating to %zu bytes", bytes);
    return p;
}

void *dq_aligned_alloc(size_t alignment, size_t bytes) {
    size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    if (rounded < bytes) DQ_FATAL("allocation of %zu bytes overflows", bytes);
    void *p = aligned_alloc(alignment, rounded ? rounded : alignment);
    if (!p) DQ_FATAL("out of memory allocating %zu bytes", bytes);
    return p;
}

void dq_free(void *ptr) { free(ptr); }

size_t dq_mul_size(size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) DQ_FATAL("size overflow: %zu x %zu", a, b);
    return a * b;
}
