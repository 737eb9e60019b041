# C kernels in csrc/: declarations only (the logic lives in the C files).
from libc.stdint cimport int16_t, uint8_t, uint64_t

cdef extern from "g711.h" nogil:
    void oh_g711_init()
    void oh_ulaw_decode(const uint8_t *inp, size_t n, int16_t *out)
    void oh_ulaw_encode(const int16_t *inp, size_t n, uint8_t *out)
    double oh_ulaw_level_db(const uint8_t *inp, size_t n, double floor_db)
    double oh_pcm_level_db(const int16_t *inp, size_t n, double floor_db)
    double oh_ulaw_decode_level(const uint8_t *inp, size_t n, int16_t *out, double floor_db)
    int OH_ULAW_SILENCE

cdef extern from "simd.h" nogil:
    int oh_simd_level()
    int oh_simd_cap(int max_level)

cdef extern from "resample.h" nogil:
    ctypedef struct oh_resampler:
        int src_rate, dst_rate, L, M, K, delay
    int oh_rs_init(oh_resampler *rs, int src_rate, int dst_rate, double atten_db, double delay_limit_s)
    void oh_rs_free(oh_resampler *rs)
    void oh_rs_reset(oh_resampler *rs)
    size_t oh_rs_output_len(const oh_resampler *rs, size_t n_in)
    size_t oh_rs_process(oh_resampler *rs, const int16_t *inp, size_t n_in, int16_t *out)
    size_t oh_rs_flush_len(const oh_resampler *rs)
    size_t oh_rs_flush(oh_resampler *rs, int16_t *out)

cdef extern from "jitter.h" nogil:
    ctypedef struct oh_jitter_stats:
        uint64_t received, played, late, duplicate, reordered, lost, concealed, overflow, underrun
    ctypedef struct oh_jitter:
        size_t frame_bytes
        int target, max, depth
        oh_jitter_stats st
    int oh_jb_init(oh_jitter *jb, size_t frame_bytes, int target, int max, int ulaw)
    void oh_jb_free(oh_jitter *jb)
    int oh_jb_push(oh_jitter *jb, long long seq, const uint8_t *payload)
    int oh_jb_pop(oh_jitter *jb, uint8_t *out)
    int oh_jb_ready(const oh_jitter *jb)

cdef extern from "vad.h" nogil:
    ctypedef struct oh_vad:
        int sample_rate
        double threshold_db, gate_db, start_ms, stop_ms, floor_db, speech_ms, silence_ms
        int speaking, transition
    double OH_LEVEL_FLOOR_DB
    void oh_vad_init(oh_vad *v, int sample_rate, double threshold_db, double gate_db, double start_ms,
                     double stop_ms)
    void oh_vad_reset(oh_vad *v)
    int oh_vad_process(oh_vad *v, const int16_t *pcm, size_t n, double *level_db)
    int oh_vad_update(oh_vad *v, double level_db, size_t n)
