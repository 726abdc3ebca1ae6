/* test_errors.c — the two error tiers: DQ_FATAL (message format, hint, exit 1) and DQ_CHECK
 * (exit 2, on in every build), and the checked allocator's overflow guard. */
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "helpers.h"

static void raise_fatal(void *ctx) { DQ_FATAL("something went wrong: %d", 42); }
static void raise_hint(void *ctx) { DQ_FATAL_HINT("try --batch=32", "conv2d: input has %d channels", 16); }
static void mul_overflow(void *ctx) { dq_mul_size(SIZE_MAX / 2, 3); }

Test(errors, fatal_message_format) {
    const char *m = expect_fatal(raise_fatal, NULL);
    cr_assert(strncmp(m, "tests/test_errors.c:", 20) == 0, "starts with file:line, got: %s", m);
    cr_assert(strstr(m, ": error: something went wrong: 42") != NULL, "got: %s", m);
    cr_assert(strchr(m, '\n') == NULL, "one line without a hint");
    const char *h = expect_fatal(raise_hint, NULL);
    cr_assert(strstr(h, "error: conv2d: input has 16 channels\nhint: try --batch=32") != NULL, "got: %s", h);
}

Test(errors, size_overflow_is_fatal) {
    cr_assert(strstr(expect_fatal(mul_overflow, NULL), "size overflow") != NULL);
    cr_assert_eq(dq_mul_size(0, SIZE_MAX), 0);
    cr_assert_eq(dq_mul_size(3, 4), 12);
}

Test(errors, fatal_exits_with_status_1, .init = test_setup_quiet, .fini = test_teardown, .exit_code = 1) { raise_fatal(NULL); }

Test(errors, check_exits_with_status_2, .init = test_setup_quiet, .fini = test_teardown, .exit_code = 2) {
    volatile int x = 1;
    DQ_CHECK(x == 2);
}

Test(errors, allocations_are_usable) {
    int *p = dq_calloc(10, sizeof *p);
    for (int i = 0; i < 10; i++) cr_assert_eq(p[i], 0);
    p = dq_realloc(p, 1000 * sizeof *p);
    p[999] = 1;
    dq_free(p);
    dq_free(NULL);
    float *a = dq_aligned_alloc(64, 100);
    cr_assert_eq((uintptr_t)a % 64, 0);
    dq_free(a);
}
