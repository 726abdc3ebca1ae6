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
#include "train/run_state.h"

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

/* A PARM section whose table says (2^16, 2^16, 2^16, 2^16): the CRC is valid, the sizes are not.
 * It was refused by the allocator with "size overflow" and no file name. */
static void load_overflowing_dims(void *ctx) {
    uint32_t t[10] = {1, 1, 'w', 4, 1u << 16, 1u << 16, 1u << 16, 1u << 16, 0, 0};
    uint8_t parm[41];
    memcpy(parm, t, 12);
    parm[8] = 'w';
    memcpy(parm + 9, t + 3, 20);
    memset(parm + 29, 0, 12);
    Checkpoint c;
    ckpt_init(&c);
    ckpt_add(&c, "PARM", parm, sizeof parm);
    ckpt_save(&c, path);
    ckpt_free(&c);
    ParamSlab s;
    make_slab(&s, 4);
    cr_assert(ckpt_load(&c, path));
    ckpt_read_slab_by_name(&c, &s);
}

Test(checkpoint, overflowing_dimensions_are_refused_naming_the_file, .init = setup, .fini = teardown) {
    const char *m = expect_fatal(load_overflowing_dims, NULL);
    cr_assert(strstr(m, path) != NULL && (strstr(m, "2^40") || strstr(m, "dimension")), "got: %s", m);
}

/* The trainer's sections, crafted with a valid CRC: an epoch number that is not an int, a
 * position past its epoch, a velocity of the wrong size. Each is refused with a reason. */
Test(checkpoint, crafted_run_states_are_refused, .init = setup, .fini = teardown) {
    EpochLog h[2] = {
        {.epoch = 1, .train_acc = 0.5, .test_acc = 0.5},
        {.epoch = 2, .train_acc = 0.5, .test_acc = 0.5},
    };
    RunState good = {.epoch = 2, .batch = 0, .batches = 10, .seed = 3, .history = h};
    rng_seed(&good.dropout, 1, 2);
    float velo[4] = {0};
    struct {
        double epoch1;       // history row 1's epoch field
        int batch;
        long long seen;
        size_t velo_floats;
        const char *expect;
    } cases[] = {
        {.epoch1 = -2147483649.0, .velo_floats = 4, .expect = "history row 2 is malformed"},
        {.epoch1 = 2, .batch = 11, .velo_floats = 4, .expect = "batch 11 of 10"},
        {.epoch1 = 2, .seen = 7, .velo_floats = 4, .expect = "7 seen after 0 batches"},
        {.epoch1 = 2, .velo_floats = 3, .expect = "VELO"},
        {.epoch1 = 2, .velo_floats = 4, .expect = NULL},  // the state as written
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        RunState s = good;
        h[1].epoch = 2;
        s.batch = cases[k].batch, s.seen = cases[k].seen;
        Checkpoint c;
        ckpt_init(&c);
        run_state_save(&c, &s, "lr=0.1\n", velo, cases[k].velo_floats);
        if (cases[k].epoch1 != 2) {  // rewrite the HIST row's epoch field in place
            CkptSection *hs = (CkptSection *)(uintptr_t)ckpt_find(&c, "HIST");
            memcpy(hs->owned + 8 * sizeof(double), &cases[k].epoch1, sizeof(double));
        }
        ckpt_save(&c, path);
        ckpt_free(&c);
        cr_assert(ckpt_load(&c, path));
        RunState got;
        char err[256] = "";
        bool ok = run_state_parse(&c, 4, &got, err, sizeof err);
        if (cases[k].expect) cr_assert(!ok && strstr(err, cases[k].expect) != NULL, "case %zu: got '%s'", k, err);
        else {
            cr_assert(ok, "the state as written: %s", err);
            cr_assert(got.epoch == 2 && got.history[1].epoch == 2 && !strncmp(got.identity, "lr=0.1\n", got.identity_len));
            run_state_free(&got);
        }
        ckpt_free(&c);
    }
}
