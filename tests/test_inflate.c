/* test_inflate.c — the gzip/DEFLATE decoder against files made by the gzip program (stored,
 * fixed and dynamic blocks, several members), and corrupt or truncated input rejected with a
 * reason, never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/checksum.h"
#include "core/error.h"
#include "core/fileio.h"
#include "data/inflate.h"
#include "helpers.h"

/* Compress buf with the system's gzip at `level`; returns the .gz bytes. */
static uint8_t *gzip_with_tool(const uint8_t *buf, size_t n, int level, size_t *gz_n) {
    char raw[] = "/tmp/ddqc_inflate_XXXXXX";
    int fd = mkstemp(raw);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
    char cmd[256], gz[300], err[128];
    snprintf(cmd, sizeof cmd, "gzip -%d -n -f %s", level, raw);
    cr_assert_eq(system(cmd), 0, "gzip must be installed to run this test");
    snprintf(gz, sizeof gz, "%s.gz", raw);
    uint8_t *out = fileio_read_all(gz, gz_n, err, sizeof err);
    cr_assert_not_null(out, "%s", err);
    unlink(gz);
    return out;
}

static void round_trip(const uint8_t *buf, size_t n, int level, const char *what) {
    size_t gz_n, out_n;
    uint8_t *gz = gzip_with_tool(buf, n, level, &gz_n), *out;
    char err[128];
    cr_assert(gzip_is_gzip(gz, gz_n));
    cr_assert(gzip_decompress(gz, gz_n, &out, &out_n, err, sizeof err), "%s: %s", what, err);
    cr_assert_eq(out_n, n, "%s: %zu bytes back, %zu in", what, out_n, n);
    cr_assert(memcmp(out, buf, n) == 0, "%s: content differs", what);
    dq_free(out);
    dq_free(gz);
}

static uint8_t *sample(size_t n, int kind) {
    uint8_t *b = dq_malloc(n);
    Rng r;
    rng_seed(&r, (uint64_t)kind, 0);
    const char *words[] = {"quantization ", "gradient ", "bitwidth ", "level ", "of ", "the "};
    size_t i = 0;
    while (i < n) {
        if (kind == 0) b[i++] = (uint8_t)rng_u32(&r);  // incompressible: stored blocks
        else {
            const char *w = words[rng_below(&r, 6)];
            for (size_t k = 0; w[k] && i < n; k++) b[i++] = (uint8_t)w[k];
        }
    }
    return b;
}

Test(inflate, round_trips_files_made_by_gzip) {
    size_t sizes[] = {1, 10, 1000, 70000, 300000};
    for (size_t s = 0; s < 5; s++)
        for (int kind = 0; kind < 2; kind++) {
            uint8_t *b = sample(sizes[s], kind);
            char what[64];
            snprintf(what, sizeof what, "%zu bytes, %s, level 9", sizes[s], kind ? "text" : "random");
            round_trip(b, sizes[s], 9, what);
            snprintf(what, sizeof what, "%zu bytes, %s, level 1", sizes[s], kind ? "text" : "random");
            round_trip(b, sizes[s], 1, what);
            dq_free(b);
        }
}

Test(inflate, empty_input_and_long_runs) {
    uint8_t zeros[100000] = {0};
    round_trip(zeros, sizeof zeros, 6, "100000 zeros (long matches)");
    size_t gz_n, out_n = 99;
    uint8_t *gz = gzip_with_tool(zeros, 0, 6, &gz_n), *out = NULL;
    char err[128];
    cr_assert(gzip_decompress(gz, gz_n, &out, &out_n, err, sizeof err), "%s", err);
    cr_assert_eq(out_n, 0);
    dq_free(out);
    dq_free(gz);
}

Test(inflate, concatenated_members) {
    uint8_t *a = sample(5000, 1), *b = sample(7000, 2);
    size_t na, nb, out_n;
    uint8_t *ga = gzip_with_tool(a, 5000, 6, &na), *gb = gzip_with_tool(b, 7000, 6, &nb);
    uint8_t *both = dq_malloc(na + nb), *out;
    memcpy(both, ga, na);
    memcpy(both + na, gb, nb);
    char err[128];
    cr_assert(gzip_decompress(both, na + nb, &out, &out_n, err, sizeof err), "%s", err);
    cr_assert_eq(out_n, 12000);
    cr_assert(memcmp(out, a, 5000) == 0 && memcmp(out + 5000, b, 7000) == 0);
    dq_free(a), dq_free(b), dq_free(ga), dq_free(gb), dq_free(both), dq_free(out);
}

Test(inflate, corrupt_and_truncated_input_is_rejected) {
    uint8_t *b = sample(20000, 1);
    size_t n;
    uint8_t *gz = gzip_with_tool(b, 20000, 9, &n), *out = NULL;
    char err[128];
    size_t out_n;
    Rng r;
    rng_seed(&r, 3, 0);
    int rejected = 0;
    for (int trial = 0; trial < 200; trial++) {
        uint8_t *bad = dq_malloc(n);
        memcpy(bad, gz, n);
        size_t len = n;
        if (trial % 2) len = rng_below(&r, (uint32_t)n);  // truncate
        else bad[10 + rng_below(&r, (uint32_t)(n - 10))] ^= (uint8_t)(1u << rng_below(&r, 8));
        bool ok = gzip_decompress(bad, len, &out, &out_n, err, sizeof err);
        if (!ok) {
            rejected++;
            cr_assert(strlen(err) > 0, "a reason is given");
        } else {
            dq_free(out);
        }
        dq_free(bad);
    }
    cr_assert_eq(rejected, 200, "every damaged file is rejected (CRC-32 catches the rest)");
    cr_assert(!gzip_decompress((const uint8_t *)"hello world, not gzip", 21, &out, &out_n, err, sizeof err));
    cr_assert(strstr(err, "not a gzip file") != NULL, "got: %s", err);
    dq_free(gz);
    dq_free(b);
}

Test(checksum, crc32_known_value) {
    cr_assert_eq(crc32_update(0, "123456789", 9), 0xCBF43926u);
    uint32_t c = crc32_update(0, "1234", 4);
    cr_assert_eq(crc32_update(c, "56789", 5), 0xCBF43926u, "incremental update");
}

/* ------------------------------------------------------------------ hand-made members */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Bits LSB-first into bytes, as DEFLATE stores them; Huffman codes go MSB-first (put_code). */
typedef struct Bits {
    uint8_t b[64];
    int n;  // bits written
} Bits;

static void put_bits(Bits *w, unsigned v, int k) {
    for (int i = 0; i < k; i++, w->n++)
        if (v >> i & 1) w->b[w->n / 8] |= (uint8_t)(1u << (w->n % 8));
}

static void put_code(Bits *w, unsigned code, int len) {
    for (int i = len - 1; i >= 0; i--) put_bits(w, code >> i & 1, 1);
}

static void le32_put(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

/* A gzip member around a raw deflate body, with the trailer of `data` (n bytes). */
static size_t member(uint8_t *out, const uint8_t *body, size_t body_n, const uint8_t *data, size_t n, int flags) {
    static const uint8_t head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t p = 10;
    memcpy(out, head, 10);
    out[3] = (uint8_t)flags;
    if (flags & 2) {
        uint32_t c = crc32_update(0, out, 10);
        out[p++] = (uint8_t)c, out[p++] = (uint8_t)(c >> 8);
    }
    memcpy(out + p, body, body_n);
    p += body_n;
    le32_put(out + p, crc32_update(0, data, n));
    le32_put(out + p + 4, (uint32_t)n);
    return p + 8;
}

/* Fixed-Huffman block: literal bytes, then (optionally) a match of length 3 at distance 1. */
static size_t fixed_block(uint8_t *out, const uint8_t *lits, int n_lits, bool match) {
    Bits w = {{0}, 0};
    put_bits(&w, 1, 1);  // BFINAL
    put_bits(&w, 1, 2);  // fixed codes
    for (int i = 0; i < n_lits; i++) put_code(&w, 0x30 + lits[i], 8);  // literals 0..143: 8 bits from 0x30
    if (match) {
        put_code(&w, 1, 7);  // symbol 257: length 3
        put_code(&w, 0, 5);  // distance code 0: distance 1
    }
    put_code(&w, 0, 7);      // end of block
    memcpy(out, w.b, (size_t)(w.n + 7) / 8);
    return (size_t)(w.n + 7) / 8;
}

Test(inflate, hand_made_members_decode) {
    uint8_t body[64], gz[128], *out;
    size_t out_n;
    char err[128];
    const uint8_t ab[2] = {'a', 'b'}, want[5] = {'a', 'b', 'b', 'b', 'b'};
    size_t bn = fixed_block(body, ab, 2, true), n = member(gz, body, bn, want, 5, 0);
    cr_assert(gzip_decompress(gz, n, &out, &out_n, err, sizeof err), "%s", err);
    cr_assert(out_n == 5 && memcmp(out, want, 5) == 0, "ab + match(3, 1) = abbbb");
    dq_free(out);
    n = member(gz, body, bn, want, 5, 2);  // with a correct header CRC
    cr_assert(gzip_decompress(gz, n, &out, &out_n, err, sizeof err), "%s", err);
    dq_free(out);
}

Test(inflate, a_member_cannot_reach_into_the_previous_one) {
    // Member 1 decodes to "ab"; member 2 is only a match at distance 1. zlib rejects this (each
    // member is its own stream); the decoder once let it copy member 1's last byte.
    uint8_t body[64], gz[256], *out = NULL;
    const uint8_t ab[2] = {'a', 'b'}, bbb[3] = {'b', 'b', 'b'};
    size_t n = member(gz, body, fixed_block(body, ab, 2, false), ab, 2, 0);
    n += member(gz + n, body, fixed_block(body, NULL, 0, true), bbb, 3, 0);
    size_t out_n;
    char err[128];
    cr_assert(!gzip_decompress(gz, n, &out, &out_n, err, sizeof err), "a back-reference across members is refused");
    cr_assert(strstr(err, "before the start of the output") != NULL, "got: %s", err);
}

Test(inflate, the_header_crc_is_checked) {
    uint8_t body[64], gz[128], *out = NULL;
    const uint8_t ab[2] = {'a', 'b'};
    size_t n = member(gz, body, fixed_block(body, ab, 2, false), ab, 2, 2), out_n;
    gz[4] ^= 1;  // MTIME changes after the header CRC was computed
    char err[128];
    cr_assert(!gzip_decompress(gz, n, &out, &out_n, err, sizeof err));
    cr_assert(strstr(err, "header CRC mismatch") != NULL, "got: %s", err);
}

Test(inflate, a_tiny_file_cannot_reserve_gigabytes) {
    // 20 bytes whose trailer claims ISIZE = 2 GiB: the decoder once allocated that much before any
    // check. Under a 512 MiB address-space limit (not under ASan, which reserves terabytes of
    // shadow) such an allocation dies with "out of memory"; the file must be called corrupt.
#if !defined(UNDER_ASAN)
    struct rlimit lim = {.rlim_cur = (rlim_t)512 << 20, .rlim_max = (rlim_t)512 << 20};
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
#endif
    uint8_t gz[20] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x03, 0x00, 0, 0, 0, 0};
    le32_put(gz + 16, 0x80000000u);
    uint8_t *out = NULL;
    size_t out_n;
    char err[128];
    cr_assert(!gzip_decompress(gz, sizeof gz, &out, &out_n, err, sizeof err));
    cr_assert(strstr(err, "mismatch") != NULL || strstr(err, "truncated") != NULL, "got: %s", err);
}
