"""build_providers: what runs for which keys and [providers] choices, start-up errors, secrets, and
that the environment's base URLs are really used (each provider talks to its emulator)."""
import logging
import random
from pathlib import Path

import pytest
import trio

from provider_helpers import mock_clock

from offhook.providers.anthropic_llm import ClaudeLLM
from offhook.providers.aura_tts import AuraTTS
from offhook.providers.base import Final
from offhook.providers.deepgram_stt import DeepgramSTT
from offhook.providers.elevenlabs_tts import ElevenLabsTTS
from offhook.providers.espeak import ESpeakTTS
from offhook.providers.factory import ProviderConfigError, build_providers
from offhook.providers.receptionist import ScriptedReceptionist
from offhook.providers.sphinx import PocketSphinxSTT
from offhook.server.config import Config
from offhook.sim.board import ScriptBoard
from offhook.sim.emulators.anthropic import anthropic_emulator
from offhook.sim.emulators.aura import aura_emulator
from offhook.sim.emulators.deepgram import deepgram_emulator
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator

pytestmark = pytest.mark.timeout(60)

KEYS = {"DEEPGRAM_API_KEY": "dg_key_1111", "ANTHROPIC_API_KEY": "sk-ant-2222", "ELEVENLABS_API_KEY": "el_key_3333"}


def config(**providers) -> Config:
    return Config(providers=providers)


def kinds(p):
    return type(p.stt), type(p.llm), [type(t) for t in p.tts]


# ---------------------------------------------------------------- the choice matrix
@pytest.mark.parametrize("env,expected,names", [
    ({}, (PocketSphinxSTT, ScriptedReceptionist, [ESpeakTTS]),
     {"stt": "sphinx", "llm": "receptionist", "tts": ["espeak"]}),
    (KEYS, (DeepgramSTT, ClaudeLLM, [ElevenLabsTTS, AuraTTS, ESpeakTTS]),
     {"stt": "deepgram", "llm": "claude", "tts": ["elevenlabs", "aura", "espeak"]}),
    ({"DEEPGRAM_API_KEY": "k"}, (DeepgramSTT, ScriptedReceptionist, [AuraTTS, ESpeakTTS]),
     {"stt": "deepgram", "llm": "receptionist", "tts": ["aura", "espeak"]}),
    ({"ANTHROPIC_API_KEY": "k", "ELEVENLABS_API_KEY": " "}, (PocketSphinxSTT, ClaudeLLM, [ESpeakTTS]),
     {"stt": "sphinx", "llm": "claude", "tts": ["espeak"]}),  # a blank key is no key
])
def test_defaults_follow_the_keys_that_are_set(env, expected, names):
    providers = build_providers(config(), env=env)
    assert kinds(providers) == expected and providers.names == names


@pytest.mark.parametrize("table,expected", [
    ({"stt": "sphinx", "llm": "receptionist"}, (PocketSphinxSTT, ScriptedReceptionist,
                                                [ElevenLabsTTS, AuraTTS, ESpeakTTS])),
    ({"tts": ["aura", "elevenlabs"]}, (DeepgramSTT, ClaudeLLM, [AuraTTS, ElevenLabsTTS, ESpeakTTS])),
    ({"tts": "elevenlabs", "espeak_fallback": False}, (DeepgramSTT, ClaudeLLM, [ElevenLabsTTS])),
    ({"tts": ["espeak", "aura"]}, (DeepgramSTT, ClaudeLLM, [ESpeakTTS, AuraTTS])),  # espeak not doubled
])
def test_the_providers_table_chooses(table, expected):
    assert kinds(build_providers(config(**table), env=KEYS)) == expected


@pytest.mark.parametrize("table,key", [
    ({"stt": "deepgram"}, "DEEPGRAM_API_KEY"),
    ({"llm": "claude"}, "ANTHROPIC_API_KEY"),
    ({"tts": ["elevenlabs"]}, "ELEVENLABS_API_KEY"),
    ({"tts": ["espeak", "aura"]}, "DEEPGRAM_API_KEY"),
])
def test_a_chosen_provider_without_its_key_fails_at_start_up_naming_the_key(table, key):
    with pytest.raises(ProviderConfigError, match=f"{key} is not set"):
        build_providers(config(**table), env={})


@pytest.mark.parametrize("table,match", [
    ({"stt": "whisper"}, "unknown provider"),
    ({"tts": ["aura", "polly"]}, "unknown provider"),
    ({"tts": 3}, "provider name or a list"),
    ({"tts": []}, "provider name or a list"),
    ({"tts": ["aura", "aura"]}, "twice"),
    ({"sttt": "sphinx"}, "unknown entry"),
    ({"espeak_fallback": "yes"}, "true or false"),
    ({"deepgram": {"endpointing": 500, "colour": "blue"}}, r"\[providers.deepgram\].*colour"),
    ({"deepgram": {"utterance_end_ms": 10}}, r"\[providers.deepgram\].*utterance_end_ms"),
    ({"espeak": {"wpm": 5000}}, r"\[providers.espeak\].*wpm"),
    ({"claude": "fast"}, "must be a table"),
])
def test_bad_tables_are_clear_start_up_errors(table, match):
    with pytest.raises(ProviderConfigError, match=match):
        build_providers(config(**table), env=KEYS)


def test_options_and_model_ids_reach_the_providers():
    env = {**KEYS, "DEEPGRAM_MODEL": "nova-2-phonecall", "ELEVENLABS_VOICE_ID": "voice-9",
           "ANTHROPIC_MODEL": "claude-test-1", "DEEPGRAM_TTS_MODEL": "aura-2-luna-en"}
    p = build_providers(config(deepgram={"endpointing": 500, "keyterms": ["balayage"]},
                               claude={"max_tokens": 120, "temperature": 0.3}, elevenlabs={"model_id": "m2"},
                               receptionist={"token_delay_s": 0.02}), env=env)
    opts = p.stt.options(tag="CA1")
    assert (p.stt.model, opts.endpointing, opts.keyterms) == ("nova-2-phonecall", 500, ("balayage",))
    assert (p.llm.model, p.llm.max_tokens, p.llm.temperature) == ("claude-test-1", 120, 0.3)
    el, aura = p.tts[0], p.tts[1]
    assert (el.voice_id, el.model_id) == ("voice-9", "m2") and aura.model == "aura-2-luna-en"
    # the real endpoints by default
    assert p.stt.base_url == "wss://api.deepgram.com" and aura.url.startswith("wss://api.deepgram.com/v1/speak?")
    assert el.url.startswith("wss://api.elevenlabs.io/") and p.llm.base_url.startswith("https://api.anthropic.com")


def test_the_business_profile_feeds_the_receptionist_and_the_recogniser(tmp_path: Path):
    sample = (Path(__file__).parents[1] / "src/offhook/data/sample_business.toml").read_text()
    own = tmp_path / "salon.toml"
    own.write_text(sample.replace('name = "Maple Street Hair Studio"', 'name = "Birch Lane Barbers"', 1))
    p = build_providers(Config(profile=str(own)), env={})
    assert p.profile.name == "Birch Lane Barbers" and p.llm.profile.name == "Birch Lane Barbers"
    assert {"birch", "lane", "barbers"} <= p.stt.vocabulary
    assert build_providers(config(), env={}).profile.name == "Maple Street Hair Studio"


def test_keys_never_show_in_reprs_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    p = build_providers(config(), env=KEYS)
    shown = " ".join([repr(p), caplog.text, *(repr(x) for x in (p.stt, p.llm, *p.tts)),
                      *(str(vars(x)) for x in (p.stt, *p.tts))])
    for key in KEYS.values():
        assert key not in shown
    assert "providers: stt=deepgram llm=claude tts=elevenlabs,aura,espeak" in caplog.text


def test_env_none_reads_the_process_environment(monkeypatch):
    for k in list(KEYS) + ["DEEPGRAM_BASE_URL"]:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("DEEPGRAM_API_KEY", "k")
    monkeypatch.setenv("DEEPGRAM_BASE_URL", "ws://127.0.0.1:9")
    p = build_providers(config())
    assert isinstance(p.stt, DeepgramSTT) and p.stt.base_url == "ws://127.0.0.1:9"
    # ...and an explicit env is all there is, even when the process has keys
    assert isinstance(build_providers(config(), env={}).stt, PocketSphinxSTT)


# ---------------------------------------------------------------- the endpoints are really used
@mock_clock(autojump=0.01)  # the Anthropic SDK's HTTP stack takes a little longer
async def test_base_urls_from_the_environment_point_every_provider_at_its_emulator():
    board = ScriptBoard()
    board.say("CA77", 0.2, 1.0, "What time do you open?")
    async with deepgram_emulator(board=board, api_key="dg-emu") as dg, aura_emulator(api_key="dg-emu") as aura, \
            elevenlabs_emulator(api_key="el-emu") as el, \
            anthropic_emulator(api_key="ant-emu", responder=lambda m, s: "We open at nine.") as ant:
        env = {"DEEPGRAM_API_KEY": "dg-emu", "DEEPGRAM_BASE_URL": dg.base_url, "DEEPGRAM_TTS_BASE_URL": aura.base_url,
               "ELEVENLABS_API_KEY": "el-emu", "ELEVENLABS_BASE_URL": el.base_url,
               "ANTHROPIC_API_KEY": "ant-emu", "ANTHROPIC_BASE_URL": ant.base_url}
        p = build_providers(config(), env=env)
        try:
            # STT
            finals = []
            async with trio.open_nursery() as nursery, p.stt.stream(tag="CA77") as stream:
                async def read():
                    async for ev in stream:
                        if isinstance(ev, Final):
                            finals.append(ev.text)
                nursery.start_soon(read)
                rng = random.Random(3)
                for _ in range(75):
                    await trio.sleep(0.02)
                    await stream.send(rng.randbytes(160))
            assert finals == ["What time do you open?"] and dg.connections[0].tag == "CA77"
            # LLM
            async with p.llm.stream([{"role": "user", "content": "When do you open?"}], system="Be brief.") as s:
                reply = "".join([t async for t in s])
            assert reply == "We open at nine." and len(ant.requests) == 1
            # both network TTS providers
            for tts, emu in ((p.tts[0], el), (p.tts[1], aura)):
                async with tts.session() as session:
                    async with session.utterance() as utt:
                        await utt.send_text("Nine o'clock.")
                        await utt.flush()
                        audio = b"".join([c.audio async for c in utt])
                assert len(audio) > 4000 and len(emu.connections) == 1
        finally:
            await p.aclose()
