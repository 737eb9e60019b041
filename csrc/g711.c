#include "g711.h"

#include <math.h>

#include "simd.h"

#if OH_X86
#include <immintrin.h>
#endif

static int16_t ulaw_to_lin[256];
/* Indexed by the top 14 bits of a 16-bit sample: the encoder only looks at those (G.711 is a
 * 14-bit law), so 16 KiB covers every input and encoding is one load per sample. */
static uint8_t lin14_to_ulaw[1 << 14];
static uint32_t ulaw_sq[256]; /* 32124^2 < 2^32 */
static int ready = 0;

static int16_t decode_one(uint8_t u) {
    int t;
    u = (uint8_t)~u;
    t = ((u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

static uint8_t encode_14(int pcm) {
    static const int seg_end[8] = {0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF};
    int mask, seg;
    if (pcm < 0) {
        pcm = -pcm;
        mask = 0x7F;
    } else {
        mask = 0xFF;
    }
    if (pcm > 8159) pcm = 8159;
    pcm += 0x84 >> 2;
    for (seg = 0; seg < 8; seg++)
        if (pcm <= seg_end[seg]) break;
    if (seg >= 8) return (uint8_t)(0x7F ^ mask);
    return (uint8_t)(((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask);
}

void oh_g711_init(void) {
    int i;
    if (ready) return;
    for (i = 0; i < 256; i++) {
        ulaw_to_lin[i] = decode_one((uint8_t)i);
        ulaw_sq[i] = (uint32_t)((int32_t)ulaw_to_lin[i] * (int32_t)ulaw_to_lin[i]);
    }
    for (i = 0; i < (1 << 14); i++) {
        int v = i >= (1 << 13) ? i - (1 << 14) : i; /* signed 14-bit value */
        lin14_to_ulaw[i] = encode_14(v);
    }
    ready = 1;
}

#if OH_X86
/* The decoder's arithmetic on 16 samples at once (a table lookup per sample is a load each, and
 * the loads were the whole cost); the exponent shift is a multiply by 2^e looked up with pshufb.
 * Adds each sample's square to *sq when sq is not NULL. Returns how many samples it did. */
OH_AVX2 static size_t decode_avx2(const uint8_t *in, size_t n, int16_t *out, uint64_t *sq) {
    const __m256i ff = _mm256_set1_epi16(0xFF), m0f = _mm256_set1_epi16(0x0F), m07 = _mm256_set1_epi16(0x07);
    const __m256i bias = _mm256_set1_epi16(0x84), hi = _mm256_set1_epi16((short)0x8000);
    const __m256i pow2 = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, (char)128, 0, 0, 0, 0, 0, 0, 0, 0,
                                          1, 2, 4, 8, 16, 32, 64, (char)128, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc = zero;
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256i u = _mm256_xor_si256(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(in + i))), ff);
        __m256i e = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(u, 4), m07), hi);
        __m256i t = _mm256_add_epi16(_mm256_slli_epi16(_mm256_and_si256(u, m0f), 3), bias);
        __m256i neg = _mm256_srai_epi16(_mm256_slli_epi16(u, 8), 15);
        __m256i v;
        t = _mm256_mullo_epi16(t, _mm256_shuffle_epi8(pow2, e)); /* <= 252 * 128: no overflow */
        t = _mm256_sub_epi16(t, bias);
        v = _mm256_sub_epi16(_mm256_xor_si256(t, neg), neg);
        _mm256_storeu_si256((__m256i *)(out + i), v);
        if (sq) { /* |v| <= 32124, so a pair of squares fits int32 */
            __m256i m = _mm256_madd_epi16(v, v);
            acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_unpacklo_epi32(m, zero), _mm256_unpackhi_epi32(m, zero)));
        }
    }
    if (sq) {
        __m128i r = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        *sq += (uint64_t)_mm_cvtsi128_si64(r) + (uint64_t)_mm_extract_epi64(r, 1);
    }
    return i;
}

/* Sum of squares of PCM16; a pair of squares can reach 2^31, so the int32 pair sums are unsigned. */
OH_AVX2 static size_t sumsq_avx2(const int16_t *in, size_t n, uint64_t *sq) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc = zero;
    __m128i r;
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(in + i)), m = _mm256_madd_epi16(v, v);
        acc = _mm256_add_epi64(acc, _mm256_add_epi64(_mm256_unpacklo_epi32(m, zero), _mm256_unpackhi_epi32(m, zero)));
    }
    r = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    *sq += (uint64_t)_mm_cvtsi128_si64(r) + (uint64_t)_mm_extract_epi64(r, 1);
    return i;
}
/* The encoder's arithmetic on 8 samples in 32-bit lanes: |x| biased, segment = exponent of its
 * float conversion, mantissa by a per-lane shift. Bit-exact with the table (tested on all inputs). */
OH_AVX2 static inline __m256i encode8_avx2(__m128i pcm) {
    const __m256i v = _mm256_srai_epi32(_mm256_cvtepi16_epi32(pcm), 2); /* G.711 looks at 14 bits */
    const __m256i neg = _mm256_srai_epi32(v, 31);
    /* 8159 + 33 = 8192 would be segment 8; 8191 encodes the same (segment 7, mantissa 15) */
    __m256i mag = _mm256_min_epi32(_mm256_add_epi32(_mm256_min_epi32(_mm256_abs_epi32(v), _mm256_set1_epi32(8159)),
                                                    _mm256_set1_epi32(33)), _mm256_set1_epi32(8191));
    const __m256i seg = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(mag)), 23),
                                         _mm256_set1_epi32(127 + 5)); /* mag >= 33: exponent >= 5 */
    const __m256i mant = _mm256_and_si256(_mm256_srlv_epi32(mag, _mm256_add_epi32(seg, _mm256_set1_epi32(1))),
                                          _mm256_set1_epi32(0x0F));
    const __m256i mask = _mm256_xor_si256(_mm256_set1_epi32(0xFF), _mm256_and_si256(neg, _mm256_set1_epi32(0x80)));
    return _mm256_xor_si256(_mm256_or_si256(_mm256_slli_epi32(seg, 4), mant), mask);
}

OH_AVX2 static size_t encode_avx2(const int16_t *in, size_t n, uint8_t *out) {
    size_t i;
    for (i = 0; i + 16 <= n; i += 16) {
        const __m256i a = encode8_avx2(_mm_loadu_si128((const __m128i *)(in + i)));
        const __m256i b = encode8_avx2(_mm_loadu_si128((const __m128i *)(in + i + 8)));
        const __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm_storeu_si128((__m128i *)(out + i), _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    }
    return i;
}
#endif

static size_t decode_fast(const uint8_t *in, size_t n, int16_t *out, uint64_t *sq) {
#if OH_X86
    if (oh_simd_level() >= OH_SIMD_AVX2) return decode_avx2(in, n, out, sq);
#endif
    (void)in, (void)n, (void)out, (void)sq;
    return 0;
}

void oh_ulaw_decode(const uint8_t *in, size_t n, int16_t *out) {
    size_t i;
    for (i = decode_fast(in, n, out, NULL); i < n; i++) out[i] = ulaw_to_lin[in[i]];
}

void oh_ulaw_encode(const int16_t *in, size_t n, uint8_t *out) {
    size_t i = 0;
#if OH_X86
    if (oh_simd_level() >= OH_SIMD_AVX2) i = encode_avx2(in, n, out);
#endif
    for (; i < n; i++) out[i] = lin14_to_ulaw[((uint16_t)in[i]) >> 2];
}

void oh_ulaw_scale(uint8_t *buf, size_t n, float gain) {
    size_t i;
    for (i = 0; i < n; i++) {
        float v = (float)ulaw_to_lin[buf[i]] * gain;
        buf[i] = lin14_to_ulaw[((uint16_t)(int16_t)lrintf(v)) >> 2];
    }
}

static double to_db(uint64_t sum_sq, size_t n, double floor_db) {
    double db;
    if (n == 0 || sum_sq == 0) return floor_db;
    db = 10.0 * log10((double)sum_sq / (double)n / (32768.0 * 32768.0));
    return db < floor_db ? floor_db : db;
}

double oh_ulaw_level_db(const uint8_t *in, size_t n, double floor_db) {
    uint64_t s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += ulaw_sq[in[i]];
    return to_db(s, n, floor_db);
}

double oh_ulaw_decode_level(const uint8_t *in, size_t n, int16_t *out, double floor_db) {
    uint64_t s = 0;
    size_t i;
    for (i = decode_fast(in, n, out, &s); i < n; i++) {
        out[i] = ulaw_to_lin[in[i]];
        s += ulaw_sq[in[i]];
    }
    return to_db(s, n, floor_db);
}

double oh_pcm_level_db(const int16_t *in, size_t n, double floor_db) {
    uint64_t s = 0;
    size_t i = 0;
#if OH_X86
    if (oh_simd_level() >= OH_SIMD_AVX2) i = sumsq_avx2(in, n, &s);
#endif
    for (; i < n; i++) s += (uint64_t)((int32_t)in[i] * (int32_t)in[i]);
    return to_db(s, n, floor_db);
}
