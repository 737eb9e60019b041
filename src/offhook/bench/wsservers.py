"""Bare Twilio-media echo servers, one per WebSocket library, for the socket-layer comparison.

Each parses every message with offhook's Media Streams parser and answers each `media` with one
outbound `media` message: the least any media server must do per frame, so what is left is the cost
of the WebSocket library (and the event loop). Run as a process:

    python -m offhook.bench.wsservers --lib hypercorn|trio-websocket|websockets --stats FILE
"""
from __future__ import annotations

import argparse
import socket

import trio

from offhook.bench.probe import Counters, serve_probe
from offhook.server import heap
from offhook.twilio.protocol import Media, MediaStreamParser, OutboundBuilder, ProtocolError, Start

LIBS = ("hypercorn", "trio-websocket", "websockets")


class EchoStream:
    """Per connection: the sans-IO part shared by the three servers."""

    def __init__(self, counters: Counters):
        self.parser = MediaStreamParser()
        self.builder: OutboundBuilder | None = None
        self.counters = counters

    def answer(self, text: str) -> str | None:
        try:
            ev = self.parser.feed(text)
        except ProtocolError:
            return None
        if type(ev) is Media:
            self.counters.frames_in += 1
            self.counters.frames_out += 1
            return self.builder.media(ev.payload)
        if type(ev) is Start:
            self.builder = OutboundBuilder(ev.stream_sid)
            self.counters.calls_started += 1
        return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def hypercorn_server(counters: Counters, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED):
    from hypercorn.trio import serve

    from offhook.server.run import hypercorn_config

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        stream = EchoStream(counters)
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                counters.calls_ended += 1
                return
            out = stream.answer(msg.get("text") or "")
            if out is not None:
                await send({"type": "websocket.send", "text": out})

    hc = hypercorn_config(host, port, 64 * 1024)
    hc.loglevel = "WARNING"
    await serve(app, hc, mode="asgi", task_status=task_status)


async def trio_websocket_server(counters: Counters, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED):
    from trio_websocket import ConnectionClosed, serve_websocket

    async def handler(request):
        ws = await request.accept()
        stream = EchoStream(counters)
        try:
            while True:
                out = stream.answer(await ws.get_message())
                if out is not None:
                    await ws.send_message(out)
        except ConnectionClosed:
            counters.calls_ended += 1

    await serve_websocket(handler, host, port, None, max_message_size=64 * 1024, task_status=task_status)


async def websockets_server(counters: Counters, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED):
    from websockets.exceptions import ConnectionClosed
    from websockets.trio.server import serve

    async def handler(conn):
        stream = EchoStream(counters)
        try:
            async for message in conn:
                out = stream.answer(message)
                if out is not None:
                    await conn.send(out)
        except ConnectionClosed:
            pass
        counters.calls_ended += 1

    await serve(handler, port, host=host, compression=None, ping_interval=None, max_size=64 * 1024,
                task_status=task_status)


SERVERS = {"hypercorn": hypercorn_server, "trio-websocket": trio_websocket_server, "websockets": websockets_server}


async def main_async(lib: str, host: str, port: int, stats: str) -> None:
    counters = Counters()
    async with trio.open_nursery() as nursery:
        await nursery.start(SERVERS[lib], counters, host, port)
        heap.settle()  # as offhook serve does: the floor gets the same collector settings
        await serve_probe(counters, stats, port)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m offhook.bench.wsservers")
    p.add_argument("--lib", choices=LIBS, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--stats", required=True, help="file the SIGUSR1 snapshots are written to")
    a = p.parse_args(argv)
    trio.run(main_async, a.lib, a.host, a.port or free_port(a.host), a.stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
