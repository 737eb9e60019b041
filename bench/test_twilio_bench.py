"""The Twilio media message on the hot path: parsing inbound `media` and building outbound `media`,
each way of doing it side by side in one benchmark group, so the choice in offhook.twilio.protocol is
read straight off the table:

    pytest bench/test_twilio_bench.py --benchmark-enable --benchmark-only --benchmark-group-by=group

Every case produces the same result (checked before timing), so no case is a cheaper no-op.
"""
import binascii
import json

import msgspec
import orjson
import pytest

from offhook.twilio.protocol import InboundBuilder, Media, OutboundBuilder, parse

FRAME = bytes(range(160))
INBOUND = InboundBuilder("MZ" + "0123456789abcdef" * 2).media(1234, 1233, 24640, FRAME)
SID = "MZ" + "0123456789abcdef" * 2
EXPECTED_MEDIA = Media(1234, 1233, 24640, FRAME)


def _from_dict(d) -> Media:
    m = d["media"]
    return Media(int(d["sequenceNumber"]), int(m["chunk"]), int(m["timestamp"]),
                 binascii.a2b_base64(m["payload"], strict_mode=True))


_msgspec_untyped = msgspec.json.Decoder()


class _StrBody(msgspec.Struct):
    payload: str
    chunk: str
    timestamp: str


class _StrMedia(msgspec.Struct):
    media: _StrBody
    sequenceNumber: str


_msgspec_str_fields = msgspec.json.Decoder(_StrMedia)


def _typed_python_conversions():
    m = _msgspec_str_fields.decode(INBOUND)
    b = m.media
    return Media(int(m.sequenceNumber), int(b.chunk), int(b.timestamp),
                 binascii.a2b_base64(b.payload, strict_mode=True))


PARSERS = {
    "stdlib json.loads + dict": lambda: _from_dict(json.loads(INBOUND)),
    "orjson.loads + dict": lambda: _from_dict(orjson.loads(INBOUND)),
    "msgspec untyped + dict": lambda: _from_dict(_msgspec_untyped.decode(INBOUND)),
    "msgspec typed, base64/int in Python": _typed_python_conversions,
    "msgspec typed, base64/int in C (offhook.parse)": lambda: parse(INBOUND),
}


@pytest.mark.parametrize("name", list(PARSERS))
def test_parse_inbound_media(benchmark, name):
    fn = PARSERS[name]
    assert fn() == EXPECTED_MEDIA
    benchmark.group = "parse inbound media"
    benchmark(fn)


_ob = OutboundBuilder(SID)


class _OutMediaBody(msgspec.Struct):
    payload: str


class _OutMedia(msgspec.Struct):
    event: str
    streamSid: str
    media: _OutMediaBody


_msgspec_encoder = msgspec.json.Encoder()


def _b64(frame: bytes) -> str:
    return binascii.b2a_base64(frame, newline=False).decode("ascii")


BUILDERS = {
    "dict -> stdlib json.dumps": lambda: json.dumps(
        {"event": "media", "streamSid": SID, "media": {"payload": _b64(FRAME)}}, separators=(",", ":")),
    "dict -> orjson.dumps": lambda: orjson.dumps(
        {"event": "media", "streamSid": SID, "media": {"payload": _b64(FRAME)}}).decode(),
    "struct -> msgspec encode": lambda: _msgspec_encoder.encode(
        _OutMedia("media", SID, _OutMediaBody(_b64(FRAME)))).decode(),
    "template (offhook OutboundBuilder)": lambda: _ob.media(FRAME),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_build_outbound_media(benchmark, name):
    fn = BUILDERS[name]
    assert json.loads(fn()) == {"event": "media", "streamSid": SID, "media": {"payload": _b64(FRAME)}}
    benchmark.group = "build outbound media"
    benchmark(fn)
