/* test_alloc.c — mixed-precision allocation: the exact knapsack against brute force, Hutchinson's
 * trace against exact traces (a quadratic; a real network through the tape), HAWQ's search on a
 * model meeting its budget, the checkpoint's allocation check, the options. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/loss.h"
#include "core/rng.h"
#include "core/tape.h"
#include "helpers.h"
#include "nn/basic.h"
#include "nn/builder.h"
#include "nn/container.h"
#include "nn/mobilenetv2.h"
#include "quant/alloc.h"
#include "quant/hawq.h"
#include "quant/knapsack.h"
#include "quant/ompq.h"

static void setup(void) { test_setup_quiet(); }
static void teardown(void) { test_teardown(); }

/* ------------------------------------------------------------------ knapsack */
/* The best allocation by trying all of them. */
static double brute_force(int n, const long long *size, int b_min, int b_max, const double *cost, long long budget,
                          int *best_bits) {
    int choices = b_max - b_min + 1, bits[8];
    double best = INFINITY;
    long long combos = 1;
    for (int l = 0; l < n; l++) combos *= choices;
    for (long long k = 0; k < combos; k++) {
        long long r = k, used = 0;
        double c = 0;
        for (int l = 0; l < n; l++) {
            int e = (int)(r % choices);
            r /= choices;
            bits[l] = b_min + e, used += size[l] * bits[l], c += cost[l * choices + e];
        }
        if (used <= budget && c < best) {
            best = c;
            memcpy(best_bits, bits, (size_t)n * sizeof *bits);
        }
    }
    return best;
}

Test(knapsack, equals_brute_force_on_random_cases, .init = setup, .fini = teardown) {
    Rng rng;
    rng_seed(&rng, 5, rng_stream(RNG_STREAM_FREE, 0));
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)rng_below(&rng, 5), b_min = 1 + (int)rng_below(&rng, 2), b_max = b_min + (int)rng_below(&rng, 4);
        int choices = b_max - b_min + 1;
        long long size[8], floor_sum = 0, top = 0;
        double cost[8 * 8];
        int unit = 1 + (int)rng_below(&rng, 3);  // shared factors exercise the gcd
        for (int l = 0; l < n; l++) {
            size[l] = unit * (1 + (long long)rng_below(&rng, 12));
            floor_sum += size[l] * b_min, top += size[l] * b_max;
            double c = 10 * rng_uniform(&rng);
            for (int e = 0; e < choices; e++) cost[l * choices + e] = c, c *= rng_uniform(&rng);  // falls with bits
            if (trial % 7 == 0) cost[l * choices + choices - 1] += 3;  // not always monotone
        }
        long long budget = floor_sum + (long long)rng_below(&rng, (uint32_t)(top - floor_sum + 5));
        int got[8], want[8];
        char err[256];
        cr_assert(knapsack_allocate(n, size, b_min, b_max, cost, budget, 1 << 20, got, err, sizeof err), "%s", err);
        double best = brute_force(n, size, b_min, b_max, cost, budget, want);
        double mine = 0;
        long long used = 0;
        for (int l = 0; l < n; l++) {
            cr_assert(got[l] >= b_min && got[l] <= b_max);
            mine += cost[l * choices + got[l] - b_min], used += size[l] * got[l];
        }
        cr_assert(used <= budget, "trial %d: %lld over the budget %lld", trial, used, budget);
        cr_assert(fabs(mine - best) <= 1e-12 * fmax(1, fabs(best)), "trial %d: cost %.17g, brute force %.17g", trial, mine, best);
    }
}

Test(knapsack, refuses_an_impossible_budget_and_a_huge_table, .init = setup, .fini = teardown) {
    long long size[2] = {10, 7};
    double cost[2 * 3] = {3, 2, 1, 3, 2, 1};
    int bits[2];
    char err[256];
    cr_assert(!knapsack_allocate(2, size, 2, 4, cost, 33, 1 << 20, bits, err, sizeof err));
    cr_assert(strstr(err, "below every layer at 2 bits (34)") != NULL, "%s", err);
    cr_assert(knapsack_allocate(2, size, 2, 4, cost, 34, 1 << 20, bits, err, sizeof err), "%s", err);
    cr_assert(bits[0] == 2 && bits[1] == 2, "the floor exactly: %d %d", bits[0], bits[1]);
    cr_assert(knapsack_allocate(2, size, 2, 4, cost, 1000, 1 << 20, bits, err, sizeof err));
    cr_assert(bits[0] == 4 && bits[1] == 4, "room for all: %d %d", bits[0], bits[1]);
    cr_assert(!knapsack_allocate(2, size, 2, 4, cost, 1000, 8, bits, err, sizeof err));
    cr_assert(strstr(err, "allocation table") != NULL, "%s", err);
}

/* ------------------------------------------------------------------ Hutchinson on a quadratic */
/* loss = ½ wᵀ A w over two tensors (3 and 4 values): g = A w, Tr(H_11) = A00+A11+A22, Tr(H_22) = the rest. */
typedef struct Quad {
    Tensor *w[2];
    double A[7][7];
    float g0[3], g1[4];  // the tensors' gradients
    int calls;
} Quad;

static void quad_grad(void *ctx) {
    Quad *q = ctx;
    float *x[7];
    for (int i = 0; i < 7; i++) x[i] = i < 3 ? &q->w[0]->data[i] : &q->w[1]->data[i - 3];
    for (int i = 0; i < 7; i++) {
        double g = 0;
        for (int j = 0; j < 7; j++) g += q->A[i][j] * *x[j];
        (i < 3 ? q->w[0]->grad : q->w[1]->grad)[i < 3 ? i : i - 3] = (float)g;
    }
    q->calls++;
}

enum QuadKind { QUAD_DIAGONAL, QUAD_CROSS_ONLY, QUAD_FULL };  // off-diagonal terms: none, between the tensors only, all

static void quad_setup(Quad *q, enum QuadKind kind) {
    memset(q, 0, sizeof *q);
    q->w[0] = rand_param(1, (const int[]){3}, -1, 1);
    q->w[1] = rand_param(1, (const int[]){4}, -0.1f, 0.1f);  // another scale: the per-layer step
    q->w[0]->grad = q->g0, q->w[1]->grad = q->g1;
    Rng rng;
    rng_seed(&rng, 9, rng_stream(RNG_STREAM_FREE, 1));
    for (int i = 0; i < 7; i++)
        for (int j = 0; j <= i; j++) {
            bool cross = (i < 3) != (j < 3);
            bool off = i != j && (kind == QUAD_FULL || (kind == QUAD_CROSS_ONLY && cross));
            double v = i == j ? 1 + 4 * rng_uniform(&rng) : off ? rng_uniform(&rng) - 0.5 : 0;
            q->A[i][j] = q->A[j][i] = v;
        }
}

Test(hawq, hutchinson_is_exact_for_a_diagonal_hessian_and_restores_the_weights, .init = setup, .fini = teardown) {
    Quad q;
    quad_setup(&q, QUAD_DIAGONAL);
    float *w0 = copy_floats(q.w[0]->data, 3), *w1 = copy_floats(q.w[1]->data, 4);
    double want0 = q.A[0][0] + q.A[1][1] + q.A[2][2], want1 = q.A[3][3] + q.A[4][4] + q.A[5][5] + q.A[6][6];
    for (int layerwise = 0; layerwise <= 1; layerwise++) {
        double tr[2], se[2];
        q.calls = 0;
        hawq_traces(q.w, 2, quad_grad, &q, 3, layerwise, 1e-3f, 1, (HawqTraces){.trace = tr, .se = se});
        cr_assert_eq(q.calls, layerwise ? 12 : 6, "two gradients per probe, %s", layerwise ? "two probes a draw" : "one");
        cr_assert(fabs(tr[0] - want0) < 1e-3 * want0, "layer 1: %g, exact %g", tr[0], want0);
        cr_assert(fabs(tr[1] - want1) < 1e-3 * want1, "layer 2: %g, exact %g", tr[1], want1);
        cr_assert(se[0] < 1e-3 * want0 && se[1] < 1e-3 * want1, "no spread without off-diagonal terms: %g %g", se[0], se[1]);
        assert_bits_equal(q.w[0]->data, w0, 3, "layer 1 weights after");
        assert_bits_equal(q.w[1]->data, w1, 4, "layer 2 weights after");
    }
}

/* Cross-layer terms only (each layer's own block diagonal): plain Hutchinson scatters, the
 * layerwise probes cancel them exactly with one draw. */
Test(hawq, layerwise_probes_cancel_the_cross_layer_terms_exactly, .init = setup, .fini = teardown) {
    Quad q;
    quad_setup(&q, QUAD_CROSS_ONLY);
    double want0 = q.A[0][0] + q.A[1][1] + q.A[2][2], want1 = q.A[3][3] + q.A[4][4] + q.A[5][5] + q.A[6][6];
    double tr[2], se[2];
    hawq_traces(q.w, 2, quad_grad, &q, 3, true, 1e-3f, 4, (HawqTraces){.trace = tr, .se = se});
    cr_assert(fabs(tr[0] - want0) < 1e-3 * want0 && fabs(tr[1] - want1) < 1e-3 * want1, "layerwise: %g %g, exact %g %g",
              tr[0], tr[1], want0, want1);
    cr_assert(se[0] < 1e-3 * want0 && se[1] < 1e-3 * want1, "layerwise: no spread: %g %g", se[0], se[1]);
    hawq_traces(q.w, 2, quad_grad, &q, 3, false, 1e-3f, 4, (HawqTraces){.trace = tr, .se = se});
    cr_assert(se[0] > 1e-2 * want0 || se[1] > 1e-2 * want1, "plain: the cross terms scatter: %g %g", se[0], se[1]);
    cr_assert_eq(hawq_group_size(53, true), 64);
    cr_assert_eq(hawq_group_size(64, true), 64);
    cr_assert_eq(hawq_group_size(53, false), 1);
}

Test(hawq, hutchinson_converges_to_the_block_traces_with_cross_terms, .init = setup, .fini = teardown) {
    Quad q;
    quad_setup(&q, QUAD_FULL);
    double want0 = q.A[0][0] + q.A[1][1] + q.A[2][2], want1 = q.A[3][3] + q.A[4][4] + q.A[5][5] + q.A[6][6];
    for (int layerwise = 0; layerwise <= 1; layerwise++) {
        double tr[2], se[2];
        hawq_traces(q.w, 2, quad_grad, &q, 4000, layerwise, 1e-3f, 2, (HawqTraces){.trace = tr, .se = se});
        cr_assert(se[0] > 0 && se[1] > 0, "the in-layer cross terms make a spread");
        cr_assert(fabs(tr[0] - want0) < 4 * se[0], "layer 1: %g ± %g, exact %g", tr[0], se[0], want0);
        cr_assert(fabs(tr[1] - want1) < 4 * se[1], "layer 2: %g ± %g, exact %g", tr[1], se[1], want1);
        cr_assert(se[0] < 0.05 * want0, "4000 draws pin it down: se %g", se[0]);
    }
}

/* ------------------------------------------------------------------ through the tape */
static Model *tiny_net(QuantContext *qc) {
    LayerFactory f = quant_factory(qc);
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4,
                            .dropout = 0};
    return mobilenetv2_new(&mc, &f, 3);
}

typedef struct NetGrad {
    Model *m;
    Tensor *x;
    int labels[6];
    Tape *t;
} NetGrad;

static void net_grad(void *ctx) {
    NetGrad *g = ctx;
    if (g->t->pattern) act_pattern_rewind(g->t->pattern);
    slab_zero_grad(&g->m->slab);
    tape_reset(g->t);
    Tensor *logits = model_forward(g->m, g->t, g->x);
    tape_backward(g->t, op_softmax_cross_entropy(g->t, logits, g->labels, 0));
}

/* Softmax regression, one quantized linear layer: the Hessian of the mean cross-entropy in W is
 * (1/N)·Σ_n (diag(p_n) − p_n p_nᵀ) ⊗ x_n x_nᵀ, so Tr = (1/N)·Σ_n (1 − Σ_k p_nk²)·‖x_n‖². */
static Model *softmax_regression(QuantContext *qc) {
    LayerFactory f = quant_factory(qc);
    Model *m = model_new("softmax", 1, 4, 4, 5);
    Layer *net = m->net = sequential_new("softmax");
    sequential_add(net, flatten_layer_new());
    sequential_add(net, builder_weighted(m, &f, &(LayerSpec){.kind = SPEC_LINEAR, .name = "fc", .in = 16, .out = 5,
                                                             .bias = true, .first = true, .last = true}));
    model_finish(m, 4);
    return m;
}

Test(hawq, hutchinson_through_the_tape_matches_softmax_regressions_exact_trace, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    QuantContext *qc = quant_context_new(&c);
    Model *m = softmax_regression(qc);
    Tensor *w = qc->layers[0]->weight;
    for (size_t k = 0; k < w->numel; k++) w->data[k] *= 3;  // logits far from uniform
    quant_set_bypass(qc, true);
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.training = false;
    NetGrad g = {.m = m, .x = rand_tensor(4, (const int[]){6, 4, 4, 1}, -1, 1), .labels = {0, 1, 2, 3, 4, 2}, .t = &t};
    Tensor *logits = model_forward(m, &t, g.x);
    double want = 0;
    for (int n = 0; n < 6; n++) {
        double mx = -1e30, z = 0, p2 = 0, x2 = 0;
        for (int k = 0; k < 5; k++) mx = fmax(mx, logits->data[n * 5 + k]);
        for (int k = 0; k < 5; k++) z += exp(logits->data[n * 5 + k] - mx);
        for (int k = 0; k < 5; k++) p2 += pow(exp(logits->data[n * 5 + k] - mx) / z, 2);
        for (int k = 0; k < 16; k++) x2 += (double)g.x->data[n * 16 + k] * g.x->data[n * 16 + k];
        want += (1 - p2) * x2 / 6;
    }
    double tr, se;
    hawq_traces(&w, 1, net_grad, &g, 2000, true, 1e-3f, 3, (HawqTraces){.trace = &tr, .se = &se});
    cr_assert(se > 0 && se < 0.05 * want, "the probes pin it down: %g ± %g", tr, se);
    cr_assert(fabs(tr - want) < 4 * se, "Hutchinson %g ± %g, exact %g", tr, se, want);
    arena_free(&a);
    model_free(m);
    quant_context_free(qc);
}

/* A small MobileNetV2 (ReLU6 everywhere, residual adds): with every activation kept on its piece
 * at the weights probed, a layer's Hessian block is a Gauss-Newton matrix (its logits are linear
 * in its weights), so every layerwise draw rᵀ H_ll r is ≥ 0, and steps 10 times apart agree. */
Test(hawq, with_the_activation_pattern_frozen_the_layer_traces_are_curvatures, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_net(qc);
    quant_set_bypass(qc, true);
    int n = qc->n_layers;
    Tensor **w = dq_malloc((size_t)n * sizeof *w);
    for (int i = 0; i < n; i++) w[i] = qc->layers[i]->weight;
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.training = false;
    NetGrad g = {.m = m, .x = rand_tensor(4, (const int[]){6, 8, 8, 1}, -1, 1), .labels = {0, 1, 2, 3, 1, 2}, .t = &t};
    t.training = true;  // running statistics of this batch first (evaluation mode keeps the network piecewise linear)
    for (int k = 0; k < 60; k++) {
        tape_reset(&t);
        model_forward(m, &t, g.x);
    }
    t.training = false;
    ActPattern pattern = {0};
    t.pattern = &pattern;
    net_grad(&g);  // the recording, at the weights probed
    pattern.replay = true;
    double tr[2][64], se[64];
    for (int k = 0; k < 2; k++)
        hawq_traces(w, n, net_grad, &g, 1, true, k ? 1e-4f : 1e-3f, 5, (HawqTraces){.trace = tr[k], .se = se});
    for (int i = 0; i < n; i++) {
        cr_assert(tr[0][i] > 0, "layer %d: a draw of %g", i, tr[0][i]);
        cr_assert(fabs(tr[1][i] - tr[0][i]) < 0.05 * tr[0][i], "layer %d: steps 1e-3 and 1e-4 give %g and %g", i, tr[0][i],
                  tr[1][i]);
    }
    // without the pattern the same differences cross kinks: some layer's steps disagree
    t.pattern = NULL;
    for (int k = 0; k < 2; k++)
        hawq_traces(w, n, net_grad, &g, 1, true, k ? 1e-4f : 1e-3f, 5, (HawqTraces){.trace = tr[k], .se = se});
    int apart = 0;
    for (int i = 0; i < n; i++) apart += fabs(tr[1][i] - tr[0][i]) > 0.05 * fabs(tr[0][i]);
    cr_assert(apart > 0, "no layer's traces moved without the pattern");
    act_pattern_free(&pattern);
    arena_free(&a);
    dq_free(w);
    model_free(m);
    quant_context_free(qc);
}

/* ------------------------------------------------------------------ the search on a model */
static QuantContext *hawq_context(float w_bits) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq"), strcpy(c.alloc, "hawq");
    c.w_bits = w_bits, c.hawq_samples = 1;  // one draw: 128 gradients of the tiny net
    return quant_context_new(&c);
}

Test(hawq, search_meets_the_budget_exactly_and_is_deterministic, .init = setup, .fini = teardown) {
    Tensor *x = rand_tensor(4, (const int[]){8, 8, 8, 1}, -1, 1);
    int labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
    AllocBatch batch = {.x = x, .labels = labels};
    for (int k = 0; k < 3; k++) {
        float budget = k == 0 ? 4 : k == 1 ? 2.5f : 3;
        QuantContext *qc = hawq_context(budget);
        Model *m = tiny_net(qc);
        float *w0 = copy_floats(m->slab.data, m->slab.numel);
        QuantAlloc al, again;
        char err[256];
        cr_assert(quant_alloc_search(m, qc, &batch, 1, 7, &al, err, sizeof err), "%s", err);
        assert_bits_equal(m->slab.data, w0, m->slab.numel, "parameters after the search");
        double used = 0, n = 0, smallest = 1e30;
        for (int i = 0; i < qc->n_layers; i++) {
            QuantLayer *l = qc->layers[i];
            if (l->wq->pinned) {
                cr_assert_eq(al.bits[i], 8, "pinned layers keep their bits");
                continue;
            }
            cr_assert(al.bits[i] >= 2 && al.bits[i] <= 8);
            cr_assert(isfinite(al.score[i]));
            used += (double)l->weight->numel * al.bits[i], n += (double)l->weight->numel;
            if ((double)l->weight->numel < smallest) smallest = (double)l->weight->numel;
        }
        cr_assert(used <= budget * n, "budget %g: mean bits %g", budget, used / n);
        cr_assert_float_eq(al.mean_bits, used / n, 1e-12);
        cr_assert(used > budget * n - 6 * n, "and not absurdly below");  // (the costs decide how much is used)
        cr_assert(quant_alloc_search(m, qc, &batch, 1, 7, &again, err, sizeof err), "%s", err);
        cr_assert_arr_eq(al.bits, again.bits, (size_t)qc->n_layers * sizeof(int), "same seed, same bits");
        quant_alloc_apply(qc, &al);
        for (int i = 0; i < qc->n_layers; i++)
            cr_assert_eq(qc->layers[i]->wq->ops->bits(qc->layers[i]->wq), al.bits[i], "applied to the quantizers");
        // the checkpoint's allocation: the same passes, another is refused with the layer named
        Text t;
        text_init(&t);
        quant_alloc_save(qc, &al, &t);
        cr_assert(quant_alloc_matches(qc, &again, t.s, t.len, err, sizeof err), "%s", err);
        int i1 = 1;
        again.bits[i1] = again.bits[i1] == 2 ? 3 : 2;
        cr_assert(!quant_alloc_matches(qc, &again, t.s, t.len, err, sizeof err));
        cr_assert(strstr(err, qc->layers[i1]->base.name) != NULL, "names the layer: %s", err);
        // read back for a resumed run: the same bits and mean, nothing measured; damaged text refused
        QuantAlloc back;
        cr_assert(quant_alloc_parse(qc, t.s, t.len, &back, err, sizeof err), "%s", err);
        cr_assert_arr_eq(back.bits, al.bits, (size_t)qc->n_layers * sizeof(int));
        cr_assert_float_eq(back.mean_bits, al.mean_bits, 1e-12);
        cr_assert(back.seconds == 0 && isnan(back.score[1]));
        quant_alloc_free(&back);
        cr_assert(!quant_alloc_parse(qc, t.s, t.len - 1, &back, err, sizeof err), "the last newline cut");
        cr_assert(!quant_alloc_parse(qc, t.s, strchr(t.s, '\n') + 1 - t.s, &back, err, sizeof err), "one line only");
        Text bad;
        text_init(&bad);
        text_printf(&bad, "%s\nextra 4\n", t.s);
        cr_assert(!quant_alloc_parse(qc, bad.s, bad.len - 0, &back, err, sizeof err), "a line too many");
        text_free(&bad), text_init(&bad);
        text_printf(&bad, "%s", t.s);
        bad.s[strlen(qc->layers[0]->base.name) + 1] = '9';  // 9 bits
        cr_assert(!quant_alloc_parse(qc, bad.s, bad.len, &back, err, sizeof err), "9 bits");
        cr_assert(strstr(err, qc->layers[0]->base.name) != NULL, "names the layer: %s", err);
        text_free(&bad);
        text_free(&t);
        quant_alloc_free(&al), quant_alloc_free(&again);
        dq_free(w0);
        model_free(m);
        quant_context_free(qc);
    }
}

/* ------------------------------------------------------------------ OMPQ */
static double orm_of2(const float *x, int dx, const float *y, int dy, int n) {  // n images of dx and dy features
    double Kx[64], Ky[64];
    double nx = ompq_centred_gram(x, n, dx, Kx), ny = ompq_centred_gram(y, n, dy, Ky);
    return ompq_orm(Kx, nx, Ky, ny, n);
}
static double orm_of(const float *x, const float *y, int n, int d) { return orm_of2(x, d, y, d, n); }

Test(ompq, orthogonality_metric_on_hand_made_features, .init = setup, .fini = teardown) {
    // 4 images, 2 features each
    float x[8] = {1, 0, 0, 2, -1, 1, 3, -2};
    float scaled[8], rotated[8], shifted[8];
    for (int k = 0; k < 8; k++) scaled[k] = 5 * x[k], shifted[k] = x[k] + 7;  // scale; the same offset on every image
    for (int i = 0; i < 4; i++) {  // a rotation by 90°: (a, b) → (−b, a)
        rotated[2 * i] = -x[2 * i + 1], rotated[2 * i + 1] = x[2 * i];
    }
    cr_assert_float_eq(orm_of(x, x, 4, 2), 1, 1e-12);
    cr_assert_float_eq(orm_of(x, scaled, 4, 2), 1, 1e-12, "invariant to scale");
    cr_assert_float_eq(orm_of(x, rotated, 4, 2), 1, 1e-12, "invariant to rotation");
    cr_assert_float_eq(orm_of(x, shifted, 4, 2), 1, 1e-12, "centred: a shift shared by all images is nothing");
    float u[4] = {1, -1, 1, -1}, v[4] = {1, 1, -1, -1};  // centred and orthogonal
    cr_assert_float_eq(orm_of(u, v, 4, 1), 0, 1e-12, "uncorrelated features: 0");
    float w[4] = {1, 1, 1, 1};
    cr_assert_eq(orm_of(u, w, 4, 1), 0, "a constant feature has no centred Gram: 0, not NaN");
    double g = orm_of2(u, 1, x, 2, 4);  // layers of different widths
    cr_assert(g > 0 && g < 1, "in between: %g", g);
    // importance: θ_l = exp(−β Σ_{j≠l} ORM), c_l = mean of θ from l on
    double orm[9] = {1, 0.5, 0.2, 0.5, 1, 0.1, 0.2, 0.1, 1}, theta[3], c[3];
    ompq_importance(orm, 3, 2, theta, c);
    cr_assert_float_eq(theta[0], exp(-2 * 0.7), 1e-15);
    cr_assert_float_eq(theta[1], exp(-2 * 0.6), 1e-15);
    cr_assert_float_eq(theta[2], exp(-2 * 0.3), 1e-15);
    cr_assert_float_eq(c[2], theta[2], 1e-15);
    cr_assert_float_eq(c[0], (theta[0] + theta[1] + theta[2]) / 3, 1e-15);
}

Test(ompq, search_meets_the_budget_and_is_deterministic, .init = setup, .fini = teardown) {
    Tensor *x = rand_tensor(4, (const int[]){8, 8, 8, 1}, -1, 1);
    int labels[8] = {0};
    AllocBatch batch = {.x = x, .labels = labels};
    QuantConfig cfg = quant_config_defaults;
    strcpy(cfg.method, "lsq"), strcpy(cfg.alloc, "ompq");
    cfg.w_bits = 3;
    QuantContext *qc = quant_context_new(&cfg);
    Model *m = tiny_net(qc);
    QuantAlloc al, again;
    char err[256];
    cr_assert(quant_alloc_search(m, qc, &batch, 1, 1, &al, err, sizeof err), "%s", err);
    cr_assert(quant_alloc_search(m, qc, &batch, 1, 2, &again, err, sizeof err), "%s", err);
    cr_assert_arr_eq(al.bits, again.bits, (size_t)qc->n_layers * sizeof(int), "no randomness");
    double used = 0, n = 0;
    for (int i = 0; i < qc->n_layers; i++) {
        QuantLayer *l = qc->layers[i];
        if (l->wq->pinned) continue;
        cr_assert(al.score[i] > 0 && al.score[i] <= 1, "θ in (0, 1]: %g", al.score[i]);
        used += (double)l->weight->numel * al.bits[i], n += (double)l->weight->numel;
    }
    cr_assert(used <= 3 * n && used > 3 * n - 200, "mean bits %g against 3 (the objective grows with every bit)", used / n);
    quant_alloc_free(&al), quant_alloc_free(&again);
    model_free(m);
    quant_context_free(qc);
}

/* ------------------------------------------------------------------ options */
static void bad_alloc_method(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.alloc, "hawq");  // with DDQ
    quant_config_check(&c, &quant_config_defaults, "exp");
}
static void hawq_option_without_alloc(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    c.hawq_samples = 5;
    quant_config_check(&c, &quant_config_defaults, "exp");
}

Test(hawq, options_are_checked, .init = setup, .fini = teardown) {
    const char *m = expect_fatal(bad_alloc_method, NULL);
    cr_assert(strstr(m, "--q_alloc=hawq allocates bits for an LSQ fine-tune") != NULL, "got: %s", m);
    m = expect_fatal(hawq_option_without_alloc, NULL);
    cr_assert(strstr(m, "--hawq_samples=5 has no effect with --q_alloc=none") != NULL, "got: %s", m);
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq"), strcpy(c.alloc, "hawq");
    c.w_bits = 3.5f;
    char err[256];
    cr_assert(quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "a fractional mean with an allocator: %s", err);
    strcpy(c.alloc, "none");
    cr_assert(!quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "but not without");
}
