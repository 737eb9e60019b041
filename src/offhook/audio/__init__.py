"""offhook's audio core: G.711 mu-law, streaming resampling, jitter buffer, VAD, fused call paths.

All functions take bytes-like input and return bytes; see offhook.audio._core for the details.
"""
from offhook.audio._core import (
    MAX_INPUT_BYTES,
    FrameVad,
    InboundPath,
    JitterBuffer,
    OutboundPath,
    Resampler,
    pcm_level_db,
    ulaw_decode,
    ulaw_encode,
    ulaw_level_db,
)

FRAME_MS = 20
FRAME_BYTES = 160  # one 20 ms mu-law frame at 8 kHz
ULAW_SILENCE = b"\xff"

__all__ = [
    "FRAME_BYTES", "FRAME_MS", "MAX_INPUT_BYTES", "ULAW_SILENCE", "FrameVad", "InboundPath",
    "JitterBuffer", "OutboundPath", "Resampler", "pcm_level_db", "ulaw_decode", "ulaw_encode",
    "ulaw_level_db",
]
