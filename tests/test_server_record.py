"""The edge's side of the call-record and recording contracts, on the real server over loopback:
the record is completed before the call-ended hooks see it, and a sampled call's recorder gets every
caller frame, every agent frame with its play time, and the moment playback was cleared."""
import time

import pytest
import trio

from edge_helpers import FRAME, raw_call, run, running_server
from offhook.audio import OutboundPath
from offhook.observe.record import CallRecord, EndedBy, EndReason
from offhook.server.echo import EchoHandler, beep


class TapeRecorder:
    """Stands in for observe.recording.CallRecorder: keeps what the edge hands it."""

    def __init__(self):
        self.caller_frames: list[tuple[bytes, float]] = []
        self.agent_frames: list[tuple[bytes, float]] = []
        self.clears: list[float] = []

    def caller(self, frame: bytes, t: float) -> None:
        self.caller_frames.append((frame, t))

    def agent(self, frame: bytes, play_at: float) -> None:
        self.agent_frames.append((frame, play_at))

    def clear(self, t: float) -> None:
        self.clears.append(t)


class RecordingEcho(EchoHandler):
    """The echo handler, plus what the agent does for records: it creates the record when created."""

    def __init__(self, call, **kw):
        super().__init__(call, **kw)
        call.record = CallRecord(call.call_sid, stream_sid=call.stream_sid, t0=call.t0, started_at=time.time())


def test_record_is_complete_when_the_call_ended_hooks_run():
    seen = []

    async def main():
        async with running_server(validate_signatures=False, handler_factory=RecordingEcho) as app:
            # what a hook sees at the moment it runs, not after the fact
            app.call_ended_hooks.append(lambda call: seen.append(
                (call.record.complete, call.record.end_reason, call.record.ended_by, call.record.ended_at,
                 sorted((e.kind, e.detail) for e in call.record.events))))
            before = time.time()
            await raw_call(app, ["{", "{", '{"event":"huh"}', b"\x00"], then_good_frames=10, call_sid="CArec")
            after = time.time()
        (complete, reason, by, ended_at, events), = seen
        assert complete and reason is EndReason.CALLER_HANGUP and by is EndedBy.CALLER
        assert before <= ended_at <= after
        assert events == [("bad_message", "binary_frame:1"), ("bad_message", "malformed_json:2"),
                          ("bad_message", "unknown_event:1")]
    run(main)


def test_calls_without_a_record_or_recorder_still_run():
    async def main():
        async with running_server(validate_signatures=False) as app:
            call = await raw_call(app, [], then_good_frames=5, call_sid="CAplain")
        assert call.record is None and call.end_reason == "caller_hangup" and call.frames_in == 5
    run(main)


def test_recorder_gets_caller_frames_agent_frames_with_play_times_and_the_clear():
    tape = TapeRecorder()
    greeting = beep(1000)  # 50 frames

    class Sampled(RecordingEcho):
        def __init__(self, call):
            super().__init__(call, greeting=greeting)
            call.recorder = tape  # as the observer's call-started hook does for a sampled call

        async def on_audio(self, call, frame):
            # barge in on the greeting after 15 caller frames (0.3 s)
            if call.frames_in == 15 and call.pacer.playing():
                await call.pacer.clear()

    async def main():
        async with running_server(validate_signatures=False, handler_factory=Sampled) as app:
            call = await raw_call(app, [], then_good_frames=40, call_sid="CAtape")
        # every in-order caller frame, on the call clock, in order
        assert [f for f, _ in tape.caller_frames] == [FRAME] * 40
        times = [t for _, t in tape.caller_frames]
        assert times == sorted(times) and 0 <= times[0] < times[-1] < call.events[-1][0] + 1e-9
        # agent frames: exactly what went on the socket, each with its scheduled play time 20 ms apart
        assert len(tape.agent_frames) == call.pacer.frames_sent
        sent = call.pacer.utterances[1]
        assert [p for _, p in tape.agent_frames] == pytest.approx([s - call.t0 for s in sent.play_starts])
        gaps = [b - a for (_, a), (_, b) in zip(tape.agent_frames, tape.agent_frames[1:])]
        assert gaps == pytest.approx([0.02] * len(gaps))
        out = OutboundPath(src_rate=8000, src_encoding="ulaw")
        greeting_frames = out.process(greeting) + out.flush()
        assert [f for f, _ in tape.agent_frames] == greeting_frames[: len(tape.agent_frames)]
        # the clear: once, after the 15th caller frame, and audio scheduled after it was cut
        assert len(tape.clears) == 1
        (t_clear,) = tape.clears
        assert times[14] <= t_clear <= times[15]
        assert len(tape.agent_frames) < 50 and tape.agent_frames[-1][1] > t_clear  # the lead was cut off
    run(main)
