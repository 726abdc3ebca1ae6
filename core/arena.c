/* arena.c — chunked bump allocator, consolidated to one chunk at reset; big chunks an arena
 * lets go are kept for the next arena (below). */
#define _DEFAULT_SOURCE  // madvise and MADV_HUGEPAGE (Linux), beside the Makefile's POSIX level
#include "arena.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "error.h"

#define ARENA_ALIGN 64

struct ArenaChunk {
    ArenaChunk *next;
    size_t size;  // usable bytes in data
    size_t off;   // bytes handed out from this chunk
    unsigned char *data;
};

/* Fresh memory costs its page faults at first touch: on the 2-core VM this was measured on, about
 * 3 s per GB, more than an evaluation pass over the test set computes. Every evaluation used to
 * pay it again (a new arena that grows to ~2 GB at batch 250, then a chunk of the peak), and the
 * pipeline runs half a dozen of them. So the largest chunk an arena lets go is kept, one per
 * process, and handed to the next arena that asks for at most KEEP_FIT times less: an evaluation
 * after the first touches no new memory, and a small arena never sits on a huge chunk. */
#define KEEP_MIN ((size_t)16 << 20)  // smaller chunks go back to malloc at once
#define KEEP_FIT 64
static struct {
    unsigned char *data;
    size_t size;
} kept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

/* The kept chunk if it fits `size` (its size in *got), else NULL. */
static unsigned char *take_kept(size_t size, size_t *got) {
    unsigned char *p = NULL;
    pthread_mutex_lock(&kept_lock);
    if (kept.data && kept.size >= size && kept.size / KEEP_FIT <= size) {
        p = kept.data, *got = kept.size;
        kept.data = NULL, kept.size = 0;
    }
    pthread_mutex_unlock(&kept_lock);
    return p;
}

/* Keep the larger of this chunk and the kept one; free the other. */
static void give_back(unsigned char *data, size_t size) {
    if (size >= KEEP_MIN) {
        pthread_mutex_lock(&kept_lock);
        if (size > kept.size) {
            unsigned char *old = kept.data;
            kept.data = data, kept.size = size;
            data = old;
        }
        pthread_mutex_unlock(&kept_lock);
    }
    dq_free(data);  // NULL when it was kept
}

/* A new chunk; from KEEP_MIN up, aligned to 2 MB and marked for transparent huge pages where the
 * system has them, which makes its first touch cheaper: 1.8 s per GB instead of 3.1 on the VM
 * above (a throwaway test touching 1 GB; the training step itself measured no faster). */
static unsigned char *chunk_alloc(size_t size) {
#ifdef MADV_HUGEPAGE
    if (size >= KEEP_MIN) {
        size_t huge = (size_t)2 << 20;
        unsigned char *p = dq_aligned_alloc(huge, size);
        madvise(p, (size + huge - 1) / huge * huge, MADV_HUGEPAGE);  // advice: failure changes nothing
        return p;
    }
#endif
    return dq_aligned_alloc(ARENA_ALIGN, size);
}

static ArenaChunk *chunk_new(Arena *a, size_t size, ArenaChunk *next) {
    ArenaChunk *c = dq_malloc(sizeof *c);
    c->next = next;
    c->off = 0;
    c->data = take_kept(size, &c->size);
    if (!c->data) c->data = chunk_alloc(size), c->size = size;
    a->capacity += c->size;
    a->n_mallocs++;
    return c;
}

static void chunks_free(ArenaChunk *c) {
    while (c) {
        ArenaChunk *next = c->next;
        give_back(c->data, c->size);
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

ArenaMark arena_mark(const Arena *a) { return (ArenaMark){.chunk = a->head, .off = a->head ? a->head->off : 0, .used = a->used}; }

bool arena_release(Arena *a, ArenaMark m) {
    if (!a->head || a->head != m.chunk || m.off > a->head->off) return false;
    a->head->off = m.off;
    a->used = m.used;
    return true;
}
