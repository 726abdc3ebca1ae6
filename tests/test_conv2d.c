/* test_conv2d.c — convolution: fast kernels against the reference on a shape table (stride 1/2,
 * pad 0/1, depthwise, grouped, 1×1, batch 1, odd sizes), a hand-computed case, gradchecks of the
 * op, thread-count determinism, and clear errors for impossible shapes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/depthwise.h"
#include "core/ops.h"
#include "core/threads.h"
#include "helpers.h"

typedef struct ConvCase {
    int N, H, W, C, OC, K, stride, pad, groups;
    bool bias;
    int threads;
} ConvCase;

static const char *describe(const ConvCase *c, char *buf, size_t n) {
    snprintf(buf, n, "N=%d H=%d W=%d C=%d OC=%d K=%d s=%d p=%d g=%d bias=%d threads=%d", c->N, c->H,
             c->W, c->C, c->OC, c->K, c->stride, c->pad, c->groups, c->bias, c->threads);
    return buf;
}

ParameterizedTestParameters(conv2d, fast_matches_reference) {
    static ConvCase cases[] = {
        {2, 8, 8, 3, 16, 3, 1, 1, 1, false, 1},    // stem-like
        {1, 7, 5, 4, 6, 3, 2, 1, 1, true, 2},      // batch 1, odd sizes, stride 2
        {3, 9, 9, 8, 8, 3, 1, 1, 8, true, 2},      // depthwise
        {2, 10, 7, 12, 12, 3, 2, 1, 12, false, 2}, // depthwise stride 2
        {2, 6, 6, 5, 5, 3, 1, 0, 5, false, 1},     // depthwise pad 0
        {4, 5, 5, 24, 144, 1, 1, 0, 1, false, 2},  // 1x1 (GEMM path)
        {2, 6, 6, 16, 8, 1, 2, 0, 1, true, 2},     // 1x1 stride 2 (im2col path)
        {2, 6, 6, 8, 12, 3, 1, 1, 4, true, 2},     // grouped
        {1, 11, 13, 3, 7, 5, 2, 2, 1, true, 3},    // 5x5, three threads
        {5, 4, 4, 6, 10, 2, 2, 0, 2, false, 2},    // even kernel, groups 2
        {2, 3, 3, 33, 17, 3, 1, 1, 1, true, 2},    // Kc = 297 > GEMM KC block
        {1, 10, 10, 4, 4, 9, 1, 4, 4, true, 2},    // depthwise 9x9: beyond the fast path's taps
        {2, 9, 9, 70, 70, 5, 2, 2, 70, false, 2},  // depthwise 5x5 s2, channels not a vector multiple
        {2, 5, 30, 8, 12, 3, 1, 1, 1, true, 2},    // implicit GEMM (wide rows, few channels)
        {1, 7, 61, 5, 40, 5, 2, 2, 1, false, 3},   // implicit GEMM, stride 2, 5x5, partial tile
        {3, 4, 50, 3, 16, 3, 1, 0, 1, true, 2},    // implicit GEMM, no padding
        {2, 16, 16, 32, 32, 3, 1, 1, 1, false, 2}, // implicit strips, two K blocks (8 taps + 1)
        {2, 8, 8, 64, 40, 3, 1, 1, 1, true, 3},    // implicit strips, three K blocks
        {2, 12, 11, 16, 20, 5, 1, 2, 1, true, 2},  // implicit strips, 25 taps in blocks of 16 + 9
        {1, 9, 7, 40, 24, 3, 1, 1, 1, true, 2},    // K blocks would split a tap: im2col
        {2, 4, 4, 16, 16, 3, 1, 1, 1, false, 2},   // strips would drop a third: im2col
    };
    return cr_make_param_array(ConvCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(ConvCase *c, conv2d, fast_matches_reference, .init = test_setup, .fini = test_teardown) {
    char what[160], msg[200];
    describe(c, what, sizeof what);
    threads_init(c->threads);
    Tensor *x = rand_tensor(4, (const int[]){c->N, c->H, c->W, c->C}, -1, 1);
    Tensor *w = rand_tensor(4, (const int[]){c->K, c->K, c->C / c->groups, c->OC}, -1, 1);
    Tensor *b = c->bias ? rand_tensor(1, (const int[]){c->OC}, -1, 1) : NULL;
    ConvGeom g = conv2d_geom(x, w, b, (Conv2dArgs){.stride = c->stride, .pad = c->pad, .groups = c->groups});
    size_t ny = (size_t)g.N * g.OH * g.OW * g.OC;
    float *y_ref = arena_floats(&test_arena, ny), *y_fast = arena_floats(&test_arena, ny);
    conv2d_forward_ref(y_ref, x->data, w->data, b ? b->data : NULL, &g);
    conv2d_forward_fast(y_fast, x->data, w->data, b ? b->data : NULL, &g);
    snprintf(msg, sizeof msg, "forward %s", what);
    double tol = g.Kc > 300 ? 1e-5 * g.Kc / 300 : 1e-5;  // float rounding grows with the sum's length
    assert_close(y_fast, y_ref, ny, tol, tol, msg);

    Tensor *dy = rand_tensor(4, (const int[]){g.N, g.OH, g.OW, g.OC}, -1, 1);
    // Backward accumulates: start both from the same nonzero gradients.
    float *dx_r = copy_floats(x->data, x->numel), *dx_f = copy_floats(x->data, x->numel);
    float *dw_r = copy_floats(w->data, w->numel), *dw_f = copy_floats(w->data, w->numel);
    float db_r[256] = {0}, db_f[256] = {0};
    conv2d_backward_ref(dx_r, dw_r, c->bias ? db_r : NULL, dy->data, x->data, w->data, &g);
    conv2d_backward_fast(dx_f, dw_f, c->bias ? db_f : NULL, dy->data, x->data, w->data, &g, false);
    snprintf(msg, sizeof msg, "dx %s", what);
    assert_close(dx_f, dx_r, x->numel, 1e-5, 1e-5, msg);
    snprintf(msg, sizeof msg, "dw %s", what);
    assert_close(dw_f, dw_r, w->numel, 1e-4, 1e-4, msg);
    snprintf(msg, sizeof msg, "db %s", what);
    assert_close(db_f, db_r, (size_t)g.OC, 1e-4, 1e-4, msg);
    // Overwrite mode: dx starts as garbage and must come out equal to the reference from zero.
    float *dx_o = copy_floats(x->data, x->numel), *dx_z = arena_floats_zero(&test_arena, x->numel);
    for (size_t i = 0; i < x->numel; i++) dx_o[i] = NAN;
    conv2d_backward_fast(dx_o, NULL, NULL, dy->data, x->data, w->data, &g, true);
    conv2d_backward_ref(dx_z, NULL, NULL, dy->data, x->data, w->data, &g);
    snprintf(msg, sizeof msg, "dx overwrite %s", what);
    assert_close(dx_o, dx_z, x->numel, 1e-5, 1e-5, msg);
    dq_free(dx_o);
    // Only some gradients asked for: the others stay untouched.
    float *dw_only = copy_floats(w->data, w->numel);
    conv2d_backward_fast(NULL, dw_only, NULL, dy->data, x->data, w->data, &g, false);
    assert_close(dw_only, dw_r, w->numel, 1e-4, 1e-4, "dw alone");
    dq_free(dx_r);
    dq_free(dx_f);
    dq_free(dw_r);
    dq_free(dw_f);
    dq_free(dw_only);
    threads_shutdown();
}

/* Depthwise: its own reference is the equation of depthwise.h; it agrees with the general
 * grouped loop (two specifications written differently), and the fast kernels agree with it. */
ParameterizedTestParameters(depthwise, fast_matches_its_reference) {
    static ConvCase cases[] = {
        {.N = 3, .H = 9, .W = 9, .C = 8, .K = 3, .stride = 1, .pad = 1, .bias = true, .threads = 2},
        {.N = 2, .H = 10, .W = 7, .C = 12, .K = 3, .stride = 2, .pad = 1, .threads = 2},
        {.N = 1, .H = 6, .W = 5, .C = 5, .K = 3, .stride = 1, .pad = 0, .threads = 1},
        {.N = 2, .H = 9, .W = 9, .C = 70, .K = 5, .stride = 2, .pad = 2, .bias = true, .threads = 3},
        {.N = 1, .H = 10, .W = 10, .C = 4, .K = 9, .stride = 1, .pad = 4, .bias = true, .threads = 2},  // > 64 taps
        {.N = 2, .H = 4, .W = 3, .C = 17, .K = 2, .stride = 2, .pad = 0, .threads = 2},                 // even kernel
        {.N = 1, .H = 1, .W = 1, .C = 3, .K = 3, .stride = 1, .pad = 1, .threads = 1},                  // one pixel
        // the blocked 3×3 path (channels a whole number of vectors at every width: 32, 48):
        // 11 wide: 2 blocks of 4 and a remainder; stride 2; no padding, one output row
        {.N = 2, .H = 7, .W = 11, .C = 32, .K = 3, .stride = 1, .pad = 1, .bias = true, .threads = 2},
        {.N = 2, .H = 9, .W = 14, .C = 48, .K = 3, .stride = 2, .pad = 1, .threads = 3},
        {.N = 1, .H = 3, .W = 12, .C = 32, .K = 3, .stride = 1, .pad = 0, .bias = true, .threads = 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) cases[i].OC = cases[i].groups = cases[i].C;
    return cr_make_param_array(ConvCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(ConvCase *c, depthwise, fast_matches_its_reference, .init = test_setup, .fini = test_teardown) {
    char what[160], msg[240];
    describe(c, what, sizeof what);
    threads_init(c->threads);
    Tensor *x = rand_tensor(4, (const int[]){c->N, c->H, c->W, c->C}, -1, 1);
    Tensor *w = rand_tensor(4, (const int[]){c->K, c->K, 1, c->C}, -1, 1);
    Tensor *b = c->bias ? rand_tensor(1, (const int[]){c->C}, -1, 1) : NULL;
    ConvGeom g = conv2d_geom(x, w, b, (Conv2dArgs){.stride = c->stride, .pad = c->pad, .groups = c->C});
    size_t ny = (size_t)g.N * g.OH * g.OW * g.OC;
    float *y_ref = arena_floats(&test_arena, ny), *y_fast = arena_floats(&test_arena, ny), *y_gen = arena_floats(&test_arena, ny);
    const float *bd = b ? b->data : NULL;
    depthwise_forward_ref(y_ref, x->data, w->data, bd, &g);
    conv2d_forward_ref(y_gen, x->data, w->data, bd, &g);
    depthwise_forward_fast(y_fast, x->data, w->data, bd, &g, NULL);
    snprintf(msg, sizeof msg, "forward, general loop vs depthwise reference, %s", what);
    assert_close(y_gen, y_ref, ny, 1e-6, 1e-6, msg);
    snprintf(msg, sizeof msg, "forward, fast vs reference, %s", what);
    assert_close(y_fast, y_ref, ny, 1e-5, 1e-5, msg);
    Tensor *dy = rand_tensor(4, (const int[]){g.N, g.OH, g.OW, g.OC}, -1, 1);
    float *dx[3], *dw[3], db[3][128] = {{0}};
    for (int k = 0; k < 3; k++) dx[k] = copy_floats(x->data, x->numel), dw[k] = copy_floats(w->data, w->numel);
    depthwise_backward_ref(dx[0], dw[0], c->bias ? db[0] : NULL, dy->data, x->data, w->data, &g);
    conv2d_backward_ref(dx[1], dw[1], c->bias ? db[1] : NULL, dy->data, x->data, w->data, &g);
    depthwise_backward_fast(dx[2], dw[2], c->bias ? db[2] : NULL, dy->data, x->data, w->data, &g, false);
    for (int k = 1; k < 3; k++) {
        snprintf(msg, sizeof msg, "%s dx %s", k == 1 ? "general" : "fast", what);
        assert_close(dx[k], dx[0], x->numel, 1e-5, 1e-5, msg);
        snprintf(msg, sizeof msg, "%s dw %s", k == 1 ? "general" : "fast", what);
        assert_close(dw[k], dw[0], w->numel, 1e-4, 1e-4, msg);
        snprintf(msg, sizeof msg, "%s db %s", k == 1 ? "general" : "fast", what);
        assert_close(db[k], db[0], (size_t)c->C, 1e-4, 1e-4, msg);
    }
    // Overwrite mode: garbage in dx, the reference from zero out.
    float *dx_o = copy_floats(x->data, x->numel), *dx_z = arena_floats_zero(&test_arena, x->numel);
    for (size_t i = 0; i < x->numel; i++) dx_o[i] = NAN;
    depthwise_backward_fast(dx_o, NULL, NULL, dy->data, x->data, w->data, &g, true);
    depthwise_backward_ref(dx_z, NULL, NULL, dy->data, x->data, w->data, &g);
    snprintf(msg, sizeof msg, "dx overwrite %s", what);
    assert_close(dx_o, dx_z, x->numel, 1e-5, 1e-5, msg);
    dq_free(dx_o);
    for (int k = 0; k < 3; k++) dq_free(dx[k]), dq_free(dw[k]);
    threads_shutdown();
}

/* The blocked 3×3 paths (channels a whole number of vectors: forward, dx at stride 1, dw and db)
 * and the general ones (any other count) sum each value's terms in the same order: the first 32
 * channels of a 33-channel image come out the same to the bit as the 32-channel image alone — in
 * the release build (-O3), where the compiler fuses every multiply-add into an FMA. The sanitizer
 * builds (-O1) fuse some and not others, and there the two agree to rounding only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SAME_BITS(a, b) (fabsf((a) - (b)) <= 1e-5f * (1 + fabsf(b)))
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SAME_BITS(a, b) (fabsf((a) - (b)) <= 1e-5f * (1 + fabsf(b)))
#endif
#endif
#ifndef SAME_BITS
#define SAME_BITS(a, b) (memcmp(&(a), &(b), sizeof(float)) == 0)
#endif

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert(SAME_BITS(a[i], b[i]), "%s: [%zu] %.9g vs %.9g (%zu elements)", what, i, a[i], b[i], n);
}

Test(depthwise, blocked_path_same_bits_as_per_pixel, .init = test_setup, .fini = test_teardown) {
    for (int stride = 1; stride <= 2; stride++) {
        threads_init(2);
        int N = 2, H = 9, W = 13, C = 32;
        Tensor *x33 = rand_tensor(4, (const int[]){N, H, W, C + 1}, -1, 1), *w33 = rand_tensor(4, (const int[]){3, 3, 1, C + 1}, -1, 1);
        Tensor *b33 = rand_tensor(1, (const int[]){C + 1}, -1, 1);
        Tensor *x32 = tensor_new4(&test_arena, N, H, W, C), *w32 = tensor_new4(&test_arena, 3, 3, 1, C);
        Tensor *b32 = tensor_new(&test_arena, 1, (const int[]){C});
        for (size_t p = 0; p < (size_t)N * H * W; p++) memcpy(x32->data + p * C, x33->data + p * (C + 1), C * sizeof(float));
        for (int t = 0; t < 9; t++) memcpy(w32->data + t * C, w33->data + t * (C + 1), C * sizeof(float));
        memcpy(b32->data, b33->data, C * sizeof(float));
        Conv2dArgs a = {.stride = stride, .pad = 1, .groups = C};
        ConvGeom g32 = conv2d_geom(x32, w32, b32, a);
        a.groups = C + 1;
        ConvGeom g33 = conv2d_geom(x33, w33, b33, a);
        size_t pixels = (size_t)N * g32.OH * g32.OW;
        float *y32 = arena_floats(&test_arena, pixels * C), *y33 = arena_floats(&test_arena, pixels * (C + 1));
        depthwise_forward_fast(y32, x32->data, w32->data, b32->data, &g32, NULL);
        depthwise_forward_fast(y33, x33->data, w33->data, b33->data, &g33, NULL);
        for (size_t p = 0; p < pixels; p++)
            for (int c = 0; c < C; c++)
                cr_assert(SAME_BITS(y32[p * C + c], y33[p * (C + 1) + c]),
                          "stride %d, pixel %zu channel %d: %.9g (blocked) vs %.9g (per pixel)", stride, p, c,
                          y32[p * C + c], y33[p * (C + 1) + c]);
        // dx: dy of the 33 channels, its first 32 for the 32; accumulated onto x's values
        Tensor *dy33 = rand_tensor(4, (const int[]){N, g33.OH, g33.OW, C + 1}, -1, 1);
        float *dy32 = arena_floats(&test_arena, pixels * C);
        for (size_t p = 0; p < pixels; p++) memcpy(dy32 + p * C, dy33->data + p * (C + 1), C * sizeof(float));
        float *dx32 = copy_floats(x32->data, x32->numel), *dx33 = copy_floats(x33->data, x33->numel);
        depthwise_backward_fast(dx32, NULL, NULL, dy32, x32->data, w32->data, &g32, false);
        depthwise_backward_fast(dx33, NULL, NULL, dy33->data, x33->data, w33->data, &g33, false);
        for (size_t p = 0; p < (size_t)N * H * W; p++)
            for (int c = 0; c < C; c++)
                cr_assert(SAME_BITS(dx32[p * C + c], dx33[p * (C + 1) + c]),
                          "dx, stride %d, pixel %zu channel %d: %.9g (blocked) vs %.9g (per pixel)", stride, p, c,
                          dx32[p * C + c], dx33[p * (C + 1) + c]);
        dq_free(dx32), dq_free(dx33);
        // dw and db: 9 taps × channels, and channels
        float dw32[9 * 32] = {0}, dw33[9 * 33] = {0}, db32[32] = {0}, db33[33] = {0};
        depthwise_backward_fast(NULL, dw32, db32, dy32, x32->data, w32->data, &g32, false);
        depthwise_backward_fast(NULL, dw33, db33, dy33->data, x33->data, w33->data, &g33, false);
        for (int t = 0; t < 9; t++)
            for (int c = 0; c < C; c++)
                cr_assert(SAME_BITS(dw32[t * C + c], dw33[t * (C + 1) + c]),
                          "dw, stride %d, tap %d channel %d: %.9g (blocked) vs %.9g (general)", stride, t, c,
                          dw32[t * C + c], dw33[t * (C + 1) + c]);
        for (int c = 0; c < C; c++) cr_assert(SAME_BITS(db32[c], db33[c]), "db, stride %d, channel %d", stride, c);
        threads_shutdown();
    }
}

/* The evaluation epilogue (BatchNorm folded into the convolution) run inside the fast kernels,
 * chunk by chunk, against the same kernels and then the epilogue as a separate pass: the same
 * code on the same values, so equal to the bit — pointwise (chunked and whole), depthwise (blocked
 * and per pixel), im2col, implicit GEMM, with each activation. */
Test(conv2d, epilogue_same_bits_as_separate_pass, .init = test_setup, .fini = test_teardown) {
    static const ConvCase cases[] = {
        {4, 16, 16, 24, 144, 1, 1, 0, 1, false, 2},  // pointwise, row chunks
        {2, 5, 5, 40, 17, 1, 1, 0, 1, true, 2},      // pointwise, one GEMM
        {2, 11, 13, 48, 48, 3, 1, 1, 48, false, 2},  // depthwise, blocked + per pixel
        {2, 11, 13, 40, 40, 3, 2, 1, 40, true, 3},   // depthwise s2, channels not a vector multiple
        {2, 9, 9, 33, 20, 3, 1, 1, 1, false, 2},     // im2col
        {3, 4, 50, 3, 16, 3, 1, 1, 1, true, 2},      // implicit GEMM
        {2, 6, 6, 16, 8, 1, 2, 0, 1, true, 1},       // 1x1 stride 2
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int act = ACT_NONE; act <= ACT_RELU6; act++) {
            const ConvCase *c = &cases[i];
            char what[160];
            describe(c, what, sizeof what);
            threads_init(c->threads);
            Tensor *x = rand_tensor(4, (const int[]){c->N, c->H, c->W, c->C}, -1, 1);
            Tensor *w = rand_tensor(4, (const int[]){c->K, c->K, c->C / c->groups, c->OC}, -1, 1);
            Tensor *b = c->bias ? rand_tensor(1, (const int[]){c->OC}, -1, 1) : NULL;
            Tensor *scale = rand_tensor(1, (const int[]){c->OC}, -2, 2), *shift = rand_tensor(1, (const int[]){c->OC}, -1, 3);
            ChannelAffine after = {.scale = scale->data, .shift = shift->data, .act = (ActKind)act};
            ConvGeom g = conv2d_geom(x, w, b, (Conv2dArgs){.stride = c->stride, .pad = c->pad, .groups = c->groups});
            size_t rows = (size_t)g.N * g.OH * g.OW, ny = rows * g.OC;
            float *y_sep = arena_floats(&test_arena, ny), *y_fused = arena_floats(&test_arena, ny);
            conv2d_forward_fast(y_sep, x->data, w->data, b ? b->data : NULL, &g);
            channel_affine_rows(y_sep, y_sep, &after, rows, g.OC);
            conv2d_forward_fused(y_fused, x->data, w->data, b ? b->data : NULL, &g, &after);
            size_t bad = 0;
            for (size_t k = 0; k < ny; k++) bad += memcmp(&y_sep[k], &y_fused[k], sizeof(float)) != 0;
            cr_assert(bad == 0, "%s act %d: %zu of %zu outputs differ from the separate pass", what, act, bad, ny);
            threads_shutdown();
        }
}

/* The implicit GEMM (strips and rows) and the weight gradient from the padded input sum in the
 * GEMM's order: the same bits as im2col + GEMM — forward, dx (a stride-1 convolution accumulated
 * onto dx), dw and db (accumulated onto nonzero values); to rounding in the sanitizer builds, which
 * fuse multiply-adds unevenly (SAME_BITS). */
Test(conv2d, implicit_same_bits_as_im2col, .init = test_setup, .fini = test_teardown) {
    static const ConvCase cases[] = {
        {2, 16, 16, 32, 32, 3, 1, 1, 1, true, 2},  // strips, K blocks of 8 taps + 1
        {2, 8, 8, 64, 40, 3, 1, 1, 1, false, 3},   // strips, three K blocks
        {2, 12, 11, 16, 20, 5, 1, 2, 1, true, 2},  // strips, 25 taps in blocks of 16 + 9
        {2, 5, 30, 8, 12, 3, 2, 1, 1, true, 2},    // rows (stride 2)
        {3, 7, 9, 3, 16, 3, 2, 1, 1, true, 2},     // stem-like: Kc = 27, weight rows not whole tiles
        {2, 20, 20, 16, 48, 3, 1, 1, 1, true, 2},  // 400 pixels: two GEMM K blocks per chunk; 1.5 vectors wide
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const ConvCase *c = &cases[i];
        char what[160];
        describe(c, what, sizeof what);
        threads_init(c->threads);
        Tensor *x = rand_tensor(4, (const int[]){c->N, c->H, c->W, c->C}, -1, 1);
        Tensor *w = rand_tensor(4, (const int[]){c->K, c->K, c->C, c->OC}, -1, 1);
        Tensor *b = c->bias ? rand_tensor(1, (const int[]){c->OC}, -1, 1) : NULL;
        ConvGeom g = conv2d_geom(x, w, b, (Conv2dArgs){.stride = c->stride, .pad = c->pad, .groups = 1});
        size_t ny = (size_t)g.N * g.OH * g.OW * g.OC;
        float *y[2], *dx[2], *dw[2], *db[2];
        Tensor *dy = rand_tensor(4, (const int[]){g.N, g.OH, g.OW, g.OC}, -1, 1);
        for (int k = 0; k < 2; k++) {
            conv2d_use_implicit(k == 0);
            y[k] = arena_floats(&test_arena, ny);
            conv2d_forward_fast(y[k], x->data, w->data, b ? b->data : NULL, &g);
            dx[k] = copy_floats(x->data, x->numel);  // accumulated onto
            dw[k] = copy_floats(w->data, w->numel);
            db[k] = copy_floats(x->data, (size_t)g.OC);
            conv2d_backward_fast(dx[k], dw[k], c->bias ? db[k] : NULL, dy->data, x->data, w->data, &g, false);
        }
        conv2d_use_implicit(true);
        char msg[200];
        snprintf(msg, sizeof msg, "forward %s", what);
        assert_same_bits(y[0], y[1], ny, msg);
        snprintf(msg, sizeof msg, "dx %s", what);
        assert_same_bits(dx[0], dx[1], x->numel, msg);
        snprintf(msg, sizeof msg, "dw %s", what);
        assert_same_bits(dw[0], dw[1], w->numel, msg);
        snprintf(msg, sizeof msg, "db %s", what);
        assert_same_bits(db[0], db[1], (size_t)g.OC, msg);
        for (int k = 0; k < 2; k++) dq_free(dx[k]), dq_free(dw[k]), dq_free(db[k]);
        threads_shutdown();
    }
}

Test(conv2d, hand_computed, .init = test_setup, .fini = test_teardown) {
    // One 3x3 single-channel image, 2x2 kernel, stride 1, no padding, bias 10:
    // x = [1 2 3; 4 5 6; 7 8 9], w = [1 0; 0 -1]  ->  y = x[i][j] - x[i+1][j+1] + 10 = 6 everywhere
    Tensor *x = tensor_new4(&test_arena, 1, 3, 3, 1), *w = tensor_new4(&test_arena, 2, 2, 1, 1);
    Tensor *b = tensor_new(&test_arena, 1, (const int[]){1});
    for (int i = 0; i < 9; i++) x->data[i] = (float)(i + 1);
    w->data[0] = 1, w->data[1] = 0, w->data[2] = 0, w->data[3] = -1, b->data[0] = 10;
    Tensor *y = op_conv2d(&T, x, w, b, (Conv2dArgs){.stride = 1, .pad = 0, .groups = 1});
    cr_assert_eq(y->shape[1], 2);
    cr_assert_eq(y->shape[2], 2);
    float want[4] = {6, 6, 6, 6};
    assert_close(y->data, want, 4, 0, 0, "2x2 conv");
    // Padding 1, stride 2 on the same input with a 3x3 all-ones kernel: corner sums.
    Tensor *w3 = tensor_new4(&test_arena, 3, 3, 1, 1);
    tensor_fill(w3, 1);
    Tensor *y3 = op_conv2d(&T, x, w3, NULL, (Conv2dArgs){.stride = 2, .pad = 1, .groups = 1});
    float want3[4] = {1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9};
    assert_close(y3->data, want3, 4, 0, 0, "3x3 ones, stride 2, pad 1");
}

typedef struct ConvCtx {
    Conv2dArgs args;
} ConvCtx;

static Tensor *conv_fn(Tape *t, Tensor **in, void *ctx) {
    return op_conv2d(t, in[0], in[1], in[2], ((ConvCtx *)ctx)->args);
}

static void gradcheck_conv(int N, int H, int C, int OC, int K, Conv2dArgs a, bool ref) {
    Tensor *x = rand_param(4, (const int[]){N, H, H + 1, C}, -1, 1);
    Tensor *w = rand_param(4, (const int[]){K, K, C / a.groups, OC}, -1, 1);
    Tensor *b = rand_param(1, (const int[]){OC}, -1, 1);
    ConvCtx ctx = {a};
    char what[128];
    snprintf(what, sizeof what, "conv2d gradcheck C=%d OC=%d K=%d s=%d p=%d g=%d ref=%d", C, OC, K,
             a.stride, a.pad, a.groups, ref);
    GradcheckOptions o = {.probes = 30, .ref_kernels = ref};
    assert_gradcheck_with(conv_fn, &ctx, (Tensor *[]){x, w, b}, 3, 2e-2, &o, what);
}

Test(conv2d, gradcheck_dense, .init = test_setup, .fini = test_teardown) {
    gradcheck_conv(2, 5, 3, 4, 3, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1}, false);
    gradcheck_conv(1, 6, 2, 3, 3, (Conv2dArgs){.stride = 2, .pad = 1, .groups = 1}, false);
    gradcheck_conv(2, 4, 4, 6, 1, (Conv2dArgs){.stride = 1, .pad = 0, .groups = 1}, false);
}

Test(conv2d, gradcheck_depthwise_and_groups, .init = test_setup, .fini = test_teardown) {
    gradcheck_conv(2, 5, 4, 4, 3, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 4}, false);
    gradcheck_conv(2, 6, 3, 3, 3, (Conv2dArgs){.stride = 2, .pad = 1, .groups = 3}, false);
    gradcheck_conv(1, 5, 4, 6, 3, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 2}, false);
}

Test(conv2d, gradcheck_reference_kernels, .init = test_setup, .fini = test_teardown) {
    gradcheck_conv(2, 5, 3, 4, 3, (Conv2dArgs){.stride = 2, .pad = 1, .groups = 1}, true);
    gradcheck_conv(1, 5, 4, 4, 3, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 4}, true);
}

Test(conv2d, same_bits_for_same_thread_count, .init = test_setup, .fini = test_teardown) {
    threads_init(2);
    Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 6}, -1, 1);
    Tensor *w = rand_tensor(4, (const int[]){3, 3, 6, 10}, -1, 1);
    ConvGeom g = conv2d_geom(x, w, NULL, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1});
    Tensor *dy = rand_tensor(4, (const int[]){4, 8, 8, 10}, -1, 1);
    float *dw1 = arena_floats_zero(&test_arena, w->numel), *dw2 = arena_floats_zero(&test_arena, w->numel);
    conv2d_backward_fast(NULL, dw1, NULL, dy->data, x->data, w->data, &g, false);
    conv2d_backward_fast(NULL, dw2, NULL, dy->data, x->data, w->data, &g, false);
    assert_bits_equal(dw1, dw2, w->numel, "dw, two runs, 2 threads");
    threads_shutdown();
}

/* ------------------------------------------------------------------ errors */
typedef struct BadConv {
    int xshape[4], wshape[4];
    Conv2dArgs args;
} BadConv;

static void make_bad_conv(void *ctx) {
    BadConv *b = ctx;
    Tensor *x = tensor_new(&test_arena, 4, b->xshape), *w = tensor_new(&test_arena, 4, b->wshape);
    op_conv2d(&T, x, w, NULL, b->args);
}

Test(conv2d, rejects_channel_mismatch, .init = test_setup, .fini = test_teardown) {
    BadConv b = {.xshape = {2, 8, 8, 16}, .wshape = {3, 3, 32, 8}, .args = {.stride = 1, .pad = 1, .groups = 1}};
    const char *m = expect_fatal(make_bad_conv, &b);
    cr_assert(strstr(m, "error: conv2d: input has 16 channels") != NULL, "message was: %s", m);
}

Test(conv2d, rejects_bad_groups_and_stride, .init = test_setup, .fini = test_teardown) {
    BadConv g = {.xshape = {2, 8, 8, 6}, .wshape = {3, 3, 2, 8}, .args = {.stride = 1, .pad = 1, .groups = 4}};
    cr_assert(strstr(expect_fatal(make_bad_conv, &g), "groups do not divide") != NULL);
    BadConv s = {.xshape = {2, 8, 8, 6}, .wshape = {3, 3, 6, 8}, .args = {.stride = 0, .pad = 1, .groups = 1}};
    cr_assert(strstr(expect_fatal(make_bad_conv, &s), "stride >= 1") != NULL);
}

Test(conv2d, rejects_kernel_larger_than_input, .init = test_setup, .fini = test_teardown) {
    BadConv k = {.xshape = {1, 2, 2, 1}, .wshape = {5, 5, 1, 1}, .args = {.stride = 1, .pad = 0, .groups = 1}};
    cr_assert(strstr(expect_fatal(make_bad_conv, &k), "does not fit") != NULL);
}

static void conv_mismatch_exit(void) {
    BadConv b = {.xshape = {2, 8, 8, 16}, .wshape = {3, 3, 32, 8}, .args = {.stride = 1, .pad = 1, .groups = 1}};
    make_bad_conv(&b);
}

Test(conv2d, mismatch_exits_with_status_1, .init = test_setup_quiet, .fini = test_teardown, .exit_code = 1) {
    conv_mismatch_exit();
}
