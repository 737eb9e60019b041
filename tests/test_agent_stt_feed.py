"""The caller's audio to the STT: a frame a message while there is voice, three in a long silence
(agent/stt_feed.py) — sans-IO, and end to end against the Deepgram emulator: nothing lost, and the
answer to a caller who speaks after a long silence is as quick as ever."""
import pytest

from agent_helpers import agent_rig, heard_after, mock_clock
from offhook.agent.stt_feed import SttFeed

pytestmark = pytest.mark.timeout(60)


def frame(i):
    return bytes([i % 250 + 1]) * 160


def feed_run(feed, voiced, n, t0=0.0):
    """Frames 0..n-1 every 20 ms (voiced(i) says which carry voice): [(i, what was sent)]."""
    return [(i, out) for i in range(n) if (out := feed.take(frame(i), voiced(i), t0 + i * 0.02)) is not None]


def test_voice_goes_a_frame_a_message():
    feed = SttFeed()
    sent = feed_run(feed, lambda i: True, 200)
    assert [out for _, out in sent] == [frame(i) for i in range(200)]


def test_a_long_silence_goes_three_frames_a_message_and_voice_sends_what_is_held_at_once():
    feed = SttFeed(hold_after_s=2.0, max_frames=3)
    # voice for 1 s, then 4 s of silence, then voice again at frame 250 (5.0 s)
    sent = feed_run(feed, lambda i: i < 50 or i >= 250, 300)
    at = dict(sent)
    assert all(at[i] == frame(i) for i in range(149))  # one a message until 2 s after the last voice (0.98 s)
    held = [i for i, _ in sent if 149 <= i < 250]
    assert held[0] == 151
    assert all(b - a == 3 for a, b in zip(held, held[1:]))  # then every third frame carries three
    assert all(len(at[i]) == 3 * 160 for i in held[1:])
    assert 250 in at and len(at[250]) > 160 and at[250].endswith(frame(250))  # voice: held audio + it, now
    assert all(at[i] == frame(i) for i in range(251, 300))
    assert b"".join(out for _, out in sent) == b"".join(frame(i) for i in range(300))  # nothing lost
    assert feed.messages == len(sent)


def test_a_new_stt_stream_starts_with_nothing_held():
    feed = SttFeed()
    feed_run(feed, lambda i: False, 198)  # the call's first 4 s silent: holding
    assert feed.take(frame(1), False, 3.96) is None
    feed.voiced(3.98)  # the STT reconnected: the held audio belonged to the old stream
    assert feed.take(frame(2), False, 4.0) == frame(2)
    with pytest.raises(ValueError):
        SttFeed(max_frames=0)


@mock_clock
async def test_after_a_long_silence_the_stt_gets_every_byte_and_the_answer_is_as_quick():
    async with agent_rig() as rig:
        result, call = await rig.call([
            {"wait_for_agent": {"quiet": 0.5, "timeout": 10}}, {"wait": 4.0},
            {"say": "Where are you located?"}, {"wait_for_agent": {"quiet": 0.6, "timeout": 10}}])
    line = result.lines[0]
    conn = rig.stt.for_tag(call.call_sid)[-1]
    audio = [t - call.t0 for t, kind in conn.received if kind == "audio"]
    gaps = lambda a, b: {round(y - x, 3) for x, y in zip(audio, audio[1:]) if a <= x and y <= b}
    assert gaps(line.start - 2.0, line.start - 0.2) == {0.06}  # the silence before: three frames a message
    assert gaps(line.start + 0.2, line.end) == {0.02}  # the caller's words: one a message
    # every byte of the call's audio reached the STT (but at most two frames still held at hang-up)
    assert call.frames_in * 160 - 2 * 160 <= conn.audio_bytes <= call.frames_in * 160
    first = heard_after(result, line.end)
    assert first is not None and first - line.end <= 0.8
