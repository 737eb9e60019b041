"""The whole agent on loopback, for tests and benchmarks: the real server, the real provider clients
against their emulators (Deepgram STT, Anthropic LLM, two ElevenLabs voices), and the simulated caller.

    async with agent_rig(llm_profile=LatencyProfile(first_s=0.3)) as rig:
        result, media_call = await rig.call([{"say": "Where are you located?"}, {"wait_for_agent": {}}])

Meant for one trio run under MockClock(autojump_threshold=0.005) with real loopback sockets: the
emulated latencies and the agent's own deadlines are then exact in trio time.
"""
from __future__ import annotations

import re
import tempfile
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import trio

from offhook.agent.factory import agent_handler_factory
from offhook.providers.anthropic_llm import ClaudeLLM
from offhook.providers.deepgram_stt import DeepgramSTT
from offhook.providers.elevenlabs_tts import ElevenLabsTTS
from offhook.providers.profile import sample_profile
from offhook.providers.receptionist import ScriptedReceptionist
from offhook.server.app import OffhookApp
from offhook.server.config import Config
from offhook.server.echo import EchoHandler
from offhook.server.run import serve_app
from offhook.sim.caller import SimCaller
from offhook.sim.emulators.anthropic import anthropic_emulator
from offhook.sim.emulators.deepgram import deepgram_emulator
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import FaultPlan, LatencyProfile
from offhook.sim.scenario import from_dict

TOKEN = "test-auth-token-0123456789abcdef"  # the Twilio auth token the rig signs and checks with
PUBLIC = "https://voice.example.com"
SIGNED_URL = "wss://voice.example.com/twilio/media"

STT_PROFILE = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05)
LLM_PROFILE = LatencyProfile(first_s=0.3, gap_s=0.03, network_s=0.05)
TTS_PROFILE = LatencyProfile(first_s=0.2, gap_s=0.05, network_s=0.05)

SHORT_GREETING = "Maple Street Hair, how can I help?"


@asynccontextmanager
async def running_server(handler_factory=None, **cfg):
    """The real OffhookApp on hypercorn, 127.0.0.1 port 0, with `app.base_http` / `app.base_ws` set;
    the echo handler unless a handler factory is given."""
    cfg.setdefault("twilio_auth_token", TOKEN)
    with tempfile.TemporaryDirectory(prefix="offhook-edge-") as tmp:
        cfg.setdefault("data_dir", tmp)
        app = OffhookApp(Config.load(env={}, **cfg), handler_factory or (lambda call: EchoHandler(call)))
        async with trio.open_nursery() as nursery:
            base = await nursery.start(partial(serve_app, app, "127.0.0.1", 0, shutdown_trigger=app.drained.wait))
            app.base_http = base
            app.base_ws = base.replace("http://", "ws://")
            yield app
            nursery.cancel_scope.cancel()


def short_profile(greeting: str = SHORT_GREETING, folder: str | None = None) -> str:
    """A copy of the sample business with a short greeting (short calls keep runs fast), written
    into `folder` (a new temporary folder when None); returns its path."""
    text = (resources.files("offhook") / "data" / "sample_business.toml").read_text()
    text = re.sub(r'(?m)^greeting = ".*"$', f'greeting = "{greeting}"', text)
    path = Path(folder or tempfile.mkdtemp(prefix="offhook-rig-")) / "business.toml"
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
    agents: dict = field(default_factory=dict)  # call sid -> the handler (AgentCall) the server made

    def contexts(self, fallback: bool = False) -> list:
        """The TTS contexts calls sent text to (not the start-up renders, nor the empty context the
        client keeps open for keep-alives), oldest first."""
        emu = self.tts2 if fallback else self.tts
        return [c for c in emu.contexts[self.startup_contexts[1 if fallback else 0]:] if "".join(c.texts).strip()]

    def said(self, fallback: bool = False) -> list[str]:
        """The text each call utterance sent to a voice."""
        return ["".join(c.texts) for c in self.contexts(fallback)]

    async def call(self, steps, wrap=None, **kw):
        """One simulated call; `wrap(caller)` may adjust the SimCaller before it dials. Returns the
        caller's CallResult and the server's finished MediaCall."""
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
    """The agent server with its emulated providers; `responder(messages, system)` writes the LLM's
    answers (default: the scripted receptionist), `cfg` goes to Config."""
    cfg.setdefault("public_url", PUBLIC)
    cfg.setdefault("recording_notice", "")
    async with AsyncExitStack() as stack:
        if "profile" not in cfg:
            cfg["profile"] = short_profile(folder=stack.enter_context(tempfile.TemporaryDirectory(prefix="offhook-rig-")))
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
        agents: dict = {}

        def handler_factory(call):
            agents[call.call_sid] = handler = factory(call)
            return handler

        app = await stack.enter_async_context(running_server(handler_factory=handler_factory, **cfg))
        yield Rig(app, config, dg, an, el, el2, (len(el.contexts), len(el2.contexts)), factory.shared, agents=agents)
