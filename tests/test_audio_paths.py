import audioop

import numpy as np
import pytest

from audio_signals import frames, from_pcm16, noise, pcm16, speechlike, tone
from offhook.audio import InboundPath, OutboundPath, Resampler, ulaw_decode, ulaw_encode


def test_inbound_equals_decode_then_resample():
    ulaw = ulaw_encode(pcm16(tone(8000, 700, 0.5)))
    inb = InboundPath(stt_rate=16000)
    r = Resampler(8000, 16000)
    got = b"".join(inb.process(f)[0] for f in frames(ulaw, 160))
    assert got == r.process(ulaw_decode(ulaw))
    assert len(got) == len(ulaw) * 4  # 16 kHz PCM16: 640 bytes per 20 ms frame


def test_inbound_8k_skips_resampling_and_ulaw_passes_through():
    ulaw = ulaw_encode(pcm16(tone(8000, 700, 0.1)))
    f = ulaw[:160]
    assert InboundPath(stt_rate=8000).process(f)[0] == audioop.ulaw2lin(f, 2)
    inb = InboundPath(stt_rate=8000, stt_encoding="ulaw")
    assert inb.process(f)[0] == f
    assert inb.process(bytearray(f))[0] == f


def test_inbound_reports_speech_and_levels():
    inb = InboundPath()
    quiet = ulaw_encode(pcm16(noise(8000, 1.0, -65)))
    talk = ulaw_encode(pcm16(speechlike(8000, 1.0, -20)))
    q = [inb.process(f) for f in frames(quiet, 160)]
    t = [inb.process(f) for f in frames(talk, 160)]
    assert not any(s for _, s, _ in q)
    assert sum(s for _, s, _ in t) > 30
    assert inb.vad.speaking
    assert np.mean([lv for _, _, lv in q]) == pytest.approx(-65, abs=2)


def test_inbound_bad_input():
    inb = InboundPath()
    with pytest.raises(TypeError):
        inb.process("frame")
    assert inb.process(b"")[0] == b""
    with pytest.raises(ValueError):
        InboundPath(stt_rate=16000, stt_encoding="ulaw")
    with pytest.raises(ValueError):
        InboundPath(stt_encoding="opus")
    with pytest.raises(ValueError):
        InboundPath(stt_rate=3)


def test_outbound_frames_are_exact_and_continuous():
    src = pcm16(tone(24000, 440, 1.03))
    out = OutboundPath(src_rate=24000)
    frames_ = []
    rng = np.random.default_rng(0)
    i = 0
    while i < len(src):
        n = int(rng.integers(1, 3000))  # odd sizes too: a sample may be split across chunks
        frames_ += out.process(src[i : i + n])
        i += n
    frames_ += out.flush()
    assert all(len(f) == 160 for f in frames_)
    # 1.03 s of audio + 2 ms filter tail -> 52 frames, last one padded with mu-law silence
    assert len(frames_) == 52
    assert frames_[-1].endswith(b"\xff" * 40)
    heard = from_pcm16(ulaw_decode(b"".join(frames_)))
    r = Resampler(24000, 8000)
    ref = from_pcm16(ulaw_decode(ulaw_encode(r.process(src) + r.flush())))
    assert np.array_equal(heard[: len(ref)], ref)


def test_outbound_8k_and_ulaw_passthrough():
    pcm = pcm16(tone(8000, 440, 0.05))
    assert OutboundPath(src_rate=8000).process(pcm) == [ulaw_encode(pcm)[i : i + 160] for i in (0, 160)][:2]
    out = OutboundPath(src_rate=8000, src_encoding="ulaw")
    assert out.process(b"\x01" * 100) == []
    assert out.process(b"\x02" * 100) == [b"\x01" * 100 + b"\x02" * 60]
    assert out.pending_bytes == 40
    assert out.flush() == [b"\x02" * 40 + b"\xff" * 120]
    assert out.flush() == []


def test_outbound_reset_drops_carried_audio():
    out = OutboundPath(src_rate=16000)
    out.process(pcm16(tone(16000, 300, 0.015)))
    out.reset()
    assert out.pending_bytes == 0
    assert out.flush() == []


def test_outbound_bad_input():
    with pytest.raises(TypeError):
        OutboundPath().process(12)
    with pytest.raises(ValueError):
        OutboundPath(src_rate=16000, src_encoding="ulaw")
    assert OutboundPath().process(b"") == []
