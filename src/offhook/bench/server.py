"""The real offhook server as a benchmark process: OffhookApp on hypercorn (serve_app), with the
probe's lag samples and frame counters, in `echo` mode (the diagnostic handler) or `agent` mode
(the agent; its STT and TTS clients talk to the emulators in the load generator's process, the
scripted receptionist is the LLM).

    python -m offhook.bench.server --mode echo --stats FILE
    python -m offhook.bench.server --mode agent --providers '{"stt": {"base_url": ..}, "tts": ..}' --stats FILE
"""
from __future__ import annotations

import argparse
import json
import os
from contextlib import asynccontextmanager

import trio

from offhook.bench.probe import Counters, serve_probe
from offhook.bench.wsservers import free_port
from offhook.server.app import OffhookApp
from offhook.server.config import Config
from offhook.server.run import serve_app
from offhook.sim.load import percentiles
from offhook.twilio.pacer import Ticker


class ProbeTicker(Ticker):
    """The server's playback ticker, also measuring outbound frame lateness: for each pacer a tick
    serves, the time from that tick's deadline to the moment the pacer's due frames are written. A
    pacer whose write would have waited is finishing it in its own task: counted as `blocked` (the
    caller-side lateness in the results covers those frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: list[float] = []
        self.blocked = 0

    def _served_one(self, pacer, due: float) -> None:
        self.samples.append(trio.current_time() - due)
        self.blocked += pacer.blocked

    def take(self) -> tuple[list[float], int]:
        s, self.samples = self.samples, []
        b, self.blocked = self.blocked, 0
        return s, b


class CallCounters:
    """Frame counts over live and finished calls, read at each probe snapshot."""

    def __init__(self, app: OffhookApp, counters: Counters, ticker: ProbeTicker):
        self.app = app
        self.ticker = ticker
        self.c = counters
        self.done_in = self.done_out = self.done_late = 0
        app.call_started_hooks.append(self._started)
        app.call_ended_hooks.append(self._ended)

    def _started(self, call) -> None:
        self.c.calls_started += 1

    def _ended(self, call) -> None:
        self.c.calls_ended += 1
        self.done_in += call.frames_in
        self.done_out += call.pacer.frames_sent
        self.done_late += call.pacer.late_frames

    def snapshot(self) -> dict:
        live = list(self.app.active.values())
        self.c.frames_in = self.done_in + sum(c.frames_in for c in live)
        self.c.frames_out = self.done_out + sum(c.pacer.frames_sent for c in live)
        ends = [c.end_reason for c in self.app.finished]
        late, blocked = self.ticker.take()
        return {"tick_lateness_ms": {k: v * 1000 if v is not None else None for k, v in percentiles(late).items()},
                "tick_lateness_samples": len(late), "tick_blocked": blocked,
                "pacer_late_frames": self.done_late + sum(c.pacer.late_frames for c in live),
                "active_calls": len(live), "errors": sum(1 for r in ends if r == "error_internal")}


@asynccontextmanager
async def handler_factory(config: Config, spec: dict):
    if config.mode == "echo":
        from offhook.server.echo import EchoHandler
        yield lambda call: EchoHandler(call)
        return
    from offhook.agent.factory import agent_handler_factory
    from offhook.bench.emulated import providers_from_spec

    providers = providers_from_spec(spec)
    try:
        async with agent_handler_factory(config, providers) as factory:
            yield factory
    finally:
        await providers.aclose()


async def main_async(config: Config, spec: dict, stats: str) -> None:
    counters = Counters()
    async with handler_factory(config, spec) as factory:
        ticker = ProbeTicker()
        app = OffhookApp(config, factory, ticker=ticker)
        calls = CallCounters(app, counters, ticker)
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_app, app, config.host, config.port)
            await serve_probe(counters, stats, config.port, extra=calls.snapshot)
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m offhook.bench.server")
    p.add_argument("--mode", choices=("echo", "agent"), default="echo")
    p.add_argument("--providers", default="{}", help="agent mode: the emulators' addresses (JSON, from the generator)")
    p.add_argument("--stats", required=True)
    a = p.parse_args(argv)
    config = Config.load(env={}, mode=a.mode, port=free_port(), validate_signatures=False)
    profile = os.environ.get("OFFHOOK_BENCH_PROFILE")  # write cProfile stats of the whole run here
    if profile:
        import cProfile
        cProfile.runctx("trio.run(main_async, config, json.loads(a.providers), a.stats)", globals(), locals(),
                        profile)
    else:
        trio.run(main_async, config, json.loads(a.providers), a.stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
