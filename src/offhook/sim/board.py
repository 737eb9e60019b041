"""What each simulated caller is saying, on its media stream's audio timeline.

The simulated caller writes here as it speaks; the emulated STT reads here to produce transcripts, so
end-to-end tests are deterministic without a speech recogniser. Keyed by the call's sid, which offhook
passes to the STT provider as its `tag`. Times are seconds of stream audio (bytes sent / 8000).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    start: float
    end: float
    text: str


class ScriptBoard:
    def __init__(self) -> None:
        self._lines: dict[str, list[Line]] = {}

    def say(self, key: str, start: float, end: float, text: str) -> None:
        if end < start:
            raise ValueError(f"line ends before it starts: {start} > {end}")
        self._lines.setdefault(key, []).append(Line(start, end, text))

    def lines(self, key: str) -> list[Line]:
        return list(self._lines.get(key, ()))

    def forget(self, key: str) -> None:
        self._lines.pop(key, None)


BOARD = ScriptBoard()
