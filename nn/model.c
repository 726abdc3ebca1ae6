/* model.c — model lifecycle and the MAC measurement. */
#include "model.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

Model *model_new(const char *name, int in_c, int in_h, int in_w, int num_classes) {
    if (in_c < 1 || in_h < 1 || in_w < 1 || num_classes < 2)
        DQ_FATAL("model %s: input %dx%dx%d and %d classes are not a classification task", name,
                 in_h, in_w, in_c, num_classes);
    Model *m = dq_calloc(1, sizeof *m);
    if (strlen(name) >= sizeof m->name) DQ_FATAL("model name '%s' is too long", name);
    strcpy(m->name, name);
    slab_init(&m->slab);
    m->in_c = in_c, m->in_h = in_h, m->in_w = in_w, m->num_classes = num_classes;
    rng_seed(&m->dropout_rng, 0, rng_stream(RNG_STREAM_DROPOUT, 0));
    return m;
}

static void add_macs(Layer *l, void *ctx) { *(long long *)ctx += l->macs; }

void model_finish(Model *m, uint64_t seed) {
    DQ_CHECK(m->net != NULL);
    slab_finalize(&m->slab);
    Rng rng;
    rng_seed(&rng, seed, rng_stream(RNG_STREAM_INIT, 0));
    layer_init(m->net, &rng);
    m->n_params = 0;
    for (int i = 0; i < m->slab.n_params; i++)
        if (!(m->slab.params[i].flags & PARAM_BUFFER)) m->n_params += m->slab.params[i].tensor->numel;
    // One batch-1 evaluation-mode forward on zeros fills every layer's `macs`.
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    t.training = false;
    Tensor *x = tensor_zeros(&a, 4, (const int[]){1, m->in_h, m->in_w, m->in_c});
    Tensor *y = model_forward(m, &t, x);
    if (y->ndim != 2 || y->shape[1] != m->num_classes)
        DQ_FATAL("model %s: the network ends in %zu values per image, expected %d logits", m->name,
                 y->numel, m->num_classes);
    m->macs = 0;
    layer_visit(m->net, add_macs, &m->macs);
    arena_free(&a);
}

void model_free(Model *m) {
    if (!m) return;
    layer_free(m->net);
    slab_free(&m->slab);
    dq_free(m);
}

Tensor *model_forward(Model *m, Tape *t, Tensor *x) {
    if (x->ndim != 4 || x->shape[1] != m->in_h || x->shape[2] != m->in_w || x->shape[3] != m->in_c) {
        char sx[64];
        DQ_FATAL("model %s: input %s, expected (N, %d, %d, %d)", m->name,
                 tensor_shape_str(x, sx, sizeof sx), m->in_h, m->in_w, m->in_c);
    }
    return layer_forward(m->net, t, x);
}

static void count_layer(Layer *l, void *ctx) { (*(int *)ctx)++; }

void model_describe(const Model *m, char *buf, size_t size) {
    int n = 0;
    layer_visit(m->net, count_layer, &n);
    snprintf(buf, size, "%s: %.3f M parameters, %.2f MMAC/image, %d layers, input %dx%dx%d", m->name,
             (double)m->n_params / 1e6, (double)m->macs / 1e6, n, m->in_h, m->in_w, m->in_c);
}
