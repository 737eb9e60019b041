import numpy as np
import pytest

from audio_signals import frames, noise, pcm16, speechlike
from offhook.audio import FrameVad

RATE = 8000
FRAME = 320  # bytes: 20 ms of PCM16 at 8 kHz


def run(vad, signal):
    return [vad.process(f) for f in frames(pcm16(signal), FRAME)]


@pytest.mark.parametrize("level", [-90, -60, -45, -30, -20])
def test_stationary_noise_is_never_speech(level):
    vad = FrameVad(RATE, 20)
    out = run(vad, noise(RATE, 5.0, level))
    assert not any(s for s, _ in out)
    assert not vad.speaking
    assert np.mean([lv for _, lv in out]) == pytest.approx(level, abs=1.5)


def test_digital_silence():
    vad = FrameVad()
    out = run(vad, np.zeros(RATE * 2))
    assert out[0] == (False, -100.0)
    assert not vad.speaking


@pytest.mark.parametrize("noise_db,speech_db", [(-90, -30), (-60, -25), (-45, -20), (-40, -15)])
def test_speech_is_detected_within_start_ms(noise_db, speech_db):
    vad = FrameVad(RATE, 20, start_ms=60)
    run(vad, noise(RATE, 1.0, noise_db))
    sig = speechlike(RATE, 1.5, speech_db) + noise(RATE, 1.5, noise_db, seed=5)
    t_start = None
    for i, f in enumerate(frames(pcm16(sig), FRAME)):
        vad.process(f)
        if vad.speaking and t_start is None:
            t_start = (i + 1) * 20
    # a syllable starts quietly (the envelope rises from 10%): allow its first 100 ms to build up
    assert t_start is not None and t_start <= 60 + 100


def test_speaking_stops_after_stop_ms_of_silence():
    vad = FrameVad(RATE, 20, start_ms=60, stop_ms=300)
    run(vad, noise(RATE, 0.5, -70))
    run(vad, speechlike(RATE, 1.0, -20))
    assert vad.speaking
    stopped_at = None
    for i, f in enumerate(frames(pcm16(noise(RATE, 1.0, -70, seed=9)), FRAME)):
        vad.process(f)
        if not vad.speaking:
            stopped_at = (i + 1) * 20
            assert vad.transition == -1
            break
    assert stopped_at is not None and 300 <= stopped_at <= 400


def test_adapts_to_a_raised_noise_floor_within_seconds():
    vad = FrameVad(RATE, 20)
    run(vad, noise(RATE, 2.0, -70))
    out = run(vad, noise(RATE, 6.0, -35, seed=2))  # the caller walks into a noisy street
    speech = [s for s, _ in out]
    first_quiet = next(i for i in range(len(speech)) if not any(speech[i:]))
    assert first_quiet * 0.02 <= 3.0, f"still calling noise speech after {first_quiet * 0.02:.1f}s"
    # and speech over that noise is still heard
    out = run(vad, speechlike(RATE, 1.0, -15) + noise(RATE, 1.0, -35, seed=3))
    assert sum(s for s, _ in out) > 0.5 * len(out)
    assert vad.speaking


def test_long_speech_is_not_learnt_as_noise():
    vad = FrameVad(RATE, 20)
    run(vad, noise(RATE, 1.0, -60))
    out = run(vad, speechlike(RATE, 8.0, -20) + noise(RATE, 8.0, -60, seed=4))
    assert sum(s for s, _ in out[-100:]) > 60  # still speech after 6 s of talking


def test_never_raises_on_empty_or_odd_input():
    vad = FrameVad()
    assert vad.process(b"") == (False, -100.0)
    s, lv = vad.process(b"\x00\x10\x00")
    assert isinstance(s, bool) and isinstance(lv, float)
    vad.process(bytearray(7))
    vad.process(memoryview(b"\x01\x02"))


def test_bad_arguments():
    with pytest.raises(TypeError, match="bytes-like"):
        FrameVad().process("loud")
    with pytest.raises(ValueError):
        FrameVad(sample_rate=10)
    with pytest.raises(ValueError):
        FrameVad(frame_ms=0)
    with pytest.raises(ValueError):
        FrameVad(threshold_db=-3)
