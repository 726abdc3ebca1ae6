/* loader.h — batches of normalised, optionally augmented images, prepared in the background.
 *
 * Each epoch visits the examples in an order shuffled by an Rng on stream (RNG_STREAM_SHUFFLE,
 * epoch) of the seed, and augments with one on stream (RNG_STREAM_AUGMENT, epoch), consumed in
 * batch order (core/rng.h names every stream): a given (seed, epoch)
 * always yields the same batches, whether or not the prefetch thread runs ahead and however the
 * threads are scheduled — which is what makes --resume exact.
 *
 *     x (B, H, W, C) float = (pixel/255 − mean[c]) / std[c]      labels (B) int
 *     augmentation: random crop of H×W from the image zero-padded by crop_pad pixels,
 *                   horizontal flip with probability 1/2
 */
#ifndef DQ_LOADER_H
#define DQ_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "dataset.h"

typedef struct LoaderConfig {
    int batch_size;
    bool shuffle;
    bool drop_last;     // skip a final partial batch
    int crop_pad;       // random-crop padding in pixels (0: no crop)
    bool hflip;         // random horizontal flips
    int subset;         // use the first `subset` examples only (0: all)
    uint64_t seed;
    bool prefetch;      // prepare the next batch on a background thread
} LoaderConfig;

typedef struct Batch {
    Tensor x;           // (n, H, W, C) view of the loader's buffer
    const int *labels;  // (n)
    int n;              // examples in this batch
    int index;          // batch number within the epoch
} Batch;

typedef struct Loader Loader;

Loader *loader_new(const Dataset *d, const LoaderConfig *cfg);
void loader_free(Loader *l); /* accepts NULL */
void loader_start_epoch(Loader *l, int epoch);
/* The same epoch from its batch `batch` on: the batches are those an uninterrupted epoch would
 * hand out from there (the order, and the augmentation stream advanced past the skipped ones). */
void loader_start_epoch_at(Loader *l, int epoch, int batch);
/* The next batch of the epoch; false when the epoch is over. The batch stays valid until the
 * next call. */
bool loader_next(Loader *l, Batch *b);
int loader_batches(const Loader *l);
int loader_examples(const Loader *l);

#endif
