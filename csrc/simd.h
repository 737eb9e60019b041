/* Run-time choice of instruction set. The wheel is built for baseline x86-64; the few hot loops
 * that gain from wider vectors also exist as functions compiled for AVX2 / AVX-512BW only (GCC and
 * clang target attributes), and these are called only after the CPU has been seen to support them. */
#ifndef OFFHOOK_SIMD_H
#define OFFHOOK_SIMD_H

enum { OH_SIMD_SCALAR = 0, OH_SIMD_AVX2 = 1, OH_SIMD_AVX512 = 2 };

#if defined(__x86_64__) && defined(__GNUC__)
#define OH_X86 1
#define OH_AVX2 __attribute__((target("avx2")))
#define OH_AVX512 __attribute__((target("avx2,avx512f,avx512bw")))
#else
#define OH_X86 0
#endif

/* Best level this CPU runs, capped by OFFHOOK_SIMD=scalar|avx2 in the environment (read once). */
int oh_simd_level(void);
/* Lower (or restore) the level used from now on, never above what the CPU runs; returns the level
 * in effect. For tests that compare every kernel against the portable C. */
int oh_simd_cap(int max_level);
#endif
