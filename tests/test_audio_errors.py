"""Bad input to every entry point of the audio core: a clear TypeError/ValueError, never a crash or
garbage, and the object refusing it carries on as if the call had never been made."""
import numpy as np
import pytest

from audio_signals import pcm16, tone
from offhook.audio import (MAX_INPUT_BYTES, FrameVad, InboundPath, JitterBuffer, OutboundPath, Resampler,
                           pcm_level_db, ulaw_decode, ulaw_encode, ulaw_level_db)

GOOD_PCM = pcm16(tone(8000, 440, 0.02))  # 320 bytes
GOOD_ULAW = ulaw_encode(GOOD_PCM)  # 160 bytes

# name -> (make a fresh target, call it with one input, a good input)
ENTRY_POINTS = {
    "ulaw_decode": (lambda: None, lambda _, x: ulaw_decode(x), GOOD_ULAW),
    "ulaw_encode": (lambda: None, lambda _, x: ulaw_encode(x), GOOD_PCM),
    "ulaw_level_db": (lambda: None, lambda _, x: ulaw_level_db(x), GOOD_ULAW),
    "pcm_level_db": (lambda: None, lambda _, x: pcm_level_db(x), GOOD_PCM),
    "Resampler.process": (lambda: Resampler(8000, 16000), lambda o, x: o.process(x), GOOD_PCM),
    "JitterBuffer.push": (JitterBuffer, lambda o, x: (o.push(o.stats["received"], x), o.pop())[1],
                          GOOD_ULAW),
    "FrameVad.process": (FrameVad, lambda o, x: o.process(x), GOOD_PCM),
    "InboundPath.process": (InboundPath, lambda o, x: o.process(x), GOOD_ULAW),
    "OutboundPath.process": (lambda: OutboundPath(24000), lambda o, x: o.process(x), pcm16(tone(24000, 440, 0.02))),
}
NAMES = list(ENTRY_POINTS)
NOT_BYTES = ["text", 123, None, 1.5, [1, 2], object()]


@pytest.fixture(scope="module")
def huge():
    return bytearray(MAX_INPUT_BYTES + 2)


def check_unharmed(name, bad_call):
    """The same good inputs give the same results with a refused call in between."""
    make, call, good = ENTRY_POINTS[name]
    ref, obj = make(), make()
    expected = [call(ref, good) for _ in range(3)]
    got = [call(obj, good)]
    bad_call(obj)
    got += [call(obj, good) for _ in range(2)]
    assert got == expected


def check_refused(name, arg, exc, match):
    _, call, _ = ENTRY_POINTS[name]

    def bad_call(obj):
        with pytest.raises(exc, match=match):
            call(obj, arg)
    check_unharmed(name, bad_call)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", NOT_BYTES, ids=lambda b: type(b).__name__)
def test_wrong_type_is_a_type_error(name, bad):
    check_refused(name, bad, TypeError, "bytes-like")


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_buffer_is_a_value_error(name):
    check_refused(name, memoryview(ENTRY_POINTS[name][2] * 2)[::2], ValueError, "contiguous")


@pytest.mark.parametrize("name", NAMES)
def test_huge_input_is_refused_before_any_work(name, huge):
    check_refused(name, huge, ValueError, "refused")


@pytest.mark.parametrize("name", ["ulaw_encode", "Resampler.process"])
def test_odd_pcm_length_is_a_value_error(name):
    check_refused(name, ENTRY_POINTS[name][2][:-1], ValueError, "even byte length")


def test_odd_and_empty_pcm_are_accepted_where_the_api_says_so():
    # the VAD and the level meter ignore a trailing half sample; the outbound path carries it
    assert FrameVad().process(GOOD_PCM + b"\x01") == FrameVad().process(GOOD_PCM)
    assert pcm_level_db(GOOD_PCM + b"\x01") == pcm_level_db(GOOD_PCM)
    whole, split = OutboundPath(8000), OutboundPath(8000)
    assert split.process(GOOD_PCM[:101]) + split.process(GOOD_PCM[101:]) == whole.process(GOOD_PCM)
    for name, (make, call, _) in ENTRY_POINTS.items():
        if name != "JitterBuffer.push":
            call(make(), b"")  # empty input is a no-op, not an error


@pytest.mark.parametrize("ctor,args", [
    (Resampler, ("8000", 16000)), (Resampler, (8000.5, 16000)), (Resampler, (None, 16000)),
    (Resampler, (8000, 16000.0)), (JitterBuffer, ("160",)), (JitterBuffer, (160.0,)), (JitterBuffer, (True,)),
    (FrameVad, ("8000",)), (FrameVad, (8000.0,)), (InboundPath, ("16000",)), (InboundPath, (16000.0,)),
    (OutboundPath, ("24000",)), (OutboundPath, (24000.0,)),
])
def test_constructor_wrong_types(ctor, args):
    with pytest.raises(TypeError):
        ctor(*args)


@pytest.mark.parametrize("ctor,kwargs", [
    (InboundPath, dict(stt_rate=0)), (InboundPath, dict(stt_rate=10**7)),
    (OutboundPath, dict(src_rate=-8000)), (OutboundPath, dict(src_rate=8000 * 49)),
    (InboundPath, dict(vad=FrameVad(16000))), (FrameVad, dict(start_ms=-1)), (FrameVad, dict(threshold_db=90)),
    (JitterBuffer, dict(max_frames=10**6)), (JitterBuffer, dict(frame_bytes=10**6)),
    (JitterBuffer, dict(max_frames=10**30)), (Resampler, dict(src_rate=-(10**30), dst_rate=8000)),
    (FrameVad, dict(start_ms=float("nan"))), (FrameVad, dict(stop_ms=float("inf"))),
    (FrameVad, dict(threshold_db=float("nan"))),
])
def test_constructor_bad_values(ctor, kwargs):
    """Out of range, however far: a ValueError naming the limits, not an OverflowError."""
    with pytest.raises(ValueError):
        ctor(**kwargs)
