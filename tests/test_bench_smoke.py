"""Smoke runs of the benchmark entry points (their numbers are not checked: machines are noisy)."""
import json

from offhook.audio import benchcli
from offhook.cli import main


def test_bench_audio_cli_runs_every_case(tmp_path, capsys):
    out = tmp_path / "audio.json"
    assert main(["bench-audio", "--number", "20", "--repeat", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    from offhook.audio.benchcases import CASES
    assert [r["case"] for r in rows] == [c.name for c in CASES]
    for r in rows:
        assert "skipped" not in r, r  # the test extras install every baseline
        assert r["offhook_us"] > 0 and r["baseline_us"] > 0
        assert r["case"] in printed


def test_render_marks_missed_targets():
    rows = [{"case": "x", "baseline": "b", "offhook_us": 2.0, "baseline_us": 1.0, "ratio": 2.0,
             "target": 0.5, "met": False, "per_second_us": 100.0}]
    assert "2.00x slower" in benchcli.render(rows) and "!" in benchcli.render(rows)
