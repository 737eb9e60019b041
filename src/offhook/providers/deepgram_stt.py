"""Deepgram live STT (`/v1/listen`) over trio-websocket (the SDK's streaming client is asyncio-only,
PROTOCOLS.md §2.2; its pydantic models parse the messages, see deepgram_protocol.py).

    stt = DeepgramSTT()                                   # key, model, base URL from the environment
    async with stt.stream(tag=call_sid) as stream:        # one WebSocket per call
        nursery.start_soon(read_events, stream)           # async for ev in stream: Partial/Final/...
        await stream.send(frame)                          # inline, per 20 ms μ-law frame
        await stream.finalize()                           # force the pending transcript out
    # leaving the block sends CloseStream and waits (close_timeout) for the last Results + Metadata

- Audio goes out as binary frames exactly as given (μ-law 8 kHz from Twilio: no conversion).
- KeepAlive every `keepalive_interval` s while no audio flows (hold), so the service does not close
  the socket (it does after 10 s without data, NET-0001).
- Reconnect without losing the caller's audio: every byte sent is kept until a final Results
  covers it (`start + duration` of is_final results). When the socket drops (close frame other than
  our CloseStream's, TCP reset, an Error message, or a stall: audio sent and nothing heard for
  `stall_timeout` s), the stream reconnects and first replays the kept audio, including what
  send() buffered meanwhile, then goes live again. The new connection's clock starts at 0 at the
  replayed audio's first byte, so its times are shifted by that offset: every event stays on the
  call's audio timeline. At most `max_buffer_s` of audio is kept (older audio cannot be replayed).
  `max_reconnects` consecutive attempts without progress (no final Results on the connection)
  end the stream with the last error's type.
- Not retried (the stream fails at once): a refused key (DeepgramAuthError), a refused request
  (HTTP 400, DeepgramRequestError), a DATA-* error (the audio itself is bad: replaying it would fail
  again), and a malformed message (DeepgramProtocolError).
- The first connection is made at stream entry; failing it raises there (no retry), so the agent
  can choose another STT before the call goes on.
- A failure surfaces as a DeepgramError (an STTError) from the event iterator after the events
  received before it, and from later send()/finalize() calls.
- Cancelling the block (hang-up) closes the socket at once.

Usage: `audio_seconds` is the audio put on the wire, replays included (what Deepgram bills);
`replayed_seconds` is the replayed part; `billed_seconds` sums the Metadata durations the service
reported (only connections that closed cleanly report one).

Environment: DEEPGRAM_API_KEY (required), DEEPGRAM_BASE_URL (ws/wss base of /v1/listen, default
wss://api.deepgram.com; http/https accepted and mapped), DEEPGRAM_MODEL (default nova-3). The key
goes only into the Authorization header, never into logs or repr().
"""
from __future__ import annotations

import logging
import math
import os
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

import trio
import trio_websocket

from offhook.providers import deepgram_protocol as proto
from offhook.providers.base import SpeechStarted, STTError, STTEvent
from offhook.providers.common import again, api_key_of, close_text, host_of, open_ws, reraise_single
from offhook.providers.ws_send import DirectSender, direct_sender

log = logging.getLogger("offhook.providers.deepgram")

REPLAY_CHUNK_S = 0.1  # replayed audio goes out in 100 ms messages, as fast as the socket takes it
STALL_AUDIO_GAP = 1.0  # a stall counts only while audio keeps flowing (sent within this many s)


class DeepgramError(STTError):
    retryable = True


class DeepgramConfigError(DeepgramError, ValueError):
    """Missing key or a bad option, found before connecting."""
    retryable = False


class DeepgramAuthError(DeepgramError):
    """The service refused the key (HTTP 401/403 at the upgrade). Never retried."""
    retryable = False


class DeepgramRequestError(DeepgramError):
    """The service refused the request (HTTP 400: a bad option) or the audio (DATA-* errors)."""
    retryable = False


class DeepgramConnectionError(DeepgramError):
    """Cannot connect, or the connection dropped and reconnecting did not help."""


class DeepgramServiceError(DeepgramError):
    """The service sent an Error message or closed with an error code."""


class DeepgramProtocolError(DeepgramError):
    """The service sent something that is not the protocol."""
    retryable = False


class DeepgramTimeout(DeepgramError):
    """Audio was sent and nothing came back for stall_timeout s (a half-dead socket)."""


class DeepgramSTT:
    """STTProvider for Deepgram live streaming (see the module docstring)."""

    name = "deepgram"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, model: str | None = None,
                 endpointing: int | bool = 300, utterance_end_ms: int | None = 1000, interim_results: bool = True,
                 vad_events: bool = True, smart_format: bool = True, punctuate: bool = True,
                 language: str | None = None, keyterms: Sequence[str] = (), keepalive_interval: float = 4.0,
                 stall_timeout: float | None = 5.0, connect_timeout: float = 5.0, send_timeout: float = 1.0,
                 close_timeout: float = 1.0, max_reconnects: int = 3, reconnect_backoff: float = 0.1,
                 max_buffer_s: float = 30.0) -> None:
        self._key = api_key_of(api_key, "DEEPGRAM_API_KEY", DeepgramConfigError, "Deepgram STT", "STT")
        base = base_url or os.environ.get("DEEPGRAM_BASE_URL") or proto.DEFAULT_BASE_URL
        self.model = model or os.environ.get("DEEPGRAM_MODEL") or proto.DEFAULT_MODEL
        try:
            self.base_url = proto.ws_base_url(base)
            self._defaults = proto.ListenOptions(
                model=self.model, endpointing=endpointing, utterance_end_ms=utterance_end_ms,
                interim_results=interim_results, vad_events=vad_events, smart_format=smart_format,
                punctuate=punctuate, language=language, keyterms=tuple(keyterms))
        except ValueError as exc:
            raise DeepgramConfigError(str(exc)) from None
        if keepalive_interval <= 0 or keepalive_interval >= 10:
            raise DeepgramConfigError("keepalive_interval must be between 0 and 10 s (the service closes "
                                      "after 10 s without data)")
        self.keepalive_interval = keepalive_interval
        self.stall_timeout = stall_timeout
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.max_reconnects = max_reconnects
        self.reconnect_backoff = reconnect_backoff
        self.max_buffer_s = max_buffer_s

    def __repr__(self) -> str:
        return f"DeepgramSTT(model={self.model!r}, base_url={self.base_url!r})"

    def options(self, *, sample_rate: int = 8000, encoding: str = "mulaw", tag: str | None = None) -> proto.ListenOptions:
        d = self._defaults
        try:
            return proto.ListenOptions(
                model=d.model, encoding=encoding, sample_rate=sample_rate, endpointing=d.endpointing,
                utterance_end_ms=d.utterance_end_ms, interim_results=d.interim_results, vad_events=d.vad_events,
                smart_format=d.smart_format, punctuate=d.punctuate, language=d.language, keyterms=d.keyterms,
                tag=tag)
        except ValueError as exc:
            raise DeepgramConfigError(str(exc)) from None

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Token {self._key.value}".encode()),
                (b"x-deepgram-session-id", str(uuid.uuid4()).encode())]

    @asynccontextmanager
    async def stream(self, *, sample_rate: int = 8000, encoding: str = "mulaw",
                     tag: str | None = None) -> AsyncIterator["DeepgramStream"]:
        options = self.options(sample_rate=sample_rate, encoding=encoding, tag=tag)
        try:
            async with trio.open_nursery() as nursery:
                stream = DeepgramStream(self, options)
                try:
                    await nursery.start(stream._supervise)
                    yield stream
                    await stream._close_gracefully()
                finally:
                    stream._end()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            reraise_single(group)


class _Connection:
    """One WebSocket of a stream. `offset` is the call audio position (bytes) of its time 0, set when
    its replay starts."""

    def __init__(self, index: int, offset: int) -> None:
        self.index = index
        self.offset = offset
        self.sent_upto = offset          # call audio position sent on this connection
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.direct: DirectSender | None = None
        self.scope = trio.CancelScope()
        self.error: DeepgramError | None = None
        self.ended = trio.Event()
        self.progressed = False          # a final came: the replay buffer moved on
        self.last_sent = self.last_audio = trio.current_time()
        self.unanswered_since: float | None = None  # first send after the last message received
        self.stall_scope: trio.CancelScope | None = None

    def end(self, err: DeepgramError | None) -> None:
        if not self.ended.is_set():
            self.error = err
            self.ended.set()
        self.scope.cancel()


class DeepgramStream:
    """One call's recognition stream (STTStream)."""

    def __init__(self, provider: DeepgramSTT, options: proto.ListenOptions) -> None:
        self._p = provider
        self.options = options
        self.url = proto.listen_url(provider.base_url, options)
        self._bps = options.bytes_per_second
        self._sample_bytes = proto.ENCODINGS[options.encoding]
        self.audio_seconds = 0.0      # on the wire, replays included (billed)
        self.replayed_seconds = 0.0
        self.billed_seconds = 0.0     # from Metadata
        self.lost_seconds = 0.0       # dropped from the replay buffer (max_buffer_s) before a final covered it
        self.connections = 0
        self.reconnects = 0
        self._buf = bytearray()       # call audio from _buf_start on, not yet covered by a final
        self._buf_start = 0
        self._live: _Connection | None = None   # send() writes straight to it
        self._replaying = False
        self._finalize_pending = False
        self._speech_started_at = -math.inf
        self._closing = False
        self._failure: DeepgramError | None = None
        self._send_ch, self._recv_ch = trio.open_memory_channel[STTEvent](math.inf)

    @property
    def call_audio_seconds(self) -> float:
        """Audio of the call given to send()."""
        return (self._buf_start + len(self._buf)) / self._bps

    # -------------------------------------------------------- caller side
    async def send(self, audio: bytes) -> None:
        if self._failure is not None:
            raise again(self._failure)
        if self._closing:
            raise STTError("send() after the Deepgram stream was closed")
        if not audio:
            return
        self._buf += audio
        conn = self._live
        if conn is None:
            self._trim()
            await trio.lowlevel.checkpoint()
            return
        await self._send_audio(conn, bytes(audio))
        self._trim()

    async def finalize(self) -> None:
        if self._failure is not None:
            raise again(self._failure)
        conn = self._live
        if conn is None:
            self._finalize_pending = True  # sent right after the replay
            await trio.lowlevel.checkpoint()
            return
        await self._send_control(conn, proto.finalize(), expect_answer=True)

    def __aiter__(self) -> "DeepgramStream":
        return self

    async def __anext__(self) -> STTEvent:
        try:
            return await self._recv_ch.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._failure is not None:
                raise again(self._failure) from None
            raise StopAsyncIteration from None

    # -------------------------------------------------------- the replay buffer
    def _trim(self) -> None:
        if self._replaying:
            return
        excess = len(self._buf) - int(self._p.max_buffer_s * self._bps)
        if excess > 0:
            excess += -excess % self._sample_bytes
            self._drop(excess)
            self.lost_seconds += excess / self._bps if self._live is None else 0.0

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._buf_start += n

    def _confirm(self, conn: _Connection, end_s: float) -> None:
        """A final covers the connection's audio up to end_s: it will never need replaying."""
        upto = min(conn.offset + round(end_s * self._bps), conn.sent_upto)
        upto -= upto % self._sample_bytes
        if upto > self._buf_start:
            self._drop(upto - self._buf_start)

    # -------------------------------------------------------- sending
    async def _send_audio(self, conn: _Connection, audio: bytes) -> None:
        if await self._send(conn, audio, expect_answer=True):
            conn.sent_upto += len(audio)
            self.audio_seconds += len(audio) / self._bps

    async def _send_control(self, conn: _Connection, text: str, *, expect_answer: bool = False) -> None:
        await self._send(conn, text, expect_answer=expect_answer)

    async def _send(self, conn: _Connection, message: str | bytes, *, expect_answer: bool) -> bool:
        """Send on conn; False if the connection failed under it (it is then being replaced, and
        the audio stays in the replay buffer)."""
        if conn.ended.is_set() or conn.ws is None:
            return False
        direct = conn.direct if isinstance(message, bytes) else None  # audio: see ws_send.py
        try:
            rest = direct.write_now(message) if direct is not None else None
            if direct is None or rest is not None:
                # Shielded with its own deadline: a frame cut in half by a cancellation would corrupt
                # the stream, and a socket that cannot take one message in send_timeout is dead anyway.
                with trio.CancelScope(shield=True, deadline=trio.current_time() + self._p.send_timeout) as cs:
                    if direct is None:
                        await conn.ws.send_message(message)
                    else:
                        await direct.finish(rest)
                if cs.cancelled_caught:
                    conn.end(DeepgramTimeout(f"sending to Deepgram took longer than {self._p.send_timeout:g} s"))
                    return False
        except trio_websocket.ConnectionClosed as exc:
            conn.end(conn.error or self._close_error(exc.reason))
            return False
        now = trio.current_time()
        conn.last_sent = now
        if isinstance(message, bytes):
            conn.last_audio = now
        if expect_answer and conn.unanswered_since is None:
            conn.unanswered_since = now
            self._refresh_stall(conn)
        return True

    async def _replay(self, conn: _Connection) -> None:
        """Send the kept audio (and what arrives meanwhile), then go live."""
        self._replaying = True  # the buffer is not trimmed under the replay
        # The connection's clock starts at the first byte it is sent: the buffer may have been
        # trimmed (max_buffer_s) during the handshake.
        conn.offset = conn.sent_upto = self._buf_start
        try:
            chunk = max(self._sample_bytes, int(REPLAY_CHUNK_S * self._bps))
            while True:
                end = self._buf_start + len(self._buf)
                if conn.sent_upto >= end:
                    break
                i = conn.sent_upto - self._buf_start
                piece = bytes(self._buf[i:i + chunk])
                if not await self._send(conn, piece, expect_answer=True):
                    return
                await trio.lowlevel.checkpoint()  # a direct write does not yield; a long replay must
                conn.sent_upto += len(piece)
                self.audio_seconds += len(piece) / self._bps
                if conn.index:
                    self.replayed_seconds += len(piece) / self._bps
            if self._finalize_pending:
                self._finalize_pending = False
                await self._send_control(conn, proto.finalize(), expect_answer=True)
            if not conn.ended.is_set():
                self._live = conn
        finally:
            self._replaying = False

    # -------------------------------------------------------- connections
    async def _supervise(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run connections one after another until the stream closes or fails for good."""
        p = self._p
        failures = 0
        first = True
        while True:
            conn = _Connection(self.connections, self._buf_start)
            try:
                await self._connection(conn, task_status if first else None)
                err = conn.error
            except DeepgramError as exc:  # the handshake failed
                if first:
                    raise
                err = exc
            first = False
            if self._closing and (err is None or err.retryable):
                return
            if err is None:
                err = DeepgramConnectionError("Deepgram closed the connection")
            if conn.progressed:
                failures = 0
            if not err.retryable:
                self._fail(err)
                return
            failures += 1
            if failures > p.max_reconnects:
                self._fail(type(err)(f"{err} (gave up after {p.max_reconnects} reconnect attempts)"))
                return
            log.warning("Deepgram stream %s: %s; reconnecting (attempt %d of %d)",
                        self.options.tag or "-", err, failures, p.max_reconnects)
            await trio.sleep(p.reconnect_backoff * 2 ** (failures - 1))
            if self._closing:
                return
            self.reconnects += 1

    async def _connection(self, conn: _Connection, task_status: trio.TaskStatus[None] | None) -> None:
        p = self._p
        started = False
        try:
            with conn.scope:
                async with open_ws(self.url, p) as ws:
                    conn.ws = ws
                    conn.direct = direct_sender(ws)
                    conn.last_sent = trio.current_time()
                    self.connections += 1
                    started = True
                    if task_status is not None:
                        task_status.started()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._read, conn)
                        nursery.start_soon(self._keepalive, conn)
                        if p.stall_timeout is not None:
                            nursery.start_soon(self._watch_stall, conn)
                        await self._replay(conn)
                        await conn.ended.wait()
                        nursery.cancel_scope.cancel()
        except trio_websocket.ConnectionRejected as exc:
            err = _rejection_error(exc)
            if not started:
                raise err from None
            conn.end(err)
        except (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError,
                trio.BrokenResourceError) as exc:
            err = DeepgramConnectionError(f"cannot connect to Deepgram at {host_of(self.url)}: {exc!r}")
            if not started:
                raise err from None
            conn.end(DeepgramConnectionError(f"Deepgram connection lost: {exc!r}"))
        finally:
            if self._live is conn:
                self._live = None
            conn.end(conn.error)  # idempotent: marks it ended for late senders

    async def _read(self, conn: _Connection) -> None:
        assert conn.ws is not None
        while True:
            try:
                raw = await conn.ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                clean = self._closing and exc.reason is not None and exc.reason.code == 1000
                conn.end(None if clean else (conn.error or self._close_error(exc.reason)))
                return
            conn.unanswered_since = None
            self._refresh_stall(conn)
            try:
                msg = proto.parse_server_message(raw)
            except proto.ProtocolError as exc:
                conn.end(DeepgramProtocolError(f"malformed message from Deepgram: {exc}"))
                return
            if isinstance(msg, proto.ServerError):
                err_cls = DeepgramRequestError if (msg.code or "").startswith("DATA-") else DeepgramServiceError
                conn.end(err_cls(f"Deepgram error: {msg.description}" + (f" ({msg.code})" if msg.code else "")))
                return
            if isinstance(msg, proto.Metadata):
                self.billed_seconds += msg.duration
                continue
            offset = conn.offset / self._bps
            try:
                for ev in proto.to_events(msg, offset):
                    if isinstance(ev, SpeechStarted):
                        # a replay makes the service announce speech the caller already started
                        if ev.at <= self._speech_started_at + 1e-3:
                            continue
                        self._speech_started_at = ev.at
                    self._send_ch.send_nowait(ev)
            except trio.ClosedResourceError:  # the stream is being left; nobody reads any more
                pass
            if isinstance(msg, proto.Results) and msg.is_final:
                conn.progressed = True
                self._confirm(conn, msg.end)

    async def _keepalive(self, conn: _Connection) -> None:
        interval = self._p.keepalive_interval
        while True:
            await trio.sleep_until(conn.last_sent + interval)
            if trio.current_time() >= conn.last_sent + interval:
                await self._send_control(conn, proto.keep_alive())

    def _stall_deadline(self, conn: _Connection) -> float:
        if conn.unanswered_since is None or self._p.stall_timeout is None:
            return math.inf
        return conn.unanswered_since + self._p.stall_timeout

    def _refresh_stall(self, conn: _Connection) -> None:
        if conn.stall_scope is not None:
            conn.stall_scope.deadline = self._stall_deadline(conn)

    async def _watch_stall(self, conn: _Connection) -> None:
        while True:
            with trio.CancelScope(deadline=self._stall_deadline(conn)) as scope:
                conn.stall_scope = scope
                await trio.sleep_forever()
            conn.stall_scope = None
            now = trio.current_time()
            if now < self._stall_deadline(conn):
                continue
            if now - conn.last_audio > STALL_AUDIO_GAP:
                # The audio stopped (hold, end of the call): silence from the service proves
                # nothing; the next audio starts a new window.
                conn.unanswered_since = None
                continue
            conn.end(DeepgramTimeout(f"Deepgram stalled: nothing received for {self._p.stall_timeout:g} s "
                                     f"while audio was flowing"))
            return

    def _close_error(self, reason: trio_websocket.CloseReason | None) -> DeepgramError:
        text = f"Deepgram closed the connection: {close_text(reason)}"
        code = proto.close_code_of(reason.reason if reason else None)
        if code is not None and code.startswith("DATA-"):
            return DeepgramRequestError(text)
        return DeepgramConnectionError(text)

    # -------------------------------------------------------- ending
    def _fail(self, err: DeepgramError) -> None:
        if self._failure is None:
            self._failure = err
            log.warning("Deepgram stream %s failed: %s", self.options.tag or "-", err)
        self._send_ch.close()

    async def _close_gracefully(self) -> None:
        """CloseStream: the service flushes its last Results and Metadata, then closes (1000)."""
        self._closing = True
        conn = self._live
        if conn is None or self._failure is not None:
            return
        with trio.move_on_after(self._p.close_timeout):
            await self._send_control(conn, proto.close_stream())
            await conn.ended.wait()

    def _end(self) -> None:
        self._closing = True
        self._send_ch.close()


def _rejection_error(exc: trio_websocket.ConnectionRejected) -> DeepgramError:
    body = (exc.body or b"")[:200].decode("utf-8", "replace")
    if exc.status_code in (401, 403):
        return DeepgramAuthError(f"Deepgram refused the API key (HTTP {exc.status_code}): {body}")
    if exc.status_code == 400:
        return DeepgramRequestError(f"Deepgram refused the request (HTTP 400): {body}")
    return DeepgramConnectionError(f"Deepgram refused the connection (HTTP {exc.status_code}): {body}")
