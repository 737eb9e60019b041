"""`offhook demo --real`: the bundled scripted call through the demo's own code path with the real
provider clients (Deepgram STT, Claude, ElevenLabs), their keys and endpoints taken from the
environment exactly as `offhook demo --real` takes them, pointed at the local emulators of each
provider's wire protocol.

The emulators run in the test's trio run, next to the demo's simulated caller: the Deepgram emulator
transcribes what the caller writes on offhook.sim.board.BOARD, which needs the same process. Under
MockClock(autojump_threshold=0.005) with real loopback sockets, the emulated provider latencies and
the call's ~78 s of audio pass in virtual time and the timing is the same on every run; the test takes
about 45 s of wall time, nearly all of it the clock's 5 ms idle waits at each 20 ms audio tick (a few
seconds of CPU). A subprocess `offhook demo --real` would play the call in wall-clock time and could
not share the board."""
import logging
import re
from dataclasses import replace

import pytest
import trio
from trio.testing import MockClock

from agent_helpers import receptionist_reply
from offhook import demo
from offhook.observe.cost import CostLedger
from offhook.observe.record import CallRecord, EndReason, TurnRecord, Usage
from offhook.sim.emulators.anthropic import anthropic_emulator
from offhook.sim.emulators.aura import aura_emulator
from offhook.sim.emulators.deepgram import deepgram_emulator
from offhook.sim.emulators.elevenlabs import elevenlabs_emulator
from offhook.sim.emulators.plan import LatencyProfile

KEYS = {"DEEPGRAM_API_KEY": "dg-secret-7f3a9c", "ANTHROPIC_API_KEY": "sk-ant-secret-41d2e8",
        "ELEVENLABS_API_KEY": "el-secret-b06c55"}
# the real services' latency budget (STT first partial, LLM first token, TTS first chunk, network)
STT = LatencyProfile(first_s=0.15, gap_s=0.25, network_s=0.05)
LLM = LatencyProfile(first_s=0.3, gap_s=0.03, network_s=0.05)
TTS = LatencyProfile(first_s=0.2, gap_s=0.05, network_s=0.05)
MODEL = "claude-sonnet-5-5"  # ANTHROPIC_MODEL, priced by the operator's [prices] table
PRICES = {"llm_per_mtok": {MODEL: {"input": 3.0, "output": 15.0}}}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo-real")
    lines: list[str] = []
    scenario, expect = demo.load_scenario(demo.bundled_scenario())

    async def main():
        async with deepgram_emulator(profile=STT, api_key=KEYS["DEEPGRAM_API_KEY"]) as dg, \
                anthropic_emulator(profile=LLM, api_key=KEYS["ANTHROPIC_API_KEY"],
                                   responder=receptionist_reply()) as an, \
                elevenlabs_emulator(profile=TTS, api_key=KEYS["ELEVENLABS_API_KEY"]) as el, \
                aura_emulator(profile=TTS, api_key=KEYS["DEEPGRAM_API_KEY"]) as aura:
            # a Deepgram key also brings Aura in as the second voice (on the same host for real)
            env = {**KEYS, "DEEPGRAM_BASE_URL": dg.base_url, "DEEPGRAM_TTS_BASE_URL": aura.base_url,
                   "ANTHROPIC_BASE_URL": an.base_url, "ELEVENLABS_BASE_URL": el.base_url, "ANTHROPIC_MODEL": MODEL}
            config = demo.demo_config(str(data), True, env, 0, "demo-real-token-0123456789abcdef", prices=PRICES)
            o = await demo.run_demo(config, scenario, expect, out=lines.append, env=env)
            o.emulators = (dg, an, el)
            return o

    logs = _LogCapture()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)  # what an operator debugging the call would see
    root.addHandler(logs)
    try:
        o = trio.run(main, clock=MockClock(autojump_threshold=0.005))
    finally:
        root.removeHandler(logs)
        root.setLevel(level)
    o.printed, o.logs = lines, logs.lines
    return o


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_the_real_providers_served_the_call(outcome):
    dg, an, el = outcome.emulators
    sid = outcome.result.call_sid
    assert dg.for_tag(sid), "the call's audio did not go to the Deepgram endpoint"
    assert len(an.requests) >= 5  # a Claude request per answered caller line
    assert any("".join(c.texts).strip() for c in el.contexts)
    assert "providers: {'stt': 'deepgram', 'llm': 'claude', 'tts': ['elevenlabs', 'aura', 'espeak']}" \
        in outcome.printed[0]
    assert {r.body["model"] for r in an.requests} == {MODEL}


def test_the_call_goes_as_scripted(outcome):
    failed = [(c.name, c.detail) for c in outcome.checks if not c.ok]
    assert outcome.ok and not failed, failed
    names = [c.name for c in outcome.checks]
    assert {"agent greeted the caller", "agent answered every line", "caller hung up at the end"} <= set(names)
    assert any("opening hours" in n for n in names) and any(n.startswith("barge-in") for n in names)
    assert "phone number read back in spoken form" in names


def test_what_the_caller_heard(outcome):
    r = outcome.result
    assert [l.text for l in r.lines][0] == "what are your opening hours"
    heard = " ".join(t.agent_text_heard or t.agent_text_generated for t in outcome.record.turns)
    # the exact words of the number: the emulated STT hears what the caller said, no misrecognition
    assert "two four three, two four three, two four three four" in heard
    b = r.barge_ins[0]
    assert b.text == "how much is a beard trim" and b.clear_received is not None
    assert r.agent_heard_between(b.onset + 0.5, b.onset + 1.0) == 0.0  # the price list stopped
    assert r.ended_by == "caller"


def test_the_summary_and_cost_from_real_usage(outcome):
    rec = outcome.record
    assert rec.complete and rec.end_reason == EndReason.CALLER_HANGUP
    u = rec.usage
    # billed as metered by the real clients: Claude's reported tokens, ElevenLabs' characters
    assert u.llm_input_tokens > 0 and u.llm_output_tokens > 0 and u.tts_characters.get("elevenlabs", 0) > 0
    assert not outcome.cost_estimated and u.llm_model == MODEL and u.stt_provider == "deepgram"
    cost = outcome.real_cost
    # the model's own price from the [prices] table, not a generic Claude price
    assert cost["llm"] == pytest.approx((u.llm_input_tokens * 3.0 + u.llm_output_tokens * 15.0) / 1e6)
    assert cost["tts_elevenlabs"] == pytest.approx(u.tts_characters["elevenlabs"] / 1000 * 0.08)
    assert cost["stt"] == pytest.approx(u.stt_seconds / 60 * 0.0077) and u.stt_seconds > 30
    assert cost == pytest.approx(rec.cost)  # the same figure the call record and dashboard show
    summary = demo.render_summary(outcome)
    assert re.search(r"cost at real-provider prices +\$%.4f  \(twilio .*llm \$%.4f" % (cost["total"], cost["llm"]),
                     summary)
    for text in ("first agent audio after caller speech (P50 / P95)", "barge-in reaction", outcome.wav_path,
                 "calls.sqlite3", "/dashboard/call/" + rec.call_sid):
        assert text in summary
    assert "LLM tokens estimated" not in summary
    p50, p95 = demo.pct(outcome.latencies(), 50), demo.pct(outcome.latencies(), 95)
    assert 0 < p50 <= p95 < 3.0
    assert outcome.recording and outcome.recording in summary


def test_a_missing_greeting_fails_the_demo(outcome):
    r = outcome.result
    silent_start = replace(r, agent_played=[(k, f) for k, f in r.agent_played if k * 0.020 >= r.lines[0].end])
    checks = {c.name: c for c in demo.check_outcome(silent_start, outcome.record, {})}
    assert not checks["agent greeted the caller"].ok
    assert "heard nothing from the agent before its first line" in checks["agent greeted the caller"].detail


def test_a_real_call_keeps_its_providers_prices_and_an_offline_one_is_priced_as_real():
    def record(**usage):
        rec = CallRecord("CA1", usage=Usage(twilio_seconds=60, stt_seconds=60, **usage))
        rec.turns.append(TurnRecord(0, caller_text="hi", agent_text_generated="Hello there."))
        return rec
    # the last-resort eSpeak voice spoke one line of a real call: that line cost nothing
    real, estimated = demo.real_price_usage(record(stt_provider="deepgram", llm_model=MODEL, llm_input_tokens=900,
                                                   llm_output_tokens=40,
                                                   tts_characters={"elevenlabs": 500, "espeak": 30}))
    assert not estimated and real.llm_model == MODEL and real.tts_characters == {"elevenlabs": 500, "espeak": 30}
    cost = CostLedger(PRICES).cost(real)
    assert cost["tts_espeak"] == 0 and cost["llm"] == pytest.approx((900 * 3.0 + 40 * 15.0) / 1e6)
    # all offline: priced as Deepgram, Claude (tokens estimated: the receptionist counts none), ElevenLabs
    off, estimated = demo.real_price_usage(record(stt_provider="pocketsphinx", llm_model="scripted-receptionist",
                                                  tts_characters={"espeak": 530}))
    assert estimated and off.llm_input_tokens > 0 and off.llm_output_tokens > 0
    assert (off.stt_provider, off.llm_model, off.tts_characters) == ("deepgram", "anthropic", {"elevenlabs": 530})
    assert CostLedger().cost(off)["stt"] == pytest.approx(0.0077)


def test_no_key_is_printed_or_logged(outcome):
    assert any("providers: stt=deepgram llm=claude" in l for l in outcome.logs)  # the capture saw the run
    printed = "\n".join(outcome.printed + outcome.logs) + demo.render_summary(outcome)
    for key in KEYS.values():
        assert key not in printed


def test_real_without_keys_names_what_is_missing(tmp_path, capsys, monkeypatch):
    from offhook.cli import main
    for k in demo.REAL_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEYS["ANTHROPIC_API_KEY"])
    monkeypatch.setenv("ELEVENLABS_API_KEY", "  ")  # blank: the providers would not use it either
    assert main(["demo", "--real", "--data-dir", str(tmp_path / "data")]) == 2
    out = capsys.readouterr()
    assert "DEEPGRAM_API_KEY" in out.err and "ELEVENLABS_API_KEY" in out.err
    assert "ANTHROPIC_API_KEY" not in out.err  # only what is missing is named
    assert KEYS["ANTHROPIC_API_KEY"] not in out.err + out.out
    assert not (tmp_path / "data").exists()  # refused before anything ran
