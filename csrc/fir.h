/* Inner loops of the polyphase resampler: int16 x int16 -> int32 dot products.
 *
 * Each kernel exists as portable C (auto-vectorised for the baseline target) and, on x86-64, as
 * AVX2 / AVX-512BW intrinsics (simd.h), chosen per resampler at init. All kernels compute the same
 * exact integer sums: their outputs are bit-identical. `kernel` is an OH_SIMD_* level. */
#ifndef OFFHOOK_FIR_H
#define OFFHOOK_FIR_H
#include <stddef.h>
#include <stdint.h>

/* One run of consecutive outputs. Output j (0-based) uses phase p_j and input window start i0_j:
 * out[j] = sat16((sum_k coef[p_j*K + lo + k] * h[i0_j + lo + k] + round) >> shift), k < n, where
 * (lo, n) = span[2p], span[2p+1]; p and i0 advance by (dr, dq) per output, p wrapping at L. */
typedef struct {
    const int16_t *coef;
    const int *span;
    int K, L, dq, dr, shift;
    const int16_t *h;
} oh_fir_job;

void oh_fir_run(int kernel, const oh_fir_job *job, long long i0, int p, size_t count, int16_t *out);

/* Integer upsampling (M == 1) computed 8 outputs of a phase at a time. w[i] packs the input pair
 * (h[i], h[i+1]) in one int32 (low half first); pairs[p*K/2 + q] packs the taps (2q, 2q+1) of phase
 * p; pspan[2p], pspan[2p+1] = first pair and pair count. Writes L*groups*8 outputs starting at
 * input index i0 (phase 0); returns how many (the caller finishes any remainder with oh_fir_run). */
size_t oh_fir_up_avx2(const oh_fir_job *job, const int32_t *w, const int32_t *pairs, const int *pspan,
                      long long i0, size_t m_count, int16_t *out);
/* w[i] = h[i] | h[i+1] << 16 for i in [from, to); reads h[to]. */
void oh_fir_pack_pairs(const int16_t *h, int32_t *w, long long from, long long to);
#endif
