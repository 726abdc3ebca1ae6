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
 * and are kept, so kernels need no malloc after their first call. Every slot has one owner, the
 * unit named beside it below, and no other unit touches it: a kernel that calls another (a
 * convolution calling the GEMM) can never find its buffer reused under it.
 * scripts/check-slots.sh (run by make test) checks that each slot is used in one file.
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
    THREADS_SLOT_GEMM_PACK_A,        // gemm.c: packed A block
    THREADS_SLOT_GEMM_PACK_B,        // gemm.c: packed B panel
    THREADS_SLOT_GEMM_SPLIT_K,       // gemm.c: the partial products when K is split (thread 0's)
    THREADS_SLOT_CONV_COLUMNS,       // conv2d.c: im2col rows of the forward
    THREADS_SLOT_CONV_BACKWARD,      // conv2d.c: columns, their gradient, partial dw and db
    THREADS_SLOT_CONV_FLIPPED,       // conv2d.c: the turned kernel of dx as a convolution (thread 0's)
    THREADS_SLOT_CONV_PADDED_INPUT,  // conv2d.c: zero-padded input of the implicit GEMM (thread 0's)
    THREADS_SLOT_CONV_PACKED_W,      // conv2d.c: its packed weights (thread 0's)
    THREADS_SLOT_CONV_WGRAD,         // conv_wgrad.c: per-thread partial dw and db, pixel offsets
    THREADS_SLOT_DEPTHWISE_PARTIAL,  // depthwise.c: per-thread partial dw and db
    THREADS_SLOT_BATCHNORM_SUMS,     // batchnorm.c: per-thread partial sums, backward coefficients
    THREADS_SLOT_BATCHNORM_AFFINE,   // batchnorm.c: the folded scale and shift
    THREADS_SLOT_DDQ_SUMS,           // quant/ddq.c: histograms and gate signals
    THREADS_SLOT_INT_COLUMNS,        // quant/intrun.c: integer im2col rows and sums
    THREADS_SLOT_TEST,               // tests only
    THREADS_SCRATCH_SLOTS
};

/* Scratch of at least `floats` floats for thread tid, 64-byte aligned; contents not kept across
 * calls that grow it. */
float *threads_scratch(int tid, int slot, size_t floats);

#endif
