import audioop

import pytest
from hypothesis import given, settings, strategies as st

from offhook.audio import JitterBuffer, ulaw_decode

SILENCE = b"\xff" * 160


def frame(seq: int) -> bytes:
    """A distinct, loud frame per sequence number (mu-law codes never 0x7F/0xFF)."""
    return bytes(((seq * 7 + i) % 100) + 1 for i in range(160))


def level(b: bytes) -> float:
    return audioop.rms(ulaw_decode(b), 2)


def test_in_order_frames_play_in_order():
    jb = JitterBuffer()
    for s in range(1, 6):
        jb.push(s, frame(s))
    out = [jb.pop() for _ in range(5)]
    assert out == [frame(s) for s in range(1, 6)]
    assert jb.stats | {} == {**jb.stats, "received": 5, "played": 5, "lost": 0, "concealed": 0, "depth": 0}


def test_reordered_frames_are_put_back_in_order():
    jb = JitterBuffer(target_frames=3)
    for s in [1, 3, 2, 4]:
        jb.push(s, frame(s))
    out = []
    while jb.ready:
        out.append(jb.pop())
    assert out == [frame(s) for s in [1, 2, 3, 4]]
    assert jb.stats["reordered"] == 1


def test_gap_waits_for_target_then_conceals_with_fade():
    jb = JitterBuffer(target_frames=3, max_frames=10)
    jb.push(1, frame(1))
    assert jb.pop() == frame(1)
    # 2..5 missing; 6 arrives: not ready yet (reordered audio may still come)
    jb.push(6, frame(6))
    assert not jb.ready
    jb.push(7, frame(7))
    jb.push(8, frame(8))
    assert jb.ready  # three frames wait behind the gap: give up on it
    outs = [jb.pop() for _ in range(4)]  # seq 2,3,4,5 concealed
    lv = [level(o) for o in outs]
    base = level(frame(1))
    assert 0.5 * base < lv[0] < 0.85 * base  # first missing frame: last one, attenuated
    assert lv[0] > lv[1] > lv[2] > lv[3] == 0  # then a fade to silence
    assert outs[3] == SILENCE
    assert [jb.pop() for _ in range(3)] == [frame(6), frame(7), frame(8)]
    st = jb.stats
    assert st["lost"] == 4 and st["concealed"] == 4 and st["played"] == 4


def test_late_and_duplicate_frames_are_dropped_and_counted():
    jb = JitterBuffer()
    jb.push(1, frame(1))
    jb.push(1, frame(1))  # duplicate while buffered
    jb.pop()
    jb.push(1, frame(1))  # duplicate of a played frame
    jb.push(3, frame(3))
    jb.push(4, frame(4))
    jb.push(5, frame(5))
    while jb.ready:
        jb.pop()  # 2 concealed
    jb.push(2, frame(2))  # too late
    st = jb.stats
    assert (st["duplicate"], st["late"], st["lost"]) == (2, 1, 1)


def test_underrun_conceals_without_skipping_ahead():
    """Over TCP a delayed burst must be played late, not thrown away."""
    jb = JitterBuffer()
    jb.push(1, frame(1))
    jb.pop()
    assert not jb.ready
    filler = jb.pop()  # nothing buffered: conceal, keep waiting for seq 2
    assert level(filler) > 0
    jb.push(2, frame(2))
    assert jb.pop() == frame(2)
    assert jb.stats["underrun"] == 1 and jb.stats["late"] == 0


def test_overflow_drops_oldest_and_bounds_depth():
    jb = JitterBuffer(target_frames=2, max_frames=4)
    for s in range(1, 11):
        jb.push(s, frame(s))
        assert jb.depth <= 4
    assert [jb.pop() for _ in range(4)] == [frame(s) for s in range(7, 11)]
    assert jb.stats["overflow"] == 6


def test_pop_before_any_push_is_silence():
    assert JitterBuffer().pop() == SILENCE
    assert JitterBuffer(frame_bytes=320, codec="pcm16").pop() == b"\x00" * 320


def test_pcm16_concealment_attenuates():
    jb = JitterBuffer(frame_bytes=4, target_frames=1, max_frames=4, codec="pcm16")
    jb.push(0, (1000).to_bytes(2, "little", signed=True) * 2)
    jb.pop()
    jb.push(2, b"\x00\x00" * 2)
    v = int.from_bytes(jb.pop()[:2], "little", signed=True)
    assert 500 < v < 1000


def test_bad_input():
    with pytest.raises(ValueError, match="160 bytes"):
        JitterBuffer().push(1, b"\x00" * 159)
    with pytest.raises(TypeError, match="int"):
        JitterBuffer().push("1", frame(1))
    with pytest.raises(ValueError):
        JitterBuffer().push(-1, frame(1))
    with pytest.raises(TypeError, match="bytes-like"):
        JitterBuffer().push(1, None)
    for kw in [dict(frame_bytes=0), dict(target_frames=0), dict(target_frames=11), dict(max_frames=0),
               dict(codec="alaw"), dict(codec="pcm16", frame_bytes=161)]:
        with pytest.raises(ValueError):
            JitterBuffer(**kw)
    # a refused push loses nothing
    jb = JitterBuffer()
    jb.push(1, frame(1))
    with pytest.raises(ValueError):
        jb.push(2, b"short")
    jb.push(2, frame(2))
    assert [jb.pop(), jb.pop()] == [frame(1), frame(2)]


events = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 60)),
        st.tuples(st.just("pop"), st.just(0)),
        st.tuples(st.just("drain"), st.just(0)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(1, 5), st.integers(5, 12))
def test_properties_under_arbitrary_arrival(ops, target, max_frames):
    jb = JitterBuffer(target_frames=target, max_frames=max_frames)
    played = []  # sequence numbers of real frames handed out, in order
    pushes = 0
    pops = 0
    last_real = None  # level of the last real frame played
    fill = []  # levels of the concealment frames since then

    def take():
        nonlocal pops, last_real
        out = jb.pop()
        pops += 1
        real = next((s for s in range(61) if out == frame(s)), None)
        if real is not None:
            played.append(real)
            last_real, fill[:] = level(out), []
            return
        # concealment: the last frame attenuated, fading to silence; silence before any audio
        if last_real is None or len(fill) >= 3:
            assert out == SILENCE
        elif not fill:
            assert 0.5 * last_real < level(out) < 0.85 * last_real
        else:
            assert level(out) < fill[-1]
        fill.append(level(out))

    for op, seq in ops:
        if op == "push":
            jb.push(seq, frame(seq))
            pushes += 1
        elif op == "pop":
            take()
        else:
            while jb.ready:
                take()
        assert 0 <= jb.depth <= max_frames
    st_ = jb.stats
    assert len(played) == len(set(played)), "a frame was returned twice"
    assert played == sorted(played), "frames were reordered"
    assert st_["played"] == len(played)
    # every push is accounted for exactly once
    assert st_["received"] + st_["late"] + st_["duplicate"] == pushes
    assert st_["received"] == st_["played"] + st_["overflow"] + st_["depth"]
    assert st_["concealed"] == pops - st_["played"]
