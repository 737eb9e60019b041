"""Side-by-side cases for the audio-core benchmarks: offhook vs what a user would otherwise pick.

Each case builds two zero-argument callables doing the same work on the same 20 ms of audio: ours and
a baseline (audioop, soxr's HQ stream, numpy lookup tables, webrtcvad). Used by `offhook bench-audio`
and by bench/test_audio_bench.py (pytest-benchmark). Baseline packages are test extras: a case whose
baseline is missing is reported as skipped.
"""
from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import Callable

from offhook.audio import FrameVad, InboundPath, OutboundPath, Resampler, pcm_level_db, ulaw_decode, ulaw_encode

Thunk = Callable[[], object]


@dataclass(frozen=True)
class Case:
    name: str
    baseline: str
    target: float  # ours/baseline time ratio we aim for (<= target)
    build: Callable[[], tuple[Thunk, Thunk]]


def _audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


def _speechy_pcm(rate: int, ms: int = 20, seed: int = 0) -> bytes:
    rnd = random.Random(seed)
    n = rate * ms // 1000
    vals = [int(6000 * math.sin(2 * math.pi * 210 * i / rate) + rnd.gauss(0, 800)) for i in range(n)]
    return b"".join(max(-32768, min(32767, v)).to_bytes(2, "little", signed=True) for v in vals)


def _decode():
    ao = _audioop()
    ul = ulaw_encode(_speechy_pcm(8000))
    return (lambda: ulaw_decode(ul)), (lambda: ao.ulaw2lin(ul, 2))


def _encode():
    ao = _audioop()
    pcm = _speechy_pcm(8000)
    return (lambda: ulaw_encode(pcm)), (lambda: ao.lin2ulaw(pcm, 2))


def _numpy_lut_decode():
    import numpy as np

    lut = np.frombuffer(ulaw_decode(bytes(range(256))), "<i2")
    ul = ulaw_encode(_speechy_pcm(8000))
    return (lambda: ulaw_decode(ul)), (lambda: lut[np.frombuffer(ul, np.uint8)].tobytes())


def _numpy_lut_encode():
    import numpy as np

    table = np.frombuffer(ulaw_encode(b"".join(((i << 2) - (1 << 16) if i >= 8192 else i << 2).to_bytes(
        2, "little", signed=True) for i in range(16384))), np.uint8)
    pcm = _speechy_pcm(8000)
    return (lambda: ulaw_encode(pcm)), (
        lambda: table[np.frombuffer(pcm, "<i2").view(np.uint16) >> 2].tobytes())


def _resample(src: int, dst: int):
    def build():
        import numpy as np
        import soxr

        pcm = _speechy_pcm(src)
        arr = np.frombuffer(pcm, "<i2")
        ours = Resampler(src, dst)
        theirs = soxr.ResampleStream(src, dst, 1, dtype="int16", quality="HQ")
        return (lambda: ours.process(pcm)), (lambda: theirs.resample_chunk(arr))
    return build


def _ratecv(src: int, dst: int):
    def build():
        ao = _audioop()
        pcm = _speechy_pcm(src)
        ours = Resampler(src, dst)
        state = [None]

        def theirs():
            out, state[0] = ao.ratecv(pcm, 2, 1, src, dst, state[0])
            return out
        return (lambda: ours.process(pcm)), theirs
    return build


def _level():
    ao = _audioop()
    pcm = _speechy_pcm(8000)
    return (lambda: pcm_level_db(pcm)), (lambda: ao.rms(pcm, 2))


def _vad():
    import webrtcvad

    pcm = _speechy_pcm(8000)
    ours = FrameVad(8000, 20)
    theirs = webrtcvad.Vad(2)
    return (lambda: ours.process(pcm)), (lambda: theirs.is_speech(pcm, 8000))


def _inbound():
    import numpy as np
    import soxr
    import webrtcvad

    ao = _audioop()
    ul = ulaw_encode(_speechy_pcm(8000))
    ours = InboundPath(stt_rate=16000)
    vad = webrtcvad.Vad(2)
    rs = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="HQ")

    def theirs():
        pcm = ao.ulaw2lin(ul, 2)
        speech = vad.is_speech(pcm, 8000)
        level = ao.rms(pcm, 2)
        return rs.resample_chunk(np.frombuffer(pcm, "<i2")).tobytes(), speech, level
    return (lambda: ours.process(ul)), theirs


def _outbound():
    import numpy as np
    import soxr

    ao = _audioop()
    pcm = _speechy_pcm(24000)
    ours = OutboundPath(src_rate=24000)
    rs = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="HQ")
    carry = [b""]

    def theirs():
        u = carry[0] + ao.lin2ulaw(rs.resample_chunk(np.frombuffer(pcm, "<i2")).tobytes(), 2)
        n = len(u) // 160 * 160
        carry[0] = u[n:]
        return [u[i : i + 160] for i in range(0, n, 160)]
    return (lambda: ours.process(pcm)), theirs


CASES: list[Case] = [
    Case("ulaw_decode 20ms", "audioop.ulaw2lin", 1.0, _decode),
    Case("ulaw_encode 20ms", "audioop.lin2ulaw", 0.5, _encode),
    Case("ulaw_decode 20ms (numpy)", "numpy LUT", 1.0, _numpy_lut_decode),
    Case("ulaw_encode 20ms (numpy)", "numpy LUT", 1.0, _numpy_lut_encode),
    Case("resample 8k->16k 20ms", "soxr HQ stream", 0.5, _resample(8000, 16000)),
    Case("resample 16k->8k 20ms", "soxr HQ stream", 0.5, _resample(16000, 8000)),
    Case("resample 24k->8k 20ms", "soxr HQ stream", 0.5, _resample(24000, 8000)),
    Case("resample 22.05k->8k 20ms", "soxr HQ stream", 0.5, _resample(22050, 8000)),
    Case("resample 44.1k->8k 20ms", "soxr HQ stream", 0.5, _resample(44100, 8000)),
    Case("resample 48k->8k 20ms", "soxr HQ stream", 0.5, _resample(48000, 8000)),
    Case("resample 8k->16k 20ms (ratecv)", "audioop.ratecv", 1.0, _ratecv(8000, 16000)),
    Case("level 20ms", "audioop.rms", 1.0, _level),
    Case("vad 20ms", "webrtcvad", 1.0, _vad),
    Case("InboundPath 20ms", "audioop+webrtcvad+soxr", 0.2, _inbound),
    Case("OutboundPath 20ms of 24k", "soxr+audioop+framing", 0.2, _outbound),
]
