#include "g711.h"

#include <math.h>

static int16_t ulaw_to_lin[256];
/* Indexed by the top 14 bits of a 16-bit sample: the encoder only looks at those (G.711 is a
 * 14-bit law), so 16 KiB covers every input and encoding is one load per sample. */
static uint8_t lin14_to_ulaw[1 << 14];
static double ulaw_sq[256];
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
        ulaw_sq[i] = (double)ulaw_to_lin[i] * (double)ulaw_to_lin[i];
    }
    for (i = 0; i < (1 << 14); i++) {
        int v = i >= (1 << 13) ? i - (1 << 14) : i; /* signed 14-bit value */
        lin14_to_ulaw[i] = encode_14(v);
    }
    ready = 1;
}

void oh_ulaw_decode(const uint8_t *in, size_t n, int16_t *out) {
    size_t i;
    for (i = 0; i < n; i++) out[i] = ulaw_to_lin[in[i]];
}

void oh_ulaw_encode(const int16_t *in, size_t n, uint8_t *out) {
    size_t i;
    for (i = 0; i < n; i++) out[i] = lin14_to_ulaw[((uint16_t)in[i]) >> 2];
}

void oh_ulaw_scale(uint8_t *buf, size_t n, float gain) {
    size_t i;
    for (i = 0; i < n; i++) {
        float v = (float)ulaw_to_lin[buf[i]] * gain;
        buf[i] = lin14_to_ulaw[((uint16_t)(int16_t)lrintf(v)) >> 2];
    }
}

static double to_db(double sum_sq, size_t n, double floor_db) {
    double db;
    if (n == 0 || sum_sq <= 0.0) return floor_db;
    db = 10.0 * log10(sum_sq / (double)n / (32768.0 * 32768.0));
    return db < floor_db ? floor_db : db;
}

double oh_ulaw_level_db(const uint8_t *in, size_t n, double floor_db) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += ulaw_sq[in[i]];
    return to_db(s, n, floor_db);
}

double oh_pcm_level_db(const int16_t *in, size_t n, double floor_db) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)in[i] * (double)in[i];
    return to_db(s, n, floor_db);
}
