/* dataset.h — an image classification dataset held in memory as bytes.
 *
 *     images (n, h, w, c) uint8, channels-last like every tensor here;  labels (n) uint8
 * Known datasets and their files (dir given by the caller):
 *     fashion-mnist, mnist   train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
 *                            t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
 *     cifar10                data_batch_1..5.bin, test_batch.bin (the "binary version"),
 *                            in dir or in dir/cifar-10-batches-bin
 * Every size and label is validated; a bad file is a fatal "<path>: error: …".
 * The per-channel mean and std used for normalisation are the usual published constants.
 */
#ifndef DQ_DATASET_H
#define DQ_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef enum { SPLIT_TRAIN, SPLIT_TEST } DatasetSplit;

typedef struct Dataset {
    char name[32];       // "fashion-mnist"
    int n, h, w, c;      // examples and image geometry
    int num_classes;
    uint8_t *images;     // (n, h, w, c)
    uint8_t *labels;     // (n), each < num_classes
    float mean[3], std[3];  // normalisation per channel (of pixel / 255)
} Dataset;

/* Names accepted by dataset_load, for --help texts. */
#define DATASET_NAMES "fashion-mnist|mnist|cifar10"

bool dataset_known(const char *name);
void dataset_load(Dataset *d, const char *name, const char *dir, DatasetSplit split);
/* Build from memory (tests, subsets); copies nothing: takes ownership of images and labels. */
void dataset_from_memory(Dataset *d, const char *name, int n, int h, int w, int c, int classes,
                         uint8_t *images, uint8_t *labels);
void dataset_free(Dataset *d);

/* CIFAR-10 binary batch parser (exposed for tests): appends records to images/labels. */
bool cifar_parse(const uint8_t *buf, size_t n, uint8_t *images, uint8_t *labels, int max_records,
                 int *records, char *err, size_t err_size);

#endif
