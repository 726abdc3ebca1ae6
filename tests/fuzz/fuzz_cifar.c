/* fuzz_cifar.c — CIFAR-10 binary batches (data/dataset.h: cifar_parse). */
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "data/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int cap = (int)(size / 3073) + 1, records = 0;
    uint8_t *images = dq_malloc((size_t)cap * 3072), *labels = dq_malloc((size_t)cap);
    char err[256];
    if (cifar_parse(data, size, images, labels, cap, &records, err, sizeof err) && records * 3073 != (int)size) abort();
    dq_free(images);
    dq_free(labels);
    return 0;
}
