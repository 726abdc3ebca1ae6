/* tape.c — record keeping and the reverse walk. */
#include "tape.h"

#include <string.h>

#include "error.h"

void tape_init(Tape *t, Arena *arena) {
    memset(t, 0, sizeof *t);
    t->arena = arena;
    t->training = true;
}

struct GradLink {
    Tensor *tensor;
    GradLink *next;
};

struct FreeGrad {
    float *data;
    size_t numel;
    FreeGrad *next;
};

void tape_reset(Tape *t) {
    for (GradLink *g = t->grads; g; g = g->next) g->tensor->grad = NULL;
    t->grads = NULL;
    t->free_grads = NULL;
    t->last = NULL;
    t->n_records = 0;
    arena_reset(t->arena);
}

/* The smallest released buffer that fits, unlinked from the free list; NULL if none. */
static float *reuse(Tape *t, size_t numel) {
    FreeGrad **best = NULL;
    for (FreeGrad **f = &t->free_grads; *f; f = &(*f)->next)
        if ((*f)->numel >= numel && (!best || (*f)->numel < (*best)->numel)) best = f;
    if (!best) return NULL;
    float *data = (*best)->data;
    *best = (*best)->next;
    return data;
}

float *tape_grad(Tape *t, Tensor *x) {
    if (!x->grad) {
        float *data = reuse(t, x->numel);
        if (data) memset(data, 0, x->numel * sizeof(float));
        x->grad = data ? data : arena_floats_zero(t->arena, x->numel);
        GradLink *g = arena_alloc(t->arena, sizeof *g);
        *g = (GradLink){x, t->grads};
        t->grads = g;
    }
    return x->grad;
}

bool tape_wants(const Tape *t, int n_in, Tensor *const *in) {
    if (t->no_grad) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

TapeRecord *tape_push(Tape *t, const TapeOp *op, Tensor *out, int n_in, Tensor *const *in) {
    DQ_CHECK(n_in >= 0 && n_in <= TAPE_MAX_INPUTS);
    if (!tape_wants(t, n_in, in)) {
        out->requires_grad = false;
        return NULL;
    }
    TapeRecord *r = arena_calloc(t->arena, 1, sizeof *r);
    r->op = op;
    r->n_in = n_in;
    for (int i = 0; i < n_in; i++) r->in[i] = in[i];
    r->out = out;
    r->prev = t->last;
    t->last = r;
    t->n_records++;
    out->requires_grad = true;
    return r;
}

/* Run every record's backward, newest first, then forget the records: a backward consumes the
 * graph, so a later backward (before tape_reset) cannot run these records twice. */
static void walk(Tape *t) {
    for (TapeRecord *r = t->last; r; r = r->prev) {
        if (!r->out->grad) continue;
        r->op->backward(t, r);
        if (!t->keep_grads) {  // the producer has consumed its output's gradient
            FreeGrad *f = arena_alloc(t->arena, sizeof *f);
            *f = (FreeGrad){r->out->grad, r->out->numel, t->free_grads};
            t->free_grads = f;
            r->out->grad = NULL;
        }
    }
    t->last = NULL;
    t->n_records = 0;
}

void tape_backward(Tape *t, Tensor *loss) {
    if (loss->numel != 1)
        DQ_FATAL("tape_backward: loss has %zu elements, expected a scalar", loss->numel);
    if (!loss->requires_grad)
        DQ_FATAL_HINT("was the forward run with no_grad set, or do no parameters require grad?",
                      "tape_backward: the loss does not depend on anything that requires a gradient");
    tape_grad(t, loss)[0] += 1.0f;
    walk(t);
}

void tape_backward_from(Tape *t, Tensor *out, const float *dout) {
    if (!out->requires_grad)
        DQ_FATAL("tape_backward_from: the output does not require a gradient");
    float *g = tape_grad(t, out);
    for (size_t i = 0; i < out->numel; i++) g[i] += dout[i];
    walk(t);
}

float *tape_grad_of(Tape *t, Tensor *x) {
    return x && x->requires_grad ? tape_grad(t, x) : NULL;
}

void tape_check_same_shape(const char *op, const Tensor *a, const Tensor *b) {
    if (!tensor_same_shape(a, b)) {
        char sa[64], sb[64];
        DQ_FATAL("%s: shapes %s and %s differ", op, tensor_shape_str(a, sa, sizeof sa),
                 tensor_shape_str(b, sb, sizeof sb));
    }
}
