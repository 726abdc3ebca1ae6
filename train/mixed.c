/* mixed.c — half-precision emulation and loss scaling (see mixed.h). */
#include "mixed.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/half.h"

void mixed_init(Mixed *mx, const TrainConfig *c) {
    memset(mx, 0, sizeof *mx);
    mx->on = !strcmp(c->half, "grads") || !strcmp(c->half, "all");
    mx->values = !strcmp(c->half, "all");
    mx->act.op = "activations";
    mx->kind = !strcmp(c->loss_scale, "static")   ? LOSS_SCALE_STATIC
             : !strcmp(c->loss_scale, "dynamic")  ? LOSS_SCALE_DYNAMIC
             : !strcmp(c->loss_scale, "adaptive") ? LOSS_SCALE_ADAPTIVE
                                                  : LOSS_SCALE_NONE;
    mx->scale = mx->kind == LOSS_SCALE_NONE ? 1.0f : c->loss_scale_init;
    mx->window = c->loss_scale_window;
}

void mixed_free(Mixed *mx) { als_scales_free(&mx->scales); }

static bool is_gemm(const TapeRecord *r) {  // the layers that choose a factor: a weight in in[1]
    static const char *const names[] = {"conv2d", "conv2d 1x1", "conv2d depthwise", "linear", "matmul"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(r->op->name, names[i])) return r->n_in >= 2 && r->in[1];
    return false;
}

/* Adaptive scaling before r's backward: its output gradient's scale s (times the layer's factor
 * for a convolution or linear layer) becomes the scale of every input gradient it adds to; a
 * buffer already holding another scale's contributions is rescaled first. Returns the scale. */
static double adapt(Mixed *mx, const TapeRecord *r, int k) {
    double s = k == 0 ? mx->scale : als_scale_of(&mx->scales, r->out);
    if (s == 0) s = mx->scale;  // (not reached in one backward from the loss)
    if (k > 0 && is_gemm(r)) {
        const Tensor *w = r->in[1];
        long fan_in = (long)(w->numel / (size_t)w->shape[w->ndim - 1]);
        double a = als_factor(r->out->grad, r->out->numel, w->data, w->numel, fan_in, s / mx->scale);
        if (a != 1)
            for (size_t i = 0; i < r->out->numel; i++) r->out->grad[i] *= (float)a;
        s *= a;
    }
    for (int i = 0; i < r->n_in; i++) {
        Tensor *in = r->in[i];
        if (!in || !in->requires_grad) continue;
        double prev = als_scale_of(&mx->scales, in);
        if (prev != 0 && prev != s && in->grad)
            for (size_t j = 0; j < in->numel; j++) in->grad[j] *= (float)(s / prev);
        als_scale_set(&mx->scales, in, s);
    }
    return s;
}

/* The tape hook: round the complete gradient to half precision, counting what it lost. */
static void round_grad(void *ctx, const TapeRecord *r, int k) {
    Mixed *mx = ctx;
    double s = mx->kind == LOSS_SCALE_ADAPTIVE ? adapt(mx, r, k) : mx->scale;
    if (k == 0) return;  // the loss's own gradient, the seed S: the loss stays in float, as in mixed-precision training
    if (k >= MIXED_MAX_POSITIONS) k = MIXED_MAX_POSITIONS - 1;  // (deeper graphs share the last row)
    if (k >= mx->n_pos) mx->n_pos = k + 1;
    MixedPosition *p = &mx->pos[k];
    p->op = r->op->name;
    HalfCounts hc = {0};
    half_round(r->out->grad, r->out->numel, &hc);
    p->values += r->out->numel, p->underflow += hc.underflow, p->overflow += hc.overflow;
    p->log2_scale_sum += log2(s), p->visits++;
}

/* The value hook: round a layer's output to half precision in place, counting what it lost. */
static void round_values(void *ctx, Tensor *y) {
    Mixed *mx = ctx;
    HalfCounts hc = {0};
    half_round(y->data, y->numel, &hc);
    mx->act.values += y->numel, mx->act.underflow += hc.underflow, mx->act.overflow += hc.overflow, mx->act.visits++;
}

void mixed_attach(Mixed *mx, Tape *t) {
    t->grad_hook = mx->on ? round_grad : NULL;
    t->grad_hook_ctx = mx->on ? mx : NULL;
    mixed_attach_eval(mx, t);
}

void mixed_attach_eval(Mixed *mx, Tape *t) {
    t->value_hook = mx->values ? round_values : NULL;
    t->value_hook_ctx = mx->values ? mx : NULL;
}

void mixed_backward(Mixed *mx, Tape *t, Tensor *loss) {
    als_scales_clear(&mx->scales);
    tape_backward_seeded(t, loss, mx->on ? mx->scale : 1.0f);
}

bool mixed_unscale(Mixed *mx, ParamSlab *s) {
    if (!mx->on) return true;
    mx->steps++;
    if (mx->kind == LOSS_SCALE_ADAPTIVE) {  // each parameter by the scale its gradient carries
        for (int p = 0; p < s->n_params; p++) {
            Tensor *t = s->params[p].tensor;
            double sc = als_scale_of(&mx->scales, t);
            if (sc > 0 && sc != 1)
                for (size_t i = 0; i < t->numel; i++) t->grad[i] *= (float)(1 / sc);
        }
    } else {
        for (size_t i = 0; i < s->numel; i++) s->grad[i] *= 1.0f / mx->scale;
    }
    bool finite = true;
    for (size_t i = 0; i < s->numel; i++) finite &= isfinite(s->grad[i]) != 0;
    if (!finite) {
        mx->skipped++, mx->clean = 0;
        if (mx->kind == LOSS_SCALE_DYNAMIC) mx->scale = fmaxf(mx->scale / 2, 1.0f / 65536);
        return false;
    }
    if (mx->kind == LOSS_SCALE_DYNAMIC && ++mx->clean >= mx->window) mx->scale = fminf(mx->scale * 2, 1e30f), mx->clean = 0;
    return true;
}

void mixed_epoch_csv(Mixed *mx, int epoch, bool header, Text *csv) {
    if (header) text_printf(csv, "epoch,position,op,values,underflow,overflow,log2_scale\n");
    for (int k = 0; k < mx->n_pos; k++) {
        MixedPosition *p = &mx->pos[k];
        if (!p->values) continue;
        text_printf(csv, "%d,%d,%s,%llu,%.6g,%.6g,%.3f\n", epoch, k, p->op, p->values, (double)p->underflow / (double)p->values,
                    (double)p->overflow / (double)p->values, p->log2_scale_sum / (double)p->visits);
        p->values = p->underflow = p->overflow = 0, p->log2_scale_sum = 0, p->visits = 0;
    }
    MixedPosition *a = &mx->act;
    if (a->values)
        text_printf(csv, "%d,-1,%s,%llu,%.6g,%.6g,0\n", epoch, a->op, a->values, (double)a->underflow / (double)a->values,
                    (double)a->overflow / (double)a->values);
    a->values = a->underflow = a->overflow = 0, a->visits = 0;
    mx->steps = mx->skipped = 0;
}

typedef struct MixedState {  // the checkpoint's section
    float scale;
    int32_t clean;
} MixedState;

void mixed_save(const Mixed *mx, Checkpoint *c) {
    if (!mx->on) return;
    MixedState s = {.scale = mx->scale, .clean = mx->clean};
    ckpt_add(c, "MIXP", &s, sizeof s);
}

bool mixed_load(Mixed *mx, const Checkpoint *c, char *err, size_t es) {
    if (!mx->on) return true;
    const CkptSection *sec;
    if (!ckpt_section(c, "MIXP", sizeof(MixedState), &sec, err, es)) return false;
    MixedState s;
    memcpy(&s, sec->data, sizeof s);
    if (!(s.scale > 0) || !isfinite(s.scale) || s.clean < 0 || s.clean > mx->window)
        return dq_fail(err, es, "bad loss-scale state (scale %g, clean steps %d)", (double)s.scale, (int)s.clean);
    mx->scale = s.scale, mx->clean = s.clean;
    return true;
}
