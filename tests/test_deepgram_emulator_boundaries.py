"""The Deepgram emulator at the edges of its segments and connections, through our real client over
loopback under MockClock(autojump_threshold=0.005), as tests/test_deepgram_stt.py does:
- a word in progress when a segment (segment_s of audio) is finalised comes out exactly once, in
  the next segment, with its times;
- a connection opened mid-call is placed on the call's timeline correctly although the caller's
  line noise repeats every second (offhook.sim.voice.comfort_noise), so its first audio also
  matches audio heard one, two, ... seconds earlier.
"""
import pytest
import trio

from provider_helpers import mock_clock
from test_deepgram_stt import SID, board_with, client, words_of

from offhook.providers.base import Final, STTError
from offhook.sim.emulators.deepgram import deepgram_emulator
from offhook.sim.emulators.plan import Fault, FaultPlan
from offhook.sim.voice import comfort_noise

pytestmark = pytest.mark.timeout(30)

NOISE = comfort_noise()  # 50 frames: the same second of line noise over and over
FRAME_S = 0.02


class NoisyLine:
    """The caller's side of a call: the frame for call time t is the line noise at t (so it repeats
    every second); streams are fed from a call time on, one 20 ms frame every 20 ms, and every
    event is recorded with its arrival time on the call clock."""

    def __init__(self) -> None:
        self.t0 = trio.current_time()
        self.events: list[tuple[float, float, object]] = []  # (arrival, stream start, event)

    async def feed(self, stt, start: float, end: float) -> None:
        async with trio.open_nursery() as nursery:
            async with stt.stream(tag=SID) as stream:
                nursery.start_soon(self._read, stream, start)
                for i in range(round(start / FRAME_S), round(end / FRAME_S)):
                    await trio.sleep_until(self.t0 + (i + 1) * FRAME_S)
                    await stream.send(NOISE[i % len(NOISE)])
                self.stream = stream

    async def _read(self, stream, start: float) -> None:
        try:
            async for ev in stream:
                self.events.append((trio.current_time() - self.t0, start, ev))
        except STTError as exc:  # pragma: no cover - reported by the assertions on the events
            self.events.append((trio.current_time() - self.t0, start, exc))

    def finals(self):
        """(arrival, final, its words' times on the call's timeline) for finals with words."""
        return [(t, ev, [(w.start + start, w.end + start) for w in ev.words])
                for t, start, ev in self.events if isinstance(ev, Final) and ev.words]


def call_times(line):
    return [(pytest.approx(w.start, abs=1e-3), pytest.approx(w.end, abs=1e-3)) for w in words_of(*line)]


# ---------------------------------------------------------------- segment boundaries
@pytest.mark.parametrize("start", [1.7, 2.0, 2.2, 2.05])
@mock_clock
async def test_a_word_straddling_the_segment_cut_comes_out_once_with_its_times(start):
    """A line over the 3 s segment cut (default segment_s): one word is in progress at the cut
    (at 1.7 s 'open' runs 2.883-3.230 s, at 2.0 s 'you', at 2.2 s 'do'). It is not final yet, so it
    goes in the next segment, which starts where the first one ended."""
    line = (start, start + 1.6, "What time do you open?")
    [straddling] = [w for w in words_of(*line) if w.start < 3.0 < w.end]
    async with deepgram_emulator(board=board_with(line)) as emu:
        caller = NoisyLine()
        await caller.feed(client(emu), 0.0, 5.0)
    finals = [ev for _, _, ev in caller.events if isinstance(ev, Final)]
    words = [w for f in finals for w in f.words]
    assert " ".join(w.text for w in words) == line[2]
    assert [(w.start, w.end) for w in words] == call_times(line)
    [first, second] = [f for f in finals if f.words]
    assert not first.speech_final and second.speech_final
    assert second.words[0].text == straddling.punctuated and first.end == pytest.approx(second.start)
    assert first.end <= second.words[0].start + 1e-3   # the word lies in the segment that holds it


# ---------------------------------------------------------------- placing a new connection
HELLO = (0.3, 1.2, "Hello, this is Maria.")
ASK = (7.2, 8.4, "What time do you open?")


@mock_clock
async def test_a_restarted_stream_over_repeating_line_noise_gets_its_words_at_the_call_times():
    """The agent closes its stream at 5.3 s and opens a new one at 6.0 s (no replay): its first
    frame is the same noise as at 1.0, 2.0, ... 5.0 s. The emulator must place it at 6.0 s: the
    words come out on the call's timeline, and as soon as the endpoint after them."""
    async with deepgram_emulator(board=board_with(HELLO, ASK)) as emu:
        caller = NoisyLine()
        await caller.feed(client(emu), 0.0, 5.3)
        await trio.sleep_until(caller.t0 + 6.0)
        await caller.feed(client(emu), 6.0, 10.0)
        first, second = emu.connections
    assert second.offset == pytest.approx(6.0, abs=FRAME_S)
    (t1, f1, times1), (t2, f2, times2) = caller.finals()
    assert (f1.text, f2.text) == (HELLO[2], ASK[2])
    assert times1 == call_times(HELLO) and times2 == call_times(ASK)
    assert t2 == pytest.approx(ASK[1] + 0.3, abs=0.05)  # endpointing 300 ms after the last word


@mock_clock
async def test_a_reconnect_replaying_only_the_last_half_second_over_repeating_noise_is_placed_right():
    """The socket drops at 2.9 s; the client keeps only 0.5 s of audio (max_buffer_s), so its replay
    starts at 2.5 s, a second after the end of the last final (1.5 s), and its noise matches the
    noise at 0.5 s and 1.5 s too. The words said after the reconnect keep their call times."""
    line = (3.2, 4.0, "What time do you open?")
    async with deepgram_emulator(board=board_with(HELLO, line),
                                 faults=FaultPlan([Fault("close", after_s=2.9)])) as emu:
        caller = NoisyLine()
        await caller.feed(client(emu, max_buffer_s=0.5), 0.0, 6.0)
        first, second = emu.connections
    assert caller.stream.reconnects == 1
    assert second.offset == pytest.approx(2.5, abs=0.05)
    (t1, f1, times1), (t2, f2, times2) = caller.finals()
    assert (f1.text, f2.text) == (HELLO[2], line[2])
    assert times1 == call_times(HELLO) and times2 == call_times(line)
    assert t2 == pytest.approx(line[1] + 0.3, abs=0.05)
