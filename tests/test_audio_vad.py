import numpy as np
import pytest

from audio_signals import frames, noise, pcm16, speechlike
from offhook.audio import FrameVad, InboundPath, pcm_level_db, ulaw_encode

RATE = 8000
FRAME = 320  # bytes: 20 ms of PCM16 at 8 kHz


def frames_of(signal):
    return frames(pcm16(signal), FRAME)


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


SENTENCE = "Hello, I would like to book an appointment for Tuesday afternoon, please."


@pytest.mark.parametrize("noise_db,gain_db", [(-65, 0), (-50, -6), (-40, 0)])
def test_espeak_speech_over_a_phone_line(noise_db, gain_db):
    """Real synthesised speech, mu-law encoded as Twilio sends it, through the inbound path."""
    pytest.importorskip("espeakng_loader")
    from offhook.providers.espeak import synthesize

    speech = np.frombuffer(synthesize(SENTENCE, RATE), "<i2") / 32767 * 10 ** (gain_db / 20)
    lead, tail = RATE, int(1.5 * RATE)
    clean = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    line = clean + noise(RATE, len(clean) / RATE, noise_db, seed=11)
    voiced = [pcm_level_db(f) > -40 + gain_db for f in frames_of(clean)]
    onset, offset = voiced.index(True), len(voiced) - 1 - voiced[::-1].index(True)

    inb = InboundPath(stt_rate=16000)
    speech, speaking = [], []
    for f in frames(ulaw_encode(pcm16(line)), 160):
        speech.append(inb.process(f)[1])
        speaking.append(inb.vad.speaking)

    assert not any(speech[: lead // 160]), "line noise before the caller spoke was called speech"
    started = speaking.index(True)
    # within start_ms (+ the first syllable's rise); the quiet start of the first syllable, below
    # the -40 dB line drawn for `voiced`, may count too
    assert onset - 3 <= started <= onset + (60 + 60) // 20
    assert np.mean([s for s, v in zip(speech, voiced) if v]) > 0.8
    stopped = started + speaking[started:].index(False)
    # held through the pauses between words, released stop_ms after the last one
    assert offset < stopped <= offset + (300 + 100) // 20
    assert not any(speaking[stopped:])
