"""Stall phrases: rendered once per voice at start-up, played as exact Twilio frames in a call."""
import math
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from offhook.audio import ulaw_level_db
from offhook.agent.stall import DEFAULT_STALL_PHRASES, StallPhrases
from offhook.providers.base import TTSError
from offhook.providers.elevenlabs_tts import ElevenLabsTTS
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import Fault, FaultPlan

pytestmark = pytest.mark.timeout(60)


class Counting:
    """The real provider, with a count of the utterances it was asked to synthesise."""

    def __init__(self, provider):
        self.inner = provider
        self.name = provider.name
        self.texts: list[str] = []

    @asynccontextmanager
    async def session(self):
        async with self.inner.session() as s:
            yield _CountingSession(s, self.texts)


class _CountingSession:
    def __init__(self, inner, texts):
        self.inner, self.texts = inner, texts

    @asynccontextmanager
    async def utterance(self):
        async with self.inner.utterance() as u:
            send = u.send_text

            async def send_text(text):
                self.texts.append(text)
                await send(text)
            u.send_text = send_text
            yield u


def test_espeak_phrases_render_once_to_whole_frames_of_speech():
    pytest.importorskip("espeakng_loader")
    from offhook.providers.espeak import ESpeakTTS
    tts = Counting(ESpeakTTS())
    stalls = StallPhrases()

    async def main():
        await stalls.render(tts)
        await stalls.render(tts)          # already cached: nothing synthesised again
        async with trio.open_nursery() as n:   # concurrent start-up renders share one rendering
            n.start_soon(stalls.render, tts)
            n.start_soon(stalls.render, tts)
    trio.run(main)

    assert tts.texts == list(DEFAULT_STALL_PHRASES)
    assert stalls.rendered("espeak") and not stalls.rendered("elevenlabs")
    for i, phrase in enumerate(DEFAULT_STALL_PHRASES):
        text, frames = stalls.frames("espeak", i)
        assert text == phrase
        assert frames and all(len(f) == 160 for f in frames)
        seconds = len(frames) * 0.020
        assert 0.040 * len(text) <= seconds <= 0.150 * len(text), seconds
        assert ulaw_level_db(b"".join(frames)) > -40  # speech, not silence


def test_phrases_rotate_per_voice_and_index_is_modulo():
    pytest.importorskip("espeakng_loader")
    from offhook.providers.espeak import ESpeakTTS
    stalls = StallPhrases(("One moment.", "Let me see.", "Just a second."))
    trio.run(stalls.render, ESpeakTTS())
    assert [stalls.frames("espeak")[0] for _ in range(4)] == [
        "One moment.", "Let me see.", "Just a second.", "One moment."]
    assert stalls.frames("espeak", 4)[0] == "Let me see."
    first, again = stalls.frames("espeak", 0)[1], stalls.frames("espeak", 3)[1]
    assert first == again
    first.clear()                          # a caller's copy: the cache is not affected
    assert stalls.frames("espeak", 0)[1] == again


def test_unrendered_voice_is_a_clear_error():
    stalls = StallPhrases()
    with pytest.raises(KeyError, match="no stall phrases rendered for voice 'aura'"):
        stalls.frames("aura")
    with pytest.raises(ValueError):
        StallPhrases(())
    with pytest.raises(ValueError):
        StallPhrases(("ok", "  "))


def test_mulaw_voice_renders_exact_frames_through_the_real_client():
    stalls = StallPhrases()

    async def main():
        async with elevenlabs_emulator() as emu:
            tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url, voice_id="voice-1")
            await stalls.render(tts)
    trio.run(main, clock=MockClock(autojump_threshold=0.01))
    for i, phrase in enumerate(DEFAULT_STALL_PHRASES):
        text, frames = stalls.frames("elevenlabs", i)
        assert text == phrase and all(len(f) == 160 for f in frames)
        # the emulator speaks 65 ms of 8 kHz mu-law per character; the last frame is padded
        assert len(frames) == math.ceil(len(phrase) * 0.065 * 8000 / 160)


def test_failed_render_caches_nothing_and_a_retry_renders():
    stalls = StallPhrases()

    async def main():
        async with elevenlabs_emulator(faults=FaultPlan([Fault("error", after_s=0.0)])) as emu:
            tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url, voice_id="voice-1")
            with pytest.raises(TTSError):
                await stalls.render(tts)
            assert not stalls.rendered("elevenlabs")
            await stalls.render(tts)
    trio.run(main, clock=MockClock(autojump_threshold=0.01))
    assert stalls.rendered("elevenlabs")


def test_hung_provider_times_out_at_start_up():
    stalls = StallPhrases()

    async def main():
        async with elevenlabs_emulator(faults=FaultPlan([Fault("hang", after_s=0.0)])) as emu:
            tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url, voice_id="voice-1")
            t0 = trio.current_time()
            with pytest.raises(TTSError, match="not rendered within 1.0 s"):
                await stalls.render(tts, timeout_s=1.0)  # sooner than the client's own 2 s stall limit
            assert trio.current_time() - t0 == pytest.approx(1.0)
    trio.run(main, clock=MockClock(autojump_threshold=0.01))
    assert not stalls.rendered("elevenlabs")
