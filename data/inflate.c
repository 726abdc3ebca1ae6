/* inflate.c — a compact DEFLATE decoder and the gzip container around it.
 *
 * Bits are read least-significant first from a 64-bit buffer. A Huffman code is built from its
 * code lengths in canonical order (RFC 1951 §3.2.2): count[len] codes of each length, symbols
 * sorted by (length, value). Codes up to FAST_BITS long resolve through a table indexed by the
 * next FAST_BITS input bits (bit-reversed, as deflate stores codes MSB-first); longer ones walk
 * the canonical code one bit at a time.
 */
#include "inflate.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "core/checksum.h"
#include "core/error.h"

#define MAX_BITS 15
#define FAST_BITS 10
#define MAX_LIT 288   // literal/length symbols
#define MAX_DIST 32   // distance symbols

typedef struct Huffman {
    short count[MAX_BITS + 1];   // codes of each length
    short symbol[MAX_LIT];       // symbols in canonical order
    uint16_t fast[1 << FAST_BITS];  // (length << 9) | symbol; 0 = not in the table
} Huffman;

typedef struct Inflater {
    const uint8_t *in;
    size_t n, pos;      // input and read position (bytes)
    uint64_t bits;      // bit buffer
    int nbits;          // valid bits in it
    uint8_t *out;       // growing output
    size_t len, cap;
    size_t start;       // where this stream's output begins: back-references stop there
    jmp_buf fail;       // errors longjmp here with msg filled
    char *msg;
    size_t msg_size;
} Inflater;

static DQ_NORETURN void fail(Inflater *s, const char *fmt, ...) DQ_PRINTF(2, 3);
static void fail(Inflater *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, s->msg_size, fmt, ap);
    va_end(ap);
    longjmp(s->fail, 1);
}

static void refill(Inflater *s) {
    while (s->nbits <= 56 && s->pos < s->n) {
        s->bits |= (uint64_t)s->in[s->pos++] << s->nbits;
        s->nbits += 8;
    }
}

static unsigned getbits(Inflater *s, int k) {
    if (s->nbits < k) {
        refill(s);
        if (s->nbits < k) fail(s, "truncated deflate stream");
    }
    unsigned v = (unsigned)(s->bits & ((1u << k) - 1));
    s->bits >>= k;
    s->nbits -= k;
    return v;
}

/* Build h from lengths[0..n). Over-subscribed codes are errors; incomplete codes are allowed
 * (RFC 1951 permits a single distance code), an unused bit pattern is an error when decoded. */
static void build(Inflater *s, Huffman *h, const uint8_t *lengths, int n) {
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (int i = 0; i < n; i++) h->count[lengths[i]]++;
    int left = 1;
    for (int len = 1; len <= MAX_BITS; len++) {
        left = left * 2 - h->count[len];
        if (left < 0) fail(s, "over-subscribed Huffman code");
    }
    short offs[MAX_BITS + 2];
    offs[1] = 0;
    for (int len = 1; len <= MAX_BITS; len++) offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i]) h->symbol[offs[lengths[i]]++] = (short)i;
    // Fast table: walk codes in canonical order.
    int code = 0, index = 0;
    for (int len = 1; len <= FAST_BITS; len++) {
        for (int k = 0; k < h->count[len]; k++, code++, index++) {
            int rev = 0;
            for (int b = 0; b < len; b++) rev |= ((code >> b) & 1) << (len - 1 - b);
            for (int j = rev; j < (1 << FAST_BITS); j += 1 << len)
                h->fast[j] = (uint16_t)((len << 9) | h->symbol[index]);
        }
        code <<= 1;
    }
}

static int decode(Inflater *s, const Huffman *h) {
    if (s->nbits < FAST_BITS) refill(s);
    uint16_t e = h->fast[s->bits & ((1u << FAST_BITS) - 1)];
    if (e && (e >> 9) <= s->nbits) {
        s->bits >>= e >> 9;
        s->nbits -= e >> 9;
        return e & 511;
    }
    // Canonical decode, one bit at a time (codes longer than FAST_BITS, or the stream's end).
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= MAX_BITS; len++) {
        code |= (int)getbits(s, 1);
        int count = h->count[len];
        if (code - count < first) return h->symbol[index + (code - first)];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    fail(s, "invalid Huffman code");
    return -1;
}

static void put(Inflater *s, uint8_t byte) {
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1 << 16;
        s->out = dq_realloc(s->out, s->cap);
    }
    s->out[s->len++] = byte;
}

static const short len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                   35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                    3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                  193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                  6145, 8193, 12289, 16385, 24577};
static const short dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void codes(Inflater *s, const Huffman *lit, const Huffman *dist) {
    for (;;) {
        int sym = decode(s, lit);
        if (sym < 256) {
            put(s, (uint8_t)sym);
            continue;
        }
        if (sym == 256) return;
        sym -= 257;
        if (sym >= 29) fail(s, "invalid length symbol %d", sym + 257);
        size_t len = (size_t)len_base[sym] + getbits(s, len_extra[sym]);
        int ds = decode(s, dist);
        if (ds >= 30) fail(s, "invalid distance symbol %d", ds);
        size_t d = (size_t)dist_base[ds] + getbits(s, dist_extra[ds]);
        if (d > s->len - s->start) fail(s, "distance %zu reaches before the start of the output", d);
        while (s->cap - s->len < len) {
            s->cap = s->cap ? s->cap * 2 : 1 << 16;
            s->out = dq_realloc(s->out, s->cap);
        }
        uint8_t *dst = s->out + s->len;
        const uint8_t *src = dst - d;
        for (size_t i = 0; i < len; i++) dst[i] = src[i];  // overlapping copies are intended
        s->len += len;
    }
}

static void stored(Inflater *s) {
    s->bits >>= s->nbits & 7;  // to a byte boundary
    s->nbits -= s->nbits & 7;
    unsigned len = getbits(s, 16), nlen = getbits(s, 16);
    if ((len ^ 0xffff) != nlen) fail(s, "stored block length check failed");
    for (unsigned i = 0; i < len; i++) put(s, (uint8_t)getbits(s, 8));
}

static void fixed(Inflater *s, Huffman *lit, Huffman *dist) {
    uint8_t l[MAX_LIT];
    int i = 0;
    for (; i < 144; i++) l[i] = 8;
    for (; i < 256; i++) l[i] = 9;
    for (; i < 280; i++) l[i] = 7;
    for (; i < 288; i++) l[i] = 8;
    build(s, lit, l, 288);
    for (i = 0; i < 30; i++) l[i] = 5;
    build(s, dist, l, 30);
    codes(s, lit, dist);
}

static void dynamic(Inflater *s, Huffman *lit, Huffman *dist) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int nlen = (int)getbits(s, 5) + 257, ndist = (int)getbits(s, 5) + 1, ncode = (int)getbits(s, 4) + 4;
    if (nlen > 286 || ndist > 30) fail(s, "bad code counts %d/%d", nlen, ndist);
    uint8_t l[MAX_LIT + MAX_DIST] = {0};
    for (int i = 0; i < ncode; i++) l[order[i]] = (uint8_t)getbits(s, 3);
    Huffman lencode;
    build(s, &lencode, l, 19);
    int i = 0;
    while (i < nlen + ndist) {
        int sym = decode(s, &lencode), rep = 0;
        uint8_t val = 0;
        if (sym < 16) {
            l[i++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16) {
            if (i == 0) fail(s, "repeat with no previous length");
            val = l[i - 1];
            rep = 3 + (int)getbits(s, 2);
        } else if (sym == 17) rep = 3 + (int)getbits(s, 3);
        else rep = 11 + (int)getbits(s, 7);
        if (i + rep > nlen + ndist) fail(s, "code lengths overrun the table");
        while (rep--) l[i++] = val;
    }
    if (l[256] == 0) fail(s, "no end-of-block code");
    build(s, lit, l, nlen);
    build(s, dist, l + nlen, ndist);
    codes(s, lit, dist);
}

bool inflate_raw(const uint8_t *in, size_t n, size_t *consumed, uint8_t **out, size_t *out_len,
                 size_t *out_cap, char *err, size_t err_size) {
    Inflater s = {.in = in, .n = n, .out = *out, .len = *out_len, .cap = *out_cap, .start = *out_len, .msg = err,
                  .msg_size = err_size};
    Huffman *h = dq_malloc(2 * sizeof *h);  // lit + dist tables: too big for some stacks
    bool ok = false;
    if (setjmp(s.fail) == 0) {
        int last;
        do {
            last = (int)getbits(&s, 1);
            int type = (int)getbits(&s, 2);
            if (type == 0) stored(&s);
            else if (type == 1) fixed(&s, &h[0], &h[1]);
            else if (type == 2) dynamic(&s, &h[0], &h[1]);
            else fail(&s, "invalid block type 3");
        } while (!last);
        ok = true;
    }
    dq_free(h);
    // Unused whole bytes left in the bit buffer go back to the input.
    *consumed = s.pos - (size_t)(s.nbits / 8);
    *out = s.out, *out_len = s.len, *out_cap = s.cap;
    return ok;
}

/* ------------------------------------------------------------------ gzip */
bool gzip_is_gzip(const uint8_t *in, size_t n) { return n >= 2 && in[0] == 0x1f && in[1] == 0x8b; }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* DEFLATE cannot expand its input more than 1032 times (a 258-byte match per 2 bits); real data
 * rarely more than 16 times, and the buffer doubles when it must. */
#define MAX_EXPANSION 1032
#define FIRST_GUESS_EXPANSION 16

bool gzip_decompress(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len, char *err,
                     size_t err_size) {
    // The last member's ISIZE is a good first guess of the size, but only a guess: a few bytes of
    // input may claim 4 GiB. Never reserve more than the input can decode to, nor at first more
    // than real data decodes to (the buffer grows if it must).
    size_t len = 0, pos = 0, cap = n >= 18 ? le32(in + n - 4) : 0;
    if (n < SIZE_MAX / MAX_EXPANSION && cap > n * FIRST_GUESS_EXPANSION) cap = n * FIRST_GUESS_EXPANSION;
    if (cap < 64) cap = 64;
    uint8_t *buf = dq_malloc(cap);  // never NULL, even for an empty member
    do {
        const uint8_t *h = in + pos;
        size_t avail = n - pos;
        if (avail < 18) {
            snprintf(err, err_size, "truncated gzip member (%zu bytes)", avail);
            goto fail;
        }
        if (!gzip_is_gzip(h, avail)) {
            snprintf(err, err_size, "not a gzip file (bad magic bytes at offset %zu)", pos);
            goto fail;
        }
        if (h[2] != 8) {
            snprintf(err, err_size, "unknown gzip compression method %d", h[2]);
            goto fail;
        }
        int flags = h[3];
        if (flags & 0xe0) {
            snprintf(err, err_size, "reserved gzip flags set (0x%02x)", flags);
            goto fail;
        }
        size_t p = 10;
        if (flags & 4) {  // FEXTRA
            if (avail < p + 2 || avail < p + 2 + (size_t)(h[p] | h[p + 1] << 8)) goto trunc;
            p += 2 + (size_t)(h[p] | h[p + 1] << 8);
        }
        for (int f = 8; f <= 16; f <<= 1)  // FNAME, FCOMMENT: zero-terminated
            if (flags & f) {
                while (p < avail && h[p]) p++;
                if (p++ >= avail) goto trunc;
            }
        if (flags & 2) {  // FHCRC: the low 16 bits of the CRC-32 of the header before it
            if (avail < p + 2) goto trunc;
            uint32_t want = (uint32_t)h[p] | (uint32_t)h[p + 1] << 8, got = crc32_update(0, h, p) & 0xffff;
            if (want != got) {
                snprintf(err, err_size, "gzip header CRC mismatch (stored %04x, computed %04x)", want, got);
                goto fail;
            }
            p += 2;
        }
        if (p > avail) goto trunc;
        size_t start = len, used;
        if (!inflate_raw(h + p, avail - p, &used, &buf, &len, &cap, err, err_size)) goto fail;
        p += used;
        if (avail - p < 8) goto trunc;
        uint32_t crc = crc32_update(0, buf + start, len - start);
        if (crc != le32(h + p)) {
            snprintf(err, err_size, "CRC-32 mismatch (stored %08x, computed %08x)", le32(h + p), crc);
            goto fail;
        }
        if ((uint32_t)(len - start) != le32(h + p + 4)) {
            snprintf(err, err_size, "length mismatch (stored %u, decoded %zu)", le32(h + p + 4), len - start);
            goto fail;
        }
        pos += p + 8;
        while (pos < n && in[pos] == 0) pos++;  // some tools pad with zeros
    } while (pos < n);
    *out = buf;
    *out_len = len;
    return true;
trunc:
    snprintf(err, err_size, "truncated gzip header or trailer");
fail:
    dq_free(buf);
    return false;
}
