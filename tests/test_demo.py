"""`offhook demo`'s logic end to end: the real server with the embedded offline providers (PocketSphinx,
eSpeak NG, the scripted receptionist of the sample profile), the agent and the monitoring, called by
the simulated caller speaking with the local TTS. A shortened version of the bundled call (greeting,
opening hours talked over by a booking, name, phone number, confirmation), under MockClock with real
loopback sockets so that it takes seconds rather than a minute; what is checked is what the caller
heard and what was stored, through the demo's own outcome checks."""
from pathlib import Path

import httpx
import pytest
import trio
from trio.testing import MockClock

from offhook import demo
from offhook.observe.record import EndReason
from offhook.sim.scenario import from_dict

pytest.importorskip("pocketsphinx", reason="the offline extra (pocketsphinx) is needed for the demo")
pytest.importorskip("espeakng_loader", reason="the offline extra (espeakng-loader) is needed for the demo")

WAIT = {"wait_for_agent": {"quiet": 0.8, "timeout": 20}}
SHORT_CALL = {"steps": [
    WAIT,
    {"say": "what are your opening hours"},
    {"barge_in": {"after": 1.5, "say": "I would like to book a haircut on friday at three pm"}},
    WAIT,
    {"say": "my name is maple"}, WAIT,
    {"say": "my number is two four three two four three two four three four"}, WAIT,
    {"say": "yes that's right"}, WAIT,
    {"hangup": True},
]}
EXPECT = {"answers": [{"line": "what are your opening hours", "mentions": ["open", "a.m."]},
                      {"line": "yes that's right", "mentions": ["all set"]}],
          "readback": "2432432434"}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    config = demo.demo_config(str(data), False, {}, 0, "demo-test-token-0123456789abcdef")

    pages = {}

    async def visit(o):  # the URLs the summary prints, while the demo's server still runs
        async with httpx.AsyncClient() as http:
            for name, url in (("dashboard", o.dashboard.split("/call/")[0] + "?" + o.dashboard.split("?")[1]),
                              ("call", o.dashboard), ("no token", o.dashboard.split("?")[0])):
                pages[name] = await http.get(url)

    async def main():
        return await demo.run_demo(config, from_dict(SHORT_CALL), EXPECT, out=lines.append, env={},
                                   while_serving=visit)

    o = trio.run(main, clock=MockClock(autojump_threshold=0.005))
    o.printed, o.pages = lines, pages
    return o


def test_the_call_goes_as_scripted(outcome):
    failed = [(c.name, c.detail) for c in outcome.checks if not c.ok]
    assert not failed, failed
    names = [c.name for c in outcome.checks]
    assert "phone number read back in spoken form" in names
    assert any(n.startswith("barge-in") for n in names) and any("opening hours" in n for n in names)


def test_what_the_caller_heard(outcome):
    r = outcome.result
    said = [l.text for l in r.lines]
    assert said[0] == "what are your opening hours" and said[-1] == "yes that's right"
    # the barge-in stopped the hours answer within a few frames of the clear
    b = r.barge_ins[0]
    assert b.clear_received is not None and b.audio_stopped - b.onset < 0.5
    assert r.agent_heard_between(b.onset + 0.5, b.onset + 1.0) == 0.0
    # every line that was not talked over got an answer the caller heard
    answered = [l for l in r.lines if l.first_agent_played is not None]
    assert len(answered) >= len(r.lines) - 1
    # the booking was read back with the number in spoken form, then confirmed
    heard = " ".join(t.agent_text_heard or t.agent_text_generated for t in outcome.record.turns)
    assert "two four three, two four three, two four three four" in heard
    assert "you're all set, Maple" in heard


def test_what_was_stored_and_reported(outcome):
    rec = outcome.record
    assert rec.complete and rec.end_reason == EndReason.CALLER_HANGUP
    assert len(rec.barge_ins) == 1 and rec.barge_ins[0].clear_sent is not None
    assert Path(outcome.wav_path).stat().st_size > 8000 * 4 * 10  # >10 s of stereo 16-bit audio
    assert outcome.recording and Path(outcome.recording).exists()
    assert outcome.real_cost["total"] > 0 and outcome.real_cost["tts_elevenlabs"] > 0
    summary = demo.render_summary(outcome)
    for text in ("first agent audio after caller speech (P50 / P95)", "barge-in reaction", "cost at real-provider prices",
                 outcome.wav_path, "calls.sqlite3", "/dashboard/call/" + rec.call_sid):
        assert text in summary
    printed = "\n".join(outcome.printed)
    assert "caller: my name is maple" in printed and "agent (" in printed
    cut = [l for l in outcome.printed if "[interrupted" in l]
    assert len(cut) == 1 and "We're open" in cut[0] and "closed on Sunday" not in cut[0]  # what was heard


def test_the_printed_dashboard_urls_serve_the_call(outcome):
    assert outcome.pages["dashboard"].status_code == 200
    call = outcome.pages["call"]
    assert call.status_code == 200 and "what are your opening hours" in call.text
    assert outcome.pages["no token"].status_code == 401  # the token in the printed URL is what lets you in


def test_a_missed_expectation_fails_the_demo(outcome):
    checks = demo.check_outcome(outcome.result, outcome.record,
                                {"answers": [{"line": "what are your opening hours", "mentions": ["midnight"]}],
                                 "readback": "5550000000"})
    failed = [c.name for c in checks if not c.ok]
    assert failed == ["answer to 'what are your opening hours' mentions midnight"]
    misheard = next(c for c in checks if c.name == "phone number read back in spoken form")
    assert "the caller said 5550000000" in misheard.detail


def test_cli_refuses_a_bad_scenario_and_missing_keys(tmp_path, capsys, monkeypatch):
    from offhook.cli import main
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{fly: 1}]\n")
    assert main(["demo", "--scenario", str(bad), "--data-dir", str(tmp_path)]) == 2
    assert "unknown step 'fly'" in capsys.readouterr().err
    for k in demo.REAL_KEYS:
        monkeypatch.delenv(k, raising=False)
    assert main(["demo", "--real", "--data-dir", str(tmp_path)]) == 2
    assert "set DEEPGRAM_API_KEY" in capsys.readouterr().err
