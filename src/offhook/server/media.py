"""One Twilio media stream: the socket reader, the per-call state, and the handler contract.

The reader runs in the task that owns the socket and processes each frame inline (parse ->
jitter buffer -> handler.on_audio), so a frame costs no task hop of ours. The call's nursery holds
the reader, the pacer and the handler; whichever way the call ends, the nursery is cancelled and
nothing outlives it.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import trio

from offhook.audio import JitterBuffer
from offhook.twilio.pacer import Pacer, Ticker
from offhook.twilio.protocol import (Connected, Dtmf, Mark, Media, MediaStreamParser, OutboundBuilder,
                                     ProtocolError, Start, Stop)

log = logging.getLogger("offhook.media")

START_TIMEOUT_S = 10.0


@dataclass
class AfterAction:
    """What Twilio should do when the stream ends (served by /twilio/after-stream)."""
    kind: str = "hangup"          # "hangup" | "voicemail" | "dial"
    prompt: str = ""
    number: str = ""


class CallHandler(Protocol):
    async def run(self, call: "MediaCall") -> None: ...          # the call's own work; return = end call
    async def on_audio(self, call: "MediaCall", frame: bytes) -> None: ...  # inline, per in-order frame
    def on_mark(self, call: "MediaCall", name: str) -> None: ...
    def on_dtmf(self, call: "MediaCall", digit: str) -> None: ...


@dataclass
class MediaCall:
    start: Start
    pacer: Pacer
    jitter: JitterBuffer
    t0: float
    send_raw: Callable[[str], Awaitable[None]]
    bad: Counter = field(default_factory=Counter)
    events: list = field(default_factory=list)       # (t, kind, detail)
    end_reason: str | None = None
    ended_by: str | None = None
    after: AfterAction | None = None
    cancel_scope: trio.CancelScope | None = None
    frames_in: int = 0

    @property
    def call_sid(self) -> str:
        return self.start.call_sid

    @property
    def stream_sid(self) -> str:
        return self.start.stream_sid

    @property
    def params(self) -> dict[str, str]:
        return self.start.custom_parameters

    def event(self, kind: str, detail: str = "") -> None:
        self.events.append((trio.current_time() - self.t0, kind, detail))

    def end(self, reason: str, ended_by: str = "agent", after: AfterAction | None = None) -> None:
        """End the media stream: Twilio then fetches /twilio/after-stream for what comes next."""
        if self.end_reason is None:
            self.end_reason, self.ended_by = reason, ended_by
        if after is not None:
            self.after = after
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def count_bad(self, err: ProtocolError) -> None:
        self.bad[err.kind] += 1
        if self.bad[err.kind] == 1:
            log.warning("call %s: dropped bad message (%s) %s", self.call_sid, err.kind, err.detail[:100])


class MediaSession:
    """Drives one media WebSocket given ASGI-style receive/send callables."""

    def __init__(self, receive: Callable[[], Awaitable[dict]], send_text: Callable[[str], Awaitable[None]],
                 ticker: Ticker, handler_factory: Callable[[MediaCall], CallHandler], *,
                 lead: float = 0.08, mark_every: int = 10, on_start=None, on_end=None):
        self.receive = receive
        self.send_text = send_text
        self.ticker = ticker
        self.handler_factory = handler_factory
        self.lead = lead
        self.mark_every = mark_every
        self.on_start = on_start
        self.on_end = on_end
        self.parser = MediaStreamParser()
        self.pre_start_bad: Counter = Counter()
        self.call: MediaCall | None = None

    async def _next_text(self) -> str | None:
        """Next text frame; None when the socket closed. Binary frames are counted and skipped."""
        while True:
            msg = await self.receive()
            t = msg["type"]
            if t == "websocket.receive":
                text = msg.get("text")
                if text is not None:
                    return text
                err = ProtocolError("binary_frame", f"{len(msg.get('bytes') or b'')} bytes")
                self._bad(err)
                continue
            if t == "websocket.disconnect":
                return None

    def _bad(self, err: ProtocolError) -> None:
        if self.call is not None:
            self.call.count_bad(err)
        else:
            self.pre_start_bad[err.kind] += 1
            if self.pre_start_bad[err.kind] == 1:
                log.warning("media stream before start: dropped bad message (%s) %s", err.kind, err.detail[:100])

    async def run(self) -> MediaCall | None:
        start = await self._await_start()
        if start is None:
            return None
        builder = OutboundBuilder(start.stream_sid)
        lock = trio.Lock()
        call = MediaCall(start=start, pacer=None, jitter=JitterBuffer(), t0=trio.current_time(),
                         send_raw=self.send_text)  # type: ignore[arg-type]
        call.pacer = Pacer(self.send_text, builder, self.ticker, lead=self.lead, mark_every=self.mark_every,
                           send_lock=lock)
        call.bad.update(self.pre_start_bad)
        self.call = call
        handler = self.handler_factory(call)
        if self.on_start:
            self.on_start(call)
        try:
            with trio.CancelScope() as scope:
                call.cancel_scope = scope
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call.pacer.run)
                    nursery.start_soon(self._run_handler, handler, call)
                    await self._read(handler, call)
                    nursery.cancel_scope.cancel()
        except Exception as e:  # one call's bug must not take the server down
            log.exception("call %s failed", call.call_sid)
            if call.end_reason is None:
                call.end_reason, call.ended_by = "error_internal", "error"
            call.event("error", repr(e)[:200])
        finally:
            if call.end_reason is None:
                call.end_reason, call.ended_by = "server_shutdown", "server"
            if self.on_end:
                self.on_end(call)
        return call

    async def _await_start(self) -> Start | None:
        with trio.move_on_after(START_TIMEOUT_S):
            while True:
                text = await self._next_text()
                if text is None:
                    return None
                try:
                    ev = self.parser.feed(text)
                except ProtocolError as e:
                    self._bad(e)
                    if e.kind == "bad_media_format":
                        return None
                    continue
                if type(ev) is Start:
                    return ev
                if type(ev) is Stop:
                    return None
        log.warning("media stream: no start within %.0f s; closing", START_TIMEOUT_S)
        return None

    async def _run_handler(self, handler: CallHandler, call: MediaCall) -> None:
        await handler.run(call)
        call.end(call.end_reason or "agent_end", call.ended_by or "agent")

    async def _read(self, handler: CallHandler, call: MediaCall) -> None:
        feed = self.parser.feed
        jitter = call.jitter
        while True:
            text = await self._next_text()
            if text is None:
                call.end_reason = call.end_reason or "caller_hangup"
                call.ended_by = call.ended_by or "caller"
                call.event("socket_closed")
                return
            try:
                ev = feed(text)
            except ProtocolError as e:
                call.count_bad(e)
                continue
            if type(ev) is Media:
                call.frames_in += 1
                jitter.push(ev.chunk, ev.payload)  # chunk counts media only; sequenceNumber counts every message
                while jitter.ready:
                    await handler.on_audio(call, jitter.pop())
            elif type(ev) is Mark:
                call.pacer.on_mark(ev.name)
                handler.on_mark(call, ev.name)
            elif type(ev) is Dtmf:
                call.event("dtmf", ev.digit)
                handler.on_dtmf(call, ev.digit)
            elif type(ev) is Stop:
                call.end_reason = call.end_reason or "caller_hangup"
                call.ended_by = call.ended_by or "caller"
                call.event("stop")
                return
            elif type(ev) is Connected:
                continue
