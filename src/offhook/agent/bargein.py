"""Deciding, frame by frame, that the caller is talking over the agent (sans-IO).

Echo of the agent's own voice comes back on the line quieter than the agent's audio (a phone
hybrid returns it some 10-30 dB down), while a caller talking over the agent is about as loud as
the agent or louder. So a frame counts towards a barge-in only when the VAD calls it speech *and*
its level is within `margin_db` of the agent audio playing at that moment (or above it); once such
frames add up to `min_ms` the detector fires, once per burst. Short noises (a click, a breath) never
reach `min_ms`; a syllable dip of a frame or two does not restart the count.

Loud enough and long enough is not yet speech: a cough, a breath on the mouthpiece or a burst of
line noise passes both tests. Speech that interrupts is voiced within its first syllable (the vocal
folds make it periodic at the pitch, 80-400 Hz), those noises are not. So the detector also needs
`min_voiced` voiced frames among the last `voiced_window` frames of the burst before it fires. The
voicing measure runs only on frames of a burst in progress (caller as loud as the agent while the
agent talks), so a call pays for it only while a barge-in is being timed.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from offhook.audio import ulaw_decode

FRAME_S = 0.020
RATE = 8000
LAG_MIN, LAG_MAX = RATE * 25 // 10000, RATE * 125 // 10000  # pitch periods 2.5-12.5 ms (400-80 Hz)
_NFFT = 1024  # >= 2 x the 40 ms window: the FFT autocorrelation does not wrap round


def periodicity(pcm: np.ndarray) -> float:
    """Peak normalised autocorrelation of `pcm` (8 kHz samples) over the pitch lags, 0..1.

    Each lag's product is normalised by the energies of the two overlapping parts, so a window
    whose speech starts half-way still scores. The peak is searched only past the
    autocorrelation's first dip below zero: low-pass noise (breath, handling rumble) is smooth,
    so it correlates with itself at short lags without being periodic, and never dips there."""
    x = np.asarray(pcm, dtype=np.float64)
    n = len(x)
    if n <= LAG_MAX:
        raise ValueError(f"periodicity needs more than {LAG_MAX} samples, got {n}")
    x = x - x.mean()
    spec = np.fft.rfft(x, _NFFT)
    ac = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, _NFFT)[:LAG_MAX + 1]
    if ac[0] <= 0:
        return 0.0
    below = np.flatnonzero(ac[1:] < 0)
    if not len(below):
        return 0.0
    first = max(LAG_MIN, int(below[0]) + 1)
    if first > LAG_MAX:
        return 0.0
    c = np.concatenate(([0.0], np.cumsum(x * x)))
    lags = np.arange(first, LAG_MAX + 1)
    norm = np.sqrt(c[n - lags] * (c[n] - c[lags]))
    r = np.divide(ac[lags], norm, out=np.zeros(len(lags)), where=norm > 0)
    return float(r.max())


@dataclass
class BargeInDetector:
    min_ms: float = 100.0
    margin_db: float = 6.0        # caller frames may be this much quieter than the agent audio
    gap_frames: int = 2           # non-qualifying frames tolerated inside a burst
    min_voiced: int = 2           # voiced frames needed among the burst's last `voiced_window`
    voiced_window: int = 5
    voicing_threshold: float = 0.5  # periodicity of a voiced frame; white noise scores ~0.2
    _run_ms: float = 0.0
    _gap: int = 0
    _onset: float | None = None
    _fired: bool = False
    _speech_since: float | None = None  # start of the current run of VAD speech, whatever its level
    _voiced: deque = field(default_factory=deque)  # voicing of the burst's last qualifying frames
    _prev: bytes = b""            # the frame before, so the voicing window spans 40 ms (80 Hz x 3)

    def frame(self, speech: bool, level_db: float, agent_db: float | None, now: float,
              audio: bytes) -> float | None:
        """Feed one inbound frame (received at `now`; `audio` is its mu-law). Returns the burst's
        onset time (where its speech began) when the burst has just become a barge-in, else None.
        agent_db None: the agent is not talking; -inf: it is mid-reply but silent at this moment
        (any speech counts)."""
        prev, self._prev = self._prev, audio
        if speech:
            if self._speech_since is None:
                self._speech_since = now - FRAME_S
        else:
            self._speech_since = None
        if agent_db is None:
            self.reset()
            return None
        if speech and level_db >= agent_db - self.margin_db:
            if self._onset is None:
                self._onset = min(now - FRAME_S, self._speech_since if self._speech_since is not None else now)
            self._run_ms += FRAME_S * 1000
            self._gap = 0
            if self._fired:
                return None
            self._voiced.append(self.voiced(prev, audio))
            if len(self._voiced) > self.voiced_window:
                self._voiced.popleft()
            if self._run_ms >= self.min_ms - 1e-6 and sum(self._voiced) >= self.min_voiced:
                self._fired = True
                return self._onset
            return None
        self._gap += 1
        if self._gap > self.gap_frames:
            self.reset()
        return None

    def voiced(self, prev: bytes, audio: bytes) -> bool:
        pcm = np.frombuffer(ulaw_decode(prev + audio), dtype="<i2")
        if len(pcm) <= LAG_MAX:
            return False
        return periodicity(pcm) >= self.voicing_threshold

    def reset(self) -> None:
        self._run_ms, self._gap, self._onset, self._fired = 0.0, 0, None, False
        self._voiced.clear()

    @property
    def in_burst(self) -> bool:
        return self._onset is not None


@dataclass
class AgentLevels:
    """The level of each agent frame, so the detector can compare a caller frame with the agent
    audio the caller was hearing at that moment (the pacer's ledger says which frame that is)."""
    tail_frames: int = 6          # echo lingers: compare with the loudest of the last 120 ms
    levels: dict[int, list[float]] = field(default_factory=dict)

    def add(self, utterance_id: int, frame_levels: list[float]) -> None:
        self.levels.setdefault(utterance_id, []).extend(frame_levels)
        while len(self.levels) > 16:
            self.levels.pop(next(iter(self.levels)))

    def at(self, utterance, now: float) -> float | None:
        """Level of the agent audio playing at `now` in `utterance` (a pacer Utterance), None if none."""
        if utterance is None:
            return None
        starts = utterance.play_starts
        i = bisect.bisect_right(starts, now) - 1
        if i < 0 or now >= starts[i] + FRAME_S * (1 + self.tail_frames):
            return None
        lv = self.levels.get(utterance.id)
        if not lv:
            return None
        lo = max(0, i - self.tail_frames)
        window = lv[lo:i + 1]
        return max(window) if window else None


def heard_words(alignment, heard_ms: float) -> str:
    """The words of an utterance whose audio had fully played by heard_ms, from the TTS alignment
    ((text, start_ms, end_ms) pieces that concatenate to the spoken text). A word counts as heard
    once its last character has played (its trailing space or punctuation need not have)."""
    out: list[str] = []
    word = ""
    word_end = 0.0
    for text, _, end in alignment:
        for ch in text:
            if ch.isspace():
                if word:
                    if word_end > heard_ms:
                        return " ".join(out)
                    out.append(word)
                    word = ""
                continue
            word += ch
            if ch.isalnum():
                word_end = end
    if word and word_end <= heard_ms:
        out.append(word)
    return " ".join(out)
