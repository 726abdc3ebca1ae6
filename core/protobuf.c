/* protobuf.c — the wire format (see protobuf.h). */
#include "protobuf.h"

#include <string.h>

#include "error.h"

void pb_init(Pb *p) { memset(p, 0, sizeof *p); }

void pb_free(Pb *p) {
    dq_free(p->b);
    pb_init(p);
}

static void grow(Pb *p, size_t more) {
    if (p->len + more <= p->cap) return;
    size_t cap = p->cap ? p->cap : 256;
    while (cap < p->len + more) cap *= 2;
    p->b = dq_realloc(p->b, cap);
    p->cap = cap;
}

static int varint_size(uint64_t v) {
    int n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

static void put_varint(uint8_t *d, uint64_t v) {
    while (v >= 0x80) *d++ = (uint8_t)(v | 0x80), v >>= 7;
    *d = (uint8_t)v;
}

static void varint(Pb *p, uint64_t v) {
    grow(p, 10);
    put_varint(p->b + p->len, v);
    p->len += (size_t)varint_size(v);
}

static void raw(Pb *p, const void *data, size_t n) {
    grow(p, n);
    if (n) memcpy(p->b + p->len, data, n);
    p->len += n;
}

void pb_int(Pb *p, int field, int64_t v) {
    varint(p, (uint64_t)field << 3 | 0);
    varint(p, (uint64_t)v);
}

void pb_float(Pb *p, int field, float v) {
    varint(p, (uint64_t)field << 3 | 5);
    uint8_t le[4];
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++) le[i] = (uint8_t)(u >> (8 * i));
    raw(p, le, 4);
}

void pb_bytes(Pb *p, int field, const void *data, size_t n) {
    varint(p, (uint64_t)field << 3 | 2);
    varint(p, n);
    raw(p, data, n);
}

void pb_string(Pb *p, int field, const char *s) { pb_bytes(p, field, s, strlen(s)); }

void pb_packed_int(Pb *p, int field, const int64_t *v, int n) {
    size_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += (size_t)varint_size((uint64_t)v[i]);
    varint(p, (uint64_t)field << 3 | 2);
    varint(p, bytes);
    for (int i = 0; i < n; i++) varint(p, (uint64_t)v[i]);
}

void pb_append(Pb *p, const Pb *fields) { raw(p, fields->b, fields->len); }

void pb_begin(Pb *p, int field) {
    if (p->depth == (int)(sizeof p->open / sizeof p->open[0])) DQ_FATAL("protobuf: messages nested too deep");
    varint(p, (uint64_t)field << 3 | 2);
    p->open[p->depth++] = p->len;
}

void pb_end(Pb *p) {
    if (p->depth == 0) DQ_FATAL("protobuf: pb_end without pb_begin");
    size_t start = p->open[--p->depth], n = p->len - start;
    int k = varint_size(n);
    grow(p, (size_t)k);
    memmove(p->b + start + k, p->b + start, n);
    put_varint(p->b + start, n);
    p->len += (size_t)k;
}

static bool get_varint(const uint8_t **at, const uint8_t *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *at < end; shift += 7) {
        uint8_t byte = *(*at)++;
        r |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

bool pb_next(const uint8_t **at, const uint8_t *end, PbField *f, bool *bad) {
    if (*at >= end) return false;
    uint64_t key;
    memset(f, 0, sizeof *f);
    if (!get_varint(at, end, &key) || key >> 3 == 0 || key >> 3 > 0x1FFFFFFF) goto damaged;
    f->field = (int)(key >> 3), f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0:
        if (!get_varint(at, end, &f->v)) goto damaged;
        return true;
    case 1:
        if (end - *at < 8) goto damaged;
        *at += 8;
        return true;
    case 2:
        if (!get_varint(at, end, &f->v) || f->v > (uint64_t)(end - *at)) goto damaged;
        f->data = *at, f->len = (size_t)f->v;
        *at += f->len;
        return true;
    case 5:
        if (end - *at < 4) goto damaged;
        for (int i = 0; i < 4; i++) f->v |= (uint64_t)(*at)[i] << (8 * i);
        *at += 4;
        return true;
    default: goto damaged;
    }
damaged:
    *bad = true;
    return false;
}
