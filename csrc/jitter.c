#include "jitter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "g711.h"

/* Gains for the 1st, 2nd, 3rd consecutive concealed frame; silence after that. */
static const float conceal_gain[] = {0.7f, 0.4f, 0.15f};
#define N_GAIN ((int)(sizeof(conceal_gain) / sizeof(conceal_gain[0])))

int oh_jb_init(oh_jitter *jb, size_t frame_bytes, int target, int max, int ulaw) {
    int i;
    memset(jb, 0, sizeof(*jb));
    if (frame_bytes == 0 || (!ulaw && frame_bytes % 2) || max < 1 || target < 1 || target > max) return -1;
    oh_g711_init();
    jb->frame_bytes = frame_bytes;
    jb->target = target;
    jb->max = max;
    jb->ulaw = ulaw;
    jb->slots = (uint8_t *)malloc(frame_bytes * (size_t)max);
    jb->slot_seq = (long long *)malloc(sizeof(long long) * (size_t)max);
    jb->last = (uint8_t *)malloc(frame_bytes);
    if (!jb->slots || !jb->slot_seq || !jb->last) {
        oh_jb_free(jb);
        return -2;
    }
    for (i = 0; i < max; i++) jb->slot_seq[i] = -1;
    return 0;
}

void oh_jb_free(oh_jitter *jb) {
    free(jb->slots);
    free(jb->slot_seq);
    free(jb->last);
    jb->slots = jb->last = NULL;
    jb->slot_seq = NULL;
}

static void mark_played(oh_jitter *jb, int real) {
    jb->played_bits = (jb->played_bits << 1) | (uint64_t)(real ? 1 : 0);
    jb->next_seq++;
}

/* Skip the next sequence number without playing it (overflow): counts what was lost. */
static void skip_one(oh_jitter *jb) {
    int idx = (int)(jb->next_seq % jb->max);
    if (jb->slot_seq[idx] == jb->next_seq) {
        jb->slot_seq[idx] = -1;
        jb->depth--;
        jb->st.overflow++;
    } else {
        jb->st.lost++;
    }
    mark_played(jb, 0);
}

int oh_jb_push(oh_jitter *jb, long long seq, const uint8_t *payload) {
    int idx;
    if (!jb->started) {
        jb->started = 1;
        jb->next_seq = seq;
        jb->highest = seq - 1;
    }
    if (seq < jb->next_seq) {
        long long back = jb->next_seq - 1 - seq;
        if (back < 64 && ((jb->played_bits >> back) & 1)) {
            jb->st.duplicate++;
            return OH_JB_DUPLICATE;
        }
        jb->st.late++;
        return OH_JB_LATE;
    }
    while (seq >= jb->next_seq + jb->max) skip_one(jb);
    idx = (int)(seq % jb->max);
    if (jb->slot_seq[idx] == seq) {
        jb->st.duplicate++;
        return OH_JB_DUPLICATE;
    }
    memcpy(jb->slots + (size_t)idx * jb->frame_bytes, payload, jb->frame_bytes);
    jb->slot_seq[idx] = seq;
    jb->depth++;
    jb->st.received++;
    if (seq < jb->highest)
        jb->st.reordered++;
    else
        jb->highest = seq;
    return OH_JB_STORED;
}

int oh_jb_ready(const oh_jitter *jb) {
    if (jb->depth == 0) return 0;
    return jb->slot_seq[jb->next_seq % jb->max] == jb->next_seq || jb->depth >= jb->target;
}

static void conceal(oh_jitter *jb, uint8_t *out) {
    size_t n = jb->frame_bytes;
    int k = jb->conceal_run++;
    jb->st.concealed++;
    if (!jb->have_last || k >= N_GAIN) {
        memset(out, jb->ulaw ? OH_ULAW_SILENCE : 0, n);
        return;
    }
    memcpy(out, jb->last, n);
    if (jb->ulaw) {
        oh_ulaw_scale(out, n, conceal_gain[k]);
    } else {
        size_t i;
        for (i = 0; i + 1 < n; i += 2) {
            int16_t v = (int16_t)(out[i] | (out[i + 1] << 8));
            v = (int16_t)lrintf((float)v * conceal_gain[k]);
            out[i] = (uint8_t)(v & 0xFF);
            out[i + 1] = (uint8_t)((uint16_t)v >> 8);
        }
    }
}

int oh_jb_pop(oh_jitter *jb, uint8_t *out) {
    int idx;
    if (jb->started && jb->depth > 0) {
        idx = (int)(jb->next_seq % jb->max);
        if (jb->slot_seq[idx] == jb->next_seq) {
            memcpy(out, jb->slots + (size_t)idx * jb->frame_bytes, jb->frame_bytes);
            memcpy(jb->last, out, jb->frame_bytes);
            jb->have_last = 1;
            jb->slot_seq[idx] = -1;
            jb->depth--;
            jb->conceal_run = 0;
            jb->st.played++;
            mark_played(jb, 1);
            return OH_JB_PLAYED;
        }
        if (jb->depth >= jb->target) {
            conceal(jb, out);
            jb->st.lost++;
            mark_played(jb, 0);
            return OH_JB_CONCEAL_GAP;
        }
    }
    conceal(jb, out);
    jb->st.underrun++;
    return OH_JB_CONCEAL_UNDERRUN;
}
