/* layer.c — dispatch helpers for the Layer interface. */
#include "layer.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"

Tensor *layer_forward(Layer *l, Tape *t, Tensor *x) {
    Tensor *y = l->ops->forward(l, t, x);
    if (t->value_hook) t->value_hook(t->value_hook_ctx, y);
    return y;
}

LayerInfo layer_info(const Layer *l) {
    LayerInfo i = {.kind = LAYER_OTHER};
    if (l->ops->info) l->ops->info(l, &i);
    return i;
}

void layer_init(Layer *l, Rng *rng) {
    if (l->ops->init) l->ops->init(l, rng);
    if (l->ops->children) {
        Layer **kids;
        int n = l->ops->children(l, &kids);
        for (int i = 0; i < n; i++) layer_init(kids[i], rng);
    }
}

void layer_free(Layer *l) {
    if (!l) return;
    if (l->ops->children) {
        Layer **kids;
        int n = l->ops->children(l, &kids);
        for (int i = 0; i < n; i++) layer_free(kids[i]);
    }
    if (l->ops->free) l->ops->free(l);
    else dq_free(l);
}

void layer_visit(Layer *l, void (*fn)(Layer *l, void *ctx), void *ctx) {
    fn(l, ctx);
    if (l->ops->children) {
        Layer **kids;
        int n = l->ops->children(l, &kids);
        for (int i = 0; i < n; i++) layer_visit(kids[i], fn, ctx);
    }
}

void layer_set_name(Layer *l, const char *name) {
    if (strlen(name) >= sizeof l->name) DQ_FATAL("layer name '%s' is too long", name);
    strcpy(l->name, name);
}

const char *spec_kind_name(SpecKind kind) {
    static const char *names[] = {"conv", "depthwise", "pointwise", "grouped", "linear"};
    return kind >= 0 && kind <= SPEC_LINEAR ? names[kind] : "?";
}

SpecKind spec_conv_kind(int in, int out, int kernel, int groups) {
    if (groups > 1) return groups == in && in == out ? SPEC_DEPTHWISE : SPEC_GROUPED;
    return kernel == 1 ? SPEC_POINTWISE : SPEC_CONV;
}
