"""The real server (hypercorn trio, loopback) driven by the simulated caller and raw WS clients."""
import json
import os
import wave
from functools import partial

import httpx
import numpy as np
import pytest
import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from edge_helpers import FRAME, TOKEN, raw_call, run, running_server
from offhook.observe.record import CallRecord, EndedBy, EndReason
from offhook.server.config import Config, ConfigError
from offhook.server.echo import EchoHandler
from offhook.server.media import AfterAction
from offhook.sim.caller import SimCaller
from offhook.sim.scenario import from_dict
from offhook.twilio.protocol import InboundBuilder, build_connected, build_start
from offhook.twilio.signature import sign

PUBLIC = "https://voice.example.com"


def signed_headers(url, params=None, **extra):
    return {"X-Twilio-Signature": sign(TOKEN, url, params), **extra}


ECHO_CALL = {"steps": [{"wait_for_agent": {"quiet": 0.3}}, {"say": "hello there how are you"},
                       {"wait_for_agent": {"quiet": 0.5}}, {"hangup": True}]}


# ---------------------------------------------------------------- HTTP webhooks
def test_voice_webhook_returns_connect_stream_twiml_when_signed():
    async def main():
        async with running_server(public_url=PUBLIC) as app:
            params = {"CallSid": "CA1", "From": "+15551230000", "To": "+15559870000", "AccountSid": "AC1"}
            async with httpx.AsyncClient(base_url=app.base_http) as http:
                ok = await http.post("/twilio/voice", data=params,
                                     headers=signed_headers(PUBLIC + "/twilio/voice", params))
                forged = await http.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": "bogus"})
                missing = await http.post("/twilio/voice", data=params)
                tampered = await http.post("/twilio/voice", data={**params, "From": "+1999"},
                                           headers=signed_headers(PUBLIC + "/twilio/voice", params))
            assert ok.status_code == 200 and ok.headers["content-type"] == "application/xml"
            xml = ok.text
            assert '<Stream name="offhook" url="wss://voice.example.com/twilio/media">' in xml
            assert '<Connect action="https://voice.example.com/twilio/after-stream" method="POST">' in xml
            assert '<Parameter name="from" value="+15551230000" />' in xml
            assert '<Parameter name="callSid" value="CA1" />' in xml
            assert [forged.status_code, missing.status_code, tampered.status_code] == [403, 403, 403]
            assert len(app.rejected) == 3
    run(main)


def test_signature_behind_a_tls_proxy():
    async def main():
        async with running_server() as app:  # no public URL configured: trust the proxy's headers
            url = "https://abc.ngrok.app/twilio/voice"
            params = {"CallSid": "CA2"}
            proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc.ngrok.app"}
            async with httpx.AsyncClient(base_url=app.base_http) as http:
                ok = await http.post("/twilio/voice", data=params, headers=signed_headers(url, params, **proxy))
                wrong_host = await http.post("/twilio/voice", data=params, headers=signed_headers(
                    url, params, **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}))
            assert ok.status_code == 200
            assert 'url="wss://abc.ngrok.app/twilio/media"' in ok.text
            assert wrong_host.status_code == 403
    run(main)


def test_tokens_never_appear_in_logs(caplog):
    async def main():
        async with running_server(public_url=PUBLIC) as app:
            async with httpx.AsyncClient(base_url=app.base_http) as http:
                await http.post("/twilio/status", data={"CallSid": "CA1"}, headers={"X-Twilio-Signature": "zzz"})
    with caplog.at_level("DEBUG"):
        run(main)
    assert "refused /twilio/status" in caplog.text
    assert TOKEN not in caplog.text and "zzz" not in caplog.text


def test_status_callback_is_recorded_and_after_stream_serves_next_twiml():
    async def main():
        async with running_server(public_url=PUBLIC) as app:
            async with httpx.AsyncClient(base_url=app.base_http) as http:
                async def post(path, params):
                    return await http.post(path, data=params, headers=signed_headers(PUBLIC + path, params))
                st = await post("/twilio/status", {"CallSid": "CA7", "CallStatus": "completed", "CallDuration": "42"})
                assert st.status_code == 204
                assert app.statuses["CA7"]["CallDuration"] == "42"
                hang = await post("/twilio/after-stream", {"CallSid": "CA7"})
                assert "<Hangup />" in hang.text
                app.after_actions.put("CA8", AfterAction("voicemail", "Please leave a message."))
                vm = await post("/twilio/after-stream", {"CallSid": "CA8"})
                assert "<Say>Please leave a message.</Say>" in vm.text
                assert '<Record action="https://voice.example.com/twilio/after-stream"' in vm.text
                # the recording's result comes back to the same URL; then the call hangs up
                done = await post("/twilio/after-stream", {"CallSid": "CA8", "RecordingDuration": "7",
                                                           "RecordingUrl": "https://api.twilio.com/RE1"})
                assert "<Hangup />" in done.text and "<Record" not in done.text
                assert app.voicemails["CA8"] == {"RecordingUrl": "https://api.twilio.com/RE1",
                                                 "RecordingDuration": "7"}
                app.after_actions.put("CA9", AfterAction("dial", number="+15550001111"))
                dial = await post("/twilio/after-stream", {"CallSid": "CA9"})
                assert "<Number>+15550001111</Number>" in dial.text
                health = (await http.get("/healthz")).json()
                assert health == {"status": "ok", "active_calls": 0, "calls_total": 0, "worker": app.server_id,
                                  "pid": os.getpid(), "streams_without_call": {}}
                assert (await http.get("/nope")).status_code == 404
                big = await http.post("/twilio/status", content=b"x=" + b"y" * 100_000,
                                      headers={"content-type": "application/x-www-form-urlencoded"})
                assert big.status_code == 413
    run(main)


# ---------------------------------------------------------------- the media socket
def test_full_call_with_the_simulated_caller(tmp_path):
    async def main():
        async with running_server(public_url=PUBLIC) as app:
            url = app.base_ws + "/twilio/media"
            caller = SimCaller(url, from_dict(ECHO_CALL), auth_token=TOKEN,
                               signed_url="wss://voice.example.com/twilio/media")
            result = await caller.run()
            assert result.ended_by == "caller" and not result.error
            # greeting beep (0.4 s) then the echo of the caller's line
            line = result.lines[0]
            assert result.agent_heard_between(0, line.start) == pytest.approx(0.4, abs=0.021)
            echoed = result.agent_heard_between(line.end, result.duration)
            assert echoed == pytest.approx(line.end - line.start, abs=0.35)
            assert 0.28 <= line.latency <= 0.4  # the echo handler waits for 300 ms of silence
            assert "1:end" in result.marks_echoed and "2:end" in result.marks_echoed
            await trio.sleep(0.1)
            call = app.finished[-1]
            assert call.call_sid == caller.call_sid and call.end_reason == "caller_hangup"
            assert call.params["from"] == "+15551230000"
            assert call.pacer.utterances[1].end_mark_echoed
            assert not call.bad
            # the recording: caller left, agent right, on one timeline
            result.write_wav(str(tmp_path / "call.wav"))
            result.write_json(str(tmp_path / "call.json"))
            return result

    result = trio.run(main, clock=MockClock(autojump_threshold=0.005))
    with wave.open(str(tmp_path / "call.wav")) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        st = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    left, right = st[:, 0].astype(float), st[:, 1].astype(float)
    line = result.lines[0]

    def rms(x, t0, t1):
        return np.sqrt(np.mean(x[int(t0 * 8000):int(t1 * 8000)] ** 2))
    assert rms(right, 0.0, 0.4) > 1000 and rms(left, 0.0, 0.4) < 50           # greeting beep on the right
    assert rms(left, line.start, line.end) > 1000                             # caller speaking on the left
    assert rms(right, line.start + 0.5, line.end - 0.1) < 50                  # agent quiet meanwhile
    assert rms(right, line.end + 0.4, line.end + 0.4 + (line.end - line.start) - 0.2) > 1000  # the echo
    timeline = json.loads((tmp_path / "call.json").read_text())
    assert timeline["call_sid"] == result.call_sid and timeline["lines"][0]["latency"] == line.latency
    assert [e["event"] for e in timeline["timeline"]][:2] == ["start", "say"]


def test_ws_signature_missing_forged_and_behind_proxy():
    async def main():
        async with running_server() as app:
            url = app.base_ws + "/twilio/media"
            for headers in ([], [("X-Twilio-Signature", "forged")],
                            [("X-Twilio-Signature", sign(TOKEN, "wss://other.host/twilio/media"))]):
                with pytest.raises(ConnectionRejected) as e:
                    async with open_websocket_url(url, extra_headers=headers):
                        pass
                assert e.value.status_code == 403
            proxied = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "abc.ngrok.app"),
                       ("X-Twilio-Signature", sign(TOKEN, "wss://abc.ngrok.app/twilio/media"))]
            async with open_websocket_url(url, extra_headers=proxied) as ws:
                await ws.send_message(build_connected())
            assert len(app.rejected) == 3
    run(main)


def test_every_kind_of_bad_input_is_counted_and_the_call_goes_on(caplog):
    import base64
    b = InboundBuilder("MZraw")
    bad = [
        "{not json",
        '{"event":"surprise"}',
        '{"event":"media","sequenceNumber":"5","media":{"payload":"@@@"}}',
        b.media(6, 1, 0, b"\x01" * 20),
        build_start(7, "MZ2", "CA2", "AC2", {}),
        '{"event":"media","sequenceNumber":"8","media":{"payload":"' + base64.b64encode(FRAME).decode()
        + '","chunk":"x"}}',
        b"\x00\x01binary",
    ]

    async def main():
        async with running_server(validate_signatures=False) as app:
            call = await raw_call(app, bad * 3)
            assert dict(call.bad) == {"malformed_json": 3, "unknown_event": 3, "bad_base64": 3,
                                      "bad_payload_size": 3, "duplicate_start": 3, "invalid_fields": 3,
                                      "binary_frame": 3}
            assert call.end_reason == "caller_hangup"
            assert call.frames_in == 60  # the good audio after the garbage all arrived
            assert call.jitter.stats["played"] == 60

    with caplog.at_level("WARNING", logger="offhook.media"):
        run(main)
    # one log line per kind, naming the call, however often it happens
    lines = [r.getMessage() for r in caplog.records if r.name == "offhook.media"]
    assert len(lines) == 7 and all(line.startswith("call CAraw: dropped bad message (") for line in lines)


def test_media_before_start_and_megabyte_frames():
    async def main():
        async with running_server(validate_signatures=False) as app:
            b = InboundBuilder("MZx")
            async with open_websocket_url(app.base_ws + "/twilio/media") as ws:
                await ws.send_message(b.media(1, 1, 0, FRAME))  # before start: dropped
                await ws.send_message(build_start(2, "MZx", "CAbig", "AC1", {}))
                await ws.send_message(b.media(3, 1, 0, FRAME))
                # over the cap: the server sends close 1009 and ends the call at once. Its socket closes
                # with the rest of our 2 MB unread, so depending on timing we see the 1009 or a reset
                # (1006), while still sending or on the next read.
                with pytest.raises(ConnectionClosed) as closed:
                    with trio.fail_after(5):
                        await ws.send_message("x" * 2_000_000)
                        while True:
                            await ws.get_message()
                assert closed.value.reason.code in (1009, 1006)
            await trio.sleep(0.1)
            call = next(c for c in app.finished if c.call_sid == "CAbig")
            assert call.bad["media_before_start"] == 1 and call.bad["oversize"] == 1
            assert (call.end_reason, call.ended_by) == ("error_protocol", "system")
            assert call.frames_in == 1
            assert app.active == {}
    run(main)


def test_twenty_concurrent_calls_one_fed_garbage():
    async def main():
        async with running_server(validate_signatures=False) as app:
            results = {}

            async def good(i):
                c = SimCaller(app.base_ws + "/twilio/media", from_dict(ECHO_CALL), seed=i)
                results[i] = await c.run()

            async def garbage():
                b = InboundBuilder("MZg")
                junk = ["{", '{"event":1}', b"\xff" * 50, b.media(5, 1, 0, b"\x00"), '{"event":"media"}'] * 40
                results["garbage"] = await raw_call(app, junk, then_good_frames=10, call_sid="CAgarbage")

            async with trio.open_nursery() as n:
                for i in range(19):
                    n.start_soon(good, i)
                n.start_soon(garbage)
            calls = {c.call_sid: c for c in app.finished}
            for i in range(19):
                r = results[i]
                # each heard what a lone call hears (test_full_call...): greeting, then its line echoed
                assert r.ended_by == "caller" and not r.error, r.error
                line = r.lines[0]
                assert 0.28 <= line.latency <= 0.4
                assert r.agent_heard_between(0, line.start) == pytest.approx(0.4, abs=0.021)
                assert r.agent_heard_between(line.end, r.duration) == pytest.approx(line.end - line.start, abs=0.35)
                server_side = calls[r.call_sid]
                assert not server_side.bad and server_side.end_reason == "caller_hangup"
            assert sum(results["garbage"].bad.values()) == 200
            assert results["garbage"].frames_in == 10  # the garbage call itself went on too
            assert len(calls) == 20
    run(main)


def test_handler_crash_ends_only_that_call():
    class Boom(EchoHandler):
        def __init__(self, call):
            super().__init__(call)
            call.record = CallRecord(call.call_sid)

        async def on_audio(self, call, frame):
            raise RuntimeError("handler bug")

    def factory(call):
        return Boom(call) if call.call_sid == "CAboom" else EchoHandler(call)

    async def main():
        async with running_server(validate_signatures=False, handler_factory=factory) as app:
            async with trio.open_nursery() as n:
                n.start_soon(partial(raw_call, app, [], then_good_frames=5, call_sid="CAboom"))
                ok = SimCaller(app.base_ws + "/twilio/media", from_dict(ECHO_CALL))
                res = await ok.run()
            assert res.ended_by == "caller" and res.lines[0].latency is not None
            boom = next(c for c in app.finished if c.call_sid == "CAboom")
            assert boom.end_reason == "error_internal"
            assert boom.record.complete
            assert (boom.record.end_reason, boom.record.ended_by) == (EndReason.ERROR_INTERNAL, EndedBy.SYSTEM)
    run(main)


# ---------------------------------------------------------------- configuration
def test_config_from_env_and_toml(tmp_path):
    f = tmp_path / "offhook.toml"
    f.write_text('[offhook]\nport = 9000\npublic_url = "https://x.example"\npacer_lead_ms = 60\n')
    c = Config.load(str(f), env={"TWILIO_AUTH_TOKEN": "t0k", "OFFHOOK_PORT": "9100"})
    assert (c.port, c.public_url, c.pacer_lead_ms) == (9100, "https://x.example", 60)
    assert "t0k" not in repr(c)


@pytest.mark.parametrize("text,match", [
    ("port = 'abc'", "integer"),
    ("porty = 1", "unknown setting"),
    ("port = [", "not valid TOML"),
    ("mode = 'karaoke'", "mode"),
    ("public_url = 'ftp://x'", "https"),
])
def test_garbage_config_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Config.load(str(f), env={"TWILIO_AUTH_TOKEN": "x"})


def test_missing_token_requires_explicit_insecure_mode():
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        Config.load(env={})
    assert Config.load(env={"OFFHOOK_VALIDATE_SIGNATURES": "0"}).validate_signatures is False


def test_barge_in_over_the_echo_clears_and_the_ledger_knows_what_was_heard():
    scenario = from_dict({"steps": [
        {"wait_for_agent": {"quiet": 0.3}},
        {"say": "this is a fairly long line for the echo to play back"},
        {"barge_in": {"after": 1.0, "say": "wait stop"}},
        {"wait_for_agent": {"quiet": 0.5}}, {"hangup": True}]})

    async def main():
        async with running_server(validate_signatures=False) as app:
            res = await SimCaller(app.base_ws + "/twilio/media", scenario).run()
            await trio.sleep(0.1)
            call = app.finished[-1]
        assert res.ended_by == "caller" and res.clears == 1
        b = res.barge_ins[0]
        assert b.clear_received is not None and b.audio_stopped is not None
        # the echo handler reacts on VAD onset: a few frames into the barge-in, before the line ends
        assert b.onset < b.clear_received < res.lines[1].end
        assert b.audio_stopped <= b.clear_received + 0.02
        # nothing of the cleared echo played after the clear
        assert res.agent_heard_between(b.clear_received + 0.02, res.lines[1].end) == 0
        # the server's ledger says how much of the echo the caller heard: what the caller really played
        echo = call.pacer.utterances[2]
        heard_at_caller = res.agent_heard_between(res.lines[0].end, b.clear_received + 0.02)
        assert echo.heard_ms_at_clear / 1000 == pytest.approx(heard_at_caller, abs=0.045)
        assert echo.sent_ms > echo.heard_ms_at_clear  # the lead that `clear` discarded
        # marks Twilio echoes because of the clear do not count as played
        assert echo.confirmed_frames * 20 <= echo.heard_ms_at_clear
        assert len(call.pacer.clear_latencies) == 1
        # the barge-in line itself was echoed afterwards
        assert res.agent_heard_between(res.lines[1].end, res.duration) > 0.3
    run(main)


def test_streams_that_never_become_calls_are_counted_and_closed():
    async def main():
        async with running_server(validate_signatures=False) as app:
            url = app.base_ws + "/twilio/media"
            b = InboundBuilder("MZf")
            bad_format = build_start(1, "MZf", "CAfmt", "AC1", {}).replace("audio/x-mulaw", "audio/l16")
            for first in ([bad_format], [b.stop(1, "AC1", "CAx")], []):
                async with open_websocket_url(url) as ws:
                    await ws.send_message(build_connected())
                    for m in first:
                        await ws.send_message(m)
                    if first:  # the server closes these at once
                        with pytest.raises(ConnectionClosed):
                            with trio.fail_after(2):
                                await ws.get_message()
            async with open_websocket_url(url) as ws:  # connects, never starts: closed after 10 s
                await ws.send_message(build_connected())
                t0 = trio.current_time()
                with pytest.raises(ConnectionClosed), trio.fail_after(12):
                    await ws.get_message()
                assert trio.current_time() - t0 == pytest.approx(10.0, abs=0.1)
            await trio.sleep(0.1)
            assert dict(app.streams_without_call) == {"bad_media_format": 1, "stop_before_start": 1,
                                                      "closed_before_start": 1, "no_start_timeout": 1}
            assert app.finished == [] and app.active == {}
    run(main)


def test_a_line_that_goes_silent_without_closing_is_ended():
    async def main():
        async with running_server(validate_signatures=False) as app:
            b = InboundBuilder("MZq")
            async with open_websocket_url(app.base_ws + "/twilio/media") as ws:
                await ws.send_message(build_connected())
                await ws.send_message(build_start(1, "MZq", "CAquiet", "AC1", {}))
                for i in range(5):
                    await ws.send_message(b.media(2 + i, i + 1, 20 * i, FRAME))
                t0 = trio.current_time()
                with pytest.raises(ConnectionClosed), trio.fail_after(15):
                    while True:  # greeting audio and marks come; we send nothing more
                        await ws.get_message()
                waited = trio.current_time() - t0
            await trio.sleep(0.1)
            call = app.finished[-1]
            assert (call.call_sid, call.end_reason, call.ended_by) == ("CAquiet", "error_protocol", "system")
            assert any(kind == "inbound_timeout" for _, kind, _ in call.events)
            assert 10.0 <= waited <= 12.6  # sampled every 2.5 s
    run(main)
