/* helpers.h — shared test fixtures and assertions.
 *
 * test_setup/test_teardown: a fresh Arena + Tape in `T` (training mode) and a seeded Rng `R`.
 * assert_close: element-wise |a − b| <= atol + rtol·|b|; on failure names the first mismatching
 * index, both values, and the worst error. expect_fatal: runs fn and captures the message of the
 * DQ_FATAL it must raise (via the fatal handler and longjmp), failing the test if none is raised.
 */
#ifndef DQ_TEST_HELPERS_H
#define DQ_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/gradcheck.h"
#include "core/rng.h"
#include "core/tape.h"
#include "core/tensor.h"

extern Arena test_arena;
extern Tape T;
extern Rng R;

void test_setup(void);
/* test_setup, and stderr captured: for death tests, whose message would clutter the log. */
void test_setup_quiet(void);
void test_teardown(void);

/* Random tensor from the test arena, uniform in [lo, hi). */
Tensor *rand_tensor(int ndim, const int *shape, float lo, float hi);
/* Same, requiring a gradient. */
Tensor *rand_param(int ndim, const int *shape, float lo, float hi);
/* The file's bytes as a NUL-terminated string (dq_free); fails the test if it cannot be read. */
char *read_text_file(const char *path);
/* A heap copy of n floats (free with dq_free). */
float *copy_floats(const float *x, size_t n);

void assert_close(const float *got, const float *want, size_t n, double rtol, double atol,
                  const char *what);
void assert_bits_equal(const float *a, const float *b, size_t n, const char *what);

/* Whether Node.js can load ONNX Runtime from scripts/node_modules (scripts/ensure-deps.sh
 * onnxruntime installs it): the tests that run exported models in it skip without. */
bool onnx_runtime_present(void);

/* Run fn(ctx); it must call DQ_FATAL. Returns the message (static buffer). */
const char *expect_fatal(void (*fn)(void *), void *ctx);

/* gradcheck with the test defaults and a readable failure. */
void assert_gradcheck(GradcheckFn fn, void *ctx, Tensor **inputs, int n, double tol, bool training,
                      const char *what);
/* The same with the checker's options given. */
void assert_gradcheck_with(GradcheckFn fn, void *ctx, Tensor **inputs, int n, double tol,
                           const GradcheckOptions *o, const char *what);

#endif
