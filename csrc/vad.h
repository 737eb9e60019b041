/* Energy VAD with an adaptive noise floor and debounced speaking state.
 *
 * A frame is speech when its level is threshold_db above the noise floor and above an absolute gate.
 * The floor drops at once to quieter frames and rises towards louder ones: quickly while the level is
 * steady (stationary noise), slowly while it fluctuates (speech), so a raised noise floor is learnt
 * in a second or two while talking does not teach the floor to treat speech as noise. */
#ifndef OFFHOOK_VAD_H
#define OFFHOOK_VAD_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int sample_rate;
    double threshold_db, gate_db, start_ms, stop_ms;
    double rise_tau_steady_s, rise_tau_varying_s, steady_std_db;
    double floor_db;
    double mean_db, var_db;  /* EMA of level and its variance: stationarity */
    int initialized;
    double speech_ms, silence_ms;
    int speaking;
    int transition;          /* +1 started / -1 stopped on the last frame, else 0 */
    size_t coef_n;           /* frame length the smoothing factors below were computed for */
    double a_mean, a_steady, a_varying;
} oh_vad;

#define OH_LEVEL_FLOOR_DB (-100.0)

void oh_vad_init(oh_vad *v, int sample_rate, double threshold_db, double gate_db, double start_ms,
                 double stop_ms);
void oh_vad_reset(oh_vad *v);
/* Classify n samples; *level_db receives the frame's RMS level in dBFS. Returns 1 for speech. */
int oh_vad_process(oh_vad *v, const int16_t *pcm, size_t n, double *level_db);
/* The same decision for a level already measured over n samples (fused paths). */
int oh_vad_update(oh_vad *v, double level_db, size_t n);
#endif
