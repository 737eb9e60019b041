"""pytest-benchmark suite for the audio core: each case times offhook and its baseline in one run,
in the same benchmark group, so the ratio is read straight off the table:

    pytest bench/test_audio_bench.py --benchmark-enable --benchmark-only --benchmark-group-by=group
"""
import pytest

from offhook.audio.benchcases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("side", ["offhook", "baseline"])
def test_frame(benchmark, case, side):
    try:
        ours, theirs = case.build()
    except ImportError as e:
        pytest.skip(f"baseline needs {e.name}")
    benchmark.group = case.name
    benchmark.name = f"{side}: {'offhook' if side == 'offhook' else case.baseline}"
    benchmark(ours if side == "offhook" else theirs)
