"""What a benchmarked server process reports about itself: event-loop lag and frame counters.

The server runs `serve_probe` next to its listener. It prints `READY <port>` once listening; each
SIGUSR1 writes a snapshot (counters so far, lag samples since the previous snapshot) to the stats
file, so the orchestrator brackets its measurement window with two signals. SIGTERM ends the process.
"""
from __future__ import annotations

import json
import signal
import sys
from dataclasses import dataclass, field

import trio

from offhook.sim.load import percentiles

LAG_PERIOD = 0.010


@dataclass
class Counters:
    frames_in: int = 0
    frames_out: int = 0
    calls_started: int = 0
    calls_ended: int = 0
    extra: dict = field(default_factory=dict)


class LagProbe:
    """How late the event loop wakes a task asleep for 10 ms: the delay every frame waits behind."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            t = trio.current_time()
            await trio.sleep(LAG_PERIOD)
            self.samples.append(trio.current_time() - t - LAG_PERIOD)

    def take(self) -> list[float]:
        s, self.samples = self.samples, []
        return s


async def serve_probe(counters: Counters, stats_path: str, port: int, *, extra=None) -> None:
    """Run until SIGTERM/SIGINT; `extra()` adds fields to each snapshot."""
    probe = LagProbe()
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM, signal.SIGINT) as signals:
        print(f"READY {port}", flush=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.run)
            async for sig in signals:
                if sig != signal.SIGUSR1:
                    nursery.cancel_scope.cancel()
                    return
                lag = probe.take()
                snap = {"frames_in": counters.frames_in, "frames_out": counters.frames_out,
                        "calls_started": counters.calls_started, "calls_ended": counters.calls_ended,
                        "lag_ms": {k: v * 1000 if v is not None else None for k, v in percentiles(lag).items()},
                        "lag_samples": len(lag), **counters.extra, **(extra() if extra else {})}
                with open(stats_path, "w") as f:
                    json.dump(snap, f)
                print("SNAPSHOT", flush=True)


def fail(msg: str) -> None:
    print(f"ERROR {msg}", flush=True)
    sys.exit(2)
