/* test_multipoint.c — multipoint quantization: the single best point against brute force on tiny
 * cases, the greedy error falling with every point, and points spent where the output error is;
 * on a model: the layers' input moments against patches taken by hand (convolution, depthwise,
 * linear), one point per channel equal to that channel's best point, storage counting points,
 * and the weights refused before calibration. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/mobilenetv2.h"
#include "quant/control.h"
#include "quant/mpquant.h"
#include "quant/multipoint.h"

/* min over all codes q ∈ [−2^(b−1), 2^(b−1) − 1]^n and all a of ‖r − a·q‖² (a = ⟨r,q⟩/⟨q,q⟩). */
static double brute_force(const float *r, int n, int bits) {
    int lo = -(1 << (bits - 1)), span = 1 << bits, q[8];
    long combos = 1;
    double best = INFINITY;
    for (int i = 0; i < n; i++) combos *= span;
    for (long c = 0; c < combos; c++) {
        long x = c;
        double rq = 0, qq = 0, rr = 0;
        for (int i = 0; i < n; i++, x /= span) q[i] = lo + (int)(x % span), rq += (double)r[i] * q[i], qq += (double)q[i] * q[i];
        for (int i = 0; i < n; i++) rr += (double)r[i] * r[i];
        double e = qq > 0 ? rr - rq * rq / qq : rr;
        best = fmin(best, e);
    }
    return best;
}

Test(multipoint, one_point_is_the_brute_force_optimum, .init = test_setup, .fini = test_teardown) {
    Rng rng;
    rng_seed(&rng, 41, rng_stream(RNG_STREAM_FREE, 0));
    for (int trial = 0; trial < 400; trial++) {
        int n = 1 + (int)rng_below(&rng, 4), bits = 2 + (int)rng_below(&rng, 2);
        float r[4], a;
        int8_t q[4];
        for (int i = 0; i < n; i++) r[i] = 2 * rng_uniform(&rng) - 1;
        if (trial % 5 == 0) r[0] = 0;  // zeros, and one dominant value
        if (trial % 7 == 0) r[n - 1] *= 20;
        double e = mp_fit_point(r, (size_t)n, bits, &a, q), want = brute_force(r, n, bits);
        double scale = 0;
        for (int i = 0; i < n; i++) scale += (double)r[i] * r[i];
        cr_assert(fabs(e - want) <= 1e-6 * scale + 1e-12, "trial %d (n %d, %d bits): %g, brute force %g", trial, n, bits, e, want);
        for (int i = 0; i < n; i++) cr_assert(q[i] >= -(1 << (bits - 1)) && q[i] <= (1 << (bits - 1)) - 1);
    }
}

Test(multipoint, greedy_error_falls_with_every_point, .init = test_setup, .fini = test_teardown) {
    Rng rng;
    rng_seed(&rng, 42, rng_stream(RNG_STREAM_FREE, 0));
    float w[97], approx[97];
    double err[6], norm = 0;
    for (int i = 0; i < 97; i++) w[i] = (float)rng_normal(&rng), norm += (double)w[i] * w[i];
    mp_approximate(w, 97, 3, 6, approx, err);
    for (int p = 0; p < 6; p++) cr_assert(err[p] < (p ? err[p - 1] : norm), "point %d: %g after %g", p + 1, err[p], p ? err[p - 1] : norm);
    cr_assert(err[5] < 1e-3 * norm, "six 3-bit points come close: %g of %g", err[5], norm);
    double e = 0;
    for (int i = 0; i < 97; i++) e += ((double)w[i] - approx[i]) * ((double)w[i] - approx[i]);
    cr_assert(fabs(e - err[5]) <= 1e-9 * norm, "the approximation is the sum of the points");
}

Test(multipoint, points_go_where_the_output_error_is, .init = test_setup, .fini = test_teardown) {
    // 4 channels of 16 weights laid out as a (16, 4) matrix (channel c at column c), C = identity
    // except channel 2's inputs, 100× larger: its output error dominates, it gets the extra points
    int k = 4;
    size_t n = 16;
    float w[64], approx[64], one[64];
    Rng rng;
    rng_seed(&rng, 43, rng_stream(RNG_STREAM_FREE, 0));
    for (int i = 0; i < 64; i++) w[i] = (float)rng_normal(&rng);
    double *C = dq_calloc((size_t)k * n * n, sizeof *C);
    for (int c = 0; c < k; c++)
        for (size_t i = 0; i < n; i++) C[(size_t)c * n * n + i * n + i] = c == 2 ? 100 : 1;
    int points[4], base[4];
    mp_allocate(w, k, n, 1, (size_t)k, C, n * n, 2, k, one, base);
    for (int c = 0; c < k; c++) cr_assert_eq(base[c], 1);
    mp_allocate(w, k, n, 1, (size_t)k, C, n * n, 2, k + 3, approx, points);
    cr_assert_eq(points[0] + points[1] + points[2] + points[3], k + 3, "the whole budget");
    cr_assert(points[2] >= 3, "the channel whose output error is 100x: %d %d %d %d", points[0], points[1], points[2], points[3]);
    for (int c = 0; c < k; c++) {  // no channel's output error grew, the heavy one's fell
        double e1 = 0, e2 = 0;
        for (size_t i = 0; i < n; i++) {
            double d1 = w[i * k + c] - one[i * k + c], d2 = w[i * k + c] - approx[i * k + c];
            e1 += d1 * d1 * (c == 2 ? 100 : 1), e2 += d2 * d2 * (c == 2 ? 100 : 1);
        }
        cr_assert(e2 <= e1 + 1e-9, "channel %d: %g after %g", c, e2, e1);
        if (c == 2) cr_assert(e2 < 0.5 * e1);
    }
    dq_free(C);
}

/* ------------------------------------------------------------------ on a model */
/* The patch of x (N, H, W, C) for output position (img, oh, ow) in the weights' order, by hand. */
static void patch(const Tensor *x, int img, int oh, int ow, int K, int S, int P, int ch, float *v) {
    int H = x->shape[1], W = x->shape[2], C = x->shape[3], k = 0;
    for (int kh = 0; kh < K; kh++)
        for (int kw = 0; kw < K; kw++)
            for (int c = 0; c < C; c++) {
                if (ch >= 0 && c != ch) continue;
                int ih = oh * S - P + kh, iw = ow * S - P + kw;
                v[k++] = ih < 0 || ih >= H || iw < 0 || iw >= W ? 0 : x->data[(((size_t)img * H + ih) * W + iw) * C + c];
            }
}

Test(mpquant, input_moments_are_the_patches_second_moments, .init = test_setup, .fini = test_teardown) {
    for (int dw = 0; dw < 2; dw++) {
        int C = dw ? 2 : 3, K = 3, S = dw ? 2 : 1, P = 1, H = dw ? 5 : 4;
        LayerSpec s = {.kind = dw ? SPEC_DEPTHWISE : SPEC_CONV, .in = C, .out = dw ? C : 4, .kernel = K, .stride = S, .pad = P,
                       .groups = dw ? C : 1};
        Tensor *x = rand_tensor(4, (const int[]){2, H, H, C}, -1, 1);
        size_t n = (size_t)K * K * (dw ? 1 : C);
        double *got = dq_calloc((size_t)C * n * n, sizeof *got), *want = dq_calloc((size_t)C * n * n, sizeof *want);
        long long count = mpq_add_moments(&s, x, got, n);
        int OH = (H + 2 * P - K) / S + 1;
        cr_assert_eq(count, 2LL * OH * OH, "every position (fewer than MPQ_PATCHES)");
        float v[27];
        for (int img = 0; img < 2; img++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OH; ow++)
                    for (int ch = 0; ch < (dw ? C : 1); ch++) {
                        patch(x, img, oh, ow, K, S, P, dw ? ch : -1, v);
                        for (size_t i = 0; i < n; i++)
                            for (size_t j = 0; j < n; j++) want[(size_t)ch * n * n + i * n + j] += (double)v[i] * v[j];
                    }
        for (size_t i = 0; i < (dw ? (size_t)C : 1) * n * n; i++)
            cr_assert(fabs(got[i] - want[i]) <= 1e-9 * (1 + fabs(want[i])), "%s, entry %zu: %g vs %g", dw ? "depthwise" : "conv", i,
                      got[i], want[i]);
        dq_free(got), dq_free(want);
    }
    LayerSpec lin = {.kind = SPEC_LINEAR, .in = 6, .out = 2};
    Tensor *x = rand_tensor(2, (const int[]){5, 6}, -1, 1);
    double got[36] = {0};
    cr_assert_eq(mpq_add_moments(&lin, x, got, 6), 5);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            double w = 0;
            for (int r = 0; r < 5; r++) w += (double)x->data[r * 6 + i] * x->data[r * 6 + j];
            cr_assert(fabs(got[i * 6 + j] - w) <= 1e-9);
        }
}

static void forward_uncalibrated(void *ctx) { quantizer_forward(ctx, &T, rand_tensor(1, (const int[]){6}, -1, 1)); }

Test(mpquant, one_point_each_is_the_channels_best_point_and_storage_counts_points, .init = test_setup, .fini = test_teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "multipoint");
    c.w_bits = 3, c.a_bits = 8;
    QuantContext *qc = quant_context_new(&c);
    LayerFactory f = quant_factory(qc);
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4, .dropout = 0};
    Model *m = mobilenetv2_new(&mc, &f, 3);
    Arena a;
    arena_init(&a, 1 << 22, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true, t.training = false;
    for (double avg = 1; avg <= 1.5; avg += 0.5) {
        quant_calibrate_begin_fp32_weights(qc);
        mpq_calibrate_begin(qc);
        tape_reset(&t);
        model_forward(m, &t, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
        quant_calibrate_end(qc);
        char err[256];
        cr_assert(mpq_calibrate_end(qc, avg, err, sizeof err), "%s", err);
        for (int i = 0; i < qc->n_layers; i++) {
            QuantLayer *l = qc->layers[i];
            int k = l->spec.out, bits = l->wq->pinned ? c.pin_bits : 3;
            size_t n = l->weight->numel / (size_t)k;
            double pts = mpq_points(l->wq);
            cr_assert(l->wq->pinned || avg == 1 ? pts == 1 : pts > 1.4 && pts < 1.6, "%s: %g points", l->base.name, pts);
            cr_assert_float_eq(quantizer_bits_stored(l->wq), bits * pts, 1e-12);
            if (avg > 1 && !l->wq->pinned) continue;
            tape_reset(&t);
            Tensor *wq = quantizer_forward(l->wq, &t, l->weight);
            float *wc = dq_malloc(n * sizeof *wc), *ac = dq_malloc(n * sizeof *ac);
            for (int ch = 0; ch < k; ch += 3) {  // some channels: their one point, fitted alone
                for (size_t j = 0; j < n; j++) wc[j] = l->weight->data[j * (size_t)k + (size_t)ch];
                mp_approximate(wc, n, bits, 1, ac, NULL);
                for (size_t j = 0; j < n; j++)
                    cr_assert_eq(wq->data[j * (size_t)k + (size_t)ch], ac[j], "%s channel %d", l->base.name, ch);
            }
            dq_free(wc), dq_free(ac);
        }
        for (int i = 0; i < qc->n_layers; i++) qc->layers[i]->aq->calibrated = false;  // (calibrate again next round)
    }
    Quantizer *fresh = mpq_new("l.wq", false, 4, 6);  // (allocated here: the fatal error leaves the callee)
    fresh->bypass = false;                             // (new quantizers pass through until set up)
    const char *msg = expect_fatal(forward_uncalibrated, fresh);
    cr_assert(strstr(msg, "multipoint weights used before calibration") != NULL, "got: %s", msg);
    quantizer_free(fresh);
    arena_free(&a);
    model_free(m);
    quant_context_free(qc);
}
