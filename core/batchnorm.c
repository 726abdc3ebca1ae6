/* batchnorm.c — statistics, normalisation, backward; reference and row-parallel fast kernels.
 * Legend: R rows (N·H·W), C channels; every buffer is (R, C) or (C). */
#include "batchnorm.h"

#include <math.h>
#include <string.h>

#include "error.h"
#include "ops.h"
#include "threads.h"

/* ------------------------------------------------------------------ reference */
void batchnorm_stats_ref(float *mean, float *var, const float *x, size_t R, int C) {
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (size_t r = 0; r < R; r++) s += x[r * C + c];
        double mu = s / (double)R;
        for (size_t r = 0; r < R; r++) {
            double d = x[r * C + c] - mu;
            q += d * d;
        }
        mean[c] = (float)mu;
        var[c] = (float)(q / (double)R);
    }
}

typedef struct ApplyJob {
    float *y;
    const float *x;
    ChannelAffine affine;
    size_t R;
    int C, chunks;
} ApplyJob;

static void apply_task(void *ctx, int begin, int end, int tid) {
    const ApplyJob *j = ctx;
    size_t r0 = j->R * (size_t)begin / (size_t)j->chunks, r1 = j->R * (size_t)end / (size_t)j->chunks;
    channel_affine_rows(j->y + r0 * j->C, j->x + r0 * j->C, &j->affine, r1 - r0, j->C);
}

void batchnorm_affine(float *scale, float *shift, const float *mean, const float *invstd, const float *gamma,
                      const float *beta, int C) {
    for (int c = 0; c < C; c++) {
        scale[c] = gamma[c] * invstd[c];
        shift[c] = beta[c] - mean[c] * scale[c];
    }
}

void batchnorm_eval_stats(float *mean, float *invstd, const float *running_mean, const float *running_var,
                          float eps, int C) {
    for (int c = 0; c < C; c++) {
        mean[c] = running_mean[c];
        invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
    }
}

void batchnorm_apply(float *y, const float *x, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, size_t R, int C, ActKind act) {
    // y = act(γ·(x − μ)·invstd + β) = act(x·scale + shift)
    float *scale = threads_scratch(threads_current_tid(), THREADS_SLOT_BATCHNORM_AFFINE, 2 * (size_t)C), *shift = scale + C;
    batchnorm_affine(scale, shift, mean, invstd, gamma, beta, C);
    ApplyJob job = {.y = y, .x = x, .affine = {.scale = scale, .shift = shift, .act = act}, .R = R, .C = C,
                    .chunks = threads_count()};
    parallel_for(job.chunks, apply_task, &job);
}

void batchnorm_backward_ref(const BnGrad *g) {
    // forward: y = act(γ·x̂ + β), x̂ = (x − μ)·invstd; with g = dy·act'(y), and batch statistics
    // (μ, invstd depend on x):  dx = γ·invstd/R · (R·g − Σg − x̂·Σ(g·x̂))
    size_t R = g->R;
    int C = g->C;
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (size_t r = 0; r < R; r++) {
            size_t i = r * C + c;
            double xh = (g->x[i] - g->mean[c]) * g->invstd[c], d = g->dy[i] * act_grad_mask(g->act, g->y[i]);
            sd += d;
            sdx += d * xh;
        }
        if (g->dgamma) g->dgamma[c] += (float)sdx;
        if (g->dbeta) g->dbeta[c] += (float)sd;
        if (!g->dx) continue;
        for (size_t r = 0; r < R; r++) {
            size_t i = r * C + c;
            double xh = (g->x[i] - g->mean[c]) * g->invstd[c], d = g->dy[i] * act_grad_mask(g->act, g->y[i]);
            if (g->batch_stats) d = d - sd / (double)R - xh * sdx / (double)R;
            g->dx[i] += (float)(g->gamma[c] * g->invstd[c] * d);
        }
    }
}

/* ------------------------------------------------------------------ fast */
/* Per-thread partial sums (2·C doubles) over a contiguous range of rows, combined in thread
 * order: bit-identical for a given thread count. Each thread's scratch holds, in floats:
 *   [0, 4C)   its partial sums (2·C doubles)
 *   [4C, 7C)  dx coefficients k, a, b (backward)
 *   [8C, 12C) thread 0 only: the combined sums (2·C doubles) */
typedef struct BnJob {
    const float *x;       // stats: the input
    const BnGrad *g;      // backward
    size_t R;
    int C, chunks;
    const double *sums;   // backward pass 2: Σg, Σg·x̂ (2·C)
} BnJob;

static size_t rows_of(const BnJob *j, int chunk) { return j->R * (size_t)chunk / (size_t)j->chunks; }

static double *partials(int tid, int C) {
    return (double *)(void *)threads_scratch(tid, THREADS_SLOT_BATCHNORM_SUMS, (size_t)12 * C);
}

static void stats_task(void *ctx, int begin, int end, int tid) {
    const BnJob *j = ctx;
    int C = j->C;
    double *s = partials(tid, C), *q = s + C;
    memset(s, 0, 2 * (size_t)C * sizeof(double));
    for (size_t r = rows_of(j, begin); r < rows_of(j, end); r++) {
        const float *restrict xr = j->x + r * C;
        for (int c = 0; c < C; c++) {
            double v = xr[c];
            s[c] += v;
            q[c] += v * v;
        }
    }
}

void batchnorm_stats_fast(float *mean, float *var, const float *x, size_t R, int C) {
    BnJob job = {.x = x, .R = R, .C = C, .chunks = threads_count()};
    parallel_for(job.chunks, stats_task, &job);
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int t = 0; t < job.chunks; t++) {
            if (!parallel_has_work(job.chunks, t)) continue;
            const double *p = partials(t, C);
            s += p[c];
            q += p[C + c];
        }
        double mu = s / (double)R, v = q / (double)R - mu * mu;
        mean[c] = (float)mu;
        var[c] = (float)(v > 0 ? v : 0);
    }
}

static void grad_sums_task(void *ctx, int begin, int end, int tid) {
    const BnJob *j = ctx;
    const BnGrad *g = j->g;
    int C = j->C;
    double *sd = partials(tid, C), *sdx = sd + C;
    memset(sd, 0, 2 * (size_t)C * sizeof(double));
    for (size_t r = rows_of(j, begin); r < rows_of(j, end); r++) {
        const float *restrict xr = g->x + r * C, *restrict dyr = g->dy + r * C, *restrict yr = g->y + r * C;
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - g->mean[c]) * g->invstd[c], d = dyr[c] * act_grad_mask(g->act, yr[c]);
            sd[c] += d;
            sdx[c] += (double)(d * xh);
        }
    }
}

static void dx_task(void *ctx, int begin, int end, int tid) {
    const BnJob *j = ctx;
    const BnGrad *g = j->g;
    int C = j->C;
    const double *sums = j->sums;
    // dx = k·(d − a − x̂·b), d = dy·act'(y), k = γ·invstd, a = Σd/R, b = Σ(d·x̂)/R (0 in eval mode)
    float *k = (float *)(void *)(partials(tid, C) + 2 * (size_t)C), *a = k + C, *b = a + C;
    for (int c = 0; c < C; c++) {
        k[c] = g->gamma[c] * g->invstd[c];
        a[c] = g->batch_stats ? (float)(sums[c] / (double)j->R) : 0.0f;
        b[c] = g->batch_stats ? (float)(sums[C + c] / (double)j->R) : 0.0f;
    }
    for (size_t r = rows_of(j, begin); r < rows_of(j, end); r++) {
        const float *restrict xr = g->x + r * C, *restrict dyr = g->dy + r * C, *restrict yr = g->y + r * C;
        float *restrict dxr = g->dx + r * C;
        for (int c = 0; c < C; c++) {
            float xh = (xr[c] - g->mean[c]) * g->invstd[c], d = dyr[c] * act_grad_mask(g->act, yr[c]);
            float v = k[c] * (d - a[c] - xh * b[c]);
            dxr[c] = g->dx_overwrite ? v : dxr[c] + v;
        }
    }
}

void batchnorm_backward_fast(const BnGrad *g) {
    // forward: y = act(γ·x̂ + β), x̂ = (x − μ)·invstd   (see batchnorm_backward_ref)
    int C = g->C;
    BnJob job = {.g = g, .R = g->R, .C = C, .chunks = threads_count()};
    parallel_for(job.chunks, grad_sums_task, &job);
    double *sums = partials(0, C) + 4 * (size_t)C;
    memset(sums, 0, 2 * (size_t)C * sizeof(double));
    for (int t = 0; t < job.chunks; t++) {
        if (!parallel_has_work(job.chunks, t)) continue;
        const double *p = partials(t, C);
        for (int c = 0; c < 2 * C; c++) sums[c] += p[c];
    }
    for (int c = 0; c < C; c++) {
        if (g->dgamma) g->dgamma[c] += (float)sums[C + c];
        if (g->dbeta) g->dbeta[c] += (float)sums[c];
    }
    if (g->dx) {
        job.sums = sums;
        parallel_for(job.chunks, dx_task, &job);
    }
}

/* ------------------------------------------------------------------ graph op */
typedef struct BnSaved {
    float *mean, *invstd;  // (C) statistics used by the forward
    bool batch_stats;
    ActKind act;
} BnSaved;

static void batchnorm_backward_op(Tape *t, TapeRecord *r) {
    Tensor *x = r->in[0], *gamma = r->in[1], *beta = r->in[2];
    const BnSaved *s = r->saved;
    int C = x->shape[x->ndim - 1];
    bool overwrite = false;
    float *dx = r->ref ? tape_grad_of(t, x) : tape_grad_overwrite(t, x, &overwrite);
    BnGrad g = {.dx = dx, .dgamma = tape_grad_of(t, gamma), .dbeta = tape_grad_of(t, beta), .dx_overwrite = overwrite,
                .dy = r->out->grad, .y = r->out->data, .act = s->act, .x = x->data, .mean = s->mean,
                .invstd = s->invstd, .gamma = gamma->data, .R = x->numel / (size_t)C, .C = C,
                .batch_stats = s->batch_stats};
    if (r->ref) batchnorm_backward_ref(&g);
    else batchnorm_backward_fast(&g);
}

/* Memory traffic, 4 bytes a value: forward, the statistics read x and the affine pass reads x and
 * writes y; backward, the sums read x, dy and y, and dx reads them again and writes dx. */
static void batchnorm_cost(const TapeRecord *r, TapeCost *c) {
    double n = (double)r->in[0]->numel;
    c->bytes[0] = 4 * 3 * n;
    c->bytes[1] = 4 * 7 * n;
}

static const TapeOp BATCHNORM_OP = {.name = "batchnorm", .backward = batchnorm_backward_op, .cost = batchnorm_cost};

Tensor *op_batchnorm(Tape *t, Tensor *x, Tensor *gamma, Tensor *beta, BatchNormArgs a) {
    if (t->pattern && a.act != ACT_NONE) {  // the activation apart, to keep to the pattern
        ActKind act = a.act;
        a.act = ACT_NONE;
        return op_act_pattern(t, op_batchnorm(t, x, gamma, beta, a), act);
    }
    char sx[64];
    if (x->ndim != 2 && x->ndim != 4)
        DQ_FATAL("batchnorm: input %s must be (N, H, W, C) or (N, C)", tensor_shape_str(x, sx, sizeof sx));
    int C = x->shape[x->ndim - 1];
    size_t R = x->numel / (size_t)C;
    if (gamma->numel != (size_t)C || beta->numel != (size_t)C)
        DQ_FATAL("batchnorm: input has %d channels, gamma/beta have %zu/%zu", C, gamma->numel, beta->numel);
    if (!(a.eps > 0) || !(a.momentum >= 0 && a.momentum <= 1))
        DQ_FATAL("batchnorm: eps %g must be > 0 and momentum %g in [0, 1]", a.eps, a.momentum);
    bool batch = t->training && !a.frozen;  // normalise by this batch's statistics
    if (batch && R < 2)
        DQ_FATAL_HINT("use a batch of at least 2, or evaluation mode",
                      "batchnorm: training needs more than one value per channel, got %zu", R);
    float *mean = arena_floats(t->arena, (size_t)C), *invstd = arena_floats(t->arena, (size_t)C);
    if (batch) {
        float *var = arena_floats(t->arena, (size_t)C);
        if (t->ref_kernels) batchnorm_stats_ref(mean, var, x->data, R, C);
        else batchnorm_stats_fast(mean, var, x->data, R, C);
        for (int c = 0; c < C; c++) {
            invstd[c] = 1.0f / sqrtf(var[c] + a.eps);
            if (a.running_mean) a.running_mean[c] = (1 - a.momentum) * a.running_mean[c] + a.momentum * mean[c];
            if (a.running_var)
                a.running_var[c] = (1 - a.momentum) * a.running_var[c] +
                                   a.momentum * var[c] * (float)((double)R / (double)(R - 1));
        }
    } else {
        if (!a.running_mean || !a.running_var)
            DQ_FATAL("batchnorm: %s needs running statistics", a.frozen ? "a frozen layer" : "evaluation mode");
        batchnorm_eval_stats(mean, invstd, a.running_mean, a.running_var, a.eps, C);
    }
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    batchnorm_apply(y->data, x->data, mean, invstd, gamma->data, beta->data, R, C, a.act);
    TapeRecord *r = tape_push(t, &BATCHNORM_OP, y, 3, (Tensor *[]){x, gamma, beta});
    if (r) {
        BnSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (BnSaved){.mean = mean, .invstd = invstd, .batch_stats = batch, .act = a.act};
        r->saved = s;
    }
    return y;
}
