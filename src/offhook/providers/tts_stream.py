"""What the WebSocket TTS clients (ElevenLabs, Aura) share.

StreamedUtterance, the consumer side every streaming TTS utterance shares: audio chunks handed over from the
connection's reader task, time to first audio, and the two deadlines, all on trio.current_time():

    first_audio_timeout  (None = off) from the first send_text to the first audio chunk;
    stall_timeout        after flush(), the longest wait for the next message of the utterance,
                         first audio included (a hang).

A vendor's utterance subclasses StreamedUtterance, calls `_text_sent()`/`_flush_sent()` as its
producer side goes, and its reader calls `_deliver()`, `_on_final()` and `_fail()`.

WarmSession, a call's warm connection: (re)connecting, whole-frame sends, the typed error kinds
(each vendor subclasses them: catching TTSTimeout catches either vendor's timeout), and
open_session() for the provider's session() context manager.
"""
from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Generic, Iterable, Protocol, TypeVar

import trio
import trio_websocket

from offhook.providers.base import ULAW_8K, AudioChunk, AudioFormat, TTSError
from offhook.providers.common import again, close_text, host_of, open_ws, reraise_single


SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s*$")


class FlushPolicy(Protocol):
    eager_first_flush: bool  # the first text goes with a flush: generation starts at once
    flush_sentences: bool    # so does every text that ends a sentence


class StreamedUtterance:
    format: AudioFormat = ULAW_8K
    vendor = "TTS"
    timeout_error: type[TTSError] = TTSError

    def __init__(self, first_audio_timeout: float | None, stall_timeout: float | None) -> None:
        self.characters = 0
        self.first_audio_latency: float | None = None
        self._first_audio_timeout = first_audio_timeout
        self._stall_timeout = stall_timeout
        self._send_ch, self._recv_ch = trio.open_memory_channel[AudioChunk](math.inf)
        self._first_text_at: float | None = None
        self._flushed_at: float | None = None
        self._last_rx_at: float | None = None
        self._final = False
        self._failure: TTSError | None = None
        self._wait_scope: trio.CancelScope | None = None
        self._held = ""  # whitespace-only text waits for the next words
        self._flushed = False

    # -------------------------------------------------------- producer side bookkeeping
    def _take_text(self, text: str) -> str | None:
        """send_text()'s checks: the text to send now (with whitespace held from before), or None
        while there is nothing worth sending."""
        if self._flushed:
            raise RuntimeError("send_text() after flush()")
        if self._failure is not None:
            raise again(self._failure)
        if not text:
            return None
        if not text.strip():
            self._held += text
            return None
        text, self._held = self._held + text, ""
        return text

    @staticmethod
    def _wants_flush(text: str, first: bool, policy: FlushPolicy) -> bool:
        return (first and policy.eager_first_flush) or (policy.flush_sentences and bool(SENTENCE_END.search(text)))

    def _start_flush(self) -> bool:
        """flush()'s checks: False when flushed already; a stored failure raises."""
        if self._flushed:
            return False
        if self._failure is not None:
            raise again(self._failure)
        self._flushed = True
        return True

    def _text_sent(self) -> None:
        if self._first_text_at is None:
            self._first_text_at = trio.current_time()
            self._refresh()

    def _flush_sent(self) -> None:
        self._flushed_at = trio.current_time()
        self._refresh()

    def _end_empty(self) -> None:
        """flush() with nothing said: the utterance ends at once, without audio."""
        self._final = True
        self._send_ch.close()

    # -------------------------------------------------------- consumer side
    def __aiter__(self) -> "StreamedUtterance":
        return self

    async def __anext__(self) -> AudioChunk:
        while True:
            with trio.CancelScope(deadline=self._deadline()) as scope:
                self._wait_scope = scope
                try:
                    return await self._recv_ch.receive()
                except trio.EndOfChannel:
                    if self._failure is not None:
                        raise again(self._failure) from None
                    raise StopAsyncIteration from None
                finally:
                    self._wait_scope = None
            if trio.current_time() >= self._deadline():
                self._timed_out()

    def _deadline(self) -> float:
        deadline = math.inf
        if self.first_audio_latency is None and self._first_audio_timeout is not None \
                and self._first_text_at is not None:
            deadline = self._first_text_at + self._first_audio_timeout
        if self._flushed_at is not None and self._stall_timeout is not None and not self._final:
            since = max(self._flushed_at, self._last_rx_at or -math.inf)
            deadline = min(deadline, since + self._stall_timeout)
        return deadline

    def _refresh(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.deadline = self._deadline()

    def _timed_out(self) -> None:
        if self.first_audio_latency is None and self._first_audio_timeout is not None \
                and self._first_text_at is not None \
                and trio.current_time() >= self._first_text_at + self._first_audio_timeout:
            # The utterance is abandoned (the vendor's abort on exit); the connection may be fine.
            err = self.timeout_error(f"no audio from {self.vendor} within {self._first_audio_timeout:g} s "
                                     f"of the first text")
        else:
            err = self.timeout_error(f"{self.vendor} audio stalled: nothing for {self._stall_timeout:g} s after flush")
            self._stalled(err)
        self._fail(err)
        raise again(err)

    def _stalled(self, err: TTSError) -> None:
        """A half-dead socket: the subclass drops its connection so the next utterance gets a new one."""

    # -------------------------------------------------------- fed by the session's reader
    def _deliver(self, chunk: AudioChunk, *, audio: bool = True) -> None:
        now = trio.current_time()
        self._last_rx_at = now
        if self.first_audio_latency is None and audio:
            self.first_audio_latency = now - (self._first_text_at if self._first_text_at is not None else now)
        try:
            self._send_ch.send_nowait(chunk)
        except trio.ClosedResourceError:
            pass
        self._refresh()

    def _on_final(self) -> None:
        self._final = True
        self._send_ch.close()
        self._refresh()

    def _fail(self, err: TTSError) -> None:
        if not self._final and self._failure is None:
            self._failure = err
            self._send_ch.close()


# ---------------------------------------------------------------- the warm WebSocket session
class TTSConfigError(TTSError, ValueError):
    """Missing key or a bad setting, found at construction."""


class TTSAuthError(TTSError):
    """The service refused the key. Final for the session: no reconnect will fix it."""


class TTSConnectionError(TTSError):
    """Cannot connect, or the connection closed or broke under an utterance."""


class TTSServiceError(TTSError):
    """The service reported an error (an error message, or a close frame with an error code)."""


class TTSProtocolError(TTSError):
    """The service sent something that is not the protocol."""


class TTSTimeout(TTSError):
    """first_audio_timeout or stall_timeout passed."""


@dataclass(frozen=True)
class ErrorKinds:
    """A vendor's own subclasses of the kinds above, which its session raises."""
    auth: type[TTSError]
    connection: type[TTSError]
    service: type[TTSError]
    protocol: type[TTSError]
    timeout: type[TTSError]


class WsProvider(Protocol):
    url: str
    connect_timeout: float
    send_timeout: float
    close_timeout: float

    def _headers(self) -> list[tuple[bytes, bytes]]: ...


class WsConnection:
    """One WebSocket of a session; its tasks live in the session's nursery."""

    def __init__(self, index: int, label: str, log: logging.Logger) -> None:
        self.index = index
        self.label = label
        self.log = log
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.scope = trio.CancelScope()
        self.failure: TTSError | None = None
        self.closing = False
        self.last_sent = trio.current_time()  # for keep-alives

    @property
    def dead(self) -> bool:
        return self.failure is not None or self.closing

    def utterances(self) -> Iterable[StreamedUtterance]:
        return ()

    def fail(self, err: TTSError) -> None:
        if self.failure is None:
            self.failure = err
            if not self.closing:
                self.log.warning("%s connection %d failed: %s", self.label, self.index, err)
        for utt in list(self.utterances()):
            utt._fail(err)
        self.scope.cancel()


C = TypeVar("C", bound=WsConnection)


class WarmSession(ABC, Generic[C]):
    """A call's warm connection to one WebSocket TTS vendor: connects (again after a failure),
    sends whole frames or nothing, maps handshake refusals and close frames to the vendor's errors.
    Subclasses provide `_new_connection`, `_serve` (the connection's reader, ...) and the hooks."""

    vendor = "TTS"
    errors: ErrorKinds
    log = logging.getLogger("offhook.providers")

    def __init__(self, provider: WsProvider, nursery: trio.Nursery) -> None:
        self._p = provider
        self._nursery = nursery
        self._conn: C | None = None
        self._fatal: TTSError | None = None
        self._closing = False
        self._connect_lock = trio.Lock()  # one (re)connection at a time
        self.characters = 0            # usage: characters sent for synthesis, all utterances
        self.connections = 0           # WebSockets opened (1 + reconnects)
        self.stale_chunks_dropped = 0  # audio of aborted utterances that arrived anyway, dropped

    # -------------------------------------------------------- hooks
    @abstractmethod
    def _new_connection(self, index: int) -> C:
        ...

    @abstractmethod
    async def _serve(self, conn: C) -> None:
        """Run the open connection until it ends (read and route messages; record failures on it)."""

    async def _on_connected(self, conn: C) -> None:
        """After the handshake, before the connection is handed out."""

    def _after_connection(self, conn: C, *, idle: bool) -> None:
        """The connection has ended; idle: no utterance was using it."""

    def _goodbye(self) -> str | None:
        """The message that ends the session politely, if the protocol has one."""
        return None

    # -------------------------------------------------------- connecting
    async def _connect(self) -> C:
        if self._fatal is not None:
            raise again(self._fatal)
        conn = self._new_connection(self.connections)
        self.connections += 1
        await self._nursery.start(self._run_connection, conn)
        self._conn = conn
        await self._on_connected(conn)
        return conn

    async def _ready_connection(self) -> C:
        """The live connection, or a new one (a failed connection is replaced lazily, here)."""
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.dead:
                return conn
            if self._fatal is not None:
                raise again(self._fatal)
            self.log.info("%s: reconnecting (connection %d)", self.vendor, self.connections)
            return await self._connect()

    async def _run_connection(self, conn: C, *, task_status: trio.TaskStatus[None]) -> None:
        p, errors = self._p, self.errors
        started = False
        try:
            with conn.scope:
                async with open_ws(p.url, p) as ws:
                    conn.ws = ws
                    conn.last_sent = trio.current_time()
                    started = True
                    task_status.started()
                    try:
                        await self._serve(conn)
                    finally:
                        if conn.failure is None and trio.current_effective_deadline() == -math.inf:
                            # Cancelled from outside: the session is going away with its call.
                            # Marked before the socket closes, so that a send racing the close
                            # ("1000 NORMAL_CLOSURE", which is our own) is not logged as a failure.
                            conn.closing = True
        except trio_websocket.ConnectionRejected as exc:
            err = self._rejection_error(exc)
            if isinstance(err, errors.auth):
                self._fatal = err
            if not started:
                raise err from None
            conn.fail(err)
        except (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, OSError,
                trio.BrokenResourceError) as exc:
            if not started:
                raise errors.connection(f"cannot connect to {self.vendor} at {host_of(p.url)}: {exc!r}") from None
            if not conn.dead:  # a close handshake that timed out after we asked to close is no news
                conn.fail(errors.connection(f"{self.vendor} connection lost: {exc!r}"))
        finally:
            idle = not any(True for _ in conn.utterances()) and not conn.closing
            if conn.failure is None:
                conn.fail(errors.connection(f"{self.vendor} connection closed"))
            if started:
                self._after_connection(conn, idle=idle)

    def _rejection_error(self, exc: trio_websocket.ConnectionRejected) -> TTSError:
        body = (exc.body or b"")[:200].decode("utf-8", "replace")
        if exc.status_code in (401, 403):
            return self.errors.auth(f"{self.vendor} refused the API key (HTTP {exc.status_code}): {body}")
        return self.errors.connection(f"{self.vendor} refused the connection (HTTP {exc.status_code}): {body}")

    def _close_error(self, reason: trio_websocket.CloseReason | None) -> TTSError:
        return self.errors.connection(f"{self.vendor} closed the connection: {close_text(reason)}")

    def _service_failed(self, conn: C, err: TTSError) -> None:
        """The service reported an error; a refused key is final for the session."""
        if isinstance(err, self.errors.auth):
            self._fatal = err
        conn.fail(err)

    async def _receive(self, conn: C, parse: Callable[[str | bytes], Any]) -> Any | None:
        """The next message, parsed; None once the connection has failed (close frame, reset,
        or a malformed message), the failure recorded on it."""
        assert conn.ws is not None
        try:
            raw = await conn.ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            conn.fail(self._close_error(exc.reason))
            return None
        try:
            return parse(raw)
        except ValueError as exc:  # the protocol modules' ProtocolError
            conn.fail(self.errors.protocol(f"malformed message from {self.vendor}: {exc}"))
            return None

    # -------------------------------------------------------- sending and closing
    async def _send(self, conn: C, text: str) -> None:
        if conn.failure is not None:
            raise again(conn.failure)
        assert conn.ws is not None
        # Shielded with its own deadline: a frame cut in half by a cancellation would corrupt the
        # stream, and a socket that cannot take a few hundred bytes in send_timeout is dead anyway.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + self._p.send_timeout) as cs:
            try:
                await conn.ws.send_message(text)
            except trio_websocket.ConnectionClosed as exc:
                err = conn.failure or self._close_error(exc.reason)
                conn.fail(err)
                raise again(err)
        if cs.cancelled_caught:
            err = self.errors.connection(f"sending to {self.vendor} took longer than {self._p.send_timeout:g} s")
            conn.fail(err)
            raise err
        conn.last_sent = trio.current_time()

    async def _close_gracefully(self) -> None:
        self._closing = True
        conn = self._conn
        if conn is None or conn.dead or conn.ws is None:
            return
        conn.closing = True
        goodbye = self._goodbye()
        with trio.move_on_after(self._p.close_timeout):
            try:
                if goodbye is not None:
                    await conn.ws.send_message(goodbye)
                await conn.ws.aclose(1000)
            except trio_websocket.ConnectionClosed:
                pass


S = TypeVar("S", bound=WarmSession)


@asynccontextmanager
async def open_session(make: Callable[[trio.Nursery], S]) -> AsyncIterator[S]:
    """A provider's session(): connect on entry, close politely on exit, cancel everything left."""
    try:
        async with trio.open_nursery() as nursery:
            session = make(nursery)
            try:
                await session._connect()
                yield session
                await session._close_gracefully()
            finally:
                session._closing = True
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The session's own tasks only ever end in Cancelled. When an outer cancellation lands in
        # the same step as the caller's error, their Cancelled sits beside it: raise the caller's
        # error alone, as any context manager would (the scope stays cancelled, so its next
        # checkpoint raises Cancelled again), or a caller's `except TTSError` would miss it.
        _, own = group.split(trio.Cancelled)
        reraise_single(own if own is not None else group)
