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

#if OH_X86
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
    const __m128i rnd = _mm_set1_epi32(shift > 0 ? (int32_t)1 << (shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(shift);
    size_t j;
    for (j = 0; j + 4 <= count; j += 4) {
        __m256i a[4], s;
        __m128i r;
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
        s = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
        r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        r = _mm_sra_epi32(_mm_add_epi32(r, rnd), cnt);
        _mm_storel_epi64((__m128i *)(out + j), _mm_packs_epi32(r, r));
    }
    if (j < count) run_c(job, i0, p, count - j, out + j);
}

/* Four outputs reduced together into rounded, saturated int16 at out[0..3]. */
OH_AVX2 static inline void store4_avx2(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m128i rnd, __m128i cnt,
                                       int16_t *out) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    r = _mm_sra_epi32(_mm_add_epi32(r, rnd), cnt);
    _mm_storel_epi64((__m128i *)out, _mm_packs_epi32(r, r));
}

/* Integer decimation (L == 1): one phase, so four outputs share each load of the taps. */
OH_AVX2 static void run_dec_avx2(const oh_fir_job *job, long long i0, size_t count, int16_t *out) {
    const int M = job->dq, lo = job->span[0], n = job->span[1], shift = job->shift;
    const int16_t *c = job->coef + lo;
    const __m128i rnd = _mm_set1_epi32(shift > 0 ? (int32_t)1 << (shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(shift);
    size_t j;
    for (j = 0; j + 4 <= count; j += 4) {
        const int16_t *x = job->h + i0 + lo;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        int i;
        for (i = 0; i < n; i += 16) {
            const __m256i cv = _mm256_loadu_si256((const __m256i *)(c + i));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + i))));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + M + i))));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + 2 * M + i))));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + 3 * M + i))));
        }
        store4_avx2(a0, a1, a2, a3, rnd, cnt, out + j);
        i0 += 4 * (long long)M;
    }
    if (j < count) run_c(job, i0, 0, count - j, out + j);
}

OH_AVX512 static inline __m256i fold512(__m512i a) {
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

OH_AVX512 static void run_dec_avx512(const oh_fir_job *job, long long i0, size_t count, int16_t *out) {
    const int M = job->dq, lo = job->span[0], n = job->span[1], shift = job->shift, n32 = n / 32 * 32;
    const int16_t *c = job->coef + lo;
    const __m128i rnd = _mm_set1_epi32(shift > 0 ? (int32_t)1 << (shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(shift);
    size_t j;
    for (j = 0; j + 4 <= count; j += 4) {
        const int16_t *x = job->h + i0 + lo;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m256i b0, b1, b2, b3;
        int i;
        for (i = 0; i < n32; i += 32) {
            const __m512i cv = _mm512_loadu_si512((const void *)(c + i));
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(cv, _mm512_loadu_si512((const void *)(x + i))));
            a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(cv, _mm512_loadu_si512((const void *)(x + M + i))));
            a2 = _mm512_add_epi32(a2, _mm512_madd_epi16(cv, _mm512_loadu_si512((const void *)(x + 2 * M + i))));
            a3 = _mm512_add_epi32(a3, _mm512_madd_epi16(cv, _mm512_loadu_si512((const void *)(x + 3 * M + i))));
        }
        b0 = fold512(a0), b1 = fold512(a1), b2 = fold512(a2), b3 = fold512(a3);
        if (n32 < n) { /* n is a multiple of 16: one half-width block left */
            const __m256i cv = _mm256_loadu_si256((const __m256i *)(c + i));
            b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + i))));
            b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + M + i))));
            b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + 2 * M + i))));
            b3 = _mm256_add_epi32(b3, _mm256_madd_epi16(cv, _mm256_loadu_si256((const __m256i *)(x + 3 * M + i))));
        }
        store4_avx2(b0, b1, b2, b3, rnd, cnt, out + j);
        i0 += 4 * (long long)M;
    }
    if (j < count) run_c(job, i0, 0, count - j, out + j);
}

OH_AVX512 static inline __m256i dot_avx512(const int16_t *c, const int16_t *x, int n) {
    __m512i acc = _mm512_setzero_si512();
    __m256i r;
    int i;
    if (n % 16) {
        int32_t s = 0;
        for (i = 0; i < n; i++) s += (int32_t)c[i] * (int32_t)x[i];
        return _mm256_setr_epi32(s, 0, 0, 0, 0, 0, 0, 0);
    }
    for (i = 0; i + 32 <= n; i += 32)
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_loadu_si512((const void *)(c + i)),
                                                      _mm512_loadu_si512((const void *)(x + i))));
    r = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
    if (i < n)
        r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(c + i)),
                                                  _mm256_loadu_si256((const __m256i *)(x + i))));
    return r;
}

OH_AVX512 static void run_avx512(const oh_fir_job *job, long long i0, int p, size_t count, int16_t *out) {
    const int K = job->K, L = job->L, dq = job->dq, dr = job->dr, shift = job->shift;
    const int16_t *coef = job->coef;
    const int *span = job->span;
    const int16_t *h = job->h;
    const __m128i rnd = _mm_set1_epi32(shift > 0 ? (int32_t)1 << (shift - 1) : 0);
    const __m128i cnt = _mm_cvtsi32_si128(shift);
    size_t j;
    for (j = 0; j + 4 <= count; j += 4) {
        __m256i a[4], s;
        __m128i r;
        int q;
        for (q = 0; q < 4; q++) {
            const int lo = span[2 * p];
            a[q] = dot_avx512(coef + (size_t)p * K + lo, h + i0 + lo, span[2 * p + 1]);
            i0 += dq;
            p += dr;
            if (p >= L) {
                p -= L;
                i0++;
            }
        }
        s = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
        r = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        r = _mm_sra_epi32(_mm_add_epi32(r, rnd), cnt);
        _mm_storel_epi64((__m128i *)(out + j), _mm_packs_epi32(r, r));
    }
    if (j < count) run_c(job, i0, p, count - j, out + j);
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
#if OH_X86
    if (kernel == OH_SIMD_AVX512 && job->L == 1 && job->span[1] % 16 == 0) {
        run_dec_avx512(job, i0, count, out);
        return;
    }
    if (kernel >= OH_SIMD_AVX2 && job->L == 1 && job->span[1] % 16 == 0) {
        run_dec_avx2(job, i0, count, out);
        return;
    }
    if (kernel == OH_SIMD_AVX512) {
        run_avx512(job, i0, p, count, out);
        return;
    }
    if (kernel == OH_SIMD_AVX2) {
        run_avx2(job, i0, p, count, out);
        return;
    }
#endif
    (void)kernel;
    run_c(job, i0, p, count, out);
}

void oh_fir_pack_pairs(const int16_t *restrict h, int32_t *restrict w, long long from, long long to) {
    long long i;
    for (i = from; i < to; i++) w[i] = (int32_t)((uint32_t)(uint16_t)h[i] | ((uint32_t)(uint16_t)h[i + 1] << 16));
}
