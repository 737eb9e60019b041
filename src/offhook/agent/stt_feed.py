"""How the caller's audio is handed to the STT stream: a frame at a time while there is voice, and a
few frames a message in a long silence.

Every message to the STT is a system call and a WebSocket frame on each side, 50 a second per call,
the largest cost a call has beyond the media socket itself. While the caller has been silent for
`hold_after_s` (the agent talking, the caller listening: half of a typical call) the audio carries
nothing to recognise, and the STT's own end-of-speech timers (Deepgram's endpointing, 300 ms, and
utterance end, 1 s) have long fired, so it goes `max_frames` to a message. Voice sends what is held
at once, with the frame that carries it, so no word reaches the STT later than it would have.
"""
from __future__ import annotations

import math

HOLD_AFTER_S = 2.0
MAX_FRAMES = 3


class SttFeed:
    def __init__(self, hold_after_s: float = HOLD_AFTER_S, max_frames: int = MAX_FRAMES) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        self.hold_after_s = hold_after_s
        self.max_frames = max_frames
        self._held = bytearray()
        self._frames = 0
        self._voiced_at = -math.inf
        self.messages = 0

    def take(self, audio: bytes, speech: bool, now: float) -> bytes | None:
        """The audio to send now (what was held, then this frame's), or None to hold this frame."""
        if speech:
            self._voiced_at = now
        elif now - self._voiced_at >= self.hold_after_s and self._frames + 1 < self.max_frames:
            self._held += audio
            self._frames += 1
            return None
        self.messages += 1
        if not self._frames:
            return audio
        self._held += audio
        out = bytes(self._held)
        self._held.clear()
        self._frames = 0
        return out

    def voiced(self, now: float) -> None:
        """The line is live from `now` (a new STT stream): nothing is held for the next hold_after_s."""
        self._voiced_at = now
        self._held.clear()
        self._frames = 0
