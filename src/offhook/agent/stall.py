"""Stall phrases: "Let me check on that." played when the LLM is slow, rendered once per voice.

    stalls = StallPhrases()
    await stalls.render(tts)                   # at start-up, once per TTS provider
    text, frames = stalls.frames(tts.name)     # in a call: 160-byte mu-law frames for the pacer

Rendering goes through the provider's ordinary TTSProvider interface and offhook.audio.OutboundPath,
so a phrase is exactly what that voice would say in a call, already in Twilio's frame format; a
call never waits on TTS to stall. Phrases rotate so a caller who hears two stalls hears two
different ones.
"""
from __future__ import annotations

import math
from typing import Sequence

import trio

from offhook.audio import OutboundPath
from offhook.providers.base import AudioFormat, TTSError, TTSProvider, TTSSession

__all__ = ["StallPhrases", "DEFAULT_STALL_PHRASES"]

DEFAULT_STALL_PHRASES = ("Let me check on that.", "One moment.")


class StallPhrases:
    """Pre-rendered stall phrases, cached per TTS provider name (the "voice")."""

    def __init__(self, phrases: Sequence[str] = DEFAULT_STALL_PHRASES) -> None:
        phrases = tuple(phrases)
        if not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ValueError(f"stall phrases must be non-empty text, got {phrases!r}")
        self.phrases = phrases
        self._frames: dict[str, tuple[tuple[bytes, ...], ...]] = {}
        self._rendering: dict[str, trio.Event] = {}
        self._next: dict[str, int] = {}

    async def render(self, tts_provider: TTSProvider, *, timeout_s: float | None = 30.0) -> None:
        """Render every phrase with this provider, unless its name is already rendered (or being
        rendered by another task: then wait for that). Raises TTSError when the provider fails,
        produces no audio or takes longer than timeout_s; nothing is cached for it then."""
        name = tts_provider.name
        while name in self._rendering:
            await self._rendering[name].wait()
        if name in self._frames:
            return
        done = self._rendering[name] = trio.Event()
        try:
            with trio.fail_after(math.inf if timeout_s is None else timeout_s):
                async with tts_provider.session() as session:
                    rendered = [await _render_one(session, text, name) for text in self.phrases]
            self._frames[name] = tuple(rendered)
        except trio.TooSlowError:
            raise TTSError(f"{name}: stall phrases not rendered within {timeout_s} s") from None
        finally:
            del self._rendering[name]
            done.set()

    def rendered(self, voice: str) -> bool:
        """Whether phrases for this provider name are ready."""
        return voice in self._frames

    def frames(self, voice: str, i: int | None = None) -> tuple[str, list[bytes]]:
        """(phrase text, its 160-byte mu-law 8 kHz frames) for this provider name; phrase i (modulo
        the number of phrases), or the next one in rotation when i is None. KeyError when the voice
        was never rendered."""
        try:
            rendered = self._frames[voice]
        except KeyError:
            raise KeyError(f"no stall phrases rendered for voice {voice!r} "
                           f"(rendered: {', '.join(sorted(self._frames)) or 'none'})") from None
        if i is None:
            i = self._next.get(voice, 0)
            self._next[voice] = i + 1
        k = i % len(self.phrases)
        return self.phrases[k], list(rendered[k])


def _outbound_for(fmt: AudioFormat, name: str) -> OutboundPath:
    if fmt.encoding == "ulaw":
        if fmt.sample_rate != 8000:
            raise TTSError(f"{name}: mu-law audio at {fmt.sample_rate} Hz is not supported (8000 only)")
        return OutboundPath(8000, src_encoding="ulaw")
    if fmt.encoding == "pcm16":
        return OutboundPath(fmt.sample_rate)
    raise TTSError(f"{name}: unsupported audio encoding {fmt.encoding!r}")


async def _render_one(session: TTSSession, text: str, name: str) -> tuple[bytes, ...]:
    async with session.utterance() as utt:
        await utt.send_text(text)
        await utt.flush()
        path: OutboundPath | None = None
        frames: list[bytes] = []
        async for chunk in utt:
            if path is None:
                path = _outbound_for(utt.format, name)
            frames += path.process(chunk.audio)
    if path is None:
        raise TTSError(f"{name}: no audio for stall phrase {text!r}")
    frames += path.flush()
    return tuple(frames)
