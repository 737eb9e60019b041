"""Latency profiles and fault plans shared by every emulator.

Emulators sleep with trio.sleep, so under trio.testing.MockClock their latencies are exact and
instant. A FaultPlan is consumed one request/connection at a time: the n-th request gets the n-th
fault (None = behave), which is how a test says "the first two LLM calls fail with 529".
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["error", "hang", "close", "close_normal", "drop", "drip", "malformed"]


@dataclass(frozen=True)
class LatencyProfile:
    first_s: float = 0.0        # request -> first partial / token / audio chunk
    gap_s: float = 0.0          # between later chunks
    jitter_s: float = 0.0       # uniform +- jitter on each delay
    network_s: float = 0.0      # one-way network delay added to the first response
    seed: int = 0

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def first(self, rng: random.Random) -> float:
        return max(0.0, self.network_s + self.first_s + rng.uniform(-self.jitter_s, self.jitter_s))

    def gap(self, rng: random.Random) -> float:
        return max(0.0, self.gap_s + rng.uniform(-self.jitter_s, self.jitter_s))


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    after_s: float = 0.0        # when, from the start of the request
    status: int = 500           # for "error" on HTTP: 429, 500, 529 ...
    message: str = "emulated fault"
    drip_s: float = 1.0         # for "drip": delay between chunks


@dataclass
class FaultPlan:
    faults: list[Fault | None] = field(default_factory=list)
    repeat_last: bool = False   # keep applying the last entry once the list is used up

    def next(self) -> Fault | None:
        if not self.faults:
            return None
        if len(self.faults) == 1 and self.repeat_last:
            return self.faults[0]
        return self.faults.pop(0)

    @classmethod
    def always(cls, fault: Fault) -> "FaultPlan":
        return cls([fault], repeat_last=True)
