/* test_loader.c — batches: every example once per epoch, reproducible per (seed, epoch) with or
 * without the prefetch thread, normalisation, crops and flips, subsets. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "data/loader.h"
#include "helpers.h"

/* n images of 4×4×1; pixel (y, x) of image i = i (so the label-image link is checkable). */
static Dataset tiny(int n) {
    uint8_t *img = dq_malloc((size_t)n * 16), *lab = dq_malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        memset(img + (size_t)i * 16, i, 16);
        lab[i] = (uint8_t)(i % 10);
    }
    Dataset d;
    dataset_from_memory(&d, "test", n, 4, 4, 1, 10, img, lab);
    d.mean[0] = 0, d.std[0] = 1.0f / 255.0f;  // x = pixel exactly
    return d;
}

Test(loader, each_example_once_per_epoch) {
    Dataset d = tiny(23);
    Loader *l = loader_new(&d, &(LoaderConfig){.batch_size = 5, .shuffle = true, .seed = 3, .prefetch = true});
    cr_assert_eq(loader_batches(l), 5);
    for (int e = 0; e < 3; e++) {
        int seen[23] = {0}, total = 0, in_order = 0;
        loader_start_epoch(l, e);
        Batch b;
        while (loader_next(l, &b)) {
            for (int i = 0; i < b.n; i++) {
                int id = (int)b.x.data[i * 16];
                cr_assert(id >= 0 && id < 23);
                cr_assert_eq(b.labels[i], id % 10, "label travels with its image");
                seen[id]++;
                in_order += id == total;
                total++;
            }
        }
        cr_assert_eq(total, 23);
        for (int i = 0; i < 23; i++) cr_assert_eq(seen[i], 1, "epoch %d example %d", e, i);
        cr_assert(in_order < 23, "shuffled");
    }
    loader_free(l);
    dataset_free(&d);
}

static void collect(Dataset *d, LoaderConfig cfg, int epoch, float *out, size_t cap) {
    Loader *l = loader_new(d, &cfg);
    loader_start_epoch(l, 0);
    Batch b;
    loader_next(l, &b);  // abandon epoch 0 midway: the next epoch must not care
    loader_start_epoch(l, epoch);
    size_t k = 0;
    while (loader_next(l, &b))
        for (size_t i = 0; i < b.x.numel && k < cap; i++) out[k++] = b.x.data[i];
    loader_free(l);
}

Test(loader, same_batches_with_and_without_prefetch) {
    Dataset d = tiny(40);
    LoaderConfig c = {.batch_size = 6, .shuffle = true, .crop_pad = 1, .hflip = true, .seed = 9, .drop_last = true};
    float a[640], b[640], other[640];
    collect(&d, c, 2, a, 640);
    c.prefetch = true;
    collect(&d, c, 2, b, 640);
    assert_bits_equal(a, b, 36 * 16, "epoch 2, prefetch vs inline");
    collect(&d, c, 3, other, 640);
    cr_assert(memcmp(a, other, 36 * 16 * sizeof(float)) != 0, "another epoch, another order");
    dataset_free(&d);
}

Test(loader, normalises_crops_and_flips) {
    // One 4×4 image with pixel = 4y + x; mean 0.5, std 0.25 (of pixel/255).
    uint8_t *img = dq_malloc(16), *lab = dq_calloc(1, 1);
    for (int i = 0; i < 16; i++) img[i] = (uint8_t)i;
    Dataset d;
    dataset_from_memory(&d, "x", 1, 4, 4, 1, 10, img, lab);
    d.mean[0] = 0.5f, d.std[0] = 0.25f;
    Loader *l = loader_new(&d, &(LoaderConfig){.batch_size = 1});
    loader_start_epoch(l, 0);
    Batch b;
    cr_assert(loader_next(l, &b));
    cr_assert_float_eq(b.x.data[5], (5 / 255.0f - 0.5f) / 0.25f, 1e-6);
    loader_free(l);
    // With crops and flips every output is the image shifted by (dy, dx) in [-1, 1], maybe
    // mirrored, with padding pixels = normalised 0.
    l = loader_new(&d, &(LoaderConfig){.batch_size = 1, .crop_pad = 1, .hflip = true, .seed = 1});
    int flips = 0, shifts = 0;
    for (int e = 0; e < 40; e++) {
        loader_start_epoch(l, e);
        cr_assert(loader_next(l, &b));
        bool matched = false;
        for (int dy = -1; dy <= 1 && !matched; dy++)
            for (int dx = -1; dx <= 1 && !matched; dx++)
                for (int f = 0; f < 2 && !matched; f++) {
                    bool ok = true;
                    for (int y = 0; y < 4 && ok; y++)
                        for (int x = 0; x < 4 && ok; x++) {
                            int sy = y + dy, sx = f ? 3 - (x + dx) : x + dx;
                            float px = (sy >= 0 && sy < 4 && sx >= 0 && sx < 4) ? (float)(4 * sy + sx) : 0;
                            ok = fabsf(b.x.data[y * 4 + x] - (px / 255.0f - 0.5f) / 0.25f) < 1e-5f;
                        }
                    if (ok) matched = true, flips += f, shifts += dy != 0 || dx != 0;
                }
        cr_assert(matched, "epoch %d: output is not a shifted/flipped copy", e);
    }
    cr_assert(flips > 5 && flips < 35 && shifts > 10, "flips %d shifts %d", flips, shifts);
    loader_free(l);
    dataset_free(&d);
}

Test(loader, subset_and_drop_last) {
    Dataset d = tiny(50);
    Loader *l = loader_new(&d, &(LoaderConfig){.batch_size = 8, .subset = 20, .drop_last = true});
    cr_assert_eq(loader_batches(l), 2);
    cr_assert_eq(loader_examples(l), 16);
    loader_start_epoch(l, 0);
    Batch b;
    while (loader_next(l, &b))
        for (int i = 0; i < b.n; i++) cr_assert(b.x.data[i * 16] < 20, "only the first 20 examples");
    loader_free(l);
    dataset_free(&d);
}

static void bad_batch(void *ctx) {
    Dataset *d = ctx;
    loader_new(d, &(LoaderConfig){.batch_size = 100, .drop_last = true});
}

Test(loader, rejects_impossible_configs, .init = test_setup, .fini = test_teardown) {
    Dataset d = tiny(10);
    cr_assert(strstr(expect_fatal(bad_batch, &d), "10 examples make no full batch of 100") != NULL);
    dataset_free(&d);
}

Test(loader, order_and_augmentation_come_from_their_named_streams) {
    // The order of epoch e is a Fisher–Yates shuffle on stream (SHUFFLE, e) of the seed; the crop
    // and flip draws are on (AUGMENT, e). With crop padding 1 the first draw is the row shift.
    Dataset d = tiny(23);
    Loader *l = loader_new(&d, &(LoaderConfig){.batch_size = 23, .shuffle = true, .seed = 5});
    for (int e = 0; e < 3; e++) {
        int want[23];
        for (int i = 0; i < 23; i++) want[i] = i;
        Rng r;
        rng_seed(&r, 5, rng_stream(RNG_STREAM_SHUFFLE, (uint64_t)e));
        rng_shuffle(&r, want, 23);
        loader_start_epoch(l, e);
        Batch b;
        cr_assert(loader_next(l, &b));
        for (int i = 0; i < 23; i++) cr_assert_eq((int)b.x.data[i * 16], want[i], "epoch %d position %d", e, i);
    }
    loader_free(l);
    dataset_free(&d);
}

Test(loader, an_epoch_started_midway_gives_the_same_batches) {
    Dataset d = tiny(40);
    LoaderConfig c = {.batch_size = 6, .shuffle = true, .crop_pad = 1, .hflip = true, .seed = 9, .drop_last = true,
                      .prefetch = true};
    float whole[640], tail[640];
    collect(&d, c, 2, whole, 640);
    Loader *l = loader_new(&d, &c);
    loader_start_epoch_at(l, 2, 4);
    Batch b;
    size_t k = 0;
    int first = -1;
    while (loader_next(l, &b)) {
        if (first < 0) first = b.index;
        for (size_t i = 0; i < b.x.numel; i++) tail[k++] = b.x.data[i];
    }
    cr_assert_eq(first, 4, "the first batch handed out is batch 4");
    cr_assert_eq(k, (size_t)2 * 6 * 16, "batches 4 and 5 of 6");
    assert_bits_equal(tail, whole + 4 * 6 * 16, k, "batches 4.. of epoch 2, started midway vs whole");
    loader_free(l);
    dataset_free(&d);
}
