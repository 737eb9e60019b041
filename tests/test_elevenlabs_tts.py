"""ElevenLabsTTS (our real client) against the ElevenLabs emulator over real loopback WebSockets.

Client and emulator run in the same trio run under MockClock(autojump_threshold=0.01): the
emulator's latencies are exact, so times are asserted exactly, and a test of "20 s idle" is instant.
"""
import logging

import pytest
import trio
import trio_websocket

import provider_helpers
from provider_helpers import (assert_key_never_shown, assert_own_errors_unwrapped, barge_in,
                              barge_in_before_any_text, check_tts_interface, fail_mid_utterance,
                              hang_up_mid_utterance, miss_the_first_audio_deadline, one_good_call_one_failing,
                              port_nobody_listens_on, refused_at_entry, say, speak_as_the_llm_writes)

from offhook.audio import ulaw_level_db
from offhook.providers import elevenlabs_protocol as proto
from offhook.providers.elevenlabs_tts import (ElevenLabsAuthError, ElevenLabsConfigError,
                                              ElevenLabsConnectionError, ElevenLabsProtocolError,
                                              ElevenLabsServiceError, ElevenLabsTimeout, ElevenLabsTTS)
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile

pytestmark = pytest.mark.timeout(30)

PROFILE = LatencyProfile(first_s=0.2, gap_s=0.05)
TEXT = "Sure, I can help with that. What day works for you?"


mock_clock = provider_helpers.mock_clock(autojump=0.01)


def client(emu, **kw) -> ElevenLabsTTS:
    kw.setdefault("api_key", emu.api_key)
    return ElevenLabsTTS(base_url=emu.base_url, voice_id="voice-1", **kw)


def spoken(chunks) -> str:
    return "".join(c for ch in chunks for c, _, _ in (ch.alignment or ()))


# ---------------------------------------------------------------- configuration
def test_missing_key_is_a_clear_error_at_construction(monkeypatch):
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    with pytest.raises(ElevenLabsConfigError, match="ELEVENLABS_API_KEY"):
        ElevenLabsTTS()
    with pytest.raises(ElevenLabsConfigError, match="ELEVENLABS_API_KEY"):
        ElevenLabsTTS(api_key="  ")


def test_environment_configures_endpoint_voice_and_model(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_secret_123")
    monkeypatch.setenv("ELEVENLABS_BASE_URL", "https://proxy.example:8443/el")
    monkeypatch.setenv("ELEVENLABS_VOICE_ID", "v42")
    monkeypatch.setenv("ELEVENLABS_MODEL_ID", "eleven_turbo_v2_5")
    tts = ElevenLabsTTS()
    assert tts.url == ("wss://proxy.example:8443/el/v1/text-to-speech/v42/multi-stream-input"
                       "?model_id=eleven_turbo_v2_5&output_format=ulaw_8000&sync_alignment=true")
    assert "sk_secret_123" not in repr(tts) and "sk_secret_123" not in str(vars(tts))
    monkeypatch.delenv("ELEVENLABS_BASE_URL")
    assert ElevenLabsTTS().url.startswith("wss://api.elevenlabs.io/v1/text-to-speech/v42/")
    with pytest.raises(ElevenLabsConfigError):
        ElevenLabsTTS(base_url="api.elevenlabs.io")
    with pytest.raises(ElevenLabsConfigError, match="voice_settings"):
        ElevenLabsTTS(voice_settings={"stability": "very"})
    with pytest.raises(ElevenLabsConfigError):
        ElevenLabsTTS(chunk_length_schedule=[10])


@mock_clock
async def test_implements_the_tts_interface():
    async with elevenlabs_emulator() as emu:
        await check_tts_interface(client(emu), "elevenlabs")


# ---------------------------------------------------------------- the happy path
@mock_clock
async def test_one_utterance_wire_shapes_audio_and_alignment():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        tts = client(emu, voice_settings={"stability": 0.4, "similarity_boost": 0.9, "speed": 1.1})
        async with tts.session() as session:
            utt, chunks, t0 = await say(session, "Sure, ", "I can help with that. ", "What day works for you?")
        conn = emu.connections[0]
        # handshake: path, query, auth header
        assert conn.voice_id == "voice-1"
        assert conn.query == {"model_id": "eleven_flash_v2_5", "output_format": "ulaw_8000", "sync_alignment": "true"}
        assert conn.headers["xi-api-key"] == emu.api_key
        # messages, in order
        cid = utt.context_id
        assert [m for _, m in conn.received] == [
            {"text": " ", "voice_settings": {"stability": 0.4, "similarity_boost": 0.9, "speed": 1.1},
             "generation_config": {"chunk_length_schedule": [50, 120, 160, 250]}, "context_id": cid},
            {"text": "Sure, ", "context_id": cid, "flush": True},          # first clause: generate now
            {"text": "I can help with that. ", "context_id": cid, "flush": True},  # sentence end
            {"text": "What day works for you?", "context_id": cid, "flush": True},
            {"context_id": cid, "flush": True},
            {"context_id": cid, "close_context": True},
            {"close_socket": True},
        ]
        assert conn.close_code == 1000
        ctx = emu.context(cid)
        # audio: exactly the bytes the service sent, in order, declared μ-law 8 kHz
        assert b"".join(c.audio for c in chunks) == bytes(ctx.audio)
        assert len(ctx.audio) == len(TEXT) * 520  # 65 ms per character
        # alignment: concatenates to the text, contiguous, on the utterance's clock, inside each chunk
        assert spoken(chunks) == TEXT
        pos = 0.0
        expected_start = 0.0
        for chunk in chunks:
            for ch, start, end in chunk.alignment:
                assert (start, end) == (expected_start, expected_start + 65)
                assert pos <= start and end <= pos + len(chunk.audio) / 8
                expected_start = end
            pos += len(chunk.audio) / 8
        # the audio is where the alignment says: letters loud, spaces near silence
        audio = b"".join(c.audio for c in chunks)
        pieces = [p for c in chunks for p in c.alignment]
        loud = [ulaw_level_db(audio[int(s * 8):int(e * 8)]) for ch, s, e in pieces if ch.isalpha()]
        quiet = [ulaw_level_db(audio[int(s * 8):int(e * 8)]) for ch, s, e in pieces if ch == " "]
        assert min(loud) > max(quiet) + 30
        # usage and latency
        assert utt.characters == len(TEXT) == session.characters
        assert utt.first_audio_latency == pytest.approx(PROFILE.first_s)
        assert ctx.first_text_at == t0


@mock_clock
async def test_text_is_streamed_as_it_arrives_and_audio_starts_before_the_text_ends():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            async with session.utterance() as utt:
                t0, got = await speak_as_the_llm_writes(utt, ["Let me check ", "the calendar ", "for Tuesday. ",
                                                              "Yes, ten works."])
        ctx = emu.context(utt.context_id)
        # each clause reached the service when the LLM produced it, not at the end
        assert [round(t - t0, 3) for t, m in emu.connections[0].received if m.get("text", "").strip()] == \
            [0.0, 0.5, 1.0, 1.5]
        assert got[0][0] == pytest.approx(0.2)  # first audio 200 ms after the first clause
        assert b"".join(a for _, a in got) == bytes(ctx.audio)
        assert ctx.spoken == "Let me check the calendar for Tuesday. Yes, ten works."
        # "the calendar " has no sentence end and was below the 120-char schedule: it waited for
        # the sentence-end flush that came with "for Tuesday. "
        assert [m.get("flush", False) for _, m in emu.connections[0].received if m.get("text", "").strip()] == \
            [True, False, True, True]


@mock_clock
async def test_two_utterances_share_one_warm_connection():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            u1, c1, _ = await say(session, "Hello there. ")
            u2, c2, t2 = await say(session, "How can I help?")
        assert len(emu.connections) == 1 and session.connections == 1
        assert u1.context_id != u2.context_id
        assert spoken(c1) == "Hello there. " and spoken(c2) == "How can I help?"
        assert b"".join(c.audio for c in c2) == bytes(emu.context(u2.context_id).audio)
        assert c2[0].alignment[0][1] == 0.0  # the second utterance has its own clock
        assert u2.first_audio_latency == pytest.approx(0.2)
        assert (u1.characters, u2.characters, session.characters) == (13, 15, 28)


# ---------------------------------------------------------------- barge-in
@mock_clock
async def test_barge_in_while_generating_closes_fast_and_no_stale_audio_leaks():
    """Barge-in after two chunks of a flushed sentence. ElevenLabs documents that a context set to
    flush keeps flushing after close_context, so its audio keeps coming: the client must drop it
    and the next turn, on the same connection, must hear only its own audio."""
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            utt, heard, barge_at = await barge_in(session, TEXT, flush=False)
            ctx = emu.context(utt.context_id)
            await emu.wait_until(lambda: ctx.final_at is not None)
            assert ctx.closed_at - barge_at <= 0.100
            assert ctx.close_kind == "graceful" and ctx.spoken == TEXT
            stale = ctx.chunks_after_close
            assert stale == ctx.chunks_sent - 2 > 0
            u2, c2, _ = await say(session, "Okay, go ahead.")
        assert len(emu.connections) == 1
        assert spoken(heard) == TEXT[:10]
        assert spoken(c2) == "Okay, go ahead."
        assert b"".join(c.audio for c in c2) == bytes(emu.context(u2.context_id).audio)
        assert session.stale_chunks_dropped == stale
        assert utt.characters == len(TEXT)  # usage counts what was sent, spoken or not


@mock_clock
async def test_barge_in_between_clauses_stops_the_context_at_once():
    """The first clause was spoken; the second is still buffered at the service (no sentence end,
    under the chunk schedule) when the caller barges in: it is never synthesised."""
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            heard = []
            with trio.CancelScope() as turn:
                async with session.utterance() as utt:
                    await utt.send_text("Sure, ")
                    await utt.send_text("I can help with that")
                    async for chunk in utt:
                        heard.append(chunk)
                        if spoken(heard) == "Sure, ":
                            barge_at = trio.current_time()
                            turn.cancel()
            ctx = emu.context(utt.context_id)
            await emu.wait_until(lambda: ctx.final_at is not None)
            u2, c2, _ = await say(session, "Yes?")
        assert ctx.close_kind == "abrupt" and ctx.closed_at - barge_at <= 0.100
        assert ctx.spoken == "Sure, " and ctx.chunks_after_close == 0
        assert session.stale_chunks_dropped == 0 and spoken(c2) == "Yes?"


@mock_clock
async def test_rapid_barge_ins_never_exceed_the_services_context_limit():
    """Five barge-ins during long flushed sentences leave five contexts generating on the service
    (which allows 5); the sixth turn moves to a fresh connection instead of getting an error."""
    async with elevenlabs_emulator(profile=LatencyProfile(first_s=0.2, gap_s=0.2)) as emu:
        async with client(emu).session() as session:
            for _ in range(5):
                with trio.CancelScope() as turn:
                    async with session.utterance() as utt:
                        await utt.send_text(TEXT)
                        async for _chunk in utt:
                            turn.cancel()
            assert sum(ctx.live for ctx in emu.contexts) == 5
            _, chunks, _ = await say(session, "Sorry, go on.")
        assert spoken(chunks) == "Sorry, go on."
        assert session.connections == 2
        assert not any(kind == "error" for c in emu.connections for _, kind, _ in c.sent)


@mock_clock
async def test_barge_in_before_any_text_costs_nothing():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu).session() as session:
            utt = await barge_in_before_any_text(session)
            _, c2, _ = await say(session, "Hi.")
        assert utt.characters == 0 and spoken(c2) == "Hi."
        assert emu.context(utt.context_id).chunks_sent == 0


# ---------------------------------------------------------------- faults
@pytest.mark.parametrize("kind,error,message", [
    ("error", ElevenLabsServiceError, "ElevenLabs error: emulated fault"),
    ("close", ElevenLabsConnectionError, "closed the connection: 1011"),
    ("malformed", ElevenLabsProtocolError, "malformed message"),
])
@mock_clock
async def test_fault_mid_stream_raises_tts_error_when_it_happens(kind, error, message):
    async with elevenlabs_emulator(profile=PROFILE, faults=FaultPlan([Fault(kind, after_s=0.32)])) as emu:
        async with client(emu).session() as session:
            heard, failed_at = await fail_mid_utterance(session, error, message, TEXT)
            # the next turn reconnects and works
            _, c2, _ = await say(session, "Sorry about that.")
        assert failed_at == pytest.approx(0.32)
        assert len(heard) == 3  # chunks at 0.20, 0.25, 0.30 were delivered, nothing lost
        assert spoken(c2) == "Sorry about that."
        assert len(emu.connections) == 2 and session.connections == 2


@pytest.mark.parametrize("fault", [Fault("hang", after_s=0.32), Fault("drip", after_s=0.32, drip_s=5.0)])
@mock_clock
async def test_hang_or_drip_after_flush_raises_after_the_stall_timeout(fault):
    async with elevenlabs_emulator(profile=PROFILE, faults=FaultPlan([fault])) as emu:
        async with client(emu, stall_timeout=2.0).session() as session:
            with pytest.raises(ElevenLabsTimeout, match="stalled"):
                _ = await say(session, TEXT)
            failed_at = trio.current_time()
            _, c2, _ = await say(session, "Still there?")
        last_audio = max(t for t, kind, _ in emu.connections[0].sent if kind == "audio")
        assert failed_at == pytest.approx(last_audio + 2.0)
        assert last_audio < 0.4  # the fault hit at 0.32 s
        assert spoken(c2) == "Still there?" and len(emu.connections) == 2


@mock_clock
async def test_slow_drip_within_the_stall_timeout_is_late_but_complete():
    async with elevenlabs_emulator(profile=PROFILE, faults=FaultPlan([Fault("drip", after_s=0.0, drip_s=1.0)])) as emu:
        async with client(emu, stall_timeout=2.0).session() as session:
            utt, chunks, t0 = await say(session, "One two three.")
        assert spoken(chunks) == "One two three."
        assert utt.first_audio_latency == pytest.approx(1.0)  # a slow first chunk, too
        assert trio.current_time() - t0 >= 3.0


@mock_clock
async def test_slow_first_chunk_breaches_the_first_audio_deadline():
    async with elevenlabs_emulator(profile=LatencyProfile(first_s=2.5, gap_s=0.05)) as emu:
        tts = client(emu, first_audio_timeout=1.0)
        async with tts.session() as session:
            utt, t0 = await miss_the_first_audio_deadline(session, ElevenLabsTimeout,
                                                          "no audio from ElevenLabs within 1 s", "Let me see.", 1.0)
            ctx = emu.context(utt.context_id)
            await emu.wait_until(lambda: ctx.closed_at is not None)
            assert ctx.closed_at - t0 == pytest.approx(1.0)  # abandoned at once
            # the connection was not at fault: the next turn uses it (slow, but complete without a deadline)
            tts.first_audio_timeout, tts.stall_timeout = None, 5.0
            u2, c2, _ = await say(session, "Okay.")
        assert len(emu.connections) == 1
        assert spoken(c2) == "Okay." and u2.first_audio_latency == pytest.approx(2.5)


@mock_clock
async def test_a_failing_call_does_not_disturb_another():
    async with elevenlabs_emulator(profile=PROFILE, faults=FaultPlan([None, Fault("close", after_s=0.1)])) as emu:
        results = await one_good_call_one_failing(client(emu), TEXT, lambda said: spoken(said.chunks))
        assert results["good"] == TEXT
        assert isinstance(results["bad"], ElevenLabsConnectionError)


# ---------------------------------------------------------------- auth
@mock_clock
async def test_wrong_key_is_an_auth_error_and_final_for_the_session(caplog):
    caplog.set_level(logging.DEBUG)
    async with elevenlabs_emulator(api_key="the-right-key") as emu:
        tts = client(emu, api_key="sk_wrong_key_9f8e")
        async with tts.session() as session:
            with pytest.raises(ElevenLabsAuthError, match="Invalid API key") as first:
                _ = await say(session, "Hello.")
            second = await refused_at_entry(session.utterance(), ElevenLabsAuthError)
        assert emu.connections[0].close_code == 1008
        assert len(emu.connections) == 1  # no futile reconnects
    assert_key_never_shown("sk_wrong_key_9f8e", caplog.text, str(first.value), str(second), repr(tts))


@mock_clock
async def test_key_rejected_at_the_handshake_fails_session_entry():
    async with elevenlabs_emulator(auth="handshake") as emu:
        await refused_at_entry(client(emu, api_key="nope").session(), ElevenLabsAuthError, "HTTP 401")
        assert emu.rejected and emu.rejected[0][1] == 401


@mock_clock
async def test_emulator_auth_by_first_message_or_not_at_all():
    """The service also takes the key in the first message; without any key it refuses."""
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        url = proto.stream_url(emu.base_url, "v1")
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message('{"text": " ", "context_id": "a", "xi_api_key": "%s"}' % emu.api_key)
            await ws.send_message(proto.send_text("a", "Hi.", flush=True))
            msg = proto.parse_server_message(await ws.get_message())
            assert msg.context_id == "a" and len(msg.audio) == 3 * 520
        async with trio_websocket.open_websocket_url(url) as ws:
            await ws.send_message(proto.init_context("a"))
            msg = proto.parse_server_message(await ws.get_message())
            assert msg == proto.ServerError("Invalid API key", "invalid_api_key", 1008)
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1008


# ---------------------------------------------------------------- idle, cancellation
@mock_clock
async def test_keepalive_holds_an_idle_connection_open():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu, keepalive_interval=10.0).session() as session:
            await trio.sleep(65)  # caller on hold; the service closes sockets idle for 20 s
            _, chunks, _ = await say(session, "Thanks for holding.")
        conn = emu.connections[0]
        keepalives = [t for t, m in conn.received if m.get("text") == "" and "context_id" in m]
        assert keepalives == pytest.approx([10.0, 20.0, 30.0, 40.0, 50.0, 60.0], abs=1e-6)
        assert len(emu.connections) == 1 and spoken(chunks) == "Thanks for holding."


@mock_clock
async def test_without_keepalive_the_idle_socket_is_closed_and_the_next_turn_reconnects():
    async with elevenlabs_emulator(profile=PROFILE) as emu:
        async with client(emu, keepalive_interval=None).session() as session:
            await trio.sleep(25)
            _, chunks, _ = await say(session, "Hello again.")
        assert emu.connections[0].close_code == 1008 and emu.connections[0].closed_at == pytest.approx(20.0)
        assert len(emu.connections) == 2 and spoken(chunks) == "Hello again."


@mock_clock
async def test_cancelling_the_session_closes_the_socket_promptly():
    async with elevenlabs_emulator(profile=LatencyProfile(first_s=0.2, gap_s=0.5)) as emu:
        await hang_up_mid_utterance(emu, client(emu), TEXT)


@mock_clock
async def test_errors_raised_inside_the_session_come_out_unwrapped():
    async with elevenlabs_emulator() as emu:
        await assert_own_errors_unwrapped(client(emu).session())


@mock_clock
async def test_connection_refused_is_a_tts_error():
    port = await port_nobody_listens_on(elevenlabs_emulator)
    await refused_at_entry(ElevenLabsTTS(api_key="k", base_url=f"http://127.0.0.1:{port}").session(),
                           ElevenLabsConnectionError, "cannot connect")
