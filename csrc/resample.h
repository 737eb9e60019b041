/* Streaming rational resampler: polyphase Kaiser-windowed-sinc FIR on int16 samples.
 *
 * Taps are designed in double and quantised to int16 with a per-filter shift chosen so that no
 * input can overflow the int32 accumulator; int16 x int16 -> int32 dot products vectorise to
 * multiply-add instructions on every x86-64/ARM64 target, which is what makes a 20 ms chunk cost
 * well under a microsecond. Quantisation noise of the taps sits near -85 dB, below the 70 dB spec.
 *
 * Output n is computed as soon as the input sample it needs last has arrived: the filter is causal
 * and linear-phase, so the only latency is its fixed group delay (`delay` samples at dst rate). */
#ifndef OFFHOOK_RESAMPLE_H
#define OFFHOOK_RESAMPLE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int src_rate, dst_rate;
    int L, M;          /* up / down factors: dst/src = L/M in lowest terms */
    int K;             /* taps per phase */
    int delay;         /* group delay in dst samples */
    int shift;         /* taps are scaled by 2^shift */
    int pre;           /* stored input is scaled by 2^-pre (see oh_rs_init) */
    int16_t *coef;     /* L phases x K taps, each phase reversed for a contiguous dot product */
    int16_t *hist;     /* input history, capacity K - 1 + OH_RS_BLOCK */
    int *span;         /* per phase: first non-zero tap, count of taps to the last non-zero one */
    int kernel;        /* OH_SIMD_* level of the dot-product kernels, picked at init */
    int32_t *pairs;    /* integer upsampling only: taps packed in pairs for oh_fir_up_avx2, else NULL */
    int *pspan;        /* per phase: first pair, pair count */
    int32_t *wbuf;     /* input packed in pairs, indexed like hist */
    size_t hist_len;
    long long in_pos;  /* absolute input index of hist[0] (negative before the stream starts) */
    long long total_in;
    long long out_n;   /* absolute index of the next output sample */
} oh_resampler;

#define OH_RS_BLOCK 4096
#define OH_RS_LANES 16 /* int16 lanes in one AVX2 register */
#define OH_RS_PAD 32   /* slack after hist/wbuf: vector loops may read (never use) past the end */
#define OH_RS_MAX_RATIO 48 /* rates 1 kHz..384 kHz, ratio at most 48 either way */

/* Returns 0 on success, -1 on bad rates (outside 1000..384000 Hz or ratio > 48), -2 on out of memory, -3 filter too large. */
int oh_rs_init(oh_resampler *rs, int src_rate, int dst_rate, double atten_db, double delay_limit_s);
void oh_rs_free(oh_resampler *rs);
void oh_rs_reset(oh_resampler *rs);
/* Number of output samples that oh_rs_process will write for n_in more input samples. */
size_t oh_rs_output_len(const oh_resampler *rs, size_t n_in);
/* Consume n_in samples, write every output they make available; returns the count written. */
size_t oh_rs_process(oh_resampler *rs, const int16_t *in, size_t n_in, int16_t *out);
/* Output count that oh_rs_flush will write (the filter tail) */
size_t oh_rs_flush_len(const oh_resampler *rs);
/* Drain the tail with zeros, then reset for a new stream; returns the count written. */
size_t oh_rs_flush(oh_resampler *rs, int16_t *out);
#endif
