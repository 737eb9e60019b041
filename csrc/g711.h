/* G.711 mu-law <-> 16-bit linear PCM, table driven (ITU-T G.711, as in CPython's audioop). */
#ifndef OFFHOOK_G711_H
#define OFFHOOK_G711_H
#include <stddef.h>
#include <stdint.h>

#define OH_ULAW_SILENCE 0xFF

void oh_g711_init(void);  /* idempotent; must run once before any other call */
void oh_ulaw_decode(const uint8_t *in, size_t n, int16_t *out);
void oh_ulaw_encode(const int16_t *in, size_t n, uint8_t *out);
/* Scale mu-law samples by gain (0..1) in place, through the linear domain. */
void oh_ulaw_scale(uint8_t *buf, size_t n, float gain);
/* RMS level in dBFS of mu-law / PCM samples; floor_db when empty or digital silence. */
double oh_ulaw_level_db(const uint8_t *in, size_t n, double floor_db);
double oh_pcm_level_db(const int16_t *in, size_t n, double floor_db);
/* oh_ulaw_decode and oh_ulaw_level_db in one pass (the inbound hot path). */
double oh_ulaw_decode_level(const uint8_t *in, size_t n, int16_t *out, double floor_db);
#endif
