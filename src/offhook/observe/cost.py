"""The cost ledger: a call's usage in dollars, per component and in total.

Default prices are list prices as published by each vendor in 2025 (pay-as-you-go, US, no volume
discount); they drift, so every one can be overridden from the config's [prices] table:

- Twilio Programmable Voice, inbound to a local US number: $0.0085/min, billed per started minute.
- Twilio Media Streams (the `<Stream>` a call holds open): $0.004/min, billed per started minute.
- Deepgram streaming STT, Nova-3 pay-as-you-go: $0.0077/audio minute, billed per second.
- Claude, a small frontier model (Haiku class): $1 per million input tokens, $5 per million output,
  $1.25 per million written to the prompt cache, $0.10 per million read from it.
- ElevenLabs Flash/Turbo over the API: about $0.05-$0.10 per 1k characters depending on the plan;
  we take $0.08. Deepgram Aura-2: $0.030 per 1k characters (Aura-1 was $0.015); we take $0.030.
- The embedded offline providers (PocketSphinx, eSpeak, the scripted receptionist) cost nothing.

Provider names in the tables are the providers' `name`; "default" prices any other name, so an
unknown STT or TTS provider is priced like the paid default rather than silently free.

Override example (config TOML):

    [prices]
    twilio_voice_per_min = 0.013          # toll-free
    [prices.tts_per_1k_chars]
    elevenlabs = 0.05
    [prices.llm_per_mtok.claude-sonnet-4-5]
    input = 3.0
    output = 15.0
    cache_write = 3.75
    cache_read = 0.30
"""
from __future__ import annotations

import copy
import math
from typing import Any

from offhook.observe.record import Usage

_LLM_FIELDS = ("input", "output", "cache_write", "cache_read")

DEFAULT_PRICES: dict[str, Any] = {
    "twilio_voice_per_min": 0.0085,
    "twilio_media_per_min": 0.004,
    "twilio_bill_whole_minutes": True,
    "stt_per_min": {"default": 0.0077, "deepgram": 0.0077, "pocketsphinx": 0.0},
    "llm_per_mtok": {
        "default": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
        "anthropic": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
        "receptionist": {"input": 0.0, "output": 0.0, "cache_write": 0.0, "cache_read": 0.0},
    },
    "tts_per_1k_chars": {"default": 0.08, "elevenlabs": 0.08, "aura": 0.030, "deepgram": 0.030,
                         "espeak": 0.0},
}


class PriceError(ValueError):
    pass


def _number(where: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or math.isnan(v):
        raise PriceError(f"[prices] {where} must be a non-negative number, got {v!r}")
    return float(v)


def merge_prices(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid by a [prices] table; unknown keys and bad values are errors (a typo must not
    silently bill at the default)."""
    prices = copy.deepcopy(DEFAULT_PRICES)
    for key, value in (overrides or {}).items():
        if key not in prices:
            raise PriceError(f"[prices] unknown key {key!r} (known: {', '.join(sorted(prices))})")
        if key == "twilio_bill_whole_minutes":
            if not isinstance(value, bool):
                raise PriceError(f"[prices] {key} must be true or false, got {value!r}")
            prices[key] = value
        elif isinstance(prices[key], dict):
            if not isinstance(value, dict):
                raise PriceError(f"[prices] {key} must be a table of provider = price")
            for name, price in value.items():
                if key == "llm_per_mtok":
                    if not isinstance(price, dict):
                        raise PriceError(f"[prices] llm_per_mtok.{name} must be a table "
                                         f"with {', '.join(_LLM_FIELDS)}")
                    base = dict(prices[key].get(name, prices[key]["default"]))
                    for f, v in price.items():
                        if f not in _LLM_FIELDS:
                            raise PriceError(f"[prices] llm_per_mtok.{name}: unknown field {f!r}")
                        base[f] = _number(f"llm_per_mtok.{name}.{f}", v)
                    prices[key][name] = base
                else:
                    prices[key][name] = _number(f"{key}.{name}", price)
        else:
            prices[key] = _number(key, value)
    return prices


class CostLedger:
    def __init__(self, overrides: dict[str, Any] | None = None):
        self.prices = merge_prices(overrides)

    def _table(self, key: str, name: str):
        table = self.prices[key]
        return table.get(name or "default", table["default"])

    def cost(self, usage: Usage) -> dict[str, float]:
        """Dollars per component ("twilio", "stt", "llm", "tts_<provider>") plus "total"."""
        p = self.prices
        minutes = usage.twilio_seconds / 60.0
        if p["twilio_bill_whole_minutes"]:
            minutes = math.ceil(minutes - 1e-9) if minutes > 0 else 0
        out = {
            "twilio": minutes * (p["twilio_voice_per_min"] + p["twilio_media_per_min"]),
            "stt": usage.stt_seconds / 60.0 * self._table("stt_per_min", usage.stt_provider),
        }
        llm = self._table("llm_per_mtok", usage.llm_model)
        out["llm"] = (usage.llm_input_tokens * llm["input"] + usage.llm_output_tokens * llm["output"]
                      + usage.llm_cache_write_tokens * llm["cache_write"]
                      + usage.llm_cache_read_tokens * llm["cache_read"]) / 1e6
        for provider, chars in sorted(usage.tts_characters.items()):
            out[f"tts_{provider}"] = chars / 1000.0 * self._table("tts_per_1k_chars", provider)
        out["total"] = sum(out.values())
        return out
