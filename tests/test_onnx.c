/* test_onnx.c — the protobuf wire format, and float models written as ONNX: their bytes parse
 * back into the graph we meant (nothing external needed); where Node.js and the npm package
 * onnxruntime-node are installed, ONNX Runtime runs them and agrees with our logits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "core/protobuf.h"
#include "helpers.h"
#include "nn/lenet.h"
#include "nn/mobilenetv2.h"
#include "nn/onnx.h"
#include "nn/resnet.h"
#include "nn/weighted.h"

Test(protobuf, fields_round_trip, .init = test_setup, .fini = test_teardown) {
    Pb p;
    pb_init(&p);
    pb_int(&p, 1, 300);
    pb_int(&p, 2, -1);  // ten bytes
    pb_float(&p, 3, 1.5f);
    pb_begin(&p, 4);
    pb_string(&p, 1, "inner");
    pb_begin(&p, 2);
    for (int i = 0; i < 200; i++) pb_int(&p, 3, i);  // a length of two varint bytes
    pb_end(&p);
    pb_end(&p);
    int64_t packed[3] = {1, 128, 1LL << 40};
    pb_packed_int(&p, 5, packed, 3);
    const uint8_t *at = p.b, *end = p.b + p.len;
    PbField f;
    bool bad = false;
    cr_assert(pb_next(&at, end, &f, &bad) && f.field == 1 && f.wire == 0 && f.v == 300);
    cr_assert(pb_next(&at, end, &f, &bad) && f.field == 2 && (int64_t)f.v == -1);
    cr_assert(pb_next(&at, end, &f, &bad) && f.field == 3 && f.wire == 5);
    float x;
    uint32_t u = (uint32_t)f.v;
    memcpy(&x, &u, 4);
    cr_assert(x == 1.5f);
    cr_assert(pb_next(&at, end, &f, &bad) && f.field == 4 && f.wire == 2);
    const uint8_t *in = f.data, *in_end = f.data + f.len;
    PbField g;
    cr_assert(pb_next(&in, in_end, &g, &bad) && g.field == 1 && g.len == 5 && memcmp(g.data, "inner", 5) == 0);
    cr_assert(pb_next(&in, in_end, &g, &bad) && g.field == 2);
    const uint8_t *deep = g.data;
    int count = 0;
    PbField h;
    while (pb_next(&deep, g.data + g.len, &h, &bad)) cr_assert(h.field == 3 && (int)h.v == count++);
    cr_assert(count == 200 && !bad);
    cr_assert(!pb_next(&in, in_end, &g, &bad) && !bad);
    cr_assert(pb_next(&at, end, &f, &bad) && f.field == 5 && f.wire == 2 && f.len == 1 + 2 + 6);
    cr_assert(!pb_next(&at, end, &f, &bad) && !bad);
    // every truncation of the message is refused, none read past its end
    for (size_t cut = 1; cut < p.len; cut++) {
        uint8_t *copy = dq_malloc(cut);
        memcpy(copy, p.b, cut);
        const uint8_t *a = copy;
        bool b = false;
        while (pb_next(&a, copy + cut, &f, &b)) {}
        bool last_whole = cut == p.len;
        cr_assert(b || last_whole || a == copy + cut, "cut at %zu", cut);
        dq_free(copy);
    }
    pb_free(&p);
}

/* ------------------------------------------------------------------ the float export */
typedef enum { NET_MNV2, NET_RESNET, NET_LENET } NetKind;

static Model *build(NetKind k) {
    if (k == NET_MNV2) {
        MobileNetV2Config c = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 3, .in_size = 8, .num_classes = 5};
        return mobilenetv2_new(&c, &nn_float_factory, 3);
    }
    if (k == NET_RESNET) {
        ResNetConfig c = {.depth = 8, .in_channels = 2, .in_size = 8, .num_classes = 4};
        return resnet_new(&c, &nn_float_factory, 3);
    }
    LeNetConfig c = {.in_channels = 1, .in_size = 12, .num_classes = 4, .dropout = 0.2f};
    return lenet_new(&c, &nn_float_factory, 3);
}

/* Running statistics away from their initial 0 and 1 (so that folding them is tested), then
 * evaluation-mode logits of x. */
static float *settle_and_run(Model *m, Tensor *x) {
    Arena a;
    arena_init(&a, 1 << 20, 0);
    Tape t;
    tape_init(&t, &a);
    t.no_grad = true;
    for (int i = 0; i < 5; i++) {
        tape_reset(&t);
        t.training = true;
        model_forward(m, &t, x);
    }
    tape_reset(&t);
    t.training = false;
    Tensor *y = model_forward(m, &t, x);
    float *logits = copy_floats(y->data, y->numel);
    arena_free(&a);
    return logits;
}

typedef struct Graph {
    int nodes, inits, inputs, outputs;
    char ops[512][24];
    long long ir, opset;
} Graph;

/* The ModelProto's graph as the fields say (op types in order, counts). */
static void parse(const uint8_t *b, size_t n, Graph *g) {
    memset(g, 0, sizeof *g);
    const uint8_t *at = b;
    PbField f;
    bool bad = false;
    while (pb_next(&at, b + n, &f, &bad)) {
        if (f.field == ONNX_MODEL_IR_VERSION) g->ir = (long long)f.v;
        if (f.field == ONNX_MODEL_OPSET) {
            const uint8_t *o = f.data;
            PbField e;
            while (pb_next(&o, f.data + f.len, &e, &bad))
                if (e.field == ONNX_OPSET_VERSION) g->opset = (long long)e.v;
        }
        if (f.field != ONNX_MODEL_GRAPH) continue;
        const uint8_t *gat = f.data;
        PbField e;
        while (pb_next(&gat, f.data + f.len, &e, &bad)) {
            g->inits += e.field == ONNX_GRAPH_INITIALIZER, g->inputs += e.field == ONNX_GRAPH_INPUT;
            g->outputs += e.field == ONNX_GRAPH_OUTPUT;
            if (e.field != ONNX_GRAPH_NODE) continue;
            const uint8_t *nat = e.data;
            PbField k;
            while (pb_next(&nat, e.data + e.len, &k, &bad))
                if (k.field == ONNX_NODE_OP && g->nodes < 512)
                    snprintf(g->ops[g->nodes], sizeof g->ops[0], "%.*s", (int)k.len, (const char *)k.data);
            g->nodes++;
        }
    }
    cr_assert(!bad, "the file's fields do not parse");
}

static int count_op(const Graph *g, const char *op) {
    int n = 0;
    for (int i = 0; i < g->nodes && i < 512; i++) n += strcmp(g->ops[i], op) == 0;
    return n;
}

typedef struct Counts {
    int conv, linear, bn;
} Counts;

static void count_layers(Layer *l, void *ctx) {
    Counts *c = ctx;
    LayerInfo i = layer_info(l);
    const LayerSpec *s;
    const Tensor *w, *b;
    if (i.kind == LAYER_WEIGHTED && weighted_float_params(l, &s, &w, &b)) {
        if (s->kind == SPEC_LINEAR) c->linear++;
        else c->conv++;
    }
    c->bn += i.kind == LAYER_BATCHNORM;
}

static void export_and_parse(NetKind k, const char *path) {
    Model *m = build(k);
    char err[256];
    size_t bytes;
    cr_assert(onnx_export_float(m, path, &bytes, err, sizeof err), "%s: %s", m->name, err);
    size_t n;
    uint8_t *b = fileio_read_all(path, &n, err, sizeof err);
    cr_assert(b && n == bytes, "%s", err);
    Graph g;
    parse(b, n, &g);
    Counts c = {0};
    layer_visit(m->net, count_layers, &c);
    cr_assert(g.ir == ONNX_IR_VERSION && g.opset == ONNX_OPSET, "ir %lld opset %lld", g.ir, g.opset);
    cr_assert(g.inputs == 1 && g.outputs == 1);
    cr_assert(count_op(&g, "Conv") == c.conv && count_op(&g, "Gemm") == c.linear, "%s: %d Conv for %d, %d Gemm for %d",
              m->name, count_op(&g, "Conv"), c.conv, count_op(&g, "Gemm"), c.linear);
    cr_assert(count_op(&g, "BatchNormalization") == 0 && c.bn > 0, "%s: BatchNorm not folded", m->name);
    // weights and biases of every layer (then Clip's two bounds, the shortcuts' five each)
    cr_assert(g.inits >= 2 * (c.conv + c.linear), "%s: %d initializers", m->name, g.inits);
    cr_assert(strcmp(g.ops[0], "Transpose") == 0 && strcmp(g.ops[g.nodes - 1], "Identity") == 0);
    if (k == NET_MNV2) cr_assert(count_op(&g, "Clip") > 0 && count_op(&g, "Add") > 0 && count_op(&g, "GlobalAveragePool") == 1);
    if (k == NET_RESNET) cr_assert(count_op(&g, "Relu") > 0 && count_op(&g, "Add") == 3);
    if (k == NET_LENET) cr_assert(count_op(&g, "MaxPool") + count_op(&g, "AveragePool") > 0 && count_op(&g, "Flatten") == 1);
    dq_free(b);
    model_free(m);
}

Test(onnx, float_models_parse_back_into_their_graphs, .init = test_setup, .fini = test_teardown) {
    export_and_parse(NET_MNV2, "test_onnx_mnv2.onnx");
    export_and_parse(NET_RESNET, "test_onnx_resnet.onnx");
    export_and_parse(NET_LENET, "test_onnx_lenet.onnx");
    remove("test_onnx_mnv2.onnx"), remove("test_onnx_resnet.onnx"), remove("test_onnx_lenet.onnx");
}

/* ------------------------------------------------------------------ ONNX Runtime */
static void runtime_check(NetKind k, const char *stem) {
    Model *m = build(k);
    int n = 16, shape[4] = {n, m->in_h, m->in_w, m->in_c};
    Tensor *x = rand_tensor(4, shape, -2, 2);
    float *logits = settle_and_run(m, x);
    char path[64], check[64], cmd[256], err[256];
    snprintf(path, sizeof path, "%s.onnx", stem);
    snprintf(check, sizeof check, "%s.check", stem);
    cr_assert(onnx_export_float(m, path, NULL, err, sizeof err), "%s", err);
    const float *sets[1] = {logits};
    cr_assert(onnx_save_check(check, x->data, n, m->in_h, m->in_w, m->in_c, sets, 1, m->num_classes, err, sizeof err), "%s", err);
    snprintf(cmd, sizeof cmd, "node scripts/onnx_check.js %s %s fp32 --tol=1e-4 >%s.log 2>&1", path, check, stem);
    int status = system(cmd);
    char log[96];
    snprintf(log, sizeof log, "%s.log", stem);
    char *text = read_text_file(log);
    cr_log_info("%s: %s", m->name, text);
    cr_assert(status == 0, "%s: ONNX Runtime disagrees with our logits:\n%s", m->name, text);
    dq_free(text), dq_free(logits);
    remove(path), remove(check), remove(log);
    model_free(m);
}

Test(onnx, onnx_runtime_agrees_with_the_float_models, .init = test_setup, .fini = test_teardown) {
    if (!onnx_runtime_present()) {
        cr_skip("ONNX Runtime is not installed: npm install --prefix scripts --ignore-scripts onnxruntime-node "
                "(Node.js from apt-get install nodejs npm)");
    }
    runtime_check(NET_MNV2, "test_onnx_rt_mnv2");
    runtime_check(NET_RESNET, "test_onnx_rt_resnet");
    runtime_check(NET_LENET, "test_onnx_rt_lenet");
}
