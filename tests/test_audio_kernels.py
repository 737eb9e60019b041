"""Every SIMD kernel (portable C, AVX2, AVX-512BW — whichever this CPU runs) gives bit-identical
audio: the wide kernels are picked at run time, so a caller on another machine must hear exactly
what the portable code computes."""
import audioop
import os
import subprocess
import sys

import numpy as np
import pytest

from audio_signals import pcm16
from offhook.audio import InboundPath, OutboundPath, Resampler, _core, pcm_level_db, ulaw_decode, ulaw_encode

BEST = _core._simd_level()
LEVELS = list(range(BEST + 1))
RATIOS = [(8000, 16000), (16000, 8000), (24000, 8000), (22050, 8000), (44100, 8000), (48000, 8000),
          (8000, 24000), (8000, 48000), (16000, 24000), (48000, 16000), (11025, 8000)]


@pytest.fixture
def simd():
    """Set the kernel level for objects made from now on; restores the best level afterwards."""
    def use(level):
        assert _core._cap_simd(level) == level
    yield use
    _core._cap_simd(BEST)


def chunked(r, data, seed):
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(data):
        n = int(rng.integers(0, 700)) * 2
        out.append(r.process(data[i : i + n]))
        i += n
    return b"".join(out) + r.flush()


def hard_input(rate):
    """Noise, then full-scale square waves and DC at both rails: extremes exercise saturation and
    would expose any int32 overflow in a kernel."""
    rng = np.random.default_rng(rate)
    x = np.concatenate([rng.standard_normal(rate // 4) * 0.3,
                        np.sign(np.sin(2 * np.pi * 1000 * np.arange(rate // 8) / rate)),
                        np.ones(rate // 8), -np.ones(rate // 8) * 32768 / 32767])
    return pcm16(x)


@pytest.mark.parametrize("src,dst", RATIOS)
def test_resampler_kernels_are_bit_identical(simd, src, dst):
    data = hard_input(src)
    outs = []
    for level in LEVELS:
        simd(level)
        r = Resampler(src, dst)
        whole = r.process(data) + r.flush()
        assert chunked(r, data, seed=level) == whole
        outs.append(whole)
    assert all(o == outs[0] for o in outs[1:])


@pytest.mark.parametrize("level", LEVELS)
def test_full_scale_dc_saturates_instead_of_wrapping(simd, level):
    simd(level)
    for src, dst in RATIOS:
        for v in (32767, -32768):
            r = Resampler(src, dst)
            y = np.frombuffer(r.process(np.full(src // 10, v, "<i2").tobytes()), "<i2")
            settled = y[len(y) // 2 :]
            assert np.all(np.abs(settled.astype(int) - v) <= 40), (src, dst, v, settled.min(), settled.max())


@pytest.mark.parametrize("level", LEVELS)
def test_decode_is_g711_at_every_length_and_alignment(simd, level):
    simd(level)
    codes = bytes(range(256)) * 2 + bytes(range(255, -1, -3))
    for n in list(range(0, 40)) + [160, 161, 333, len(codes)]:
        for off in (0, 1, 3):
            chunk = memoryview(codes)[off : off + n]
            assert ulaw_decode(chunk) == audioop.ulaw2lin(bytes(chunk), 2)


@pytest.mark.parametrize("level", LEVELS)
def test_encode_is_g711_for_every_value_length_and_alignment(simd, level):
    simd(level)
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert ulaw_encode(every) == audioop.lin2ulaw(every, 2)
    rng = np.random.default_rng(level).integers(-32768, 32768, 400, dtype=np.int16).tobytes()
    for n in list(range(0, 40)) + [160, 399]:
        for off in (0, 2, 6):
            chunk = memoryview(rng)[off : off + 2 * n]
            assert ulaw_encode(chunk) == audioop.lin2ulaw(bytes(chunk), 2)


@pytest.mark.parametrize("level", LEVELS)
def test_fused_decode_and_level_match_separate_steps(simd, level):
    simd(level)
    rng = np.random.default_rng(level)
    inb = InboundPath(stt_rate=8000)
    for n in (160, 1, 15, 16, 17, 400):
        frame = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        pcm, _, lv = inb.process(frame)
        assert pcm == audioop.ulaw2lin(frame, 2)
        ref = 10 * np.log10(np.mean(np.frombuffer(pcm, "<i2").astype(float) ** 2) / 32768**2)
        assert lv == pytest.approx(max(ref, -100.0), abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_pcm_level_is_exact_at_the_rails(simd, level):
    simd(level)
    # two -32768 samples in one pair sum to 2^31: one past int32
    for vals in ([-32768] * 160, [-32768, 32767] * 80, [-32768] * 33, [3] * 17):
        pcm = np.array(vals, "<i2")
        ref = 10 * np.log10(np.mean(pcm.astype(float) ** 2) / 32768**2)
        assert pcm_level_db(pcm.tobytes()) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_outbound_frames_identical_at_every_level(simd, level):
    simd(level)
    src = hard_input(24000)
    out = OutboundPath(src_rate=24000)
    frames = [f for i in range(0, len(src), 960) for f in out.process(src[i : i + 960])] + out.flush()
    simd(0)
    ref = OutboundPath(src_rate=24000)
    assert frames == ref.process(src) + ref.flush()


def simd_level_with(cap):
    env = {k: v for k, v in os.environ.items() if k != "OFFHOOK_SIMD"}
    if cap is not None:
        env["OFFHOOK_SIMD"] = cap
    out = subprocess.run([sys.executable, "-c", "from offhook.audio import _core; print(_core._simd_level())"],
                         env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_offhook_simd_environment_caps_the_kernels():
    """An operator can force the portable kernels (or AVX2) without rebuilding."""
    cpu = simd_level_with(None)
    assert simd_level_with("scalar") == 0
    assert simd_level_with("avx2") == min(cpu, 1)
    assert simd_level_with("") == simd_level_with("bogus") == cpu
