"""ElevenLabs multi-stream-input protocol, sans-IO: no sockets, no clock."""
import base64
import json

import pytest
from elevenlabs.types import (AudioOutputMulti, CloseContext, CloseSocket, FinalOutputMulti, FlushContext,
                              InitialiseContext, KeepContextAlive, SendTextMulti)

from offhook.providers import elevenlabs_protocol as p


# ---------------------------------------------------------------- URLs
@pytest.mark.parametrize("base,expected", [
    ("https://api.elevenlabs.io", "wss://api.elevenlabs.io"),
    ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765"),
    ("HTTPS://proxy.example/eleven/", "wss://proxy.example/eleven"),
    ("wss://api.elevenlabs.io", "wss://api.elevenlabs.io"),
])
def test_ws_base_url_derived_from_http_base(base, expected):
    assert p.ws_base_url(base) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "api.elevenlabs.io", "https://", ""])
def test_ws_base_url_rejects_what_is_not_a_base_url(bad):
    with pytest.raises(ValueError):
        p.ws_base_url(bad)


def test_stream_url_carries_model_format_and_extra_query():
    url = p.stream_url("https://api.elevenlabs.io", "voice123", model_id="eleven_flash_v2_5",
                       inactivity_timeout=60, sync_alignment=True, language_code=None)
    assert url == ("wss://api.elevenlabs.io/v1/text-to-speech/voice123/multi-stream-input"
                   "?model_id=eleven_flash_v2_5&output_format=ulaw_8000&inactivity_timeout=60&sync_alignment=true")
    with pytest.raises(ValueError):
        p.stream_url("https://api.elevenlabs.io", "../admin")


# ---------------------------------------------------------------- client messages
def test_client_messages_have_the_documented_wire_forms():
    assert json.loads(p.init_context("t1", voice_settings={"speed": 1.0})) == \
        {"text": " ", "voice_settings": {"speed": 1.0}, "context_id": "t1"}
    assert json.loads(p.send_text("t1", "Hello there. ")) == {"text": "Hello there. ", "context_id": "t1"}
    assert json.loads(p.send_text("t1", "Hi. ", flush=True)) == {"text": "Hi. ", "context_id": "t1", "flush": True}
    assert json.loads(p.flush_context("t1")) == {"context_id": "t1", "flush": True}
    assert json.loads(p.close_context("t1")) == {"context_id": "t1", "close_context": True}
    assert json.loads(p.keep_alive("t1")) == {"text": "", "context_id": "t1"}
    assert json.loads(p.close_socket()) == {"close_socket": True}


def test_client_messages_validate_against_the_sdk_models():
    init = json.loads(p.init_context("t1", voice_settings={"stability": 0.5, "speed": 1.1},
                                     generation_config={"chunk_length_schedule": [50, 120]}))
    m = InitialiseContext.model_validate(init)
    assert (m.context_id, m.voice_settings.speed, m.generation_config.chunk_length_schedule) == ("t1", 1.1, [50, 120])
    assert SendTextMulti.model_validate(json.loads(p.send_text("t1", "Yes. ", flush=True))).flush is True
    assert FlushContext.model_validate(json.loads(p.flush_context("t1"))).flush is True
    assert CloseContext.model_validate(json.loads(p.close_context("t1"))).close_context is True
    assert KeepContextAlive.model_validate(json.loads(p.keep_alive("t1"))).context_id == "t1"
    assert CloseSocket.model_validate(json.loads(p.close_socket())).close_socket is True


@pytest.mark.parametrize("text", ["", " "])
def test_send_text_refuses_text_that_would_mean_keepalive_or_init(text):
    with pytest.raises(ValueError):
        p.send_text("t1", text)


def test_client_message_parsing_for_the_server_side():
    m = p.parse_client_message(p.init_context("c", voice_settings={"speed": 1.0}))
    assert (m.text, m.context_id, m.voice_settings, m.flush, m.is_keep_alive) == (" ", "c", {"speed": 1.0}, False, False)
    assert p.parse_client_message(p.keep_alive("c")).is_keep_alive
    assert p.parse_client_message(p.close_context("c")).close_context
    assert p.parse_client_message('{"text":" ","xi_api_key":"k"}').api_key == "k"
    assert p.parse_client_message('{"text":" ","xi-api-key":"k"}').api_key == "k"
    for bad in ["nope", "[1]", '{"text": 5}', '{"context_id": 3}', '{"voice_settings": 1}']:
        with pytest.raises(p.ProtocolError):
            p.parse_client_message(bad)


# ---------------------------------------------------------------- server messages
def _wire_audio(ctx="c1", audio=b"\x7f\xff\x00", chars=("H", "i"), starts=(0, 65), durs=(65, 65), **extra):
    al = {"chars": list(chars), "charStartTimesMs": list(starts), "charDurationsMs": list(durs)}
    return json.dumps({"audio": base64.b64encode(audio).decode(), "isFinal": None, "normalizedAlignment": al,
                       "alignment": al, "contextId": ctx, **extra})


def test_audio_message_parses_audio_alignment_and_context():
    msg = p.parse_server_message(_wire_audio())
    assert isinstance(msg, p.ServerAudio)
    assert (msg.context_id, msg.audio, msg.is_final) == ("c1", b"\x7f\xff\x00", False)
    assert msg.alignment == p.Alignment(("H", "i"), (0.0, 65.0), (65.0, 65.0))
    assert msg.normalized_alignment == msg.alignment


def test_final_message_in_either_spelling():
    for raw in ['{"isFinal": true, "contextId": "c1"}', '{"is_final": true, "context_id": "c1"}',
                '{"audio": null, "isFinal": true, "contextId": "c1"}', '{"audio": "", "isFinal": true, "contextId": "c1"}']:
        msg = p.parse_server_message(raw)
        assert isinstance(msg, p.ServerAudio) and msg.is_final and msg.context_id == "c1" and msg.audio == b""


def test_error_messages():
    msg = p.parse_server_message('{"message":"Invalid API key","error":"invalid_api_key","code":1008}')
    assert msg == p.ServerError("Invalid API key", "invalid_api_key", 1008, None)
    assert p.parse_server_message('{"error":"quota_exceeded"}') == p.ServerError("quota_exceeded", "quota_exceeded")


@pytest.mark.parametrize("raw", [
    '{"audio": "UklGRiQAAABXQVZF',                      # truncated JSON
    "<html>502 Bad Gateway</html>",
    '"just a string"',
    '{"audio": "not base64!!", "contextId": "c"}',
    '{"audio": 12, "contextId": "c"}',
    '{"contextId": "c"}',                                # neither audio, final nor error
    '{"audio": "", "contextId": 7}',
    _wire_audio(chars=("a", "b"), starts=(0,), durs=(65, 65)),   # lengths disagree
    _wire_audio(starts=(0, -5)),
    _wire_audio(starts=(0, "x")),
    b"\xff\xfe",
])
def test_malformed_server_messages_raise_protocol_error(raw):
    with pytest.raises(p.ProtocolError):
        p.parse_server_message(raw)


def test_emulator_side_builders_round_trip_and_match_sdk_models():
    al = p.Alignment(("o", "k"), (0.0, 65.0), (65.0, 65.0))
    raw = p.audio_message("c9", b"\x01\x02", al, al)
    sdk = AudioOutputMulti.model_validate(json.loads(raw))
    assert (sdk.context_id, base64.b64decode(sdk.audio), sdk.alignment.chars) == ("c9", b"\x01\x02", ["o", "k"])
    assert p.parse_server_message(raw) == p.ServerAudio("c9", b"\x01\x02", al, al, False)
    fin = p.final_message("c9")
    assert FinalOutputMulti.model_validate(json.loads(fin)).context_id == "c9"
    assert p.parse_server_message(fin) == p.ServerAudio("c9", is_final=True)
    err = p.error_message("boom", error="x", code=1011)
    assert p.parse_server_message(err) == p.ServerError("boom", "x", 1011)


# ---------------------------------------------------------------- alignment timeline
def test_timeline_places_chunk_relative_alignment_on_the_utterance_clock():
    tl = p.Timeline()
    # chunk 1: 130 ms of audio (1040 bytes at 8 kHz μ-law), "Hi"
    a = tl.add(1040, p.Alignment(("H", "i"), (0, 65), (65, 65)))
    # chunk 2: audio without alignment still advances the clock
    assert tl.add(400, None) is None
    b = tl.add(520, p.Alignment(("!",), (0,), (65,)))
    assert a == (("H", 0.0, 65.0), ("i", 65.0, 130.0))
    assert b == (("!", 180.0, 245.0),)
    assert tl.position_ms == 245.0
    assert "".join(c for c, _, _ in a + b) == "Hi!"
