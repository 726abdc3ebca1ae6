/* test_quant.c — the baselines against their formulas, the quantized layer factory, DDQ's budget
 * controller (dual ascent, final guarantee), quantizer state in checkpoints, bad options. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/threads.h"
#include "helpers.h"
#include "nn/lenet.h"
#include "nn/mobilenetv2.h"
#include "quant/control.h"
#include "quant/report.h"
#include "train/checkpoint.h"

static ParamSlab slab;
static BaselineConfig bcfg = {.percentile = 100};
static Quantizer *made[2];  // freed by teardown

static void setup(void) {
    test_setup_quiet();
    slab_init(&slab);
}

static void teardown(void) {
    for (int i = 0; i < 2; i++) quantizer_free(made[i]), made[i] = NULL;
    slab_free(&slab);
    test_teardown();
}

static Quantizer *baseline(BaselineKind k, QuantRole role, bool is_signed, int bits, Tensor *calib, long long elems) {
    Quantizer *q = baseline_new(k, &slab, "b", role, is_signed, false, bits, elems, 1, &bcfg);
    made[made[0] ? 1 : 0] = q;
    slab_finalize(&slab);
    q->bypass = false;
    if (role == QROLE_ACTIVATION) {
        q->calibrating = true;
        quantizer_forward(q, &T, calib);
        q->calibrating = false;
        q->ops->finish_calibration(q);
    }
    return q;
}

Test(baselines, lsq_matches_its_formulas, .init = setup, .fini = teardown) {
    Tensor *x = rand_param(1, (const int[]){50}, -1, 1);
    Quantizer *q = baseline(BASE_LSQ, QROLE_WEIGHT, true, 3, NULL, 50);
    Tensor *y = quantizer_forward(q, &T, x);
    Tensor *s = baseline_param(q, 0);
    float step = s->data[0], QN = 4, QP = 3;
    double mean_abs = 0;
    for (int i = 0; i < 50; i++) mean_abs += fabs(x->data[i]) / 50;
    cr_assert_float_eq(step, 2 * mean_abs / sqrt(QP), 1e-5, "LSQ initial step 2·mean|v|/sqrt(Q_P)");
    float dy[50];
    for (int i = 0; i < 50; i++) dy[i] = 0.1f * (float)(i % 7) - 0.3f;
    tape_backward_from(&T, y, dy);
    double ds = 0;
    for (int i = 0; i < 50; i++) {
        float v = x->data[i] / step, want = fminf(fmaxf(rintf(v), -QN), QP) * step;
        cr_assert_float_eq(y->data[i], want, 1e-6, "forward at %d", i);
        bool inside = v >= -QN && v <= QP;
        cr_assert_float_eq(x->grad[i], inside ? dy[i] : 0, 1e-7, "STE at %d", i);
        ds += dy[i] * (v < -QN ? -QN : v > QP ? QP : rintf(v) - v);
    }
    ds /= sqrt(50.0 * QP);  // gradient scale 1/sqrt(N·Q_P)
    cr_assert_float_eq(s->grad[0], (float)ds, 1e-5, "step gradient");
}

Test(baselines, lsq_plus_offset_for_signed_activations, .init = setup, .fini = teardown) {
    Tensor *calib = rand_tensor(1, (const int[]){200}, -2, 2);
    Quantizer *q = baseline(BASE_LSQ, QROLE_ACTIVATION, true, 2, calib, 30);
    Tensor *beta = baseline_param(q, 1);
    cr_assert_not_null(beta, "signed activations get an offset");
    beta->data[0] = 0.25f;
    Tensor *x = rand_param(1, (const int[]){30}, -3, 3);
    tape_backward_from(&T, quantizer_forward(q, &T, x), (const float[30]){[0 ... 29] = 1});
    float s = baseline_param(q, 0)->data[0];
    int clipped = 0;
    for (int i = 0; i < 30; i++) {
        float v = (x->data[i] - 0.25f) / s;
        clipped += v < -2 || v > 1;
    }
    // dβ = Σ dy over clipped elements, with LSQ's gradient scale 1/sqrt(N·Q_P) (LSQ+ scales both)
    cr_assert_float_eq(beta->grad[0], (float)(clipped / sqrt(30.0 * 1)), 1e-5, "offset gradient");
}

Test(baselines, pact_matches_its_formulas, .init = setup, .fini = teardown) {
    Tensor *calib = rand_tensor(1, (const int[]){100}, 0, 4);
    Quantizer *q = baseline(BASE_PACT, QROLE_ACTIVATION, false, 2, calib, 6);
    Tensor *alpha = baseline_param(q, 0);
    alpha->data[0] = 3;
    Tensor *x = tensor_new(&test_arena, 1, (const int[]){6});
    memcpy(x->data, (float[]){-1, 0.4f, 1.1f, 2.9f, 3, 5}, sizeof(float[6]));
    x->requires_grad = true;
    Tensor *y = quantizer_forward(q, &T, x);
    // 2 bits over [0, 3]: step 1; clip then round
    assert_close(y->data, (float[]){0, 0, 1, 3, 3, 3}, 6, 0, 1e-6, "PACT forward");
    tape_backward_from(&T, y, (const float[]){1, 1, 1, 1, 1, 1});
    assert_close(x->grad, (float[]){0, 1, 1, 1, 0, 0}, 6, 0, 0, "STE for 0 <= x < α");
    cr_assert_float_eq(alpha->grad[0], 2, 1e-6, "dα = Σ dy over x >= α");
}

/* One forward + backward of q on x (kept outside the tape's arena) with output gradient r. */
typedef struct BasePass {
    float *y, *dx, p0, p1;
} BasePass;

static BasePass base_pass(Quantizer *q, Tensor *x, const float *r, bool reference) {
    T.ref_kernels = reference;
    slab_zero_grad(&slab);
    tape_reset(&T);
    x->grad = NULL;
    Tensor *y = quantizer_forward(q, &T, x);
    tape_backward_from(&T, y, r);
    T.ref_kernels = false;
    Tensor *a = baseline_param(q, 0), *b = baseline_param(q, 1);
    return (BasePass){.y = copy_floats(y->data, x->numel), .dx = copy_floats(x->grad, x->numel),
                      .p0 = a ? a->grad[0] : 0, .p1 = b ? b->grad[0] : 0};
}

/* The vectorised per-tensor kernels (min/max activations, PACT, LSQ, LSQ+) against quantize_one
 * on 1037 elements over 2 threads, ±inf and values past both ends included (a NaN only in the
 * forward: its parameter gradients are NaN either way). */
/* --lsq_step_grad=bins: the step's gradient with the bins held fixed (round(v/s) inside, no −v/s),
 * as DDQ's level gradient; the forward and the input's gradient are LSQ's. */
Test(baselines, lsq_bin_grad_holds_the_bins, .init = setup, .fini = teardown) {
    Tensor *x = rand_param(1, (const int[]){50}, -1, 1);
    bcfg.lsq_bin_grad = true;
    Quantizer *q = baseline(BASE_LSQ, QROLE_WEIGHT, true, 2, NULL, 50);
    Tensor *y = quantizer_forward(q, &T, x);
    Tensor *s = baseline_param(q, 0);
    float step = s->data[0], QN = 2, QP = 1;
    float dy[50];
    for (int i = 0; i < 50; i++) dy[i] = 0.1f * (float)(i % 7) - 0.3f;
    tape_backward_from(&T, y, dy);
    double ds = 0, esser = 0;
    int interior_off_level = 0;
    for (int i = 0; i < 50; i++) {
        float v = x->data[i] / step;
        cr_assert_float_eq(y->data[i], fminf(fmaxf(rintf(v), -QN), QP) * step, 1e-6, "forward at %d", i);
        bool inside = v >= -QN && v <= QP;
        cr_assert_float_eq(x->grad[i], inside ? dy[i] : 0, 1e-7, "STE at %d", i);
        ds += dy[i] * (v < -QN ? -QN : v > QP ? QP : rintf(v));
        esser += dy[i] * (v < -QN ? -QN : v > QP ? QP : rintf(v) - v);
        interior_off_level += inside && fabsf(rintf(v) - v) > 0.05f;
    }
    cr_assert(interior_off_level > 5 && fabs(ds - esser) > 1e-3, "the case tells the two gradients apart");
    cr_assert_float_eq(s->grad[0], (float)(ds / sqrt(50.0 * QP)), 1e-5, "step gradient without -v/s");
    bcfg.lsq_bin_grad = false;
}

Test(baselines, fast_kernels_match_the_reference, .init = setup, .fini = teardown) {
    struct { BaselineKind kind; bool is_signed; int bits; bool bins; } cases[] = {
        {BASE_LSQ, true, 3, false}, {BASE_LSQ, false, 4, false}, {BASE_LSQ, true, 2, true}, {BASE_PACT, false, 2, false},
        {BASE_MINMAX, true, 4, false}, {BASE_MINMAX, false, 3, false}};
    int n = 1037;
    Arena keep;
    arena_init(&keep, 1 << 16, 0);
    Tensor *x = tensor_new(&keep, 1, &n);
    float *r = arena_floats(&keep, (size_t)n);
    threads_init(2);
    T.training = false;  // min/max ranges stay where calibration put them: both passes see the same
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        bcfg.lsq_bin_grad = cases[c].bins;
        Tensor *calib = rand_tensor(1, (const int[]){200}, cases[c].is_signed ? -2 : 0, 2);
        Quantizer *q = baseline(cases[c].kind, QROLE_ACTIVATION, cases[c].is_signed, cases[c].bits, calib, n);
        if (baseline_param(q, 1)) baseline_param(q, 1)->data[0] = 0.13f;  // a non-zero LSQ+ offset
        rng_fill_uniform(&R, x->data, (size_t)n, -3, 3);
        rng_fill_uniform(&R, r, (size_t)n, -1, 1);
        x->requires_grad = true;
        x->data[5] = INFINITY, x->data[6] = -INFINITY, x->data[7] = 0;
        BasePass f = base_pass(q, x, r, false), ref = base_pass(q, x, r, true);
        char what[64];
        snprintf(what, sizeof what, "case %zu forward", c);
        assert_close(f.y, ref.y, (size_t)n, 1e-6, 1e-7, what);
        snprintf(what, sizeof what, "case %zu dx", c);
        assert_bits_equal(f.dx, ref.dx, (size_t)n, what);
        cr_assert(fabs(f.p0 - ref.p0) <= 1e-5 * fmax(1, fabs(ref.p0)), "case %zu: dp0 %g vs %g", c, f.p0, ref.p0);
        cr_assert(fabs(f.p1 - ref.p1) <= 1e-5 * fmax(1, fabs(ref.p1)), "case %zu: dp1 %g vs %g", c, f.p1, ref.p1);
        dq_free(f.y), dq_free(f.dx), dq_free(ref.y), dq_free(ref.dx);
        x->data[9] = NAN;  // forward only
        T.ref_kernels = true;
        float want = quantizer_forward(q, &T, x)->data[9];
        T.ref_kernels = false;
        float got = quantizer_forward(q, &T, x)->data[9];
        cr_assert(got == want || (isnan(got) && isnan(want)), "case %zu: NaN -> %g, reference %g", c, got, want);
        quantizer_free(q), made[0] = made[1] = NULL;
        slab_free(&slab), slab_init(&slab);
    }
    bcfg.lsq_bin_grad = false;
    threads_init(1);
    arena_free(&keep);
}

Test(baselines, minmax_and_dorefa_keep_zero_and_range, .init = setup, .fini = teardown) {
    Tensor *w = rand_param(1, (const int[]){40}, -0.5f, 0.5f);
    w->data[3] = 0;
    Quantizer *q = baseline(BASE_MINMAX, QROLE_WEIGHT, true, 4, NULL, 40);
    Tensor *y = quantizer_forward(q, &T, w);
    cr_assert_eq(y->data[3], 0.0f);
    float mx = 0;
    for (int i = 0; i < 40; i++) mx = fmaxf(mx, fabsf(w->data[i]));
    for (int i = 0; i < 40; i++) {
        float k = y->data[i] / (mx / 7);  // 4 bits: ±7 steps
        cr_assert(fabsf(k - rintf(k)) < 1e-4f && fabsf(y->data[i] - w->data[i]) <= mx / 14 + 1e-6f);
    }
    slab_free(&slab);
    slab_init(&slab);
    Quantizer *d = baseline(BASE_DOREFA, QROLE_WEIGHT, true, 2, NULL, 40);
    Tensor *yd = quantizer_forward(d, &T, w);
    for (int i = 0; i < 40; i++) {  // 2 bits: values in {−1, −1/3, 1/3, 1}·max|w|
        float k = yd->data[i] / mx * 1.5f + 1.5f;
        cr_assert(fabsf(k - rintf(k)) < 1e-4f && k > -0.01f && k < 3.01f, "DoReFa level %g", yd->data[i]);
    }
}

static void bad_bits(void *ctx) { baseline_new(BASE_LSQ, &slab, "x", QROLE_WEIGHT, true, false, 0, 10, 1, &bcfg); }
static void pact_weights(void *ctx) { baseline_new(BASE_PACT, &slab, "x", QROLE_WEIGHT, true, false, 4, 10, 1, &bcfg); }

Test(baselines, reject_bad_settings, .init = setup, .fini = teardown) {
    cr_assert(strstr(expect_fatal(bad_bits, NULL), "0 bits, must be in 1..16") != NULL);
    cr_assert(strstr(expect_fatal(pact_weights, NULL), "PACT quantizes activations only") != NULL);
}

/* ------------------------------------------------------------------ quantized models */
static Model *tiny_mnv2(QuantContext *qc) {
    LayerFactory f = quant_factory(qc);
    MobileNetV2Config mc = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4,
                            .dropout = 0};
    return mobilenetv2_new(&mc, &f, 3);
}

static void calibrate(Model *m, QuantContext *qc, Tensor *x) {
    quant_calibrate_begin(qc);
    T.no_grad = true, T.training = false;
    model_forward(m, &T, x);
    quant_calibrate_end(qc);
    T.no_grad = false, T.training = true;
}

Test(qmodel, factory_quantizes_every_weighted_layer, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    c.percentile = 100;  // no clipping: the difference below is rounding alone
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    int weighted = 0;
    for (int i = 0; i < qc->n_layers; i++) weighted++;
    cr_assert_eq(weighted, 53, "every conv (depthwise included) and the classifier");
    cr_assert(qc->layers[0]->wq->pinned && qc->layers[qc->n_layers - 1]->wq->pinned, "first and last pinned");
    cr_assert(!qc->layers[1]->wq->pinned);
    cr_assert_not_null(slab_find(&m->slab, "features.1.dw.wq.levels"));
    Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1);
    // Calibrated in training mode: an untrained network's activations in evaluation mode (running
    // statistics 0 and 1) shrink to nothing deep down, and its ranges would clip everything.
    quant_calibrate_begin(qc);
    T.no_grad = true, T.training = true;
    model_forward(m, &T, x);
    quant_calibrate_end(qc);
    T.no_grad = false;
    Tensor *y = model_forward(m, &T, x);
    cr_assert_eq(y->shape[1], 4);
    // At the 8 bits a run starts from, the quantized logits are near the float ones, not equal
    // (measured: 17% of the largest logit after 53 layers of an untrained network, 2 quantizers each).
    float *yq = copy_floats(y->data, y->numel);
    quant_set_bypass(qc, true);
    Tensor *yf = model_forward(m, &T, x);
    double diff = 0, scale = 0;
    for (size_t i = 0; i < yf->numel; i++) diff = fmax(diff, fabs(yq[i] - yf->data[i])), scale = fmax(scale, fabs(yf->data[i]));
    cr_assert(diff > 0 && diff < 0.3 * scale, "quantized vs float logits: max difference %g, largest logit %g", diff, scale);
    dq_free(yq);
    model_free(m);
    quant_context_free(qc);
}

/* --q_per_channel and --q_percentile reach every method: an LSQ weight step per output channel,
 * DoReFa and min/max ranges per channel, calibration at the asked percentile (they once reached
 * DDQ only: an LSQ step stayed one element). */
Test(qmodel, per_channel_and_percentile_reach_every_method, .init = setup, .fini = teardown) {
    const char *methods[] = {"lsq", "pact", "minmax", "ddq"};
    for (int k = 0; k < 4; k++) {
        QuantConfig c = quant_config_defaults;
        strcpy(c.method, methods[k]);
        c.per_channel = true;
        if (k != 0) c.percentile = 60;  // LSQ refuses it: its step starts from the mean |x|
        QuantContext *qc = quant_context_new(&c);
        Model *m = tiny_mnv2(qc);
        Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1);
        calibrate(m, qc, x);
        QuantLayer *l = qc->layers[1];  // an unpinned depthwise layer
        char d[128];
        l->wq->ops->describe(l->wq, d, sizeof d);
        if (k == 0) {
            Tensor *step = baseline_param(l->wq, 0);
            cr_assert_eq(step->numel, (size_t)l->spec.out, "LSQ: %zu weight steps for %d channels", step->numel, l->spec.out);
        }
        if (k == 1 || k == 2) cr_assert(strstr(d, "per channel") != NULL, "%s: %s", methods[k], d);
        // Calibration at the 60th percentile: the activation range ends well inside the data.
        float lv[256], hi = 0;
        int nl = l->aq->ops->levels(l->aq, lv);
        for (int i = 0; i < nl; i++) hi = fmaxf(hi, lv[i]);
        QuantLayer *l0 = qc->layers[0];  // its input is x itself, uniform in [−1, 1]
        nl = l0->aq->ops->levels(l0->aq, lv);
        float top = -1e9f;
        for (int i = 0; i < nl; i++) top = fmaxf(top, lv[i]);
        if (k != 0)
            cr_assert(top < 0.5f, "%s: the first layer's input range reaches %g; the 60th percentile of U(-1, 1) is 0.2",
                      methods[k], top);
        model_free(m);
        quant_context_free(qc);
    }
}

static void q_unused_ddq(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    c.ddq.gap = 1;
    quant_config_check(&c, &quant_config_defaults, "exp");
}
static void q_unused_none(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "none");
    c.per_channel = true;
    quant_config_check(&c, &quant_config_defaults, "exp");
}
static void q_unused_lsq_percentile(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    c.percentile = 99;
    quant_config_check(&c, &quant_config_defaults, "exp");
}
static void q_unused_lsq_step_grad(void *ctx) {
    QuantConfig c = quant_config_defaults;  // DDQ
    strcpy(c.lsq_step_grad, "bins");
    quant_config_check(&c, &quant_config_defaults, "exp");
}
static void q_unused_hinge(void *ctx) {
    QuantConfig c = quant_config_defaults;
    c.hinge = 1;
    quant_config_check(&c, &quant_config_defaults, "exp");
}

Test(qoptions, options_a_method_ignores_are_refused, .init = setup, .fini = teardown) {
    const char *m = expect_fatal(q_unused_ddq, NULL);
    cr_assert(strstr(m, "--ddq_gap=1 has no effect with every --q_method but ddq") != NULL, "got: %s", m);
    m = expect_fatal(q_unused_none, NULL);
    cr_assert(strstr(m, "--q_per_channel=true has no effect with --q_method=none") != NULL, "got: %s", m);
    m = expect_fatal(q_unused_lsq_percentile, NULL);
    cr_assert(strstr(m, "--q_percentile=99 has no effect with --q_method=lsq") != NULL, "got: %s", m);
    m = expect_fatal(q_unused_lsq_step_grad, NULL);
    cr_assert(strstr(m, "--lsq_step_grad=bins has no effect with every --q_method but lsq") != NULL, "got: %s", m);
    QuantConfig l = quant_config_defaults;  // the default gradient is not part of an LSQ run's identity
    strcpy(l.method, "lsq");
    cr_assert(!quant_config_has_effect(&l, "lsq_step_grad"), "--lsq_step_grad=esser: left out of the identity");
    strcpy(l.lsq_step_grad, "bins");
    cr_assert(quant_config_has_effect(&l, "lsq_step_grad"), "--lsq_step_grad=bins: part of the identity");
    m = expect_fatal(q_unused_hinge, NULL);
    cr_assert(strstr(m, "--ddq_hinge=1 has no effect with --ddq_lambda other than hinge") != NULL, "got: %s", m);
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    c.per_channel = true;
    char err[256];
    cr_assert(quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "LSQ honours --q_per_channel: %s", err);
    strcpy(c.method, "pact");
    c.percentile = 99;
    cr_assert(quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "PACT honours --q_per_channel and --q_percentile: %s", err);
}

/* --ddq_merge_centered's exact signals assume the pinned zero, nearest values and frontier gates. */
Test(qoptions, centred_merge_refuses_the_variants_it_does_not_handle, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "ddq");
    c.ddq.merge_centered = true;
    char err[256];
    cr_assert(quant_config_validate(&c, &quant_config_defaults, err, sizeof err), "%s", err);
    for (int k = 0; k < 3; k++) {
        QuantConfig v = c;
        if (k == 0) v.ddq.pin_zero = false;
        if (k == 1) v.ddq.fine_forward = true;
        if (k == 2) v.ddq.product_rule = true;
        cr_assert(!quant_config_validate(&v, &quant_config_defaults, err, sizeof err), "variant %d accepted", k);
        cr_assert(strstr(err, "need --ddq_merge_centered=false") != NULL, "got: %s", err);
        v.ddq.merge_centered = false;  // the off-centre merge takes each of them
        cr_assert(quant_config_validate(&v, &quant_config_defaults, err, sizeof err), "variant %d: %s", k, err);
    }
}

/* The centred merge is the default (docs/results.md, "The centred merge": W3A3, W2A2, W4A4). */
Test(qoptions, centred_merge_is_the_default) {
    cr_assert(quant_config_defaults.ddq.merge_centered);
}

/* Runs quant_run_step with the bits fixed by hand and returns λ_w after `steps` joint steps. */
Test(qcontrol, dual_ascent_rises_over_budget_and_falls_back, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.lambda, "dual"), c.eta = 0.003f;
    c.ddq.lr_gate = 0;  // gates stay where they are: only λ moves
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    calibrate(m, qc, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
    QuantRun r;
    quant_run_init(&r, qc, 1000, 0.1f);
    r.step = 200;  // inside the joint phase
    for (int i = 0; i < 50; i++) quant_run_step(&r, 0.1f);  // 8 bits against a budget of 4
    cr_assert(r.lambda_w > 0.1 && r.lambda_a > 0.1, "λ rose while over budget: %g %g", r.lambda_w, r.lambda_a);
    double peak = r.lambda_w;
    for (int i = 0; i < qc->n_layers; i++)
        if (!qc->layers[i]->wq->pinned) ddq_set_merged(qc->layers[i]->wq, 6), ddq_set_merged(qc->layers[i]->aq, 6);
    for (int i = 0; i < 50; i++) quant_run_step(&r, 0.1f);  // 2 bits: under budget
    cr_assert(r.lambda_w < peak, "λ falls back under budget: %g after %g", r.lambda_w, peak);
    for (int i = 0; i < 200; i++) quant_run_step(&r, 0.1f);
    cr_assert_eq(r.lambda_w, 0, "and stays at 0");
    model_free(m);
    quant_context_free(qc);
}

/* A calibrated tiny model whose gates hold still, priced by `lambda` (kp 0.2, η 0.001) under a
 * budget of `bits`, and its run 30 steps into the joint phase at 8 bits. */
static void priced_run(const char *lambda, float bits, QuantContext **qc, Model **m, QuantRun *r) {
    QuantConfig c = quant_config_defaults;
    c.ddq.lr_gate = 0, c.w_bits = c.a_bits = bits;
    strcpy(c.lambda, lambda);
    c.kp = 0.2f, c.eta = 0.001f;
    *qc = quant_context_new(&c);
    *m = tiny_mnv2(*qc);
    calibrate(*m, *qc, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
    quant_run_init(r, *qc, 1000, 0.1f);
    r->step = 200;
    for (int i = 0; i < 30; i++) quant_run_step(r, 0.1f);
}

/* pi: λ = I + kp·e with I ← I + η·e, e = Mem/ζ − 1, both signs (gates held still). */
Test(qcontrol, pi_price_is_proportional_plus_integral_and_two_sided, .init = setup, .fini = teardown) {
    QuantContext *qc;
    Model *m;
    QuantRun r;
    priced_run("pi", 4, &qc, &m, &r);  // 8 bits against 4: e = 1
    double kp = 0.2f, eta = 0.001f;  // (as priced_run sets them, in float)
    cr_assert_float_eq(r.lambda_w, 30 * eta + kp, 1e-9, "λ_w after 30 steps at e = 1: %g", r.lambda_w);
    cr_assert_float_eq(r.lambda_a, 30 * eta + kp, 1e-9);
    for (int i = 0; i < qc->n_layers; i++)
        if (!qc->layers[i]->wq->pinned) ddq_set_merged(qc->layers[i]->wq, 6), ddq_set_merged(qc->layers[i]->aq, 6);
    for (int i = 0; i < 10; i++) quant_run_step(&r, 0.1f);  // 2 bits: e = −1/2
    cr_assert_float_eq(r.lambda_w, 30 * eta - 10 * eta / 2 - kp / 2, 1e-9, "λ_w under budget: %g", r.lambda_w);
    cr_assert(r.lambda_w < 0, "under the budget the price turns into a subsidy: %g", r.lambda_w);
    // the signed price and the integral survive a save and load; dual refuses a negative price
    QBytes b = {0};
    quant_run_save(&r, &b);
    QuantRun r2;
    quant_run_init(&r2, qc, 1000, 0.1f);
    QBytes in = qbytes_view(b.p, b.len);
    char err[256];
    cr_assert(quant_run_load(&r2, &in, err, sizeof err), "%s", err);
    cr_assert_eq(r2.lambda_w, r.lambda_w);
    cr_assert_eq(r2.integ_a, r.integ_a);
    quant_run_step(&r, 0.1f), quant_run_step(&r2, 0.1f);
    cr_assert_eq(r2.lambda_a, r.lambda_a, "the reloaded run prices the next step the same");
    qc->lambda = LAMBDA_DUAL;
    in = qbytes_view(b.p, b.len);
    cr_assert(!quant_run_load(&r2, &in, err, sizeof err) && strstr(err, "bad bit price"), "dual loaded λ < 0: %s", err);
    dq_free(b.p);
    quant_run_free(&r), quant_run_free(&r2);
    model_free(m);
    quant_context_free(qc);
}

/* pi's error is capped at 1 (100% over): from 8 bits a 2-bit budget is priced as a 4-bit one,
 * not with a proportional kick three times as large; dual ascent keeps the raw error. */
Test(qcontrol, pi_error_is_capped_at_one_dual_is_not, .init = setup, .fini = teardown) {
    for (int pi = 1; pi >= 0; pi--) {
        QuantContext *qc;
        Model *m;
        QuantRun r;
        priced_run(pi ? "pi" : "dual", 2, &qc, &m, &r);  // 8 bits against 2: e = 3
        double want = pi ? 30 * 0.001 + 0.2 : 30 * 0.001 * 3;
        cr_assert_float_eq(r.lambda_w, want, 1e-6, "%s: λ_w %g, want %g", pi ? "pi" : "dual", r.lambda_w, want);
        cr_assert_float_eq(r.lambda_a, want, 1e-6);
        quant_run_free(&r);
        model_free(m);
        quant_context_free(qc);
    }
}

/* The settling window: at the budget, a price that pushes every gate to merge moves nothing;
 * before the window the same price merges. */
Test(qcontrol, settling_window_holds_flips_that_leave_the_budget, .init = setup, .fini = teardown) {
    for (int settling = 1; settling >= 0; settling--) {
        QuantConfig c = quant_config_defaults;
        c.settle = 0.2f;
        QuantContext *qc = quant_context_new(&c);
        Model *m = tiny_mnv2(qc);
        calibrate(m, qc, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
        QuantRun r;
        quant_run_init(&r, qc, 1000, 0.1f);
        for (int i = 0; i < qc->n_layers; i++)
            if (!qc->layers[i]->wq->pinned) ddq_set_merged(qc->layers[i]->wq, 4), ddq_set_merged(qc->layers[i]->aq, 4);
        r.step = settling ? 560 : 300;  // joint phase: steps 100–600; the window is its last fifth (from 500)
        r.integ_w = r.integ_a = 50;    // a price far above any signal: every gate wants to merge
        for (int i = 0; i < 20; i++) quant_run_step(&r, 0.1f);
        QuantBudget b = quant_budget(qc);
        if (settling)
            cr_assert(b.mean_w == 4 && b.mean_a == 4, "held at the budget: %g %g", b.mean_w, b.mean_a);
        else
            cr_assert(b.mean_w < 4 && b.mean_a < 4, "outside the window the price merges: %g %g", b.mean_w, b.mean_a);
        if (settling) {  // from above the budget the same price merges, but never further off than half a flip
            for (int i = 0; i < qc->n_layers; i++)
                if (!qc->layers[i]->wq->pinned) ddq_set_merged(qc->layers[i]->wq, 3);
            double largest = 0;
            for (int i = 0; i < qc->n_layers; i++)
                if (!qc->layers[i]->wq->pinned) largest = fmax(largest, (double)qc->layers[i]->wq->elems);
            r.step = 505;
            for (int i = 0; i < 90; i++) quant_run_step(&r, 0.1f);
            cr_assert_eq(r.phase, DDQ_PHASE_JOINT, "still joint: the final guarantee has not run");
            b = quant_budget(qc);
            cr_assert(b.mean_w < 4.5 && fabs(b.mean_w - 4) <= largest / 2 / b.n_w + 1e-9,
                      "from 5 bits to the budget, within half the largest flip: %g", b.mean_w);
        }
        quant_run_free(&r);
        model_free(m);
        quant_context_free(qc);
    }
}

/* --ddq_fixed_abits: activations start at the activation budget and stay; weights still learn. */
Test(qcontrol, fixed_activation_bits_stay_while_weight_bits_learn, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    c.fixed_abits = true, c.a_bits = 3;
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    calibrate(m, qc, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
    for (int i = 0; i < qc->n_layers; i++) {
        const Quantizer *aq = qc->layers[i]->aq;
        cr_assert_eq(aq->ops->bits(aq), aq->pinned ? 8 : 3, "%s starts at %d bits", aq->name, aq->ops->bits(aq));
    }
    QuantRun r;
    quant_run_init(&r, qc, 1000, 0.1f);
    r.step = 200;
    r.integ_w = r.integ_a = 50;  // a price far above any signal
    for (int i = 0; i < 30; i++) quant_run_step(&r, 0.1f);
    QuantBudget b = quant_budget(qc);
    cr_assert(b.mean_w < 8, "weight bits learn: %g", b.mean_w);
    cr_assert_eq(b.mean_a, 3, "activation bits stay: %g", b.mean_a);
    quant_run_free(&r);
    model_free(m);
    quant_context_free(qc);
}

Test(qcontrol, final_guarantee_meets_and_uses_the_budget, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    calibrate(m, qc, rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1));
    QuantRun r;
    quant_run_init(&r, qc, 1000, 0.1f);
    for (int case_ = 0; case_ < 2; case_++) {  // start over budget (8 bits), then under (2 bits)
        for (int i = 0; i < qc->n_layers; i++)
            if (!qc->layers[i]->wq->pinned) {
                ddq_set_merged(qc->layers[i]->wq, case_ ? 6 : (i % 3));
                ddq_set_merged(qc->layers[i]->aq, case_ ? 6 : (i % 4));
            }
        quant_run_guarantee(&r);
        QuantBudget b = quant_budget(qc);
        cr_assert(b.mem_w <= 4 * b.n_w && b.mem_a <= 4 * b.n_a, "case %d: over budget after the guarantee: %g %g", case_, b.mean_w, b.mean_a);
        // used: no single un-merge still fits
        for (int i = 0; i < qc->n_layers; i++) {
            QuantLayer *l = qc->layers[i];
            if (l->wq->pinned) continue;
            if (ddq_state(l->wq).merged > 0) cr_assert(b.mem_w + l->wq->elems > 4 * b.n_w, "case %d: a weight bit still fits in %s", case_, l->base.name);
            if (ddq_state(l->aq).merged > 0) cr_assert(b.mem_a + l->aq->elems > 4 * b.n_a, "case %d: an activation bit still fits in %s", case_, l->base.name);
        }
        cr_assert(case_ == 0 ? r.moved_w < 0 : r.moved_w > 0, "case %d: bits moved %g", case_, r.moved_w);
    }
    model_free(m);
    quant_context_free(qc);
}

Test(qcontrol, state_survives_a_checkpoint_and_evaluates_the_same, .init = setup, .fini = teardown) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/ddqc_qckpt_%d.bin", (int)getpid());
    QuantConfig c = quant_config_defaults;
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1);
    calibrate(m, qc, x);
    for (int i = 1; i + 1 < qc->n_layers; i++) ddq_set_merged(qc->layers[i]->wq, i % 5), ddq_set_merged(qc->layers[i]->aq, (i + 2) % 5);
    QuantRun r;
    quant_run_init(&r, qc, 100, 0.1f);
    r.lambda_w = 0.3, r.step = 42;
    T.training = false, T.no_grad = true;
    Tensor *y1 = model_forward(m, &T, x);
    float *before = copy_floats(y1->data, y1->numel);
    Checkpoint ck;
    ckpt_init(&ck);
    ckpt_add_slab(&ck, &m->slab);
    QBytes b = {0};
    quant_run_save(&r, &b);
    ckpt_add(&ck, "QUNT", b.p, b.len);
    ckpt_save(&ck, path);
    ckpt_free(&ck);
    dq_free(b.p);
    // a fresh model and context from the same builder: load and evaluate
    QuantContext *qc2 = quant_context_new(&c);
    Model *m2 = tiny_mnv2(qc2);
    QuantRun r2;
    quant_run_init(&r2, qc2, 100, 0.1f);
    cr_assert(ckpt_load(&ck, path));
    ckpt_read_slab(&ck, &m2->slab);
    const CkptSection *sec = ckpt_require(&ck, "QUNT", 0);
    QBytes in = qbytes_view(sec->data, sec->size);
    char err[256];
    cr_assert(quant_run_load(&r2, &in, err, sizeof err), "%s", err);
    ckpt_free(&ck);
    cr_assert_float_eq(r2.lambda_w, 0.3, 0);
    cr_assert_eq(r2.step, 42);
    for (int i = 0; i < qc->n_layers; i++)
        cr_assert_eq(qc2->layers[i]->aq->ops->bits(qc2->layers[i]->aq), qc->layers[i]->aq->ops->bits(qc->layers[i]->aq));
    Tensor *y2 = model_forward(m2, &T, x);
    assert_bits_equal(y2->data, before, y2->numel, "logits after reload");
    dq_free(before);
    unlink(path);
    model_free(m);
    model_free(m2);
    quant_context_free(qc);
    quant_context_free(qc2);
}

/* A crafted quantization state (valid checkpoint CRC, bad content) is refused with a reason:
 * every field a later step reads is checked, and nothing may follow the last record. */
Test(qcontrol, crafted_states_are_refused, .init = setup, .fini = teardown) {
    QuantConfig c = quant_config_defaults;
    QuantContext *qc = quant_context_new(&c);
    Model *m = tiny_mnv2(qc);
    Tensor *x = rand_tensor(4, (const int[]){4, 8, 8, 1}, -1, 1);
    calibrate(m, qc, x);
    QuantRun r;
    quant_run_init(&r, qc, 100, 0.1f);
    for (int i = 0; i < 3; i++) quant_run_step(&r, 0.1f);
    QBytes good = {0};
    quant_run_save(&r, &good);
    // offsets in the blob: head (3 ints), steps (2 long long), λ, moved bits and pi's integrals
    // (6 doubles), then the first quantizer's record: name length, name, elems and MACs, its DDQ
    // state (5 ints, 4 floats …)
    size_t steps = 12, lambdas = 28, q0 = 76, q0_state = q0 + 4 + strlen(qc->layers[0]->wq->name) + 16;
    struct {
        size_t at;
        long long value;
        int width;  // bytes written at `at`
        const char *expect;
    } cases[] = {
        {.at = 4, .value = 7, .width = 4, .expect = "phase 7"},
        {.at = steps, .value = 101, .width = 8, .expect = "step 101 of 100"},
        {.at = steps, .value = -1, .width = 8, .expect = "step -1"},
        {.at = steps + 8, .value = 1LL << 62, .width = 8, .expect = "this run has 100 steps"},
        {.at = lambdas, .value = 0x7ff8000000000000LL, .width = 8, .expect = "bad bit price"},
        {.at = lambdas + 32, .value = 0x7ff8000000000000LL, .width = 8, .expect = "bad bit price"},  // NaN integral
        {.at = q0_state + 4, .value = 9, .width = 4, .expect = "merged bits out of range"},
        {.at = q0_state + 12, .value = -5, .width = 4, .expect = "negative bit-change count"},
        {.at = q0_state + 20, .value = 0x7fc00000, .width = 4, .expect = "gates, price or step out of range"},
        {.at = 0, .value = 0, .width = 0, .expect = "trailing bytes"},  // one byte appended
        {.at = SIZE_MAX, .value = 7, .width = 8,
         .expect = "trace row 2 has step 7"},  // (the last row's step; fuzzing found
                                                                                        // its message read freed memory)
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        uint8_t *blob = dq_malloc(good.len + 1);
        memcpy(blob, good.p, good.len);
        size_t at = cases[k].at == SIZE_MAX ? good.len - sizeof(QuantTraceRow) : cases[k].at;
        if (cases[k].width) memcpy(blob + at, &cases[k].value, (size_t)cases[k].width);
        QBytes in = qbytes_view(blob, good.len + (cases[k].width == 0));
        QuantRun r2;
        quant_run_init(&r2, qc, 100, 0.1f);
        char err[256] = "";
        cr_assert(!quant_run_load(&r2, &in, err, sizeof err), "case %zu is accepted", k);
        cr_assert(strstr(err, cases[k].expect) != NULL, "case %zu: got '%s'", k, err);
        quant_run_free(&r2);
        dq_free(blob);
    }
    QBytes in = qbytes_view(good.p, good.len);
    char err[256];
    cr_assert(quant_run_load(&r, &in, err, sizeof err), "the state as saved loads: %s", err);
    // A state whose activation quantizers were never calibrated (found by fuzzing: it loaded, and
    // the next forward exited with "activation quantizer used before calibration").
    QuantContext *raw = quant_context_new(&c);
    Model *m2 = tiny_mnv2(raw);
    QuantRun r3;
    quant_run_init(&r3, raw, 100, 0.1f);
    QBytes uncal = {0};
    quant_run_save(&r3, &uncal);
    in = qbytes_view(uncal.p, uncal.len);
    cr_assert(!quant_run_load(&r, &in, err, sizeof err));
    cr_assert(strstr(err, "never calibrated") != NULL, "got: %s", err);
    dq_free(uncal.p);
    quant_run_free(&r3);
    model_free(m2);
    quant_context_free(raw);
    dq_free(good.p);
    quant_run_free(&r);
    model_free(m);
    quant_context_free(qc);
}

static void parse_q(const char *a) {
    QuantConfig c = quant_config_defaults;
    Option o[QUANT_MAX_OPTIONS];
    int n = quant_config_options(&c, o);
    char prog[] = "exp", arg[128];
    snprintf(arg, sizeof arg, "%s", a);
    char *argv[] = {prog, arg, NULL};
    options_parse(o, n, 2, argv, NULL);
    quant_config_check(&c, &quant_config_defaults, "exp");
}

static void q_bits9(void *ctx) { parse_q("--q_wbits=9"); }
static void q_negative(void *ctx) { parse_q("--q_abits=-1"); }
static void q_variant(void *ctx) { parse_q("--ddq_budget=energy"); }
static void q_method(void *ctx) { parse_q("--q_method=hawq"); }
static void q_frac(void *ctx) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "lsq");
    c.w_bits = 2.5f;
    quant_config_check(&c, &quant_config_defaults, "exp");
}

Test(qoptions, reject_bad_options, .init = setup, .fini = teardown) {
    cr_assert(strstr(expect_fatal(q_bits9, NULL), "--q_wbits=9: must be in [1, 8]") != NULL);
    cr_assert(strstr(expect_fatal(q_negative, NULL), "--q_abits=-1: must be in [1, 8]") != NULL);
    cr_assert(strstr(expect_fatal(q_variant, NULL), "--ddq_budget=energy: must be one of elements|bitops") != NULL);
    cr_assert(strstr(expect_fatal(q_method, NULL), "--q_method=hawq: must be one of") != NULL);
    cr_assert(strstr(expect_fatal(q_frac, NULL), "needs whole bits") != NULL);
}
