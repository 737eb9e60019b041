"""pytest-benchmark suite for the audio core: each case times offhook and its baseline in one run,
in the same benchmark group, so the ratio is read straight off the table:

    pytest bench/test_audio_bench.py --benchmark-enable --benchmark-only --benchmark-group-by=group

Each round is FRAMES consecutive calls (the time shown is per call, i.e. per 20 ms frame). Single-call
rounds would misstate streaming baselines: soxr's stream mode holds audio back and releases it in
bursts, so most of its calls are cheap and a few are expensive, and the min or median of single calls
reports the cheap ones. Averaging a run of frames inside each round charges every side its real cost.
"""
import pytest

from offhook.audio.benchcases import CASES

FRAMES = 250  # 5 s of audio per round
ROUNDS = 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("side", ["offhook", "baseline"])
def test_frame(benchmark, case, side):
    try:
        ours, theirs = case.build()
    except ImportError as e:
        pytest.skip(f"baseline needs {e.name}")
    benchmark.group = case.name
    benchmark.name = f"{side}: {'offhook' if side == 'offhook' else case.baseline}"
    benchmark.pedantic(ours if side == "offhook" else theirs, iterations=FRAMES, rounds=ROUNDS, warmup_rounds=1)
