/* test_inflate.c — the gzip/DEFLATE decoder against files made by the gzip program (stored,
 * fixed and dynamic blocks, several members), and corrupt or truncated input rejected with a
 * reason, never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
