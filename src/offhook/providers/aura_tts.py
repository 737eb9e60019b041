"""Deepgram Aura streaming TTS over the `/v1/speak` WebSocket (trio-websocket; the SDK's streaming
client is asyncio-only, PROTOCOLS.md §2.2). The second TTS vendor, behind the same interface as
ElevenLabs, for fallback: same Deepgram key as the STT.

    tts = AuraTTS()                              # key, model, base URL from the environment
    async with tts.session() as session:         # one warm connection per call
        async with session.utterance() as utt:   # one per agent turn
            await utt.send_text("Sure, ")
            await utt.flush()
            async for chunk in utt:              # μ-law 8 kHz, no alignment (Aura gives none)
                ...

- Text goes out as Speak messages as it arrives; a Flush follows the first clause (generation
  starts at once) and every sentence end, and flush() sends the last one. The utterance ends when
  the service has answered every Flush of it with Flushed (audio frames carry no id: one utterance
  at a time per connection, audio belongs to the current one).
- Leaving `utterance()` before the end (barge-in: the responder's scope is cancelled) sends Clear;
  audio arriving until Cleared is stale and dropped (`session.stale_chunks_dropped`). The next
  utterance waits for Cleared (at most `clear_timeout`, else it takes a fresh connection).
- A connection the service closes while no utterance runs (idle) is replaced at once in the
  background, so the next turn still finds a warm socket.
- Failures raise TTSError subclasses from the utterance; the session stays usable (the next
  utterance reconnects), except after an auth error. Deadlines as for every streaming TTS
  (tts_stream.py): first_audio_timeout (off by default) and stall_timeout after flush().

Environment: DEEPGRAM_API_KEY (required), DEEPGRAM_TTS_BASE_URL (ws/wss base of /v1/speak; falls
back to DEEPGRAM_BASE_URL, then wss://api.deepgram.com), DEEPGRAM_TTS_MODEL (default
aura-2-thalia-en). The key goes only into the Authorization header, never into logs or repr().
"""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncContextManager, AsyncIterator

import trio
import trio_websocket

from offhook.providers import aura_protocol as proto
from offhook.providers.base import ULAW_8K, AudioChunk, AudioFormat, TTSError
from offhook.providers.common import api_key_of, close_text
from offhook.providers.deepgram_protocol import close_code_of
from offhook.providers.tts_stream import (ErrorKinds, StreamedUtterance, TTSAuthError, TTSConfigError,
                                          TTSConnectionError, TTSProtocolError, TTSServiceError, TTSTimeout,
                                          WarmSession, WsConnection, open_session)

log = logging.getLogger("offhook.providers.aura")

class AuraConfigError(TTSConfigError):
    pass


class AuraAuthError(TTSAuthError):
    pass


class AuraConnectionError(TTSConnectionError):
    pass


class AuraServiceError(TTSServiceError):
    pass


class AuraProtocolError(TTSProtocolError):
    pass


class AuraTimeout(TTSTimeout):
    pass


class AuraTTS:
    """TTSProvider for Deepgram Aura (see the module docstring)."""

    name = "aura"
    format: AudioFormat = ULAW_8K

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, model: str | None = None,
                 first_audio_timeout: float | None = None, stall_timeout: float | None = 2.0,
                 connect_timeout: float = 5.0, send_timeout: float = 1.0, close_timeout: float = 0.5,
                 clear_timeout: float = 1.0, eager_first_flush: bool = True, flush_sentences: bool = True) -> None:
        self._key = api_key_of(api_key, "DEEPGRAM_API_KEY", AuraConfigError, "Deepgram Aura TTS", "TTS")
        self.model = model or os.environ.get("DEEPGRAM_TTS_MODEL") or proto.DEFAULT_MODEL
        base = (base_url or os.environ.get("DEEPGRAM_TTS_BASE_URL") or os.environ.get("DEEPGRAM_BASE_URL")
                or proto.DEFAULT_BASE_URL)
        try:
            self.url = proto.speak_url(base, model=self.model, encoding="mulaw", sample_rate=8000)
        except ValueError as exc:
            raise AuraConfigError(str(exc)) from None
        self.first_audio_timeout = first_audio_timeout
        self.stall_timeout = stall_timeout
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.clear_timeout = clear_timeout
        self.eager_first_flush = eager_first_flush
        self.flush_sentences = flush_sentences

    def __repr__(self) -> str:
        return f"AuraTTS(model={self.model!r}, url={self.url!r})"

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Token {self._key.value}".encode())]

    def session(self) -> AsyncContextManager["AuraSession"]:
        return open_session(lambda nursery: AuraSession(self, nursery))


class _Connection(WsConnection):
    def __init__(self, index: int) -> None:
        super().__init__(index, "Aura", log)
        self.current: AuraUtterance | None = None
        self.flushes_sent = 0
        self.flushes_answered = 0
        self.clearing = False
        self.cleared = trio.Event()
        self.request_id: str | None = None

    def utterances(self) -> list["AuraUtterance"]:
        return [self.current] if self.current is not None else []

    def fail(self, err: TTSError) -> None:
        super().fail(err)
        self.cleared.set()


class AuraSession(WarmSession[_Connection]):
    """A call's warm connection (TTSSession)."""

    vendor = "Deepgram Aura"
    errors = ErrorKinds(AuraAuthError, AuraConnectionError, AuraServiceError, AuraProtocolError, AuraTimeout)
    log = log

    def __init__(self, provider: AuraTTS, nursery: trio.Nursery) -> None:
        super().__init__(provider, nursery)
        self._p: AuraTTS = provider
        self.warnings: list[tuple[str, str]] = []

    def _new_connection(self, index: int) -> _Connection:
        return _Connection(index)

    async def _serve(self, conn: _Connection) -> None:
        await self._read(conn)

    def _goodbye(self) -> str:
        return proto.close()

    def _close_error(self, reason: trio_websocket.CloseReason | None) -> TTSError:
        text = f"Deepgram Aura closed the connection: {close_text(reason)}"
        if reason is not None and reason.code != 1000 and close_code_of(reason.reason) is not None:
            return AuraServiceError(text)  # NET-0000, DATA-0000, ...: the service's own error
        return AuraConnectionError(text)

    def _after_connection(self, conn: _Connection, *, idle: bool) -> None:
        if idle and not self._closing and self._fatal is None and self._conn is conn:
            # Closed while idle (the service's inactivity timeout): warm a new one for the next turn.
            self._nursery.start_soon(self._rewarm, conn)

    async def _rewarm(self, old: _Connection) -> None:
        async with self._connect_lock:  # a new turn may be connecting already
            if self._conn is old and not self._closing:
                try:
                    await self._connect()
                except TTSError:
                    pass  # the next utterance tries again and reports the error

    async def _read(self, conn: _Connection) -> None:
        while (msg := await self._receive(conn, proto.parse_server_message)) is not None:
            utt = conn.current
            if isinstance(msg, proto.Audio):
                if conn.clearing or utt is None or utt._final:
                    self.stale_chunks_dropped += 1
                else:
                    utt._deliver(AudioChunk(msg.data, None))
            elif isinstance(msg, proto.Flushed):
                if not conn.clearing:
                    conn.flushes_answered += 1
                    if utt is not None:
                        utt._check_done()
            elif isinstance(msg, proto.Cleared):
                # Whatever was asked before the Clear will not be answered any more.
                conn.flushes_answered = conn.flushes_sent
                conn.clearing = False
                conn.cleared.set()
            elif isinstance(msg, proto.Metadata):
                conn.request_id = msg.request_id
            elif isinstance(msg, proto.Warning_):
                self.warnings.append((msg.code, msg.description))
                log.warning("Deepgram Aura warning %s: %s", msg.code, msg.description)
            elif isinstance(msg, proto.ServerError):
                err_cls = AuraAuthError if (msg.code or "").upper().startswith("AUTH") else AuraServiceError
                self._service_failed(conn, err_cls(f"Deepgram Aura error: {msg.description}"
                                                   + (f" ({msg.code})" if msg.code else "")))
                return

    async def _ready_connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.dead and conn.clearing:
            with trio.move_on_after(self._p.clear_timeout):
                await conn.cleared.wait()
            if conn.clearing and not conn.dead:
                log.info("Aura: no Cleared within %g s; replacing the connection", self._p.clear_timeout)
                conn.closing = True
                conn.scope.cancel()
        return await super()._ready_connection()

    # -------------------------------------------------------- utterances
    @asynccontextmanager
    async def utterance(self) -> AsyncIterator["AuraUtterance"]:
        conn = await self._ready_connection()
        utt = AuraUtterance(self, conn)
        conn.current = utt
        try:
            yield utt
        finally:
            conn.current = None
            self.characters += utt.characters
            if not utt._final and utt._spoken and not conn.dead:
                # Barge-in or an early exit: stop generation; audio until Cleared is dropped.
                conn.clearing = True
                conn.cleared = trio.Event()
                try:
                    await self._send(conn, proto.clear())
                except TTSError:
                    pass


class AuraUtterance(StreamedUtterance):
    """One agent turn on the session's connection (TTSUtterance)."""

    vendor = "Deepgram Aura"
    timeout_error = AuraTimeout

    def __init__(self, session: AuraSession, conn: _Connection) -> None:
        super().__init__(session._p.first_audio_timeout, session._p.stall_timeout)
        self._session = session
        self._conn = conn
        self._p = session._p
        self._spoken = False         # a Speak went out: Clear needed to abort
        self._unflushed = False      # Speak sent since the last Flush
        self._target: int | None = None  # connection flush count that ends this utterance

    async def send_text(self, text: str) -> None:
        if (text := self._take_text(text)) is None:
            return
        first = not self._spoken
        for start in range(0, len(text), proto.MAX_SPEAK_CHARS):
            await self._session._send(self._conn, proto.speak(text[start:start + proto.MAX_SPEAK_CHARS]))
        self._spoken = self._unflushed = True
        self.characters += len(text)
        self._text_sent()
        if self._wants_flush(text, first, self._p):
            await self._send_flush()

    async def _send_flush(self) -> None:
        await self._session._send(self._conn, proto.flush())
        self._conn.flushes_sent += 1
        self._unflushed = False

    async def flush(self) -> None:
        if not self._start_flush():
            return
        if not self._spoken:
            self._end_empty()
            return
        if self._unflushed:
            await self._send_flush()
        self._target = self._conn.flushes_sent
        self._flush_sent()
        self._check_done()

    def _check_done(self) -> None:
        if self._target is not None and not self._final and self._conn.flushes_answered >= self._target:
            self._on_final()

    def _stalled(self, err: TTSError) -> None:
        self._conn.fail(err)
