"""The agent end to end for tests: the real server, the real provider clients against their
emulators (Deepgram STT, Anthropic LLM, two ElevenLabs voices), and the simulated caller.

Everything runs in one trio run under MockClock(autojump_threshold=0.005) with real loopback
sockets: emulated latencies and the agent's own deadlines are exact in trio time.
"""
from __future__ import annotations

import functools
import uuid
import re
from pathlib import Path
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import trio
import trio.testing

from edge_helpers import TOKEN, running_server
from offhook.agent.factory import agent_handler_factory
from offhook.providers.anthropic_llm import ClaudeLLM
from offhook.providers.deepgram_stt import DeepgramSTT
from offhook.providers.elevenlabs_tts import ElevenLabsTTS
from offhook.providers.profile import sample_profile
from offhook.providers.receptionist import ScriptedReceptionist
from offhook.server.config import Config
from offhook.sim.caller import SimCaller
from offhook.sim.emulators.anthropic import anthropic_emulator
from offhook.sim.emulators.deepgram import deepgram_emulator
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import FaultPlan, LatencyProfile
from offhook.sim.scenario import from_dict

PUBLIC = "https://voice.example.com"
# TTS connections the agent opens at start-up, before any call: the stall phrases and the openers
STARTUP_TTS_CONNECTIONS = 2
SIGNED_URL = "wss://voice.example.com/twilio/media"
TICK = 0.020

STT_PROFILE = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05)
LLM_PROFILE = LatencyProfile(first_s=0.3, gap_s=0.03, network_s=0.05)
TTS_PROFILE = LatencyProfile(first_s=0.2, gap_s=0.05, network_s=0.05)


def mock_clock(fn):
    """Run an async test under MockClock(autojump_threshold=0.005) (real sockets, virtual time)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0.005))
    return wrapper


SHORT_GREETING = "Maple Street Hair, how can I help?"


def short_profile(greeting: str = SHORT_GREETING) -> str:
    """A copy of the sample business with a short greeting (short calls keep tests fast)."""
    import tempfile
    from importlib import resources
    text = (resources.files("offhook") / "data" / "sample_business.toml").read_text()
    text = re.sub(r'(?m)^greeting = ".*"$', f'greeting = "{greeting}"', text)
    path = Path(tempfile.mkdtemp(prefix="offhook-test-")) / "business.toml"
    path.write_text(text)
    return str(path)


def receptionist_reply():
    """The scripted receptionist's answers, served over the Anthropic wire by the emulator."""
    brain = ScriptedReceptionist(sample_profile())
    return lambda messages, system: brain.reply(messages)


@dataclass
class Rig:
    app: object
    config: Config
    stt: object
    llm: object
    tts: object            # the primary voice's emulator
    tts2: object           # the fallback voice's emulator
    startup_contexts: tuple[int, int] = (0, 0)  # contexts used by start-up renders (stall phrases)
    factory_shared: object = None
    calls: list = field(default_factory=list)

    def contexts(self, fallback: bool = False) -> list:
        """The TTS contexts calls sent text to (not the start-up renders, nor the empty context the
        client keeps open for keep-alives), oldest first."""
        emu = self.tts2 if fallback else self.tts
        return [c for c in emu.contexts[self.startup_contexts[1 if fallback else 0]:] if "".join(c.texts).strip()]

    def said(self, fallback: bool = False) -> list[str]:
        """The text each call utterance sent to a voice."""
        return ["".join(c.texts) for c in self.contexts(fallback)]

    async def call(self, steps, wrap=None, **kw):
        """One simulated call; `wrap(caller)` may adjust the SimCaller before it dials."""
        kw.setdefault("call_sid", "CA" + uuid.uuid4().hex)  # the STT emulator's board is keyed by it
        caller = SimCaller(self.app.base_ws + "/twilio/media", from_dict({"steps": steps}), auth_token=TOKEN,
                           signed_url=SIGNED_URL, **kw)
        if wrap is not None:
            caller = wrap(caller)
        result = await caller.run()
        # the server finishes the call (and its record) once the socket is gone
        with trio.fail_after(10):
            while not any(c.call_sid == caller.call_sid for c in self.app.finished):
                await trio.sleep(0.05)
        media_call = next(c for c in self.app.finished if c.call_sid == caller.call_sid)
        self.calls.append(media_call)
        return result, media_call


@asynccontextmanager
async def agent_rig(*, responder=None, stt_profile=STT_PROFILE, llm_profile=LLM_PROFILE, tts_profile=TTS_PROFILE,
                    tts2_profile=TTS_PROFILE, llm_faults=None, tts_faults=None, stt_faults=None, **cfg):
    cfg.setdefault("public_url", PUBLIC)
    cfg.setdefault("recording_notice", "")
    cfg.setdefault("profile", short_profile())
    async with AsyncExitStack() as stack:
        dg = await stack.enter_async_context(deepgram_emulator(profile=stt_profile, faults=stt_faults or FaultPlan()))
        an = await stack.enter_async_context(anthropic_emulator(profile=llm_profile, faults=llm_faults or FaultPlan(),
                                                                responder=responder or receptionist_reply()))
        el = await stack.enter_async_context(elevenlabs_emulator(profile=tts_profile, faults=tts_faults or FaultPlan()))
        el2 = await stack.enter_async_context(elevenlabs_emulator(profile=tts2_profile))
        primary = ElevenLabsTTS(api_key=el.api_key, base_url=el.base_url, voice_id="primary")
        fallback = ElevenLabsTTS(api_key=el2.api_key, base_url=el2.base_url, voice_id="fallback")
        fallback.name = "elevenlabs-fallback"
        llm = await stack.enter_async_context(ClaudeLLM(api_key=an.api_key, base_url=an.base_url,
                                                        first_token_timeout=None, inter_token_timeout=None))
        # stall_timeout off: a hung STT socket is then met by the agent's own watchdog
        # (watchdog:stt_silent, test_agent_e2e_tts), not by the client's reconnect first
        stt = DeepgramSTT(api_key=dg.api_key, base_url=dg.base_url, stall_timeout=None)
        providers = SimpleNamespace(stt=stt, llm=llm,
                                    tts=[primary, fallback], names={})
        config = Config.load(env={}, twilio_auth_token=TOKEN, **cfg)
        factory = await stack.enter_async_context(agent_handler_factory(config, providers))
        app = await stack.enter_async_context(running_server(handler_factory=factory, **cfg))
        yield Rig(app, config, dg, an, el, el2, (len(el.contexts), len(el2.contexts)), factory.shared)


def tts_faults(*faults) -> FaultPlan:
    """A TTS fault plan for the call's connection(s), after the start-up renders' connections."""
    return FaultPlan([None] * STARTUP_TTS_CONNECTIONS + list(faults))


def heard_spans(result, gap_ticks: int = 3) -> list[tuple[float, float]]:
    """Stretches of agent audio the caller heard, as (start, end) seconds (gaps < gap_ticks joined)."""
    spans: list[list[int]] = []
    for k, _ in result.agent_played:
        if spans and k - spans[-1][1] <= gap_ticks:
            spans[-1][1] = k + 1
        else:
            spans.append([k, k + 1])
    return [(a * TICK, b * TICK) for a, b in spans]


def heard_after(result, t: float) -> float | None:
    """When the caller first heard agent audio at or after t."""
    return next((k * TICK for k, _ in result.agent_played if k * TICK >= t - 1e-9), None)
