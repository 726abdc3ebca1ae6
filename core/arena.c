/* arena.c — chunked bump allocator, consolidated to one chunk at reset. */
#include "arena.h"

#include <string.h>

#include "error.h"

#define ARENA_ALIGN 64

struct ArenaChunk {
    ArenaChunk *next;
    size_t size;  // usable bytes in data
    size_t off;   // bytes handed out from this chunk
    unsigned char *data;
};

static ArenaChunk *chunk_new(Arena *a, size_t size, ArenaChunk *next) {
    ArenaChunk *c = dq_malloc(sizeof *c);
    c->next = next;
    c->size = size;
    c->off = 0;
    c->data = dq_aligned_alloc(ARENA_ALIGN, size);
    a->capacity += size;
    a->n_mallocs++;
    return c;
}

static void chunks_free(ArenaChunk *c) {
    while (c) {
        ArenaChunk *next = c->next;
        dq_free(c->data);
        dq_free(c);
        c = next;
    }
}

void arena_init(Arena *a, size_t initial_bytes, size_t limit) {
    memset(a, 0, sizeof *a);
    a->limit = limit;
    if (initial_bytes < 4096) initial_bytes = 4096;
    a->head = chunk_new(a, initial_bytes, NULL);
}

void arena_free(Arena *a) {
    if (!a) return;
    chunks_free(a->head);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes) {
    DQ_CHECK(a->head != NULL);
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < bytes) DQ_FATAL("arena: request of %zu bytes overflows", bytes);
    if (a->limit && (need > a->limit || a->used > a->limit - need))
        DQ_FATAL_HINT("raise the arena limit or lower the batch size",
                      "arena: out of space: %zu bytes wanted, %zu of %zu available", bytes,
                      a->limit - a->used, a->limit);
    ArenaChunk *c = a->head;
    if (c->size - c->off < need) {
        size_t size = c->size * 2 > need ? c->size * 2 : need;
        c = a->head = chunk_new(a, size, c);
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *arena_calloc(Arena *a, size_t count, size_t size) {
    size_t bytes = dq_mul_size(count, size);
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

float *arena_floats(Arena *a, size_t count) {
    return arena_alloc(a, dq_mul_size(count, sizeof(float)));
}

float *arena_floats_zero(Arena *a, size_t count) { return arena_calloc(a, count, sizeof(float)); }

void arena_reset(Arena *a) {
    if (a->head && a->head->next) {  // spilled: replace all chunks by one big enough for the peak
        size_t size = a->peak + a->peak / 16;  // a little room for steps that vary slightly
        chunks_free(a->head);
        a->capacity = 0;
        a->head = chunk_new(a, size, NULL);
    }
    if (a->head) a->head->off = 0;
    a->used = 0;
}
