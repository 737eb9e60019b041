"""The real offhook server as a benchmark process: OffhookApp on hypercorn (serve_app), with the
probe's lag samples and frame counters, in `echo` mode (the diagnostic handler) or `agent` mode
(the agent with providers pointed at emulators running in the load generator's process).

    python -m offhook.bench.server --mode echo --stats FILE
    python -m offhook.bench.server --mode agent --providers '{"stt": ...}' --stats FILE
"""
from __future__ import annotations

import argparse
import json
from contextlib import asynccontextmanager

import trio

from offhook.bench.probe import Counters, serve_probe
from offhook.bench.wsservers import free_port
from offhook.server.app import OffhookApp
from offhook.server.config import Config
from offhook.server.run import serve_app


class CallCounters:
    """Frame counts over live and finished calls, read at each probe snapshot."""

    def __init__(self, app: OffhookApp, counters: Counters):
        self.app = app
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
        return {"pacer_late_frames": self.done_late + sum(c.pacer.late_frames for c in live),
                "active_calls": len(live), "errors": sum(1 for r in ends if r == "error_internal")}


@asynccontextmanager
async def handler_factory(config: Config):
    if config.mode == "echo":
        from offhook.server.echo import EchoHandler
        yield lambda call: EchoHandler(call)
        return
    from offhook.agent.factory import agent_handler_factory
    from offhook.providers.factory import build_providers

    providers = await build_providers(config) if _is_coro(build_providers) else build_providers(config)
    try:
        async with agent_handler_factory(config, providers) as factory:
            yield factory
    finally:
        await providers.aclose()


def _is_coro(fn) -> bool:
    import inspect
    return inspect.iscoroutinefunction(fn)


async def main_async(config: Config, stats: str) -> None:
    counters = Counters()
    async with handler_factory(config) as factory:
        app = OffhookApp(config, factory)
        calls = CallCounters(app, counters)
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_app, app, config.host, config.port)
            await serve_probe(counters, stats, config.port, extra=calls.snapshot)
            nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m offhook.bench.server")
    p.add_argument("--mode", choices=("echo", "agent"), default="echo")
    p.add_argument("--providers", default="{}", help="the [providers] table as JSON")
    p.add_argument("--stats", required=True)
    a = p.parse_args(argv)
    config = Config.load(env={}, mode=a.mode, port=free_port(), validate_signatures=False,
                         providers=json.loads(a.providers))
    trio.run(main_async, config, a.stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
