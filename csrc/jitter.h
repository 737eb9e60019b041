/* Jitter buffer for fixed-size audio frames keyed by sequence number, with packet-loss concealment.
 *
 * Playout never reorders and never repeats a received frame. A missing frame is concealed only once
 * `target` frames are waiting behind it (giving reordered frames time to arrive); with nothing at all
 * buffered, pop() conceals without advancing, so a late burst (TCP) is delayed, not discarded. */
#ifndef OFFHOOK_JITTER_H
#define OFFHOOK_JITTER_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t received, played, late, duplicate, reordered, lost, concealed, overflow, underrun;
} oh_jitter_stats;

typedef struct {
    size_t frame_bytes;
    int target, max;
    int ulaw;              /* 1: frames are mu-law bytes; 0: PCM16 LE */
    uint8_t *slots;        /* max frames */
    long long *slot_seq;   /* sequence stored in each slot, or -1 when empty (seq >= 0 only) */
    uint8_t *last;         /* last frame played from real data, for concealment */
    int have_last;
    int started;
    long long next_seq;    /* next sequence number to play */
    long long highest;     /* highest sequence received */
    uint64_t played_bits;  /* bit i: next_seq - 1 - i was played from real data (duplicate vs late) */
    int depth;
    int conceal_run;
    oh_jitter_stats st;
} oh_jitter;

enum { OH_JB_STORED = 0, OH_JB_LATE = 1, OH_JB_DUPLICATE = 2 };
/* pop() results */
enum { OH_JB_PLAYED = 0, OH_JB_CONCEAL_GAP = 1, OH_JB_CONCEAL_UNDERRUN = 2 };

int oh_jb_init(oh_jitter *jb, size_t frame_bytes, int target, int max, int ulaw);
void oh_jb_free(oh_jitter *jb);
int oh_jb_push(oh_jitter *jb, long long seq, const uint8_t *payload);
int oh_jb_pop(oh_jitter *jb, uint8_t *out);
int oh_jb_ready(const oh_jitter *jb);
#endif
