"""ElevenLabs `multi-stream-input` emulator: a trio-websocket server speaking the TTS wire protocol.

    async with elevenlabs_emulator(profile=LatencyProfile(first_s=0.2), faults=FaultPlan([...])) as emu:
        tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url)

What it does, per connection (`/v1/text-to-speech/{voice_id}/multi-stream-input`):
- Auth: the `xi-api-key` header, or `xi_api_key`/`xi-api-key`/`authorization` in the first message.
  A wrong key (or none by the first message) gets `{"message":"Invalid API key","error":
  "invalid_api_key","code":1008}` and a 1008 close; `auth="handshake"` rejects the upgrade with 401
  instead [inferred: the real service's exact behaviour is not documented].
- Contexts: text is buffered per `context_id` and generation starts when the buffer reaches the
  context's `chunk_length_schedule` step (default 120, 160, 250, 290 characters) or on `flush`.
  Audio is a synthetic voice (voiced harmonics for letters, near-silence for spaces and
  punctuation), `ms_per_char` (65 ms) of μ-law 8 kHz per character, `chars_per_chunk` characters
  per message with chunk-relative `alignment`/`normalizedAlignment`. The first chunk of a
  generation waits `profile.first()`, later chunks `profile.gap()`.
- `close_context`: a context with flushed text still being generated finishes it first (the docs:
  "if it has already been set to flush it will continue flushing"), which is also how a turn ends
  gracefully (flush, then close_context); otherwise it stops at once and unflushed text is dropped.
  Either way `isFinal` ends it.
- At most `max_contexts` (5) live contexts; one more gets a `max_active_conversations` error, 1008.
- No client message for `inactivity_timeout` s (query parameter, default 20) -> close 1008.
- Fault plan: one entry per authenticated connection; `after_s` counts from the connection's first
  text. error -> error message + close 1011; close -> close 1011 mid-stream; close_normal -> close
  1000 mid-stream (what the service does when it ends a socket, e.g. on its own shutdown); drop ->
  the TCP connection ends without a close frame; hang -> never sends
  again, socket stays open; malformed -> a truncated JSON frame; drip -> every later chunk waits
  `drip_s` (with after_s=0 that includes the first chunk: a slow first chunk).

Everything is recorded (`connections`, `contexts`) with trio.current_time() stamps, so tests under
MockClock read exact times.
"""
from __future__ import annotations

import random
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, AsyncIterator, Literal
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import trio
import trio_websocket

from offhook.audio import ulaw_encode
from offhook.providers import elevenlabs_protocol as proto
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.sim.emulators.serving import (ConnectionSession, Observable, WsConnectionRecord, emulator_args,
                                           next_message, profile_of, send_whole, serve_connection,
                                           serve_until_interrupted, serving_websocket)

DEFAULT_SCHEDULE = (120, 160, 250, 290)
_PATH_PREFIX, _PATH_SUFFIX = "/v1/text-to-speech/", "/multi-stream-input"


# ---------------------------------------------------------------- the voice
@lru_cache(maxsize=512)
def _char_audio(ch: str, samples: int) -> bytes:
    """μ-law for one character. Letters and digits are voiced (harmonics under a syllable-shaped
    envelope, pitch varying by letter), everything else near-silence, so the energy follows the
    alignment the way speech does."""
    t = np.arange(samples) / 8000
    if ch.isalnum():
        f0 = 105 + (ord(ch.lower()) % 13) * 4
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 16) if k * f0 < 3400)
        env = np.sin(np.pi * (np.arange(samples) + 0.5) / samples) ** 0.5
        x = x * env * (0.1 * 32767 / np.sqrt(np.mean(x**2) + 1e-12))
    else:
        x = np.random.default_rng(ord(ch)).standard_normal(samples) * 30
    return ulaw_encode(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def synthesize(text: str, ms_per_char: float = 65.0) -> bytes:
    samples = round(ms_per_char * 8)
    return b"".join(_char_audio(c, samples) for c in text)


# ---------------------------------------------------------------- records
@dataclass
class EmuContext:
    context_id: str
    connection: int
    opened_at: float
    voice_settings: dict | None = None
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE
    texts: list[str] = field(default_factory=list)       # text received, in order
    spoken: str = ""                                     # characters sent as audio
    audio: bytearray = field(default_factory=bytearray)  # audio bytes sent
    chunks_sent: int = 0
    chunks_after_close: int = 0
    first_text_at: float | None = None
    first_audio_at: float | None = None
    flushed_at: float | None = None
    closed_at: float | None = None                       # close_context received
    close_kind: Literal["graceful", "abrupt"] | None = None
    final_at: float | None = None                        # isFinal sent
    # generation state
    buffer: str = ""
    queue: deque = field(default_factory=deque)
    generating: bool = False
    schedule_step: int = 0
    wake: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def live(self) -> bool:
        return self.final_at is None


@dataclass(kw_only=True)
class EmuConnection(WsConnectionRecord):
    voice_id: str
    authenticated: bool = False
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[float, str, str | None]] = field(default_factory=list)  # (t, kind, context_id)

    def messages(self, **match: Any) -> list[dict[str, Any]]:
        """Received JSON messages that have all the given key/values."""
        return [m for _, m in self.received if all(m.get(k) == v for k, v in match.items())]


class ElevenLabsEmulator(Observable):
    def __init__(self, *, profile: LatencyProfile | None = None, faults: FaultPlan | None = None,
                 api_key: str = "test-elevenlabs-key", ms_per_char: float = 65.0, chars_per_chunk: int = 5,
                 max_contexts: int = 5,
                 auth: Literal["message", "handshake"] = "message") -> None:
        super().__init__()
        self.profile = profile or LatencyProfile()
        self.faults = faults or FaultPlan()
        self.api_key = api_key
        self.ms_per_char = ms_per_char
        self.chars_per_chunk = chars_per_chunk
        self.max_contexts = max_contexts
        self.auth = auth
        self.port = 0
        self.host = "127.0.0.1"
        self.connections: list[EmuConnection] = []
        self.contexts: list[EmuContext] = []
        self.rejected: list[tuple[float, int]] = []  # handshakes refused: (t, status)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def context(self, context_id: str, connection: int | None = None) -> EmuContext:
        """The latest context with this id (on one connection if given)."""
        for ctx in reversed(self.contexts):
            if ctx.context_id == context_id and (connection is None or ctx.connection == connection):
                return ctx
        raise KeyError(context_id)

    async def handle(self, request: trio_websocket.WebSocketRequest) -> None:
        url = urlsplit(request.path)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        path = url.path
        if not (path.startswith(_PATH_PREFIX) and path.endswith(_PATH_SUFFIX)):
            self.rejected.append((trio.current_time(), 404))
            await request.reject(404, body=b'{"detail":"Not Found"}')
            return
        voice_id = path[len(_PATH_PREFIX):-len(_PATH_SUFFIX)]
        header_key = headers.get("xi-api-key")
        if self.auth == "handshake" and header_key != self.api_key:
            self.rejected.append((trio.current_time(), 401))
            self._poke()
            await request.reject(401, extra_headers=[(b"content-type", b"application/json")],
                                 body=b'{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}')
            return
        ws = await request.accept()
        conn = EmuConnection(index=len(self.connections), path=request.path, voice_id=voice_id,
                             query=dict(parse_qsl(url.query)), headers=headers, opened_at=trio.current_time())
        self.connections.append(conn)
        self._poke()
        await serve_connection(self, conn, ws, lambda nursery: _Session(self, conn, ws, nursery, header_key).run())


class _Session(ConnectionSession[ElevenLabsEmulator, EmuConnection]):
    """One accepted connection."""

    def __init__(self, emu: ElevenLabsEmulator, conn: EmuConnection, ws: trio_websocket.WebSocketConnection,
                 nursery: trio.Nursery, header_key: str | None) -> None:
        super().__init__(emu, conn, ws, nursery)
        self.header_key = header_key
        self.live: dict[str, EmuContext] = {}
        self.rng = random.Random(emu.profile.seed * 1_000_003 + conn.index)
        self.last_rx = trio.current_time()
        self.fault_started_at: float | None = None
        self.closing_socket = False
        self.inactivity = float(conn.query.get("inactivity_timeout", 20))

    # -------------------------------------------------------- sending
    async def send(self, text: str, kind: str, ctx: str | None) -> None:
        if self.conn.hung:
            await trio.sleep_forever()
        self.conn.sent.append((trio.current_time(), kind, ctx))
        # shielded: a frame cut in half by a close_context would corrupt the stream
        await send_whole(self.ws, text)
        self.emu._poke()

    async def fail(self, message: str, error: str, code: int = 1008) -> None:
        await self.send(proto.error_message(message, error=error, code=code), "error", None)
        await self.close(code, message)

    # -------------------------------------------------------- main loop
    async def run(self) -> None:
        conn = self.conn
        if self.header_key is not None:
            if self.header_key != self.emu.api_key:
                await self.fail("Invalid API key", "invalid_api_key")
                return
            self.authenticate()
        self.nursery.start_soon(self.inactivity_watch)
        while (raw := await next_message(self.ws)) is not None:
            self.last_rx = now = trio.current_time()
            try:
                msg = proto.parse_client_message(raw)
                conn.received.append((now, dict(msg.data)))
            except proto.ProtocolError:
                conn.received.append((now, {"_raw": raw if isinstance(raw, str) else raw.decode("latin-1")}))
                await self.fail("Could not parse input message, make sure it is a json and follows the schema "
                                "outlined in protocol.", "invalid_input_message")
                return
            self.emu._poke()
            if not conn.authenticated:
                bearer = (msg.authorization or "").removeprefix("Bearer ").strip()
                if self.emu.api_key not in (msg.api_key, bearer or None):
                    await self.fail("Invalid API key", "invalid_api_key")
                    return
                self.authenticate()
            if conn.hung:
                continue
            if msg.close_socket:
                await self.close_all()
                continue
            if not await self.on_context_message(msg, now):
                return

    def authenticate(self) -> None:
        self.conn.authenticated = True
        self.conn.fault = self.emu.faults.next()

    async def on_context_message(self, msg: proto.ClientMessage, now: float) -> bool:
        cid = msg.context_id or "default"
        ctx = self.live.get(cid)
        if msg.close_context:
            if ctx is not None:
                self.close_context(ctx, now)
            return True
        if ctx is None:
            if msg.text is None and not msg.flush:
                return True
            if len(self.live) >= self.emu.max_contexts:
                await self.fail(f"Maximum simultaneous contexts per WebSocket connection exceeded "
                                f"({self.emu.max_contexts}). Please close an existing context before opening "
                                f"a new one.", "max_active_conversations")
                return False
            ctx = self.open_context(cid, msg, now)
        text = msg.text or ""
        if text.strip():
            ctx.texts.append(text)
            ctx.buffer += text
            if ctx.first_text_at is None:
                ctx.first_text_at = now
            if self.fault_started_at is None and self.conn.fault is not None:
                self.fault_started_at = now
                self.nursery.start_soon(self.run_fault, self.conn.fault)
        elif text == " " and ctx.texts:
            ctx.buffer += text
        if msg.flush:
            ctx.flushed_at = now
            self.trigger(ctx)
        elif len(ctx.buffer) >= ctx.schedule[min(ctx.schedule_step, len(ctx.schedule) - 1)]:
            self.trigger(ctx)
            ctx.schedule_step += 1
        return True

    def open_context(self, cid: str, msg: proto.ClientMessage, now: float) -> EmuContext:
        sched = (msg.generation_config or {}).get("chunk_length_schedule") or DEFAULT_SCHEDULE
        ctx = EmuContext(context_id=cid, connection=self.conn.index, opened_at=now,
                         voice_settings=dict(msg.voice_settings) if msg.voice_settings else None,
                         schedule=tuple(int(x) for x in sched))
        self.live[cid] = ctx
        self.emu.contexts.append(ctx)
        self.nursery.start_soon(self.generate, ctx)
        return ctx

    def trigger(self, ctx: EmuContext) -> None:
        if ctx.buffer:
            ctx.queue.append(ctx.buffer)
            ctx.buffer = ""
            ctx.wake.set()

    def close_context(self, ctx: EmuContext, now: float) -> None:
        ctx.closed_at = now
        ctx.buffer = ""
        if ctx.queue or ctx.generating:
            ctx.close_kind = "graceful"
            ctx.wake.set()
        else:
            ctx.close_kind = "abrupt"
            ctx.scope.cancel()
            ctx.queue.clear()
            self.nursery.start_soon(self.send_final, ctx)

    async def close_all(self) -> None:
        self.closing_socket = True
        for ctx in list(self.live.values()):
            self.close_context(ctx, trio.current_time())
        await self.maybe_close_socket()

    async def maybe_close_socket(self) -> None:
        if self.closing_socket and not self.live:
            await self.close(1000, "")

    # -------------------------------------------------------- generation
    def delay(self, first: bool) -> float:
        fault = self.conn.fault
        if (fault is not None and fault.kind == "drip" and self.fault_started_at is not None
                and trio.current_time() >= self.fault_started_at + fault.after_s):
            return fault.drip_s
        return self.emu.profile.first(self.rng) if first else self.emu.profile.gap(self.rng)

    async def send_chunk(self, ctx: EmuContext, piece: str) -> None:
        audio = synthesize(piece, self.emu.ms_per_char)
        dur = self.emu.ms_per_char
        al = proto.Alignment(tuple(piece), tuple(round(i * dur) for i in range(len(piece))),
                             tuple(round(dur) for _ in piece))
        ctx.spoken += piece
        ctx.audio += audio
        ctx.chunks_sent += 1
        if ctx.closed_at is not None:
            ctx.chunks_after_close += 1
        if ctx.first_audio_at is None:
            ctx.first_audio_at = trio.current_time()
        await self.send(proto.audio_message(ctx.context_id, audio, al, al), "audio", ctx.context_id)

    async def generate(self, ctx: EmuContext) -> None:
        with ctx.scope:
            idle = True
            while True:
                while not ctx.queue:
                    if ctx.close_kind == "graceful":
                        await self.send_final(ctx)
                        return
                    idle = True
                    await ctx.wake.wait()
                    ctx.wake = trio.Event()
                segment = ctx.queue[0]
                ctx.generating = True
                n = self.emu.chars_per_chunk
                while segment:
                    await trio.sleep(self.delay(idle))
                    idle = False
                    piece, segment = segment[:n], segment[n:]
                    ctx.queue[0] = segment
                    await self.send_chunk(ctx, piece)
                ctx.queue.popleft()
                ctx.generating = False

    async def send_final(self, ctx: EmuContext) -> None:
        ctx.final_at = trio.current_time()
        self.live.pop(ctx.context_id, None)
        await self.send(proto.final_message(ctx.context_id), "final", ctx.context_id)
        await self.maybe_close_socket()

    # -------------------------------------------------------- timers and faults
    async def inactivity_watch(self) -> None:
        while True:
            await trio.sleep_until(self.last_rx + self.inactivity)
            if self.conn.hung:
                return
            if trio.current_time() >= self.last_rx + self.inactivity:
                await self.close(1008, f"Have not received a new text input within the timeout of "
                                       f"{self.inactivity:g} seconds. Streaming input terminated.")
                return

    async def run_fault(self, fault: Fault) -> None:
        await trio.sleep(fault.after_s)
        if fault.kind == "error":
            await self.fail(fault.message, "emulated_error", 1011)
        elif fault.kind == "close":
            await self.close(1011, fault.message)
        elif fault.kind == "close_normal":
            await self.close(1000, "")
        elif fault.kind == "drop":
            await self.drop()
        elif fault.kind == "hang":
            self.conn.hung = True
        elif fault.kind == "malformed":
            ctx = next(iter(self.live), None)
            await self.send('{"audio": "UklGRiQAAABXQVZF', "malformed", ctx)


@asynccontextmanager
async def elevenlabs_emulator(*, host: str = "127.0.0.1", port: int = 0,
                              **options: Any) -> AsyncIterator[ElevenLabsEmulator]:
    """Serve the emulator in the current trio run for the duration of the block.
    Options: see ElevenLabsEmulator (profile, faults, api_key, ms_per_char, chars_per_chunk,
    max_contexts, auth)."""
    async with serving_websocket(ElevenLabsEmulator(**options), host, port) as emu:
        yield emu


def main(argv: list[str] | None = None) -> int:
    """Run the emulator as a separate process: python -m offhook.sim.emulators.elevenlabs --port 8765"""
    p = emulator_args(main.__doc__, first_ms=200.0, gap_ms=20.0, first_help="first-audio latency",
                      gap_help="gap between chunks", key_env="ELEVENLABS_API_KEY", test_key="test-elevenlabs-key")
    p.add_argument("--ms-per-char", type=float, default=65.0)
    p.add_argument("--chars-per-chunk", type=int, default=5)
    args = p.parse_args(argv)

    return serve_until_interrupted(
        lambda: elevenlabs_emulator(host=args.host, port=args.port, profile=profile_of(args), api_key=args.api_key,
                                    ms_per_char=args.ms_per_char, chars_per_chunk=args.chars_per_chunk),
        lambda emu: f"ElevenLabs emulator on {emu.base_url} (set ELEVENLABS_BASE_URL={emu.base_url})")


if __name__ == "__main__":
    raise SystemExit(main())
