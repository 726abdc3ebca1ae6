/* tape.c — record keeping and the reverse walk. */
#include "tape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int profile_slot(TapeProfile *p, const TapeOp *op) {
    for (int i = 0; i < p->n; i++)
        if (p->op[i] == op) return i;
    if (p->n == TAPE_PROFILE_SLOTS) return -1;
    p->op[p->n] = op;
    return p->n++;
}

void tape_init(Tape *t, Arena *arena) {
    memset(t, 0, sizeof *t);
    t->arena = arena;
    t->training = true;
    const char *v = getenv("DQ_REF_KERNELS");
    t->ref_kernels = v && *v && strcmp(v, "0") != 0;
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
    if (t->profile) t->profile->stamp = now();
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

/* A gradient buffer for x (reused or new), registered for tape_reset; zeroed if asked. */
static float *new_grad(Tape *t, Tensor *x, bool zero) {
    float *data = reuse(t, x->numel);
    if (!data) data = arena_floats(t->arena, x->numel);
    if (zero) memset(data, 0, x->numel * sizeof(float));
    x->grad = data;
    GradLink *g = arena_alloc(t->arena, sizeof *g);
    *g = (GradLink){x, t->grads};
    t->grads = g;
    return data;
}

float *tape_grad(Tape *t, Tensor *x) { return x->grad ? x->grad : new_grad(t, x, true); }

float *tape_grad_overwrite(Tape *t, Tensor *x, bool *overwrite) {
    *overwrite = false;
    if (!x || !x->requires_grad) return NULL;
    if (x->grad) return x->grad;
    *overwrite = true;
    return new_grad(t, x, false);
}

bool tape_wants(const Tape *t, int n_in, Tensor *const *in) {
    if (t->no_grad) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

TapeRecord *tape_push(Tape *t, const TapeOp *op, Tensor *out, int n_in, Tensor *const *in) {
    DQ_CHECK(n_in >= 0 && n_in <= TAPE_MAX_INPUTS);
    if (t->profile) {
        double s = now();
        int k = profile_slot(t->profile, op);
        if (k >= 0) t->profile->forward_s[k] += s - t->profile->stamp, t->profile->calls[k]++;
        t->profile->stamp = s;
    }
    if (!tape_wants(t, n_in, in)) {
        out->requires_grad = false;
        return NULL;
    }
    TapeRecord *r = arena_calloc(t->arena, 1, sizeof *r);
    r->op = op;
    r->n_in = n_in;
    for (int i = 0; i < n_in; i++) r->in[i] = in[i];
    r->out = out;
    r->ref = t->ref_kernels;
    r->prev = t->last;
    t->last = r;
    t->n_records++;
    out->requires_grad = true;
    return r;
}

/* Run every record's backward, newest first, then forget the records: a backward consumes the
 * graph, so a later backward (before tape_reset) cannot run these records twice. */
static void walk(Tape *t) {
    int visited = 0;
    for (TapeRecord *r = t->last; r; r = r->prev, visited++) {
        if (!r->out->grad) continue;
        if (t->grad_hook) t->grad_hook(t->grad_hook_ctx, r, visited);
        double s = t->profile ? now() : 0;
        r->op->backward(t, r);
        if (t->profile) {
            int k = profile_slot(t->profile, r->op);
            if (k >= 0) t->profile->backward_s[k] += now() - s;
            if (k >= 0 && r->op->cost) {
                TapeCost c = {.flops = {0, 0}, .bytes = {0, 0}};
                r->op->cost(r, &c);
                for (int d = 0; d < 2; d++)
                    t->profile->cost[k].flops[d] += c.flops[d], t->profile->cost[k].bytes[d] += c.bytes[d];
            }
        }
        if (!t->keep_grads) {  // the producer has consumed its output's gradient
            FreeGrad *f = arena_alloc(t->arena, sizeof *f);
            *f = (FreeGrad){.data = r->out->grad, .numel = r->out->numel, .next = t->free_grads};
            t->free_grads = f;
            r->out->grad = NULL;
        }
    }
    t->last = NULL;
    t->n_records = 0;
}

void tape_backward(Tape *t, Tensor *loss) { tape_backward_seeded(t, loss, 1.0f); }

void tape_backward_seeded(Tape *t, Tensor *loss, float seed) {
    if (loss->numel != 1)
        DQ_FATAL("tape_backward: loss has %zu elements, expected a scalar", loss->numel);
    if (!loss->requires_grad)
        DQ_FATAL_HINT("was the forward run with no_grad set, or do no parameters require grad?",
                      "tape_backward: the loss does not depend on anything that requires a gradient");
    tape_grad(t, loss)[0] += seed;
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

static const TapeProfile *sort_profile;
static int by_total(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    double ti = sort_profile->forward_s[i] + sort_profile->backward_s[i];
    double tj = sort_profile->forward_s[j] + sort_profile->backward_s[j];
    return (ti < tj) - (ti > tj);
}

/* "12.3 GFLOP/s (45%)" or "12.3 GB/s" into buf: the rate of work over seconds, and its share of peak. */
static const char *rate_str(char *buf, size_t size, double work, double seconds, double peak, const char *unit) {
    if (!(work > 0) || !(seconds > 0)) return "";
    double rate = work / seconds / 1e9;
    if (peak > 0) snprintf(buf, size, "%.1f %s (%.0f%%)", rate, unit, 100 * rate / peak);
    else snprintf(buf, size, "%.1f %s", rate, unit);
    return buf;
}

void tape_profile_print(const TapeProfile *p, int steps, double peak_gflops, double peak_gbs) {
    int idx[TAPE_PROFILE_SLOTS];
    double total = 0;
    for (int i = 0; i < p->n; i++) idx[i] = i, total += p->forward_s[i] + p->backward_s[i];
    sort_profile = p;
    qsort(idx, (size_t)p->n, sizeof *idx, by_total);
    printf("| op | calls/step | forward ms/step | backward ms/step | share | forward rate | backward rate |\n"
           "|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < p->n; k++) {
        int i = idx[k];
        const TapeCost *c = &p->cost[i];
        char f[48], b[48];
        bool flops = c->flops[0] + c->flops[1] > 0;
        printf("| %s | %.0f | %.1f | %.1f | %.1f%% | %s | %s |\n", p->op[i]->name, (double)p->calls[i] / steps,
               1e3 * p->forward_s[i] / steps, 1e3 * p->backward_s[i] / steps,
               100 * (p->forward_s[i] + p->backward_s[i]) / total,
               rate_str(f, sizeof f, flops ? c->flops[0] : c->bytes[0], p->forward_s[i], flops ? peak_gflops : peak_gbs,
                        flops ? "GFLOP/s" : "GB/s"),
               rate_str(b, sizeof b, flops ? c->flops[1] : c->bytes[1], p->backward_s[i], flops ? peak_gflops : peak_gbs,
                        flops ? "GFLOP/s" : "GB/s"));
    }
}

void tape_check_same_shape(const char *op, const Tensor *a, const Tensor *b) {
    if (!tensor_same_shape(a, b)) {
        char sa[64], sb[64];
        DQ_FATAL("%s: shapes %s and %s differ", op, tensor_shape_str(a, sa, sizeof sa),
                 tensor_shape_str(b, sb, sizeof sb));
    }
}
