"""Deepgram live STT protocol, sans-IO: URLs, control messages, server message parsing, events."""
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results, ListenV1SpeechStarted, ListenV1UtteranceEnd

from offhook.providers import deepgram_protocol as proto
from offhook.providers.base import Final, Partial, SpeechStarted, UtteranceEnd, Word

WORDS = [{"word": "hello", "start": 0.32, "end": 0.6, "confidence": 0.97, "punctuated_word": "Hello,"},
         {"word": "maria", "start": 0.64, "end": 1.1, "confidence": 0.91, "punctuated_word": "Maria."}]


def test_listen_url_is_the_one_the_sdk_sends():
    # PROTOCOLS.md §2.2: the URL the official SDK sends for these options, byte for byte
    url = proto.listen_url("wss://api.deepgram.com", proto.ListenOptions(utterance_end_ms=1000))
    assert url == ("wss://api.deepgram.com/v1/listen?channels=1&encoding=mulaw&endpointing=300&interim_results=true"
                   "&model=nova-3&punctuate=true&sample_rate=8000&smart_format=true&utterance_end_ms=1000"
                   "&vad_events=true")


def test_listen_url_options_tag_keyterms_and_base_forms():
    opts = proto.ListenOptions(tag="CA 1", keyterms=("Zumba", "balayage"), endpointing=False,
                               language="en-US", extra={"mip_opt_out": "true"})
    url = proto.listen_url("https://proxy.local:8443/deepgram/", opts)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "proxy.local:8443", "/deepgram/v1/listen")
    pairs = parse_qsl(parts.query)
    assert ("endpointing", "false") in pairs and ("tag", "CA 1") in pairs and ("language", "en-US") in pairs
    assert [v for k, v in pairs if k == "keyterm"] == ["Zumba", "balayage"]
    assert ("mip_opt_out", "true") in pairs
    assert proto.ws_base_url("ws://127.0.0.1:9") == "ws://127.0.0.1:9"
    with pytest.raises(ValueError):
        proto.ws_base_url("ftp://x")
    with pytest.raises(ValueError):
        proto.ws_base_url("api.deepgram.com")


@pytest.mark.parametrize("kwargs,match", [
    ({"encoding": "mp3"}, "encoding"),
    ({"sample_rate": 16000}, "mulaw audio must be 8000"),
    ({"encoding": "linear16", "sample_rate": 4000}, "out of range"),
    ({"utterance_end_ms": 500}, ">= 1000"),
    ({"interim_results": False}, "needs interim_results"),
    ({"endpointing": 5}, "endpointing"),
    ({"endpointing": True}, "endpointing"),
    ({"model": "nova-3&tag=x"}, "model"),
    ({"channels": 2}, "one channel"),
])
def test_options_refuse_what_the_service_would(kwargs, match):
    with pytest.raises(ValueError, match=match):
        proto.ListenOptions(**kwargs)


def test_query_round_trips_through_the_emulators_parser():
    opts = proto.ListenOptions(encoding="linear16", sample_rate=16000, tag="CA9", keyterms=("Zumba",),
                               endpointing=500, utterance_end_ms=1500)
    parsed = proto.parse_listen_query(urlsplit(proto.listen_url("ws://h", opts)).query)
    assert parsed == opts and parsed.bytes_per_second == 32000
    # Deepgram's own defaults when a parameter is missing
    bare = proto.parse_listen_query("encoding=mulaw&sample_rate=8000")
    assert (bare.interim_results, bare.endpointing, bare.vad_events, bare.utterance_end_ms) == (False, 10, False, None)
    with pytest.raises(ValueError, match="true or false"):
        proto.parse_listen_query("encoding=mulaw&sample_rate=8000&interim_results=yes")
    with pytest.raises(ValueError, match="integer"):
        proto.parse_listen_query("encoding=mulaw&sample_rate=eight")


def test_control_messages_are_the_documented_json():
    assert json.loads(proto.keep_alive()) == {"type": "KeepAlive"}
    assert json.loads(proto.finalize()) == {"type": "Finalize"}
    assert json.loads(proto.close_stream()) == {"type": "CloseStream"}
    assert [proto.parse_control(m) for m in (proto.keep_alive(), proto.finalize(), proto.close_stream())] == \
        ["KeepAlive", "Finalize", "CloseStream"]
    with pytest.raises(proto.ProtocolError):
        proto.parse_control('{"type": "Speak"}')
    with pytest.raises(proto.ProtocolError):
        proto.parse_control("KeepAlive")


def test_server_messages_built_for_the_emulator_validate_against_the_sdk_models():
    results = json.loads(proto.results_message(start=0.0, duration=1.4, words=WORDS, is_final=True,
                                               speech_final=True, from_finalize=True, request_id="r1"))
    model = ListenV1Results.model_validate(results)
    assert model.channel.alternatives[0].transcript == "Hello, Maria." and model.from_finalize
    assert model.channel.alternatives[0].confidence == 0.91
    ListenV1SpeechStarted.model_validate(json.loads(proto.speech_started_message(0.3)))
    ListenV1UtteranceEnd.model_validate(json.loads(proto.utterance_end_message(1.1)))
    ListenV1Metadata.model_validate(json.loads(proto.metadata_message(request_id="r1", duration=2.5, created="x")))
    plain = json.loads(proto.results_message(start=0, duration=1, words=WORDS, is_final=False, punctuate=False))
    assert plain["channel"]["alternatives"][0]["transcript"] == "hello maria"


def test_results_parse_into_events_shifted_by_the_offset():
    final = proto.parse_server_message(proto.results_message(start=0.2, duration=1.2, words=WORDS, is_final=True,
                                                             speech_final=True))
    assert isinstance(final, proto.Results) and final.end == pytest.approx(1.4)
    [ev] = proto.to_events(final, offset=10.0)
    assert ev == Final("Hello, Maria.", 0.91, (Word("Hello,", 10.32, 10.6, 0.97), Word("Maria.", 10.64, 11.1, 0.91)),
                       speech_final=True, start=pytest.approx(10.2), end=pytest.approx(11.4))
    interim = proto.parse_server_message(proto.results_message(start=0, duration=0.5, words=WORDS[:1], is_final=False))
    assert proto.to_events(interim, 3.0) == [Partial("Hello,", 0.97)]
    assert proto.to_events(proto.parse_server_message(proto.speech_started_message(0.3)), 2.0) == \
        [SpeechStarted(pytest.approx(2.3))]
    assert proto.to_events(proto.parse_server_message(proto.utterance_end_message(1.1)), 2.0) == \
        [UtteranceEnd(pytest.approx(3.1))]


def test_empty_results_are_dropped_except_an_endpoint():
    empty = dict(start=0, duration=1, words=[])
    assert proto.to_events(proto.parse_server_message(proto.results_message(is_final=False, **empty))) == []
    assert proto.to_events(proto.parse_server_message(proto.results_message(is_final=True, **empty))) == []
    [ev] = proto.to_events(proto.parse_server_message(proto.results_message(is_final=True, speech_final=True, **empty)))
    assert ev.text == "" and ev.speech_final


def test_metadata_errors_and_other_messages():
    meta = proto.parse_server_message(proto.metadata_message(request_id="r", duration=12.5, created="t"))
    assert meta == proto.Metadata("r", 12.5, 1) and proto.to_events(meta) == []
    err = proto.parse_server_message(proto.error_message("bad audio", code="DATA-0000"))
    assert err == proto.ServerError("bad audio", "DATA-0000", "error")
    assert proto.parse_server_message('{"type": "ConfigureSuccess", "keyterms": []}') == proto.Other("ConfigureSuccess")


@pytest.mark.parametrize("raw,match", [
    ('{"type": "Results", "channel_index": [0, 1], "dur', "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"channel": {}}', "without a type"),
    ('{"type": "Results", "start": "soon", "duration": 1}', "bad Results"),
    ('{"type": "SpeechStarted", "channel": [0]}', "bad SpeechStarted"),
    (b"\x00\x01", "binary"),
])
def test_malformed_server_messages_are_protocol_errors(raw, match):
    with pytest.raises(proto.ProtocolError, match=match):
        proto.parse_server_message(raw)


def test_close_codes_are_read_from_close_reasons():
    assert proto.close_code_of("NET-0001: no audio") == "NET-0001"
    assert proto.close_code_of("DATA-0000 bad audio") == "DATA-0000"
    assert proto.close_code_of("going away") is None and proto.close_code_of(None) is None
