"""Emulated providers for the benchmarks: the Deepgram STT and ElevenLabs TTS emulators (which speak
the real wire protocols, with the seed's latency budget) and offhook's real clients against them,
with the scripted receptionist as the LLM.

The emulators may run in another process than the server (the load benchmark puts them with the
callers, so the emulated STT reads the callers' ScriptBoard): `running_emulators()` yields their
addresses as a JSON-able spec, and `providers_from_spec()` builds the clients from it.
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

from offhook.sim.emulators.plan import LatencyProfile

# the seed's budget (issue 7): STT first partial 150 ms, TTS first chunk 150-250 ms, network 50-100 ms
STT_PROFILE = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05)
TTS_PROFILE = LatencyProfile(first_s=0.2, gap_s=0.05, jitter_s=0.05, network_s=0.05)
LLM_FIRST_TOKEN_S = 0.3
LLM_TOKEN_GAP_S = 0.03


@dataclass
class EmulatedProviders:
    """The `Providers` shape build_providers returns: stt, llm, tts (primary first), names, aclose()."""
    stt: object
    llm: object
    tts: list
    names: dict = field(default_factory=dict)

    async def aclose(self) -> None:
        """Nothing is held between calls: each call opens (and closes) its own STT and TTS sockets."""


@asynccontextmanager
async def running_emulators(*, stt_profile: LatencyProfile = STT_PROFILE, tts_profile: LatencyProfile = TTS_PROFILE,
                            host: str = "127.0.0.1", **stt_options) -> AsyncIterator[dict]:
    from offhook.sim.emulators.deepgram import deepgram_emulator
    from offhook.sim.emulators.elevenlabs import elevenlabs_emulator

    async with deepgram_emulator(host=host, profile=stt_profile, **stt_options) as dg, \
            elevenlabs_emulator(host=host, profile=tts_profile) as el:
        yield {"stt": {"base_url": dg.base_url, "api_key": dg.api_key},
               "tts": {"base_url": el.base_url, "api_key": el.api_key},
               "_emulators": (dg, el)}


def providers_from_spec(spec: dict, *, llm_first_token_s: float = LLM_FIRST_TOKEN_S,
                              llm_token_gap_s: float = LLM_TOKEN_GAP_S) -> EmulatedProviders:
    from offhook.providers.deepgram_stt import DeepgramSTT
    from offhook.providers.elevenlabs_tts import ElevenLabsTTS
    from offhook.providers.profile import sample_profile
    from offhook.providers.receptionist import ScriptedReceptionist

    stt = DeepgramSTT(api_key=spec["stt"]["api_key"], base_url=spec["stt"]["base_url"])
    tts = ElevenLabsTTS(api_key=spec["tts"]["api_key"], base_url=spec["tts"]["base_url"], voice_id="bench")
    llm = ScriptedReceptionist(sample_profile(), first_token_delay_s=llm_first_token_s, token_delay_s=llm_token_gap_s)
    return EmulatedProviders(stt=stt, llm=llm, tts=[tts],
                             names={"stt": "deepgram (emulated)", "llm": "receptionist",
                                    "tts": ["elevenlabs (emulated)"]})


@asynccontextmanager
async def emulated_providers(**kw) -> AsyncIterator[EmulatedProviders]:
    """Emulators and clients in one trio run (tests, the barge-in benchmark)."""
    async with running_emulators(**kw) as spec:
        providers = providers_from_spec(spec)
        try:
            yield providers
        finally:
            await providers.aclose()
