"""`offhook bench latency`: voice-to-voice turn latency, end to end, by the agent's benchmark script
(bench/latency.py in the source checkout: the real server, provider clients and emulators at the
seed's budget under MockClock). This runs that script, so there is one implementation, and files its
JSON with the other benchmarks' results."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "latency.py"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=10, help="simulated calls")
    p.add_argument("--blocks", type=int, default=5, help="question + barge-in blocks per call")


def run(args: argparse.Namespace) -> int:
    if not SCRIPT.exists():
        print(f"offhook bench latency needs the source checkout (bench/latency.py and tests/); not found at {SCRIPT}",
              file=sys.stderr)
        return 2
    out = Path(args.results) / "bench-latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rc = subprocess.call([sys.executable, str(SCRIPT), "--calls", str(args.calls), "--blocks", str(args.blocks),
                          "--json", str(out)])
    if rc == 0:
        print(f"JSON: {out}")
    return rc
