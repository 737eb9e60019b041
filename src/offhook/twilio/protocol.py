"""Twilio Media Streams, sans-IO: parse what Twilio sends, build what we send back.

No sockets here. `MediaStreamParser` is the per-call state machine (ordering rules: `start` once,
nothing after `stop`, media only after `start`); `OutboundBuilder` makes the server->Twilio text
frames. Parsing uses msgspec: a typed, tag-dispatched decode that also does the base64 and the
string->int conversions of the per-frame `media` message in C (strict=False lets "sequenceNumber":"4"
decode as an int). bench/test_twilio_bench.py has the numbers against stdlib json and orjson. Outbound
`media` is built from a template around the base64 payload, which measured faster than any
dict/struct -> JSON encoder.
"""
from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from typing import Union

import msgspec

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
MAX_MESSAGE_BYTES = 64 * 1024  # a 20 ms media message is ~350 bytes; anything this big is abuse


class ProtocolError(Exception):
    """A message we cannot use. `kind` is a short stable label for counting and logs."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


# ---------------------------------------------------------------- wire structs (msgspec)
class _Base(msgspec.Struct, tag_field="event", forbid_unknown_fields=False):
    pass


class _MediaBody(msgspec.Struct):
    payload: bytes  # base64 on the wire, decoded by msgspec
    track: str = "inbound"
    chunk: int = 0
    timestamp: int = 0


class _MediaFormat(msgspec.Struct):
    encoding: str = "audio/x-mulaw"
    sampleRate: int = 8000
    channels: int = 1


class _StartBody(msgspec.Struct):
    streamSid: str
    callSid: str
    accountSid: str = ""
    tracks: list[str] = []
    customParameters: dict[str, str] = {}
    mediaFormat: _MediaFormat = msgspec.field(default_factory=_MediaFormat)


class _Connected(_Base, tag="connected"):
    protocol: str = "Call"
    version: str = ""


class _Start(_Base, tag="start"):
    start: _StartBody
    sequenceNumber: str = "0"
    streamSid: str = ""


class _Media(_Base, tag="media"):
    media: _MediaBody
    sequenceNumber: int = 0
    streamSid: str = ""


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _Dtmf(_Base, tag="dtmf"):
    dtmf: _DtmfBody
    sequenceNumber: str = "0"
    streamSid: str = ""


class _MarkBody(msgspec.Struct):
    name: str


class _Mark(_Base, tag="mark"):
    mark: _MarkBody
    sequenceNumber: str = "0"
    streamSid: str = ""


class _StopBody(msgspec.Struct):
    accountSid: str = ""
    callSid: str = ""


class _Stop(_Base, tag="stop"):
    stop: _StopBody = msgspec.field(default_factory=_StopBody)
    sequenceNumber: str = "0"
    streamSid: str = ""


_decoder = msgspec.json.Decoder(Union[_Media, _Connected, _Start, _Dtmf, _Mark, _Stop], strict=False)


# ---------------------------------------------------------------- events we hand to the app
@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str] = field(default_factory=dict)


class Media(msgspec.Struct, frozen=True, gc=False):  # a Struct: the cheapest object to make per frame
    seq: int
    chunk: int
    timestamp_ms: int
    payload: bytes  # 160 bytes of mu-law


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str


Event = Union[Connected, Start, Media, Dtmf, Mark, Stop]


def parse(message: str | bytes) -> Event:
    """Decode one Twilio text frame into an event (no ordering rules: see MediaStreamParser)."""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ProtocolError("oversize", f"{len(message)} bytes")
    try:
        m = _decoder.decode(message)
    except msgspec.ValidationError as e:
        text = str(e)
        if "Invalid value" in text and "`$.event`" in text:
            raise ProtocolError("unknown_event", text[:120]) from None
        if "base64" in text:
            raise ProtocolError("bad_base64", text[:120]) from None
        raise ProtocolError("invalid_fields", text[:120]) from None
    except msgspec.DecodeError as e:
        raise ProtocolError("malformed_json", str(e)[:120]) from None
    if type(m) is _Media:
        body = m.media
        return Media(m.sequenceNumber, body.chunk, body.timestamp, body.payload)
    if type(m) is _Mark:
        return Mark(m.mark.name)
    if type(m) is _Start:
        s = m.start
        fmt = s.mediaFormat
        if fmt.encoding != "audio/x-mulaw" or fmt.sampleRate != 8000 or fmt.channels != 1:
            raise ProtocolError("bad_media_format",
                                f"call {s.callSid[:40]}: {fmt.encoding} {fmt.sampleRate} Hz x{fmt.channels}")
        return Start(s.streamSid, s.callSid, s.accountSid, tuple(s.tracks), dict(s.customParameters))
    if type(m) is _Dtmf:
        if len(m.dtmf.digit) != 1 or m.dtmf.digit not in "0123456789*#ABCD":
            raise ProtocolError("invalid_fields", f"dtmf digit {m.dtmf.digit[:5]!r}")
        return Dtmf(m.dtmf.digit)
    if type(m) is _Stop:
        return Stop(m.stop.callSid)
    return Connected(m.protocol, m.version)


class MediaStreamParser:
    """Per-call ordering rules on top of parse(). Raises ProtocolError for messages to drop;
    the call continues after any of them (none corrupts state)."""

    def __init__(self) -> None:
        self.start: Start | None = None
        self.stopped = False

    def feed(self, message: str | bytes) -> Event:
        if self.stopped:
            raise ProtocolError("after_stop", "message after stop")
        ev = parse(message)
        if type(ev) is Media:
            if self.start is None:
                raise ProtocolError("media_before_start")
            if len(ev.payload) != FRAME_BYTES:
                raise ProtocolError("bad_payload_size", f"{len(ev.payload)} bytes, expected {FRAME_BYTES}")
            return ev
        if type(ev) is Start:
            if self.start is not None:
                raise ProtocolError("duplicate_start", ev.stream_sid)
            self.start = ev
        elif type(ev) is Stop:
            self.stopped = True
        return ev


# ---------------------------------------------------------------- outbound
class OutboundBuilder:
    """Server -> Twilio messages for one stream."""

    def __init__(self, stream_sid: str):
        sid = json.dumps(stream_sid)  # escaped once, reused for every frame
        self._media_head = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._media_tail = '"}}'
        self._mark_head = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + sid + "}"

    def media(self, ulaw: bytes) -> str:
        return self._media_head + binascii.b2a_base64(ulaw, newline=False).decode("ascii") + self._media_tail

    def mark(self, name: str) -> str:
        return self._mark_head + json.dumps(name) + "}}"

    def clear(self) -> str:
        return self._clear


# ---------------------------------------------------------------- the client side (simulator, tests)
def build_connected() -> str:
    return '{"event":"connected","protocol":"Call","version":"1.0.0"}'


def build_start(seq: int, stream_sid: str, call_sid: str, account_sid: str,
                custom_parameters: dict[str, str]) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": str(seq), "streamSid": stream_sid,
        "start": {"streamSid": stream_sid, "accountSid": account_sid, "callSid": call_sid,
                  "tracks": ["inbound"], "customParameters": custom_parameters,
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    })


class InboundBuilder:
    """Twilio -> server messages, as Twilio builds them (for the simulated caller)."""

    def __init__(self, stream_sid: str):
        self.sid = stream_sid
        self._sid = json.dumps(stream_sid)

    def media(self, seq: int, chunk: int, timestamp_ms: int, ulaw: bytes) -> str:
        return ('{"event":"media","sequenceNumber":"%d","streamSid":%s,"media":{"track":"inbound",'
                '"chunk":"%d","timestamp":"%d","payload":"%s"}}'
                % (seq, self._sid, chunk, timestamp_ms, binascii.b2a_base64(ulaw, newline=False).decode("ascii")))

    def mark(self, seq: int, name: str) -> str:
        return json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": self.sid,
                           "mark": {"name": name}})

    def dtmf(self, seq: int, digit: str) -> str:
        return json.dumps({"event": "dtmf", "sequenceNumber": str(seq), "streamSid": self.sid,
                           "dtmf": {"track": "inbound_track", "digit": digit}})

    def stop(self, seq: int, account_sid: str, call_sid: str) -> str:
        return json.dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": self.sid,
                           "stop": {"accountSid": account_sid, "callSid": call_sid}})


# Server -> Twilio messages as the simulator reads them
class _OutMedia(msgspec.Struct):
    payload: str


class _OutMark(msgspec.Struct):
    name: str


class OutboundMessage(msgspec.Struct):
    event: str
    streamSid: str = ""
    media: _OutMedia | None = None
    mark: _OutMark | None = None


_out_decoder = msgspec.json.Decoder(OutboundMessage)


def parse_outbound(message: str | bytes) -> OutboundMessage:
    try:
        m = _out_decoder.decode(message)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise ProtocolError("malformed_json", str(e)[:120]) from None
    if m.event not in ("media", "mark", "clear"):
        raise ProtocolError("unknown_event", m.event[:40])
    if m.event == "media" and m.media is None or m.event == "mark" and m.mark is None:
        raise ProtocolError("invalid_fields", f"{m.event} without body")
    return m
