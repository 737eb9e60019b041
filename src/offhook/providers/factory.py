"""Which providers a server runs with: keys and endpoints from the environment, choices and
options from the config's [providers] table, offline defaults when no key is set.

    providers = build_providers(config)          # env=None: os.environ
    providers.stt, providers.llm, providers.tts  # tts: primary first, eSpeak last when available
    await providers.aclose()                     # at shutdown

[providers] table (every entry optional):

    stt = "deepgram"                 # or "sphinx"          default: deepgram if DEEPGRAM_API_KEY is set
    llm = "claude"                   # or "receptionist"    default: claude if ANTHROPIC_API_KEY is set
    tts = ["elevenlabs", "aura"]     # or ["espeak"], ...   default: elevenlabs if ELEVENLABS_API_KEY,
                                     #                      aura if DEEPGRAM_API_KEY, then espeak
    espeak_fallback = true           # append eSpeak as the last TTS (when the offline extra is installed)
    [providers.deepgram]             # options of each provider, passed to its constructor:
    endpointing = 300                #   deepgram: model, endpointing, utterance_end_ms, keyterms, ...
    [providers.claude]               #   claude: model, max_tokens, temperature, effort, timeouts
    max_tokens = 300                 #   elevenlabs: voice_id, model_id, voice_settings, ...
                                     #   aura: model; espeak: voice, wpm, pitch; sphinx: extra_words
                                     #   receptionist: token_delay_s, first_token_delay_s

Environment: DEEPGRAM_API_KEY, ANTHROPIC_API_KEY, ELEVENLABS_API_KEY (keys are read only from
the environment, never from config files); endpoints DEEPGRAM_BASE_URL (ws/wss of /v1/listen),
DEEPGRAM_TTS_BASE_URL (Aura; defaults to DEEPGRAM_BASE_URL), ANTHROPIC_BASE_URL,
ELEVENLABS_BASE_URL; models DEEPGRAM_MODEL, DEEPGRAM_TTS_MODEL, ANTHROPIC_MODEL,
ELEVENLABS_VOICE_ID, ELEVENLABS_MODEL_ID (these override the table's options).

A provider chosen explicitly without its key, an unknown provider name or option, or an offline
provider whose extra is not installed is a ProviderConfigError at start-up, naming what is
missing. The business profile (receptionist, PocketSphinx's domain language model) is
config.profile or the bundled sample.
"""
from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from offhook.providers.base import LLMProvider, STTProvider, TTSProvider
from offhook.providers.profile import BusinessProfile, load_profile, sample_profile

log = logging.getLogger("offhook.providers")

STT_CHOICES = ("deepgram", "sphinx")
LLM_CHOICES = ("claude", "receptionist")
TTS_CHOICES = ("elevenlabs", "aura", "espeak")
KEYS = {"deepgram": "DEEPGRAM_API_KEY", "aura": "DEEPGRAM_API_KEY", "claude": "ANTHROPIC_API_KEY",
        "elevenlabs": "ELEVENLABS_API_KEY"}
OFFLINE_EXTRA = {"sphinx": "pocketsphinx", "espeak": "espeakng_loader"}
_TABLE_KEYS = {"stt", "llm", "tts", "espeak_fallback", *STT_CHOICES, *LLM_CHOICES, *TTS_CHOICES}


class ProviderConfigError(ValueError):
    """A provider cannot be built as configured (missing key, unknown name or option, missing extra)."""


@dataclass
class Providers:
    stt: STTProvider
    llm: LLMProvider
    tts: list[TTSProvider]
    names: dict[str, Any] = field(default_factory=dict)
    profile: BusinessProfile | None = None

    def __repr__(self) -> str:
        return f"Providers({self.names})"

    async def aclose(self) -> None:
        """Close what is held across calls (the Claude HTTP client); streams are per call."""
        for p in (self.stt, self.llm, *self.tts):
            close = getattr(p, "aclose", None)
            if close is not None and inspect.iscoroutinefunction(close):
                await close()


def build_providers(config: Any, env: Mapping[str, str] | None = None) -> Providers:
    env = os.environ if env is None else env
    table = dict(getattr(config, "providers", None) or {})
    unknown = set(table) - _TABLE_KEYS
    if unknown:
        raise ProviderConfigError(f"[providers]: unknown entr{'y' if len(unknown) == 1 else 'ies'} "
                                  f"{sorted(unknown)} (known: {sorted(_TABLE_KEYS)})")
    has = {name: bool((env.get(var) or "").strip()) for name, var in KEYS.items()}
    profile_path = getattr(config, "profile", "") or ""
    profile = load_profile(profile_path) if profile_path else sample_profile()
    build = _Builder(table, env, profile)

    stt_name = _choice(table, "stt", STT_CHOICES, "deepgram" if has["deepgram"] else "sphinx")
    llm_name = _choice(table, "llm", LLM_CHOICES, "claude" if has["claude"] else "receptionist")
    if "tts" in table:
        raw = table["tts"]
        tts_names = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else None
        if not tts_names or not all(isinstance(n, str) for n in tts_names):
            raise ProviderConfigError("[providers] tts must be a provider name or a list of names, "
                                      f"e.g. [\"elevenlabs\", \"aura\"], got {raw!r}")
        for n in tts_names:
            _check_name("tts", n, TTS_CHOICES)
        if len(set(tts_names)) != len(tts_names):
            raise ProviderConfigError(f"[providers] tts lists a provider twice: {tts_names}")
    else:
        tts_names = [n for n in ("elevenlabs", "aura") if has[n]] or ["espeak"]
    fallback = table.get("espeak_fallback", True)
    if not isinstance(fallback, bool):
        raise ProviderConfigError(f"[providers] espeak_fallback must be true or false, got {fallback!r}")
    if fallback and "espeak" not in tts_names:
        if _installed("espeak"):
            tts_names.append("espeak")
        else:
            log.warning("eSpeak is not installed (pip install 'offhook[offline]'): no offline last-resort TTS")

    for name in [stt_name, llm_name, *tts_names]:
        if name in KEYS and not has[name]:
            raise ProviderConfigError(f"the {name} provider is configured but {KEYS[name]} is not set "
                                      f"(set it, or choose another provider in [providers])")
        if name in OFFLINE_EXTRA and not _installed(name):
            raise ProviderConfigError(f"the {name} provider needs the offline extra: pip install 'offhook[offline]'"
                                      + (" (or set DEEPGRAM_API_KEY for Deepgram)" if name == "sphinx" else ""))

    stt = build(stt_name)
    llm = build(llm_name)
    tts = [build(n) for n in tts_names]
    names = {"stt": stt_name, "llm": llm_name, "tts": tts_names}
    log.info("providers: stt=%s llm=%s tts=%s", stt_name, llm_name, ",".join(tts_names))
    return Providers(stt=stt, llm=llm, tts=tts, names=names, profile=profile)


def _check_name(slot: str, name: Any, choices: tuple[str, ...]) -> None:
    if name not in choices:
        raise ProviderConfigError(f"[providers] {slot} = {name!r}: unknown provider (choose from {list(choices)})")


def _choice(table: Mapping[str, Any], slot: str, choices: tuple[str, ...], default: str) -> str:
    name = table.get(slot, default)
    _check_name(slot, name, choices)
    return name


def _installed(name: str) -> bool:
    return importlib.util.find_spec(OFFLINE_EXTRA[name]) is not None


class _Builder:
    """Constructs one provider from env (keys, endpoints, models) and its [providers.<name>] options."""

    def __init__(self, table: Mapping[str, Any], env: Mapping[str, str], profile: BusinessProfile) -> None:
        self.table, self.env, self.profile = table, env, profile

    def __call__(self, name: str) -> Any:
        options = self.table.get(name, {})
        if not isinstance(options, Mapping):
            raise ProviderConfigError(f"[providers.{name}] must be a table of options, got {options!r}")
        make: Callable[[dict], Any] = getattr(self, f"_{name}")
        try:
            return make(dict(options))
        except TypeError as exc:  # an option the constructor does not take
            raise ProviderConfigError(f"[providers.{name}]: {exc}") from None
        except ValueError as exc:  # the providers' own config errors are ValueErrors
            raise ProviderConfigError(f"[providers.{name}]: {exc}") from None

    def _env(self, *names: str) -> str | None:
        for n in names:
            if (self.env.get(n) or "").strip():
                return self.env[n].strip()
        return None

    def _override(self, options: dict, key: str, *env_names: str) -> None:
        value = self._env(*env_names)
        if value is not None:
            options[key] = value

    def _deepgram(self, options: dict) -> Any:
        from offhook.providers import deepgram_protocol
        from offhook.providers.deepgram_stt import DeepgramSTT
        self._override(options, "model", "DEEPGRAM_MODEL")
        return DeepgramSTT(api_key=self.env["DEEPGRAM_API_KEY"], base_url=self._env("DEEPGRAM_BASE_URL")
                           or deepgram_protocol.DEFAULT_BASE_URL, **options)

    def _aura(self, options: dict) -> Any:
        from offhook.providers import aura_protocol
        from offhook.providers.aura_tts import AuraTTS
        self._override(options, "model", "DEEPGRAM_TTS_MODEL")
        return AuraTTS(api_key=self.env["DEEPGRAM_API_KEY"],
                       base_url=self._env("DEEPGRAM_TTS_BASE_URL", "DEEPGRAM_BASE_URL")
                       or aura_protocol.DEFAULT_BASE_URL, **options)

    def _elevenlabs(self, options: dict) -> Any:
        from offhook.providers import elevenlabs_protocol
        from offhook.providers.elevenlabs_tts import DEFAULT_VOICE_ID, ElevenLabsTTS
        self._override(options, "voice_id", "ELEVENLABS_VOICE_ID")
        self._override(options, "model_id", "ELEVENLABS_MODEL_ID")
        options.setdefault("voice_id", DEFAULT_VOICE_ID)
        options.setdefault("model_id", elevenlabs_protocol.DEFAULT_MODEL_ID)
        return ElevenLabsTTS(api_key=self.env["ELEVENLABS_API_KEY"], base_url=self._env("ELEVENLABS_BASE_URL")
                             or elevenlabs_protocol.DEFAULT_BASE_URL, **options)

    def _claude(self, options: dict) -> Any:
        from offhook.providers.anthropic_llm import ClaudeLLM
        self._override(options, "model", "ANTHROPIC_MODEL")
        return ClaudeLLM(api_key=self.env["ANTHROPIC_API_KEY"],
                         base_url=self._env("ANTHROPIC_BASE_URL") or "https://api.anthropic.com", **options)

    def _receptionist(self, options: dict) -> Any:
        from offhook.providers.receptionist import ScriptedReceptionist
        return ScriptedReceptionist(self.profile, **options)

    def _sphinx(self, options: dict) -> Any:
        from offhook.providers.sphinx import PocketSphinxSTT
        return PocketSphinxSTT(self.profile.expected_phrases(), **options)

    def _espeak(self, options: dict) -> Any:
        from offhook.providers.espeak import ESpeakTTS
        return ESpeakTTS(**options)
