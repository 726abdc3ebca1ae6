/* igemm.h — integer matrix multiply for the integer engine: unsigned 8-bit activations times
 * signed 8-bit weights, summed exactly in 32 bits.
 *
 *     C[i][j] = Σ_k A[i][k] · B[k][j]      A (M, K) uint8, row-major with leading dim lda
 *                                          B (K, N) int8, row-major;  C (M, N) int32 (ldc)
 *
 * igemm_ref is the triple loop (the specification). igemm runs on B packed once by
 * igemm_pack_b: groups of 4 consecutive k for NR columns side by side, the layout of the dot
 * product instructions `vpdpbusd` (AVX512-VNNI on 512 bits, AVX-VNNI on 256) that multiply 4
 * unsigned bytes by 4 signed bytes and add the four products to a 32-bit lane; without them the
 * same layout is summed in plain C. Integer sums are exact, so the result does not depend on
 * the kernel, the blocking or the thread count. |C| stays below 2^31 when K·255·128 does
 * (K < 65 000).
 */
#ifndef DQ_IGEMM_H
#define DQ_IGEMM_H

#include <stddef.h>
#include <stdint.h>

void igemm_ref(int M, int N, int K, const uint8_t *A, int lda, const int8_t *B, int32_t *C, int ldc);

/* B packed: ceil(K/4) groups × N rounded up to igemm_nr() columns × 4 bytes. */
size_t igemm_packed_bytes(int K, int N);
void igemm_pack_b(int K, int N, const int8_t *B, int8_t *packed);
/* C = A · B on the packed B, over the thread pool. A's rows are read in whole groups of 4: the
 * bytes of a row from K up to the next multiple of 4 must be readable (their values do not
 * matter: the packed B has zeros there). */
void igemm(int M, int N, int K, const uint8_t *A, int lda, const int8_t *Bpacked, int32_t *C, int ldc);
/* The same on the calling thread only (inside a parallel region). */
void igemm_serial(int M, int N, int K, const uint8_t *A, int lda, const int8_t *Bpacked, int32_t *C, int ldc);

int igemm_nr(void);
/* "avx512-vnni", "avx-vnni" or "scalar": the dot product the build selected. */
const char *igemm_kernel_name(void);

#endif
