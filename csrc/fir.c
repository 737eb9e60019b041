#include "fir.h"

#include "simd.h"

#if OH_X86
#include <immintrin.h>
#endif

static inline int16_t sat16(int32_t v) { return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v); }

static void run_c(const oh_fir_job *job, long long i0, int p, size_t count, int16_t *restrict out) {
    const int K = job->K, L = job->L, dq = job->dq, dr = job->dr, shift = job->shift;
    const int16_t *restrict coef = job->coef;
    const int *restrict span = job->span;
    const int16_t *restrict h = job->h;
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    size_t j;
    for (j = 0; j < count; j++) {
        const int lo = span[2 * p], n = span[2 * p + 1];
        const int16_t *restrict c = coef + (size_t)p * K + lo;
        const int16_t *restrict x = h + i0 + lo;
        int32_t acc = 0;
        int i, k;
        if (n % 16) {
            for (i = 0; i < n; i++) acc += (int32_t)c[i] * (int32_t)x[i];
        } else {
            for (i = 0; i < n; i += 16)
                for (k = 0; k < 16; k++) acc += (int32_t)c[i + k] * (int32_t)x[i + k];
        }
        /* |acc| + round < 2^31 by the choice of shift/pre in oh_rs_init */
        out[j] = sat16((acc + round) >> shift);
        i0 += dq;
        p += dr;
        if (p >= L) {
            p -= L;
            i0++;
        }
    }
}

/* Integer decimation (L == 1) in portable C: four outputs share each tap load, and the compiler
 * vectorises the four reductions with the baseline multiply-add (pmaddwd on x86-64, NEON on ARM64).
 * Output j is c . x[j*M ..] over n taps; does groups of four, returns how many outputs. */
static size_t dec_c(const int16_t *restrict c, const int16_t *restrict x, int M, int n, int shift, size_t count,
                    int16_t *restrict out) {
    const int32_t round = shift > 0 ? (int32_t)1 << (shift - 1) : 0;
    size_t j;
    for (j = 0; j + 4 <= count; j += 4, x += 4 * (size_t)M) {
        const int16_t *restrict x1 = x + M, *restrict x2 = x + 2 * M, *restrict x3 = x + 3 * M;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int i;
        for (i = 0; i < n; i++) {
            const int32_t cv = c[i];
            a0 += cv * x[i];
            a1 += cv * x1[i];
            a2 += cv * x2[i];
            a3 += cv * x3[i];
        }
        out[j] = sat16((a0 + round) >> shift);
        out[j + 1] = sat16((a1 + round) >> shift);
        out[j + 2] = sat16((a2 + round) >> shift);
        out[j + 3] = sat16((a3 + round) >> shift);
    }
    return j;
}

/* Integer upsampling (M == 1) in portable C: four consecutive outputs of one phase read windows one
 * input apart, so they are dec_c with stride 1. Starts at phase 0 of input i0; returns outputs done. */
static size_t up_c(const oh_fir_job *job, long long i0, size_t count, int16_t *restrict out) {
    const int L = job->L;
    const size_t groups = count / (4 * (size_t)L);
    size_t g;
    for (g = 0; g < groups; g++) {
        int16_t *og = out + g * 4 * (size_t)L;
        int p, j;
        for (p = 0; p < L; p++) {
            const int lo = job->span[2 * p];
            int16_t y[4];
            dec_c(job->coef + (size_t)p * job->K + lo, job->h + i0 + 4 * (long long)g + lo, 1, job->span[2 * p + 1],
                  job->shift, 4, y);
            for (j = 0; j < 4; j++) og[j * L + p] = y[j];
        }
    }
    return groups * 4 * (size_t)L;
}

#if OH_X86
/* Four outputs reduced together, rounded, shifted and saturated to int16 at out[0..3]. */
OH_AVX2 static inline void store4_avx2(const __m256i a[4], int shift, int16_t *out) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    r = _mm_add_epi32(r, _mm_set1_epi32(shift > 0 ? (int32_t)1 << (shift - 1) : 0));
    r = _mm_sra_epi32(r, _mm_cvtsi32_si128(shift));
    _mm_storel_epi64((__m128i *)out, _mm_packs_epi32(r, r));
}

OH_AVX2 static inline __m256i dot_avx2(const int16_t *c, const int16_t *x, int n) {
    __m256i acc;
    int i;
    if (n % 16) { /* short phases (a half-band filter's single centre tap): no vector work */
        int32_t s = 0;
        for (i = 0; i < n; i++) s += (int32_t)c[i] * (int32_t)x[i];
        return _mm256_setr_epi32(s, 0, 0, 0, 0, 0, 0, 0);
    }
    acc = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)c), _mm256_loadu_si256((const __m256i *)x));
    for (i = 16; i < n; i += 16)
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(c + i)),
                                                      _mm256_loadu_si256((const __m256i *)(x + i))));
    return acc;
}

/* Four outputs share one horizontal reduction: that reduction, not the multiply-adds, is what a
 * 30-90 tap dot product mostly costs when done one output at a time. */
OH_AVX2 static void run_avx2(const oh_fir_job *job, long long i0, int p, size_t count, int16_t *out) {
    const int K = job->K, L = job->L, dq = job->dq, dr = job->dr, shift = job->shift;
    const int16_t *coef = job->coef;
    const int *span = job->span;
    const int16_t *h = job->h;
    size_t j;
    for (j = 0; j + 4 <= count; j += 4) {
        __m256i a[4];
        int q;
        for (q = 0; q < 4; q++) {
            const int lo = span[2 * p];
            a[q] = dot_avx2(coef + (size_t)p * K + lo, h + i0 + lo, span[2 * p + 1]);
            i0 += dq;
            p += dr;
            if (p >= L) {
                p -= L;
                i0++;
            }
        }
        store4_avx2(a, shift, out + j);
    }
    if (j < count) run_c(job, i0, p, count - j, out + j);
}

/* acc[q] += taps c[0..15] . x[q*M ..] for the four outputs q: the taps are loaded once for all four. */
OH_AVX2 static inline void mac4_avx2(const int16_t *c, const int16_t *x, int M, __m256i acc[4]) {
    const __m256i cv = _mm256_loadu_si256((const __m256i *)c);
    int q;
    for (q = 0; q < 4; q++)
        acc[q] = _mm256_add_epi32(acc[q], _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + q * M))));
}

OH_AVX512 static inline void mac4_avx512(const int16_t *c, const int16_t *x, int M, __m512i acc[4]) {
    const __m512i cv = _mm512_loadu_si512((const void *)c);
    int q;
    for (q = 0; q < 4; q++)
        acc[q] = _mm512_add_epi32(acc[q], _mm512_madd_epi16(cv, _mm512_loadu_si512((const void *)(x + q * M))));
}

/* Integer decimation (L == 1): one phase, so four outputs share each load of the taps. Output j
 * is c . x[j*M ..] over n taps (a multiple of 16); does groups of four, returns how many outputs. */
OH_AVX2 static size_t dec_avx2(const int16_t *c, const int16_t *x, int M, int n, int shift, size_t count, int16_t *out) {
    size_t j;
    for (j = 0; j + 4 <= count; j += 4, x += 4 * (size_t)M) {
        __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        int i;
        for (i = 0; i < n; i += 16) mac4_avx2(c + i, x + i, M, a);
        store4_avx2(a, shift, out + j);
    }
    return j;
}

OH_AVX512 static inline __m256i fold512(__m512i a) {
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

/* The same with 32 taps per step (half the instructions on a CPU with 512-bit multiply-adds). */
OH_AVX512 static size_t dec_avx512(const int16_t *c, const int16_t *x, int M, int n, int shift, size_t count,
                                   int16_t *out) {
    const int n32 = n / 32 * 32;
    size_t j;
    for (j = 0; j + 4 <= count; j += 4, x += 4 * (size_t)M) {
        __m512i a[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        __m256i b[4];
        int i, q;
        for (i = 0; i < n32; i += 32) mac4_avx512(c + i, x + i, M, a);
        for (q = 0; q < 4; q++) b[q] = fold512(a[q]);
        if (n32 < n) mac4_avx2(c + n32, x + n32, M, b); /* one half-width block left */
        store4_avx2(b, shift, out + j);
    }
    return j;
}

OH_AVX2 size_t oh_fir_up_avx2(const oh_fir_job *job, const int32_t *w, const int32_t *pairs, const int *pspan,
                              long long i0, size_t m_count, int16_t *out) {
    enum { MAX_L = 64 };
    const int L = job->L, K2 = job->K / 2;
    const __m256i rnd = _mm256_set1_epi32(job->shift > 0 ? (int32_t)1 << (job->shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(job->shift);
    const size_t groups = L <= MAX_L ? m_count / 8 : 0;
    int16_t tmp[MAX_L * 8];
    size_t g;
    for (g = 0; g < groups; g++) {
        const int32_t *wg = w + i0 + 8 * (long long)g;
        int16_t *og = out + g * 8 * (size_t)L;
        __m128i v[2];
        int p, j;
        for (p = 0; p < L; p++) {
            const int32_t *pp = pairs + (size_t)p * K2 + pspan[2 * p];
            const int32_t *ww = wg + 2 * pspan[2 * p];
            const int nq = pspan[2 * p + 1];
            __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
            __m128i y;
            int q;
            for (q = 0; q + 1 < nq; q += 2) {
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(ww + 2 * q)),
                                                            _mm256_set1_epi32(pp[q])));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(ww + 2 * q + 2)),
                                                            _mm256_set1_epi32(pp[q + 1])));
            }
            if (q < nq)
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(ww + 2 * q)),
                                                            _mm256_set1_epi32(pp[q])));
            a0 = _mm256_sra_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), rnd), cnt);
            y = _mm_packs_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
            if (L == 2)
                v[p] = y;
            else
                _mm_storeu_si128((__m128i *)(tmp + 8 * p), y);
        }
        if (L == 2) {
            _mm_storeu_si128((__m128i *)og, _mm_unpacklo_epi16(v[0], v[1]));
            _mm_storeu_si128((__m128i *)(og + 8), _mm_unpackhi_epi16(v[0], v[1]));
        } else {
            for (j = 0; j < 8; j++)
                for (p = 0; p < L; p++) og[j * L + p] = tmp[8 * p + j];
        }
    }
    return groups * 8 * (size_t)L;
}
#else
size_t oh_fir_up_avx2(const oh_fir_job *job, const int32_t *w, const int32_t *pairs, const int *pspan,
                      long long i0, size_t m_count, int16_t *out) {
    (void)job, (void)w, (void)pairs, (void)pspan, (void)i0, (void)m_count, (void)out;
    return 0;
}
#endif

void oh_fir_run(int kernel, const oh_fir_job *job, long long i0, int p, size_t count, int16_t *out) {
    if (job->L == 1 && job->span[1] % 16 == 0) {
        const int M = job->dq, lo = job->span[0], n = job->span[1];
        const int16_t *c = job->coef + lo, *x = job->h + i0 + lo;
        size_t done;
#if OH_X86
        if (kernel >= OH_SIMD_AVX2)
            done = kernel == OH_SIMD_AVX512 ? dec_avx512(c, x, M, n, job->shift, count, out)
                                            : dec_avx2(c, x, M, n, job->shift, count, out);
        else
#endif
            done = dec_c(c, x, M, n, job->shift, count, out);
        i0 += (long long)done * M;
        out += done;
        count -= done;
    }
#if OH_X86
    else if (kernel >= OH_SIMD_AVX2) { /* AVX-512 measured no faster here: phases are short and vary */
        run_avx2(job, i0, p, count, out);
        return;
    }
#endif
    if (job->L > 1 && job->dq == 0 && job->dr == 1 && p == 0) { /* M == 1 */
        const size_t done = up_c(job, i0, count, out);
        i0 += (long long)(done / (size_t)job->L);
        out += done;
        count -= done;
    }
    (void)kernel;
    run_c(job, i0, p, count, out);
}

void oh_fir_pack_pairs(const int16_t *restrict h, int32_t *restrict w, long long from, long long to) {
    long long i;
    for (i = from; i < to; i++) w[i] = (int32_t)((uint32_t)(uint16_t)h[i] | ((uint32_t)(uint16_t)h[i + 1] << 16));
}
