"""One Twilio media stream: the socket reader, the per-call state, and the handler contract.

The reader runs in the task that owns the socket and processes each frame inline (parse ->
jitter buffer -> handler.on_audio), so a frame costs no task hop of ours. The call's nursery holds
the reader, the pacer and the handler; whichever way the call ends, the nursery is cancelled and
nothing outlives it.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import trio

from offhook.audio import JitterBuffer
from offhook.observe.record import CallRecord, EndedBy, EndReason, EventRecord
from offhook.twilio.pacer import Pacer, SendNow, Ticker
from offhook.twilio.protocol import (Dtmf, Mark, Media, MediaStreamParser, OutboundBuilder,
                                     ProtocolError, Start, Stop)

log = logging.getLogger("offhook.media")

START_TIMEOUT_S = 10.0
# Twilio sends inbound media every 20 ms for the whole call, silence included; this long without any
# message means the line is dead without the socket saying so (half-open TCP): end the call.
INBOUND_TIMEOUT_S = 10.0
MESSAGE_TOO_BIG = 1009  # WebSocket close code: the server refused an over-size message


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
    record: CallRecord | None = None     # set by the handler when it is created; completed at the end
    recorder: object | None = None       # CallRecorder when this call is sampled (set by the observer)
    bad_at: dict = field(default_factory=dict)  # bad message kind -> call time first seen

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
            self.bad_at[err.kind] = trio.current_time() - self.t0
            log.warning("call %s: dropped bad message (%s) %s", self.call_sid, err.kind, err.detail[:100])

    def complete_record(self) -> None:
        """Close the call record (before the call-ended hooks store it)."""
        rec = self.record
        if rec is None:
            return
        try:
            rec.end_reason = EndReason(self.end_reason)
        except ValueError:
            rec.end_reason = EndReason.ERROR_INTERNAL
        rec.ended_by = _ENDED_BY.get(self.ended_by or "", EndedBy.UNKNOWN)
        rec.ended_at = time.time()
        rec.complete = True
        for kind, n in self.bad.items():
            rec.events.append(EventRecord("bad_message", self.bad_at.get(kind, 0.0), f"{kind}:{n}"))


_ENDED_BY = {"caller": EndedBy.CALLER, "agent": EndedBy.AGENT, "system": EndedBy.SYSTEM}


class MediaSession:
    """Drives one media WebSocket given ASGI-style receive/send callables."""

    def __init__(self, receive: Callable[[], Awaitable[dict]], send_text: Callable[[str], Awaitable[None]],
                 ticker: Ticker, handler_factory: Callable[[MediaCall], CallHandler], *,
                 lead: float = 0.08, mark_every: int = 10, on_start=None, on_end=None,
                 send_now: SendNow | None = None):
        self.receive = receive
        self.send_text = send_text
        self.send_now = send_now  # the same socket written without yielding, for the ticker (pacer.py)
        self.ticker = ticker
        self.handler_factory = handler_factory
        self.lead = lead
        self.mark_every = mark_every
        self.on_start = on_start
        self.on_end = on_end
        self.parser = MediaStreamParser()
        self.pre_start_bad: Counter = Counter()
        self.call: MediaCall | None = None
        self.close_code: int | None = None
        self.no_start: str | None = None
        self.messages_in = 0

    async def _next_text(self) -> str | None:
        """Next text frame; None when the socket closed. Binary frames are counted and skipped."""
        while True:
            msg = await self.receive()
            t = msg["type"]
            if t == "websocket.receive":
                text = msg.get("text")
                if text is not None:
                    return text
                self._bad(ProtocolError("binary_frame", f"{len(msg.get('bytes') or b'')} bytes"))
                continue
            if t == "websocket.disconnect":
                self.close_code = msg.get("code")
                if self.close_code == MESSAGE_TOO_BIG:
                    self._bad(ProtocolError("oversize", "message over the WebSocket size cap; socket closed"))
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
        call = MediaCall(start=start, pacer=None, jitter=JitterBuffer(), t0=trio.current_time(),
                         send_raw=self.send_text)  # type: ignore[arg-type]
        call.pacer = Pacer(self.send_text, OutboundBuilder(start.stream_sid), self.ticker, lead=self.lead,
                           mark_every=self.mark_every, send_lock=trio.Lock(), call=call, send_now=self.send_now)
        call.bad.update(self.pre_start_bad)
        call.bad_at.update(dict.fromkeys(self.pre_start_bad, 0.0))
        self.call = call
        try:
            handler = self.handler_factory(call)
            if self.on_start:
                self.on_start(call)
            with trio.CancelScope() as scope:
                call.cancel_scope = scope
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call.pacer.run)
                    nursery.start_soon(self._run_handler, handler, call)
                    nursery.start_soon(self._watch_inbound, call)
                    await self._read(handler, call)
                    nursery.cancel_scope.cancel()
        except Exception as e:  # one call's bug must not take the server down
            log.exception("call %s failed", call.call_sid)
            if call.end_reason is None:
                call.end_reason, call.ended_by = "error_internal", "system"
            call.event("error", repr(e)[:200])
        finally:
            if call.end_reason is None:  # cancelled from outside: the server is going away
                call.end_reason, call.ended_by = "server_shutdown", "system"
            call.complete_record()
            if self.on_end:
                self.on_end(call)
        return call

    async def _await_start(self) -> Start | None:
        """The stream's `start`; None (with `no_start` saying why) when the stream cannot become a call."""
        with trio.move_on_after(START_TIMEOUT_S):
            while True:
                text = await self._next_text()
                if text is None:
                    self.no_start = "closed_before_start"
                    return None
                try:
                    ev = self.parser.feed(text)
                except ProtocolError as e:
                    self._bad(e)
                    if e.kind == "bad_media_format":  # audio we cannot decode: no call to have
                        self.no_start = e.kind
                        return None
                    continue
                if type(ev) is Start:
                    return ev
                if type(ev) is Stop:
                    self.no_start = "stop_before_start"
                    return None
        log.warning("media stream: no start within %.0f s; closing", START_TIMEOUT_S)
        self.no_start = "no_start_timeout"
        return None

    async def _watch_inbound(self, call: MediaCall) -> None:
        # samples a counter the reader bumps, so the per-frame path pays no clock read or timer
        seen, idle = -1, 0.0
        step = INBOUND_TIMEOUT_S / 4
        while True:
            await trio.sleep(step)
            idle = idle + step if self.messages_in == seen else 0.0
            seen = self.messages_in
            if idle >= INBOUND_TIMEOUT_S:
                log.warning("call %s: no message from Twilio for %.0f s; ending the call", call.call_sid, idle)
                call.event("inbound_timeout", f"{idle:.0f} s")
                call.end("error_protocol", "system")
                return

    async def _run_handler(self, handler: CallHandler, call: MediaCall) -> None:
        await handler.run(call)
        call.end(call.end_reason or "agent_end", call.ended_by or "agent")

    async def _read(self, handler: CallHandler, call: MediaCall) -> None:
        feed = self.parser.feed
        jitter = call.jitter
        on_audio = handler.on_audio
        while True:
            text = await self._next_text()
            self.messages_in += 1
            if text is None:
                if self.close_code == MESSAGE_TOO_BIG:
                    call.end("error_protocol", "system")
                else:  # closed without `stop`: the line went away
                    call.end("caller_hangup", "caller")
                call.event("socket_closed", str(self.close_code))
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
                    frame = jitter.pop()
                    if call.recorder is not None:
                        call.recorder.caller(frame, trio.current_time() - call.t0)
                    await on_audio(call, frame)
            elif type(ev) is Mark:
                call.pacer.on_mark(ev.name)
                handler.on_mark(call, ev.name)
            elif type(ev) is Dtmf:
                call.event("dtmf", ev.digit)
                handler.on_dtmf(call, ev.digit)
            elif type(ev) is Stop:
                call.end("caller_hangup", "caller")
                call.event("stop")
                return
