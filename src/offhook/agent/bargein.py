"""Deciding, frame by frame, that the caller is talking over the agent (sans-IO).

Echo of the agent's own voice comes back on the line quieter than the agent's audio (a phone
hybrid returns it some 10-30 dB down), while a caller talking over the agent is about as loud as
the agent or louder. So a frame counts towards a barge-in only when the VAD calls it speech *and*
its level is within `margin_db` of the agent audio playing at that moment (or above it); once such
frames add up to `min_ms` the detector fires, once per burst. Short noises (a click, a breath) never
reach `min_ms`; a syllable dip of a frame or two does not restart the count.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

FRAME_S = 0.020


@dataclass
class BargeInDetector:
    min_ms: float = 100.0
    margin_db: float = 6.0        # caller frames may be this much quieter than the agent audio
    gap_frames: int = 2           # non-qualifying frames tolerated inside a burst
    _run_ms: float = 0.0
    _gap: int = 0
    _onset: float | None = None
    _fired: bool = False
    _speech_since: float | None = None  # start of the current run of VAD speech, whatever its level

    def frame(self, speech: bool, level_db: float, agent_db: float | None, now: float) -> float | None:
        """Feed one inbound frame (received at `now`). Returns the burst's onset time (where its
        speech began) when the burst has just become a barge-in, else None. agent_db None: the agent
        is not talking; -inf: it is mid-reply but silent at this moment (any speech counts)."""
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
            if not self._fired and self._run_ms >= self.min_ms - 1e-6:
                self._fired = True
                return self._onset
            return None
        self._gap += 1
        if self._gap > self.gap_frames:
            self.reset()
        return None

    def reset(self) -> None:
        self._run_ms, self._gap, self._onset, self._fired = 0.0, 0, None, False

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
