#include "simd.h"

#include <stdlib.h>
#include <string.h>

static int level = -1;

static int detect(void) {
    const char *cap = getenv("OFFHOOK_SIMD");
    int best = OH_SIMD_SCALAR;
#if OH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) best = OH_SIMD_AVX2;
    if (best == OH_SIMD_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        best = OH_SIMD_AVX512;
#endif
    if (cap && strcmp(cap, "scalar") == 0) return OH_SIMD_SCALAR;
    if (cap && strcmp(cap, "avx2") == 0 && best > OH_SIMD_AVX2) return OH_SIMD_AVX2;
    return best;
}

int oh_simd_level(void) {
    if (level < 0) level = detect();
    return level;
}

int oh_simd_cap(int max_level) {
    int best = detect();
    level = max_level < best ? max_level : best;
    return level;
}
