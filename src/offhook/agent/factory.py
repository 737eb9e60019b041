"""What all calls of one server share, and the handler factory the server is given.

    async with agent_handler_factory(config, providers) as handler_factory:
        app = OffhookApp(config, handler_factory)

At start-up: the business profile and the system prompt, the stall phrases pre-rendered once per
TTS voice, and one circuit breaker per TTS provider for the whole process (so a provider that is
failing is skipped by every call, not rediscovered by each). A background task probes tripped
providers cheaply (one short phrase) so calls return to the primary once it is healthy.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import trio

from offhook.agent.breaker import CircuitBreaker
from offhook.agent.prompt import build_system_prompt
from offhook.agent.stall import StallPhrases
from offhook.audio import ulaw_level_db
from offhook.providers.profile import BusinessProfile, load_profile, sample_profile

log = logging.getLogger("offhook.agent")

BREAKER_FAILURES = 1        # one failed utterance moves later turns to the fallback voice ...
PROBE_INTERVAL_S = 10.0     # ... until a probe this often says the primary is back
PROBE_TEXT = "Okay."
PROBE_TIMEOUT_S = 2.0
# the confirmatory words the system prompt asks replies to open with, pre-rendered per voice so
# the first audio of such a reply plays without waiting for the TTS
OPENERS = ("Sure,", "Okay,", "Got it.", "Sure.", "Okay.", "Of course.", "Alright,", "Certainly.")


@dataclass
class AgentShared:
    config: object
    providers: object
    profile: BusinessProfile
    system_prompt: str
    greeting: str
    stall: StallPhrases
    breakers: dict[str, CircuitBreaker]
    openers: StallPhrases | None = None
    frame_level: Callable[[bytes], float] = ulaw_level_db


@dataclass
class HandlerFactory:
    """handler_factory(call) -> the call's AgentCall; `shared` is what all calls share."""
    shared: AgentShared
    handler: type

    def __call__(self, call):
        return self.handler(self.shared, call)


def _profile(config) -> BusinessProfile:
    return load_profile(config.profile) if getattr(config, "profile", "") else sample_profile()


async def _probe(provider, breaker: CircuitBreaker) -> None:
    """One short utterance on a tripped provider; its outcome feeds the breaker."""
    ok = False
    with trio.move_on_after(PROBE_TIMEOUT_S):
        try:
            async with provider.session() as session:
                async with session.utterance() as utt:
                    await utt.send_text(PROBE_TEXT)
                    await utt.flush()
                    async for chunk in utt:
                        if chunk.audio:
                            ok = True
                            break
        except Exception as e:  # the probe is allowed to fail: that is what it is for
            log.info("TTS probe of %s failed: %s", provider.name, e)
    if ok:
        breaker.record_success()
    else:
        breaker.record_failure()


async def _probe_loop(providers, breakers: dict[str, CircuitBreaker]) -> None:
    while True:
        await trio.sleep(PROBE_INTERVAL_S / 4)
        for p in providers.tts:
            b = breakers[p.name]
            if b.state != "closed" and b.allow():
                await _probe(p, b)


@asynccontextmanager
async def agent_handler_factory(config, providers) -> AsyncIterator[Callable]:
    from offhook.agent.session import AgentCall  # session imports the server's types

    names = [p.name for p in providers.tts]
    if not names:
        raise ValueError("the agent needs at least one TTS provider")
    if len(set(names)) != len(names):
        # breakers, stall phrases and usage are kept per provider name
        raise ValueError(f"TTS providers must have distinct names, got {names}")
    profile = _profile(config)
    notice = getattr(config, "recording_notice", "") or ""
    greeting = f"{profile.greeting} {notice}".strip()
    extra = f'You have already greeted the caller with: "{greeting}".'
    if getattr(config, "agent_prompt", ""):
        extra = f"{config.agent_prompt}\n\n{extra}"
    system = build_system_prompt(profile, extra=extra, recording_notice=bool(notice))
    stall, openers = StallPhrases(), StallPhrases(OPENERS)
    for p in providers.tts:
        for cache in (stall, openers):
            try:
                await cache.render(p)
            except Exception as e:  # a voice that cannot render now simply goes without
                log.warning("could not pre-render %s with %s: %s", cache.phrases, p.name, e)
    breakers = {p.name: CircuitBreaker(BREAKER_FAILURES, PROBE_INTERVAL_S) for p in providers.tts}
    shared = AgentShared(config, providers, profile, system, greeting, stall, breakers, openers)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_probe_loop, providers, breakers)
        yield HandlerFactory(shared, AgentCall)
        nursery.cancel_scope.cancel()
