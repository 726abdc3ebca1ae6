/* fuzz_intmodel.c — the integer model reader (.dqm) as the integer engine's users meet it: parse,
 * and when a file is accepted, run it on one image (a crafted shape, threshold or table must not
 * send a kernel outside a buffer). The CRC is recomputed over the fuzzer's bytes first, so the
 * mutations reach the structure instead of dying at the checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"
#include "quant/intmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *file = dq_malloc(size ? size : 1);
    memcpy(file, data, size);
    if (size >= 16) {  // a valid CRC over whatever came before it
        uint32_t crc = crc32_update(0, file, size - 4);
        for (int i = 0; i < 4; i++) file[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    IntModel im;
    char err[512];
    if (intmodel_parse(&im, file, size, err, sizeof err)) {
        size_t elems = 0;  // run only what one image can afford (the file may ask for 2^24 per tensor)
        for (int t = 0; t < im.n_tensors; t++) elems += (size_t)im.tensors[t].h * im.tensors[t].w * im.tensors[t].c;
        if (elems <= (1u << 20)) {
            size_t n_in = (size_t)im.in_h * im.in_w * im.in_c;
            float *x = dq_malloc(n_in * sizeof(float)), *logits = dq_malloc((size_t)im.num_classes * sizeof(float));
            for (size_t i = 0; i < n_in; i++) x[i] = (float)(i % 7) / 3 - 1;
            intmodel_forward(&im, x, 1, logits, false);
            intmodel_forward(&im, x, 1, logits, true);
            dq_free(x), dq_free(logits);
        }
        intmodel_free(&im);
    }
    dq_free(file);
    return 0;
}
