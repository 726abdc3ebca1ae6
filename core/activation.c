/* activation.c — relu, relu6, dropout, and activations kept to a recorded pattern. */
#include "activation.h"

#include <math.h>

#include "error.h"
#include "threads.h"

void relu_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

void relu_backward(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    // forward: y = max(x, 0)
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0;
}

/* act(v·s + h): the one expression both loops below compile (so in place or not, the same bits). */
static inline float affine_act(float v, float s, float h, float hi, bool act) {
    v = v * s + h;
    if (!act) return v;
    v = v > 0 ? v : 0;
    return v < hi ? v : hi;
}

void channel_affine_rows(float *y, const float *x, const ChannelAffine *a, size_t R, int C) {
    const float *restrict sc = a->scale, *restrict sh = a->shift;
    float hi = a->act == ACT_RELU6 ? 6.0f : INFINITY;
    bool act = a->act != ACT_NONE;
    for (size_t r = 0; r < R; r++) {
        float *restrict yr = y + r * C;
        if (x == y && act)
            for (int c = 0; c < C; c++) yr[c] = affine_act(yr[c], sc[c], sh[c], hi, true);
        else if (x == y)
            for (int c = 0; c < C; c++) yr[c] = affine_act(yr[c], sc[c], sh[c], hi, false);
        else {
            const float *restrict xr = x + r * C;
            if (act)
                for (int c = 0; c < C; c++) yr[c] = affine_act(xr[c], sc[c], sh[c], hi, true);
            else
                for (int c = 0; c < C; c++) yr[c] = affine_act(xr[c], sc[c], sh[c], hi, false);
        }
    }
}

void relu6_forward(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? (x[i] < 6 ? x[i] : 6) : 0;
}

void relu6_backward(float *restrict dx, const float *restrict dy, const float *restrict x, size_t n) {
    // forward: y = min(max(x, 0), 6)
    for (size_t i = 0; i < n; i++) dx[i] += (x[i] > 0 && x[i] < 6) ? dy[i] : 0;
}

static void relu_backward_op(Tape *t, TapeRecord *r) {
    relu_backward(tape_grad(t, r->in[0]), r->out->grad, r->in[0]->data, r->out->numel);
}

static void relu6_backward_op(Tape *t, TapeRecord *r) {
    relu6_backward(tape_grad(t, r->in[0]), r->out->grad, r->in[0]->data, r->out->numel);
}

static const TapeOp RELU_OP = {"relu", relu_backward_op};
static const TapeOp RELU6_OP = {"relu6", relu6_backward_op};

Tensor *op_relu(Tape *t, Tensor *x) {
    if (t->pattern) return op_act_pattern(t, x, ACT_RELU);
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    relu_forward(y->data, x->data, x->numel);
    tape_push(t, &RELU_OP, y, 1, &x);
    return y;
}

Tensor *op_relu6(Tape *t, Tensor *x) {
    if (t->pattern) return op_act_pattern(t, x, ACT_RELU6);
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    relu6_forward(y->data, x->data, x->numel);
    tape_push(t, &RELU6_OP, y, 1, &x);
    return y;
}

/* ------------------------------------------------------------------ frozen patterns */
void act_pattern_rewind(ActPattern *p) {
    if (!p->replay) {
        for (int k = 0; k < p->count; k++) dq_free(p->codes[k]);
        p->count = 0;
    }
    p->next = 0;
}

void act_pattern_free(ActPattern *p) {
    if (!p) return;
    for (int k = 0; k < p->count; k++) dq_free(p->codes[k]);
    dq_free(p->codes), dq_free(p->n);
    *p = (ActPattern){0};
}

/* The pattern's passes run in parallel over blocks of PATTERN_BLOCK elements (each element alone). */
#define PATTERN_BLOCK 8192

typedef struct PatternJob {
    const float *x, *dy;
    float *y, *dx;
    uint8_t *code;
    float hi;
    bool record;
    size_t n;
} PatternJob;

static void pattern_span(const PatternJob *j, int begin, int end, size_t *i0, size_t *i1) {
    *i0 = (size_t)begin * PATTERN_BLOCK;
    *i1 = (size_t)end * PATTERN_BLOCK < j->n ? (size_t)end * PATTERN_BLOCK : j->n;
}

static void pattern_forward_task(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const PatternJob *j = ctx;
    size_t i0, i1;
    pattern_span(j, begin, end, &i0, &i1);
    const float *restrict x = j->x;
    float *restrict y = j->y, hi = j->hi;
    uint8_t *restrict code = j->code;
    if (j->record)
        for (size_t i = i0; i < i1; i++) code[i] = x[i] > 0 ? (x[i] < hi ? 1 : 2) : 0;
    for (size_t i = i0; i < i1; i++) y[i] = code[i] == 1 ? x[i] : code[i] == 2 ? hi : 0;
}

static void pattern_backward_task(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const PatternJob *j = ctx;
    size_t i0, i1;
    pattern_span(j, begin, end, &i0, &i1);
    const float *restrict dy = j->dy;
    float *restrict dx = j->dx;
    const uint8_t *restrict code = j->code;
    for (size_t i = i0; i < i1; i++) dx[i] += code[i] == 1 ? dy[i] : 0;
}

static int pattern_blocks(size_t n) { return (int)((n + PATTERN_BLOCK - 1) / PATTERN_BLOCK); }

static void pattern_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = x where the piece is 1, else a constant
    PatternJob job = {.dy = r->out->grad, .dx = tape_grad(t, r->in[0]), .code = r->saved, .n = r->out->numel};
    parallel_for(pattern_blocks(job.n), pattern_backward_task, &job);
}

static const TapeOp PATTERN_OP = {"act_pattern", pattern_backward_op};

Tensor *op_act_pattern(Tape *t, Tensor *x, ActKind act) {
    ActPattern *p = t->pattern;
    DQ_CHECK(p != NULL);
    if (act == ACT_NONE) return x;
    PatternJob job = {.x = x->data, .hi = act == ACT_RELU6 ? 6.0f : INFINITY, .record = !p->replay, .n = x->numel};
    if (p->replay) {
        if (p->next >= p->count || p->n[p->next] != x->numel)
            DQ_FATAL("activation pattern: activation %d of the forward has %zu elements, the recording %s", p->next,
                     x->numel, p->next >= p->count ? "has fewer activations" : "another count");
        job.code = p->codes[p->next++];
    } else {
        if (p->count == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 64;
            p->codes = dq_realloc(p->codes, (size_t)p->cap * sizeof *p->codes);
            p->n = dq_realloc(p->n, (size_t)p->cap * sizeof *p->n);
        }
        job.code = dq_malloc(x->numel ? x->numel : 1);
        p->codes[p->count] = job.code, p->n[p->count++] = x->numel;
        p->next = p->count;
    }
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    job.y = y->data;
    parallel_for(pattern_blocks(job.n), pattern_forward_task, &job);
    TapeRecord *r = tape_push(t, &PATTERN_OP, y, 1, &x);
    if (r) r->saved = job.code;
    return y;
}

static void dropout_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = x·m
    const float *m = r->saved, *dy = r->out->grad;
    float *dx = tape_grad(t, r->in[0]);
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += dy[i] * m[i];
}

static const TapeOp DROPOUT_OP = {"dropout", dropout_backward_op};

Tensor *op_dropout(Tape *t, Tensor *x, float p, Rng *rng) {
    if (!(p >= 0 && p < 1)) DQ_FATAL("dropout: probability %g must be in [0, 1)", p);
    if (!t->training || p == 0) return x;
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    float *m = arena_floats(t->arena, x->numel), keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < x->numel; i++) {
        m[i] = rng_uniform(rng) >= p ? keep : 0.0f;
        y->data[i] = x->data[i] * m[i];
    }
    TapeRecord *r = tape_push(t, &DROPOUT_OP, y, 1, &x);
    if (r) r->saved = m;
    return y;
}
