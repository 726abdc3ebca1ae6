/* error.h — the two error tiers and the one checked allocator.
 *
 * Bad input (a flag, a shape given by a caller) is reported with DQ_FATAL:
 *     core/conv2d.c:88: error: conv2d: input has 16 channels, weight expects 32
 *     hint: ...                                   (only with DQ_FATAL_HINT)
 * and the process exits with status 1. A malformed input file is reported against the file:
 *     /data/train-images-idx3-ubyte.gz: error: truncated: 47040016 image bytes expected, 1000 found
 * with DQ_FATAL_FILE. Broken internal invariants use DQ_CHECK, which stays on
 * in release builds (it does not depend on NDEBUG) and exits with status 2.
 *
 * Every heap allocation in the project goes through dq_malloc / dq_calloc / dq_realloc, which
 * never return NULL. Sizes are size_t; dq_mul_size multiplies with an overflow check.
 *
 * Tests may install a fatal handler (dq_set_fatal_handler) that sees the formatted message and
 * longjmps back instead of exiting; without one the message goes to stderr.
 */
#ifndef DQ_ERROR_H
#define DQ_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__GNUC__)
#define DQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DQ_NORETURN __attribute__((noreturn))
#else
#define DQ_PRINTF(f, a)
#define DQ_NORETURN
#endif

#define DQ_FATAL(...) dq_fatal(__FILE__, __LINE__, NULL, __VA_ARGS__)
#define DQ_FATAL_HINT(hint, ...) dq_fatal(__FILE__, __LINE__, (hint), __VA_ARGS__)
/* Bad content in a named input file: "<path>: error: <message>", exit 1. */
#define DQ_FATAL_FILE(path, ...) dq_fatal_file((path), __VA_ARGS__)
#define DQ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) dq_check_failed(__FILE__, __LINE__, #cond);                                   \
    } while (0)

/* Handler called with the full message (without trailing newline) instead of printing+exit.
 * It must not return (longjmp out); if it does, the process exits anyway. */
typedef void (*DQFatalHandler)(const char *message, int exit_code);

DQ_NORETURN void dq_fatal(const char *file, int line, const char *hint, const char *fmt, ...)
    DQ_PRINTF(4, 5);
DQ_NORETURN void dq_fatal_file(const char *path, const char *fmt, ...) DQ_PRINTF(2, 3);
DQ_NORETURN void dq_check_failed(const char *file, int line, const char *expr);
void dq_set_fatal_handler(DQFatalHandler handler);
/* For the non-exiting readers: the formatted reason into err (size bytes); returns false, so a
 * check reads `if (bad) return dq_fail(err, size, "…", …);`. */
bool dq_fail(char *err, size_t size, const char *fmt, ...) DQ_PRINTF(3, 4);

void *dq_malloc(size_t bytes);
void *dq_calloc(size_t count, size_t size);
void *dq_realloc(void *ptr, size_t bytes);
void *dq_aligned_alloc(size_t alignment, size_t bytes); /* release with dq_free */
void dq_free(void *ptr);                                /* accepts NULL */
size_t dq_mul_size(size_t a, size_t b);                 /* fatal on overflow */

#endif
