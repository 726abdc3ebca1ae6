/* make_corpus.c — writes the fuzzers' seed corpora, made by the project itself:
 *     make_corpus DIR    ->  DIR/<target>/seed-*  for gzip, inflate, idx, cifar, checkpoint, intmodel, options
 * DEFLATE seeds come from a small encoder here (stored blocks; fixed-Huffman blocks with greedy
 * LZ77 matches) and, for dynamic-Huffman blocks, from the system's gzip when it is installed.
 * Checkpoints are real ones of the fuzzers' model (fuzz_common.h), with and without quantizer
 * state, saved through the trainer's own writers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checksum.h"
#include "core/error.h"
#include "core/fileio.h"
#include "fuzz_common.h"
#include "quant/intmodel.h"
#include "quant/mpquant.h"
#include "train/checkpoint.h"
#include "train/run_state.h"

static char root[1024];

static void put_file(const char *target, const char *name, const void *data, size_t n) {
    char dir[1200], path[1400], err[256];
    snprintf(dir, sizeof dir, "%s/%s", root, target);
    if (!fileio_make_dirs(dir, err, sizeof err)) DQ_FATAL_FILE(dir, "%s", err);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const void *parts[1] = {data};
    size_t sizes[1] = {n};
    if (!fileio_write_atomic(path, parts, sizes, 1, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
}

/* ------------------------------------------------------------------ a small DEFLATE encoder */
typedef struct Out {
    uint8_t *b;
    size_t n, cap;
    uint32_t bits;
    int nbits;
} Out;

static void byte_out(Out *o, uint8_t v) {
    if (o->n == o->cap) o->b = dq_realloc(o->b, o->cap = o->cap ? 2 * o->cap : 256);
    o->b[o->n++] = v;
}

static void bits_out(Out *o, uint32_t v, int k) {  // LSB first
    for (int i = 0; i < k; i++) {
        o->bits |= (v >> i & 1u) << o->nbits;
        if (++o->nbits == 8) byte_out(o, (uint8_t)o->bits), o->bits = 0, o->nbits = 0;
    }
}

static void code_out(Out *o, uint32_t code, int len) {  // Huffman codes MSB first
    for (int i = len - 1; i >= 0; i--) bits_out(o, code >> i & 1u, 1);
}

static void flush_out(Out *o) {
    if (o->nbits) byte_out(o, (uint8_t)o->bits), o->bits = 0, o->nbits = 0;
}

static void fixed_symbol(Out *o, int s) {
    if (s < 144) code_out(o, 0x30u + (uint32_t)s, 8);
    else if (s < 256) code_out(o, 0x190u + (uint32_t)(s - 144), 9);
    else if (s < 280) code_out(o, (uint32_t)(s - 256), 7);
    else code_out(o, 0xC0u + (uint32_t)(s - 280), 8);
}

static const int LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const int LEXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const int DEXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Raw DEFLATE of src: stored (kind 0) or one fixed-Huffman block with greedy matches (kind 1). */
static Out deflate(const uint8_t *src, size_t n, int kind) {
    Out o = {0};
    if (kind == 0) {
        size_t pos = 0;
        do {
            size_t len = n - pos < 65535 ? n - pos : 65535;
            bits_out(&o, pos + len == n, 1), bits_out(&o, 0, 2), flush_out(&o);
            byte_out(&o, (uint8_t)len), byte_out(&o, (uint8_t)(len >> 8));
            byte_out(&o, (uint8_t)~len), byte_out(&o, (uint8_t)(~len >> 8));
            for (size_t i = 0; i < len; i++) byte_out(&o, src[pos + i]);
            pos += len;
        } while (pos < n);
        return o;
    }
    bits_out(&o, 1, 1), bits_out(&o, 1, 2);
    for (size_t i = 0; i < n;) {
        size_t best = 0, dist = 0;
        for (size_t d = 1; d <= i && d <= 4096; d++) {
            size_t l = 0;
            while (l < 258 && i + l < n && src[i + l] == src[i + l - d]) l++;
            if (l > best) best = l, dist = d;
        }
        if (best < 3) {
            fixed_symbol(&o, src[i++]);
            continue;
        }
        int lc = 28;
        while (LBASE[lc] > (int)best) lc--;
        fixed_symbol(&o, 257 + lc), bits_out(&o, (uint32_t)(best - (size_t)LBASE[lc]), LEXTRA[lc]);
        int dc = 29;
        while (DBASE[dc] > (int)dist) dc--;
        code_out(&o, (uint32_t)dc, 5), bits_out(&o, (uint32_t)(dist - (size_t)DBASE[dc]), DEXTRA[dc]);
        i += best;
    }
    fixed_symbol(&o, 256);
    flush_out(&o);
    return o;
}

/* A gzip member around a raw body; flags 2 (FHCRC), 4 (FEXTRA), 8 (FNAME) as asked. */
static Out gzip_member(const uint8_t *src, size_t n, int kind, int flags) {
    Out g = {0};
    const uint8_t head[10] = {0x1f, 0x8b, 8, (uint8_t)flags, 0, 0, 0, 0, 0, 3};
    for (int i = 0; i < 10; i++) byte_out(&g, head[i]);
    if (flags & 4) byte_out(&g, 3), byte_out(&g, 0), byte_out(&g, 'a'), byte_out(&g, 'b'), byte_out(&g, 'c');
    if (flags & 8)
        for (const char *p = "seed.txt"; ; p++) {
            byte_out(&g, (uint8_t)*p);
            if (!*p) break;
        }
    if (flags & 2) {
        uint32_t c = crc32_update(0, g.b, g.n);
        byte_out(&g, (uint8_t)c), byte_out(&g, (uint8_t)(c >> 8));
    }
    Out body = deflate(src, n, kind);
    for (size_t i = 0; i < body.n; i++) byte_out(&g, body.b[i]);
    uint32_t crc = crc32_update(0, src, n), len = (uint32_t)n;
    for (int i = 0; i < 4; i++) byte_out(&g, (uint8_t)(crc >> 8 * i));
    for (int i = 0; i < 4; i++) byte_out(&g, (uint8_t)(len >> 8 * i));
    dq_free(body.b);
    return g;
}

/* gzip -9 of src by the system's gzip (dynamic Huffman blocks), or n = 0 when there is none. */
static Out system_gzip(const uint8_t *src, size_t n) {
    Out o = {0};
    char tmp[] = "/tmp/ddqc_corpus_XXXXXX", cmd[128];
    int fd = mkstemp(tmp);
    if (fd < 0) return o;
    if (write(fd, src, n) != (ssize_t)n) n = 0;
    close(fd);
    snprintf(cmd, sizeof cmd, "gzip -9 -n -c %s 2>/dev/null", tmp);
    FILE *p = n ? popen(cmd, "r") : NULL;
    for (int ch; p && (ch = fgetc(p)) != EOF;) byte_out(&o, (uint8_t)ch);
    if (p && pclose(p) != 0) o.n = 0;
    unlink(tmp);
    return o;
}

static void text_sample(uint8_t *b, size_t n, unsigned seed) {
    const char *words[] = {"quantization ", "gradient ", "bitwidth ", "level ", "of ", "the ", "0123 "};
    Rng r;
    rng_seed(&r, seed, rng_stream(RNG_STREAM_FREE, 1));
    for (size_t i = 0; i < n;) {
        const char *w = words[rng_below(&r, 7)];
        for (size_t k = 0; w[k] && i < n; k++) b[i++] = (uint8_t)w[k];
    }
}

/* ------------------------------------------------------------------ seeds per target */
static void deflate_seeds(void) {
    uint8_t text[3000], bin[700];
    text_sample(text, sizeof text, 1);
    Rng r;
    rng_seed(&r, 2, rng_stream(RNG_STREAM_FREE, 2));
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)rng_u32(&r);
    char name[64];
    int k = 0;
    for (int kind = 0; kind < 2; kind++)
        for (int flags = 0; flags <= 14; flags += 14) {
            Out g = gzip_member(kind ? text : bin, kind ? sizeof text : sizeof bin, kind, flags);
            snprintf(name, sizeof name, "seed-%d", k++);
            put_file("gzip", name, g.b, g.n);
            Out raw = deflate(kind ? text : bin, kind ? sizeof text : sizeof bin, kind);
            put_file("inflate", name, raw.b, raw.n);
            dq_free(g.b), dq_free(raw.b);
        }
    Out a = gzip_member(text, 100, 1, 0), b = gzip_member(text + 100, 50, 0, 8), two = {0};
    for (size_t i = 0; i < a.n; i++) byte_out(&two, a.b[i]);
    for (size_t i = 0; i < b.n; i++) byte_out(&two, b.b[i]);
    put_file("gzip", "seed-two-members", two.b, two.n);
    Out empty = gzip_member(text, 0, 0, 0);
    put_file("gzip", "seed-empty", empty.b, empty.n);
    Out sys = system_gzip(text, sizeof text);
    if (sys.n) {
        put_file("gzip", "seed-dynamic", sys.b, sys.n);
        put_file("inflate", "seed-dynamic", sys.b + 10, sys.n - 18);
    }
    dq_free(a.b), dq_free(b.b), dq_free(two.b), dq_free(empty.b), dq_free(sys.b);
}

/* The IDX target reads a selector byte (odd: images) before the file. */
static void idx_seeds(void) {
    uint8_t labels[1 + 8 + 20], images[1 + 16 + 5 * 6 * 7];
    labels[0] = 0;
    const uint8_t lh[8] = {0, 0, 8, 1, 0, 0, 0, 20};
    memcpy(labels + 1, lh, 8);
    for (int i = 0; i < 20; i++) labels[9 + i] = (uint8_t)(i % 10);
    images[0] = 1;
    const uint8_t ih[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7};
    memcpy(images + 1, ih, 16);
    for (int i = 0; i < 5 * 6 * 7; i++) images[17 + i] = (uint8_t)(i * 7);
    put_file("idx", "seed-labels", labels, sizeof labels);
    put_file("idx", "seed-images", images, sizeof images);
    for (int kind = 0; kind < 2; kind++) {
        Out g = gzip_member(images + 1, sizeof images - 1, kind, 0), sel = {0};
        byte_out(&sel, 1);
        for (size_t i = 0; i < g.n; i++) byte_out(&sel, g.b[i]);
        put_file("idx", kind ? "seed-images-gz-fixed" : "seed-images-gz-stored", sel.b, sel.n);
        dq_free(g.b), dq_free(sel.b);
    }
}

static void cifar_seeds(void) {
    uint8_t *b = dq_malloc(2 * 3073);
    for (int i = 0; i < 2 * 3073; i++) b[i] = (uint8_t)(i * 13);
    b[0] = 3, b[3073] = 9;
    put_file("cifar", "seed-two-records", b, 2 * 3073);
    dq_free(b);
}

static void save_checkpoint(const char *name, FuzzModel *f, bool quant, int epoch, int batch) {
    Checkpoint c;
    ckpt_init(&c);
    ckpt_add_slab(&c, &f->m->slab);
    EpochLog h[2] = {{.epoch = 1, .lr = 0.1, .train_loss = 1.2, .train_acc = 0.5, .test_loss = 1.1, .test_acc = 0.6},
                     {.epoch = 2, .lr = 0.05, .train_loss = 0.9, .train_acc = 0.7, .test_loss = 0.8, .test_acc = 0.72}};
    RunState s = {.epoch = epoch, .batch = batch, .batches = 10, .seed = 1, .seen = batch * 16, .correct = batch * 8,
                  .loss_sum = batch * 20.0, .seconds = 1.5, .history = h};
    rng_seed(&s.dropout, 1, rng_stream(RNG_STREAM_DROPOUT, (uint64_t)epoch));
    float *velo = dq_calloc(f->m->slab.numel, sizeof(float));
    run_state_save(&c, &s, "epochs=4\nlr=0.1\nthreads=2\n", velo, f->m->slab.numel);
    if (quant) {
        QBytes b = {0};
        quant_run_save(&f->run, &b);
        ckpt_add(&c, "QUNT", b.p, b.len);
        dq_free(b.p);
    }
    char dir[1200], path[1400], err[256];
    snprintf(dir, sizeof dir, "%s/checkpoint", root);
    if (!fileio_make_dirs(dir, err, sizeof err)) DQ_FATAL_FILE(dir, "%s", err);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ckpt_save(&c, path);
    ckpt_free(&c);
    dq_free(velo);
}

static void checkpoint_seeds(void) {
    FuzzModel f;
    fuzz_model_init(&f);
    save_checkpoint("seed-fresh-fp32", &f, false, 0, 0);
    for (int i = 0; i < 3; i++) quant_run_step(&f.run, 0.01f);  // past warm-up's first steps: trace rows
    save_checkpoint("seed-quant-mid-epoch", &f, true, 1, 3);
    for (int i = 0; i < 27; i++) quant_run_step(&f.run, 0.01f);  // into the joint phase
    save_checkpoint("seed-quant-epoch-2", &f, true, 2, 0);
    fuzz_model_free(&f);
}

/* Integer model files of the fuzzers' network: as calibrated (8 bits), and at 4 and 2 bits with
 * the levels snapped (tables, packed codes at odd widths). */
static void intmodel_seeds(void) {
    FuzzModel f;
    fuzz_model_init(&f);
    for (int bits = 8; bits >= 2; bits -= bits == 8 ? 4 : 2) {
        for (int i = 0; i < f.qc->n_layers; i++) {
            Quantizer *q[2] = {f.qc->layers[i]->wq, f.qc->layers[i]->aq};
            for (int k = 0; k < 2; k++)
                if (ddq_is(q[k]) && !q[k]->pinned) ddq_set_merged(q[k], 8 - bits), ddq_snap(q[k]);
        }
        IntModel im;
        char err[256], dir[1200], path[1400];
        if (!intmodel_from(f.m, f.qc, &im, err, sizeof err)) DQ_FATAL("make_corpus: %s", err);
        snprintf(dir, sizeof dir, "%s/intmodel", root);
        if (!fileio_make_dirs(dir, err, sizeof err)) DQ_FATAL_FILE(dir, "%s", err);
        snprintf(path, sizeof path, "%s/seed-%d-bits", dir, bits);
        if (!intmodel_save(&im, path, NULL, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
        intmodel_free(&im);
    }
    fuzz_model_free(&f);
}

/* A multipoint program of the same network (3-bit points, 2 per channel on average): the file's
 * points, multipliers and sparse codes for the fuzzer to mutate. */
static void intmodel_multipoint_seed(void) {
    QuantConfig c = quant_config_defaults;
    strcpy(c.method, "multipoint");
    c.w_bits = 3, c.a_bits = 8;
    QuantContext *qc = quant_context_new(&c);
    LayerFactory lf = quant_factory(qc);
    Model *m = fuzz_tiny_net(&lf);
    quant_calibrate_begin_fp32_weights(qc);
    mpq_calibrate_begin(qc);
    fuzz_forward_random(m, 2);
    quant_calibrate_end(qc);
    char err[256], dir[1200], path[1400];
    if (!mpq_calibrate_end(qc, 2, err, sizeof err)) DQ_FATAL("make_corpus: %s", err);
    IntModel im;
    if (!intmodel_from(m, qc, &im, err, sizeof err)) DQ_FATAL("make_corpus: %s", err);
    snprintf(dir, sizeof dir, "%s/intmodel", root);
    if (!fileio_make_dirs(dir, err, sizeof err)) DQ_FATAL_FILE(dir, "%s", err);
    snprintf(path, sizeof path, "%s/seed-multipoint", dir);
    if (!intmodel_save(&im, path, NULL, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
    intmodel_free(&im);
    model_free(m);
    quant_context_free(qc);
}

static void option_seeds(void) {
    const char *lines[] = {
        "--lr=0.1\n--epochs=3\n--schedule=step",
        "--q_method=lsq\n--q_per_channel\n--q_wbits=3",
        "--q_method=ddq\n--ddq_lambda=hinge\n--ddq_hinge=0.5\n--ddq_budget=bitops",
        "--dataset=cifar10\n--data_dir=/tmp/x\n--crop_pad=4\n--hflip=false",
        "--width=0.25\n--variant=imagenet\n--dropout=0\n--fp32_epochs=1\n--fp32_seed=7",
        "--help",
    };
    char name[32];
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        snprintf(name, sizeof name, "seed-%zu", i);
        put_file("options", name, lines[i], strlen(lines[i]));
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (writes DIR/<target>/seed-*)\n", argv[0]);
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    deflate_seeds();
    idx_seeds();
    cifar_seeds();
    checkpoint_seeds();
    intmodel_seeds();
    intmodel_multipoint_seed();
    option_seeds();
    printf("make_corpus: seeds written under %s\n", root);
    return 0;
}
