/* onnx.c — writing ONNX graphs, and the float model's graph (see onnx.h). */
#include "onnx.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "weighted.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw tensor data is little-endian; this writer copies memory as it is"
#endif

/* ------------------------------------------------------------------ the graph */
void onnx_graph_init(OnnxGraph *g) {
    memset(g, 0, sizeof *g);
    pb_init(&g->nodes), pb_init(&g->inits);
}

void onnx_graph_free(OnnxGraph *g) { pb_free(&g->nodes), pb_free(&g->inits); }

void onnx_value(OnnxGraph *g, char *name) { snprintf(name, 32, "t%d", g->next++); }

void onnx_node_begin(OnnxGraph *g, const char *op, const char *name, const char *const *in, const char *const *out) {
    Pb *p = &g->nodes;
    pb_begin(p, ONNX_GRAPH_NODE);
    for (; *in; in++) pb_string(p, ONNX_NODE_INPUT, *in);
    for (; *out; out++) pb_string(p, ONNX_NODE_OUTPUT, *out);
    char unique[160];  // node names must differ: the layer's, the op and the node's number
    snprintf(unique, sizeof unique, "%s/%s_%d", name, op, g->n_nodes++);
    pb_string(p, ONNX_NODE_NAME, unique);
    pb_string(p, ONNX_NODE_OP, op);
}

/* An attribute of the open node: its name and type; the value follows, then pb_end. */
static Pb *attr_begin(OnnxGraph *g, const char *name, int type) {
    Pb *p = &g->nodes;
    pb_begin(p, ONNX_NODE_ATTRIBUTE);
    pb_string(p, ONNX_ATTR_NAME, name);
    pb_int(p, ONNX_ATTR_TYPE, type);
    return p;
}

void onnx_attr_int(OnnxGraph *g, const char *name, long long v) {
    Pb *p = attr_begin(g, name, ONNX_ATTR_INT);
    pb_int(p, ONNX_ATTR_I, v);
    pb_end(p);
}

void onnx_attr_ints(OnnxGraph *g, const char *name, const long long *v, int n) {
    Pb *p = attr_begin(g, name, ONNX_ATTR_INTS_TYPE);
    for (int i = 0; i < n; i++) pb_int(p, ONNX_ATTR_INTS, v[i]);
    pb_end(p);
}

void onnx_attr_float(OnnxGraph *g, const char *name, float v) {
    Pb *p = attr_begin(g, name, ONNX_ATTR_FLOAT);
    pb_float(p, ONNX_ATTR_F, v);
    pb_end(p);
}

void onnx_node_end(OnnxGraph *g) { pb_end(&g->nodes); }

void onnx_init(OnnxGraph *g, const char *name, int elem_type, const long long *dims, int nd, const void *data, size_t bytes) {
    Pb *p = &g->inits;
    pb_begin(p, ONNX_GRAPH_INITIALIZER);
    for (int i = 0; i < nd; i++) pb_int(p, ONNX_TENSOR_DIMS, dims[i]);
    pb_int(p, ONNX_TENSOR_TYPE, elem_type);
    pb_string(p, ONNX_TENSOR_NAME, name);
    pb_bytes(p, ONNX_TENSOR_RAW, data, bytes);
    pb_end(p);
}

void onnx_init_float(OnnxGraph *g, const char *name, const long long *dims, int nd, const float *v) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    onnx_init(g, name, ONNX_FLOAT, dims, nd, v, n * sizeof(float));
}

void onnx_init_int64(OnnxGraph *g, const char *name, const long long *v, int n) {
    int64_t w[16];
    DQ_CHECK(n <= 16);
    for (int i = 0; i < n; i++) w[i] = v[i];
    long long dims[1] = {n};
    onnx_init(g, name, ONNX_INT64, dims, 1, w, (size_t)n * sizeof(int64_t));
}

void onnx_activation(OnnxGraph *g, ActKind act, const char *layer, char *v) {
    if (act == ACT_NONE) return;
    char y[32];
    onnx_value(g, y);
    if (act == ACT_RELU6 && !g->clip_bounds) {
        onnx_init_float(g, "zero", NULL, 0, (const float[]){0});
        onnx_init_float(g, "six", NULL, 0, (const float[]){6});
        g->clip_bounds = true;
    }
    if (act == ACT_RELU6) onnx_node_begin(g, "Clip", layer, ONNX_NAMES(v, "zero", "six"), ONNX_NAMES(y));
    else onnx_node_begin(g, "Relu", layer, ONNX_NAMES(v), ONNX_NAMES(y));
    onnx_node_end(g);
    strcpy(v, y);
}

void onnx_window_attrs(OnnxGraph *g, int kh, int kw, int stride, int pad) {
    long long ks[2] = {kh, kw}, st[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad};
    onnx_attr_ints(g, "kernel_shape", ks, 2);
    onnx_attr_ints(g, "strides", st, 2);
    onnx_attr_ints(g, "pads", pads, 4);
}

void onnx_shortcut(OnnxGraph *g, const char *layer, char *v, int stride, int lo, int hi) {
    char names[5][96], sliced[32], y[32];
    static const char *const what[5] = {"starts", "ends", "axes", "steps", "pads"};
    int id = g->n_nodes;  // layer names need not be unique: the node's number is
    for (int k = 0; k < 5; k++) snprintf(names[k], sizeof names[k], "%.64s_%d.%s", layer, id, what[k]);
    onnx_init_int64(g, names[0], (const long long[]){0, 0}, 2);
    onnx_init_int64(g, names[1], (const long long[]){INT64_MAX, INT64_MAX}, 2);
    onnx_init_int64(g, names[2], (const long long[]){2, 3}, 2);
    onnx_init_int64(g, names[3], (const long long[]){stride, stride}, 2);
    onnx_init_int64(g, names[4], (const long long[]){0, lo, 0, 0, 0, hi, 0, 0}, 8);
    onnx_value(g, sliced), onnx_value(g, y);
    onnx_node_begin(g, "Slice", layer, ONNX_NAMES(v, names[0], names[1], names[2], names[3]), ONNX_NAMES(sliced));
    onnx_node_end(g);
    onnx_node_begin(g, "Pad", layer, ONNX_NAMES(sliced, names[4]), ONNX_NAMES(y));
    onnx_node_end(g);
    strcpy(v, y);
}

void onnx_pool(OnnxGraph *g, bool max, const char *layer, char *v, Pool2dArgs a) {
    char y[32];
    onnx_value(g, y);
    onnx_node_begin(g, max ? "MaxPool" : "AveragePool", layer, ONNX_NAMES(v), ONNX_NAMES(y));
    onnx_window_attrs(g, a.kernel, a.kernel, a.stride, a.pad);
    if (!max) onnx_attr_int(g, "count_include_pad", 1);
    onnx_node_end(g);
    strcpy(v, y);
}

/* A float tensor's ValueInfo: name, element type, dims (a leading "N" for the batch). */
static void value_info(Pb *p, int field, const char *name, int elem, const int *dims, int nd) {
    pb_begin(p, field);
    pb_string(p, ONNX_VALUE_NAME, name);
    pb_begin(p, ONNX_VALUE_TYPE);
    pb_begin(p, ONNX_TYPE_TENSOR);
    pb_int(p, ONNX_TENSOR_ELEM, elem);
    pb_begin(p, ONNX_TENSOR_SHAPE);
    pb_begin(p, ONNX_SHAPE_DIM);
    pb_string(p, ONNX_DIM_PARAM, "N");
    pb_end(p);
    for (int i = 0; i < nd; i++) {
        pb_begin(p, ONNX_SHAPE_DIM);
        pb_int(p, ONNX_DIM_VALUE, dims[i]);
        pb_end(p);
    }
    pb_end(p), pb_end(p), pb_end(p), pb_end(p);
}

bool onnx_finish(OnnxGraph *g, const char *graph_name, int h, int w, int c, int classes, const char *path, size_t *bytes,
                 char *err, size_t err_size) {
    Pb m;
    pb_init(&m);
    pb_int(&m, ONNX_MODEL_IR_VERSION, ONNX_IR_VERSION);
    pb_string(&m, ONNX_MODEL_PRODUCER, "ddqc");
    pb_begin(&m, ONNX_MODEL_OPSET);
    pb_string(&m, ONNX_OPSET_DOMAIN, "");
    pb_int(&m, ONNX_OPSET_VERSION, ONNX_OPSET);
    pb_end(&m);
    pb_begin(&m, ONNX_MODEL_GRAPH);
    pb_append(&m, &g->nodes);
    pb_string(&m, ONNX_GRAPH_NAME, graph_name);
    pb_append(&m, &g->inits);
    int in_dims[3] = {h, w, c}, out_dims[1] = {classes};
    value_info(&m, ONNX_GRAPH_INPUT, "input", ONNX_FLOAT, in_dims, 3);
    value_info(&m, ONNX_GRAPH_OUTPUT, "logits", ONNX_FLOAT, out_dims, 1);
    pb_end(&m);
    const void *parts[1] = {m.b};
    size_t sizes[1] = {m.len};
    bool ok = fileio_write_atomic(path, parts, sizes, 1, err, err_size);
    if (bytes) *bytes = m.len;
    pb_free(&m);
    return ok;
}

/* ------------------------------------------------------------------ the float model */
/* A value flowing through the walk: its name and shape (rank 4: N C H W; rank 2: N C), or a
 * convolution not yet written (BatchNorm and an activation may still fold into it). */
typedef struct FVal {
    char name[32];
    int rank, c, h, w;
} FVal;

typedef struct Pending {
    bool on;
    const LayerSpec *spec;
    char in[32];
    double *wt, *b;     // OIHW (or (out, in) for linear) and bias, folded in double
    ActKind act;
    int oh, ow;
} Pending;

typedef struct FWalk {
    OnnxGraph g;
    Pending p;
    char *err;
    size_t err_size;
    bool failed;
} FWalk;

static bool ffail(FWalk *w, const char *name, const char *what) {
    if (!w->failed) snprintf(w->err, w->err_size, "%s: %s", name, what);
    w->failed = true;
    return false;
}

/* Writes the pending convolution or linear layer (weights, bias, node, activation); v becomes its
 * output. */
static void flush(FWalk *w, FVal *v) {
    Pending *p = &w->p;
    if (!p->on) return;
    p->on = false;
    const LayerSpec *s = p->spec;
    char wn[96], bn[96], y[32];
    snprintf(wn, sizeof wn, "%s.weight", s->name);
    snprintf(bn, sizeof bn, "%s.bias", s->name);
    bool linear = s->kind == SPEC_LINEAR;
    int icg = linear ? s->in : s->in / s->groups, k = linear ? 1 : s->kernel;
    size_t nw = (size_t)s->out * icg * k * k;
    float *wf = dq_malloc(nw * sizeof(float)), *bf = dq_malloc((size_t)s->out * sizeof(float));
    for (size_t i = 0; i < nw; i++) wf[i] = (float)p->wt[i];
    for (int o = 0; o < s->out; o++) bf[o] = (float)p->b[o];
    long long dims[4] = {s->out, icg, k, k}, bdims[1] = {s->out};
    if (linear) dims[0] = s->in, dims[1] = s->out;  // Gemm's B: (in, out)
    onnx_init_float(&w->g, wn, dims, linear ? 2 : 4, wf);
    onnx_init_float(&w->g, bn, bdims, 1, bf);
    dq_free(wf), dq_free(bf);
    onnx_value(&w->g, y);
    if (linear) {
        onnx_node_begin(&w->g, "Gemm", s->name, ONNX_NAMES(p->in, wn, bn), ONNX_NAMES(y));
        onnx_node_end(&w->g);
        *v = (FVal){.rank = 2, .c = s->out};
    } else {
        onnx_node_begin(&w->g, "Conv", s->name, ONNX_NAMES(p->in, wn, bn), ONNX_NAMES(y));
        onnx_window_attrs(&w->g, k, k, s->stride, s->pad);
        onnx_attr_int(&w->g, "group", s->groups);
        onnx_node_end(&w->g);
        *v = (FVal){.rank = 4, .c = s->out, .h = p->oh, .w = p->ow};
    }
    strcpy(v->name, y);
    dq_free(p->wt), dq_free(p->b);
    if (p->act != ACT_NONE) onnx_activation(&w->g, p->act, s->name, v->name);
}

static void start_weighted(FWalk *w, const Layer *l, FVal *v) {
    const LayerSpec *s;
    const Tensor *wt, *b;
    if (!weighted_float_params(l, &s, &wt, &b)) {
        ffail(w, l->name, "a weighted layer that is not a float one (export the FP32 model)");
        return;
    }
    bool linear = s->kind == SPEC_LINEAR;
    if (linear ? v->rank != 2 || v->c != s->in : v->rank != 4 || v->c != s->in) {
        ffail(w, l->name, "its input's shape is not the one the layer takes");
        return;
    }
    Pending *p = &w->p;
    *p = (Pending){.on = true, .spec = s, .act = ACT_NONE};
    strcpy(p->in, v->name);
    int icg = linear ? s->in : s->in / s->groups, k = linear ? 1 : s->kernel;
    p->wt = dq_malloc((size_t)s->out * icg * k * k * sizeof(double));
    p->b = dq_calloc((size_t)s->out, sizeof(double));
    if (linear)  // ours (in, out) is Gemm's B as it is
        for (size_t i = 0; i < (size_t)s->in * s->out; i++) p->wt[i] = wt->data[i];
    else  // (KH, KW, in/g, out) to OIHW
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++)
                for (int i = 0; i < icg; i++)
                    for (int o = 0; o < s->out; o++)
                        p->wt[(((size_t)o * icg + i) * k + kh) * k + kw] = wt->data[(((size_t)kh * k + kw) * icg + i) * s->out + o];
    if (b)
        for (int o = 0; o < s->out; o++) p->b[o] = b->data[o];
    if (!linear) p->oh = (v->h + 2 * s->pad - k) / s->stride + 1, p->ow = (v->w + 2 * s->pad - k) / s->stride + 1;
}

/* BatchNorm right after a convolution: folded, y = γ·(x − μ)/σ + β into its weights and bias. */
static void fold_batchnorm(Pending *p, const LayerInfo *bn) {
    const LayerSpec *s = p->spec;
    size_t per = (size_t)(s->in / s->groups) * s->kernel * s->kernel;
    for (int o = 0; o < s->out; o++) {
        double g = bn->gamma->data[o] / sqrt((double)bn->var->data[o] + bn->eps);
        for (size_t i = 0; i < per; i++) p->wt[o * per + i] *= g;
        p->b[o] = (p->b[o] - bn->mean->data[o]) * g + bn->beta->data[o];
    }
    p->act = bn->act;
}

static void emit(FWalk *w, Layer *l, FVal *v);

static void one_node(FWalk *w, const char *op, const char *name, FVal *v) {
    char y[32];
    onnx_value(&w->g, y);
    onnx_node_begin(&w->g, op, name, ONNX_NAMES(v->name), ONNX_NAMES(y));
    onnx_node_end(&w->g);
    strcpy(v->name, y);
}

static void emit_residual(FWalk *w, Layer *l, FVal *v, bool relu_after) {
    Layer **kids;
    int n = l->ops->children(l, &kids);
    FVal body = *v, sc = *v;
    emit(w, kids[0], &body);
    flush(w, &body);
    if (n > 1) {
        emit(w, kids[1], &sc);
        flush(w, &sc);
    }
    if (w->failed) return;
    if (body.rank != sc.rank || body.c != sc.c || body.h != sc.h || body.w != sc.w) {
        ffail(w, l->name, "the residual branches disagree in shape");
        return;
    }
    char y[32];
    onnx_value(&w->g, y);
    onnx_node_begin(&w->g, "Add", l->name, ONNX_NAMES(body.name, sc.name), ONNX_NAMES(y));
    onnx_node_end(&w->g);
    *v = body;
    strcpy(v->name, y);
    if (relu_after) onnx_activation(&w->g, ACT_RELU, l->name, v->name);
}

static void emit(FWalk *w, Layer *l, FVal *v) {
    if (w->failed) return;
    LayerInfo info = layer_info(l);
    if (info.kind == LAYER_BATCHNORM && w->p.on && w->p.spec->kind != SPEC_LINEAR && w->p.act == ACT_NONE) {
        fold_batchnorm(&w->p, &info);
        return;
    }
    if (info.kind == LAYER_ACTIVATION && w->p.on) {
        w->p.act = w->p.act == ACT_RELU6 || info.act == ACT_RELU6 ? ACT_RELU6 : ACT_RELU;
        return;
    }
    if (info.kind == LAYER_DROPOUT) return;
    flush(w, v);
    switch (info.kind) {
    case LAYER_SEQUENTIAL: {
        Layer **kids;
        int n = l->ops->children(l, &kids);
        for (int i = 0; i < n && !w->failed; i++) emit(w, kids[i], v);
        return;
    }
    case LAYER_RESIDUAL: emit_residual(w, l, v, info.relu_after); return;
    case LAYER_WEIGHTED: start_weighted(w, l, v); return;
    case LAYER_ACTIVATION: onnx_activation(&w->g, info.act, l->name, v->name); return;
    case LAYER_GLOBAL_AVGPOOL:
        one_node(w, "GlobalAveragePool", l->name, v);
        one_node(w, "Flatten", l->name, v);
        v->rank = 2;
        return;
    case LAYER_FLATTEN:
        if (v->rank == 4 && v->h * v->w > 1) {  // ours flattens channels last
            char y[32];
            onnx_value(&w->g, y);
            onnx_node_begin(&w->g, "Transpose", l->name, ONNX_NAMES(v->name), ONNX_NAMES(y));
            onnx_attr_ints(&w->g, "perm", (const long long[]){0, 2, 3, 1}, 4);
            onnx_node_end(&w->g);
            strcpy(v->name, y);
        }
        if (v->rank == 4) one_node(w, "Flatten", l->name, v);
        v->c *= v->rank == 4 ? v->h * v->w : 1, v->rank = 2;
        return;
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL:
        onnx_pool(&w->g, info.kind == LAYER_MAXPOOL, l->name, v->name, info.pool);
        v->h = (v->h + 2 * info.pool.pad - info.pool.kernel) / info.pool.stride + 1;
        v->w = (v->w + 2 * info.pool.pad - info.pool.kernel) / info.pool.stride + 1;
        return;
    case LAYER_SHORTCUT_PAD:
        onnx_shortcut(&w->g, l->name, v->name, info.stride, (info.out - v->c) / 2, info.out - v->c - (info.out - v->c) / 2);
        v->c = info.out, v->h = (v->h + info.stride - 1) / info.stride, v->w = (v->w + info.stride - 1) / info.stride;
        return;
    default: ffail(w, l->name, "a layer with no ONNX form here"); return;
    }
}

bool onnx_export_float(const Model *m, const char *path, size_t *bytes, char *err, size_t err_size) {
    FWalk w = {.err = err, .err_size = err_size};
    onnx_graph_init(&w.g);
    FVal v = {.rank = 4, .c = m->in_c, .h = m->in_h, .w = m->in_w};
    onnx_value(&w.g, v.name);
    onnx_node_begin(&w.g, "Transpose", "input_nchw", ONNX_NAMES("input"), ONNX_NAMES(v.name));
    onnx_attr_ints(&w.g, "perm", (const long long[]){0, 3, 1, 2}, 4);
    onnx_node_end(&w.g);
    emit(&w, m->net, &v);
    flush(&w, &v);
    if (!w.failed && (v.rank != 2 || v.c != m->num_classes)) ffail(&w, m->name, "the network does not end in its logits");
    bool ok = false;
    if (!w.failed) {
        onnx_node_begin(&w.g, "Identity", "logits", ONNX_NAMES(v.name), ONNX_NAMES("logits"));
        onnx_node_end(&w.g);
        ok = onnx_finish(&w.g, m->name, m->in_h, m->in_w, m->in_c, m->num_classes, path, bytes, err, err_size);
    }
    if (w.p.on) dq_free(w.p.wt), dq_free(w.p.b);
    onnx_graph_free(&w.g);
    return ok;
}

bool onnx_save_check(const char *path, const float *x, int n, int h, int w, int c, const float *const *logits, int sets,
                     int classes, char *err, size_t err_size) {
    int32_t head[8] = {0, 0, n, h, w, c, classes, sets};
    memcpy(head, "DDQCHK1", 8);
    const void *parts[10] = {head, x};
    size_t sizes[10] = {sizeof head, (size_t)n * h * w * c * sizeof(float)};
    DQ_CHECK(sets >= 0 && sets <= 8);
    for (int i = 0; i < sets; i++) parts[2 + i] = logits[i], sizes[2 + i] = (size_t)n * classes * sizeof(float);
    return fileio_write_atomic(path, parts, sizes, 2 + sets, err, err_size);
}
