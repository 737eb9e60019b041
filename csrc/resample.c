#include "resample.h"

#include "fir.h"
#include "simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OH_PI 3.14159265358979323846

static int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static double bessel_i0(double x) {
    double sum = 1.0, term = 1.0, q = x * x / 4.0;
    int k;
    for (k = 1; k < 200; k++) {
        term *= q / ((double)k * (double)k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

static long long floor_div(long long a, long long b) {
    long long q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

int oh_rs_init(oh_resampler *rs, int src_rate, int dst_rate, double atten_db, double delay_limit_s) {
    int g, j, p, k;
    long long H, N, D;
    double fs_hi, nyq_low, fc, df, beta, half_needed, i0b, maxc = 0.0, maxsum = 0.0;
    double *taps;
    memset(rs, 0, sizeof(*rs));
    if (src_rate < 1000 || dst_rate < 1000 || src_rate > 384000 || dst_rate > 384000) return -1;
    if (dst_rate > OH_RS_MAX_RATIO * src_rate || src_rate > OH_RS_MAX_RATIO * dst_rate) return -1;
    g = gcd(src_rate, dst_rate);
    rs->src_rate = src_rate;
    rs->dst_rate = dst_rate;
    rs->L = dst_rate / g;
    rs->M = src_rate / g;
    fs_hi = (double)src_rate * rs->L;
    /* The spec: passband to 0.85 x the lower Nyquist, stopband from 1.15 x, cutoff in the middle. */
    nyq_low = 0.5 * (src_rate < dst_rate ? src_rate : dst_rate);
    fc = nyq_low;
    df = 0.30 * nyq_low;
    beta = atten_db > 50.0 ? 0.1102 * (atten_db - 8.7) : 0.5842 * pow(atten_db - 21.0, 0.4) + 0.07886 * (atten_db - 21.0);
    half_needed = (atten_db - 7.95) / (2.285 * 2.0 * OH_PI * df / fs_hi) / 2.0;
    /* Half-length is a whole number of dst samples, so the delay is an integer at dst rate. */
    D = (long long)ceil(half_needed / rs->M);
    if (delay_limit_s > 0) {
        long long dmax = (long long)floor(delay_limit_s * dst_rate + 1e-9);
        if (D > dmax) D = dmax;
    }
    if (D < 1) D = 1;
    H = D * rs->M;
    N = 2 * H + 1;
    if (rs->L == 1 && rs->M == 1) {
        H = 0;
        N = 1;
        D = 0;
    }
    if (N > (1 << 22)) return -3;
    rs->delay = (int)D;
    /* Taps per phase rounded up to whole SIMD blocks (zero taps at the old end): the dot product
     * then has no scalar tail, which at 30-90 taps would cost as much as the vector part. */
    rs->K = (int)((N + rs->L - 1) / rs->L);
    rs->K = (rs->K + OH_RS_LANES - 1) / OH_RS_LANES * OH_RS_LANES;
    rs->coef = (int16_t *)calloc((size_t)rs->L * (size_t)rs->K, sizeof(int16_t));
    rs->hist = (int16_t *)calloc((size_t)rs->K - 1 + OH_RS_BLOCK + OH_RS_PAD, sizeof(int16_t));
    taps = (double *)calloc((size_t)rs->L * (size_t)rs->K, sizeof(double));
    if (!rs->coef || !rs->hist || !taps) {
        free(taps);
        oh_rs_free(rs);
        return -2;
    }
    i0b = bessel_i0(beta);
    for (j = 0; j < N; j++) {
        double t = (double)(j - H);
        double x = 2.0 * fc / fs_hi * t;
        double sinc = t == 0 ? 1.0 : sin(OH_PI * x) / (OH_PI * x);
        double r = H == 0 ? 0.0 : t / (double)H;
        double w = bessel_i0(beta * sqrt(fmax(0.0, 1.0 - r * r))) / i0b;
        double h = (double)rs->L * 2.0 * fc / fs_hi * sinc * w;
        p = j % rs->L;
        k = j / rs->L;
        /* phase p, tap k multiplies x[i0 - k]; stored reversed: index K-1-k */
        taps[(size_t)p * rs->K + (rs->K - 1 - k)] = h;
    }
    /* Taps get the largest shift that keeps them in int16. If a phase's |taps| sum could then
     * overflow the int32 accumulator with full-scale input (sum|c| * 2^shift * 32768 >= 2^31), the
     * input is stored pre-shifted right instead: losing its lowest bit or two costs ~-86 dBFS of
     * noise, while coarser taps would cost stopband attenuation. */
    for (p = 0; p < rs->L; p++) {
        double s = 0.0;
        for (k = 0; k < rs->K; k++) {
            double a = fabs(taps[(size_t)p * rs->K + k]);
            s += a;
            if (a > maxc) maxc = a;
        }
        if (s > maxsum) maxsum = s;
    }
    rs->shift = 0;
    while (rs->shift < 24 && maxc * ldexp(1.0, rs->shift + 1) <= 32767.0) rs->shift++;
    rs->pre = 0;
    while (maxsum * ldexp(1.0, rs->shift - rs->pre) >= 65536.0) rs->pre++;
    for (j = 0; j < rs->L * rs->K; j++) rs->coef[j] = (int16_t)lrint(taps[j] * ldexp(1.0, rs->shift));
    free(taps);
    /* Skip taps that quantised to zero at either end of a phase: in the half-band filters of
     * 8<->16 kHz one phase is a single tap, so half the outputs cost one multiply. */
    rs->span = (int *)malloc(sizeof(int) * 2 * (size_t)rs->L);
    if (!rs->span) {
        oh_rs_free(rs);
        return -2;
    }
    for (p = 0; p < rs->L; p++) {
        const int16_t *c = rs->coef + (size_t)p * rs->K;
        int lo = 0, hi = rs->K;
        while (lo < hi && c[lo] == 0) lo++;
        while (hi > lo && c[hi - 1] == 0) hi--;
        if (hi - lo > OH_RS_LANES / 2) lo = hi - (hi - lo + OH_RS_LANES - 1) / OH_RS_LANES * OH_RS_LANES;
        rs->span[2 * p] = lo;
        rs->span[2 * p + 1] = hi - lo;
    }
    rs->kernel = oh_simd_level();
    /* Integer upsampling computes several outputs of one phase per vector (oh_fir_up_avx2): the
     * phases are then plain FIRs over consecutive inputs, and no horizontal sums are needed. */
    if (rs->M == 1 && rs->L > 1 && rs->L <= 64 && rs->kernel >= OH_SIMD_AVX2) {
        const int K2 = rs->K / 2;
        rs->pairs = (int32_t *)malloc(sizeof(int32_t) * (size_t)rs->L * (size_t)K2);
        rs->pspan = (int *)malloc(sizeof(int) * 2 * (size_t)rs->L);
        rs->wbuf = (int32_t *)calloc((size_t)rs->K - 1 + OH_RS_BLOCK + OH_RS_PAD, sizeof(int32_t));
        if (!rs->pairs || !rs->pspan || !rs->wbuf) {
            oh_rs_free(rs);
            return -2;
        }
        for (p = 0; p < rs->L; p++) {
            const int16_t *c = rs->coef + (size_t)p * rs->K;
            const int lo = rs->span[2 * p], hi = lo + rs->span[2 * p + 1];
            for (k = 0; k < K2; k++)
                rs->pairs[(size_t)p * K2 + k] =
                    (int32_t)((uint32_t)(uint16_t)c[2 * k] | ((uint32_t)(uint16_t)c[2 * k + 1] << 16));
            rs->pspan[2 * p] = lo / 2;
            rs->pspan[2 * p + 1] = (hi + 1) / 2 - lo / 2;
        }
    }
    oh_rs_reset(rs);
    return 0;
}

void oh_rs_free(oh_resampler *rs) {
    free(rs->coef);
    free(rs->hist);
    free(rs->span);
    free(rs->pairs);
    free(rs->pspan);
    free(rs->wbuf);
    rs->coef = NULL;
    rs->hist = NULL;
    rs->span = NULL;
    rs->pairs = NULL;
    rs->pspan = NULL;
    rs->wbuf = NULL;
}

void oh_rs_reset(oh_resampler *rs) {
    rs->hist_len = (size_t)(rs->K - 1);
    memset(rs->hist, 0, sizeof(int16_t) * rs->hist_len);
    rs->in_pos = -(long long)(rs->K - 1);
    rs->total_in = 0;
    rs->out_n = 0;
}

static long long outputs_for(const oh_resampler *rs, long long total_in) {
    /* outputs n with floor(n*M/L) <= total_in - 1  <=>  n < ceil(total_in*L/M) */
    return (total_in * rs->L + rs->M - 1) / rs->M;
}

size_t oh_rs_output_len(const oh_resampler *rs, size_t n_in) {
    return (size_t)(outputs_for(rs, rs->total_in + (long long)n_in) - rs->out_n);
}

static size_t run_block(oh_resampler *rs, long long limit, int shift, int16_t *out) {
    /* one division per block; the kernels step phase and input index incrementally */
    const int K = rs->K, L = rs->L, M = rs->M;
    const long long first = rs->out_n;
    const size_t count = (size_t)(limit - first);
    const int16_t *h = rs->hist - (K - 1) - rs->in_pos;
    const oh_fir_job job = {rs->coef, rs->span, K, L, M / L, M % L, shift, h};
    long long t = first * M;
    long long i0 = floor_div(t, L);
    int p = (int)(t - i0 * L);
    size_t done = 0;
    if (rs->pairs && p == 0 && count >= 8 * (size_t)L) {
        const size_t m_count = count / (size_t)L;
        int32_t *w = rs->wbuf - (K - 1) - rs->in_pos;
        oh_fir_pack_pairs(h, w, i0, i0 + (long long)m_count + K - 2);
        done = oh_fir_up_avx2(&job, w, rs->pairs, rs->pspan, i0, m_count, out);
        i0 += (long long)(done / (size_t)L);
    }
    if (done < count) oh_fir_run(rs->kernel, &job, i0, p, count - done, out + done);
    rs->out_n = limit;
    return count;
}

size_t oh_rs_process(oh_resampler *rs, const int16_t *in, size_t n_in, int16_t *out) {
    size_t written = 0;
    const int K = rs->K, L = rs->L, M = rs->M;
    const size_t cap = (size_t)K - 1 + OH_RS_BLOCK;
    const int pre = rs->pre, shift = rs->shift - rs->pre;
    while (n_in > 0) {
        size_t room = cap - rs->hist_len, take = n_in < room ? n_in : room, skip = 0, n, i;
        long long limit, keep_from, drop;
        int16_t *dst = rs->hist + rs->hist_len;
        /* when downsampling, inputs before in_pos feed no output: skip them */
        if (rs->total_in < rs->in_pos)
            skip = rs->in_pos - rs->total_in < (long long)take ? (size_t)(rs->in_pos - rs->total_in) : take;
        n = take - skip;
        if (pre) {
            const int32_t half = 1 << (pre - 1);
            for (i = 0; i < n; i++) dst[i] = (int16_t)(((int32_t)in[skip + i] + half) >> pre);
        } else {
            memcpy(dst, in + skip, n * sizeof(int16_t));
        }
        rs->hist_len += n;
        rs->total_in += (long long)take;
        in += take;
        n_in -= take;
        limit = outputs_for(rs, rs->total_in);
        if (rs->out_n < limit) written += run_block(rs, limit, shift, out + written);
        /* keep only what the next output needs */
        keep_from = floor_div(rs->out_n * M, L) - (K - 1);
        drop = keep_from - rs->in_pos;
        if (drop > (long long)rs->hist_len) {
            rs->hist_len = 0;
            rs->in_pos = keep_from;
        } else if (drop > 0) {
            rs->hist_len -= (size_t)drop;
            memmove(rs->hist, rs->hist + drop, rs->hist_len * sizeof(int16_t));
            rs->in_pos = keep_from;
        }
    }
    return written;
}

static long long flush_target(const oh_resampler *rs) {
    if (rs->total_in == 0) return 0; /* nothing was fed since the last reset: no tail */
    return outputs_for(rs, rs->total_in) + rs->delay;
}

size_t oh_rs_flush_len(const oh_resampler *rs) {
    return (size_t)(flush_target(rs) - rs->out_n);
}

size_t oh_rs_flush(oh_resampler *rs, int16_t *out) {
    /* One zero at a time: the tail is at most a few hundred inputs and flush runs once per stream. */
    static const int16_t zero = 0;
    int16_t tmp[OH_RS_MAX_RATIO + 2];
    long long target = flush_target(rs);
    size_t written = 0;
    while (rs->out_n < target) {
        long long before = rs->out_n;
        size_t got = oh_rs_process(rs, &zero, 1, tmp);
        size_t keep = (long long)got > target - before ? (size_t)(target - before) : got;
        memcpy(out + written, tmp, keep * sizeof(int16_t));
        written += keep;
    }
    oh_rs_reset(rs);
    return written;
}
