"""Synthetic test signals for the audio core (numpy, test-only)."""
import numpy as np


def tone(rate: int, freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767), -32768, 32767).astype("<i2").tobytes()


def from_pcm16(b: bytes) -> np.ndarray:
    return np.frombuffer(b, "<i2").astype(np.float64) / 32767


def noise(rate: int, seconds: float, level_dbfs: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(rate * seconds)) * (10 ** (level_dbfs / 20))


def speechlike(rate: int, seconds: float, level_dbfs: float, f0: float = 140.0, seed: int = 1) -> np.ndarray:
    """Harmonic voiced sound with a syllabic (4 Hz) envelope and a wobbling pitch: the energy
    pattern of speech, which is what an energy VAD keys on."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 15) if k * f0 < 0.45 * rate)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t - np.pi / 2)
    x = x * env
    rms = np.sqrt(np.mean(x**2))
    return x / rms * 10 ** (level_dbfs / 20)


def frames(b: bytes, size: int):
    return [b[i : i + size] for i in range(0, len(b) - size + 1, size)]
