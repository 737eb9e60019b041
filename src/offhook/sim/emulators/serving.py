"""What every emulator shares: waiting for a recorded state in tests, serving a WebSocket emulator
in the current trio run, reading and sending its frames, and the standalone command (host, port,
latency profile)."""
from __future__ import annotations

import argparse
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, Generic, Protocol, TypeVar

import trio
import trio_websocket

from offhook.sim.emulators.plan import Fault, LatencyProfile


class Observable:
    """Lets a test wait for what the emulator records: `_poke()` after every change."""

    def __init__(self) -> None:
        self._changed = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until predicate() holds, re-checked whenever the emulator receives or sends;
        trio.TooSlowError after `timeout` (trio clock) so a broken test fails instead of hanging."""
        with trio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class _WebSocketEmulator(Protocol):
    host: str
    port: int

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None: ...


W = TypeVar("W", bound=_WebSocketEmulator)
E = TypeVar("E")
EmuT = TypeVar("EmuT", bound=Observable)
ConnT = TypeVar("ConnT", bound="WsConnectionRecord")


async def next_message(ws: trio_websocket.WebSocketConnection) -> str | bytes | None:
    """The client's next frame; None once the connection has closed."""
    try:
        return await ws.get_message()
    except trio_websocket.ConnectionClosed:
        return None


async def send_whole(ws: trio_websocket.WebSocketConnection, message: str | bytes) -> None:
    """Send one frame, shielded: a frame cut in half by a cancellation (a Clear, a close_context)
    would corrupt the stream. A closed socket is not an error here: the reader sees it."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + 5.0):
        try:
            await ws.send_message(message)
        except trio_websocket.ConnectionClosed:
            pass


@dataclass(kw_only=True)
class WsConnectionRecord:
    """What every WebSocket emulator notes of an accepted connection; the vendor's subclass adds
    what it receives and sends."""
    index: int
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    opened_at: float
    fault: Fault | None = None
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    hung: bool = False  # a hang fault: nothing more is sent


async def close_and_record(conn: WsConnectionRecord, ws: trio_websocket.WebSocketConnection, code: int,
                           reason: str) -> None:
    """Close a WebSocket from the emulator's side, noting when and how on its connection record."""
    conn.closed_at = trio.current_time()
    conn.close_code, conn.close_reason = code, reason
    with trio.move_on_after(1.0):
        await ws.aclose(code, reason)


class ConnectionSession(Generic[EmuT, ConnT]):
    """One accepted connection of a WebSocket emulator: its emulator, record, socket and the
    nursery of its helper tasks; closing it from the service's side."""

    def __init__(self, emu: EmuT, conn: ConnT, ws: trio_websocket.WebSocketConnection, nursery: trio.Nursery) -> None:
        self.emu, self.conn, self.ws, self.nursery = emu, conn, ws, nursery

    async def close(self, code: int, reason: str) -> None:
        await close_and_record(self.conn, self.ws, code, reason)

    async def drop(self) -> None:
        """A dropped TCP connection (the "close" fault): no close frame."""
        self.conn.closed_at = trio.current_time()
        await self.ws._close_stream()


@asynccontextmanager
async def serving_websocket(emu: W, host: str, port: int) -> AsyncIterator[W]:
    """Serve `emu.handle` on host:port (0: any free port) for the duration of the block."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trio_websocket.serve_websocket, emu.handle, host, port, None,
                                             disconnect_timeout=1.0))
        emu.host, emu.port = host, server.port
        try:
            yield emu
        finally:
            nursery.cancel_scope.cancel()


async def serve_connection(emu: Observable, conn: WsConnectionRecord, ws: trio_websocket.WebSocketConnection,
                           run: Callable[[trio.Nursery], Awaitable[None]]) -> None:
    """Run one accepted connection (`run(nursery)`; the nursery holds its helper tasks), then note
    on its record how it closed, unless the emulator closed it itself."""
    try:
        async with trio.open_nursery() as nursery:
            await run(nursery)
            nursery.cancel_scope.cancel()
    finally:
        if conn.closed_at is None:
            conn.closed_at = trio.current_time()
            reason = ws.closed
            conn.close_code, conn.close_reason = (reason.code, reason.reason) if reason else (None, None)
        emu._poke()


def emulator_args(description: str | None, *, first_ms: float, gap_ms: float, first_help: str,
                  gap_help: str, key_env: str | None = None, test_key: str = "") -> argparse.ArgumentParser:
    """The options every standalone emulator takes; with key_env, --api-key (default $key_env, else test_key)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    if key_env is not None:
        p.add_argument("--api-key", default=os.environ.get(key_env, test_key))
    p.add_argument("--first-ms", type=float, default=first_ms, help=first_help)
    p.add_argument("--gap-ms", type=float, default=gap_ms, help=gap_help)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--network-ms", type=float, default=0.0, help="one-way network delay")
    return p


def profile_of(args: Any) -> LatencyProfile:
    return LatencyProfile(first_s=args.first_ms / 1000, gap_s=args.gap_ms / 1000,
                          jitter_s=args.jitter_ms / 1000, network_s=args.network_ms / 1000)


def serve_until_interrupted(open_emulator: Callable[[], AsyncContextManager[E]], banner: Callable[[E], str]) -> int:
    """The standalone command: serve `open_emulator()`, print `banner(emu)` (where it listens, which
    variable points a client at it), run until Ctrl-C; exit status 0."""
    async def serve() -> None:
        async with open_emulator() as emu:
            print(banner(emu), flush=True)
            await trio.sleep_forever()

    try:
        trio.run(serve)
    except* KeyboardInterrupt:
        pass
    return 0
