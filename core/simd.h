/* simd.h — the vector type of the build target, for the kernels written with GCC vector
 * extensions (gemm.c, depthwise.c). One source serves every ISA:
 *     AVX-512: 16 floats     AVX/AVX2: 8     otherwise (SSE2, NEON, or scalar emulation): 4
 * vf is an aligned vector (packed buffers), loads and stores of user memory go through vfu,
 * whose alignment is that of a float.
 */
#ifndef DQ_SIMD_H
#define DQ_SIMD_H

#if defined(__AVX512F__)
#define VL 16
#define SIMD_ISA "avx512"
#elif defined(__AVX2__) || defined(__AVX__)
#define VL 8
#define SIMD_ISA "avx2"
#elif defined(__aarch64__)
#define VL 4
#define SIMD_ISA "neon"
#else
#define VL 4
#define SIMD_ISA "generic"
#endif

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef float vfu __attribute__((vector_size(VL * sizeof(float)), aligned(sizeof(float))));

static inline vf vf_load(const float *p) { return *(const vfu *)p; }
static inline void vf_store(float *p, vf v) { *(vfu *)p = v; }
/* Broadcast; x − 0 is exact for every x, so this compiles to a plain broadcast. */
static inline vf vf_set1(float x) { return x - (vf){0}; }

#endif
