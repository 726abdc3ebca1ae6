/* test_tensor.c — tensors, the arena and the parameter slab. */
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/slab.h"
#include "helpers.h"

Test(tensor, shapes_and_views, .init = test_setup, .fini = test_teardown) {
    Tensor *t = tensor_new4(&test_arena, 2, 3, 4, 5);
    cr_assert_eq(t->numel, 120);
    cr_assert_eq(t->ndim, 4);
    char buf[64];
    cr_assert_str_eq(tensor_shape_str(t, buf, sizeof buf), "(2, 3, 4, 5)");
    float data[6] = {0};
    Tensor v = tensor_view(data, 2, (const int[]){2, 3});
    cr_assert_eq(v.data, data);
    cr_assert_eq(v.shape[2], 1, "trailing dims are 1");
    cr_assert(!tensor_same_shape(t, &v));
    Tensor *z = tensor_zeros(&test_arena, 1, (const int[]){7});
    for (int i = 0; i < 7; i++) cr_assert_eq(z->data[i], 0);
}

static void overflow(void *ctx) { tensor_numel_of(4, (const int[]){1 << 30, 1 << 30, 1 << 30, 4}); }
static void zero_dim(void *ctx) { tensor_numel_of(2, (const int[]){3, 0}); }
static void five_dims(void *ctx) { tensor_numel_of(5, (const int[]){1, 1, 1, 1, 1}); }

Test(tensor, rejects_bad_shapes, .init = test_setup, .fini = test_teardown) {
    cr_assert(strstr(expect_fatal(overflow, NULL), "overflow") != NULL);
    cr_assert(strstr(expect_fatal(zero_dim, NULL), "dim 1 has size 0") != NULL);
    cr_assert(strstr(expect_fatal(five_dims, NULL), "5 dims requested") != NULL);
}

Test(arena, aligned_and_reset, .init = test_setup, .fini = test_teardown) {
    Arena a;
    arena_init(&a, 4096, 0);
    for (int i = 1; i < 50; i++) {
        void *p = arena_alloc(&a, (size_t)i * 13);
        cr_assert_eq((uintptr_t)p % 64, 0, "allocation %d not 64-byte aligned", i);
    }
    size_t used = a.used;
    cr_assert(a.head != NULL && used >= 49 * 50 * 13 / 2);
    arena_reset(&a);
    cr_assert_eq(a.used, 0);
    cr_assert(a.capacity >= a.peak, "one chunk big enough for the peak");
    size_t n = a.n_mallocs;
    for (int i = 1; i < 50; i++) arena_alloc(&a, (size_t)i * 13);
    cr_assert_eq(a.n_mallocs, n, "same workload, no new chunk");
    arena_free(&a);
}

/* The largest chunk an arena lets go is kept for the next arena whose request it fits (at most
 * 64 times too big): the next evaluation reuses its pages instead of faulting in new ones. */
Test(arena, keeps_a_big_chunk_for_the_next_arena, .init = test_setup, .fini = test_teardown) {
    const size_t MB = (size_t)1 << 20;
    Arena a, b, c;
    arena_init(&a, MB, 0);
    unsigned char *p = arena_alloc(&a, 40 * MB);  // a chunk of its own (a spill)
    memset(p, 1, 40 * MB);
    arena_free(&a);
    arena_init(&c, 4096, 0);
    uintptr_t q = (uintptr_t)arena_alloc(&c, 100 << 10);  // 400 times smaller: not given the big chunk
    cr_assert(q < (uintptr_t)p || q >= (uintptr_t)p + 40 * MB);
    arena_free(&c);
    arena_init(&b, MB, 0);  // 40 MB is at most 64 times 1 MB: the new arena starts in the kept chunk
    cr_assert_eq(b.capacity, 40 * MB, "one chunk, the kept one, with all of its bytes");
    cr_assert_eq(arena_alloc(&b, 30 * MB), p);
    unsigned char *r = arena_alloc(&b, 20 * MB);  // a spill: a second chunk, of 80 MB
    arena_reset(&b);  // consolidation into one chunk for the peak (50 MB): the larger one, kept
    cr_assert_eq(arena_alloc(&b, 30 * MB), r);
    arena_free(&b);
}

static void over_limit(void *ctx) {
    Arena *a = ctx;
    arena_alloc(a, 1000);
    arena_alloc(a, 5000);
}

Test(arena, a_mark_gives_back_what_came_after_it_unless_it_spilled, .init = test_setup, .fini = test_teardown) {
    Arena a;
    arena_init(&a, 1 << 16, 0);
    arena_alloc(&a, 100);
    ArenaMark m = arena_mark(&a);
    size_t used = a.used;
    void *p = arena_alloc(&a, 1000);
    arena_alloc(&a, 3000);
    cr_assert(arena_release(&a, m));
    cr_assert_eq(a.used, used, "used back to the mark");
    cr_assert_eq(arena_alloc(&a, 10), p, "the next allocation reuses the memory");
    m = arena_mark(&a);
    arena_alloc(&a, 1 << 17);  // more than the chunk holds: a new chunk
    size_t after = a.used;
    cr_assert(!arena_release(&a, m), "spilled since the mark: nothing given back");
    cr_assert_eq(a.used, after);
    arena_free(&a);
}

Test(arena, limit_names_bytes, .init = test_setup, .fini = test_teardown) {
    Arena a;
    arena_init(&a, 4096, 4096);
    const char *m = expect_fatal(over_limit, &a);
    cr_assert(strstr(m, "arena: out of space: 5000 bytes wanted, 3072 of 4096 available") != NULL, "got: %s", m);
    arena_free(&a);
}

Test(slab, contiguous_views_in_order, .init = test_setup, .fini = test_teardown) {
    ParamSlab s;
    slab_init(&s);
    Tensor *w = slab_add(&s, "conv.weight", 4, (const int[]){3, 3, 2, 4}, 0);
    Tensor *g = slab_add(&s, "bn.gamma", 1, (const int[]){4}, PARAM_NO_DECAY);
    slab_finalize(&s);
    cr_assert_eq(s.numel, 72 + 4);
    cr_assert_eq(w->data, s.data);
    cr_assert_eq(g->data, s.data + 72);
    cr_assert_eq(g->grad, s.grad + 72);
    cr_assert(w->requires_grad);
    cr_assert_eq(slab_find(&s, "bn.gamma")->flags, PARAM_NO_DECAY);
    cr_assert_null(slab_find(&s, "nope"));
    g->grad[3] = 5;
    slab_zero_grad(&s);
    cr_assert_eq(g->grad[3], 0);
    slab_free(&s);
    slab_free(NULL);
}

static void add_after_finalize(void *ctx) {
    ParamSlab *s = ctx;
    slab_add(s, "late", 1, (const int[]){1}, 0);
}

Test(slab, rejects_late_parameters, .init = test_setup, .fini = test_teardown) {
    ParamSlab s;
    slab_init(&s);
    slab_add(&s, "a", 1, (const int[]){2}, 0);
    slab_finalize(&s);
    cr_assert(strstr(expect_fatal(add_after_finalize, &s), "'late' added after the slab was finalized") != NULL);
    slab_free(&s);
}
