"""Deepgram Aura streaming TTS (`/v1/speak` WebSocket) protocol, sans-IO.

Client -> server, JSON text frames (deepgram-sdk models SpeakV1Text/Flush/Clear/Close):
    {"type": "Speak", "text": "..."}   text to synthesise (buffered by the service)
    {"type": "Flush"}                  synthesise what is buffered; answered by Flushed
    {"type": "Clear"}                  drop buffered text and pending audio (barge-in); answered by Cleared
    {"type": "Close"}                  finish, then the service closes the socket
Server -> client: binary frames of raw audio in the requested encoding (no container), and JSON
Metadata {request_id, model_name, model_version, model_uuid}, Flushed {sequence_id},
Cleared {sequence_id}, Warning {description, code}. Fatal errors come as a close frame with an
error code in its reason (as on /v1/listen); an `Error` JSON message is parsed defensively too.

Audio frames carry no id: which utterance they belong to follows from order (one utterance at a
time per connection; after a Clear, audio until Cleared is stale).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import parse_qsl, urlencode

import pydantic
from deepgram.speak.v1.types import (SpeakV1Clear, SpeakV1Cleared, SpeakV1Close, SpeakV1Flush, SpeakV1Flushed,
                                     SpeakV1Metadata, SpeakV1Text, SpeakV1Warning)

from offhook.providers import wire

DEFAULT_BASE_URL = "wss://api.deepgram.com"
DEFAULT_MODEL = "aura-2-thalia-en"
SPEAK_PATH = "/v1/speak"
MAX_SPEAK_CHARS = 2000  # per Speak message, as the service documents
_RATES = {"mulaw": (8000, 16000), "alaw": (8000, 16000), "linear16": (8000, 16000, 24000, 32000, 48000)}

ProtocolError = wire.ProtocolError


def ws_base_url(base_url: str) -> str:
    return wire.ws_base_url(base_url, "Deepgram Aura")


def check_format(encoding: str, sample_rate: int) -> None:
    if encoding not in _RATES:
        raise ValueError(f"Aura encoding must be one of {sorted(_RATES)}, got {encoding!r}")
    if sample_rate not in _RATES[encoding]:
        raise ValueError(f"Aura {encoding} supports sample rates {_RATES[encoding]}, got {sample_rate}")


def speak_url(base_url: str, *, model: str = DEFAULT_MODEL, encoding: str = "mulaw", sample_rate: int = 8000,
              **extra: Any) -> str:
    """Query in the SDK's order (encoding, [mip_opt_out], model, sample_rate, [speed])."""
    check_format(encoding, sample_rate)
    if not model or any(c in model for c in "&?/# "):
        raise ValueError(f"bad Aura model {model!r}")
    q: dict[str, str] = {"encoding": encoding, "model": model, "sample_rate": str(sample_rate)}
    for key, value in extra.items():
        if value is not None:
            q[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return f"{ws_base_url(base_url)}{SPEAK_PATH}?{urlencode(sorted(q.items()))}"


@dataclass(frozen=True)
class SpeakOptions:
    model: str
    encoding: str
    sample_rate: int

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (2 if self.encoding == "linear16" else 1)


def parse_speak_query(query: str) -> SpeakOptions:
    """The emulator's side of speak_url(): ValueError (-> HTTP 400) for what the service would refuse."""
    q = dict(parse_qsl(query, keep_blank_values=True))
    rate = q.get("sample_rate", "24000")
    if not rate.isdigit():
        raise ValueError(f"sample_rate must be an integer, got {rate!r}")
    opts = SpeakOptions(q.get("model", DEFAULT_MODEL), q.get("encoding", "linear16"), int(rate))
    check_format(opts.encoding, opts.sample_rate)
    return opts


# ---------------------------------------------------------------- client -> server
_dump = wire.dump_model


def speak(text: str) -> str:
    if not text:
        raise ValueError("nothing to speak")
    if len(text) > MAX_SPEAK_CHARS:
        raise ValueError(f"a Speak message holds at most {MAX_SPEAK_CHARS} characters, got {len(text)}")
    return _dump(SpeakV1Text(text=text))


def flush() -> str:
    return _dump(SpeakV1Flush(type="Flush"))


def clear() -> str:
    return _dump(SpeakV1Clear(type="Clear"))


def close() -> str:
    return _dump(SpeakV1Close(type="Close"))


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str               # Speak | Flush | Clear | Close
    text: str | None = None


def parse_client_message(raw: str | bytes) -> ClientMessage:
    if isinstance(raw, bytes):
        raise ProtocolError("the speak WebSocket takes only JSON text frames")
    msg = wire.load_object(raw)
    kind = msg.get("type")
    if kind == "Speak":
        text = msg.get("text")
        if not isinstance(text, str):
            raise ProtocolError("Speak needs a string 'text'")
        return ClientMessage("Speak", text)
    if kind in ("Flush", "Clear", "Close"):
        return ClientMessage(kind)
    raise ProtocolError(f"unknown message type {kind!r}")


# ---------------------------------------------------------------- server -> client
@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes


@dataclass(frozen=True, slots=True)
class Metadata:
    request_id: str
    model_name: str


@dataclass(frozen=True, slots=True)
class Flushed:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class Cleared:
    sequence_id: int


@dataclass(frozen=True, slots=True)
class Warning_:
    description: str
    code: str


@dataclass(frozen=True, slots=True)
class ServerError:
    description: str
    code: str | None = None


Other = wire.Other


ServerMessage = Union[Audio, Metadata, Flushed, Cleared, Warning_, ServerError, Other]

_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Metadata": SpeakV1Metadata, "Flushed": SpeakV1Flushed, "Cleared": SpeakV1Cleared, "Warning": SpeakV1Warning,
}


def parse_server_message(raw: str | bytes) -> ServerMessage:
    if isinstance(raw, (bytes, bytearray)):
        return Audio(bytes(raw))
    msg, kind = wire.typed_object(raw)
    if kind == "Error":
        text = msg.get("description") or msg.get("err_msg") or msg.get("message") or "unknown error"
        code = msg.get("code") or msg.get("err_code")
        return ServerError(str(text), str(code) if code is not None else None)
    m = wire.validated(_MODELS, kind, msg)
    if m is None:
        return Other(kind)
    if isinstance(m, SpeakV1Metadata):
        return Metadata(m.request_id, m.model_name)
    if isinstance(m, SpeakV1Flushed):
        return Flushed(m.sequence_id)
    if isinstance(m, SpeakV1Cleared):
        return Cleared(m.sequence_id)
    assert isinstance(m, SpeakV1Warning)
    return Warning_(m.description, m.code)


# ---------------------------------------------------------------- server side (the emulator)
def metadata_message(*, request_id: str, model: str) -> str:
    return wire.dump({"type": "Metadata", "request_id": request_id, "model_name": model,
                      "model_version": "emulated", "model_uuid": "00000000-0000-0000-0000-0000000a0a0a"})


def flushed_message(sequence_id: int) -> str:
    return wire.dump({"type": "Flushed", "sequence_id": sequence_id})


def cleared_message(sequence_id: int) -> str:
    return wire.dump({"type": "Cleared", "sequence_id": sequence_id})


def warning_message(description: str, code: str) -> str:
    return wire.dump({"type": "Warning", "description": description, "code": code})
