/* test_bsq.c — BSQ's bit planes: exact reconstruction, the straight-through step and its clip,
 * the group lasso's proximal step, re-quantization dropping empty planes, and the search meeting
 * its budget on a model. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "helpers.h"
#include "nn/mobilenetv2.h"
#include "quant/alloc.h"
#include "quant/bsq.h"

static void setup(void) { test_setup_quiet(); }
static void teardown(void) { test_teardown(); }

static const float W[] = {0.5f, -0.31f, 0.02f, 0.0f, -0.5f, 0.26f, -0.004f, 0.129f, 0.3f};
#define NW (sizeof W / sizeof *W)

Test(bsq, planes_reconstruct_the_uniform_quantization_exactly, .init = setup, .fini = teardown) {
    for (int bits = 1; bits <= BSQ_MAX_BITS; bits++) {
        BsqLayer L;
        bsq_init(&L, W, NW, bits);
        float top = (float)((1 << bits) - 1), step = 0.5f / top, got[NW];
        cr_assert_float_eq(L.step, step, 1e-9, "scale max|w| = 0.5 over 2^%d − 1", bits);
        bsq_weight(&L, got);
        for (size_t i = 0; i < NW; i++) {
            cr_assert_eq(got[i], step * (float)round(W[i] / step), "%d bits, w %g: %g", bits, W[i], got[i]);
            for (int b = 0; b < BSQ_MAX_BITS; b++) {  // binary, on the sign's side only, none above the precision
                float p = L.pos[(size_t)b * NW + i], m = L.neg[(size_t)b * NW + i];
                cr_assert((p == 0 || p == 1) && (m == 0 || m == 1) && p * m == 0);
                cr_assert(b < bits || (p == 0 && m == 0));
                cr_assert(W[i] >= 0 || p == 0);
            }
        }
        cr_assert_eq(bsq_requantize(&L, 1), bits, "no plane is empty: nothing dropped");
        float again[NW];
        bsq_weight(&L, again);
        cr_assert_arr_eq(again, got, sizeof got, "re-quantizing binary planes changes nothing");
        bsq_free(&L);
    }
}

Test(bsq, straight_through_step_clip_and_proximal_shrink, .init = setup, .fini = teardown) {
    BsqLayer L;
    bsq_init(&L, W, NW, 4);
    float g[NW];
    for (size_t i = 0; i < NW; i++) g[i] = 0.01f * (float)((int)i - 4);
    BsqLayer before = L;
    before.pos = copy_floats(L.pos, BSQ_MAX_BITS * NW), before.neg = copy_floats(L.neg, BSQ_MAX_BITS * NW);
    float lr = 0.5f;
    bsq_step(&L, g, lr, 0);
    for (int b = 0; b < 4; b++)
        for (size_t i = 0; i < NW; i++) {
            size_t k = (size_t)b * NW + i;
            float d = lr * L.step * (float)(1 << b) * g[i];  // ∂L/∂P_b = step·2^b·∂L/∂W
            float want_p = fminf(2, fmaxf(0, before.pos[k] - d)), want_m = fminf(2, fmaxf(0, before.neg[k] + d));
            cr_assert_float_eq(L.pos[k], want_p, 1e-7, "plane %d, weight %zu", b, i);
            cr_assert_float_eq(L.neg[k], want_m, 1e-7, "plane %d, weight %zu", b, i);
        }
    // the proximal step: a plane whose norm is under the threshold is zeroed, the others scale by 1 − t/‖·‖
    memcpy(L.pos, before.pos, BSQ_MAX_BITS * NW * sizeof(float)), memcpy(L.neg, before.neg, BSQ_MAX_BITS * NW * sizeof(float));
    double norm[4];
    for (int b = 0; b < 4; b++) norm[b] = bsq_plane_norm(&L, b);
    float zero[NW] = {0}, t = 1.5f;
    bsq_step(&L, zero, lr, t);
    int zeroed = 0, kept = 0;
    for (int b = 0; b < 4; b++) {
        double keep = norm[b] > t ? 1 - t / norm[b] : 0;
        zeroed += keep == 0, kept += keep > 0;
        for (size_t i = 0; i < NW; i++) {
            size_t k = (size_t)b * NW + i;
            cr_assert_float_eq(L.pos[k], before.pos[k] * keep, 1e-6);
            cr_assert_float_eq(L.neg[k], before.neg[k] * keep, 1e-6);
        }
    }
    cr_assert(zeroed > 0 && kept > 0, "the case covers both (norms %g %g %g %g)", norm[0], norm[1], norm[2], norm[3]);
    dq_free(before.pos), dq_free(before.neg);
    bsq_free(&L);
}

Test(bsq, requantization_drops_empty_top_and_bottom_planes, .init = setup, .fini = teardown) {
    // even codes (step 1: w = code): the bottom plane is empty, dropped with the step doubled
    const float even[] = {4, -12, 0, 8, 14};
    BsqLayer L;
    bsq_init(&L, even, 5, 4);  // scale 14 → step 14/15: codes round(w·15/14) — not all even
    L.step = 1;
    long codes[] = {4, -12, 0, 8, 14};
    memset(L.pos, 0, BSQ_MAX_BITS * 5 * sizeof(float)), memset(L.neg, 0, BSQ_MAX_BITS * 5 * sizeof(float));
    for (int i = 0; i < 5; i++)
        for (int b = 0; b < 4; b++) (codes[i] < 0 ? L.neg : L.pos)[b * 5 + i] = (float)((labs(codes[i]) >> b) & 1);
    float got[5];
    cr_assert_eq(bsq_requantize(&L, 2), 3, "one empty bottom plane");
    cr_assert_float_eq(L.step, 2, 0);
    bsq_weight(&L, got);
    cr_assert_arr_eq(got, even, sizeof got, "values kept");
    // the top plane emptied (as the regulariser would): the range shrinks, the step stays
    for (int i = 0; i < 5; i++) L.pos[2 * 5 + i] = L.neg[2 * 5 + i] = 0;  // codes now 2, −2, 0, 0, 3
    cr_assert_eq(bsq_requantize(&L, 1), 2);
    cr_assert_float_eq(L.step, 2, 0);
    bsq_weight(&L, got);
    const float want[] = {4, -4, 0, 0, 6};
    cr_assert_arr_eq(got, want, sizeof got);
    // continuous planes: the value rounds, and a carry beyond n bits clips to the largest code
    memset(L.pos, 0, BSQ_MAX_BITS * 5 * sizeof(float)), memset(L.neg, 0, BSQ_MAX_BITS * 5 * sizeof(float));
    L.pos[0 * 5 + 0] = 0.6f, L.pos[1 * 5 + 0] = 2.0f;  // weight 0: 0.6 + 2·2 = 4.6 → 5, clipped to 3
    L.neg[0 * 5 + 1] = 0.4f, L.pos[1 * 5 + 2] = 0.7f;  // weight 1: −0.4 → 0; weight 2: 1.4 → 1
    cr_assert_eq(bsq_requantize(&L, 2), 2);
    bsq_weight(&L, got);
    cr_assert_float_eq(got[0], 3 * L.step, 0);
    cr_assert_float_eq(got[1], 0, 0);
    cr_assert_float_eq(got[2], L.step, 0);
    bsq_free(&L);
    // planes emptied everywhere: down to b_min and no further
    bsq_init(&L, W, NW, 6);
    memset(L.pos, 0, BSQ_MAX_BITS * NW * sizeof(float)), memset(L.neg, 0, BSQ_MAX_BITS * NW * sizeof(float));
    cr_assert_eq(bsq_requantize(&L, 3), 3);
    bsq_free(&L);
}

/* ------------------------------------------------------------------ the search on a model */
Test(bsq, search_lands_within_the_budget_restores_the_weights_and_is_deterministic, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq"), strcpy(c.alloc, "bsq");
    c.w_bits = 5, c.bsq_steps = 6, c.bsq_requant = 3, c.bsq_trials = 6, c.bsq_alpha = 1;
    QuantContext *qc = quant_context_new(&c);
    LayerFactory f = quant_factory(qc);
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4,
                            .dropout = 0};
    Model *m = mobilenetv2_new(&mc, &f, 3);
    Tensor *x = rand_tensor(4, (const int[]){8, 8, 8, 1}, -1, 1);
    int labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    AllocBatch batch = {.x = x, .labels = labels};
    float *w0 = copy_floats(m->slab.data, m->slab.numel);
    QuantAlloc al, again;
    char err[256];
    cr_assert(quant_alloc_search(m, qc, &batch, 1, 7, &al, err, sizeof err), "%s", err);
    assert_bits_equal(m->slab.data, w0, m->slab.numel, "parameters after the search");
    cr_assert(al.mean_bits <= 5 && al.mean_bits >= 2, "mean bits %g within the budget", al.mean_bits);
    cr_assert(al.param > 0, "the strength chosen: %g", al.param);
    for (int i = 0; i < qc->n_layers; i++)
        cr_assert(qc->layers[i]->wq->pinned ? al.bits[i] == 8 : al.bits[i] >= 2 && al.bits[i] <= 8);
    cr_assert(quant_alloc_search(m, qc, &batch, 1, 7, &again, err, sizeof err), "%s", err);
    cr_assert_arr_eq(al.bits, again.bits, (size_t)qc->n_layers * sizeof(int), "same data, same bits");
    // one weak strength alone cannot reach a low budget: a clear refusal
    qc->cfg.bsq_trials = 1, qc->cfg.bsq_alpha = 1e-6f, qc->cfg.w_bits = 2;
    QuantAlloc none;
    cr_assert(!quant_alloc_search(m, qc, &batch, 1, 7, &none, err, sizeof err));
    cr_assert(strstr(err, "raise --bsq_alpha") != NULL, "got: %s", err);
    quant_alloc_free(&al), quant_alloc_free(&again), quant_alloc_free(&none);
    dq_free(w0);
    model_free(m);
    quant_context_free(qc);
}

/* ------------------------------------------------------------------ options */
static void bsq_option_with_hawq(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq"), strcpy(c.alloc, "hawq");
    c.bsq_steps = 10;
    quant_config_check(&c, &quant_config_defaults, "exp");
}

Test(bsq, its_options_belong_to_it, .init = setup, .fini = teardown) {
    const char *m = expect_fatal(bsq_option_with_hawq, NULL);
    cr_assert(strstr(m, "--bsq_steps=10 has no effect with --q_alloc other than bsq") != NULL, "got: %s", m);
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq"), strcpy(c.alloc, "bsq");
    c.bsq_steps = 10, c.alloc_train_images = 512;
    char err[256];
    cr_assert(quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "%s", err);
    cr_assert_eq(quant_alloc_images(&c), 512, "bsq trains on --alloc_train_images");
    c.alloc_images = 100;
    cr_assert(!quant_config_validate(&c, &quant_config_defaults, err, sizeof err) && strstr(err, "--alloc_images=100 has no effect"),
              "%s", err);
    strcpy(c.alloc, "ompq");
    c.bsq_steps = quant_config_defaults.bsq_steps, c.alloc_train_images = quant_config_defaults.alloc_train_images;
    cr_assert_eq(quant_alloc_images(&c), 100, "ompq measures on --alloc_images");
}
