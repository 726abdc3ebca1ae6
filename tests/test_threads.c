/* test_threads.c — the pool's parallel-for: every item exactly once, ranges fixed by (n, T),
 * nested calls serial, scratch buffers per thread and slot, jobs back to back and after sleeps. */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "helpers.h"

typedef struct Visit {
    atomic_int count[1000];
    int owner[1000];
    int n;
} Visit;

static void visit(void *ctx, int begin, int end, int tid) {
    Visit *v = ctx;
    for (int i = begin; i < end; i++) {
        atomic_fetch_add(&v->count[i], 1);
        v->owner[i] = tid;
    }
}

Test(threads, every_item_once_with_fixed_ranges) {
    int ns[] = {0, 1, 2, 3, 7, 100, 1000}, counts[] = {1, 2, 3, 5};
    static Visit v;
    for (size_t a = 0; a < sizeof counts / sizeof *counts; a++) {
        threads_init(counts[a]);
        cr_assert_eq(threads_count(), counts[a]);
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
            int n = ns[b], nt = counts[a];
            memset(&v, 0, sizeof v);
            parallel_for(n, visit, &v);
            for (int i = 0; i < n; i++) {
                cr_assert_eq(atomic_load(&v.count[i]), 1, "n=%d T=%d item %d", n, nt, i);
                int t = v.owner[i];  // thread t owns [n·t/T, n·(t+1)/T)
                cr_assert((long long)n * t / nt <= i && i < (long long)n * (t + 1) / nt,
                          "n=%d T=%d item %d ran on thread %d", n, nt, i, t);
                cr_assert(parallel_has_work(n, t));
            }
        }
        threads_shutdown();
    }
}

static void nested_inner(void *ctx, int begin, int end, int tid) { visit(ctx, begin, end, tid); }

typedef struct Nest {
    Visit inner[2];
} Nest;

static void nested_outer(void *ctx, int begin, int end, int tid) {
    Nest *n = ctx;
    for (int i = begin; i < end; i++) parallel_for(50, nested_inner, &n->inner[i]);
}

Test(threads, nested_parallel_for_runs_serially) {
    threads_init(2);
    static Nest n;
    memset(&n, 0, sizeof n);
    parallel_for(2, nested_outer, &n);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 50; i++) {
            cr_assert_eq(atomic_load(&n.inner[k].count[i]), 1);
            cr_assert_eq(n.inner[k].owner[i], k, "nested work stays on the calling thread");
        }
    threads_shutdown();
}

Test(threads, scratch_is_aligned_and_kept) {
    float *a = threads_scratch(0, THREADS_SLOT_TEST, 100);
    cr_assert_eq((uintptr_t)a % 64, 0);
    a[99] = 7;
    cr_assert_eq(threads_scratch(0, THREADS_SLOT_TEST, 50), a, "a smaller request reuses the buffer");
    cr_assert_eq(a[99], 7);
    cr_assert_neq(threads_scratch(0, THREADS_SLOT_GEMM_PACK_A, 100), a, "slots are separate");
    cr_assert_neq(threads_scratch(1, THREADS_SLOT_TEST, 100), a, "threads are separate");
}

Test(threads, default_is_all_cores) {
    threads_init(0);
    cr_assert_eq(threads_count(), threads_available());
    threads_shutdown();
    cr_assert_eq(threads_count(), 1, "no pool: the caller alone");
}

/* Job after job, back to back (workers and caller spinning) and with pauses long enough for
 * them to fall asleep: every job sees its own context and finishes before the next starts. */
typedef struct Stamp {
    long job;
    long seen[257];
} Stamp;

static void stamp(void *ctx, int begin, int end, int tid) {
    Stamp *s = ctx;
    for (int i = begin; i < end; i++) s->seen[i] = s->job;
}

Test(threads, many_jobs_awake_and_asleep) {
    static Stamp s;
    for (int nt = 2; nt <= 3; nt++) {
        threads_init(nt);
        for (long job = 1; job <= 3000; job++) {
            int n = (int)(job % 257) + 1;
            s.job = job;
            parallel_for(n, stamp, &s);
            for (int i = 0; i < n; i++) cr_assert_eq(s.seen[i], job, "T=%d job %ld item %d saw job %ld", nt, job, i, s.seen[i]);
            if (job % 500 == 0) nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);  // longer than the spin: all sleep
        }
        threads_shutdown();
    }
}
