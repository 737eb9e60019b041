import base64
import json

import pytest
from hypothesis import given, settings, strategies as st

from offhook.twilio.protocol import (MAX_MESSAGE_BYTES, Connected, Dtmf, InboundBuilder, Mark, Media,
                                     MediaStreamParser, OutboundBuilder, ProtocolError, Start, Stop,
                                     build_connected, build_start, parse, parse_outbound)

B = InboundBuilder("MZ123")
FRAME = bytes(range(160))


def started() -> MediaStreamParser:
    p = MediaStreamParser()
    p.feed(build_connected())
    p.feed(build_start(1, "MZ123", "CA1", "AC1", {"from": "+15551230000", "callSid": "CA1"}))
    return p


def test_full_exchange_parses_into_typed_events():
    p = MediaStreamParser()
    assert p.feed(build_connected()) == Connected("Call", "1.0.0")
    st_ = p.feed(build_start(1, "MZ123", "CA1", "AC1", {"from": "+1555"}))
    assert st_ == Start("MZ123", "CA1", "AC1", ("inbound",), {"from": "+1555"})
    assert p.feed(B.media(2, 1, 0, FRAME)) == Media(2, 1, 0, FRAME)
    assert p.feed(B.dtmf(3, "#")) == Dtmf("#")
    assert p.feed(B.mark(4, "1:10")) == Mark("1:10")
    assert p.feed(B.stop(5, "AC1", "CA1")) == Stop("CA1")


def test_twilio_documented_media_example():
    msg = ('{"event":"media","sequenceNumber":"4","streamSid":"MZ1","media":{"track":"inbound",'
           '"chunk":"3","timestamp":"45","payload":"/////w=="}}')
    assert parse(msg) == Media(4, 3, 45, b"\xff\xff\xff\xff")


@pytest.mark.parametrize("message,kind", [
    ("{", "malformed_json"),
    ("not json at all", "malformed_json"),
    ('{"event":"hello"}', "unknown_event"),
    ('{"no_event":1}', "invalid_fields"),
    ('{"event":"media"}', "invalid_fields"),
    ('{"event":"media","sequenceNumber":"x","media":{"payload":""}}', "invalid_fields"),
    ('{"event":"media","sequenceNumber":"1","media":{"payload":"%%%"}}', "bad_base64"),
    ('{"event":"dtmf","dtmf":{"digit":"12"}}', "invalid_fields"),
    ('{"event":"start","start":{"streamSid":"MZ","callSid":"CA","mediaFormat":{"encoding":"audio/l16",'
     '"sampleRate":16000,"channels":1}}}', "bad_media_format"),
    ("[1,2,3]", "invalid_fields"),
])
def test_bad_messages_get_a_kind(message, kind):
    with pytest.raises(ProtocolError) as e:
        parse(message)
    assert e.value.kind == kind


def test_oversize_message_is_refused_before_parsing():
    with pytest.raises(ProtocolError) as e:
        parse("x" * (MAX_MESSAGE_BYTES + 1))
    assert e.value.kind == "oversize"


def test_ordering_rules():
    p = MediaStreamParser()
    with pytest.raises(ProtocolError, match="media_before_start"):
        p.feed(B.media(1, 1, 0, FRAME))
    p = started()
    with pytest.raises(ProtocolError, match="duplicate_start"):
        p.feed(build_start(9, "MZ9", "CA9", "AC9", {}))
    assert p.start.call_sid == "CA1"  # the second start changed nothing
    with pytest.raises(ProtocolError, match="bad_payload_size"):
        p.feed(B.media(2, 1, 0, FRAME[:100]))
    assert p.feed(B.media(3, 2, 20, FRAME)).seq == 3  # the call goes on after bad messages
    p.feed(B.stop(4, "AC1", "CA1"))
    with pytest.raises(ProtocolError, match="after_stop"):
        p.feed(B.media(5, 3, 40, FRAME))


def test_outbound_messages_are_valid_twilio_json():
    ob = OutboundBuilder('MZ"weird\\sid')
    m = json.loads(ob.media(FRAME))
    assert m == {"event": "media", "streamSid": 'MZ"weird\\sid', "media": {"payload": base64.b64encode(FRAME).decode()}}
    assert json.loads(ob.mark("3:end")) == {"event": "mark", "streamSid": 'MZ"weird\\sid', "mark": {"name": "3:end"}}
    assert json.loads(ob.clear()) == {"event": "clear", "streamSid": 'MZ"weird\\sid'}
    assert parse_outbound(ob.media(FRAME)).media.payload == base64.b64encode(FRAME).decode()
    with pytest.raises(ProtocolError):
        parse_outbound('{"event":"media"}')


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_fuzz_never_raises_anything_but_protocol_error(text):
    p = started()
    try:
        p.feed(text)
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**9), st.integers(1, 10**9), st.binary(min_size=160, max_size=160))
def test_media_roundtrip(seq, chunk, payload):
    assert parse(B.media(seq, chunk, chunk * 20, payload)) == Media(seq, chunk, chunk * 20, payload)
