"""The cost ledger: arithmetic, overrides from config, and the seed's sanity check."""
import pytest

from offhook.observe.cost import CostLedger, PriceError
from offhook.observe.record import Usage
from offhook.server.config import Config


def realistic_three_minute_call() -> Usage:
    """A 3-minute booking call on the paid stack: 10 caller turns; the system prompt and business profile
    (2,500 tokens) are written to the prompt cache once and read on the 9 later turns; the growing
    conversation adds 5,000 uncached input tokens in all; replies average 40 tokens; the agent speaks
    about 80 s of the call, 1,200 characters through ElevenLabs."""
    return Usage(twilio_seconds=180.0, stt_seconds=180.0, llm_input_tokens=5000, llm_output_tokens=400,
                 llm_cache_write_tokens=2500, llm_cache_read_tokens=9 * 2500,
                 tts_characters={"elevenlabs": 1200}, stt_provider="deepgram", llm_model="anthropic")


def test_a_realistic_three_minute_call_costs_ten_to_thirty_cents():
    cost = CostLedger().cost(realistic_three_minute_call())
    assert cost["twilio"] == pytest.approx(3 * (0.0085 + 0.004))                     # $0.0375
    assert cost["stt"] == pytest.approx(3 * 0.0077)                                   # $0.0231
    assert cost["llm"] == pytest.approx((5000 * 1 + 400 * 5 + 2500 * 1.25 + 22500 * 0.10) / 1e6)  # $0.012375
    assert cost["tts_elevenlabs"] == pytest.approx(1.2 * 0.08)                       # $0.096
    assert cost["total"] == pytest.approx(0.0375 + 0.0231 + 0.012375 + 0.096)         # $0.168975
    assert 0.10 <= cost["total"] <= 0.30


def test_twilio_bills_started_minutes_and_offline_providers_are_free():
    ledger = CostLedger()
    assert ledger.cost(Usage(twilio_seconds=61))["twilio"] == pytest.approx(2 * 0.0125)
    assert ledger.cost(Usage(twilio_seconds=60))["twilio"] == pytest.approx(0.0125)
    assert ledger.cost(Usage())["total"] == 0.0
    offline = Usage(twilio_seconds=60, stt_seconds=60, llm_input_tokens=10_000, llm_output_tokens=500,
                    tts_characters={"espeak": 900}, stt_provider="pocketsphinx", llm_model="receptionist")
    cost = ledger.cost(offline)
    assert cost == {"twilio": pytest.approx(0.0125), "stt": 0.0, "llm": 0.0, "tts_espeak": 0.0,
                    "total": pytest.approx(0.0125)}


def test_unknown_providers_are_priced_as_the_paid_default_not_free():
    cost = CostLedger().cost(Usage(stt_seconds=60, stt_provider="newstt", tts_characters={"newtts": 1000},
                                   llm_output_tokens=1_000_000, llm_model="some-model"))
    assert cost["stt"] == pytest.approx(0.0077) and cost["tts_newtts"] == pytest.approx(0.08)
    assert cost["llm"] == pytest.approx(5.0)


def test_prices_are_overridden_from_the_config_toml(tmp_path):
    path = tmp_path / "offhook.toml"
    path.write_text("""
[prices]
twilio_voice_per_min = 0.013
twilio_bill_whole_minutes = false
[prices.tts_per_1k_chars]
elevenlabs = 0.05
[prices.llm_per_mtok.claude-sonnet]
input = 3.0
output = 15.0
""")
    cfg = Config.load(str(path), env={}, validate_signatures=False)
    ledger = CostLedger(cfg.prices)
    cost = ledger.cost(Usage(twilio_seconds=90, tts_characters={"elevenlabs": 2000}, llm_model="claude-sonnet",
                             llm_input_tokens=1_000_000, llm_cache_read_tokens=1_000_000))
    assert cost["twilio"] == pytest.approx(1.5 * (0.013 + 0.004))
    assert cost["tts_elevenlabs"] == pytest.approx(0.10)
    assert cost["llm"] == pytest.approx(3.0 + 0.10)  # cache_read not overridden: the default's $0.10


@pytest.mark.parametrize("prices, match", [
    ({"twilio_voice_per_minute": 0.01}, "unknown key 'twilio_voice_per_minute'"),
    ({"twilio_voice_per_min": -1}, "non-negative number"),
    ({"twilio_voice_per_min": "cheap"}, "non-negative number"),
    ({"tts_per_1k_chars": 0.05}, "must be a table"),
    ({"llm_per_mtok": {"x": {"inputs": 1}}}, "unknown field 'inputs'"),
    ({"llm_per_mtok": {"x": 1.0}}, "must be a table"),
    ({"twilio_bill_whole_minutes": "yes"}, "true or false"),
])
def test_bad_prices_are_clear_errors(prices, match):
    with pytest.raises(PriceError, match=match):
        CostLedger(prices)
