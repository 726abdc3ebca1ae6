/* gemm.h — single-precision matrix multiply, the workhorse of linear and conv2d.
 *
 *     C = beta·C + op(A)·op(B)        op(X) = X or Xᵀ
 *     op(A): (M, K)   op(B): (K, N)   C: (M, N)      all row-major with leading dims lda/ldb/ldc
 *
 * gemm_ref is the triple loop (the specification; accumulates in double). gemm is the fast path:
 * BLIS-style blocking (B panels of KC×NC, A blocks of MC×KC, packed into MR/NR micro-panels) with
 * a register-tiled micro-kernel written with GCC vector extensions, so the same source is
 * AVX-512, AVX2, SSE or NEON code depending on the build target. It splits M, N or (when both are
 * small and K is long) K over the thread pool; the split depends only on the shape and the
 * thread count, so results are reproducible for a given thread count. gemm_serial is the same
 * kernel on the calling thread only, for use inside a parallel region (it packs into the calling
 * thread's own scratch buffers).
 * beta is applied exactly: beta = 0 overwrites C (NaNs in old C do not leak), beta = 1 accumulates.
 */
#ifndef DQ_GEMM_H
#define DQ_GEMM_H

#include <stdbool.h>
#include <stddef.h>

void gemm_ref(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
void gemm(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda, const float *B,
          int ldb, float beta, float *C, int ldc);
void gemm_serial(bool trans_a, bool trans_b, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
/* Implicit-GEMM convolution rows (the convolution's fast path without im2col):
 *     C[r][j] = beta·C[r][j] + Σ_{t < taps} Σ_{c < cin} A[off[t] + r·lda + c] · B[t·cin + c][j]
 * for r < rows <= gemm_tile_rows(), j < N. B (taps·cin, N) comes packed by gemm_pack_b. A must
 * be readable for gemm_tile_rows() rows: the rows past `rows` are computed and dropped. The sum
 * is taken in gemm's order (K blocks summed apart, then added in turn), so it equals gemm on the
 * im2col matrix to the bit; that needs the blocks to end on taps: gemm_conv_taps_ok. */
int gemm_tile_rows(void);
bool gemm_conv_taps_ok(int taps, int cin);
/* One tile of a GEMM whose A rows are gathered (weight gradients, read in place):
 *     C[i][j] = beta·C[i][j] + Σ_{k < kc} A[base[k] + off[i]] · B[k·ldb + j]
 * for i < mr <= gemm_tile_rows(), j < N (N whole vectors; 1, 2 or more of them); off has
 * gemm_tile_rows() entries, those past mr valid offsets whose rows are dropped. The products and
 * the store are the packed kernel's, in the same order. */
void gemm_gather_tile(int kc, const float *A, const size_t *base, const size_t *off, int mr, const float *B, int ldb,
                      int N, float beta, float *C, int ldc);
/* The K block: gemm sums each run of this many k apart, then adds the runs' sums in turn (kernels
 * that promise gemm's bits follow it). */
int gemm_k_block(void);
size_t gemm_packed_b_floats(int K, int N);
void gemm_pack_b(int K, int N, const float *B, int ldb, float *packed);
void gemm_conv_rows(int rows, int N, int taps, const size_t *off, int cin, const float *A, int lda,
                    const float *Bpacked, float beta, float *C, int ldc);

/* Whether gemm may compute Aᵀ·B with small M and N (whole vectors) from A and B in place instead
 * of packing them (on by default; the same bits). Returns the previous setting. For tests and
 * benchmarks. */
bool gemm_use_thin(bool on);

/* "avx512 MR=12 NR=32" — what the build selected, for benchmarks and logs. */
const char *gemm_kernel_name(void);

#endif
