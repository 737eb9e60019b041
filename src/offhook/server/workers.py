"""`offhook serve --workers N`: N server processes on one port, and the parent that looks after them.

Each worker is a full `offhook serve` process (its own trio run, its own playback ticker) that binds
the port with SO_REUSEPORT, so the kernel spreads new connections across them and a call stays with
the process that accepted its WebSocket. The parent binds the port first (without listening, so it
never receives connections) to turn port 0 into a real port and to fail early if it is taken; then
it starts the workers in their own process groups (a terminal's Ctrl-C reaches only the parent, which
forwards it once), relays their stdout, restarts a worker that dies on its own, and forwards
SIGTERM/SIGINT: the first drains every worker, a second hands their calls over at once. It exits 0
when every worker drained cleanly.
"""
from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
from collections import deque

import trio

from offhook.server.config import Config
from offhook.server.run import reuseport_socket

log = logging.getLogger("offhook.server")

RESTART_DELAY_S = 1.0
MAX_RESTARTS = 5            # crashes within RESTART_WINDOW_S before the parent gives up
RESTART_WINDOW_S = 60.0


def worker_command(args: argparse.Namespace, config: Config, port: int, index: int) -> list[str]:
    cmd = [sys.executable, "-m", "offhook.cli", "serve", "--host", config.host, "--port", str(port),
           "--mode", config.mode, "--workers", str(config.workers), "--worker-index", str(index),
           "--log-level", args.log_level]
    if args.config:
        cmd += ["--config", args.config]
    if not config.validate_signatures:
        cmd.append("--insecure-dev")
    return cmd


class Supervisor:
    def __init__(self, args: argparse.Namespace, config: Config):
        self.args, self.config = args, config
        self.procs: dict[int, trio.Process] = {}
        self.codes: dict[int, int] = {}
        self.stopping = False
        self.failed = False
        self.startup_refused = False
        self.ready: set[int] = set()
        self.port = 0
        self._all_ready = trio.Event()

    async def run(self) -> int:
        holder = reuseport_socket(self.config.host, self.config.port)
        self.port = holder.getsockname()[1]
        n = self.config.workers
        print(f"offhook: supervisor starting {n} workers on port {self.port}", flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_signals, signals)
                async with trio.open_nursery() as workers:
                    for i in range(n):
                        workers.start_soon(self._keep_running, i)
                    nursery.start_soon(self._announce)
                nursery.cancel_scope.cancel()  # every worker is gone: stop forwarding
        holder.close()
        if self.startup_refused:
            return 2
        bad = {i: rc for i, rc in self.codes.items() if rc != 0}
        if bad:
            print(f"offhook: workers exited with errors: {bad}", file=sys.stderr, flush=True)
        return 1 if (bad or self.failed) else 0

    async def _announce(self) -> None:
        await self._all_ready.wait()
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        print(f"offhook: all {self.config.workers} workers listening on http://{host}:{self.port}", flush=True)

    async def _forward_signals(self, signals) -> None:
        async for sig in signals:
            if not self.stopping:
                log.warning("%s: draining %d workers", signal.Signals(sig).name, len(self.procs))
            self.stopping = True
            for proc in list(self.procs.values()):
                if proc.returncode is None:
                    proc.send_signal(sig)

    def _stop_all(self) -> None:
        self.stopping = True
        for proc in list(self.procs.values()):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)

    async def _keep_running(self, index: int) -> None:
        crashes: deque[float] = deque()
        while True:
            cmd = worker_command(self.args, self.config, self.port, index)
            proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, start_new_session=True)
            self.procs[index] = proc
            async with trio.open_nursery() as relay:
                relay.start_soon(self._relay, index, proc)
                rc = await proc.wait()
            self.procs.pop(index, None)
            was_ready = index in self.ready
            self.ready.discard(index)
            if self.stopping:
                self.codes[index] = rc
                return
            if rc == 2 and not was_ready:  # start-up refused (its one-line reason is on stderr): no retry
                self.codes[index] = rc
                self.startup_refused = True
                self._stop_all()
                return
            now = trio.current_time()
            crashes.append(now)
            while crashes and now - crashes[0] > RESTART_WINDOW_S:
                crashes.popleft()
            if len(crashes) > MAX_RESTARTS:
                log.error("worker %d keeps dying (exit %s); stopping all workers", index, rc)
                self.failed = True
                self.codes[index] = rc
                self._stop_all()
                return
            log.error("worker %d exited on its own (exit %s); restarting it", index, rc)
            await trio.sleep(RESTART_DELAY_S)

    async def _relay(self, index: int, proc: trio.Process) -> None:
        buf = b""
        async for chunk in proc.stdout:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                print(text, flush=True)
                if " listening on " in text and text.startswith(f"offhook: worker {index} "):
                    self.ready.add(index)
                    if len(self.ready) == self.config.workers:
                        self._all_ready.set()


def supervise(args: argparse.Namespace, config: Config) -> int:
    try:
        return trio.run(Supervisor(args, config).run)
    except OSError as e:
        print(f"offhook serve: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 2
