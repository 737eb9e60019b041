import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from audio_signals import from_pcm16, pcm16, tone
from offhook.audio import Resampler

REQUIRED = [(8000, 16000), (16000, 8000), (24000, 8000), (22050, 8000), (44100, 8000), (48000, 8000)]
OTHER = [(16000, 24000), (8000, 48000), (44100, 16000)]


def convert(src, dst, x):
    r = Resampler(src, dst)
    y = from_pcm16(r.process(pcm16(x)) + r.flush())
    return y[r.delay_samples :], r


def steady(y, rate):
    return y[int(0.1 * rate) : -int(0.1 * rate)]


def spectrum_db(y, rate):
    w = np.hanning(len(y))
    mag = np.abs(np.fft.rfft(y * w)) / (w.sum() / 2)
    return np.fft.rfftfreq(len(y), 1 / rate), 20 * np.log10(mag / 0.5 + 1e-15)


@pytest.mark.parametrize("src,dst", REQUIRED + OTHER)
def test_delay_at_most_2ms(src, dst):
    r = Resampler(src, dst)
    assert 0 < r.delay_samples / dst <= 0.002


@pytest.mark.parametrize("src,dst", REQUIRED + OTHER)
def test_passband_ripple_within_0_1_db(src, dst):
    nyq = min(src, dst) / 2
    gains = []
    for f in np.linspace(100, 0.85 * nyq, 9):
        y, _ = convert(src, dst, tone(src, f, 0.6))
        gains.append(20 * math.log10(math.sqrt(2) * steady(y, dst).std() / 0.5))
    assert max(gains) - min(gains) <= 0.1
    assert max(abs(g) for g in gains) <= 0.1


@pytest.mark.parametrize("src,dst", [p for p in REQUIRED + OTHER if p[0] > p[1]])
def test_aliases_attenuated_70_db(src, dst):
    """Tones from 1.15x the lower Nyquist up to the source Nyquist must not fold into the band."""
    nyq = dst / 2
    # a sweep of the stopband, plus every tone that folds onto the passband edge (0.85 x Nyquist)
    edge = [k * dst + s * 0.85 * nyq for k in range(1, src // dst + 1) for s in (-1, 1)]
    sweep = np.linspace(1.15 * nyq, 0.98 * src / 2, 15)
    worst = -200.0
    for f in [*sweep, *(f for f in edge if 1.15 * nyq <= f <= 0.98 * src / 2)]:
        y, _ = convert(src, dst, tone(src, f, 0.6))
        _, db = spectrum_db(steady(y, dst), dst)
        worst = max(worst, db.max())
    assert worst <= -70.0, f"alias at {worst:.1f} dB"


@pytest.mark.parametrize("src,dst", [p for p in REQUIRED + OTHER if p[0] < p[1]])
def test_images_attenuated_70_db(src, dst):
    nyq = src / 2
    worst = -200.0
    for f in np.linspace(100, 0.85 * nyq, 9):
        y, _ = convert(src, dst, tone(src, f, 0.6))
        freqs, db = spectrum_db(steady(y, dst), dst)
        worst = max(worst, db[freqs >= 1.15 * nyq].max())
    assert worst <= -70.0, f"image at {worst:.1f} dB"


def test_named_examples():
    # a 5 kHz tone in 16k->8k and a 7 kHz tone in 24k->8k land below 3.4 kHz if not filtered
    for src, f in [(16000, 5000), (24000, 7000)]:
        y, _ = convert(src, 8000, tone(src, f, 0.5))
        assert 20 * math.log10(np.abs(steady(y, 8000)).max() / 0.5 + 1e-12) < -65


@pytest.mark.parametrize("src,dst", REQUIRED)
def test_snr_70_db_on_1khz_against_float64_reference(src, dst):
    x = tone(src, 1000, 1.0)
    r = Resampler(src, dst)
    y = from_pcm16(r.process(pcm16(x)))
    n = np.arange(len(y))
    ref = 0.5 * np.sin(2 * np.pi * 1000 * (n - r.delay_samples) / dst)
    a, b = steady(y, dst), steady(ref, dst)
    snr = 10 * math.log10(np.sum(b**2) / np.sum((a - b) ** 2))
    assert snr >= 70, snr


def test_output_length_and_alignment():
    x = tone(8000, 440, 1.0)
    y, r = convert(8000, 16000, x)
    assert len(y) == 16000
    # the first output after the delay is the first input sample (upsampled), not earlier or later
    ref = tone(16000, 440, 1.0)
    assert np.max(np.abs(steady(y, 16000) - steady(ref, 16000))) < 2e-3


def rng_chunks(data, seed, max_samples=500):
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(data):
        n = int(rng.integers(0, max_samples)) * 2
        yield data[i : i + n]
        i += n


@pytest.mark.parametrize("src,dst", REQUIRED)
def test_chunking_does_not_change_output(src, dst):
    data = pcm16(np.random.default_rng(3).standard_normal(src // 2) * 0.2)
    r = Resampler(src, dst)
    whole = r.process(data) + r.flush()
    step = src // 50 * 2
    twenty = b"".join(r.process(data[i : i + step]) for i in range(0, len(data), step)) + r.flush()
    rand = b"".join(r.process(c) for c in rng_chunks(data, 7)) + r.flush()
    assert whole == twenty == rand


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(REQUIRED), st.lists(st.integers(0, 2000), min_size=1, max_size=30))
def test_every_call_returns_all_output_its_input_allows(pair, sizes):
    """No hold-back: after T input samples, exactly ceil(T*dst/src) output samples were released."""
    src, dst = pair
    r = Resampler(src, dst)
    total_in = total_out = 0
    for n in sizes:
        total_out += len(r.process(b"\x01\x00" * n)) // 2
        total_in += n
        assert total_out == -(-total_in * dst // src)
    total_out += len(r.flush()) // 2
    assert total_out == -(-total_in * dst // src) + (r.delay_samples if total_in else 0)


def test_reset_and_flush_start_a_new_stream():
    data = pcm16(tone(16000, 300, 0.1))
    r = Resampler(16000, 8000)
    first = r.process(data) + r.flush()
    second = r.process(data) + r.flush()  # flush resets
    r.process(data[:100])
    r.reset()
    third = r.process(data) + r.flush()
    assert first == second == third


def test_bad_arguments():
    for src, dst in [(0, 8000), (8000, -1), (8000, 10**7), (500, 8000), (8000, 8000 * 49)]:
        with pytest.raises(ValueError, match="unsupported rates"):
            Resampler(src, dst)
    with pytest.raises(TypeError):
        Resampler("8000", 16000)
    r = Resampler(8000, 16000)
    with pytest.raises(ValueError, match="even byte length"):
        r.process(b"\x00")
    with pytest.raises(TypeError, match="bytes-like"):
        r.process("abc")
    with pytest.raises(TypeError, match="bytes-like"):
        r.process(None)
    assert r.process(b"") == b""
    # a refused call loses nothing: the stream continues as if it never happened
    data = pcm16(tone(8000, 500, 0.05))
    assert Resampler(8000, 16000).process(data) == r.process(data)


def test_identity_rate_passes_through():
    data = pcm16(tone(8000, 500, 0.05))
    r = Resampler(8000, 8000)
    assert r.delay_samples == 0
    assert r.process(data) == data
