"""The turn-taker: when has the caller finished? (sans-IO; the call session feeds it and acts.)

Inputs are the VAD decision of every inbound frame and the STT's events; outputs are actions:
`Speculate(text)` at the first pause with words, `CancelSpeculation` when the caller resumes or the
words change, `Finalize` when the silence says "done" but the STT has only a partial (ask it for
its final now rather than wait for its own endpoint), and `Commit` — the caller's turn, with the
times of the latency waterfall. The silence that commits comes from the endpoint policy (short when
the words look finished, long when they do not, capped); the silence clock is our VAD's, the text
is the STT's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from offhook.agent.endpointing import EndpointPolicy, TurnContext
from offhook.providers.base import Final, Partial, UtteranceEnd

FRAME_S = 0.020


@dataclass(frozen=True)
class Speculate:
    text: str


@dataclass(frozen=True)
class CancelSpeculation:
    reason: str  # "resumed" | "changed"


@dataclass(frozen=True)
class Finalize:
    pass


@dataclass(frozen=True)
class Commit:
    text: str
    confidence: float | None      # None: committed on a partial (the cap, or the STT never finalised)
    speech_end: float             # end of the caller's last voiced frame (trio time)
    stt_final: float | None       # arrival of the last final of the turn
    committed_at: float


_NORM = re.compile(r"[^\w\s']+")


def _norm(text: str) -> str:
    return " ".join(_NORM.sub(" ", text.lower()).split())


class TurnTaker:
    def __init__(self, policy: EndpointPolicy, *, cap_s: float = 3.0, speculative_pause_s: float = 0.15,
                 voiced_ms: float = 60.0) -> None:
        self.policy = policy
        self.cap_s = cap_s
        self.pause_s = speculative_pause_s
        self.voiced_ms = voiced_ms      # a voiced run this long is speech (shorter: a click)
        self.ctx = TurnContext(expecting=None)
        self.open = True                # False while the agent talks and the caller has not barged in
        self._finals: list[tuple[str, float]] = []
        self._partial = ""
        self._final_at: float | None = None
        self._prefix = ""
        self._run_ms = 0.0
        self.voicing = False            # inside a voiced run of speech
        self.last_voice_end: float | None = None
        self._last_stt_at: float | None = None
        self._speculating: str | None = None
        self._finalize_asked = False
        self._await_voice = False       # after a commit: late STT events of the committed audio are old news
        self._speech_final = False      # the STT's own endpoint closed the last final

    # ------------------------------------------------------------ state
    @property
    def text(self) -> str:
        parts = [self._prefix] + [t for t, _ in self._finals] + [self._partial]
        return " ".join(p for p in parts if p).strip()

    @property
    def confidence(self) -> float | None:
        if self._partial or not self._finals:
            return None
        return min(c for _, c in self._finals)

    @property
    def active(self) -> bool:
        """Speech on the line right now (a voiced run, even one too short to count yet): no decision."""
        return self.voicing or self._run_ms > 0

    @property
    def speculating(self) -> str | None:
        return self._speculating

    def silence(self, now: float) -> float:
        if self.voicing:
            return 0.0
        ref = self.last_voice_end if self.last_voice_end is not None else self._last_stt_at
        return math.inf if ref is None else now - ref

    # ------------------------------------------------------------ inputs
    def frame(self, speech: bool, now: float) -> list:
        """One inbound frame's VAD decision, at its arrival time `now` (= the end of its audio)."""
        out: list = []
        if speech:
            self._run_ms += FRAME_S * 1000
            self._await_voice = False
            if self._run_ms >= self.voiced_ms - 1e-6:
                if not self.voicing:
                    self.voicing = True
                    if self._speculating is not None:
                        self._speculating = None
                        out.append(CancelSpeculation("resumed"))
                self.last_voice_end = now
        else:
            self._run_ms = 0.0
            if self.voicing and not self.open:
                # a burst over the agent that did not barge in (a backchannel, a cough): not a turn,
                # and its late transcripts are not either
                self.discard()
                self._await_voice = True
            self.voicing = False
        return out

    def stt(self, ev, now: float) -> None:
        if self._await_voice and type(ev) in (Partial, Final):
            return
        if type(ev) is Partial:
            if ev.text.strip():
                self._partial = ev.text.strip()
                self._last_stt_at = now
        elif type(ev) is Final:
            if ev.text.strip():
                self._finals.append((ev.text.strip(), ev.confidence))
                self._final_at = now
                self._last_stt_at = now
                self._speech_final = ev.speech_final
            self._partial = ""
            self._finalize_asked = False
        elif type(ev) is UtteranceEnd:
            # the STT says no more words are coming: its last partial is as final as it gets
            if self._partial:
                self._finals.append((self._partial, 0.0))
                self._partial = ""
                self._final_at = now

    def discard(self) -> None:
        """Forget the words so far (a backchannel said over the agent is not a turn)."""
        self._finals, self._partial, self._final_at = [], "", None
        self._prefix = ""
        self._speech_final = False
        self._speculating = None
        self._finalize_asked = False

    def resume_with(self, text: str) -> None:
        """The caller went on after a commit, before the agent said anything: the committed words
        become the start of the turn still being spoken."""
        self._prefix = f"{text} {self._prefix}".strip()
        self._await_voice = False

    # ------------------------------------------------------------ decisions
    def poll(self, now: float) -> list:
        text = self.text
        if not self.open or not text or self.active:
            return []
        out: list = []
        silence = self.silence(now)
        if self._speculating is not None and _norm(text) != self._speculating:
            self._speculating = None
            out.append(CancelSpeculation("changed"))
        needed = self._needed(text)
        finalised = not self._partial
        if silence >= self.cap_s - 1e-9 or (silence >= needed - 1e-9 and finalised):
            out.append(self._commit(now))
            return out
        if silence >= needed - 1e-9 and not self._finalize_asked:
            self._finalize_asked = True
            out.append(Finalize())
        if self._speculating is None and silence >= self.pause_s - 1e-9:
            self._speculating = _norm(text)
            out.append(Speculate(text))
        return out

    def next_deadline(self) -> float:
        """When poll() may next decide something without new input (inf: only on input)."""
        text = self.text
        if not self.open or not text or self.active:
            return math.inf
        ref = self.last_voice_end if self.last_voice_end is not None else self._last_stt_at
        if ref is None:
            return math.inf
        needed = self._needed(text)
        times = [ref + self.cap_s]
        if not self._finalize_asked or not self._partial:
            times.append(ref + needed)
        if self._speculating is None:
            times.append(ref + self.pause_s)
        return min(times)

    def _needed(self, text: str) -> float:
        needed = min(self.policy.silence_needed(text, self.ctx), self.cap_s)
        if self._speech_final and not self._partial and text.rstrip().endswith("?"):
            # the STT's endpoint fired on a question: the caller asked something and is waiting,
            # whatever the agent's last question expected
            needed = min(needed, self.policy.short_s)
        return needed

    def matches(self, speculated: str, text: str) -> bool:
        return _norm(speculated) == _norm(text)

    def _commit(self, now: float) -> Commit:
        c = Commit(self.text, self.confidence, self.last_voice_end if self.last_voice_end is not None
                   else (self._last_stt_at or now), self._final_at, now)
        self.discard()
        self._await_voice = True
        return c
