"""`offhook report` over a seeded store: every figure checked against numbers worked out by hand."""
import json
import time

import pytest
import trio

from observe_helpers import seeded_calls
from offhook.cli import main as offhook
from offhook.observe.measures import stage_latencies
from offhook.observe.record import TurnRecord
from offhook.observe.report import compute, mask_number, parse_since
from offhook.observe.store import open_store
from offhook.server.config import Config
from pg_server import pg_url, store_url  # noqa: F401 (fixtures)


def seed(tmp_path, database_url: str = "") -> float:
    now = time.time()
    cfg = Config.load(env={}, validate_signatures=False, data_dir=str(tmp_path / "data"), database_url=database_url)

    async def main():
        async with open_store(cfg) as store:
            for rec in seeded_calls(now):
                if rec.complete:
                    await store.finish_call(rec)
                else:
                    await store.start_call(rec)
    trio.run(main)
    (tmp_path / "offhook.toml").write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return now


def report_json(tmp_path, capsys, *args) -> dict:
    assert offhook(["report", "--json", "--config", str(tmp_path / "offhook.toml"), *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_report_figures_match_the_hand_computed_store(tmp_path, capsys, monkeypatch, store_url):
    monkeypatch.setenv("DATABASE_URL", store_url)  # "" = SQLite under the config's data_dir
    monkeypatch.delenv("OFFHOOK_DATA_DIR", raising=False)
    seed(tmp_path, store_url)
    rep = report_json(tmp_path, capsys)  # default window: 7 days, so CAold (9 days ago) is out
    assert rep["calls"] == {"total": 6, "complete": 5, "incomplete": 1}
    # first-audio latencies 0.6 0.7 0.8 0.9 1.4: P50 = 0.8; P95 at rank 3.8 = 0.9 + 0.8 * 0.5 = 1.3
    assert rep["first_audio"]["n"] == 5
    assert rep["first_audio"]["p50"] == pytest.approx(0.8) and rep["first_audio"]["p95"] == pytest.approx(1.3)
    # endpoint waits are first audio - 0.4: 0.2 0.3 0.4 0.5 1.0 -> P50 0.4, P95 0.5 + 0.8 * 0.5 = 0.9
    assert rep["stages"]["endpoint_wait"]["p50"] == pytest.approx(0.4)
    assert rep["stages"]["endpoint_wait"]["p95"] == pytest.approx(0.9)
    for stage, v in (("stt_final", 0.2), ("llm_first_token", 0.2), ("tts_first_audio", 0.1)):
        assert rep["stages"][stage]["p50"] == pytest.approx(v) and rep["stages"][stage]["p95"] == pytest.approx(v)
    # true barge-ins stopped after 0.15 s (ok), 0.25 s (too slow), 0.10 s (clear only, ok); one false
    assert rep["barge_in"] == {"true": 3, "false": 1, "succeeded": 2, "success_rate": pytest.approx(2 / 3),
                               "false_rate": pytest.approx(0.25)}
    assert (rep["stalls"], rep["tts_fallbacks"], rep["llm_failures"], rep["handoffs"], rep["errors"]) == (1, 1, 2, 1, 0)
    assert rep["end_reasons"] == {"agent_end": 1, "caller_hangup": 3, "handoff_human": 1}
    # durations 5 (caller), 20 (caller), 45 (agent), 120 (agent), 400 (caller) over 5 completed calls
    assert rep["hangups_by_duration"] == {
        "0-10s": {"calls": 1, "caller_hangups": 1, "rate": 0.2},
        "10-30s": {"calls": 1, "caller_hangups": 1, "rate": 0.2},
        "30-60s": {"calls": 1, "caller_hangups": 0, "rate": 0.0},
        "1-3m": {"calls": 1, "caller_hangups": 0, "rate": 0.0},
        "3m+": {"calls": 1, "caller_hangups": 1, "rate": 0.2}}
    # $0.01 + 0.05 + 0.08 + 0.20 + 0.50 = $0.84 over 5 calls and 590 s
    assert rep["cost"]["total"] == pytest.approx(0.84) and rep["cost"]["per_call"] == pytest.approx(0.168)
    assert rep["cost"]["per_minute"] == pytest.approx(0.84 / (590 / 60))
    assert rep["cost"]["by_component"] == {"tts_elevenlabs": pytest.approx(0.63), "twilio": pytest.approx(0.21)}
    # the handoff before the random sample
    assert [(r["call_sid"], r["why"]) for r in rep["review"]] == [("CAseed4", "handoff"), ("CAseed3", "sampled")]
    assert rep["review"][0]["from"] == "+1••••••4567"


def test_report_window_and_text_output(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OFFHOOK_DATA_DIR", raising=False)
    seed(tmp_path)
    assert report_json(tmp_path, capsys, "--since", "36h")["calls"]["total"] == 2  # CAseed5 and CAseed6
    assert report_json(tmp_path, capsys, "--since", "30d")["calls"]["total"] == 7
    assert offhook(["report", "--config", str(tmp_path / "offhook.toml")]) == 0
    text = capsys.readouterr().out
    assert "calls            6 (5 complete, 1 incomplete)" in text
    assert "first audio        P50 800 ms  P95 1300 ms  (5 turns)" in text
    assert "success 66.7% (stopped within 200 ms), false-barge-in rate 25.0%" in text
    assert "  0-10s       1 of    1 calls  20.0%" in text
    assert "total $0.8400   per call $0.1680   per minute $0.0854" in text
    assert "CAseed4" in text and "handoff" in text


def test_report_errors_are_clear(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("OFFHOOK_DATA_DIR", str(tmp_path / "nowhere"))
    assert offhook(["report"]) == 2
    assert "no call store at" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # a report never creates a store
    assert offhook(["report", "--since", "last tuesday"]) == 2
    assert "--since: expected" in capsys.readouterr().err


def test_since_parsing_and_masking():
    assert parse_since("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("90m", 10_000.0) == 10_000.0 - 5400
    assert parse_since("2026-01-31", 0) == 1769817600.0
    assert mask_number("+15551234567") == "+1••••••4567" and mask_number("1234") == "1234"
    assert mask_number("") == "" and mask_number("anonymous") == "anonymous"


def test_an_empty_window_reports_no_numbers_rather_than_zeros():
    rep = compute([], 0.0, 1.0)
    assert rep["first_audio"]["p50"] is None and rep["barge_in"]["success_rate"] is None
    assert rep["cost"]["per_call"] is None and rep["hangups_by_duration"]["0-10s"]["rate"] is None


def test_a_speculative_head_start_is_no_wait_not_a_negative_latency():
    t = TurnRecord(0, speech_end=1.0, stt_final=1.2, endpoint_commit=1.3, llm_first_token=1.25, tts_first_audio=1.4)
    assert stage_latencies(t) == {"endpoint_wait": pytest.approx(0.3), "stt_final": pytest.approx(0.2),
                                  "llm_first_token": 0.0, "tts_first_audio": pytest.approx(0.15)}
