/* fuzz_idx.c — IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed, as idx_load reads
 * them. The first byte picks the dimensions expected (labels 1, images 3). */
#include <stdint.h>
#include <stdlib.h>

#include "data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    IdxArray a;
    char err[256];
    int ndim = data[0] & 1 ? 3 : 1;
    if (idx_decode(data + 1, size - 1, ndim, &a, err, sizeof err)) {
        size_t total = 1;
        for (int i = 0; i < a.ndim; i++) total *= a.dims[i];
        volatile uint8_t sink = total ? a.data[total - 1] : 0;  // the promised bytes are there
        (void)sink;
        idx_free(&a);
    }
    return 0;
}
