/* helpers.c — see helpers.h. */
#include <stdlib.h>
#include "helpers.h"

#include <criterion/redirect.h>

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"

Arena test_arena;
Tape T;
Rng R;

void test_setup(void) {
    arena_init(&test_arena, 1 << 20, 0);
    tape_init(&T, &test_arena);
    rng_seed(&R, 12345, 1);
}

void test_setup_quiet(void) {
    test_setup();
    cr_redirect_stderr();
}

void test_teardown(void) { arena_free(&test_arena); }

Tensor *rand_tensor(int ndim, const int *shape, float lo, float hi) {
    Tensor *t = tensor_new(&test_arena, ndim, shape);
    rng_fill_uniform(&R, t->data, t->numel, lo, hi);
    return t;
}

Tensor *rand_param(int ndim, const int *shape, float lo, float hi) {
    Tensor *t = rand_tensor(ndim, shape, lo, hi);
    t->requires_grad = true;
    return t;
}

char *read_text_file(const char *path) {
    char err[256];
    size_t n;
    uint8_t *b = fileio_read_all(path, &n, err, sizeof err);
    cr_assert_not_null(b, "%s: %s", path, err);
    b = dq_realloc(b, n + 1);
    b[n] = 0;
    return (char *)b;
}

float *copy_floats(const float *x, size_t n) {
    float *c = dq_malloc(n * sizeof(float));
    memcpy(c, x, n * sizeof(float));
    return c;
}

void assert_close(const float *got, const float *want, size_t n, double rtol, double atol,
                  const char *what) {
    size_t first = n, worst = 0;
    double worst_err = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        bool bad = !(err <= atol + rtol * fabs((double)want[i]));  // NaN counts as bad
        if (bad && first == n) first = i;
        if (!(err <= worst_err)) worst_err = err, worst = i;
    }
    if (first < n)
        cr_assert_fail("%s: first mismatch at [%zu]: got %.9g, want %.9g; worst |error| %.3g at [%zu] "
                       "(rtol %g, atol %g, %zu elements)",
                       what, first, got[first], want[first], worst_err, worst, rtol, atol, n);
}

void assert_bits_equal(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            cr_assert_fail("%s: bits differ at [%zu]: %.9g vs %.9g (%zu elements)", what, i, a[i], b[i], n);
}

static jmp_buf fatal_jump;
static char fatal_message[2048];

static void capture(const char *message, int exit_code) {
    (void)exit_code;
    snprintf(fatal_message, sizeof fatal_message, "%s", message);
    longjmp(fatal_jump, 1);
}

const char *expect_fatal(void (*fn)(void *), void *ctx) {
    fatal_message[0] = 0;
    dq_set_fatal_handler(capture);
    if (setjmp(fatal_jump) == 0) {
        fn(ctx);
        dq_set_fatal_handler(NULL);
        cr_assert_fail("expected a fatal error, none was raised");
    }
    dq_set_fatal_handler(NULL);
    return fatal_message;
}

void assert_gradcheck(GradcheckFn fn, void *ctx, Tensor **inputs, int n, double tol, bool training,
                      const char *what) {
    GradcheckOptions o = {.training = training, .probes = 30};
    assert_gradcheck_with(fn, ctx, inputs, n, tol, &o, what);
}

void assert_gradcheck_with(GradcheckFn fn, void *ctx, Tensor **inputs, int n, double tol,
                           const GradcheckOptions *o, const char *what) {
    GradcheckResult r = gradcheck(fn, ctx, inputs, n, o);
    cr_assert(r.checked > 0, "%s: nothing was checked", what);
    cr_assert(r.max_err <= tol,
              "%s: gradient error %.3g > %.3g at input %d [%zu]: analytic %.8g, numeric %.8g (%d checked)",
              what, r.max_err, tol, r.input, r.index, r.analytic, r.numeric, r.checked);
}

bool onnx_runtime_present(void) {
    return system("node -e \"require('./scripts/node_modules/onnxruntime-node')\" >/dev/null 2>&1") == 0;
}
