"""AuraTTS (our real client) against the Aura emulator over real loopback WebSockets, under
MockClock(autojump_threshold=0.005): the emulator's latencies are exact, so times are asserted exactly."""
import json
import logging

import pytest
import trio
import trio_websocket

from provider_helpers import (assert_key_never_shown, barge_in, barge_in_before_any_text, check_tts_interface,
                              fail_mid_utterance, hang_up_mid_utterance, miss_the_first_audio_deadline, mock_clock,
                              one_good_call_one_failing, port_nobody_listens_on, refused_at_entry, say,
                              speak_as_the_llm_writes)

from offhook.audio import ulaw_level_db
from offhook.providers import aura_protocol as proto
from offhook.providers.aura_tts import (AuraAuthError, AuraConfigError, AuraConnectionError, AuraProtocolError,
                                        AuraServiceError, AuraTimeout, AuraTTS)
from offhook.sim.emulators.aura import aura_emulator, render
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile
from offhook.sim.voice import synthetic_voice

pytestmark = pytest.mark.timeout(30)

PROFILE = LatencyProfile(first_s=0.2, gap_s=0.05)
TEXT = "Sure, I can help with that. What day works for you?"


def client(emu, **kw) -> AuraTTS:
    kw.setdefault("api_key", emu.api_key)
    return AuraTTS(base_url=emu.base_url, **kw)


def voice(*segments: str) -> bytes:
    """What the emulator says for these flushed segments, in order."""
    return b"".join(synthetic_voice(s) for s in segments)


# ---------------------------------------------------------------- configuration
def test_missing_key_and_bad_settings_are_clear_errors(monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(AuraConfigError, match="DEEPGRAM_API_KEY"):
        AuraTTS()
    with pytest.raises(AuraConfigError):
        AuraTTS(api_key="k", base_url="api.deepgram.com")
    with pytest.raises(AuraConfigError, match="model"):
        AuraTTS(api_key="k", model="aura?x")


def test_environment_configures_endpoint_and_model_and_hides_the_key(monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg_secret_5151")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", "wss://stt-proxy.example")
    tts = AuraTTS()
    assert tts.url == "wss://stt-proxy.example/v1/speak?encoding=mulaw&model=aura-2-thalia-en&sample_rate=8000"
    monkeypatch.setenv("DEEPGRAM_TTS_BASE_URL", "https://tts-proxy.example:8443/dg")
    monkeypatch.setenv("DEEPGRAM_TTS_MODEL", "aura-2-andromeda-en")
    tts = AuraTTS()
    assert tts.url == "wss://tts-proxy.example:8443/dg/v1/speak?encoding=mulaw&model=aura-2-andromeda-en&sample_rate=8000"
    assert "dg_secret_5151" not in repr(tts) and "dg_secret_5151" not in str(vars(tts))


def test_protocol_messages_are_the_sdk_shapes():
    assert json.loads(proto.speak("Hi.")) == {"type": "Speak", "text": "Hi."}
    assert [json.loads(m) for m in (proto.flush(), proto.clear(), proto.close())] == \
        [{"type": "Flush"}, {"type": "Clear"}, {"type": "Close"}]
    assert proto.parse_server_message(b"\xff\x7f") == proto.Audio(b"\xff\x7f")
    assert proto.parse_server_message(proto.flushed_message(3)) == proto.Flushed(3)
    assert proto.parse_server_message(proto.cleared_message(1)) == proto.Cleared(1)
    assert proto.parse_server_message(proto.warning_message("slow down", "W1")) == proto.Warning_("slow down", "W1")
    assert proto.parse_server_message('{"type":"Error","err_code":"X","err_msg":"bad"}') == proto.ServerError("bad", "X")
    assert proto.parse_server_message('{"type":"Later"}') == proto.Other("Later")
    for bad in ('{"type": "Flushed", "sequence_', '{"type": "Flushed"}', "[]", '{"x": 1}'):
        with pytest.raises(proto.ProtocolError):
            proto.parse_server_message(bad)
    with pytest.raises(ValueError):
        proto.speak("x" * 2001)
    with pytest.raises(ValueError, match="sample rates"):
        proto.speak_url("wss://h", sample_rate=24000)
    assert proto.parse_speak_query("encoding=linear16&sample_rate=16000&model=m") == \
        proto.SpeakOptions("m", "linear16", 16000)


@mock_clock
async def test_implements_the_tts_interface():
    async with aura_emulator() as emu:
        await check_tts_interface(client(emu), "aura")


# ---------------------------------------------------------------- the happy path
@mock_clock
async def test_one_utterance_wire_shapes_audio_and_usage():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            utt, chunks, t0 = said = await say(session, "Sure, ", "I can help with that. ", "What day works for you?")
        conn = emu.connections[0]
        assert conn.path == "/v1/speak?encoding=mulaw&model=aura-2-thalia-en&sample_rate=8000"
        assert conn.headers["authorization"] == f"Token {emu.api_key}"
        assert [m for _, m in conn.received] == [
            {"type": "Speak", "text": "Sure, "}, {"type": "Flush"},        # first clause: generate now
            {"type": "Speak", "text": "I can help with that. "}, {"type": "Flush"},  # sentence end
            {"type": "Speak", "text": "What day works for you?"}, {"type": "Flush"},
            {"type": "Close"},
        ]
        assert conn.close_code == 1000
    # the audio is exactly what the service generated for the three flushes, in order
    audio = said.audio
    assert audio == voice("Sure, ", "I can help with that. ", "What day works for you?")
    assert len(audio) / 8000 == pytest.approx(len(TEXT) * 0.065, rel=0.05)  # length follows the text
    assert all(c.alignment is None for c in chunks)
    assert utt.characters == len(TEXT) == session.characters
    assert utt.first_audio_latency == pytest.approx(0.2)
    assert emu.jobs[0].first_audio_at - t0 == pytest.approx(0.2)


@mock_clock
async def test_audio_starts_before_the_text_ends():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            async with session.utterance() as utt:
                t0, got = await speak_as_the_llm_writes(utt, ["Let me check ", "the calendar ", "for Tuesday. ",
                                                              "Yes, ten works."])
        conn = emu.connections[0]
        assert [round(t - t0, 3) for t in conn.times("Speak")] == [0.0, 0.5, 1.0, 1.5]
        # "the calendar " has no sentence end: it waited for the flush after "for Tuesday. "
        assert [job.text for job in emu.jobs] == ["Let me check ", "the calendar for Tuesday. ", "Yes, ten works."]
    assert got[0][0] == pytest.approx(0.2)
    assert b"".join(a for _, a in got) == voice("Let me check ", "the calendar for Tuesday. ", "Yes, ten works.")


@mock_clock
async def test_two_utterances_share_one_warm_connection():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            one = await say(session, "Hello there. ")
            two = await say(session, "How can I help?")
        assert len(emu.connections) == 1 and session.connections == 1
    assert one.audio == voice("Hello there. ") and two.audio == voice("How can I help?")
    assert two.utt.first_audio_latency == pytest.approx(0.2)
    assert (one.utt.characters, two.utt.characters, session.characters) == (13, 15, 28)


@mock_clock
async def test_empty_utterance_sends_nothing():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            utt, chunks, _ = await say(session)
        assert chunks == [] and utt.characters == 0 and not emu.connections[0].messages("Speak")


# ---------------------------------------------------------------- barge-in
@mock_clock
async def test_barge_in_sends_clear_at_once_and_no_stale_audio_reaches_the_next_turn():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            _, heard, barge_at = await barge_in(session, TEXT)
            conn = emu.connections[0]
            await emu.wait_until(lambda: conn.times("Clear"))
            assert conn.times("Clear")[0] - barge_at <= 0.100
            a2 = (await say(session, "Okay, go ahead.")).audio
        assert len(emu.connections) == 1
        job = emu.jobs[0]
        assert job.cleared_at is not None and job.done_at is None and len(job.audio) < len(render(TEXT, conn.options))
    heard_audio = b"".join(c.audio for c in heard)
    assert heard_audio == bytes(job.audio)[:len(heard_audio)]
    assert a2 == voice("Okay, go ahead.")  # only its own audio
    assert session.stale_chunks_dropped == job.frames_sent - 2


@mock_clock
async def test_barge_in_before_any_text_costs_nothing():
    async with aura_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            utt = await barge_in_before_any_text(session)
            a2 = (await say(session, "Hi.")).audio
        assert utt.characters == 0 and a2 == voice("Hi.")
        assert not emu.connections[0].times("Clear")


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize("kind,error,message", [
    ("error", AuraServiceError, "1011.*NET-0000"),
    ("close", AuraConnectionError, "1006"),
    ("malformed", AuraProtocolError, "malformed message"),
])
@mock_clock
async def test_fault_mid_stream_raises_tts_error_when_it_happens(kind, error, message):
    async with aura_emulator(profile=PROFILE, faults=FaultPlan([Fault(kind, after_s=0.32)])) as emu:
        async with client(emu).session() as session:
            heard, failed_at = await fail_mid_utterance(session, error, message, TEXT)
            a2 = (await say(session, "Sorry about that.")).audio
    assert failed_at == pytest.approx(0.32)
    assert len(heard) == 3  # frames at 0.20, 0.25, 0.30 were delivered
    assert a2 == voice("Sorry about that.") and len(emu.connections) == 2


@pytest.mark.parametrize("fault", [Fault("hang", after_s=0.32), Fault("drip", after_s=0.32, drip_s=5.0)])
@mock_clock
async def test_hang_or_drip_after_flush_raises_after_the_stall_timeout(fault):
    async with aura_emulator(profile=PROFILE, faults=FaultPlan([fault])) as emu:
        async with client(emu, stall_timeout=2.0).session() as session:
            with pytest.raises(AuraTimeout, match="stalled"):
                _ = await say(session, TEXT)
            failed_at = trio.current_time()
            a2 = (await say(session, "Still there?")).audio
        last_audio = max(t for t, kind in emu.connections[0].sent if kind == "audio")
    assert failed_at == pytest.approx(last_audio + 2.0) and last_audio < 0.4
    assert a2 == voice("Still there?") and len(emu.connections) == 2


@mock_clock
async def test_slow_first_audio_breaches_the_first_audio_deadline_but_keeps_the_connection():
    async with aura_emulator(profile=LatencyProfile(first_s=2.5, gap_s=0.05)) as emu:
        tts = client(emu, first_audio_timeout=1.0)
        async with tts.session() as session:
            _, t0 = await miss_the_first_audio_deadline(session, AuraTimeout, "no audio from Deepgram Aura within 1 s",
                                                        "Let me see.", 1.0)
            conn = emu.connections[0]
            await emu.wait_until(lambda: conn.times("Clear"))
            assert conn.times("Clear")[0] - t0 == pytest.approx(1.0)  # abandoned at once
            tts.first_audio_timeout, tts.stall_timeout = None, 5.0
            after = await say(session, "Okay.")
        assert len(emu.connections) == 1
    assert after.audio == voice("Okay.") and after.utt.first_audio_latency == pytest.approx(2.5)


@mock_clock
async def test_a_failing_call_does_not_disturb_another():
    async with aura_emulator(profile=PROFILE, faults=FaultPlan([None, Fault("close", after_s=0.1)])) as emu:
        results = await one_good_call_one_failing(client(emu), TEXT, lambda said: said.audio)
    assert results["good"] == voice(TEXT)
    assert isinstance(results["bad"], AuraConnectionError)


# ---------------------------------------------------------------- auth, idle, cancellation
@mock_clock
async def test_wrong_key_fails_session_entry_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    async with aura_emulator() as emu:
        tts = client(emu, api_key="dg_wrong_key_31")
        failure = await refused_at_entry(tts.session(), AuraAuthError, "HTTP 401")
        assert [s for _, s, _ in emu.rejected] == [401]
    assert_key_never_shown("dg_wrong_key_31", caplog.text, str(failure), repr(tts))


@mock_clock
async def test_an_idle_close_is_replaced_in_the_background_so_the_next_turn_is_warm():
    async with aura_emulator(profile=PROFILE, idle_timeout=60.0) as emu:
        async with client(emu).session() as session:
            await trio.sleep(65)  # caller on hold
            assert len(emu.connections) == 2 and emu.connections[0].close_code == 1011
            assert emu.connections[1].opened_at == pytest.approx(60.0, abs=0.01)
            utt, _, t0 = said = await say(session, "Thanks for holding.")
    assert said.audio == voice("Thanks for holding.") and utt.first_audio_latency == pytest.approx(0.2)
    assert emu.jobs[0].flushed_at == pytest.approx(t0)  # no handshake in the turn's path


@mock_clock
async def test_cancelling_the_session_closes_the_socket_promptly():
    async with aura_emulator(profile=LatencyProfile(first_s=0.2, gap_s=0.5)) as emu:
        await hang_up_mid_utterance(emu, client(emu), TEXT)


@mock_clock
async def test_emulator_answers_raw_clients_and_refuses_bad_formats():
    async with aura_emulator() as emu:
        url = proto.speak_url(emu.base_url, encoding="linear16", sample_rate=16000)
        async with trio_websocket.open_websocket_url(url, subprotocols=["token", emu.api_key]) as ws:
            assert isinstance(proto.parse_server_message(await ws.get_message()), proto.Metadata)
            await ws.send_message(proto.speak("Hi."))
            await ws.send_message(proto.flush())
            audio = b""
            while not isinstance(msg := proto.parse_server_message(await ws.get_message()), proto.Flushed):
                audio += msg.data
            assert msg == proto.Flushed(0)
            assert len(audio) == 2 * len(synthetic_voice("Hi.")) * 2  # 16-bit, twice the rate
            assert ulaw_level_db(synthetic_voice("Hi.")) > -30
        bad = url.replace("sample_rate=16000", "sample_rate=11025")
        rejected = await refused_at_entry(trio_websocket.open_websocket_url(bad, subprotocols=["token", emu.api_key]),
                                          trio_websocket.ConnectionRejected)
        assert rejected.status_code == 400


@mock_clock
async def test_connection_refused_is_a_tts_error():
    port = await port_nobody_listens_on(aura_emulator)
    await refused_at_entry(AuraTTS(api_key="k", base_url=f"ws://127.0.0.1:{port}").session(), AuraConnectionError,
                           "cannot connect")
