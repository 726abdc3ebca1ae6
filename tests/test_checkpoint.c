/* test_checkpoint.c — round trip, corruption and truncation detection, shape mismatch named,
 * atomic replacement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fileio.h"
#include "helpers.h"
#include "train/checkpoint.h"

static char path[64];

static void setup(void) {
    test_setup_quiet();
    snprintf(path, sizeof path, "/tmp/ddqc_ckpt_%d.bin", (int)getpid());
}

static void teardown(void) {
    unlink(path);
    test_teardown();
}

static void make_slab(ParamSlab *s, int width) {
    slab_init(s);
    slab_add(s, "conv.weight", 4, (const int[]){3, 3, 2, width}, 0);
    slab_add(s, "bn.running_mean", 1, (const int[]){width}, PARAM_BUFFER);
    slab_finalize(s);
}

Test(checkpoint, round_trip, .init = setup, .fini = teardown) {
    ParamSlab a, b;
    make_slab(&a, 4);
    make_slab(&b, 4);
    rng_fill_normal(&R, a.data, a.numel, 0, 1);
    Checkpoint c;
    ckpt_init(&c);
    ckpt_add_slab(&c, &a);
    double extra[3] = {1.5, 2.5, 3.5};
    ckpt_add(&c, "XTRA", extra, sizeof extra);
    ckpt_save(&c, path);
    ckpt_free(&c);
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert(!fileio_exists(tmp), "the temporary file is renamed away");
    cr_assert(ckpt_load(&c, path));
    ckpt_read_slab(&c, &b);
    assert_bits_equal(b.data, a.data, a.numel, "parameters");
    const CkptSection *x = ckpt_require(&c, "XTRA", sizeof extra);
    cr_assert(memcmp(x->data, extra, sizeof extra) == 0);
    cr_assert_null(ckpt_find(&c, "NONE"));
    ckpt_free(&c);
    cr_assert(!ckpt_load(&c, "/tmp/ddqc_no_such_checkpoint.bin"), "a missing file is not an error");
    slab_free(&a);
    slab_free(&b);
}

static void save_slab(int width) {
    ParamSlab s;
    make_slab(&s, width);
    Checkpoint c;
    ckpt_init(&c);
    ckpt_add_slab(&c, &s);
    ckpt_save(&c, path);
    ckpt_free(&c);
    slab_free(&s);
}

static void load_into_width4(void *ctx) {
    ParamSlab s;
    make_slab(&s, 4);
    Checkpoint c;
    ckpt_load(&c, path);
    ckpt_read_slab(&c, &s);
}

static void damage(long offset, int truncate_to) {
    if (truncate_to >= 0) {
        cr_assert_eq(truncate(path, truncate_to), 0);
        return;
    }
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
}

Test(checkpoint, rejects_damage_and_mismatch, .init = setup, .fini = teardown) {
    save_slab(5);
    const char *m = expect_fatal(load_into_width4, NULL);
    cr_assert(strstr(m, "parameter 0 is 'conv.weight' (3, 3, 2, 5) in the file but 'conv.weight' (3, 3, 2, 4) in the model") != NULL, "got: %s", m);
    save_slab(4);
    damage(100, -1);
    m = expect_fatal(load_into_width4, NULL);
    cr_assert(strstr(m, "checksum mismatch") != NULL, "got: %s", m);
    save_slab(4);
    damage(0, 50);
    m = expect_fatal(load_into_width4, NULL);
    cr_assert(strstr(m, ": error: ") != NULL && strstr(m, path) != NULL, "got: %s", m);
    save_slab(4);
    damage(0, 10);
    m = expect_fatal(load_into_width4, NULL);
    cr_assert(strstr(m, "not a checkpoint") != NULL, "got: %s", m);
}
