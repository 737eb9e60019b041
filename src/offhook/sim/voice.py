"""Caller voices for the simulator: text -> 8 kHz mu-law.

`local_tts_voice` speaks with the embedded eSpeak NG when the offline extra is installed (real
speech, so a real recogniser can hear it); `synthetic_voice` makes a speech-like signal (voiced
harmonics with a syllable rhythm, ~65 ms per character) that is enough for VAD, endpointing and
emulated STT, which reads the words from the ScriptBoard instead of the audio.
"""
from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

from offhook.audio import ulaw_encode

Voice = Callable[[str], bytes]


def synthetic_voice(text: str, level_dbfs: float = -20.0, ms_per_char: float = 65.0) -> bytes:
    rate = 8000
    seconds = max(0.3, len(text) * ms_per_char / 1000)
    n = int(rate * seconds)
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    t = np.arange(n) / rate
    f0 = 120 + 40 * rng.random()
    pitch = f0 * (1 + 0.06 * np.sin(2 * np.pi * 1.1 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 20) if k * f0 < 3400)
    syll = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t - np.pi / 2)
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.03)  # no clicks at the edges
    x = x * syll * ramp
    x = x / np.sqrt(np.mean(x**2)) * 10 ** (level_dbfs / 20) * 32767
    return ulaw_encode(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def local_tts_voice() -> Voice | None:
    """eSpeak NG at 8 kHz when available, else None."""
    try:
        from offhook.providers.espeak import synthesize
    except Exception:
        return None

    def speak(text: str) -> bytes:
        return ulaw_encode(synthesize(text, rate=8000))
    return speak


def comfort_noise(frames: int = 50, level_dbfs: float = -68.0, seed: int = 7) -> list[bytes]:
    """Line noise: a real line is never digitally silent."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(160 * frames) * 10 ** (level_dbfs / 20) * 32767
    u = ulaw_encode(x.astype("<i2").tobytes())
    return [u[i : i + 160] for i in range(0, len(u), 160)]
