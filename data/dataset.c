/* dataset.c — loading Fashion-MNIST / MNIST (IDX) and CIFAR-10 (binary) into a Dataset. */
#include "dataset.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "idx.h"

bool dataset_known(const char *name) {
    return strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0 || strcmp(name, "cifar10") == 0;
}

static void set_name(Dataset *d, const char *name) {
    if (strlen(name) >= sizeof d->name) DQ_FATAL("dataset name '%s' too long", name);
    strcpy(d->name, name);
}

static void set_stats(Dataset *d) {
    static const float cifar_mean[3] = {0.4914f, 0.4822f, 0.4465f}, cifar_std[3] = {0.2470f, 0.2435f, 0.2616f};
    for (int c = 0; c < 3; c++) d->mean[c] = 0.5f, d->std[c] = 0.25f;
    if (strcmp(d->name, "fashion-mnist") == 0) d->mean[0] = 0.2860f, d->std[0] = 0.3530f;
    if (strcmp(d->name, "mnist") == 0) d->mean[0] = 0.1307f, d->std[0] = 0.3081f;
    if (strcmp(d->name, "cifar10") == 0)
        for (int c = 0; c < 3; c++) d->mean[c] = cifar_mean[c], d->std[c] = cifar_std[c];
}

void dataset_from_memory(Dataset *d, const char *name, int n, int h, int w, int c, int classes,
                         uint8_t *images, uint8_t *labels) {
    memset(d, 0, sizeof *d);
    set_name(d, name);
    d->n = n, d->h = h, d->w = w, d->c = c, d->num_classes = classes;
    d->images = images, d->labels = labels;
    set_stats(d);
}

/* "<dir>/<base>.gz" if it exists, else "<dir>/<base>". */
static void idx_path(char *out, size_t size, const char *dir, const char *base) {
    snprintf(out, size, "%s/%s.gz", dir, base);
    if (!fileio_exists(out)) snprintf(out, size, "%s/%s", dir, base);
}

static void load_idx_pair(Dataset *d, const char *dir, DatasetSplit split) {
    const char *prefix = split == SPLIT_TRAIN ? "train" : "t10k";
    char ipath[4096], lpath[4096], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    idx_path(ipath, sizeof ipath, dir, base);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    idx_path(lpath, sizeof lpath, dir, base);
    if (!fileio_exists(ipath) || !fileio_exists(lpath))
        DQ_FATAL_HINT("Fashion-MNIST: apt-get install dataset-fashion-mnist; or give --data_dir=DIR",
                      "%s: no %s-images-idx3-ubyte[.gz] / %s-labels-idx1-ubyte[.gz] in this directory",
                      dir, prefix, prefix);
    IdxArray img, lab;
    idx_load(ipath, 3, &img);
    idx_load(lpath, 1, &lab);
    if (img.dims[0] != lab.dims[0])
        DQ_FATAL_FILE(lpath, "%u labels for %u images in %s", lab.dims[0], img.dims[0], ipath);
    if (img.dims[1] > 4096 || img.dims[2] > 4096) DQ_FATAL_FILE(ipath, "images of %ux%u pixels", img.dims[1], img.dims[2]);
    for (uint32_t i = 0; i < lab.dims[0]; i++)
        if (lab.data[i] >= 10) DQ_FATAL_FILE(lpath, "label %d at index %u is not in 0..9", lab.data[i], i);
    size_t ni = (size_t)img.dims[0] * img.dims[1] * img.dims[2];
    d->n = (int)img.dims[0], d->h = (int)img.dims[1], d->w = (int)img.dims[2], d->c = 1, d->num_classes = 10;
    d->images = dq_malloc(ni);
    memcpy(d->images, img.data, ni);
    d->labels = dq_malloc(lab.dims[0]);
    memcpy(d->labels, lab.data, lab.dims[0]);
    idx_free(&img);
    idx_free(&lab);
}

#define CIFAR_RECORD (1 + 3072)

bool cifar_parse(const uint8_t *buf, size_t n, uint8_t *images, uint8_t *labels, int max_records,
                 int *records, char *err, size_t err_size) {
    if (n == 0 || n % CIFAR_RECORD) {
        snprintf(err, err_size, "size %zu is not a multiple of the %d-byte CIFAR-10 record%s", n,
                 CIFAR_RECORD, n % CIFAR_RECORD ? " (truncated or not the binary version)" : "");
        return false;
    }
    int count = (int)(n / CIFAR_RECORD);
    if (*records + count > max_records) {
        snprintf(err, err_size, "more records than expected (%d)", max_records);
        return false;
    }
    for (int r = 0; r < count; r++) {
        const uint8_t *rec = buf + (size_t)r * CIFAR_RECORD;
        if (rec[0] >= 10) {
            snprintf(err, err_size, "label %d in record %d is not in 0..9", rec[0], r);
            return false;
        }
        int k = *records + r;
        labels[k] = rec[0];
        uint8_t *img = images + (size_t)k * 3072;
        for (int p = 0; p < 1024; p++)  // planar R, G, B -> interleaved (h, w, c)
            for (int c = 0; c < 3; c++) img[p * 3 + c] = rec[1 + c * 1024 + p];
    }
    *records += count;
    return true;
}

static void load_cifar(Dataset *d, const char *dir, DatasetSplit split) {
    char base[4096], path[4096 + 64], err[256];
    snprintf(base, sizeof base, "%s/cifar-10-batches-bin", dir);
    if (!fileio_exists(base)) snprintf(base, sizeof base, "%s", dir);
    int files = split == SPLIT_TRAIN ? 5 : 1, cap = 10000 * files;
    d->images = dq_malloc((size_t)cap * 3072);
    d->labels = dq_malloc((size_t)cap);
    d->h = d->w = 32, d->c = 3, d->num_classes = 10;
    int records = 0;
    for (int i = 1; i <= files; i++) {
        if (split == SPLIT_TRAIN) snprintf(path, sizeof path, "%s/data_batch_%d.bin", base, i);
        else snprintf(path, sizeof path, "%s/test_batch.bin", base);
        size_t n;
        uint8_t *buf = fileio_read_all(path, &n, err, sizeof err);
        if (!buf) DQ_FATAL_FILE(path, "%s", err);
        if (!cifar_parse(buf, n, d->images, d->labels, cap, &records, err, sizeof err))
            DQ_FATAL_FILE(path, "%s", err);
        dq_free(buf);
    }
    d->n = records;
}

void dataset_load(Dataset *d, const char *name, const char *dir, DatasetSplit split) {
    if (!dataset_known(name))
        DQ_FATAL("unknown dataset '%s' (known: %s)", name, DATASET_NAMES);
    memset(d, 0, sizeof *d);
    set_name(d, name);
    if (strcmp(name, "cifar10") == 0) load_cifar(d, dir, split);
    else load_idx_pair(d, dir, split);
    set_stats(d);
}

void dataset_free(Dataset *d) {
    if (!d) return;
    dq_free(d->images);
    dq_free(d->labels);
    memset(d, 0, sizeof *d);
}
