/* fuzz_inflate.c — raw DEFLATE (no container, no CRC to get past): every block type, code
 * lengths, lengths and distances. */
#include <stdint.h>
#include <stdlib.h>

#include "core/error.h"
#include "data/inflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *out = NULL;
    size_t len = 0, cap = 0, used;
    char err[256];
    inflate_raw(data, size, &used, &out, &len, &cap, err, sizeof err);
    if (used > size) abort();  // never claims more input than it had
    dq_free(out);
    return 0;
}
