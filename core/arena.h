/* arena.h — per-step bump allocator for activations, saved tensors and tape records.
 *
 * Everything a training step creates (output tensors, buffers saved for backward, gradient
 * buffers of activations, tape records) is carved from one Arena and released at once by
 * arena_reset. The first step may spill into extra chunks; arena_reset then replaces them with a
 * single chunk as large as the step's high-water mark, so from the second step on nothing is
 * malloc'ed in forward or backward. With a nonzero `limit` a request that would take the arena
 * past it is a fatal error naming the bytes wanted and available. The largest chunk (16 MB or
 * more) that an arena lets go is kept, one per process, for the next arena it fits, so an
 * evaluation after the first touches no new memory (arena.c says why that matters).
 *
 * Every allocation is 64-byte aligned (one cache line, one AVX-512 vector).
 */
#ifndef DQ_ARENA_H
#define DQ_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ArenaChunk ArenaChunk;

typedef struct Arena {
    ArenaChunk *head;  // current chunk; older chunks follow through ->next
    size_t used;       // bytes handed out since the last reset (all chunks)
    size_t peak;       // high-water mark of `used` over the arena's life
    size_t capacity;   // bytes reserved in all chunks
    size_t limit;      // 0 = unlimited; otherwise the most `used` may reach
    size_t n_mallocs;  // chunk allocations so far (tests check it stops growing)
} Arena;

void arena_init(Arena *a, size_t initial_bytes, size_t limit);
void arena_free(Arena *a); /* accepts NULL */
void *arena_alloc(Arena *a, size_t bytes);
void *arena_calloc(Arena *a, size_t count, size_t size);
float *arena_floats(Arena *a, size_t count);       /* uninitialised */
float *arena_floats_zero(Arena *a, size_t count);  /* zeroed */
void arena_reset(Arena *a);

/* A position in the arena, to give back what was handed out after it (a forward that frees a
 * layer's intermediates once the next layer has its output: nn/container.c). */
typedef struct ArenaMark {
    const ArenaChunk *chunk;
    size_t off, used;
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
/* Give back everything handed out since m, if the arena has not spilled into a new chunk since;
 * false (nothing given back) if it has. The memory is reused by the next allocations. */
bool arena_release(Arena *a, ArenaMark m);

#endif
