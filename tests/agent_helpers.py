"""The agent end to end for tests: the rig (offhook.sim.rig: the real server, the real provider
clients against their emulators, the simulated caller) and what the tests assert with.

Everything runs in one trio run under MockClock(autojump_threshold=0.005) with real loopback
sockets: emulated latencies and the agent's own deadlines are exact in trio time.
"""
from __future__ import annotations

import functools

import trio
import trio.testing

from offhook.sim.emulators.plan import FaultPlan
from offhook.sim.rig import (  # noqa: F401  (re-exported for the tests)
    LLM_PROFILE, PUBLIC, SHORT_GREETING, SIGNED_URL, STT_PROFILE, TTS_PROFILE, Rig, agent_rig,
    receptionist_reply, short_profile)

# TTS connections the agent opens at start-up, before any call: the stall phrases and the openers
STARTUP_TTS_CONNECTIONS = 2
TICK = 0.020


def mock_clock(fn):
    """Run an async test under MockClock(autojump_threshold=0.005) (real sockets, virtual time)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0.005))
    return wrapper


def tts_faults(*faults) -> FaultPlan:
    """A TTS fault plan for the call's connection(s), after the start-up renders' connections."""
    return FaultPlan([None] * STARTUP_TTS_CONNECTIONS + list(faults))


def heard_spans(result, gap_ticks: int = 3) -> list[tuple[float, float]]:
    """Stretches of agent audio the caller heard, as (start, end) seconds (gaps < gap_ticks joined)."""
    spans: list[list[int]] = []
    for k, _ in result.agent_played:
        if spans and k - spans[-1][1] <= gap_ticks:
            spans[-1][1] = k + 1
        else:
            spans.append([k, k + 1])
    return [(a * TICK, b * TICK) for a, b in spans]


def heard_after(result, t: float) -> float | None:
    """When the caller first heard agent audio at or after t."""
    return next((k * TICK for k, _ in result.agent_played if k * TICK >= t - 1e-9), None)
