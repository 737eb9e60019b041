"""ElevenLabs `multi-stream-input` WebSocket protocol, sans-IO.

Pure builders and parsers for both directions (our client and the emulator share them) plus the
small state machine that turns per-chunk character alignment into utterance-relative times.
No sockets here; see elevenlabs_tts.py for the IO.

Wire forms (PROTOCOLS.md §1c; field names as the `elevenlabs` SDK models spell them): client
messages use snake_case `context_id`; server messages use camelCase `contextId`/`isFinal`, parsed
defensively in either spelling. Alignment times arrive relative to each chunk's own audio.
"""
from __future__ import annotations

import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlencode

from offhook.providers import wire

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL_ID = "eleven_flash_v2_5"
ULAW_8000 = "ulaw_8000"



ProtocolError = wire.ProtocolError  # bad JSON, bad base64, inconsistent alignment


# ---------------------------------------------------------------- URLs
def ws_base_url(base_url: str) -> str:
    """http(s)://host[:port][/prefix] -> ws(s)://host[:port][/prefix] (ws/wss pass through)."""
    return wire.ws_base_url(base_url, "ElevenLabs")


def stream_url(base_url: str, voice_id: str, *, model_id: str = DEFAULT_MODEL_ID,
               output_format: str = ULAW_8000, **query: Any) -> str:
    """The multi-stream-input URL. Extra query parameters (inactivity_timeout, sync_alignment,
    language_code, apply_text_normalization, ...) are passed through; None values are left out."""
    if not voice_id or "/" in voice_id:
        raise ValueError(f"bad ElevenLabs voice id {voice_id!r}")
    params: dict[str, str] = {"model_id": model_id, "output_format": output_format}
    for key, value in query.items():
        if value is None:
            continue
        params[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"{ws_base_url(base_url)}/v1/text-to-speech/{voice_id}/multi-stream-input?{urlencode(params)}"


# ---------------------------------------------------------------- client -> server
def _dump(msg: dict[str, Any]) -> str:
    return wire.dump(msg)


def init_context(context_id: str, *, voice_settings: Mapping[str, Any] | None = None,
                 generation_config: Mapping[str, Any] | None = None, text: str = " ") -> str:
    """InitialiseContext: opens `context_id` (the connection's first message is the same shape,
    InitializeConnectionMulti). `text` is a single space unless initial text goes with it."""
    msg: dict[str, Any] = {"text": text}
    if voice_settings:
        msg["voice_settings"] = dict(voice_settings)
    if generation_config:
        msg["generation_config"] = dict(generation_config)
    msg["context_id"] = context_id
    return _dump(msg)


def send_text(context_id: str, text: str, *, flush: bool = False) -> str:
    """SendTextMulti. Empty or single-space text would mean keep-alive / (re)initialise, so refuse it."""
    if not text or text == " ":
        raise ValueError("text to synthesise must not be empty or a single space")
    msg: dict[str, Any] = {"text": text, "context_id": context_id}
    if flush:
        msg["flush"] = True
    return _dump(msg)


def flush_context(context_id: str) -> str:
    return _dump({"context_id": context_id, "flush": True})


def close_context(context_id: str) -> str:
    return _dump({"context_id": context_id, "close_context": True})


def keep_alive(context_id: str) -> str:
    """KeepContextAlive: empty text resets the inactivity timer without generating anything."""
    return _dump({"text": "", "context_id": context_id})


def close_socket() -> str:
    return _dump({"close_socket": True})


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A client message as the server (the emulator) reads it."""
    text: str | None = None
    context_id: str | None = None
    flush: bool = False
    close_context: bool = False
    close_socket: bool = False
    voice_settings: Mapping[str, Any] | None = None
    generation_config: Mapping[str, Any] | None = None
    api_key: str | None = None
    authorization: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the JSON as sent

    @property
    def is_keep_alive(self) -> bool:
        return self.text == "" and not (self.flush or self.close_context or self.close_socket)


def parse_client_message(raw: str | bytes) -> ClientMessage:
    data = wire.load_object(raw)
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        raise ProtocolError("'text' must be a string")
    ctx = data.get("context_id", data.get("contextId"))
    if ctx is not None and not isinstance(ctx, str):
        raise ProtocolError("'context_id' must be a string")
    for key in ("voice_settings", "generation_config"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ProtocolError(f"{key!r} must be an object")
    return ClientMessage(
        text=text, context_id=ctx, flush=data.get("flush") is True,
        close_context=data.get("close_context") is True, close_socket=data.get("close_socket") is True,
        voice_settings=data.get("voice_settings"), generation_config=data.get("generation_config"),
        api_key=data.get("xi_api_key", data.get("xi-api-key")), authorization=data.get("authorization"), data=data)


# ---------------------------------------------------------------- server -> client
@dataclass(frozen=True, slots=True)
class Alignment:
    chars: tuple[str, ...]
    starts_ms: tuple[float, ...]     # relative to the chunk's own audio
    durations_ms: tuple[float, ...]

    def to_wire(self) -> dict[str, list]:
        return {"chars": list(self.chars), "charStartTimesMs": list(self.starts_ms),
                "charDurationsMs": list(self.durations_ms)}


@dataclass(frozen=True, slots=True)
class ServerAudio:
    """An audio chunk and/or the end of a context (isFinal)."""
    context_id: str | None
    audio: bytes = b""
    alignment: Alignment | None = None
    normalized_alignment: Alignment | None = None
    is_final: bool = False


@dataclass(frozen=True, slots=True)
class ServerError:
    message: str
    error: str | None = None
    code: int | None = None
    context_id: str | None = None


ServerMessage = ServerAudio | ServerError


def _number_list(value: Any, name: str) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise ProtocolError(f"alignment {name} must be a list")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ProtocolError(f"alignment {name} holds {v!r}")
        out.append(float(v))
    return tuple(out)


def _alignment(value: Any, name: str) -> Alignment | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError(f"{name} must be an object")
    chars = value.get("chars") or []
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise ProtocolError(f"{name}.chars must be a list of strings")
    starts = _number_list(value.get("charStartTimesMs") or [], f"{name}.charStartTimesMs")
    durs = _number_list(value.get("charDurationsMs") or [], f"{name}.charDurationsMs")
    if not (len(chars) == len(starts) == len(durs)):
        raise ProtocolError(f"{name}: {len(chars)} chars, {len(starts)} starts, {len(durs)} durations")
    return Alignment(tuple(chars), starts, durs)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one server message. Raises ProtocolError on anything malformed."""
    data = wire.load_object(raw)
    ctx = data.get("contextId", data.get("context_id"))
    if ctx is not None and not isinstance(ctx, str):
        raise ProtocolError("contextId must be a string")
    audio_b64 = data.get("audio")
    if audio_b64 is None and (data.get("message") is not None or data.get("error") is not None):
        message = data.get("message") or data.get("error")
        code = data.get("code")
        return ServerError(message=str(message), error=None if data.get("error") is None else str(data["error"]),
                           code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                           context_id=ctx)
    if audio_b64 is not None and not isinstance(audio_b64, str):
        raise ProtocolError("'audio' must be a base64 string")
    try:
        audio = binascii.a2b_base64(audio_b64, strict_mode=True) if audio_b64 else b""
    except binascii.Error as exc:
        raise ProtocolError(f"'audio' is not valid base64: {exc}") from None
    final = data.get("isFinal", data.get("is_final"))
    if audio_b64 is None and final is not True:
        raise ProtocolError(f"neither audio, isFinal nor error: {wire.preview(raw)}")
    return ServerAudio(context_id=ctx, audio=audio, alignment=_alignment(data.get("alignment"), "alignment"),
                       normalized_alignment=_alignment(data.get("normalizedAlignment"), "normalizedAlignment"),
                       is_final=final is True)


def audio_message(context_id: str | None, audio: bytes, alignment: Alignment | None = None,
                  normalized_alignment: Alignment | None = None) -> str:
    """Server side (emulator): one audio chunk, shaped like the SDK's AudioOutputMulti."""
    msg: dict[str, Any] = {"audio": binascii.b2a_base64(audio, newline=False).decode(), "isFinal": None,
                           "normalizedAlignment": None if normalized_alignment is None else normalized_alignment.to_wire(),
                           "alignment": None if alignment is None else alignment.to_wire()}
    if context_id is not None:
        msg["contextId"] = context_id
    return _dump(msg)


def final_message(context_id: str | None) -> str:
    msg: dict[str, Any] = {"isFinal": True}
    if context_id is not None:
        msg["contextId"] = context_id
    return _dump(msg)


def error_message(message: str, *, error: str, code: int = 1008) -> str:
    return _dump({"message": message, "error": error, "code": code})


# ---------------------------------------------------------------- alignment -> utterance time
class Timeline:
    """Places each chunk's alignment on the utterance's clock.

    The chunk's alignment is relative to the chunk's own audio, so a chunk starts where the audio
    received so far ends (bytes / bytes_per_ms). Returns (char, start_ms, end_ms) pieces, which
    concatenate to the spoken text.
    """

    __slots__ = ("bytes_per_ms", "position_ms")

    def __init__(self, bytes_per_ms: float = 8.0) -> None:  # μ-law 8 kHz: 8 bytes per ms
        self.bytes_per_ms = bytes_per_ms
        self.position_ms = 0.0

    def add(self, audio_len: int, alignment: Alignment | None) -> tuple[tuple[str, float, float], ...] | None:
        base = self.position_ms
        self.position_ms += audio_len / self.bytes_per_ms
        if alignment is None or not alignment.chars:
            return None
        return tuple((c, base + s, base + s + d)
                     for c, s, d in zip(alignment.chars, alignment.starts_ms, alignment.durations_ms))
