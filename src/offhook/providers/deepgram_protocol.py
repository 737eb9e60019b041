"""Deepgram live STT v1 (`/v1/listen`) WebSocket protocol, sans-IO.

Pure builders and parsers for both directions (our client and the emulator share them), no sockets;
see deepgram_stt.py for the IO. Wire forms follow PROTOCOLS.md §1b; server messages are validated
with the deepgram-sdk's own pydantic models (ListenV1Results, ...), client control messages are
built from its models too, so a field renamed by Deepgram shows up here as a ProtocolError.

Client -> server: binary frames of raw audio; JSON text frames KeepAlive, Finalize, CloseStream.
Server -> client: JSON text frames Results, SpeechStarted, UtteranceEnd, Metadata, Error (and
newer ones such as ConfigureSuccess, which are passed through as `Other`); fatal errors also come
as a close frame whose reason starts with a code such as `NET-0001` or `DATA-0000`.

`to_events()` turns a server message into offhook's STT events, shifting every time by an offset:
after a reconnect the new stream's clock starts at 0 again, but the call's audio timeline goes on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union
from urllib.parse import parse_qsl, urlencode

import pydantic
from deepgram.listen.v1.types import (ListenV1CloseStream, ListenV1Error, ListenV1Finalize, ListenV1KeepAlive,
                                      ListenV1Metadata, ListenV1Results, ListenV1SpeechStarted,
                                      ListenV1UtteranceEnd)

from offhook.providers import wire
from offhook.providers.base import Final, Partial, SpeechStarted, STTEvent, UtteranceEnd, Word

DEFAULT_BASE_URL = "wss://api.deepgram.com"
DEFAULT_MODEL = "nova-3"
LISTEN_PATH = "/v1/listen"
ENCODINGS = {"mulaw": 1, "linear16": 2}  # what offhook sends -> bytes per sample

ProtocolError = wire.ProtocolError


# ---------------------------------------------------------------- URL and options
def ws_base_url(base_url: str) -> str:
    """ws(s)://host[:port][/prefix] as given; http(s) is mapped to ws(s) for convenience."""
    return wire.ws_base_url(base_url, "Deepgram")


def _flag(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class ListenOptions:
    """The query of one /v1/listen connection (PROTOCOLS.md §1b)."""
    model: str = DEFAULT_MODEL
    encoding: str = "mulaw"
    sample_rate: int = 8000
    channels: int = 1
    interim_results: bool = True
    endpointing: int | bool = 300      # ms of silence before speech_final; False turns it off
    utterance_end_ms: int | None = 1000
    vad_events: bool = True
    smart_format: bool = True
    punctuate: bool = True
    language: str | None = None
    keyterms: tuple[str, ...] = ()
    tag: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # passed through unchanged

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {self.encoding!r}")
        if self.encoding == "mulaw" and self.sample_rate != 8000:
            raise ValueError(f"mulaw audio must be 8000 Hz, got {self.sample_rate}")
        if not 8000 <= self.sample_rate <= 48000:
            raise ValueError(f"sample_rate out of range: {self.sample_rate}")
        if self.channels != 1:
            raise ValueError("offhook streams one channel per call")
        if self.endpointing is not False and (self.endpointing is True or int(self.endpointing) < 10):
            raise ValueError(f"endpointing must be a number of ms >= 10 or False, got {self.endpointing!r}")
        if self.utterance_end_ms is not None:
            if int(self.utterance_end_ms) < 1000:
                raise ValueError(f"utterance_end_ms must be >= 1000, got {self.utterance_end_ms}")
            if not self.interim_results:
                raise ValueError("utterance_end_ms needs interim_results=True")
        if not self.model or any(c in self.model for c in "&?/# "):
            raise ValueError(f"bad Deepgram model {self.model!r}")

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * ENCODINGS[self.encoding] * self.channels

    def query(self) -> list[tuple[str, str]]:
        """Query pairs, sorted by name as the SDK sends them; booleans as lowercase true/false."""
        q: dict[str, str] = {
            "model": self.model, "encoding": self.encoding, "sample_rate": str(self.sample_rate),
            "channels": str(self.channels), "interim_results": _flag(self.interim_results),
            "endpointing": "false" if self.endpointing is False else str(int(self.endpointing)),
            "vad_events": _flag(self.vad_events), "smart_format": _flag(self.smart_format),
            "punctuate": _flag(self.punctuate),
        }
        if self.utterance_end_ms is not None:
            q["utterance_end_ms"] = str(int(self.utterance_end_ms))
        if self.language:
            q["language"] = self.language
        if self.tag:
            q["tag"] = self.tag
        pairs = sorted(q.items()) + [("keyterm", k) for k in self.keyterms]
        return pairs + [(k, str(v)) for k, v in self.extra.items()]


def listen_url(base_url: str, options: ListenOptions) -> str:
    return f"{ws_base_url(base_url)}{LISTEN_PATH}?{urlencode(options.query())}"


def parse_listen_query(query: str) -> ListenOptions:
    """The emulator's side of listen_url(): ValueError (-> HTTP 400) for what Deepgram would refuse."""
    pairs = parse_qsl(query, keep_blank_values=True)
    q = dict(pairs)

    def flag(name: str, default: bool) -> bool:
        value = q.get(name)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value == "true"

    def number(name: str, default: int | None) -> int | None:
        value = q.get(name)
        if value is None:
            return default
        if not value.isdigit():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)

    endpointing_raw = q.get("endpointing", "10")  # Deepgram's default is 10 ms
    endpointing: int | bool = False if endpointing_raw == "false" else number("endpointing", 10) or 10
    known = {"model", "encoding", "sample_rate", "channels", "interim_results", "endpointing",
             "utterance_end_ms", "vad_events", "smart_format", "punctuate", "language", "tag", "keyterm"}
    return ListenOptions(
        model=q.get("model", "base"), encoding=q.get("encoding", "linear16"),
        sample_rate=number("sample_rate", 16000) or 0, channels=number("channels", 1) or 0,
        interim_results=flag("interim_results", False), endpointing=endpointing,
        utterance_end_ms=number("utterance_end_ms", None), vad_events=flag("vad_events", False),
        smart_format=flag("smart_format", False), punctuate=flag("punctuate", False),
        language=q.get("language"), keyterms=tuple(v for k, v in pairs if k == "keyterm"), tag=q.get("tag"),
        extra={k: v for k, v in q.items() if k not in known})


# ---------------------------------------------------------------- client -> server
_dump = wire.dump_model


def keep_alive() -> str:
    return _dump(ListenV1KeepAlive(type="KeepAlive"))


def finalize() -> str:
    return _dump(ListenV1Finalize(type="Finalize"))


def close_stream() -> str:
    return _dump(ListenV1CloseStream(type="CloseStream"))


CONTROL_TYPES = frozenset({"KeepAlive", "Finalize", "CloseStream", "Configure"})


def parse_control(raw: str | bytes) -> str:
    """A client's JSON text frame -> its type (the emulator's side)."""
    msg = wire.load_object(raw)
    kind = msg.get("type")
    if kind not in CONTROL_TYPES:
        raise ProtocolError(f"unknown control message type {kind!r}")
    return kind


# ---------------------------------------------------------------- server -> client
@dataclass(frozen=True, slots=True)
class Results:
    start: float
    duration: float
    transcript: str
    confidence: float
    words: tuple[Word, ...]
    is_final: bool
    speech_final: bool
    from_finalize: bool

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class SpeechStartedMsg:
    timestamp: float


@dataclass(frozen=True, slots=True)
class UtteranceEndMsg:
    last_word_end: float


@dataclass(frozen=True, slots=True)
class Metadata:
    request_id: str
    duration: float  # billed audio seconds
    channels: int


@dataclass(frozen=True, slots=True)
class ServerError:
    description: str
    code: str | None = None
    variant: str = "error"


Other = wire.Other  # ConfigureSuccess, Warning, ...


ServerMessage = Union[Results, SpeechStartedMsg, UtteranceEndMsg, Metadata, ServerError, Other]


_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "Results": ListenV1Results, "SpeechStarted": ListenV1SpeechStarted, "UtteranceEnd": ListenV1UtteranceEnd,
    "Metadata": ListenV1Metadata, "Error": ListenV1Error,
}


def parse_server_message(raw: str | bytes) -> ServerMessage:
    if isinstance(raw, bytes):
        raise ProtocolError("Deepgram listen sends only text frames, got a binary frame")
    msg, kind = wire.typed_object(raw)
    m = wire.validated(_MODELS, kind, msg)
    if m is None:
        return Other(kind)
    if isinstance(m, ListenV1Results):
        alts = m.channel.alternatives
        if not alts:
            return Results(m.start, m.duration, "", 0.0, (), bool(m.is_final), bool(m.speech_final),
                           bool(m.from_finalize))
        alt = alts[0]
        words = tuple(Word(w.punctuated_word or w.word, w.start, w.end, w.confidence) for w in alt.words)
        return Results(m.start, m.duration, alt.transcript, alt.confidence, words, bool(m.is_final),
                       bool(m.speech_final), bool(m.from_finalize))
    if isinstance(m, ListenV1SpeechStarted):
        return SpeechStartedMsg(m.timestamp)
    if isinstance(m, ListenV1UtteranceEnd):
        return UtteranceEndMsg(m.last_word_end)
    if isinstance(m, ListenV1Metadata):
        return Metadata(m.request_id, m.duration, m.channels)
    assert isinstance(m, ListenV1Error)
    return ServerError(m.description or m.message or "", m.code, m.variant)


def to_events(msg: ServerMessage, offset: float = 0.0) -> list[STTEvent]:
    """offhook events for one server message, times shifted by `offset` seconds.

    Empty transcripts are dropped, except an is_final with speech_final: the endpoint itself is news
    (the caller's words may have come in earlier finals), so it becomes an empty Final."""
    if isinstance(msg, Results):
        text = msg.transcript.strip()
        if not msg.is_final:
            return [Partial(text, msg.confidence)] if text else []
        if not text and not msg.speech_final:
            return []
        words = tuple(Word(w.text, w.start + offset, w.end + offset, w.confidence) for w in msg.words)
        return [Final(text, msg.confidence, words, speech_final=msg.speech_final,
                      start=msg.start + offset, end=msg.end + offset)]
    if isinstance(msg, SpeechStartedMsg):
        return [SpeechStarted(msg.timestamp + offset)]
    if isinstance(msg, UtteranceEndMsg):
        return [UtteranceEnd(msg.last_word_end + offset)]
    return []


# ---------------------------------------------------------------- server side (the emulator)
def results_message(*, start: float, duration: float, words: list[dict[str, Any]], is_final: bool,
                    speech_final: bool = False, from_finalize: bool = False, punctuate: bool = True,
                    request_id: str = "", model: str = DEFAULT_MODEL) -> str:
    """words: [{word, start, end, confidence, punctuated_word?}] as the service sends them."""
    transcript = " ".join((w.get("punctuated_word") if punctuate else None) or w["word"] for w in words)
    confidence = min((w["confidence"] for w in words), default=0.0)
    msg: dict[str, Any] = {
        "type": "Results", "channel_index": [0, 1], "duration": round(duration, 3), "start": round(start, 3),
        "is_final": is_final, "speech_final": speech_final,
        "channel": {"alternatives": [{"transcript": transcript, "confidence": confidence, "words": words}]},
        "metadata": {"request_id": request_id, "model_uuid": "00000000-0000-0000-0000-00000000e3e3",
                     "model_info": {"name": model, "version": "emulated", "arch": "emulated"}},
    }
    if from_finalize:
        msg["from_finalize"] = True
    return wire.dump(msg)


def speech_started_message(timestamp: float) -> str:
    return wire.dump({"type": "SpeechStarted", "channel": [0], "timestamp": round(timestamp, 3)})


def utterance_end_message(last_word_end: float) -> str:
    return wire.dump({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)})


def metadata_message(*, request_id: str, duration: float, created: str, channels: int = 1) -> str:
    return wire.dump({"type": "Metadata", "transaction_key": "deprecated", "request_id": request_id,
                      "sha256": "0" * 64, "created": created, "duration": round(duration, 3),
                      "channels": channels})


def error_message(description: str, *, code: str = "NET-0000", variant: str = "error") -> str:
    return wire.dump({"type": "Error", "variant": variant, "description": description, "code": code,
                      "message": description})


def close_code_of(reason: str | None) -> str | None:
    """`DATA-0000`, `NET-0001`, ... from a close frame's reason text, if there is one."""
    head = (reason or "").split(" ", 1)[0].rstrip(":")
    if len(head) >= 6 and "-" in head and head.split("-", 1)[0].isalpha() and head.split("-", 1)[1].isdigit():
        return head
    return None
