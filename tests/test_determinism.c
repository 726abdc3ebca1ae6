/* test_determinism.c — a small convolutional network trained for a few SGD steps twice with the
 * same seed and thread count gives bit-identical losses and parameters; and the fast kernels
 * agree with the reference kernels on the whole network. */
#include <string.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/slab.h"
#include "core/threads.h"
#include "helpers.h"

typedef struct Net {
    ParamSlab slab;
    Tensor *w1, *g1, *b1, *wd, *w2, *fc, *fcb;
    float rm[8], rv[8];
} Net;

static void net_init(Net *n, uint64_t seed) {
    memset(n, 0, sizeof *n);
    slab_init(&n->slab);
    n->w1 = slab_add(&n->slab, "w1", 4, (const int[]){3, 3, 3, 8}, 0);
    n->g1 = slab_add(&n->slab, "g1", 1, (const int[]){8}, PARAM_NO_DECAY);
    n->b1 = slab_add(&n->slab, "b1", 1, (const int[]){8}, PARAM_NO_DECAY);
    n->wd = slab_add(&n->slab, "wd", 4, (const int[]){3, 3, 1, 8}, 0);
    n->w2 = slab_add(&n->slab, "w2", 4, (const int[]){1, 1, 8, 8}, 0);
    n->fc = slab_add(&n->slab, "fc", 2, (const int[]){8, 10}, 0);
    n->fcb = slab_add(&n->slab, "fcb", 1, (const int[]){10}, PARAM_NO_DECAY);
    slab_finalize(&n->slab);
    Rng r;
    rng_seed(&r, seed, 0);
    rng_fill_normal(&r, n->slab.data, n->slab.numel, 0, 0.3f);
    for (int c = 0; c < 8; c++) n->g1->data[c] = 1, n->b1->data[c] = 0, n->rv[c] = 1;
}

static Tensor *net_forward(Net *n, Tape *t, Tensor *x, Rng *drop) {
    Tensor *h = op_conv2d(t, x, n->w1, NULL, (Conv2dArgs){.stride = 1, .pad = 1, .groups = 1});
    h = op_relu6(t, op_batchnorm(t, h, n->g1, n->b1, (BatchNormArgs){.running_mean = n->rm, .running_var = n->rv,
                                                                     .momentum = 0.1f, .eps = 1e-5f}));
    Tensor *d = op_relu(t, op_conv2d(t, h, n->wd, NULL, (Conv2dArgs){.stride = 2, .pad = 1, .groups = 8}));
    h = op_add(t, op_conv2d(t, d, n->w2, NULL, (Conv2dArgs){.stride = 1, .pad = 0, .groups = 1}), d);
    h = op_maxpool2d(t, h, (Pool2dArgs){.kernel = 2, .stride = 2, .pad = 0});
    h = op_dropout(t, op_flatten(t, op_global_avgpool(t, h)), 0.1f, drop);
    return op_linear(t, h, n->fc, n->fcb);
}

/* Five SGD steps on fixed random data; returns the last loss, leaves parameters in n. */
static float train(Net *n, int threads, bool ref) {
    threads_init(threads);
    Arena a;
    arena_init(&a, 1 << 16, 0);
    Tape t;
    tape_init(&t, &a);
    t.ref_kernels = ref;
    Rng data, drop;
    rng_seed(&data, 11, 0);
    rng_seed(&drop, 12, 0);
    float loss = 0;
    for (int step = 0; step < 5; step++) {
        tape_reset(&t);
        Tensor *x = tensor_new4(&a, 6, 8, 8, 3);
        rng_fill_uniform(&data, x->data, x->numel, -1, 1);
        int labels[6];
        for (int i = 0; i < 6; i++) labels[i] = (int)rng_below(&data, 10);
        slab_zero_grad(&n->slab);
        Tensor *L = op_softmax_cross_entropy(&t, net_forward(n, &t, x, &drop), labels, 0.1f);
        tape_backward(&t, L);
        for (size_t i = 0; i < n->slab.numel; i++) n->slab.data[i] -= 0.1f * n->slab.grad[i];
        loss = L->data[0];
    }
    arena_free(&a);
    threads_shutdown();
    return loss;
}

static void same_bits(int threads) {
    Net a, b;
    net_init(&a, 5);
    net_init(&b, 5);
    float la = train(&a, threads, false), lb = train(&b, threads, false);
    cr_assert(memcmp(&la, &lb, sizeof la) == 0, "losses %.9g vs %.9g", la, lb);
    assert_bits_equal(a.slab.data, b.slab.data, a.slab.numel, "parameters after 5 steps");
    assert_bits_equal(a.rm, b.rm, 8, "running means");
    slab_free(&a.slab);
    slab_free(&b.slab);
}

Test(determinism, one_thread_twice) { same_bits(1); }
Test(determinism, two_threads_twice) { same_bits(2); }
Test(determinism, three_threads_twice) { same_bits(3); }

Test(determinism, fast_kernels_match_reference_on_a_network) {
    Net a, b;
    net_init(&a, 9);
    net_init(&b, 9);
    train(&a, 2, false);
    train(&b, 1, true);
    assert_close(a.slab.data, b.slab.data, a.slab.numel, 1e-3, 1e-4, "parameters, fast vs reference");
    slab_free(&a.slab);
    slab_free(&b.slab);
}
