/* idx.h — the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).
 *
 *     bytes 0-1  zero          byte 2  element type (0x08 = unsigned byte; the only one used)
 *     byte 3     number of dimensions d           then d big-endian uint32 sizes, then the data
 * Files may be gzip-compressed (as distributed) or plain; the reader decides by the magic bytes.
 */
#ifndef DQ_IDX_H
#define DQ_IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct IdxArray {
    int ndim;          // 1 (labels) or 3 (images)
    uint32_t dims[3];
    uint8_t *data;     // points into `owner`
    uint8_t *owner;    // the decoded file (dq_free)
} IdxArray;

/* Parse decoded bytes (takes ownership of buf on success). False + reason on a bad file. */
bool idx_parse(uint8_t *buf, size_t n, int want_ndim, IdxArray *out, char *err, size_t err_size);
/* A file's bytes as read (gzip-compressed or plain): gunzip if needed, then parse. Copies what it
 * keeps; false + reason ("corrupt gzip: …", "truncated: …") on a bad file. The fuzzers call this. */
bool idx_decode(const uint8_t *raw, size_t n, int want_ndim, IdxArray *out, char *err, size_t err_size);
/* Read, decode; fatal "<path>: error: …" on any problem. */
void idx_load(const char *path, int want_ndim, IdxArray *out);
void idx_free(IdxArray *a);

#endif
