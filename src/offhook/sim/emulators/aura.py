"""Deepgram Aura streaming TTS (`/v1/speak`) emulator: a trio-websocket server speaking the protocol.

    async with aura_emulator(profile=LatencyProfile(first_s=0.2, gap_s=0.02)) as emu:
        tts = AuraTTS(api_key=emu.api_key, base_url=emu.base_url)

Per connection (path `/v1/speak`, query encoding/model/sample_rate; auth as on /v1/listen:
`Authorization: Token|Bearer <key>` or the `token, <key>` subprotocol, else HTTP 401; a format the
service does not offer -> HTTP 400):
- Metadata first, on accept.
- Speak: text is buffered. Flush: the buffer becomes a job with the next sequence_id (0, 1, ...);
  jobs are generated in order, each answered by Flushed {sequence_id} after its audio. An empty
  Flush is answered too.
- Audio: a synthetic voice (offhook.sim.voice.synthetic_voice: voiced harmonics with a syllable
  rhythm, ~65 ms per character, so the length follows the text) in the requested encoding/rate,
  raw binary frames of `chunk_ms` (100 ms). The first frame of a job waits `profile.first()`
  if the generator was idle, every later frame `profile.gap()`.
- Clear: drops the buffer, the queued jobs and the rest of the current one at once, then Cleared
  {sequence_id of the last Flush}. Close: finishes the queued jobs, then closes with 1000.
- No message for `idle_timeout` (60 s [inferred: the service's exact inactivity limit is not
  documented]) -> close 1011 `NET-0001`.
- Fault plan, one entry per accepted connection, `after_s` counted from the first Speak: error
  (after_s=0: the upgrade is refused with `status`; later: close 1011 with `message`, which should
  start with a code such as NET-0000), close (TCP dropped without a close frame), hang (nothing
  more is sent, the socket stays open), malformed (a truncated JSON frame), drip (every audio frame
  from after_s on waits `drip_s`).

Everything is recorded with trio.current_time() stamps (`connections`, `jobs`), so tests under
MockClock read exact times. Standalone: `python -m offhook.sim.emulators.aura --port 8768`.
"""
from __future__ import annotations

import random
import uuid
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import parse_qsl

import numpy as np
import trio
import trio_websocket

from offhook.audio import ulaw_decode, ulaw_encode
from offhook.providers import aura_protocol as proto
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.sim.emulators.deepgram import DeepgramFront
from offhook.sim.emulators.serving import (ConnectionSession, WsConnectionRecord, emulator_args, next_message,
                                           profile_of, send_whole, serve_connection, serve_until_interrupted,
                                           serving_websocket)
from offhook.sim.voice import synthetic_voice

__all__ = ["AuraEmulator", "EmuConnection", "EmuJob", "aura_emulator", "render", "main"]


def render(text: str, opts: proto.SpeakOptions) -> bytes:
    """The emulated voice for `text` in the connection's encoding and rate (A-law is rendered as
    μ-law: only its length and timing matter to the client)."""
    ulaw = synthetic_voice(text)
    if opts.sample_rate == 8000 and opts.encoding != "linear16":
        return ulaw
    pcm = np.frombuffer(ulaw_decode(ulaw), "<i2")
    n = len(pcm) * opts.sample_rate // 8000
    pcm = np.interp(np.arange(n) * 8000 / opts.sample_rate, np.arange(len(pcm)), pcm).astype("<i2").tobytes()
    return pcm if opts.encoding == "linear16" else ulaw_encode(pcm)


@dataclass
class EmuJob:
    """One Flush: its text and what became of it."""
    connection: int
    sequence_id: int
    text: str
    flushed_at: float
    audio: bytearray = field(default_factory=bytearray)   # audio bytes sent
    frames_sent: int = 0
    first_audio_at: float | None = None
    done_at: float | None = None                          # Flushed sent
    cleared_at: float | None = None


@dataclass(kw_only=True)
class EmuConnection(WsConnectionRecord):
    options: proto.SpeakOptions
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[float, str]] = field(default_factory=list)   # (t, "audio"|"Flushed"|"Cleared"|...)

    def messages(self, type_: str) -> list[dict[str, Any]]:
        return [m for _, m in self.received if m.get("type") == type_]

    def times(self, type_: str) -> list[float]:
        return [t for t, m in self.received if m.get("type") == type_]


class AuraEmulator(DeepgramFront):
    def __init__(self, *, profile: LatencyProfile | None = None, faults: FaultPlan | None = None,
                 api_key: str = "test-deepgram-key", chunk_ms: float = 100.0, idle_timeout: float = 60.0) -> None:
        super().__init__(api_key=api_key, faults=faults)
        self.profile = profile or LatencyProfile()
        self.chunk_ms = chunk_ms
        self.idle_timeout = idle_timeout
        self.connections: list[EmuConnection] = []
        self.jobs: list[EmuJob] = []

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        accepted = await self.accept(request, proto.SPEAK_PATH, proto.parse_speak_query)
        if accepted is None:
            return
        ws, url, headers, options, fault = accepted
        conn = EmuConnection(index=len(self.connections), path=request.path, query=dict(parse_qsl(url.query)),
                             headers=headers, options=options, opened_at=trio.current_time(), fault=fault)
        self.connections.append(conn)
        self._poke()
        await serve_connection(self, conn, ws, lambda nursery: _Session(self, conn, ws, nursery).run())


class _Session(ConnectionSession[AuraEmulator, EmuConnection]):
    def __init__(self, emu: AuraEmulator, conn: EmuConnection, ws: trio_websocket.WebSocketConnection,
                 nursery: trio.Nursery) -> None:
        super().__init__(emu, conn, ws, nursery)
        self.rng = random.Random(emu.profile.seed * 1_000_003 + conn.index)
        self.buffer = ""
        self.jobs: deque[EmuJob] = deque()
        self.wake = trio.Event()
        self.gen_scope = trio.CancelScope()
        self.next_seq = 0
        self.last_rx = trio.current_time()
        self.fault_started_at: float | None = None
        self.closing = False
        self.frame_bytes = max(1, round(emu.chunk_ms / 1000 * conn.options.bytes_per_second))

    async def send(self, message: str | bytes, kind: str) -> None:
        while self.conn.hung:
            await trio.sleep_forever()
        self.conn.sent.append((trio.current_time(), kind))
        await send_whole(self.ws, message)
        self.emu._poke()

    async def run(self) -> None:
        self.nursery.start_soon(self.idle_watch)
        self.nursery.start_soon(self.generate_forever)
        await self.send(proto.metadata_message(request_id=str(uuid.uuid4()), model=self.conn.options.model),
                        "Metadata")
        while (raw := await next_message(self.ws)) is not None:
            now = self.last_rx = trio.current_time()
            try:
                msg = proto.parse_client_message(raw)
            except proto.ProtocolError as exc:
                self.conn.received.append((now, {"_raw": raw if isinstance(raw, str) else repr(raw[:40])}))
                await self.send(proto.warning_message(f"Could not parse message: {exc}", "INVALID_MESSAGE"),
                                "Warning")
                continue
            self.conn.received.append((now, {"type": msg.type, **({"text": msg.text} if msg.text is not None else {})}))
            self.emu._poke()
            if self.conn.hung or self.closing:
                continue
            if msg.type == "Speak":
                self.buffer += msg.text or ""
                if self.fault_started_at is None and self.conn.fault is not None:
                    self.fault_started_at = now
                    self.nursery.start_soon(self.run_fault, self.conn.fault)
            elif msg.type == "Flush":
                job = EmuJob(self.conn.index, self.next_seq, self.buffer, now)
                self.next_seq += 1
                self.buffer = ""
                self.jobs.append(job)
                self.emu.jobs.append(job)
                self.wake.set()
            elif msg.type == "Clear":
                self.clear(now)
                await self.send(proto.cleared_message(self.next_seq - 1), "Cleared")
            elif msg.type == "Close":
                self.closing = True
                self.jobs.append(EmuJob(self.conn.index, -1, "", now))  # a marker: close once the queue is done
                self.wake.set()

    def clear(self, now: float) -> None:
        self.buffer = ""
        for job in self.jobs:
            job.cleared_at = now
        self.jobs.clear()
        self.gen_scope.cancel()

    def delay(self, first: bool) -> float:
        fault = self.conn.fault
        if (fault is not None and fault.kind == "drip" and self.fault_started_at is not None
                and trio.current_time() >= self.fault_started_at + fault.after_s):
            return fault.drip_s
        return self.emu.profile.first(self.rng) if first else self.emu.profile.gap(self.rng)

    async def generate_forever(self) -> None:
        idle = True
        while True:
            while not self.jobs:
                idle = True
                await self.wake.wait()
                self.wake = trio.Event()
            job = self.jobs[0]
            if job.sequence_id < 0:
                await self.close(1000, "")
                return
            self.gen_scope = trio.CancelScope()
            with self.gen_scope:
                audio = render(job.text, self.conn.options) if job.text.strip() else b""
                for i in range(0, len(audio), self.frame_bytes):
                    await trio.sleep(self.delay(idle))
                    idle = False
                    frame = audio[i:i + self.frame_bytes]
                    if job.first_audio_at is None:
                        job.first_audio_at = trio.current_time()
                    job.audio += frame
                    job.frames_sent += 1
                    await self.send(frame, "audio")
                job.done_at = trio.current_time()
                await self.send(proto.flushed_message(job.sequence_id), "Flushed")
                if self.jobs and self.jobs[0] is job:  # a Clear may have emptied the queue meanwhile
                    self.jobs.popleft()
            if self.gen_scope.cancelled_caught:
                job.cleared_at = job.cleared_at or trio.current_time()
                idle = True

    async def idle_watch(self) -> None:
        timeout = self.emu.idle_timeout
        while True:
            await trio.sleep_until(self.last_rx + timeout)
            if self.conn.hung:
                return
            if trio.current_time() >= self.last_rx + timeout and not self.jobs:
                await self.close(1011, "NET-0001: no messages received within the timeout window")
                return
            if self.jobs:
                self.last_rx = trio.current_time()

    async def run_fault(self, fault: Fault) -> None:
        await trio.sleep(fault.after_s)
        if fault.kind == "error":
            await self.close(1011, fault.message if fault.message[:1].isupper() and "-" in fault.message[:9]
                             else f"NET-0000 {fault.message}")
        elif fault.kind == "close":
            await self.drop()
        elif fault.kind == "hang":
            self.conn.hung = True
        elif fault.kind == "malformed":
            await self.send('{"type": "Flushed", "sequence_', "malformed")



@asynccontextmanager
async def aura_emulator(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> AsyncIterator[AuraEmulator]:
    """Serve the emulator in the current trio run for the duration of the block.
    Options: see AuraEmulator (profile, faults, api_key, chunk_ms, idle_timeout)."""
    async with serving_websocket(AuraEmulator(**options), host, port) as emu:
        yield emu


def main(argv: list[str] | None = None) -> int:
    """Run the emulator as a separate process: python -m offhook.sim.emulators.aura --port 8768"""
    p = emulator_args(main.__doc__, first_ms=200.0, gap_ms=20.0, first_help="first-audio latency",
                      gap_help="gap between audio frames", key_env="DEEPGRAM_API_KEY", test_key="test-deepgram-key")
    p.add_argument("--chunk-ms", type=float, default=100.0)
    args = p.parse_args(argv)

    return serve_until_interrupted(
        lambda: aura_emulator(host=args.host, port=args.port, profile=profile_of(args), api_key=args.api_key,
                              chunk_ms=args.chunk_ms),
        lambda emu: f"Aura emulator on {emu.base_url} (set DEEPGRAM_TTS_BASE_URL={emu.base_url})")


if __name__ == "__main__":
    raise SystemExit(main())
