/* test_data.c — IDX and CIFAR-10 readers on small generated files, valid and malformed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "helpers.h"

static char dir[64];

static void make_dir(void) {
    test_setup_quiet();
    snprintf(dir, sizeof dir, "/tmp/ddqc_data_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    test_teardown();
}

static void write_file(const char *name, const void *data, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* An IDX file: header (type 0x08, dims) + data. */
static size_t idx_bytes(uint8_t *out, int ndim, const uint32_t *dims, const uint8_t *data, size_t n) {
    out[0] = out[1] = 0, out[2] = 0x08, out[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int b = 0; b < 4; b++) out[4 + 4 * i + b] = (uint8_t)(dims[i] >> (24 - 8 * b));
    memcpy(out + 4 + 4 * ndim, data, n);
    return 4 + 4 * (size_t)ndim + n;
}

/* 5 images of 3×2 with pixel value 10·i + p, labels i. */
static void write_mnist(const char *prefix, bool gz, int n_labels, int bad_label) {
    uint8_t pixels[30], labels[5], buf[256];
    for (int i = 0; i < 30; i++) pixels[i] = (uint8_t)(10 * (i / 6) + i % 6);
    for (int i = 0; i < 5; i++) labels[i] = (uint8_t)(i == 2 && bad_label ? bad_label : i);
    char name[128];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    write_file(name, buf, idx_bytes(buf, 3, (const uint32_t[]){5, 3, 2}, pixels, 30));
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    write_file(name, buf, idx_bytes(buf, 1, (const uint32_t[]){(uint32_t)n_labels}, labels, (size_t)n_labels));
    if (gz) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "cd %s && gzip -f %s-images-idx3-ubyte %s-labels-idx1-ubyte", dir, prefix, prefix);
        cr_assert_eq(system(cmd), 0);
    }
}

Test(idx, reads_plain_and_gzip_files, .init = make_dir, .fini = remove_dir) {
    write_mnist("train", false, 5, 0);
    write_mnist("t10k", true, 5, 0);
    Dataset tr, te;
    dataset_load(&tr, "mnist", dir, SPLIT_TRAIN);
    dataset_load(&te, "mnist", dir, SPLIT_TEST);
    for (Dataset *d = &tr; d; d = d == &tr ? &te : NULL) {
        cr_assert(d->n == 5 && d->h == 3 && d->w == 2 && d->c == 1 && d->num_classes == 10);
        cr_assert_eq(d->images[6 * 3 + 4], 34);
        cr_assert_eq(d->labels[4], 4);
    }
    cr_assert_float_eq(tr.mean[0], 0.1307f, 1e-6, "MNIST normalisation constants");
    dataset_free(&tr);
    dataset_free(&te);
}

typedef struct BadIdx {
    const char *what;
    uint8_t bytes[64];
    size_t n;
    const char *expect;
} BadIdx;

static void parse_case(const BadIdx *c, int ndim) {
    char err[256];
    IdxArray a;
    uint8_t *copy = dq_malloc(c->n ? c->n : 1);
    memcpy(copy, c->bytes, c->n);
    cr_assert(!idx_parse(copy, c->n, ndim, &a, err, sizeof err), "%s: accepted", c->what);
    cr_assert(strstr(err, c->expect) != NULL, "%s: message '%s' lacks '%s'", c->what, err, c->expect);
    dq_free(copy);
}

Test(idx, rejects_malformed_headers, .init = make_dir, .fini = remove_dir) {
    BadIdx cases[] = {
        {.what = "short", .bytes = {0, 0}, .n = 2, .expect = "truncated IDX header"},
        {.what = "magic", .bytes = {1, 2, 8, 1, 0, 0, 0, 1, 5}, .n = 9, .expect = "not an IDX file"},
        {.what = "float type", .bytes = {0, 0, 0x0d, 1, 0, 0, 0, 1, 5}, .n = 9, .expect = "element type 0x0d"},
        {.what = "dims", .bytes = {0, 0, 8, 2, 0, 0, 0, 1, 0, 0, 0, 1, 5}, .n = 13,
         .expect = "2 dimensions, expected 1"},
        {.what = "truncated data", .bytes = {0, 0, 8, 1, 0, 0, 0, 9, 1, 2}, .n = 10,
         .expect = "truncated: header promises 9"},
        {.what = "trailing", .bytes = {0, 0, 8, 1, 0, 0, 0, 1, 1, 2}, .n = 10, .expect = "trailing bytes"},
        {.what = "zero dim", .bytes = {0, 0, 8, 1, 0, 0, 0, 0}, .n = 8, .expect = "size 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) parse_case(&cases[i], 1);
}

static void load_train(void *ctx) {
    Dataset d;
    dataset_load(&d, (const char *)ctx, dir, SPLIT_TRAIN);
}

Test(idx, dataset_errors_name_the_file, .init = make_dir, .fini = remove_dir) {
    write_mnist("train", true, 4, 0);  // 4 labels for 5 images
    const char *m = expect_fatal(load_train, "fashion-mnist");
    cr_assert(strstr(m, "train-labels-idx1-ubyte.gz: error: 4 labels for 5 images") != NULL, "got: %s", m);
    write_mnist("train", false, 5, 17);  // a label 17
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.gz", dir);
    cr_assert_eq(system(cmd), 0);
    m = expect_fatal(load_train, "fashion-mnist");
    cr_assert(strstr(m, "train-labels-idx1-ubyte: error: label 17 at index 2") != NULL, "got: %s", m);
}

Test(idx, corrupt_gzip_and_missing_files, .init = make_dir, .fini = remove_dir) {
    const char *m = expect_fatal(load_train, "mnist");
    cr_assert(strstr(m, "no train-images-idx3-ubyte[.gz]") != NULL && strstr(m, "hint:") != NULL, "got: %s", m);
    write_mnist("train", true, 5, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    FILE *f = fopen(path, "r+b");
    fseek(f, -6, SEEK_END);  // inside the CRC-32 of the trailer
    int ch = fgetc(f);
    fseek(f, -6, SEEK_END);
    fputc(ch ^ 0xff, f);
    fclose(f);
    m = expect_fatal(load_train, "mnist");
    cr_assert(strstr(m, "train-images-idx3-ubyte.gz: error: corrupt gzip") != NULL, "got: %s", m);
}

static void write_cifar(const char *name, int records, int bad_label_at) {
    size_t n = (size_t)records * 3073;
    uint8_t *b = dq_calloc(n, 1);
    for (int r = 0; r < records; r++) {
        b[(size_t)r * 3073] = (uint8_t)(r == bad_label_at ? 10 : r % 10);
        for (int p = 0; p < 3072; p++) b[(size_t)r * 3073 + 1 + p] = (uint8_t)(p / 1024 * 100 + r);  // channel·100 + r
    }
    write_file(name, b, n);
    dq_free(b);
}

Test(cifar, reads_binary_batches, .init = make_dir, .fini = remove_dir) {
    for (int i = 1; i <= 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", i);
        write_cifar(name, 3, -1);
    }
    write_cifar("test_batch.bin", 2, -1);
    Dataset tr, te;
    dataset_load(&tr, "cifar10", dir, SPLIT_TRAIN);
    dataset_load(&te, "cifar10", dir, SPLIT_TEST);
    cr_assert(tr.n == 15 && te.n == 2 && tr.c == 3 && tr.h == 32);
    // planar R/G/B become interleaved: pixel 5 of record 1 is (1, 101, 201)
    const uint8_t *px = tr.images + (size_t)1 * 3072 + 5 * 3;
    cr_assert(px[0] == 1 && px[1] == 101 && px[2] == 201);
    cr_assert_eq(te.labels[1], 1);
    dataset_free(&tr);
    dataset_free(&te);
}

static void load_cifar_test(void *ctx) {
    Dataset d;
    dataset_load(&d, "cifar10", dir, SPLIT_TEST);
}

Test(cifar, rejects_truncated_files_and_bad_labels, .init = make_dir, .fini = remove_dir) {
    write_cifar("test_batch.bin", 2, 1);
    const char *m = expect_fatal(load_cifar_test, NULL);
    cr_assert(strstr(m, "test_batch.bin: error: label 10 in record 1") != NULL, "got: %s", m);
    uint8_t half[4000] = {0};
    write_file("test_batch.bin", half, sizeof half);
    m = expect_fatal(load_cifar_test, NULL);
    cr_assert(strstr(m, "not a multiple of the 3073-byte CIFAR-10 record") != NULL, "got: %s", m);
}

static void unknown_dataset(void *ctx) { load_train("imagenet"); }

Test(dataset, rejects_unknown_names, .init = make_dir, .fini = remove_dir) {
    cr_assert(strstr(expect_fatal(unknown_dataset, NULL), "unknown dataset 'imagenet'") != NULL);
}
