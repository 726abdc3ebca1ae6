/* threads.c — the pool. Between jobs, workers first spin a little on the job counter (a job
 * usually follows within microseconds: an op of a network is short at small batch, and a sleep
 * and a wake-up are two system calls, measured at 10% of the integer engine's time), then sleep
 * on a condition variable; the caller likewise spins, then sleeps, waiting for the last share. */
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"

#define MAX_THREADS 256
#define SPIN_SECONDS 50e-6  // how long to spin before sleeping

typedef struct Scratch {
    float *data;
    size_t cap;  // floats
} Scratch;

static struct {
    int n;                   // threads including the caller; 0 = not initialised
    pthread_t tids[MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t wake;     // workers sleep here for a new generation
    pthread_cond_t done;     // the caller sleeps here for `pending` to reach 0
    atomic_ulong generation; // written under mu, read by spinning workers without it
    atomic_int pending;
    int sleepers;            // workers asleep on `wake` (under mu)
    bool caller_asleep;      // the caller asleep on `done` (under mu)
    bool quit;
    ParallelFn fn;           // current job (written under mu before the generation moves)
    void *ctx;
    int items;
} pool;

static Scratch scratch[MAX_THREADS][THREADS_SCRATCH_SLOTS];
static _Thread_local bool in_region = false;
static _Thread_local int region_tid = 0;  // tid of this thread inside a region

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void run_share(int tid) {
    int T = pool.n, n = pool.items;
    int begin = (int)((long long)n * tid / T), end = (int)((long long)n * (tid + 1) / T);
    in_region = true;
    region_tid = tid;
    if (begin < end) pool.fn(pool.ctx, begin, end, tid);
    in_region = false;
}

static void *worker_main(void *arg) {
    int tid = (int)(size_t)arg;
    unsigned long seen = 0;
    for (;;) {
        double t0 = clock_seconds();
        while (atomic_load(&pool.generation) == seen && clock_seconds() - t0 < SPIN_SECONDS)
            for (int i = 0; i < 32; i++) cpu_relax();
        pthread_mutex_lock(&pool.mu);
        pool.sleepers++;
        while (atomic_load(&pool.generation) == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mu);
        pool.sleepers--;
        if (pool.quit) {
            pthread_mutex_unlock(&pool.mu);
            return NULL;
        }
        seen = atomic_load(&pool.generation);
        pthread_mutex_unlock(&pool.mu);
        run_share(tid);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {  // the last share: wake the caller if it sleeps
            pthread_mutex_lock(&pool.mu);
            if (pool.caller_asleep) pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
}

int threads_available(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
}

void threads_init(int n) {
    if (n <= 0) n = threads_available();
    if (n > MAX_THREADS) DQ_FATAL("threads: %d requested, at most %d supported", n, MAX_THREADS);
    threads_shutdown();
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    atomic_store(&pool.generation, 0);
    atomic_store(&pool.pending, 0);
    pool.sleepers = 0;
    pool.caller_asleep = false;
    pool.quit = false;
    pool.n = n;
    for (int t = 1; t < n; t++)
        if (pthread_create(&pool.tids[t], NULL, worker_main, (void *)(size_t)t) != 0)
            DQ_FATAL("threads: cannot start worker %d of %d", t, n);
}

void threads_shutdown(void) {
    if (pool.n == 0) return;
    pthread_mutex_lock(&pool.mu);
    pool.quit = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int t = 1; t < pool.n; t++) pthread_join(pool.tids[t], NULL);
    pthread_mutex_destroy(&pool.mu);
    pthread_cond_destroy(&pool.wake);
    pthread_cond_destroy(&pool.done);
    pool.n = 0;
}

int threads_count(void) { return pool.n > 0 ? pool.n : 1; }

void parallel_for(int n, ParallelFn fn, void *ctx) {
    if (n <= 0) return;
    int T = threads_count();
    if (T == 1 || in_region) {
        // Serial, but still split exactly as the pool would so results do not depend on it.
        for (int t = 0; t < T; t++) {
            int begin = (int)((long long)n * t / T), end = (int)((long long)n * (t + 1) / T);
            if (begin < end) fn(ctx, begin, end, in_region ? region_tid : t);
        }
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.items = n;
    atomic_store(&pool.pending, T - 1);
    atomic_fetch_add(&pool.generation, 1);  // after the job: a spinning worker that sees it sees the job
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_share(0);
    double t0 = clock_seconds();
    while (atomic_load(&pool.pending) > 0 && clock_seconds() - t0 < SPIN_SECONDS)
        for (int i = 0; i < 32; i++) cpu_relax();
    if (atomic_load(&pool.pending) > 0) {
        pthread_mutex_lock(&pool.mu);
        pool.caller_asleep = true;
        while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.mu);
        pool.caller_asleep = false;
        pthread_mutex_unlock(&pool.mu);
    }
}

int threads_current_tid(void) { return in_region ? region_tid : 0; }

bool parallel_has_work(int n, int t) {
    int T = threads_count();
    return (long long)n * t / T < (long long)n * (t + 1) / T;
}

float *threads_scratch(int tid, int slot, size_t floats) {
    DQ_CHECK(tid >= 0 && tid < MAX_THREADS && slot >= 0 && slot < THREADS_SCRATCH_SLOTS);
    Scratch *s = &scratch[tid][slot];
    if (s->cap < floats) {
        dq_free(s->data);
        s->data = dq_aligned_alloc(64, dq_mul_size(floats, sizeof(float)));
        s->cap = floats;
    }
    return s->data;
}
