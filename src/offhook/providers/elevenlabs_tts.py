"""ElevenLabs streaming TTS over the `multi-stream-input` WebSocket (trio-websocket; the SDK's own
WebSocket client is sync/asyncio-only, see PROTOCOLS.md §2.3).

    tts = ElevenLabsTTS()                        # key, voice, model, base URL from the environment
    async with tts.session() as session:         # one warm connection per call
        async with session.utterance() as utt:   # one context per agent turn
            await utt.send_text("Sure, ")        # clauses as the LLM produces them
            await utt.send_text("one moment. ")
            await utt.flush()                    # no more text
            async for chunk in utt:              # μ-law 8 kHz + character alignment
                ...

- Leaving `utterance()` before the audio has finished (barge-in: the responder's scope is
  cancelled) sends `close_context`; audio that was already in flight for that context is dropped
  (`session.stale_chunks_dropped`) and the connection stays warm for the next turn.
- The first text of an utterance and every sentence end go with `flush: true`, so generation
  starts at once instead of waiting for the server's chunk_length_schedule.
- `flush()` sends `flush` then `close_context`: the server finishes the audio, then `isFinal`
  ends the iteration and frees the context (at most 5 per connection).
- Contexts still open on the service are counted (it allows 5 per connection): after rapid
  barge-ins during flushed sentences, which keep generating, the next utterance moves to a fresh
  connection instead of hitting the limit.
- An open context always exists (one is opened with the connection and reopened lazily), so the
  keep-alive `{"text":"","context_id":…}` always has a target: the server closes sockets idle
  for ~20 s.
- Failures raise TTSError from the utterance (iteration, send_text, flush); the session stays
  usable: the next utterance reconnects if the connection was lost (except after an auth error,
  which is final). Deadlines, all on trio.current_time():
    first_audio_timeout  (None = off) from the first send_text to the first audio chunk;
    stall_timeout        after flush(), the longest wait for the next message of the context,
                         first audio included (a hang); the connection is then dropped and
                         replaced on the next utterance.
  Error messages, closes and malformed frames raise as soon as they arrive.

Environment: ELEVENLABS_API_KEY (required), ELEVENLABS_VOICE_ID, ELEVENLABS_MODEL_ID,
ELEVENLABS_BASE_URL (http/https base; ws/wss derived; default https://api.elevenlabs.io).
The key is sent only in the `xi-api-key` header and never logged or shown in repr().
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
from contextlib import asynccontextmanager
from typing import Any, AsyncContextManager, AsyncIterator, Mapping, Sequence

import trio

from offhook.providers import elevenlabs_protocol as proto
from offhook.providers.base import ULAW_8K, AudioChunk, AudioFormat, TTSError
from offhook.providers.common import api_key_of
from offhook.providers.tts_stream import (ErrorKinds, StreamedUtterance, TTSAuthError, TTSConfigError,
                                          TTSConnectionError, TTSProtocolError, TTSServiceError, TTSTimeout,
                                          WarmSession, WsConnection, open_session)

log = logging.getLogger("offhook.providers.elevenlabs")

DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # "Rachel", a premade voice every account has
MAX_CONTEXTS = 5  # per connection, enforced by the service
DEFAULT_VOICE_SETTINGS: Mapping[str, Any] = {"stability": 0.5, "similarity_boost": 0.8, "speed": 1.0}


class ElevenLabsConfigError(TTSConfigError):
    pass


class ElevenLabsAuthError(TTSAuthError):
    pass


class ElevenLabsConnectionError(TTSConnectionError):
    pass


class ElevenLabsServiceError(TTSServiceError):
    """The service sent an error message (it closes the socket after it)."""


class ElevenLabsProtocolError(TTSProtocolError):
    """Bad JSON, bad base64, inconsistent alignment, ..."""


class ElevenLabsTimeout(TTSTimeout):
    pass


class ElevenLabsTTS:
    """TTSProvider for ElevenLabs (see the module docstring)."""

    name = "elevenlabs"
    format: AudioFormat = ULAW_8K

    def __init__(self, *, api_key: str | None = None, voice_id: str | None = None, model_id: str | None = None,
                 base_url: str | None = None, voice_settings: Mapping[str, Any] | None = None,
                 chunk_length_schedule: Sequence[int] | None = (50, 120, 160, 250),
                 first_audio_timeout: float | None = None, stall_timeout: float | None = 2.0,
                 keepalive_interval: float | None = 10.0, connect_timeout: float = 5.0,
                 send_timeout: float = 1.0, close_timeout: float = 0.5, eager_first_flush: bool = True,
                 flush_sentences: bool = True, sync_alignment: bool = True,
                 extra_query: Mapping[str, Any] | None = None) -> None:
        self._key = api_key_of(api_key, "ELEVENLABS_API_KEY", ElevenLabsConfigError, "ElevenLabs TTS", "TTS")
        self.voice_id = voice_id or os.environ.get("ELEVENLABS_VOICE_ID") or DEFAULT_VOICE_ID
        self.model_id = model_id or os.environ.get("ELEVENLABS_MODEL_ID") or proto.DEFAULT_MODEL_ID
        base = base_url or os.environ.get("ELEVENLABS_BASE_URL") or proto.DEFAULT_BASE_URL
        try:
            # sync_alignment: alignment on every chunk, which the playback ledger needs
            query = {"sync_alignment": True if sync_alignment else None, **dict(extra_query or {})}
            self.url = proto.stream_url(base, self.voice_id, model_id=self.model_id,
                                        output_format=proto.ULAW_8000, **query)
        except ValueError as exc:
            raise ElevenLabsConfigError(str(exc)) from None
        self.voice_settings = _voice_settings(DEFAULT_VOICE_SETTINGS if voice_settings is None else voice_settings)
        if chunk_length_schedule and not all(50 <= int(c) <= 500 for c in chunk_length_schedule):
            raise ElevenLabsConfigError("chunk_length_schedule values must be 50..500 characters")
        self.generation_config = ({"chunk_length_schedule": [int(c) for c in chunk_length_schedule]}
                                  if chunk_length_schedule else None)
        self.first_audio_timeout = first_audio_timeout
        self.stall_timeout = stall_timeout
        self.keepalive_interval = keepalive_interval
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.eager_first_flush = eager_first_flush
        self.flush_sentences = flush_sentences

    def __repr__(self) -> str:
        return f"ElevenLabsTTS(voice_id={self.voice_id!r}, model_id={self.model_id!r}, url={self.url!r})"

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"xi-api-key", self._key.value.encode())]

    def session(self) -> AsyncContextManager["ElevenLabsSession"]:
        return open_session(lambda nursery: ElevenLabsSession(self, nursery))


def _voice_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validated with the SDK's RealtimeVoiceSettings model, sent as a plain dict."""
    from elevenlabs.types import RealtimeVoiceSettings

    try:
        model = RealtimeVoiceSettings.model_validate(dict(settings))
    except Exception as exc:  # pydantic.ValidationError
        raise ElevenLabsConfigError(f"bad ElevenLabs voice_settings: {exc}") from None
    return model.model_dump(exclude_none=True)


class _Connection(WsConnection):
    """One WebSocket. Its reader and keep-alive tasks live in the session's nursery."""

    def __init__(self, index: int) -> None:
        super().__init__(index, "ElevenLabs", log)
        self.contexts: dict[str, ElevenLabsUtterance] = {}
        self.idle_context: str | None = None
        self.open_contexts: set[str] = set()  # opened, no isFinal yet (the service counts these)

    def utterances(self) -> list["ElevenLabsUtterance"]:
        return list(self.contexts.values())


class ElevenLabsSession(WarmSession[_Connection]):
    """A call's warm connection (TTSSession)."""

    vendor = "ElevenLabs"
    errors = ErrorKinds(ElevenLabsAuthError, ElevenLabsConnectionError, ElevenLabsServiceError,
                        ElevenLabsProtocolError, ElevenLabsTimeout)
    log = log

    def __init__(self, provider: ElevenLabsTTS, nursery: trio.Nursery) -> None:
        super().__init__(provider, nursery)
        self._p: ElevenLabsTTS = provider
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)

    # -------------------------------------------------------- connection
    def _new_connection(self, index: int) -> _Connection:
        return _Connection(index)

    async def _on_connected(self, conn: _Connection) -> None:
        conn.idle_context = await self._open_context(conn)

    async def _serve(self, conn: _Connection) -> None:
        async with trio.open_nursery() as nursery:
            if self._p.keepalive_interval:
                nursery.start_soon(self._keepalive, conn)
            await self._read(conn)
            nursery.cancel_scope.cancel()

    def _goodbye(self) -> str:
        return proto.close_socket()

    async def _read(self, conn: _Connection) -> None:
        """Route server messages to utterances by context id. Never raises: failures are recorded
        on the connection and surface in the utterances."""
        while (msg := await self._receive(conn, proto.parse_server_message)) is not None:
            if isinstance(msg, proto.ServerError):
                err_cls = ElevenLabsAuthError if _is_auth_error(msg) else ElevenLabsServiceError
                self._service_failed(conn, err_cls(f"ElevenLabs error: {msg.message}" + (
                    f" ({msg.error}, code {msg.code})" if msg.error or msg.code else "")))
                return
            if msg.is_final:
                conn.open_contexts.discard(msg.context_id or "")
            utt = conn.contexts.get(msg.context_id or "")
            if utt is None:
                if msg.audio:
                    self.stale_chunks_dropped += 1
                continue
            if msg.audio or msg.alignment:
                utt._on_audio(msg)
            if msg.is_final:
                utt._on_final()

    async def _keepalive(self, conn: _Connection) -> None:
        interval = self._p.keepalive_interval
        assert interval
        while True:
            await trio.sleep_until(conn.last_sent + interval)
            if trio.current_time() < conn.last_sent + interval:
                continue
            # Only a context we have not closed: a message for a closed one would open a new one.
            target = next((cid for cid, u in conn.contexts.items() if not u._closed), None) or conn.idle_context
            try:
                if target is None:
                    conn.idle_context = await self._open_context(conn)
                else:
                    await self._send(conn, proto.keep_alive(target))
            except TTSError:
                return

    async def _open_context(self, conn: _Connection) -> str:
        cid = f"{self._prefix}-{next(self._ids)}"
        await self._send(conn, proto.init_context(cid, voice_settings=self._p.voice_settings,
                                                  generation_config=self._p.generation_config))
        conn.open_contexts.add(cid)
        return cid

    # -------------------------------------------------------- utterances
    @asynccontextmanager
    async def utterance(self) -> AsyncIterator["ElevenLabsUtterance"]:
        conn = await self._ready_connection()
        if conn.idle_context is None and len(conn.open_contexts) >= MAX_CONTEXTS:
            # Barged-in contexts that were set to flush keep generating (audio we would drop) and
            # count against the service's limit: rather than hit it, start afresh.
            log.info("ElevenLabs: %d contexts still generating; replacing the connection", len(conn.open_contexts))
            conn.closing = True
            conn.scope.cancel()
            conn = await self._connect()
        cid, conn.idle_context = conn.idle_context, None
        if cid is None:
            cid = await self._open_context(conn)
        utt = ElevenLabsUtterance(self, conn, cid)
        conn.contexts[cid] = utt
        try:
            yield utt
        finally:
            conn.contexts.pop(cid, None)
            self.characters += utt.characters
            if not utt._closed and not conn.dead:
                # Barge-in or an early exit: stop generation; frames already in flight are dropped
                # by _read because the context is no longer registered.
                utt._closed = True
                try:
                    await self._send(conn, proto.close_context(cid))
                except TTSError:
                    pass
                log.debug("ElevenLabs context %s closed early", cid)


class ElevenLabsUtterance(StreamedUtterance):
    """One context (TTSUtterance)."""

    vendor = "ElevenLabs"
    timeout_error = ElevenLabsTimeout

    def __init__(self, session: ElevenLabsSession, conn: _Connection, context_id: str) -> None:
        super().__init__(session._p.first_audio_timeout, session._p.stall_timeout)
        self._session = session
        self._conn = conn
        self._p = session._p
        self.context_id = context_id
        self._timeline = proto.Timeline(bytes_per_ms=8.0)
        self._closed = False  # close_context sent (only once: the service may not like a second)

    # -------------------------------------------------------- producer side
    async def send_text(self, text: str) -> None:
        if (text := self._take_text(text)) is None:
            return
        flush = self._wants_flush(text, self._first_text_at is None, self._p)
        await self._session._send(self._conn, proto.send_text(self.context_id, text, flush=flush))
        self.characters += len(text)
        self._text_sent()

    async def flush(self) -> None:
        if not self._start_flush():
            return
        if self._first_text_at is None:
            # Nothing to say: close the context and end the (empty) utterance here.
            self._closed = True
            self._end_empty()
            await self._session._send(self._conn, proto.close_context(self.context_id))
            return
        await self._session._send(self._conn, proto.flush_context(self.context_id))
        self._closed = True
        await self._session._send(self._conn, proto.close_context(self.context_id))
        self._flush_sent()

    def _stalled(self, err: TTSError) -> None:
        self._conn.fail(err)  # a half-dead socket: replace it on the next utterance

    # -------------------------------------------------------- fed by the session's reader
    def _on_audio(self, msg: proto.ServerAudio) -> None:
        pieces = self._timeline.add(len(msg.audio), msg.alignment or msg.normalized_alignment)
        self._deliver(AudioChunk(msg.audio, pieces), audio=bool(msg.audio))


# ---------------------------------------------------------------- error mapping


def _is_auth_error(msg: proto.ServerError) -> bool:
    return (msg.error or "") in {"invalid_api_key", "unauthorized", "invalid_authorization"} \
        or "api key" in msg.message.lower()
