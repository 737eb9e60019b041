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


def test_bench_load_agent_runs_the_agent_path_against_the_emulators(tmp_path, capsys):
    assert main(["bench", "--results", str(tmp_path), "load", "--mode", "agent", "--no-floor", *SHORT,
                 "--seconds", "9"]) == 0  # the ~7 s greeting, then each caller's first line
    data = json.loads((tmp_path / "bench-load-agent.json").read_text())
    full = data["full"]["steps"][0]
    _check_step(full, "call")
    # every call was answered by the agent (greeting) and its callers' lines reached the STT emulator
    assert full["agent_utterances"] >= 3 and full["lines_said"] >= 3 and full["marks_echoed"] > 0
    window = full["server_window"]
    assert window["calls_started"] == 3 and window["errors"] == 0
    assert full["emulators_cpu_window"] is not None
    if data["cores"] is not None:  # the server had a core of its own
        assert data["cores"]["server"] and not set(data["cores"]["server"]) & set(data["cores"]["callers_and_emulators"])
    assert "full path, agent handler" in capsys.readouterr().out


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


def test_bench_latency_measures_every_scripted_turn(tmp_path, capsys):
    # one call, one block: a question, one with a pause mid-sentence, one talked over, the barge-in
    assert main(["bench", "--results", str(tmp_path), "latency", "--calls", "1", "--blocks", "1"]) == 0
    printed = capsys.readouterr().out
    assert "end of speech -> first audio (4 turns)" in printed and "speculative hit rate" in printed
    data = json.loads((tmp_path / "bench-latency.json").read_text())
    assert data["turns"] == data["scripted_turns"] == 4 and data["paused_turns"] == 1
    lat = data["latency_ms"]
    # virtual time: no first audio before the emulated LLM's first token (>= 350 ms with its network)
    assert 350 <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 3000
    assert 0 < data["paused_latency_ms"]["p50"] < 3000
    assert 0 < data["endpoint_wait_ms"]["p50"] <= data["endpoint_wait_ms"]["p99"] < 3000
    assert 0 <= data["own_virtual_ms"]["p99"] < 100 and data["own_cpu_per_turn_ms"]["p50"] > 0
    spec = data["speculative"]
    # the speculative request made in the mid-sentence pause was cancelled when the caller went on
    assert spec["starts"] > spec["hits"] > 0 and 0 < spec["hit_rate"] < 1
    assert data["barge_in_clear_at_caller_ms"]["p50"] is not None and data["machine"]["cores"]


def test_bench_latency_rejects_an_empty_run(tmp_path, capsys):
    assert main(["bench", "--results", str(tmp_path), "latency", "--calls", "0"]) == 2
    assert "--calls and --blocks must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "bench-latency.json").exists()


def test_the_rig_and_the_latency_bench_load_without_the_checkouts_tests(tmp_path):
    # what an installed wheel has: the package, run from elsewhere, with no tests/ or bench/ on the path
    import os
    import subprocess
    import sys
    from pathlib import Path

    checkout = Path(__file__).resolve().parent.parent
    code = ("import sys; import offhook.sim.rig, offhook.bench.latency\n"
            f"bad = [n for n, m in list(sys.modules.items()) if (getattr(m, '__file__', None) or '').startswith("
            f"({str(checkout / 'tests')!r}, {str(checkout / 'bench')!r}))]\n"
            "assert not bad, bad\n"
            "assert not any(p.rstrip('/').endswith(('/tests', '/bench')) for p in sys.path), sys.path\n"
            "print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
