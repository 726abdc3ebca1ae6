/* fuzz_gzip.c — the gzip container and the DEFLATE decoder under it (data/inflate.h). */
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "data/inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *out = NULL;
    size_t n;
    char err[256];
    if (gzip_decompress(data, size, &out, &n, err, sizeof err)) dq_free(out);
    return 0;
}
