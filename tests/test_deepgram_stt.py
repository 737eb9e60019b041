"""DeepgramSTT (our real client) against the Deepgram emulator over real loopback WebSockets.

The simulated caller's lines go on a ScriptBoard; audio goes out in 20 ms frames in real time, under
MockClock(autojump_threshold=0.005): the emulator's latencies are exact, so event times are
asserted against the board's times exactly, and "12 s on hold" is instant.
"""
import logging
import random

import pytest
import trio

from provider_helpers import (assert_closed_promptly, assert_key_never_shown, assert_own_errors_unwrapped, mock_clock,
                              refused_at_entry)

from offhook.providers import deepgram_protocol as proto
from offhook.providers.base import Final, Partial, SpeechStarted, STTError, STTProvider, STTStream, UtteranceEnd
from offhook.providers.deepgram_stt import (DeepgramAuthError, DeepgramConfigError, DeepgramConnectionError,
                                            DeepgramProtocolError, DeepgramRequestError, DeepgramServiceError,
                                            DeepgramSTT, DeepgramTimeout)
from offhook.sim.board import Line, ScriptBoard
from offhook.sim.emulators.deepgram import deepgram_emulator, line_words
from offhook.sim.emulators.plan import Fault, FaultPlan, LatencyProfile

pytestmark = pytest.mark.timeout(30)

SID = "CA0123"
FRAME = 160  # 20 ms of μ-law 8 kHz
HELLO = (0.3, 1.2, "Hello, this is Maria.")
BOOK = (1.8, 3.4, "I would like to book a haircut.")



def board_with(*lines) -> ScriptBoard:
    board = ScriptBoard()
    for start, end, text in lines:
        board.say(SID, start, end, text)
    return board


def client(emu, **kw) -> DeepgramSTT:
    kw.setdefault("api_key", emu.api_key)
    return DeepgramSTT(base_url=emu.base_url, **kw)


class Call:
    """A stream fed like the media socket feeds it (one 20 ms frame every 20 ms, each frame
    sent once it has been 'spoken'), with every event and its arrival time recorded."""

    def __init__(self, stream, t0: float, seed: int = 1) -> None:
        self.stream, self.t0 = stream, t0
        self.events: list[tuple[float, object]] = []
        self.error: BaseException | None = None
        self.sent = 0
        self.rng = random.Random(seed)  # line noise: never two equal frames

    async def read(self) -> None:
        try:
            async for ev in self.stream:
                self.events.append((round(trio.current_time() - self.t0, 6), ev))
        except STTError as exc:
            self.error = exc
            self.error_at = trio.current_time() - self.t0

    async def talk(self, seconds: float, frame_s: float = 0.02, bytes_per_s: int = 8000) -> None:
        """Frames of frame_s (20 ms as from Twilio; tests of faults use 100 ms to run faster)."""
        n = round(frame_s * bytes_per_s)
        for _ in range(round(seconds / frame_s)):
            await trio.sleep_until(self.t0 + self.sent / bytes_per_s + frame_s)
            await self.stream.send(self.rng.randbytes(n))
            self.sent += n

    def of(self, kind):
        return [(t, e) for t, e in self.events if isinstance(e, kind)]

    def finals(self):
        return [e for _, e in self.of(Final)]

    def text(self) -> str:
        return " ".join(f.text for f in self.finals() if f.text)


async def run_call(stt, seconds: float, *, tag=SID, during=None, frame_s=0.02, **kw) -> Call:
    """A whole call; an STTError from send() comes out as itself, not in an exception group."""
    try:
        async with trio.open_nursery() as outer:
            async with stt.stream(tag=tag, **kw) as stream:
                call = Call(stream, trio.current_time())
                outer.start_soon(call.read)
                if during is not None:
                    outer.start_soon(during, call)
                await call.talk(seconds, frame_s=frame_s)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return call


def words_of(start, end, text):
    return line_words(Line(start, end, text))


# ---------------------------------------------------------------- configuration
def test_missing_key_and_bad_options_are_clear_errors(monkeypatch):
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(DeepgramConfigError, match="DEEPGRAM_API_KEY"):
        DeepgramSTT()
    with pytest.raises(DeepgramConfigError, match="utterance_end_ms"):
        DeepgramSTT(api_key="k", interim_results=False)
    with pytest.raises(DeepgramConfigError, match="ws"):
        DeepgramSTT(api_key="k", base_url="api.deepgram.com")
    with pytest.raises(DeepgramConfigError, match="mulaw audio must be 8000"):
        DeepgramSTT(api_key="k").options(sample_rate=16000)


def test_environment_configures_endpoint_and_model_and_the_key_stays_hidden(monkeypatch):
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg_secret_4242")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", "wss://proxy.example:9443/dg")
    monkeypatch.setenv("DEEPGRAM_MODEL", "nova-2-phonecall")
    stt = DeepgramSTT()
    assert stt.base_url == "wss://proxy.example:9443/dg" and stt.model == "nova-2-phonecall"
    url = proto.listen_url(stt.base_url, stt.options(tag="CA9"))
    assert url.startswith("wss://proxy.example:9443/dg/v1/listen?") and "model=nova-2-phonecall" in url
    assert "dg_secret_4242" not in repr(stt) and "dg_secret_4242" not in str(vars(stt))
    monkeypatch.delenv("DEEPGRAM_BASE_URL")
    assert DeepgramSTT().base_url == "wss://api.deepgram.com"


# ---------------------------------------------------------------- the happy path
@mock_clock
async def test_handshake_carries_the_documented_query_and_auth_header():
    async with deepgram_emulator(board=board_with(HELLO)) as emu:
        stt = client(emu)
        provider: STTProvider = stt
        assert provider.name == "deepgram"
        async with stt.stream(tag=SID) as stream:
            assert isinstance(stream, STTStream)
        conn = emu.connections[0]
        assert conn.path == ("/v1/listen?channels=1&encoding=mulaw&endpointing=300&interim_results=true"
                             "&model=nova-3&punctuate=true&sample_rate=8000&smart_format=true&tag=CA0123"
                             "&utterance_end_ms=1000&vad_events=true")
        assert conn.headers["authorization"] == f"Token {emu.api_key}"
        assert len(conn.headers["x-deepgram-session-id"]) == 36
        # leaving the block: CloseStream, the service's Metadata, close 1000
        assert conn.controls("CloseStream") and conn.messages("Metadata") and conn.close_code == 1000


@mock_clock
async def test_transcripts_and_their_timing_follow_the_board():
    async with deepgram_emulator(board=board_with(HELLO, BOOK)) as emu:
        call = await run_call(client(emu), 5.0)
    hello, book = words_of(*HELLO), words_of(*BOOK)
    # SpeechStarted as the audio reaches each line, at the line's start
    assert call.of(SpeechStarted) == [(0.3, SpeechStarted(0.3)), (1.8, SpeechStarted(1.8))]
    # the first partial 150 ms after speech start, then every 250 ms of audio, growing
    partials = call.of(Partial)
    assert partials[0] == (0.46, Partial("Hello,", partials[0][1].confidence))  # first frame past 0.45
    assert [t for t, _ in partials if t < 1.3] == [0.46, 0.72, 0.98, 1.24]
    assert partials[2][1].text == "Hello, this is Maria."
    # finals: the lines' text, speech_final 300 ms (endpointing) after the last word's end
    (t1, f1), (t2, f2) = call.of(Final)
    assert (f1.text, f2.text) == (HELLO[2], BOOK[2]) and f1.speech_final and f2.speech_final
    assert t1 == pytest.approx(hello[-1].end + 0.3, abs=0.02) and t1 >= hello[-1].end + 0.3
    assert t2 == pytest.approx(book[-1].end + 0.3, abs=0.02)
    assert [(w.text, w.start, w.end) for w in f2.words] == \
        [(w.punctuated, pytest.approx(w.start, abs=1e-3), pytest.approx(w.end, abs=1e-3)) for w in book]
    assert all(0.9 <= w.confidence <= 1 for w in f2.words) and 0.9 <= f2.confidence <= 1
    assert f1.end == pytest.approx(t1) and f2.start == pytest.approx(f1.end)
    # UtteranceEnd 1000 ms after the last final word, at that word's end
    assert call.of(UtteranceEnd) == [(pytest.approx(book[-1].end + 1.0, abs=0.02),
                                      UtteranceEnd(pytest.approx(book[-1].end, abs=1e-3)))]


@mock_clock
async def test_a_long_turn_comes_in_several_finals_and_only_the_last_is_speech_final():
    long_line = (0.2, 7.0, "So I was wondering whether you could fit me in on Thursday afternoon "
                           "or maybe Friday morning for a colour and a cut")
    async with deepgram_emulator(board=board_with(long_line)) as emu:
        call = await run_call(client(emu), 8.0, frame_s=0.1)
    finals = call.finals()
    assert len(finals) >= 3
    assert [f.speech_final for f in finals] == [False] * (len(finals) - 1) + [True]
    assert call.text() == long_line[2]  # nothing lost or doubled at the segment cuts
    assert all(a.end == pytest.approx(b.start) for a, b in zip(finals, finals[1:]))


@mock_clock
async def test_finalize_forces_the_pending_words_out_at_once():
    line = (0.5, 2.5, "I would like to book a haircut")

    async def finalize_at_1_5(call):
        await trio.sleep_until(call.t0 + 1.5)
        await call.stream.finalize()

    async with deepgram_emulator(board=board_with(line)) as emu:
        call = await run_call(client(emu), 4.0, during=finalize_at_1_5)
    (t1, f1), (t2, f2) = call.of(Final)
    assert t1 == pytest.approx(1.5, abs=0.021) and not f1.speech_final
    heard = [w.punctuated for w in words_of(*line) if w.start < t1]
    assert f1.text == " ".join(heard) and 0 < len(heard) < 7
    assert f2.speech_final and call.text() == line[2]
    assert emu.connections[0].messages("Results", from_finalize=True)


@mock_clock
async def test_linear16_at_16k_keeps_the_same_timeline():
    async with deepgram_emulator(board=board_with(HELLO)) as emu:
        stt = client(emu)
        async with trio.open_nursery() as outer:
            async with stt.stream(tag=SID, encoding="linear16", sample_rate=16000) as stream:
                call = Call(stream, trio.current_time())
                outer.start_soon(call.read)
                await call.talk(2.0, bytes_per_s=32000)
        assert emu.connections[0].query["encoding"] == "linear16"
    assert call.of(SpeechStarted)[0] == (0.3, SpeechStarted(0.3))
    assert call.text() == HELLO[2] and stream.audio_seconds == pytest.approx(2.0)


# ---------------------------------------------------------------- keep-alive and usage
@mock_clock
async def test_keepalive_holds_the_socket_open_while_the_caller_is_on_hold():
    late = (13.3, 14.2, "Are you still there?")
    async with deepgram_emulator(board=board_with(HELLO, late)) as emu:
        async with trio.open_nursery() as outer:
            async with client(emu).stream(tag=SID) as stream:
                call = Call(stream, trio.current_time())
                outer.start_soon(call.read)
                await call.talk(1.0)
                await trio.sleep(12.0)  # hold: no audio for 12 s; the service closes after 10 s
                call.sent += 12 * 8000
                await call.talk(2.0)
    conn = emu.connections[0]
    assert conn.controls("KeepAlive") == pytest.approx([5.0, 9.0, 13.0], abs=1e-6)
    assert len(emu.connections) == 1 and stream.reconnects == 0
    assert call.text() == "Hello, this is Maria."  # audio stops at 3 s of stream audio
    assert conn.audio_seconds == pytest.approx(3.0)


@mock_clock
async def test_emulator_closes_an_idle_socket_with_net_0001():
    import trio_websocket
    async with deepgram_emulator() as emu:
        url = proto.listen_url(emu.base_url, proto.ListenOptions())
        async with trio_websocket.open_websocket_url(
                url, extra_headers=[(b"authorization", f"Token {emu.api_key}".encode())]) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
        assert closed.value.reason.code == 1011 and closed.value.reason.reason.startswith("NET-0001")
        assert emu.connections[0].closed_at == pytest.approx(10.0)


@mock_clock
async def test_usage_counts_the_audio_sent_and_the_billed_metadata():
    async with deepgram_emulator(board=board_with(HELLO)) as emu:
        call = await run_call(client(emu), 2.5)
    stream = call.stream
    assert stream.audio_seconds == pytest.approx(2.5) == stream.call_audio_seconds
    assert stream.billed_seconds == pytest.approx(2.5)  # the Metadata's duration
    assert emu.connections[0].messages("Metadata")[0]["duration"] == pytest.approx(2.5)
    assert stream.replayed_seconds == 0 and stream.connections == 1


# ---------------------------------------------------------------- reconnect
@mock_clock
async def test_dropped_socket_mid_word_reconnects_and_no_word_is_lost():
    """The TCP connection drops at 2.5 s, in the middle of the second line: the words said across
    the drop come out in order and on the call's timeline."""
    async with deepgram_emulator(board=board_with(HELLO, BOOK), faults=FaultPlan([Fault("close", after_s=2.5)])) as emu:
        call = await run_call(client(emu), 5.0)
        first, second = emu.connections
    assert call.error is None and [f.text for f in call.finals()] == [HELLO[2], BOOK[2]]
    assert call.stream.reconnects == 1 and call.stream.connections == 2
    # the new connection started at the end of the last final (1.46 s) and was replayed from there
    f1, f2 = call.finals()
    assert second.offset == pytest.approx(f1.end)
    assert second.opened_at == pytest.approx(2.6, abs=0.01)  # 100 ms backoff
    assert [(w.start, w.end) for w in f2.words] == [(pytest.approx(w.start, abs=1e-3), pytest.approx(w.end, abs=1e-3))
                                                    for w in words_of(*BOOK)]
    # all the call's audio reached the service, some of it twice; billing counts what was sent
    # (the frame written as the peer dropped the TCP connection never arrived: it was replayed)
    assert 0 <= call.stream.audio_seconds - (first.audio_seconds + second.audio_seconds) <= 0.02 + 1e-6
    assert second.audio_seconds == pytest.approx(5.0 - f1.end)
    assert call.stream.audio_seconds - call.stream.replayed_seconds == pytest.approx(
        5.0 - (2.6 - 2.5) + 0.02, abs=0.05)  # frames from the drop to the reconnect went only once
    assert [t for t, e in call.of(SpeechStarted)] == [0.3, 1.8]  # the replay's repeat is not news


@pytest.mark.parametrize("fault", [Fault("hang", after_s=1.0), Fault("drip", after_s=1.0, drip_s=30.0)])
@mock_clock
async def test_a_hung_or_dripping_socket_is_detected_and_replaced_without_losing_audio(fault):
    async with deepgram_emulator(board=board_with(HELLO, BOOK), faults=FaultPlan([fault])) as emu:
        call = await run_call(client(emu, stall_timeout=4.0), 9.0, frame_s=0.1)
    assert call.error is None and call.text() == f"{HELLO[2]} {BOOK[2]}"
    # The last message came at 0.8 s (a partial; 100 ms frames here): the stall is 4 s after the
    # next frame (4 s: more than the 3 s the service may stay quiet between its empty finals).
    assert emu.connections[0].closed_at == pytest.approx(0.9 + 4.0, abs=1e-6)
    assert call.stream.reconnects == 1
    assert emu.connections[1].offset == 0.0  # nothing was final yet: all of it replayed


@mock_clock
async def test_a_server_error_mid_stream_reconnects():
    async with deepgram_emulator(board=board_with(HELLO, BOOK), faults=FaultPlan([Fault("error", after_s=2.0)])) as emu:
        call = await run_call(client(emu), 5.0, frame_s=0.1)
        assert emu.connections[0].messages("Error")[0]["code"] == "NET-0000"
        assert emu.connections[0].close_code == 1011
    assert call.error is None and call.text() == f"{HELLO[2]} {BOOK[2]}" and call.stream.reconnects == 1


# ---------------------------------------------------------------- faults that end the stream
@pytest.mark.parametrize("fault,error,match,at", [
    # bad audio: replaying it would fail again
    (Fault("error", after_s=1.0, message="DATA-0000 bad audio"), DeepgramRequestError, "DATA-0000", 1.0),
    (Fault("malformed", after_s=1.0), DeepgramProtocolError, "malformed", 1.0),
    # Every reconnect hits the same fault before a final comes: 1 + 3 attempts, with 0.1 + 0.2 +
    # 0.4 s of backoff between them. (The caller is silent: the service's empty finals every 3 s
    # would count as progress and reset the count.)
    (Fault("close", after_s=0.5), DeepgramConnectionError, "gave up after 3", 4 * 0.5 + 0.7),
    (Fault("error", after_s=0.5), DeepgramServiceError, "gave up after 3", 4 * 0.5 + 0.7),
    # stall_timeout (2 s) after the first unanswered audio: the first frame 100 ms into the call,
    # the replay at once on each new connection
    (Fault("hang", after_s=0.0), DeepgramTimeout, "stalled", 0.1 + 4 * 2.0 + 0.7),
])
@mock_clock
async def test_faults_surface_as_typed_errors_within_the_documented_time(fault, error, match, at):
    board = board_with(HELLO) if fault.after_s >= 1.0 else ScriptBoard()
    async with deepgram_emulator(board=board, faults=FaultPlan.always(fault)) as emu:
        stt = client(emu, stall_timeout=2.0)
        with pytest.raises(error, match=match):
            await run_call(stt, 15.0, frame_s=0.1)
    last = emu.connections[-1]
    assert last.closed_at == pytest.approx(at, abs=0.05)
    assert len(emu.connections) == (1 if not error.retryable else 4)


@mock_clock
async def test_the_error_reaches_the_reader_after_the_events_before_it_and_send_raises_too():
    async with deepgram_emulator(board=board_with(HELLO), faults=FaultPlan([Fault("malformed", after_s=1.5)])) as emu:
        async with trio.open_nursery() as outer:
            with pytest.raises(DeepgramProtocolError):
                async with client(emu).stream(tag=SID) as stream:
                    call = Call(stream, trio.current_time())
                    outer.start_soon(call.read)
                    await call.talk(3.0)
    assert isinstance(call.error, DeepgramProtocolError) and call.error_at == pytest.approx(1.5, abs=0.01)
    assert call.of(Final)[0][1].text == HELLO[2]  # delivered before the failure
    assert call.sent == 75 * FRAME  # send() raised with the first frame after the failure


@mock_clock
async def test_slow_drip_within_the_stall_timeout_is_late_but_complete():
    async with deepgram_emulator(board=board_with(HELLO), faults=FaultPlan([Fault("drip", after_s=0.0, drip_s=0.4)])) as emu:
        call = await run_call(client(emu), 4.0, frame_s=0.1)
    assert call.text() == HELLO[2] and call.stream.reconnects == 0
    times = [t for t, _ in call.events]
    assert all(b - a >= 0.4 - 1e-6 for a, b in zip(times, times[1:]))


@mock_clock
async def test_reconnect_refused_by_the_service_gives_up_with_a_connection_error():
    faults = FaultPlan([Fault("close", after_s=1.0)] + [Fault("error", after_s=0, status=503)] * 3)
    async with deepgram_emulator(board=board_with(HELLO), faults=faults) as emu:
        with pytest.raises(DeepgramConnectionError, match="HTTP 503.*gave up"):
            await run_call(client(emu), 5.0)
        assert [status for _, status, _ in emu.rejected] == [503, 503, 503]


# ---------------------------------------------------------------- auth, refusals
@mock_clock
async def test_wrong_key_fails_at_stream_entry_never_retried_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    async with deepgram_emulator() as emu:
        stt = client(emu, api_key="dg_wrong_key_77")
        failure = await refused_at_entry(stt.stream(tag=SID), DeepgramAuthError, "HTTP 401")
        assert [s for _, s, _ in emu.rejected] == [401] and not emu.connections
    assert isinstance(failure, STTError) and not failure.retryable
    assert_key_never_shown("dg_wrong_key_77", caplog.text, str(failure), repr(stt))


@mock_clock
async def test_emulator_accepts_the_subprotocol_form_of_auth_and_refuses_a_bad_query():
    import trio_websocket
    async with deepgram_emulator() as emu:
        url = proto.listen_url(emu.base_url, proto.ListenOptions())
        async with trio_websocket.open_websocket_url(url, subprotocols=["token", emu.api_key]) as ws:
            await ws.send_message(proto.close_stream())
            assert proto.parse_server_message(await ws.get_message()).__class__ is proto.Metadata
        bad = url.replace("interim_results=true", "interim_results=false")
        auth = [(b"authorization", f"Token {emu.api_key}".encode())]
        rejected = await refused_at_entry(trio_websocket.open_websocket_url(bad, extra_headers=auth),
                                          trio_websocket.ConnectionRejected)
        assert rejected.status_code == 400 and b"utterance_end_ms" in rejected.body


@mock_clock
async def test_refused_handshake_at_entry_is_a_connection_error():
    async with deepgram_emulator(faults=FaultPlan([Fault("error", after_s=0, status=429)])) as emu:
        await refused_at_entry(client(emu).stream(tag=SID), DeepgramConnectionError, "HTTP 429")
        port = emu.port
    await refused_at_entry(DeepgramSTT(api_key="k", base_url=f"ws://127.0.0.1:{port}").stream(),
                           DeepgramConnectionError, "cannot connect")


# ---------------------------------------------------------------- cancellation, isolation
@mock_clock
async def test_hanging_up_closes_the_socket_within_100_ms():
    async with deepgram_emulator(board=board_with(HELLO)) as emu:
        with trio.CancelScope() as call_scope:
            async with client(emu).stream(tag=SID) as stream:
                call = Call(stream, trio.current_time())
                await call.talk(1.0)
                hangup_at = trio.current_time()
                call_scope.cancel()  # the call's nursery is cancelled
                await trio.sleep(1)
        await assert_closed_promptly(emu, hangup_at)


@mock_clock
async def test_errors_raised_inside_the_stream_come_out_unwrapped():
    async with deepgram_emulator() as emu:
        await assert_own_errors_unwrapped(client(emu).stream(tag=SID))


@mock_clock
async def test_one_failing_call_does_not_disturb_another():
    board = board_with(HELLO)
    board.say("CA-other", *HELLO)
    async with deepgram_emulator(board=board, faults=FaultPlan([None, Fault("malformed", after_s=0.5)])) as emu:
        stt = client(emu)
        results = {}

        async def one(name, tag, delay):
            await trio.sleep(delay)
            try:
                results[name] = (await run_call(stt, 3.0, tag=tag)).text()
            except STTError as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "good", SID, 0)
            nursery.start_soon(one, "bad", "CA-other", 0.01)
    assert results["good"] == HELLO[2]
    assert isinstance(results["bad"], DeepgramProtocolError)


@mock_clock
async def test_a_separate_process_can_write_the_board_over_a_websocket():
    import trio_websocket
    board = ScriptBoard()
    async with deepgram_emulator(board=board) as emu:
        async with trio_websocket.open_websocket_url(f"{emu.base_url}/emulator/board") as ws:
            await ws.send_message('{"tag": "%s", "start": 0.3, "end": 1.2, "text": "%s"}' % (SID, HELLO[2]))
            await emu.wait_until(lambda: board.lines(SID))
            await ws.send_message('{"tag": "%s", "start": 2, "end": 1}' % SID)  # no text, ends before it starts
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1003
        call = await run_call(client(emu), 2.5, frame_s=0.1)
    assert board.lines(SID) == [Line(0.3, 1.2, HELLO[2])] and call.text() == HELLO[2]


@mock_clock
async def test_a_long_outage_keeps_only_max_buffer_s_of_audio_and_says_how_much_was_lost():
    """The socket drops at 1.0 s and the service refuses the first reconnect: 1.35 s without a
    connection. Only the last max_buffer_s (1 s) is replayed; what the caller said in it still
    comes out, on the call's timeline."""
    line = (1.8, 2.4, "Yes please.")
    faults = FaultPlan([Fault("close", after_s=1.0), Fault("error", after_s=0, status=503), None])
    async with deepgram_emulator(board=board_with(line), faults=faults) as emu:
        stt = client(emu, reconnect_backoff=0.45, max_buffer_s=1.0)
        call = await run_call(stt, 4.0, frame_s=0.1)
        second = emu.connections[1]
    assert call.error is None and call.text() == "Yes please."
    # backoff 0.45 s, refused, then 0.9 s: between two frames, so the buffer is exactly [1.3, 2.3]
    assert second.opened_at == pytest.approx(1.0 + 0.45 + 0.9, abs=0.01)
    assert call.stream.lost_seconds == pytest.approx(1.3)      # nothing was final: 2.3 s were kept
    assert call.stream.replayed_seconds == pytest.approx(1.0)
    # The emulator never heard that audio: it places the burst by the clock, to within a frame of
    # the caller's pacing (it ended at 2.35 s, the audio at 2.3 s), so the words' times are as close.
    assert second.offset == pytest.approx(1.3, abs=0.1)
    [final] = call.finals()
    assert [w.start for w in final.words] == [pytest.approx(w.start, abs=0.1) for w in words_of(*line)]
