/* elementwise.c — add and scale. */
#include "elementwise.h"

#include <string.h>

#include "threads.h"

/* Elementwise passes run in parallel over blocks of ADD_BLOCK elements (any split: each element
 * is computed alone). */
#define ADD_BLOCK 8192

typedef struct AddJob {
    const float *a, *b, *dy, *y;
    float *out, *d[2];
    bool overwrite[2];
    size_t n;
    ActKind act;
} AddJob;

static void add_forward_task(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const AddJob *j = ctx;
    size_t i0 = (size_t)begin * ADD_BLOCK, i1 = (size_t)end * ADD_BLOCK < j->n ? (size_t)end * ADD_BLOCK : j->n;
    const float *restrict pa = j->a, *restrict pb = j->b;
    float *restrict py = j->out;
    if (j->act == ACT_NONE)
        for (size_t i = i0; i < i1; i++) py[i] = pa[i] + pb[i];
    else
        for (size_t i = i0; i < i1; i++) py[i] = act_apply(j->act, pa[i] + pb[i]);
}

static void add_backward_task(void *ctx, int begin, int end, int tid) {
    (void)tid;
    const AddJob *j = ctx;
    size_t i0 = (size_t)begin * ADD_BLOCK, i1 = (size_t)end * ADD_BLOCK < j->n ? (size_t)end * ADD_BLOCK : j->n;
    const float *restrict dy = j->dy, *restrict y = j->y;
    ActKind act = j->act;
    for (int k = 0; k < 2; k++) {
        float *restrict d = j->d[k];
        if (!d) continue;
        if (act == ACT_NONE && j->overwrite[k]) memcpy(d + i0, dy + i0, (i1 - i0) * sizeof(float));
        else if (act == ACT_NONE)
            for (size_t i = i0; i < i1; i++) d[i] += dy[i];
        else if (j->overwrite[k])
            for (size_t i = i0; i < i1; i++) d[i] = dy[i] * act_grad_mask(act, y[i]);
        else
            for (size_t i = i0; i < i1; i++) d[i] += dy[i] * act_grad_mask(act, y[i]);
    }
}

static int add_blocks(size_t n) { return (int)((n + ADD_BLOCK - 1) / ADD_BLOCK); }

static void add_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = act(a + b)   =>   da += dy·act'(y), db likewise
    AddJob job = {.dy = r->out->grad, .y = r->out->data, .n = r->out->numel, .act = *(const ActKind *)r->saved};
    for (int k = 0; k < 2; k++) job.d[k] = tape_grad_overwrite(t, r->in[k], &job.overwrite[k]);
    parallel_for(add_blocks(job.n), add_backward_task, &job);
}

/* Memory traffic: forward reads a and b and writes y; backward reads dy (and y, for the mask) and
 * adds it into both gradients (read and write each). */
static void add_cost(const TapeRecord *r, TapeCost *c) {
    double n = (double)r->out->numel;
    c->bytes[0] = 4 * 3 * n;
    c->bytes[1] = 4 * 6 * n;
}

static const TapeOp ADD_OP[3] = {{.name = "add", .backward = add_backward_op, .cost = add_cost},
                                 {.name = "add+relu", .backward = add_backward_op, .cost = add_cost},
                                 {.name = "add+relu6", .backward = add_backward_op, .cost = add_cost}};

Tensor *op_add_act(Tape *t, Tensor *a, Tensor *b, ActKind act) {
    if (t->pattern && act != ACT_NONE) return op_act_pattern(t, op_add_act(t, a, b, ACT_NONE), act);
    tape_check_same_shape("add", a, b);
    Tensor *y = tensor_new(t->arena, a->ndim, a->shape);
    AddJob job = {.a = a->data, .b = b->data, .out = y->data, .n = a->numel, .act = act};
    parallel_for(add_blocks(job.n), add_forward_task, &job);
    TapeRecord *r = tape_push(t, &ADD_OP[act], y, 2, (Tensor *[]){a, b});
    if (r) {
        ActKind *k = arena_alloc(t->arena, sizeof *k);
        *k = act;
        r->saved = k;
    }
    return y;
}

Tensor *op_add(Tape *t, Tensor *a, Tensor *b) { return op_add_act(t, a, b, ACT_NONE); }

static void scale_backward_op(Tape *t, TapeRecord *r) {
    // forward: y = s·x
    float s = *(const float *)r->saved, *dx = tape_grad(t, r->in[0]);
    const float *dy = r->out->grad;
    for (size_t i = 0; i < r->out->numel; i++) dx[i] += s * dy[i];
}

static const TapeOp SCALE_OP = {"scale", scale_backward_op};

Tensor *op_scale(Tape *t, Tensor *x, float s) {
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    for (size_t i = 0; i < x->numel; i++) y->data[i] = s * x->data[i];
    TapeRecord *r = tape_push(t, &SCALE_OP, y, 1, &x);
    if (r) {
        float *sp = arena_alloc(t->arena, sizeof *sp);
        *sp = s;
        r->saved = sp;
    }
    return y;
}
