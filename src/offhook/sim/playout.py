"""Twilio's side of playback, modelled: agent audio plays in real time from a queue, marks are
echoed once the audio before them has played, `clear` drops the queue and echoes pending marks.

Driven by the simulated caller's 20 ms tick, so one frame plays per tick; sans-IO (the caller
sends the echoes it returns).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Playout:
    queue: deque = field(default_factory=deque)   # ("media", bytes) | ("mark", name)
    played: list[tuple[int, bytes]] = field(default_factory=list)  # (tick index, frame)
    clears: list[int] = field(default_factory=list)  # tick index of each clear received
    frames_received: int = 0
    frames_cleared: int = 0
    pending: int = 0  # media frames queued (kept as a count: asked every tick by many callers)

    def on_media(self, frame: bytes) -> None:
        self.frames_received += 1
        self.pending += 1
        self.queue.append(("media", frame))

    def on_mark(self, name: str) -> list[str]:
        """A mark with nothing queued before it is echoed at once."""
        if not self.queue:
            return [name]
        self.queue.append(("mark", name))
        return []

    def on_clear(self, tick: int) -> list[str]:
        self.clears.append(tick)
        echoes = [v for kind, v in self.queue if kind == "mark"]
        self.frames_cleared += self.pending
        self.pending = 0
        self.queue.clear()
        return echoes

    def tick(self, tick: int) -> tuple[bytes | None, list[str]]:
        """Play one frame in this 20 ms slot; returns (frame or None, marks now echoed)."""
        echoes: list[str] = []
        while self.queue and self.queue[0][0] == "mark":
            echoes.append(self.queue.popleft()[1])
        frame = None
        if self.queue:
            frame = self.queue.popleft()[1]
            self.pending -= 1
            self.played.append((tick, frame))
        # marks right behind the frame are echoed when it finishes: at the next tick
        return frame, echoes
