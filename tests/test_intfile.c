/* test_intfile.c — the integer model file (.dqm): a round trip gives the same program (bit-equal
 * logits, same size accounting); damaged files — truncated anywhere, a flipped byte, a wrong
 * magic or version, impossible bits, shapes that do not follow — are refused with a reason, and
 * any byte changed under a valid checksum either is refused or gives a program that runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/checksum.h"
#include "core/error.h"
#include "core/fileio.h"
#include "helpers.h"
#include "nn/lenet.h"
#include "nn/mobilenetv2.h"
#include "quant/control.h"
#include "quant/intmodel.h"
#include "quant/mpquant.h"

typedef struct Built {
    QuantContext *qc;
    Model *m;
    IntModel im;
} Built;

static void snap_at(Quantizer *q, void *ctx) {
    if (!ddq_is(q) || q->pinned) return;
    ddq_set_merged(q, 8 - *(const int *)ctx);
    ddq_snap(q);
}

/* A calibrated DDQ network (LeNet or a small MobileNetV2) at `bits` (0: 8, as calibrated); or,
 * with mp_points, a multipoint one with points of `bits`. */
static void build_with(Built *b, bool mnv2, int bits, double mp_points) {
    QuantConfig cfg = quant_config_defaults;
    if (mp_points) strcpy(cfg.method, "multipoint"), cfg.w_bits = bits, cfg.a_bits = 8;
    b->qc = quant_context_new(&cfg);
    LayerFactory f = quant_factory(b->qc);
    if (mnv2) {
        MobileNetV2Config c = {.width = 0.25f, .variant = MNV2_S1X3, .in_channels = 1, .in_size = 8, .num_classes = 4};
        b->m = mobilenetv2_new(&c, &f, 3);
    } else {
        LeNetConfig c = {.in_channels = 1, .in_size = 8, .num_classes = 4, .dropout = 0};
        b->m = lenet_new(&c, &f, 3);
    }
    Tensor *x = tensor_new4(&test_arena, 16, 8, 8, 1);
    rng_fill_uniform(&R, x->data, x->numel, -2, 2);
    T.training = false, T.no_grad = true;
    char err[256];
    if (mp_points) quant_calibrate_begin_fp32_weights(b->qc), mpq_calibrate_begin(b->qc);
    else quant_calibrate_begin(b->qc);
    model_forward(b->m, &T, x);
    quant_calibrate_end(b->qc);
    if (mp_points) cr_assert(mpq_calibrate_end(b->qc, mp_points, err, sizeof err), "%s", err);
    else if (bits) quant_each(b->qc, snap_at, &bits);
    cr_assert(intmodel_from(b->m, b->qc, &b->im, err, sizeof err), "%s", err);
}

static void build(Built *b, bool mnv2, int bits) { build_with(b, mnv2, bits, 0); }

static void built_free(Built *b) {
    intmodel_free(&b->im);
    model_free(b->m);
    quant_context_free(b->qc);
}

static void tmp_path(char *path, size_t n, const char *tag) {
    snprintf(path, n, "/tmp/ddqc_intfile_%s_%d.dqm", tag, (int)getpid());
}

static void round_trip(bool mnv2, int bits, double mp_points) {
    Built b;
    build_with(&b, mnv2, bits, mp_points);
    char path[256], err[256];
    tmp_path(path, sizeof path, "rt");
    size_t bytes;
    cr_assert(intmodel_save(&b.im, path, &bytes, err, sizeof err), "%s", err);
    IntModel back;
    cr_assert(intmodel_load(&back, path, err, sizeof err), "%s: %s", path, err);
    IntModelSize s0 = intmodel_size(&b.im), s1 = intmodel_size(&back);
    cr_assert(s0.file == bytes && s1.file == bytes && s0.weights == s1.weights && s0.tables == s1.tables,
              "sizes: %zu/%zu/%zu bytes, weights %zu/%zu", s0.file, s1.file, bytes, s0.weights, s1.weights);
    cr_assert(s0.weights + s0.tables < bytes, "weights %zu + tables %zu within the file's %zu", s0.weights, s0.tables, bytes);
    int n = 9;
    float *x = dq_malloc((size_t)n * 64 * sizeof(float)), *y0 = dq_malloc((size_t)n * 4 * sizeof(float)),
          *y1 = dq_malloc((size_t)n * 4 * sizeof(float));
    rng_fill_uniform(&R, x, (size_t)n * 64, -2, 2);
    intmodel_forward(&b.im, x, n, y0, false);
    intmodel_forward(&back, x, n, y1, false);
    assert_bits_equal(y1, y0, (size_t)n * 4, "logits after the round trip");
    cr_log_info("%s at %d bits: %zu bytes (weights %zu, tables %zu)", b.m->name, bits ? bits : 8, bytes, s0.weights, s0.tables);
    dq_free(x), dq_free(y0), dq_free(y1);
    intmodel_free(&back);
    built_free(&b);
    unlink(path);
}

Test(intfile, round_trip_lenet_8_bits, .init = test_setup, .fini = test_teardown) { round_trip(false, 0, 0); }
Test(intfile, round_trip_lenet_3_bits, .init = test_setup, .fini = test_teardown) { round_trip(false, 3, 0); }
Test(intfile, round_trip_mobilenetv2_4_bits, .init = test_setup, .fini = test_teardown) { round_trip(true, 4, 0); }
Test(intfile, round_trip_mobilenetv2_multipoint, .init = test_setup, .fini = test_teardown) { round_trip(true, 4, 1.5); }

/* ------------------------------------------------------------------ damage */
typedef struct Bytes {
    uint8_t *p;
    size_t n;
} Bytes;

static Bytes file_bytes(const IntModel *im) {
    char path[256], err[256];
    tmp_path(path, sizeof path, "bytes");
    cr_assert(intmodel_save(im, path, NULL, err, sizeof err), "%s", err);
    Bytes b;
    b.p = fileio_read_all(path, &b.n, err, sizeof err);
    cr_assert(b.p, "%s", err);
    unlink(path);
    return b;
}

static void fix_crc(uint8_t *p, size_t n) {
    uint32_t crc = crc32_update(0, p, n - 4);
    for (int i = 0; i < 4; i++) p[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* Parse a changed copy; the reason must contain `want` (NULL: refused for any reason). */
static void expect_refused(const uint8_t *p, size_t n, const char *want, const char *what) {
    IntModel im;
    char err[512] = "";
    bool ok = intmodel_parse(&im, p, n, err, sizeof err);
    if (ok) intmodel_free(&im);
    cr_assert(!ok, "%s: accepted", what);
    cr_assert(err[0], "%s: refused without a reason", what);
    if (want) cr_assert(strstr(err, want), "%s: reason '%s', expected '%s'", what, err, want);
}

Test(intfile, damaged_files_are_refused_with_a_reason, .init = test_setup, .fini = test_teardown) {
    Built b;
    build(&b, false, 3);
    Bytes f = file_bytes(&b.im);
    uint8_t *c = dq_malloc(f.n);
    for (size_t len = 0; len < f.n; len += len < 400 ? 1 : 97) expect_refused(f.p, len, NULL, "truncated");  // anywhere
    memcpy(c, f.p, f.n);
    c[f.n / 2] ^= 0x10;
    expect_refused(c, f.n, "checksum", "a flipped byte");
    memcpy(c, f.p, f.n);
    c[0] = 'X';
    expect_refused(c, f.n, "magic", "wrong magic");
    memcpy(c, f.p, f.n);
    c[8] = 7;
    fix_crc(c, f.n);
    expect_refused(c, f.n, "version 7", "wrong version");
    // impossible bits: the wbits byte of op "fc1" (name, then in in2 out, then 7 dimensions)
    size_t name = 0;  // the op's head: kind IOP_CONV, relu 0, name length 3, the name
    while (name + 7 <= f.n && memcmp(f.p + name, "\1\0\3\0fc1", 7) != 0) name++;
    cr_assert(name + 7 <= f.n, "conv fc1 not found in the file");
    size_t at = name + 7 + 12 + 28;
    cr_assert_eq(f.p[at], 3, "fc1's weight bits at byte %zu", at);
    memcpy(c, f.p, f.n);
    c[at] = 9;
    fix_crc(c, f.n);
    expect_refused(c, f.n, "weight bits", "9-bit weights");
    // a shape that does not follow: tensor 1's channels (header 40 bytes; kind, frac, h, w, c)
    memcpy(c, f.p, f.n);
    c[40 + 14 + 10] += 1;
    fix_crc(c, f.n);
    expect_refused(c, f.n, NULL, "tensor 1 with a channel more");
    // bytes left over
    uint8_t *longer = dq_malloc(f.n + 4);
    memcpy(longer, f.p, f.n - 4);
    memset(longer + f.n - 4, 0, 4);
    fix_crc(longer, f.n + 4);
    expect_refused(longer, f.n + 4, "left over", "four extra bytes");
    dq_free(longer), dq_free(c), dq_free(f.p);
    built_free(&b);
}

/* Every byte of the header, tensors and first ops set to each of a few values, the checksum
 * fixed: refused with a reason, or a program that runs (ASan watches in `make test SAN=1`). */
Test(intfile, any_byte_changed_is_refused_or_runs, .init = test_setup, .fini = test_teardown) {
    Built b;
    build(&b, false, 3);
    Bytes f = file_bytes(&b.im);
    uint8_t *c = dq_malloc(f.n);
    static const uint8_t values[] = {0, 1, 2, 7, 8, 9, 0x7f, 0x80, 0xff};
    size_t end = f.n < 600 ? f.n - 4 : 600;
    int accepted = 0, refused = 0;
    float x[64], y[4];
    for (int i = 0; i < 64; i++) x[i] = (float)(i % 9) / 4 - 1;
    for (size_t at = 0; at < end; at++)
        for (size_t v = 0; v < sizeof values; v++) {
            if (f.p[at] == values[v]) continue;
            memcpy(c, f.p, f.n);
            c[at] = values[v];
            fix_crc(c, f.n);
            IntModel im;
            char err[512] = "";
            if (intmodel_parse(&im, c, f.n, err, sizeof err)) {
                if (im.in_h * im.in_w * im.in_c <= 64 && im.num_classes <= 4) intmodel_forward(&im, x, 1, y, false);
                intmodel_free(&im);
                accepted++;
            } else {
                cr_assert(err[0], "byte %zu = %u: refused without a reason", at, values[v]);
                refused++;
            }
        }
    cr_log_info("%d changed files refused, %d accepted and run", refused, accepted);
    cr_assert(refused > 0);
    dq_free(c), dq_free(f.p);
    built_free(&b);
}

Test(intfile, a_missing_file_is_an_error, .init = test_setup, .fini = test_teardown) {
    IntModel im;
    char err[256] = "";
    cr_assert(!intmodel_load(&im, "/tmp/ddqc_no_such_model.dqm", err, sizeof err));
    cr_assert(err[0]);
}

/* ------------------------------------------------------------------ versions and multipoint */
/* A version-1 file (before multipoint: no points byte) still loads, to the same logits; a
 * multipoint program has no version-1 form. */
Test(intfile, version_1_files_are_read, .init = test_setup, .fini = test_teardown) {
    Built b;
    build(&b, true, 4);
    uint8_t *v1;
    size_t n;
    cr_assert(intmodel_encode_version(&b.im, 1, &v1, &n));
    Bytes v2 = file_bytes(&b.im);
    cr_assert(v2.n > n && v1[8] == 1 && v2.p[8] == 2, "version 1: %zu bytes, version 2: %zu", n, v2.n);
    IntModel back;
    char err[256];
    cr_assert(intmodel_parse(&back, v1, n, err, sizeof err), "%s", err);
    float x[3 * 64], y0[3 * 4], y1[3 * 4];
    rng_fill_uniform(&R, x, 3 * 64, -2, 2);
    intmodel_forward(&b.im, x, 3, y0, false);
    intmodel_forward(&back, x, 3, y1, false);
    assert_bits_equal(y1, y0, 3 * 4, "logits from the version-1 file");
    intmodel_free(&back);
    dq_free(v1), dq_free(v2.p);
    built_free(&b);
    Built mp;
    build_with(&mp, false, 3, 2);
    cr_assert(!intmodel_encode_version(&mp.im, 1, &v1, &n), "a multipoint program written as version 1");
    built_free(&mp);
}

/* A multipoint file truncated anywhere is refused; point multipliers whose sums could overflow
 * 32 bits are refused (they would be undefined arithmetic in the kernels), with the reason. */
Test(intfile, multipoint_multipliers_that_overflow_are_refused, .init = test_setup, .fini = test_teardown) {
    Built b;
    build_with(&b, false, 3, 2);
    IConv *cv = NULL;
    for (int i = 0; i < b.im.n_ops && !cv; i++)
        if (b.im.ops[i].kind == IOP_CONV && b.im.ops[i].conv.points > 1) cv = &b.im.ops[i].conv;
    cr_assert(cv, "no layer with several points");
    Bytes good = file_bytes(&b.im);
    IntModel back;
    char err[256];
    cr_assert(intmodel_parse(&back, good.p, good.n, err, sizeof err), "%s", err);
    intmodel_free(&back);
    for (size_t len = 0; len < good.n; len += len < 400 ? 1 : 61) expect_refused(good.p, len, NULL, "truncated multipoint");
    cv->pmul[cv->cout] = 1 << 28;  // channel 0's second point
    Bytes bad = file_bytes(&b.im);
    expect_refused(bad.p, bad.n, "overflow 32 bits", "a huge point multiplier");
    cr_assert(!intmodel_check(&b.im, err, sizeof err) && strstr(err, "overflow"), "intmodel_check: %s", err);
    dq_free(good.p), dq_free(bad.p);
    built_free(&b);
}
