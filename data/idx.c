/* idx.c — IDX parsing with every header field and size checked. */
#include "idx.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/fileio.h"
#include "inflate.h"

bool idx_parse(uint8_t *buf, size_t n, int want_ndim, IdxArray *out, char *err, size_t err_size) {
    if (n < 4) {
        snprintf(err, err_size, "truncated IDX header (%zu bytes)", n);
        return false;
    }
    if (buf[0] != 0 || buf[1] != 0) {
        snprintf(err, err_size, "not an IDX file (magic %02x %02x %02x %02x)", buf[0], buf[1], buf[2], buf[3]);
        return false;
    }
    if (buf[2] != 0x08) {
        snprintf(err, err_size, "IDX element type 0x%02x, expected 0x08 (unsigned byte)", buf[2]);
        return false;
    }
    int ndim = buf[3];
    if (ndim != want_ndim) {
        snprintf(err, err_size, "IDX file has %d dimensions, expected %d (%s)", ndim, want_ndim,
                 want_ndim == 1 ? "labels" : "images");
        return false;
    }
    if (n < 4 + 4 * (size_t)ndim) {
        snprintf(err, err_size, "truncated IDX header");
        return false;
    }
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = buf + 4 + 4 * i;
        out->dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (out->dims[i] == 0 || out->dims[i] > (1u << 28)) {
            snprintf(err, err_size, "IDX dimension %d has size %u", i, out->dims[i]);
            return false;
        }
        total *= out->dims[i];
        if (total > ((size_t)1 << 34)) {
            snprintf(err, err_size, "IDX sizes overflow");
            return false;
        }
    }
    size_t header = 4 + 4 * (size_t)ndim;
    if (n - header != total) {
        snprintf(err, err_size, "%s: header promises %zu data bytes, file has %zu",
                 n - header < total ? "truncated" : "trailing bytes", total, n - header);
        return false;
    }
    out->ndim = ndim;
    out->owner = buf;
    out->data = buf + header;
    return true;
}

bool idx_decode(const uint8_t *raw, size_t n, int want_ndim, IdxArray *out, char *err, size_t err_size) {
    uint8_t *buf;
    size_t len;
    if (gzip_is_gzip(raw, n)) {
        char why[224];
        if (!gzip_decompress(raw, n, &buf, &len, why, sizeof why)) {
            snprintf(err, err_size, "corrupt gzip: %s", why);
            return false;
        }
    } else {
        buf = dq_malloc(n), len = n;
        memcpy(buf, raw, n);
    }
    if (idx_parse(buf, len, want_ndim, out, err, err_size)) return true;
    dq_free(buf);
    return false;
}

void idx_load(const char *path, int want_ndim, IdxArray *out) {
    char err[256];
    size_t n;
    uint8_t *raw = fileio_read_all(path, &n, err, sizeof err);
    if (!raw) DQ_FATAL_FILE(path, "%s", err);
    bool ok = idx_decode(raw, n, want_ndim, out, err, sizeof err);
    dq_free(raw);
    if (!ok) DQ_FATAL_FILE(path, "%s", err);
}

void idx_free(IdxArray *a) {
    if (!a) return;
    dq_free(a->owner);
    memset(a, 0, sizeof *a);
}
