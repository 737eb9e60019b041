"""A TTS session (our real ElevenLabs client against its emulator) left with an error at the moment
its scope is cancelled: the caller gets its own error, not a group it cannot catch."""
import pytest
import trio

import provider_helpers
from offhook.providers.elevenlabs_tts import ElevenLabsTimeout, ElevenLabsTTS
from offhook.providers.tts_stream import TTSTimeout
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import LatencyProfile

pytestmark = pytest.mark.timeout(30)

mock_clock = provider_helpers.mock_clock(autojump=0.01)


@mock_clock
async def test_the_callers_error_comes_out_as_itself_when_a_cancellation_lands_with_it():
    async with elevenlabs_emulator() as emu:
        tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url, voice_id="v")
        with trio.CancelScope() as outer:
            with pytest.raises(KeyError):
                async with tts.session():
                    outer.cancel()  # the call ends (or a probe's deadline passes) ...
                    raise KeyError("... in the step the caller's own code fails")
        assert outer.cancelled_caught is False  # no checkpoint after the error: nothing left to catch


@mock_clock
async def test_a_tts_error_raised_as_the_scope_is_cancelled_is_still_caught_as_a_tts_error():
    # no audio within first_audio_timeout: the utterance fails, the connection stays up (its
    # reader is still running when the cancellation lands)
    async with elevenlabs_emulator(profile=LatencyProfile(first_s=0.5)) as emu:
        tts = ElevenLabsTTS(api_key=emu.api_key, base_url=emu.base_url, voice_id="v", first_audio_timeout=0.2)
        caught = None
        with trio.CancelScope() as outer:
            try:
                async with tts.session() as session:
                    async with session.utterance() as utt:
                        await utt.send_text("Hello there. ")
                        await utt.flush()
                        try:
                            async for _ in utt:
                                pass
                        except TTSTimeout:
                            outer.cancel()  # a barge-in or the call ending, in the same step
                            raise
            except TTSTimeout as e:
                caught = e
        assert isinstance(caught, ElevenLabsTimeout) and "0.2 s" in str(caught)
        assert trio.current_time() == pytest.approx(0.2, abs=0.02)
