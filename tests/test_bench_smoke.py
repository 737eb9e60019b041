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


def test_cases_time_the_same_work_on_both_sides():
    """The codec cases must produce identical bytes on both sides, and our side of every case must
    do the full 20 ms of work (a benchmark of a no-op would be fast and meaningless)."""
    from offhook.audio.benchcases import CASES

    by_name = {c.name: c for c in CASES}
    for name in ["ulaw_decode 20ms", "ulaw_encode 20ms", "ulaw_decode 20ms (numpy)", "ulaw_encode 20ms (numpy)"]:
        ours, theirs = by_name[name].build()
        assert ours() == theirs(), name
    for src, dst in [(8000, 16000), (16000, 8000), (24000, 8000), (22050, 8000), (44100, 8000), (48000, 8000)]:
        name = f"resample {src / 1000:g}k->{dst // 1000}k 20ms"
        ours, _ = by_name[name].build()
        assert [len(ours()) for _ in range(3)] == [dst // 50 * 2] * 3, name
    ours, theirs = by_name["InboundPath 20ms"].build()
    pcm, speech, level = ours()
    assert len(pcm) == 640 and isinstance(speech, bool) and level > -40
    assert theirs()[1] in (True, False)
    ours, theirs = by_name["OutboundPath 20ms of 24k"].build()
    assert [len(f) for _ in range(3) for f in ours()] == [160] * 3
    assert [len(f) for _ in range(5) for f in theirs()][-2:] == [160, 160]
