"""The WebSocket layer for the media socket, as a ratio: the three libraries' bare Twilio echo at the
same load (100 calls, separate load-generator process), server CPU per call compared in one run.

    pytest bench/test_ws_bench.py -s        (the full stepping comparison: `offhook bench ws`)

The server uses hypercorn's WS; this keeps that choice honest: it fails if hypercorn costs more than
1.6x the cheapest of the three per call (then switching the media socket would be worth its code).
"""
import sys

import pytest

from offhook.bench.runner import ServerProc, Step, run_step
from offhook.bench.wsservers import LIBS

CALLS = 100
MAX_RATIO = 1.6


@pytest.fixture(scope="module")
def per_call():
    out = {}
    for lib in LIBS:
        row = run_step(lambda spec: ServerProc([sys.executable, "-m", "offhook.bench.wsservers", "--lib", lib]),
                       Step(CALLS, seconds=4.0, warmup=1.0, mode="echo"))
        out[lib] = row
        print(f"\n{lib:15} CPU/call {row['server_cpu_per_call'] * 100:.3f}%  p99 RTT {row['rtt_ms']['p99']:.2f} ms "
              f"RSS/call {row['rss_per_call_kb']:.1f} kB  lost {row['lost']}")
    return out


def test_every_library_echoes_every_frame(per_call):
    for lib, row in per_call.items():
        assert row["lost"] == 0 and row["frames_received"] == row["frames_sent"], lib


def test_hypercorn_within_ratio_of_the_cheapest(per_call):
    cheapest = min(r["server_cpu_per_call"] for r in per_call.values())
    ratio = per_call["hypercorn"]["server_cpu_per_call"] / cheapest
    print(f"hypercorn / cheapest CPU per call: {ratio:.2f}")
    assert ratio <= MAX_RATIO
