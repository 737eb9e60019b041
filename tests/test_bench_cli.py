"""Smoke runs of `offhook bench ws` and `offhook bench load`: a few calls, briefly, through real server
processes and the real load generator. Their timings are not checked (machines are noisy); what is
checked is that frames flowed both ways, nothing was lost, and the JSON has what the README quotes."""
import json

import pytest

from offhook.cli import main

SHORT = ["--steps", "3", "--seconds", "0.6", "--warmup", "0.3", "--retries", "0", "--refine", "0"]


def _check_step(row, mode):
    assert row["connected"] == row["calls"] == 3
    assert row["lost"] == 0 and row["n_connect_failures"] == 0 and row["dropped_by_server"] == 0
    assert row["frames_sent"] >= 3 * 40  # at least 0.9 s of 20 ms frames per call
    assert row["frames_received"] > 0
    if mode == "echo":
        assert row["frames_received"] == row["frames_sent"]  # one answer per frame
    for key in ("server_cpu_per_call", "rss_per_call_kb", "server_rss_mb", "generator_cpu_window"):
        assert row[key] is not None and row[key] >= 0, key
    for key in ("lateness_ms", "outbound_lateness_ms", "lag_ms", "ticker_late_ms"):
        assert set(row[key]) == {"p50", "p95", "p99", "max"}, key
        assert row[key]["p99"] is not None, key


def test_bench_ws_compares_the_three_libraries(tmp_path, capsys):
    assert main(["bench", "--results", str(tmp_path), "ws", *SHORT]) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "bench-ws.json").read_text())
    assert set(data["results"]) == {"hypercorn", "trio-websocket", "websockets"}
    for lib, res in data["results"].items():
        assert lib in printed
        _check_step(res["steps"][0], "echo")  # passed or not (timing) is not checked here
    assert data["cheapest"] in data["results"] and data["machine"]["cores"]


def test_bench_load_echo_runs_floor_and_full_path(tmp_path, capsys):
    # long enough for each caller to hear the greeting, wait 1 s of silence and start its first line
    assert main(["bench", "--results", str(tmp_path), "load", "--mode", "echo", *SHORT, "--seconds", "2"]) == 0
    data = json.loads((tmp_path / "bench-load-echo.json").read_text())
    _check_step(data["floor"]["steps"][0], "echo")
    full = data["full"]["steps"][0]
    _check_step(full, "call")
    # the callers talked and the echo handler answered: agent audio came back as paced utterances
    assert full["lines_said"] >= 3 and full["agent_utterances"] >= 3 and full["marks_echoed"] > 0
    assert full["server_window"]["calls_started"] == 3
    assert "full path / floor" in capsys.readouterr().out
    assert set(data["goals"]) == {"calls_per_core>=100", "fraction_of_floor>=0.6"}


def test_bench_rejects_an_unknown_library(tmp_path, capsys):
    assert main(["bench", "--results", str(tmp_path), "ws", "--libs", "tornado", *SHORT]) == 2
    assert "unknown library: tornado" in capsys.readouterr().err


def test_load_generator_refuses_non_loopback_schemes():
    from offhook.sim.load import LoadConfig, LoadGenerator
    with pytest.raises(ValueError, match="ws://"):
        LoadGenerator(LoadConfig("wss://example.com/twilio/media", 1))


def test_bench_bargein_measures_reaction_and_false_barge_ins(tmp_path, capsys):
    # one caller talks over one long answer; another coughs into one (virtual time: MockClock)
    assert main(["bench", "--results", str(tmp_path), "bargein", "--calls", "1", "--per-call", "1",
                 "--false-per-call", "1"]) == 0
    data = json.loads((tmp_path / "bench-bargein.json").read_text())
    assert data["barge_ins"] == 1 and data["missed"] == 0
    clear, stopped = data["onset_to_clear_ms"]["p50"], data["onset_to_audio_stopped_ms"]["p50"]
    assert 0 < clear < 1000 and 0 < stopped < 1000  # the agent stopped talking over the caller
    assert data["false_set"] == 1 and data["false_by_kind"]["backchannel"]["events"] == 1
    assert "onset -> clear received" in capsys.readouterr().out
