/* gradcheck.c — central-difference gradient checker. */
#include "gradcheck.h"

#include <math.h>
#include <string.h>

#include "error.h"
#include "rng.h"

static double weighted_sum(const Tensor *y, const float *r) {
    double s = 0;
    for (size_t i = 0; i < y->numel; i++) s += (double)r[i] * y->data[i];
    return s;
}

static double eval_loss(GradcheckFn fn, void *ctx, Tensor **inputs, Tape *t, const float *r) {
    tape_reset(t);
    t->no_grad = true;
    double L = weighted_sum(fn(t, inputs, ctx), r);
    t->no_grad = false;
    return L;
}

GradcheckResult gradcheck(GradcheckFn fn, void *ctx, Tensor **inputs, int n_inputs,
                          const GradcheckOptions *opts) {
    GradcheckOptions o = opts ? *opts : (GradcheckOptions){0};
    if (o.eps == 0) o.eps = 1e-2;
    if (o.floor == 0) o.floor = 1e-3;
    if (o.probes == 0) o.probes = 24;
    if (o.seed == 0) o.seed = 1;
    if (o.kink_tol == 0) o.kink_tol = 0.2;
    Rng rng;
    rng_seed(&rng, o.seed, rng_stream(RNG_STREAM_GRADCHECK, 0));
    Arena arena;
    arena_init(&arena, 1 << 20, 0);
    Tape tape;
    tape_init(&tape, &arena);
    tape.training = o.training;
    tape.ref_kernels = o.ref_kernels;

    // Analytic gradients into checker-owned buffers.
    float **saved_grad = dq_calloc((size_t)n_inputs, sizeof *saved_grad);
    float **grad = dq_calloc((size_t)n_inputs, sizeof *grad);
    for (int k = 0; k < n_inputs; k++) {
        saved_grad[k] = inputs[k]->grad;
        grad[k] = inputs[k]->requires_grad ? dq_calloc(inputs[k]->numel, sizeof(float)) : NULL;
        inputs[k]->grad = grad[k];
    }
    Tensor *y = fn(&tape, inputs, ctx);
    size_t ny = y->numel;
    float *r = dq_malloc(ny * sizeof(float));
    rng_fill_uniform(&rng, r, ny, -1, 1);
    tape_backward_from(&tape, y, r);
    for (int k = 0; k < n_inputs; k++) inputs[k]->grad = saved_grad[k];

    GradcheckResult res = {0};
    for (int k = 0; k < n_inputs; k++) {
        if (!grad[k]) continue;
        Tensor *x = inputs[k];
        bool all = x->numel <= (size_t)o.probes;
        int n = all ? (int)x->numel : o.probes;
        for (int p = 0; p < n; p++) {
            size_t i = all ? (size_t)p : rng_below(&rng, (uint32_t)x->numel);
            float x0 = x->data[i], xp = (float)(x0 + o.eps), xm = (float)(x0 - o.eps);
            x->data[i] = xp;  // the step actually taken is xp − xm, not 2·eps, in float
            double lp = eval_loss(fn, ctx, inputs, &tape, r);
            x->data[i] = xm;
            double lm = eval_loss(fn, ctx, inputs, &tape, r);
            x->data[i] = x0;
            if (o.skip_kinks) {
                double l0 = eval_loss(fn, ctx, inputs, &tape, r);
                double right = (lp - l0) / ((double)xp - x0), left = (l0 - lm) / (x0 - (double)xm);
                if (fabs(right - left) > o.kink_tol * fmax(fmax(fabs(right), fabs(left)), o.floor)) {
                    res.skipped++;
                    continue;
                }
            }
            double num = (lp - lm) / ((double)xp - (double)xm), ana = grad[k][i];
            double scale = fmax(fmax(fabs(num), fabs(ana)), o.floor);
            double err = fabs(num - ana) / scale;
            if (res.checked == 0 || err > res.max_err)  // the worst so far; the counts carry on
                res.max_err = err, res.input = k, res.index = i, res.analytic = ana, res.numeric = num;
            res.checked++;
        }
    }
    for (int k = 0; k < n_inputs; k++) dq_free(grad[k]);
    dq_free(grad);
    dq_free(saved_grad);
    dq_free(r);
    arena_free(&arena);
    return res;
}
