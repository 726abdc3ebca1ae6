/* bench_gemm.c — GFLOP/s of the fast GEMM on the shapes that matter, 1 and 2 threads, side by
 * side with OpenBLAS sgemm when libopenblas is installed (loaded with dlopen at run time: the
 * framework never links it). Each cell is the median of repeated timed runs.
 *
 *   build/release/bench/bench_gemm [--reps=N] [--threads=1,2]
 * Output: a Markdown table and one `RESULT` line per (shape, threads).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"

typedef void (*SgemmFn)(int, int, int, int, int, int, float, const float *, int, const float *,
                        int, float, float *, int);
typedef void (*SetThreadsFn)(int);

static SgemmFn blas_sgemm;
static SetThreadsFn blas_set_threads;

static void load_openblas(void) {
    const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        blas_sgemm = (SgemmFn)dlsym(h, "cblas_sgemm");
        blas_set_threads = (SetThreadsFn)dlsym(h, "openblas_set_num_threads");
        if (blas_sgemm) return;
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct Shape {
    const char *name;
    int M, N, K;
} Shape;

/* Median seconds of `reps` runs (after one warm-up) of ours (blas=0) or OpenBLAS (blas=1). */
static double time_gemm(int blas, const Shape *s, const float *A, const float *B, float *C,
                        int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        if (blas) blas_sgemm(101, 111, 111, s->M, s->N, s->K, 1.0f, A, s->K, B, s->N, 0.0f, C, s->N);
        else gemm(false, false, s->M, s->N, s->K, A, s->K, B, s->N, 0.0f, C, s->N);
        if (r >= 0) t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

int main(int argc, char **argv) {
    int reps = 15, max_threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--reps=", 7) == 0) reps = atoi(argv[i] + 7);
        else if (strncmp(argv[i], "--max_threads=", 14) == 0) max_threads = atoi(argv[i] + 14);
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: bench_gemm [--reps=N (15)] [--max_threads=T (2)]\n");
            return 0;
        } else DQ_FATAL("bench_gemm: unknown option '%s' (see --help)", argv[i]);
    }
    if (reps < 1 || max_threads < 1) DQ_FATAL("bench_gemm: --reps and --max_threads must be >= 1");
    load_openblas();
    const Shape shapes[] = {
        {.name = "square 1024^3", .M = 1024, .N = 1024, .K = 1024},
        {.name = "pw 65536x24x144", .M = 65536, .N = 144, .K = 24},
        {.name = "pw 65536x144x24", .M = 65536, .N = 24, .K = 144},
        {.name = "pw 16384x64x384", .M = 16384, .N = 384, .K = 64},
        {.name = "pw 4096x960x160", .M = 4096, .N = 160, .K = 960}};
    printf("gemm kernel: %s; OpenBLAS: %s; median of %d runs\n\n", gemm_kernel_name(),
           blas_sgemm ? "loaded" : "not found (apt-get install libopenblas-dev for the ratio)", reps);
    printf("| shape (M, K, N) | threads | ours GFLOP/s | OpenBLAS GFLOP/s | ratio |\n");
    printf("|---|---|---|---|---|\n");
    Rng rng;
    rng_seed(&rng, 1, 0);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const Shape *s = &shapes[si];
        size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N;
        float *A = dq_malloc(na * sizeof(float)), *B = dq_malloc(nb * sizeof(float));
        float *C = dq_malloc(nc * sizeof(float));
        rng_fill_uniform(&rng, A, na, -1, 1);
        rng_fill_uniform(&rng, B, nb, -1, 1);
        double flop = 2.0 * s->M * s->N * s->K;
        for (int T = 1; T <= max_threads; T++) {
            threads_init(T);
            if (blas_set_threads) blas_set_threads(T);
            double ours = flop / time_gemm(0, s, A, B, C, reps) / 1e9;
            double ref = blas_sgemm ? flop / time_gemm(1, s, A, B, C, reps) / 1e9 : 0;
            if (blas_sgemm)
                printf("| %s (%d, %d, %d) | %d | %.1f | %.1f | %.2f |\n", s->name, s->M, s->K, s->N,
                       T, ours, ref, ours / ref);
            else
                printf("| %s (%d, %d, %d) | %d | %.1f | - | - |\n", s->name, s->M, s->K, s->N, T, ours);
            fprintf(stderr, "RESULT bench=gemm M=%d K=%d N=%d threads=%d ours_gflops=%.2f openblas_gflops=%.2f\n",
                    s->M, s->K, s->N, T, ours, ref);
        }
        dq_free(A);
        dq_free(B);
        dq_free(C);
    }
    threads_shutdown();
    return 0;
}
