/* threads.h — a small pthread pool with a deterministic parallel-for.
 *
 * threads_init(n) starts n−1 workers (n <= 0: one per online core); the calling thread is
 * worker 0. parallel_for(n, fn, ctx) splits [0, n) into threads_count() contiguous ranges
 *     thread t gets [n·t/T, n·(t+1)/T)
 * so which thread computes which item depends only on n and T, never on scheduling: kernels that
 * reduce per thread and combine partial results in thread order are bit-identical run to run for
 * the same thread count. A parallel_for issued from inside a parallel region runs serially.
 * Without threads_init everything runs on the calling thread.
 *
 * Each thread also owns a few scratch buffers (threads_scratch, one per slot) that grow on demand
 * and are kept, so kernels need no malloc after their first call. Slots keep users apart: the
 * GEMM packs into THREADS_SLOT_PACK_A/B, the kernel that calls it may use THREADS_SLOT_KERNEL.
 */
#ifndef DQ_THREADS_H
#define DQ_THREADS_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*ParallelFn)(void *ctx, int begin, int end, int tid);

void threads_init(int n);
void threads_shutdown(void);
int threads_count(void);
int threads_available(void); /* online cores */
void parallel_for(int n, ParallelFn fn, void *ctx);
/* The calling thread's tid inside a parallel region, 0 outside (for scratch buffers). */
int threads_current_tid(void);
/* Whether thread t gets a nonempty range in parallel_for(n, ...) (for combining partials). */
bool parallel_has_work(int n, int t);
enum {
    THREADS_SLOT_PACK_A,    // GEMM: packed A block
    THREADS_SLOT_PACK_B,    // GEMM: packed B panel
    THREADS_SLOT_PARTIAL,   // GEMM: per-thread partial C when K is split
    THREADS_SLOT_KERNEL,    // free for the kernel that calls the GEMM
    THREADS_SLOT_CONV_IN,   // convolution: zero-padded input (thread 0's, shared by all)
    THREADS_SLOT_CONV_W,    // convolution: packed weights (thread 0's, shared by all)
    THREADS_SCRATCH_SLOTS
};

/* Scratch of at least `floats` floats for thread tid, 64-byte aligned; contents not kept across
 * calls that grow it. */
float *threads_scratch(int tid, int slot, size_t floats);

#endif
