#include "vad.h"

#include <math.h>

#include "g711.h"

void oh_vad_init(oh_vad *v, int sample_rate, double threshold_db, double gate_db, double start_ms,
                 double stop_ms) {
    v->sample_rate = sample_rate;
    v->threshold_db = threshold_db;
    v->gate_db = gate_db;
    v->start_ms = start_ms;
    v->stop_ms = stop_ms;
    v->rise_tau_steady_s = 0.4;
    v->rise_tau_varying_s = 10.0;
    v->steady_std_db = 2.5;
    oh_vad_reset(v);
}

void oh_vad_reset(oh_vad *v) {
    v->floor_db = OH_LEVEL_FLOOR_DB;
    v->mean_db = OH_LEVEL_FLOOR_DB;
    v->var_db = 100.0;
    v->initialized = 0;
    v->speech_ms = v->silence_ms = 0.0;
    v->speaking = 0;
    v->transition = 0;
    v->coef_n = 0;
}

/* Smoothing factors depend only on the frame length: three exp() calls cost more than the rest of a
 * frame's work, so they are computed when the length changes (in practice once). */
static void set_coefs(oh_vad *v, size_t n) {
    double dt = (double)n / (double)v->sample_rate;
    v->a_mean = 1.0 - exp(-dt / 0.3);
    v->a_steady = 1.0 - exp(-dt / v->rise_tau_steady_s);
    v->a_varying = 1.0 - exp(-dt / v->rise_tau_varying_s);
    v->coef_n = n;
}

int oh_vad_update(oh_vad *v, double level, size_t n) {
    double ms = (double)n * 1000.0 / (double)v->sample_rate, a, d;
    int speech;
    v->transition = 0;
    if (n == 0) return 0;
    if (n != v->coef_n) set_coefs(v, n);
    if (!v->initialized) {
        /* Calls open with line noise, not with the caller talking over the greeting. */
        v->floor_db = v->mean_db = level;
        v->var_db = 25.0;
        v->initialized = 1;
    }
    a = v->a_mean;
    d = level - v->mean_db;
    v->mean_db += a * d;
    v->var_db = (1.0 - a) * (v->var_db + a * d * d);

    speech = level > v->floor_db + v->threshold_db && level > v->gate_db;

    if (level < v->floor_db) {
        v->floor_db = level;
    } else {
        /* var < std^2 is sqrt(var) < std without the sqrt */
        double rise = v->var_db < v->steady_std_db * v->steady_std_db ? v->a_steady : v->a_varying;
        v->floor_db += (level - v->floor_db) * rise;
    }

    if (speech) {
        v->speech_ms += ms;
        v->silence_ms = 0.0;
        if (!v->speaking && v->speech_ms >= v->start_ms) {
            v->speaking = 1;
            v->transition = 1;
        }
    } else {
        v->silence_ms += ms;
        if (!v->speaking) v->speech_ms = 0.0;
        if (v->speaking && v->silence_ms >= v->stop_ms) {
            v->speaking = 0;
            v->speech_ms = 0.0;
            v->transition = -1;
        }
    }
    return speech;
}

int oh_vad_process(oh_vad *v, const int16_t *pcm, size_t n, double *level_db) {
    double level = oh_pcm_level_db(pcm, n, OH_LEVEL_FLOOR_DB);
    if (level_db) *level_db = level;
    return oh_vad_update(v, level, n);
}
