"""Calls per core through the full server path, as a ratio against the bare echo floor, at the same
load (100 calls, callers in a separate process, talking and listening continuously):

    pytest bench/test_load_bench.py -s      (the stepping measurement: `offhook bench load`)

Goal (issue 7): the full path holds >= 60% of the floor's calls per core, i.e. costs at most
1/0.6 of the floor's CPU per call; and 100 calls on one core keep p99 lateness <= 10 ms, no loss.
"""
import sys

import pytest

from offhook.bench.runner import ServerProc, Step, run_step

CALLS = 100


def _measure(cmd, mode):
    return run_step(lambda spec: ServerProc(cmd), Step(CALLS, seconds=5.0, warmup=1.5, mode=mode))


@pytest.fixture(scope="module")
def rows():
    floor = _measure([sys.executable, "-m", "offhook.bench.wsservers", "--lib", "hypercorn"], "echo")
    full = _measure([sys.executable, "-m", "offhook.bench.server", "--mode", "echo"], "call")
    for name, r in (("floor", floor), ("full", full)):
        print(f"\n{name:5} CPU/call {r['server_cpu_per_call'] * 100:.3f}%  p99 late {r['outbound_lateness_ms']['p99']:.2f} ms "
              f"lag p99 {r['lag_ms']['p99']:.2f} ms  RSS/call {r['rss_per_call_kb']:.1f} kB  lost {r['lost']}")
    return floor, full


def test_full_path_costs_at_most_1_over_0_6_of_the_floor(rows):
    floor, full = rows
    fraction = floor["server_cpu_per_call"] / full["server_cpu_per_call"]
    print(f"full path holds {fraction:.0%} of the floor's calls per core (by CPU)")
    assert fraction >= 0.6


def test_100_calls_on_one_core(rows):
    _, full = rows
    assert full["lost"] == 0 and full["outbound_lateness_ms"]["p99"] <= 10.0
