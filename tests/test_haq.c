/* test_haq.c — HAQ's agent: the MLP's backpropagation, the critic's and the actor's gradients
 * against central differences in double, the agent learning a one-step bandit; the budget's
 * enforcement, and the search on a model (budget met by size and by latency, the model restored,
 * the same seed giving the same bits). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "helpers.h"
#include "nn/mobilenetv2.h"
#include "quant/alloc.h"
#include "quant/ddpg.h"
#include "quant/haq.h"

static void setup(void) { test_setup_quiet(); }
static void teardown(void) { test_teardown(); }

static double *rand_doubles(Rng *rng, size_t n, double scale) {
    double *x = dq_malloc(n * sizeof *x);
    for (size_t k = 0; k < n; k++) x[k] = scale * (2 * rng_uniform(rng) - 1);
    return x;
}

/* Σ dout·mlp(x). */
static double weighted_out(Mlp *m, const double *x, const double *dout, int n) {
    const double *y = mlp_forward(m, x, n);
    double s = 0;
    for (size_t k = 0; k < (size_t)n * m->sizes[m->n_layers]; k++) s += dout[k] * y[k];
    return s;
}

/* Every parameter's and input's gradient against a central difference. */
static void check_mlp(bool sigmoid_out) {
    Rng rng;
    rng_seed(&rng, 11, rng_stream(RNG_STREAM_FREE, 0));
    Mlp m;
    mlp_init(&m, 3, (const int[]){5, 7, 6, 2}, sigmoid_out, &rng);
    for (int l = 0; l < 3; l++)  // an output layer of DDPG's ±3e-3 would make every difference tiny
        for (int k = 0; k < m.sizes[l + 1] * m.sizes[l]; k++) m.w[l][k] = 0.8 * (2 * rng_uniform(&rng) - 1);
    int n = 4;
    double *x = rand_doubles(&rng, (size_t)n * 5, 1), *dout = rand_doubles(&rng, (size_t)n * 2, 1);
    double dx[4 * 5], h = 1e-6;
    weighted_out(&m, x, dout, n);
    mlp_zero_grad(&m);
    mlp_backward(&m, dout, n, dx);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < m.sizes[l + 1] * (m.sizes[l] + 1); k++) {  // weights, then biases
            bool is_w = k < m.sizes[l + 1] * m.sizes[l];
            double *p = is_w ? &m.w[l][k] : &m.b[l][k - m.sizes[l + 1] * m.sizes[l]];
            double g = is_w ? m.gw[l][k] : m.gb[l][k - m.sizes[l + 1] * m.sizes[l]], keep = *p;
            *p = keep + h;
            double up = weighted_out(&m, x, dout, n);
            *p = keep - h;
            double down = weighted_out(&m, x, dout, n);
            *p = keep;
            double num = (up - down) / (2 * h);
            cr_assert(fabs(num - g) <= 1e-6 + 1e-5 * fabs(num), "layer %d %s %d: numeric %g, backprop %g", l,
                      is_w ? "w" : "b", k, num, g);
        }
    for (int k = 0; k < n * 5; k++) {
        double keep = x[k];
        x[k] = keep + h;
        double up = weighted_out(&m, x, dout, n);
        x[k] = keep - h;
        double down = weighted_out(&m, x, dout, n);
        x[k] = keep;
        cr_assert(fabs((up - down) / (2 * h) - dx[k]) <= 1e-6, "input %d", k);
    }
    dq_free(x), dq_free(dout);
    mlp_free(&m);
}

Test(ddpg, mlp_backprop_matches_central_differences, .init = setup, .fini = teardown) {
    check_mlp(true);
    check_mlp(false);
}

static void scramble(Mlp *m, Rng *rng) {  // away from the small output initialisation
    for (int l = 0; l < m->n_layers; l++)
        for (int k = 0; k < m->sizes[l + 1] * m->sizes[l]; k++) m->w[l][k] = 0.7 * (2 * rng_uniform(rng) - 1);
}

Test(ddpg, critic_and_actor_gradients_match_central_differences, .init = setup, .fini = teardown) {
    DdpgConfig cfg = {.state_dim = 3, .hidden = 8, .lr_actor = 1e-3, .lr_critic = 1e-3, .batch = 5, .capacity = 16};
    Ddpg d;
    ddpg_init(&d, &cfg, 4);
    Rng rng;
    rng_seed(&rng, 12, rng_stream(RNG_STREAM_FREE, 0));
    scramble(&d.actor, &rng), scramble(&d.critic, &rng);
    int n = 5;
    double *sa = rand_doubles(&rng, (size_t)n * 4, 1), *r = rand_doubles(&rng, (size_t)n, 1), h = 1e-6;
    double *states = rand_doubles(&rng, (size_t)n * 3, 1);
    // the critic: ∂ mean (Q − r)² / ∂θ
    ddpg_critic_grad(&d, sa, r, n);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < d.critic.sizes[l + 1] * d.critic.sizes[l]; k += 3) {
            double g = d.critic.gw[l][k], keep = d.critic.w[l][k];
            d.critic.w[l][k] = keep + h;
            const double *q = mlp_forward(&d.critic, sa, n);
            double up = 0, down = 0;
            for (int j = 0; j < n; j++) up += (q[j] - r[j]) * (q[j] - r[j]) / n;
            d.critic.w[l][k] = keep - h;
            q = mlp_forward(&d.critic, sa, n);
            for (int j = 0; j < n; j++) down += (q[j] - r[j]) * (q[j] - r[j]) / n;
            d.critic.w[l][k] = keep;
            double num = (up - down) / (2 * h);
            cr_assert(fabs(num - g) <= 1e-6 + 1e-5 * fabs(num), "critic layer %d w %d: %g vs %g", l, k, num, g);
        }
    // the actor: ∂(−mean Q(s, μ_θ(s)))/∂θ through the critic
    ddpg_actor_grad(&d, states, n);
    double *row = dq_malloc(4 * sizeof *row);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < d.actor.sizes[l + 1] * d.actor.sizes[l]; k += 2) {
            double g = d.actor.gw[l][k], keep = d.actor.w[l][k], val[2];
            for (int side = 0; side < 2; side++) {
                d.actor.w[l][k] = keep + (side ? -h : h);
                val[side] = 0;
                for (int j = 0; j < n; j++) {
                    memcpy(row, states + j * 3, 3 * sizeof *row);
                    row[3] = mlp_forward(&d.actor, states + j * 3, 1)[0];
                    val[side] -= mlp_forward(&d.critic, row, 1)[0] / n;
                }
            }
            d.actor.w[l][k] = keep;
            double num = (val[0] - val[1]) / (2 * h);
            cr_assert(fabs(num - g) <= 1e-7 + 1e-5 * fabs(num), "actor layer %d w %d: %g vs %g", l, k, num, g);
        }
    dq_free(row), dq_free(sa), dq_free(r), dq_free(states);
    ddpg_free(&d);
}

Test(ddpg, learns_a_one_step_bandit, .init = setup, .fini = teardown) {
    // reward −(a − t(s))² with t(s) = 0.2 + 0.6·s₀: the actor should learn t
    DdpgConfig cfg = {.state_dim = 2, .hidden = 32, .lr_actor = 1e-3, .lr_critic = 3e-3, .batch = 32, .capacity = 2000};
    Ddpg d;
    ddpg_init(&d, &cfg, 9);
    Rng rng;
    rng_seed(&rng, 13, rng_stream(RNG_STREAM_FREE, 0));
    for (int it = 0; it < 3000; it++) {
        double s[2] = {rng_uniform(&rng), 1}, a = rng_uniform(&rng), t = 0.2 + 0.6 * s[0];
        if (it > 500) a = fmin(1, fmax(0, ddpg_act(&d, s) + 0.2 * rng_normal(&rng)));  // explore around μ
        ddpg_observe(&d, s, a, -(a - t) * (a - t));
        ddpg_update(&d);
    }
    double worst = 0;
    for (int k = 0; k <= 10; k++) {
        double s[2] = {k / 10.0, 1};
        worst = fmax(worst, fabs(ddpg_act(&d, s) - (0.2 + 0.6 * s[0])));
    }
    cr_assert(worst < 0.1, "μ(s) within 0.1 of the best action everywhere: worst %g", worst);
    ddpg_free(&d);
}

/* ------------------------------------------------------------------ the search */
Test(haq, enforcement_lowers_layer_by_layer_until_the_budget_fits, .init = setup, .fini = teardown) {
    int bits[4] = {8, 8, 3, 8};
    double cost[4] = {10, 20, 30, 40};           // 8·10 + 8·20 + 3·30 + 8·40 = 650
    cr_assert(haq_enforce(bits, cost, 4, 560, 2));  // pass 1: 7, 7, 2, 7 (−100: 550 ≤ 560 after the fourth)
    cr_assert_arr_eq(bits, ((int[]){7, 7, 2, 7}), sizeof bits);
    int again[4] = {8, 8, 3, 8};
    cr_assert(haq_enforce(again, cost, 4, 620, 2));  // −10 then −20: 620 fits, the rest untouched
    cr_assert_arr_eq(again, ((int[]){7, 7, 3, 8}), sizeof again);
    int low[2] = {2, 3};
    double c2[2] = {1, 1};
    cr_assert(!haq_enforce(low, c2, 2, 3.5, 2), "4 bits at 2 each cannot fit 3.5");
    cr_assert_arr_eq(low, ((int[]){2, 2}), sizeof low);
}

Test(haq, search_meets_the_budget_restores_the_model_and_repeats_itself, .init = setup, .fini = teardown) {
    for (int latency = 0; latency < 2; latency++) {
        QuantConfig c = quant_config_defaults;
        strcpy(c.method, "lsq"), strcpy(c.alloc, "haq"), strcpy(c.haq_resource, latency ? "latency" : "size");
        c.w_bits = 3, c.haq_episodes = 4, c.haq_warmup = 2, c.haq_ft_steps = 2;
        QuantContext *qc = quant_context_new(&c);
        LayerFactory f = quant_factory(qc);
        MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4,
                                .dropout = 0};
        Model *m = mobilenetv2_new(&mc, &f, 3);
        int labels[8] = {0, 1, 2, 3, 3, 2, 1, 0};
        AllocBatch batches[2] = {{.x = rand_tensor(4, (const int[]){8, 8, 8, 1}, -1, 1), .labels = labels},
                                 {.x = rand_tensor(4, (const int[]){8, 8, 8, 1}, -1, 1), .labels = labels}};
        float *w0 = copy_floats(m->slab.data, m->slab.numel);
        QuantAlloc al, again;
        char err[256];
        cr_assert(quant_alloc_search(m, qc, batches, 2, 5, &al, err, sizeof err), "%s", err);
        assert_bits_equal(m->slab.data, w0, m->slab.numel, "parameters after the search");
        double used = 0, budget = 0;
        for (int i = 0; i < qc->n_layers; i++) {
            QuantLayer *l = qc->layers[i];
            cr_assert(!l->wq->calibrated && !l->aq->calibrated, "nothing left calibrated");
            if (l->wq->pinned) continue;
            double unit = latency ? (double)l->base.macs : (double)l->weight->numel;
            used += unit * al.bits[i], budget += 3 * unit;
            cr_assert(al.bits[i] >= 2 && al.bits[i] <= 8 && al.score[i] >= 0 && al.score[i] <= 1);
        }
        cr_assert(used <= budget * (1 + 1e-12), "%s within the budget: %g of %g", latency ? "latency" : "size", used, budget);
        cr_assert(al.param >= 0 && al.param <= 1, "the best episode's accuracy %g", al.param);
        quant_alloc_apply(qc, &al);  // the pipeline can still set the bits: nothing was left calibrated
        cr_assert(quant_alloc_search(m, qc, batches, 2, 5, &again, err, sizeof err), "%s", err);
        cr_assert_arr_eq(al.bits, again.bits, (size_t)qc->n_layers * sizeof(int),
                         "same seed, same bits, whatever bits the quantizers had on entry");
        cr_assert_arr_eq(al.score, again.score, (size_t)qc->n_layers * sizeof(double), "and the same policy");
        cr_assert_eq(al.param, again.param);
        QuantAlloc one;
        cr_assert(!quant_alloc_search(m, qc, batches, 1, 5, &one, err, sizeof err), "one batch: nothing to hold out");
        cr_assert(strstr(err, "held out") != NULL, "got: %s", err);
        quant_alloc_free(&al), quant_alloc_free(&again), quant_alloc_free(&one);
        dq_free(w0);
        model_free(m);
        quant_context_free(qc);
    }
}
