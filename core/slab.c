/* slab.c — parameter registration and the two contiguous blocks. */
#include "slab.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

void slab_init(ParamSlab *s) { memset(s, 0, sizeof *s); }

void slab_free(ParamSlab *s) {
    if (!s) return;
    for (int i = 0; i < s->n_params; i++) dq_free(s->params[i].tensor);
    dq_free(s->params);
    dq_free(s->data);
    dq_free(s->grad);
    memset(s, 0, sizeof *s);
}

Tensor *slab_add(ParamSlab *s, const char *name, int ndim, const int *shape, unsigned flags) {
    if (s->finalized) DQ_FATAL("slab_add: '%s' added after the slab was finalized", name);
    if (s->n_params == s->cap_params) {
        s->cap_params = s->cap_params ? 2 * s->cap_params : 32;
        s->params = dq_realloc(s->params, dq_mul_size((size_t)s->cap_params, sizeof *s->params));
    }
    Param *p = &s->params[s->n_params++];
    memset(p, 0, sizeof *p);
    if (strlen(name) >= sizeof p->name) DQ_FATAL("slab_add: parameter name '%s' too long", name);
    strcpy(p->name, name);
    p->tensor = dq_malloc(sizeof *p->tensor);
    *p->tensor = tensor_view(NULL, ndim, shape);
    p->tensor->requires_grad = !(flags & PARAM_BUFFER);
    p->offset = s->numel;
    p->flags = flags;
    s->numel += p->tensor->numel;
    if (s->numel < p->offset) DQ_FATAL("slab_add: parameter count overflows");
    return p->tensor;
}

void slab_finalize(ParamSlab *s) {
    DQ_CHECK(!s->finalized);
    s->data = dq_calloc(s->numel, sizeof(float));
    s->grad = dq_calloc(s->numel, sizeof(float));
    for (int i = 0; i < s->n_params; i++) {
        Param *p = &s->params[i];
        p->tensor->data = s->data + p->offset;
        p->tensor->grad = s->grad + p->offset;
    }
    s->finalized = true;
}

void slab_zero_grad(ParamSlab *s) {
    DQ_CHECK(s->finalized);
    memset(s->grad, 0, s->numel * sizeof(float));
}

const Param *slab_find(const ParamSlab *s, const char *name) {
    for (int i = 0; i < s->n_params; i++)
        if (strcmp(s->params[i].name, name) == 0) return &s->params[i];
    return NULL;
}
